"""Conformance with the real dicomweb-client package against a live server (werkzeug, in a thread)."""

import io

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.encaps import get_frame
from pydicom.uid import generate_uid

from tests.dicomweb.conftest import FILES, fresh, stow_body
from tests.imaging.dicom_samples import sample
from tests.support.live import ThreadServer


@pytest.fixture
def server(app):
    live = ThreadServer(app).start()
    yield live
    live.stop()


@pytest.fixture
def dw(server, world, token_for):
    """A DICOMweb client for the owner, on the case's root."""
    return DICOMwebClient(url=f"{server.url}/dicomweb/cases/{world['case_id']}",
                          headers={"Authorization": f"Bearer {token_for(world['ids']['owner'])}", **proxied(server)})


def proxied(server) -> dict:
    # dicomweb-client sends "Host: 127.0.0.1" without the port; the server builds URLs from what
    # the client said, so these tests stand behind a proxy that says where it was reached.
    return {"X-Forwarded-Host": f"127.0.0.1:{server.port}", "X-Forwarded-Proto": "http"}


def stored_file(server, world, token_for, sop) -> pydicom.Dataset:
    r = requests.get(f"{server.url}/api/cases/{world['case_id']}/instances/{sop}/file", timeout=10,
                     headers={"Authorization": f"Bearer {token_for(world['ids']['owner'])}"})
    assert r.status_code == 200
    return pydicom.dcmread(io.BytesIO(r.content))


def test_search_for_studies_with_the_attributes_a_study_list_needs_and_paging(dw, server, stored):
    studies = dw.search_for_studies()
    assert len(studies) == len(FILES)
    ct = next(s for s in studies if s["00080061"]["Value"] == ["CT"])
    ds = pydicom.Dataset.from_json(ct)
    assert ds.StudyInstanceUID == stored["CT_small.dcm"][0]
    assert ds.NumberOfStudyRelatedSeries == 1
    assert ds.NumberOfStudyRelatedInstances == 1
    assert str(ds.PatientName).startswith("HUIZHEN^CASE")
    assert "StudyDate" in ds
    assert "StudyDescription" in ds
    assert ds.RetrieveURL == f"{dw.base_url}/studies/{ds.StudyInstanceUID}"
    pages = [dw.search_for_studies(limit=3, offset=0), dw.search_for_studies(limit=3, offset=3),
             dw.search_for_studies(limit=3, offset=6)]
    assert [len(p) for p in pages] == [3, 1, 0]
    uids = [s["0020000D"]["Value"][0] for p in pages for s in p]
    assert sorted(uids) == sorted(s["0020000D"]["Value"][0] for s in studies)
    assert len(dw.search_for_studies(limit=1, get_remaining=True)) == len(FILES)


def test_search_matching_uids_dates_modality_wildcards_and_includefield(dw, stored):
    ct_study, mr_study = stored["CT_small.dcm"][0], stored["MR_small.dcm"][0]
    found = dw.search_for_studies(search_filters={"StudyInstanceUID": f"{ct_study},{mr_study}"})
    assert sorted(s["0020000D"]["Value"][0] for s in found) == sorted([ct_study, mr_study])
    assert [s["0020000D"]["Value"][0] for s in dw.search_for_studies(search_filters={"ModalitiesInStudy": "MR"})] \
        == [mr_study]
    assert len(dw.search_for_studies(search_filters={"PatientName": "huizhen*"})) == len(FILES)
    assert len(dw.search_for_studies(search_filters={"PatientID": "HUIZHEN^CASE?*"})) == len(FILES)
    assert dw.search_for_studies(search_filters={"StudyDate": "19000101-19000102"}) == []
    assert dw.search_for_studies(search_filters={"StudyInstanceUID": "1.2.3.4"}) == []
    series = dw.search_for_series(ct_study, fields=["BodyPartExamined", "SeriesDescription"])
    assert len(series) == 1
    assert {"00180015", "0008103E", "00201209", "00200011", "00080060"} <= set(series[0])
    every = dw.search_for_series(ct_study, fields=["all"])
    assert set(every[0]) >= set(series[0])


def test_search_for_series_and_instances(dw, stored):
    study, series_uid, sop = stored["SC_rgb_rle_2frame.dcm"]
    series = dw.search_for_series(study)
    assert [pydicom.Dataset.from_json(s).SeriesInstanceUID for s in series] == [series_uid]
    assert series[0]["00201209"]["Value"] == [1]
    assert series[0]["00081190"]["Value"][0] == f"{dw.base_url}/studies/{study}/series/{series_uid}"
    instances = dw.search_for_instances(study, series_uid)
    ds = pydicom.Dataset.from_json(instances[0])
    assert (ds.SOPInstanceUID, ds.NumberOfFrames, ds.Rows) == (sop, 2, 100)
    assert ds.SOPClassUID
    assert dw.search_for_instances(study, series_uid, search_filters={"SOPInstanceUID": "2.25.1"}) == []


def test_retrieve_series_metadata_loads_and_bulk_data_uris_are_absolute(dw, stored, server, world, token_for):
    study, series_uid, sop = stored["CT_small.dcm"]
    items = dw.retrieve_series_metadata(study, series_uid)
    assert len(items) == 1
    ds = pydicom.Dataset.from_json(items[0])
    assert ds.SOPInstanceUID == sop
    uri = items[0]["7FE00010"]["BulkDataURI"]
    assert uri.startswith(f"{server.url}/dicomweb/cases/{world['case_id']}/studies/{study}/")
    original = stored_file(server, world, token_for, sop)
    assert dw.retrieve_bulkdata(uri) == [original.PixelData]
    for name in FILES:
        for item in dw.retrieve_study_metadata(stored[name][0]):
            pydicom.Dataset.from_json(item)


def test_retrieve_instance_is_the_stored_file(dw, stored, server, world, token_for):
    study, series_uid, sop = stored["SC_jpeg_no_color_transform.dcm"]
    ds = dw.retrieve_instance(study, series_uid, sop)
    original = stored_file(server, world, token_for, sop)
    assert ds.SOPInstanceUID == sop
    assert ds.PixelData == original.PixelData
    assert ds.PatientIdentityRemoved == "YES"
    assert [d.SOPInstanceUID for d in dw.retrieve_series(study, series_uid)] == [sop]


def test_retrieve_frames_native_and_compressed_equal_the_stored_frames(dw, stored, server, world, token_for):
    study, series_uid, sop = stored["CT_small.dcm"]
    original = stored_file(server, world, token_for, sop)
    assert dw.retrieve_instance_frames(study, series_uid, sop, [1]) == [original.PixelData]
    assert dw.retrieve_instance_frames(study, series_uid, sop, [1], media_types=(
        ("application/octet-stream", "1.2.840.10008.1.2.1"),)) == [original.PixelData]

    study, series_uid, sop = stored["SC_rgb_rle_2frame.dcm"]
    original = stored_file(server, world, token_for, sop)
    frames = [get_frame(original.PixelData, i, number_of_frames=2) for i in range(2)]
    assert dw.retrieve_instance_frames(study, series_uid, sop, [1, 2]) == frames
    assert dw.retrieve_instance_frames(study, series_uid, sop, [2]) == frames[1:]

    study, series_uid, sop = stored["SC_jpeg_no_color_transform.dcm"]
    original = stored_file(server, world, token_for, sop)
    frame = get_frame(original.PixelData, 0, number_of_frames=1)
    assert dw.retrieve_instance_frames(study, series_uid, sop, [1], media_types=(
        ("image/jpeg", "1.2.840.10008.1.2.4.50"),)) == [frame]
    assert dw.retrieve_instance_frames(study, series_uid, sop, [1]) == [frame]


def test_store_instances_deidentifies_indexes_and_answers_stored_uids(dw, stored):
    new = pydicom.dcmread(sample("CT_small.dcm"))
    original_sop = generate_uid()
    new.SOPInstanceUID = new.file_meta.MediaStorageSOPInstanceUID = original_sop
    again = pydicom.dcmread(sample("MR_small.dcm"))  # already in the case
    answer = dw.store_instances([new, again])
    refs = answer.ReferencedSOPSequence
    assert len(refs) == 2
    assert "FailedSOPSequence" not in answer
    stored_sop = refs[0].ReferencedSOPInstanceUID
    assert stored_sop != original_sop
    assert stored_sop.startswith("2.25.")
    assert refs[1].ReferencedSOPInstanceUID == stored["MR_small.dcm"][2]
    study = stored["CT_small.dcm"][0]  # UIDs are replaced consistently within the case
    assert refs[0].RetrieveURL.startswith(f"{dw.base_url}/studies/{study}/series/")
    fetched = dw.retrieve_instance(study, stored["CT_small.dcm"][1], stored_sop)
    assert str(fetched.PatientName).startswith("HUIZHEN^CASE")
    assert len(dw.search_for_instances(study)) == 2
    # The same instance again is not stored twice.
    dw.store_instances([new])
    assert len(dw.search_for_instances(study)) == 2


def test_store_into_a_study_rejects_instances_of_another_study(dw, stored):
    ct = pydicom.dcmread(sample("CT_small.dcm"))
    ct.SOPInstanceUID = ct.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    mr = pydicom.dcmread(sample("MR_small.dcm"))
    mr.SOPInstanceUID = mr.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    answer = dw.store_instances([ct, mr], study_instance_uid=stored["CT_small.dcm"][0])  # the stored study UID
    assert len(answer.ReferencedSOPSequence) == 1
    assert [(f.ReferencedSOPInstanceUID, f.FailureReason) for f in answer.FailedSOPSequence] == [
        (mr.SOPInstanceUID, 0xA900)]
    with pytest.raises(requests.HTTPError) as err:
        dw.store_instances([mr], study_instance_uid=stored["CT_small.dcm"][0])
    assert err.value.response.status_code == 409
    assert err.value.response.headers["Content-Type"] == "application/dicom+json"


def test_client_errors(dw, stored, server, world, make_link):
    with pytest.raises(requests.HTTPError) as err:
        dw.retrieve_study_metadata("2.25.999")
    assert err.value.response.status_code == 404
    study, series_uid, sop = stored["CT_small.dcm"]
    with pytest.raises(requests.HTTPError) as err:
        dw.retrieve_instance_frames(study, series_uid, sop, [2])
    assert err.value.response.status_code == 404
    read = DICOMwebClient(url=make_link("read")["dicomweb_url"].replace("http://localhost", server.url),
                          headers=proxied(server))
    assert len(read.search_for_studies()) == len(FILES)
    with pytest.raises(requests.HTTPError) as err:
        read.store_instances([pydicom.dcmread(sample("CT_small.dcm"))])
    assert err.value.response.status_code == 403
    anonymous = DICOMwebClient(url=f"{server.url}/dicomweb/cases/{world['case_id']}")
    with pytest.raises(requests.HTTPError) as err:
        anonymous.search_for_studies()
    assert err.value.response.status_code == 401


def test_store_a_chunked_body(server, dw, world, token_for):
    body = stow_body([fresh(), fresh("MR_small.dcm")])
    r = requests.post(f"{dw.base_url}/studies", data=(body[i:i + 1000] for i in range(0, len(body), 1000)),
                      headers={"Authorization": f"Bearer {token_for(world['ids']['owner'])}",
                               "Content-Type": "multipart/related; type=application/dicom; boundary=b0undary"},
                      timeout=30)
    assert r.request.headers["Transfer-Encoding"] == "chunked"
    assert r.status_code == 200, r.text
    assert len(r.json()["00081199"]["Value"]) == 2


def test_read_write_link_stores(server, stored, make_link):
    link = make_link("read_write")
    client = DICOMwebClient(url=link["dicomweb_url"].replace("http://localhost", server.url), headers=proxied(server))
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    answer = client.store_instances([ds])
    assert answer.ReferencedSOPSequence[0].RetrieveURL.startswith(client.base_url)
    assert len(client.search_for_instances(stored["CT_small.dcm"][0])) == 2
