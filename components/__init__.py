"""Custom TFX components and module code for the Keras classifier pipeline.

TFX 1.16's Trainer and TFMA expect Keras 2 SavedModels, while TensorFlow 2.16's
`tf.keras` is Keras 3 unless TF_USE_LEGACY_KERAS is set before TensorFlow is
imported; importing this package sets it.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
