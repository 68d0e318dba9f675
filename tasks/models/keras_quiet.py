"""Keras for the modules that need it, imported without TensorFlow's start-up notices.

Only the modules that train or load networks import this, so steps that do not need
TensorFlow (validation, reports) do not pay for importing it. Every process that runs a
network task, process-pool and Dask workers included, comes through here first.
"""

import logging
import os

from core.quiet import import_tensorflow_quietly

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import_tensorflow_quietly()


class _PredictTracing(logging.Filter):
    """Drop TensorFlow's "triggered tf.function retracing" warning about Keras's predict step.

    Every fitted network predicts through its own traced function (``predict_on_batch``), so
    a run traces one per network (and once more when the batch size first changes). Their
    step functions share one code object, so TensorFlow's detector counts the first trace of
    each new network as a retrace and warns; here that is the design, not a mistake.
    Retracing warnings about anything else still show.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message and "predict_function" in message)


logging.getLogger("tensorflow").addFilter(_PredictTracing())

import keras  # noqa: E402 (after the quiet TensorFlow import)
from keras import ops  # noqa: E402

__all__ = ["keras", "ops"]
