"""Training under tf.distribute: the strategy chosen from TF_CONFIG and the devices, the check for
an accelerator TensorFlow cannot see, chief-only writing, and MirroredStrategy over two logical CPU
devices giving one device's metrics (AWE, and BERT with length-bucketed batches)."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import sentiment_rows
from fixtures_bert import make_tiny_hf_checkpoint

from components import distribute, split_io
from components.errors import ConfigError, DeviceError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABELS = ["neg", "pos"]


def _tf_config(cluster, task_type, index):
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def test_strategy_from_tf_config_and_devices():
    vertex = {"chief": ["c:2222"], "worker": ["w0:2222", "w1:2222"]}  # what a 3-replica custom job sets
    chief = distribute.plan(_tf_config(vertex, "chief", 0))
    assert chief.kind == distribute.MULTI_WORKER and chief.num_workers == 3 and chief.is_chief
    worker = distribute.plan(_tf_config(vertex, "worker", 0), gpus=["/gpu:0", "/gpu:1"])
    assert worker.kind == distribute.MULTI_WORKER and not worker.is_chief
    # no chief task: worker 0 is the chief
    workers = {"worker": ["a:1", "b:1"]}
    assert distribute.plan(_tf_config(workers, "worker", 0)).is_chief
    assert not distribute.plan(_tf_config(workers, "worker", 1)).is_chief
    # one replica (Vertex sets TF_CONFIG for single-replica jobs too): local devices decide
    single = _tf_config({"chief": ["c:2222"]}, "chief", 0)
    assert distribute.plan(single).kind == distribute.DEFAULT
    mirrored = distribute.plan(single, gpus=["/device:GPU:0", "/device:GPU:1"])
    assert mirrored.kind == distribute.MIRRORED and mirrored.devices == ("/device:GPU:0", "/device:GPU:1")
    assert mirrored.is_chief
    assert distribute.plan("", gpus=["/gpu:0"]).kind == distribute.DEFAULT
    assert distribute.plan(None).describe() == "one device (default strategy)"


def test_a_broken_tf_config_is_an_error():
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        distribute.plan("{cluster:")
    with pytest.raises(ConfigError, match="task type 'ps'"):
        distribute.plan(_tf_config({"worker": ["a:1", "b:1"], "ps": ["p:1"]}, "ps", 0))
    with pytest.raises(ConfigError, match="task index 5"):
        distribute.plan(_tf_config({"worker": ["a:1", "b:1"]}, "worker", 5))


def test_an_accelerator_tensorflow_cannot_see_fails_the_step():
    given = {distribute.ACCELERATOR_ENV: "NVIDIA_L4", distribute.ACCELERATOR_COUNT_ENV: "1"}
    assert distribute.expected_accelerators(given) == ("NVIDIA_L4", 1)
    with pytest.raises(DeviceError, match=r"given 1 x NVIDIA_L4 but TensorFlow sees 0 GPU.*VARIANT=gpu"):
        distribute.check_accelerators(given, gpus=[])
    distribute.check_accelerators(given, gpus=["/gpu:0"])
    distribute.check_accelerators({}, gpus=[])  # nothing expected: CPU is fine
    with pytest.raises(DeviceError, match="given 2 x"):
        distribute.check_accelerators(dict(given, **{distribute.ACCELERATOR_COUNT_ENV: "2"}), gpus=["/gpu:0"])
    with pytest.raises(ConfigError, match="whole number"):
        distribute.expected_accelerators(dict(given, **{distribute.ACCELERATOR_COUNT_ENV: "one"}))


def test_training_refuses_to_run_on_the_cpu_when_given_a_gpu(awe_folders, tmp_path, monkeypatch, capsys):
    from components.train import train
    monkeypatch.setenv(distribute.ACCELERATOR_ENV, "NVIDIA_TESLA_T4")
    monkeypatch.setenv(distribute.ACCELERATOR_COUNT_ENV, "1")
    with pytest.raises(DeviceError, match="NVIDIA_TESLA_T4"):
        train("awe", *awe_folders, {"seq_len": 8}, {"epochs": 1}, str(tmp_path / "model"))
    assert "devices: 1 CPU, 0 GPU; given 1 x NVIDIA_TESLA_T4" in capsys.readouterr().out
    assert not (tmp_path / "model").exists()


def _tokenize(root, architecture, options):
    from components.preprocess import preprocess
    splits = {}
    for name, rows in (("train", sentiment_rows(24, seed=1)), ("validation", sentiment_rows(6, seed=2))):
        splits[name] = str(root / "splits" / name)
        split_io.write_split(splits[name], [(text, LABELS[int(label)]) for text, label in rows], LABELS)
    out = {name: str(root / architecture / name) for name in splits}
    vocab = str(root / architecture / "vocab")
    preprocess(architecture, splits, out, vocab, options)
    return out["train"], out["validation"], vocab


@pytest.fixture(scope="module")
def awe_folders(tmp_path_factory):
    from components.options import AverageWordEmbeddingModelOptions
    return _tokenize(tmp_path_factory.mktemp("awe"), "awe", AverageWordEmbeddingModelOptions(seq_len=8, vocab_size=100))


class _NonChief:
    """The default strategy, but answering as a non-chief multi-worker task does."""

    num_replicas_in_sync = 1

    def __init__(self):
        import tensorflow as tf
        self._strategy = tf.distribute.get_strategy()
        self.extended = SimpleNamespace(should_checkpoint=False)

    def scope(self):
        return self._strategy.scope()


def test_only_the_chief_writes_checkpoints_and_the_model(awe_folders, tmp_path):
    from components.train import train
    summary = train("awe", *awe_folders, {"seq_len": 8}, {"epochs": 2, "batch_size": 8},
                    str(tmp_path / "model"), str(tmp_path / "checkpoints"), strategy=_NonChief())
    assert summary["chief"] is False and len(summary["history"]) == 2
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "model").exists()


def test_mirrored_over_two_cpus_matches_one_device(awe_folders, tmp_path):
    from components.options import BertModelOptions
    encoder = make_tiny_hf_checkpoint(tmp_path / "encoder", scale=0.05, hidden_dropout_prob=0.0,
                                      attention_probs_dropout_prob=0.0)
    bert_options = {"seq_len": 16, "encoder": encoder, "dropout_rate": 0.0}
    bert = _tokenize(tmp_path, "bert", BertModelOptions(**bert_options))
    # No dropout and no shuffling: the two runs then differ only in how each batch is split. An
    # evenly split batch gives the same gradient; one that is not (7 texts: 4 + 3) weighs the two
    # replicas' mean losses equally (Keras' loss scaling), which moves the weights a little.
    cases = [
        {"architecture": "awe", "train": awe_folders[0], "validation": awe_folders[1], "vocab": awe_folders[2],
         "model_options": {"seq_len": 8, "dropout_rate": 0.0},
         "hparams": {"epochs": 3, "batch_size": 8, "learning_rate": 0.02, "shuffle": False}},
        {"architecture": "bert", "train": bert[0], "validation": bert[1], "vocab": bert[2],
         "model_options": bert_options,
         # batches of 7 texts: length buckets give batches of every size, some odd, some under 2
         "hparams": {"epochs": 1, "batch_size": 7, "learning_rate": 0.005, "shuffle": False}},
    ]
    cases_path, output = tmp_path / "cases.json", tmp_path / "out" / "results.json"
    cases_path.write_text(json.dumps(cases))
    output.parent.mkdir()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "strategy_probe.py"), str(cases_path),
                           str(output)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "distribution: one device" in done.stdout
    for case, runs in zip(cases, json.loads(output.read_text())):
        one, mirrored = runs["one"], runs["mirrored"]
        assert (one["replicas"], mirrored["replicas"]) == (1, 2)
        assert mirrored["distribution"] == "MirroredStrategy"
        assert len(one["history"]) == len(mirrored["history"]) == case["hparams"]["epochs"]
        for a, b in zip(one["history"], mirrored["history"]):
            for key in ("loss", "val_loss"):
                assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-4), (case["architecture"], key)
            for key in ("accuracy", "val_accuracy"):
                assert b[key] == pytest.approx(a[key], abs=1e-6), (case["architecture"], key)
        np.testing.assert_allclose(mirrored["probabilities"], one["probabilities"], atol=1e-2)
    awe = json.loads(output.read_text())[0]  # evenly split batches: the same model
    np.testing.assert_allclose(awe["mirrored"]["probabilities"], awe["one"]["probabilities"], atol=1e-5)
    assert awe["one"]["history"][-1]["loss"] < awe["one"]["history"][0]["loss"]  # it trained


def _free_ports(count):
    import socket
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _workers(case_path, tmp_path, cluster, extra_env=None):
    """Both tasks of `cluster` (chief, worker) as processes; returns their (returncode, stdout)."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **(extra_env or {}))
    started = []
    for role in ("chief", "worker"):
        config = json.dumps({"cluster": cluster, "task": {"type": role, "index": 0}})
        log = open(tmp_path / f"{role}.log", "w+")
        started.append((subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "multiworker_probe.py"),
                                          str(case_path), str(tmp_path / f"model-{role}")],
                                         stdout=log, stderr=subprocess.STDOUT, env=dict(env, TF_CONFIG=config)), log))
    results = []
    for process, log in started:
        try:
            process.wait(timeout=600)
        finally:
            if process.poll() is None:
                process.kill()
        log.seek(0)
        results.append((process.returncode, log.read()))
        log.close()
    return results


def _summary(output):
    return json.loads([line for line in output.splitlines() if line.startswith("SUMMARY ")][-1][len("SUMMARY "):])


@pytest.mark.slow
def test_two_workers_train_and_resume_under_multi_worker_mirrored_strategy(awe_folders, tmp_path):
    """Two local processes with Vertex-style TF_CONFIG: a fault stops both, the re-launch resumes from
    the chief's checkpoint, only the chief writes, and the result is one device's."""
    from components.train import FAULT_ENV, train
    hparams = {"epochs": 3, "batch_size": 8, "learning_rate": 0.02, "shuffle": False}
    options = {"seq_len": 8, "dropout_rate": 0.0}
    case = {"train": awe_folders[0], "validation": awe_folders[1], "vocab": awe_folders[2],
            "model_options": options, "hparams": hparams, "checkpoint_dir": str(tmp_path / "checkpoints")}
    case_path = tmp_path / "case.json"
    case_path.write_text(json.dumps(case))
    chief_port, worker_port = _free_ports(2)
    cluster = {"chief": [f"127.0.0.1:{chief_port}"], "worker": [f"127.0.0.1:{worker_port}"]}

    for code, output in _workers(case_path, tmp_path, cluster, {FAULT_ENV: "10"}):
        assert code != 0 and "InjectedFault" in output, output[-2000:]
    assert (tmp_path / "checkpoints" / "ckpt-1.index").exists()
    chief_port, worker_port = _free_ports(2)
    cluster = {"chief": [f"127.0.0.1:{chief_port}"], "worker": [f"127.0.0.1:{worker_port}"]}
    (chief_code, chief_out), (worker_code, worker_out) = _workers(case_path, tmp_path, cluster)
    assert chief_code == 0 and worker_code == 0, chief_out[-2000:] + worker_out[-2000:]
    assert "MultiWorkerMirroredStrategy over 2 workers; this is chief 0 (chief)" in chief_out
    chief, worker = _summary(chief_out), _summary(worker_out)
    assert (chief["chief"], worker["chief"]) == (True, False)
    assert chief["replicas"] == worker["replicas"] == 2
    assert chief["resumed_from_epoch"] == worker["resumed_from_epoch"] == 1
    assert (tmp_path / "model-chief" / "weights.h5").exists() and not (tmp_path / "model-worker").exists()

    alone = train("awe", *awe_folders, options, hparams, str(tmp_path / "alone"), str(tmp_path / "alone_ckpt"))
    for a, b in zip(alone["history"], chief["history"]):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4) and b["val_accuracy"] == a["val_accuracy"]
