"""textclf-pipelines library code: every pipeline step as plain, testable Python.

TF Hub's KerasLayer and our models use Keras 2 (tf-keras); TensorFlow 2.21 defaults to Keras 3,
so the legacy switch is set before TensorFlow is first imported anywhere in the package.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from components import step_errors as _step_errors

_step_errors.install()  # only in a pipeline step the local runner started (it sets the variable)
