"""Submit the compiled pipeline to Vertex AI Pipelines, once or on a cron schedule."""

from __future__ import annotations

import datetime
from typing import Any, Dict, Optional


def make_job(template_path: str, project: str, region: str, pipeline_root: str, arguments: Dict[str, Any],
             enable_caching: bool = True, display_name: str = "", labels: Optional[Dict[str, str]] = None,
             credentials=None):
    """The `PipelineJob` that would be sent; building it makes no API call."""
    from google.cloud import aiplatform
    if not pipeline_root.startswith("gs://"):
        from components.errors import ConfigError
        raise ConfigError(f"Vertex AI needs a gs:// pipeline root, got {pipeline_root!r}")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")
    return aiplatform.PipelineJob(
        display_name=display_name or f"textclf-{stamp}", template_path=template_path,
        pipeline_root=pipeline_root, parameter_values=arguments, enable_caching=enable_caching,
        project=project, location=region, labels=labels or {"app": "textclf-pipelines"},
        credentials=credentials)


def submit(job, schedule: str = "", service_account: str = "", schedule_name: str = "textclf-schedule"):
    """Submits now, or creates a schedule when `schedule` (a cron expression) is given."""
    if schedule:
        return job.create_schedule(cron=schedule, display_name=schedule_name,
                                   service_account=service_account or None)
    job.submit(service_account=service_account or None)
    return job
