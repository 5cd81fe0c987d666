"""Pipeline arguments from CLI flags and a config file: one mapping for every runner.

Precedence: pipeline defaults < `--config FILE` (YAML or JSON, keyed by pipeline parameter
names) < explicit flags.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from typing import Any, Dict, Iterable

import components
from components import architectures, storage
from components.errors import ConfigError, TextClfError
from components.options import CSVParams, QuantizationConfig, SplitOptions
from pipelines import resources as res

SHARED_OPTION_CLASSES = {"csv_params": CSVParams, "split_options": SplitOptions,
                         "quantization": QuantizationConfig}
SCALARS = ("train", "validation", "test", "max_accuracy_drop", "min_accuracy", "min_gain_over_majority",
           "publish_below_baseline", "benchmark_runs", "export_dir", "teacher",
           "checkpoint_root", "models", "beam_pipeline_args", "resources")


def option_classes() -> Dict[str, type]:
    """Every options-valued parameter: the shared ones and each architecture's two."""
    from pipelines.pipeline import hparams_parameter, model_options_parameter
    classes = dict(SHARED_OPTION_CLASSES)
    for name in architectures.names():
        spec = architectures.get(name)
        classes[model_options_parameter(name)] = spec.options_class
        classes[hparams_parameter(name)] = spec.hparams_class
    return classes


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """The data flags shared by `textclf ingest`, `run` and `submit`; each help names its default."""
    from pipelines.pipeline import DEFAULTS
    csv, split = CSVParams(), SplitOptions()
    parser.add_argument("--train", help="training data: a file, glob or folder (local or gs://), an https:// URL "
                                        "or a built-in name; 'ZIP#member' picks a file in a zip; .gz is read as "
                                        f"gzip (default: {DEFAULTS['train']}, SST-2 shipped with the package)")
    parser.add_argument("--validation", help="validation data (default: carved out of --train, see "
                                             "--validation-fraction)")
    parser.add_argument("--test", help="test data (default: the validation file if one is given, else carved out "
                                       f"of --train; with the built-in training data, {DEFAULTS['test']})")
    parser.add_argument("--text-column", help="column holding the text; 'auto' (default): the only column besides "
                                              "the label column, else one named 'text' or 'sentence'")
    parser.add_argument("--label-column", help=f"column holding the label (default: {csv.label_column})")
    parser.add_argument("--delimiter", help="one character; '\\t' or 'tab' for TSV; 'auto' (default): tab for "
                                            ".tsv/.tab (also .gz), comma otherwise")
    parser.add_argument("--quotechar", help="quote character, or 'none' (or '') for no quoting; 'auto' (default): "
                                            "no quoting for tab-delimited files, '\"' otherwise")
    parser.add_argument("--encoding", help=f"text encoding of the files (default: {csv.encoding})")
    parser.add_argument("--fieldnames", help="comma-separated column names for a file without a header "
                                             "(default: the file's first line is its header)")
    parser.add_argument("--on-bad-rows", choices=("error", "skip"),
                        help=f"a malformed row stops the run naming its file, line and column ('error', "
                             f"the default: {csv.on_bad_rows}) or is skipped and counted in the profile ('skip')")
    parser.add_argument("--validation-fraction", type=float,
                        help="share of --train carved out for validation when no --validation is given (default: "
                             f"{DEFAULTS['split_options']['validation_fraction']} with the built-in data, "
                             f"{split.validation_fraction} with your own)")
    parser.add_argument("--test-fraction", type=float,
                        help="share of --train carved out for testing when neither --validation nor --test is "
                             f"given (default: {split.test_fraction})")
    parser.add_argument("--seed", type=int, help=f"seed of the stratified split (default: {split.seed})")


def _epochs_defaults() -> str:
    shown = [(name, architectures.get(name).hparams_class().epochs) for name in architectures.names()]
    return ", ".join(f"{name} {epochs or 'fitted to the data'}" for name, epochs in shown)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    from pipelines.pipeline import DEFAULT_MODELS, DEFAULTS, MODEL_OPTION_DEFAULTS
    add_data_flags(parser)
    parser.add_argument("--config", help="YAML/JSON file of pipeline parameters (every option and hparam), "
                                         "overridden by flags (default: none)")
    parser.add_argument("--models", help=f"comma-separated architectures: {', '.join(architectures.names())} "
                                         f"(default: {','.join(DEFAULT_MODELS)})")
    parser.add_argument("--resources", help="YAML/JSON file: machines and accelerators per step "
                                            "(see pipelines/resources.py; default: the Vertex AI defaults there)")
    parser.add_argument("--gpu-image", help="image for steps given an accelerator (default: --image)")
    parser.add_argument("--teacher", help="a trained BERT model folder (local or gs://) for the distilled student "
                                          "to learn from (default: none; --models distilled then trains BERT first)")
    parser.add_argument("--bert-encoder", help=f"{MODEL_OPTION_DEFAULTS['bert']['encoder']} (default, offline), "
                                               "mobilebert (Model Maker 0.2.1.4's TF Hub module), mobilebert_tiny "
                                               "(earlier releases' tarball), a TF Hub URL or handle, a TF1 Hub "
                                               "module / SavedModel folder or a Hugging Face BERT folder")
    parser.add_argument("--epochs", type=int, help="epochs for every architecture trained (default: each "
                                                   f"architecture's own: {_epochs_defaults()})")
    parser.add_argument("--quantization", choices=("none", "dynamic", "float16", "int8"),
                        help="post-training quantization of the published model.tflite (default: "
                             f"{DEFAULTS['quantization']['mode']}); the float model is kept beside it")
    parser.add_argument("--export-dir", help="where the deliverables go, local path or gs:// (default: none, "
                                             "they stay under the pipeline root)")
    parser.add_argument("--min-accuracy", type=float, help="quality gate: models below this test accuracy are "
                                                           f"not published (default: {DEFAULTS['min_accuracy']})")
    parser.add_argument("--min-gain-over-majority", type=float,
                        help="baseline gate: validation balanced accuracy must beat always answering the "
                             f"majority label by this much (default: {DEFAULTS['min_gain_over_majority']}), "
                             "else the model is not published")
    parser.add_argument("--publish-below-baseline", action="store_true", default=None,
                        help="publish a model that fails the baseline gate anyway (default: off)")
    parser.add_argument("--max-accuracy-drop", type=float,
                        help="accuracy points quantization may cost before the step fails (default: "
                             f"{DEFAULTS['max_accuracy_drop']})")
    parser.add_argument("--benchmark-runs", type=int,
                        help=f"timed runs per model in the latency step (default: {DEFAULTS['benchmark_runs']})")
    parser.add_argument("--beam-arg", action="append", dest="beam_args", metavar="ARG",
                        help="passed to Beam unchanged, e.g. --beam-arg=--direct_num_workers=2 (repeatable; "
                             "default: none, Beam's DirectRunner)")


def load_config(path: str, top_level: bool = True) -> Dict[str, Any]:
    """A YAML/JSON mapping; `top_level` ones hold pipeline parameters and are checked as such."""
    text = storage.read_bytes(path).decode("utf-8")
    try:
        if path.endswith(".json"):
            data = json.loads(text)
        else:
            import yaml
            data = yaml.safe_load(text)
    except Exception as error:  # yaml and json raise different types; both mean a broken file
        raise ConfigError(f"{path}: not valid YAML/JSON: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of pipeline parameters at the top level")
    if not top_level:
        return data
    known = set(option_classes()) | set(SCALARS)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown parameter(s) {unknown}; known: {sorted(known)}")
    return data


def _set(mapping: Dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        mapping[key] = value


def _number(values: Dict[str, Any], key: str, kind: type):
    value = values[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{key} must be a whole number, got {value}")
        return int(value)
    return float(value)


# name, type, lowest, highest (None: no bound), how the message states the range
_SCALAR_RANGES = (
    ("min_accuracy", float, 0.0, 1.0, "is a fraction in [0, 1]"),
    ("min_gain_over_majority", float, 0.0, 1.0, "is a fraction in [0, 1]"),
    ("max_accuracy_drop", float, 0.0, 100.0, "is in accuracy points, in [0, 100]"),
    ("benchmark_runs", int, 1, None, "must be at least 1"),
)


def _check_scalars(values: Dict[str, Any]) -> None:
    """The numeric pipeline parameters, from flags or a config file, checked before anything runs."""
    if values.get("publish_below_baseline") is not None and not isinstance(values["publish_below_baseline"], bool):
        raise ConfigError(f"publish_below_baseline must be true or false, got {values['publish_below_baseline']!r}")
    for name, kind, lowest, highest, stated in _SCALAR_RANGES:
        if values.get(name) is None:
            continue
        value = _number(values, name, kind)
        if value < lowest or (highest is not None and value > highest):
            raise ConfigError(f"{name} {stated}, got {value}")
        if kind is int:
            values[name] = value


def pipeline_arguments(args: argparse.Namespace) -> Dict[str, Any]:
    """Validated pipeline parameter values for the flags (and config file) given.

    Without a training source the pipeline's built-in data applies (SST-2's train.tsv, its
    dev.tsv as the test set, validation a stratified 5 % of train); with one, none of it does.
    """
    from pipelines.pipeline import DEFAULTS, MODEL_OPTION_DEFAULTS, model_options_parameter
    values: Dict[str, Any] = {}
    if getattr(args, "config", None):
        values.update(load_config(args.config))
    csv = {**DEFAULTS["csv_params"], **(values.get("csv_params") or {})}
    _set(csv, "text_column", args.text_column)
    _set(csv, "label_column", args.label_column)
    _set(csv, "delimiter", args.delimiter)
    _set(csv, "quotechar", args.quotechar)
    _set(csv, "encoding", args.encoding)
    _set(csv, "on_bad_rows", args.on_bad_rows)
    if args.fieldnames is not None:
        csv["fieldnames"] = [f.strip() for f in args.fieldnames.split(",")]
    values["csv_params"] = csv
    for key in ("train", "validation", "test"):
        _set(values, key, getattr(args, key, None))
    own_data = bool(values.get("train"))
    if own_data:  # the user's own data: neither the built-in files nor their split apply
        values.setdefault("validation", "")
        values.setdefault("test", "")
    split = {} if own_data else dict(DEFAULTS["split_options"])
    split.update(values.get("split_options") or {})
    _set(split, "validation_fraction", args.validation_fraction)
    _set(split, "test_fraction", args.test_fraction)
    _set(split, "seed", args.seed)
    values["split_options"] = split

    if hasattr(args, "models"):
        from pipelines.pipeline import DEFAULT_MODELS, hparams_parameter
        if args.models is not None:
            values["models"] = args.models
        values["models"] = architectures.parse_architectures(
            values["models"] if "models" in values else list(DEFAULT_MODELS))
        if args.bert_encoder is not None:
            if not args.bert_encoder.strip():
                raise ConfigError("--bert-encoder is empty; name an encoder (minilm-l6, mobilebert, a handle "
                                  "or a folder)")
            values["bert_model_options"] = {**(values.get("bert_model_options") or {}),
                                            "encoder": args.bert_encoder}
        if args.epochs is not None:  # 0 included: refused by the hparams' own check, not ignored
            for name in architectures.with_requirements(values["models"]):
                key = hparams_parameter(name)
                values[key] = {**(values.get(key) or {}), "epochs": args.epochs}
        _set(values, "teacher", getattr(args, "teacher", None))
        if getattr(args, "resources", None):
            values["resources"] = load_config(args.resources, top_level=False)
        if "resources" in values:
            values["resources"] = res.validate(values["resources"])
        if args.quantization is not None:
            values["quantization"] = {**(values.get("quantization") or {}), "mode": args.quantization}
        _set(values, "export_dir", args.export_dir)
        _set(values, "min_accuracy", args.min_accuracy)
        _set(values, "min_gain_over_majority", args.min_gain_over_majority)
        _set(values, "publish_below_baseline", args.publish_below_baseline)
        _set(values, "max_accuracy_drop", args.max_accuracy_drop)
        _set(values, "benchmark_runs", args.benchmark_runs)
        if args.beam_args:
            values["beam_pipeline_args"] = list(args.beam_args)
    _check_scalars(values)
    for arch, defaults in MODEL_OPTION_DEFAULTS.items():
        # Options given in part (a config's seq_len) keep the pipeline's choices for the rest.
        key = model_options_parameter(arch)
        if key in values:
            values[key] = {**defaults, **(values[key] or {})}
    for key, cls in option_classes().items():
        if key in values:
            # Validates early (naming the bad field); None means "the default" and cannot travel as
            # a pipeline parameter value, so it is left out.
            values[key] = {k: v for k, v in cls.from_dict(values[key] or {}).to_dict().items() if v is not None}
    return values


def data_sources(values: Dict[str, Any]) -> Dict[str, str]:
    """train, validation and test as a run reads them: given ones, else the pipeline's defaults."""
    from pipelines.pipeline import DEFAULTS
    return {key: str(values[key] if key in values else DEFAULTS[key]) for key in ("train", "validation", "test")}


def _files_under(folder: str) -> Iterable[str]:
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            if name.endswith(".py"):
                yield os.path.join(root, name)


def cache_salt(arguments: Dict[str, Any]) -> str:
    """Changes when the library's code or a local input file changes (remote inputs are keyed by URI)."""
    digest = hashlib.sha256()
    package = os.path.dirname(components.__file__)
    for path in sorted(_files_under(package)):
        with open(path, "rb") as f:
            digest.update(os.path.relpath(path, package).encode() + b"\0" + f.read())
    for key in ("train", "validation", "test"):
        source = storage.split_member(str(arguments.get(key) or ""))[0]
        if not source or storage.is_gcs(source) or storage.is_url(source):
            continue
        try:  # a glob or folder: every file it names (a missing one fails in the step, not here)
            paths = storage.expand_inputs(source)
        except TextClfError:
            continue
        for path in paths:
            if os.path.isfile(path):
                stat = os.stat(path)
                digest.update(f"{os.path.abspath(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def split_build_arguments(values: Dict[str, Any]):
    """(models, resources, teacher, pipeline parameter values): what builds the pipeline, and what
    a run of it takes (only the parameters the built pipeline has)."""
    from pipelines.pipeline import DEFAULT_MODELS, parameter_names
    values = dict(values)
    models = architectures.parse_architectures(values.pop("models", None) or list(DEFAULT_MODELS))
    resources = values.pop("resources", None)
    teacher = values.pop("teacher", "") or ""
    known = set(parameter_names(models, teacher))
    return models, resources, teacher, {k: v for k, v in values.items() if k in known}
