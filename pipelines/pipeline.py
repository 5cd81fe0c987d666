"""The text-classifier pipeline: wiring only.

ingest → per architecture: preprocess (Beam) → train → evaluate → export → quantize → TFLite
evaluation → latency benchmark → collect → report over all architectures → optional publish.

Which architectures run is chosen when the pipeline is built (`create_pipeline(models=...)`):
each gets a branch of tasks of its own, so its steps can have their own machines and
accelerators (`pipelines.resources`), and `{architecture}_model_options` / `_hparams`
parameters. kfp cannot gather artifacts from separate tasks into one list, so the branches' results
reach the report through a chain of `collect` tasks.
"""

import dataclasses
import inspect
from typing import Any, Dict, List, Mapping, Optional, Sequence

from kfp import dsl

from components import architectures
from components.ops import DEFAULT_IMAGE, make_ops
from pipelines import resources as res

PIPELINE_NAME = "textclf-text-classifier"
DEFAULT_MODELS = ("awe", "bert")
SST2_ZIP = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
DEFAULTS: Dict[str, Any] = {
    "train": f"{SST2_ZIP}#SST-2/train.tsv",
    "validation": f"{SST2_ZIP}#SST-2/dev.tsv",
    "test": "",
    "csv_params": {"text_column": "auto", "label_column": "label", "delimiter": "auto"},
    "split_options": {},
    "quantization": {"mode": "dynamic"},
    "beam_pipeline_args": [],
    "max_accuracy_drop": 1.0,
    "min_accuracy": 0.0,
    "min_gain_over_majority": 0.05,
    "publish_below_baseline": False,
    "benchmark_runs": 200,
    "export_dir": "",
    "checkpoint_root": "",
    "cache_salt": "",
}
# The pipeline's (and CLI's) choice where the Model Maker-compatible API keeps Model Maker's:
# BERT with the offline MiniLM-L6 encoder.
MODEL_OPTION_DEFAULTS: Dict[str, Dict[str, Any]] = {"bert": {"encoder": "minilm-l6"}}
_ANNOTATIONS = {"train": str, "validation": str, "test": str, "csv_params": dict, "split_options": dict,
                "quantization": dict, "beam_pipeline_args": List[str], "max_accuracy_drop": float,
                "min_accuracy": float, "min_gain_over_majority": float, "publish_below_baseline": bool,
                "benchmark_runs": int, "export_dir": str, "checkpoint_root": str, "cache_salt": str}


def model_options_parameter(architecture: str) -> str:
    return f"{architecture}_model_options"


def hparams_parameter(architecture: str) -> str:
    return f"{architecture}_hparams"


def parameter_names(models: Sequence[str]) -> List[str]:
    names = list(_ANNOTATIONS)
    for arch in architectures.with_requirements(models):
        names += [model_options_parameter(arch), hparams_parameter(arch)]
    return names


def _signature(models: Sequence[str]) -> inspect.Signature:
    parameters = []
    for name in parameter_names(models):
        if name in _ANNOTATIONS:
            default, annotation = DEFAULTS[name], _ANNOTATIONS[name]
        else:
            arch = name.rsplit("_model_options", 1)[0] if name.endswith("_model_options") else ""
            default, annotation = dict(MODEL_OPTION_DEFAULTS.get(arch, {})), dict
        parameters.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                            default=default, annotation=annotation))
    return inspect.Signature(parameters)


def create_pipeline(image: str = DEFAULT_IMAGE, models: Sequence[str] = DEFAULT_MODELS,
                    resources: Optional[Mapping[str, Any]] = None, gpu_image: str = "", local: bool = False):
    """The pipeline with a branch per architecture in `models` (plus what they need).

    Args:
        image: The image every step runs in.
        models: Architectures to train (`components.architectures` names).
        resources: Per-step machines, accelerators (`pipelines.resources`); none: kfp's defaults.
        gpu_image: The image of steps given an accelerator (its TensorFlow sees CUDA).
        local: For kfp's local runner: no Vertex custom jobs, no accelerator expectations (the
            steps run on this machine whatever `resources` says).
    """
    archs = architectures.with_requirements(architectures.parse_architectures(models))
    names = parameter_names(archs)
    machines = res.validate(resources)
    ops = make_ops(image)
    gpu_ops = make_ops(gpu_image or image)

    def task(step: str, branch: str = "", display: str = "", **arguments):
        settings = res.for_step(machines, step, branch)
        if local:
            settings = dataclasses.replace(settings, machine_type="", replica_count=1)
        component = getattr(gpu_ops if settings.accelerated else ops, "ingest_split" if step == "ingest" else step)
        name = display or (f"{step.replace('_', '-')}-{branch}" if branch else step)
        if settings.custom_job:
            component = res.custom_job_component(component, settings, name)
        made = component(**arguments)
        made.set_display_name(name)
        return res.apply(made, settings, step, local=local)

    def text_classifier(*args):
        p = dict(zip(names, args))
        salt = p["cache_salt"]
        ingest = task("ingest", display="ingest-and-split", train=p["train"], validation=p["validation"],
                      test=p["test"], csv_params=p["csv_params"], split_options=p["split_options"],
                      cache_salt=salt)
        collected = None
        for arch in archs:
            options, hparams = p[model_options_parameter(arch)], p[hparams_parameter(arch)]
            prep = task("preprocess", arch, model_options=options, architecture=arch,
                        beam_pipeline_args=p["beam_pipeline_args"], cache_salt=salt,
                        train_data=ingest.outputs["train_data"],
                        validation_data=ingest.outputs["validation_data"], test_data=ingest.outputs["test_data"])
            trained = task("train", arch, architecture=arch, model_options=options, hparams=hparams,
                           checkpoint_root=p["checkpoint_root"], pipeline_root=dsl.PIPELINE_ROOT_PLACEHOLDER,
                           cache_salt=salt,
                           train_tokens=prep.outputs["train_tokens"],
                           validation_tokens=prep.outputs["validation_tokens"], vocab=prep.outputs["vocab"])
            evaluated = task("evaluate", arch, cache_salt=salt, model=trained.outputs["model"],
                             test_tokens=prep.outputs["test_tokens"],
                             validation_tokens=prep.outputs["validation_tokens"])
            exported = task("export", arch, cache_salt=salt, model=trained.outputs["model"],
                            vocab=prep.outputs["vocab"])
            quantized = task("quantize", arch, quantization=p["quantization"], cache_salt=salt,
                             exported=exported.outputs["exported"], train_tokens=prep.outputs["train_tokens"])
            checked = task("tflite_evaluate", arch, max_accuracy_drop=p["max_accuracy_drop"], cache_salt=salt,
                           exported=exported.outputs["exported"], quantized=quantized.outputs["quantized"],
                           test_tokens=prep.outputs["test_tokens"])
            timed = task("benchmark", arch, runs=p["benchmark_runs"], cache_salt=salt,
                         exported=exported.outputs["exported"], quantized=quantized.outputs["quantized"],
                         test_tokens=prep.outputs["test_tokens"])
            timed.set_caching_options(False)  # a measurement: always taken fresh
            previous = {"previous": collected.outputs["results"]} if collected is not None else {}
            collected = task("collect", arch, architecture=arch, model=trained.outputs["model"],
                             evaluation=evaluated.outputs["evaluation"], exported=exported.outputs["exported"],
                             quantized=quantized.outputs["quantized"],
                             tflite_evaluation=checked.outputs["tflite_evaluation"],
                             latency=timed.outputs["latency"], **previous)
            collected.set_caching_options(False)  # carries the (uncached) latency figures on

        reported = task("report", min_accuracy=p["min_accuracy"],
                        min_gain_over_majority=p["min_gain_over_majority"],
                        publish_below_baseline=p["publish_below_baseline"], cache_salt=salt,
                        profile=ingest.outputs["profile"], results=collected.outputs["results"])
        reported.set_caching_options(False)
        with dsl.If(p["export_dir"] != "", name="export-dir-given"):
            published = task("publish", export_dir=p["export_dir"], deliverables=reported.outputs["deliverables"])
            published.set_caching_options(False)

    text_classifier.__signature__ = _signature(archs)
    text_classifier.__annotations__ = {name: param.annotation
                                       for name, param in text_classifier.__signature__.parameters.items()}
    return dsl.pipeline(name=PIPELINE_NAME, description="Model Maker's text classifier "
                        f"({', '.join(archs)}) as a reproducible pipeline")(text_classifier)
