"""report.html in a real headless Chromium: figures decode, tables render the runs' numbers."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image
from test_report import store  # noqa: F401  (the fixture; tests/ is on sys.path)

from rethink.report import write_report

pytestmark = pytest.mark.browser

_PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const m = document.createElement('div');
  m.id = 'probe';
  const tables = document.querySelectorAll('table.data').length;
  m.textContent = `images ${ok}/${imgs.length} tables ${tables}`;
  document.body.appendChild(m);
});
</script></body>"""


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    return exe


def _run(exe: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
    ]
    return subprocess.run([exe, *flags, *args], capture_output=True, text=True, timeout=120)


def test_report_renders_in_headless_chromium(store, tmp_path):  # noqa: F811
    exe = _chromium()
    out = tmp_path / "rep"
    write_report(store, out)
    page = out / "report.html"
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", _PROBE))
    dom = _run(exe, tmp_path, "--dump-dom", probe.as_uri()).stdout
    n_imgs = page.read_text().count("<img ")
    assert n_imgs >= 4
    assert f"images {n_imgs}/{n_imgs}" in dom, dom[-500:]
    assert f"tables {len(list(out.glob('*.md')))}</div>" in dom  # one HTML table per table file
    assert "51.00 ± 1.41" in dom and "50.51" in dom  # the runs' numbers and the paper's
    shot = tmp_path / "shot.png"
    _run(exe, tmp_path, f"--screenshot={shot}", "--window-size=1200,2400", page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (2400, 1200)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.005  # not a blank page
