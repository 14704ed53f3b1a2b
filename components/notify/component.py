"""KFP wrapper of the notify stage (logic: notify.py): the exit handler task of the compiled
pipelines. Runs after every other task of the run, whatever their outcome; never cached."""

from kfp import dsl

from components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def notify_failure(
    status: dsl.PipelineTaskFinalStatus, pipeline: str, run_name: str, monitoring: dict
) -> str:
    """Send the failure alert of a run that did not succeed (nothing when it did).

    Args:
        status: KFP's final status of the tasks this exit handler wraps.
        pipeline: The pipeline's name (in the alert).
        run_name: The KFP run's name (`dsl.PIPELINE_JOB_NAME_PLACEHOLDER`).
        monitoring: The `monitoring` config section: the webhook's retries and the variable
            holding its URL (mounted from the alerts Secret; never a parameter).

    Returns:
        JSON: the run's state, the failed tasks found, and what the alert sink did.
    """
    import json

    from components.common.recorder import record_task
    from components.notify.notify import run

    with record_task("notify") as rec:
        out = run(status.state, pipeline, run_name, monitoring, status.error_message)
        rec.details = {"state": out["state"], "failed_tasks": out.get("failed_tasks")}
    return json.dumps(out, sort_keys=True, default=str)
