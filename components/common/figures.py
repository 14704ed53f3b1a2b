"""Figures for the HTML reports: a matplotlib figure as an indexed-colour PNG data URI.

Reports embed their plots so a report is one self-contained file. Line and bar plots use a few
dozen colours, so a 256-colour palette without dithering looks the same as matplotlib's RGBA output
at about a third of the bytes; reports are kept per run, so this is most of what a run adds to disk.
"""

from __future__ import annotations

import base64
import io
from typing import Any


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
