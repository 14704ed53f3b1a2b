"""The evaluation report: one self-contained HTML page (no scripts, stylesheets or network).

Sections: the gate's verdict, champion vs challenger, the business threshold and its cost,
metrics, plots (ROC, precision-recall, calibration, cost by threshold, confusion matrix, scores by
class, permutation importance, partial dependence, slices). Plots are matplotlib figures drawn on
the Agg canvas (no pyplot, no global backend switch), embedded as base64 PNG; each sits in a
`<figure data-plot="NAME">` so tests and readers can find it.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np

from components.common.config import METRIC_DIRECTIONS
from components.common.figures import REPORT_CSS, png_data_uri

if TYPE_CHECKING:  # pragma: no cover
    from components.evaluate.gate import Blessing

# the verdict banner; the rest of the page style is REPORT_CSS
CSS = """
.gate { padding: 10px 14px; border-radius: 4px; font-weight: bold; }
.pass { background: #e3f5e1; color: #1b5e20; } .fail { background: #fde7e7; color: #b71c1c; }
"""
CHALLENGER_COLOR, CHAMPION_COLOR = "tab:blue", "tab:gray"
SHOWN_METRICS = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "expected_cost",
    "decision_threshold",
    "predicted_positive_rate",
    "positive_rate",
    "rows",
)


def _figure(width: float = 4.6, height: float = 4.0) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _models(ch: dict[str, Any], champ: dict[str, Any] | None) -> list[tuple[str, dict, str]]:
    out = [("challenger", ch, CHALLENGER_COLOR)]
    if champ is not None:
        out.append((f"champion v{champ['model'].get('version')}", champ, CHAMPION_COLOR))
    return out


# ---------------------------------------------------------------- plots


def roc_plot(ch: dict[str, Any], champ: dict[str, Any] | None) -> Any:
    fig, ax = _figure()
    for name, ev, color in _models(ch, champ):
        roc = ev["curves"]["roc"]
        auc = ev["metrics"]["roc_auc"]
        ax.plot(roc["fpr"], roc["tpr"], lw=2, color=color, label=f"{name} (AUC {auc:.4f})")
    ax.plot([0, 1], [0, 1], ls="--", color="lightgrey", lw=1, label="chance")
    (tn, fp), (fn, tp) = ch["confusion_matrix"]["matrix"]
    ax.plot(fp / max(fp + tn, 1), tp / max(tp + fn, 1), "o", color="black", label="threshold")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def pr_plot(ch: dict[str, Any], champ: dict[str, Any] | None) -> Any:
    fig, ax = _figure()
    for name, ev, color in _models(ch, champ):
        pr = ev["curves"]["pr"]
        ap = ev["metrics"]["pr_auc"]
        ax.plot(pr["recall"], pr["precision"], lw=2, color=color, label=f"{name} (AP {ap:.4f})")
    ax.axhline(ch["metrics"]["positive_rate"], ls="--", color="lightgrey", lw=1, label="chance")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
    ax.legend(loc="lower left", fontsize=8)
    return fig


def calibration_plot(ch: dict[str, Any], champ: dict[str, Any] | None) -> Any:
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], ls="--", color="lightgrey", lw=1, label="perfectly calibrated")
    for name, ev, color in _models(ch, champ):
        cal = ev["curves"]["calibration"]
        brier = ev["metrics"]["brier"]
        ax.plot(
            cal["mean_predicted"],
            cal["observed"],
            "o-",
            color=color,
            label=f"{name} (Brier {brier:.4f})",
        )
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed positive rate",
        title="Calibration",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left", fontsize=8)
    return fig


def cost_plot(ch: dict[str, Any], champ: dict[str, Any] | None) -> Any:
    fig, ax = _figure()
    for name, ev, color in _models(ch, champ):
        cost = ev["curves"]["cost"]
        ax.plot(cost["threshold"], cost["expected_cost"], lw=2, color=color, label=name)
    t = ch["threshold"]
    ax.axvline(t["value"], color="black", ls="--", lw=1)
    ax.plot(
        t["value"],
        t["expected_cost"],
        "o",
        color="black",
        label=f"chosen {t['value']:.3f}: cost {t['expected_cost']:.4f}/row",
    )
    c = t["cost"]
    ax.set(
        xlabel="decision threshold",
        ylabel="expected cost per row",
        title=f"Cost by threshold (FP {c['false_positive']:g}, FN {c['false_negative']:g})",
        xlim=(0, 1),
    )
    ax.legend(fontsize=8)
    return fig


def confusion_plot(ch: dict[str, Any]) -> Any:
    matrix = np.asarray(ch["confusion_matrix"]["matrix"])
    categories = ch["confusion_matrix"]["categories"]
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = _figure()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            color = "white" if share[i, j] > 0.6 else "black"
            text = f"{matrix[i, j]:,}\n{share[i, j]:.1%}"
            ax.text(j, i, text, ha="center", va="center", color=color)
    ax.set_xticks(range(len(categories)), categories)
    ax.set_yticks(range(len(categories)), categories)
    title = f"Confusion matrix (threshold {ch['threshold']['value']:.3f})"
    ax.set(xlabel="predicted", ylabel="actual", title=title)
    return fig


def histogram_plot(ch: dict[str, Any]) -> Any:
    hist = ch["curves"]["histogram"]
    edges = np.asarray(hist["edges"])
    categories = ch["confusion_matrix"]["categories"]
    fig, ax = _figure(5.2)
    for counts, name, color in (
        (hist["negatives"], categories[0], "tab:blue"),
        (hist["positives"], categories[1], "tab:orange"),
    ):
        ax.stairs(counts, edges, fill=True, alpha=0.55, color=color, label=f"actual {name}")
    ax.axvline(ch["threshold"]["value"], color="black", ls="--", lw=1, label="threshold")
    ax.set(xlabel=f"predicted P({ch['label']}=1)", ylabel="rows", title="Scores by class")
    ax.legend(fontsize=8)
    return fig


def importance_plot(ch: dict[str, Any]) -> Any:
    rows = ch["explain"]["permutation_importance"][::-1]
    fig, ax = _figure(5.2, max(3.0, 0.28 * len(rows) + 1))
    ax.barh(
        [r["feature"] for r in rows],
        [r["mean"] for r in rows],
        xerr=[r["std"] for r in rows],
        color=CHALLENGER_COLOR,
    )
    ax.set(xlabel="ROC AUC drop when shuffled", title="Permutation importance")
    return fig


def dependence_plot(ch: dict[str, Any]) -> Any:
    from matplotlib.figure import Figure

    curves = ch["explain"]["partial_dependence"]
    cols = min(2, len(curves))
    nrows = (len(curves) + cols - 1) // cols
    fig = Figure(figsize=(3.4 * cols, 2.8 * nrows), layout="constrained")
    for i, pd_ in enumerate(curves):
        ax = fig.add_subplot(nrows, cols, i + 1)
        if pd_["kind"] == "categorical":
            ax.bar([f"{g:g}" for g in pd_["grid"]], pd_["average"], color=CHALLENGER_COLOR)
            ax.tick_params(axis="x", labelsize=7, rotation=90)
        else:
            ax.plot(pd_["grid"], pd_["average"], lw=2, color=CHALLENGER_COLOR)
        ax.set(title=pd_["feature"], ylabel="mean score")
    fig.suptitle("Partial dependence of the top features")
    return fig


def slices_plot(ch: dict[str, Any], champ: dict[str, Any] | None) -> Any:
    from matplotlib.figure import Figure

    features = ch["slices"]
    fig = Figure(figsize=(3.8 * len(features), 3.4), layout="constrained")
    champ_slices = {f["feature"]: f for f in (champ or {}).get("slices", [])}
    for i, feature in enumerate(features):
        ax = fig.add_subplot(1, len(features), i + 1)
        shown = [s for s in feature["slices"] if s["judged"] and s["roc_auc"] is not None]
        x = np.arange(len(shown))
        ax.bar(x - 0.2, [s["roc_auc"] for s in shown], 0.4, color=CHALLENGER_COLOR, label="ch.")
        other = {s["value"]: s for s in champ_slices.get(feature["feature"], {}).get("slices", [])}
        if other:
            values = [(other.get(s["value"]) or {}).get("roc_auc") or 0 for s in shown]
            ax.bar(x + 0.2, values, 0.4, color=CHAMPION_COLOR, label="champ.")
        ax.set_xticks(x, [s["value"] for s in shown], fontsize=7, rotation=45)
        low = min([s["roc_auc"] for s in shown], default=0.5)
        ax.set(title=f"ROC AUC by {feature['feature']}", ylim=(max(0.0, low - 0.1), 1.0))
        if other and i == 0:
            ax.legend(fontsize=7)
    return fig


def plots(ch: dict[str, Any], champ: dict[str, Any] | None) -> list[tuple[str, str, Any]]:
    """(name, caption, figure) for every plot the report shows."""
    out = [
        ("roc", "ROC curve; the dot is the decision threshold", roc_plot(ch, champ)),
        ("pr", "Precision-recall curve", pr_plot(ch, champ)),
        ("calibration", "Calibration: predicted vs observed", calibration_plot(ch, champ)),
        ("cost", "Expected cost per row by threshold", cost_plot(ch, champ)),
        ("confusion", "Confusion matrix at the decision threshold", confusion_plot(ch)),
        ("histogram", "Score distribution by actual class", histogram_plot(ch)),
    ]
    if ch.get("explain"):
        out.append(("importance", "Permutation importance", importance_plot(ch)))
        out.append(("dependence", "Partial dependence", dependence_plot(ch)))
    if ch.get("slices"):
        out.append(("slices", "ROC AUC per slice (judged slices)", slices_plot(ch, champ)))
    return out


# ---------------------------------------------------------------- tables


def _value(name: str, value: Any) -> str:
    if value is None:
        return "–"
    return f"{int(value):,}" if name == "rows" else f"{float(value):.4f}"


def comparison_table(ch: dict[str, Any], champ: dict[str, Any] | None) -> str:
    esc = html.escape
    head = "<tr><th>metric</th><th>challenger</th>"
    if champ is not None:
        head += f"<th>champion v{esc(str(champ['model'].get('version')))}</th><th>change</th>"
    rows = [head + "</tr>"]
    for name in SHOWN_METRICS:
        if name not in ch["metrics"]:
            continue
        value = ch["metrics"][name]
        cells = f"<td>{esc(name)}</td><td class='num'>{_value(name, value)}</td>"
        if champ is not None:
            other = champ["metrics"].get(name)
            cells += f"<td class='num'>{_value(name, other)}</td>"
            change = ""
            if other is not None and name in METRIC_DIRECTIONS:
                delta = value - other
                worse = delta * METRIC_DIRECTIONS[name] < 0
                change = f"<span class='{'bad' if worse else ''}'>{delta:+.4f}</span>"
            cells += f"<td class='num'>{change}</td>"
        rows.append(f"<tr>{cells}</tr>")
    return "<table>" + "".join(rows) + "</table>"


def checks_table(blessing: Blessing) -> str:
    if not blessing.checks:
        return "<p class='meta'>No checks are configured: the gate passes by default.</p>"
    esc = html.escape
    rows = ["<tr><th>check</th><th>metric</th><th>value</th><th>limit</th><th>result</th></tr>"]
    for c in blessing.checks:
        op = "&ge;" if c["higher_is_better"] else "&le;"
        result = "pass" if c["passed"] else "<b class='bad'>FAIL</b>"
        rows.append(
            f"<tr><td>{esc(c['kind'])}: {esc(c['detail'])}</td><td>{esc(c['metric'])}</td>"
            f"<td class='num'>{c['value']:.4f}</td><td class='num'>{op} {c['limit']:.4f}</td>"
            f"<td>{result}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def slices_table(ch: dict[str, Any]) -> str:
    esc = html.escape
    parts = []
    for feature in ch.get("slices", []):
        rows = [
            "<tr><th>value</th><th>rows</th><th>positive rate</th><th>ROC AUC</th>"
            "<th>accuracy</th><th>recall</th><th>precision</th></tr>"
        ]
        for s in feature["slices"]:
            mark = "" if s["judged"] else " <span class='meta'>(too few rows to judge)</span>"
            rows.append(
                f"<tr><td>{esc(s['value'])}{mark}</td><td class='num'>{s['rows']:,}</td>"
                f"<td class='num'>{s['positive_rate']:.3f}</td>"
                f"<td class='num'>{_value('roc_auc', s['roc_auc'])}</td>"
                f"<td class='num'>{s['accuracy']:.4f}</td><td class='num'>{s['recall']:.4f}</td>"
                f"<td class='num'>{s['precision']:.4f}</td></tr>"
            )
        gaps = ", ".join(
            f"{m} {g['gap']:.4f} ({esc(g['best'])} vs {esc(g['worst'])})"
            for m, g in feature["gaps"].items()
        )
        parts.append(
            f"<h3>{esc(feature['feature'])}</h3><table>{''.join(rows)}</table>"
            f"<p class='meta'>Largest gap between judged slices: {gaps or '–'}</p>"
        )
    return "".join(parts)


# ---------------------------------------------------------------- the page


def render(ch: dict[str, Any], champ: dict[str, Any] | None, blessing: Blessing) -> str:
    """The report as one HTML string."""
    esc = html.escape
    if blessing.blessed:
        verdict = f"<div class='gate pass'>Gate: PASSED ({esc(blessing.mode)})</div>"
    else:
        items = "".join(f"<li>{esc(c)}</li>" for c in blessing.failed_checks)
        verdict = (
            f"<div class='gate fail'>Gate: BLOCKED ({esc(blessing.mode)})</div>"
            f"<p>Failed checks:</p><ul>{items}</ul>"
        )
    if champ is None and not blessing.champion_error:
        verdict += "<p class='meta'>No champion in the registry yet: only absolute checks.</p>"
    t = ch["threshold"]
    model = ch["model"]
    degraded = model.get("degraded") or {}
    warning = (
        f"<p class='bad'>Deliberately degraded training data: {esc(str(degraded))}</p>"
        if degraded
        else ""
    )
    figures = "".join(
        f"<figure data-plot='{name}'><img alt='{esc(caption)}' "
        f"src='{png_data_uri(fig, dpi=90)}'><figcaption>{esc(caption)}</figcaption></figure>"
        for name, caption, fig in plots(ch, champ)
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation report</title>
<style>{REPORT_CSS}{CSS}</style></head><body>
<h1>Evaluation report</h1>
<p class="meta">Challenger: {esc(str(model.get("algorithm")))} &middot; {model.get("features")}
features &middot; label <code>{esc(ch["label"])}</code> &middot;
{ch["metrics"]["rows"]:,} test rows</p>
{warning}
<h2>Quality gate</h2>
{verdict}
{checks_table(blessing)}
<h2>Business threshold</h2>
<p id="threshold">Decision threshold <b>{t["value"]:.4f}</b> ({esc(t["how"])}): expected cost
<b>{t["expected_cost"]:.4f}</b> per row (false positive {t["cost"]["false_positive"]:g},
false negative {t["cost"]["false_negative"]:g}).</p>
<h2>Champion vs challenger</h2>
{comparison_table(ch, champ)}
<p class="meta">Both models scored on the same test rows, each at its own business threshold.
accuracy, precision, recall, f1 and expected_cost count a row as positive when its score is
&ge; the threshold.</p>
<h2>Plots</h2>
<div class="plots">{figures}</div>
<h2>Slices</h2>
{slices_table(ch)}
</body></html>
"""
