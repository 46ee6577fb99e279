"""The whole consultation through the HTTP API, as the demo accounts."""

import hashlib
import io
import json

import pytest
from pypdf import PdfReader

from app.accounts.demo import DEMO_PASSWORD
from tests.imaging.dicom_samples import sample, study_files, upload


@pytest.fixture
def demo(runner, client):
    assert runner.invoke(args=["seed-demo"]).exit_code == 0

    class Demo:
        def __init__(self):
            self.ids = {}

        def api(self, who):
            from tests.conftest import ApiClient

            r = client.post("/api/auth/token", json={"email": f"{who}@demo.huizhen", "password": DEMO_PASSWORD})
            assert r.status_code == 200
            self.ids[who] = r.json["user"]["id"]
            return ApiClient(client, r.json["token"])

    return Demo()


def files(api, case_id, paths):
    r = api.post(f"/api/cases/{case_id}/files", data={"files": upload(paths)}, content_type="multipart/form-data")
    assert r.status_code == 200, r.json
    assert r.json["rejected"] == []
    return r.json


def test_upload_share_accept_mdt_question_opinion_pdf_and_rating(demo):
    gp, gyn, radiology, pathology = (demo.api(w) for w in ("gp", "gyn", "radiology", "pathology"))
    outsider = demo.api("outsider")

    case = gp.post("/api/cases", json={
        "title": "绝经后阴道流血，子宫内膜增厚", "clinical_question": "内膜病变性质？是否需要手术分期？",
        "summary": "58岁，绝经6年，超声示内膜厚 12 mm。", "patient": {"age": 58, "sex": "F"},
        "urgency": "urgent", "specialty": "gynecology"}).json
    cid = case["id"]
    files(gp, cid, study_files("98892001"))

    # The ranked picker: gynecologists first, with the reasons, never the owner.
    ranked = gp.get(f"/api/specialists?case_id={cid}").json["items"]
    assert ranked[0]["specialty"] == "gynecology"
    assert demo.ids["gp"] not in [r["id"] for r in ranked]
    gyn_entry = next(r for r in ranked if r["id"] == demo.ids["gyn"])
    assert any("gynecology" in reason for reason in gyn_entry["reasons"])
    assert outsider.get(f"/api/cases/{cid}").status_code == 404

    shared = gp.post(f"/api/cases/{cid}/share", json={"specialist_id": demo.ids["gyn"], "message": "请王主任会诊"})
    assert shared.status_code == 200
    assert shared.json["status"] == "submitted"
    assert shared.json["consultant"]["id"] == demo.ids["gyn"]
    assert shared.json["due_at"] is not None
    inbox = gyn.get("/api/notifications").json
    assert inbox["unread"] == 1
    assert inbox["items"][0]["kind"] == "shared"

    assert gyn.post(f"/api/cases/{cid}/accept").json["status"] == "accepted"
    for who, discipline in (("radiology", "radiology"), ("pathology", "pathology")):
        r = gyn.post(f"/api/cases/{cid}/participants", json={"user_id": demo.ids[who], "discipline": discipline})
        assert r.status_code == 201, r.json
    assert {p["discipline"] for p in gp.get(f"/api/cases/{cid}").json["participants"]} == {"radiology", "pathology"}
    assert radiology.get(f"/api/cases/{cid}").status_code == 200

    asked = gyn.post(f"/api/cases/{cid}/questions", json={"question": "请补充病理切片照片和 CA125。"})
    assert asked.json["status"] == "info_requested"
    files(gp, cid, [sample("CT_small.dcm")])
    answered = gp.post(f"/api/cases/{cid}/answers", json={"answer": "已上传；CA125 35 U/ml。"})
    assert answered.json["status"] == "accepted"

    read = {"body": "MR：内膜增厚，浅肌层受侵可能。"}
    assert radiology.post(f"/api/cases/{cid}/reports", json=read).status_code == 201
    assert pathology.post(f"/api/cases/{cid}/reports", json={"body": "活检：子宫内膜样腺癌，G1。"}).status_code == 201

    draft = gyn.put(f"/api/cases/{cid}/opinion/draft", json={"diagnosis": "子宫内膜样腺癌（G1），FIGO IA 期可能"})
    assert draft.status_code == 200
    # A participant cannot sign; nothing is signed yet.
    assert radiology.post(f"/api/cases/{cid}/opinion", json={}).status_code == 403
    assert gp.get(f"/api/cases/{cid}").json["opinion"] is None

    signed = gyn.post(f"/api/cases/{cid}/opinion", json={
        "recommendations": "建议行全面分期手术（全子宫+双附件+前哨淋巴结）。", "differential": ["内膜不典型增生"],
        "follow_up": "术后每3个月随访。"})
    assert signed.status_code == 200, signed.json
    body = signed.json
    assert body["status"] == "answered"
    opinion = body["opinion"]
    assert opinion["diagnosis"].startswith("子宫内膜样腺癌")
    assert opinion["signed_by"]["id"] == demo.ids["gyn"]
    assert {c["discipline"] for c in opinion["contributions"]} == {"radiology", "pathology"}
    content = {k: opinion[k] for k in ("diagnosis", "differential", "recommendations", "follow_up", "contributions")}
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest() == opinion["sha256"]

    pdf = gp.get(f"/api/cases/{cid}/opinion.pdf")
    assert pdf.status_code == 200
    assert pdf.mimetype == "application/pdf"
    # fpdf2 writes a 2-byte encoding CMap stream; pypdf decodes it a byte at a time and puts a NUL
    # before each character (poppler's pdftotext reads it cleanly), so NULs and spaces are dropped.
    raw_text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    text = "".join(raw_text.replace("\x00", "").split())
    for expected in ("远程会诊意见书", "子宫内膜样腺癌", "全面分期手术", "王静怡", opinion["sha256"][:16]):
        assert expected in text, expected

    closed = gp.post(f"/api/cases/{cid}/close", json={"rating": 5, "comment": "意见明确，非常有帮助"})
    assert closed.json["status"] == "closed"
    assert closed.json["rating"] == 5

    actions = [e["action"] for e in gp.get(f"/api/cases/{cid}/timeline").json["items"]]
    assert actions == ["created", "share", "accept", "invited", "invited", "ask", "answer", "report", "report",
                       "sign_opinion", "close"]
    audit = gyn.get(f"/api/cases/{cid}/audit").json["items"]
    logged = {e["action"] for e in audit}
    assert {"create_case", "upload_files", "share", "accept", "invite", "sign_opinion", "opinion_pdf_file",
            "close"} <= logged
    denied = [e for e in audit if e["status"] in (403, 404)]
    assert {(e["user_id"], e["status"]) for e in denied} == {(demo.ids["outsider"], 404), (demo.ids["radiology"], 403)}
    assert all(e["ip"] == "127.0.0.1" for e in audit)

    profile = gp.get(f"/api/specialists/{demo.ids['gyn']}").json
    # The profile's figures are the metrics module's: one answer and one rating are counted but shown
    # as suppressed (below the minimum n of 5), as in the doctor's public evaluation.
    assert profile["stats"] == {"answered_cases": 1, "median_response_hours": None, "mean_rating": None, "ratings": 1}
    rated = next(m for m in profile["track_record"]["metrics"] if m["code"] == "mean_rating")
    assert rated == {"code": "mean_rating", "value": None, "n": 1, "min_n": 5, "suppressed": True}
    kinds = {n["kind"] for n in gp.get("/api/notifications").json["items"]}
    assert {"accepted", "question", "opinion_signed"} <= kinds
