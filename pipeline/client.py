"""Asks a served model about images or table rows: TF Serving over REST or gRPC, or
a SavedModel loaded in this process, behind one interface that reads the model's
metadata first and fills the signature's inputs as it declares them.

Images come from IDX files, PNG or JPEG files, or .npy arrays, as raw pixels 0..255
shaped [28, 28] or [N, 28, 28] (or [N, 784]); a single image is sent as a batch of
one, because the signatures take a batch and refuse an image without one.

Table rows come from CSV files with a header. A table model's serving_raw
signature takes one [batch] input per feature column; each column of that name
is read from the CSV files and converted to the input's declared dtype. Its
serving_default takes serialized tf.Examples, built from the same columns with
the feature types serving_raw declares.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import functools
import io
import math
import os
from collections.abc import Sequence

import numpy as np

from components import features, signatures

DEFAULT_MODEL_NAME = "fashion_mnist"
# The signature asked when none is named: an image model's serving_images, or a
# table model's serving_raw (a model is a table model when it has serving_raw).
DEFAULT_SIGNATURE = signatures.SERVING_IMAGES
DEFAULT_TABLE_SIGNATURE = signatures.SERVING_RAW
DEFAULT_BATCH_SIZE = 64
DEFAULT_TIMEOUT_S = 30.0
IMAGE_SHAPE = (features.IMAGE_HEIGHT, features.IMAGE_WIDTH)
REQUIRED_OUTPUTS = (
    signatures.CLASS_IDS_OUTPUT,
    signatures.PROBABILITIES_OUTPUT,
    signatures.CLASS_NAMES_OUTPUT,
)
# The only metadata field TF Serving answers; it holds the SignatureDefMap.
SIGNATURE_DEF_FIELD = "signature_def"
# SavedModels carry internal signatures such as __saved_model_init_op that no
# client can call; they are left out of the list offered to the user.
_INTERNAL_SIGNATURE_PREFIX = "__"
# -1 in a shape is a dimension of any size, as in TF Serving's metadata.
ANY_SIZE = -1

_NPY_MAGIC = b"\x93NUMPY"
_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UBYTE_MAGIC = b"\x00\x00\x08"


class PredictionError(RuntimeError):
    """The model could not be asked, or refused; the message says why and where."""


class InputError(PredictionError):
    """The files given cannot be read, or hold what the model cannot take."""


class ImageInputError(InputError):
    """An image file cannot be read, or holds images the model cannot take."""


class TableInputError(InputError):
    """A CSV file cannot be read, lacks a column the model takes, or holds a cell
    that cannot be converted to the dtype the model declares for its column."""


# ---------------------------------------------------------------------------
# Images


@dataclasses.dataclass(frozen=True)
class LoadedImages:
    """Images from one or more files, with a label per image saying where it came
    from (`file` for a single image, `file[i]` for the i-th of several)."""

    images: np.ndarray
    sources: tuple[str, ...]
    files: int


def as_image_batch(array, source: str) -> np.ndarray:
    """Checks an array of raw pixels and returns it as a batch [N, 28, 28].

    A [28, 28] array is one image and becomes a batch of one; [N, 784] rows are
    reshaped. Anything else is refused naming the source and the shape found.
    """
    array = np.asarray(array)
    height, width = IMAGE_SHAPE
    if array.shape == IMAGE_SHAPE:
        array = array[np.newaxis]
    elif array.ndim == 2 and array.shape[1] == features.IMAGE_PIXELS:
        array = array.reshape(-1, height, width)
    elif array.ndim != 3 or array.shape[1:] != IMAGE_SHAPE:
        raise ImageInputError(
            f"{source}: found shape {tuple(array.shape)}; expected "
            f"({height}, {width}) for one image, (N, {height}, {width}) or "
            f"(N, {features.IMAGE_PIXELS}) for several"
        )
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
    ):
        raise ImageInputError(
            f"{source}: pixel values must be numbers, found dtype {array.dtype}"
        )
    if len(array) == 0:
        raise ImageInputError(f"{source}: holds no images")
    # The model scales raw pixels itself: values already scaled to 0..1 or
    # standardised would be answered, wrongly, without any error.
    if not np.all(np.isfinite(array)):
        raise ImageInputError(
            f"{source}: pixel values must be finite, found NaN or inf"
        )
    low, high = array.min(), array.max()
    if low < 0 or high > features.PIXEL_MAX:
        raise ImageInputError(
            f"{source}: pixel values must be raw pixels 0..{features.PIXEL_MAX}, "
            f"found {low}..{high}"
        )
    return array


def _read_idx(path: str, limit: int | None) -> np.ndarray:
    from components import idx

    try:
        images = idx.read_array(path, idx.IMAGES_NDIM)
    except idx.IdxFormatError as error:
        raise ImageInputError(str(error)) from error
    return images[:limit] if limit is not None else images


def _read_picture(path: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            return np.asarray(picture.convert("L"))
    except UnidentifiedImageError as error:
        raise ImageInputError(
            f"{path}: not an IDX, PNG, JPEG or .npy file that can be read"
        ) from error
    except OSError as error:
        raise ImageInputError(f"{path}: cannot read the image: {error}") from error


def _read_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ImageInputError(f"{path}: cannot read the .npy array: {error}") from error


def read_image_file(path: str, limit: int | None = None) -> np.ndarray:
    """Reads one file as a batch [N, 28, 28]; `limit` keeps the first N of an IDX.

    The format is told by the file's first bytes, not its name: IDX (plain or
    gzip), .npy, or any picture Pillow reads (PNG, JPEG), made grayscale.
    """
    try:
        with open(path, "rb") as stream:
            head = stream.read(len(_NPY_MAGIC))
    except OSError as error:
        raise ImageInputError(f"{path}: cannot open: {error.strerror}") from error
    if head.startswith(_NPY_MAGIC):
        array = _read_npy(path)
    elif head.startswith((_GZIP_MAGIC, _IDX_UBYTE_MAGIC)):
        array = _read_idx(path, limit)
    else:
        array = _read_picture(path)
    return as_image_batch(array, path)


def load_images(paths: Sequence[str], limit: int | None = None) -> LoadedImages:
    """Reads every file and stacks their images, in the order given."""
    if not paths:
        raise ImageInputError("no image files given")
    batches, sources = [], []
    for path in paths:
        batch = read_image_file(path, limit)
        batches.append(batch)
        if len(batch) == 1:
            sources.append(path)
        else:
            sources.extend(f"{path}[{index}]" for index in range(len(batch)))
    # Files may differ in dtype (uint8 pictures, float .npy); the values are
    # raw pixels in every case, so the common type loses nothing.
    dtype = np.result_type(*(batch.dtype for batch in batches))
    images = np.concatenate([batch.astype(dtype, copy=False) for batch in batches])
    return LoadedImages(images=images, sources=tuple(sources), files=len(paths))


# ---------------------------------------------------------------------------
# Tables

CSV_SUFFIX = ".csv"
STRING_DTYPE = "string"
_FLOAT_DTYPES = ("float16", "float32", "float64")
_INTEGER_DTYPES = (
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
)
# The dtypes a table column can be converted to, one value per row.
COLUMN_DTYPES = (*_FLOAT_DTYPES, *_INTEGER_DTYPES, STRING_DTYPE)


def is_table_file(path: str) -> bool:
    """A table is told by its name: a .csv file (any case)."""
    return path.lower().endswith(CSV_SUFFIX)


@dataclasses.dataclass(frozen=True)
class CsvFile:
    """One CSV file as text: its header and each row with the line it starts on."""

    path: str
    header: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]


@dataclasses.dataclass(frozen=True)
class LoadedTable:
    """Rows from one or more CSV files, in the order given, still as text: the
    model's signature says which columns are needed and what dtype each is."""

    csv_files: tuple[CsvFile, ...]

    def __len__(self) -> int:
        return sum(len(csv_file.rows) for csv_file in self.csv_files)

    @property
    def files(self) -> int:
        return len(self.csv_files)

    @property
    def sources(self) -> tuple[str, ...]:
        """`file:line` for each row, the line the row starts on."""
        return tuple(
            f"{csv_file.path}:{line}"
            for csv_file in self.csv_files
            for line, _ in csv_file.rows
        )


def read_csv_file(path: str, limit: int | None = None) -> CsvFile:
    """Reads a CSV file with a header; `limit` keeps its first N rows.

    Python's csv module parses it, so quoted fields may hold commas, quotes and
    line breaks. Header names are stripped of spaces; blank lines are skipped;
    a row with another number of fields than the header is refused with its
    line number.
    """
    try:
        with open(path, "rb") as stream:
            raw = stream.read()
    except OSError as error:
        raise TableInputError(f"{path}: cannot open: {error.strerror}") from error
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise TableInputError(
            f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8 CSV"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)

    def next_record():
        try:
            return next(reader, None)
        except csv.Error as error:
            raise TableInputError(f"{path} line {reader.line_num}: {error}") from None

    header = next_record()
    if header is None:
        raise TableInputError(f"{path} is empty; expected a header line")
    header = tuple(name.strip() for name in header)
    rows = []
    while limit is None or len(rows) < limit:
        first_line = reader.line_num + 1
        cells = next_record()
        if cells is None:
            break
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise TableInputError(
                f"{path} line {first_line}: {len(cells)} fields where the header "
                f"has {len(header)}"
            )
        rows.append((first_line, tuple(cells)))
    if not rows:
        raise TableInputError(f"{path} has a header but no rows")
    return CsvFile(path=path, header=header, rows=tuple(rows))


def load_tables(paths: Sequence[str], limit: int | None = None) -> LoadedTable:
    """Reads every CSV file, in the order given."""
    if not paths:
        raise TableInputError("no CSV files given")
    return LoadedTable(tuple(read_csv_file(path, limit) for path in paths))


def load_files(
    paths: Sequence[str], limit: int | None = None
) -> LoadedImages | LoadedTable:
    """Image files as LoadedImages, or .csv files as a LoadedTable; not both."""
    tables = [path for path in paths if is_table_file(path)]
    if tables and len(tables) != len(paths):
        others = [path for path in paths if not is_table_file(path)]
        raise InputError(
            f"give either CSV files (for a table model) or image files (for an "
            f"image model), not both: {tables[0]} is a table, {others[0]} is not"
        )
    if tables:
        return load_tables(paths, limit)
    return load_images(paths, limit)


def parse_cell(cell: str, dtype_name: str):
    """One CSV cell as a value of the dtype; ValueError says what is wrong.

    As the CSV ExampleGen reads cells: numbers may have spaces around them, a
    blank or non-finite number is refused, a string is kept as it is.
    """
    if dtype_name == STRING_DTYPE:
        return cell
    text = cell.strip()
    if not text:
        raise ValueError("the cell is blank")
    if dtype_name in _INTEGER_DTYPES:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{cell!r} is not an integer") from None
        limits = np.iinfo(dtype_name)
        if not limits.min <= value <= limits.max:
            raise ValueError(f"{cell!r} is out of the range of {dtype_name}")
        return value
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{cell!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{cell!r} is not a finite number")
    if abs(value) > np.finfo(dtype_name).max:
        raise ValueError(f"{cell!r} is out of the range of {dtype_name}")
    return value


def table_columns(table: LoadedTable, declared: dict[str, TensorSpec]) -> dict:
    """The named columns of every row, converted to their declared dtypes.

    Returns:
      Column name -> a numpy array in the declared dtype, or a list of str for
      a string column.

    Raises:
      TableInputError: a file's header lacks or repeats a needed column, or a
        cell cannot be converted; the message names the file (and line and
        column).
    """
    names = sorted(declared)
    for csv_file in table.csv_files:
        missing = [name for name in names if name not in csv_file.header]
        if missing:
            raise TableInputError(
                f"{csv_file.path}: the header has no column "
                f"{', '.join(map(repr, missing))}; it has {list(csv_file.header)}"
            )
        repeated = [name for name in names if csv_file.header.count(name) > 1]
        if repeated:
            raise TableInputError(
                f"{csv_file.path}: the header repeats the column "
                f"{', '.join(map(repr, repeated))}"
            )
    values: dict[str, list] = {name: [] for name in names}
    for csv_file in table.csv_files:
        positions = {name: csv_file.header.index(name) for name in names}
        for line, cells in csv_file.rows:
            for name in names:
                dtype_name = declared[name].dtype_name
                try:
                    values[name].append(parse_cell(cells[positions[name]], dtype_name))
                except ValueError as error:
                    raise TableInputError(
                        f"{csv_file.path} line {line}, column {name!r}: {error} "
                        f"(the model takes {name} as {dtype_name})"
                    ) from None
    return {
        name: column
        if declared[name].dtype_name == STRING_DTYPE
        else np.asarray(column, dtype=declared[name].dtype_name)
        for name, column in values.items()
    }


def example_bytes_from_columns(
    columns: dict, declared: dict[str, TensorSpec]
) -> list[bytes]:
    """One serialized tf.Example per row, a feature per column: a float list for
    a float dtype, an int64 list for an integer dtype, a bytes list (UTF-8) for
    a string, as the table model's serving_default parses them."""
    import tensorflow as tf

    names = sorted(columns)
    count = len(columns[names[0]]) if names else 0
    serialized = []
    for row in range(count):
        example = tf.train.Example()
        for name in names:
            feature = example.features.feature[name]
            value = columns[name][row]
            dtype_name = declared[name].dtype_name
            if dtype_name == STRING_DTYPE:
                feature.bytes_list.value.append(value.encode("utf-8"))
            elif dtype_name in _INTEGER_DTYPES:
                feature.int64_list.value.append(int(value))
            else:
                feature.float_list.value.append(float(value))
        serialized.append(example.SerializeToString())
    return serialized


# ---------------------------------------------------------------------------
# Signatures and how to fill them


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """A signature's tensor as the metadata declares it; shape None = any rank."""

    dtype_name: str
    shape: tuple[int, ...] | None

    def describe(self) -> str:
        shape = "any shape" if self.shape is None else list(self.shape)
        return f"{self.dtype_name} {shape}"


@dataclasses.dataclass(frozen=True)
class SignatureSpec:
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]


def spec_from_signature_def(signature_def) -> SignatureSpec:
    """A SignatureSpec from a tensorflow SignatureDef proto (metadata of any kind)."""
    import tensorflow as tf

    def tensor(info) -> TensorSpec:
        try:
            dtype_name = tf.dtypes.as_dtype(info.dtype).name
        except TypeError:
            dtype_name = f"dtype enum {info.dtype}"
        if info.tensor_shape.unknown_rank:
            return TensorSpec(dtype_name, None)
        return TensorSpec(
            dtype_name, tuple(int(dim.size) for dim in info.tensor_shape.dim)
        )

    return SignatureSpec(
        inputs={name: tensor(info) for name, info in signature_def.inputs.items()},
        outputs={name: tensor(info) for name, info in signature_def.outputs.items()},
    )


def spec_from_tf_specs(input_specs: dict, output_specs: dict) -> SignatureSpec:
    """A SignatureSpec from tf.TensorSpecs of a loaded SavedModel's signature."""

    def tensor(spec) -> TensorSpec:
        if spec.shape.rank is None:
            return TensorSpec(spec.dtype.name, None)
        return TensorSpec(
            spec.dtype.name,
            tuple(ANY_SIZE if size is None else size for size in spec.shape.as_list()),
        )

    return SignatureSpec(
        inputs={name: tensor(spec) for name, spec in input_specs.items()},
        outputs={name: tensor(spec) for name, spec in output_specs.items()},
    )


@dataclasses.dataclass(frozen=True)
class _Encoding:
    """How this client fills one kind of signature input."""

    kind: str
    shape: tuple[int, ...]
    describe: str


_IMAGE_PIXELS = "pixels"
_PNG = "png"
_EXAMPLE = "example"
ENCODINGS = {
    signatures.IMAGES_INPUT: _Encoding(
        _IMAGE_PIXELS,
        (ANY_SIZE, *IMAGE_SHAPE),
        f"{signatures.IMAGES_INPUT}: numbers [-1, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]}]",
    ),
    signatures.PNG_INPUT: _Encoding(
        _PNG, (ANY_SIZE,), f"{signatures.PNG_INPUT}: string [-1] (encoded PNGs)"
    ),
    signatures.EXAMPLES_INPUT: _Encoding(
        _EXAMPLE,
        (ANY_SIZE,),
        f"{signatures.EXAMPLES_INPUT}: string [-1] (serialized tf.Examples)",
    ),
}
_NUMBER_DTYPES = (
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "uint8",
    "int8",
    "uint16",
    "int16",
    "int32",
    "int64",
)


def _shape_fits(declared: tuple[int, ...] | None, sent: tuple[int, ...]) -> bool:
    if declared is None:
        return True
    return len(declared) == len(sent) and all(
        have == ANY_SIZE or have == want
        for have, want in zip(declared, sent, strict=True)
    )


def _check_exists(
    available: dict[str, SignatureSpec], signature_name: str, where: str
) -> SignatureSpec:
    if signature_name not in available:
        callable_names = sorted(
            name
            for name in available
            if not name.startswith(_INTERNAL_SIGNATURE_PREFIX)
        )
        raise PredictionError(
            f"{where} has no signature {signature_name!r}; its signatures: "
            f"{', '.join(callable_names) or 'none'}"
        )
    return available[signature_name]


def _check_outputs(spec: SignatureSpec, signature_name: str, where: str) -> None:
    missing = [name for name in REQUIRED_OUTPUTS if name not in spec.outputs]
    if missing:
        raise PredictionError(
            f"signature {signature_name!r} of {where} does not return "
            f"{', '.join(missing)}; it returns {', '.join(sorted(spec.outputs))}"
        )


_IMAGE_INPUTS = (signatures.IMAGES_INPUT, signatures.PNG_INPUT)


def is_table_model(available: dict[str, SignatureSpec]) -> bool:
    """A table model is one with a serving_raw signature."""
    return signatures.SERVING_RAW in available


def default_signature(available: dict[str, SignatureSpec]) -> str:
    """serving_raw for a table model, serving_images for any other."""
    return DEFAULT_TABLE_SIGNATURE if is_table_model(available) else DEFAULT_SIGNATURE


def _describe_inputs(spec: SignatureSpec) -> str:
    return ", ".join(
        f"{name} ({tensor.describe()})" for name, tensor in sorted(spec.inputs.items())
    )


def check_signature(
    available: dict[str, SignatureSpec], signature_name: str, where: str
) -> tuple[str, TensorSpec]:
    """Checks that the signature exists, takes one input this client can fill
    with images, and returns class ids, probabilities and class names.

    Returns:
      The input's name and the spec the model declares for it.
    """
    spec = _check_exists(available, signature_name, where)
    if is_table_model(available) and not any(
        name in _IMAGE_INPUTS for name in spec.inputs
    ):
        raw = available[signatures.SERVING_RAW]
        raise InputError(
            f"{where} is a table model: its {signatures.SERVING_RAW} signature "
            f"takes {_describe_inputs(raw)}, one value per row; give it CSV files, "
            "not images"
        )
    if len(spec.inputs) != 1 or next(iter(spec.inputs)) not in ENCODINGS:
        declared = ", ".join(
            f"{name} ({tensor.describe()})" for name, tensor in spec.inputs.items()
        )
        known = "; ".join(encoding.describe for encoding in ENCODINGS.values())
        raise PredictionError(
            f"signature {signature_name!r} of {where} takes {declared or 'no input'}; "
            f"this client sends exactly one of {known}"
        )
    input_name, declared = next(iter(spec.inputs.items()))
    encoding = ENCODINGS[input_name]
    dtype_ok = (
        declared.dtype_name in _NUMBER_DTYPES
        if encoding.kind == _IMAGE_PIXELS
        else declared.dtype_name == "string"
    )
    if not dtype_ok or not _shape_fits(declared.shape, encoding.shape):
        raise PredictionError(
            f"signature {signature_name!r} of {where} declares input {input_name} as "
            f"{declared.describe()}; this client sends {encoding.describe}"
        )
    _check_outputs(spec, signature_name, where)
    return input_name, declared


@dataclasses.dataclass(frozen=True)
class TablePlan:
    """How a table goes to a signature.

    Attributes:
      signature_name: the signature asked.
      columns: the CSV columns read, with the dtype each is converted to.
      examples: the signature's `examples` input when it takes serialized
        tf.Examples built from the columns; None when each column is sent as
        the input of its name.
    """

    signature_name: str
    columns: dict[str, TensorSpec]
    examples: TensorSpec | None = None

    @property
    def inputs(self) -> dict[str, TensorSpec]:
        """The inputs sent, with their declared specs."""
        if self.examples is None:
            return self.columns
        return {signatures.EXAMPLES_INPUT: self.examples}


def _column_inputs(spec: SignatureSpec, signature_name: str, where: str):
    """The signature's inputs when each can be filled from a CSV column."""
    if not spec.inputs:
        raise PredictionError(f"signature {signature_name!r} of {where} takes no input")
    for name, declared in sorted(spec.inputs.items()):
        if declared.dtype_name not in COLUMN_DTYPES or not _shape_fits(
            declared.shape, (ANY_SIZE,)
        ):
            raise PredictionError(
                f"signature {signature_name!r} of {where} declares input {name} as "
                f"{declared.describe()}; this client fills each input from the CSV "
                f"column of its name, one value per row: a [-1] tensor of "
                f"{', '.join(COLUMN_DTYPES)}"
            )
    return dict(spec.inputs)


def check_table_signature(
    available: dict[str, SignatureSpec], signature_name: str, where: str
) -> TablePlan:
    """Checks that the signature exists, takes table rows, and returns class
    ids, probabilities and class names; says how to fill it.

    A signature of one string input `examples` gets serialized tf.Examples,
    whose features are the inputs of the model's serving_raw signature, with
    the types it declares. Any other signature gets one [batch] tensor per
    input, from the CSV column of the input's name.
    """
    spec = _check_exists(available, signature_name, where)
    takes_images = any(name in _IMAGE_INPUTS for name in spec.inputs)
    image_model = not is_table_model(available) and any(
        name in _IMAGE_INPUTS for other in available.values() for name in other.inputs
    )
    if takes_images or image_model:
        raise InputError(
            f"{where} is an image model: signature {signature_name!r} takes "
            f"{_describe_inputs(spec)}; give it image files, not CSV files"
        )
    if set(spec.inputs) == {signatures.EXAMPLES_INPUT}:
        declared = spec.inputs[signatures.EXAMPLES_INPUT]
        if declared.dtype_name != STRING_DTYPE or not _shape_fits(
            declared.shape, (ANY_SIZE,)
        ):
            raise PredictionError(
                f"signature {signature_name!r} of {where} declares input "
                f"{signatures.EXAMPLES_INPUT} as {declared.describe()}; this client "
                f"sends {ENCODINGS[signatures.EXAMPLES_INPUT].describe}"
            )
        if not is_table_model(available):
            raise PredictionError(
                f"signature {signature_name!r} of {where} takes serialized "
                f"tf.Examples, and the model has no {signatures.SERVING_RAW} "
                "signature to tell which features they hold and of what types"
            )
        columns = _column_inputs(
            available[signatures.SERVING_RAW], signatures.SERVING_RAW, where
        )
        examples = declared
    else:
        columns = _column_inputs(spec, signature_name, where)
        examples = None
    _check_outputs(spec, signature_name, where)
    return TablePlan(signature_name, columns, examples)


def encode_batch(images: np.ndarray, input_name: str, declared: TensorSpec):
    """The values for a signature input: a number array in the declared dtype, or
    a list of bytes (PNGs or serialized tf.Examples) for a string input."""
    kind = ENCODINGS[input_name].kind
    if kind == _IMAGE_PIXELS:
        import tensorflow as tf

        dtype = tf.dtypes.as_dtype(declared.dtype_name).as_numpy_dtype
        if np.issubdtype(dtype, np.integer) and not np.issubdtype(
            images.dtype, np.integer
        ):
            images = np.rint(images)
        return images.astype(dtype)
    pixels = np.rint(images).astype(np.uint8)
    if kind == _PNG:
        return [signatures.png_bytes(image) for image in pixels]
    return [signatures.example_bytes(image) for image in pixels]


# ---------------------------------------------------------------------------
# Results


@dataclasses.dataclass(frozen=True, eq=False)
class Prediction:
    class_id: int
    class_name: str
    probabilities: np.ndarray


IMAGE_ITEM = "image"
ROW_ITEM = "row"


def _count(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


@dataclasses.dataclass(frozen=True)
class PredictionResult:
    """The answers for a batch of images or table rows, in their order, and who
    gave them; `item` says which ("image" or "row")."""

    predictions: list[Prediction]
    signature_name: str
    model_version: int | None
    requests: int
    item: str = IMAGE_ITEM

    @property
    def class_ids(self) -> np.ndarray:
        return np.array([item.class_id for item in self.predictions], np.int64)

    @property
    def probabilities(self) -> np.ndarray:
        return np.stack([item.probabilities for item in self.predictions])

    @functools.cached_property
    def class_names_by_id(self) -> dict[int, str]:
        """Class names by id: those the model gave, completed with the
        Fashion-MNIST names when the model has as many classes and every name
        it gave agrees with them."""
        given = {item.class_id: item.class_name for item in self.predictions}
        known = dict(enumerate(features.CLASS_NAMES))
        classes = self.predictions[0].probabilities.shape[-1] if self.predictions else 0
        if classes == len(known) and all(
            known.get(class_id) == name for class_id, name in given.items()
        ):
            return known
        return given

    def top_classes(self, prediction: Prediction, k: int) -> list[tuple[str, float]]:
        """The k likeliest classes of one prediction as (name, probability).

        The model names only each image's top class; see class_names_by_id for
        the others, which are `class N` when their name is not known.
        """
        order = np.argsort(-prediction.probabilities, kind="stable")[:k]
        return [
            (
                self.class_names_by_id.get(int(index), f"class {index}"),
                float(prediction.probabilities[index]),
            )
            for index in order
        ]


def _as_text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def predictions_from_outputs(
    outputs: dict, count: int, where: str, item: str = IMAGE_ITEM
) -> list[Prediction]:
    """Checks a backend's output arrays and turns them into one Prediction each."""
    missing = [name for name in REQUIRED_OUTPUTS if name not in outputs]
    if missing:
        raise PredictionError(
            f"{where} answered without {', '.join(missing)}; outputs found: "
            f"{', '.join(sorted(outputs)) or 'none'}"
        )
    try:
        class_ids = np.asarray(outputs[signatures.CLASS_IDS_OUTPUT], dtype=np.int64)
        probabilities = np.asarray(
            outputs[signatures.PROBABILITIES_OUTPUT], dtype=np.float32
        )
        class_names = np.asarray(outputs[signatures.CLASS_NAMES_OUTPUT], dtype=object)
    except (TypeError, ValueError) as error:
        raise PredictionError(
            f"{where} answered outputs that are not arrays of the expected types: "
            f"{_one_line(error)}"
        ) from error
    if (
        class_ids.shape != (count,)
        or class_names.shape != (count,)
        or probabilities.ndim != 2
        or len(probabilities) != count
    ):
        raise PredictionError(
            f"{where} answered outputs shaped class_ids {list(class_ids.shape)}, "
            f"probabilities {list(probabilities.shape)}, class_names "
            f"{list(class_names.shape)} for a batch of {_count(count, item)}"
        )
    return [
        Prediction(int(class_id), _as_text(name), row)
        for class_id, name, row in zip(
            class_ids, class_names, probabilities, strict=True
        )
    ]


# ---------------------------------------------------------------------------
# Backends: each reads the signatures and runs one batch through one of them.


def _one_line(text: str) -> str:
    """Server messages (TensorFlow's especially) span lines; the CLI prints one."""
    return " ".join(str(text).split())


def _model_label(model_name: str, model_version: int | None) -> str:
    if model_version is None:
        return f"model {model_name!r}"
    return f"model {model_name!r} version {model_version}"


def _os_reason(error: BaseException) -> str | None:
    """The operating system's words ("Connection refused") from deep inside the
    exceptions requests and urllib3 wrap around a failed connection."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        for linked in (
            *current.args,
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
        ):
            if isinstance(linked, BaseException):
                pending.append(linked)
    return None


class Backend:
    """What every backend offers: read_signatures(), then predict_inputs() with a
    value array (or list) per input, each cast to the dtype the model declares."""

    description = ""

    def close(self) -> None:
        pass

    def model_label(self, version: int | None) -> str:
        raise NotImplementedError

    def read_signatures(self) -> tuple[int | None, dict[str, SignatureSpec]]:
        raise NotImplementedError

    def predict_inputs(
        self,
        signature_name: str,
        inputs: dict[str, object],
        declared: dict[str, TensorSpec],
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def predict(
        self, signature_name: str, input_name: str, values, declared: TensorSpec
    ) -> dict[str, np.ndarray]:
        """Runs one batch through a signature of one input."""
        return self.predict_inputs(
            signature_name, {input_name: values}, {input_name: declared}
        )


def _json_values(values) -> list:
    """A batch as JSON values: numbers as they are, text as strings, bytes (PNGs,
    serialized tf.Examples) as {"b64": ...}, which TF Serving decodes."""
    if isinstance(values, np.ndarray):
        return values.tolist()
    return [
        {"b64": base64.b64encode(value).decode("ascii")}
        if isinstance(value, bytes)
        else value
        for value in values
    ]


class RestBackend(Backend):
    """TF Serving's REST API: GET .../metadata, POST ...:predict in row format:
    a list of values for a signature of one input, a list of objects naming each
    input for a signature of several (as a table model's serving_raw)."""

    def __init__(
        self,
        base_url: str,
        model_name: str = DEFAULT_MODEL_NAME,
        model_version: int | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ):
        import requests

        if "://" not in base_url:
            base_url = f"http://{base_url}"
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.model_version = model_version
        self.timeout_s = timeout_s
        self.description = f"REST {self.base_url}"
        self._session = requests.Session()
        model_path = f"{self.base_url}/v1/models/{model_name}"
        if model_version is not None:
            model_path += f"/versions/{model_version}"
        self._model_url = model_path

    def close(self) -> None:
        self._session.close()

    def model_label(self, version: int | None) -> str:
        return _model_label(self.model_name, version)

    def _call(self, method: str, url: str, body: dict | None = None) -> dict:
        import requests

        try:
            response = self._session.request(
                method, url, json=body, timeout=self.timeout_s
            )
        except requests.ReadTimeout as error:
            raise PredictionError(
                f"no answer from {url} within {self.timeout_s:g} s"
            ) from error
        except requests.ConnectionError as error:
            reason = _os_reason(error) or _one_line(error)
            raise PredictionError(
                f"TF Serving REST API not reachable at {self.base_url}: {reason}"
            ) from error
        except requests.RequestException as error:
            raise PredictionError(
                f"request to {url} failed: {_one_line(error)}"
            ) from error
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code == 200 and isinstance(payload, dict):
            return payload
        message = (
            payload.get("error")
            if isinstance(payload, dict) and "error" in payload
            else response.text[:300] or response.reason
        )
        message = _one_line(message)
        label = _model_label(self.model_name, self.model_version)
        if response.status_code == 404:
            raise PredictionError(
                f"{label} not found at {self.base_url} (HTTP 404): {message}"
            )
        if response.status_code == 400:
            raise PredictionError(
                f"{self.base_url} refused the request for {label} (HTTP 400): {message}"
            )
        if response.status_code == 200:
            raise PredictionError(f"{url} answered with a body that is not JSON")
        raise PredictionError(f"{url} answered HTTP {response.status_code}: {message}")

    def read_signatures(self) -> tuple[int | None, dict[str, SignatureSpec]]:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        url = f"{self._model_url}/metadata"
        payload = self._call("GET", url)
        try:
            signature_map = json_format.ParseDict(
                payload["metadata"][SIGNATURE_DEF_FIELD],
                get_model_metadata_pb2.SignatureDefMap(),
                ignore_unknown_fields=True,
            )
        except (KeyError, TypeError, json_format.ParseError) as error:
            raise PredictionError(
                f"{url} answered metadata without a readable "
                f"metadata.{SIGNATURE_DEF_FIELD}: {_one_line(error)}"
            ) from error
        version = payload.get("model_spec", {}).get("version")
        return (
            int(version) if version not in (None, "") else None,
            {
                name: spec_from_signature_def(signature_def)
                for name, signature_def in signature_map.signature_def.items()
            },
        )

    def predict_inputs(
        self,
        signature_name: str,
        inputs: dict[str, object],
        declared: dict[str, TensorSpec],
    ) -> dict[str, np.ndarray]:
        columns = {name: _json_values(values) for name, values in inputs.items()}
        if len(columns) == 1:
            (instances,) = columns.values()
        else:
            count = len(next(iter(columns.values())))
            instances = [
                {name: column[row] for name, column in columns.items()}
                for row in range(count)
            ]
        payload = self._call(
            "POST",
            f"{self._model_url}:predict",
            {"signature_name": signature_name, "instances": instances},
        )
        rows = payload.get("predictions")
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise PredictionError(
                f"{self.base_url} answered without a list of named outputs under "
                f"'predictions': {_one_line(str(payload)[:200])}"
            )
        names = set().union(*(row.keys() for row in rows)) if rows else set()
        return {
            name: [_from_json_value(row.get(name)) for row in rows] for name in names
        }


def _from_json_value(value):
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


class GrpcBackend(Backend):
    """TF Serving's gRPC PredictionService: GetModelMetadata and Predict."""

    def __init__(
        self,
        address: str,
        model_name: str = DEFAULT_MODEL_NAME,
        model_version: int | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        host, _, port = address.rpartition(":")
        if "://" in address or not host or not port.isdigit():
            raise PredictionError(
                f"gRPC address {address!r} should be HOST:PORT, e.g. 127.0.0.1:8500"
            )
        self.address = address
        self.model_name = model_name
        self.model_version = model_version
        self.timeout_s = timeout_s
        self.description = f"gRPC {address}"
        # A whole batch travels in one message; gRPC's default 4 MB receive
        # limit would refuse large answers that TF Serving itself sends.
        self._channel = grpc.insecure_channel(
            address, options=[("grpc.max_receive_message_length", -1)]
        )
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def model_label(self, version: int | None) -> str:
        return _model_label(self.model_name, version)

    def _model_spec(self, signature_name: str = ""):
        from tensorflow_serving.apis import model_pb2

        spec = model_pb2.ModelSpec(name=self.model_name, signature_name=signature_name)
        if self.model_version is not None:
            spec.version.value = self.model_version
        return spec

    def _call(self, method, request):
        import grpc

        try:
            return method(request, timeout=self.timeout_s)
        except grpc.RpcError as error:
            code, details = error.code(), _one_line(error.details() or "")
            label = _model_label(self.model_name, self.model_version)
            if code == grpc.StatusCode.UNAVAILABLE:
                message = (
                    f"TF Serving gRPC API not reachable at {self.address}: {details}"
                )
            elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
                message = f"no answer from {self.address} within {self.timeout_s:g} s"
            elif code == grpc.StatusCode.NOT_FOUND:
                message = f"{label} not found at {self.address} (NOT_FOUND): {details}"
            elif code == grpc.StatusCode.INVALID_ARGUMENT:
                message = (
                    f"{self.address} refused the request for {label} "
                    f"(INVALID_ARGUMENT): {details}"
                )
            else:
                message = f"{self.address} answered {code.name}: {details}"
            raise PredictionError(message) from error

    def read_signatures(self) -> tuple[int | None, dict[str, SignatureSpec]]:
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=self._model_spec(), metadata_field=[SIGNATURE_DEF_FIELD]
        )
        response = self._call(self._stub.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        if SIGNATURE_DEF_FIELD not in response.metadata or not response.metadata[
            SIGNATURE_DEF_FIELD
        ].Unpack(signature_map):
            raise PredictionError(
                f"{self.address} answered metadata without a {SIGNATURE_DEF_FIELD} "
                "SignatureDefMap"
            )
        version = (
            response.model_spec.version.value
            if response.model_spec.HasField("version")
            else None
        )
        return version, {
            name: spec_from_signature_def(signature_def)
            for name, signature_def in signature_map.signature_def.items()
        }

    def predict_inputs(
        self,
        signature_name: str,
        inputs: dict[str, object],
        declared: dict[str, TensorSpec],
    ) -> dict[str, np.ndarray]:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest(
            model_spec=self._model_spec(signature_name)
        )
        for name, values in inputs.items():
            request.inputs[name].CopyFrom(
                tf.make_tensor_proto(
                    values, dtype=tf.dtypes.as_dtype(declared[name].dtype_name)
                )
            )
        response = self._call(self._stub.Predict, request)
        return {
            name: tf.make_ndarray(proto) for name, proto in response.outputs.items()
        }


class LocalBackend(Backend):
    """A SavedModel loaded into this process: a SavedModel folder, or a serving
    folder whose highest integer version folder (or `model_version`) is loaded."""

    def __init__(self, path: str, model_version: int | None = None):
        self.path = path
        self.model_dir, self.version = _resolve_saved_model(path, model_version)
        self.description = f"local {self.model_dir}"
        self._loaded = None

    def close(self) -> None:
        self._loaded = None

    def model_label(self, version: int | None) -> str:
        return "SavedModel" if version is None else f"SavedModel version {version}"

    def _load(self):
        if self._loaded is None:
            import tensorflow as tf

            try:
                self._loaded = tf.saved_model.load(self.model_dir)
            except (OSError, ValueError, tf.errors.OpError) as error:
                raise PredictionError(
                    f"{self.model_dir}: cannot load the SavedModel: "
                    f"{_one_line(error)[:300]}"
                ) from error
        return self._loaded

    def read_signatures(self) -> tuple[int | None, dict[str, SignatureSpec]]:
        loaded = self._load()
        available = {}
        for name, function in loaded.signatures.items():
            _, input_specs = function.structured_input_signature
            available[name] = spec_from_tf_specs(
                input_specs, function.structured_outputs
            )
        return self.version, available

    def predict_inputs(
        self,
        signature_name: str,
        inputs: dict[str, object],
        declared: dict[str, TensorSpec],
    ) -> dict[str, np.ndarray]:
        import tensorflow as tf

        function = self._load().signatures[signature_name]
        try:
            outputs = function(
                **{
                    name: tf.constant(
                        values, tf.dtypes.as_dtype(declared[name].dtype_name)
                    )
                    for name, values in inputs.items()
                }
            )
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as error:
            message = error.message if isinstance(error, tf.errors.OpError) else error
            raise PredictionError(
                f"{self.model_dir} refused the batch: {_one_line(message)}"
            ) from error
        return {name: tensor.numpy() for name, tensor in outputs.items()}


def _integer_versions(folder: str) -> list[int]:
    # The Pusher stages versions in hidden folders: only integer names count,
    # as for TF Serving.
    return sorted(
        int(name)
        for name in os.listdir(folder)
        if name.isascii()
        and name.isdigit()
        and os.path.isdir(os.path.join(folder, name))
    )


def _resolve_saved_model(
    path: str, model_version: int | None
) -> tuple[str, int | None]:
    saved_model_file = "saved_model.pb"
    if not os.path.isdir(path):
        raise PredictionError(
            f"{path}: no such folder (expected a SavedModel folder "
            "or a serving folder of integer versions)"
        )
    if os.path.exists(os.path.join(path, saved_model_file)):
        if model_version is not None:
            raise PredictionError(
                f"{path} is one SavedModel; --model-version {model_version} needs a "
                "serving folder holding integer version folders"
            )
        return path, None
    versions = _integer_versions(path)
    if not versions:
        raise PredictionError(
            f"{path} holds neither {saved_model_file} nor integer version folders"
        )
    version = versions[-1] if model_version is None else model_version
    if version not in versions:
        raise PredictionError(
            f"{path} has no version {version}; versions found: "
            f"{', '.join(map(str, versions))}"
        )
    model_dir = os.path.join(path, str(version))
    if not os.path.exists(os.path.join(model_dir, saved_model_file)):
        raise PredictionError(f"{model_dir} holds no {saved_model_file}")
    return model_dir, version


def open_backend(
    rest: str | None = None,
    grpc: str | None = None,
    local: str | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    model_version: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
):
    """The backend for exactly one of a REST URL, a gRPC HOST:PORT or a local path."""
    chosen = [value for value in (rest, grpc, local) if value is not None]
    if len(chosen) != 1:
        raise PredictionError(
            "give exactly one of a REST URL, a gRPC address or a path"
        )
    if rest is not None:
        return RestBackend(rest, model_name, model_version, timeout_s)
    if grpc is not None:
        return GrpcBackend(grpc, model_name, model_version, timeout_s)
    return LocalBackend(local, model_version)


# ---------------------------------------------------------------------------
# The client


class Client:
    """Predicts classes of images or table rows through any backend, the same way
    for all three: metadata first, then the rows or images split into requests of
    `batch_size`.

    Without a signature name, a table model (one with serving_raw) is asked
    through serving_raw and any other model through serving_images.
    """

    def __init__(
        self,
        backend,
        signature_name: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.backend = backend
        self.signature_name = signature_name
        self.batch_size = batch_size

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    def _read_signatures(self) -> tuple[int | None, dict[str, SignatureSpec], str, str]:
        version, available = self.backend.read_signatures()
        where = f"{self.backend.model_label(version)} via {self.backend.description}"
        signature_name = self.signature_name or default_signature(available)
        return version, available, where, signature_name

    def _ask(
        self,
        signature_name: str,
        count: int,
        make_inputs,
        declared: dict[str, TensorSpec],
        where: str,
        item: str,
    ) -> tuple[list[Prediction], int]:
        """Sends rows [start, stop) per request, as make_inputs(start, stop) makes
        them; returns the predictions in order and the number of requests."""
        predictions: list[Prediction] = []
        requests_sent = 0
        for start in range(0, count, self.batch_size):
            stop = min(start + self.batch_size, count)
            outputs = self.backend.predict_inputs(
                signature_name, make_inputs(start, stop), declared
            )
            requests_sent += 1
            predictions.extend(
                predictions_from_outputs(outputs, stop - start, where, item)
            )
        return predictions, requests_sent

    def predict(self, images, source: str = "images") -> PredictionResult:
        """Predicts one [28, 28] image or a batch [N, 28, 28] of raw pixels.

        The images are checked before any request; then the model's metadata is
        read and the signature checked before any prediction request.
        """
        batch = as_image_batch(images, source)
        version, available, where, signature_name = self._read_signatures()
        input_name, declared = check_signature(available, signature_name, where)
        predictions, requests_sent = self._ask(
            signature_name,
            len(batch),
            lambda start, stop: {
                input_name: encode_batch(batch[start:stop], input_name, declared)
            },
            {input_name: declared},
            where,
            IMAGE_ITEM,
        )
        return PredictionResult(
            predictions=predictions,
            signature_name=signature_name,
            model_version=version,
            requests=requests_sent,
        )

    def predict_table(self, table: LoadedTable) -> PredictionResult:
        """Predicts every row of CSV files read by load_tables.

        The model's metadata is read first; the signature is checked, then every
        needed column of every row is converted to its declared dtype, all
        before any prediction request.
        """
        if len(table) == 0:
            raise TableInputError("no table rows given")
        version, available, where, signature_name = self._read_signatures()
        plan = check_table_signature(available, signature_name, where)
        columns = table_columns(table, plan.columns)

        def make_inputs(start: int, stop: int) -> dict:
            chunk = {name: values[start:stop] for name, values in columns.items()}
            if plan.examples is None:
                return chunk
            return {
                signatures.EXAMPLES_INPUT: example_bytes_from_columns(
                    chunk, plan.columns
                )
            }

        predictions, requests_sent = self._ask(
            signature_name, len(table), make_inputs, plan.inputs, where, ROW_ITEM
        )
        return PredictionResult(
            predictions=predictions,
            signature_name=signature_name,
            model_version=version,
            requests=requests_sent,
            item=ROW_ITEM,
        )


def format_prediction(
    result: PredictionResult, prediction: Prediction, source: str, top: int = 1
) -> str:
    """One tab-separated line: the image's or row's source, then name and
    probability of the top class, and of the next ones when `top` asks for more."""
    fields = [source]
    for name, probability in result.top_classes(prediction, top):
        fields.extend([name, f"{probability:.3f}"])
    return "\t".join(fields)


def summary_line(result: PredictionResult, files: int, backend, seconds: float) -> str:
    """One line: how many images or rows, which model and signature, where, how
    long."""
    return (
        f"{_count(len(result.predictions), result.item)} from "
        f"{_count(files, 'file')}: "
        f"{result.signature_name} of {backend.model_label(result.model_version)} "
        f"via {backend.description}, {_count(result.requests, 'request')}, "
        f"{seconds:.2f} s"
    )
