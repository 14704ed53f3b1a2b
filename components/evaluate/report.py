"""The evaluation report: one self-contained HTML page (no scripts, stylesheets or network).

Plots are matplotlib figures drawn with the Agg canvas (no pyplot, no global backend switch) and
embedded as base64 PNG.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from components.evaluate.evaluate import Evaluation

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; } td, th { padding: 4px 12px; border-bottom: 1px solid #ddd; }
th { text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.gate { padding: 10px 14px; border-radius: 4px; font-weight: bold; }
.pass { background: #e3f5e1; color: #1b5e20; } .fail { background: #fde7e7; color: #b71c1c; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; } .plots img { max-width: 100%; }
.meta { color: #555; }
"""


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def roc_figure(ev: Evaluation):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(ev.roc["fpr"], ev.roc["tpr"], lw=2, label=f"model (AUC {ev.metrics['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    (tn, fp), (fn, tp) = ev.confusion_matrix["matrix"]
    ax.plot(
        fp / max(fp + tn, 1),
        tp / max(tp + fn, 1),
        "o",
        color="black",
        label=f"threshold {ev.decision_threshold:g}",
    )
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate (recall)",
        title="ROC curve",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right", fontsize=8)
    return fig


def confusion_figure(ev: Evaluation):
    from matplotlib.figure import Figure

    matrix = np.asarray(ev.confusion_matrix["matrix"])
    categories = ev.confusion_matrix["categories"]
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(4.6, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(
                j,
                i,
                f"{matrix[i, j]:,}\n{share[i, j]:.1%}",
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.6 else "black",
            )
    ax.set_xticks(range(len(categories)), categories)
    ax.set_yticks(range(len(categories)), categories)
    ax.set(
        xlabel="predicted",
        ylabel="actual",
        title=f"Confusion matrix (threshold {ev.decision_threshold:g})",
    )
    return fig


def histogram_figure(ev: Evaluation, y: np.ndarray, p: np.ndarray):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 41)
    for cls, name, color in (
        (0, ev.confusion_matrix["categories"][0], "tab:blue"),
        (1, ev.confusion_matrix["categories"][1], "tab:orange"),
    ):
        ax.hist(p[y == cls], bins=bins, alpha=0.55, color=color, label=f"actual {name}")
    ax.axvline(ev.decision_threshold, color="black", ls="--", lw=1, label="decision threshold")
    ax.set(xlabel=f"predicted P({ev.label}=1)", ylabel="rows", title="Scores by class", xlim=(0, 1))
    ax.legend(fontsize=8)
    return fig


def render(ev: Evaluation, y: np.ndarray, p: np.ndarray) -> str:
    """The report as one HTML string."""
    esc = html.escape
    minimums = {c.metric: c for c in ev.checks}
    rows = []
    for name, value in ev.metrics.items():
        check = minimums.get(name)
        shown = f"{value:,}" if name == "rows" else f"{value:.4f}"
        gate_cell = (
            f"&ge; {check.minimum:g}</td><td>{'pass' if check.passed else '<b>FAIL</b>'}"
            if check
            else "</td><td>"
        )
        rows.append(
            f"<tr><td>{esc(name)}</td><td class='num'>{shown}</td><td>{gate_cell}</td></tr>"
        )

    if ev.passed:
        verdict = "<div class='gate pass'>Gate: PASSED</div>"
    else:
        items = "".join(f"<li>{esc(c)}</li>" for c in ev.failed_checks)
        verdict = f"<div class='gate fail'>Gate: FAILED</div><p>Failed checks:</p><ul>{items}</ul>"
    if not ev.checks:
        verdict += "<p class='meta'>No thresholds are configured: the gate passes by default.</p>"

    plots = [
        ("ROC curve", roc_figure(ev)),
        ("Confusion matrix", confusion_figure(ev)),
        ("Score histogram by class", histogram_figure(ev, y, p)),
    ]
    images = "".join(
        f"<img alt='{esc(alt)}' src='data:image/png;base64,{_png(fig)}'>" for alt, fig in plots
    )
    info = ev.model_info
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation report</title>
<style>{CSS}</style></head><body>
<h1>Evaluation report</h1>
<p class="meta">Model: {esc(str(info.get("algorithm")))} &middot; {info.get("features")} features
&middot; label <code>{esc(ev.label)}</code> &middot; {ev.rows:,} test rows
&middot; decision threshold {ev.decision_threshold:g}</p>
<h2>Quality gate</h2>
{verdict}
<h2>Metrics</h2>
<table><tr><th>metric</th><th>value</th><th>minimum</th><th>result</th></tr>
{"".join(rows)}
</table>
<p class="meta">accuracy, precision, recall, f1 and predicted_positive_rate count a row as
positive when its score is &ge; the decision threshold; positive_rate is the share of actual
positives.</p>
<h2>Plots</h2>
<div class="plots">{images}</div>
</body></html>
"""
