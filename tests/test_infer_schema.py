"""`kpipe infer-schema` on the two-circles CSV: the draft's types, label domain,
presence and environments, its comment of observed ranges, and a curated file
that is never overwritten by accident."""

import contextlib
import dataclasses
import io

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components import tabular_data
from pipeline import cli
from pipeline.config import load_config

CUSTOM_CIRCLES = [
    "--set",
    "data.dataset=custom",
    "--set",
    "data.format=csv",
    "--set",
    "data.features=[x:float,y:float]",
    "--set",
    "data.num_classes=2",
]
TRAIN_ROWS = 160


@dataclasses.dataclass
class Run:
    code: int
    out: str
    err: str


def _infer(data_dir, output, *extra):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(
            ["infer-schema", *CUSTOM_CIRCLES, "--data-dir", str(data_dir)]
            + ["--output", str(output), *extra]
        )
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def drafted(tmp_path_factory):
    """The circles' CSV files (200 points: 160 train) and one infer-schema run."""
    folder = tmp_path_factory.mktemp("infer")
    paths = tabular_data.write_circles(str(folder / "data"), n_points=200)
    output = folder / "schema.pbtxt"
    return folder / "data", paths, output, _infer(folder / "data", output)


def _schema(text):
    return text_format.Parse(text, schema_pb2.Schema())


def test_the_draft_types_the_columns_and_bounds_the_label(drafted):
    data_dir, _, output, run = drafted
    assert run.code == 0, run.err
    assert run.out.startswith(
        f"Wrote a draft schema inferred from {TRAIN_ROWS} rows to {output}\n"
    )
    schema = _schema(output.read_text())
    features = {feature.name: feature for feature in schema.feature}
    assert sorted(features) == ["label", "x", "y"]
    assert features["x"].type == schema_pb2.FLOAT
    assert features["y"].type == schema_pb2.FLOAT
    label = features["label"]
    assert label.type == schema_pb2.INT
    assert (label.int_domain.min, label.int_domain.max) == (0, 1)
    assert label.int_domain.is_categorical
    for feature in features.values():
        assert feature.presence.min_fraction == 1.0, feature.name
        assert feature.presence.min_count == 1, feature.name
        assert [dim.size for dim in feature.shape.dim] == [1], feature.name
    assert list(schema.default_environment) == ["TRAINING", "SERVING"]
    assert list(label.not_in_environment) == ["SERVING"]
    assert label.skew_comparator.infinity_norm.threshold == 0.1
    assert label.drift_comparator.infinity_norm.threshold == 0.1
    assert not features["x"].not_in_environment
    assert not features["y"].not_in_environment


def test_the_draft_lists_the_observed_ranges_of_the_train_split(drafted):
    data_dir, paths, output, _ = drafted
    columns, _ = tabular_data.read_csv(paths[tabular_data.TRAIN_SPLIT])
    lines = output.read_text().splitlines()
    assert lines[:4] == [
        f"# Draft inferred by `kpipe infer-schema` from {TRAIN_ROWS} train rows of",
        f"# {data_dir}. Curate it before training: add value ranges",
        "# (float_domain / int_domain) where the data has hard limits, and check",
        "# every string domain. Observed numeric ranges:",
    ]
    for line, name in zip(lines[4:6], ("x", "y"), strict=True):
        values = columns[name].astype(np.float64)
        prefix = f"#   {name}: min {values.min():.6g}, max {values.max():.6g}, mean "
        assert line.startswith(prefix), line
        assert float(line[len(prefix) :]) == pytest.approx(values.mean(), abs=1e-5)
    assert lines[6] == "feature {"


def test_the_draft_passes_the_configs_schema_check(drafted):
    data_dir, _, output, _ = drafted
    config = load_config(
        overrides=[
            "data.dataset=custom",
            "data.format=csv",
            "data.features=[x:float, y:float]",
            "data.num_classes=2",
            f"data.data_dir={data_dir}",
            f"data.schema_path={output}",
        ],
        environ={},
    )
    assert config.schema_file == str(output)


def test_an_existing_schema_is_kept_without_overwrite(drafted):
    data_dir, _, output, _ = drafted
    before = output.read_bytes()
    run = _infer(data_dir, output)
    assert run.code == cli.EXIT_DATA
    assert f"{output} exists; it may hold curation. Pass --overwrite" in run.err
    assert output.read_bytes() == before


def test_overwrite_replaces_a_curated_file(drafted, tmp_path):
    data_dir, _, output, _ = drafted
    curated = tmp_path / "schema.pbtxt"
    curated.write_text("# curated by hand\n")
    run = _infer(data_dir, curated, "--overwrite")
    assert run.code == 0, run.err
    assert curated.read_text() == output.read_text()
    assert not (tmp_path / "schema.pbtxt.incoming").exists()


def test_a_bad_row_exits_3_naming_its_line_and_writes_nothing(tmp_path):
    paths = tabular_data.write_circles(str(tmp_path / "data"), n_points=20)
    train = paths[tabular_data.TRAIN_SPLIT]
    with open(train, "a") as stream:
        stream.write("0.5,?,1\n")
    output = tmp_path / "schema.pbtxt"
    run = _infer(tmp_path / "data", output)
    assert run.code == cli.EXIT_DATA
    assert f"{train} line 18, column 'y': '?' is not a number" in run.err
    assert not output.exists()


def test_a_built_in_table_is_written_before_its_schema_is_drafted(tmp_path):
    output = tmp_path / "schema.pbtxt"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(
            ["infer-schema", "--set", "data.dataset=circles"]
            + ["--output-dir", str(tmp_path), "--output", str(output)]
        )
    assert code == 0, err.getvalue()
    assert (
        f"inferred from {tabular_data.CIRCLES_POINTS * 4 // 5} rows" in out.getvalue()
    )
    assert (tmp_path / "data" / "circles" / "train" / "data.csv").exists()
    assert "#   x: min " in output.read_text()
