"""The viewer's window: a drag starts from the window the server rendered the image with."""

import re

from playwright.sync_api import expect

from tests.imaging.dicom_samples import sample, upload


def test_the_first_window_drag_starts_from_the_servers_window(open_as, demo, api_as, make_case):
    # MR_small.dcm carries its own window (600/1600), not the 600/1200 the viewer used to guess for MR.
    case_id = make_case(demo["gp"])
    api = api_as(demo["gp"])
    r = api.post(f"/api/cases/{case_id}/files", data={"files": upload([sample("MR_small.dcm")])},
                 content_type="multipart/form-data")
    sop = r.json["accepted"][0]["sop_instance_uid"]
    served = api.get(f"/api/cases/{case_id}/instances/{sop}/rendered?frame=1")
    wc, ww = float(served.headers["X-Window-Center"]), float(served.headers["X-Window-Width"])
    assert (wc, ww) == (600.0, 1600.0)

    gp = open_as("gp")
    gp.goto(f"/cases/{case_id}/viewer")
    stage = gp.locator("#stage")
    expect(stage).to_have_attribute("data-drawn", "0:full")
    expect(stage).to_have_attribute("data-window", f"{wc:g},{ww:g}")
    expect(gp.locator("#window-info")).to_have_text("")  # the file's own window is shown

    box = stage.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    gp.mouse.move(x, y)
    gp.mouse.down()
    gp.mouse.move(x + 10, y + 5, steps=2)
    gp.mouse.up()
    step = max(1, ww / 200)  # the viewer's drag sensitivity, proportional to the width
    dragged_wc, dragged_ww = round(wc + 5 * step), round(ww + 10 * step)
    expect(stage).to_have_attribute("data-loaded", re.compile(rf"wc={dragged_wc}&ww={dragged_ww}$"))
    expect(stage).to_have_attribute("data-window", f"{dragged_wc},{dragged_ww}")
    expect(gp.locator("#window-info")).to_have_text(f"W {dragged_ww} L {dragged_wc}")
