"""The prediction client and `kpipe predict`: over REST and gRPC to a TF Serving
double, and in process, the answers are the model's; metadata is read first;
images are checked and batched; every failure says what and where."""

import contextlib
import re
import shutil
import socket

import numpy as np
import pytest
import requests
import tensorflow as tf
from PIL import Image

from components import features, idx, signatures
from pipeline import cli, client

IMAGE_COUNT = 100
PROXY_VARIABLES = ("http_proxy", "https_proxy", "grpc_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """requests and gRPC honour proxy variables; the double is on loopback."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(scope="module")
def images(fashion_mnist):
    return fashion_mnist[0][:IMAGE_COUNT]


@pytest.fixture(scope="module")
def expected(served_model, images):
    """The Keras model's probabilities for the test images."""
    return served_model.model.predict(
        images.reshape(-1, features.IMAGE_PIXELS).astype(np.float32), verbose=0
    )


@pytest.fixture(scope="module")
def loaded_model(served_model):
    return tf.saved_model.load(served_model.model_dir)


def rest(double, **options) -> client.RestBackend:
    return client.RestBackend(double.rest_url, timeout_s=10, **options)


def grpc_backend(double, **options) -> client.GrpcBackend:
    return client.GrpcBackend(double.grpc_address, timeout_s=10, **options)


def local(served_model) -> client.LocalBackend:
    return client.LocalBackend(served_model.base_path)


def predict(backend, images, signature_name=client.DEFAULT_SIGNATURE, **options):
    """Asks once, then closes the backend (its channel, session or model)."""
    with client.Client(backend, signature_name, **options) as predictor:
        return predictor.predict(images)


def top_names(probabilities) -> list[str]:
    return [features.CLASS_NAMES[index] for index in probabilities.argmax(axis=1)]


# ---------------------------------------------------------------------------
# Answers


@pytest.mark.parametrize("signature_name", signatures.SIGNATURE_NAMES)
def test_rest_grpc_and_local_answer_as_the_model_does(
    signature_name,
    tf_serving_double,
    served_model,
    loaded_model,
    images,
    expected,
):
    by_signature = loaded_model.signatures[signature_name](
        **signatures.request_inputs(signature_name, images)
    )
    results = {
        "rest": predict(rest(tf_serving_double), images, signature_name),
        "grpc": predict(grpc_backend(tf_serving_double), images, signature_name),
        "local": predict(local(served_model), images, signature_name),
    }
    for result in results.values():
        assert len(result.predictions) == IMAGE_COUNT
        np.testing.assert_allclose(result.probabilities, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(
            result.class_ids, by_signature["class_ids"].numpy()
        )
        assert [item.class_name for item in result.predictions] == top_names(expected)
        assert result.model_version == 1
    # The trained model does not answer one class for everything, so a
    # reordering of the images would show.
    assert len(set(results["rest"].class_ids.tolist())) >= 3
    # C06: the two protocols give the very same numbers.
    np.testing.assert_array_equal(
        results["rest"].probabilities, results["grpc"].probabilities
    )
    np.testing.assert_array_equal(results["rest"].class_ids, results["grpc"].class_ids)


def test_metadata_is_read_first_then_the_images_go_in_batches(
    tf_serving_double, images
):
    start = len(tf_serving_double.requests)
    result = predict(rest(tf_serving_double), images)
    assert result.requests == 2
    assert tf_serving_double.requests[start:] == [
        ("rest", "GET", "/v1/models/fashion_mnist/metadata"),
        ("rest", "POST", "/v1/models/fashion_mnist:predict"),
        ("rest", "POST", "/v1/models/fashion_mnist:predict"),
    ]
    start = len(tf_serving_double.requests)
    result = predict(grpc_backend(tf_serving_double), images, batch_size=30)
    assert result.requests == 4
    assert [call[1] for call in tf_serving_double.requests[start:]] == [
        "GetModelMetadata",
        "Predict",
        "Predict",
        "Predict",
        "Predict",
    ]


def test_a_chosen_version_is_asked_by_its_url(tf_serving_double, images):
    start = len(tf_serving_double.requests)
    result = predict(rest(tf_serving_double, model_version=1), images[:3])
    assert result.model_version == 1
    assert {call[2] for call in tf_serving_double.requests[start:]} == {
        "/v1/models/fashion_mnist/versions/1/metadata",
        "/v1/models/fashion_mnist/versions/1:predict",
    }


def test_a_single_image_is_sent_as_a_batch_of_one(
    tf_serving_double, served_model, images, expected
):
    # C07: a [28, 28] image must not be read as 28 images of 28 pixels.
    for backend in (rest(tf_serving_double), grpc_backend(tf_serving_double)):
        result = predict(backend, images[0])
        assert len(result.predictions) == 1
        np.testing.assert_allclose(
            result.probabilities[0], expected[0], rtol=1e-5, atol=1e-6
        )
    assert len(predict(local(served_model), images[0]).predictions) == 1


def test_the_double_refuses_a_rest_request_without_the_batch_level(
    tf_serving_double, images
):
    response = requests.post(
        f"{tf_serving_double.rest_url}/v1/models/fashion_mnist:predict",
        json={"signature_name": "serving_images", "instances": images[0].tolist()},
        timeout=10,
    )
    assert response.status_code == 400
    body = response.json()
    assert "predictions" not in body
    assert re.search(r"\[28,28\] is not compatible with .*\[\?,28,28\]", body["error"])


@pytest.mark.parametrize("dtype", [np.float64, np.uint8])
def test_float64_and_uint8_arrays_are_cast_to_what_the_model_declares(
    dtype, tf_serving_double, images, expected
):
    for backend in (rest(tf_serving_double), grpc_backend(tf_serving_double)):
        result = predict(backend, images[:5].astype(dtype))
        np.testing.assert_allclose(
            result.probabilities, expected[:5], rtol=1e-5, atol=1e-6
        )
    # Uncast, the server refuses the tensor, as TF Serving does.
    with (
        contextlib.closing(grpc_backend(tf_serving_double)) as backend,
        pytest.raises(client.PredictionError, match="INVALID_ARGUMENT.*float32"),
    ):
        backend.predict(
            signatures.SERVING_IMAGES,
            signatures.IMAGES_INPUT,
            images[:5].astype(dtype),
            client.TensorSpec(np.dtype(dtype).name, (-1, 28, 28)),
        )


def test_a_signature_declaring_other_shapes_is_refused_and_uint8_is_honoured():
    flat = client.SignatureSpec(
        inputs={"images": client.TensorSpec("float32", (-1, 784))},
        outputs={
            name: client.TensorSpec("float32", (-1,))
            for name in client.REQUIRED_OUTPUTS
        },
    )
    with pytest.raises(
        client.PredictionError,
        match=r"declares input images as float32 \[-1, 784\]; this client sends "
        r"images: numbers \[-1, 28, 28\]",
    ):
        client.check_signature({"serving_images": flat}, "serving_images", "model")
    as_uint8 = client.TensorSpec("uint8", (-1, 28, 28))
    batch = client.encode_batch(np.full((2, 28, 28), 7.6), "images", as_uint8)
    assert batch.dtype == np.uint8 and batch[0, 0, 0] == 8


def test_top_classes_are_named_only_when_the_names_are_known():
    probabilities = np.array([0.5, 0.1, 0.3, 0.1] + [0.0] * 6, np.float32)

    def result(name):
        prediction = client.Prediction(0, name, probabilities)
        return client.PredictionResult([prediction], "serving_images", 1, 1)

    fashion = result("T-shirt/top")
    assert fashion.top_classes(fashion.predictions[0], 2) == [
        ("T-shirt/top", 0.5),
        ("Pullover", pytest.approx(0.3)),
    ]
    # Another model's names: the Fashion-MNIST ones would be a guess.
    other = result("cat")
    assert [name for name, _ in other.top_classes(other.predictions[0], 2)] == [
        "cat",
        "class 2",
    ]


# ---------------------------------------------------------------------------
# Errors


def test_a_27x28_image_is_refused_before_any_request(tf_serving_double, images):
    start = len(tf_serving_double.requests)
    with pytest.raises(
        client.ImageInputError, match=r"shape \(27, 28\).*expected \(28, 28\)"
    ):
        predict(rest(tf_serving_double), images[0][:27])
    assert tf_serving_double.requests[start:] == []


@pytest.fixture
def silent_port():
    """A loopback port that is bound but not listening: connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_a_server_that_is_not_listening_is_named_as_not_reachable(silent_port, images):
    with pytest.raises(
        client.PredictionError,
        match=rf"REST API not reachable at http://127\.0\.0\.1:{silent_port}: "
        "Connection refused",
    ):
        predict(client.RestBackend(f"http://127.0.0.1:{silent_port}"), images[:2])
    with pytest.raises(
        client.PredictionError,
        match=rf"gRPC API not reachable at 127\.0\.0\.1:{silent_port}",
    ):
        predict(client.GrpcBackend(f"127.0.0.1:{silent_port}", timeout_s=5), images)


def test_an_unknown_signature_is_refused_listing_the_existing_ones(
    tf_serving_double, served_model, images
):
    start = len(tf_serving_double.requests)
    for backend in (
        rest(tf_serving_double),
        grpc_backend(tf_serving_double),
        local(served_model),
    ):
        with pytest.raises(client.PredictionError) as caught:
            predict(backend, images[:2], "serving_bytes")
        message = str(caught.value)
        assert "no signature 'serving_bytes'" in message
        assert "serving_default, serving_images, serving_png" in message
        assert "__saved_model_init_op" not in message
    asked = [call[1] for call in tf_serving_double.requests[start:]]
    assert asked == ["GET", "GetModelMetadata"]


def test_an_unknown_model_or_version_gets_the_servers_not_found_message(
    tf_serving_double, images
):
    with pytest.raises(
        client.PredictionError,
        match=r"model 'mnist' not found at http://127\.0\.0\.1:\d+ \(HTTP 404\): "
        r"Servable not found for request: Latest\(mnist\)",
    ):
        predict(rest(tf_serving_double, model_name="mnist"), images[:2])
    with pytest.raises(
        client.PredictionError,
        match=r"model 'fashion_mnist' version 7 not found .*NOT_FOUND.*"
        r"Specific\(fashion_mnist, 7\)",
    ):
        predict(grpc_backend(tf_serving_double, model_version=7), images[:2])


def test_a_refused_batch_carries_the_servers_own_message(tf_serving_double):
    # The client checks images itself, so a bad batch is sent past it here.
    narrow = np.zeros((2, 27, 28), np.float32)
    declared = client.TensorSpec("float32", (-1, 28, 28))
    for backend, code in (
        (rest(tf_serving_double), r"HTTP 400"),
        (grpc_backend(tf_serving_double), r"INVALID_ARGUMENT"),
    ):
        with (
            contextlib.closing(backend),
            pytest.raises(
                client.PredictionError,
                match=rf"refused the request .*{code}.*Shape of tensor images "
                r"\[2,27,28\] is not compatible",
            ),
        ):
            backend.predict("serving_images", "images", narrow, declared)


# ---------------------------------------------------------------------------
# Image files and local models


def test_every_kind_of_image_file_is_read_as_a_batch(tmp_path, images):
    gz, plain = tmp_path / "images-idx3-ubyte.gz", tmp_path / "images-idx3-ubyte"
    idx.write(str(gz), images[:10])
    idx.write(str(plain), images[:3])
    np.testing.assert_array_equal(client.read_image_file(str(gz), limit=4), images[:4])
    np.testing.assert_array_equal(client.read_image_file(str(plain)), images[:3])
    colour = tmp_path / "colour.png"
    Image.fromarray(np.stack([images[0]] * 3, axis=-1)).save(colour)
    np.testing.assert_array_equal(client.read_image_file(str(colour)), images[:1])
    photo = tmp_path / "photo.jpg"
    Image.fromarray(images[1]).save(photo, quality=95)
    assert client.read_image_file(str(photo)).shape == (1, 28, 28)
    rows = tmp_path / "rows.npy"
    np.save(rows, images[:3].reshape(3, 784).astype(np.float64))
    np.testing.assert_array_equal(client.read_image_file(str(rows)), images[:3])
    loaded = client.load_images([str(colour), str(plain)])
    assert loaded.sources == (
        str(colour),
        f"{plain}[0]",
        f"{plain}[1]",
        f"{plain}[2]",
    )
    assert loaded.images.shape == (4, 28, 28)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("narrow.npy", np.zeros((2, 27, 28)), r"shape \(2, 27, 28\)"),
        ("flat.npy", np.zeros(784), r"shape \(784,\)"),
        ("scaled.npy", np.full((28, 28), -0.5), r"raw pixels 0\.\.255, found -0\.5"),
        ("notes.txt", b"not an image", "not an IDX, PNG, JPEG or .npy file"),
        ("labels-idx1-ubyte", np.zeros(5, np.uint8), "expected a 3-dimensional IDX"),
        ("missing.png", None, "cannot open"),
    ],
)
def test_an_unusable_image_file_is_refused_naming_it(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif name.endswith(".npy"):
        np.save(path, content)
    elif content is not None:
        idx.write(str(path), content)
    with pytest.raises(client.ImageInputError, match=message) as caught:
        client.read_image_file(str(path))
    assert str(path) in str(caught.value)


def test_local_mode_loads_the_highest_integer_version(served_model, tmp_path, images):
    base = tmp_path / "fashion_mnist"
    for version in ("2", "10"):
        shutil.copytree(served_model.model_dir, base / version)
    # A push in progress (hidden) and other names are not versions.
    (base / ".incoming-1234").mkdir()
    (base / "11-old").mkdir()
    backend = client.LocalBackend(str(base))
    assert backend.model_dir == str(base / "10")
    assert predict(backend, images[:2]).model_version == 10
    assert client.LocalBackend(str(base), model_version=2).model_dir == str(base / "2")
    with pytest.raises(
        client.PredictionError, match="no version 3; versions found: 2, 10"
    ):
        client.LocalBackend(str(base), model_version=3)


# ---------------------------------------------------------------------------
# The command line


def run_cli(capsys, *args) -> tuple[int, list[str], list[str]]:
    code = cli.main(["predict", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def test_cli_predicts_an_idx_file_over_rest(
    tf_serving_double, tmp_path, capsys, images, expected
):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    idx.write(str(path), images[:20])
    code, out, err = run_cli(
        capsys,
        path,
        "--rest",
        tf_serving_double.rest_url,
        "--limit",
        5,
        "--batch-size",
        2,
    )
    assert code == 0, err
    assert out[:5] == [
        f"{path}[{index}]\t{name}\t{probability:.3f}"
        for index, (name, probability) in enumerate(
            zip(top_names(expected[:5]), expected[:5].max(axis=1), strict=True)
        )
    ]
    assert re.fullmatch(
        r"5 images from 1 file: serving_images of model 'fashion_mnist' version 1 "
        rf"via REST {re.escape(tf_serving_double.rest_url)}, 3 requests, [\d.]+ s",
        out[5],
    )
    assert len(out) == 6


def test_cli_predicts_png_files_over_grpc_with_the_top_three(
    tf_serving_double, tmp_path, capsys, images, expected
):
    paths = []
    for index in range(2):
        paths.append(tmp_path / f"item-{index}.png")
        Image.fromarray(images[index]).save(paths[-1])
    code, out, err = run_cli(
        capsys,
        *paths,
        "--grpc",
        tf_serving_double.grpc_address,
        "--signature",
        "serving_png",
        "--top",
        3,
    )
    assert code == 0, err
    for path, line, probabilities in zip(paths, out, expected, strict=False):
        fields = line.split("\t")
        assert fields[0] == str(path)
        order = np.argsort(-probabilities)[:3]
        assert fields[1] == features.CLASS_NAMES[order[0]]
        assert [float(value) for value in fields[2::2]] == pytest.approx(
            probabilities[order], abs=5e-4
        )
        assert len(fields) == 7
    assert out[2].startswith("2 images from 2 files: serving_png of model")


def test_cli_predicts_a_npy_file_in_process(
    served_model, tmp_path, capsys, images, expected
):
    path = tmp_path / "rows.npy"
    np.save(path, images[:3].reshape(3, features.IMAGE_PIXELS).astype(np.float64))
    code, out, err = run_cli(capsys, path, "--local", served_model.base_path)
    assert code == 0, err
    assert [line.split("\t")[:2] for line in out[:3]] == [
        [f"{path}[{index}]", name] for index, name in enumerate(top_names(expected[:3]))
    ]
    assert out[3].startswith(
        "3 images from 1 file: serving_images of SavedModel version 1 via local "
        f"{served_model.model_dir}, 1 request, "
    )


def test_cli_exits_2_for_a_wrong_size_image_and_1_for_a_dead_server(
    tmp_path, capsys, images, silent_port
):
    narrow = tmp_path / "narrow.png"
    Image.fromarray(images[0][:, :27]).save(narrow)
    code, out, err = run_cli(capsys, narrow, "--rest", f"127.0.0.1:{silent_port}")
    assert code == cli.EXIT_BAD_IMAGES == 2
    assert out == []
    assert len(err) == 1
    assert str(narrow) in err[0] and "(28, 27)" in err[0]

    good = tmp_path / "good.png"
    Image.fromarray(images[0]).save(good)
    code, out, err = run_cli(capsys, good, "--rest", f"127.0.0.1:{silent_port}")
    assert code == cli.EXIT_PREDICTION_FAILED == 1
    assert out == []
    assert err == [
        f"error: TF Serving REST API not reachable at http://127.0.0.1:{silent_port}: "
        "Connection refused"
    ]
