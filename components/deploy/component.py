"""KFP wrappers of the deploy stage (logic: deploy.py): `deploy` for a blessed model (side
effects: never cached) and `not_deployed`, its outcome when the gate blocked the model."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.common.images import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def deploy(
    registration: Input[Artifact],
    model: Input[Model],
    test_data: Input[Dataset],
    deployment: dict,
    tracking_uri: str,
    deployed: Output[Artifact],
) -> dict:
    """Infra-validate the registered challenger, roll it out against the champion and move
    `champion` (promoted) or tag it rejected (rolled back).

    Args:
        registration: From register: registered model name, version, whether it awaits approval.
        model: The model artifact (the candidate's server loads it).
        test_data: Test rows: infra validation's reference answers and the replayed traffic.
        deployment: The `deployment` config section (environment, rollout strategy and policy).
        tracking_uri: MLflow tracking URI; "" = MLFLOW_TRACKING_URI (required on a cluster).
        deployed: Metadata (and JSON file): outcome (promoted | rolled_back | awaiting_approval
            | rejected | unchanged), reason, steps, windows, requests the candidate answered, the
            champion afterwards.

    Returns:
        The outcome, reason, version and champions, with register's `registration`: the
        pipeline's `deployment` output (`mlpipe run` prints it).
    """
    from components.common.artifacts import write_json
    from components.common.recorder import record_task
    from components.common.runtime_env import export_tracking_uri
    from components.deploy.deploy import run

    reg = registration.metadata
    with record_task("deploy") as rec:
        export_tracking_uri("deploy", tracking_uri)
        out = run(
            reg["registered_model"],
            str(reg["version"]),
            model.path,
            test_data.path,
            deployment,
            awaiting_approval=bool(reg.get("awaiting_approval")),
        )
        rec.details = {
            k: out.get(k) for k in ("version", "outcome", "reason", "champion", "previous_champion")
        }
    deployed.metadata.update(rec.details, task=rec.to_dict())
    write_json(out, deployed.path)
    return {**rec.details, "registration": {k: v for k, v in reg.items() if k != "task"}}


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def not_deployed(blessing: Input[Artifact]) -> dict:
    """The gate's Else branch: the model was not blessed, so nothing was registered or rolled
    out. Gives the pipeline's `deployment` output (a `dsl.OneOf` with `deploy`'s) its value on a
    blocked run, and the run graph a node saying why.

    Args:
        blessing: From gate: the failed checks and the champion the model was compared with.

    Returns:
        Outcome `blocked`, the reason (the failed checks), the champion; no registration.
    """
    from components.deploy.deploy import blocked_outcome

    return blocked_outcome(dict(blessing.metadata))
