"""The typed config: precedence of defaults, file, environment and flags, and
refusals that name the field."""

import pytest

from pipeline import cli
from pipeline.config import ConfigError, PipelineConfig, load_config


def _write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_are_the_fashion_mnist_job_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.training == PipelineConfig().training
    assert config.training.preset == "cnn"
    assert config.schema_file.endswith("schemas/fashion_mnist/schema.pbtxt")
    assert config.serving_model_dir == str(
        tmp_path / "outputs/serving_model/fashion_mnist"
    )
    relative = load_config(overrides=["output_dir=runs/a"], environ={})
    assert relative.metadata_path == str(
        tmp_path / "runs/a/metadata/fashion_mnist/metadata.sqlite"
    )


def test_shipped_config_file_loads():
    config = load_config("configs/fashion_mnist.yaml", environ={})
    assert config.data.max_examples_per_split == 0
    assert config.evaluation.lower_bound == 0.85


def test_file_then_environment_then_flags(tmp_path):
    path = _write(
        tmp_path, "training:\n  epochs: 3\n  batch_size: 16\noutput_dir: /tmp/x\n"
    )
    environ = {"KPIPE_TRAINING__EPOCHS": "5", "KPIPE_OUTPUT_DIR": "/tmp/y"}
    config = load_config(path, ["training.epochs=7"], environ)
    assert config.training.epochs == 7
    assert config.training.batch_size == 16
    assert config.output_dir == "/tmp/y"
    assert isinstance(config.training.epochs, int)


def test_list_and_bool_fields_from_strings():
    config = load_config(
        overrides=[
            "beam_pipeline_args=[--direct_num_workers=2, "
            "--direct_running_mode=multi_processing]",
            "evaluation.per_class_slices=no",
        ],
        environ={},
    )
    assert config.beam_pipeline_args == (
        "--direct_num_workers=2",
        "--direct_running_mode=multi_processing",
    )
    assert config.evaluation.per_class_slices is False


@pytest.mark.parametrize(
    "override, message",
    [
        ("training.epoch=3", "unknown field 'training.epoch'.*epochs"),
        ("trainer.epochs=3", "unknown field 'trainer.epochs'.*training"),
        ("training.epochs=three", "training.epochs: expected int"),
        ("training.epochs=2.5", "training.epochs: expected int"),
        ("training.epochs=0", "training.epochs: must be at least 1"),
        ("training.preset=resnet", "training.preset: 'resnet' is not one of"),
        ("training.lr_schedule=linear", "training.lr_schedule: 'linear' is not one of"),
        (
            "training.lr_warmup_epochs=20",
            "training.lr_warmup_epochs: must be at least 0 and below training.epochs",
        ),
        ("lr_finder.steps=5", "lr_finder.steps: must be at least 20"),
        ("lr_finder.rule=median", "lr_finder.rule: 'median' is not one of"),
        ("training=5", "training in --set training=5: a section; give its fields"),
        ("data.data_dir=", "data.data_dir: must not be empty"),
        (
            "training.learning_rate=inf",
            "training.learning_rate: expected a finite number",
        ),
        ("lr_finder.max_learning_rate=inf", "max_learning_rate: expected a finite"),
        ("training.learning_rate=-0.001", "training.learning_rate: must be positive"),
        (
            "training.lr_warmup_epochs=-1",
            "training.lr_warmup_epochs: must be at least 0",
        ),
        ("output_dir=", "output_dir: must not be empty"),
        (
            "training.lr_decay_start_epoch=-3",
            "lr_decay_start_epoch: must not be negative",
        ),
        ("lr_finder.max_learning_rate=1e-9", "lr_finder.min_learning_rate: must be"),
        ("evaluation.lower_bound=1.5", r"evaluation.lower_bound: must be in \[0, 1\]"),
        ("data.dataset=cifar", "data.dataset: 'cifar' is not one of"),
        ("data.schema_path=/nope.pbtxt", "data.schema_path: schema file /nope.pbtxt"),
        ("training.epochs", "expected section.field=value"),
        (
            "data.data_dir=/no/such/folder",
            "data.data_dir: folder /no/such/folder does not",
        ),
        ("pipeline_name=a.b", "pipeline_name: 'a.b' must be letters, digits"),
    ],
)
def test_bad_values_are_refused_naming_the_field(override, message):
    overrides = [override]
    if "warmup_epochs=20" in override:
        overrides.append("training.lr_schedule=cosine")
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides, environ={})


def test_one_hot_metric_on_integer_labels_is_refused(tmp_path):
    path = _write(tmp_path, "evaluation:\n  metric: CategoricalAccuracy\n")
    with pytest.raises(
        ConfigError, match="evaluation.metric.*integer class ids.*Sparse"
    ):
        load_config(path, environ={})


def test_a_null_lower_bound_is_refused(tmp_path):
    path = _write(tmp_path, "evaluation:\n  lower_bound: null\n")
    with pytest.raises(ConfigError, match="evaluation.lower_bound: expected a number"):
        load_config(path, environ={})


def test_bad_environment_variable_is_named():
    with pytest.raises(ConfigError, match="KPIPE_TRAINING__EPOKS"):
        load_config(environ={"KPIPE_TRAINING__EPOKS": "3"})


def test_malformed_file_is_named(tmp_path):
    path = _write(tmp_path, "training: [unclosed\n")
    with pytest.raises(ConfigError, match="config.yaml is not valid YAML"):
        load_config(path, environ={})


def test_cli_exits_2_on_a_bad_config(capsys):
    assert (
        cli.main(["show-config", "--set", "training.preset=resnet"]) == cli.EXIT_CONFIG
    )
    assert "training.preset" in capsys.readouterr().err


def test_cli_show_config_applies_flags(capsys):
    assert cli.main(["show-config", "--epochs", "2", "--max-examples", "100"]) == 0
    shown = capsys.readouterr().out
    assert "epochs: 2" in shown and "max_examples_per_split: 100" in shown
