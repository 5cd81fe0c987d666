"""Training for every architecture: one loop, checkpoints with resume, best-validation weights.

The architecture's spec supplies the model, batches, optimizer and the defaults it resolves; this
module owns the loop. It runs under the `tf.distribute` strategy `components.distribute` picks
(one device, all local GPUs, or several workers); the model, optimizer and checkpoint are made in
the strategy's scope and the (already batched) datasets are split among its replicas, so
`batch_size` is the global batch. A kfp step can be retried or re-run after a failure; the
per-epoch checkpoint in `checkpoint_dir` (`components.checkpoints` keys it by the task's inputs)
lets a re-run continue where the last one stopped. Under several workers only the chief writes
the checkpoints and the model.

Test hook: `TEXTCLF_FAIL_AFTER_STEPS=N` in the environment makes training raise `InjectedFault`
once it has taken N steps in this attempt (checked at Keras' batch ends, so with
`steps_per_execution` > 1 at the first such check at or past N). It stands for a preempted node
in the resume tests; never set it for real work.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Dict, Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from components import architectures, distribute, model_io, vocabulary
from components.errors import ConfigError, InjectedFault
from components.tokenized import load_tokenized

FAULT_ENV = "TEXTCLF_FAIL_AFTER_STEPS"
MODEL_CHECKPOINTS = "checkpoints"  # inside the model folder, when no checkpoint_dir is given
STATE_FILE = "train_state.json"
# Keras' legacy HDF5 weights (the model's variables only). A `.weights.h5` name would pick the newer
# format, which also stores optimizer and metric state: three times the bytes for BERT, and metric
# variables that cannot be loaded back under a distribution strategy.
BEST_WEIGHTS = "best_weights.h5"


def class_weight_map(class_weights: Optional[Dict[str, float]], label_names) -> Optional[Dict[int, float]]:
    """{label name: weight} -> Keras' {class id: weight}; unnamed classes weigh 1."""
    if not class_weights:
        return None
    unknown = sorted(set(class_weights) - set(label_names))
    if unknown:
        raise ConfigError(f"class_weights names label(s) {unknown} not among {list(label_names)}")
    return {i: float(class_weights.get(name, 1.0)) for i, name in enumerate(label_names)}


class _EpochCheckpoint(keras.callbacks.Callback):
    """Saves a resumable checkpoint each epoch and keeps the best-validation weights apart."""

    def __init__(self, manager, epoch_var, checkpoint_dir, state, monitor="val_accuracy", every=1,
                 steps_per_epoch=0, batch_size=0):
        super().__init__()
        self.manager, self.epoch_var, self.dir, self.state = manager, epoch_var, checkpoint_dir, state
        self.monitor, self.every = monitor, max(1, every)
        self.steps, self.batch_size = steps_per_epoch, batch_size
        self.report_every = max(1, steps_per_epoch // 10) if steps_per_epoch else 0
        self.epoch, self.started, self.next_report = 0, 0.0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.started, self.next_report = epoch, time.time(), self.report_every

    def on_train_batch_end(self, batch, logs=None):
        """A line about every tenth of an epoch: long BERT epochs should not look like a hang."""
        if not self.report_every or batch + 1 < self.next_report:
            return
        self.next_report = batch + 1 + self.report_every
        elapsed = time.time() - self.started
        rate = (batch + 1) * self.batch_size / elapsed if elapsed > 0 else 0.0
        print(f"epoch {self.epoch + 1}: step {batch + 1}/{self.steps}, loss {float((logs or {}).get('loss', 0)):.4f}, "
              f"{rate:.1f} examples/s", flush=True)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        self.state["history"].append({k: float(v) for k, v in logs.items()} | {"epoch": epoch + 1})
        value = logs.get(self.monitor)
        if value is not None and value > self.state.get("best_value", -np.inf):
            self.state["best_value"], self.state["best_epoch"] = float(value), epoch + 1
            self.model.save_weights(os.path.join(self.dir, BEST_WEIGHTS))
        self.epoch_var.assign(epoch + 1)
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.params.get("epochs"):
            self.manager.save(checkpoint_number=epoch + 1)
        with open(os.path.join(self.dir, STATE_FILE), "w") as f:
            json.dump(self.state, f, indent=2)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in logs.items())
        print(f"epoch {epoch + 1}/{self.params.get('epochs')}: {shown}", flush=True)


class _FaultInjection(keras.callbacks.Callback):
    """The `TEXTCLF_FAIL_AFTER_STEPS` test hook: raises once this attempt has taken `steps` steps."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps, self.first = steps, 0

    def on_train_begin(self, logs=None):
        self.first = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        taken = int(self.model.optimizer.iterations.numpy()) - self.first
        if taken >= self.steps:
            raise InjectedFault(f"{FAULT_ENV}={self.steps}: training stopped on purpose after {taken} steps "
                                "(a test hook standing for a preempted node)")


def fault_after_steps(environ=None) -> int:
    """N from `TEXTCLF_FAIL_AFTER_STEPS`, 0 when unset."""
    raw = (os.environ if environ is None else environ).get(FAULT_ENV, "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{FAULT_ENV} must be a positive whole number of steps, got {raw!r}")
    return int(raw)


def train(architecture: str, train_dir: str, validation_dir: str, vocab_dir: str, model_options,
          hparams, model_dir: str, checkpoint_dir: str = "", keep_checkpoints: bool = True,
          strategy=None) -> Dict:
    """Trains, restores the best-validation weights, saves the model folder; returns a summary.

    `model_options` / `hparams` are the architecture's option classes or dicts of their fields.
    `checkpoint_dir` (default: inside `model_dir`) holds the resumable state; with
    `keep_checkpoints` false it is removed once the model is saved. `strategy` (default: chosen
    by `distribute.choose` from the devices and `TF_CONFIG`) is the `tf.distribute` strategy.
    """
    if strategy is None:  # first: a multi-worker strategy must exist before other TensorFlow work
        strategy, _ = distribute.choose()
    chief = distribute.is_chief(strategy)
    spec = architectures.get(architecture)
    options, hparams = spec.options(model_options), spec.hparams(hparams)
    fail_after = fault_after_steps()
    tf.keras.utils.set_random_seed(hparams.seed)
    checkpoint_dir = checkpoint_dir or os.path.join(model_dir, MODEL_CHECKPOINTS)
    if chief:
        os.makedirs(checkpoint_dir, exist_ok=True)
    # Every worker takes part in saving (it may run collectives); only the chief's copy is kept.
    write_dir = checkpoint_dir if chief else distribute.scratch_dir()

    train_data, meta = load_tokenized(train_dir)
    validation_data, validation_meta = load_tokenized(validation_dir)
    options = spec.resolve_options(options, meta)
    vocab = vocabulary.read_folder(vocab_dir)
    info = spec.model_info(options, vocab.size)
    label_names = meta["label_names"]
    steps_per_epoch = spec.steps_per_epoch(meta, hparams)
    resolved = spec.resolve_hparams(hparams, options, info, meta, steps_per_epoch)
    hparams = resolved.hparams
    if meta.get("seq_len_fitted"):
        resolved.picked["seq_len"] = int(options.seq_len)
    for key, value in resolved.picked.items():
        print(f"default {key}: {value:g}" if isinstance(value, float) else f"default {key}: {value}", flush=True)

    train_ds = distribute.distributable(spec.train_batches(train_data, meta, options, hparams, hparams.shuffle))
    val_ds = distribute.distributable(spec.validation_batches(validation_data, validation_meta, options,
                                                              hparams.batch_size))
    with strategy.scope():
        model = spec.build_model(options, len(label_names), info)
        started_from = spec.initialize(model, vocab_dir, options)
        for key, value in started_from.items():
            print(f"default {key}: {value}", flush=True)
        resolved.picked.update(started_from)
        optimizer = spec.optimizer(hparams, steps_per_epoch * hparams.epochs)
        model.compile(optimizer=optimizer, loss=spec.loss(hparams), metrics=spec.metrics(),
                      steps_per_execution=spec.steps_per_execution)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var)
    latest = tf.train.latest_checkpoint(checkpoint_dir) if os.path.isdir(checkpoint_dir) else None
    manager = tf.train.CheckpointManager(checkpoint, write_dir, max_to_keep=2)
    state = {"history": [], "best_value": -np.inf, "best_epoch": 0}
    state_path = os.path.join(checkpoint_dir, STATE_FILE)
    if latest and os.path.exists(state_path):
        checkpoint.restore(latest)
        with open(state_path) as f:
            state = json.load(f)
        state["history"] = state["history"][:int(epoch_var.numpy())]
        print(f"resuming from {latest} after epoch {int(epoch_var.numpy())}", flush=True)
    initial_epoch = int(epoch_var.numpy())

    every = getattr(hparams, "checkpoint_frequency", 1) or hparams.epochs
    callbacks = [_EpochCheckpoint(manager, epoch_var, write_dir, state, every=every,
                                  steps_per_epoch=steps_per_epoch, batch_size=hparams.batch_size)]
    if fail_after:
        callbacks.append(_FaultInjection(fail_after))
    started = time.time()
    if initial_epoch < hparams.epochs:
        model.fit(train_ds, validation_data=val_ds, epochs=hparams.epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=hparams.steps_per_epoch, callbacks=callbacks,
                  class_weight=class_weight_map(hparams.class_weights, label_names), verbose=0)
    train_seconds = time.time() - started
    summary = {"architecture": spec.name, "epochs": hparams.epochs, "best_epoch": state["best_epoch"],
               "best_val_accuracy": state["best_value"], "train_seconds": round(train_seconds, 2),
               "train_examples": meta["num_examples"], "steps_per_epoch": steps_per_epoch,
               "train_label_counts": meta.get("label_counts", {}),
               "data_warnings": meta.get("warnings", []),
               "resumed_from_epoch": initial_epoch, "replicas": int(strategy.num_replicas_in_sync),
               "distribution": type(strategy).__name__, "chief": chief,
               "picked": resolved.picked, "history": state["history"]}
    if not chief:  # the chief saves the model; this worker's copies were scratch
        shutil.rmtree(write_dir, ignore_errors=True)
        return summary
    best = os.path.join(checkpoint_dir, BEST_WEIGHTS)
    if os.path.exists(best):
        model.load_weights(best)
    model_io.save_trained(model_dir, model, spec.name, options, label_names,
                          hparams=hparams.to_dict(), picked=resolved.picked, **info)
    model_io.write_training(model_dir, summary)
    if not keep_checkpoints:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return summary
