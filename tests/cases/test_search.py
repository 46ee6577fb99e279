"""Searching cases (GET /api/cases?q=&...): Chinese without spaces, English, ranking, filters, permissions.

Runs on SQLite (FTS5) and, with DATABASE_URL set, on PostgreSQL (tsvector + GIN).
"""

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from app.core import fulltext
from app.extensions import db
from tests.imaging.dicom_samples import sample, upload


def ids(r):
    assert r.status_code == 200, r.json
    return [c["id"] for c in r.json["items"]]


@pytest.fixture
def doctor(make_user, api_as):
    uid = make_user(specialty="general_practice")
    return uid, api_as(uid)


def test_tokens_are_cjk_bigrams_and_lowercased_words():
    assert fulltext.tokens("左侧卵巢囊肿 CT-2") == ["左侧", "侧卵", "卵巢", "巢囊", "囊肿", "肿", "ct", "2"]
    assert fulltext.query_terms("卵巢 Ova") == [("卵巢", False), ("ova", True)]
    assert fulltext.query_terms("!!! ，。") == []


def test_chinese_without_spaces_and_without_the_exact_phrase(doctor, make_case):
    uid, api = doctor
    cyst = make_case(uid, title="左侧卵巢囊肿伴实性成分", clinical_question="请判断良恶性")
    fibroid = make_case(uid, title="子宫肌瘤", clinical_question="是否需要手术？")
    for q in ("卵巢囊肿", "囊肿 卵巢", "卵巢 实性", "卵巢", "实性成分"):
        assert ids(api.get("/api/cases", query_string={"q": q})) == [cyst], q
    assert ids(api.get("/api/cases", query_string={"q": "肌瘤"})) == [fibroid]
    assert ids(api.get("/api/cases", query_string={"q": "卵巢肌瘤"})) == []  # every bigram must be there
    assert ids(api.get("/api/cases", query_string={"q": "瘤"})) == [fibroid]  # one character, at a run's end


def test_english_words_case_insensitive_and_as_prefixes(doctor, make_case):
    uid, api = doctor
    ovary = make_case(uid, title="Adnexal mass", clinical_question="Ovarian cyst with solid component, CA-125 high")
    make_case(uid, title="Chest pain", clinical_question="ECG normal")
    assert ids(api.get("/api/cases", query_string={"q": "ovarian"})) == [ovary]
    assert ids(api.get("/api/cases", query_string={"q": "OVAR solid"})) == [ovary]
    assert ids(api.get("/api/cases", query_string={"q": "ca 125"})) == [ovary]
    assert ids(api.get("/api/cases", query_string={"q": "ovarian pain"})) == []


def test_title_hits_rank_first_and_no_q_keeps_newest_first(doctor, make_case):
    uid, api = doctor
    body_only = make_case(uid, title="盆腔包块", clinical_question="超声提示附件区包块，既往卵巢囊肿病史")
    in_title = make_case(uid, title="卵巢囊肿复查", clinical_question="请会诊")
    other = make_case(uid, title="甲状腺结节", clinical_question="请会诊")
    assert ids(api.get("/api/cases", query_string={"q": "卵巢囊肿"})) == [in_title, body_only]
    r = api.get("/api/cases")
    assert ids(r) == [other, in_title, body_only]
    assert r.json["total"] == 3


def test_reports_and_signed_opinion_are_searchable_once_written(make_case_in_progress, api_as):
    case_id, who = make_case_in_progress(users={"radiologist": {"specialty": "radiology"}},
                                         participants={"radiologist": "radiology"})
    owner, consultant = api_as(who["owner"]), api_as(who["consultant"])
    assert ids(owner.get("/api/cases", query_string={"q": "畸胎瘤"})) == []
    r = api_as(who["radiologist"]).post(f"/api/cases/{case_id}/reports",
                                        json={"body": "MRI 示脂肪信号，考虑成熟性畸胎瘤"})
    assert r.status_code == 201
    assert ids(owner.get("/api/cases", query_string={"q": "畸胎瘤"})) == [case_id]
    # A draft is not searchable; the signed opinion is.
    consultant.put(f"/api/cases/{case_id}/opinion/draft", json={"diagnosis": "浆液性囊腺瘤"})
    assert ids(owner.get("/api/cases", query_string={"q": "囊腺瘤"})) == []
    r = consultant.post(f"/api/cases/{case_id}/opinion", json={"recommendations": "腹腔镜下附件切除"})
    assert r.status_code == 200, r.json
    assert ids(owner.get("/api/cases", query_string={"q": "囊腺瘤 腹腔镜"})) == [case_id]
    assert ids(api_as(who["radiologist"]).get("/api/cases", query_string={"q": "腹腔镜"})) == [case_id]


def test_filters_combine_with_words(doctor, make_case, make_user, api_as, app):
    uid, api = doctor
    gyn = make_user(specialty="gynecology")
    urgent = make_case(uid, title="卵巢囊肿扭转？", urgency="urgent", specialty="gynecology")
    routine = make_case(uid, title="卵巢囊肿随访", specialty="gynecology")
    heart = make_case(uid, title="心悸", specialty="cardiology")
    assert api.post(f"/api/cases/{routine}/share", json={"specialist_id": gyn}).status_code == 200
    q = {"q": "卵巢囊肿"}
    assert ids(api.get("/api/cases", query_string={**q, "urgency": "urgent"})) == [urgent]
    assert ids(api.get("/api/cases", query_string={**q, "status": "submitted"})) == [routine]
    assert ids(api.get("/api/cases", query_string={"specialty": "cardiology"})) == [heart]
    today = date.today()
    assert len(ids(api.get("/api/cases", query_string={"from": str(today), "to": str(today)}))) == 3
    assert ids(api.get("/api/cases", query_string={"to": str(today - timedelta(days=1))})) == []
    # Waiting for me: the specialist must accept the shared one; the owner has nothing to do yet.
    assert ids(api_as(gyn).get("/api/cases", query_string={"waiting_for_me": "true"})) == [routine]
    assert ids(api.get("/api/cases", query_string={"waiting_for_me": "1"})) == []
    # Modality: the case with a CT study.
    r = api.post(f"/api/cases/{heart}/files", data={"files": upload([sample("CT_small.dcm")])},
                 content_type="multipart/form-data")
    assert r.status_code == 200
    assert r.json["accepted"]
    assert ids(api.get("/api/cases", query_string={"modality": "ct"})) == [heart]
    assert ids(api.get("/api/cases", query_string={"modality": "MR"})) == []
    assert api.get("/api/cases", query_string={"urgency": "whenever"}).status_code == 400
    assert api.get("/api/cases", query_string={"from": "yesterday"}).status_code == 400


def test_paging_reports_the_total(doctor, make_case):
    uid, api = doctor
    made = [make_case(uid, title=f"卵巢囊肿 {n}") for n in range(5)]
    r = api.get("/api/cases", query_string={"q": "卵巢", "limit": 2, "offset": 1})
    assert r.json["total"] == 5
    assert len(r.json["items"]) == 2
    assert set(ids(r)) <= set(made)


def test_the_count_stops_at_1000_and_says_there_are_more(doctor, make_user, app, api_as):
    from app.cases.models import Case

    uid, api = doctor

    def add(n: int) -> None:
        with app.app_context():
            db.session.add_all(Case(owner_id=uid, title=f"卵巢囊肿 {i}", clinical_question="q") for i in range(n))
            db.session.commit()

    add(1000)
    for params in ({"q": "卵巢"}, {}):
        r = api.get("/api/cases", query_string={**params, "limit": 5})
        assert (r.json["total"], r.json["total_capped"], len(r.json["items"])) == (1000, False, 5), params
    add(1)
    for params in ({"q": "卵巢"}, {}):
        r = api.get("/api/cases", query_string={**params, "limit": 5})
        assert (r.json["total"], r.json["total_capped"], len(r.json["items"])) == (1000, True, 5), params
    outsider = api_as(make_user())  # a capped count is still only of the caller's own cases
    assert outsider.get("/api/cases", query_string={"q": "卵巢"}).json["total"] == 0


def test_outsiders_search_never_returns_or_counts_others_cases(doctor, make_case, make_user, api_as):
    uid, api = doctor
    make_case(uid, title="卵巢囊肿", clinical_question="ovarian cyst")
    outsider = api_as(make_user())
    for params in ({"q": "卵巢囊肿"}, {"q": "ovarian"}, {}, {"status": "draft"}):
        r = outsider.get("/api/cases", query_string=params)
        assert r.json == {"items": [], "total": 0, "total_capped": False}, params


def test_documents_follow_edits_and_are_removed_with_the_case(doctor, make_case, app):
    from app.cases.models import Case, CaseSearch

    uid, api = doctor
    case_id = make_case(uid, title="卵巢囊肿")
    with app.app_context():
        case = db.session.get(Case, case_id)
        case.title = "子宫内膜息肉"  # any code path that changes a text: the hook catches it
        db.session.commit()
    assert ids(api.get("/api/cases", query_string={"q": "卵巢"})) == []
    assert ids(api.get("/api/cases", query_string={"q": "息肉"})) == [case_id]
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            return  # SQLite here runs without foreign-key enforcement, so no cascade to test
        db.session.execute(sa.delete(Case).where(Case.id == case_id))
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(CaseSearch)) == 0


def test_a_triage_coordinator_finds_pool_cases_by_their_texts_never_by_reports_or_opinion(world, make_case, api_as):
    """A coordinator sees a pooled case (title, question, summary) but not its reports or opinion: a
    search must not answer "does its opinion say X?" for them, by the list or by its count."""
    case_id = make_case(world["gp"], specialty="gynecology", title="盆腔包块待查", clinical_question="请会诊：性质？",
                        summary="绝经后 CA125 Elevated")
    case = f"/api/cases/{case_id}"
    gp, coord, gyn = api_as(world["gp"]), api_as(world["coord"]), api_as(world["gyn"])
    assert gp.post(f"{case}/share", json={"org_id": world["consortium"]}).status_code == 200
    assert coord.post(f"{case}/assign", json={"specialist_id": world["gyn"]}).status_code == 200
    assert gyn.post(f"{case}/accept").status_code == 200
    r = gyn.post(f"{case}/opinion", json={"diagnosis": "浆液性囊腺癌 Malignant", "recommendations": "肿瘤细胞减灭术"})
    assert r.status_code == 200, r.json
    assert coord.get(f"{case}/opinion").status_code == 403
    for q in ("盆腔", "性质", "绝经 包块", "ca125", "elev"):
        assert ids(coord.get("/api/cases", query_string={"q": q})) == [case_id], q
    for q in ("囊腺癌", "减灭术", "盆腔 囊腺癌", "malig", "ca125 malignant"):
        r = coord.get("/api/cases", query_string={"q": q})
        assert (ids(r), r.json["total"]) == ([], 0), q
    for who in (gp, gyn):  # the case's own people search its opinion
        assert ids(who.get("/api/cases", query_string={"q": "囊腺癌 malig"})) == [case_id]
