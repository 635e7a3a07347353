"""The run report's pieces on small fixtures: the lineage query on a real ML
Metadata store, TFDV's anomalies table, the curves, the page of a run that
left no metadata, and that page in headless Chromium."""

import io
import time

import numpy as np
import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from PIL import Image
from tensorflow_metadata.proto.v0 import anomalies_pb2

from pipeline import data_views, report, summary
from pipeline.config import load_config
from tests import headless_chromium


def _new_store(path):
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(path)
    connection.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    return metadata_store.MetadataStore(connection)


class _Recorder:
    """Writes executions, artifacts and runs the way TFX records them."""

    def __init__(self, store):
        self.store = store
        self.types = {}
        for kind, names in (
            (metadata_store_pb2.ArtifactType, ("Examples", "Model", "PushedModel")),
            (metadata_store_pb2.ExecutionType, ("Trainer", "VersionedPusher")),
            (metadata_store_pb2.ContextType, ("pipeline_run",)),
        ):
            put = {
                metadata_store_pb2.ArtifactType: store.put_artifact_type,
                metadata_store_pb2.ExecutionType: store.put_execution_type,
                metadata_store_pb2.ContextType: store.put_context_type,
            }[kind]
            for name in names:
                self.types[name] = put(kind(name=name))

    def run(self, name):
        context = metadata_store_pb2.Context(
            type_id=self.types["pipeline_run"], name=name
        )
        return self.store.put_contexts([context])[0]

    def artifact(self, type_name, uri, **custom):
        artifact = metadata_store_pb2.Artifact(type_id=self.types[type_name], uri=uri)
        for key, value in custom.items():
            if isinstance(value, int):
                artifact.custom_properties[key].int_value = value
            else:
                artifact.custom_properties[key].string_value = value
        return self.store.put_artifacts([artifact])[0]

    def execution(self, type_name, run_id, inputs, outputs):
        execution = metadata_store_pb2.Execution(
            type_id=self.types[type_name],
            last_known_state=metadata_store_pb2.Execution.COMPLETE,
        )
        (execution_id,) = self.store.put_executions([execution])
        events = []
        for event_type, keyed in (
            (metadata_store_pb2.Event.INPUT, inputs),
            (metadata_store_pb2.Event.OUTPUT, outputs),
        ):
            for key, artifact_id in keyed.items():
                event = metadata_store_pb2.Event(
                    artifact_id=artifact_id, execution_id=execution_id, type=event_type
                )
                event.path.steps.add().key = key
                events.append(event)
        self.store.put_events(events)
        self.store.put_attributions_and_associations(
            [],
            [
                metadata_store_pb2.Association(
                    context_id=run_id, execution_id=execution_id
                )
            ],
        )
        # Creation times are in ms; keep the executions apart.
        time.sleep(0.01)
        return execution_id


@pytest.fixture
def recorded(tmp_path):
    """Two pushes: run-1 trains on span 1 and pushes version 1, run-2 trains
    on span 2 and pushes version 2, run-3 is served version 2 from the cache."""
    store = _new_store(tmp_path / "metadata.sqlite")
    record = _Recorder(store)
    serving = tmp_path / "serving"
    for number in (1, 2):
        run = record.run(f"run-{number}")
        examples = record.artifact("Examples", f"/examples/{number}", span=number)
        model = record.artifact("Model", f"/model/{number}")
        pushed = record.artifact(
            "PushedModel",
            f"/pushed/{number}",
            pushed=1,
            pushed_version=str(number),
            pushed_destination=str(serving / str(number)),
        )
        record.execution("Trainer", run, {"examples": examples}, {"model": model})
        record.execution(
            "VersionedPusher", run, {"model": model}, {"pushed_model": pushed}
        )
        (serving / str(number)).mkdir(parents=True)
    cached_run = record.run("run-3")
    record.execution(
        "VersionedPusher", cached_run, {"model": model}, {"pushed_model": pushed}
    )
    return store, serving


def test_lineage_names_run_model_examples_and_span_of_the_served_version(recorded):
    store, serving = recorded
    lineage = report.served_lineage(store, str(serving))
    assert lineage == report.ServedLineage(
        version="2",
        folder=str(serving / "2"),
        model_uri="/model/2",
        pushed_by_run="run-2",
        trained_by_run="run-2",
        examples_uri="/examples/2",
        span=2,
    )


def test_lineage_follows_the_versions_still_in_the_serving_folder(recorded):
    store, serving = recorded
    (serving / "2").rmdir()
    lineage = report.served_lineage(store, str(serving))
    assert (lineage.version, lineage.pushed_by_run, lineage.span) == ("1", "run-1", 1)
    (serving / "1").rmdir()
    assert report.served_lineage(store, str(serving)) is None


def test_tfdvs_anomalies_table_names_split_feature_and_description():
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info["label"]
    info.severity = anomalies_pb2.AnomalyInfo.ERROR
    info.short_description = "Out-of-range values"
    info.description = "Unexpectedly large value: 10."
    page = data_views.anomalies_section(
        {"train": anomalies, "eval": anomalies_pb2.Anomalies()}
    )
    assert "<h4>train</h4>" in page
    assert "Unexpectedly large value: 10." in page and "<th>'label'</th>" in page
    assert "eval: no anomalies." in page


def test_training_curves_are_a_png_of_three_panels():
    history = {
        "loss": [1.0, 0.6, 0.4],
        "val_loss": [1.1, 0.7, 0.5],
        "accuracy": [0.5, 0.7, 0.8],
        "val_accuracy": [0.45, 0.65, 0.75],
        "lr": [1e-3, 1e-3, 7e-4],
    }
    image = Image.open(io.BytesIO(report.training_curves_png(history)))
    width, height = image.size
    # Three panels side by side: loss, accuracy, learning rate.
    assert width > 2.5 * height
    assert np.asarray(image.convert("L")).std() > 10


def _failed_run_page(tmp_path):
    config = load_config(
        overrides=[f"output_dir={tmp_path}", "data.dataset=circles"], environ={}
    )
    result = summary.RunSummary(
        pipeline_name="circles",
        run_id="2026-12-04T10:00:00.000001",
        outcome=summary.BAD_INPUT,
        error="data.csv line 6, column 'x': '?' is not a float",
    )
    return config, report.write(config, result)


def test_a_run_without_metadata_gets_a_page_saying_what_is_missing(tmp_path):
    (tmp_path / "data").mkdir()
    _, path = _failed_run_page(tmp_path)
    assert path == str(
        tmp_path / "runs" / "circles" / "2026-12-04T10-00-00.000001.html"
    )
    page = open(path).read()
    assert "data.csv line 6, column &#x27;x&#x27;" in page
    assert "Nothing was trained in this run." in page
    assert "No version pushed by this pipeline is served." in page
    assert open(tmp_path / "runs" / "circles" / "latest.html").read() == page


def test_rebuilding_an_unknown_run_names_where_runs_are_recorded(tmp_path):
    (tmp_path / "data").mkdir()
    config, _ = _failed_run_page(tmp_path)
    with pytest.raises(report.ReportError, match="runs/circles"):
        report.rebuild(config, "2020-01-01T00:00:00")


def assert_loads_cleanly_in_chromium(path, screenshot_path):
    """Loads a report page in headless Chromium: no error, only local requests,
    and a screenshot that is not blank."""
    loaded = headless_chromium.load_page(str(path))
    assert loaded.errors == []
    assert loaded.failed_requests == []
    external = [
        url[:80] for url in loaded.requests if not url.startswith(("file:", "data:"))
    ]
    assert external == []
    with open(screenshot_path, "wb") as stream:
        stream.write(loaded.screenshot)
    image = Image.open(screenshot_path).convert("L")
    assert image.size[0] >= 800 and image.size[1] >= 400
    assert np.asarray(image).std() > 5, "the screenshot is blank"
    return loaded


def test_the_page_of_a_failed_run_loads_cleanly_in_chromium(tmp_path):
    (tmp_path / "data").mkdir()
    _, path = _failed_run_page(tmp_path)
    loaded = assert_loads_cleanly_in_chromium(path, tmp_path / "page.png")
    assert loaded.requests[0].startswith("file:")


def test_a_page_with_a_script_error_is_caught(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(
        "<html><body><p>text</p><img src='missing.png'>"
        "<script>undefinedFunction()</script></body></html>"
    )
    loaded = headless_chromium.load_page(str(page))
    assert any("undefinedFunction" in error for error in loaded.errors)
    assert any("missing.png" in failure for failure in loaded.failed_requests)


def test_without_chromium_the_browser_check_fails_saying_how_to_install(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(headless_chromium.ChromiumMissingError, match="apt-get"):
        headless_chromium.load_page(str(tmp_path / "page.html"))
