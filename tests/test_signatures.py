"""The exported SavedModel's signatures: names, dtypes and shapes are pinned,
and predictions through each equal the Keras model's."""

import numpy as np
import pytest
import tensorflow as tf

from components import features, models, signatures
from components.idx_example_gen import to_example

# The serving contract. Changing it breaks every client: change it on purpose.
PINNED_INPUTS = {
    "serving_default": {"examples": (tf.string, [None])},
    "serving_images": {"images": (tf.float32, [None, 28, 28])},
    "serving_png": {"image_bytes": (tf.string, [None])},
}
PINNED_OUTPUTS = {
    "class_ids": (tf.int64, [None]),
    "probabilities": (tf.float32, [None, 10]),
    "class_names": (tf.string, [None]),
}


@pytest.fixture(scope="module", params=sorted(models.PRESETS))
def exported(request, tmp_path_factory, fashion_mnist):
    tf.keras.utils.set_random_seed(0)
    model = models.build(request.param, features.NUM_CLASSES)
    export_dir = str(tmp_path_factory.mktemp("model") / "Format-Serving")
    signatures.export_serving_model(model, export_dir, features.CLASS_NAMES)
    images, labels = fashion_mnist
    loaded = tf.saved_model.load(export_dir)
    return model, loaded, images[:100], labels[:100], export_dir


def test_signature_names_inputs_and_outputs_are_pinned(exported):
    _, loaded, _, _, _ = exported
    assert set(loaded.signatures) == set(PINNED_INPUTS)
    for name, inputs in PINNED_INPUTS.items():
        function = loaded.signatures[name]
        _, input_specs = function.structured_input_signature
        assert {
            key: (spec.dtype, spec.shape.as_list()) for key, spec in input_specs.items()
        } == inputs
        outputs = function.structured_outputs
        assert {
            key: (spec.dtype, spec.shape.as_list()) for key, spec in outputs.items()
        } == PINNED_OUTPUTS


def test_every_signature_equals_the_keras_model(exported):
    model, loaded, images, _, _ = exported
    expected = model.predict(images.reshape(-1, 784).astype(np.float32), verbose=0)
    serialized = tf.constant(
        [
            to_example(image.ravel(), label).SerializeToString()
            for image, label in zip(images, range(100), strict=True)
        ]
    )
    by_examples = loaded.signatures["serving_default"](examples=serialized)
    by_images = loaded.signatures["serving_images"](
        images=tf.constant(images, tf.float32)
    )
    by_png = loaded.signatures["serving_png"](
        image_bytes=tf.constant([signatures.png_bytes(image) for image in images])
    )
    for outputs in (by_examples, by_images, by_png):
        np.testing.assert_allclose(
            outputs["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6
        )
        np.testing.assert_array_equal(
            outputs["class_ids"].numpy(), expected.argmax(axis=1)
        )
        names = [name.decode() for name in outputs["class_names"].numpy()]
        assert names == [
            features.CLASS_NAMES[index] for index in expected.argmax(axis=1)
        ]


def test_examples_signature_needs_no_label(exported):
    _, loaded, images, _, _ = exported
    unlabeled = tf.train.Example()
    unlabeled.features.feature["image"].int64_list.value.extend(
        images[0].ravel().tolist()
    )
    outputs = loaded.signatures["serving_default"](
        examples=tf.constant([unlabeled.SerializeToString()])
    )
    assert outputs["class_ids"].shape == (1,)


def test_an_image_without_the_batch_level_is_refused(exported):
    _, loaded, images, _, _ = exported
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"\[28,28\].*\[\?,28,28\]"
    ):
        loaded.signatures["serving_images"](images=tf.constant(images[0], tf.float32))


def test_a_27_pixel_wide_image_is_refused(exported):
    _, loaded, images, _, _ = exported
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        loaded.signatures["serving_images"](
            images=tf.constant(images[:2, :, :27], tf.float32)
        )


def test_an_empty_batch_gets_empty_outputs(exported):
    _, loaded, _, _, _ = exported
    outputs = loaded.signatures["serving_images"](images=tf.zeros([0, 28, 28]))
    assert outputs["probabilities"].shape == (0, 10)
    assert outputs["class_ids"].shape == (0,)
    outputs = loaded.signatures["serving_default"](examples=tf.constant([], tf.string))
    assert outputs["class_names"].shape == (0,)


def test_a_png_of_the_wrong_size_is_refused_with_its_size(exported):
    _, loaded, images, _, _ = exported
    wrong = signatures.png_bytes(images[0][:, :27])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"28x28 PNG.*\[28 27\]"):
        loaded.signatures["serving_png"](
            image_bytes=tf.constant([signatures.png_bytes(images[1]), wrong])
        )


def test_bytes_that_are_not_a_png_are_refused(exported):
    _, loaded, _, _, _ = exported
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures["serving_png"](image_bytes=tf.constant([b"not an image"]))


def test_the_warmup_file_asks_every_signature_and_each_request_succeeds(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    _, loaded, _, _, export_dir = exported
    path = signatures.warmup_path(export_dir)
    asked = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](
            **{key: tf.constant(value) for key, value in inputs.items()}
        )
        assert outputs["class_ids"].shape == (2,)
        asked.append(request.model_spec.signature_name)
    assert sorted(asked) == sorted(PINNED_INPUTS)
