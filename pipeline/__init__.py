"""The pipeline definition, its typed config, the local runner and the command line."""

import components  # noqa: F401 - sets TF_USE_LEGACY_KERAS before TensorFlow loads.
