"""Checkpoints that survive a failure: the fault-injection hook stops training after N steps, and a
re-run of the same work resumes from the last checkpoint (library, then the local kfp runner),
while changed inputs or `--no-cache` train from scratch."""

import glob
import os

import numpy as np
import pytest
from conftest import sentiment_rows, write_text

from components import checkpoints, split_io, steps
from components.errors import InjectedFault
from components.train import FAULT_ENV, fault_after_steps, train

LABELS = ["neg", "pos"]


@pytest.fixture(scope="module")
def awe_folders(tmp_path_factory):
    from components.options import AverageWordEmbeddingModelOptions
    from components.preprocess import preprocess
    root = tmp_path_factory.mktemp("resume")
    splits = {}
    for name, rows in (("train", sentiment_rows(24, seed=3)), ("validation", sentiment_rows(6, seed=4))):
        splits[name] = str(root / "splits" / name)
        split_io.write_split(splits[name], [(text, LABELS[int(label)]) for text, label in rows], LABELS)
    out = {name: str(root / "tokens" / name) for name in splits}
    preprocess("awe", splits, out, str(root / "vocab"), AverageWordEmbeddingModelOptions(seq_len=8, vocab_size=100))
    return out["train"], out["validation"], str(root / "vocab")


def _probabilities(model_dir, validation_dir):
    from components import architectures, model_io
    from components.tokenized import load_tokenized
    model, info = model_io.load_trained(model_dir)
    data, meta = load_tokenized(validation_dir)
    spec = architectures.get(info["architecture"])
    options = spec.options(info["model_options"])
    return model.predict(spec.eval_batches(data, meta, options, 16), verbose=0)


def test_the_fault_hook_reads_a_step_count():
    assert fault_after_steps({}) == 0
    assert fault_after_steps({FAULT_ENV: "12"}) == 12
    with pytest.raises(Exception, match="positive whole number"):
        fault_after_steps({FAULT_ENV: "soon"})


def test_a_resumed_training_ends_with_the_uninterrupted_model(awe_folders, tmp_path, monkeypatch):
    # No shuffling and no dropout: the resumed run then takes exactly the uninterrupted run's steps.
    options = {"seq_len": 8, "dropout_rate": 0.0}
    hparams = {"epochs": 5, "batch_size": 8, "learning_rate": 0.02, "shuffle": False}  # 6 steps an epoch
    monkeypatch.setenv(FAULT_ENV, "14")
    folder = tmp_path / "checkpoints"
    with pytest.raises(InjectedFault, match="after 18 steps"):  # checked at epoch ends (steps_per_execution)
        train("awe", *awe_folders, options, hparams, str(tmp_path / "interrupted"), str(folder))
    assert os.path.exists(str(folder / "ckpt-2.index")) and not os.path.exists(str(folder / "ckpt-3.index"))
    monkeypatch.delenv(FAULT_ENV)
    resumed = train("awe", *awe_folders, options, hparams, str(tmp_path / "resumed"), str(folder),
                    keep_checkpoints=False)
    assert resumed["resumed_from_epoch"] == 2 and [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4, 5]
    assert not folder.exists()  # removed once the model was saved
    whole = train("awe", *awe_folders, options, hparams, str(tmp_path / "whole"), str(tmp_path / "whole_ckpt"))
    assert whole["resumed_from_epoch"] == 0
    for a, b in zip(whole["history"], resumed["history"]):
        for key in ("loss", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
    np.testing.assert_allclose(_probabilities(str(tmp_path / "resumed"), awe_folders[1]),
                               _probabilities(str(tmp_path / "whole"), awe_folders[1]), atol=1e-5)


def test_the_checkpoint_folder_is_keyed_by_every_input(tmp_path, monkeypatch):
    base = dict(architecture="awe", model_options={"seq_len": 8}, hparams={"epochs": 3}, cache_salt="s1",
                data={"train_tokens": "/root/run-1/preprocess/train_tokens"}, code="c1")
    first = checkpoints.key(**base)
    assert checkpoints.key(**base) == first and len(first) == checkpoints.KEY_LENGTH
    for change in ({"model_options": {"seq_len": 9}}, {"hparams": {"epochs": 4}}, {"cache_salt": "s2"},
                   {"data": {"train_tokens": "/root/run-2/preprocess/train_tokens"}}, {"code": "c2"},
                   {"architecture": "bert"}):
        assert checkpoints.key(**dict(base, **change)) != first, change
    assert checkpoints.key(**dict(base, code=None)) == checkpoints.key(**dict(base, code=checkpoints.code_digest()))

    root = str(tmp_path / "root")
    assert checkpoints.folder("", root, "awe", first) == (os.path.join(root, "checkpoints", "awe", first), "")
    assert checkpoints.folder(str(tmp_path / "mine"), root, "awe", first)[0] == str(tmp_path / "mine" / "awe" / first)
    # Vertex AI: gs:// through the Cloud Storage FUSE mount
    monkeypatch.setattr(checkpoints, "GCS_MOUNT", str(tmp_path / "gcs"))
    assert checkpoints.folder("", "gs://b/root", "awe", first)[1]  # not mounted here: no folder, a reason
    os.makedirs(tmp_path / "gcs")
    assert checkpoints.folder("", "gs://b/root", "awe", first)[0] == str(tmp_path / "gcs" / "b" / "root" /
                                                                        "checkpoints" / "awe" / first)
    for root_uri in ("", "{{$.pipeline_root}}", "minio://mlpipeline/v2/artifacts"):
        folder, why = checkpoints.folder("", root_uri, "awe", first)
        assert folder == "" and why
    assert steps.train_checkpoint_dir("", "", "awe", {}, {}, "", {}) == ""  # inside the model artifact


def _csv(rows):
    return "review,label\n" + "".join(f"{text},{LABELS[int(label)]}\n" for text, label in rows)


def _runs(root):
    return sorted(glob.glob(os.path.join(root, "textclf-text-classifier-*")))


@pytest.mark.slow
def test_the_local_runner_resumes_a_failed_training(tmp_path, monkeypatch, capfd):
    """Fault after 2 epochs; a no-cache run and a run with other hyperparameters do not resume;
    re-running the same work does, and ends close to an uninterrupted training of the same data."""
    from components import model_io
    from pipelines.local import StepFailed, run_local
    train_file = write_text(tmp_path / "train.csv", _csv(sentiment_rows(24, seed=5)))
    root = str(tmp_path / "pipeline_root")
    hparams = {"epochs": 5, "batch_size": 8, "learning_rate": 0.02}  # 29 training rows: 4 steps an epoch
    arguments = {
        "train": train_file, "validation": "", "test": "", "csv_params": {"text_column": "review"},
        "split_options": {"validation_fraction": 0.2, "test_fraction": 0.2, "seed": 0},
        "models": ["awe"], "awe_model_options": {"seq_len": 8, "vocab_size": 100}, "awe_hparams": hparams,
        "benchmark_runs": 5, "max_accuracy_drop": 100.0,
        # machines for Vertex: the local runner ignores them (no custom job, no accelerator check)
        "resources": {"train.awe": {"accelerator": "NVIDIA_L4", "machine_type": "g2-standard-8",
                                    "replica_count": 2}},
    }
    folders = os.path.join(root, "checkpoints", "awe")

    monkeypatch.setenv(FAULT_ENV, "10")  # checked at epoch ends: fails in epoch 3, after 2 checkpoints
    with pytest.raises(StepFailed) as failed:
        run_local(arguments, pipeline_root=root)
    assert failed.value.step_error["step"] == "train" and FAULT_ENV in failed.value.step_error["message"]
    [first] = os.listdir(folders)
    assert os.path.exists(os.path.join(folders, first, "ckpt-2.index"))

    for changed, caching in (({"awe_hparams": dict(hparams, seed=1)}, True), ({}, False)):
        capfd.readouterr()
        with pytest.raises(StepFailed):
            run_local(dict(arguments, **changed), pipeline_root=root, enable_caching=caching)
        assert "resuming from" not in "".join(capfd.readouterr())
    assert len(os.listdir(folders)) == 3 and first in os.listdir(folders)

    monkeypatch.delenv(FAULT_ENV)
    capfd.readouterr()
    run_local(arguments, pipeline_root=root)
    out = "".join(capfd.readouterr())
    said = [line.strip() for line in out.splitlines() if "resuming" in line or "checkpoints:" in line]
    assert f"resuming from {os.path.join(folders, first, 'ckpt-2')} after epoch 2" in said, said
    assert first not in os.listdir(folders)  # done: the folder is removed
    model_dir = os.path.join(_runs(root)[-1], "train", "model")
    training = model_io.read_training(model_dir)
    assert training["resumed_from_epoch"] == 2 and [h["epoch"] for h in training["history"]] == [1, 2, 3, 4, 5]

    # The same data trained without interruption. The resumed run reshuffled its remaining epochs
    # from the seed and drew new dropout masks, so it ends close to, not exactly at, this model.
    tokens = os.path.join(_runs(root)[0], "preprocess")
    whole = str(tmp_path / "whole")
    train("awe", os.path.join(tokens, "train_tokens"), os.path.join(tokens, "validation_tokens"),
          os.path.join(tokens, "vocab"), arguments["awe_model_options"], hparams, whole)
    resumed_p = _probabilities(model_dir, os.path.join(tokens, "test_tokens"))
    whole_p = _probabilities(whole, os.path.join(tokens, "test_tokens"))
    assert np.mean(resumed_p.argmax(1) == whole_p.argmax(1)) >= 0.9
    assert np.abs(resumed_p - whole_p).mean() < 0.15
