"""Every page as its users meet it: a 360-px phone, in Chinese (the default) and in English.

One app, one demo world and one browser serve the whole module (a world per page would cost
minutes): the pages are only read here, and the failures are faked in the browser (page.route), so
no test changes what another one sees. Each page must fit the phone's width and run without script
errors; the other tests each pin a defect a doctor on a phone met.
"""

import io
import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from fpdf import FPDF
from PIL import Image
from playwright.sync_api import expect

from tests.conftest import ApiClient, app_on_empty_tables
from tests.e2e.conftest import PASSWORD, PHONE
from tests.imaging.dicom_samples import ct_series, sample, upload
from tests.support.live import ThreadServer

pytestmark = pytest.mark.timeout(300)

WIDTH = PHONE["viewport"]["width"]
TIMEZONE = "Asia/Shanghai"  # where the doctors are: UTC+8, no daylight saving


def _photo() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 160)).save(buf, "JPEG")
    return buf.getvalue()


def _pdf() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(0, 10, "CA-125: 35 U/mL")
    return bytes(pdf.output())


@pytest.fixture(scope="module")
def phone_app(database_url, tmp_path_factory):
    """One app on empty tables for the module."""
    yield from app_on_empty_tables(database_url, tmp_path_factory.mktemp("phone"))


@pytest.fixture(scope="module")
def world(phone_app):
    """The demo accounts and consortium, with a case at each step a doctor meets: a draft with images
    and documents, one answered (reports, a question, chat, a signed opinion), one accepted, one in
    the pool's queue, a published teaching case, one awaiting the gp's consent, and history for the
    dashboards. Returns the ids the page paths name."""
    from app.accounts import service as accounts
    from app.accounts.demo import seed_demo
    from app.accounts.models import User
    from app.extensions import db
    from app.metrics.history import seed_history
    from app.orgs.models import Org

    with phone_app.app_context():
        seed_demo()
        db.session.commit()
        users = {email.split("@")[0]: uid for email, uid in db.session.execute(sa.select(User.email, User.id))}
        tokens = {who: accounts.issue_token(user=db.session.get(User, uid), ttl=None)[0] for who, uid in users.items()}
        db.session.commit()
        orgs = dict(db.session.execute(sa.select(Org.name, Org.id)).all())
    client = phone_app.test_client()
    gp, gyn, rad = (ApiClient(client, tokens[w]) for w in ("gp", "gyn", "radiology"))
    ids = {"consortium": orgs["湘江妇儿医联体"], "pool": orgs["妇科会诊组"]}

    def new(**body):
        r = gp.post("/api/cases", json={"title": "卵巢囊实性包块待查（46岁，绝经前）",
                                        "clinical_question": "左附件区囊实性包块，良恶性如何判断？是否需要手术？",
                                        "specialty": "gynecology", **body})
        assert r.status_code == 201, r.json
        return r.json["id"]

    def do(api, case_id, path, body=None):
        r = api.post(f"/api/cases/{case_id}/{path}", json=body)
        assert r.status_code in (200, 201), (path, r.json)

    def with_ct(case_id, files=None):
        r = gp.post(f"/api/cases/{case_id}/files", data={"files": files or upload([sample("CT_small.dcm")])},
                    content_type="multipart/form-data")
        assert r.json["accepted"], r.json

    ids["draft"] = new(summary="超声：左附件区 5 cm 囊实性包块，CA-125 35 U/mL。", urgency="urgent",
                       patient={"age": 46, "sex": "female"})
    with_ct(ids["draft"], upload([sample("CT_small.dcm")])
            + [(io.BytesIO(b), n) for n, b in ct_series(3, series_uid="1.2.826.0.1.3680043.2.1125.77")]
            + [(io.BytesIO(_photo()), "slide-photo-2026-12-07-left-adnexa.jpg"),
               (io.BytesIO(_pdf()), "lab-report.pdf")])

    ids["answered"] = case_id = new(patient={"age": 46, "sex": "female"})
    with_ct(case_id)
    do(gp, case_id, "share", {"specialist_id": users["gyn"], "message": "麻烦您看看，谢谢！"})
    do(gyn, case_id, "accept")
    do(gyn, case_id, "participants", {"user_id": users["radiology"], "discipline": "radiology"})
    do(rad, case_id, "reports", {"body": "左附件区见囊实性包块，大小约 5.1×4.3 cm，实性部分可见血流信号。"})
    do(gyn, case_id, "questions", {"question": "既往有无手术史？"})
    do(gp, case_id, "answers", {"answer": "无手术史"})
    for n, (api, body) in enumerate(((gp, "您好，影像已上传"), (gyn, "收到，我看一下实性成分"))):
        r = api.post(f"/api/cases/{case_id}/messages", json={"body": body, "client_id": f"phone-pages-{n}"})
        assert r.status_code == 201, r.json
    do(gyn, case_id, "opinion", {"diagnosis": "卵巢交界性肿瘤可能", "differential": ["浆液性囊腺瘤", "卵巢癌"],
                                 "recommendations": "建议腹腔镜手术，术中冰冻病理。", "follow_up": "术后 3 个月复查"})

    ids["accepted"] = case_id = new()
    do(gp, case_id, "share", {"specialist_id": users["gyn"]})
    do(gyn, case_id, "accept")

    ids["queued"] = case_id = new(urgency="urgent")
    with_ct(case_id)
    do(gp, case_id, "share", {"org_id": ids["consortium"]})

    def closed_and_proposed(key):
        case_id = new()
        with_ct(case_id)
        do(gp, case_id, "share", {"specialist_id": users["gyn"]})
        do(gyn, case_id, "accept")
        do(gyn, case_id, "opinion", {"diagnosis": "卵巢交界性肿瘤可能", "recommendations": "腹腔镜手术"})
        do(gp, case_id, "close", {"rating": 4})
        r = gyn.post(f"/api/cases/{case_id}/teaching", json={
            "org_id": ids["pool"], "note": "交界性肿瘤的影像特点：实性成分与血流",
            "tags": {"specialty": "gynecology", "keywords": ["交界性肿瘤"], "difficulty": "advanced"}})
        assert r.status_code == 201, r.json
        ids[key] = r.json["id"]
        return case_id

    reviewed = closed_and_proposed("teaching")
    r = gp.post(f"/api/teaching/{ids['teaching']}/consent", json={"agree": True})
    assert r.status_code == 200, r.json
    r = ApiClient(client, tokens["gyn2"]).post("/api/peer-reviews", json={
        "case_id": reviewed, "score": "major", "teaching_note": "应先考虑交界性肿瘤"})
    assert r.status_code == 201, r.json
    closed_and_proposed("proposed")

    with phone_app.app_context():
        seed_history(cases=120)
        db.session.commit()
    return ids


@pytest.fixture(scope="module")
def server(phone_app, world):
    live = ThreadServer(phone_app).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def phone_as(browser, server):
    """A logged-in phone page per demo user (None: logged out), kept for the module: ``phone_as("gp")``."""
    pages, contexts = {}, []

    def page_for(who):
        if who not in pages:
            context = browser.new_context(base_url=server.url, locale="zh-CN", timezone_id=TIMEZONE, **PHONE)
            context.set_default_timeout(15_000)
            contexts.append(context)
            page = context.new_page()
            if who is not None:
                page.goto("/login")
                page.fill("input[name=email]", f"{who}@demo.huizhen")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(f"{server.url}/")
            pages[who] = page
        return pages[who]

    yield page_for
    for context in contexts:
        context.close()


@pytest.fixture
def problems():
    """Script errors and failed requests a page reports while a test runs (pages are shared)."""
    found: list[str] = []
    watched = []

    def watch(page, *, allow=()):
        def on_error(exc):
            found.append(f"page error: {exc}")

        def on_console(msg):
            if msg.type == "error" and not any(a in msg.text for a in allow):
                found.append(f"console: {msg.text}")

        page.on("pageerror", on_error)
        page.on("console", on_console)
        watched.append((page, on_error, on_console))
        return page

    watch.found = found
    yield watch
    for page, on_error, on_console in watched:
        page.remove_listener("pageerror", on_error)
        page.remove_listener("console", on_console)


def open_in(page, lang: str, path: str) -> None:
    """Go to ``path`` in ``lang`` (the language switch sets the session's language and redirects)."""
    page.goto(f"/lang/{lang}?next={path}")
    page.wait_for_load_state("networkidle")


LANGS = ["zh", "en"]
PAGES = {
    "login": (None, "/login"),
    "inbox": ("gp", "/"),
    "inbox-specialist": ("gyn", "/"),
    "new-case": ("gp", "/cases/new"),
    "case-draft-upload-share": ("gp", "/cases/{draft}"),
    "case-opinion-close": ("gp", "/cases/{answered}"),
    "case-opinion-editor": ("gyn", "/cases/{accepted}"),
    "case-participant": ("radiology", "/cases/{answered}"),
    "case-in-pool": ("coordinator", "/cases/{queued}"),
    "viewer-room": ("gyn", "/cases/{answered}/viewer"),
    "teaching": ("gyn2", "/teaching"),
    "teaching-case": ("gyn", "/teaching/{teaching}"),
    "teaching-consent": ("gp", "/teaching/{proposed}"),
    "teaching-viewer": ("gyn", "/teaching/{teaching}/viewer"),
    "orgs": ("coordinator", "/orgs"),
    "consortium-admin": ("consortium", "/orgs/{consortium}"),
    "pool-admin": ("consortium", "/orgs/{pool}"),
    "triage-queue": ("coordinator", "/orgs/{pool}/queue"),
    "group-inbox": ("coordinator", "/orgs/{pool}/cases"),
    "consortium-dashboard": ("consortium", "/orgs/{consortium}/dashboard"),
    "pool-dashboard": ("coordinator", "/orgs/{pool}/dashboard"),
}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", PAGES)
def test_page_fits_a_phone_without_script_errors(phone_as, world, problems, name, lang):
    who, path = PAGES[name]
    page = problems(phone_as(who))
    open_in(page, lang, path.format(**world))
    assert page.evaluate("document.documentElement.lang") == ("zh-CN" if lang == "zh" else "en")
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    assert problems.found == []


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("who", "path"), [("gp", "/"), ("gyn2", "/teaching")], ids=["inbox", "teaching"])
def test_search_box_keeps_the_phone_width_and_filters_go_below_it(phone_as, lang, who, path):
    """The search form was a flex row: the filters sat beside the words box and squeezed it to a
    few characters (once the inbox's filters were opened, to 60 px beside a column of selects)."""
    page = phone_as(who)
    open_in(page, lang, path)
    form = page.locator("form.search")
    if form.locator("details").count():
        form.locator("summary").click()
    box = form.locator("input[type=search]").bounding_box()
    row = form.locator(".search-row").bounding_box()
    assert box["width"] >= WIDTH / 2
    for other in form.locator(":scope > :not(.search-row)").all():
        assert other.bounding_box()["y"] >= row["y"] + row["height"] - 1  # below the words box, not beside it
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH


@pytest.mark.parametrize("lang", LANGS)
def test_close_form_radios_sit_beside_their_labels(phone_as, world, lang):
    """Each radio of the close-out survey sat centred on a line of its own above its words, so the
    referring doctor could not tell which circle answered which choice."""
    page = phone_as("gp")
    open_in(page, lang, f"/cases/{world['answered']}")
    labels = page.locator("#close label:has(input[type=radio])")
    assert labels.count() == 12
    for label in labels.all():
        radio = label.locator("input").bounding_box()
        whole = label.bounding_box()
        assert whole["height"] <= 48, label.inner_text()  # one line: radio and words
        middle = whole["y"] + whole["height"] / 2
        assert abs(radio["y"] + radio["height"] / 2 - middle) < 6, label.inner_text()  # not above its words
        assert radio["x"] - whole["x"] < 8, label.inner_text()  # but before them


@pytest.mark.parametrize("lang", LANGS)
def test_gap_table_cells_stay_readable(phone_as, world, lang):
    """The dashboard's gap table squeezed its seven columns into 360 px: names and metrics broke
    after every character ("一/位/匿/名/同/行" down the cell). It now scrolls sideways in its frame."""
    page = phone_as("consortium")
    open_in(page, lang, f"/orgs/{world['consortium']}/dashboard")
    expect(page.locator("#dashboard")).to_have_attribute("data-loaded", "consortium")
    cells = page.locator("#gap-table td, #gap-table th")
    assert cells.count() > 7
    tallest = max(cells.evaluate_all("cells => cells.map(c => c.getBoundingClientRect().height)"))
    line = page.locator("#gap-table td").first.evaluate("c => parseFloat(getComputedStyle(c).lineHeight)")
    assert tallest < 2.5 * line + 8  # at most two lines
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH


@pytest.mark.parametrize(("lang", "take", "release"),
                         [("zh", "我来主讲", "结束主讲"), ("en", "Present", "Stop presenting")])
def test_present_button_says_what_it_does_in_the_page_language(phone_as, world, lang, take, release):
    """Once the room was joined the button's words gave way to a bare "▶" (a play button, on a
    phone) whose only explanation was an English tooltip, "take" or "release", that a phone never shows."""
    page = phone_as("gyn")
    open_in(page, lang, f"/cases/{world['answered']}/viewer")
    expect(page.locator("#room")).to_have_attribute("data-connected", "true")
    button = page.locator("#present-btn")
    expect(button).to_have_text(take)
    button.click()
    expect(page.locator("#presenter-info")).to_have_attribute("data-presenter", str(page.evaluate(
        "JSON.parse(document.getElementById('viewer-data').textContent).me")))
    expect(button).to_have_text(release)
    assert button.get_attribute("title") in (None, take, release)
    button.click()  # the room is shared by the module's tests: nobody presents afterwards
    expect(page.locator("#presenter-info")).to_have_attribute("data-presenter", "")


def _refuse(page, pattern: str, message: str, *, status: int = 409) -> None:
    """Make the server answer requests matching ``pattern`` with a JSON error (only for this page)."""
    page.route(pattern, lambda route: route.fulfill(status=status, content_type="application/json",
                                                    body=json.dumps({"error": message})))


@pytest.fixture
def fresh_page(phone_as):
    """A new tab in a user's logged-in phone context, closed after the test (its routes go with it)."""
    opened = []

    def open_tab(who):
        page = phone_as(who).context.new_page()
        opened.append(page)
        return page

    yield open_tab
    for page in opened:
        page.close()


@pytest.mark.parametrize("lang", LANGS)
def test_a_refused_remove_button_says_why(fresh_page, problems, world, lang):
    """A button without a form (remove a member, mark all read) put the server's refusal in its
    tooltip only: on a phone the tap did nothing visible."""
    page = problems(fresh_page("consortium"))
    _refuse(page, "**/api/orgs/*/members/*", "an org keeps at least one admin")
    page.on("dialog", lambda dialog: dialog.accept())
    open_in(page, lang, f"/orgs/{world['pool']}")
    expect(page.locator("html")).to_have_attribute("data-actions", "ready")
    member = page.locator("#members li[data-user-id]").first
    member.locator("button[data-method=DELETE]").click()
    expect(member.get_by_role("alert")).to_have_text("an org keeps at least one admin")
    expect(member.locator("button[data-method=DELETE]")).to_be_enabled()
    assert problems.found == [] or all("409" in p for p in problems.found)


@pytest.mark.parametrize("lang", LANGS)
def test_a_refused_teaching_consent_says_why(fresh_page, problems, world, lang):
    """The referring doctor's agree / refuse buttons dropped a refused request: nothing on the screen
    changed, and the page threw an unhandled rejection."""
    page = problems(fresh_page("gp"))
    _refuse(page, "**/api/teaching/*/consent", "the proposal was withdrawn")
    open_in(page, lang, f"/teaching/{world['proposed']}")
    expect(page.locator("html")).to_have_attribute("data-teaching", "ready")
    page.locator("#teaching-consent [data-consent=true]").click()
    expect(page.locator("#teaching-consent").get_by_role("alert")).to_have_text("the proposal was withdrawn")
    expect(page.locator("#teaching-consent [data-consent=true]")).to_be_enabled()
    assert all("409" in p for p in problems.found), problems.found


@pytest.mark.parametrize("lang", LANGS)
def test_a_series_that_cannot_be_loaded_says_why(fresh_page, problems, world, lang):
    """When the series' list of images could not be fetched (a dropped link, a store down) the
    viewer stayed black with no word, and the page threw an unhandled rejection."""
    page = problems(fresh_page("gyn"))
    _refuse(page, "**/api/cases/*/instances?*", "object store unavailable", status=503)
    open_in(page, lang, f"/cases/{world['answered']}/viewer")
    expect(page.locator("#slice-info")).to_have_text("object store unavailable")
    assert all("503" in p for p in problems.found), problems.found


SHAPES = [(re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}"), "%Y-%m-%d %H:%M"),
          (re.compile(r"\d{2}-\d{2} \d{2}:\d{2}"), "%m-%d %H:%M"), (re.compile(r"\d{4}-\d{2}-\d{2}"), "%Y-%m-%d")]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("who", "path"), [
    ("gp", "/"), ("gp", "/cases/{answered}"), ("coordinator", "/orgs/{pool}/queue"),
    ("coordinator", "/orgs/{pool}/cases"), ("coordinator", "/cases/{queued}"),
], ids=["inbox", "case", "queue", "group", "trail"])
def test_times_are_the_readers_local_times(phone_as, world, lang, who, path):
    """Timelines, notifications, opinions, due times and case dates were printed in UTC, unmarked:
    a doctor in China (UTC+8) read 15:32 in the timeline for what the room's chat, in local time,
    showed at 23:32, and a case created in the evening carried the previous day's date."""
    page = phone_as(who)
    open_in(page, lang, path.format(**world))
    times = page.locator("main time[datetime]").evaluate_all(
        "nodes => nodes.map(n => [n.getAttribute('datetime'), n.textContent])")
    assert times
    local = timezone(timedelta(hours=8))  # Asia/Shanghai
    for stamp, text in times:
        at = datetime.fromisoformat(stamp.removesuffix("Z")).replace(tzinfo=UTC).astimezone(local)
        shape, fmt = next((s, f) for s, f in SHAPES if s.search(text))
        assert shape.search(text).group() == at.strftime(fmt), (stamp, text)


@pytest.mark.parametrize(("lang", "other_language"), [("zh", re.compile(r"case #|opinion|asked|accepted", re.I)),
                                                      ("en", re.compile(r"病例|会诊|问题"))])
def test_notifications_read_in_the_page_language(phone_as, lang, other_language):
    """Each notification was printed in both languages at once ("王静怡 已接受病例 #2 的会诊 / 王静怡
    accepted case #2"): twice the words to read on a phone, half of them in the other language."""
    page = phone_as("gp")
    open_in(page, lang, "/")
    notes = page.locator("#notifications .notes a").all_inner_texts()
    assert len(notes) >= 3
    for text in notes:
        assert "#" in text  # the case number is kept
        assert not other_language.search(text), text


@pytest.mark.parametrize(("who", "path", "labelled"), [
    ("gp", "/cases/{answered}", ".case-head .people"),
    ("gyn", "/teaching/{teaching}", "#teaching-opinion strong"),
    ("gyn2", "/teaching", ".review-row p.muted"),
    ("consortium", "/orgs/{consortium}", ".org-head .meta"),
    ("coordinator", "/orgs/{pool}/cases", ".holder"),
], ids=["case", "teaching-case", "teaching", "org", "group"])
def test_english_labels_end_with_an_english_colon(phone_as, world, who, path, labelled):
    """English labels ended with the Chinese full-width colon ("Referring doctor：李春梅")."""
    page = phone_as(who)
    open_in(page, "en", path.format(**world))
    texts = page.locator(labelled).all_inner_texts()
    assert texts
    assert [t for t in texts if "：" in t] == []
    assert any(": " in t for t in texts)
    open_in(page, "zh", path.format(**world))
    assert all("：" in t for t in page.locator(labelled).all_inner_texts())


@pytest.mark.parametrize(("lang", "unit"), [("zh", " 小时"), ("en", " h")])
def test_dashboard_hours_in_the_page_language(phone_as, world, lang, unit):
    """The dashboard's hours were "24.0 h" on the Chinese page too."""
    page = phone_as("consortium")
    open_in(page, lang, f"/orgs/{world['consortium']}/dashboard")
    expect(page.locator("#dashboard")).to_have_attribute("data-loaded", "consortium")
    figure = page.locator("#key-figures [data-code=median_hours_to_opinion] strong").inner_text()
    assert re.fullmatch(r"\d+\.\d" + unit, figure), figure


@pytest.mark.parametrize(("lang", "shown"), [("zh", {"dicom": "DICOM 影像", "image": "照片"}),
                                             ("en", {"dicom": "DICOM image", "image": "Photo"})])
def test_upload_says_what_was_received_in_the_page_language(phone_as, world, tmp_path, lang, shown):
    """Each uploaded file's line ended with the server's code for its kind: "已接收 · dicom",
    "已接收 · image" on the Chinese page."""
    page = phone_as("gp")
    open_in(page, lang, f"/cases/{world['draft']}")
    files, n = [], LANGS.index(lang) + 1
    for name, data in ct_series(1, series_uid=f"1.2.826.0.1.3680043.2.1125.8{n}", first=10 * n):
        files.append(tmp_path / f"{lang}-{name}")
        files[-1].write_bytes(data)
    photo = tmp_path / f"{lang}-photo.jpg"
    Image.new("RGB", (64, 48), (10, 40 * n, 30)).save(photo, "JPEG")  # new bytes: not a duplicate
    page.set_input_files("#pick-files", [*map(str, files), str(photo)])
    expect(page.locator(".upload-item.accepted")).to_have_count(2, timeout=30_000)
    statuses = page.locator(".upload-item .upload-status").all_inner_texts()
    assert any(text.endswith(f" · {shown['dicom']}") for text in statuses), statuses
    assert any(text.endswith(f" · {shown['image']}") for text in statuses), statuses


@pytest.mark.parametrize(("lang", "waiting"), [("zh", "正在生成文件…"), ("en", "Preparing the file…")], ids=LANGS)
def test_a_generated_download_shows_it_is_coming_and_why_it_failed(fresh_page, world, lang, waiting):
    """The opinion PDF and the dashboard's report and CSV are made on request: on a slow link a tap
    showed nothing until the file arrived, and a refusal (a month out of range) ended as a failed
    download, its reason never shown."""
    page = fresh_page("consortium")
    held = []
    page.route("**/report.pdf?*", lambda route: held.append(route))  # the server takes its time
    open_in(page, lang, f"/orgs/{world['consortium']}/dashboard")
    expect(page.locator("#dashboard")).to_have_attribute("data-loaded", "consortium")
    page.click("#report-link")
    status = page.locator("#report-link + [role=status]")
    expect(status).to_have_text(waiting)
    assert len(held) == 1
    with page.expect_download() as download:
        held[0].continue_()
    assert download.value.path().read_bytes()[:5] == b"%PDF-"
    expect(status).to_have_text("")
    page.unroute("**/report.pdf?*")
    _refuse(page, "**/report.pdf?*", "month must be between 2000-01 and the current month", status=400)
    page.click("#report-link")
    expect(page.locator("#report-link + [role=status]")).to_have_text(re.compile("^month must be between"))


@pytest.mark.parametrize(("who", "path"), [
    ("coordinator", "/orgs"), ("consortium", "/orgs/{consortium}"), ("consortium", "/orgs/{consortium}/dashboard"),
    ("gp", "/cases/{draft}"), ("gyn", "/cases/{answered}/viewer"), ("gp", "/login"),
], ids=["orgs", "org-admin", "dashboard", "case-attachments", "viewer-room", "login"])
def test_links_and_checkboxes_standing_alone_are_finger_sized(phone_as, world, who, path):
    """An org's links (查看, 分诊队列, 科室/集团收件箱), the dashboard's downloads, a case's attachments
    and the checkbox labels (跟随主讲人, 附上当前图像, 保持登录) were 19-22 px tall: below the 24 px
    a finger needs (WCAG 2.5.8), packed beside one another."""
    page = phone_as(None if path == "/login" else who)
    open_in(page, "zh", path.format(**world))
    targets = page.locator("main :is(.org-links a, .downloads a, .attachments a, label.check)")
    heights = targets.evaluate_all(
        "nodes => nodes.filter(n => n.offsetParent).map(n => [n.textContent.trim(), n.getBoundingClientRect().height])")
    assert heights
    assert [(text, h) for text, h in heights if h < 24] == []
