"""What a compiled pipeline asks a Kubernetes cluster to give its pods, in one place.

Every task gets, through `kfp.kubernetes` (the spec's `platforms.kubernetes` section):
- the pipeline's ConfigMap (`runtime.env_config_map`) as environment variables: cluster mode,
  the MLflow server, the state store, the object store's endpoint and region, the KFP API;
- the S3 Secret (`runtime.s3_secret`): the object store's credentials;
- the MLflow login (`runtime.mlflow_auth_secret`): MLflow's client variables
  MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD for the server's basic auth (Katib trials
  and model servers do not get it: they are not rendered from here);
- the KFP run id from the pod's `pipeline/runid` label (KFP 2.17 sets it on every pod of a run:
  kubeflow/pipelines backend/src/apiserver/template/v2_template.go, `SetPodMetadataLabels`);
  failure records are filed under it.
Tasks that alert (the monitoring pipeline's `act`, the exit handler) also get the alerts Secret
(`runtime.alerts_secret`, key `webhook_url`) as the webhook variable the config names.

Every mount is optional (KFP 2.17 turns `optional` into the key selector's `optional`:
backend/src/v2/driver/k8s.go): a key a cluster does not need (AWS_ENDPOINT_URL on AWS, keys
under IRSA) may be absent, and a task that needs a missing one fails naming it
(`components/common/runtime_env.py`) instead of a pod stuck in CreateContainerConfigError.

kfp.local ignores this section (it runs tasks with the CLI's environment); the cluster rehearsal
reads it back from the compiled YAML to give each container exactly what a pod would get.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from kfp import dsl, kubernetes

from components.common.config import PipelineConfig
from components.common.runtime_env import CLUSTER_ENV, RUN_ID_ENV, STATE_ENV, TRACKING_URI_ENV
from components.notify.component import notify_failure
from pipelines.code_version import ENV_NAME, stage_version

# ConfigMap key -> environment variable (the same names; manifests/ sets the values)
CONFIG_MAP_KEYS = (
    CLUSTER_ENV,
    TRACKING_URI_ENV,
    STATE_ENV,
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "KFP_HOST",
    "MLFLOW_ARTIFACTS_DESTINATION",  # deploy: a registered model's S3 location for KServe
)
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
MLFLOW_AUTH_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
ALERTS_SECRET_KEY = "webhook_url"
RUN_ID_FIELD = "metadata.labels['pipeline/runid']"
EXIT_HANDLER = "run"  # the name of the group the exit handler wraps


def mount_cluster_env(task: dsl.PipelineTask, cfg: PipelineConfig, alerts: bool = False) -> None:
    """Mount what every task of ours needs on a cluster (and the webhook when `alerts`)."""
    runtime = cfg.runtime
    kubernetes.use_config_map_as_env(
        task,
        config_map_name=runtime.env_config_map,
        config_map_key_to_env={key: key for key in CONFIG_MAP_KEYS},
        optional=True,
    )
    kubernetes.use_secret_as_env(
        task,
        secret_name=runtime.s3_secret,
        secret_key_to_env={key: key for key in S3_SECRET_KEYS},
        optional=True,
    )
    kubernetes.use_secret_as_env(
        task,
        secret_name=runtime.mlflow_auth_secret,
        secret_key_to_env={key: key for key in MLFLOW_AUTH_KEYS},
        optional=True,
    )
    kubernetes.use_field_path_as_env(task, env_name=RUN_ID_ENV, field_path=RUN_ID_FIELD)
    if alerts:
        kubernetes.use_secret_as_env(
            task,
            secret_name=runtime.alerts_secret,
            secret_key_to_env={ALERTS_SECRET_KEY: cfg.monitoring.webhook_url_env},
            optional=True,
        )


def configure_task(
    task: dsl.PipelineTask,
    cfg: PipelineConfig,
    display: str,
    resources: tuple[str, str, str, str],
    cached: bool,
    retries: int,
    code: str,
    alerts: bool = False,
) -> None:
    """Display name, CPU/memory (request, limit, request, limit), caching, retries, the code
    version of the stage folder `code` (part of kfp.local's cache key) and the cluster mounts."""
    cpu_req, cpu_lim, mem_req, mem_lim = resources
    task.set_display_name(display)
    task.set_caching_options(enable_caching=cached)
    task.set_cpu_request(cpu_req).set_cpu_limit(cpu_lim)
    task.set_memory_request(mem_req).set_memory_limit(mem_lim)
    if retries:
        task.set_retry(num_retries=retries, backoff_duration="30s", backoff_factor=2.0)
    task.set_env_variable(ENV_NAME, stage_version(code))
    mount_cluster_env(task, cfg, alerts=alerts)


def with_failure_alert(
    steps: Callable[..., object], name: str, description: str, cfg: PipelineConfig, retries: int
) -> object:
    """The pipeline whose tasks `steps` creates, inside a `dsl.ExitHandler` whose task
    (components/notify) sends the failure alert of a run that did not succeed.

    `steps` is the plain function that defines the pipeline's parameters (one of them named
    `monitoring`: the alert settings) and creates its tasks; this variant keeps its parameters
    (KFP reads them from the signature and passes them positionally) but has no outputs: KFP
    refuses pipeline outputs from inside an ExitHandler group.
    """
    signature = inspect.signature(steps)
    names = list(signature.parameters)

    def pipeline(*args):
        notify = notify_failure(
            pipeline=name,
            run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            monitoring=args[names.index("monitoring")],
        )
        configure_task(
            notify,
            cfg,
            "Alert on failure",
            ("100m", "500m", "256M", "512M"),
            cached=False,
            retries=retries,  # safe: the alert sink claims the incident before it sends
            code="notify",
            alerts=True,
        )
        with dsl.ExitHandler(notify, name=EXIT_HANDLER):
            steps(*args)

    pipeline.__signature__ = signature.replace(return_annotation=inspect.Signature.empty)
    pipeline.__name__ = steps.__name__
    return dsl.pipeline(name=name, description=description)(pipeline)
