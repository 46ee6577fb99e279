"""What a hostile or careless DICOMweb client sends: each answer is a clear 4xx or a normal answer, quickly.

Wildcards that would make a backtracking matcher run for minutes, digits Python's ``isdigit`` takes
but ``int`` refuses, a STOW part pydicom cannot even read, a stored file whose series attributes
cannot be read.
"""

import json
import time

import pydicom
import pytest
from pydicom.uid import generate_uid

from app.dicomweb import qido
from tests.dicomweb.conftest import fresh, stow_body
from tests.imaging import hostile

STOW_TYPE = "multipart/related; type=application/dicom; boundary=b0undary"


@pytest.fixture
def dw(world, api_as):
    api = api_as(world["ids"]["owner"])
    api.root = f"/dicomweb/cases/{world['case_id']}"
    return api


def test_wildcard_matching_takes_linear_time():
    value = "http://localhost/dicomweb/cases/1/studies/2.25.142167222159009795986534284858960570277"
    started = time.monotonic()
    assert not qido._matches({"vr": "UR", "Value": [value]}, "*?" * 6 + "X", "00081190")
    assert time.monotonic() - started < 0.5
    # The PS3.4 meaning is kept: * any run, ? one character, PN without case, others with it.
    assert qido._matches({"vr": "PN", "Value": [{"Alphabetic": "HUIZHEN^CASE12"}]}, "huizhen^case?2", "00100010")
    assert qido._matches({"vr": "LO", "Value": ["A.B*C"]}, "A.B*", "00081030")
    assert qido._matches({"vr": "LO", "Value": ["ab"]}, "a*b*", "00081030")
    assert not qido._matches({"vr": "LO", "Value": ["AB"]}, "a*", "00081030")
    assert not qido._matches({"vr": "LO", "Value": ["abc"]}, "?b", "00081030")
    assert qido._matches({"vr": "LO", "Value": ["line\nbreak"]}, "line?b*", "00081030")


def test_a_reader_cannot_pin_a_cpu_with_wildcards(dw, stored):
    started = time.monotonic()
    r = dw.get(f"{dw.root}/studies?RetrieveURL=" + "*?" * 6 + "X")
    assert (r.status_code, r.json) == (200, [])
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("query", ["limit=%C2%B2", "offset=%C2%B2", "limit=%E2%91%A0"])
def test_paging_with_digits_int_refuses_is_400(dw, query):
    r = dw.get(f"{dw.root}/studies?{query}")
    assert r.status_code == 400, r.data[:200]
    assert r.json["error"].startswith("invalid ")


def test_frame_list_with_digits_int_refuses_is_400(dw, stored):
    study, series, sop = stored["CT_small.dcm"]
    r = dw.get(f"{dw.root}/studies/{study}/series/{series}/instances/{sop}/frames/%C2%B2")
    assert r.status_code == 400, r.data[:200]
    assert r.json["error"] == "invalid frame list"


def test_stow_part_pydicom_cannot_read_fails_alone(dw):
    """A part whose parsing overflows pydicom's recursion is a failed instance; the good part is stored."""
    bad = b"--b0undary\r\nContent-Type: application/dicom\r\n\r\n" + hostile.nested_sequences(300) + b"\r\n"
    good = fresh()
    r = dw.post(f"{dw.root}/studies", data=stow_body([good]).replace(b"--b0undary--\r\n", b"") + bad
                + b"--b0undary--\r\n", content_type=STOW_TYPE)
    assert r.status_code == 202, r.data[:200]
    answer = pydicom.Dataset.from_json(json.loads(r.data))
    assert [f.FailureReason for f in answer.FailedSOPSequence] == [0xC000]
    assert len(answer.ReferencedSOPSequence) == 1


def test_search_survives_a_stored_file_with_an_unreadable_series_attribute(dw, world, stored):
    """A SeriesNumber of "abc" is stored (it is not the pixels' business); searches still answer."""
    ds = fresh()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    data = hostile.spliced(hostile.dicom_bytes(ds), 0x00200011, hostile.encoded(0x00200011, "IS", b"abc "))
    r = dw.post(f"/api/cases/{world['case_id']}/files", data={"files": upload_bytes(data)},
                content_type="multipart/form-data")
    assert r.status_code == 200
    assert len(r.json["accepted"]) == 1, r.json
    for url in ("/studies", "/series", "/instances"):
        r = dw.get(dw.root + url)
        assert r.status_code == 200, (url, r.data[:200])
        assert len(r.json) == len(stored) + 1


def upload_bytes(data: bytes):
    import io

    return [(io.BytesIO(data), "odd-series-number.dcm")]
