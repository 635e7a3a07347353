"""Look-ups in the ML Metadata store that a step or a command needs at run time.

The store is named by a connection text (see `connection_text`): a SQLite file
on one machine, or the cluster's metadata gRPC service. Artifacts are found
through the pipeline's context, so two pipelines sharing a store never see each
other's models or spans. On Kubeflow the artifact types carry a `tfx.` prefix;
both spellings are matched.
"""

from __future__ import annotations

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

SQLITE_PREFIX = "sqlite:"
GRPC_PREFIX = "grpc:"
PIPELINE_CONTEXT_TYPE = "pipeline"
SPAN_PROPERTY = "span"
BLESSED_PROPERTY = "blessed"
CURRENT_MODEL_URI_PROPERTY = "current_model"


def connection_text(sqlite_path: str = "", grpc_host: str = "", grpc_port=0) -> str:
    """`sqlite:<path>` or `grpc:<host>:<port>`, as an exec property carries it."""
    if sqlite_path:
        return f"{SQLITE_PREFIX}{sqlite_path}"
    return f"{GRPC_PREFIX}{grpc_host}:{grpc_port}"


def open_store(text: str) -> metadata_store.MetadataStore:
    """Opens the store a connection text names."""
    if text.startswith(SQLITE_PREFIX):
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = text[len(SQLITE_PREFIX) :]
        config.sqlite.connection_mode = (
            metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
        )
        return metadata_store.MetadataStore(config)
    if text.startswith(GRPC_PREFIX):
        host, _, port = text[len(GRPC_PREFIX) :].rpartition(":")
        client = metadata_store_pb2.MetadataStoreClientConfig(host=host, port=int(port))
        return metadata_store.MetadataStore(client)
    raise ValueError(
        f"metadata connection {text!r}: expected sqlite:<path> or grpc:<host>:<port>"
    )


def _type_matches(type_name: str, wanted: str) -> bool:
    return type_name in (wanted, f"tfx.{wanted}")


def pipeline_artifacts(
    store: metadata_store.MetadataStore, pipeline_name: str, type_name: str
) -> list[metadata_store_pb2.Artifact]:
    """LIVE artifacts of one type recorded for the pipeline, oldest first."""
    context = store.get_context_by_type_and_name(PIPELINE_CONTEXT_TYPE, pipeline_name)
    if context is None:
        return []
    types = {
        artifact_type.id: artifact_type.name
        for artifact_type in store.get_artifact_types()
    }
    return sorted(
        (
            artifact
            for artifact in store.get_artifacts_by_context(context.id)
            if _type_matches(types.get(artifact.type_id, ""), type_name)
            and artifact.state == metadata_store_pb2.Artifact.LIVE
        ),
        key=lambda artifact: artifact.id,
    )


def _int_property(artifact: metadata_store_pb2.Artifact, name: str):
    for properties in (artifact.custom_properties, artifact.properties):
        if name in properties:
            return properties[name].int_value
    return None


def span_of(artifact: metadata_store_pb2.Artifact) -> int | None:
    return _int_property(artifact, SPAN_PROPERTY)


def latest_blessed_model_uri(
    store: metadata_store.MetadataStore, pipeline_name: str
) -> str | None:
    """The folder of the newest Model the Evaluator blessed here, or None.

    The blessing records its model's URI; the URI, unlike the artifact id,
    means the same on every orchestrator.
    """
    blessed = [
        blessing.custom_properties[CURRENT_MODEL_URI_PROPERTY].string_value
        for blessing in pipeline_artifacts(store, pipeline_name, "ModelBlessing")
        if _int_property(blessing, BLESSED_PROPERTY) == 1
        and CURRENT_MODEL_URI_PROPERTY in blessing.custom_properties
    ]
    return blessed[-1] if blessed else None


def artifact_span(artifact) -> int:
    """A TFX Artifact's span: ExampleGen's driver records it as a custom
    property, which the `span` attribute does not read."""
    if artifact.has_custom_property(SPAN_PROPERTY):
        return artifact.get_int_custom_property(SPAN_PROPERTY)
    return artifact.span


def previous_span_statistics(
    store: metadata_store.MetadataStore, pipeline_name: str, span: int
) -> tuple[int, str] | None:
    """(span, folder) of the statistics computed on the newest earlier span.

    The examples of the highest span below `span` are found by their span;
    their statistics through the metadata store's lineage (the execution that
    read those examples and wrote ExampleStatistics).
    """
    earlier = [
        artifact
        for artifact in pipeline_artifacts(store, pipeline_name, "Examples")
        if (span_of(artifact) is not None) and span_of(artifact) < span
    ]
    if not earlier:
        return None
    newest_span = max(span_of(artifact) for artifact in earlier)
    example_ids = [a.id for a in earlier if span_of(a) == newest_span]
    reader_ids = {
        event.execution_id
        for event in store.get_events_by_artifact_ids(example_ids)
        if event.type == metadata_store_pb2.Event.INPUT
    }
    if not reader_ids:
        return None
    output_ids = {
        event.artifact_id
        for event in store.get_events_by_execution_ids(sorted(reader_ids))
        if event.type == metadata_store_pb2.Event.OUTPUT
    }
    types = {
        artifact_type.id: artifact_type.name
        for artifact_type in store.get_artifact_types()
    }
    statistics = [
        artifact
        for artifact in store.get_artifacts_by_id(sorted(output_ids))
        if _type_matches(types.get(artifact.type_id, ""), "ExampleStatistics")
        and artifact.state == metadata_store_pb2.Artifact.LIVE
    ]
    if not statistics:
        return None
    return newest_span, max(statistics, key=lambda artifact: artifact.id).uri


def trained_spans(store: metadata_store.MetadataStore, pipeline_name: str) -> set[int]:
    """Spans of the Examples that a Trainer execution of this pipeline completed on."""
    context = store.get_context_by_type_and_name(PIPELINE_CONTEXT_TYPE, pipeline_name)
    if context is None:
        return set()
    execution_types = {
        execution_type.id: execution_type.name
        for execution_type in store.get_execution_types()
    }
    done = (
        metadata_store_pb2.Execution.COMPLETE,
        metadata_store_pb2.Execution.CACHED,
    )
    trainer_ids = [
        execution.id
        for execution in store.get_executions_by_context(context.id)
        if execution.last_known_state in done
        and execution_types.get(execution.type_id, "").endswith("Trainer")
    ]
    if not trainer_ids:
        return set()
    input_ids = {
        event.artifact_id
        for event in store.get_events_by_execution_ids(trainer_ids)
        if event.type == metadata_store_pb2.Event.INPUT
    }
    artifact_types = {
        artifact_type.id: artifact_type.name
        for artifact_type in store.get_artifact_types()
    }
    return {
        span_of(artifact)
        for artifact in store.get_artifacts_by_id(sorted(input_ids))
        if _type_matches(artifact_types.get(artifact.type_id, ""), "Examples")
        and span_of(artifact) is not None
    }
