"""PS3.18 details a strict client checks: media types, Accept parsing, 406/415, proxies, STOW bodies."""

import io
import json
import re

import pydicom
import pytest

from tests.dicomweb.conftest import fresh, stow_body


@pytest.fixture
def dw(world, api_as):
    api = api_as(world["ids"]["owner"])
    api.root = f"/dicomweb/cases/{world['case_id']}"
    return api


def parts(response) -> list[tuple[str, bytes]]:
    """Split a multipart/related answer into (part content type, body)."""
    ctype = response.headers["Content-Type"]
    assert ctype.startswith("multipart/related;")
    boundary = re.search(r'boundary="?([^";]+)"?', ctype).group(1).encode()
    out = []
    for chunk in response.data.split(b"--" + boundary)[1:-1]:
        head, _, body = chunk[2:].partition(b"\r\n\r\n")
        out.append((head.decode().split(":", 1)[1].strip(), body[:-2]))
    return out


def test_qido_is_dicom_json_and_no_match_is_200_empty(dw):
    r = dw.get(f"{dw.root}/studies", headers={"Accept": "application/dicom+json"})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/dicom+json"
    r = dw.get(f"{dw.root}/studies?StudyInstanceUID=1.2.3")
    assert (r.status_code, r.json) == (200, [])
    assert dw.get(f"{dw.root}/studies", headers={"Accept": "application/dicom+xml"}).status_code == 406
    assert dw.get(f"{dw.root}/studies?NoSuchKeyword=1").status_code == 400
    assert dw.get(f"{dw.root}/studies?limit=x").status_code == 400


def test_includefield_comma_joined_and_repeated(dw, stored):
    study = stored["CT_small.dcm"][0]
    url = f"{dw.root}/studies/{study}/series"
    plain = dw.get(url).json[0]
    assert "00180015" not in plain
    both = dw.get(f"{url}?includefield=BodyPartExamined,0008103E&includefield=SeriesDate").json[0]
    assert {"00180015", "0008103E", "00080021"} <= set(both)


def test_retrieve_url_follows_the_request_base_and_forwarded_headers(dw, stored):
    study = stored["CT_small.dcm"][0]
    r = dw.get(f"{dw.root}/studies?StudyInstanceUID={study}", base_url="http://huizhen.local:8080")
    assert r.json[0]["00081190"]["Value"] == [f"http://huizhen.local:8080{dw.root}/studies/{study}"]
    r = dw.get(f"{dw.root}/studies?StudyInstanceUID={study}",
               headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pacs.example.org",
                        "X-Forwarded-Prefix": "/huizhen"})
    assert r.json[0]["00081190"]["Value"] == [f"https://pacs.example.org/huizhen{dw.root}/studies/{study}"]
    r = dw.get(f"{dw.root}/studies?StudyInstanceUID={study}", headers={"X-Forwarded-Host": "evil/x"})
    assert r.json[0]["00081190"]["Value"][0].startswith("http://localhost/")


def test_frames_accept_header_parsed_leniently(dw, stored):
    study, series, sop = stored["SC_rgb_rle_2frame.dcm"]
    url = f"{dw.root}/studies/{study}/series/{series}/instances/{sop}/frames/1,2"
    for accept in ('multipart/related; type="application/octet-stream"; transfer-syntax=*',
                   "multipart/related; type=application/octet-stream; transfer-syntax=*",
                   "multipart/related;type=application/octet-stream",
                   'multipart/related; type="image/dicom-rle"', "*/*", None):
        r = dw.get(url, headers={"Accept": accept} if accept else {})
        assert r.status_code == 200, accept
        got = parts(r)
        assert len(got) == 2
        assert all(c.endswith("; transfer-syntax=1.2.840.10008.1.2.5") for c, _ in got)
    first, _ = parts(dw.get(url))[0]
    assert first == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.5"
    r = dw.get(url, headers={"Accept": "multipart/related; type=application/octet-stream; "
                                       "transfer-syntax=1.2.840.10008.1.2.1"})
    assert r.status_code == 406  # no transcoding: RLE frames are sent as stored
    assert dw.get(url, headers={"Accept": 'multipart/related; type="image/jpeg"'}).status_code == 406
    assert dw.get(url.replace("1,2", "x")).status_code == 400
    assert dw.get(url.replace("1,2", "3")).status_code == 404


def test_native_frames_have_a_random_boundary_and_explicit_little_endian(dw, stored):
    study, series, sop = stored["CT_small.dcm"]
    url = f"{dw.root}/studies/{study}/series/{series}/instances/{sop}/frames/1"
    a, b = dw.get(url), dw.get(url)
    assert a.headers["Content-Type"] != b.headers["Content-Type"]
    assert 'type="application/octet-stream"' in a.headers["Content-Type"]
    [(ctype, body)] = parts(a)
    assert ctype == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    assert len(body) == 128 * 128 * 2


def test_retrieve_instance_transfer_syntax_negotiation(dw, stored):
    study, series, sop = stored["CT_small.dcm"]
    url = f"{dw.root}/studies/{study}/series/{series}/instances/{sop}"
    r = dw.get(url, headers={"Accept": "multipart/related; type=application/dicom; transfer-syntax=*"})
    assert r.status_code == 200
    [(ctype, body)] = parts(r)
    assert ctype == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    assert pydicom.dcmread(io.BytesIO(body)).SOPInstanceUID == sop
    jpeg = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    r = dw.get(url, headers={"Accept": jpeg})
    assert r.status_code == 406
    assert dw.get(url, headers={"Accept": "application/zip"}).status_code == 406


def test_rendered_and_thumbnails(dw, stored):
    study, series, sop = stored["CT_small.dcm"]
    base = f"{dw.root}/studies/{study}/series/{series}"
    r = dw.get(f"{base}/instances/{sop}/rendered", headers={"Accept": "image/png"})
    assert (r.status_code, r.mimetype) == (200, "image/png")
    r = dw.get(f"{base}/instances/{sop}/frames/1/rendered?window=40,400&viewport=64,64",
               headers={"Accept": "image/jpeg"})
    assert (r.status_code, r.mimetype, r.data[:2]) == (200, "image/jpeg", b"\xff\xd8")
    for url in (f"{dw.root}/studies/{study}/thumbnail", f"{base}/thumbnail", f"{base}/instances/{sop}/thumbnail"):
        r = dw.get(url)
        assert (r.status_code, r.mimetype) == (200, "image/jpeg"), url
    assert dw.get(f"{base}/thumbnail", headers={"Accept": "image/gif"}).status_code == 406
    assert dw.get(f"{base}/instances/{sop}/rendered?window=40").status_code == 400


@pytest.mark.parametrize("content_type", [
    'multipart/related; type="application/dicom"; boundary="b0undary"',
    "multipart/related; type=application/dicom; boundary=b0undary",
    "multipart/related; boundary=b0undary",
])
def test_stow_quoted_or_unquoted_boundary_answers_exact_media_type(dw, content_type):
    r = dw.post(f"{dw.root}/studies", data=stow_body([fresh()]), content_type=content_type)
    assert r.status_code == 200, r.data
    assert r.headers["Content-Type"] == "application/dicom+json"
    answer = json.loads(r.data)
    assert len(answer["00081199"]["Value"]) == 1


def test_stow_wrong_media_type_is_415_and_partial_failure_is_202(dw):
    r = dw.post(f"{dw.root}/studies", data=b"{}", content_type="application/json")
    assert r.status_code == 415
    r = dw.post(f"{dw.root}/studies", data=stow_body([fresh()]),
                content_type='multipart/related; type="application/dicom+xml"; boundary=b0undary')
    assert r.status_code == 415
    bad = b"--b0undary\r\nContent-Type: application/dicom\r\n\r\nnot dicom at all\r\n"
    body = bad + stow_body([fresh()])
    r = dw.post(f"{dw.root}/studies", data=body,
                content_type="multipart/related; type=application/dicom; boundary=b0undary")
    assert r.status_code == 202
    answer = pydicom.Dataset.from_json(json.loads(r.data))
    assert [f.FailureReason for f in answer.FailedSOPSequence] == [0xC000]
    assert len(answer.ReferencedSOPSequence) == 1
    r = dw.post(f"{dw.root}/studies", data=bad + b"--b0undary--\r\n",
                content_type="multipart/related; type=application/dicom; boundary=b0undary")
    assert r.status_code == 409
    assert r.headers["Content-Type"] == "application/dicom+json"


def test_stow_needs_a_bearer_token_not_a_session(client, world):
    r = client.post(f"/dicomweb/cases/{world['case_id']}/studies", data=stow_body([fresh()]),
                    content_type="multipart/related; type=application/dicom; boundary=b0undary")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
