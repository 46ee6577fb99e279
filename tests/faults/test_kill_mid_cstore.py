"""``kill -9`` of the server while a sender is in the middle of a C-STORE association.

Each C-STORE'd instance is ingested (stored, indexed, committed) before its success status goes
back, so every instance the sender saw acknowledged survives the crash whole: indexed, its object
in the store, de-identified. What was on the wire when the process died is either whole or absent,
never an index row without its object. When the sender sends the whole series again after the
restart, the survivors are recognised as already present and the case ends with each instance once.
"""

import hashlib
import io
import threading
import time

import pydicom
import pytest
import requests
from pynetdicom import AE

from app.extensions import db
from app.imaging.models import Instance
from app.storage import get_store
from tests.conftest import free_port
from tests.imaging.dicom_samples import ct_series

pytestmark = pytest.mark.slow
SLICES = 30
SUCCESS = 0x0000


def _association(port: int, ae_title: str, first: pydicom.Dataset):
    ae = AE(ae_title="CTCONSOLE")
    ae.add_requested_context(first.SOPClassUID, first.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title=ae_title)
    assert assoc.is_established, "the listener refused the case's own AE title"
    return assoc


def _indexed(app, case_id: int) -> list[tuple[str, str]]:
    with app.app_context():
        rows = db.session.execute(db.select(Instance.object_key, Instance.sha256)
                                  .where(Instance.case_id == case_id)).all()
        db.session.remove()
        return [tuple(r) for r in rows]


def test_kill_mid_cstore_keeps_every_acknowledged_instance_whole(app, killable, make_user, make_case, token_for,
                                                                 tmp_path):
    owner = make_user()
    case_id = make_case(owner)
    auth = {"Authorization": f"Bearer {token_for(owner)}"}
    port = free_port()
    # The app fixture's UPLOAD_FOLDER, so the test's app reads the store the killed server wrote.
    server = killable(DICOM_SCP_ENABLED="1", DICOM_HOST="127.0.0.1", DICOM_PORT=str(port),
                      UPLOAD_FOLDER=str(tmp_path / "uploads"))
    live = server.start()
    node = requests.get(f"{live.url}/api/cases/{case_id}/dicom-node", headers=auth, timeout=10).json()
    slices = [pydicom.dcmread(io.BytesIO(data)) for _, data in ct_series(SLICES)]
    original_name = str(slices[0].PatientName)
    assert original_name

    # The sender streams the series from its own thread; the test kills the server once a third is
    # acknowledged, so the kill lands while C-STOREs are still on the wire.
    acked: list[str] = []
    assoc = _association(port, node["ae_title"], slices[0])

    def send():
        for ds in slices:
            status = assoc.send_c_store(ds)
            if status.get("Status") != SUCCESS:  # an aborted association answers an empty status
                return
            acked.append(ds.SOPInstanceUID)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    deadline = time.monotonic() + 60
    while len(acked) < SLICES // 3:
        assert time.monotonic() < deadline, "the listener acknowledged too few instances"
        assert sender.is_alive(), "the association ended before the kill"
        time.sleep(0.01)
    server.kill()
    sender.join(30)
    assoc.abort()
    assert SLICES // 3 <= len(acked) < SLICES, "the kill did not land inside the association"

    # Every acknowledged instance is indexed; every indexed instance's object is there, whole
    # (its bytes hash to the indexed sha256) and de-identified.
    indexed = _indexed(app, case_id)
    assert len(acked) <= len(indexed) <= len(acked) + 1  # at most the one in flight made it
    with app.app_context():
        store = get_store()
        for key, sha in indexed:
            data = store.read(key)
            assert hashlib.sha256(data).hexdigest() == sha
            assert str(pydicom.dcmread(io.BytesIO(data)).get("PatientName", "")) != original_name

    # Restarted, the sender sends the whole series again: all succeed, survivors are duplicates.
    live = server.start()
    assoc = _association(port, node["ae_title"], slices[0])
    try:
        statuses = [assoc.send_c_store(ds).get("Status") for ds in slices]
    finally:
        assoc.release()
    assert statuses == [SUCCESS] * SLICES
    assert len(_indexed(app, case_id)) == SLICES
    items = requests.get(f"{live.url}/api/cases/{case_id}/instances", headers=auth, timeout=10).json()["items"]
    assert len(items) == len({i["sop_instance_uid"] for i in items}) == SLICES

    # The second association's summary counts the survivors as already present.
    timeline = requests.get(f"{live.url}/api/cases/{case_id}/timeline", headers=auth, timeout=10).json()["items"]
    summaries = [e["data"] for e in timeline if e["action"] == "dicom_received"]
    assert summaries[-1]["received"] == SLICES
    assert summaries[-1]["duplicates"] == len(indexed)
    assert summaries[-1]["stored"] == SLICES - len(indexed)
