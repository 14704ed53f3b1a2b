"""The validate stage's TFDV job, run as it runs in its task (the tfdv environment, the job's
own environment), for many inputs in one process: the environment's ~8 s start is paid once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from components.validate import validate
from tests.conftest import TFDV_PYTHON

RUNNER = (
    "import json, sys\n"
    "from components.validate import tfdv_job\n"
    "codes = [tfdv_job.main(argv) for argv in json.load(open(sys.argv[1]))]\n"
    "sys.exit(max(codes))\n"
)


def validate_outputs(root: Path) -> dict[str, str]:
    """validate.run's four output arguments, as paths under `root`."""
    return {
        "statistics_dir": str(root / "statistics"),
        "schema_dir": str(root / "schema"),
        "anomalies_dir": str(root / "anomalies"),
        "report_path": str(root / "report.html"),
    }


def run_tfdv_jobs(argvs: list[list[str]], folder: Path) -> subprocess.CompletedProcess:
    """`tfdv_job.main(argv)` for every argv, in one tfdv-env process; its exit code is the worst."""
    jobs = folder / "jobs.json"
    jobs.write_text(json.dumps(argvs))
    with validate.job_environment() as env:
        return subprocess.run(
            [str(TFDV_PYTHON), "-c", RUNNER, str(jobs)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
