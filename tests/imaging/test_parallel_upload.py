"""Parallel uploads of one series, as real HTTP requests to a live server (web client batches, STOW-RS, C-STORE)."""

import io
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
import requests

from tests.dicomweb.conftest import stow_body
from tests.imaging.dicom_samples import ct_series
from tests.imaging.documents import report_pdf
from tests.support.live import ThreadServer

THREADS = 4
SLICES_PER_REQUEST = 3
ROUNDS = 4


@pytest.fixture
def owner(make_user):
    return make_user()


def upload_in_parallel(url: str, token: str, batches: list[list[tuple[str, bytes]]]) -> list[requests.Response]:
    """POST each batch from its own thread, all released at the same moment."""
    barrier = threading.Barrier(len(batches))
    answers: list[requests.Response | Exception] = [None] * len(batches)

    def send(i: int) -> None:
        files = [("files", (name, data, "application/dicom")) for name, data in batches[i]]
        barrier.wait()
        try:
            answers[i] = requests.post(url, files=files, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        except requests.RequestException as exc:
            answers[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return answers


@pytest.fixture
def live(app):
    with ThreadServer(app) as server:
        yield server


def test_parallel_batches_of_one_series_are_all_accepted(live, owner, make_case, token_for, api_as):
    case_id = make_case(owner)
    token = token_for(owner)
    url = f"{live.url}/api/cases/{case_id}/files"
    for r in range(ROUNDS):
        # A new study and series each round: each round races to create their index rows.
        uids = {"study_uid": f"1.2.826.0.1.3680043.8.498.7.{r}", "series_uid": f"1.2.826.0.1.3680043.8.498.8.{r}"}
        batches = [ct_series(SLICES_PER_REQUEST, first=1 + t * SLICES_PER_REQUEST, **uids) for t in range(THREADS)]
        answers = upload_in_parallel(url, token, batches)
        for answer in answers:
            assert isinstance(answer, requests.Response), answer
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["rejected"] == []
            assert [a["duplicate"] for a in body["accepted"]] == [False] * SLICES_PER_REQUEST
        series_uids = {a["series_uid"] for answer in answers for a in answer.json()["accepted"]}
        assert len(series_uids) == 1  # one series, de-identified consistently across the requests

    studies = api_as(owner).get(f"/api/cases/{case_id}").json["studies"]
    assert len(studies) == ROUNDS
    for study in studies:
        [series] = study["series"]
        assert series["instance_count"] == THREADS * SLICES_PER_REQUEST
        items = api_as(owner).get(f"/api/cases/{case_id}/instances?series_uid={series['series_uid']}").json["items"]
        assert [i["instance_number"] for i in items] == list(range(1, THREADS * SLICES_PER_REQUEST + 1))


def test_parallel_uploads_of_the_same_slices_store_each_once(app, live, owner, make_case, token_for, api_as):
    case_id = make_case(owner)
    slices = ct_series(SLICES_PER_REQUEST, study_uid="1.2.826.0.1.3680043.8.498.9",
                       series_uid="1.2.826.0.1.3680043.8.498.10")
    for _ in range(ROUNDS):
        answers = upload_in_parallel(f"{live.url}/api/cases/{case_id}/files", token_for(owner), [slices] * THREADS)
        # Every request succeeds (none is told to send again); each slice is new to exactly one of them,
        # first round, and a duplicate to all of them after.
        assert [a.status_code for a in answers] == [200] * THREADS, [a.text for a in answers]
        new = Counter(e["sop_instance_uid"] for a in answers for e in a.json()["accepted"] if not e["duplicate"])
        assert sum(new.values()) == (SLICES_PER_REQUEST if _ == 0 else 0), new
        assert set(new.values()) <= {1}
        items = api_as(owner).get(f"/api/cases/{case_id}/instances").json["items"]
        assert len(items) == SLICES_PER_REQUEST
    # and once in the object store: the copies of the requests that lost the race were deleted.
    assert len(list(Path(app.config["UPLOAD_FOLDER"]).rglob("*.dcm"))) == SLICES_PER_REQUEST


def test_parallel_stow_requests_of_the_same_instances_all_succeed(live, owner, make_case, token_for, api_as):
    """A DICOMweb client is told 200 (its instances are stored), not 409 for the whole request, when another
    client sent the same instances at the same moment."""
    case_id = make_case(owner)
    datasets = [pydicom.dcmread(io.BytesIO(data)) for _, data in ct_series(
        SLICES_PER_REQUEST, study_uid="1.2.826.0.1.3680043.8.498.11", series_uid="1.2.826.0.1.3680043.8.498.12")]
    body = stow_body(datasets)
    barrier = threading.Barrier(THREADS)

    def send() -> requests.Response:
        barrier.wait()
        return requests.post(f"{live.url}/dicomweb/cases/{case_id}/studies", data=body, timeout=60, headers={
            "Authorization": f"Bearer {token_for(owner)}",
            "Content-Type": "multipart/related; type=application/dicom; boundary=b0undary"})

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(lambda _: send(), range(THREADS)))
    assert [a.status_code for a in answers] == [200] * THREADS, [a.text for a in answers]
    for answer in answers:
        assert len(answer.json()["00081199"]["Value"]) == SLICES_PER_REQUEST
    assert len(api_as(owner).get(f"/api/cases/{case_id}/instances").json["items"]) == SLICES_PER_REQUEST


def test_parallel_uploads_of_the_same_report_store_it_once(app, live, owner, make_case, token_for, api_as):
    """A PDF sent by two requests at once (a double tap on a phone) is one attachment; both requests succeed."""
    case_id = make_case(owner)
    report = [("化验单.pdf", report_pdf())]
    answers = upload_in_parallel(f"{live.url}/api/cases/{case_id}/files", token_for(owner), [report] * THREADS)
    assert [a.status_code for a in answers] == [200] * THREADS, [a.text for a in answers]
    entries = [e for a in answers for e in a.json()["accepted"]]
    assert sorted(e["duplicate"] for e in entries) == [False] + [True] * (THREADS - 1)
    [attachment] = api_as(owner).get(f"/api/cases/{case_id}").json["attachments"]
    assert attachment["id"] == next(e["id"] for e in entries if not e["duplicate"])
    stored = [p for p in Path(app.config["UPLOAD_FOLDER"]).rglob("*") if p.is_file()]
    assert len(stored) == 1
