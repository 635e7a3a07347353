"""The typed CSV ExampleGen: rows become exact tf.Examples, and every problem in
a file is reported with the file, the line and the column before Beam starts."""

import json
import os

import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from components import csv_example_gen, data_spec
from components.csv_example_gen import CsvFormatError
from components.data_spec import FeatureColumn
from pipeline.pipeline import input_config

SPEC = data_spec.DataSpec(
    name="pets",
    format=data_spec.CSV,
    label_key="label",
    class_names=("cat", "dog", "bird"),
    columns=(
        FeatureColumn("weight", data_spec.FLOAT),
        FeatureColumn("legs", data_spec.INT),
        FeatureColumn("note", data_spec.STRING),
    ),
)
HEADER = "weight,legs,note,label\n"
GOOD_ROW = "4.5,4,calm,cat\n"


def _write(folder, text, name="data.csv"):
    """Writes text (str as UTF-8, or bytes) as it is, line endings included."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return str(path)


def _values(example):
    """A tf.Example as {feature: [values]}, strings decoded."""
    values = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        items = list(getattr(feature, kind).value)
        values[name] = [
            item.decode("utf-8") if isinstance(item, bytes) else item for item in items
        ]
    return values


def _read(path):
    return [_values(example) for example in csv_example_gen.read_examples(path, SPEC)]


def test_quotes_bom_blank_lines_and_class_names_become_exact_examples(tmp_path):
    path = _write(
        tmp_path,
        "\ufeffid,weight,legs,note,label\r\n"
        '7,1.5,4,"fluffy, grey",cat\r\n'
        "\r\n"
        '8,-0.25,2,"says ""hi"", twice",bird\r\n'
        "  ,  , , ,  \r\n"
        '9,30,4,"two\nlines", dog \r\n',
    )
    assert csv_example_gen.check_file(path, SPEC) == 3
    assert _read(path) == [
        {"weight": [1.5], "legs": [4], "note": ["fluffy, grey"], "label": [0]},
        {"weight": [-0.25], "legs": [2], "note": ['says "hi", twice'], "label": [2]},
        {"weight": [30.0], "legs": [4], "note": ["two\nlines"], "label": [1]},
    ]


def test_numeric_labels_pass_through_as_class_ids(tmp_path):
    path = _write(tmp_path, HEADER + "1,4,a,2\n2,4,b,0\n3,4,c, 1 \n4,4,d,dog\n")
    assert [row["label"] for row in _read(path)] == [[2], [0], [1], [1]]


def test_the_limit_keeps_the_first_rows(tmp_path):
    path = _write(tmp_path, HEADER + "1,4,a,cat\n2,4,b,dog\n3,4,c,bird\n")
    assert csv_example_gen.check_file(path, SPEC, limit=2) == 2
    examples = list(csv_example_gen.read_examples(path, SPEC, limit=2))
    assert [_values(example)["weight"] for example in examples] == [[1.0], [2.0]]


@pytest.mark.parametrize(
    "row, problem",
    [
        ("?,4,calm,cat", "line 3, column 'weight': '?' is not a number"),
        ("  ,4,calm,cat", "line 3, column 'weight': the cell is blank"),
        ("4.5,1.5,calm,cat", "line 3, column 'legs': '1.5' is not an integer"),
        ("nan,4,calm,cat", "line 3, column 'weight': 'nan' is not a finite number"),
        ("-inf,4,calm,cat", "line 3, column 'weight': '-inf' is not a finite number"),
        ("4.5,4,calm,", "line 3, column 'label': the label is blank"),
        (
            "4.5,4,calm,fish",
            "line 3, column 'label': 'fish' is neither a class id nor one of the "
            "class names ['cat', 'dog', 'bird']",
        ),
        ("4.5,4,calm", "line 3: 3 fields where the header has 4"),
        ("4.5,4,calm,cat,extra", "line 3: 5 fields where the header has 4"),
    ],
    ids=[
        "question-mark",
        "blank-cell",
        "float-in-int-column",
        "nan",
        "inf",
        "missing-label",
        "unknown-class",
        "too-few-fields",
        "too-many-fields",
    ],
)
def test_each_problem_names_the_file_line_and_column(tmp_path, row, problem):
    path = _write(tmp_path, HEADER + GOOD_ROW + row + "\n" + GOOD_ROW)
    with pytest.raises(CsvFormatError) as checked:
        csv_example_gen.check_file(path, SPEC)
    assert str(checked.value) == f"{path}: 1 problem\n  {problem}"
    with pytest.raises(CsvFormatError) as read:
        list(csv_example_gen.read_examples(path, SPEC))
    assert str(read.value) == f"{path} {problem}"


def test_all_problems_of_a_file_are_listed_together_in_line_order(tmp_path):
    path = _write(
        tmp_path,
        HEADER + GOOD_ROW + "?,2.5,calm,fish\n" + GOOD_ROW + "\n" + "1,2,calm\n",
    )
    with pytest.raises(CsvFormatError) as error:
        csv_example_gen.check_file(path, SPEC)
    assert str(error.value).splitlines() == [
        f"{path}: 4 problems",
        "  line 3, column 'weight': '?' is not a number",
        "  line 3, column 'legs': '2.5' is not an integer",
        "  line 3, column 'label': 'fish' is neither a class id nor one of the "
        "class names ['cat', 'dog', 'bird']",
        "  line 6: 3 fields where the header has 4",
    ]


def test_problems_beyond_the_cap_are_counted_not_listed(tmp_path):
    bad_rows = "".join(f"{number},4,calm,cat\n" for number in ["x"] * 13)
    path = _write(tmp_path, HEADER + bad_rows)
    with pytest.raises(CsvFormatError) as error:
        csv_example_gen.check_file(path, SPEC)
    lines = str(error.value).splitlines()
    assert lines[0] == f"{path}: 13 problems"
    assert lines[1] == "  line 2, column 'weight': 'x' is not a number"
    assert lines[10] == "  line 11, column 'weight': 'x' is not a number"
    assert lines[11:] == ["  ... and 3 more"]
    assert csv_example_gen.MAX_REPORTED_ERRORS == 10


@pytest.mark.parametrize(
    "content, message",
    [
        (
            "weight,note,label\n1,a,cat\n",
            "{path}: the header has no column 'legs'; "
            "it has ['weight', 'note', 'label']",
        ),
        (
            "weight,legs,note,weight,label\n1,4,a,2,cat\n",
            "{path}: the header repeats the columns ['weight']",
        ),
        ("", "{path} is empty; expected a header line"),
        (HEADER, "{path} has a header but no records"),
        (HEADER + "\n \n\n", "{path} has a header but no records"),
    ],
    ids=["missing-column", "repeated-column", "empty", "header-only", "blank-rows"],
)
def test_file_level_problems_name_the_file(tmp_path, content, message):
    path = _write(tmp_path, content)
    for read in (
        lambda: csv_example_gen.check_file(path, SPEC),
        lambda: list(csv_example_gen.read_examples(path, SPEC)),
    ):
        with pytest.raises(CsvFormatError) as error:
            read()
        assert str(error.value) == message.format(path=path)


def test_a_file_that_is_not_utf8_is_refused_naming_its_line(tmp_path):
    text = HEADER + GOOD_ROW + "\r\n" + "4.5,4,café,cat\r\n"
    path = _write(tmp_path, text.encode("latin-1"))
    with pytest.raises(CsvFormatError) as error:
        csv_example_gen.check_file(path, SPEC)
    assert str(error.value) == (
        f"{path} line 4: not UTF-8 text (byte 49 of the file); save it as UTF-8 CSV"
    )


def _run_executor(input_base, output_dir, max_examples=None):
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    exec_properties = {
        specs.INPUT_BASE_KEY: str(input_base),
        specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(
            input_config(str(input_base), data_spec.CSV)
        ),
        specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(example_gen_pb2.Output()),
        specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        csv_example_gen.DATA_SPEC_KEY: json.dumps(SPEC.to_json_dict()),
        csv_example_gen.MAX_EXAMPLES_KEY: max_examples,
    }
    csv_example_gen.Executor().Do({}, {specs.EXAMPLES_KEY: [examples]}, exec_properties)
    return examples


def _read_split(output_dir, split):
    files = tf.io.gfile.glob(os.path.join(output_dir, f"Split-{split}", "*"))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    rows = [_values(tf.train.Example.FromString(record.numpy())) for record in records]
    return sorted(rows, key=lambda row: row["weight"])


def test_executor_writes_each_split_and_caps_the_train_split_across_files(tmp_path):
    data = tmp_path / "data"
    _write(data, HEADER + "1,4,a,cat\n2,2,b,bird\n3,4,c,dog\n", "train/a.csv")
    _write(data, HEADER + "4,4,d,1\n5,4,e,0\n6,4,f,2\n", "train/b.csv")
    _write(data, HEADER + "7,4,g,cat\n8,4,h,dog\n", "eval/data.csv")
    _write(data, "not,a,table\n", "eval/notes.txt")

    artifact = _run_executor(data, tmp_path / "out", max_examples=4)

    assert artifact.split_names == '["train", "eval"]'
    assert _read_split(tmp_path / "out", "train") == [
        {"weight": [1.0], "legs": [4], "note": ["a"], "label": [0]},
        {"weight": [2.0], "legs": [2], "note": ["b"], "label": [2]},
        {"weight": [3.0], "legs": [4], "note": ["c"], "label": [1]},
        {"weight": [4.0], "legs": [4], "note": ["d"], "label": [1]},
    ]
    assert _read_split(tmp_path / "out", "eval") == [
        {"weight": [7.0], "legs": [4], "note": ["g"], "label": [0]},
        {"weight": [8.0], "legs": [4], "note": ["h"], "label": [1]},
    ]


def test_a_bad_row_fails_the_executor_before_any_split_is_written(tmp_path):
    data = tmp_path / "data"
    _write(data, HEADER + GOOD_ROW, "train/data.csv")
    bad = _write(data, HEADER + GOOD_ROW + "4.5,four,calm,cat\n", "eval/data.csv")
    with pytest.raises(CsvFormatError) as error:
        _run_executor(data, tmp_path / "out")
    assert str(error.value) == (
        f"{bad}: 1 problem\n  line 3, column 'legs': 'four' is not an integer"
    )
    assert not (tmp_path / "out" / "Split-train").exists()


def test_a_split_folder_without_csv_files_is_named(tmp_path):
    data = tmp_path / "data"
    _write(data, HEADER + GOOD_ROW, "train/data.csv")
    _write(data, HEADER + GOOD_ROW, "eval/data.tsv")
    with pytest.raises(CsvFormatError) as error:
        _run_executor(data, tmp_path / "out")
    assert str(error.value) == f"no CSV file matches {data}/eval/*.csv"


def test_only_newlines_end_a_row_so_line_numbers_stay_right(tmp_path):
    # A form feed, a vertical tab and U+2028 are characters of a text cell,
    # not line breaks, in a CSV file as in an editor.
    path = _write(
        tmp_path,
        HEADER + '1,4,page\x0cbreak,cat\n2,4,"a\u2028b",dog\n3,4,tab\x0b,bird\n'
        "4,4,calm,fish\n",
    )
    with pytest.raises(CsvFormatError, match=r"\n  line 5, column 'label': 'fish'"):
        csv_example_gen.check_file(path, SPEC)
    path = _write(tmp_path, HEADER + '1,4,page\x0cbreak,cat\n2,4,"a\u2028b",dog\n')
    assert [row["note"] for row in _read(path)] == [["page\x0cbreak"], ["a\u2028b"]]


def test_a_number_beyond_float32_is_refused_not_stored_as_infinity(tmp_path):
    path = _write(tmp_path, HEADER + GOOD_ROW + "-1e39,4,calm,cat\n")
    with pytest.raises(CsvFormatError) as error:
        csv_example_gen.check_file(path, SPEC)
    assert str(error.value).endswith(
        "line 3, column 'weight': '-1e39' is beyond the float32 range "
        "(+-3.402823e+38) and would be stored as infinity"
    )
    path = _write(tmp_path, HEADER + "3e38,4,calm,cat\n")
    assert _read(path)[0]["weight"] == [pytest.approx(3e38, rel=1e-6)]


def test_an_integer_beyond_int64_is_reported_with_its_line(tmp_path):
    big = str(2**63)
    path = _write(
        tmp_path,
        HEADER + f"1,{big},calm,cat\n2,-{big},calm,cat\n3,4,calm,{big}\n",
    )
    with pytest.raises(CsvFormatError) as error:
        csv_example_gen.check_file(path, SPEC)
    assert str(error.value).splitlines()[1:] == [
        f"  line 2, column 'legs': '{big}' is beyond the int64 range",
        f"  line 4, column 'label': '{big}' is beyond the int64 range",
    ]
    with pytest.raises(CsvFormatError, match=f"{path} line 2, column 'legs'"):
        list(csv_example_gen.read_examples(path, SPEC))
    path = _write(tmp_path, HEADER + f"1,-{big},calm,{2**63 - 1}\n")
    assert _read(path)[0]["legs"] == [-(2**63)]


def test_python_digit_separators_are_not_numbers(tmp_path):
    path = _write(tmp_path, HEADER + "1_5,4,calm,cat\n2,1_0,calm,cat\n3,4,calm,1_0\n")
    with pytest.raises(CsvFormatError) as error:
        csv_example_gen.check_file(path, SPEC)
    assert str(error.value).splitlines()[1:] == [
        "  line 2, column 'weight': '1_5' is not a number",
        "  line 3, column 'legs': '1_0' is not an integer",
        "  line 4, column 'label': '1_0' is neither a class id nor one of the "
        "class names ['cat', 'dog', 'bird']",
    ]


def test_blank_lines_before_the_header_are_skipped(tmp_path):
    path = _write(
        tmp_path, "\ufeff\n  \n" + HEADER + "4.5,4,calm,dog\n4.5,x,calm,dog\n"
    )
    with pytest.raises(CsvFormatError) as error:
        csv_example_gen.check_file(path, SPEC)
    assert str(error.value).endswith("line 5, column 'legs': 'x' is not an integer")
    path = _write(tmp_path, "\n\n" + HEADER + GOOD_ROW)
    assert _read(path) == [
        {"weight": [4.5], "legs": [4], "note": ["calm"], "label": [0]}
    ]
    path = _write(tmp_path, "\n \n")
    with pytest.raises(CsvFormatError, match="is empty; expected a header line"):
        csv_example_gen.check_file(path, SPEC)
