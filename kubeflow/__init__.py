"""The Kubeflow Pipelines runner: compile, submit and schedule the pipeline."""
