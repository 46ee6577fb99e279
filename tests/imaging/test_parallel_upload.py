"""Parallel uploads of one series, as real HTTP requests to a live server (web client batches, STOW-RS, C-STORE)."""

import threading

import pytest
import requests

from tests.imaging.dicom_samples import ct_series
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


def test_parallel_uploads_of_the_same_slices_store_each_once(live, owner, make_case, token_for, api_as):
    case_id = make_case(owner)
    slices = ct_series(SLICES_PER_REQUEST, study_uid="1.2.826.0.1.3680043.8.498.9",
                       series_uid="1.2.826.0.1.3680043.8.498.10")
    answers = upload_in_parallel(f"{live.url}/api/cases/{case_id}/files", token_for(owner), [slices] * THREADS)
    # Every request either stored the slices, found them stored, or was told to send again.
    assert all(a.status_code in (200, 409) for a in answers), [a.text for a in answers]
    assert any(a.status_code == 200 for a in answers)
    items = api_as(owner).get(f"/api/cases/{case_id}/instances").json["items"]
    assert len(items) == SLICES_PER_REQUEST
