"""API fuzzing: schemathesis drives every operation of /api/openapi.json with a real token.

The caller is the owner of a case in progress with an uploaded CT instance, a chat message and
an annotation; path parameters naming a case, an instance, a series or a study are mostly set
to those real ids, so generated bodies and queries reach the services rather than stopping at
a 404. Each operation gets a bounded number of examples, derandomized so that every run sends
the same requests. Every answer must be no server error and match the documented schema.
"""

import tempfile
import zlib

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app import create_app
from app.accounts import service as accounts
from app.extensions import db
from config import TestingConfig
from tests.conftest import PASSWORD, app_on_empty_tables
from tests.imaging.dicom_samples import sample, upload

# Enough to hit odd unicode, huge and negative numbers and wrong types in every field, while the
# whole module stays well under two minutes on SQLite.
EXAMPLES = 10

# Operations that cannot be fuzzed meaningfully with generated JSON/query data:
EXCLUDED = (
    # multipart uploads (files, DICOMweb STOW-RS): generated bodies are not DICOM or multipart at
    # all; tests/imaging/test_hostile.py and tests/imaging/test_multipart.py attack them instead.
    ("POST", r"/files$"),
    ("POST", r"^/dicomweb/.*/studies"),
    # revoking the token would turn every later example of the run into a 401.
    ("DELETE", r"^/api/auth/token$"),
)


def _load_schema():
    """Fetch /api/openapi.json from an app of the test configuration (only its routes matter)."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite://", UPLOAD_FOLDER=tmp, INSTANCE_PATH=tmp)
        r = app.test_client().get("/api/openapi.json")
        assert r.status_code == 200
        loaded = schemathesis.openapi.from_dict(r.json)
    for method, pattern in EXCLUDED:
        loaded = loaded.exclude(method=method, path_regex=pattern)
    return loaded


# Loaded at import so that pytest makes one test per operation.
schema = _load_schema()


@pytest.fixture(scope="module")
def fuzz_app(database_url, tmp_path_factory):
    """Yield one app on empty tables for the whole module: a world per operation would cost minutes."""
    yield from app_on_empty_tables(database_url, tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def fuzz_world(fuzz_app):
    """Return the owner's token and the real ids of a case in progress with an uploaded instance."""
    with fuzz_app.app_context():
        inst = accounts.get_or_create_institution(name="模糊测试医院", level="tertiary", region="湖南省 长沙市")
        owner, consultant = (
            accounts.create_user(email=f"{who}@fuzz.huizhen", password=PASSWORD, name=who, specialty=specialty,
                                 title="主治医师", institution=inst, role="doctor")
            for who, specialty in (("owner", "general_practice"), ("consultant", "gynecology")))
        db.session.commit()
        consultant_id = consultant.id
        token = accounts.issue_token(user=owner, ttl=None)[0]
        consultant_token = accounts.issue_token(user=consultant, ttl=None)[0]
        db.session.commit()
    client = fuzz_app.test_client()
    as_owner = {"Authorization": f"Bearer {token}"}
    r = client.post("/api/cases", headers=as_owner,
                    json={"title": "盆腔包块待查", "clinical_question": "良性还是恶性？"})
    assert r.status_code == 201, r.json
    case_id = r.json["id"]
    r = client.post(f"/api/cases/{case_id}/share", headers=as_owner, json={"specialist_id": consultant_id})
    assert r.status_code == 200, r.json
    r = client.post(f"/api/cases/{case_id}/accept", headers={"Authorization": f"Bearer {consultant_token}"})
    assert r.status_code == 200, r.json
    r = client.post(f"/api/cases/{case_id}/files", headers=as_owner, content_type="multipart/form-data",
                    data={"files": upload([sample("CT_small.dcm")])})
    assert r.status_code == 200, r.json
    inst = r.json["accepted"][0]
    r = client.post(f"/api/cases/{case_id}/messages", headers=as_owner,
                    json={"body": "起始消息", "client_id": "fuzz-0"})
    assert r.status_code == 201, r.json
    r = client.post(f"/api/cases/{case_id}/annotations", headers=as_owner,
                    json={"sop_instance_uid": inst["sop_instance_uid"], "kind": "line",
                          "points": [[1, 2], [3, 4]], "frame": 1})
    assert r.status_code == 201, r.json
    return {
        "token": token,
        "path": {"case_id": case_id, "sop": inst["sop_instance_uid"], "series_uid": inst["series_uid"],
                 "series": inst["series_uid"], "study": inst["study_uid"], "annotation_id": r.json["id"],
                 "user_id": consultant_id},
    }


def _use_real_ids(case, real: dict) -> None:
    # Three examples in four name the real objects; the fourth keeps the generated ids, so
    # out-of-range, negative and odd-unicode ids in paths are fuzzed too.
    if not case.path_parameters or zlib.crc32(repr(sorted(case.path_parameters.items())).encode()) % 4 == 0:
        return
    for name in case.path_parameters:
        if name in real:
            case.path_parameters[name] = real[name]


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_without_server_error_and_as_documented(case, fuzz_app, fuzz_world):
    _use_real_ids(case, fuzz_world["path"])
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {fuzz_world['token']}"}
    case.call_and_validate(app=fuzz_app, checks=[not_a_server_error, response_schema_conformance])
