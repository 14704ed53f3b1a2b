"""The drift report: one self-contained HTML page (no scripts, stylesheets or network).

Sections: the decision and its reasons, decay (when the batch had labels), anomalies, a drift
table (every feature: metric, value, threshold) and one plot per feature comparing the champion's
training distribution with the batch's (histogram densities for numeric features, code shares
for categorical ones). Plots are matplotlib figures on the Agg canvas, embedded as base64 PNG,
each in a `<figure data-plot="drift-FEATURE">` — the evaluation report's conventions.
"""

from __future__ import annotations

import html
from typing import Any

from components.common.figures import REPORT_CSS, png_data_uri
from components.monitor.drift import frequencies, histogram_distributions

# the verdict banner; the rest of the page style is REPORT_CSS
CSS = """
.decision { padding: 10px 14px; border-radius: 4px; font-weight: bold; }
.none { background: #e3f5e1; color: #1b5e20; } .alert { background: #fff4e0; color: #8a5300; }
.retrain { background: #fde7e7; color: #b71c1c; }
"""
TRAIN_COLOR, BATCH_COLOR = "tab:gray", "tab:blue"


def feature_plot(name: str, ref: dict[str, Any], new: dict[str, Any], m: dict[str, Any]) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.6, 2.8), layout="constrained")
    ax = fig.add_subplot()
    if ref.get("kind") == "categorical":
        a, b = frequencies(ref), frequencies(new)
        labels = sorted(set(a) | set(b), key=lambda s: (len(s), s))
        x = range(len(labels))
        ax.bar([i - 0.2 for i in x], [a.get(k, 0) for k in labels], 0.4, color=TRAIN_COLOR)
        ax.bar([i + 0.2 for i in x], [b.get(k, 0) for k in labels], 0.4, color=BATCH_COLOR)
        ax.set_xticks(list(x), labels, fontsize=7)
        ax.set_ylabel("share")
    else:
        edges, p, q = histogram_distributions(ref.get("histogram", []), new.get("histogram", []))
        ax.stairs(p, edges, color=TRAIN_COLOR, label="training")
        ax.stairs(q, edges, color=BATCH_COLOR, label="batch")
        ax.set_ylabel("share")
    ax.legend(["training", "batch"], fontsize=7)
    value = m.get("value")
    shown = "missing" if value is None else f"{m['metric']} {value:.4f} (thr {m['threshold']:g})"
    ax.set_title(f"{name}: {shown}", fontsize=9, color="#b71c1c" if m.get("drifted") else "#222")
    return fig


def render(result: dict[str, Any], reference: dict[str, Any], batch: dict[str, Any]) -> str:
    esc = html.escape
    decision = result["decision"]
    reasons = "".join(f"<li>{esc(r)}</li>" for r in decision["reasons"]) or "<li>none</li>"
    rows = []
    for name, m in result["drift"].items():
        value = "missing" if m.get("value") is None else f"{m['value']:.5f}"
        cls = " class='bad'" if m.get("drifted") else ""
        rows.append(
            f"<tr{cls}><td>{esc(name)}</td><td>{esc(m['metric'])}</td>"
            f"<td class='num'>{value}</td><td class='num'>{m['threshold']:g}</td>"
            f"<td>{'drifted' if m.get('drifted') else ''}</td></tr>"
        )
    decay = result.get("decay")
    if decay:
        auc = "n/a" if decay["roc_auc"] is None else f"{decay['roc_auc']:.4f}"
        decay_html = (
            f"<table id='decay'><tr><th></th><th>batch</th><th>champion's evaluation</th></tr>"
            f"<tr><td>ROC AUC</td><td class='num'>{auc}</td>"
            f"<td class='num'>{decay['reference_roc_auc']}</td></tr>"
            f"<tr><td>expected cost / row</td><td class='num'>{decay['expected_cost']:.4f}</td>"
            f"<td class='num'>{decay['reference_expected_cost']}</td></tr></table>"
        )
    else:
        decay_html = "<p class='meta'>No labels in this batch: decay not measured.</p>"
    anomalies = "".join(
        f"<li>{esc(str(a.get('feature')))}: {esc(a.get('description', ''))}</li>"
        for a in result.get("anomalies", [])
    )
    ref_f, new_f = reference.get("features", {}), batch.get("features", {})
    figures = "".join(
        f"<figure data-plot='drift-{esc(name)}'><img alt='{esc(name)}' "
        f"src='{png_data_uri(feature_plot(name, ref_f[name], new_f[name], m), dpi=80)}'>"
        f"<figcaption>{esc(name)}: training (gray) vs batch (blue)</figcaption></figure>"
        for name, m in result["drift"].items()
        if name in ref_f and name in new_f
    )
    ctx = result["context"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Drift report</title>
<style>{REPORT_CSS}{CSS}</style></head><body>
<h1>Drift report</h1>
<p class="meta">Batch {esc(str(ctx.get("batch")))} ({result["rows"]:,} rows, digest
{esc(result["batch_digest"][:12])}) against {esc(str(ctx.get("registered_model")))} version
{esc(str(result["champion_version"]))} (champion) training statistics</p>
<h2>Decision</h2>
<div class="decision {decision["decision"]}" id="decision">{decision["decision"].upper()}</div>
<ul>{reasons}</ul>
<h2>Performance on the batch</h2>
{decay_html}
<h2>Anomalies</h2>
<ul>{anomalies or "<li>none</li>"}</ul>
<h2>Drift per feature</h2>
<table id="drift"><tr><th>feature</th><th>metric</th><th>value</th><th>threshold</th><th></th></tr>
{"".join(rows)}</table>
<h2>Distributions</h2>
<div class="plots">{figures}</div>
</body></html>
"""
