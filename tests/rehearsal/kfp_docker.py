"""kfp.local's DockerRunner as the rehearsal runs it: each task in its own image, as uid 10001,
with exactly the environment its pod would get, and a failed task reported as failed.

kfp 2.17.3's `DockerTaskHandler` gives a container only the task's own `env` (what
`set_env_variable` compiled in) and replaces `container_run_args["environment"]`; the platform
spec (what `kfp.kubernetes` mounts) it ignores. And its `run_docker_container` starts containers
with `auto_remove=True`, so when a container is gone before `wait()` it assumes exit code 0: a
task that crashed is reported SUCCESS with no outputs. `pod_like_containers` replaces that one
function for the duration of a run (and puts it back): it adds the pod environment of the task's
executor (`pod_env.task_env`), keeps the container until its exit code is read, and records each
task's outcome.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from kfp.local import docker_task_handler

from tests.rehearsal.pod_env import task_env
from tests.support.manifests import PodStartError, Rendered

TASK_USER = "10001:10001"  # the images' USER; the pipeline root must be writable by it


@dataclass
class TaskRun:
    function: str
    executor: str
    image: str
    exit_code: int
    seconds: float
    log_tail: list[str] = field(default_factory=list)
    env_keys: list[str] = field(default_factory=list)


def executors_by_function(spec: dict[str, Any]) -> dict[str, str]:
    """The compiled spec's executor label of each component function."""
    out = {}
    for label, executor in spec["deploymentSpec"]["executors"].items():
        args = executor["container"].get("args", [])
        if "--function_to_execute" in args:
            out[args[args.index("--function_to_execute") + 1]] = label
    return out


@contextlib.contextmanager
def pod_like_containers(
    spec: dict[str, Any],
    platform: dict[str, Any],
    manifests: Rendered,
    pod: dict[str, Any],
    hosts: dict[str, str],
    log: Callable[[str], None] = print,
    drop: tuple[str, ...] = (),
) -> Iterator[list[TaskRun]]:
    """Within the block, kfp.local's DockerRunner runs tasks like pods: host network with the
    cluster's service names in /etc/hosts (`hosts`), the pod's environment, uid 10001."""
    labels = executors_by_function(spec)
    runs: list[TaskRun] = []

    def run_container(client: Any, image: str, command: list[str], volumes: dict, **kwargs: Any):
        function = command[command.index("--function_to_execute") + 1]
        executor = labels[function]
        env = dict(kwargs.pop("environment", None) or {})
        started = time.monotonic()
        try:
            env.update(task_env(platform, executor, manifests, pod, drop=drop))
        except PodStartError as exc:  # the kubelet would not start this container
            log(f"[{function}] pod cannot start: {exc}")
            runs.append(TaskRun(function, executor, image, 125, 0.0, [str(exc)]))
            return 125
        if not client.images.list(name=image):
            raise RuntimeError(f"image {image} is not built (make images): nothing can be pulled")
        container = client.containers.run(
            image=image,
            command=command,
            detach=True,
            volumes=volumes,
            environment=env,
            user=TASK_USER,
            network_mode="host",
            extra_hosts=hosts,
            **kwargs,
        )
        tail: list[str] = []
        try:
            for chunk in container.logs(stream=True, follow=True):
                for line in chunk.decode(errors="replace").splitlines():
                    log(f"[{function}] {line}")
                    tail = [*tail[-40:], line]
            code = int(container.wait()["StatusCode"])
        finally:
            container.remove(force=True)
        runs.append(
            TaskRun(
                function,
                executor,
                image,
                code,
                round(time.monotonic() - started, 2),
                tail,
                sorted(env),
            )
        )
        return code

    with mock.patch.object(docker_task_handler, "run_docker_container", run_container):
        yield runs
