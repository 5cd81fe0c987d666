"""Training for every architecture: one loop, checkpoints with resume, best-validation weights.

The architecture's spec supplies the model, batches, optimizer and the defaults it resolves; this
module owns the loop. A kfp step can be retried or re-run from cache misses; the per-epoch
checkpoint in `checkpoint_dir` lets a re-run continue where the last one stopped.
"""

from __future__ import annotations

import json
import os
import time
from typing import Dict, Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from components import architectures, model_io, vocabulary
from components.errors import ConfigError
from components.tokenized import load_tokenized

STATE_FILE = "train_state.json"
BEST_WEIGHTS = "best.weights.h5"


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


def train(architecture: str, train_dir: str, validation_dir: str, vocab_dir: str, model_options,
          hparams, model_dir: str, checkpoint_dir: str = "") -> Dict:
    """Trains, restores the best-validation weights, saves the model folder; returns a summary.

    `model_options` / `hparams` are the architecture's option classes or dicts of their fields.
    """
    spec = architectures.get(architecture)
    options, hparams = spec.options(model_options), spec.hparams(hparams)
    tf.keras.utils.set_random_seed(hparams.seed)
    checkpoint_dir = checkpoint_dir or os.path.join(model_dir, "checkpoints")
    os.makedirs(checkpoint_dir, exist_ok=True)

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

    model = spec.build_model(options, len(label_names), info)
    optimizer = spec.optimizer(hparams, steps_per_epoch * hparams.epochs)
    train_ds = spec.train_batches(train_data, meta, options, hparams, hparams.shuffle)
    val_ds = spec.validation_batches(validation_data, validation_meta, options, hparams.batch_size)
    model.compile(optimizer=optimizer, loss=spec.loss(hparams), metrics=spec.metrics(),
                  steps_per_execution=spec.steps_per_execution)
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var)
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=2)
    state = {"history": [], "best_value": -np.inf, "best_epoch": 0}
    state_path = os.path.join(checkpoint_dir, STATE_FILE)
    if manager.latest_checkpoint and os.path.exists(state_path):
        checkpoint.restore(manager.latest_checkpoint)
        with open(state_path) as f:
            state = json.load(f)
        state["history"] = state["history"][:int(epoch_var.numpy())]
        print(f"resuming from {manager.latest_checkpoint} after epoch {int(epoch_var.numpy())}", flush=True)
    initial_epoch = int(epoch_var.numpy())

    every = getattr(hparams, "checkpoint_frequency", 1) or hparams.epochs
    callback = _EpochCheckpoint(manager, epoch_var, checkpoint_dir, state, every=every,
                                steps_per_epoch=steps_per_epoch, batch_size=hparams.batch_size)
    started = time.time()
    if initial_epoch < hparams.epochs:
        model.fit(train_ds, validation_data=val_ds, epochs=hparams.epochs, initial_epoch=initial_epoch,
                  steps_per_epoch=hparams.steps_per_epoch, callbacks=[callback],
                  class_weight=class_weight_map(hparams.class_weights, label_names), verbose=0)
    train_seconds = time.time() - started
    best = os.path.join(checkpoint_dir, BEST_WEIGHTS)
    if os.path.exists(best):
        model.load_weights(best)
    model_io.save_trained(model_dir, model, spec.name, options, label_names,
                          hparams=hparams.to_dict(), picked=resolved.picked, **info)
    summary = {"architecture": spec.name, "epochs": hparams.epochs, "best_epoch": state["best_epoch"],
               "best_val_accuracy": state["best_value"], "train_seconds": round(train_seconds, 2),
               "train_examples": meta["num_examples"], "steps_per_epoch": steps_per_epoch,
               "train_label_counts": meta.get("label_counts", {}),
               "data_warnings": meta.get("warnings", []),
               "picked": resolved.picked, "history": state["history"]}
    model_io.write_training(model_dir, summary)
    return summary
