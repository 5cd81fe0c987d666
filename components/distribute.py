"""The `tf.distribute` strategy training runs under, chosen from what the machine and cluster have.

- Several workers in `TF_CONFIG` (a Vertex AI custom job with `replica_count` > 1 sets it on every
  replica): `MultiWorkerMirroredStrategy`; only the chief writes checkpoints and the model.
- Otherwise several local GPUs: `MirroredStrategy` over all of them.
- Otherwise one device (TensorFlow's default strategy: the GPU if there is one, else the CPU).

`batch_size` stays the global batch under every strategy (Model Maker's meaning): each step
takes `batch_size` examples split over the replicas, and the learning rate is used as given.

A pipeline step given an accelerator carries `ACCELERATOR_ENV` / `ACCELERATOR_COUNT_ENV`
(`pipelines.resources`); training then fails with a `DeviceError` when TensorFlow sees fewer GPUs,
instead of silently training on the CPU (the plain `tensorflow` wheel has no CUDA).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Mapping, Optional, Sequence

from components.errors import ConfigError, DeviceError

TF_CONFIG = "TF_CONFIG"
ACCELERATOR_ENV = "TEXTCLF_ACCELERATOR"
ACCELERATOR_COUNT_ENV = "TEXTCLF_ACCELERATOR_COUNT"
DEFAULT, MIRRORED, MULTI_WORKER = "default", "mirrored", "multi_worker"
_SYNC_ROLES = ("chief", "worker")


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which strategy, and this process's place in the cluster."""

    kind: str = DEFAULT
    devices: tuple = ()      # MIRRORED: the local devices replicated over
    num_workers: int = 1
    task_type: str = ""
    task_index: int = 0
    has_chief: bool = False  # the cluster names a chief task (else worker 0 is the chief)

    @property
    def is_chief(self) -> bool:
        return self.kind != MULTI_WORKER or self.task_type == "chief" or (
            self.task_type == "worker" and self.task_index == 0 and not self.has_chief)

    def describe(self) -> str:
        if self.kind == MULTI_WORKER:
            role = f"{self.task_type} {self.task_index}" + (" (chief)" if self.is_chief else "")
            return f"MultiWorkerMirroredStrategy over {self.num_workers} workers; this is {role}"
        if self.kind == MIRRORED:
            return f"MirroredStrategy over {len(self.devices)} devices ({', '.join(self.devices)})"
        return "one device (default strategy)"


def parse_tf_config(text: str) -> dict:
    """TF_CONFIG's JSON; an unreadable one is an error, not a silent single-worker run."""
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{TF_CONFIG} is not valid JSON ({error}): {text[:200]!r}") from error
    if not isinstance(config, dict) or not isinstance(config.get("cluster", {}), dict):
        raise ConfigError(f"{TF_CONFIG} must be a JSON object with a 'cluster' mapping, got {text[:200]!r}")
    return config


def plan(tf_config: Optional[str] = None, gpus: Sequence[str] = ()) -> Plan:
    """The strategy for a cluster described by `tf_config` (TF_CONFIG's text) and local `gpus`."""
    if tf_config and tf_config.strip():
        config = parse_tf_config(tf_config)
        cluster = config.get("cluster") or {}
        workers = sum(len(cluster.get(role) or []) for role in _SYNC_ROLES)
        if workers > 1:
            task = config.get("task") or {}
            task_type, index = str(task.get("type", "")), task.get("index", 0)
            if task_type not in _SYNC_ROLES:
                raise ConfigError(f"{TF_CONFIG} gives this process task type {task_type!r}; synchronous "
                                  f"multi-worker training runs on {' and '.join(_SYNC_ROLES)} tasks only")
            if not isinstance(index, int) or not 0 <= index < len(cluster.get(task_type) or []):
                raise ConfigError(f"{TF_CONFIG}: task index {index!r} is not among the cluster's "
                                  f"{len(cluster.get(task_type) or [])} {task_type} task(s)")
            return Plan(MULTI_WORKER, num_workers=workers, task_type=task_type, task_index=index,
                        has_chief=bool(cluster.get("chief")))
    if len(gpus) > 1:
        return Plan(MIRRORED, devices=tuple(gpus))
    return Plan(DEFAULT)


def make_strategy(chosen: Plan):
    import tensorflow as tf
    if chosen.kind == MULTI_WORKER:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if chosen.kind == MIRRORED:
        return tf.distribute.MirroredStrategy(devices=list(chosen.devices))
    return tf.distribute.get_strategy()


def expected_accelerators(environ: Mapping[str, str]) -> tuple:
    """(type, count) the step was given (from its environment); count 0 when none."""
    kind = environ.get(ACCELERATOR_ENV, "").strip()
    raw = environ.get(ACCELERATOR_COUNT_ENV, "").strip()
    if not kind:
        return "", 0
    try:
        count = int(raw) if raw else 1
    except ValueError as error:
        raise ConfigError(f"{ACCELERATOR_COUNT_ENV} must be a whole number, got {raw!r}") from error
    return kind, count


def check_accelerators(environ: Mapping[str, str], gpus: Sequence[str]) -> None:
    """Fails when the step was given more accelerators than TensorFlow can see."""
    kind, count = expected_accelerators(environ)
    if count > len(gpus):
        raise DeviceError(
            f"this step was given {count} x {kind} but TensorFlow sees {len(gpus)} GPU(s): it would train on "
            "the CPU. Run accelerated steps in the GPU image (Dockerfile VARIANT=gpu, TensorFlow with CUDA; "
            "`--gpu-image` when compiling or submitting) and check the node's NVIDIA driver.")


def choose(environ: Optional[Mapping[str, str]] = None):
    """(strategy, plan) for this process; logs the devices found and fails on a missing accelerator."""
    import tensorflow as tf
    environ = os.environ if environ is None else environ
    gpus = [device.name.replace("physical_device:", "") for device in tf.config.list_physical_devices("GPU")]
    cpus = tf.config.list_physical_devices("CPU")
    kind, count = expected_accelerators(environ)
    expected = f"; given {count} x {kind}" if count else ""
    print(f"devices: {len(cpus)} CPU, {len(gpus)} GPU{' (' + ', '.join(gpus) + ')' if gpus else ''}{expected}",
          flush=True)
    check_accelerators(environ, gpus)
    chosen = plan(environ.get(TF_CONFIG, ""), gpus)
    print(f"distribution: {chosen.describe()}", flush=True)
    return make_strategy(chosen), chosen


def is_chief(strategy) -> bool:
    """Whether this process writes checkpoints and outputs (false on non-chief multi-worker tasks)."""
    return bool(getattr(strategy.extended, "should_checkpoint", True))


def scratch_dir() -> str:
    """Where a non-chief worker writes what it must write but nobody keeps (its checkpoint saves)."""
    return tempfile.mkdtemp(prefix="textclf-worker-")


def distributable(dataset):
    """`dataset` of already-batched elements, set to be split by element: each global batch
    (length-bucketed ones included, whatever their shape) is divided among the replicas, so the
    global batch stays `batch_size`; sharding by file would give workers different batch counts."""
    import tensorflow as tf
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
