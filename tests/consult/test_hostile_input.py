"""Hostile socket payloads: every /consult event answers an error ack and nothing is stored.

After each refused payload the connection and the room keep working: the same client posts a
message that the other member receives.
"""

import io

import pydicom
import pytest

from tests.imaging.dicom_samples import sample, upload
from tests.support.live import client_id

EVENTS = ("join", "leave", "message", "typing", "viewer", "present", "annotate", "annotation_delete")
NOT_OBJECTS = (None, "x", 5, 1.5, [1, 2], True)


@pytest.fixture
def room(live, mdt, clients, api_as, make_case):
    """The owner and the consultant joined in the room of a case with one image; another case's id."""
    case_id, ids, tokens = mdt
    r = api_as(ids["owner"]).post(f"/api/cases/{case_id}/files", data={"files": upload([sample("CT_small.dcm")])},
                                  content_type="multipart/form-data")
    sop = r.json["accepted"][0]["sop_instance_uid"]
    owner = clients(live.url, tokens["owner"]).connect()
    consultant = clients(live.url, tokens["consultant"]).connect()
    for c in (owner, consultant):
        assert c.call("join", {"case_id": case_id})["ok"]
    other_case = make_case(ids["outsider"])
    return case_id, ids, owner, consultant, sop, other_case


def _still_works(owner, consultant, case_id):
    body = f"still here {client_id()}"
    ack = owner.call("message", {"case_id": case_id, "body": body, "client_id": client_id()})
    assert ack["ok"] is True, ack
    consultant.wait_for("message", lambda m: m["body"] == body)
    return ack["seq"]


def _stored(api, case_id):
    return (len(api.get(f"/api/cases/{case_id}/messages").json["items"]),
            len(api.get(f"/api/cases/{case_id}/annotations").json["items"]))


def _refused(ack, what):
    assert isinstance(ack, dict), (what, ack)
    assert ack["ok"] is False, (what, ack)
    assert isinstance(ack["error"], str), (what, ack)
    assert ack["error"], (what, ack)


def test_every_event_refuses_payloads_that_are_not_objects(room, api_as):
    case_id, ids, owner, consultant, _, _ = room
    for event in EVENTS:
        for payload in NOT_OBJECTS:
            _refused(owner.call(event, payload), (event, payload))
    _still_works(owner, consultant, case_id)
    assert _stored(api_as(ids["owner"]), case_id) == (1, 0)


@pytest.mark.parametrize("bad_id", [None, "1", 1.5, True, -1, 0, 2**31, 2**63, 2**64, 10**40, [1], {"a": 1}])
def test_every_event_refuses_a_missing_or_wrong_typed_case_id(room, api_as, bad_id):
    case_id, ids, owner, consultant, sop, _ = room
    for event in EVENTS:
        payload = {"body": "x", "client_id": client_id(), "sop_instance_uid": sop, "kind": "text",
                   "points": [[1, 1]], "id": 1, "typing": True}
        if bad_id is not None:
            payload["case_id"] = bad_id
        _refused(owner.call(event, payload), (event, bad_id))
    _still_works(owner, consultant, case_id)
    assert _stored(api_as(ids["owner"]), case_id) == (1, 0)


def test_case_id_one_and_a_half_is_not_case_one(room, api_as):
    case_id, ids, owner, consultant, _, _ = room
    assert case_id == 1  # the first case of a clean database: 1.5 would have been read as it
    _refused(owner.call("leave", {"case_id": 1.5}), "leave 1.5")
    _refused(owner.call("message", {"case_id": 1.5, "body": "x", "client_id": client_id()}), "message 1.5")
    _still_works(consultant, owner, case_id)  # the owner is still in the room


def test_every_event_refuses_wrong_typed_fields(room, api_as):
    case_id, ids, owner, consultant, sop, _ = room
    nan, inf = float("nan"), float("inf")
    bad = {
        "join": [{"since": "x"}, {"since": -1}, {"since": 2**64}, {"since": nan}],
        "message": [{}, {"body": 5, "client_id": "a"}, {"body": "x"}, {"body": "x", "client_id": ["a"]},
                    {"body": "x", "client_id": "a", "image_ref": "x"},
                    {"body": "x", "client_id": "a", "image_ref": {"frame": 2**64}}],
        "typing": [{"typing": "maybe"}, {"typing": [1]}],
        "viewer": [{"zoom": nan}, {"zoom": inf}, {"wc": -inf}, {"pan": [nan, 0]}, {"index": 2**64},
                   {"frame": "x"}, {"rotation": nan}],
        "present": [{"action": "steal"}, {"action": "handover", "user_id": 2**64}, {"action": 5}],
        "annotate": [{"sop_instance_uid": sop, "kind": "line", "points": [[nan, 0], [1, inf]]},
                     {"sop_instance_uid": sop, "kind": "line", "points": [[0, 0], [1, 1e400]]},
                     {"sop_instance_uid": sop, "kind": "text", "points": [[1, 1]], "frame": 2**64},
                     {"sop_instance_uid": sop, "kind": "nope", "points": [[1, 1]]},
                     {"sop_instance_uid": sop, "kind": "text", "points": "x"},
                     {"sop_instance_uid": 5, "kind": "text", "points": [[1, 1]]}],
        "annotation_delete": [{}, {"id": "x"}, {"id": 2**64}, {"id": 10**40}, {"id": 1.5}],
    }
    for event, payloads in bad.items():
        for payload in payloads:
            _refused(owner.call(event, {"case_id": case_id, **payload}), (event, payload))
    _still_works(owner, consultant, case_id)
    assert _stored(api_as(ids["owner"]), case_id) == (1, 0)
    late = consultant.call("join", {"case_id": case_id})
    assert late["ok"] is True
    assert late["viewer"] is None  # no refused view became the late-joiner state


def test_a_large_body_is_refused_and_the_room_keeps_working(room, api_as, live, clients, mdt):
    case_id, ids, owner, consultant, sop, _ = room
    big = "x" * 990_000  # just under the transport's packet limit (max_http_buffer_size, 1,000,000 bytes)
    _refused(owner.call("message", {"case_id": case_id, "body": big, "client_id": client_id()}), "big message")
    _refused(owner.call("annotate", {"case_id": case_id, "sop_instance_uid": sop, "kind": "text",
                                     "points": [[1, 1]], "text": big}), "big annotation")
    _refused(owner.call("viewer", {"case_id": case_id, "series_uid": big}), "big viewer")
    _still_works(owner, consultant, case_id)
    # Past the limit the transport drops that one connection; the room goes on for the others.
    radiology = clients(live.url, mdt[2]["radiology"]).connect()
    assert radiology.call("join", {"case_id": case_id})["ok"]
    radiology.sio.emit("message", {"case_id": case_id, "body": "x" * 1_100_000, "client_id": client_id()},
                       namespace="/consult")
    radiology.sio.sleep(1)
    assert not radiology.sio.connected
    _still_works(owner, consultant, case_id)
    assert _stored(api_as(ids["owner"]), case_id) == (2, 0)


def test_another_cases_id_is_refused_on_every_event(room, api_as):
    case_id, ids, owner, consultant, sop, other_case = room
    for event in EVENTS:
        if event == "leave":
            continue  # leaving a room one is not in is harmless and answers ok
        payload = {"case_id": other_case, "body": "x", "client_id": client_id(), "sop_instance_uid": sop,
                   "kind": "text", "points": [[1, 1]], "id": 1}
        ack = owner.call(event, payload)
        _refused(ack, event)
        assert ack["error"] in ("forbidden", "case not found"), (event, ack)
    _still_works(owner, consultant, case_id)
    assert api_as(ids["outsider"]).get(f"/api/cases/{other_case}/messages").json["items"] == []


def _uploaded(api, case_id, spacing):
    """Upload CT_small.dcm with its PixelSpacing set to ``spacing``; return the instance's sop uid."""
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.PixelSpacing = spacing
    buffer = io.BytesIO()
    ds.save_as(buffer)
    r = api.post(f"/api/cases/{case_id}/files", data={"files": [(io.BytesIO(buffer.getvalue()), "wide.dcm")]},
                 content_type="multipart/form-data")
    return r.json["accepted"][0]["sop_instance_uid"]


def test_annotation_points_are_bounded_and_no_length_is_infinite(room, api_as):
    """Finite but huge points (or a huge PixelSpacing) once measured an infinite line: stored, then sent
    to every member as ``Infinity``, which no browser's JSON parser reads (their annotation list broke)."""
    case_id, ids, owner, consultant, sop, _ = room
    for points in ([[-1e308, 0], [1e308, 0]], [[0, 0], [1e12, 1e12]], [[-5e5, 3], [4, 5]]):
        _refused(owner.call("annotate", {"case_id": case_id, "sop_instance_uid": sop, "kind": "line",
                                         "points": points}), points)
    _refused(owner.call("annotate", {"case_id": case_id, "sop_instance_uid": sop, "kind": "text",
                                     "points": [[1e300, 1]], "text": "远"}), "text")
    api = api_as(ids["owner"])
    huge = _uploaded(api, case_id, ["1e305", "1e305"])  # finite and positive, so kept as the spacing
    ack = owner.call("annotate", {"case_id": case_id, "sop_instance_uid": huge, "kind": "line",
                                  "points": [[0, 0], [60000, 60000]]})
    assert ack["ok"] is True, ack
    assert ack["annotation"]["length_mm"] is None  # not measurable, rather than infinite
    r = api.get(f"/api/cases/{case_id}/annotations")
    assert "Infinity" not in r.get_data(as_text=True)
    assert [a["length_mm"] for a in r.json["items"]] == [None]
    _still_works(owner, consultant, case_id)


def test_a_text_annotation_without_text_is_refused(room):
    """It was stored and sent as an invisible mark that nobody could see to delete."""
    case_id, _ids, owner, consultant, sop, _ = room
    for text in ("", "   "):
        _refused(owner.call("annotate", {"case_id": case_id, "sop_instance_uid": sop, "kind": "text",
                                         "points": [[10, 10]], "text": text}), text)
    _still_works(owner, consultant, case_id)


def test_an_image_reference_must_name_an_image_of_the_case(room, api_as):
    """A message's or an opinion's link to an image was stored whatever it named: a link that opens nothing,
    or names another case's image to everyone in this room."""
    case_id, ids, owner, consultant, sop, other_case = room
    outsider = api_as(ids["outsider"])
    r = outsider.post(f"/api/cases/{other_case}/files", data={"files": upload([sample("MR_small.dcm")])},
                      content_type="multipart/form-data")
    foreign = r.json["accepted"][0]
    series = api_as(ids["owner"]).get(f"/api/cases/{case_id}").json["studies"][0]["series"][0]["series_uid"]
    bad = [{"sop_instance_uid": "1.2.3.4"}, {"sop_instance_uid": foreign["sop_instance_uid"]},
           {"series_uid": foreign["series_uid"]}, {"sop_instance_uid": sop, "frame": 2},
           {"sop_instance_uid": sop, "series_uid": foreign["series_uid"]}]
    for ref in bad:
        _refused(owner.call("message", {"case_id": case_id, "body": "看这里", "client_id": client_id(),
                                        "image_ref": ref}), ref)
        r = api_as(ids["consultant"]).put(f"/api/cases/{case_id}/opinion/draft",
                                          json={"diagnosis": "x", "image_refs": [{"sop_instance_uid": sop}, ref]})
        assert r.status_code == 400, (ref, r.json)
        assert r.json["detail"] == {"index": 1}
    good = {"series_uid": series, "sop_instance_uid": sop, "frame": 1}
    ack = owner.call("message", {"case_id": case_id, "body": "看这里", "client_id": client_id(), "image_ref": good})
    assert ack["ok"] is True, ack
    r = api_as(ids["consultant"]).put(f"/api/cases/{case_id}/opinion/draft", json={"image_refs": [good]})
    assert r.status_code == 200, r.json
    assert [m["image_ref"] for m in api_as(ids["owner"]).get(f"/api/cases/{case_id}/messages").json["items"]
            if m["image_ref"]] == [good]
