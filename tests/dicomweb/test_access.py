"""Who reaches what through the DICOMweb roots: every route walked from app.url_map, so later routes are covered.

outsider, removed participant → 404; no token → 401; participant reads but cannot store (403);
revoked link → 404, expired link → 401, read link storing → 403. A UID of another case is never found.
"""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.audit.models import AuditEvent
from app.core.time import utcnow
from app.dicomweb.models import ShareLink
from app.extensions import db
from tests.dicomweb.conftest import fresh, stow_body
from tests.imaging.dicom_samples import sample, upload

CASE_ROOT = "/dicomweb/cases/<int:case_id>"
LINK_ROOT = "/dicomweb/link/<token>"
STOW_TYPE = "multipart/related; type=application/dicom; boundary=b0undary"


@pytest.fixture
def app_overrides():
    # Each test here walks every route as one user, most of them refused: past HTTP_REFUSALS_PER_MINUTE
    # (20) the answer would be 429 (tests/audit/test_audit.py checks that); here each route's own is.
    return {"HTTP_REFUSALS_PER_MINUTE": 100_000}


def rules(app, root):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(root):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def url_for(rule, root_value: str, uids) -> str:
    study, series, sop = uids
    values = {"study": study, "series": series, "sop": sop, "frame_list": "1", "frame": "1", "tag_path": "7FE00010"}
    path = rule.rule.split(">", 1)[1]
    return root_value + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], path)


def call(client, method, url, headers=None):
    if method == "POST":
        return client.post(url, data=stow_body([fresh()]), content_type=STOW_TYPE, headers=headers or {})
    return client.get(url, headers=headers or {})


def test_every_dicomweb_route_is_under_both_roots_and_declares_its_permission(app):
    case_rules = {r.rule[len(CASE_ROOT):] for r, _ in rules(app, CASE_ROOT)}
    link_rules = {r.rule[len(LINK_ROOT):] for r, _ in rules(app, LINK_ROOT)}
    assert case_rules == link_rules
    assert len(case_rules) >= 18
    for rule, _ in rules(app, "/dicomweb/"):
        assert hasattr(app.view_functions[rule.endpoint], "case_action"), rule.rule


@pytest.mark.parametrize("who", ["outsider", "removed"])
def test_people_off_the_case_get_404_on_every_dicomweb_route_and_it_is_audited(app, client, token_for, world,
                                                                                stored, who):
    headers = {"Authorization": f"Bearer {token_for(world['ids'][who])}"}
    attempts = 0
    for rule, method in rules(app, CASE_ROOT):
        r = call(client, method, url_for(rule, f"/dicomweb/cases/{world['case_id']}", stored["CT_small.dcm"]),
                 headers)
        assert r.status_code == 404, (who, method, rule.rule, r.status_code)
        assert r.json == {"error": "case not found"}
        attempts += 1
    with app.app_context():
        denied = db.session.scalars(sa.select(AuditEvent).where(
            AuditEvent.user_id == world["ids"][who], AuditEvent.case_id == world["case_id"])).all()
    assert len(denied) == attempts
    assert {e.status for e in denied} == {404}


def test_no_token_is_401_everywhere(app, client, world, stored):
    for rule, method in rules(app, CASE_ROOT):
        r = call(client, method, url_for(rule, f"/dicomweb/cases/{world['case_id']}", stored["CT_small.dcm"]))
        assert r.status_code == 401, (method, rule.rule)


def test_participant_reads_everything_but_cannot_store(app, client, token_for, world, stored):
    headers = {"Authorization": f"Bearer {token_for(world['ids']['participant'])}"}
    for rule, method in rules(app, CASE_ROOT):
        r = call(client, method, url_for(rule, f"/dicomweb/cases/{world['case_id']}", stored["CT_small.dcm"]),
                 headers)
        expected = {403} if method == "POST" else {200}
        assert r.status_code in expected, (method, rule.rule, r.status_code, r.data[:200])


@pytest.mark.parametrize(("state", "status"), [("revoked", 404), ("expired", 401), ("unknown", 404)])
def test_dead_links_open_nothing(app, client, world, stored, make_link, state, status):
    link = make_link("read_write")
    token = link["token"] if state != "unknown" else "hzl_" + "x" * 43
    with app.app_context():
        row = db.session.get(ShareLink, link["id"])
        if state == "revoked":
            row.revoked_at = utcnow()
        if state == "expired":
            row.expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    for rule, method in rules(app, LINK_ROOT):
        r = call(client, method, url_for(rule, f"/dicomweb/link/{token}", stored["CT_small.dcm"]))
        assert r.status_code == status, (state, method, rule.rule, r.status_code)


def test_read_link_reads_everything_but_cannot_store(app, client, world, stored, make_link):
    token = make_link("read")["token"]
    for rule, method in rules(app, LINK_ROOT):
        r = call(client, method, url_for(rule, f"/dicomweb/link/{token}", stored["CT_small.dcm"]))
        expected = 403 if method == "POST" else 200
        assert r.status_code == expected, (method, rule.rule, r.status_code)


def test_a_uid_of_another_case_is_never_found(api_as, make_case, world, stored):
    owner = api_as(world["ids"]["owner"])
    other = make_case(world["ids"]["owner"])
    r = owner.post(f"/api/cases/{other}/files", data={"files": upload([sample("CT_small.dcm")])},
                   content_type="multipart/form-data")
    other_uids = (r.json["accepted"][0]["study_uid"], r.json["accepted"][0]["series_uid"],
                  r.json["accepted"][0]["sop_instance_uid"])
    assert other_uids[0] != stored["CT_small.dcm"][0]  # the same file, other UIDs in another case
    root = f"/dicomweb/cases/{world['case_id']}"
    for query in (f"StudyInstanceUID={other_uids[0]}", "StudyInstanceUID=*", "PatientID=*", "PatientName=*?*"):
        found = [s["0020000D"]["Value"][0] for s in owner.get(f"{root}/studies?{query}").json]
        assert other_uids[0] not in found, query
    assert owner.get(f"{root}/series?SeriesInstanceUID={other_uids[1]}").json == []
    assert owner.get(f"{root}/instances?SOPInstanceUID={other_uids[2]}").json == []
    assert owner.get(f"{root}/studies/{other_uids[0]}/metadata").status_code == 404
    study, series, sop = other_uids
    assert owner.get(f"{root}/studies/{study}/series/{series}/instances/{sop}/frames/1").status_code == 404
    # The owner's own root of the other case finds it, of course.
    assert len(owner.get(f"/dicomweb/cases/{other}/studies?StudyInstanceUID={study}").json) == 1


def test_a_repeated_search_is_audited_once_per_window_and_every_refusal_each_time(app, client, token_for, world,
                                                                                 stored):
    case_id, owner = world["case_id"], world["ids"]["owner"]
    study = stored["CT_small.dcm"][0]
    headers = {"Authorization": f"Bearer {token_for(owner)}", "Accept": "application/dicom+json"}
    root = f"/dicomweb/cases/{case_id}"
    for url in [f"{root}/studies"] * 3 + [f"{root}/studies?Modality=CT"] * 2 + [f"{root}/studies/{study}/series"] * 2:
        assert client.get(url, headers=headers).status_code == 200
    outsider = {"Authorization": f"Bearer {token_for(world['ids']['outsider'])}", "Accept": "application/dicom+json"}
    for _ in range(3):
        assert client.get(f"{root}/studies", headers=outsider).status_code == 404
    with app.app_context():
        rows = db.session.scalars(sa.select(AuditEvent).where(
            AuditEvent.case_id == case_id, AuditEvent.action.like("dicomweb_search%"))).all()
    assert sorted((e.user_id, e.action, e.status) for e in rows) == sorted([
        (owner, "dicomweb_search_studies", 200), (owner, "dicomweb_search_studies", 200),
        (owner, "dicomweb_search_series", 200)] + [(world["ids"]["outsider"], "dicomweb_search_studies", 404)] * 3)
