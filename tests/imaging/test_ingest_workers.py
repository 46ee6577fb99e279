"""Uploads prepared by the pool of worker processes: same answers, same files, and a dead worker costs nothing."""

import hashlib
import io
import os
import signal

import pydicom
import pytest

from app.extensions import db
from app.imaging import workers
from app.imaging.models import Instance
from tests.imaging.dicom_samples import ct_series, read, sample, upload
from tests.imaging.hostile import dicom_bytes, huge_frame_dicom, lying_transfer_syntax, truncated_dicom

FILES = ["CT_small.dcm", "MR_small_implicit.dcm", "JPEG2000.dcm", "MR_small_bigendian.dcm", "rtplan.dcm"]


@pytest.fixture
def app_overrides():
    return {"INGEST_WORKERS": 2}


def post(api, case_id, files):
    return api.post(f"/api/cases/{case_id}/files", data={"files": files}, content_type="multipart/form-data")


HOSTILE = {"bomb.dcm": "frame too large", "truncated.dcm": "truncated", "lying.dcm": "encapsulated",
           "junk.txt": "unsupported file type"}


def mixed_upload() -> list:
    bare = dicom_bytes(pydicom.dcmread(sample("MR_small.dcm")), preamble=False)
    hostile = {"bomb.dcm": huge_frame_dicom(60_000, 60_000), "truncated.dcm": truncated_dicom(),
               "lying.dcm": lying_transfer_syntax(), "junk.txt": b"not a dicom file at all"}
    return [*upload([sample(n) for n in FILES]), (io.BytesIO(bare), "bare"),
            *[(io.BytesIO(data), name) for name, data in hostile.items()]]


def test_pool_answers_and_stores_what_the_request_thread_would(app, api, case_id, make_case, owner):
    """Same accepted files and per-file reasons as without the pool; stored files de-identified, pixels intact."""
    r = post(api, case_id, mixed_upload())
    assert r.status_code == 200, r.json
    assert workers.get_pool(2) is not None
    app.config["INGEST_WORKERS"] = 0
    inline_case = make_case(owner)
    inline = post(api, inline_case, mixed_upload())
    assert inline.status_code == 200, inline.json

    def names(answer, key):
        return [(e["filename"], e.get("error"), e.get("kind")) for e in answer.json[key]]

    assert names(r, "accepted") == names(inline, "accepted")
    assert names(r, "rejected") == names(inline, "rejected")
    reasons = {e["filename"]: e["error"] for e in r.json["rejected"]}
    assert set(reasons) == set(HOSTILE)
    assert all(HOSTILE[name] in reason for name, reason in reasons.items()), reasons
    stored_once = [e for e in r.json["accepted"] if not e["duplicate"] and e["filename"] in FILES]
    assert len(stored_once) == 4  # the two MR_small variants are one instance
    for entry in stored_once:
        original = pydicom.dcmread(sample(entry["filename"]))
        stored = read(api.get(f"/api/cases/{case_id}/instances/{entry['sop_instance_uid']}/file").data)
        assert stored.PatientIdentityRemoved == "YES"
        assert stored.PatientName == f"HUIZHEN^CASE{case_id}"
        if "PixelData" in original:
            assert stored.PixelData == original.PixelData


def test_a_killed_worker_costs_no_file_and_the_next_upload_gets_a_fresh_pool(api, case_id):
    assert post(api, case_id, upload([sample("CT_small.dcm")])).status_code == 200
    pool = workers.get_pool(2)
    for pid in pool.pids:  # the test kills the processes this pool started
        os.kill(pid, signal.SIGKILL)
    files = [(io.BytesIO(data), name) for name, data in ct_series(6)]
    r = post(api, case_id, files)
    assert r.status_code == 200, r.json
    assert len(r.json["accepted"]) == 6
    assert r.json["rejected"] == []
    fresh = workers.get_pool(2)
    assert fresh is not pool
    r = post(api, case_id, [(io.BytesIO(data), name) for name, data in ct_series(3, first=7)])
    assert len(r.json["accepted"]) == 3
    assert len(api.get(f"/api/cases/{case_id}/instances").json["items"]) == 1 + 6 + 3



@pytest.mark.parametrize("kill_after", [1, 4, 7])
def test_a_worker_killed_in_the_middle_of_a_request_costs_no_file(api, case_id, monkeypatch, kill_after):
    """Calls on the dead worker and on the other one (stopped with the broken pool) are prepared in the server."""
    assert post(api, case_id, upload([sample("CT_small.dcm")])).status_code == 200  # the pool is up
    submit, sent = workers.WorkerPool.submit, []

    def submit_then_kill(self, fn, /, *args, **kwargs):
        job = submit(self, fn, *args, **kwargs)
        sent.append(job)
        if len(sent) == kill_after:
            os.kill(self.pids[0], signal.SIGKILL)
        return job

    monkeypatch.setattr(workers.WorkerPool, "submit", submit_then_kill)
    files = ct_series(10, first=200)
    r = post(api, case_id, [(io.BytesIO(data), name) for name, data in files])
    assert r.status_code == 200, r.json
    assert len(r.json["accepted"]) == 10
    assert r.json["rejected"] == []
    assert len(sent) >= kill_after
    assert workers.segments_in_use() == 0
    assert len(api.get(f"/api/cases/{case_id}/instances").json["items"]) == 11


def test_recorded_digests_are_those_of_the_stored_files_and_the_uploads(app, api, case_id):
    """The workers hash the layout and the source; the index must hold the digests of the real bytes."""
    files = ct_series(4)
    r = post(api, case_id, [(io.BytesIO(data), name) for name, data in files])
    assert r.status_code == 200, r.json
    sources = {hashlib.sha256(data).hexdigest() for _, data in files}
    with app.app_context():
        rows = db.session.execute(db.select(Instance.sop_instance_uid, Instance.sha256, Instance.source_sha256)
                                  .where(Instance.case_id == case_id)).all()
    assert len(rows) == 4
    for uid, sha256, source_sha256 in rows:
        stored = api.get(f"/api/cases/{case_id}/instances/{uid}/file").data
        assert sha256 == hashlib.sha256(stored).hexdigest()
        assert read(stored).PatientIdentityRemoved == "YES"
        assert source_sha256 in sources


def test_shared_memory_segments_are_given_back_after_success_rejection_and_a_dead_worker(api, case_id):
    r = post(api, case_id, mixed_upload())
    assert r.status_code == 200, r.json
    assert workers.segments_in_use() == 0
    assert len(workers._free) <= workers.KEEP_SEGMENTS  # noqa: SLF001 - the free list stays bounded
    pool = workers.get_pool(2)
    for pid in pool.pids:  # the test kills the processes this pool started
        os.kill(pid, signal.SIGKILL)
    r = post(api, case_id, [(io.BytesIO(data), name) for name, data in ct_series(5, first=20)])
    assert r.status_code == 200, r.json
    assert len(r.json["accepted"]) == 5
    assert workers.segments_in_use() == 0


def test_a_segment_too_big_to_keep_is_unlinked_on_release():
    """release() of a segment too big to keep unlinks it at once: nothing is left in /dev/shm."""
    data = os.urandom(workers.KEEP_MAX_BYTES + 1)
    segment = workers.share(io.BytesIO(data), len(data))
    assert workers.read_shared(segment.name, len(data)) == data
    name = segment.name
    workers.release(segment)
    if workers.SHM_DIR.is_dir():
        assert not (workers.SHM_DIR / name).exists()


@pytest.mark.parametrize("pool", [2, 0])
def test_a_stored_file_is_byte_for_byte_its_layout_assembled(app, api, case_id, pool):
    """Stored as pieces over the upload's segment (or bytes), never joined: the bytes are assemble()'s."""
    from app.cases.models import Case
    from app.imaging import dicom, ingest

    app.config["INGEST_WORKERS"] = pool
    files = ct_series(3)
    r = post(api, case_id, [(io.BytesIO(data), name) for name, data in files])
    assert r.status_code == 200, r.json
    with app.app_context():
        options = ingest._dicom_options(db.session.get(Case, case_id), False)  # noqa: SLF001 - the route's own
    for _, data in files:
        layout = ingest.prepare_dicom(data, **options)
        stored = api.get(f"/api/cases/{case_id}/instances/{layout.facts.sop_instance_uid}/file").data
        assert stored == dicom.assemble(layout.pieces, data)
    assert workers.segments_in_use() == 0


def test_the_free_list_keeps_at_most_its_bytes():
    data = bytes(5 << 20)
    segments = [workers.share(io.BytesIO(data), len(data)) for _ in range(20)]
    for segment in segments:
        workers.release(segment)
    assert workers.segments_in_use() == 0
    assert sum(s.size for s in workers._free) <= workers.KEEP_FREE_BYTES  # noqa: SLF001 - the bound under test
    assert len(workers._free) <= workers.KEEP_SEGMENTS  # noqa: SLF001
