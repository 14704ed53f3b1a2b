"""Figures for the HTML reports: the page style they share, and a matplotlib figure as an
indexed-colour PNG data URI.

Reports embed their plots so a report is one self-contained file. Line and bar plots use a few
dozen colours, so a 256-colour palette without dithering looks the same as matplotlib's RGBA output
at about a third of the bytes; reports are kept per run, so this is most of what a run adds to disk.
"""

from __future__ import annotations

import base64
import io
from typing import Any

# The evaluation and drift reports look alike; each adds the classes of its own verdict banner.
REPORT_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1150px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; } td, th { padding: 4px 12px; border-bottom: 1px solid #ddd; }
th { text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; } figure { margin: 0; }
figure img { max-width: 100%; } figcaption { color: #555; font-size: 0.85em; }
.meta { color: #555; } .bad { color: #b71c1c; font-weight: bold; }
"""


def png_data_uri(fig: Any, dpi: int) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    FigureCanvasAgg(fig)
    rgba = io.BytesIO()
    fig.savefig(rgba, format="png", dpi=dpi, metadata={"Software": None})
    image = Image.open(rgba).convert("RGB")
    indexed = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    indexed.save(out, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")
