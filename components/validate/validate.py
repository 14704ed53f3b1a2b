"""Validate: check the ingested Dataset against the data schema with TFDV, before any training.

TFDV cannot share an environment with kfp 2.17 (README "Two environments"), so `run` launches the
tfdv environment's Python on `components.validate.tfdv_job`, relays its output line by line, moves
its outputs into the artifact paths and raises DataError when a blocking check failed. Drift
findings are reported, never raised.

Importable in both environments: only the standard library and components.common at import time.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from components.common import tfdv_env
from components.common.artifacts import atomic_dir, atomic_path, read_json
from components.common.errors import DataError, StageError

STAGE = "validate"
TFDV_PYTHON_ENV = tfdv_env.TFDV_PYTHON_ENV
JOB_MODULE = "components.validate.tfdv_job"
PACKAGE_DIR = tfdv_env.PACKAGE_DIR
LOCAL_TFDV_PYTHON = tfdv_env.LOCAL_TFDV_PYTHON
MESSAGE_CLAUSES = 3
ARTIFACT_DIRS = ("statistics", "schema", "anomalies")


def tfdv_python() -> str:
    """The Python that runs the TFDV job (see components.common.tfdv_env.tfdv_python)."""
    return tfdv_env.tfdv_python(STAGE, LOCAL_TFDV_PYTHON)


def job_command(
    python: str, data_path: str, data_schema: dict[str, Any], split: dict[str, Any], out_dir: str
) -> list[str]:
    return [
        python,
        "-m",
        JOB_MODULE,
        "--data",
        str(data_path),
        "--schema-json",
        json.dumps(data_schema or {}),
        "--split-json",
        json.dumps(split),
        "--out",
        str(out_dir),
    ]


def job_environment() -> AbstractContextManager[dict[str, str]]:
    """The environment of a TFDV job process (components.common.tfdv_env.job_environment)."""
    return tfdv_env.job_environment(prefix="mlpipe-validate-path-")


def run_job(
    data_path: str,
    data_schema: dict[str, Any],
    split: dict[str, Any],
    out_dir: str,
    python: str | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Run the TFDV job in the tfdv environment, relaying its output; raise if it crashed."""
    python = python or tfdv_python()
    cmd = job_command(python, data_path, data_schema, split, out_dir)
    returncode, last = tfdv_env.run_module(python, JOB_MODULE, cmd[3:], log, "validate:")
    if returncode:
        if returncode == 2:
            raise StageError(STAGE, last.removeprefix("validate: "), subject="data_schema")
        raise RuntimeError(
            f"the TFDV job failed (exit code {returncode}): {last} "
            f"(command: {python} -m {JOB_MODULE})"
        )


def _noun(f: dict[str, Any]) -> str:
    return {"feature": "feature", "label": "label"}.get(f.get("role") or "", "column")


def blocking_message(findings: list[dict[str, Any]]) -> tuple[str, str | None]:
    """One line naming the first few blocking problems, and the subject (the first column).

    A TFDV finding that corroborates a project finding (marked by the job) is left out: same
    problem, vaguer words; it stays in anomalies.json and the report. The same description in
    both windows is said once.
    """
    kept = [f for f in findings if f["kind"] == "blocking" and not f.get("corroborates")]
    groups: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for f in kept:
        groups.setdefault((f["feature"], f["description"]), []).append(f)
    clauses = []
    for (feature, description), group in groups.items():
        windows = [f["window"] for f in group if f["window"] in ("train", "test")]
        where = ""
        if windows:
            where = f" in the {' and '.join(dict.fromkeys(windows))} window" + (
                "s" if len(set(windows)) > 1 else ""
            )
        head = f"{_noun(group[0])} {feature!r}: " if feature else ""
        clauses.append(" ".join(f"{head}{description}{where}".split()))
    message = "; ".join(clauses[:MESSAGE_CLAUSES])
    if len(clauses) > MESSAGE_CLAUSES:
        message += f"; and {len(clauses) - MESSAGE_CLAUSES} more"
    subject = next((f["feature"] for f in kept if f["feature"]), None)
    return message, subject


def _bound(value: Any) -> str:
    # KFP passes dict parameters as protobuf Structs: the year 2015 arrives as 2015.0
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _span(window: Any) -> str:
    """A time window [2015, 2015] as '2015', [2015, 2016] as '2015..2016'."""
    lo, hi = (window[0], window[-1]) if isinstance(window, (list, tuple)) else (window, window)
    return _bound(lo) if lo == hi else f"{_bound(lo)}..{_bound(hi)}"


def _windows(split: dict[str, Any]) -> dict[str, str]:
    """{"train": "train 2015", "test": "test 2016"} (no years for a random split)."""
    if split.get("method", "time") != "time":
        return {"train": "train", "test": "test"}
    return {w: f"{w} {_span(split.get(f'{w}_window'))}" for w in ("train", "test")}


def warning_lines(findings: list[dict[str, Any]], split: dict[str, Any], report: str) -> list[str]:
    """One line per non-blocking finding, with its value and where to read more: what
    `mlpipe run` and the task's log show (the findings themselves are in anomalies.json)."""
    windows = _windows(split)
    lines = []
    for f in findings:
        if f["kind"] == "blocking":
            continue
        feature = f["feature"]
        if f["check"].startswith("drift_"):
            what = (
                f"{feature} drift {f['check'].removeprefix('drift_')} {f['value']:.2g} > "
                f"{f['threshold']:g} ({windows['train']} vs {windows['test']})"
            )
        else:
            head = f"{_noun(f)} {feature!r}: " if feature else ""
            where = f" ({windows[f['window']]})" if f["window"] in windows else ""
            what = f"{head}{f['description']}{where}"
        lines.append(f"warning: {STAGE}: {what} — report: {report}")
    return lines


def _install(
    work: Path, statistics_dir: str, schema_dir: str, anomalies_dir: str, report_path: str
):
    """Copy the job's folders into the artifact paths (each replaced atomically)."""
    for name, target in zip(
        ARTIFACT_DIRS, (statistics_dir, schema_dir, anomalies_dir), strict=True
    ):
        with atomic_dir(target) as tmp:
            for item in (work / name).iterdir():
                shutil.copy2(item, tmp / item.name)
    with atomic_path(report_path, ".html") as tmp:
        shutil.copyfile(work / "report.html", tmp)


def collect(
    work_dir: str,
    statistics_dir: str,
    schema_dir: str,
    anomalies_dir: str,
    report_path: str,
    report_uri: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Install the job's outputs, log a line per warning, return the metadata (`warnings`: those
    lines), raise DataError on a blocking finding. `report_uri` is where a person finds the
    report (a cluster's artifact URI), `report_path` by default."""
    work = Path(work_dir)
    summary = read_json(work / "anomalies" / "anomalies.json")
    _install(work, statistics_dir, schema_dir, anomalies_dir, report_path)
    findings = summary["findings"]
    meta = {
        "status": summary["status"],
        "rows": summary["rows"]["dataset"],
        "rows_train": summary["rows"]["train"],
        "rows_test": summary["rows"]["test"],
        "duplicate_row_share": summary.get("duplicate_row_share"),
        "blocking": summary["blocking"],
        "drift": summary["drift"],
        "drift_per_feature": {n: m["value"] for n, m in summary["drift_measurements"].items()},
        "drifted_features": [n for n, m in summary["drift_measurements"].items() if m["drifted"]],
        "schema_source": summary["schema_source"],
        "tfdv_version": summary["tfdv_version"],
        "warnings": warning_lines(findings, summary.get("split") or {}, report_uri or report_path),
    }
    for line in meta["warnings"]:
        log(line)
    if summary["blocking"]:
        message, subject = blocking_message(findings)
        raise DataError(STAGE, message, subject=subject)
    return meta


def run(
    data_path: str,
    data_schema: dict[str, Any],
    split: dict[str, Any],
    statistics_dir: str,
    schema_dir: str,
    anomalies_dir: str,
    report_path: str,
    python: str | None = None,
    log: Callable[[str], None] = print,
    report_uri: str | None = None,
) -> dict[str, Any]:
    """Validate the Dataset at `data_path`; write the four outputs; return their metadata.

    `data_schema` is config/data_schema.yaml as a dict (empty: TFDV infers a schema from the train
    window); `split` is feature_engineering.split (or the whole feature_engineering section).
    Raises DataError naming the column and the problem when a blocking check fails; the outputs
    (report included) are written first, so the report shows what failed.
    """
    if data_schema and data_schema.get("features"):
        _check_schema(data_schema)
    python = python or tfdv_python()
    with tempfile.TemporaryDirectory(prefix="mlpipe-validate-") as tmp:
        work = Path(tmp) / "out"
        run_job(data_path, data_schema, split, str(work), python=python, log=log)
        return collect(
            str(work), statistics_dir, schema_dir, anomalies_dir, report_path, report_uri, log
        )


def _check_schema(data_schema: dict[str, Any]) -> None:
    """Fail before the 10-second TFDV launch when the data schema itself is invalid."""
    from pydantic import ValidationError

    from components.common.config import DataSchema, describe_errors

    try:
        DataSchema.model_validate(data_schema)
    except ValidationError as exc:
        problems = "; ".join(describe_errors(DataSchema, exc))
        raise StageError(STAGE, f"invalid data schema: {problems}", subject="data_schema") from None
