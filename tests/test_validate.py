"""`kpipe validate`: a data folder checked against the schema, without training."""

import shutil

import numpy as np

from components import tabular_data
from pipeline import cli
from tests.conftest import learnable_images, write_idx_pair


def _validate(data_dir, report_dir, *flags):
    return cli.main(
        [
            "validate",
            "--data-dir",
            str(data_dir),
            "--report-dir",
            str(report_dir),
            *flags,
        ]
    )


def test_clean_circles_pass_and_both_reports_are_written(tmp_path, capsys):
    tabular_data.write_circles(str(tmp_path / "data"))
    exit_code = _validate(
        tmp_path / "data", tmp_path / "report", "--config", "configs/circles.yaml"
    )
    assert exit_code == 0
    assert "Anomalies: none" in capsys.readouterr().out
    assert (
        "Records: train 800, eval 200"
        in (tmp_path / "report/anomalies.txt").read_text()
    )
    page = (tmp_path / "report/validation.html").read_text()
    assert "<h2>Anomalies</h2><p>No anomalies.</p>" in page


def test_out_of_range_rows_fail_naming_feature_split_and_record(tmp_path, capsys):
    tabular_data.write_circles(str(tmp_path / "clean"))
    shutil.copytree(tmp_path / "clean", tmp_path / "data")
    eval_csv = tmp_path / "data" / "eval" / "data.csv"
    lines = eval_csv.read_text().splitlines()
    lines[3] = "3.0,0.1,1"  # record 3: x beyond the schema's 1.5
    lines[7] = "0.1,0.2,2"  # record 7: a third class in a binary data set
    eval_csv.write_text("\n".join(lines) + "\n")
    exit_code = _validate(
        tmp_path / "data", tmp_path / "report", "--config", "configs/circles.yaml"
    )
    assert exit_code == cli.EXIT_DATA
    out = capsys.readouterr().out
    assert "Anomalies: 2 (2 ERROR)" in out
    assert "split 'eval', feature 'x': Out-of-range values" in out
    assert "(in data.csv record 3)" in out
    assert "split 'eval', feature 'label'" in out and "(in data.csv record 7)" in out
    page = (tmp_path / "report/validation.html").read_text()
    assert "Out-of-range values" in page


def test_an_idx_label_outside_the_classes_is_named_with_its_record(tmp_path, capsys):
    images, labels = learnable_images(40)
    labels = labels.copy()
    labels[[4, 9]] = 10  # an off-by-one export: classes 1..10
    write_idx_pair(tmp_path / "data", "train", images, labels % 10)
    write_idx_pair(tmp_path / "data", "t10k", images, labels.astype(np.uint8))
    exit_code = _validate(tmp_path / "data", tmp_path / "report")
    assert exit_code == cli.EXIT_DATA
    out = capsys.readouterr().out
    assert "split 'eval', feature 'label'" in out
    assert "t10k-labels-idx1-ubyte.gz" not in out  # records are named by images file
    assert "record 5, " in out and "record 10)" in out


def test_an_eval_split_of_one_class_fails_as_train_eval_skew(tmp_path, capsys):
    tabular_data.write_circles(str(tmp_path / "data"))
    eval_csv = tmp_path / "data" / "eval" / "data.csv"
    header, *rows = eval_csv.read_text().splitlines()
    # Every eval point labelled outer (0): valid values, a skewed class mix.
    relabelled = [row.rsplit(",", 1)[0] + ",0" for row in rows]
    eval_csv.write_text("\n".join([header, *relabelled]) + "\n")
    exit_code = _validate(
        tmp_path / "data", tmp_path / "report", "--config", "configs/circles.yaml"
    )
    assert exit_code == cli.EXIT_DATA
    out = capsys.readouterr().out
    assert "Anomalies: 1 (1 ERROR)" in out
    assert "split 'eval', feature 'label': Train/eval skew: L-infinity distance" in out
    assert "above the schema's threshold 0.1" in out
