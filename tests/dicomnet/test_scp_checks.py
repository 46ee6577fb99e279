"""What the listener re-checks during an association, and what it bounds, for a careless or hostile sender."""

import contextlib
import io
import socket
import tempfile
import threading
import time

import pydicom
import pytest
from pynetdicom import Association, evt

from tests.conftest import free_port
from tests.dicomnet.conftest import scu
from tests.imaging.dicom_samples import ct_series, sample


def instances(api, case_id) -> list[dict]:
    return api.get(f"/api/cases/{case_id}/instances").json["items"]


def test_a_case_withdrawn_during_an_association_takes_no_more_images(scp, api, case_id, node):
    """Admission is not a licence for the association's life: each C-STORE asks whether the case takes images."""
    assoc = scu().associate(node["host"], node["port"], ae_title=node["ae_title"])
    assert assoc.is_established
    try:
        first, second = (pydicom.dcmread(io.BytesIO(data)) for _, data in ct_series(2))
        assert assoc.send_c_store(first).Status == 0x0000
        r = api.post(f"/api/cases/{case_id}/withdraw", json={"reason": "sent to the wrong hospital"})
        assert r.status_code == 200
        refused = assoc.send_c_store(second)
        assert refused.Status == 0x0124  # Refused: Not Authorized
        assert "no longer takes images" in refused.ErrorComment
    finally:
        assoc.release()
    assert len(instances(api, case_id)) == 1


def test_a_specialist_who_declined_can_no_longer_send_into_the_case(scp, api, api_as, make_user, case_id):
    """A share link stops working when its creator leaves the case; the AE title a specialist read does not."""
    specialist, successor = make_user(specialty="radiology"), make_user(specialty="radiology")
    assert api.post(f"/api/cases/{case_id}/share", json={"specialist_id": specialist}).status_code == 200
    learnt = api_as(specialist).get(f"/api/cases/{case_id}/dicom-node").json  # their PACS is set up with it
    assert api_as(specialist).post(f"/api/cases/{case_id}/decline", json={"reason": "not my field"}).status_code == 200
    assert api.post(f"/api/cases/{case_id}/share", json={"specialist_id": successor}).status_code == 200
    assert api_as(specialist).get(f"/api/cases/{case_id}/dicom-node").status_code == 404  # off the case
    assoc = scu(calling="FORMER").associate(learnt["host"], learnt["port"], ae_title=learnt["ae_title"])
    stored = assoc.is_established and assoc.send_c_store(
        pydicom.dcmread(io.BytesIO(ct_series(1)[0][1]))).Status == 0x0000
    if assoc.is_established:
        assoc.release()
    assert not stored


def test_each_holder_of_upload_rights_gets_a_title_of_their_own_and_it_lasts_their_access(
        scp, api, api_as, make_user, owner, case_id, node):
    """The owner's title still works after the specialist's stopped; a participant removed stops at once,
    even within an association that was admitted while they were on the case."""
    specialist = make_user(specialty="radiology")
    assert api.post(f"/api/cases/{case_id}/share", json={"specialist_id": specialist}).status_code == 200
    theirs = api_as(specialist).get(f"/api/cases/{case_id}/dicom-node").json
    assert theirs["ae_title"] != node["ae_title"]
    assert api_as(specialist).get(f"/api/cases/{case_id}/dicom-node").json == theirs  # stable per holder
    assert api.get(f"/api/cases/{case_id}/dicom-node").json == node
    first, second = (pydicom.dcmread(io.BytesIO(data)) for _, data in ct_series(2))
    assoc = scu().associate(theirs["host"], theirs["port"], ae_title=theirs["ae_title"])
    assert assoc.is_established
    try:
        assert assoc.send_c_store(first).Status == 0x0000
        r = api_as(specialist).post(f"/api/cases/{case_id}/decline", json={"reason": "not my field"})
        assert r.status_code == 200
        assert assoc.send_c_store(second).Status == 0x0124
    finally:
        assoc.release()
    owners = scu().associate(node["host"], node["port"], ae_title=node["ae_title"])
    assert owners.is_established
    try:
        assert owners.send_c_store(second).Status == 0x0000
    finally:
        owners.release()
    assert len(instances(api, case_id)) == 2
    # Each association's summary is the holder's whose title was called, not the case owner's.
    assert _wait_for(lambda: len(summaries(api, case_id)) == 2)
    assert [e["actor"]["id"] for e in summaries(api, case_id)] == [specialist, owner]



def summaries(api, case_id) -> list[dict]:
    """The case's timeline entries of DICOM associations, oldest first."""
    items = api.get(f"/api/cases/{case_id}/timeline").json["items"]
    return [e for e in items if e["action"] == "dicom_received"]


def _large_instance(megabytes: int) -> pydicom.Dataset:
    """A CT instance carrying ``megabytes`` MB of 16-bit pixels (1024 columns)."""
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    ds.Columns = 1024
    ds.Rows = megabytes * 512
    ds.PixelData = bytes(megabytes * 1024 * 1024)
    return ds


@pytest.fixture
def receive_dir(tmp_path, monkeypatch):
    """Where the listener's temporary files go during this test (pynetdicom writes them in tempfile's folder)."""
    folder = tmp_path / "received"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _wait_for(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _associate_slowly(node) -> Association:
    """An association of a sender on a slow link: it pauses after each PDU it sends (of up to 1 MB here)."""
    assoc = scu().associate(node["host"], node["port"], ae_title=node["ae_title"],
                                  evt_handlers=[(evt.EVT_PDU_SENT, lambda event: time.sleep(0.02))])
    assert assoc.is_established
    return assoc


class TestSize:
    """A C-STORE is bounded as an upload is (MAX_CONTENT_LENGTH): here 1 MB, counted as the instance arrives."""

    @pytest.fixture
    def app_overrides(self):
        return {"DICOM_PORT": free_port(), "MAX_UPLOAD_MB": 1}

    def test_an_instance_larger_than_an_upload_may_be_is_cut_off_as_it_arrives(
            self, app, scp, api, case_id, node, receive_dir):
        """The association is aborted once the instance passes the bound: at most one more PDU reaches the
        disk, not the 32 MB sent, and nothing is left there; the timeline says why; the next association works."""
        largest = [0]
        watching = threading.Event()

        def watch() -> None:
            while not watching.is_set():
                for f in receive_dir.iterdir():
                    with contextlib.suppress(FileNotFoundError):  # removed between listing and stat
                        largest[0] = max(largest[0], f.stat().st_size)
                time.sleep(0.005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        assoc = _associate_slowly(node)
        try:
            answer = assoc.send_c_store(_large_instance(32))
        finally:
            watching.set()
            watcher.join(5)
        assert "Status" not in answer  # no answer: the association was aborted
        # The sender's own record of the A-ABORT can follow its send_c_store's return by a moment.
        assert _wait_for(lambda: assoc.is_aborted, 5)
        assert 0 < largest[0] <= 2 * 1024 * 1024 + 4096  # the bound, one PDU of up to 1 MB, the file meta
        assert _wait_for(lambda: not any(receive_dir.iterdir()))
        small = pydicom.dcmread(io.BytesIO(ct_series(1)[0][1]))
        again = scu().associate(node["host"], node["port"], ae_title=node["ae_title"])
        try:
            assert again.send_c_store(small).Status == 0x0000
        finally:
            again.release()
        assert len(instances(api, case_id)) == 1
        assert _wait_for(lambda: len(summaries(api, case_id)) == 2)
        cut_off = summaries(api, case_id)[0]["data"]
        assert (cut_off["received"], cut_off["rejected"]) == (1, 1)
        assert cut_off["reasons"] == [{"reason": "instance larger than 1 MB, association aborted", "count": 1}]


def test_an_instance_cut_off_by_its_sender_leaves_no_file_behind(scp, api, case_id, node, receive_dir):
    """A link that drops mid-instance leaves nothing on the disk (a pynetdicom sender's own abort() would wait
    for the whole message to go first: the connection is cut under it instead)."""
    assoc = _associate_slowly(node)
    sender = threading.Thread(target=assoc.send_c_store, args=(_large_instance(32),), daemon=True)
    sender.start()
    assert _wait_for(lambda: any(f.stat().st_size > 1024 * 1024 for f in receive_dir.iterdir()))
    assoc.dul.socket.socket.shutdown(socket.SHUT_RDWR)
    sender.join(30)
    assoc.abort()
    assert _wait_for(lambda: not any(receive_dir.iterdir())), [f.name for f in receive_dir.iterdir()]
    assert instances(api, case_id) == []
