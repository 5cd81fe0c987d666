#!/usr/bin/env python3
"""Run the pipeline's steps inside the built image, each started exactly as kfp starts a component.

The pipeline is compiled inside the image; each step's container `command` and `args` come from
the compiled YAML (`sh -ec ... python3 -m kfp.dsl.executor_main ...`), with the executor input
kfp would pass (artifact URIs in a work folder) in place of `{{$}}`. Each command runs in a fresh
container (`buildah run --isolation chroot`), one step's outputs feeding the next: ingest →
preprocess (Beam) → a short AWE training → evaluate → export → quantize → LiteRT evaluation →
latency → report → publish, on a small two-class data set written here. What each step wrote is
checked, and the published .tflite files are loaded with LiteRT in the image.

    python3 image/check.py --image textclf-pipelines:latest [--work runs/image-check]

Standard library only: it runs on the host beside buildah. The last line printed is one JSON
object (image size, step times, accuracies).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

MOUNT = "/check"  # where the work folder appears inside the containers
MARKER = ".image-check"  # a work folder holding it may be emptied by the next run
COMPILE_SCRIPT = "/opt/textclf/compile.py"
METRICS_TYPES = {"system.Metrics", "system.ClassificationMetrics"}
MIN_ACCURACY = 0.8  # the data is separable; a model that learned nothing scores 0.5

POSITIVE = ["great", "wonderful", "superb", "delightful", "moving", "brilliant", "charming", "funny",
            "touching", "beautiful"]
NEGATIVE = ["awful", "boring", "dull", "terrible", "clumsy", "tedious", "bland", "messy", "weak",
            "lifeless"]
FILLER = ["the", "film", "story", "was", "a", "plot", "acting", "really", "quite", "and", "its", "cast",
          "ending", "script", "very"]


class CheckError(Exception):
    """A step of the image check failed; the message names the step."""


@dataclass
class Step:
    """One component call: its function name, parameter values, and which upstream output feeds
    each input artifact (a list of them for a list-valued input)."""

    function: str
    params: Dict = field(default_factory=dict)
    inputs: Dict[str, object] = field(default_factory=dict)

    @property
    def component(self) -> str:
        return "comp-" + self.function.replace("_", "-")


def steps(data: str, export_dir: str, epochs: int = 2, benchmark_runs: int = 20) -> List[Step]:
    """The AWE branch of the pipeline, in order; `data` and `export_dir` are paths as the container sees them."""
    salt = {"cache_salt": "image-check"}
    awe_options = {"seq_len": 16, "vocab_size": 500}
    return [
        Step("ingest_split", dict(train=f"{data}/train.tsv", validation="", test=f"{data}/test.tsv",
                                  csv_params={"text_column": "sentence", "label_column": "label",
                                              "delimiter": "\t"},
                                  split_options={"validation_fraction": 0.2, "seed": 0}, beam_pipeline_args=[],
                                  **salt)),
        Step("preprocess", dict(architecture="awe", model_options=awe_options, beam_pipeline_args=[], **salt),
             {"train_data": ("ingest_split", "train_data"), "validation_data": ("ingest_split", "validation_data"),
              "test_data": ("ingest_split", "test_data")}),
        # A high learning rate: two epochs on this data then reach about 100 %.
        Step("train", dict(architecture="awe", model_options=awe_options,
                           hparams={"epochs": epochs, "batch_size": 16, "learning_rate": 0.05},
                           checkpoint_root="", pipeline_root="", **salt),
             {"train_tokens": ("preprocess", "train_tokens"),
              "validation_tokens": ("preprocess", "validation_tokens"), "vocab": ("preprocess", "vocab")}),
        Step("evaluate", dict(salt), {"model": ("train", "model"), "test_tokens": ("preprocess", "test_tokens"),
                                      "validation_tokens": ("preprocess", "validation_tokens")}),
        Step("export", dict(salt), {"model": ("train", "model"), "vocab": ("preprocess", "vocab")}),
        Step("quantize", dict(quantization={"mode": "dynamic"}, **salt),
             {"exported": ("export", "exported"), "train_tokens": ("preprocess", "train_tokens")}),
        # A wide gate (points): on 100 test rows one flipped prediction is a point; a broken
        # quantization still fails it.
        Step("tflite_evaluate", dict(max_accuracy_drop=10.0, **salt),
             {"exported": ("export", "exported"), "quantized": ("quantize", "quantized"),
              "test_tokens": ("preprocess", "test_tokens")}),
        Step("benchmark", dict(runs=benchmark_runs, **salt),
             {"exported": ("export", "exported"), "quantized": ("quantize", "quantized"),
              "test_tokens": ("preprocess", "test_tokens")}),
        Step("collect", dict(architecture="awe"),
             {"model": ("train", "model"), "evaluation": ("evaluate", "evaluation"),
              "exported": ("export", "exported"), "quantized": ("quantize", "quantized"),
              "tflite_evaluation": ("tflite_evaluate", "tflite_evaluation"), "latency": ("benchmark", "latency")}),
        Step("report", dict(min_accuracy=0.0, min_gain_over_majority=0.05, publish_below_baseline=False, **salt),
             {"profile": ("ingest_split", "profile"), "results": ("collect", "results")}),
        Step("publish", dict(export_dir=export_dir), {"deliverables": ("report", "deliverables")}),
    ]


# Files each step must have written, relative to its output artifacts (beyond "every output exists").
EXPECTED_FILES = {
    "ingest_split": ["profile/profile.md", "profile_report"],
    "export": ["exported/model.tflite"],
    "quantize": ["quantized/model.tflite"],
    "tflite_evaluate": ["tflite_evaluation/tflite_evaluation.json"],
    "benchmark": ["latency/latency.json"],
    "collect": ["results/architectures.json", "results/awe/model_quantized.tflite"],
    "report": ["report_markdown", "report_html", "deliverables/summary.json"],
}
# Metrics each step must have logged: (output artifact, metric).
EXPECTED_METRICS = {
    "ingest_split": [("profile_metrics", "train_rows"), ("profile_metrics", "test_rows")],
    "train": [("training_metrics", "best_val_accuracy")],
    "evaluate": [("metrics", "accuracy")],
    "tflite_evaluate": [("metrics", "float_accuracy"), ("metrics", "quantized_accuracy")],
}


def write_data(folder: str, train_rows: int = 320, test_rows: int = 100, seed: int = 0) -> None:
    """A learnable two-class TSV set: each sentence carries words of its class among filler words."""
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    for name, rows in (("train", train_rows), ("test", test_rows)):
        with open(os.path.join(folder, f"{name}.tsv"), "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n")
            for i in range(rows):
                label, words = ("positive", POSITIVE) if i % 2 else ("negative", NEGATIVE)
                tokens = rng.sample(words, 2) + rng.sample(FILLER, rng.randint(3, 7))
                rng.shuffle(tokens)
                f.write(" ".join(tokens) + f"\t{label}\n")


class Layout:
    """Paths of the work folder on the host and as the containers see them."""

    def __init__(self, host_root: str, inner_root: str):
        self.host_root = os.path.abspath(host_root)
        self.inner_root = inner_root

    def inner(self, *parts: str) -> str:
        return "/".join([self.inner_root.rstrip("/"), *parts])

    def host(self, *parts: str) -> str:
        return os.path.join(self.host_root, *parts)

    def host_of(self, inner_path: str) -> str:
        prefix = self.inner_root.rstrip("/") + "/"
        if not inner_path.startswith(prefix):
            raise CheckError(f"{inner_path} is outside the work folder {self.inner_root}")
        return self.host(*inner_path[len(prefix):].split("/"))


def component_of(spec: Dict, step: Step) -> Dict:
    try:
        return spec["components"][step.component]
    except KeyError:
        raise CheckError(f"step {step.function}: the compiled pipeline has no component {step.component}") from None


def executor_input(spec: Dict, step: Step, layout: Layout, produced: Dict[str, Dict[str, Dict]]) -> Dict:
    """The ExecutorInput (protobuf JSON names) kfp's launcher would hand this step.

    `produced[step][output]` holds each upstream output artifact as the executor reported it.
    Every input the compiled component declares must be given (or have a default) and nothing
    else, so a changed component signature fails here, not halfway through a run.
    """
    component = component_of(spec, step)
    inputs = component.get("inputDefinitions", {})
    outputs = component.get("outputDefinitions", {})
    declared = inputs.get("parameters", {})
    unknown = set(step.params) - set(declared)
    if unknown:
        raise CheckError(f"step {step.function}: parameters {sorted(unknown)} are not inputs of {step.component}")
    values = {}
    for name, definition in declared.items():
        if name in step.params:
            values[name] = step.params[name]
        elif "defaultValue" in definition:
            values[name] = definition["defaultValue"]
        elif not definition.get("isOptional"):
            raise CheckError(f"step {step.function}: input parameter {name!r} has no value")

    artifacts = {}
    declared_artifacts = inputs.get("artifacts", {})
    unknown = set(step.inputs) - set(declared_artifacts)
    if unknown:
        raise CheckError(f"step {step.function}: artifacts {sorted(unknown)} are not inputs of {step.component}")
    for name, definition in declared_artifacts.items():
        if name not in step.inputs:
            if definition.get("isOptional"):
                continue
            raise CheckError(f"step {step.function}: input artifact {name!r} is not wired")
        sources = step.inputs[name]
        is_list = isinstance(sources, list)
        if is_list != bool(definition.get("isArtifactList")):
            raise CheckError(f"step {step.function}: input {name!r} is "
                             f"{'a list' if definition.get('isArtifactList') else 'one artifact'} in the component")
        listed = []
        for producer, output in (sources if is_list else [sources]):
            try:
                listed.append(produced[producer][output])
            except KeyError:
                raise CheckError(f"step {step.function}: input {name!r} needs {producer}.{output}, "
                                 "which no earlier step produced") from None
        artifacts[name] = {"artifacts": listed}

    step_dir = layout.inner("steps", step.function)
    return {
        "inputs": {"parameterValues": values, "artifacts": artifacts},
        "outputs": {
            "parameters": {name: {"outputFile": f"{step_dir}/{name}"}
                           for name in outputs.get("parameters", {})},
            "artifacts": {name: {"artifacts": [{"name": name, "type": definition["artifactType"],
                                                "uri": f"{step_dir}/{name}", "metadata": {}}]}
                          for name, definition in outputs.get("artifacts", {}).items()},
            "outputFile": f"{step_dir}/executor_output.json",
        },
    }


def container_argv(spec: Dict, step: Step, executor_input_json: str, image: Optional[str] = None) -> List[str]:
    """The component's compiled `command + args`, `{{$}}` replaced by the executor input."""
    component = component_of(spec, step)
    container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    if image is not None and container.get("image") != image:
        raise CheckError(f"step {step.function}: compiled for image {container.get('image')!r}, not {image!r}")
    argv = list(container.get("command", [])) + [executor_input_json if a == "{{$}}" else a
                                                 for a in container.get("args", [])]
    left = [a for a in argv if "{{$" in a]
    if left:
        raise CheckError(f"step {step.function}: placeholders this check cannot fill: {left}")
    function = argv[argv.index("--function_to_execute") + 1] if "--function_to_execute" in argv else None
    if function != step.function:
        raise CheckError(f"step {step.function}: the compiled command runs {function!r}")
    return argv


def collect_outputs(spec: Dict, step: Step, layout: Layout, given: Dict) -> Tuple[Dict[str, Dict], Dict]:
    """Output artifacts (metadata from executor_output.json) and output parameter values."""
    path = layout.host_of(given["outputs"]["outputFile"])
    reported = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            reported = json.load(f)
    artifacts = {}
    for name, listed in given["outputs"]["artifacts"].items():
        artifact = dict(listed["artifacts"][0])
        update = reported.get("artifacts", {}).get(name, {}).get("artifacts", [])
        if update:
            artifact["metadata"] = update[0].get("metadata", {})
            artifact["uri"] = update[0].get("uri") or artifact["uri"]
        artifacts[name] = artifact
    parameters = dict(reported.get("parameterValues", {}))
    for name, output in given["outputs"]["parameters"].items():
        if name not in parameters and os.path.exists(layout.host_of(output["outputFile"])):
            with open(layout.host_of(output["outputFile"]), encoding="utf-8") as f:
                parameters[name] = f.read()
    return artifacts, parameters


def verify_step(step: Step, artifacts: Dict[str, Dict], layout: Layout) -> None:
    """Every output artifact exists (Metrics: has metrics), plus the step's expected files and metrics."""
    for name, artifact in artifacts.items():
        if artifact["type"]["schemaTitle"] in METRICS_TYPES:
            if not artifact.get("metadata"):
                raise CheckError(f"step {step.function}: output {name} logged no metrics")
            continue
        path = layout.host_of(artifact["uri"])
        if not os.path.exists(path) or (os.path.isdir(path) and not os.listdir(path)) or \
                (os.path.isfile(path) and os.path.getsize(path) == 0):
            raise CheckError(f"step {step.function}: output {name} is missing or empty ({path})")
    for relative in EXPECTED_FILES.get(step.function, []):
        name, _, rest = relative.partition("/")
        path = layout.host_of(artifacts[name]["uri"] + (f"/{rest}" if rest else ""))
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            raise CheckError(f"step {step.function}: expected file {relative} is missing or empty ({path})")
    for name, metric in EXPECTED_METRICS.get(step.function, []):
        if not isinstance(artifacts[name].get("metadata", {}).get(metric), (int, float)):
            raise CheckError(f"step {step.function}: metric {name}.{metric} was not logged")
    if step.function == "tflite_evaluate":
        accuracy = artifacts["metrics"]["metadata"]["float_accuracy"]
        if accuracy < MIN_ACCURACY:
            raise CheckError(f"step tflite_evaluate: the float .tflite scores {accuracy:.3f} on the test split, "
                             f"below {MIN_ACCURACY} on separable data")


Runner = Callable[[str, Sequence[str], str], int]  # (label, argv, log path) -> exit status


def buildah_runner(image: str, layout: Layout) -> Runner:
    """Each call in a fresh working container of `image`, the work folder mounted at MOUNT."""
    def run(label: str, argv: Sequence[str], log_path: str) -> int:
        made = subprocess.run(["buildah", "from", "--pull=never", "--quiet", image], capture_output=True, text=True)
        if made.returncode != 0:
            raise CheckError(f"step {label}: buildah from {image} failed: {made.stderr.strip()}")
        container = made.stdout.strip()
        try:
            return _logged(["buildah", "run", "--isolation", "chroot", "-v", f"{layout.host_root}:{MOUNT}",
                            container, "--", *argv], log_path)
        finally:
            subprocess.run(["buildah", "rm", container], capture_output=True)
    return run


def local_runner(env: Optional[Dict[str, str]] = None) -> Runner:
    """Commands run here, `python3` being this interpreter (for the tests of this module)."""
    environment = dict(os.environ, **(env or {}))
    environment["PATH"] = os.path.dirname(sys.executable) + os.pathsep + environment.get("PATH", "")

    def run(label: str, argv: Sequence[str], log_path: str) -> int:
        return _logged(list(argv), log_path, environment)
    return run


def _logged(argv: List[str], log_path: str, env: Optional[Dict[str, str]] = None) -> int:
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        return subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env).returncode


def _tail(path: str, lines: int = 40) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def run_steps(spec: Dict, plan: List[Step], layout: Layout, runner: Runner, image: Optional[str] = None,
              echo: Callable[[str], None] = print) -> Dict[str, Dict]:
    """Runs each step's compiled command; returns per step its outputs, parameters and seconds."""
    produced: Dict[str, Dict[str, Dict]] = {}
    results: Dict[str, Dict] = {}
    for step in plan:
        given = executor_input(spec, step, layout, produced)
        argv = container_argv(spec, step, json.dumps(given), image)
        os.makedirs(layout.host("steps", step.function), exist_ok=True)
        log_path = layout.host("logs", f"{step.function}.log")
        start = time.monotonic()
        status = runner(step.function, argv, log_path)
        seconds = time.monotonic() - start
        if status != 0:
            raise CheckError(f"step {step.function} exited with status {status} after {seconds:.0f} s; "
                             f"log {log_path}, last lines:\n{_tail(log_path)}")
        artifacts, parameters = collect_outputs(spec, step, layout, given)
        verify_step(step, artifacts, layout)
        produced[step.function] = artifacts
        results[step.function] = {"artifacts": artifacts, "parameters": parameters, "seconds": round(seconds, 1)}
        echo(f"ok  {step.function:<16} {seconds:6.1f} s")
    return results


# Run in the image after the steps: the image's own contents, and the published models in LiteRT.
PROBE = r"""
import importlib.util, json, os, shutil, sys
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from components.text_classifier import TextClassifier
folder = sys.argv[1]
out = {"python": sys.version.split()[0], "python_executable": sys.executable, "tensorflow": tf.__version__,
       "tf_use_legacy_keras": os.environ.get("TF_USE_LEGACY_KERAS"),
       "compilers": [c for c in ("gcc", "cc", "g++", "c++", "clang", "make") if shutil.which(c)],
       "test_extras": [m for m in ("pytest", "mediapipe", "gcp_storage_emulator") if importlib.util.find_spec(m)],
       "cuda_libraries": importlib.util.find_spec("nvidia") is not None and
                         importlib.util.find_spec("nvidia.cudnn") is not None,
       "gpus_visible": len(tf.config.list_physical_devices("GPU")), "tflite": {}}
for name in ("model.tflite", "model_float.tflite"):
    interpreter = Interpreter(model_path=os.path.join(folder, name))
    interpreter.allocate_tensors()
    out["tflite"][name] = {"inputs": [d["dtype"].__name__ for d in interpreter.get_input_details()],
                           "bytes": os.path.getsize(os.path.join(folder, name))}
texts = {"a wonderful and moving film": "positive", "a dull and tedious film": "negative"}
out["predictions"] = {t: p.label for t, p in zip(texts, TextClassifier.load(folder).predict(list(texts)))}
out["expected"] = texts
print(json.dumps(out))
"""


def probe(layout: Layout, runner: Runner, export_inner: str, variant: str) -> Dict:
    log_path = layout.host("logs", "probe.log")
    if runner("probe", ["python3", "-c", PROBE, f"{export_inner}/awe"], log_path) != 0:
        raise CheckError(f"step probe (LiteRT load of the published .tflite, image contents) failed; "
                         f"log {log_path}, last lines:\n{_tail(log_path)}")
    with open(log_path, encoding="utf-8") as f:
        found = json.loads(f.read().strip().splitlines()[-1])
    problems = []
    if not found["python_executable"].startswith("/opt/venv/"):
        problems.append(f"python3 is {found['python_executable']}, not the image's venv")
    if found["tf_use_legacy_keras"] != "1":
        problems.append("TF_USE_LEGACY_KERAS is not 1")
    if found["compilers"]:
        problems.append(f"compilers left in the image: {found['compilers']}")
    if found["test_extras"]:
        problems.append(f"test extras installed: {found['test_extras']}")
    if found["cuda_libraries"] != (variant == "gpu"):
        problems.append(f"CUDA libraries {'missing from' if variant == 'gpu' else 'present in'} a {variant} image")
    if found["predictions"] != found["expected"]:
        problems.append(f"the published model predicts {found['predictions']}, expected {found['expected']}")
    if problems:
        raise CheckError("step probe: " + "; ".join(problems))
    return found


def compile_in_image(layout: Layout, runner: Runner, image: str, compile_script: str = COMPILE_SCRIPT) -> Dict:
    """`compile.py --image IMAGE` in the image, the YAML turned to JSON there too (the host may lack PyYAML)."""
    yaml_path, json_path = layout.inner("pipeline.yaml"), layout.inner("pipeline.json")
    convert = ("import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), open(sys.argv[2], 'w'))")
    log_path = layout.host("logs", "compile.log")
    script = 'python3 "$1" --output "$2" --image "$3" && python3 -c "$4" "$2" "$5"'
    status = runner("compile", ["sh", "-ec", script, "sh", compile_script, yaml_path, image, convert, json_path],
                    log_path)
    if status != 0:
        raise CheckError(f"step compile (compile.py in the image) exited with status {status}; log {log_path}, "
                         f"last lines:\n{_tail(log_path)}")
    with open(layout.host_of(json_path), encoding="utf-8") as f:
        return json.load(f)


def image_bytes(image: str) -> Optional[int]:
    if not shutil.which("podman"):
        return None
    found = subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", image],
                           capture_output=True, text=True)
    return int(found.stdout.strip()) if found.returncode == 0 and found.stdout.strip().isdigit() else None


def prepare_work(folder: str) -> None:
    """Empties a work folder this check made before (marker file); refuses any other non-empty one."""
    if os.path.isdir(folder) and os.listdir(folder):
        if not os.path.exists(os.path.join(folder, MARKER)):
            raise CheckError(f"work folder {folder} is not empty and was not made by this check; choose another")
        shutil.rmtree(folder)
    os.makedirs(folder)
    open(os.path.join(folder, MARKER), "w").close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="textclf-pipelines:latest")
    parser.add_argument("--work", default="runs/image-check", help="host folder for data, artifacts and logs")
    parser.add_argument("--variant", choices=("cpu", "gpu"), default="cpu",
                        help="the image's variant: gpu expects TensorFlow's CUDA libraries in it")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)

    if shutil.which("buildah") is None:
        print("image check: buildah is missing (apt-get install buildah)", file=sys.stderr)
        return 1
    if os.geteuid() != 0:
        print("image check: buildah run needs root; run it as root or with sudo", file=sys.stderr)
        return 1
    start = time.monotonic()
    layout = Layout(args.work, MOUNT)
    runner = buildah_runner(args.image, layout)
    try:
        prepare_work(layout.host_root)
        write_data(layout.host("data"))
        spec = compile_in_image(layout, runner, args.image)
        print(f"ok  {'compile':<16} pipeline.yaml for {args.image}")
        export_inner = layout.inner("export")
        results = run_steps(spec, steps(layout.inner("data"), export_inner, epochs=args.epochs), layout, runner,
                            image=args.image)
        published = results["publish"]["parameters"].get("Output")
        if published != export_inner:
            raise CheckError(f"step publish: returned {published!r}, not {export_inner!r}")
        found = probe(layout, runner, export_inner, args.variant)
        print(f"ok  {'probe':<16} LiteRT loads {sorted(found['tflite'])}; predictions {found['predictions']}")
    except CheckError as error:
        print(f"image check FAILED: {error}", file=sys.stderr)
        return 1
    tflite = results["tflite_evaluate"]["artifacts"]["metrics"]["metadata"]
    summary = {
        "image": args.image, "variant": args.variant, "image_bytes": image_bytes(args.image),
        "python": found["python"], "tensorflow": found["tensorflow"], "gpus_visible": found["gpus_visible"],
        "step_seconds": {name: result["seconds"] for name, result in results.items()},
        "keras_accuracy": results["evaluate"]["artifacts"]["metrics"]["metadata"]["accuracy"],
        "float_tflite_accuracy": tflite["float_accuracy"], "quantized_tflite_accuracy": tflite["quantized_accuracy"],
        "quantized_tflite_bytes": found["tflite"]["model.tflite"]["bytes"],
        "wall_seconds": round(time.monotonic() - start, 1),
    }
    print(f"image check passed in {summary['wall_seconds']:.0f} s; artifacts and logs in {layout.host_root}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
