from __future__ import annotations

import subprocess
import sys

import pytest

from core.quiet import without_notices

NOTICES = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1795833024.170427    3711 port.cc:153] oneDNN custom operations are on. You"
    " may see slightly different numerical results.\n"
    "I0000 00:00:1795833024.204538    3711 cpu_feature_guard.cc:227] This TensorFlow binary is"
    " optimized to use available CPU instructions in performance-critical operations.\n"
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow"
    " with the appropriate compiler flags.\n"
)


@pytest.mark.unit
@pytest.mark.parametrize(
    "kept",
    [
        "",
        "UserWarning: something real\n",
        "E0000 00:00:1.0    1 port.cc:1] an error is kept\n",
        "W0000 00:00:1.0    1 other.cc:9] another component's warning is kept\n",
    ],
)
def test_only_the_start_up_notices_are_dropped(kept: str) -> None:
    assert without_notices(NOTICES + kept + NOTICES) == kept


@pytest.mark.integration
def test_importing_the_tasks_prints_no_tensorflow_notice() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tasks.models.registry; import sys; print('ready', file=sys.stderr)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stderr == "ready\n"
