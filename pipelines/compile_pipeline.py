"""Pipeline → IR YAML, shared by `compile.py`, `textclf compile` and the submit runners."""

from __future__ import annotations

import os

from kfp import compiler

from components.ops import DEFAULT_IMAGE
from pipelines.text_classifier import build_pipeline


def compile_pipeline(output: str = "pipeline.yaml", image: str = DEFAULT_IMAGE) -> str:
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(image), package_path=output)
    return output
