"""What a data set looks like to the pipeline: format, label, classes, features.

Built-in data sets have a spec here; a user's own CSV or TFRecord data gets one
from the config. The ExampleGen, the Trainer, the signatures and the Evaluator
all read the same spec, so a feature is named and typed in one place.
"""

from __future__ import annotations

import dataclasses
import re

import tensorflow as tf

from components import features, tabular_data

IDX = "idx"
CSV = "csv"
TFRECORD = "tfrecord"
FORMATS = (IDX, CSV, TFRECORD)

IMAGE = "image"
TABULAR = "tabular"

FLOAT = "float"
INT = "int"
STRING = "string"
COLUMN_KINDS = (FLOAT, INT, STRING)
# Column names become signature input names and Keras layer names.
_COLUMN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# How each kind is parsed from a tf.Example and fed to a model.
INPUT_DTYPES = {FLOAT: tf.float32, INT: tf.int64, STRING: tf.string}


@dataclasses.dataclass(frozen=True)
class FeatureColumn:
    """One input column of a table: its name and kind (float, int or string)."""

    name: str
    kind: str

    def __post_init__(self):
        if not _COLUMN_NAME.fullmatch(self.name):
            raise ValueError(
                f"column {self.name!r}: a name is letters, digits and _, "
                "starting with a letter"
            )
        if self.kind not in COLUMN_KINDS:
            raise ValueError(
                f"column {self.name!r}: kind {self.kind!r} is not one of "
                f"{list(COLUMN_KINDS)}"
            )

    @classmethod
    def parse(cls, text: str) -> FeatureColumn:
        """Reads "name:kind"; a bare name is a float column."""
        name, _, kind = text.partition(":")
        return cls(name.strip(), (kind or FLOAT).strip())

    def __str__(self) -> str:
        return f"{self.name}:{self.kind}"


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A data set's format, label, class names and feature columns.

    Attributes:
      name: the data set's name; the schema folder and serving model use it.
      format: idx, csv or tfrecord.
      label_key: the label column; its values are class ids 0..n-1, or class
        names in a CSV file.
      class_names: one name per class id.
      columns: the feature columns of a table; empty for images.
    """

    name: str
    format: str
    label_key: str
    class_names: tuple[str, ...]
    columns: tuple[FeatureColumn, ...] = ()

    @property
    def kind(self) -> str:
        """IDX files, and TFRecord files described without columns, are images.

        TFRecord images are tf.Examples with `image` (784 int64 pixel values)
        and the label, as the IDX ExampleGen writes them.
        """
        if self.format == IDX or (self.format == TFRECORD and not self.columns):
            return IMAGE
        return TABULAR

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def binary(self) -> bool:
        return self.num_classes == 2

    @property
    def feature_names(self) -> tuple[str, ...]:
        if self.kind == IMAGE:
            return (features.IMAGE_KEY,)
        return tuple(column.name for column in self.columns)

    def to_json_dict(self) -> dict:
        return {
            "name": self.name,
            "format": self.format,
            "label_key": self.label_key,
            "class_names": list(self.class_names),
            "columns": [str(column) for column in self.columns],
        }

    @classmethod
    def from_json_dict(cls, values: dict) -> DataSpec:
        return cls(
            name=values["name"],
            format=values["format"],
            label_key=values["label_key"],
            class_names=tuple(values["class_names"]),
            columns=tuple(FeatureColumn.parse(text) for text in values["columns"]),
        )


FASHION_MNIST = DataSpec(
    name="fashion_mnist",
    format=IDX,
    label_key=features.LABEL_KEY,
    class_names=features.CLASS_NAMES,
)
CIRCLES = DataSpec(
    name="circles",
    format=CSV,
    label_key=tabular_data.LABEL_KEY,
    class_names=tabular_data.CIRCLES_CLASS_NAMES,
    columns=tuple(FeatureColumn(name, FLOAT) for name in tabular_data.CIRCLES_FEATURES),
)
BREAST_CANCER = DataSpec(
    name="breast_cancer",
    format=CSV,
    label_key=tabular_data.LABEL_KEY,
    class_names=tabular_data.BREAST_CANCER_CLASS_NAMES,
    columns=tuple(
        FeatureColumn(name, FLOAT) for name in tabular_data.BREAST_CANCER_FEATURES
    ),
)

BUILTIN = {spec.name: spec for spec in (FASHION_MNIST, CIRCLES, BREAST_CANCER)}
