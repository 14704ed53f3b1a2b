"""Unit tests of components/monitor/report.py: the drift report page (decision, decay, anomalies,
the drift table, one embedded plot per feature) and each feature's matplotlib figure."""

from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image

from components.monitor import decision, drift, report, shift
from tests.components.monitor.conftest import summary
from tests.support.html_page import Node, parse, rows

POLICY = {"on_drift": "retrain", "min_drifted_features": 1, "on_decay": "retrain", "min_rows": 200}
AGE = {"kind": "numeric", "histogram": [[0.0, 50.0, 30.0], [50.0, 100.0, 10.0]]}
OLDER = {"kind": "numeric", "histogram": [[0.0, 50.0, 10.0], [50.0, 100.0, 30.0]]}
SEX = {"kind": "categorical", "top_values": [["1", 30], ["2", 10]]}
SEX_NEW = {"kind": "categorical", "top_values": [["1", 10], ["2", 10], ["10", 20]]}


def _result(**changes) -> dict:
    """A monitor result as monitor.run assembles it (drift measured by the stage's own code)."""
    measured = {
        "AGEP": {"metric": "jensen_shannon", "value": 0.123456, "threshold": 0.1, "drifted": True},
        "SEX": {"metric": "linf", "value": 0.25, "threshold": 0.3, "drifted": False},
    }
    result = {
        "decision": {"decision": "none", "reasons": []},
        "drift": measured,
        "decay": None,
        "anomalies": [],
        "rows": 12_345,
        "batch_digest": "0123456789abcdef" * 4,
        "champion_version": "4",
        "context": {"batch": "batch.parquet", "registered_model": "acs-employment"},
    }
    return {**result, **changes}


REF = {"features": {"AGEP": AGE, "SEX": SEX}}
NEW = {"features": {"AGEP": OLDER, "SEX": SEX_NEW}}


def _png(img: Node) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert img.attrs["src"].startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(img.attrs["src"][len(prefix) :])))


# ---------------------------------------------------------------- moved from test_monitor.py


def test_report_has_a_plot_per_feature_and_the_decision(sample_data, schema):
    ref = summary(sample_data[sample_data.year == 2015], schema)
    new = summary(shift.shift_batch(sample_data[sample_data.year == 2016]), schema)
    measurements = drift.measure(ref, new, schema)
    result = {
        "decision": decision.decide(measurements, None, [], 2000, POLICY),
        "drift": measurements,
        "decay": None,
        "anomalies": [],
        "rows": 2000,
        "batch_digest": "ab" * 32,
        "champion_version": "4",
        "context": {"batch": "b.parquet", "registered_model": "acs-employment"},
    }
    page = report.render(result, ref, new)
    plots = re.findall(r"<figure data-plot='drift-(\w+)'>", page)
    assert sorted(plots) == sorted(schema.feature_names)
    assert "RETRAIN" in page and "No labels" in page and "<script" not in page


# ---------------------------------------------------------------- the page


def test_header_decision_and_drift_table():
    result = _result(
        decision={"decision": "retrain", "reasons": ["AGEP drifted", "roc_auc 0.8 < 0.9"]}
    )
    page = parse(report.render(result, REF, NEW))
    assert page.find("title").text() == "Drift report"
    meta = " ".join(page.find_all("p", class_="meta")[0].text().split())
    assert meta == (
        "Batch batch.parquet (12,345 rows, digest 0123456789ab) against acs-employment "
        "version 4 (champion) training statistics"
    )
    banner = page.find("div", id="decision")
    assert banner.text() == "RETRAIN" and banner.classes() == {"decision", "retrain"}
    reasons = [li.text() for li in page.find_all("ul")[0].find_all("li")]
    assert reasons == ["AGEP drifted", "roc_auc 0.8 < 0.9"]
    table = page.find("table", id="drift")
    assert rows(table) == [
        ["feature", "metric", "value", "threshold", ""],
        ["AGEP", "jensen_shannon", "0.12346", "0.1", "drifted"],
        ["SEX", "linf", "0.25000", "0.3", ""],
    ]
    assert [tr.attrs.get("class") for tr in table.find_all("tr")] == [None, "bad", None]


def test_no_reason_no_anomaly_no_labels():
    page = parse(report.render(_result(), REF, NEW))
    lists = [[li.text() for li in ul.find_all("li")] for ul in page.find_all("ul")]
    assert lists == [["none"], ["none"]]  # reasons, anomalies
    assert page.find("div", id="decision").text() == "NONE"
    assert page.find_all("table", id="decay") == []
    assert "No labels in this batch: decay not measured." in page.text()


def test_decay_table_against_the_champions_evaluation():
    decay = {
        "roc_auc": 0.812345,
        "reference_roc_auc": 0.9,
        "expected_cost": 0.2,
        "reference_expected_cost": 0.18,
    }
    page = parse(report.render(_result(decay=decay), REF, NEW))
    assert rows(page.find("table", id="decay")) == [
        ["", "batch", "champion's evaluation"],
        ["ROC AUC", "0.8123", "0.9"],
        ["expected cost / row", "0.2000", "0.18"],
    ]
    one_class = parse(report.render(_result(decay={**decay, "roc_auc": None}), REF, NEW))
    assert rows(one_class.find("table", id="decay"))[1] == ["ROC AUC", "n/a", "0.9"]


def test_anomalies_listed_with_their_feature():
    anomalies = [
        {"feature": "SEX", "description": "unexpected value 3"},
        {"feature": None, "description": "few rows"},
        {"feature": "AGEP"},
    ]
    page = parse(report.render(_result(anomalies=anomalies), REF, NEW))
    listed = [li.text() for li in page.find_all("ul")[1].find_all("li")]
    assert listed == ["SEX: unexpected value 3", "None: few rows", "AGEP: "]


def test_a_feature_missing_from_a_summary_has_a_row_but_no_plot():
    measured = {
        **_result()["drift"],
        "DIS": {"metric": "linf", "value": None, "threshold": 0.1, "drifted": False},
    }
    page = parse(report.render(_result(drift=measured), REF, {"features": {"AGEP": OLDER}}))
    assert [r[:3] for r in rows(page.find("table", id="drift"))[1:]] == [
        ["AGEP", "jensen_shannon", "0.12346"],
        ["SEX", "linf", "0.25000"],
        ["DIS", "linf", "missing"],
    ]
    figures = page.find_all("figure")
    assert [f.attrs["data-plot"] for f in figures] == ["drift-AGEP"]


def test_every_plot_is_an_embedded_png_with_its_caption():
    page = parse(report.render(_result(), REF, NEW))
    figures = page.find_all("figure")
    assert [f.attrs["data-plot"] for f in figures] == ["drift-AGEP", "drift-SEX"]
    for figure, name in zip(figures, ("AGEP", "SEX"), strict=True):
        img = figure.find("img")
        assert img.attrs["alt"] == name
        image = _png(img)
        assert image.format == "PNG" and image.size == (288, 224)  # 3.6 x 2.8 in at 80 dpi
        assert len(image.convert("RGB").getcolors(1 << 16)) > 10  # something is drawn
        assert figure.find("figcaption").text() == f"{name}: training (gray) vs batch (blue)"
    assert "<script" not in page.text() and "http" not in report.render(_result(), REF, NEW)


def test_user_strings_are_escaped():
    evil = "<b onclick='x()'>&\""
    result = _result(
        decision={"decision": "alert", "reasons": [evil]},
        drift={evil: {"metric": evil, "value": 0.5, "threshold": 0.1, "drifted": True}},
        anomalies=[{"feature": evil, "description": evil}],
        batch_digest=evil * 3,
        champion_version=evil,
        context={"batch": evil, "registered_model": evil},
    )
    html = report.render(result, {"features": {evil: SEX}}, {"features": {evil: SEX_NEW}})
    page = parse(html)  # strict: leaked markup would unbalance it
    assert page.find_all("b") == [] and "<b " not in html
    assert page.find("figure").attrs["data-plot"] == f"drift-{evil}"
    assert page.find("img").attrs["alt"] == evil
    text = page.text()
    assert f"Batch {evil}" in text and f"{evil} version" in text
    assert f"<li>{evil}</li>" not in html and text.count(evil) >= 7


# ---------------------------------------------------------------- one feature's figure


def test_a_categorical_plot_compares_value_shares():
    m = {"metric": "linf", "value": 0.5, "threshold": 0.1, "drifted": True}
    fig = report.feature_plot("SEX", SEX, SEX_NEW, m)
    (ax,) = fig.axes
    assert ax.get_title() == "SEX: linf 0.5000 (thr 0.1)"
    assert ax.title.get_color() == "#b71c1c"  # drifted: red
    # labels by length then text: "10" after "2"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "10"]
    heights = [round(p.get_height(), 3) for p in ax.patches]
    assert heights == [0.75, 0.25, 0.0, 0.25, 0.25, 0.5]  # training bars, then the batch's
    assert ax.get_ylabel() == "share"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training", "batch"]


def test_a_numeric_plot_compares_histogram_shares():
    m = {"metric": "jensen_shannon", "value": 0.05, "threshold": 0.1, "drifted": False}
    fig = report.feature_plot("AGEP", AGE, OLDER, m)
    (ax,) = fig.axes
    assert ax.get_title() == "AGEP: jensen_shannon 0.0500 (thr 0.1)"
    assert ax.title.get_color() == "#222"
    training, batch = ax.patches  # two step lines
    assert list(training.get_data().values) == [0.75, 0.25]
    assert list(batch.get_data().values) == [0.25, 0.75]
    assert list(training.get_data().edges) == [0.0, 50.0, 100.0]


@pytest.mark.parametrize("kind", ["categorical", "numeric"])
def test_a_feature_without_a_value_or_data_still_plots(kind):
    m = {"metric": "linf", "value": None, "threshold": 0.1, "drifted": False}
    empty = {"kind": kind}
    fig = report.feature_plot("X", empty, empty, m)
    assert fig.axes[0].get_title() == "X: missing"
    assert (
        report.render(
            _result(drift={"X": m}), {"features": {"X": empty}}, {"features": {"X": empty}}
        ).count("data:image/png;base64,")
        == 1
    )
