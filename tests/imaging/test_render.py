"""Rendering frames: transfer syntaxes, windows, colour, multi-frame, caching, thumbnails."""

import io

import numpy as np
import pydicom
import pytest
import sqlalchemy as sa
from PIL import Image

from tests.imaging.dicom_samples import sample, study_files, upload


def put(api, case_id, name):
    r = api.post(f"/api/cases/{case_id}/files", data={"files": upload([sample(name)])},
                 content_type="multipart/form-data")
    assert r.status_code == 200, r.json
    assert r.json["rejected"] == [], r.json
    return r.json["accepted"][0]["sop_instance_uid"]


def image(r) -> Image.Image:
    assert r.status_code == 200, r.get_json(silent=True)
    return Image.open(io.BytesIO(r.data))


@pytest.mark.parametrize("name", [
    "CT_small.dcm",                        # uncompressed, signed 16-bit
    "MR_small_RLE.dcm",                    # RLE lossless
    "SC_rgb_jpeg_dcmtk.dcm",               # JPEG baseline, YBR colour
    "MR_small_jpeg_ls_lossless.dcm",       # JPEG-LS
    "JPEG2000.dcm",                        # JPEG 2000
    "SC_rgb_jpeg_gdcm.dcm",                # JPEG lossless process 14
])
def test_transfer_syntaxes_render_at_native_size(api, case_id, name):
    original = pydicom.dcmread(sample(name))
    sop = put(api, case_id, name)
    img = image(api.get(f"/api/cases/{case_id}/instances/{sop}/rendered"))
    assert img.format == "PNG"
    assert img.size == (original.Columns, original.Rows)
    colour = original.SamplesPerPixel == 3
    assert img.mode == ("RGB" if colour else "L")
    assert np.asarray(img).std() > 0  # an actual picture, not a flat field


def test_window_changes_the_picture_and_defaults_come_from_the_file(api, case_id):
    sop = put(api, case_id, "CT_small.dcm")
    url = f"/api/cases/{case_id}/instances/{sop}/rendered"
    default = np.asarray(image(api.get(url)), dtype=np.int16)
    narrow = np.asarray(image(api.get(url + "?wc=40&ww=80")), dtype=np.int16)
    wide = np.asarray(image(api.get(url + "?wc=40&ww=2000")), dtype=np.int16)
    assert not np.array_equal(narrow, wide)
    assert narrow.std() > wide.std()  # a narrow window has more contrast
    # CT_small has no window in the file: the CT default (40/400) applies.
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    assert "WindowCenter" not in ds
    ct_default = np.asarray(image(api.get(url + "?wc=40&ww=400")), dtype=np.int16)
    assert np.array_equal(default, ct_default)


def test_window_from_the_file_is_the_default(api, case_id):
    sop = put(api, case_id, "MR_small.dcm")
    ds = pydicom.dcmread(sample("MR_small.dcm"))
    url = f"/api/cases/{case_id}/instances/{sop}/rendered"
    if "WindowCenter" in ds:
        wc, ww = float(ds.WindowCenter), float(ds.WindowWidth)
    else:  # min/max of the modality values
        arr = ds.pixel_array
        wc, ww = (float(arr.min()) + float(arr.max())) / 2, float(arr.max()) - float(arr.min())
    assert np.array_equal(np.asarray(image(api.get(url))), np.asarray(image(api.get(f"{url}?wc={wc}&ww={ww}"))))


def test_windowing_matches_the_dicom_formula(api, case_id):
    sop = put(api, case_id, "CT_small.dcm")
    ds = pydicom.dcmread(sample("CT_small.dcm"))
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    c, w = 100.0, 300.0
    expected = np.clip(((hu - (c - 0.5)) / (w - 1) + 0.5) * 255, 0, 255).astype(np.uint8)
    got = np.asarray(image(api.get(f"/api/cases/{case_id}/instances/{sop}/rendered?wc={c}&ww={w}")))
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_multi_frame_colour_instance(api, case_id):
    sop = put(api, case_id, "SC_rgb_rle_2frame.dcm")
    items = api.get(f"/api/cases/{case_id}/instances").json["items"]
    assert items[0]["frames"] == 2
    url = f"/api/cases/{case_id}/instances/{sop}/rendered"
    one, two = image(api.get(url + "?frame=1")), image(api.get(url + "?frame=2"))
    assert one.mode == two.mode == "RGB"
    assert not np.array_equal(np.asarray(one), np.asarray(two))
    r = api.get(url + "?frame=3")
    assert r.status_code == 400
    assert r.json["error"] == "frame out of range"


def test_size_and_jpeg_format(api, case_id):
    sop = put(api, case_id, "CT_small.dcm")
    r = api.get(f"/api/cases/{case_id}/instances/{sop}/rendered?size=64&format=jpeg")
    assert r.mimetype == "image/jpeg"
    img = image(r)
    assert img.format == "JPEG"
    assert max(img.size) == 64


@pytest.mark.parametrize(("query", "error"), [
    ("frame=abc", "invalid frame"),
    ("wc=40", "wc and ww go together"),
    ("wc=40&ww=-1", "ww must be positive"),
    ("size=5", "size must be between 16 and 4096"),
    ("format=gif", "format must be png or jpeg"),
])
def test_bad_render_parameters_are_400(api, case_id, query, error):
    sop = put(api, case_id, "CT_small.dcm")
    r = api.get(f"/api/cases/{case_id}/instances/{sop}/rendered?{query}")
    assert r.status_code == 400
    assert r.json["error"] == error


def test_rendered_frames_are_cached_and_revalidated(app, api, case_id):
    sop = put(api, case_id, "CT_small.dcm")
    url = f"/api/cases/{case_id}/instances/{sop}/rendered?wc=40&ww=400"
    cache = app.extensions["render_cache"]
    first = api.get(url)
    hits = cache.hits
    second = api.get(url)
    assert cache.hits == hits + 1
    assert first.data == second.data
    etag = first.headers["ETag"]
    assert api.get(url, headers={"If-None-Match": etag}).status_code == 304


def test_series_thumbnail(api, case_id):
    files = study_files("98892001")
    api.post(f"/api/cases/{case_id}/files", data={"files": upload(files)}, content_type="multipart/form-data")
    case = api.get(f"/api/cases/{case_id}").json
    for series in case["studies"][0]["series"]:
        r = api.get(series["thumbnail"])
        img = image(r)
        assert img.format == "JPEG"
        assert max(img.size) <= 128
    assert api.get(f"/api/cases/{case_id}/series/2.25.1/thumbnail").status_code == 404


def test_unknown_instance_is_404(api, case_id):
    r = api.get(f"/api/cases/{case_id}/instances/2.25.999/rendered")
    assert r.status_code == 404
    assert r.json["error"] == "instance not found"


@pytest.mark.parametrize("query", ["wc=nan&ww=400", "wc=40&ww=inf", "wc=-Infinity&ww=1", "wc=40&ww=NaN"])
def test_non_finite_windows_are_400(api, case_id, query):
    sop = put(api, case_id, "CT_small.dcm")
    r = api.get(f"/api/cases/{case_id}/instances/{sop}/rendered?{query}")
    assert r.status_code == 400, (r.status_code, r.data[:200])


def test_the_frame_route_checks_from_ids_and_loosens_nothing(app, client, api, case_id, owner, token_for, make_user,
                                                             api_as):
    """Rendered frames are checked from the token's ids (one query, the token lookup cached a few seconds):
    a deactivated account is still refused at once, an outsider gets the same 404 as for any case route
    (audited), and a logged-in browser session reaches the frames as before."""
    from app.accounts.models import User
    from app.audit.models import AuditEvent
    from app.extensions import db
    from tests.conftest import PASSWORD
    from tests.web.conftest import page_csrf

    sop = put(api, case_id, "CT_small.dcm")
    url = f"/api/cases/{case_id}/instances/{sop}/rendered"
    headers = {"Authorization": f"Bearer {token_for(owner)}"}
    assert client.get(url, headers=headers).status_code == 200  # the token is now cached
    admin = api_as(make_user(role="admin"))
    assert admin.patch(f"/api/admin/users/{owner}", json={"active": False}).status_code == 200
    r = client.get(url, headers=headers)
    assert (r.status_code, r.json) == (401, {"error": "authentication required", "detail": "invalid or expired token"})
    assert admin.patch(f"/api/admin/users/{owner}", json={"active": True}).status_code == 200
    assert client.get(url, headers=headers).status_code == 401  # deactivation revoked the token for good
    headers = {"Authorization": f"Bearer {token_for(owner)}"}
    assert client.get(url, headers=headers).status_code == 200

    outsider = make_user()
    r = client.get(url, headers={"Authorization": f"Bearer {token_for(outsider)}"})
    assert (r.status_code, r.json) == (404, {"error": "case not found"})
    r = client.get(f"/api/cases/{case_id}/instances/2.25.1/rendered", headers=headers)
    assert (r.status_code, r.json) == (404, {"error": "instance not found"})
    with app.app_context():
        refused = db.session.execute(sa.select(AuditEvent.user_id, AuditEvent.action, AuditEvent.status).where(
            AuditEvent.case_id == case_id, AuditEvent.status == 404).order_by(AuditEvent.id)).all()
    assert [tuple(row) for row in refused] == [(outsider, "view_images", 404), (owner, "view_images", 404)]

    assert client.get(url).status_code == 401  # no session, no token
    with app.app_context():
        email = db.session.get(User, owner).email
    r = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": page_csrf(client)})
    assert r.status_code == 302
    assert client.get(url).status_code == 200  # the browser's session
