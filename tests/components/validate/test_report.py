"""Unit tests of components/validate/report.py: the self-contained HTML validation report built
from the TFDV job's summary and per-window statistics (parsed with the stdlib html.parser)."""

from __future__ import annotations

import re

import pytest

from components.validate import checks
from components.validate.report import TEST_COLOR, TRAIN_COLOR, render_report
from tests.support.html_page import Node, parse, rows


def _f(feature, check, description, window="train", source="project", kind="blocking"):
    role = None if feature is None else "feature"
    return checks.finding(window, feature, check, description, kind, source) | {"role": role}


def _numeric(count=5, histogram=((0.0, 50.0, 3.0), (50.0, 90.0, 2.0)), **stats) -> dict:
    return {
        "kind": "numeric",
        "type": "INT",
        "count": count,
        "missing": 0,
        "mean": 40.0,
        "std": 3.0,
        "min": 1.0,
        "max": 90.0,
        "median": 40.0,
        "histogram": [list(b) for b in histogram],
        **stats,
    }


def _categorical(top_values, count=5, missing=0) -> dict:
    return {
        "kind": "categorical",
        "type": "INT",
        "count": count,
        "missing": missing,
        "unique": len(top_values),
        "top_values": [list(v) for v in top_values],
    }


SUMMARY = {
    "status": "passed",
    "blocking": 0,
    "drift": 0,
    "rows": {"dataset": 277_677, "train": 68_785, "test": 1_234},
    "duplicate_row_share": 0.5421,
    "schema_source": "declared",
    "split": {"method": "time", "train_window": [2015, 2015]},
    "tfdv_version": "1.16.1",
    "findings": [],
    "drift_measurements": {},
}


def _section(page: Node, title: str) -> list[Node]:
    """The elements after the <h2> titled `title`, up to the next <h2>."""
    body = page.find("body")
    elements = [c for c in body.children if isinstance(c, Node)]
    start = next(i for i, e in enumerate(elements) if e.tag == "h2" and e.text().startswith(title))
    out = []
    for e in elements[start + 1 :]:
        if e.tag == "h2":
            break
        out.append(e)
    return out


# ---------------------------------------------------------------- moved from test_validate.py


def test_report_is_self_contained():
    summary = {
        "status": "failed",
        "blocking": 1,
        "drift": 0,
        "rows": {"dataset": 10, "train": 5, "test": 5},
        "findings": [
            _f("AGEP", "out_of_range", "1 value outside the range [0, 99] (150)"),
            _f("SEX", "unseen_code", "1 value <outside> (3)"),
            _f("SEX", "tfdv:INT_TYPE_BIG_INT", "Unexpectedly large value: 3.", source="tfdv")
            | {"corroborates": ["unseen_code"], "anomaly_type": "INT_TYPE_BIG_INT"},
        ],
        "drift_measurements": {
            "SEX": {"metric": "linf", "value": 0.2, "threshold": 0.1, "drifted": True}
        },
    }
    stats = {
        "train": {
            "rows": 5,
            "features": {
                "SEX": _categorical([("1", 3), ("2", 2)]),
                "AGEP": _numeric(),
            },
        },
    }
    page = render_report(summary, stats)
    assert "&lt;outside&gt;" in page and "<outside>" not in page
    # TFDV's finding sits right after the project's on the same column, marked corroborating
    rows = re.findall(r"<tr class=\"blocking\">(.*?)</tr>", page)
    assert ["AGEP" in rows[0], "unseen_code" in rows[1], "INT_TYPE_BIG_INT" in rows[2]] == [
        True,
        True,
        True,
    ]
    assert "corroborates unseen_code" in rows[2] and "tfdv" in rows[2]
    assert "TFDV raised 1 blocking anomaly (INT_TYPE_BIG_INT): 1 corroborate" in page
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert page.count("http") == page.count('xmlns="http://www.w3.org/2000/svg"')


# ---------------------------------------------------------------- the header


def test_a_passed_run_header_gives_status_counts_rows_and_provenance():
    page = parse(render_report(SUMMARY, {}))
    assert page.find("title").text() == "Data validation"
    status = page.find("h1").find("span")
    assert status.text() == "PASSED" and status.classes() == {"passed"}
    intro = page.find("body").find_all("p")[0].text()
    assert intro.startswith("0 blocking and 0 drift findings.")
    assert "Rows: dataset 277,677, train window 68,785, test window 1,234;" in intro
    assert "54.2% repeat an earlier row's features and label" in intro
    assert "Schema: declared; split: {'method': 'time', 'train_window': [2015, 2015]}" in intro
    assert intro.endswith("TFDV 1.16.1.")
    assert [e.text() for e in _section(page, "Findings")] == ["None."]
    assert _section(page, "Drift")[0].text() == "Not measured (both windows are needed)."
    assert _section(page, "Features")[1].text() == "No statistics (no usable window)."


def test_a_minimal_summary_renders_with_placeholders():
    """What a job that stopped early writes: a status and nothing else."""
    page = parse(render_report({"status": "failed"}, {}))
    assert page.find("h1").find("span").text() == "FAILED"
    intro = page.find("body").find_all("p")[0].text()
    assert intro.startswith("0 blocking and 0 drift findings.")
    assert "Rows: dataset , train window , test window ; - repeat" in intro
    assert "Schema: None; split: None; TFDV None." in intro


def test_user_strings_are_escaped_everywhere():
    evil = "<img src=x onerror=alert(1)>&'\""
    summary = {
        **SUMMARY,
        "status": "failed",
        "blocking": 1,
        "schema_source": evil,
        "split": {"method": evil},
        "tfdv_version": evil,
        "findings": [
            _f(evil, "unseen_value", f"1 value not in the declared values: {evil!r}")
            | {"role": "column"},
            _f(evil, "tfdv:X", evil, source="tfdv")
            | {"corroborates": [evil], "anomaly_type": evil},
        ],
        "drift_measurements": {
            evil: {"metric": "linf", "value": 0.3, "threshold": 0.1, "drifted": True}
        },
    }
    stats = {
        "train": {"features": {evil: _categorical([[evil, 3], ["2", 1]])}},
        "test": {"features": {evil: _categorical([[evil, 1]])}},
    }
    html = render_report(summary, stats)
    page = parse(html)  # strict: leaked markup would unbalance it
    assert page.find_all("img") == [] and "<img" not in html
    text = page.text()
    assert text.count(evil) >= 8  # shown as text: intro (3), findings (3), drift, features
    assert f"corroborates {evil}" in text
    titles = [t.text() for t in page.find_all("title")[1:]]  # the SVG bars' tooltips
    assert f"{evil}: 75.0%" in titles and f"{evil}: 100.0%" in titles


# ---------------------------------------------------------------- findings


def test_findings_blocking_first_each_column_together_project_before_tfdv():
    findings = [
        _f("SEX", "drift_linf", "L-infinity 0.3", "test", "tfdv", "drift"),
        _f("AGEP", "tfdv:INT_TYPE_BIG_INT", "big", source="tfdv") | {"anomaly_type": "BIG"},
        _f("MAR", "missing_values", "3 missing values", "dataset"),
        _f("AGEP", "out_of_range", "1 value outside"),
        _f(None, "duplicate_rows", "80.0% of rows repeat", "dataset", kind="drift"),
        _f("AGEP", "not_finite", "1 infinite value", "test"),
    ]
    page = parse(render_report({**SUMMARY, "status": "failed", "findings": findings}, {}))
    table = page.find("table")
    got = rows(table)
    assert got[0] == ["kind", "window", "column", "check", "source", "description"]
    assert [(r[2], r[3], r[4]) for r in got[1:]] == [
        ("AGEP", "out_of_range", "project"),
        ("AGEP", "not_finite", "project"),
        ("AGEP", "tfdv:INT_TYPE_BIG_INT", "tfdv"),
        ("MAR", "missing_values", "project"),
        ("SEX", "drift_linf", "tfdv"),
        ("", "duplicate_rows", "project"),
    ]
    classes = [tr.attrs.get("class") for tr in table.find_all("tr")[1:]]
    assert classes == ["blocking"] * 4 + ["drift"] * 2
    line = _section(page, "Findings")[0].text()
    assert line == (
        "TFDV raised 1 blocking anomaly (BIG): 0 corroborate a project finding on the same "
        "column (shown beside it, not counted again), 1 found by TFDV alone."
    )


def test_the_tfdv_line_counts_anomalies_and_those_found_by_tfdv_alone():
    findings = [
        _f("SEX", "unseen_code", "1 value outside"),
        _f("SEX", "tfdv:A", "a", source="tfdv") | {"anomaly_type": "A", "corroborates": ["x"]},
        _f("DIS", "tfdv:B", "b", source="tfdv"),  # no anomaly type: its check is shown
        _f("SEX", "drift_linf", "0.3", "test", "tfdv", "drift"),  # drift: not an anomaly
    ]
    page = parse(render_report({**SUMMARY, "findings": findings}, {}))
    assert (
        _section(page, "Findings")[0]
        .text()
        .startswith("TFDV raised 2 blocking anomalies (A, tfdv:B): 1 corroborate a project finding")
    )
    assert _section(page, "Findings")[0].text().endswith(", 1 found by TFDV alone.")
    project_only = parse(render_report({**SUMMARY, "findings": findings[:1]}, {}))
    assert _section(project_only, "Findings")[0].text() == "TFDV raised no blocking anomaly."


# ---------------------------------------------------------------- drift and features


def test_drift_table_marks_drifted_features():
    drift = {
        "AGEP": {"metric": "jensen_shannon", "value": 0.41234, "threshold": 0.1, "drifted": True},
        "SEX": {"metric": "linf", "value": 0.01, "threshold": 0.1, "drifted": False},
    }
    page = parse(render_report({**SUMMARY, "drift_measurements": drift}, {}))
    (table,) = [e for e in _section(page, "Drift") if e.tag == "table"]
    assert rows(table) == [
        ["feature", "metric", "value", "threshold", "status"],
        ["AGEP", "jensen_shannon", "0.4123", "0.1", "drifted"],
        ["SEX", "linf", "0.01", "0.1", "ok"],
    ]
    assert [tr.attrs.get("class") for tr in table.find_all("tr")[1:]] == ["drift", ""]
    assert [td.attrs.get("class") for td in table.find_all("tr")[1].find_all("td")] == [
        None,
        None,
        "n",
        "n",
        None,
    ]


def test_features_of_both_windows_with_their_statistics_and_plots():
    stats = {
        "train": {
            "features": {
                "AGEP": _numeric(count=12_345, mean=1234.5678),
                "SEX": _categorical([["1", 3], ["2", 1]]),
            }
        },
        "test": {
            "features": {
                "SEX": _categorical([["1", 1], ["3", 1]]),
                "NEW": _categorical([["a", 2]]),
            }
        },
    }
    page = parse(render_report(SUMMARY, stats))
    table = next(e for e in _section(page, "Features") if e.tag == "table")
    got = rows(table)
    assert [r[0] for r in got] == ["feature", "AGEPnumeric, INT", "SEXcategorical, INT",
                                   "NEWcategorical, INT"]  # fmt: skip
    agep, sex, new = got[1:]
    assert agep[1] == (
        "count 12,345, missing 0mean 1,235, std 3, min 1, median 40, max 90"
    )  # <br> between the lines
    assert agep[2] == "absent"
    assert sex[1] == "count 5, missing 02 values: 1 (75%), 2 (25%)"
    assert sex[2] == "count 5, missing 02 values: 1 (50%), 3 (50%)"
    assert new[1] == "absent"
    svgs = [tr.find_all("svg") for tr in table.find_all("tr")[1:]]
    assert [len(s) for s in svgs] == [1, 1, 1]
    # AGEP: train's two buckets only; SEX: labels 1, 2, 3 each with a train and a test bar
    assert len(svgs[0][0].find_all("rect")) == 2
    bars = svgs[1][0].find_all("rect")
    assert [b.find("title").text() for b in bars] == [
        "1: 75.0%", "1: 50.0%", "2: 25.0%", "2: 0.0%", "3: 0.0%", "3: 50.0%"
    ]  # fmt: skip
    assert [b.attrs["fill"] for b in bars] == [TRAIN_COLOR, TEST_COLOR] * 3
    heights = [float(b.attrs["height"]) for b in bars]
    assert heights[0] == 60.0 and heights[3] == 0.0  # the largest share is full height
    assert (
        f"background:{TRAIN_COLOR}"
        in _section(page, "Features")[0].find_all("span")[0].attrs["style"]
    )


def test_category_labels_sort_numbers_numerically_then_texts():
    stats = {"train": {"features": {"X": _categorical([["10", 1], ["9", 1], ["b", 1], ["a", 1]])}}}
    page = parse(render_report(SUMMARY, stats))
    titles = [t.text().split(":")[0] for t in page.find("svg").find_all("title")]
    assert titles == ["9", "9", "10", "10", "a", "a", "b", "b"]


def test_histograms_of_both_windows_share_one_axis():
    train = _numeric(histogram=[(10.0, 20.0, 5.0), (20.0, 30.0, 5.0)])
    test = _numeric(histogram=[(30.0, 50.0, 10.0)])
    page = parse(render_report(SUMMARY, {"train": {"features": {"A": train}},
                                         "test": {"features": {"A": test}}}))  # fmt: skip
    rects = page.find("svg").find_all("rect")
    xs = [(float(r.attrs["x"]), float(r.attrs["width"])) for r in rects]
    assert xs == [(0.0, 65.0), (65.0, 65.0), (130.0, 130.0)]  # 10..50 over 260 pixels
    # densities: each train bucket 0.05/unit, the test one 0.05/unit: the same height
    assert {float(r.attrs["height"]) for r in rects} == {60.0}
    assert [r.find("title").text() for r in rects] == ["10 to 20", "20 to 30", "30 to 50"]


@pytest.mark.parametrize(
    "histogram",
    [[], [(5.0, 5.0, 10.0)], [(0.0, 1.0, 0.0)]],
    ids=["none", "one-point", "no-count"],
)
def test_degenerate_histograms_do_not_break_the_page(histogram):
    page = parse(
        render_report(SUMMARY, {"train": {"features": {"A": _numeric(histogram=histogram)}}})
    )
    svgs = page.find_all("svg")
    assert len(svgs) == (0 if not histogram else 1)
    for rect in page.find_all("rect"):
        assert all(re.fullmatch(r"-?\d+\.\d", rect.attrs[k]) for k in ("x", "y", "width", "height"))
