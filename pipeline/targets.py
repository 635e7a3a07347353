"""Where a pipeline runs when it does not run on this machine.

`create_pipeline` builds the local pipeline by default; given a ClusterTarget
it builds the same steps with the paths, Beam args and metadata store the
cluster's pods see (see kubeflow/runner.py).
"""

from __future__ import annotations

import dataclasses

KFP_BACKEND = "kfp"
VERTEX_BACKEND = "vertex"


@dataclasses.dataclass(frozen=True)
class ClusterTarget:
    """Paths and services as the pods of a Kubeflow run see them.

    Attributes:
      backend: kfp (open-source Kubeflow Pipelines v2) or vertex.
      pipeline_root: where the steps write their artifacts.
      data_dir: the folder of span-N/ folders.
      serving_model_dir: where the Pusher writes model versions.
      schema_file: the curated schema, as a path inside the image or a URI.
      beam_pipeline_args: passed to every Beam-based step.
      metadata_connection: the metadata store the look-up steps query, as
        components.metadata_lookup.connection_text writes it.
    """

    backend: str
    pipeline_root: str
    data_dir: str
    serving_model_dir: str
    schema_file: str
    beam_pipeline_args: tuple[str, ...]
    metadata_connection: str
