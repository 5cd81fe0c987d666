"""Machines, accelerators and retries per pipeline step, set when the pipeline is compiled.

A resources mapping names steps (`ingest`, `preprocess`, `train`, `evaluate`, `export`, `quantize`,
`tflite_evaluate`, `benchmark`, `collect`, `report`, `publish`), optionally per architecture
(`train.bert`), plus `default`; each entry takes `cpu` ("4"), `memory` ("16G"), `accelerator`
(a Vertex/Kubeflow accelerator type such as NVIDIA_L4) and `accelerator_count`, and for Vertex AI
`machine_type` (e.g. a2-highgpu-1g, g2-standard-8) and `replica_count` (training only). A more
specific key overrides a less specific one field by field: `default` < `train` < `train.bert`.

A step with `machine_type` or `replica_count` > 1 runs as a Vertex AI custom job
(google-cloud-pipeline-components' `create_custom_training_job_from_component`, the `[vertex]`
extra): the machine type then decides CPU and memory, and with several replicas Vertex sets
`TF_CONFIG` on each, so training runs under `MultiWorkerMirroredStrategy` (`components.distribute`).
Custom jobs exist on Vertex AI only; Kubeflow takes `cpu`, `memory` and the accelerator fields.

A step given an accelerator runs in the GPU image and carries the environment variables
`components.distribute` reads, so training fails (rather than silently using the CPU) when
TensorFlow cannot see the GPUs. kfp's local runner ignores machines and accelerators (it warns
and runs on this machine); the pipeline built for it (`local=True`) leaves out the custom jobs,
the accelerator variables and the retries, so the same resources file serves every environment.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional

from components import distribute
from components.errors import ConfigError

STEPS = ("ingest", "preprocess", "train", "evaluate", "export", "quantize", "tflite_evaluate", "benchmark",
         "collect", "report", "publish")
FIELDS = ("cpu", "memory", "accelerator", "accelerator_count", "machine_type", "replica_count")
COUNTS = ("accelerator_count", "replica_count")
# Steps that may run on several replicas: the training loop is the one that distributes.
MULTI_REPLICA_STEPS = ("train",)
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
    machine_type: str = ""
    replica_count: int = 1

    @property
    def accelerated(self) -> bool:
        return bool(self.accelerator) and self.accelerator_count > 0

    @property
    def custom_job(self) -> bool:
        """Runs as a Vertex AI custom job (a machine type, or several replicas)."""
        return bool(self.machine_type) or self.replica_count > 1

    def environment(self) -> Dict[str, str]:
        """What the step's container is told about its accelerators (read by `components.distribute`)."""
        if not self.accelerated:
            return {}
        return {distribute.ACCELERATOR_ENV: self.accelerator,
                distribute.ACCELERATOR_COUNT_ENV: str(self.accelerator_count)}


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
        values = {k: str(v) for k, v in entry.items()
                  if k in ("cpu", "memory", "accelerator", "machine_type") and v not in (None, "")}
        if "tpu" in values.get("accelerator", "").lower():
            raise ConfigError(f"resources.{key}.accelerator {values['accelerator']!r}: TPUs are not supported "
                              "(training distributes over GPUs); use an NVIDIA accelerator type")
        for field in COUNTS:
            if entry.get(field) in (None, ""):
                continue
            count = entry[field]
            if isinstance(count, float) and count.is_integer():
                count = int(count)
            if isinstance(count, bool) or not isinstance(count, int) or count < (1 if field == "replica_count" else 0):
                least = "at least 1" if field == "replica_count" else "a whole number"
                raise ConfigError(f"resources.{key}.{field} must be {least}, got {count!r}")
            values[field] = count
        if values.get("replica_count", 1) > 1:
            if step not in MULTI_REPLICA_STEPS:
                raise ConfigError(f"resources.{key}.replica_count: only {', '.join(MULTI_REPLICA_STEPS)} runs on "
                                  "several replicas")
        checked[key] = values
    return checked


def refuse_custom_jobs(resources: Mapping[str, Mapping[str, Any]], where: str) -> None:
    """Machine types and replicas make Vertex AI custom jobs, which `where` cannot run."""
    named = sorted(key for key, entry in resources.items()
                   if entry.get("machine_type") or entry.get("replica_count", 1) > 1)
    if named:
        raise ConfigError(f"resources {', '.join(named)}: machine_type and replica_count run steps as Vertex AI "
                          f"custom jobs, which {where} cannot run; give cpu, memory and accelerator instead")


def for_step(resources: Mapping[str, Mapping[str, Any]], step: str, architecture: str = "") -> StepResources:
    merged: Dict[str, Any] = {}
    for key in ("default", step, f"{step}.{architecture}" if architecture else None):
        if key and key in resources:
            merged.update(resources[key])
    if merged.get("accelerator") and not merged.get("accelerator_count"):
        merged["accelerator_count"] = 1
    settings = StepResources(**merged)
    if settings.replica_count > 1 and not settings.machine_type:
        where = f"{step}.{architecture}" if architecture else step
        raise ConfigError(f"resources for {where}: replica_count {settings.replica_count} needs a machine_type "
                          "(a Vertex AI machine type such as g2-standard-8 for NVIDIA_L4, a2-highgpu-1g for "
                          "NVIDIA_TESLA_A100)")
    return settings


def custom_job_component(component, settings: StepResources, display_name: str):
    """`component` as a Vertex AI custom job on `settings`' machines (google-cloud-pipeline-components)."""
    try:
        from google_cloud_pipeline_components.v1.custom_job import create_custom_training_job_from_component
    except ImportError as error:
        raise ConfigError("machine_type / replica_count run a step as a Vertex AI custom job, which needs "
                          "google-cloud-pipeline-components: pip install '.[vertex]'") from error
    accelerator = {"accelerator_type": settings.accelerator,
                   "accelerator_count": settings.accelerator_count} if settings.accelerated else {}
    return create_custom_training_job_from_component(
        component, display_name=display_name, machine_type=settings.machine_type,
        replica_count=settings.replica_count,
        env=[{"name": name, "value": value} for name, value in settings.environment().items()],
        **accelerator)


def apply(task, settings: StepResources, step: str, local: bool = False):
    """Sets the task's CPU, memory, accelerator (and what it tells the step about it) and retries;
    returns the task. A custom job's machine is in its job spec, so only retries are set on it.

    `local`: kfp's local runner warns about and ignores the machine settings, but it does honour
    retries, with their backoff; a failure on this machine is rarely transient, and re-running the
    pipeline resumes training from its checkpoints, so local tasks get no retries."""
    if not settings.custom_job:
        if settings.cpu:
            task.set_cpu_limit(settings.cpu)
        if settings.memory:
            task.set_memory_limit(settings.memory)
        if settings.accelerated:
            task.set_accelerator_type(settings.accelerator)
            task.set_accelerator_limit(settings.accelerator_count)
            if not local:  # the local runner runs on this machine, whatever the step was given
                for name, value in settings.environment().items():
                    task.set_env_variable(name, value)
    if step in RETRIES and not local:
        task.set_retry(num_retries=RETRIES[step], backoff_duration="60s", backoff_factor=2.0)
    return task
