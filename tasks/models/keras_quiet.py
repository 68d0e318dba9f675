"""Keras for the modules that need it, imported without TensorFlow's start-up notices.

Only the modules that train or load networks import this, so steps that do not need
TensorFlow (validation, reports) do not pay for importing it. Every process that runs a
network task, process-pool and Dask workers included, comes through here first.
"""

import os

from core.quiet import import_tensorflow_quietly

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import_tensorflow_quietly()

import keras  # noqa: E402 (after the quiet TensorFlow import)
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

__all__ = ["keras", "ops", "tf"]
