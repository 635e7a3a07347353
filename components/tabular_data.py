"""Built-in tabular data sets written as CSV: two concentric circles, breast cancer.

Each is written as `<folder>/train/data.csv` and `<folder>/eval/data.csv`, with a
header line, one feature per column and an integer `label` column; the same
call always writes the same bytes.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn import datasets

LABEL_KEY = "label"
TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"
SPLITS = (TRAIN_SPLIT, EVAL_SPLIT)
CSV_FILE = "data.csv"
TRAIN_FRACTION = 0.8

CIRCLES_FEATURES = ("x", "y")
CIRCLES_CLASS_NAMES = ("outer", "inner")
CIRCLES_POINTS = 1000
CIRCLES_NOISE = 0.05
CIRCLES_SEED = 0
# The inner circle's radius as a fraction of the outer one's (which is 1).
CIRCLES_INNER_RADIUS = 0.5

BREAST_CANCER_SEED = 0
BREAST_CANCER_CLASS_NAMES = ("malignant", "benign")


def safe_feature_name(raw_name: str) -> str:
    """Lowercase, with every run of other characters than a-z, 0-9 as `_`."""
    name = re.sub(r"[^a-z0-9]+", "_", raw_name.strip().lower()).strip("_")
    if not name or not name[0].isalpha():
        raise ValueError(
            f"column name {raw_name!r} does not give a feature name starting "
            "with a letter"
        )
    return name


BREAST_CANCER_FEATURES = (
    "mean_radius",
    "mean_texture",
    "mean_perimeter",
    "mean_area",
    "mean_smoothness",
    "mean_compactness",
    "mean_concavity",
    "mean_concave_points",
    "mean_symmetry",
    "mean_fractal_dimension",
    "radius_error",
    "texture_error",
    "perimeter_error",
    "area_error",
    "smoothness_error",
    "compactness_error",
    "concavity_error",
    "concave_points_error",
    "symmetry_error",
    "fractal_dimension_error",
    "worst_radius",
    "worst_texture",
    "worst_perimeter",
    "worst_area",
    "worst_smoothness",
    "worst_compactness",
    "worst_concavity",
    "worst_concave_points",
    "worst_symmetry",
    "worst_fractal_dimension",
)


def split_paths(folder: str) -> dict[str, str]:
    """The CSV file of each split under `folder`, keyed by split name."""
    return {split: os.path.join(folder, split, CSV_FILE) for split in SPLITS}


def _csv_text(
    header: Sequence[str], values: np.ndarray, labels: np.ndarray, float_format
) -> str:
    lines = [",".join([*header, LABEL_KEY])]
    for row, label in zip(values, labels, strict=True):
        lines.append(",".join([*map(float_format, row), str(int(label))]))
    return "\n".join(lines) + "\n"


def _write_if_changed(path: str, text: str) -> None:
    """Writes `text` to `path` unless it already holds exactly that.

    An unchanged file keeps its modification time, so a pipeline reading the
    folder sees the same input; a changed one is replaced in one rename, so a
    reader never sees half a file.
    """
    content = text.encode("utf-8")
    try:
        with open(path, "rb") as existing:
            if existing.read() == content:
                return
    except FileNotFoundError:
        pass
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".data-", suffix=".csv")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _write_splits(
    folder: str,
    header: Sequence[str],
    values: np.ndarray,
    labels: np.ndarray,
    float_format,
) -> dict[str, str]:
    """Writes the first TRAIN_FRACTION of the rows as train, the rest as eval."""
    train_rows = int(len(values) * TRAIN_FRACTION)
    paths = split_paths(folder)
    rows = {
        TRAIN_SPLIT: slice(0, train_rows),
        EVAL_SPLIT: slice(train_rows, len(values)),
    }
    for split, path in paths.items():
        _write_if_changed(
            path,
            _csv_text(header, values[rows[split]], labels[rows[split]], float_format),
        )
    return paths


def _six_decimals(value: float) -> str:
    return f"{value:.6f}"


def write_circles(
    folder: str,
    n_points: int = CIRCLES_POINTS,
    noise: float = CIRCLES_NOISE,
    seed: int = CIRCLES_SEED,
) -> dict[str, str]:
    """Writes two noisy concentric circles: a binary task no straight line solves.

    The outer circle (radius 1) is label 0 "outer", the inner one (radius 0.5)
    label 1 "inner"; each point gets Gaussian noise of standard deviation
    `noise` on each coordinate. The points come shuffled, so the 80/20 split
    holds both classes in about equal numbers.

    Args:
      folder: where `train/data.csv` and `eval/data.csv` go.
      n_points: points in all; with the default 1000, 800 train and 200 eval.
      noise: standard deviation of the noise added to each coordinate.
      seed: seed of the points and their order.

    Returns:
      The path of each split's CSV file, keyed by split name.
    """
    if n_points < 5:
        raise ValueError(f"n_points must be at least 5, got {n_points}")
    if not noise >= 0:
        raise ValueError(f"noise must be 0 or more, got {noise}")
    points, labels = datasets.make_circles(
        n_samples=n_points,
        shuffle=True,
        noise=noise,
        random_state=seed,
        factor=CIRCLES_INNER_RADIUS,
    )
    # Six decimals are far finer than the noise and keep the file stable
    # across platforms' float formatting.
    return _write_splits(folder, CIRCLES_FEATURES, points, labels, _six_decimals)


def write_breast_cancer(folder: str) -> dict[str, str]:
    """Writes scikit-learn's bundled Wisconsin breast-cancer table (569 rows).

    30 float features named as in BREAST_CANCER_FEATURES; label 0 is
    "malignant", 1 "benign". The rows are shuffled with a fixed seed, then
    split 80/20 (455 train, 114 eval).

    Returns:
      The path of each split's CSV file, keyed by split name.
    """
    bunch = datasets.load_breast_cancer()
    names = tuple(safe_feature_name(name) for name in bunch.feature_names)
    if names != BREAST_CANCER_FEATURES:
        raise ValueError(
            "scikit-learn's breast-cancer columns changed: expected "
            f"{BREAST_CANCER_FEATURES}, got {names}"
        )
    if tuple(bunch.target_names) != BREAST_CANCER_CLASS_NAMES:
        raise ValueError(
            "scikit-learn's breast-cancer classes changed: expected "
            f"{BREAST_CANCER_CLASS_NAMES}, got {tuple(bunch.target_names)}"
        )
    order = np.random.default_rng(BREAST_CANCER_SEED).permutation(len(bunch.target))
    # repr gives the shortest text that reads back as the same float, so the
    # table's values are kept exactly.
    return _write_splits(
        folder,
        names,
        bunch.data[order],
        bunch.target[order],
        lambda value: repr(float(value)),
    )


BUILTIN_WRITERS = {
    "breast_cancer": write_breast_cancer,
    "circles": write_circles,
}
BUILTIN_NAMES = tuple(BUILTIN_WRITERS)


def write_builtin(name: str, folder: str) -> dict[str, str]:
    """Writes the built-in data set `name` under `folder` with its defaults.

    Files that already hold the same content are left alone.

    Returns:
      The path of each split's CSV file, keyed by split name.
    """
    try:
        writer = BUILTIN_WRITERS[name]
    except KeyError:
        raise ValueError(
            f"unknown built-in tabular data set {name!r}; "
            f"choose one of {sorted(BUILTIN_WRITERS)}"
        ) from None
    return writer(folder)


def read_csv(path: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Reads one split's CSV file into feature columns and labels.

    Returns:
      A dict of column name -> array in the file's column order (float columns
      as float32, integer columns as int64, anything else as str), and the
      labels as int64.
    """
    frame = pd.read_csv(path, keep_default_na=False)
    if LABEL_KEY not in frame.columns:
        raise ValueError(f"{path}: no {LABEL_KEY!r} column in {list(frame.columns)}")
    columns = {}
    for name in frame.columns:
        if name == LABEL_KEY:
            continue
        column = frame[name]
        if pd.api.types.is_float_dtype(column):
            columns[name] = column.to_numpy(np.float32)
        elif pd.api.types.is_integer_dtype(column):
            columns[name] = column.to_numpy(np.int64)
        else:
            columns[name] = column.astype(str).to_numpy()
    labels = frame[LABEL_KEY]
    if not pd.api.types.is_integer_dtype(labels):
        raise ValueError(f"{path}: the {LABEL_KEY!r} column must hold integers")
    return columns, labels.to_numpy(np.int64)
