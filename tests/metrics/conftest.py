"""A hand-made world for exact metric values: a consortium of three providing hospitals and a
requesting one, cases with chosen timestamps (ties, pauses, declines, a reassignment), and helpers."""

from datetime import datetime, timedelta

import pytest

from app.cases.models import Case, CaseEvent, Participant
from app.extensions import db
from app.orgs.models import ConsortiumInstitution, Org, OrgMember

T0 = datetime(2025, 1, 1, 8, 0)
H = timedelta(hours=1)


def add_case(*, owner, consultant, submitted, accepted=None, answered=None, due=48, paused_h=0, rating=None,
             outcome=None, status=None, pool_id=None, asked=False, mdt_with=None, specialty="gynecology"):
    """Insert a case as the workflow would have left it, with its accept/ask events."""
    status = status or ("closed" if rating else "answered" if answered else "accepted" if accepted else "submitted")
    case = Case(owner_id=owner, consultant_id=consultant, title="t", clinical_question="q", status=status,
                specialty=specialty, submitted_at=submitted, due_at=submitted + due * H + paused_h * H,
                accepted_at=submitted + accepted * H if accepted is not None else None,
                answered_at=submitted + answered * H if answered is not None else None,
                paused_seconds=int(paused_h * 3600), rating=rating, outcome=outcome, pool_id=pool_id,
                created_at=submitted)
    db.session.add(case)
    db.session.flush()
    if accepted is not None:
        db.session.add(CaseEvent(case_id=case.id, actor_id=consultant, action="accept", at=case.accepted_at))
    if asked:
        db.session.add(CaseEvent(case_id=case.id, actor_id=consultant, action="ask", at=submitted + 2 * H))
    if mdt_with:
        db.session.add(Participant(case_id=case.id, user_id=mdt_with, discipline="radiology",
                                   invited_by_id=consultant))
    return case


@pytest.fixture
def mworld(app, make_institution, make_user):
    """Return the ids of the hand-made metrics world (all cases in January 2025)."""
    a, b, c = (make_institution(level="tertiary", region="湖南省 长沙市") for _ in range(3))
    d = make_institution(level="county", region="湖南省 云溪县")
    ids = {"A": a, "B": b, "C": c, "D": d,
           "dA1": make_user(specialty="gynecology", institution_id=a),
           "dA2": make_user(specialty="gynecology", institution_id=a),
           "dB": make_user(specialty="gynecology", institution_id=b),
           "dC": make_user(specialty="gynecology", institution_id=c),
           "rad": make_user(specialty="radiology", institution_id=a),
           "gp": make_user(institution_id=d),
           "cadmin": make_user(institution_id=a),
           "outsider": make_user(institution_id=make_institution(level="community"))}
    with app.app_context():
        consortium = Org(kind="consortium", name="测试医联体", name_peers_ok=True)
        pool = Org(kind="doctor_group", name="妇科组")
        db.session.add_all([consortium, pool])
        db.session.flush()
        pool.parent_id = consortium.id
        for inst, side in ((a, "provider"), (b, "provider"), (c, "provider"), (d, "requester")):
            db.session.add(ConsortiumInstitution(org_id=consortium.id, institution_id=inst, side=side))
        db.session.add(OrgMember(org_id=consortium.id, user_id=ids["cadmin"], role="admin"))
        for who in ("dA1", "dA2", "dB"):
            db.session.add(OrgMember(org_id=pool.id, user_id=ids[who], role="member"))
        gp, a1, a2, db_, dc = (ids[k] for k in ("gp", "dA1", "dA2", "dB", "dC"))
        # dA1: accept hours 1, 3, 3 (a tie); opinion hours 10, 20-4 paused = 16, 50 (late); one open past due.
        add_case(owner=gp, consultant=a1, submitted=T0, accepted=1, answered=10, rating=5,
                 outcome="referral_avoided", mdt_with=ids["rad"], pool_id=pool.id)
        add_case(owner=gp, consultant=a1, submitted=T0 + 24 * H, accepted=3, answered=20, paused_h=4, due=24,
                 rating=3, outcome="referral_needed", asked=True)
        add_case(owner=gp, consultant=a1, submitted=T0 + 48 * H, accepted=3, answered=50, rating=4)  # an old close-out
        add_case(owner=gp, consultant=a1, submitted=T0 + 72 * H)  # never accepted, long past due
        # Declined by dA1, shared again to dB who accepted 2 h after the new sharing.
        declined = add_case(owner=gp, consultant=db_, submitted=T0 + 100 * H, accepted=2, answered=30)
        db.session.add(CaseEvent(case_id=declined.id, actor_id=a1, action="decline", at=T0 + 97 * H))
        # dA2: accepted after 2 h, so institution A's accept hours are 1, 2, 3, 3 (median 2.5).
        add_case(owner=gp, consultant=a2, submitted=T0 + 5 * H, accepted=2, answered=6, rating=2)
        # dC: a draft and a withdrawn case count for nobody.
        add_case(owner=gp, consultant=dc, submitted=T0, status="withdrawn")
        db.session.commit()
        ids.update(consortium=consortium.id, pool=pool.id, declined=declined.id)
    return ids
