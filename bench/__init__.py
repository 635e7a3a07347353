"""Benchmarks that print figures as tables; none of them is a test.

Each script is a command line, so it turns TensorFlow's C++ log lines down
before TensorFlow loads, and imports `components` first, which selects the
Keras 2 that the product uses.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import components  # noqa: E402,F401 - sets TF_USE_LEGACY_KERAS before TensorFlow.
