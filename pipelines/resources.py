"""Machines, accelerators and retries per pipeline step, set when the pipeline is compiled.

A resources mapping names steps (`ingest`, `preprocess`, `train`, `evaluate`, `export`, `quantize`,
`tflite_evaluate`, `benchmark`, `collect`, `report`, `publish`), optionally per architecture
(`train.bert`), plus `default`; each entry takes `cpu` ("4"), `memory` ("16G"), `accelerator`
(a Vertex/Kubeflow accelerator type such as NVIDIA_L4) and `accelerator_count`. A more specific
key overrides a less specific one field by field: `default` < `train` < `train.bert`.

kfp's local runner ignores these settings (it warns and runs on this machine), so one compiled
pipeline serves every environment. A step given an accelerator runs in the GPU image.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional

from components.errors import ConfigError

STEPS = ("ingest", "preprocess", "train", "evaluate", "export", "quantize", "tflite_evaluate", "benchmark",
         "collect", "report", "publish")
FIELDS = ("cpu", "memory", "accelerator", "accelerator_count")
# The long steps: a preempted node or a transient failure should not cost the run.
RETRIES = {"preprocess": 2, "train": 3}

# Vertex AI's defaults: BERT fine-tuning on one GPU, everything else on small CPU machines (the
# LiteRT interpreter of the evaluation and latency steps runs on CPU).
VERTEX_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "default": {"cpu": "2", "memory": "8G"},
    "preprocess": {"cpu": "4", "memory": "16G"},
    "train": {"cpu": "4", "memory": "16G"},
    "train.bert": {"cpu": "8", "memory": "32G", "accelerator": "NVIDIA_L4", "accelerator_count": 1},
    "evaluate.bert": {"cpu": "8", "memory": "32G"},
    "export.bert": {"cpu": "4", "memory": "32G"},
    "quantize.bert": {"cpu": "4", "memory": "32G"},
}


@dataclasses.dataclass(frozen=True)
class StepResources:
    cpu: str = ""
    memory: str = ""
    accelerator: str = ""
    accelerator_count: int = 0

    @property
    def accelerated(self) -> bool:
        return bool(self.accelerator) and self.accelerator_count > 0


def validate(resources: Optional[Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """A checked copy: known steps and fields, counts that are whole numbers."""
    checked: Dict[str, Dict[str, Any]] = {}
    for key, entry in (resources or {}).items():
        step = key.split(".", 1)[0]
        if key != "default" and step not in STEPS:
            raise ConfigError(f"resources: unknown step {key!r}; steps are default, {', '.join(STEPS)} "
                              "(optionally STEP.ARCHITECTURE)")
        if not isinstance(entry, Mapping):
            raise ConfigError(f"resources.{key} must be a mapping of {', '.join(FIELDS)}")
        unknown = sorted(set(entry) - set(FIELDS))
        if unknown:
            raise ConfigError(f"resources.{key}: unknown field(s) {unknown}; known: {', '.join(FIELDS)}")
        values = {k: str(v) for k, v in entry.items() if k in ("cpu", "memory", "accelerator") and v not in (None, "")}
        if entry.get("accelerator_count") not in (None, ""):
            count = entry["accelerator_count"]
            if isinstance(count, float) and count.is_integer():
                count = int(count)
            if not isinstance(count, int) or count < 0:
                raise ConfigError(f"resources.{key}.accelerator_count must be a whole number, got {count!r}")
            values["accelerator_count"] = count
        checked[key] = values
    return checked


def for_step(resources: Mapping[str, Mapping[str, Any]], step: str, architecture: str = "") -> StepResources:
    merged: Dict[str, Any] = {}
    for key in ("default", step, f"{step}.{architecture}" if architecture else None):
        if key and key in resources:
            merged.update(resources[key])
    if merged.get("accelerator") and not merged.get("accelerator_count"):
        merged["accelerator_count"] = 1
    return StepResources(**merged)


def apply(task, resources: Mapping[str, Mapping[str, Any]], step: str, architecture: str = ""):
    """Sets the task's CPU, memory, accelerator and retries; returns the task."""
    settings = for_step(resources, step, architecture)
    if settings.cpu:
        task.set_cpu_limit(settings.cpu)
    if settings.memory:
        task.set_memory_limit(settings.memory)
    if settings.accelerated:
        task.set_accelerator_type(settings.accelerator)
        task.set_accelerator_limit(settings.accelerator_count)
    if step in RETRIES:
        task.set_retry(num_retries=RETRIES[step], backoff_duration="60s", backoff_factor=2.0)
    return task
