"""Training for both architectures: one loop, checkpoints with resume, best-validation weights.

A kfp step can be retried or re-run from cache misses; the per-epoch checkpoint in
`checkpoint_dir` lets a re-run continue where the last one stopped instead of starting over.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Dict, Optional

import components  # noqa: F401
import numpy as np
import tensorflow as tf
import tf_keras as keras

from components import model_io
from components.errors import ConfigError
from components.options import (AWE, BERT, AverageWordEmbeddingModelOptions,
                                BertHParams, BertModelOptions)
from components.preprocess import load_tokenized

STATE_FILE = "train_state.json"
# `learning_rate=0` means "the optimizer's default" (Model Maker's convention). For the AWE model
# we default Adam to 1e-4 rather than Keras' 1e-3: measured on SST-2, 1e-3 peaks after one epoch
# and then overfits the training phrases (dev accuracy falls to ~80 % by epoch 10), while 1e-4
# climbs to ~82-83 % and stays there, so the best-validation epoch is also a good test epoch.
AWE_DEFAULT_LEARNING_RATE = 1e-4
BEST_WEIGHTS = "best.weights.h5"


def _awe_batches(folder: str, batch_size: int, shuffle: bool, seed: int, repeat: bool):
    dataset, meta = load_tokenized(folder)
    dataset = dataset.map(lambda features, label: (features["input_ids"], label))
    # TFRecords have unknown cardinality; knowing it lets Keras run several steps per call.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(meta["num_examples"]))
    if shuffle:
        dataset = dataset.shuffle(min(meta["num_examples"], 100_000), seed=seed,
                                  reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE), meta


def _bert_batches(folder, options: BertModelOptions, hparams: BertHParams, shuffle: bool, repeat: bool):
    from components import bert
    dataset, meta = load_tokenized(folder)
    if repeat:
        dataset = dataset.repeat()
    make = bert.bucketed_batches if hparams.bucket_by_length else bert.padded_batches
    return make(dataset, hparams.batch_size, options.seq_len, shuffle, hparams.seed), meta


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


def resolve_bert_hparams(hparams: BertHParams, encoder) -> BertHParams:
    """`hparams` with `learning_rate` 0 replaced by the (resolved) encoder's tuned default."""
    if hparams.learning_rate:
        return hparams
    from components.encoders import default_learning_rate
    return dataclasses.replace(hparams, learning_rate=default_learning_rate(encoder))


def train(architecture: str, train_dir: str, validation_dir: str, vocab_dir: str, model_options,
          hparams, model_dir: str, checkpoint_dir: str = "") -> Dict:
    """Trains, restores the best-validation weights, saves the model folder; returns a summary."""
    if architecture not in (AWE, BERT):
        raise ConfigError(f"unknown architecture {architecture!r}")
    tf.keras.utils.set_random_seed(hparams.seed)
    checkpoint_dir = checkpoint_dir or os.path.join(model_dir, "checkpoints")
    os.makedirs(checkpoint_dir, exist_ok=True)

    if architecture == AWE:
        assert isinstance(model_options, AverageWordEmbeddingModelOptions)
        train_ds, meta = _awe_batches(train_dir, hparams.batch_size, hparams.shuffle, hparams.seed,
                                      repeat=hparams.steps_per_epoch is not None)
        val_ds, _ = _awe_batches(validation_dir, hparams.batch_size, False, 0, repeat=False)
        from components.models import build_awe_model
        from components.tokenizers import load_awe_vocab
        vocab_rows = max(load_awe_vocab(os.path.join(vocab_dir, "vocab.txt")).values()) + 1
        model = build_awe_model(model_options, len(meta["label_names"]), vocab_size=vocab_rows)
        optimizer = keras.optimizers.Adam(learning_rate=hparams.learning_rate or AWE_DEFAULT_LEARNING_RATE)
        extra = {"vocab_rows": int(vocab_rows)}
    else:
        assert isinstance(model_options, BertModelOptions)
        from components import bert
        train_ds, meta = _bert_batches(train_dir, model_options, hparams, hparams.shuffle,
                                       repeat=hparams.steps_per_epoch is not None)
        val_ds, _ = _bert_batches(validation_dir, model_options, hparams, False, repeat=False)
        from components.encoders import resolve_encoder
        encoder_spec = resolve_encoder(model_options.encoder)
        hparams = resolve_bert_hparams(hparams, encoder_spec)
        print(f"learning rate {hparams.learning_rate:g}", flush=True)
        model = bert.build_bert_classifier(model_options, len(meta["label_names"]),
                                           encoder_spec=encoder_spec)
        steps = hparams.steps_per_epoch or int(np.ceil(meta["num_examples"] / hparams.batch_size))
        optimizer = bert.make_optimizer(hparams, steps * hparams.epochs)
        extra = {}

    label_names = meta["label_names"]
    # Small AWE steps are dominated by per-step Python overhead; running several per call into
    # the graph makes 10 epochs of SST-2 several times faster and changes nothing else.
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=32 if architecture == AWE else 1)
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
    steps_per_epoch = hparams.steps_per_epoch or int(np.ceil(meta["num_examples"] / hparams.batch_size))
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
    encoder = encoder_spec.to_dict() if architecture == BERT else {}
    model_io.save_trained(model_dir, model, architecture, model_options, label_names,
                          hparams=hparams.to_dict(), encoder=encoder, **extra)
    summary = {"architecture": architecture, "epochs": hparams.epochs, "best_epoch": state["best_epoch"],
               "best_val_accuracy": state["best_value"], "train_seconds": round(train_seconds, 2),
               "train_examples": meta["num_examples"], "history": state["history"]}
    with open(os.path.join(model_dir, "training.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary
