"""Starting, running and finishing the package's Beam pipelines on whichever runner is asked for.

`beam_pipeline_args` go to `PipelineOptions` unchanged, with two conveniences:
- Without `--runner` (or with `--runner=DirectRunner`) a pipeline runs on Beam's FnApiRunner, the
  DirectRunner's batch engine, so `--direct_running_mode=in_memory|multi_threading|multi_processing`
  and `--direct_num_workers=N` apply. (Beam's DirectRunner would first try to download and start
  Prism, which ignores those flags and needs network access.)
- `--runner=DaskRunner` names Beam's Dask runner (`apache_beam.runners.dask.dask_runner.DaskRunner`,
  which Beam only knows by that full name); the Dask client it opens is closed when the run ends.

Every pipeline here keeps to what each runner executes faithfully, Beam's DaskRunner (2.77) being
the narrowest: it computes only the transform applied last and what that one depends on, drops
whatever a DoFn emits from `finish_bundle`, mixes the outputs of a multi-output ParDo into every
consumer, and evaluates a side input again inside each task that reads it. So each pipeline ends
in `finish` (one transform that depends on every write), no DoFn emits from `finish_bundle` or
to tagged outputs, and no write lies upstream of a side input. Sinks are our DoFns writing through
`FileSystems` (Beam's WriteToText loses output on that runner), and the launcher checks what they
wrote.
"""

from __future__ import annotations

import pickle
import re
from typing import List, Optional, Sequence

from components import storage
from components.errors import ConfigError, RunnerError, TextClfError

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
_DASK_NAMES = ("dask", "daskrunner")


def _runner_args(args: Sequence[str]) -> List[str]:
    """The arguments with a short Dask runner name spelled out as Beam needs it."""
    result = [str(arg) for arg in args]
    for i, arg in enumerate(result):
        if arg.startswith("--runner="):
            if arg.split("=", 1)[1].lower() in _DASK_NAMES:
                result[i] = "--runner=" + DASK_RUNNER
        elif arg == "--runner" and i + 1 < len(result) and result[i + 1].lower() in _DASK_NAMES:
            result[i + 1] = DASK_RUNNER
    return result


def is_direct_runner(runner) -> bool:
    if runner is None:
        return True
    name = runner if isinstance(runner, str) else type(runner).__name__
    return name.rsplit(".", 1)[-1].lower() in ("direct", "directrunner", "switchingdirectrunner")


def names_runner(args: Optional[Sequence[str]]) -> bool:
    """Whether the arguments choose a runner (`--runner=...`), which makes ingest run on Beam too."""
    return any(str(arg) == "--runner" or str(arg).startswith("--runner=") for arg in (args or ()))


def side_inputs_supported(args: Optional[Sequence[str]]) -> bool:
    """False for runners that evaluate a side input again inside every task that reads it (Beam's
    DaskRunner: each evaluation reruns the graph above it, slowly, from inside a worker): their
    pipelines are split where a side input would be, the value passed on by the launcher."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    runner = PipelineOptions(_runner_args(args or ())).view_as(StandardOptions).runner
    name = runner if isinstance(runner, str) else type(runner).__name__ if runner else ""
    return name.rsplit(".", 1)[-1].lower() not in _DASK_NAMES


def runner_is_local(args: Optional[Sequence[str]]) -> bool:
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    return is_direct_runner(PipelineOptions(_runner_args(args or ())).view_as(StandardOptions).runner)


def work_folder(args: Optional[Sequence[str]], near: str, local: bool) -> str:
    """A fresh folder for what one pipeline hands the next: under `--temp_location` when given,
    a local temporary folder for the local runner, else beside `near` (which workers can reach)."""
    import tempfile
    import uuid

    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions
    name = f"textclf-beam-{uuid.uuid4().hex[:12]}"
    temp = PipelineOptions(_runner_args(args or ())).view_as(GoogleCloudOptions).temp_location
    if temp:
        return storage.join(temp, name)
    if local:
        return tempfile.mkdtemp(prefix=name + "-")
    if not near:
        raise ConfigError("this Beam runner needs --temp_location for the files one pipeline hands the next")
    return storage.join(near, "." + name)


def write_pickle(value, path: str) -> str:
    from apache_beam.io.filesystems import FileSystems
    with FileSystems.create(path, mime_type="application/octet-stream") as f:
        f.write(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def read_pickle(path: str):
    from apache_beam.io.filesystems import FileSystems
    if not FileSystems.exists(path):
        raise RunnerError(f"the Beam runner finished without writing {path}")
    with FileSystems.open(path) as f:
        return pickle.loads(f.read())


def remove_folder(folder: str) -> None:
    """Removes a work folder and what is in it, local or remote; a missing one is fine."""
    import shutil

    from apache_beam.io.filesystems import FileSystems
    try:
        paths = [m.path for m in FileSystems.match([storage.join(folder, "*")])[0].metadata_list]
        if paths:
            FileSystems.delete(paths)
    except Exception:  # nothing there, or already gone
        pass
    if "://" not in folder:
        shutil.rmtree(folder, ignore_errors=True)


def _local_runner(options):
    """FnApiRunner set up as the DirectRunner would, so --direct_* flags take effect."""
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    try:
        from apache_beam.portability.api import beam_provision_api_pb2
        from apache_beam.runners.portability.portable_runner import JobServiceHandle
        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
            beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))
    except (ImportError, AttributeError, TypeError):  # internal API moved: plain FnApiRunner
        return fn_runner.FnApiRunner()


def new_pipeline(args: Optional[Sequence[str]]):
    """(pipeline, local): a Beam pipeline for the arguments; `local` when it runs in this process's
    machine (the DirectRunner's engine), so local paths need no rewriting."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    options = PipelineOptions(_runner_args(args or ()))
    local = is_direct_runner(options.view_as(StandardOptions).runner)
    return beam.Pipeline(runner=_local_runner(options) if local else None, options=options), local


def worker_path(path: str, remote: bool) -> str:
    """Vertex AI's `/gcs/BUCKET/` fuse paths as `gs://BUCKET/` for workers that have no such mount."""
    if remote and path.startswith("/gcs/"):
        return "gs://" + path[len("/gcs/"):]
    return path


def finish(pcolls, label: str = "Done"):
    """The pipeline's last transform, depending on every write (`pcolls`), so a runner that computes
    only what the last transform needs (Beam's DaskRunner) still runs them all."""
    import apache_beam as beam
    return list(pcolls) | f"{label}/Flatten" >> beam.Flatten() | f"{label}/Drop" >> beam.Filter(lambda _: False)


def _reraise_worker_error(error: Exception) -> None:
    """Runners with worker processes report our errors as text; raise them as the typed error."""
    from components import errors
    match = re.search(r"components\.errors\.(\w+): ([^\n]*)", str(error))
    if match:
        error_type = getattr(errors, match.group(1), None)
        if isinstance(error_type, type) and issubclass(error_type, TextClfError):
            raise error_type(match.group(2)) from error


def run(pipeline) -> None:
    """Runs the pipeline to the end; our errors raised on workers come back as their own type."""
    result = None
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except TextClfError:
        raise
    except Exception as e:
        _reraise_worker_error(e)
        raise
    finally:
        client = getattr(result, "client", None)  # Beam's DaskRunner leaves its client open
        if client is not None and hasattr(client, "close"):
            client.close()
