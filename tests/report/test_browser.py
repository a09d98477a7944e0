"""The report in a real browser (headless Chromium, Debian's `chromium` package): no
horizontal overflow at 1280 px, every image loaded, no "NaN" text, the headline present.

A copy of the report gets a script that measures the page once it has loaded and writes
the measurements into the DOM, which `--dump-dom` prints. Skipped when no Chromium is
installed (`apt-get install chromium`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium: apt-get install chromium")

PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = {
    width: window.innerWidth,
    scroll_width: document.documentElement.scrollWidth,
    images: imgs.length,
    broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length,
    nan: /\\bNaN\\b/.test(document.body.innerText),
    headline: !!document.getElementById("headline") &&
              document.getElementById("headline").innerText.indexOf("Headline") >= 0,
    wide: Array.prototype.slice.call(document.querySelectorAll("body *"))
      .filter(function (e) { return e.getBoundingClientRect().right > window.innerWidth + 1; })
      .map(function (e) { return e.tagName + "." + e.className; }).slice(0, 5)
  };
  var pre = document.createElement("pre");
  pre.id = "llmexp-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    assert BROWSER is not None
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", "--window-size=1280,900", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def measure(html_path: Path, tmp_path: Path) -> dict:
    probed = tmp_path / "probed.html"
    probed.write_text(html_path.read_text().replace("</body>", PROBE + "</body>"))
    done = chromium("--virtual-time-budget=10000", "--dump-dom", probed.as_uri(), profile=tmp_path / "profile")
    found = re.search(r'<pre id="llmexp-probe">(.*?)</pre>', done.stdout, flags=re.S)
    assert found, f"no measurements in the dumped DOM; stderr: {done.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"'))


@pytest.mark.slow
def test_report_in_chromium(tiny_report, tmp_path):
    m = measure(tiny_report, tmp_path)
    assert m["width"] == 1280
    assert m["scroll_width"] <= m["width"], f"horizontal overflow: {m}"
    assert m["images"] >= 1 and m["broken"] == 0, m
    assert not m["nan"], "NaN shown on the page"
    assert m["headline"], "no headline"
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", tiny_report.as_uri(), profile=tmp_path / "profile2")
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_the_probe_sees_overflow_broken_images_and_nan(tiny_report, tmp_path):
    """Data built to break each check: a too-wide table, a broken image, a NaN cell."""
    html = tiny_report.read_text()
    broken = html.replace("</header>", "</header><table style='width:2400px'><tr><td>NaN</td></tr>"
                          "</table><img src='data:image/png;base64,AAAA'>", 1)
    broken = broken.replace('id="headline"', 'id="not-the-headline"', 1)
    path = tmp_path / "broken.html"
    path.write_text(broken)
    m = measure(path, tmp_path)
    assert m["scroll_width"] > m["width"] and m["broken"] == 1 and m["nan"] and not m["headline"], m
