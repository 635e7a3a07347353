"""The data section of the config: built-in tables and custom data, refusals that
name the field, and defaults that follow the data set."""

import re
import shutil

import pytest

from components import data_spec, tabular_models
from pipeline import cli
from pipeline.config import SCHEMAS_DIR, ConfigError, load_config, to_yaml

CIRCLES_SCHEMA = SCHEMAS_DIR / "circles" / "schema.pbtxt"


@pytest.fixture
def custom(tmp_path):
    """Overrides for custom CSV data with the two-circles columns and schema."""
    (tmp_path / "data").mkdir()
    schema = tmp_path / "schema.pbtxt"
    shutil.copy(CIRCLES_SCHEMA, schema)
    return [
        "data.dataset=custom",
        f"data.data_dir={tmp_path / 'data'}",
        f"data.schema_path={schema}",
        "data.format=csv",
        "data.features=[x:float, y:float]",
        "data.class_names=[outer, inner]",
        f"output_dir={tmp_path / 'outputs'}",
    ]


def _load(overrides, **kwargs):
    return load_config(overrides=overrides, environ={}, **kwargs)


def _without(overrides, field):
    return [item for item in overrides if not item.startswith(f"{field}=")]


def test_custom_csv_data_gets_its_spec_from_the_config(custom, tmp_path):
    config = _load(custom)
    spec = config.data_spec
    assert spec.format == data_spec.CSV
    assert spec.label_key == "label"
    assert spec.class_names == ("outer", "inner")
    assert [str(column) for column in spec.columns] == ["x:float", "y:float"]
    assert config.pipeline_name == "custom"
    assert config.data.data_dir == str(tmp_path / "data")
    assert config.training.preset == "tabular"


def test_num_classes_names_the_classes_by_their_ids(custom):
    overrides = _without(custom, "data.class_names") + ["data.num_classes=3"]
    assert _load(overrides).data_spec.class_names == ("0", "1", "2")


def test_features_from_an_environment_variable_split_on_spaces(custom):
    config = load_config(
        overrides=_without(custom, "data.features"),
        environ={"KPIPE_DATA__FEATURES": "x y:float"},
    )
    assert config.data.features == ("x", "y:float")
    assert [column.kind for column in config.data_spec.columns] == ["float", "float"]


@pytest.mark.parametrize(
    "drop, add, message",
    [
        (
            "data.data_dir",
            [],
            "data.data_dir: required for data.dataset=custom",
        ),
        (
            "data.format",
            [],
            "data.format: '' is not one of ['idx', 'csv', 'tfrecord']",
        ),
        (
            "data.format",
            ["data.format=parquet"],
            "data.format: 'parquet' is not one of ['idx', 'csv', 'tfrecord']",
        ),
        (
            "data.features",
            [],
            "data.features: name the feature columns as name:kind, kind one of "
            "['float', 'int', 'string']",
        ),
        (
            "data.class_names",
            [],
            "data.class_names or data.num_classes: a classifier needs at least 2 "
            "classes",
        ),
        (
            "data.class_names",
            ["data.num_classes=1"],
            "data.class_names or data.num_classes: a classifier needs at least 2 "
            "classes",
        ),
        (
            "data.class_names",
            ["data.class_names=[only]"],
            "data.class_names or data.num_classes: a classifier needs at least 2 "
            "classes",
        ),
        (
            "data.class_names",
            ["data.class_names=[cat, dog, cat]"],
            "data.class_names: names repeat in ['cat', 'dog', 'cat']",
        ),
        (
            "",
            ["data.num_classes=3"],
            "data.class_names: 2 names but data.num_classes is 3",
        ),
        (
            "data.features",
            ["data.features=[x:float, y:float, x:int]"],
            "data.features: ['x'] named twice (the label is 'label')",
        ),
        (
            "data.features",
            ["data.features=[x:float, label:int]"],
            "data.features: ['label'] named twice (the label is 'label')",
        ),
        (
            "data.features",
            ["data.features=[x:double]"],
            "data.features: column 'x': kind 'double' is not one of "
            "['float', 'int', 'string']",
        ),
        (
            "data.features",
            ["data.features=[x:float, 2y:float]"],
            "data.features: column '2y': a name is letters, digits and _, "
            "starting with a letter",
        ),
        (
            "data.features",
            ["data.features=[x:float, y-pos:float]"],
            "data.features: column 'y-pos': a name is letters, digits and _",
        ),
    ],
    ids=[
        "no-data-dir",
        "no-format",
        "unknown-format",
        "no-features",
        "no-classes",
        "one-class",
        "one-class-name",
        "repeated-class-name",
        "names-vs-num-classes",
        "repeated-feature",
        "feature-named-as-label",
        "bad-kind",
        "name-starts-with-digit",
        "name-with-dash",
    ],
)
def test_custom_data_is_refused_naming_the_field(custom, drop, add, message):
    overrides = (_without(custom, drop) if drop else custom) + add
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        _load(overrides)


def test_a_feature_missing_from_the_schema_is_named_with_the_schemas_features(
    custom, tmp_path
):
    schema = tmp_path / "schema.pbtxt"
    with pytest.raises(ConfigError) as error:
        _load(custom + ["data.features=[x:float, z:float]"])
    assert str(error.value) == (
        f"data.features: ['z'] not in {schema}; it has ['label', 'x', 'y']"
    )
    with pytest.raises(ConfigError) as error:
        _load(custom + ["data.label_key=target"])
    assert str(error.value) == (
        f"data.label_key: the label 'target' is not a feature of {schema}; "
        "it has ['label', 'x', 'y']"
    )


def test_custom_data_without_a_schema_points_to_infer_schema(custom, tmp_path):
    overrides = _without(custom, "data.schema_path") + ["pipeline_name=my_table"]
    with pytest.raises(ConfigError) as error:
        _load(overrides)
    assert str(error.value) == (
        f"data.schema_path: schema file {SCHEMAS_DIR / 'my_table' / 'schema.pbtxt'} "
        "does not exist; write a draft with `kpipe infer-schema` and curate it"
    )
    assert _load(overrides, check_schema=False).pipeline_name == "my_table"


@pytest.mark.parametrize("dataset", ["circles", "breast_cancer", "fashion_mnist"])
@pytest.mark.parametrize(
    "override",
    [
        "data.format=csv",
        "data.label_key=label",
        "data.class_names=[a, b]",
        "data.num_classes=2",
        "data.features=[x:float]",
    ],
)
def test_built_in_data_sets_refuse_the_custom_only_fields(dataset, override):
    field = override.partition("=")[0]
    with pytest.raises(ConfigError) as error:
        _load([f"data.dataset={dataset}", override])
    assert str(error.value) == (
        f"{field}: only for data.dataset=custom; {dataset} defines its own "
        "columns and classes"
    )


@pytest.mark.parametrize("metric", ["BinaryAccuracy", "AUC", "Precision", "Recall"])
def test_a_binary_metric_is_refused_for_ten_classes(metric):
    with pytest.raises(ConfigError) as error:
        _load([f"evaluation.metric={metric}"])
    assert str(error.value) == (
        f"evaluation.metric: {metric!r} is not supported for 10 classes; labels "
        "are integer class ids, so use one of ['SparseCategoricalAccuracy']"
    )


@pytest.mark.parametrize(
    "metric",
    ["BinaryAccuracy", "AUC", "Precision", "Recall", "SparseCategoricalAccuracy"],
)
def test_binary_and_sparse_metrics_load_for_the_two_circles(metric):
    config = _load(["data.dataset=circles", f"evaluation.metric={metric}"])
    assert config.evaluation.metric == metric
    assert config.data_spec.binary


def test_the_shipped_table_configs_load():
    circles = load_config("configs/circles.yaml", environ={})
    assert circles.data_spec == data_spec.CIRCLES
    assert circles.evaluation.metric == "BinaryAccuracy"
    assert circles.training.preset == "seed_nonlinear"
    cancer = load_config("configs/breast_cancer.yaml", environ={})
    assert cancer.data_spec == data_spec.BREAST_CANCER
    assert cancer.schema_file == str(SCHEMAS_DIR / "breast_cancer" / "schema.pbtxt")


def test_an_image_preset_on_a_table_is_refused_listing_the_table_presets():
    with pytest.raises(ConfigError) as error:
        _load(["data.dataset=circles", "training.preset=cnn"])
    assert str(error.value) == (
        "training.preset: 'cnn' is not one of "
        f"{sorted(tabular_models.PRESETS)} (the presets for tabular data)"
    )
    with pytest.raises(ConfigError, match=r"'tabular' is not one of \['cnn'"):
        _load(["training.preset=tabular"])


def test_an_unknown_optimizer_is_refused_listing_both():
    with pytest.raises(ConfigError) as error:
        _load(["training.optimizer=rmsprop"])
    assert str(error.value) == (
        "training.optimizer: 'rmsprop' is not one of ['adam', 'sgd']"
    )
    assert _load(["training.optimizer=sgd"]).training.optimizer == "sgd"


def test_defaults_follow_the_data_set(tmp_path):
    output_dir = tmp_path / "outputs"
    circles = _load(["data.dataset=circles", f"output_dir={output_dir}"])
    assert circles.training.preset == "tabular"
    assert circles.pipeline_name == "circles"
    assert circles.data.data_dir == str(output_dir / "data" / "circles")
    assert circles.schema_file == str(SCHEMAS_DIR / "circles" / "schema.pbtxt")
    assert circles.serving_model_dir == str(output_dir / "serving_model" / "circles")
    cancer = _load(["data.dataset=breast_cancer", f"output_dir={output_dir}"])
    assert cancer.data.data_dir == str(output_dir / "data" / "breast_cancer")
    images = _load([f"output_dir={output_dir}"])
    assert (images.training.preset, images.pipeline_name) == ("cnn", "fashion_mnist")
    assert images.data.data_dir == "/usr/share/datasets/fashion-mnist"


def test_explicit_values_are_kept_whatever_the_data_set(tmp_path):
    config = _load(
        [
            "data.dataset=circles",
            "pipeline_name=rings",
            f"data.data_dir={tmp_path}",
            "training.preset=seed_linear",
        ]
    )
    assert config.pipeline_name == "rings"
    assert config.data.data_dir == str(tmp_path)
    assert config.training.preset == "seed_linear"
    assert config.serving_model_dir.endswith("serving_model/rings")
    # Set in a file, the same fields are kept too.
    path = tmp_path / "config.yaml"
    path.write_text("pipeline_name: rings\ntraining:\n  preset: seed_linear\n")
    config = load_config(str(path), ["data.dataset=circles"], environ={})
    assert (config.pipeline_name, config.training.preset) == ("rings", "seed_linear")


def test_show_config_with_circles(capsys, tmp_path):
    code = cli.main(
        ["show-config", "--set", "data.dataset=circles", "--output-dir", str(tmp_path)]
    )
    assert code == 0
    shown = capsys.readouterr().out
    assert "pipeline_name: circles\n" in shown
    assert "  dataset: circles\n" in shown
    assert f"  data_dir: {tmp_path}/data/circles\n" in shown
    assert "  preset: tabular\n" in shown


def test_show_config_exits_2_naming_a_custom_only_field(capsys):
    code = cli.main(
        ["show-config", "--set", "data.dataset=circles", "--set", "data.num_classes=3"]
    )
    assert code == cli.EXIT_CONFIG
    assert "data.num_classes: only for data.dataset=custom" in capsys.readouterr().err


def test_an_unclosed_list_is_a_config_error(capsys):
    with pytest.raises(ConfigError, match=r"^data.class_names: '\[a, b' is not a list"):
        _load(["data.class_names=[a, b"])
    assert cli.main(["show-config", "--set", "data.class_names=[a, b"]) == 2
    assert "config error: data.class_names:" in capsys.readouterr().err


def test_list_items_given_as_text_stay_text(custom):
    config = _load(custom + ["data.class_names=[no, yes]"])
    assert config.data_spec.class_names == ("no", "yes")
    config = load_config(
        overrides=_without(custom, "data.class_names"),
        environ={"KPIPE_DATA__CLASS_NAMES": "[off, on, null, 010]"},
    )
    assert config.data_spec.class_names == ("off", "on", "null", "010")


def test_list_items_yaml_reads_as_booleans_are_refused_naming_the_field(
    custom, tmp_path
):
    path = tmp_path / "config.yaml"
    path.write_text("data:\n  class_names: [no, yes]\n")
    with pytest.raises(ConfigError) as error:
        load_config(str(path), _without(custom, "data.class_names"), environ={})
    assert str(error.value).startswith(
        "data.class_names: item False is not text; YAML reads yes, no, on, off, "
        "true and false as booleans"
    )
    path.write_text("data:\n  class_names: ['no', 'yes']\n")
    config = load_config(str(path), _without(custom, "data.class_names"), environ={})
    assert config.data_spec.class_names == ("no", "yes")
    with pytest.raises(ConfigError, match=r"item \{'x': 'float'\} is not text"):
        _load(custom + ["data.features=[x: float]"])


def test_a_cap_on_tfrecord_data_is_refused_not_ignored(custom):
    overrides = _without(custom, "data.format") + ["data.format=tfrecord"]
    assert _load(overrides).data.max_examples_per_split == 0
    with pytest.raises(ConfigError) as error:
        _load(overrides + ["data.max_examples_per_split=100"])
    assert str(error.value) == (
        "data.max_examples_per_split: not supported for tfrecord data, which is "
        "imported whole; set it to 0, or write a smaller file"
    )
    assert _load(custom + ["data.max_examples_per_split=100"])


def test_lr_sweep_on_a_table_exits_2_pointing_to_the_finder(capsys, tmp_path):
    code = cli.main(
        ["lr-sweep", "--set", "data.dataset=circles", "--output-dir", str(tmp_path)]
    )
    assert code == cli.EXIT_CONFIG
    assert "circles is a table. Set lr_finder.enabled=true" in capsys.readouterr().err
    assert not (tmp_path / "lr_sweep").exists()


@pytest.mark.parametrize("dataset", ["fashion_mnist", "circles", "custom"])
def test_a_shown_config_loads_back_as_the_same_config(dataset, custom, tmp_path):
    overrides = custom if dataset == "custom" else [f"data.dataset={dataset}"]
    config = _load(overrides)
    path = tmp_path / "shown.yaml"
    path.write_text(to_yaml(config))
    if dataset != "custom":
        # The custom-only fields are written too, empty.
        assert "  format: ''\n" in path.read_text()
    assert load_config(str(path), environ={}) == config


def test_a_multi_valued_column_is_refused_as_a_table_feature(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(
        'feature { name: "image" type: INT value_count { min: 784 max: 784 } }\n'
        'feature { name: "label" type: INT }\n'
    )
    (tmp_path / "data").mkdir()
    with pytest.raises(ConfigError, match="'image' holds up to 784 values"):
        load_config(
            overrides=[
                f"output_dir={tmp_path / 'out'}",
                "data.dataset=custom",
                f"data.data_dir={tmp_path / 'data'}",
                "data.format=tfrecord",
                "data.num_classes=10",
                "data.features=[image:int]",
                f"data.schema_path={schema}",
            ],
            environ={},
        )
