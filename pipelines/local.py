"""Run the pipeline on this machine with kfp's local subprocess runner (no Docker)."""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Optional

from components import step_errors
from components.ops import DEFAULT_IMAGE
from pipelines.pipeline import create_pipeline


def run_local(arguments: Dict[str, Any], pipeline_root: str = "runs/pipeline_root", enable_caching: bool = True,
              image: str = DEFAULT_IMAGE):
    """Runs the whole DAG in the current Python environment; returns the pipeline task.

    Steps run in subprocesses of this interpreter (`use_venv=False`), so the installed package
    is what they import, as the image's is on Vertex. `arguments` may hold `models` and
    `resources` (machines and accelerators, which kfp's local runner ignores; custom jobs and
    accelerator checks are left out here) besides the pipeline's parameters. Training
    checkpoints go under `pipeline_root/checkpoints/`, keyed by the training task's inputs, so a
    re-run after a failed training resumes; `enable_caching=False` re-runs preprocessing too, so
    its training starts from scratch.
    """
    from kfp import local

    from pipelines.arguments import cache_salt, split_build_arguments
    models, resources, teacher, values = split_build_arguments(arguments)
    pipeline_root = os.path.abspath(pipeline_root)
    os.makedirs(pipeline_root, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=pipeline_root,
               enable_caching=enable_caching, cache_root=os.path.join(pipeline_root, ".cache"),
               raise_on_error=True)
    values.setdefault("cache_salt", cache_salt(values))
    pipeline = create_pipeline(image, models, resources, teacher=teacher, local=True)
    started = time.time()
    print(f"textclf: running {pipeline.name} locally ({', '.join(models)}); artifacts under {pipeline_root}"
          f" (caching {'on' if enable_caching else 'off'})", flush=True)
    error_file = os.path.join(pipeline_root, ".step-error.json")
    if os.path.exists(error_file):
        os.remove(error_file)
    previous = os.environ.get(step_errors.ERROR_FILE_ENV)
    os.environ[step_errors.ERROR_FILE_ENV] = error_file  # inherited by every step's subprocess
    try:
        task = pipeline(**values)
    except RuntimeError as error:  # kfp.local's way of saying a task failed
        raise StepFailed(str(error), step_errors.read(error_file)) from error
    finally:
        if previous is None:
            os.environ.pop(step_errors.ERROR_FILE_ENV, None)
        else:
            os.environ[step_errors.ERROR_FILE_ENV] = previous
    print(f"textclf: pipeline finished in {time.time() - started:.0f} s", flush=True)
    return task


class StepFailed(RuntimeError):
    """A step of a local run failed; `step_error` is what the step recorded (None if nothing)."""

    def __init__(self, message: str, step_error: Optional[Dict[str, str]]):
        super().__init__(message)
        self.step_error = step_error
