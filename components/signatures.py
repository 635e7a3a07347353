"""Serving signatures of the exported SavedModel, and its warm-up requests.

Image models get three signatures, pinned by tests:
  serving_default  examples: string [batch], serialized tf.Example (TFMA and
                   gRPC clients that already hold tf.Examples use it).
  serving_images   images: float32 [batch, 28, 28], raw pixel values 0..255
                   (REST clients send plain JSON numbers).
  serving_png      image_bytes: string [batch], encoded 28x28 grayscale PNG
                   (REST clients send {"b64": ...}).
Table models get two:
  serving_default  examples: string [batch], serialized tf.Example.
  serving_raw      one input per feature column, [batch] each: float32,
                   int64 or string (REST: {"instances": [{...}]}).
Each returns class_ids (int64 [batch]), probabilities (float32 [batch, classes])
and class_names (string [batch]). A binary model's single sigmoid becomes the
two probabilities [1 - p, p], so every model answers in the same shape.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from components import data_spec, features

SERVING_DEFAULT = "serving_default"
SERVING_IMAGES = "serving_images"
SERVING_PNG = "serving_png"
SERVING_RAW = "serving_raw"
SIGNATURE_NAMES = (SERVING_DEFAULT, SERVING_IMAGES, SERVING_PNG)
TABULAR_SIGNATURE_NAMES = (SERVING_DEFAULT, SERVING_RAW)
EXAMPLES_INPUT = "examples"
IMAGES_INPUT = "images"
# TF Serving's REST API decodes {"b64": ...} for any string input; the
# "_bytes" suffix is the name clients conventionally look for.
PNG_INPUT = "image_bytes"
CLASS_IDS_OUTPUT = "class_ids"
PROBABILITIES_OUTPUT = "probabilities"
CLASS_NAMES_OUTPUT = "class_names"

# TF Serving replays this file when it loads a version, so the first real
# request does not pay for graph initialisation.
WARMUP_FOLDER = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"


def _image_feature_spec() -> dict[str, tf.io.FixedLenFeature]:
    return {
        features.IMAGE_KEY: tf.io.FixedLenFeature([features.IMAGE_PIXELS], tf.int64)
    }


def make_signatures(
    model: keras.Model, class_names
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """Builds the serving signatures around a model that maps pixels to softmax."""
    names = tf.constant(list(class_names))

    def predict(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        pixels = tf.cast(pixels, tf.float32)
        # Convolutions reject an empty batch; answer it with empty outputs.
        probabilities = tf.cond(
            tf.shape(pixels)[0] > 0,
            lambda: model(pixels, training=False),
            lambda: tf.zeros([0, len(class_names)], tf.float32),
        )
        class_ids = tf.argmax(probabilities, axis=-1)
        return {
            CLASS_IDS_OUTPUT: class_ids,
            PROBABILITIES_OUTPUT: probabilities,
            CLASS_NAMES_OUTPUT: tf.gather(names, class_ids),
        }

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)]
    )
    def serve_examples(examples):
        parsed = tf.io.parse_example(examples, _image_feature_spec())
        return predict(parsed[features.IMAGE_KEY])

    @tf.function(
        input_signature=[
            tf.TensorSpec(
                [None, features.IMAGE_HEIGHT, features.IMAGE_WIDTH],
                tf.float32,
                name=IMAGES_INPUT,
            )
        ]
    )
    def serve_images(images):
        # A loaded signature does not check the caller's shape; without this a
        # single [28, 28] image would be silently reshaped into a batch.
        images = tf.ensure_shape(
            images, [None, features.IMAGE_HEIGHT, features.IMAGE_WIDTH]
        )
        return predict(tf.reshape(images, [-1, features.IMAGE_PIXELS]))

    def decode_png(encoded: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_png(encoded, channels=1)
        size = tf.shape(image)[:2]
        check = tf.debugging.assert_equal(
            size,
            tf.constant([features.IMAGE_HEIGHT, features.IMAGE_WIDTH]),
            message=(
                f"{PNG_INPUT}: each image must be a "
                f"{features.IMAGE_HEIGHT}x{features.IMAGE_WIDTH} PNG; height, width ="
            ),
        )
        with tf.control_dependencies([check]):
            return tf.reshape(image, [features.IMAGE_PIXELS])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=PNG_INPUT)])
    def serve_png(image_bytes):
        pixels = tf.map_fn(
            decode_png,
            image_bytes,
            fn_output_signature=tf.TensorSpec([features.IMAGE_PIXELS], tf.uint8),
        )
        return predict(pixels)

    return {
        SERVING_DEFAULT: serve_examples.get_concrete_function(),
        SERVING_IMAGES: serve_images.get_concrete_function(),
        SERVING_PNG: serve_png.get_concrete_function(),
    }


def class_probabilities(outputs: tf.Tensor) -> tf.Tensor:
    """[batch, classes] probabilities; one sigmoid unit p becomes [1 - p, p]."""
    if outputs.shape[-1] == 1:
        return tf.concat([1.0 - outputs, outputs], axis=-1)
    return outputs


def make_tabular_signatures(
    model: keras.Model, spec: data_spec.DataSpec
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """serving_default and serving_raw around a model that takes a column dict."""
    names = tf.constant(list(spec.class_names))

    def predict(columns: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        inputs = {}
        for column in spec.columns:
            value = tf.reshape(columns[column.name], [-1, 1])
            inputs[column.name] = tf.cast(value, data_spec.INPUT_DTYPES[column.kind])
        probabilities = class_probabilities(model(inputs, training=False))
        class_ids = tf.argmax(probabilities, axis=-1)
        return {
            CLASS_IDS_OUTPUT: class_ids,
            PROBABILITIES_OUTPUT: probabilities,
            CLASS_NAMES_OUTPUT: tf.gather(names, class_ids),
        }

    feature_spec = {
        column.name: tf.io.FixedLenFeature([1], data_spec.INPUT_DTYPES[column.kind])
        for column in spec.columns
    }

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)]
    )
    def serve_examples(examples):
        return predict(tf.io.parse_example(examples, feature_spec))

    raw_specs = {
        column.name: tf.TensorSpec(
            [None], data_spec.INPUT_DTYPES[column.kind], name=column.name
        )
        for column in spec.columns
    }
    serve_raw = tf.function(lambda **columns: predict(columns)).get_concrete_function(
        **raw_specs
    )
    return {
        SERVING_DEFAULT: serve_examples.get_concrete_function(),
        SERVING_RAW: serve_raw,
    }


def warmup_images() -> np.ndarray:
    """Two deterministic images, uint8 [2, 28, 28]: blank and a diagonal ramp."""
    rows, columns = np.indices((features.IMAGE_HEIGHT, features.IMAGE_WIDTH))
    ramp = (
        (rows + columns)
        * features.PIXEL_MAX
        // (features.IMAGE_HEIGHT + features.IMAGE_WIDTH - 2)
    )
    return np.stack([np.zeros_like(ramp), ramp]).astype(np.uint8)


def example_bytes(image: np.ndarray) -> bytes:
    """A serialized tf.Example holding one image, as serving_default takes it."""
    example = tf.train.Example()
    example.features.feature[features.IMAGE_KEY].int64_list.value.extend(
        np.asarray(image, np.int64).ravel().tolist()
    )
    return example.SerializeToString()


def row_example_bytes(row: dict, spec: data_spec.DataSpec) -> bytes:
    """A serialized tf.Example holding one table row (no label needed)."""
    example = tf.train.Example()
    for column in spec.columns:
        feature = example.features.feature[column.name]
        value = row[column.name]
        if column.kind == data_spec.STRING:
            feature.bytes_list.value.append(str(value).encode("utf-8"))
        elif column.kind == data_spec.INT:
            feature.int64_list.value.append(int(value))
        else:
            feature.float_list.value.append(float(value))
    return example.SerializeToString()


def png_bytes(image: np.ndarray) -> bytes:
    """One [28, 28] uint8 image encoded as a grayscale PNG."""
    return tf.io.encode_png(np.asarray(image, np.uint8)[..., np.newaxis]).numpy()


def request_inputs(signature_name: str, images: np.ndarray) -> dict[str, tf.Tensor]:
    """The input tensors that ask a signature about a batch of uint8 images."""
    if signature_name == SERVING_DEFAULT:
        return {EXAMPLES_INPUT: tf.constant([example_bytes(image) for image in images])}
    if signature_name == SERVING_IMAGES:
        return {IMAGES_INPUT: tf.constant(images, tf.float32)}
    if signature_name == SERVING_PNG:
        return {PNG_INPUT: tf.constant([png_bytes(image) for image in images])}
    raise ValueError(
        f"unknown signature {signature_name!r}; expected one of {SIGNATURE_NAMES}"
    )


def table_request_inputs(
    signature_name: str, rows: list[dict], spec: data_spec.DataSpec
) -> dict[str, tf.Tensor]:
    """The input tensors that ask a table model's signature about rows."""
    if signature_name == SERVING_DEFAULT:
        return {
            EXAMPLES_INPUT: tf.constant([row_example_bytes(row, spec) for row in rows])
        }
    if signature_name == SERVING_RAW:
        return {
            column.name: tf.constant(
                [row[column.name] for row in rows], data_spec.INPUT_DTYPES[column.kind]
            )
            for column in spec.columns
        }
    raise ValueError(
        f"unknown signature {signature_name!r}; expected one of "
        f"{TABULAR_SIGNATURE_NAMES}"
    )


def warmup_rows(spec: data_spec.DataSpec) -> list[dict]:
    """Two rows: every column 0, then every column 1 (text "0" and "1")."""
    return [
        {
            column.name: str(value) if column.kind == data_spec.STRING else value
            for column in spec.columns
        }
        for value in (0, 1)
    ]


def warmup_path(export_dir: str) -> str:
    return os.path.join(export_dir, WARMUP_FOLDER, WARMUP_FILE)


def _warmup_requests(spec: data_spec.DataSpec):
    if spec.kind == data_spec.IMAGE:
        images = warmup_images()
        for name in SIGNATURE_NAMES:
            yield name, request_inputs(name, images)
    else:
        rows = warmup_rows(spec)
        for name in TABULAR_SIGNATURE_NAMES:
            yield name, table_request_inputs(name, rows, spec)


def write_warmup_requests(
    export_dir: str, spec: data_spec.DataSpec = data_spec.FASHION_MNIST
) -> str:
    """Writes one PredictionLog per signature into the SavedModel's assets.extra.

    Returns:
      The path of the warm-up file.
    """
    path = warmup_path(export_dir)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in _warmup_requests(spec):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(signature_name=signature_name)
            )
            for key, tensor in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(tensor))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def export_serving_model(
    model: keras.Model, export_dir: str, spec: data_spec.DataSpec | Sequence[str]
) -> None:
    """Saves the model as a SavedModel with the serving signatures and warm-up.

    Args:
      model: the trained model.
      export_dir: the SavedModel folder to write.
      spec: the data set's spec; a list of class names stands for an image
        data set with those classes.
    """
    if not isinstance(spec, data_spec.DataSpec):
        spec = dataclasses.replace(data_spec.FASHION_MNIST, class_names=tuple(spec))
    if spec.kind == data_spec.IMAGE:
        serving_signatures = make_signatures(model, spec.class_names)
    else:
        serving_signatures = make_tabular_signatures(model, spec)
    model.save(
        export_dir,
        save_format="tf",
        signatures=serving_signatures,
        include_optimizer=False,
    )
    write_warmup_requests(export_dir, spec)
