"""The OHIF Viewer in chromium: a real two-series study opened from the case page and from a share link.

Each run fails on a script error, a Content-Security-Policy violation, a failed request or an
HTTP error answer anywhere in the viewer's pages and workers.
"""

import io
import re

import numpy as np
import pydicom
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DESKTOP, screenshot
from tests.imaging.dicom_samples import sample

# Records what the page itself notices (CSP violations are not page errors).
WATCH = """
window.__hzProblems = [];
document.addEventListener('securitypolicyviolation',
  e => window.__hzProblems.push(`CSP ${e.violatedDirective} ${e.blockedURI}`));
"""
# Drawn pixels of the viewport's canvas: how many differ from the first (0 when blank).
DRAWN = """() => {
  const c = document.querySelector('[data-cy="viewport-pane"] canvas.cornerstone-canvas');
  if (!c || !c.width) return 0;
  const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let differ = 0;
  for (let i = 4; i < px.length; i += 4) if (px[i] !== px[0] || px[i + 1] !== px[1]) differ++;
  return differ;
}"""
LENGTHS = """() => (window.cornerstoneTools.annotation.state.getAllAnnotations() || [])
  .filter(a => a.metadata.toolName === 'Length')
  .map(a => Object.values(a.data.cachedStats || {}).map(s => s.length)).flat()"""


def two_series() -> list[tuple[io.BytesIO, str]]:
    """Return one study of two series: six CT slices (CT_small moved along z, each image different) and MR_small."""
    ct = pydicom.dcmread(sample("CT_small.dcm"))
    pixels = ct.pixel_array
    x, y, z = (float(v) for v in ct.ImagePositionPatient)
    files = []
    for number in range(1, 7):
        ct.SOPInstanceUID = f"{ct.SeriesInstanceUID}.{number}"
        ct.InstanceNumber = number
        ct.ImagePositionPatient = [x, y, z + (number - 1) * float(ct.SliceThickness)]
        ct.SliceLocation = ct.ImagePositionPatient[2]
        ct.PixelData = np.roll(pixels, 4 * number, axis=1).tobytes()
        out = io.BytesIO()
        ct.save_as(out)
        files.append((io.BytesIO(out.getvalue()), f"CT{number}.dcm"))
    mr = pydicom.dcmread(sample("MR_small.dcm"))
    mr.StudyInstanceUID = ct.StudyInstanceUID
    out = io.BytesIO()
    mr.save_as(out)
    files.append((io.BytesIO(out.getvalue()), "MR.dcm"))
    return files


class Watch:
    """Collect a browser context's script errors, failed requests and HTTP errors."""

    def __init__(self, context):
        self.problems: list[str] = []
        context.add_init_script(WATCH)
        context.on("weberror", lambda e: self.problems.append(f"script error: {e.error}"))
        context.on("requestfailed", self._failed)
        context.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))
        context.on("console", lambda m: m.type == "error" and "Refused to" in m.text
                   and self.problems.append(f"console: {m.text}"))

    def _failed(self, request) -> None:
        # The viewer cancels the frame requests it no longer needs (its prefetch of the other
        # slices, once the user starts measuring): Chromium reports that cancel as ERR_ABORTED.
        # A failure on the server's side shows as another error (a reset, an empty response) or
        # as an HTTP status, and an abort of any other request still counts.
        # Chromium also cancels a tab's favicon fetch when it opens another tab (the viewer's, here).
        benign = "/frames/" in request.url or request.url.endswith("/favicon.svg")
        if request.failure == "net::ERR_ABORTED" and benign:
            return
        self.problems.append(f"failed: {request.url} {request.failure}")

    def check(self, page) -> None:
        assert self.problems + page.evaluate("window.__hzProblems") == []


def use_viewer(page, watch: Watch, *, shot: str | None = None) -> None:
    """Check the study browser's two thumbnails and the drawn image, then measure a length."""
    confirm = page.locator('[data-cy="confirm-and-hide-button"]')  # OHIF's "investigational use" notice
    confirm.click()
    tour = page.locator(".shepherd-element")  # the first-visit tour, shown to every fresh browser
    expect(tour).to_be_visible()
    tour.locator(".shepherd-button-secondary").click()  # "Skip all"
    expect(tour).to_be_hidden()
    thumbs = page.locator('[data-cy="study-browser-thumbnail"]')
    # The second series' thumbnail comes after its metadata, which can take more than expect's 5 s
    # default on a busy machine. (The one time it was missing, the cause was a 500 on that metadata:
    # see tests/dicomweb/test_metadata_json.py.)
    expect(thumbs).to_have_count(2, timeout=20_000)
    for i in range(2):
        img = thumbs.nth(i).locator("img")
        expect(img).to_be_visible()
        assert img.evaluate("i => i.complete && i.naturalWidth > 0")
    expect(page.locator('[data-cy="viewport-pane"] canvas.cornerstone-canvas')).to_be_visible()
    page.wait_for_function(f"({DRAWN})() > 10000")

    page.locator('[data-cy="MeasurementTools-split-button-primary"]').click()
    box = page.locator('[data-cy="viewport-pane"] .cornerstone-viewport-element').first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 120, cy)
    page.mouse.down()
    page.mouse.move(cx + 120, cy, steps=8)
    page.mouse.up()
    page.wait_for_function(f"({LENGTHS})().some(v => v > 0)")
    if shot:
        screenshot(page, shot)
    watch.check(page)


@pytest.fixture(autouse=True)
def ohif_build(app):
    """The pinned OHIF build, fetched with npm on the first run (make run and CI fetch it before)."""
    from app.ohif import assets

    return assets.fetch(app.config["OHIF_CACHE"])


@pytest.fixture
def ohif_case(demo, api_as, make_case):
    """A case of the demo GP's holding one study of two series (CT and MR)."""
    case_id = make_case(demo["gp"])
    r = api_as(demo["gp"]).post(f"/api/cases/{case_id}/files", data={"files": two_series()},
                                content_type="multipart/form-data")
    assert r.status_code == 200
    assert (len(r.json["accepted"]), r.json["rejected"]) == (7, [])
    return case_id


def test_ohif_opens_from_the_case_page_and_measures(open_as, ohif_case):
    page = open_as("gp")
    watch = Watch(page.context)
    page.goto(f"/cases/{ohif_case}")
    with page.context.expect_page() as opened:
        page.click("#open-ohif")
    viewer = opened.value
    expect(viewer).to_have_url(re.compile(rf"/ohif/cases/{ohif_case}/viewer\?StudyInstanceUIDs=2\.25\.\d+$"))
    use_viewer(viewer, watch, shot="ohif")


def test_ohif_opens_from_a_share_link_without_an_account(browser, live, demo, api_as, ohif_case):
    r = api_as(demo["gp"]).post(f"/api/cases/{ohif_case}/links",
                                json={"scope": "read", "expires_in_hours": 1, "label": "colleague"})
    assert r.status_code == 201
    token = r.json["token"]
    assert r.json["viewer_url"].endswith(f"/viewer/link/{token}")
    context = browser.new_context(base_url=live.url, **DESKTOP)
    context.set_default_timeout(20_000)
    try:
        watch = Watch(context)
        page = context.new_page()
        page.goto(f"/viewer/link/{token}")
        expect(page).to_have_url(re.compile(rf"/ohif/link/{token}/viewer\?StudyInstanceUIDs=2\.25\.\d+$"))
        use_viewer(page, watch)
    finally:
        context.close()
