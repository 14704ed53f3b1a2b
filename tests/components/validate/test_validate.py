"""Validate stage: the error message, the launch, the TFDV job on every bad-data case.

The project checks' own unit tests are in test_checks.py, the report's in test_report.py.

The TFDV job costs ~8-25 s per process just to import TensorFlow, so the tfdv tests share one
process: `tfdv_batch` runs the job once per case (every bad case, each clean year, a drift
injection, an inferred schema) in a single tfdv-env Python, and each test then calls
`validate.collect` on its case's output: the same code `validate.run` ends with. One test runs
`validate.run` end to end (launch included).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from pathlib import Path

import pytest

from components.common.errors import DataError, StageError
from components.validate import checks, validate
from components.validate.checks import project_findings
from pipelines.progress import ProgressTee
from tests.components.validate.conftest import PARTIAL_SCHEMA
from tests.conftest import DATA_FILE, TFDV_PYTHON, needs_tfdv
from tests.fixtures.bad_data import (
    CASES,
    CASES_BY_NAME,
    DEFAULT_SPLIT,
    base_sample,
    constant_sex_in_train,
    shift_age_in_train,
    shift_sex,
)
from tests.support.tfdv_jobs import run_tfdv_jobs, validate_outputs

CLEAN_YEARS = [(2015, 2016), (2016, 2017), (2017, 2018), (2018, 2015)]
requires_tfdv = needs_tfdv()
# schema_dict, contract and base: tests/components/validate/conftest.py


def _split(train: int, test: int) -> dict:
    return {**DEFAULT_SPLIT, "train_window": [train, train], "test_window": [test, test]}


# ---------------------------------------------------------------- project checks (main env)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_project_checks_catch_each_bad_case(case, base, contract):
    _, findings = project_findings(case.make(base), contract, DEFAULT_SPLIT)
    message, subject = validate.blocking_message(findings)
    assert subject == case.subject
    assert case.expect in message


def _kinds(findings: list[dict]) -> list[tuple]:
    return [(f["window"], f["feature"], f["check"], f["kind"], f.get("value")) for f in findings]


def test_a_constant_feature_is_reported_with_its_value_never_blocking(base, contract):
    _, findings = project_findings(base.assign(SEX=2), contract, DEFAULT_SPLIT)
    assert _kinds(findings) == [("dataset", "SEX", "constant", "drift", 2)]
    assert findings[0]["description"] == "one value (2) in every row: it cannot inform the model"
    assert validate.blocking_message(findings) == ("", None)


def test_warning_lines_give_the_value_the_windows_and_the_report():
    findings = [
        _f("SEX", "unseen_code", "1 value outside [1, 2] (3)", "test"),
        {
            **_f("AGEP", "drift_jensen_shannon", "...", "test", "tfdv", "drift"),
            "value": 0.4123,
            "threshold": 0.1,
        },
        _f("SEX", "constant_in_window", "one value (1) in every row", "train", kind="drift"),
        _f(None, "duplicate_rows", "80.0% of rows repeat", "dataset", kind="drift"),
    ]
    lines = validate.warning_lines(findings, DEFAULT_SPLIT, "/r/report.html")
    assert lines == [
        "warning: validate: AGEP drift jensen_shannon 0.41 > 0.1 (train 2015 vs test 2016)"
        " — report: /r/report.html",
        "warning: validate: feature 'SEX': one value (1) in every row (train 2015)"
        " — report: /r/report.html",
        "warning: validate: 80.0% of rows repeat — report: /r/report.html",
    ]
    random = validate.warning_lines(findings[1:2], {"method": "random"}, "r.html")
    assert "(train vs test)" in random[0]
    # as a KFP dict parameter carries it (numbers are doubles)
    passed = {"method": "time", "train_window": [2013.0, 2015.0], "test_window": [2016.0, 2016.0]}
    (line,) = validate.warning_lines(findings[1:2], passed, "r")
    assert "(train 2013..2015 vs test 2016)" in line


# ---------------------------------------------------------------- the message (main env)


def _f(feature, check, description, window="train", source="project", kind="blocking"):
    role = None if feature is None else "feature"
    return checks.finding(window, feature, check, description, kind, source) | {"role": role}


def test_message_names_feature_problem_and_window():
    message, subject = validate.blocking_message(
        [_f("SEX", "unseen_code", "1 value outside the domain [1, 2] (3)")]
    )
    assert message == "feature 'SEX': 1 value outside the domain [1, 2] (3) in the train window"
    assert subject == "SEX"


def test_message_drops_tfdv_echo_merges_windows_and_counts_the_rest():
    findings = [
        _f("SEX", "unseen_code", "1 value outside the domain [1, 2] (3)"),
        _f("SEX", "tfdv:INT_TYPE_BIG_INT", "Unexpectedly large value: 3.", source="tfdv")
        | {"corroborates": ["unseen_code"]},
        _f("AGEP", "not_finite", "1 infinite value (inf)", "train"),
        _f("AGEP", "not_finite", "1 infinite value (inf)", "test"),
        _f("MAR", "missing_values", "3 missing values", "dataset"),
        _f("DIS", "tfdv:SCHEMA_MISSING_COLUMN", "Column is completely missing", source="tfdv"),
        _f("RELP", "not_integer", "1 non-integer value"),
        _f("SEX", "drift_linf", "L-infinity distance 0.25", "test", "tfdv", "drift"),
    ]
    message, subject = validate.blocking_message(findings)
    assert message == (
        "feature 'SEX': 1 value outside the domain [1, 2] (3) in the train window; "
        "feature 'AGEP': 1 infinite value (inf) in the train and test windows; "
        "feature 'MAR': 3 missing values; and 2 more"
    )
    assert subject == "SEX"
    assert "\n" not in message


def test_tfdv_on_a_column_the_project_failed_corroborates_and_is_not_counted_again():
    findings = [
        _f("SEX", "unseen_code", "1 value outside the domain [1, 2] (3)"),
        _f("SEX", "tfdv:INT_TYPE_BIG_INT", "Unexpectedly large value: 3.", source="tfdv"),
        _f("SEX", "tfdv:INT_TYPE_BIG_INT", "Unexpectedly large value: 3.", "test", "tfdv"),
        _f("DIS", "tfdv:SCHEMA_MISSING_COLUMN", "Column is completely missing", source="tfdv"),
        _f(None, "min_rows", "only 50 rows, fewer than min_rows 100", "test"),
        _f(None, "tfdv:DATASET_LOW_NUM_EXAMPLES", "Low num examples", "test", "tfdv"),
        _f("SEX", "drift_linf", "L-infinity distance 0.25", "test", "tfdv", "drift"),
    ]
    checks.mark_corroborating(findings)
    assert [f.get("corroborates") for f in findings] == [
        None,
        ["unseen_code"],
        ["unseen_code"],
        None,  # no project finding on DIS: TFDV's own, and it blocks
        None,
        ["min_rows"],
        None,  # drift is never blocking
    ]
    counted = checks.counted_blocking(findings)
    assert [(f["feature"], f["source"]) for f in counted] == [
        ("SEX", "project"),
        ("DIS", "tfdv"),
        (None, "project"),
    ]
    message, _ = validate.blocking_message(findings)
    assert "Unexpectedly large" not in message and "Low num examples" not in message
    assert "feature 'DIS': Column is completely missing" in message


def test_message_of_a_table_level_problem_has_no_subject():
    message, subject = validate.blocking_message(
        [_f(None, "empty", "the dataset has 0 rows", "dataset")]
    )
    assert (message, subject) == ("the dataset has 0 rows", None)


# ---------------------------------------------------------------- launching (main env)


def test_missing_tfdv_environment_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setenv(validate.TFDV_PYTHON_ENV, str(tmp_path / "nowhere" / "python"))
    with pytest.raises(StageError, match="make setup"):
        validate.tfdv_python()
    monkeypatch.delenv(validate.TFDV_PYTHON_ENV)
    monkeypatch.setattr(validate, "LOCAL_TFDV_PYTHON", tmp_path / "nowhere" / "python")
    # the main environment cannot import TFDV
    with pytest.raises(StageError, match=r"run `make setup`, or set MLPIPE_TFDV_PYTHON"):
        validate.tfdv_python()


def test_invalid_data_schema_fails_before_launching(schema_dict, tmp_path):
    bad = json.loads(json.dumps(schema_dict))
    bad["features"]["SEX"]["values"] = {"min": 2, "max": 1}
    with pytest.raises(StageError, match="invalid data schema: features.SEX"):
        validate.run(
            str(DATA_FILE), bad, DEFAULT_SPLIT, python="/bin/false", **validate_outputs(tmp_path)
        )


def test_a_crashing_job_raises_with_its_last_line(schema_dict, tmp_path):
    # the main interpreter has no TFDV: the job crashes on import, like a broken tfdv env would
    lines: list[str] = []
    with pytest.raises(RuntimeError, match="No module named 'tensorflow_data_validation'"):
        validate.run_job(
            str(DATA_FILE),
            schema_dict,
            DEFAULT_SPLIT,
            str(tmp_path / "out"),
            sys.executable,
            log=lines.append,
        )
    assert any(line.startswith("[tfdv] Traceback") for line in lines)
    assert not (tmp_path / "out").exists()


def test_component_compiles_for_the_tfdv_image(tmp_path):
    from kfp import compiler

    from components.common.images import TFDV_IMAGE
    from components.validate.component import validate as component

    out = tmp_path / "validate.yaml"
    compiler.Compiler().compile(component, str(out))
    text = out.read_text()
    assert f"image: {TFDV_IMAGE}" in text
    assert "pip install" not in text
    assert "latest" not in TFDV_IMAGE


# ---------------------------------------------------------------- the TFDV job (tfdv env)


@pytest.fixture(scope="module")
def tfdv_batch(tmp_path_factory, full_data, schema_dict) -> dict[str, Path]:
    """Run the TFDV job on every case in one tfdv-env process; {case name: its output folder}."""
    root = tmp_path_factory.mktemp("tfdv_batch")
    base = base_sample(full_data)
    jobs: dict[str, tuple[str, dict, dict]] = {}
    frames = {c.name: c.make(base) for c in CASES}
    frames["drift_sex"] = shift_sex(base)
    frames["constant_sex_train"] = constant_sex_in_train(base)
    frames["older_train"] = shift_age_in_train(base, years=15)
    frames["inferred"] = base
    for name, df in frames.items():
        path = root / f"{name}.parquet"
        df.to_parquet(path, index=False)
        schema = PARTIAL_SCHEMA if name == "inferred" else schema_dict
        jobs[name] = (str(path), schema, DEFAULT_SPLIT)
    (root / "unreadable.parquet").write_bytes(b"PAR1 this is not parquet")
    jobs["unreadable"] = (str(root / "unreadable.parquet"), schema_dict, DEFAULT_SPLIT)
    for train, test in CLEAN_YEARS:
        jobs[f"clean_{train}_{test}"] = (str(DATA_FILE), schema_dict, _split(train, test))
    argvs = [
        validate.job_command("python", data, schema, split, str(root / "out" / name))[3:]
        for name, (data, schema, split) in jobs.items()
    ]
    started = time.perf_counter()
    proc = run_tfdv_jobs(argvs, root)
    (root / "batch.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    print(f"tfdv batch: {len(jobs)} jobs in {time.perf_counter() - started:.1f} s")
    return {name: root / "out" / name for name in jobs}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.tfdv
@requires_tfdv
def test_each_bad_case_raises_data_error_naming_the_column(case, tfdv_batch, tmp_path):
    with pytest.raises(DataError) as err:
        validate.collect(str(tfdv_batch[case.name]), **validate_outputs(tmp_path))
    message = str(err.value)
    assert case.expect in message
    assert err.value.subject == case.subject
    assert err.value.stage == "validate"
    assert "\n" not in message and len(message) < 400
    # the outputs are written before the error: the report shows what failed
    summary = json.loads((tmp_path / "anomalies" / "anomalies.json").read_text())
    assert summary["status"] == "failed" and summary["blocking"] >= 1
    assert (tmp_path / "report.html").stat().st_size > 0


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.tfdv
@requires_tfdv
def test_each_bad_case_raises_its_tfdv_anomaly_types_beside_the_project(case, tfdv_batch, tmp_path):
    with pytest.raises(DataError):
        validate.collect(str(tfdv_batch[case.name]), **validate_outputs(tmp_path))
    summary = json.loads((tmp_path / "anomalies" / "anomalies.json").read_text())
    findings = summary["findings"]
    tfdv = [f for f in findings if f["source"] == "tfdv" and f["kind"] == "blocking"]
    assert {(f["window"], f["feature"], f["anomaly_type"]) for f in tfdv} == case.tfdv
    assert all(f["check"] == f"tfdv:{f['anomaly_type']}" and f["short_description"] for f in tfdv)
    # on these cases a project check fails on the same column: TFDV corroborates, and the
    # blocking count is the project's alone (nothing counted twice)
    project = [f for f in findings if f["source"] == "project" and f["kind"] == "blocking"]
    assert all(f["corroborates"] for f in tfdv)
    assert {f["feature"] for f in tfdv} <= {f["feature"] for f in project}
    assert summary["blocking"] == len(project)
    page = (tmp_path / "report.html").read_text()
    for anomaly_type in {f["anomaly_type"] for f in tfdv}:
        assert f"tfdv:{anomaly_type}" in page


@pytest.mark.parametrize("train,test", CLEAN_YEARS, ids=lambda y: str(y))
@pytest.mark.tfdv
@requires_tfdv
def test_clean_years_have_no_blocking_finding(train, test, tfdv_batch, schema_dict, tmp_path):
    meta = validate.collect(str(tfdv_batch[f"clean_{train}_{test}"]), **validate_outputs(tmp_path))
    assert meta["blocking"] == 0 and meta["status"] == "passed"
    assert 68_000 < meta["rows_train"] < 70_500 and 68_000 < meta["rows_test"] < 70_500
    assert meta["rows"] == 277_677
    assert set(meta["drift_per_feature"]) == set(schema_dict["features"])  # all measured
    assert meta["drifted_features"] == []


@pytest.mark.tfdv
@requires_tfdv
def test_outputs_layout_and_json_summaries(tfdv_batch, tmp_path):
    out = validate_outputs(tmp_path)
    validate.collect(str(tfdv_batch["clean_2015_2016"]), **out)
    stats_files = sorted(p.name for p in Path(out["statistics_dir"]).iterdir())
    assert stats_files == [
        "schema.json",
        "schema.pbtxt",
        "test_stats.json",
        "test_stats.pb",
        "train_stats.json",
        "train_stats.pb",
    ]
    assert sorted(p.name for p in Path(out["schema_dir"]).iterdir()) == [
        "schema.json",
        "schema.pbtxt",
    ]
    assert sorted(p.name for p in Path(out["anomalies_dir"]).iterdir()) == [
        "anomalies.json",
        "test_anomalies.pbtxt",
        "train_anomalies.pbtxt",
    ]
    train = json.loads((Path(out["statistics_dir"]) / "train_stats.json").read_text())
    assert train["rows"] == 68_785
    sex, age = train["features"]["SEX"], train["features"]["AGEP"]
    assert sex["kind"] == "categorical" and sorted(v for v, _ in sex["top_values"]) == ["1", "2"]
    assert age["kind"] == "numeric" and 0 <= age["min"] <= age["max"] <= 99
    assert sum(c for _, _, c in age["histogram"]) == pytest.approx(68_785, rel=1e-3)
    schema = json.loads((Path(out["schema_dir"]) / "schema.json").read_text())
    feature = {f["name"]: f for f in schema["tfdv_schema"]["feature"]}
    assert feature["ANC"]["int_domain"] == {"min": "1", "max": "8", "is_categorical": True}
    assert feature["AGEP"]["drift_comparator"] == {"jensen_shannon_divergence": {"threshold": 0.1}}
    assert "min_fraction" in feature["SEX"]["presence"]
    schema_text = (Path(out["schema_dir"]) / "schema.pbtxt").read_text()
    assert "is_categorical: true" in schema_text and "infinity_norm" in schema_text
    page = Path(out["report_path"]).read_text()
    assert "PASSED" in page and "<script" not in page


@pytest.mark.tfdv
@requires_tfdv
def test_drift_is_reported_never_raised(tfdv_batch, tmp_path):
    meta = validate.collect(str(tfdv_batch["drift_sex"]), **validate_outputs(tmp_path))
    assert meta["blocking"] == 0 and meta["drift"] >= 1
    assert meta["drifted_features"] == ["SEX"]
    assert meta["drift_per_feature"]["SEX"] > 0.2  # categorical: L-infinity sees the shift
    summary = json.loads((tmp_path / "anomalies" / "anomalies.json").read_text())
    (drift,) = [f for f in summary["findings"] if f["kind"] == "drift"]
    assert (drift["feature"], drift["check"], drift["window"]) == ("SEX", "drift_linf", "test")


def _screen_of_a_run(case_dir: Path, tmp_path: Path) -> tuple[list[str], dict, Path]:
    """What `mlpipe run` shows of the validate task: the component logs through stdout, which
    the local run hands to ProgressTee (pipelines/local_run.py)."""
    screen, log = io.StringIO(), io.StringIO()
    out = validate_outputs(tmp_path)
    with contextlib.redirect_stdout(ProgressTee(log, screen)):
        meta = validate.collect(str(case_dir), **out)
    return screen.getvalue().splitlines(), meta, Path(out["report_path"])


@pytest.mark.tfdv
@requires_tfdv
def test_a_window_with_one_sex_prints_warnings_and_passes(tfdv_batch, tmp_path):
    shown, meta, report = _screen_of_a_run(tfdv_batch["constant_sex_train"], tmp_path)
    assert meta["blocking"] == 0 and meta["status"] == "passed"
    value = meta["drift_per_feature"]["SEX"]  # test's share of SEX=2: about half
    assert 0.4 < value < 0.6
    assert shown == [
        "  warning: validate: feature 'SEX': one value (1) in every row of this window only, "
        f"2 distinct values in the dataset (train 2015) — report: {report}",
        f"  warning: validate: SEX drift linf {value:.2g} > 0.1 (train 2015 vs test 2016) "
        f"— report: {report}",
    ]
    assert meta["warnings"] == [line.strip() for line in shown]


@pytest.mark.tfdv
@requires_tfdv
def test_a_train_window_15_years_older_prints_the_age_drift(tfdv_batch, tmp_path):
    shown, meta, report = _screen_of_a_run(tfdv_batch["older_train"], tmp_path)
    assert meta["blocking"] == 0 and meta["drifted_features"] == ["AGEP"]
    value = meta["drift_per_feature"]["AGEP"]
    assert value > 0.1
    assert shown == [
        f"  warning: validate: AGEP drift jensen_shannon {value:.2g} > 0.1 "
        f"(train 2015 vs test 2016) — report: {report}"
    ]


@pytest.mark.tfdv
@requires_tfdv
def test_a_clean_window_prints_no_warning(tfdv_batch, tmp_path):
    shown, meta, _ = _screen_of_a_run(tfdv_batch["clean_2015_2016"], tmp_path)
    assert shown == [] and meta["warnings"] == []


@pytest.mark.tfdv
@requires_tfdv
def test_without_features_tfdv_infers_the_schema(tfdv_batch, tmp_path):
    meta = validate.collect(str(tfdv_batch["inferred"]), **validate_outputs(tmp_path))
    assert meta["schema_source"] == "inferred" and meta["blocking"] == 0
    schema = json.loads((tmp_path / "schema" / "schema.json").read_text())
    assert schema["source"] == "inferred"
    assert len(schema["tfdv_schema"]["feature"]) == 19
    assert "id" not in meta["drift_per_feature"] and "AGEP" in meta["drift_per_feature"]


@pytest.mark.tfdv
@requires_tfdv
def test_an_unreadable_file_is_a_blocking_finding(tfdv_batch, tmp_path):
    with pytest.raises(DataError, match=r"cannot read .*unreadable\.parquet") as err:
        validate.collect(str(tfdv_batch["unreadable"]), **validate_outputs(tmp_path))
    assert err.value.subject is None
    assert not (tmp_path / "statistics" / "train_stats.pb").exists()


@pytest.mark.tfdv
@requires_tfdv
def test_run_end_to_end_raises_the_one_line_message(base, schema_dict, tmp_path):
    data = tmp_path / "data.parquet"
    CASES_BY_NAME["unseen_category"].make(base).to_parquet(data, index=False)
    lines: list[str] = []
    with pytest.raises(DataError) as err:
        validate.run(
            str(data),
            schema_dict,
            {"split": DEFAULT_SPLIT},
            python=str(TFDV_PYTHON),
            log=lines.append,
            **validate_outputs(tmp_path / "out"),
        )
    assert str(err.value) == (
        "feature 'SEX': 1 value outside the domain [1, 2] (3) in the train window"
    )
    assert err.value.subject == "SEX"
    assert any("blocking and 0 drift findings" in line for line in lines)
    assert (tmp_path / "out" / "report.html").exists()
