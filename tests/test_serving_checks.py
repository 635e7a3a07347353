"""The serving checks the Pusher runs: stock ops only, warm-up replay, and a
blessed model that fails them never reaches the serving folder."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import features, models, pusher, serving_checks, signatures


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tf.keras.utils.set_random_seed(0)
    model = models.build("seed_dense", features.NUM_CLASSES)
    export_dir = str(tmp_path_factory.mktemp("model") / "Format-Serving")
    signatures.export_serving_model(model, export_dir, features.CLASS_NAMES)
    return export_dir


class _PythonCallback(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def double(self, values):
        return tf.py_function(lambda x: x * 2, [values], tf.float32)


@pytest.fixture(scope="module")
def python_op_model(tmp_path_factory):
    export_dir = str(tmp_path_factory.mktemp("py_func") / "model")
    module = _PythonCallback()
    tf.saved_model.save(
        module, export_dir, signatures={"serving_default": module.double}
    )
    return export_dir


def test_an_exported_model_passes_and_answers_every_warmup_request(exported):
    assert serving_checks.check_servable(exported) == len(signatures.SIGNATURE_NAMES)


def test_the_exported_graph_holds_only_stock_ops(exported):
    ops = serving_checks.graph_ops(exported)
    assert {"DecodePng", "ParseExampleV2"} <= ops
    assert not ops - serving_checks.stock_ops()


def test_a_python_callback_op_is_refused_by_name(python_op_model):
    with pytest.raises(serving_checks.ServingCheckError, match="EagerPyFunc"):
        serving_checks.check_ops(python_op_model)


def test_an_op_from_an_extra_library_is_refused_by_name(exported):
    without_png = serving_checks.stock_ops() - {"DecodePng"}
    with pytest.raises(serving_checks.ServingCheckError, match=r"DecodePng\."):
        serving_checks.check_ops(exported, known_ops=without_png)


def _copy_with_warmup(source, destination, requests):
    shutil.copytree(source, destination)
    path = signatures.warmup_path(destination)
    if requests is None:
        os.remove(path)
        return destination
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            writer.write(
                prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(request=request)
                ).SerializeToString()
            )
    return destination


def _request(signature_name, **inputs):
    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(signature_name=signature_name)
    )
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def test_a_missing_warmup_file_is_refused(exported, tmp_path):
    copy = _copy_with_warmup(exported, str(tmp_path / "model"), None)
    with pytest.raises(serving_checks.ServingCheckError, match="no warm-up file"):
        serving_checks.replay_warmup(copy)


def test_a_failing_warmup_request_is_named(exported, tmp_path):
    good = _request("serving_images", images=np.zeros([1, 28, 28], np.float32))
    bad = _request("serving_images", images=np.zeros([1, 27, 28], np.float32))
    copy = _copy_with_warmup(exported, str(tmp_path / "model"), [good, bad])
    with pytest.raises(
        serving_checks.ServingCheckError,
        match=r"request 2 to signature 'serving_images' failed",
    ):
        serving_checks.replay_warmup(copy)


def test_a_request_for_a_missing_signature_is_named(exported, tmp_path):
    stray = _request("serving_text", text=np.array([b"hello"]))
    copy = _copy_with_warmup(exported, str(tmp_path / "model"), [stray])
    with pytest.raises(serving_checks.ServingCheckError, match="'serving_text'"):
        serving_checks.replay_warmup(copy)


def _push(model_dir, serving_model_dir, tmp_path):
    model = standard_artifacts.Model()
    model.uri = os.path.dirname(model_dir)
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(
            base_directory=serving_model_dir
        )
    )
    pusher.Executor().Do(
        {"model": [model], "model_blessing": [blessing]},
        {"pushed_model": [pushed]},
        {
            "push_destination": proto_utils.proto_to_json(destination),
            "custom_config": json.dumps({}),
        },
    )
    return pushed


def test_a_blessed_model_that_fails_the_checks_is_not_published(
    python_op_model, tmp_path
):
    serving_model_dir = str(tmp_path / "serving")
    model_dir = str(tmp_path / "trained" / "Format-Serving")
    shutil.copytree(python_op_model, model_dir)
    with pytest.raises(serving_checks.ServingCheckError, match="EagerPyFunc"):
        _push(model_dir, serving_model_dir, tmp_path)
    assert pusher.existing_versions(serving_model_dir) == []


def test_a_blessed_model_that_passes_is_published_with_its_warmup(exported, tmp_path):
    serving_model_dir = str(tmp_path / "serving")
    pushed = _push(exported, serving_model_dir, tmp_path)
    assert pushed.get_int_custom_property("pushed") == 1
    assert pusher.existing_versions(serving_model_dir) == [1]
    assert os.path.isfile(signatures.warmup_path(os.path.join(serving_model_dir, "1")))
