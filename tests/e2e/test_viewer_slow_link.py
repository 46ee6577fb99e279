"""The viewer on a slow link: previews keep a fast scroll moving, the resting slice ends in full."""

import io
import re

import pydicom
from playwright.sync_api import expect

from tests.imaging.dicom_samples import sample

# Chrome's network emulation, slower than a poor 3G link so that a full frame takes well over the
# viewer's threshold for prefetching full frames.
SLOW = {"offline": False, "latency": 200, "downloadThroughput": 50_000, "uploadThroughput": 50_000}


def ct_series(n: int) -> list[tuple[io.BytesIO, str]]:
    """n slices of one CT series built from pydicom's CT_small.dcm (distinct instances)."""
    template = pydicom.dcmread(sample("CT_small.dcm"))
    series = pydicom.uid.generate_uid()
    files = []
    for i in range(n):
        ds = template.copy()
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        out.seek(0)
        files.append((out, f"CT{i:03d}.dcm"))
    return files


def test_a_fast_scroll_on_a_slow_link_shows_previews_then_the_full_frame(open_as, demo, api_as, make_case):
    case_id = make_case(demo["gp"])
    r = api_as(demo["gp"]).post(f"/api/cases/{case_id}/files", data={"files": ct_series(24)},
                                content_type="multipart/form-data")
    assert len(r.json["accepted"]) == 24, r.json

    gp = open_as("gp")
    cdp = gp.context.new_cdp_session(gp)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", SLOW)
    gp.goto(f"/cases/{case_id}/viewer")
    stage = gp.locator("#stage")
    expect(stage).to_have_attribute("data-drawn", re.compile(r"^\d+:full$"), timeout=30_000)
    gp.evaluate("""() => {
      window.drawnAs = [];
      const stage = document.getElementById("stage");
      new MutationObserver(() => window.drawnAs.push(stage.dataset.drawn))
        .observe(stage, { attributes: true, attributeFilter: ["data-drawn"] });
    }""")

    stage.focus()
    for _ in range(8):  # a held key: faster than full frames can arrive on this link
        gp.keyboard.press("ArrowDown")
        gp.wait_for_timeout(60)
    info = gp.locator("#slice-info")
    final = info.get_attribute("data-index")
    # The slice the reader rests on ends up in full, with its own URL; previews were drawn on the way.
    expect(stage).to_have_attribute("data-drawn", f"{final}:full", timeout=30_000)
    assert stage.get_attribute("data-loaded").endswith("frame=1")
    drawn = gp.evaluate("window.drawnAs")
    assert any(d.endswith(":preview") for d in drawn), drawn
    assert not any(d.endswith(":full") for d in drawn[:-1]), drawn  # no full frame was fetched in passing
