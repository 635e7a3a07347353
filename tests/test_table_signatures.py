"""A table model's SavedModel: its two signatures are pinned, both answer as the
Keras model does, and its warm-up requests and ops pass the serving checks."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from components import (
    data_spec,
    serving_checks,
    signatures,
    tabular_data,
    tabular_models,
)
from components.data_spec import FeatureColumn

THREE_CLASSES = data_spec.DataSpec(
    name="weather",
    format=data_spec.CSV,
    label_key="label",
    class_names=("dry", "rain", "snow"),
    columns=(
        FeatureColumn("temperature", data_spec.FLOAT),
        FeatureColumn("month", data_spec.INT),
        FeatureColumn("sky", data_spec.STRING),
    ),
)

# The serving contract of table models. Changing it breaks every client.
PINNED_INPUTS = {
    "circles": {
        "serving_default": {"examples": (tf.string, [None])},
        "serving_raw": {"x": (tf.float32, [None]), "y": (tf.float32, [None])},
    },
    "weather": {
        "serving_default": {"examples": (tf.string, [None])},
        "serving_raw": {
            "temperature": (tf.float32, [None]),
            "month": (tf.int64, [None]),
            "sky": (tf.string, [None]),
        },
    },
}


def _outputs(num_classes):
    return {
        "class_ids": (tf.int64, [None]),
        "probabilities": (tf.float32, [None, num_classes]),
        "class_names": (tf.string, [None]),
    }


def _circles(folder):
    """Train columns and 40 eval rows of the two circles."""
    paths = tabular_data.write_circles(str(folder), n_points=200)
    train, _ = tabular_data.read_csv(paths[tabular_data.TRAIN_SPLIT])
    columns, _ = tabular_data.read_csv(paths[tabular_data.EVAL_SPLIT])
    rows = [
        {"x": float(x), "y": float(y)}
        for x, y in zip(columns["x"], columns["y"], strict=True)
    ]
    return train, rows


def _weather():
    """Train columns and 30 rows, two of them with a sky never seen in training."""
    rng = np.random.default_rng(0)
    skies = np.array(["clear", "cloudy", "overcast"])

    def columns(count):
        return {
            "temperature": rng.normal(10, 8, count).astype(np.float32),
            "month": rng.integers(1, 13, count),
            "sky": rng.choice(skies, count),
        }

    train = columns(60)
    test = columns(28)
    rows = [
        {
            "temperature": float(test["temperature"][index]),
            "month": int(test["month"][index]),
            "sky": str(test["sky"][index]),
        }
        for index in range(28)
    ]
    rows += [
        {"temperature": -3.5, "month": 1, "sky": "hail"},
        {"temperature": 31.0, "month": 7, "sky": ""},
    ]
    return train, rows


@dataclasses.dataclass
class Exported:
    spec: data_spec.DataSpec
    model: object
    loaded: object
    rows: list
    export_dir: str


@pytest.fixture(scope="module", params=["circles", "weather"])
def exported(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "circles":
        spec = data_spec.CIRCLES
        train, rows = _circles(folder / "data")
    else:
        spec = THREE_CLASSES
        train, rows = _weather()
    tf.keras.utils.set_random_seed(0)
    model = tabular_models.build("tabular", spec.columns, spec.num_classes, train)
    export_dir = str(folder / "Format-Serving")
    signatures.export_serving_model(model, export_dir, spec)
    return Exported(spec, model, tf.saved_model.load(export_dir), rows, export_dir)


def _keras_probabilities(exported):
    """The Keras model's answer for the rows, as [batch, classes] probabilities."""
    inputs = {
        column.name: tf.constant(
            [[row[column.name]] for row in exported.rows],
            data_spec.INPUT_DTYPES[column.kind],
        )
        for column in exported.spec.columns
    }
    outputs = exported.model(inputs, training=False).numpy()
    if exported.spec.binary:
        assert outputs.shape == (len(exported.rows), 1)
        return np.concatenate([1 - outputs, outputs], axis=1)
    return outputs


def _ask(exported, name, rows=None):
    inputs = signatures.table_request_inputs(
        name, exported.rows if rows is None else rows, exported.spec
    )
    return {
        key: value.numpy()
        for key, value in exported.loaded.signatures[name](**inputs).items()
    }


def test_signature_names_inputs_and_outputs_are_pinned(exported):
    pinned = PINNED_INPUTS[exported.spec.name]
    assert set(exported.loaded.signatures) == set(pinned)
    for name, inputs in pinned.items():
        function = exported.loaded.signatures[name]
        _, input_specs = function.structured_input_signature
        assert {
            key: (spec.dtype, spec.shape.as_list()) for key, spec in input_specs.items()
        } == inputs
        assert {
            key: (spec.dtype, spec.shape.as_list())
            for key, spec in function.structured_outputs.items()
        } == _outputs(exported.spec.num_classes)


def test_raw_and_examples_signatures_answer_as_the_keras_model(exported):
    expected = _keras_probabilities(exported)
    raw = _ask(exported, "serving_raw")
    by_examples = _ask(exported, "serving_default")
    for key in ("class_ids", "probabilities", "class_names"):
        np.testing.assert_array_equal(raw[key], by_examples[key])
    np.testing.assert_allclose(raw["probabilities"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(raw["class_ids"], expected.argmax(axis=1))
    assert [name.decode() for name in raw["class_names"]] == [
        exported.spec.class_names[index] for index in expected.argmax(axis=1)
    ]
    # The rows are not all of one class, or the comparison would prove little.
    assert len(set(raw["probabilities"][:, 0].round(4))) > len(exported.rows) // 2


def test_probabilities_sum_to_one_for_every_row(exported):
    probabilities = _ask(exported, "serving_raw")["probabilities"]
    assert probabilities.shape == (len(exported.rows), exported.spec.num_classes)
    assert (probabilities >= 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)


def test_an_empty_batch_gets_empty_outputs(exported):
    outputs = _ask(exported, "serving_raw", rows=[])
    assert outputs["probabilities"].shape == (0, exported.spec.num_classes)
    assert outputs["class_names"].shape == (0,)


def test_the_warmup_requests_succeed_and_the_ops_are_stock(exported):
    assert serving_checks.replay_warmup(exported.export_dir) == 2
    serving_checks.check_ops(exported.export_dir)
