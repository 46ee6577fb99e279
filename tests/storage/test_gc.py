"""storage-gc on the embedded store: it looks where case objects are put, and only there."""

import io

from app.storage import case_key, get_store


def put(store, key: str) -> str:
    store.put(key, io.BytesIO(b"x"), 1, "application/octet-stream")
    return key


def test_gc_removes_unreferenced_case_objects_and_nothing_outside_cases(app, runner, make_user, make_case):
    case_id = make_case(make_user())
    with app.app_context():
        store = get_store()
        orphan = put(store, case_key(case_id, "dicom", suffix=".dcm"))
        other = put(store, "exports/report.pdf")
    result = runner.invoke(args=["storage-gc", "--older-than-minutes", "0"])
    assert result.exit_code == 0, result.output
    assert "removed 1 " in result.output
    with app.app_context():
        assert not get_store().exists(orphan)
        assert get_store().exists(other)


def test_gc_removes_temp_files_a_crash_left_behind_but_not_fresh_ones(app, runner, make_user, make_case):
    import os
    import time

    case_id = make_case(make_user())
    with app.app_context():
        store = get_store()
        folder = store.root / case_key(case_id, "dicom", suffix=".dcm").rsplit("/", 1)[0]
    folder.mkdir(parents=True, exist_ok=True)
    stale, fresh = folder / ".part-crashed", folder / ".part-in-flight"
    for f in (stale, fresh):
        f.write_bytes(b"half an upload")
    hour_ago = time.time() - 2 * 3600
    os.utime(stale, (hour_ago, hour_ago))
    result = runner.invoke(args=["storage-gc"])  # the default grace period: one hour
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert fresh.exists()
