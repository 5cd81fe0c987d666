"""The `textclf` command: ingest, run (local kfp runner), submit (Vertex / Kubeflow), compile, benchmark,
predict."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from typing import List, Optional

from components.errors import TextClfError


def _ingest(args) -> int:
    from components.ingest import ingest
    from components.options import CSVParams, SplitOptions
    from pipelines.arguments import data_sources, pipeline_arguments
    values = pipeline_arguments(args)
    sources = data_sources(values)
    out = args.output
    profile = ingest(sources["train"], sources["validation"], sources["test"],
                     CSVParams.from_dict(values["csv_params"]), SplitOptions.from_dict(values["split_options"]),
                     output_dirs={n: os.path.join(out, n) for n in ("train", "validation", "test")},
                     profile_dir=os.path.join(out, "profile"), beam_pipeline_args=args.beam_args or [])
    with open(os.path.join(out, "profile", "profile.md"), encoding="utf-8") as f:
        print(f.read())
    print(json.dumps({name: split["rows"] for name, split in profile["splits"].items()}))
    return 0


def _check_local_sources(values) -> None:
    """Fail before any step starts when a local input is missing or its header lacks a column."""
    from components import storage
    from components.delimited import check_headers
    from components.options import CSVParams
    from pipelines.arguments import data_sources
    params = CSVParams.from_dict(values.get("csv_params") or {})
    for source in data_sources(values).values():
        base = storage.split_member(source)[0]
        if source and not storage.is_gcs(base) and not storage.is_url(base):
            check_headers(source, params)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(text: str, stream) -> str:
    """Colour codes (kfp colours task names) only where the stream is a terminal."""
    return text if getattr(stream, "isatty", lambda: False)() else _ANSI.sub("", text)


def _run(args) -> int:
    from pipelines.arguments import pipeline_arguments
    from pipelines.local import StepFailed, run_local
    values = pipeline_arguments(args)
    _check_local_sources(values)
    try:
        run_local(values, pipeline_root=args.pipeline_root, enable_caching=not args.no_cache, image=args.image)
    except StepFailed as error:
        recorded = error.step_error
        if recorded:
            raise TextClfError(f"step {recorded['step'] or '?'} failed: {recorded['message']}") from error
        raise TextClfError(f"{error} (the failing step's error is printed above)") from error
    if values.get("export_dir"):
        summary = os.path.join(values["export_dir"], "summary.json")
        if os.path.exists(summary):
            with open(summary) as f:
                print(json.dumps(json.load(f), indent=2))
        print(f"textclf: deliverables in {values['export_dir']}")
    return 0


def _submit(args) -> int:
    from pipelines.arguments import cache_salt, pipeline_arguments, split_build_arguments
    from pipelines.compile_pipeline import compile_pipeline
    models, resources, teacher, values = split_build_arguments(pipeline_arguments(args))
    if args.kfp_host and not args.template:
        from pipelines.resources import refuse_custom_jobs
        refuse_custom_jobs(resources or {}, "Kubeflow Pipelines")
    values.setdefault("cache_salt", cache_salt(values))
    template = args.template or compile_pipeline(os.path.join(tempfile.mkdtemp(), "pipeline.yaml"), args.image,
                                                 models, resources, args.gpu_image or "", teacher)
    if args.kfp_host:
        from pipelines import kubeflow
        result = kubeflow.submit(args.kfp_host, template, values, pipeline_root=args.pipeline_root or "",
                                 experiment=args.experiment, schedule=args.schedule or "",
                                 enable_caching=not args.no_cache)
        print(f"textclf: submitted to {args.kfp_host}: {getattr(result, 'run_id', None) or result}")
        return 0
    if not (args.project and args.region and args.pipeline_root):
        raise TextClfError("textclf submit needs --project, --region and --pipeline-root gs://... for Vertex AI, "
                           "or --kfp-host URL for Kubeflow Pipelines")
    from pipelines import vertex
    job = vertex.make_job(template, args.project, args.region, args.pipeline_root, values,
                          enable_caching=not args.no_cache)
    result = vertex.submit(job, schedule=args.schedule or "", service_account=args.service_account or "")
    print(f"textclf: submitted to Vertex AI: {getattr(result, 'resource_name', result)}")
    return 0


def _compile(args) -> int:
    from pipelines.arguments import load_config
    from pipelines.compile_pipeline import compile_pipeline
    from pipelines.pipeline import DEFAULT_MODELS
    from pipelines.resources import validate
    resources = validate(load_config(args.resources, top_level=False)) if args.resources else None
    print(compile_pipeline(args.output, args.image, (args.models or ",".join(DEFAULT_MODELS)).split(","),
                           resources, args.gpu_image or ""))
    return 0


def _predict(args) -> int:
    from components import predict
    texts = list(args.texts)
    if args.file:
        read = predict.read_texts(args.file)
        if read.blank_lines:
            print(f"textclf: skipped {read.blank_lines} blank line(s) in {args.file}", file=sys.stderr)
        texts += read.texts
    records = predict.predict_texts(args.model, texts)
    if args.json:
        print(predict.format_json(records))
    else:
        for record in records:
            print(predict.format_line(record))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from components.ops import DEFAULT_IMAGE
    from pipelines.arguments import add_data_flags, add_run_flags
    from pipelines.pipeline import DEFAULT_MODELS
    parser = argparse.ArgumentParser(prog="textclf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="read, validate, split and profile labelled text")
    add_data_flags(ingest)
    ingest.add_argument("--output", required=True, help="folder for train/validation/test splits and profile")
    ingest.add_argument("--beam-arg", action="append", dest="beam_args", metavar="ARG",
                        help="with a --runner among them, ingest runs as a Beam job on that runner, e.g. "
                             "--beam-arg=--runner=DaskRunner --beam-arg=--dask_client_address=HOST:8786 "
                             "(repeatable; default: none, read in this process without Beam)")
    ingest.set_defaults(handler=_ingest)

    run = commands.add_parser("run", help="run the whole pipeline on the local kfp runner")
    add_run_flags(run)
    run.add_argument("--pipeline-root", default="runs/pipeline_root",
                     help="where step artifacts and the step cache go (default: %(default)s)")
    run.add_argument("--no-cache", action="store_true", help="re-run every step (default: reuse unchanged steps)")
    run.add_argument("--image", default=DEFAULT_IMAGE, help=argparse.SUPPRESS)
    run.set_defaults(handler=_run)

    submit = commands.add_parser("submit", help="submit to Vertex AI Pipelines or Kubeflow Pipelines")
    add_run_flags(submit)
    submit.add_argument("--project", help="Google Cloud project of the Vertex AI run (required for Vertex AI; "
                                          "default: none)")
    submit.add_argument("--region", help="Vertex AI region, e.g. europe-west4 (required for Vertex AI; default: none)")
    submit.add_argument("--pipeline-root", help="gs://BUCKET/root for the run's artifacts (required for Vertex AI; "
                                                "default: none, Kubeflow's own)")
    submit.add_argument("--schedule", help="cron expression: create a schedule instead of one run (default: one run)")
    submit.add_argument("--service-account", help="service account the Vertex AI run acts as (default: the "
                                                  "project's Compute Engine default service account)")
    submit.add_argument("--kfp-host", help="Kubeflow Pipelines endpoint URL, instead of Vertex AI (default: none)")
    submit.add_argument("--experiment", default="textclf", help="Kubeflow experiment name (default: %(default)s)")
    submit.add_argument("--template", help="an already compiled pipeline YAML (default: compile one with --image)")
    submit.add_argument("--image", default=DEFAULT_IMAGE, help="image for every component (default: %(default)s)")
    submit.add_argument("--no-cache", action="store_true", help="re-run every step (default: reuse cached steps)")
    submit.set_defaults(handler=_submit)

    comp = commands.add_parser("compile", help="write the pipeline YAML")
    comp.add_argument("--output", default="pipeline.yaml", help="the YAML file written (default: %(default)s)")
    comp.add_argument("--image", default=DEFAULT_IMAGE, help="image for every component (default: %(default)s)")
    comp.add_argument("--gpu-image", default="", help="image for steps given an accelerator (default: --image)")
    comp.add_argument("--models", default="", help="comma-separated architectures with a branch each "
                                                   f"(default: {','.join(DEFAULT_MODELS)})")
    comp.add_argument("--resources", default="", help="YAML/JSON file: machines and accelerators per step "
                                                      "(pipelines/resources.py), over the Vertex defaults "
                                                      "(default: none)")
    comp.set_defaults(handler=_compile)

    predict = commands.add_parser("predict", help="classify texts with an exported model, as the device does")
    predict.add_argument("model", help="a .tflite text classifier with MediaPipe metadata, or an export folder "
                                       "holding model.tflite")
    predict.add_argument("texts", nargs="*", help="texts to classify, each one argument (quote them)")
    predict.add_argument("--file", help="a UTF-8 file of texts, one a line, '-' for standard input; blank lines "
                                        "are skipped and counted (default: none, the texts given as arguments)")
    predict.add_argument("--json", action="store_true", help="print one JSON list of {text, label, score, scores} "
                                                             "(default: one tab-separated line per text)")
    predict.set_defaults(handler=_predict)

    bench = commands.add_parser("benchmark", help="latency of any .tflite (ours or Model Maker's)", add_help=False)
    bench.set_defaults(handler=None)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "benchmark":
            from components.benchmark import main as benchmark_main
            return benchmark_main(argv[1:])
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except TextClfError as error:
        sys.stdout.flush()
        print(_plain(f"textclf: error: {error}", sys.stderr), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
