"""Pipeline → IR YAML, shared by `compile.py`, `textclf compile` and the submit runners."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence

from kfp import compiler

from components.ops import DEFAULT_IMAGE
from pipelines.pipeline import DEFAULT_MODELS, create_pipeline
from pipelines.resources import VERTEX_DEFAULTS


def default_resources(overrides: Optional[Mapping[str, Any]] = None) -> dict:
    """Vertex AI's defaults with `overrides` applied entry by entry, field by field."""
    merged = {key: dict(value) for key, value in VERTEX_DEFAULTS.items()}
    for key, value in (overrides or {}).items():
        merged[key] = {**merged.get(key, {}), **value}
    return merged


def compile_pipeline(output: str = "pipeline.yaml", image: str = DEFAULT_IMAGE,
                     models: Sequence[str] = DEFAULT_MODELS, resources: Optional[Mapping[str, Any]] = None,
                     gpu_image: str = "", teacher: str = "") -> str:
    """Writes the pipeline for `models` with `resources` (default: Vertex AI's) to `output`."""
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    pipeline = create_pipeline(image, models, default_resources(resources), gpu_image=gpu_image, teacher=teacher)
    compiler.Compiler().compile(pipeline, package_path=output)
    return output
