"""Following the presenter: a view that arrives while the follower is still loading a series is not lost."""

import io
import re

import pytest
from playwright.sync_api import expect

from tests.imaging.dicom_samples import ct_series

# The follower's browser answers its instance lists late, as on a slow phone link, so the presenter's
# next views arrive while the follower is still opening the series of the first one. Only this page's
# fetch is changed (an init script): the server and the presenter run at full speed. With
# FAIL_FIRST the first late list fails instead, as a dropped link would.
SLOW_SERIES_LIST = """
(() => {
  const fetch = window.fetch.bind(window);
  let late = 0;
  window.fetch = async (input, init) => {
    const url = typeof input === "string" ? input : input.url;
    if (url.includes("/instances?series_uid=")) {
      await new Promise((r) => setTimeout(r, 4000));
      late += 1;
      if (FAIL_FIRST && late === 2) throw new TypeError("Failed to fetch");  // the page's own first list is 1
    }
    return fetch(input, init);
  };
})();
"""


@pytest.fixture
def room(open_as, demo, api_as, make_case):
    """A case with series A and B (5 slices each); gyn presents on A, gp follows from B on a slow link."""
    case_id = make_case(demo["gp"])
    api = api_as(demo["gp"])
    series, first_sop = {}, {}
    for name in ("A", "B"):
        uid = f"1.2.826.0.1.3680043.8.498.77.{ord(name)}"
        files = [(io.BytesIO(data), f"{name}{file}") for file, data in
                 ct_series(5, study_uid="1.2.826.0.1.3680043.8.498.77", series_uid=uid)]
        r = api.post(f"/api/cases/{case_id}/files", data={"files": files}, content_type="multipart/form-data")
        assert len(r.json["accepted"]) == 5, r.json
        series[name] = r.json["accepted"][0]["series_uid"]
        first_sop[name] = next(a["sop_instance_uid"] for a in r.json["accepted"] if a["filename"] == f"{name}IM0001")
    api.post(f"/api/cases/{case_id}/share", json={"specialist_id": demo["gyn"]})
    api_as(demo["gyn"]).post(f"/api/cases/{case_id}/accept")

    def open_pages(*, fail_first: bool):
        gp = open_as("gp", phone=True)
        gp.add_init_script(SLOW_SERIES_LIST.replace("FAIL_FIRST", "true" if fail_first else "false"))
        gp.goto(f"/cases/{case_id}/viewer?series={series['B']}")
        expect(gp.locator("#stage")).to_have_attribute("data-drawn", "2:full", timeout=20_000)
        gyn = open_as("gyn")
        gyn.goto(f"/cases/{case_id}/viewer?series={series['A']}")
        expect(gyn.locator("#stage")).to_have_attribute("data-drawn", "2:full")
        for page in (gp, gyn):
            expect(page.locator("#conn-state")).to_have_class("ok")
        gyn.click("#present-btn")  # gp gets A, slice 3, and starts opening series A (slowly)
        expect(gp.locator("#presenter-info")).to_have_attribute("data-presenter", str(demo["gyn"]))
        gyn.locator("#stage").focus()
        gyn.keyboard.press("ArrowUp")  # ... and A, slice 2, before series A has arrived
        gyn.keyboard.press("ArrowUp")
        expect(gyn.locator("#slice-info")).to_have_attribute("data-index", "0")
        return gp, gyn

    return open_pages, series, first_sop


def on_first_slice_of(page, series_uid: str, sop: str) -> None:
    """The page shows the series' first slice, drawn in full, and nothing still loading moves it afterwards."""
    expect(page.locator("#series-select")).to_have_value(series_uid)
    expect(page.locator("#stage")).to_have_attribute(
        "data-loaded", re.compile(rf"/instances/{re.escape(sop)}/rendered\?"), timeout=15_000)
    expect(page.locator("#slice-info")).to_have_attribute("data-index", "0")
    page.wait_for_timeout(500)
    expect(page.locator("#slice-info")).to_have_attribute("data-index", "0")


def test_the_follower_ends_on_the_presenters_last_slice_when_views_cross_a_series_load(room):
    open_pages, series, first_sop = room
    gp, _ = open_pages(fail_first=False)
    # Once series A has arrived, gp shows the presenter's last slice, not that of the view that started the load.
    on_first_slice_of(gp, series["A"], first_sop["A"])


def test_views_that_waited_for_a_load_that_failed_are_still_followed(room):
    open_pages, series, first_sop = room
    gp, _ = open_pages(fail_first=True)
    expect(gp.locator("#chat-error")).to_have_text("网络错误，请重试", timeout=10_000)  # the zh-CN page
    # The views that came in meanwhile load series A again, without the presenter moving.
    on_first_slice_of(gp, series["A"], first_sop["A"])
