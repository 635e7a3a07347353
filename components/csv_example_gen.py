"""An ExampleGen for CSV tables, with errors that name the file, line and column.

TFX's own CsvExampleGen infers each column's type from the data, so a column of
numbers with one `?` silently becomes a string column, and it cannot turn class
names into class ids. Here the data set's spec says what each column is: every
file is checked before the Beam pipeline starts (header, field counts, numbers,
blank cells, labels), all problems are reported together with their line
numbers, and only then are the rows read into tf.Examples. Python's csv module
does the parsing, so quoted fields may hold commas, quotes and line breaks.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tfx.components.example_gen import driver
from tfx.components.example_gen.base_example_gen_executor import (
    BaseExampleGenExecutor,
)
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs as specs

from components import data_spec, example_gen_spec, versioning
from components.errors import InputDataError

DATA_SPEC_KEY = example_gen_spec.DATA_SPEC_KEY
MAX_EXAMPLES_KEY = example_gen_spec.MAX_EXAMPLES_KEY
CODE_VERSION_KEY = example_gen_spec.CODE_VERSION_KEY
# Enough to see the pattern of a problem without drowning in it.
MAX_REPORTED_ERRORS = 10
# tf.Example stores floats as float32: a larger number would become infinity.
FLOAT32_MAX = float(np.finfo(np.float32).max)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class CsvFormatError(InputDataError):
    """A CSV file does not match the data set's spec."""


def _parse_cell(value: str, kind: str) -> float | int | bytes:
    """One cell as its column's kind; ValueError says what is wrong."""
    if kind == data_spec.STRING:
        return value.encode("utf-8")
    text = value.strip()
    if not text:
        raise ValueError("the cell is blank")
    if kind == data_spec.INT:
        try:
            return _int64(text)
        except ValueError:
            raise ValueError(f"{value!r} is not an integer") from None
        except OverflowError as error:
            raise ValueError(f"{value!r} {error}") from None
    try:
        number = _python_number(float, text)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    if abs(number) > FLOAT32_MAX:
        raise ValueError(
            f"{value!r} is beyond the float32 range (+-{FLOAT32_MAX:.7g}) "
            "and would be stored as infinity"
        )
    return number


def _python_number(kind, text: str):
    """int(text) or float(text), without Python's digit separators.

    Python reads "1_000" as 1000; in a CSV file it is not a number, and taking
    it as one would silently change the data.
    """
    if "_" in text:
        raise ValueError(text)
    return kind(text)


def _int64(text: str) -> int:
    """An integer; OverflowError when tf.Example's int64 cannot hold it."""
    number = _python_number(int, text)
    if not INT64_MIN <= number <= INT64_MAX:
        raise OverflowError("is beyond the int64 range")
    return number


def _parse_label(value: str, spec: data_spec.DataSpec) -> int:
    """A class name or a class id; ids are range-checked by the schema."""
    text = value.strip()
    if text in spec.class_names:
        return spec.class_names.index(text)
    try:
        return _int64(text)
    except OverflowError as error:
        raise ValueError(f"{value!r} {error}") from None
    except ValueError:
        if not text:
            raise ValueError("the label is blank") from None
        raise ValueError(
            f"{value!r} is neither a class id nor one of the class names "
            f"{list(spec.class_names)}"
        ) from None


def _feature(value) -> tf.train.Feature:
    if isinstance(value, bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    if isinstance(value, int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))


def _read_text(path: str) -> str:
    # Limitation: a file is read whole, twice (check, then convert); fine for
    # tables of up to a few hundred MB. Split bigger tables into several files.
    with fileio.open(path, "rb") as stream:
        raw = stream.read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        line = before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n") + 1
        raise CsvFormatError(
            f"{path} line {line}: not UTF-8 text (byte {error.start} of the file); "
            "save it as UTF-8 CSV"
        ) from None


def _rows(path: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header, and (line number, cells) for each non-blank row."""
    # newline="" ends lines at \n, \r and \r\n only, as the csv module expects;
    # str.splitlines would also break at form feeds, U+2028 and other
    # characters a text cell may hold, splitting a row and shifting line numbers.
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), strict=True)

    def parse(step):
        try:
            return step()
        except csv.Error as error:
            raise CsvFormatError(f"{path} line {reader.line_num}: {error}") from None

    def rows():
        while True:
            cells = parse(lambda: next(reader, None))
            if cells is None:
                return
            if any(cell.strip() for cell in cells):
                yield reader.line_num, cells

    # Blank lines are skipped before the header as well as after it.
    records = rows()
    first = next(records, None)
    if first is None:
        raise CsvFormatError(f"{path} is empty; expected a header line")
    _, header = first
    return [name.strip() for name in header], records


def check_header(path: str, header: list[str], spec: data_spec.DataSpec) -> None:
    """Raises CsvFormatError when a needed column is missing or repeated."""
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise CsvFormatError(f"{path}: the header repeats the columns {repeated}")
    needed = [spec.label_key, *spec.feature_names]
    missing = [name for name in needed if name not in header]
    if missing:
        raise CsvFormatError(
            f"{path}: the header has no column {', '.join(map(repr, missing))}; "
            f"it has {header}"
        )


def read_examples(
    path: str, spec: data_spec.DataSpec, limit: int | None = None
) -> Iterator[tf.train.Example]:
    """The file's rows as tf.Examples; the first bad row raises CsvFormatError."""
    yield from _convert(path, spec, limit, collect_errors=False)


def check_file(path: str, spec: data_spec.DataSpec, limit: int | None = None) -> int:
    """Checks every row; raises CsvFormatError listing the problems found.

    Returns:
      The number of records (up to limit).
    """
    return sum(1 for _ in _convert(path, spec, limit, collect_errors=True))


def _convert(path, spec, limit, collect_errors):
    header, rows = _rows(path)
    check_header(path, header, spec)
    errors: list[str] = []
    count = 0
    for line, cells in rows:
        if limit and count >= limit:
            break
        problems = []
        values = {}
        if len(cells) != len(header):
            problems.append(
                f"line {line}: {len(cells)} fields where the header has {len(header)}"
            )
        else:
            row = dict(zip(header, cells, strict=True))
            for column in spec.columns:
                try:
                    values[column.name] = _parse_cell(row[column.name], column.kind)
                except ValueError as error:
                    problems.append(f"line {line}, column {column.name!r}: {error}")
            try:
                values[spec.label_key] = _parse_label(row[spec.label_key], spec)
            except ValueError as error:
                problems.append(f"line {line}, column {spec.label_key!r}: {error}")
        if problems:
            if not collect_errors:
                raise CsvFormatError(f"{path} {problems[0]}")
            errors.extend(problems)
            continue
        count += 1
        yield tf.train.Example(
            features=tf.train.Features(
                feature={name: _feature(value) for name, value in values.items()}
            )
        )
    if errors:
        shown = "\n  ".join(errors[:MAX_REPORTED_ERRORS])
        more = len(errors) - MAX_REPORTED_ERRORS
        raise CsvFormatError(
            f"{path}: {len(errors)} problem{'' if len(errors) == 1 else 's'}\n  {shown}"
            + (f"\n  ... and {more} more" if more > 0 else "")
        )
    if count == 0:
        raise CsvFormatError(f"{path} has a header but no records")


def find_files(pattern: str) -> list[str]:
    """The CSV files a split pattern matches; none is an error naming it."""
    paths = sorted(fileio.glob(pattern))
    if not paths:
        raise CsvFormatError(f"no CSV file matches {pattern}")
    return paths


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _CsvToExample(  # noqa: N802 - Beam transform names are CamelCase.
    pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str
) -> beam.pvalue.PCollection:
    """Checks, then reads, one split's CSV files into tf.Examples."""
    spec = data_spec.DataSpec.from_json_dict(json.loads(exec_properties[DATA_SPEC_KEY]))
    pattern = os.path.join(exec_properties[specs.INPUT_BASE_KEY], split_pattern)
    limit = exec_properties.get(MAX_EXAMPLES_KEY) or None
    paths = find_files(pattern)
    remaining = limit
    limits = []
    for path in paths:
        if remaining is not None and remaining <= 0:
            break
        count = check_file(path, spec, remaining)
        limits.append((path, remaining))
        if remaining is not None:
            remaining -= count
    return (
        pipeline
        | "Files" >> beam.Create(limits)
        | "ReadRows" >> beam.FlatMap(lambda item: read_examples(item[0], spec, item[1]))
        | "Redistribute" >> beam.Reshuffle()
    )


class Executor(BaseExampleGenExecutor):
    """ExampleGen executor for CSV files described by a data spec."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802
        return _CsvToExample


class CsvExampleGenSpec(specs.FileBasedExampleGenSpec):
    """The file-based ExampleGen spec plus the data spec, a cap and a digest."""

    PARAMETERS = example_gen_spec.parameters(
        example_gen_spec.DATA_SPEC_PARAMETER, example_gen_spec.MAX_EXAMPLES_PARAMETER
    )


class TypedCsvExampleGen(base_beam_component.BaseBeamComponent):
    """Reads CSV files typed by a data spec, one folder per span."""

    SPEC_CLASS = CsvExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
    DRIVER_CLASS = driver.FileBasedDriver

    def __init__(
        self,
        input_base: str,
        input_config: example_gen_pb2.Input,
        spec: data_spec.DataSpec,
        max_examples_per_split: int = 0,
        range_config=None,
    ):
        """Creates the component.

        Args:
          input_base: folder that holds the span folders (or the split folders).
          input_config: one split per pattern; patterns may contain {SPAN}.
          spec: the columns, their kinds, the label and the class names.
          max_examples_per_split: keep only the first N rows of each split
            (0 keeps all); for quick runs.
          range_config: optional span range, as for any file-based ExampleGen.
        """
        component_spec_ = example_gen_spec.build(
            CsvExampleGenSpec,
            input_base,
            input_config,
            range_config,
            code_version=versioning.source_digest(sys.modules[__name__], data_spec),
            data_spec=json.dumps(spec.to_json_dict(), sort_keys=True),
            max_examples_per_split=max_examples_per_split or None,
        )
        super().__init__(spec=component_spec_)
