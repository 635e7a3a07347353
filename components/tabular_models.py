"""Keras presets for tabular data: one input per column, preprocessing inside.

Numeric columns are normalised and string columns one-hot encoded by layers
adapted on the training data, so a served model takes raw values. Inputs are
[batch, 1] each: float32 for "float" columns, int64 for "int" columns (as
tf.Example parsing gives them; the model casts them to float32 itself) and
tf.string for "string" columns. A binary model ends in one sigmoid unit, the
probability of class 1; a model of more classes ends in a softmax.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from components import data_spec

layers = keras.layers

# Column kinds and dtypes are the data spec's; named here for readability.
FeatureColumn = data_spec.FeatureColumn
STRING = data_spec.STRING
INPUT_DTYPES = data_spec.INPUT_DTYPES

PRESETS = ("seed_linear", "seed_nonlinear", "tabular")
OPTIMIZERS = ("adam", "sgd")

BINARY_OUTPUT = "positive_probability"
MULTICLASS_OUTPUT = "probabilities"


TrainFeatures = Mapping[str, np.ndarray] | tf.data.Dataset


def _column_data(train_features: TrainFeatures, column: FeatureColumn):
    """The training values of one column, shaped for adapting a layer.

    A numpy column comes back as an array; a dataset column as a dataset of
    batches of the same column.
    """
    if isinstance(train_features, tf.data.Dataset):
        spec = train_features.element_spec
        # A dataset of (features, label) pairs, as fit takes it, is accepted too.
        if isinstance(spec, tuple):
            train_features = train_features.map(lambda features, *_: features)
            spec = spec[0]
        if column.name not in spec:
            raise ValueError(
                f"feature column {column.name!r} is not in the training data, "
                f"which holds {sorted(spec)}"
            )
        dtype = spec[column.name].dtype
        if (column.kind == STRING) != (dtype == tf.string):
            raise ValueError(
                f"feature column {column.name!r} is declared {column.kind!r} but "
                f"its training data is {dtype.name}"
            )
        if column.kind == STRING:
            return train_features.map(lambda features: features[column.name])
        return train_features.map(
            lambda features: tf.reshape(
                tf.cast(features[column.name], tf.float32), [-1, 1]
            )
        )
    if column.name not in train_features:
        raise ValueError(
            f"feature column {column.name!r} is not in the training data, "
            f"which holds {sorted(train_features)}"
        )
    values = np.asarray(train_features[column.name])
    is_text = values.dtype.kind in "OSU"
    if (column.kind == STRING) != is_text:
        raise ValueError(
            f"feature column {column.name!r} is declared {column.kind!r} but its "
            f"training data is {values.dtype}"
        )
    if values.size == 0:
        raise ValueError(f"feature column {column.name!r}: no training values")
    if column.kind == STRING:
        return values.astype(str).reshape(-1)
    return values.astype(np.float32).reshape(-1, 1)


def _encoded_column(column: FeatureColumn, train_features: TrainFeatures):
    """The column's Input and its encoded [batch, width] float32 tensor."""
    inputs = keras.Input(shape=(1,), dtype=INPUT_DTYPES[column.kind], name=column.name)
    data = _column_data(train_features, column)
    if column.kind == STRING:
        # One out-of-vocabulary index: a value unseen in training gets its own
        # one-hot position instead of failing the request.
        lookup = layers.StringLookup(
            num_oov_indices=1, output_mode="one_hot", name=f"{column.name}_one_hot"
        )
        lookup.adapt(data)
        return inputs, lookup(inputs)
    # Normalization casts an int64 input to float32 before it scales it.
    normalization = layers.Normalization(axis=-1, name=f"{column.name}_normalized")
    normalization.adapt(data)
    return inputs, normalization(inputs)


def _output_layer(num_classes: int) -> layers.Layer:
    if num_classes == 2:
        return layers.Dense(1, activation="sigmoid", name=BINARY_OUTPUT)
    return layers.Dense(num_classes, activation="softmax", name=MULTICLASS_OUTPUT)


def _seed_linear(x):
    # No activation anywhere before the output: the stack is one linear map,
    # however many layers it has.
    x = layers.Dense(100)(x)
    return layers.Dense(10)(x)


def _seed_nonlinear(x):
    # With zero biases about one seed in ten stalled near chance on the
    # circles: units of these four-unit layers died in the first steps. Biases
    # starting at 0.3 keep every unit active at first.
    bias = keras.initializers.Constant(0.3)
    x = layers.Dense(4, activation="relu", bias_initializer=bias)(x)
    return layers.Dense(4, activation="relu", bias_initializer=bias)(x)


def _tabular(x):
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.2)(x)
    return layers.Dense(32, activation="relu")(x)


_BODIES: dict[str, Callable] = {
    "seed_linear": _seed_linear,
    "seed_nonlinear": _seed_nonlinear,
    "tabular": _tabular,
}


def build(
    preset: str,
    columns: Sequence[FeatureColumn],
    num_classes: int,
    train_features: TrainFeatures,
) -> keras.Model:
    """Builds an uncompiled model from a preset, adapting its preprocessing.

    Args:
      preset: one of PRESETS. "seed_linear": Dense(100) -> Dense(10), no
        activations, so it can only draw a straight boundary; "seed_nonlinear":
        Dense(4, relu) -> Dense(4, relu); "tabular": Dense(64, relu) ->
        Dropout(0.2) -> Dense(32, relu).
      columns: the input columns; their encodings are concatenated in this order.
      num_classes: 2 gives one sigmoid output (the probability of class 1),
        more a softmax over the classes.
      train_features: the training data the normalisation and vocabularies are
        adapted on: a dict of column name -> array, or a batched tf.data.Dataset
        of such dicts (or of (dict, label) pairs).
    """
    if preset not in _BODIES:
        raise ValueError(
            f"unknown tabular model preset {preset!r}; choose one of {PRESETS}"
        )
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if not columns:
        raise ValueError("columns: a model needs at least one feature column")
    names = [column.name for column in columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"feature columns {repeated} are given more than once")
    inputs = {}
    encoded = []
    for column in columns:
        inputs[column.name], column_tensor = _encoded_column(column, train_features)
        encoded.append(column_tensor)
    x = encoded[0] if len(encoded) == 1 else layers.Concatenate()(encoded)
    outputs = _output_layer(num_classes)(_BODIES[preset](x))
    return keras.Model(inputs, outputs, name=preset)


def compile_model(
    model: keras.Model,
    num_classes: int,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
) -> None:
    """Compiles with the loss and accuracy that match the model's output.

    Binary: binary cross-entropy on the sigmoid probability and accuracy at the
    0.5 threshold. More classes: sparse categorical cross-entropy and accuracy.
    The accuracy metric is named "accuracy" either way, as in the image trainer.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    if num_classes == 2:
        loss = keras.losses.BinaryCrossentropy()
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(
        optimizer=optimizers[optimizer](learning_rate=learning_rate),
        loss=loss,
        metrics=[accuracy],
    )


def class_probabilities(outputs) -> tf.Tensor:
    """Every model's output as probabilities [batch, num_classes].

    A binary model's sigmoid output p [batch, 1] becomes [1 - p, p]; a softmax
    output is returned as it is.
    """
    outputs = tf.convert_to_tensor(outputs)
    width = outputs.shape[-1]
    if width is None:
        raise ValueError("model outputs need a known last dimension")
    if width == 1:
        return tf.concat([1.0 - outputs, outputs], axis=-1)
    return outputs
