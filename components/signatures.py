"""Serving signatures of the exported SavedModel.

Two signatures, pinned by tests:
  serving_default  examples: string [batch], serialized tf.Example (TFMA and
                   gRPC clients that already hold tf.Examples use it).
  serving_images   images: float32 [batch, 28, 28], raw pixel values 0..255
                   (REST clients send plain JSON numbers).
Both return class_ids (int64 [batch]), probabilities (float32 [batch, classes])
and class_names (string [batch]).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from components import features

SERVING_DEFAULT = "serving_default"
SERVING_IMAGES = "serving_images"
EXAMPLES_INPUT = "examples"
IMAGES_INPUT = "images"
CLASS_IDS_OUTPUT = "class_ids"
PROBABILITIES_OUTPUT = "probabilities"
CLASS_NAMES_OUTPUT = "class_names"


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

    return {
        SERVING_DEFAULT: serve_examples.get_concrete_function(),
        SERVING_IMAGES: serve_images.get_concrete_function(),
    }


def export_serving_model(model: keras.Model, export_dir: str, class_names) -> None:
    """Saves the model as a SavedModel with the serving signatures."""
    model.save(
        export_dir,
        save_format="tf",
        signatures=make_signatures(model, class_names),
        include_optimizer=False,
    )
