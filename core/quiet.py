"""Import TensorFlow without its C++ start-up notices, keeping anything else it prints.

TensorFlow 2.21 logs through absl before absl is initialised, so ``TF_CPP_MIN_LOG_LEVEL``
no longer silences it: importing it writes "All log messages before absl::InitializeLog()
…", the oneDNN notice and the CPU-feature notice straight to file descriptor 2, twice.
They are about the TensorFlow build, not about this pipeline. During the import, fd 2 goes
to a temporary file; afterwards every line that is not one of those notices is written
back to stderr, so real warnings still show.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

NOTICE = re.compile(
    r"^(?:WARNING: All log messages before absl::InitializeLog\(\) is called are written to"
    r" STDERR"
    r"|[IW]\d{4} \S+\s+\d+ (?:port|cpu_feature_guard)\.cc:\d+\] .*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate"
    r" compiler flags\.)$"
)


def without_notices(text: str) -> str:
    """``text`` less TensorFlow's start-up notice lines."""
    kept = [line for line in text.splitlines() if not NOTICE.match(line)]
    return "".join(f"{line}\n" for line in kept)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (once per process) with its start-up notices filtered out."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401, PLC0415
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        rest = without_notices(captured.read().decode(errors="replace"))
    if rest:
        sys.stderr.write(rest)
        sys.stderr.flush()
