"""Submit the compiled pipeline to a Kubeflow Pipelines endpoint, once or recurring."""

from __future__ import annotations

from typing import Any, Dict


def submit(host: str, template_path: str, arguments: Dict[str, Any], pipeline_root: str = "",
           experiment: str = "textclf", run_name: str = "", schedule: str = "", enable_caching: bool = True,
           namespace: str = "kubeflow", client=None):
    """Creates a run (or a recurring run for a cron `schedule`) from the compiled package."""
    import kfp
    client = client or kfp.Client(host=host, namespace=namespace)
    if schedule:
        experiment_id = client.create_experiment(name=experiment, namespace=namespace).experiment_id
        return client.create_recurring_run(
            experiment_id=experiment_id, job_name=run_name or "textclf-recurring", cron_expression=schedule,
            params=arguments, pipeline_package_path=template_path, pipeline_root=pipeline_root or None,
            enable_caching=enable_caching)
    return client.create_run_from_pipeline_package(
        template_path, arguments=arguments, run_name=run_name or None, experiment_name=experiment,
        namespace=namespace, pipeline_root=pipeline_root or None, enable_caching=enable_caching)
