"""Run by tests/test_distribute.py in a fresh interpreter: the host CPU split into two logical
devices (only possible before TensorFlow first touches its devices), then each architecture trained
on the same tokenized folders on one device (the strategy training picks here) and under
MirroredStrategy over both CPUs.

    python tests/strategy_probe.py CASES.json OUTPUT.json

CASES.json: [{"architecture", "train", "validation", "vocab", "model_options", "hparams"}, ...];
OUTPUT.json gets, per case, each run's history, replica count and test-set probabilities.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # as components/__init__.py sets it
import tensorflow as tf  # noqa: E402

CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

from components import model_io  # noqa: E402
from components.train import train  # noqa: E402


def probabilities(model_dir: str, case: dict):
    from components import architectures
    from components.tokenized import load_tokenized
    model, info = model_io.load_trained(model_dir)
    data, meta = load_tokenized(case["validation"])
    spec = architectures.get(case["architecture"])
    batches = spec.eval_batches(data, meta, spec.resolve_options(spec.options(case["model_options"]), meta), 8)
    return model.predict(batches, verbose=0).tolist()


def main(cases_path: str, output_path: str) -> None:
    with open(cases_path) as f:
        cases = json.load(f)
    results = []
    # One instance for every case: strategies made one after another in a process can hand out the
    # same collective keys for different tensors (one training per process is the real use).
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for index, case in enumerate(cases):
        runs = {}
        # None: the strategy training picks for this machine (no GPU, no TF_CONFIG: one device)
        for name, strategy in (("one", None), ("mirrored", mirrored)):
            model_dir = os.path.join(os.path.dirname(output_path), f"model-{index}-{name}")
            summary = train(case["architecture"], case["train"], case["validation"], case["vocab"],
                            case["model_options"], case["hparams"], model_dir, strategy=strategy)
            runs[name] = {"history": summary["history"], "replicas": summary["replicas"],
                          "distribution": summary["distribution"],
                          "probabilities": probabilities(model_dir, case)}
        results.append(runs)
    with open(output_path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
