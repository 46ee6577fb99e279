"""A live DICOM listener in this process (pynetdicom threads) on a free port, and a case to send into."""

import os
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from app.dicomnet.scp import StorageSCP
from tests.conftest import free_port
from tests.imaging.dicom_samples import sample

# Native, RLE, JPEG baseline, JPEG extended and JPEG 2000: what consoles and PACS send.
SAMPLES = ("CT_small.dcm", "MR_small.dcm", "SC_rgb_rle.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPEG-lossy.dcm",
           "JPEG2000.dcm")
# storescu proposes a compressed transfer syntax only when told which one (else it decompresses):
# the storescu option that keeps each compressed sample as it is.
COMPRESSED = {"SC_rgb_rle.dcm": "-xr", "SC_rgb_jpeg_dcmtk.dcm": "-xy", "JPEG-lossy.dcm": "-xx",
              "JPEG2000.dcm": "-xw"}


@pytest.fixture
def app_overrides():
    return {"DICOM_PORT": free_port()}


@pytest.fixture
def scp(app):
    """The listener, started on DICOM_PORT with the test app, stopped after the test."""
    listener = StorageSCP(app).start()
    yield listener
    listener.stop()


@pytest.fixture
def owner(make_user):
    return make_user()


@pytest.fixture
def api(api_as, owner):
    return api_as(owner)


@pytest.fixture
def case_id(make_case, owner):
    return make_case(owner)


@pytest.fixture
def node(api, case_id):
    """The case's {ae_title, host, port}, as a sender's operator would read it."""
    r = api.get(f"/api/cases/{case_id}/dicom-node")
    assert r.status_code == 200, r.json
    return r.json


@pytest.fixture
def sample_folder(tmp_path) -> Path:
    """A folder of real uncompressed DICOM files, as a CD export would hold them."""
    folder = tmp_path / "study"
    folder.mkdir()
    for name in SAMPLES:
        if name not in COMPRESSED:
            shutil.copy(sample(name), folder / name)
    return folder


def scu(*, calling: str = "CTCONSOLE") -> AE:
    """A pynetdicom SCU proposing verification and each sample's SOP class in its own transfer syntax."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    for name in SAMPLES:
        ds = pydicom.dcmread(sample(name), stop_before_pixels=True)
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    return ae


def dcmtk(*args: str) -> subprocess.CompletedProcess:
    """Run a dcmtk tool (storescu, echoscu) and return its result."""
    tool = shutil.which(args[0])
    if tool is None:
        if os.environ.get("HZ_REQUIRE_DICOM_TOOLS") == "1":
            pytest.fail(f"dcmtk's {args[0]} is required (HZ_REQUIRE_DICOM_TOOLS=1) but not installed")
        pytest.skip(f"dcmtk's {args[0]} is not installed (Debian package dcmtk)")
    return subprocess.run([tool, *args[1:]], capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
