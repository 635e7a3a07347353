"""Checks that a SavedModel will load and answer in stock TensorFlow Serving.

The Pusher runs them before publishing, so a model that needs an op from an
extra TensorFlow library, or that cannot answer its own warm-up requests, never
reaches the serving folder.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

from components import signatures

# Registered in TensorFlow's Python package, but their kernels call back into a
# Python interpreter, which TF Serving does not have.
PYTHON_ONLY_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})

# A bare TensorFlow import registers exactly the ops TF Serving is built with;
# this process may also hold ops that TFX's libraries loaded.
_LIST_STOCK_OPS = """
import sys
from tensorflow.core.framework import op_def_pb2
from tensorflow.python.client import pywrap_tf_session
op_list = op_def_pb2.OpList()
op_list.ParseFromString(pywrap_tf_session.TF_GetBuffer(pywrap_tf_session.TF_GetAllOpList()))
sys.stdout.write("\\n".join(sorted(op.name for op in op_list.op)))
"""


class ServingCheckError(RuntimeError):
    """The model would not load or answer in stock TensorFlow Serving."""


@functools.cache
def stock_ops() -> frozenset[str]:
    """The ops a stock TensorFlow Serving of the pinned version can run."""
    listed = subprocess.run(
        [sys.executable, "-c", _LIST_STOCK_OPS],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if listed.returncode != 0 or not listed.stdout:
        raise ServingCheckError(
            "could not list TensorFlow's stock ops: "
            + (listed.stderr.strip().splitlines() or ["no output"])[-1]
        )
    return frozenset(listed.stdout.split()) - PYTHON_ONLY_OPS


def _read_saved_model(model_dir: str) -> saved_model_pb2.SavedModel:
    path = os.path.join(model_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    try:
        with open(path, "rb") as stream:
            saved_model.ParseFromString(stream.read())
    except OSError as error:
        raise ServingCheckError(f"cannot read {path}: {error}") from error
    return saved_model


def graph_ops(model_dir: str) -> set[str]:
    """Every op type in the SavedModel's graphs, functions included."""
    ops = set()
    for meta_graph in _read_saved_model(model_dir).meta_graphs:
        graph = meta_graph.graph_def
        ops.update(node.op for node in graph.node)
        for function in graph.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def check_ops(model_dir: str, known_ops: frozenset[str] | None = None) -> None:
    """Raises ServingCheckError naming every op stock TF Serving lacks."""
    known_ops = stock_ops() if known_ops is None else known_ops
    missing = sorted(graph_ops(model_dir) - known_ops)
    if missing:
        raise ServingCheckError(
            f"{model_dir} uses ops that stock TensorFlow Serving does not have: "
            f"{', '.join(missing)}. Build the model from stock TensorFlow ops, or "
            "serve it with a TF Serving build that links their library."
        )


def replay_warmup(model_dir: str) -> int:
    """Runs every warm-up request against the model, as TF Serving does at load.

    Returns:
      The number of requests replayed.

    Raises:
      ServingCheckError: the warm-up file is missing, or a request fails; the
        message names the request and the signature.
    """
    path = signatures.warmup_path(model_dir)
    if not os.path.isfile(path):
        raise ServingCheckError(
            f"{model_dir} has no warm-up file {os.path.relpath(path, model_dir)}"
        )
    loaded = tf.saved_model.load(model_dir)
    replayed = 0
    for number, record in enumerate(tf.data.TFRecordDataset(path), start=1):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        name = request.model_spec.signature_name or signatures.SERVING_DEFAULT
        if name not in loaded.signatures:
            raise ServingCheckError(
                f"{path}: request {number} asks for signature {name!r}; the model "
                f"has {sorted(loaded.signatures)}"
            )
        inputs = {
            key: tf.constant(tf.make_ndarray(proto))
            for key, proto in request.inputs.items()
        }
        try:
            loaded.signatures[name](**inputs)
        except (tf.errors.OpError, TypeError, ValueError) as error:
            raise ServingCheckError(
                f"{path}: request {number} to signature {name!r} failed: {error}"
            ) from error
        replayed += 1
    if replayed == 0:
        raise ServingCheckError(f"{path} holds no requests")
    return replayed


def check_servable(model_dir: str) -> int:
    """Both checks; returns the number of warm-up requests replayed."""
    check_ops(model_dir)
    return replay_warmup(model_dir)
