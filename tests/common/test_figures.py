"""Report figures are indexed-colour PNG data URIs: same pixels size, fewer bytes, the plot's
colours kept."""

from __future__ import annotations

import base64
import io

from matplotlib.figure import Figure
from PIL import Image

from components.common.figures import png_data_uri


def _plot() -> Figure:
    fig = Figure(figsize=(4.6, 4.0), layout="constrained")
    ax = fig.add_subplot()
    xs = [i / 100 for i in range(101)]
    ax.plot(xs, [x**0.3 for x in xs], color="tab:blue", lw=2, label="model")
    ax.plot([0, 1], [0, 1], color="tab:gray", ls="--", label="chance")
    ax.legend()
    return fig


def _rgba_png(fig: Figure, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def test_a_figure_is_an_indexed_png_data_uri_of_the_same_size_and_fewer_bytes():
    uri = png_data_uri(_plot(), dpi=90)
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    png = base64.b64decode(uri.removeprefix(prefix))
    image = Image.open(io.BytesIO(png))
    full = _rgba_png(_plot(), dpi=90)
    assert image.mode == "P"
    assert image.size == Image.open(io.BytesIO(full)).size == (414, 360)
    assert len(png) < 0.7 * len(full)


def test_the_plot_colours_survive_the_palette():
    png = base64.b64decode(png_data_uri(_plot(), dpi=90).split(",", 1)[1])
    colours = {c for _, c in Image.open(io.BytesIO(png)).convert("RGB").getcolors(1 << 16)}
    assert (31, 119, 180) in colours  # tab:blue, exactly
    assert (255, 255, 255) in colours
