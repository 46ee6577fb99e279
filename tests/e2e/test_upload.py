"""Uploading from the case page: a network failure is retried, and each rejected file says why."""

import re

from playwright.sync_api import expect

from tests.imaging.dicom_samples import sample


def test_failed_batch_is_retried_and_rejections_are_shown_per_file(open_as, demo, make_case, tmp_path):
    case_id = make_case(demo["gp"])
    notes = tmp_path / "notes.txt"
    notes.write_text("这不是影像文件")
    gp = open_as("gp", phone=True)
    attempts = []

    def flaky(route):
        # The first request dies on the network, as on a weak county-hospital connection.
        attempts.append(route.request.method)
        if len(attempts) == 1:
            route.abort("connectionreset")
        else:
            route.continue_()

    gp.route(re.compile(r".*/api/cases/\d+/files$"), flaky)
    gp.goto(f"/cases/{case_id}")
    gp.set_input_files("#pick-files", [str(sample("CT_small.dcm")), str(notes)])
    expect(gp.locator(".upload-item[data-name='CT_small.dcm']")).to_have_class(re.compile("accepted"))
    rejected = gp.locator(".upload-item[data-name='notes.txt']")
    expect(rejected).to_have_class(re.compile("rejected"))
    expect(rejected.locator(".upload-status")).to_contain_text("已拒收:")
    assert len(attempts) == 2
    expect(gp.locator("#overall-text")).to_contain_text("已接收 1 · 已拒收 1")
    gp.reload()
    expect(gp.locator(".series-grid li")).to_have_count(1)


def test_files_picked_before_the_upload_script_arrives_are_uploaded(open_as, demo, make_case):
    """On a slow link the page shows its file picker before its scripts have run; a pick then is not lost."""
    case_id = make_case(demo["gp"])
    gp = open_as("gp", phone=True)
    held = []
    script = re.compile(r".*/static/js/upload\.js(\?.*)?$")
    gp.route(script, lambda route: held.append(route))  # answered below
    gp.goto(f"/cases/{case_id}", wait_until="commit")  # its module scripts hold up DOMContentLoaded
    expect(gp.locator("#pick-files")).to_be_attached()
    assert gp.locator("#upload-list .upload-item").count() == 0
    gp.set_input_files("#pick-files", str(sample("CT_small.dcm")))  # its change event fires with no listener
    gp.wait_for_timeout(300)
    assert held, "the page did not ask for upload.js"
    for route in held:
        route.continue_()
    gp.unroute(script)
    expect(gp.locator(".upload-item[data-name='CT_small.dcm']")).to_have_class(re.compile("accepted"))
    gp.reload()
    expect(gp.locator(".series-grid li")).to_have_count(1)
