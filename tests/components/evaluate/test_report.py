"""Unit tests of components/evaluate/report.py: the HTML evaluation report (verdict, threshold,
champion vs challenger, plots, slices) and its tables and figures, on the evaluation summaries
of two small real models. Parsed with the stdlib html.parser; test_report_browser.py opens the
page in Chromium."""

from __future__ import annotations

import base64
import copy
import io

import numpy as np
import pytest
from PIL import Image

from components.evaluate import evaluate, report
from components.evaluate.gate import Blessing, decide
from tests.fixtures.models import FEATURES, LABEL, logistic
from tests.support.html_page import Node, parse, rows

ALL_PLOTS = [
    "roc",
    "pr",
    "calibration",
    "cost",
    "confusion",
    "histogram",
    "importance",
    "dependence",
    "slices",
]


@pytest.fixture(scope="module")
def cfg() -> dict:
    return evaluate.parse_config({"explain": {"sample_rows": 300, "repeats": 1}})


@pytest.fixture(scope="module")
def evaluations(full_data, cfg) -> tuple[dict, dict]:
    """(challenger, champion v7): summaries of two logistic models on the same 1,500 rows."""
    train = full_data[full_data.year == 2015].sample(1500, random_state=0)
    test = full_data[full_data.year == 2016].sample(1500, random_state=1)
    out = []
    for features in (FEATURES, FEATURES[:2]):
        model, spec = logistic(train, features)
        out.append(evaluate.evaluate_model(model, spec, test[[*FEATURES, LABEL]], cfg))
    challenger, champion = out
    champion["model"]["version"] = "7"
    return challenger, champion


@pytest.fixture(scope="module")
def page(evaluations, cfg) -> tuple[str, Node]:
    challenger, champion = evaluations
    html = report.render(challenger, champion, decide(challenger, champion, cfg, "7"))
    return html, parse(html)


def _png(img: Node) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert img.attrs["src"].startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(img.attrs["src"][len(prefix) :])))


def _lean(ch: dict) -> dict:
    """The summary without explanations and slices (six plots: faster to render)."""
    return {k: v for k, v in ch.items() if k not in ("explain", "slices")}


# ---------------------------------------------------------------- the page


def test_page_header_verdict_and_threshold(page, evaluations):
    html, tree = page
    ch, _ = evaluations
    assert tree.find("title").text() == "Evaluation report"
    meta = " ".join(tree.find_all("p", class_="meta")[0].text().split())
    assert meta == (
        f"Challenger: logistic_regression · {len(FEATURES)} features · label employed · "
        "1,500 test rows"
    )
    banner = tree.find("div", class_="gate")
    assert banner.text() == "Gate: PASSED (absolute + vs champion)"
    assert banner.classes() == {"gate", "pass"}
    t = ch["threshold"]
    threshold = " ".join(tree.find("p", id="threshold").text().split())
    assert threshold == (
        f"Decision threshold {t['value']:.4f} ({t['how']}): expected cost "
        f"{t['expected_cost']:.4f} per row (false positive 1, false negative 1)."
    )
    assert "No champion in the registry yet" not in html and "degraded" not in html
    assert "<script" not in html and "<link" not in html and "http" not in html


def test_every_plot_is_an_embedded_png_with_its_caption(page):
    _, tree = page
    figures = tree.find_all("figure")
    assert [f.attrs["data-plot"] for f in figures] == ALL_PLOTS
    for figure in figures:
        img = figure.find("img")
        assert img.attrs["alt"] == figure.find("figcaption").text() != ""
        image = _png(img)
        assert image.format == "PNG" and image.size[0] > 200 and image.size[1] > 150
        assert len(image.convert("RGB").getcolors(1 << 16)) > 10  # something is drawn


def test_comparison_and_slices_sections_of_the_page(page, evaluations):
    _, tree = page
    ch, _ = evaluations
    header = rows(tree.find_all("table")[1])[0]
    assert header == ["metric", "challenger", "champion v7", "change"]
    slice_titles = [h.text() for h in tree.find_all("h3")]
    assert slice_titles == [f["feature"] for f in ch["slices"]] == ["SEX", "RAC1P", "AGEP"]


def test_a_blocked_verdict_lists_its_failed_checks(evaluations, cfg):
    ch, _ = evaluations
    strict = {**cfg, "thresholds": {"roc_auc": 0.999}}
    blessing = decide(_lean(ch), None, strict)
    tree = parse(report.render(_lean(ch), None, blessing))
    banner = tree.find("div", class_="gate")
    assert banner.text() == "Gate: BLOCKED (absolute only (no champion yet))"
    assert banner.classes() == {"gate", "fail"}
    failed = [li.text() for li in tree.find_all("ul")[0].find_all("li")]
    assert failed == blessing.failed_checks and failed[0].startswith("roc_auc ")
    assert "No champion in the registry yet: only absolute checks." in tree.text()
    assert [f.attrs["data-plot"] for f in tree.find_all("figure")] == ALL_PLOTS[:6]
    assert tree.find_all("h3") == []  # no slices


def test_a_champion_that_could_not_be_scored_is_not_called_missing(evaluations, cfg):
    ch = _lean(evaluations[0])
    blessing = decide(ch, None, cfg, "3", champion_error="rows it cannot score")
    html = report.render(ch, None, blessing)
    assert "No champion in the registry yet" not in html
    assert "cannot compare with champion v3: rows it cannot score" in parse(html).text()


def test_user_strings_are_escaped(evaluations):
    evil = "<i onclick='x()'>&\""
    ch = copy.deepcopy(_lean(evaluations[0]))
    ch["label"] = evil
    ch["model"]["algorithm"] = evil
    ch["model"]["degraded"] = {"label_noise": evil}
    ch["threshold"]["how"] = evil
    blessing = Blessing(blessed=False, mode=evil, failed_checks=[evil])
    html = report.render(ch, None, blessing)
    tree = parse(html)  # strict: leaked markup would unbalance it
    assert tree.find_all("i") == [] and "<i " not in html
    text = tree.text()
    assert f"Challenger: {evil}" in text and f"label {evil}" in text
    assert f"Gate: BLOCKED ({evil})" in text and f"({evil}): expected cost" in text
    warning = tree.find("p", class_="bad").text()
    assert warning == f"Deliberately degraded training data: {{'label_noise': {evil!r}}}"


# ---------------------------------------------------------------- tables


def test_comparison_table_without_a_champion(evaluations):
    ch, _ = evaluations
    got = rows(parse(report.comparison_table(ch, None)).find("table"))
    assert got[0] == ["metric", "challenger"]
    assert [r[0] for r in got[1:]] == list(report.SHOWN_METRICS)
    values = dict(got[1:])
    assert values["rows"] == "1,500" and values["roc_auc"] == f"{ch['metrics']['roc_auc']:.4f}"


def test_comparison_table_marks_what_got_worse():
    ch = {"metrics": {"roc_auc": 0.9, "log_loss": 0.30, "rows": 1000, "recall": 0.5}}
    champ = {"model": {"version": "2"}, "metrics": {"roc_auc": 0.8, "log_loss": 0.25, "rows": 900}}
    tree = parse(report.comparison_table(ch, champ))
    assert rows(tree.find("table")) == [
        ["metric", "challenger", "champion v2", "change"],
        ["roc_auc", "0.9000", "0.8000", "+0.1000"],
        ["log_loss", "0.3000", "0.2500", "+0.0500"],
        ["recall", "0.5000", "–", ""],  # the champion has no value: no change
        ["rows", "1,000", "900", ""],  # not a metric with a direction
    ]
    spans = tree.find_all("span")
    assert [(s.text(), s.classes()) for s in spans] == [("+0.1000", set()), ("+0.0500", {"bad"})]


def test_checks_table():
    assert "No checks are configured" in report.checks_table(Blessing(True, "m"))
    checks = [
        {"kind": "absolute", "metric": "roc_auc", "value": 0.91, "limit": 0.8,
         "higher_is_better": True, "detail": "minimum", "passed": True},
        {"kind": "slice", "metric": "log_loss", "value": 0.5, "limit": 0.4,
         "higher_is_better": False, "detail": "slice SEX=<i>2", "passed": False},
    ]  # fmt: skip
    tree = parse(report.checks_table(Blessing(False, "m", checks=checks)))
    assert rows(tree.find("table")) == [
        ["check", "metric", "value", "limit", "result"],
        ["absolute: minimum", "roc_auc", "0.9100", "≥ 0.8000", "pass"],
        ["slice: slice SEX=<i>2", "log_loss", "0.5000", "≤ 0.4000", "FAIL"],
    ]
    assert tree.find("b").classes() == {"bad"}


def test_slices_table_marks_unjudged_slices_and_the_gap():
    slices = [
        {
            "feature": "SEX<",
            "slices": [
                {"value": "1", "rows": 1200, "positive_rate": 0.5, "roc_auc": 0.9,
                 "accuracy": 0.8, "recall": 0.7, "precision": 0.6, "judged": True},
                {"value": "<i>2", "rows": 10, "positive_rate": 1.0, "roc_auc": None,
                 "accuracy": 1.0, "recall": 1.0, "precision": 1.0, "judged": False},
            ],
            "gaps": {"roc_auc": {"gap": 0.05, "best": "1", "worst": "<i>2"}},
        },
        {"feature": "AGEP", "slices": [], "gaps": {}},
    ]  # fmt: skip
    tree = parse(report.slices_table({"slices": slices}))
    assert [h.text() for h in tree.find_all("h3")] == ["SEX<", "AGEP"]
    first, second = tree.find_all("table")
    assert rows(first)[1:] == [
        ["1", "1,200", "0.500", "0.9000", "0.8000", "0.7000", "0.6000"],
        ["<i>2 (too few rows to judge)", "10", "1.000", "–", "1.0000", "1.0000", "1.0000"],
    ]
    assert rows(second) == [rows(first)[0]]
    gaps = [p.text() for p in tree.find_all("p")]
    assert gaps == [
        "Largest gap between judged slices: roc_auc 0.0500 (1 vs <i>2)",
        "Largest gap between judged slices: –",
    ]
    assert report.slices_table({}) == ""


# ---------------------------------------------------------------- figures


def test_plots_follow_the_summary(evaluations):
    ch, champ = evaluations
    assert [name for name, _, _ in report.plots(_lean(ch), None)] == ALL_PLOTS[:6]
    assert [name for name, _, _ in report.plots(ch, champ)] == ALL_PLOTS


def test_roc_plot_shows_both_models_and_the_threshold_point(evaluations):
    ch, champ = evaluations
    ax = report.roc_plot(ch, champ).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [
        f"challenger (AUC {ch['metrics']['roc_auc']:.4f})",
        f"champion v7 (AUC {champ['metrics']['roc_auc']:.4f})",
        "chance",
        "threshold",
    ]
    (tn, fp), (fn, tp) = ch["confusion_matrix"]["matrix"]
    point = ax.get_lines()[-1]
    assert point.get_xdata()[0] == pytest.approx(fp / (fp + tn))
    assert point.get_ydata()[0] == pytest.approx(tp / (tp + fn))
    alone = report.roc_plot(ch, None).axes[0]
    assert len(alone.get_legend().get_texts()) == 3


def test_confusion_plot_counts_and_row_shares():
    ch = {
        "confusion_matrix": {"categories": ["not y", "y"], "matrix": [[90, 10], [0, 0]]},
        "threshold": {"value": 0.25},
    }
    ax = report.confusion_plot(ch).axes[0]
    assert [t.get_text() for t in ax.texts] == ["90\n90.0%", "10\n10.0%", "0\n0.0%", "0\n0.0%"]
    assert ax.get_title() == "Confusion matrix (threshold 0.250)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["not y", "y"]


def test_cost_plot_marks_the_chosen_threshold(evaluations):
    ch, _ = evaluations
    ax = report.cost_plot(ch, None).axes[0]
    t = ch["threshold"]
    assert ax.get_title() == "Cost by threshold (FP 1, FN 1)"
    labels = [x.get_text() for x in ax.get_legend().get_texts()]
    assert labels == ["challenger", f"chosen {t['value']:.3f}: cost {t['expected_cost']:.4f}/row"]


def test_slices_plot_compares_judged_slices_with_the_champion():
    def s(value, auc, judged=True):
        return {"value": value, "roc_auc": auc, "judged": judged}

    ch = {"slices": [{"feature": "SEX", "slices": [s("1", 0.9), s("2", 0.8), s("3", 0.7, False)]}]}
    champ = {"slices": [{"feature": "SEX", "slices": [s("1", 0.85)]}]}
    ax = report.slices_plot(ch, champ).axes[0]
    heights = [round(p.get_height(), 3) for p in ax.patches]
    assert heights == [0.9, 0.8, 0.85, 0.0]  # challenger's judged slices, then the champion's
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2"]
    assert ax.get_title() == "ROC AUC by SEX" and ax.get_ylim() == pytest.approx((0.7, 1.0))
    alone = report.slices_plot(ch, None).axes[0]
    assert len(alone.patches) == 2 and alone.get_legend() is None


def test_importance_and_dependence_plots(evaluations):
    ch, _ = evaluations
    ax = report.importance_plot(ch).axes[0]
    importance = ch["explain"]["permutation_importance"]
    assert [t.get_text() for t in ax.get_yticklabels()] == [r["feature"] for r in importance][::-1]
    dependence = report.dependence_plot(ch)
    curves = ch["explain"]["partial_dependence"]
    assert [a.get_title() for a in dependence.axes] == [c["feature"] for c in curves]
    assert len(dependence.axes) == len(curves) >= 1


def test_histogram_plot_of_each_class(evaluations):
    ch, _ = evaluations
    ax = report.histogram_plot(ch).axes[0]
    hist = ch["curves"]["histogram"]
    negatives, positives = ax.patches
    assert list(negatives.get_data().values) == list(hist["negatives"])
    assert list(positives.get_data().values) == list(hist["positives"])
    assert ax.get_xlabel() == "predicted P(employed=1)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "actual not employed",
        "actual employed",
        "threshold",
    ]


def test_a_summary_without_curves_is_refused(evaluations):
    """A summary that is not an evaluation (an older format, a wrong file) fails loudly."""
    ch = {k: v for k, v in _lean(evaluations[0]).items() if k != "curves"}
    with pytest.raises(KeyError, match="curves"):
        report.render(ch, None, Blessing(True, "m"))


def test_numpy_metric_values_are_formatted():
    """Metrics may arrive as numpy scalars (computed, not read back from JSON)."""
    ch = {"metrics": {"roc_auc": np.float64(0.91234), "rows": np.int64(1500)}}
    got = rows(parse(report.comparison_table(ch, None)).find("table"))
    assert got[1:] == [["roc_auc", "0.9123"], ["rows", "1,500"]]
