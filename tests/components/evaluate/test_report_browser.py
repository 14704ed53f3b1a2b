"""The evaluation report opened in headless Chromium (Debian's `chromium`, installed by .ci/run):
every plot decodes to a real image, and the page renders (a screenshot that is not blank)."""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from components.common.config import REPO_ROOT, EvaluationConfig
from components.evaluate.evaluate import run as evaluate_run
from components.evaluate.gate import decide
from components.evaluate.report import render
from tests.fixtures.models import FEATURES, LABEL, logistic, save

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)",
)
PLOTS = {
    "roc",
    "pr",
    "calibration",
    "cost",
    "confusion",
    "histogram",
    "importance",
    "dependence",
    "slices",
}
# test-only: after load, report each figure's decoded image size into the DOM
CHECK = """<script>
window.addEventListener("load", () => {
  const figs = [...document.querySelectorAll("figure[data-plot]")].map(f => {
    const img = f.querySelector("img");
    return {plot: f.dataset.plot, complete: img.complete,
            w: img.naturalWidth, h: img.naturalHeight};
  });
  const pre = document.createElement("pre");
  pre.id = "render-check";
  pre.textContent = JSON.stringify(figs);
  document.body.appendChild(pre);
});
</script>"""


def chromium(*args: str, tmp_path) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",  # Debian's Chromium refuses to run as root without it (CI runs as root)
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",  # no network here: don't try
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> str:
    """A report with a champion to compare with, slices and explanations."""
    df = pd.read_parquet(REPO_ROOT / "data" / "acs_employment_ma_2015_2018.parquet")
    train = df[df.year == 2015].sample(3000, random_state=0)
    test = df[df.year == 2016].sample(3000, random_state=1)[[*FEATURES, LABEL]]
    root = tmp_path_factory.mktemp("report")
    test.to_parquet(root / "test.parquet")
    cfg = EvaluationConfig(explain={"sample_rows": 1000, "repeats": 1}).model_dump(mode="json")
    summaries = []
    for name, features in (("challenger", FEATURES), ("champion", FEATURES[1:])):
        model_dir = save(*logistic(train, features), root / name)
        summaries.append(evaluate_run(str(model_dir), str(root / "test.parquet"), cfg))
    challenger, champion = summaries
    champion["model"]["version"] = "1"
    return render(challenger, champion, decide(challenger, champion, cfg, "1"))


def test_every_plot_renders_in_chromium(report, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(report.replace("</body>", CHECK + "</body>"))
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", page.as_uri(), tmp_path=tmp_path)
    found = re.search(r'<pre id="render-check">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stdout[-2000:] + dom.stderr[-2000:]
    figures = json.loads(found.group(1).replace("&quot;", '"'))
    assert {f["plot"] for f in figures} == PLOTS
    for f in figures:
        assert f["complete"] and f["w"] > 200 and f["h"] > 150, f


def test_report_screenshot_is_not_blank(report, tmp_path):
    from PIL import Image

    page = tmp_path / "report.html"
    page.write_text(report)
    shot = tmp_path / "shot.png"
    chromium("--window-size=1200,2400", f"--screenshot={shot}", page.as_uri(), tmp_path=tmp_path)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2400, 1200)
    # plots put many distinct colours on the page; a blank or text-only page has few
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 500, len(colours)
    plot_area = pixels[900:2400]
    assert plot_area.std() > 20  # not a uniform block


def test_report_has_no_scripts_or_remote_content(report):
    lowered = report.lower()
    assert "<script" not in lowered and "<link" not in lowered and "http" not in lowered
    assert report.count("data:image/png;base64,") == len(PLOTS)
    assert "champion v1" in report and 'id="threshold"' in report
