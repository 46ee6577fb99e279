"""Disk full on the local store (a 1 MB tmpfs): a clear 507, nothing half written or recorded."""

import contextlib
import io
import subprocess
from pathlib import Path

import pytest

from tests.imaging.dicom_samples import ct_series, sample, upload


@pytest.fixture
def tiny_disk(tmp_path):
    """Mount a 1 MB tmpfs where the app fixture puts its store (tmp_path / "uploads")."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],  # noqa: S603, S607
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)  # noqa: S603, S607
    with contextlib.suppress(OSError):
        folder.rmdir()


@pytest.fixture
def app_overrides(tiny_disk):
    return {}  # (asks for tiny_disk so that it is mounted before the app starts)


def post(api, case_id, files):
    return api.post(f"/api/cases/{case_id}/files", data={"files": [(io.BytesIO(d), n) for n, d in files]},
                    content_type="multipart/form-data")


def files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_disk_full_is_507_and_leaves_nothing(api, case_id, tiny_disk):
    earlier = api.post(f"/api/cases/{case_id}/files", data={"files": upload([sample("MR_small.dcm")])},
                       content_type="multipart/form-data")
    assert earlier.status_code == 200
    before = files_in(tiny_disk)
    study = ct_series(40)  # about 1.6 MB: more than the disk holds
    r = post(api, case_id, study)
    assert r.status_code == 507, r.json
    assert r.json["error"] == "object store full"
    assert "space" in r.json["detail"]
    assert files_in(tiny_disk) == before  # no object and no .part-* temp file left
    assert len(api.get(f"/api/cases/{case_id}/instances").json["items"]) == 1
    # Once there is room again, the same upload goes through.
    r = post(api, case_id, study[:5])
    assert r.status_code == 200
    assert len(r.json["accepted"]) == 5


def test_disk_full_with_ingest_workers_gives_back_every_segment(app, api, case_id, tiny_disk):
    """Stored from its segment (writev), a file keeps the segment until its put ends, even a failed one."""
    from app.imaging import workers

    app.config["INGEST_WORKERS"] = 2
    r = post(api, case_id, ct_series(40))
    assert r.status_code == 507, r.json
    assert workers.segments_in_use() == 0
    assert files_in(tiny_disk) == []
    assert api.get(f"/api/cases/{case_id}/instances").json["items"] == []
    r = post(api, case_id, ct_series(5))
    assert r.status_code == 200, r.json
    assert workers.segments_in_use() == 0
    assert len(files_in(tiny_disk)) == 5
