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
# The public copy of the built-in data (`components/data/sst2`); still read when given as a source.
SST2_ZIP = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
# The default data: SST-2 as packaged, split honestly (validation carved out of train.tsv for
# checkpoint selection, dev.tsv kept as the untouched test set).
DEFAULTS: Dict[str, Any] = {
    "train": "builtin:sst2/train.tsv",
    "validation": "",
    "test": "builtin:sst2/dev.tsv",
    "csv_params": {"text_column": "auto", "label_column": "label", "delimiter": "auto"},
    "split_options": {"validation_fraction": 0.05},
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


_DESCRIPTIONS = {
    "train": "Training data: a file, glob or folder (local or gs://), an http(s) URL, ZIP#member, or the "
             "built-in SST-2.",
    "validation": "Validation data; empty: a stratified fraction of train (split_options).",
    "test": "Test data; empty: the validation split, or a fraction of train when there is neither.",
    "csv_params": "How to read the files: CSVParams fields (text_column, label_column, delimiter, quotechar, "
                  "encoding, fieldnames, on_bad_rows).",
    "split_options": "SplitOptions fields: validation_fraction, test_fraction, seed.",
    "quantization": "QuantizationConfig fields: mode none, dynamic, float16 or int8.",
    "beam_pipeline_args": "Passed to Apache Beam unchanged (runner, project, region, workers, ...).",
    "max_accuracy_drop": "Accuracy points quantization may cost before the TFLite evaluation fails.",
    "min_accuracy": "Publish gate: a model below this test accuracy is reported, not published.",
    "min_gain_over_majority": "Baseline gate: validation balanced accuracy must beat the majority-class "
                              "predictor's by this much, or the model is flagged and not published.",
    "publish_below_baseline": "Publish a model that fails the baseline gate anyway.",
    "benchmark_runs": "Timed single-example invocations per model and thread count.",
    "export_dir": "Where the deliverables are published (local or gs://); empty: not published.",
    "checkpoint_root": "Where training checkpoints go so a retried task resumes.",
    "cache_salt": "Set by the runners from the code and local inputs: keeps the cache honest.",
}


def _docstring(names: Sequence[str]) -> str:
    """Google-style Args, which kfp shows as the inputs' descriptions in the Vertex and Kubeflow UIs."""
    lines = ["Model Maker's text classifier as a pipeline: ingest, then per architecture preprocess, train, "
             "evaluate, export, quantize, TFLite evaluation and latency, then the report.", "", "Args:"]
    for name in names:
        if name in _DESCRIPTIONS:
            text = _DESCRIPTIONS[name]
        elif name.endswith("_model_options"):
            arch = name[:-len("_model_options")]
            text = f"Model options of {arch} ({architectures.get(arch).options_class.__name__} fields)."
        else:
            arch = name[:-len("_hparams")]
            text = f"Training hyperparameters of {arch} ({architectures.get(arch).hparams_class.__name__} fields)."
        lines.append(f"    {name}: {text}")
    return "\n".join(lines) + "\n"


def model_options_parameter(architecture: str) -> str:
    return f"{architecture}_model_options"


def hparams_parameter(architecture: str) -> str:
    return f"{architecture}_hparams"


def parameter_names(models: Sequence[str], teacher: str = "") -> List[str]:
    names = list(_ANNOTATIONS)
    for arch in (models if teacher else architectures.with_requirements(models)):
        names += [model_options_parameter(arch), hparams_parameter(arch)]
    return names


def _signature(models: Sequence[str], teacher: str = "") -> inspect.Signature:
    parameters = []
    for name in parameter_names(models, teacher):
        if name in _ANNOTATIONS:
            default, annotation = DEFAULTS[name], _ANNOTATIONS[name]
        else:
            arch = name.rsplit("_model_options", 1)[0] if name.endswith("_model_options") else ""
            default, annotation = dict(MODEL_OPTION_DEFAULTS.get(arch, {})), dict
        parameters.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                            default=default, annotation=annotation))
    return inspect.Signature(parameters)


def create_pipeline(image: str = DEFAULT_IMAGE, models: Sequence[str] = DEFAULT_MODELS,
                    resources: Optional[Mapping[str, Any]] = None, gpu_image: str = "", teacher: str = "",
                    local: bool = False):
    """The pipeline with a branch per architecture in `models` (plus what they need).

    Args:
        image: The image every step runs in.
        models: Architectures to train (`components.architectures` names).
        resources: Per-step machines, accelerators (`pipelines.resources`); none: kfp's defaults.
        gpu_image: The image of steps given an accelerator (its TensorFlow sees CUDA).
        teacher: A trained teacher model folder for the architectures that learn from one
            (`distilled`); empty: the run trains the teacher architecture too.
        local: For kfp's local runner: no Vertex custom jobs, no accelerator expectations (the
            steps run on this machine whatever `resources` says).
    """
    selected = architectures.parse_architectures(models)
    archs = selected if teacher else architectures.with_requirements(selected)
    names = parameter_names(archs, teacher)
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
                      beam_pipeline_args=p["beam_pipeline_args"], cache_salt=salt)
        collected = None
        trained_models = {}
        for arch in archs:
            options, hparams = p[model_options_parameter(arch)], p[hparams_parameter(arch)]
            train_data = ingest.outputs["train_data"]
            if architectures.get(arch).learns_from_teacher:
                source = ({"teacher_dir": teacher} if teacher else
                          {"teacher_dir": "", "teacher": trained_models[architectures.get(arch).requires[0]]})
                scored = task("transfer", arch, architecture=arch, model_options=options,
                              beam_pipeline_args=p["beam_pipeline_args"], cache_salt=salt,
                              train_data=train_data, **source)
                train_data = scored.outputs["transfer_data"]
            prep = task("preprocess", arch, model_options=options, architecture=arch,
                        beam_pipeline_args=p["beam_pipeline_args"], cache_salt=salt, train_data=train_data,
                        validation_data=ingest.outputs["validation_data"], test_data=ingest.outputs["test_data"])
            trained = task("train", arch, architecture=arch, model_options=options, hparams=hparams,
                           checkpoint_root=p["checkpoint_root"], pipeline_root=dsl.PIPELINE_ROOT_PLACEHOLDER,
                           cache_salt=salt,
                           train_tokens=prep.outputs["train_tokens"],
                           validation_tokens=prep.outputs["validation_tokens"], vocab=prep.outputs["vocab"])
            trained_models[arch] = trained.outputs["model"]
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

    text_classifier.__signature__ = _signature(archs, teacher)
    text_classifier.__doc__ = _docstring(names)
    text_classifier.__annotations__ = {name: param.annotation
                                       for name, param in text_classifier.__signature__.parameters.items()}
    return dsl.pipeline(name=PIPELINE_NAME, description="Model Maker's text classifier "
                        f"({', '.join(archs)}) as a reproducible pipeline")(text_classifier)
