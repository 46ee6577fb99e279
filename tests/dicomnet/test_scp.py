"""The DICOM listener end to end: dcmtk and pynetdicom senders, a case's AE title as the capability."""

import io
import re

import pydicom
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from tests.dicomnet.conftest import COMPRESSED, SAMPLES, dcmtk, scu
from tests.imaging.dicom_samples import ct_series, sample


def instances(api, case_id) -> list[dict]:
    return api.get(f"/api/cases/{case_id}/instances").json["items"]


def stored_file(api, case_id, sop) -> pydicom.Dataset:
    r = api.get(f"/api/cases/{case_id}/instances/{sop}/file")
    assert r.status_code == 200
    return pydicom.dcmread(io.BytesIO(r.data))


def test_each_case_has_its_own_unguessable_called_ae_title(app, api, api_as, make_user, make_case, case_id, node):
    assert re.fullmatch(r"HZ[A-Z0-9]{14}", node["ae_title"])
    assert node["host"] == "127.0.0.1"
    assert node["port"] == app.config["DICOM_PORT"]
    assert api.get(f"/api/cases/{case_id}/dicom-node").json == node  # issued once, then stable
    other = make_case(make_user())
    assert api.get(f"/api/cases/{other}/dicom-node").status_code == 404
    other_node = api_as(db_owner(app, other)).get(f"/api/cases/{other}/dicom-node").json
    assert other_node["ae_title"] != node["ae_title"]


def db_owner(app, case_id) -> int:
    from app.cases.models import Case
    from app.extensions import db

    with app.app_context():
        return db.session.get(Case, case_id).owner_id


def test_echoscu_is_answered_for_a_case_title_and_refused_for_an_unknown_one(scp, node):
    ok = dcmtk("echoscu", "-aet", "CTCONSOLE", "-aec", node["ae_title"], node["host"], str(node["port"]))
    assert ok.returncode == 0, ok.stderr
    refused = dcmtk("echoscu", "-aet", "CTCONSOLE", "-aec", "HZNOSUCHCASE", node["host"], str(node["port"]))
    assert refused.returncode != 0
    assert "Called AE Title Not Recognized" in refused.stderr + refused.stdout


def test_storescu_folder_lands_in_the_case_deidentified_with_pixels_as_sent(scp, api, case_id, node, sample_folder):
    address = ("-aet", "CTCONSOLE", "-aec", node["ae_title"], node["host"], str(node["port"]))
    r = dcmtk("storescu", "+sd", "-R", *address, str(sample_folder))
    assert r.returncode == 0, r.stderr
    for name, option in COMPRESSED.items():
        r = dcmtk("storescu", option, *address, str(sample(name)))
        assert r.returncode == 0, (name, r.stderr)
    items = instances(api, case_id)
    assert len(items) == len(SAMPLES)
    case = api.get(f"/api/cases/{case_id}").json
    assert sum(len(s["series"]) for s in case["studies"]) >= 4
    originals = {(str(d.Rows), str(d.Columns), str(d.file_meta.TransferSyntaxUID)): d for d in
                 (pydicom.dcmread(sample(name)) for name in SAMPLES)}
    for item in items:
        stored = stored_file(api, case_id, item["sop_instance_uid"])
        assert stored.PatientIdentityRemoved == "YES"
        assert stored.PatientName == f"HUIZHEN^CASE{case_id}"
        original = originals[(str(stored.Rows), str(stored.Columns), str(stored.file_meta.TransferSyntaxUID))]
        assert stored.SOPInstanceUID != original.SOPInstanceUID  # UIDs replaced
        assert stored.PixelData == original.PixelData  # compressed or not, the pixels are untouched
    assert {str(d.file_meta.TransferSyntaxUID) for d in originals.values()} >= {
        "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.91"}


def test_pynetdicom_sender_gets_a_status_per_instance(scp, api, case_id, node):
    assoc = scu().associate(node["host"], node["port"], ae_title=node["ae_title"])
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0x0000
        good = pydicom.dcmread(sample("MR_small.dcm"))
        assert assoc.send_c_store(good).Status == 0x0000
        assert assoc.send_c_store(good).Status == 0x0000  # sent again: already there, stored once
        truncated = pydicom.dcmread(sample("CT_small.dcm"))
        truncated.PixelData = truncated.PixelData[:1000]
        status = assoc.send_c_store(truncated)
        assert status.Status == 0xC000
        assert "pixel data" in status.ErrorComment
    finally:
        assoc.release()
    assert len(instances(api, case_id)) == 1


def test_unknown_called_ae_title_is_rejected_at_association(scp, node):
    assoc = scu().associate(node["host"], node["port"], ae_title="HZ0000000000000")
    assert assoc.is_rejected
    assert assoc.acceptor.primitive.result == 0x01  # rejected-permanent
    assert assoc.acceptor.primitive.diagnostic == 0x07  # called AE title not recognised


def test_association_summary_goes_to_the_timeline_and_the_owner(scp, api, case_id, node):
    assoc = scu(calling="PACS_COUNTY").associate(node["host"], node["port"], ae_title=node["ae_title"])
    slices = [pydicom.dcmread(io.BytesIO(data)) for _, data in ct_series(3)]
    statuses = [assoc.send_c_store(ds).Status for ds in slices + slices[:1]]
    broken = pydicom.dcmread(sample("CT_small.dcm"))
    broken.PixelData = broken.PixelData[:10]
    statuses.append(assoc.send_c_store(broken).Status)
    assoc.release()
    assert statuses == [0, 0, 0, 0, 0xC000]
    summary = wait_for_event(api, case_id, "dicom_received")
    assert summary["data"]["calling_ae_title"] == "PACS_COUNTY"
    assert {k: summary["data"][k] for k in ("received", "stored", "duplicates", "rejected")} == {
        "received": 5, "stored": 3, "duplicates": 1, "rejected": 1}
    assert summary["data"]["reasons"][0]["count"] == 1
    assert "PACS_COUNTY" in summary["note"]
    kinds = [n["kind"] for n in api.get("/api/notifications").json["items"]]
    assert "dicom_received" in kinds


def wait_for_event(api, case_id, action, timeout=10.0) -> dict:
    """Return the case's timeline entry once the listener has written it (after the association closed)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in api.get(f"/api/cases/{case_id}/timeline").json["items"] if e["action"] == action]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no {action} in the timeline")


def test_echo_only_association_leaves_no_summary(scp, api, case_id, node):
    assoc = AE(ae_title="ECHO")
    assoc.add_requested_context(Verification)
    a = assoc.associate(node["host"], node["port"], ae_title=node["ae_title"])
    assert a.send_c_echo().Status == 0
    a.release()
    assert [e for e in api.get(f"/api/cases/{case_id}/timeline").json["items"] if e["action"] == "dicom_received"] == []


def test_institution_allow_list_restricts_calling_ae_titles(app, runner, scp, owner, node):
    from app.accounts.models import User
    from app.extensions import db

    with app.app_context():
        institution_id = db.session.get(User, owner).institution_id
    result = runner.invoke(args=["dicom-peer", "allow", str(institution_id), "pacs_county"])
    assert result.exit_code == 0, result.output
    assert "PACS_COUNTY" in runner.invoke(args=["dicom-peer", "list"]).output
    stranger = scu(calling="LAPTOP").associate(node["host"], node["port"], ae_title=node["ae_title"])
    assert stranger.is_rejected
    assert stranger.acceptor.primitive.diagnostic == 0x03  # calling AE title not recognised
    known = scu(calling="PACS_COUNTY").associate(node["host"], node["port"], ae_title=node["ae_title"])
    assert known.is_established
    known.release()
    removed = runner.invoke(args=["dicom-peer", "remove", str(institution_id), "PACS_COUNTY"])
    assert removed.output.strip() == "removed 1"
    anyone = scu(calling="LAPTOP").associate(node["host"], node["port"], ae_title=node["ae_title"])
    assert anyone.is_established  # no titles listed: the institution accepts any sender again
    anyone.release()


def test_a_withdrawn_case_no_longer_takes_images(scp, api, case_id, node):
    assert api.post(f"/api/cases/{case_id}/withdraw", json={"reason": "sent to the wrong hospital"}).status_code == 200
    assoc = scu().associate(node["host"], node["port"], ae_title=node["ae_title"])
    assert assoc.is_rejected
    assert assoc.acceptor.primitive.diagnostic == 0x07
