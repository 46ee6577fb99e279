"""pydicom's complaints about an uploaded file's invalid values reach no log or stderr with the value.

pydicom quotes the value it complains about ("Invalid value for VR UI: '1.2.03'"), logged on its
logger and warned to stderr. Before de-identification that value is the patient's: here an original
Study Instance UID, which links the case back to the hospital's own record.
"""

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pydicom

from app.imaging import logs
from tests.imaging import hostile
from tests.imaging.dicom_samples import sample

VALID = "1.2.826.0.1.99.7777"
INVALID = "1.2.826.0.1.99.0777"  # same length; a component with a leading zero is no valid UID
ROOT = Path(__file__).resolve().parents[2]


def _with_invalid_study_uid(*, preamble: bool = True) -> bytes:
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    ds.StudyInstanceUID = VALID
    data = hostile.dicom_bytes(ds, preamble=preamble)
    assert data.count(VALID.encode()) == 1
    return data.replace(VALID.encode(), INVALID.encode())


def test_an_upload_with_an_invalid_uid_is_stored_and_the_uid_is_logged_nowhere(app, api, case_id, caplog, capfd):
    app.config["INGEST_WORKERS"] = 0  # prepared in this process, so that its log is captured here
    # Without the preamble (an old modality export) the file takes pydicom's path, which reads the UID.
    with caplog.at_level(logging.DEBUG):
        r = api.post(f"/api/cases/{case_id}/files",
                     data={"files": [(io.BytesIO(_with_invalid_study_uid(preamble=False)), "ct.dcm")]},
                     content_type="multipart/form-data")
    assert r.status_code == 200, r.json
    assert [a["filename"] for a in r.json["accepted"]] == ["ct.dcm"]
    assert r.json["accepted"][0]["study_uid"] != INVALID  # remapped, as every UID is
    messages = [record.getMessage() for record in caplog.records]
    assert f"Invalid value for VR UI: {logs.WITHHELD}." in " ".join(messages)  # the complaint is kept
    assert not [m for m in messages if INVALID in m]
    _, err = capfd.readouterr()
    assert INVALID not in err


# The ingest workers log in processes of their own (forkserver, which imports app.imaging.ingest first):
# a fresh interpreter that imports only that module stands for one. Its log goes to stderr, as a
# deployment's log handler would take it; pydicom's warnings go to stderr by Python's default.
PREPARE = """
import logging, sys
logging.basicConfig(level=logging.WARNING)
from app.imaging.ingest import prepare_dicom
prepare_dicom(sys.stdin.buffer.read(), force=False, secret="s", pseudonym="P",
              max_frame_pixels=1 << 24, max_decoded_bytes=1 << 28, fast=False)
"""
PYDICOM_ALONE = """
import sys, pydicom
from pydicom.filebase import DicomBytesIO
print(pydicom.dcmread(DicomBytesIO(sys.stdin.buffer.read())).StudyInstanceUID is not None)
"""


def _stderr_of(code: str, data: bytes) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": ""}
    done = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, cwd=ROOT, env=env,
                          timeout=60, check=True)
    return done.stderr.decode()


def test_a_worker_process_says_the_value_is_invalid_without_saying_it():
    data = _with_invalid_study_uid()
    assert INVALID in _stderr_of(PYDICOM_ALONE, data)  # pydicom alone prints it: the file does trigger it
    err = _stderr_of(PREPARE, data)
    assert f"Invalid value for VR UI: {logs.WITHHELD}." in err
    assert INVALID not in err
