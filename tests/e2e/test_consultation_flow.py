"""The whole consultation in a real browser: gp on a phone, gyn and radiology on desktops."""

import re
import shutil

import pydicom
import pytest
from fpdf import FPDF
from PIL import Image
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot
from tests.imaging.dicom_samples import DICOMDIR_TESTS

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def material(tmp_path):
    """A DICOM CD export (a folder of three MR series), a photo of a slide and a PDF lab report."""
    folder = tmp_path / "CD_EXPORT"
    shutil.copytree(DICOMDIR_TESTS / "98892003", folder)
    photo = tmp_path / "slide-photo.jpg"
    Image.new("RGB", (640, 480), (200, 120, 160)).save(photo, "JPEG")
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(0, 10, "CA-125: 35 U/mL")
    report = tmp_path / "lab-report.pdf"
    pdf.output(str(report))
    files = [p for p in folder.rglob("*") if p.is_file()]
    series = {pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID for p in files}
    return folder, photo, report, len(files), len(series)


def test_consultation_from_phone_upload_to_rated_opinion(open_as, demo, material):
    folder, photo, report, dicom_count, series_count = material

    # --- gp, on a phone: new case, upload a DICOM folder, a photo and a PDF, share with gyn ---
    gp = open_as("gp", phone=True)
    gp.get_by_role("link", name="新建会诊").first.click()
    gp.fill("input[name=title]", "卵巢囊实性包块待查")
    gp.fill("textarea[name=clinical_question]", "左附件区囊实性包块，良恶性如何判断？是否需要手术？")
    gp.fill("input[name=age]", "46")
    gp.select_option("select[name=sex]", "female")
    gp.select_option("select[name=specialty]", "gynecology")
    screenshot(gp, "phone-new-case")
    gp.click("button[type=submit].primary")
    expect(gp.locator("#upload")).to_be_visible()
    case_id = int(re.search(r"/cases/(\d+)", gp.url).group(1))

    gp.set_input_files("#pick-folder", str(folder))
    expect(gp.locator("#upload-overall")).to_be_visible()
    gp.set_input_files("#pick-files", [str(photo), str(report)])
    expect(gp.locator(".upload-item.accepted")).to_have_count(dicom_count + 2, timeout=60_000)
    expect(gp.locator("#overall-text")).to_contain_text("全部完成")
    bar = gp.locator("#overall-bar")
    assert bar.evaluate("b => b.value === b.max && b.max > 0")
    screenshot(gp, "phone-upload-progress")

    gp.reload()
    expect(gp.locator(".series-grid li")).to_have_count(series_count)
    expect(gp.locator(".attachments li")).to_have_count(2)
    picker = gp.locator(f"#specialist-picker li[data-user-id='{demo['gyn']}']")
    expect(picker.locator(".reasons li").first).to_be_visible()
    picker.locator("input[type=radio]").check()
    gp.fill("#share-form textarea[name=message]", "麻烦您看看，谢谢！")
    gp.click("#share-btn")
    expect(gp.locator(".case-head [data-status]")).to_have_attribute("data-status", "submitted")

    # --- gyn, on a desktop: accept from the inbox, read the images, invite radiology ---
    gyn = open_as("gyn")
    expect(gyn.locator("#notifications li.unread")).to_have_count(1)
    screenshot(gyn, "desktop-inbox")
    gyn.locator(f"#section-awaiting_decision [data-case-id='{case_id}'] a").click()
    screenshot(gyn, "desktop-case-to-accept")
    # Until actions.js has loaded, a click would submit the form natively (a reload).
    expect(gyn.locator("html")).to_have_attribute("data-actions", "ready")
    gyn.click("#accept-btn")
    expect(gyn.locator(".case-head [data-status]")).to_have_attribute("data-status", "accepted")
    invite = gyn.locator(f"#invite-picker li[data-user-id='{demo['radiology']}']")
    invite.locator("input[type=radio]").check()
    gyn.click("#invite-btn")
    expect(gyn.locator(f"#participants li[data-user-id='{demo['radiology']}']")).to_be_visible()

    gyn.click("#open-viewer")
    stage, info = gyn.locator("#stage"), gyn.locator("#slice-info")
    expect(stage).to_have_attribute("data-loaded", re.compile(r"/rendered\?frame=1"))
    start = int(info.get_attribute("data-index"))
    stage.focus()
    gyn.keyboard.press("ArrowDown")
    expect(info).to_have_attribute("data-index", str(start + 1))
    stage.hover()
    gyn.mouse.wheel(0, 120)
    expect(info).to_have_attribute("data-index", str(start + 2))
    gyn.select_option("#preset", "-600,1500")
    expect(stage).to_have_attribute("data-loaded", re.compile(r"wc=-600&ww=1500"))
    expect(gyn.locator("#window-info")).to_have_text("W 1500 L -600")
    gyn.select_option("#preset", "")  # back to the file's own window (these are MR images)
    expect(gyn.locator("#window-info")).to_have_text("")
    box = stage.bounding_box()
    gyn.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    gyn.mouse.down()
    gyn.mouse.move(box["x"] + box["width"] / 2 + 80, box["y"] + box["height"] / 2 + 40, steps=4)
    gyn.mouse.up()
    expect(stage).to_have_attribute("data-loaded", re.compile(r"wc=-?\d+&ww=\d+"))
    expect(gyn.locator("#window-info")).to_have_text(re.compile(r"W \d+ L -?\d+"))
    gyn.click("#reset")
    expect(gyn.locator("#window-info")).to_have_text("")

    # --- the room: radiology and gp join, chat reaches all three, the presenter is followed ---
    radiology = open_as("radiology")
    radiology.locator(f"#section-invited [data-case-id='{case_id}'] a").click()
    radiology.click("#open-viewer")
    gp.goto(f"/cases/{case_id}/viewer")
    for page in (gyn, radiology, gp):
        expect(page.locator("#conn-state")).to_have_class("ok")
    for page in (gyn, radiology):
        expect(page.locator("#online li")).to_have_count(3)

    gyn.fill("#chat-input", "大家好，请看 T2 序列第 3 层。")
    gyn.keyboard.press("Enter")
    radiology.fill("#chat-input", "收到，实性成分明显强化。")
    radiology.click("#chat-form button[type=submit]")
    for page in (gyn, radiology, gp):
        expect(page.locator("#messages li[data-seq]")).to_have_count(2)
        expect(page.locator("#messages li[data-seq='1'] .body")).to_have_text("大家好，请看 T2 序列第 3 层。")
        expect(page.locator("#messages li[data-seq='2'] .body")).to_have_text("收到，实性成分明显强化。")

    gyn.click("#present-btn")
    expect(radiology.locator("#presenter-info")).to_have_attribute("data-presenter", str(demo["gyn"]))
    stage.focus()
    gyn.keyboard.press("ArrowUp")
    presented = info.get_attribute("data-index")
    expect(radiology.locator("#slice-info")).to_have_attribute("data-index", presented)
    expect(gp.locator("#slice-info")).to_have_attribute("data-index", presented)

    # A length measurement drawn by gyn appears for the others, in mm.
    gyn.click("#tools [data-tool=line]")
    box = stage.bounding_box()
    gyn.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4)
    gyn.mouse.down()
    gyn.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.55, steps=5)
    gyn.mouse.up()
    expect(radiology.locator("#ann-list li")).to_contain_text(re.compile(r"测量 \d+\.\d mm"))
    # A text note is typed into a small form at the tapped point (no browser prompt), seen by all.
    gyn.click("#tools [data-tool=text]")
    stage.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.3})
    expect(gyn.locator("#note-form")).to_be_visible()
    gyn.locator("#note-text").press_sequentially("左附件区囊性占位")
    gyn.locator("#note-text").press("Enter")
    expect(gyn.locator("#note-form")).to_be_hidden()
    expect(radiology.locator("#ann-list li", has_text="左附件区囊性占位")).to_have_count(1)
    screenshot(gyn, "desktop-viewer-room")
    screenshot(gp, "phone-viewer-room")

    # --- gyn signs the opinion; gp reads it, downloads the PDF and closes with a rating ---
    gyn.goto(f"/cases/{case_id}")
    gyn.fill("#opinion-form textarea[name=diagnosis]", "左卵巢浆液性囊腺瘤可能性大")
    gyn.fill("#opinion-form textarea[name=recommendations]", "建议腹腔镜探查，术中冰冻病理。")
    gyn.on("dialog", lambda dialog: dialog.accept())
    gyn.click("#sign-btn")
    expect(gyn.locator(".case-head [data-status]")).to_have_attribute("data-status", "answered")

    gp.goto(f"/cases/{case_id}")
    expect(gp.locator("#opinion-diagnosis")).to_have_text("左卵巢浆液性囊腺瘤可能性大")
    gp.locator("#opinion").scroll_into_view_if_needed()
    screenshot(gp, "phone-opinion")
    with gp.expect_download() as download:
        gp.click("#pdf-link")
    assert download.value.path().read_bytes()[:5] == b"%PDF-"
    gp.locator("#close input[name=rating][value='4']").check()
    gp.fill("#close textarea[name=comment]", "意见很有帮助")
    gp.locator("#close input[name=outcome][value='referral_avoided']").check()
    gp.locator("#close input[name=advice][value='new_advice']").check()
    gp.click("#close-btn")
    expect(gp.locator(".case-head [data-status]")).to_have_attribute("data-status", "closed")
    expect(gp.locator("#rating")).to_contain_text("★★★★☆")
    gp.goto("/")
    expect(gp.locator(f"#section-my_cases [data-case-id='{case_id}'] [data-status]")).to_have_attribute(
        "data-status", "closed")
    screenshot(gp, "phone-inbox")


def test_outsider_gets_the_not_found_page(open_as, demo, api_as, make_case):
    case_id = make_case(demo["gp"])
    outsider = open_as("outsider")
    response = outsider.goto(f"/cases/{case_id}")
    assert response.status == 404
    expect(outsider.locator("h1")).to_contain_text("页面不存在")
    assert outsider.goto(f"/cases/{case_id}/viewer").status == 404
    outsider.get_by_role("link", name="English").click()
    expect(outsider.locator("h1")).to_contain_text("Page not found")
    expect(outsider.locator("html")).to_have_attribute("lang", "en")
