"""The prediction client and `kpipe predict` on table models: CSV rows go to
serving_raw as one tensor per column, or to serving_default as tf.Examples, over
REST and gRPC to a TF Serving double and in process, and the answers are those of
the SavedModel's own signatures; bad cells and missing columns are named."""

import csv
import dataclasses
import re

import numpy as np
import pytest
import requests
import tensorflow as tf
import tf_keras as keras
from PIL import Image

from components import data_spec, signatures, tabular_data, tabular_models
from pipeline import cli, client
from tests.tf_serving_double import TFServingDouble

PROXY_VARIABLES = ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy")
CIRCLE_POINTS = 400
BATCH_SIZE = 32
BACKENDS = ("rest", "grpc", "local")

SHAPES = data_spec.DataSpec(
    name="shapes",
    format=data_spec.CSV,
    label_key="label",
    class_names=("plain", "marked"),
    columns=(
        data_spec.FeatureColumn("colour", data_spec.STRING),
        data_spec.FeatureColumn("count", data_spec.INT),
    ),
)
COLOURS = ("red", "green", "blue", "red, dark")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """requests and gRPC honour proxy variables; the double is on loopback."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@dataclasses.dataclass(frozen=True)
class TableExport:
    spec: data_spec.DataSpec
    base_path: str
    loaded: object


def export_table_model(folder, spec, train_features, labels) -> TableExport:
    """seed_nonlinear after a few eager epochs, exported as version 1."""
    tf.keras.utils.set_random_seed(0)
    model = tabular_models.build(
        "seed_nonlinear", spec.columns, spec.num_classes, train_features
    )
    # Eagerly: tracing Keras's train step takes longer than these few steps.
    model.compile(
        optimizer=keras.optimizers.Adam(0.1),
        loss="binary_crossentropy",
        run_eagerly=True,
    )
    model.fit(train_features, labels, epochs=3, batch_size=32, verbose=0)
    base_path = folder / spec.name
    signatures.export_serving_model(model, str(base_path / "1"), spec)
    return TableExport(spec, str(base_path), tf.saved_model.load(str(base_path / "1")))


@pytest.fixture(scope="module")
def circles_csv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("circles_data")
    return tabular_data.write_circles(str(folder), n_points=CIRCLE_POINTS)


@pytest.fixture(scope="module")
def circles(tmp_path_factory, circles_csv):
    train_features, labels = tabular_data.read_csv(circles_csv["train"])
    return export_table_model(
        tmp_path_factory.mktemp("circles_model"),
        data_spec.CIRCLES,
        train_features,
        labels,
    )


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A string column and an int column: marked when red or counting over 5."""
    rng = np.random.default_rng(0)
    colour = rng.choice(COLOURS[:3], size=300)
    count = rng.integers(0, 10, size=300)
    labels = ((colour == "red") | (count > 5)).astype(np.int64)
    features = {"colour": colour, "count": count.astype(np.int64)}
    return export_table_model(
        tmp_path_factory.mktemp("shapes_model"), SHAPES, features, labels
    )


@pytest.fixture(scope="module")
def circles_double(circles):
    with TFServingDouble(circles.spec.name, circles.base_path) as double:
        yield double


@pytest.fixture(scope="module")
def shapes_double(shapes):
    with TFServingDouble(shapes.spec.name, shapes.base_path) as double:
        yield double


def backend(kind, double, export, **options):
    if kind == "rest":
        return client.RestBackend(
            double.rest_url, export.spec.name, timeout_s=10, **options
        )
    if kind == "grpc":
        return client.GrpcBackend(
            double.grpc_address, export.spec.name, timeout_s=10, **options
        )
    return client.LocalBackend(export.base_path, **options)


def predict_table(backend, paths, signature_name=None, **options):
    """Asks once, then closes the backend (its channel, session or model)."""
    with client.Client(backend, signature_name, **options) as predictor:
        return predictor.predict_table(client.load_tables([str(p) for p in paths]))


def read_rows(path) -> list[dict]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def typed_rows(rows, spec) -> list[dict]:
    """The rows' feature cells as the spec's column kinds read them."""
    kinds = {data_spec.FLOAT: float, data_spec.INT: int, data_spec.STRING: str}
    return [
        {column.name: kinds[column.kind](row[column.name]) for column in spec.columns}
        for row in rows
    ]


def by_signature(export, signature_name, rows) -> dict[str, np.ndarray]:
    """The SavedModel's own signature called on the rows, in one batch."""
    inputs = signatures.table_request_inputs(
        signature_name, typed_rows(rows, export.spec), export.spec
    )
    outputs = export.loaded.signatures[signature_name](**inputs)
    return {name: tensor.numpy() for name, tensor in outputs.items()}


def assert_same_answers(result, expected, class_names):
    np.testing.assert_allclose(
        result.probabilities, expected["probabilities"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(result.class_ids, expected["class_ids"])
    assert [item.class_name for item in result.predictions] == [
        class_names[index] for index in expected["class_ids"]
    ]


def write_csv(path, header, rows) -> str:
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def run_cli(capsys, *args) -> tuple[int, list[str], list[str]]:
    code = cli.main(["predict", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


# ---------------------------------------------------------------------------
# Answers


@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("signature_name", signatures.TABULAR_SIGNATURE_NAMES)
def test_rest_grpc_and_local_answer_as_the_signature_does(
    kind, signature_name, circles, circles_double, circles_csv
):
    path = circles_csv["eval"]
    rows = read_rows(path)
    expected = by_signature(circles, signature_name, rows)
    result = predict_table(
        backend(kind, circles_double, circles),
        [path],
        signature_name,
        batch_size=BATCH_SIZE,
    )
    assert len(result.predictions) == len(rows) == CIRCLE_POINTS // 5
    assert result.requests == -(-len(rows) // BATCH_SIZE)
    assert result.signature_name == signature_name
    assert result.model_version == 1
    assert_same_answers(result, expected, tabular_data.CIRCLES_CLASS_NAMES)
    # Both classes are answered, so a reordering of the rows would show.
    assert set(result.class_ids.tolist()) == {0, 1}


def test_serving_raw_is_the_default_and_rest_sends_named_rows(
    circles, circles_double, circles_csv
):
    path = circles_csv["eval"]
    rows = read_rows(path)[:3]
    start = len(circles_double.requests)
    first_body = len(circles_double.rest_bodies)
    result = predict_table(
        backend("rest", circles_double, circles), [path], batch_size=64
    )
    assert result.signature_name == signatures.SERVING_RAW
    assert circles_double.requests[start:] == [
        ("rest", "GET", "/v1/models/circles/metadata"),
        ("rest", "POST", "/v1/models/circles:predict"),
        ("rest", "POST", "/v1/models/circles:predict"),
    ]
    body = circles_double.rest_bodies[first_body]
    assert body["signature_name"] == "serving_raw"
    assert body["instances"][:3] == [
        {"x": float(np.float32(row["x"])), "y": float(np.float32(row["y"]))}
        for row in rows
    ]


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_string_and_int_column_model_answers_as_its_signature(
    kind, shapes, shapes_double, tmp_path
):
    # A colour never seen in training, and one holding a comma (quoted).
    table = [(colour, count) for colour in (*COLOURS, "purple") for count in (0, 7)]
    path = write_csv(tmp_path / "shapes.csv", ["colour", "count"], table)
    rows = read_rows(path)
    first_body = len(shapes_double.rest_bodies)
    for signature_name in signatures.TABULAR_SIGNATURE_NAMES:
        result = predict_table(
            backend(kind, shapes_double, shapes), [path], signature_name
        )
        expected = by_signature(shapes, signature_name, rows)
        assert_same_answers(result, expected, SHAPES.class_names)
    assert set(result.class_ids.tolist()) == {0, 1}
    if kind == "rest":
        # Text goes as JSON strings, integers as JSON integers, tf.Examples as
        # {"b64": ...}.
        bodies = {
            body["signature_name"]: body
            for body in shapes_double.rest_bodies[first_body:]
        }
        raw_body, examples_body = bodies["serving_raw"], bodies["serving_default"]
        assert raw_body["instances"][6] == {"colour": "red, dark", "count": 0}
        assert set(examples_body["instances"][0]) == {"b64"}


# ---------------------------------------------------------------------------
# The double speaks TF Serving's JSON for several named inputs


def post(double, body) -> requests.Response:
    return requests.post(
        f"{double.rest_url}/v1/models/shapes:predict", json=body, timeout=10
    )


def test_the_double_takes_named_inputs_in_row_and_columnar_format(
    shapes, shapes_double
):
    rows = [{"colour": "red", "count": "1"}, {"colour": "blue", "count": "8"}]
    expected = by_signature(shapes, "serving_raw", rows)
    row_format = post(
        shapes_double,
        {
            "signature_name": "serving_raw",
            "instances": [
                {"colour": "red", "count": 1},
                {"count": 8, "colour": "blue"},
            ],
        },
    )
    assert row_format.status_code == 200, row_format.text
    predictions = row_format.json()["predictions"]
    np.testing.assert_allclose(
        [row["probabilities"] for row in predictions], expected["probabilities"]
    )
    assert [row["class_names"] for row in predictions] == [
        SHAPES.class_names[index] for index in expected["class_ids"]
    ]
    columnar = post(
        shapes_double,
        {
            "signature_name": "serving_raw",
            "inputs": {"colour": ["red", "blue"], "count": [1, 8]},
        },
    )
    assert columnar.status_code == 200, columnar.text
    np.testing.assert_allclose(
        columnar.json()["outputs"]["probabilities"], expected["probabilities"]
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"instances": [{"colour": "red", "count": 1.5}]},
            r"element: 0 key: count .*JSON Value: 1\.5 Type: Number is not of "
            "expected type: int64",
        ),
        (
            {"instances": [{"colour": "red", "count": "1"}]},
            r'JSON Value: "1" Type: String is not of expected type: int64',
        ),
        (
            {"instances": [{"colour": 3, "count": 1}]},
            r"JSON Value: 3 Type: Number is not of expected type: string",
        ),
        (
            {"instances": [{"colour": "red", "count": 1}, {"colour": "red"}]},
            r"element: 1 of 'instances' list.* keys must be equal to: colour,count",
        ),
        (
            {"instances": [{"colour": "red", "count": 1, "size": 2}]},
            r"does not have named input: size",
        ),
        (
            {"instances": ["red", "blue"]},
            "instances is a plain list, but expecting list of objects",
        ),
        (
            {"inputs": {"colour": ["red"]}},
            r"Missing named input: count in 'inputs' object",
        ),
    ],
)
def test_the_double_refuses_what_tf_serving_refuses(shapes_double, body, message):
    response = post(shapes_double, {"signature_name": "serving_raw", **body})
    assert response.status_code == 400
    assert re.search(message, response.json()["error"])


# ---------------------------------------------------------------------------
# Signatures


def tensor(dtype_name, *shape):
    return client.TensorSpec(dtype_name, tuple(shape))


OUTPUTS = {name: tensor("float32", -1) for name in client.REQUIRED_OUTPUTS}


def test_table_signatures_are_checked_against_the_metadata():
    raw = client.SignatureSpec(
        {"x": tensor("float32", -1), "kind": tensor("string", -1)}, OUTPUTS
    )
    examples = client.SignatureSpec({"examples": tensor("string", -1)}, OUTPUTS)
    table = {"serving_default": examples, "serving_raw": raw}
    assert client.default_signature(table) == "serving_raw"
    plan = client.check_table_signature(table, "serving_default", "model")
    assert plan.columns == raw.inputs
    assert plan.inputs == {"examples": tensor("string", -1)}
    assert client.check_table_signature(table, "serving_raw", "model").inputs == (
        raw.inputs
    )
    # tf.Examples whose feature types nothing declares are not guessed.
    with pytest.raises(client.PredictionError, match="no serving_raw signature"):
        client.check_table_signature(
            {"serving_default": examples}, "serving_default", "m"
        )
    wide = client.SignatureSpec({"x": tensor("float32", -1, 3)}, OUTPUTS)
    with pytest.raises(
        client.PredictionError, match=r"declares input x as float32 \[-1, 3\]"
    ):
        client.check_table_signature({"serving_raw": wide}, "serving_raw", "m")
    boolean = client.SignatureSpec({"x": tensor("bool", -1)}, OUTPUTS)
    with pytest.raises(client.PredictionError, match=r"declares input x as bool"):
        client.check_table_signature({"serving_raw": boolean}, "serving_raw", "m")


def test_an_image_model_refuses_tables_and_a_table_model_images():
    image_model = {
        "serving_default": client.SignatureSpec(
            {"examples": tensor("string", -1)}, OUTPUTS
        ),
        "serving_images": client.SignatureSpec(
            {"images": tensor("float32", -1, 28, 28)}, OUTPUTS
        ),
    }
    assert client.default_signature(image_model) == "serving_images"
    for name in image_model:
        with pytest.raises(client.InputError, match="is an image model"):
            client.check_table_signature(image_model, name, "model 'm'")
    table_model = {
        "serving_default": image_model["serving_default"],
        "serving_raw": client.SignatureSpec({"x": tensor("float32", -1)}, OUTPUTS),
    }
    for name in table_model:
        with pytest.raises(
            client.InputError, match=r"is a table model: .* takes x \(float32"
        ):
            client.check_signature(table_model, name, "model 'm'")


@pytest.mark.parametrize(
    ("cell", "dtype_name", "message"),
    [
        ("?", "float32", "'?' is not a number"),
        ("  ", "float32", "the cell is blank"),
        ("nan", "float32", "'nan' is not a finite number"),
        ("1e39", "float32", "out of the range of float32"),
        ("1.5", "int64", "'1.5' is not an integer"),
        ("300", "uint8", "out of the range of uint8"),
    ],
)
def test_cells_that_do_not_fit_the_dtype_are_refused(cell, dtype_name, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        client.parse_cell(cell, dtype_name)


def test_cells_that_fit_are_read_as_the_dtype():
    assert client.parse_cell(" 2.5 ", "float32") == 2.5
    assert client.parse_cell(" -7 ", "int64") == -7
    # Strings are kept as they are, spaces and all, as in training.
    assert client.parse_cell(" red ", "string") == " red "


# ---------------------------------------------------------------------------
# The command line


def test_cli_reads_quoted_fields_and_ignores_extra_columns(
    circles, circles_double, circles_csv, tmp_path, capsys
):
    rows = read_rows(circles_csv["eval"])[:4]
    path = tmp_path / "points.csv"
    # Other columns in another order, a quoted comma, a quoted line break and a
    # blank line: each row's source is the line it starts on.
    path.write_text(
        "note,y,label,x\n"
        f'"first, with a comma",{rows[0]["y"]},{rows[0]["label"]},{rows[0]["x"]}\n'
        f'"second\nspans two lines",{rows[1]["y"]},1,{rows[1]["x"]}\n'
        "\n"
        f'plain,{rows[2]["y"]},0,"{rows[2]["x"]}"\n'
        f'"say ""hi""",{rows[3]["y"]},,{rows[3]["x"]}\n'
    )
    expected = by_signature(circles, "serving_raw", rows)
    code, out, err = run_cli(
        capsys, path, "--rest", circles_double.rest_url, "--model-name", "circles"
    )
    assert code == 0, err
    names = tabular_data.CIRCLES_CLASS_NAMES
    assert out[:4] == [
        f"{path}:{line}\t{names[class_id]}\t{probabilities.max():.3f}"
        for line, class_id, probabilities in zip(
            (2, 3, 6, 7),
            expected["class_ids"],
            expected["probabilities"],
            strict=True,
        )
    ]
    assert re.fullmatch(
        r"4 rows from 1 file: serving_raw of model 'circles' version 1 via REST "
        rf"{re.escape(circles_double.rest_url)}, 1 request, [\d.]+ s",
        out[4],
    )
    assert len(out) == 5


def test_cli_asks_serving_default_over_grpc_and_in_process(
    circles, circles_double, circles_csv, capsys
):
    path = circles_csv["eval"]
    outputs = []
    for target in (
        ["--grpc", circles_double.grpc_address, "--model-name", "circles"],
        ["--local", circles.base_path],
    ):
        code, out, err = run_cli(
            capsys, path, *target, "--signature", "serving_default", "--limit", 5
        )
        assert code == 0, err
        assert len(out) == 6
        assert out[5].startswith("5 rows from 1 file: serving_default of ")
        outputs.append(out[:5])
    assert outputs[0] == outputs[1]
    assert [line.split("\t")[0] for line in outputs[0]] == [
        f"{path}:{line}" for line in range(2, 7)
    ]


def test_cli_exits_2_naming_line_and_column_of_a_cell_that_is_not_a_number(
    circles_double, tmp_path, capsys
):
    path = write_csv(
        tmp_path / "bad.csv", ["x", "y"], [["0.5", "0.25"], ["0.1", "0.2"], ["?", "1"]]
    )
    start = len(circles_double.requests)
    for target in (
        ["--rest", circles_double.rest_url],
        ["--grpc", circles_double.grpc_address],
    ):
        code, out, err = run_cli(capsys, path, *target, "--model-name", "circles")
        assert code == cli.EXIT_BAD_INPUT == 2
        assert out == []
        assert err == [
            f"error: {path} line 4, column 'x': '?' is not a number "
            "(the model takes x as float32)"
        ]
    # The metadata was read; no row was sent.
    assert [call[1] for call in circles_double.requests[start:]] == [
        "GET",
        "GetModelMetadata",
    ]


def test_cli_exits_2_naming_a_missing_column_and_the_header(
    circles_double, tmp_path, capsys
):
    path = write_csv(tmp_path / "no_y.csv", ["x", "label", "z"], [["0.5", "1", "2"]])
    code, out, err = run_cli(
        capsys, path, "--rest", circles_double.rest_url, "--model-name", "circles"
    )
    assert code == 2
    assert out == []
    assert err == [
        f"error: {path}: the header has no column 'y'; it has ['x', 'label', 'z']"
    ]


def test_cli_exits_2_for_a_count_that_is_not_an_integer(
    shapes_double, tmp_path, capsys
):
    path = write_csv(
        tmp_path / "counts.csv", ["colour", "count"], [["red", "1"], ["blue", "2.5"]]
    )
    code, out, err = run_cli(
        capsys, path, "--grpc", shapes_double.grpc_address, "--model-name", "shapes"
    )
    assert code == 2
    assert err == [
        f"error: {path} line 3, column 'count': '2.5' is not an integer "
        "(the model takes count as int64)"
    ]


def test_cli_exits_2_for_rows_of_the_wrong_width_and_for_mixed_files(
    circles_double, tmp_path, capsys
):
    start = len(circles_double.requests)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("x,y\n0.1,0.2\n0.3\n")
    picture = tmp_path / "item.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(picture)
    target = ["--rest", circles_double.rest_url, "--model-name", "circles"]
    code, out, err = run_cli(capsys, ragged, *target)
    assert (code, out) == (2, [])
    assert err == [f"error: {ragged} line 3: 1 fields where the header has 2"]
    code, out, err = run_cli(capsys, ragged, picture, *target)
    assert (code, out) == (2, [])
    assert f"{ragged} is a table, {picture} is not" in err[0]
    # Neither reached the server.
    assert circles_double.requests[start:] == []


def test_cli_exits_2_for_images_sent_to_a_table_model(circles_double, tmp_path, capsys):
    picture = tmp_path / "item.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(picture)
    code, out, err = run_cli(
        capsys,
        picture,
        "--grpc",
        circles_double.grpc_address,
        "--model-name",
        "circles",
    )
    assert (code, out) == (2, [])
    assert "model 'circles' version 1 via gRPC" in err[0]
    assert (
        "is a table model: its serving_raw signature takes x (float32 [-1])" in (err[0])
    )


def test_a_table_without_rows_is_refused_before_any_request(tmp_path):
    empty, header_only = tmp_path / "empty.csv", tmp_path / "header.csv"
    empty.write_text("")
    header_only.write_text("x,y\n\n")
    with pytest.raises(client.TableInputError, match="is empty; expected a header"):
        client.load_files([str(empty)])
    with pytest.raises(client.TableInputError, match="has a header but no rows"):
        client.load_files([str(header_only)])
    with pytest.raises(client.TableInputError, match="cannot open"):
        client.read_csv_file(str(tmp_path / "missing.csv"))
