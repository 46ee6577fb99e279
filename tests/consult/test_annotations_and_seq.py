"""Annotations (persisted, broadcast, measured, author-only delete, kept across a restart) and seq."""

import threading

import pydicom
import pytest

from app import create_app
from app.extensions import socketio
from config import TestingConfig
from tests.conftest import ApiClient
from tests.imaging.dicom_samples import sample, upload
from tests.support.live import ThreadServer, client_id


@pytest.fixture
def with_image(mdt, api_as):
    case_id, ids, tokens = mdt
    r = api_as(ids["owner"]).post(f"/api/cases/{case_id}/files", data={"files": upload([sample("CT_small.dcm")])},
                                  content_type="multipart/form-data")
    return case_id, ids, tokens, r.json["accepted"][0]["sop_instance_uid"]


def test_annotations_are_broadcast_measured_and_deleted_by_their_author(live, with_image, clients):
    case_id, ids, tokens, sop = with_image
    radiology = clients(live.url, tokens["radiology"]).connect()
    consultant = clients(live.url, tokens["consultant"]).connect()
    for c in (radiology, consultant):
        assert c.call("join", {"case_id": case_id, "since": 0})["ok"]
    ack = radiology.call("annotate", {"case_id": case_id, "sop_instance_uid": sop, "frame": 1, "kind": "line",
                                      "points": [[10, 20], [70, 100]], "text": "病灶长径"})
    assert ack["ok"] is True, ack
    a = ack["annotation"]
    spacing = [float(v) for v in pydicom.dcmread(sample("CT_small.dcm")).PixelSpacing]  # row, column (mm)
    expected = ((60 * spacing[1]) ** 2 + (80 * spacing[0]) ** 2) ** 0.5
    assert a["length_mm"] == pytest.approx(expected, abs=0.01)
    seen = consultant.wait_for("annotation")
    assert (seen["id"], seen["kind"], seen["author"]["id"]) == (a["id"], "line", ids["radiology"])
    for kind, points in (("arrow", [[1, 1], [5, 5]]), ("ellipse", [[1, 1], [9, 7]]), ("text", [[30, 30]])):
        assert consultant.call("annotate", {"case_id": case_id, "sop_instance_uid": sop, "kind": kind,
                                            "points": points, "text": "注"})["ok"]
    bad = consultant.call("annotate", {"case_id": case_id, "sop_instance_uid": sop, "kind": "line", "points": [[1, 1]]})
    assert bad == {"ok": False, "error": "a line needs 2 point(s)"}
    refused = consultant.call("annotation_delete", {"case_id": case_id, "id": a["id"]})
    assert refused == {"ok": False, "error": "only the author may delete an annotation"}
    assert radiology.call("annotation_delete", {"case_id": case_id, "id": a["id"]}) == {"ok": True}
    assert consultant.wait_for("annotation_deleted")["id"] == a["id"]


def test_annotations_survive_a_server_restart(app, database_url, tmp_path, with_image, api_as, clients):
    case_id, ids, tokens, sop = with_image
    first = ThreadServer(app).start()
    try:
        c = clients(first.url, tokens["radiology"]).connect()
        c.call("join", {"case_id": case_id, "since": 0})
        ack = c.call("annotate", {"case_id": case_id, "sop_instance_uid": sop, "kind": "arrow",
                                  "points": [[3, 4], [40, 50]], "text": "结节"})
        assert ack["ok"]
        c.abort()
    finally:
        first.stop()
    # A new app and server process state, the same database: the marks load with the images.
    again = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=database_url, UPLOAD_FOLDER=app.config["UPLOAD_FOLDER"],
                       INSTANCE_PATH=str(tmp_path / "again"))
    second = ThreadServer(again).start()
    try:
        import requests

        r = requests.get(f"{second.url}/api/cases/{case_id}/annotations?sop_instance_uid={sop}",
                         headers={"Authorization": f"Bearer {tokens['consultant']}"}, timeout=10)
        assert r.status_code == 200
        [mark] = r.json()["items"]
        assert (mark["kind"], mark["points"], mark["text"]) == ("arrow", [[3, 4], [40, 50]], "结节")
    finally:
        second.stop()
        socketio.init_app(app)  # hand the Socket.IO server back to the test's app


def test_messages_over_http_use_the_same_seq_and_idempotency(mdt, api_as):
    case_id, ids, _ = mdt
    api = api_as(ids["consultant"])
    cid = client_id()
    first = api.post(f"/api/cases/{case_id}/messages", json={"body": "<b>不是HTML</b>", "client_id": cid})
    assert first.status_code == 201
    again = api.post(f"/api/cases/{case_id}/messages", json={"body": "<b>不是HTML</b>", "client_id": cid})
    assert again.status_code == 200
    assert again.json["seq"] == first.json["seq"] == 1
    items = api.get(f"/api/cases/{case_id}/messages?since=0").json["items"]
    assert [m["body"] for m in items] == ["<b>不是HTML</b>"]  # stored as text, as typed
    assert api.get(f"/api/cases/{case_id}/messages?since=x").status_code == 400


def test_concurrent_senders_get_unique_consecutive_seqs(app, mdt, token_for):
    case_id, ids, _ = mdt
    senders = [ids["owner"], ids["consultant"], ids["radiology"]] * 4
    tokens = [token_for(uid) for uid in senders]
    barrier = threading.Barrier(len(tokens))
    seqs, errors = [], []

    def send(i, token):
        api = ApiClient(app.test_client(), token)
        barrier.wait()
        for n in range(5):
            r = api.post(f"/api/cases/{case_id}/messages", json={"body": f"{i}-{n}", "client_id": f"{i}-{n}"})
            (seqs.append(r.json["seq"]) if r.status_code == 201 else errors.append((r.status_code, r.json)))

    threads = [threading.Thread(target=send, args=(i, t)) for i, t in enumerate(tokens)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(seqs) == list(range(1, len(tokens) * 5 + 1))
