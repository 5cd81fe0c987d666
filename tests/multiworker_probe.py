"""Run by tests/test_distribute.py as each of two local workers (TF_CONFIG set by the test): trains
AWE under the strategy training picks (MultiWorkerMirroredStrategy) and prints the summary.

    python tests/multiworker_probe.py CASE.json MODEL_DIR
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from components.train import train


def main(case_path: str, model_dir: str) -> None:
    with open(case_path) as f:
        case = json.load(f)
    summary = train("awe", case["train"], case["validation"], case["vocab"], case["model_options"], case["hparams"],
                    model_dir, case["checkpoint_dir"])
    print("SUMMARY " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
