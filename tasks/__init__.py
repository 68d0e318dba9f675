"""Plain, typed pipeline steps plus thin Prefect ``@task`` wrappers."""

import os

from core.quiet import import_tensorflow_quietly

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Every process that runs a task (the CLI's, process-pool and Dask workers) imports this
# package first: TensorFlow comes in here, without its C++ start-up notices.
import_tensorflow_quietly()
