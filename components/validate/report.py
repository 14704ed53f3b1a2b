"""The validate stage's HTML report: one self-contained page (inline CSS and SVG, no script, no
external resource), built from the JSON the TFDV job writes. TFDV's own `get_statistics_html`
loads Facets from cdnjs and raw.githubusercontent.com, so it renders nothing offline.
"""

from __future__ import annotations

from html import escape
from typing import Any

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.n{text-align:right;
font-variant-numeric:tabular-nums}.failed{color:#b00020}.passed{color:#1b7f3b}
.blocking{background:#fdecee}.drift{background:#fff6e0}.muted{color:#777}
.key span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
"""
TRAIN_COLOR, TEST_COLOR = "#4e79a7", "#f28e2b"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def _table(headers: list[str], rows: list[list[Any]], row_class: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class else ""
        cells = "".join(
            f'<td class="n">{_fmt(c)}</td>' if isinstance(c, (int, float)) else f"<td>{c}</td>"
            for c in row
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _svg(parts: list[str], width: int, height: int) -> str:
    return (
        f'<svg width="{width}" height="{height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


def _category_bars(a: dict[str, Any] | None, b: dict[str, Any] | None, width=260, height=60):
    """Side-by-side bars of two windows' value shares over the same labels (inline SVG)."""
    shares = [_shares(e) for e in (a, b)]
    labels = sorted({k for s in shares for k in s}, key=_sort_key)[:40]
    if not labels:
        return ""
    top = max(v for s in shares for v in s.values()) or 1.0
    slot = width / len(labels)
    parts = []
    for i, label in enumerate(labels):
        for j, (values, color) in enumerate(zip(shares, (TRAIN_COLOR, TEST_COLOR), strict=True)):
            h = height * values.get(label, 0.0) / top
            parts.append(
                f'<rect x="{i * slot + j * slot / 2:.1f}" y="{height - h:.1f}" '
                f'width="{max(slot / 2 - 1, 1):.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{escape(label)}: {values.get(label, 0.0):.1%}</title></rect>"
            )
    return _svg(parts, width, height)


def _shares(entry: dict[str, Any] | None) -> dict[str, float]:
    values = (entry or {}).get("top_values") or []
    total = sum(c for _, c in values) or 1
    return {str(v): c / total for v, c in values}


def _histograms(a: dict[str, Any] | None, b: dict[str, Any] | None, width=260, height=60):
    """Both windows' histograms as densities on one x axis, overlaid (TFDV picks each window's
    bucket bounds from its own range, so the buckets need not line up)."""
    windows = [(e or {}).get("histogram") or [] for e in (a, b)]
    edges = [x for buckets in windows for lo, hi, _ in buckets for x in (lo, hi)]
    if not edges:
        return ""
    lo_all, hi_all = min(edges), max(edges)
    span = (hi_all - lo_all) or 1.0
    densities = []
    for buckets in windows:
        total = sum(c for _, _, c in buckets) or 1
        densities.append([(lo, hi, c / total / ((hi - lo) or span / 100)) for lo, hi, c in buckets])
    top = max((d for dens in densities for _, _, d in dens), default=0) or 1.0
    parts = []
    for dens, color in zip(densities, (TRAIN_COLOR, TEST_COLOR), strict=True):
        for lo, hi, d in dens:
            x, w = width * (lo - lo_all) / span, max(width * (hi - lo) / span, 1)
            h = height * d / top
            parts.append(
                f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{w:.1f}" height="{h:.1f}" '
                f'fill="{color}" fill-opacity="0.55"><title>{lo:g} to {hi:g}</title></rect>'
            )
    return _svg(parts, width, height)


def _sort_key(label: str) -> tuple[int, float | str]:
    try:
        return (0, float(label))
    except ValueError:
        return (1, label)


def _window_cell(entry: dict[str, Any] | None) -> str:
    if not entry:
        return '<span class="muted">absent</span>'
    lines = [f"count {_fmt(entry.get('count'))}, missing {_fmt(entry.get('missing'))}"]
    if entry.get("kind") == "numeric":
        lines.append(
            f"mean {_fmt(entry.get('mean'))}, std {_fmt(entry.get('std'))}, "
            f"min {_fmt(entry.get('min'))}, median {_fmt(entry.get('median'))}, "
            f"max {_fmt(entry.get('max'))}"
        )
    else:
        total = sum(c for _, c in entry.get("top_values") or []) or 1
        top = ", ".join(
            f"{escape(str(v))} ({c / total:.0%})" for v, c in (entry.get("top_values") or [])[:6]
        )
        lines.append(f"{_fmt(entry.get('unique'))} values: {top}")
    return "<br>".join(lines)


def _share(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1%}"


def _beside(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blocking first; within a kind, each column's findings together, the project's before
    TFDV's, so TFDV's word on a column sits next to the project's."""
    first: dict[Any, int] = {}
    for i, f in enumerate(findings):
        first.setdefault(f["feature"], i)
    return sorted(
        findings,
        key=lambda f: (f["kind"] != "blocking", first[f["feature"]], f.get("source") == "tfdv"),
    )


def _kind_cell(f: dict[str, Any]) -> str:
    if f.get("corroborates"):
        checks = ", ".join(escape(c) for c in f["corroborates"])
        return f"{escape(f['kind'])}<br><span class='muted'>corroborates {checks}</span>"
    return escape(f["kind"])


def _tfdv_line(findings: list[dict[str, Any]]) -> str:
    """How many blocking findings TFDV raised, and how many of them only TFDV raised."""
    tfdv = [f for f in findings if f.get("source") == "tfdv" and f["kind"] == "blocking"]
    if not tfdv:
        return "<p class='muted'>TFDV raised no blocking anomaly.</p>"
    alone = sum(1 for f in tfdv if not f.get("corroborates"))
    types = ", ".join(sorted({escape(f.get("anomaly_type") or f["check"]) for f in tfdv}))
    return (
        f"<p>TFDV raised {len(tfdv)} blocking "
        f"{'anomaly' if len(tfdv) == 1 else 'anomalies'} ({types}): {len(tfdv) - alone} "
        f"corroborate a project finding on the same column (shown beside it, not counted "
        f"again), {alone} found by TFDV alone.</p>"
    )


def render_report(summary: dict[str, Any], stats: dict[str, dict[str, Any]]) -> str:
    """The report page from the job's summary (anomalies.json) and per-window stats summaries."""
    status = summary["status"]
    rows = summary.get("rows", {})
    findings = _beside(summary.get("findings", []))
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Data validation</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Data validation: <span class='{status}'>{status.upper()}</span></h1>",
        f"<p>{summary.get('blocking', 0)} blocking and {summary.get('drift', 0)} drift findings. "
        f"Rows: dataset {_fmt(rows.get('dataset'))}, train window {_fmt(rows.get('train'))}, "
        f"test window {_fmt(rows.get('test'))}; {_share(summary.get('duplicate_row_share'))} "
        "repeat an earlier row's features and label. "
        f"Schema: {escape(str(summary.get('schema_source')))}"
        f"; split: <code>{escape(str(summary.get('split')))}</code>; "
        f"TFDV {escape(str(summary.get('tfdv_version')))}.</p>",
        "<h2>Findings</h2>",
    ]
    if findings:
        parts.append(_tfdv_line(findings))
        parts.append(
            _table(
                ["kind", "window", "column", "check", "source", "description"],
                [
                    [
                        _kind_cell(f),
                        f["window"],
                        escape(str(f["feature"] or "")),
                        escape(f["check"]),
                        f.get("source", ""),
                        escape(f["description"]),
                    ]
                    for f in findings
                ],
                [f["kind"] for f in findings],
            )
        )
    else:
        parts.append("<p>None.</p>")

    drift = summary.get("drift_measurements", {})
    parts.append("<h2>Drift (test window against train window)</h2>")
    if drift:
        parts.append(
            _table(
                ["feature", "metric", "value", "threshold", "status"],
                [
                    [
                        escape(n),
                        m["metric"],
                        m["value"],
                        m["threshold"],
                        "drifted" if m["drifted"] else "ok",
                    ]
                    for n, m in drift.items()
                ],
                ["drift" if m["drifted"] else "" for m in drift.values()],
            )
        )
    else:
        parts.append("<p class='muted'>Not measured (both windows are needed).</p>")

    train, test = stats.get("train", {}), stats.get("test", {})
    names = list(dict.fromkeys([*train.get("features", {}), *test.get("features", {})]))
    parts.append(
        "<h2>Features</h2><p class='key'>distribution:<span style='background:"
        f"{TRAIN_COLOR}'></span>train<span style='background:{TEST_COLOR}'></span>test</p>"
    )
    if names:
        table_rows = []
        for name in names:
            a, b = train.get("features", {}).get(name), test.get("features", {}).get(name)
            kind = (a or b or {}).get("kind", "")
            dtype = (a or b or {}).get("type", "")
            table_rows.append(
                [
                    f"<b>{escape(name)}</b><br><span class='muted'>{escape(kind)}, "
                    f"{escape(dtype)}</span>",
                    _window_cell(a),
                    _window_cell(b),
                    _histograms(a, b) if kind == "numeric" else _category_bars(a, b),
                ]
            )
        parts.append(_table(["feature", "train", "test", "distribution"], table_rows))
    else:
        parts.append("<p class='muted'>No statistics (no usable window).</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
