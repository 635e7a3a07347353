"""The container image recipe, read statically (no Docker engine here): the
official TFX base image, the lock's exact pins, the package and the schemas
where the compiled spec expects them."""

import pathlib
import re

from kubeflow import runner

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "kubeflow" / "Dockerfile"


def instructions():
    """(instruction, arguments) for each line of the Dockerfile, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def lock_pins():
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)", line)
        if match:
            pins[match[1].lower()] = match[2]
    return pins


def test_the_base_is_the_official_tfx_image_of_the_pinned_version():
    (base,) = [rest for keyword, rest in instructions() if keyword == "FROM"]
    assert base == f"tensorflow/tfx:{lock_pins()['tfx']}"


def test_the_lock_is_installed_as_it_is_before_the_package():
    steps = instructions()
    runs = [rest for keyword, rest in steps if keyword == "RUN"]
    copies = [rest for keyword, rest in steps if keyword == "COPY"]
    assert "requirements.lock /pipeline/requirements.lock" in copies
    assert runs[0] == (
        "python -m pip install --no-cache-dir --no-deps -r /pipeline/requirements.lock"
    )
    assert runs[-1].endswith("--no-deps /pipeline")
    # No other pip install could change a pinned version.
    assert all("==" not in run and " -U" not in run for run in runs)


def test_the_lock_pins_what_the_tfx_image_and_kfp_need():
    pins = lock_pins()
    assert pins["tfx"] == "1.16.0"
    assert pins["kfp"] == "2.5.0"
    assert pins["protobuf"] == "3.20.3"
    assert pins["apache-beam"] == "2.59.0"


def test_the_package_and_schemas_land_where_the_spec_expects_them():
    copies = [rest for keyword, rest in instructions() if keyword == "COPY"]
    for folder in ("pipeline", "components", "kubeflow", "schemas"):
        assert f"{folder} {runner.IMAGE_PROJECT_DIR}/{folder}" in copies
    schema = ROOT / "schemas" / "circles" / "schema.pbtxt"
    assert runner.image_schema_path(str(schema)) == (
        f"{runner.IMAGE_PROJECT_DIR}/schemas/circles/schema.pbtxt"
    )
    assert any(
        "TF_USE_LEGACY_KERAS=1" in rest
        for keyword, rest in instructions()
        if keyword == "ENV"
    )
