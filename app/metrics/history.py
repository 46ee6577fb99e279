"""Twelve months of synthetic, clearly labelled demo activity (``seed-demo --history``).

Cases between the demo consortium's hospitals and the other demo specialists, drawn from a fixed
seed: response times, information requests, declines passed on to a colleague, MDT participants,
close-out surveys and ratings, with two deliberately poor performers (radiology3@ and
pathology2@). Rows go in by bulk inserts; a second run finds the labelled cases and adds nothing.
"""

import math
import random
from datetime import datetime, time, timedelta

import sqlalchemy as sa

from app.accounts.models import User
from app.cases.models import Case, CaseEvent, Participant
from app.cases.service import RESPONSE_TIME
from app.core.time import utcnow
from app.extensions import db
from app.orgs.demo import POOL
from app.orgs.models import Org

LABEL = "【演示数据】"  # every synthetic case's title starts with this
SEED = 14
CASES = 3000
OWNERS = ("gp@demo.huizhen", "gyn2@demo.huizhen")
POOR = ("radiology3@demo.huizhen", "pathology2@demo.huizhen")
NOT_CONSULTANTS = ("gp@demo.huizhen", "outsider@demo.huizhen", "consortium@demo.huizhen")
URGENCY_WEIGHTS = (("routine", 70), ("urgent", 25), ("emergency", 5))
OUTCOMES = (("referral_avoided", 55), ("referral_needed", 25), ("already_planned", 12), ("other", 8))


def _pick(rng: random.Random, weighted) -> str:
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights=weights)[0]


def _hours(rng: random.Random, median: float, spread: float = 0.8) -> float:
    return median * math.exp(rng.gauss(0, spread))


def has_history() -> bool:
    """Tell whether the synthetic history is already there."""
    return db.session.scalar(sa.select(Case.id).where(Case.title.startswith(LABEL)).limit(1)) is not None


def seed_history(*, cases: int = CASES, end: datetime | None = None) -> int:
    """Create the synthetic year of activity unless present; return how many cases were added."""
    if has_history():
        return 0
    rng = random.Random(SEED)  # noqa: S311 - reproducible synthetic data, not a secret
    end = end or datetime.combine(utcnow().date().replace(day=1), time())
    start = end - timedelta(days=365)
    users = {u.email: u for u in db.session.scalars(sa.select(User).where(User.email.like("%@demo.huizhen")))}
    owners = [users[e] for e in OWNERS]
    consultants = [u for e, u in sorted(users.items()) if u.role == "doctor" and e not in NOT_CONSULTANTS]
    by_specialty: dict[str, list[User]] = {}
    for u in consultants:
        by_specialty.setdefault(u.specialty, []).append(u)
    pool_id = db.session.scalar(sa.select(Org.id).where(Org.kind == "doctor_group", Org.name == POOL))
    pool_people = {users["gyn@demo.huizhen"].id, users["gyn2@demo.huizhen"].id}
    rows, plans = [], []
    for i in range(cases):
        owner = owners[0] if rng.random() < 0.75 else owners[1]
        consultant = rng.choice([u for u in consultants if u.id != owner.id])
        plans.append(_plan(rng, i, start, owner, consultant, by_specialty, users, pool_id, pool_people, end))
        rows.append(plans[-1]["case"])
    ids = db.session.scalars(sa.insert(Case).returning(Case.id, sort_by_parameter_order=True), rows).all()
    events, participants = [], []
    for case_id, plan in zip(ids, plans, strict=True):
        events += [{**e, "case_id": case_id} for e in plan["events"]]
        participants += [{**p, "case_id": case_id} for p in plan["participants"]]
    if events:
        db.session.execute(sa.insert(CaseEvent), events)
    if participants:
        db.session.execute(sa.insert(Participant), participants)
    return len(ids)


def _plan(rng, i, start, owner, consultant, by_specialty, users, pool_id, pool_people, end) -> dict:
    poor = consultant.email in POOR
    urgency = _pick(rng, URGENCY_WEIGHTS)
    shared = start + timedelta(seconds=rng.randrange(int((end - start).total_seconds()) - 86400 * 3))
    events = [{"actor_id": owner.id, "action": "share", "at": shared, "from_status": "draft",
               "to_status": "submitted"}]
    if rng.random() < (0.2 if poor else 0.06):  # declined, then shared again to a colleague
        colleagues = [u for u in by_specialty[consultant.specialty] if u.id not in (consultant.id, owner.id)]
        declined_at = shared + timedelta(hours=_hours(rng, 4))
        events.append({"actor_id": consultant.id, "action": "decline", "at": declined_at,
                       "from_status": "submitted", "to_status": "declined"})
        if not colleagues:
            return {"case": _row(i, owner, None, urgency, shared, status="declined", specialty=consultant.specialty),
                    "events": events, "participants": []}
        consultant, poor = rng.choice(colleagues), False
        shared = declined_at + timedelta(hours=_hours(rng, 2))
        events.append({"actor_id": owner.id, "action": "share", "at": shared, "from_status": "declined",
                       "to_status": "submitted"})
    due = shared + RESPONSE_TIME[urgency]
    scale = {"emergency": 0.1, "urgent": 0.35, "routine": 1.0}[urgency]
    accepted = shared + timedelta(hours=_hours(rng, (6 if poor else 1.5) * scale))
    paused = timedelta(hours=rng.uniform(6, 48)) if rng.random() < (0.3 if poor else 0.14) else timedelta()
    work = timedelta(hours=_hours(rng, (110 if poor else 30) * scale, 0.6))
    answered = accepted + work + paused
    events.append({"actor_id": consultant.id, "action": "accept", "at": accepted, "from_status": "submitted",
                   "to_status": "accepted"})
    if paused:
        events.append({"actor_id": consultant.id, "action": "ask", "at": accepted + work / 2,
                       "from_status": "accepted", "to_status": "info_requested"})
    participants = []
    if rng.random() < 0.12:
        others = [u for u in users.values() if u.role == "doctor" and u.specialty in ("radiology", "pathology")
                  and u.id not in (consultant.id, owner.id)]
        helper = rng.choice(others)
        participants.append({"user_id": helper.id, "discipline": helper.specialty, "invited_by_id": consultant.id,
                             "added_at": accepted})
    closed = rng.random() < 0.85
    survey = closed and rng.random() < 0.9
    rating = max(1, min(5, round(rng.gauss(3.1 if poor else 4.3, 0.8)))) if closed else None
    outcome = _pick(rng, OUTCOMES if not poor else (("referral_avoided", 30), *OUTCOMES[1:])) if survey else None
    advice = _pick(rng, (("confirmed_plan", 45), ("new_advice", 45), ("not_useful", 25 if poor else 10))) \
        if survey else None
    pooled = pool_id if consultant.id in pool_people and rng.random() < 0.6 else None
    if answered > end:  # still being worked on when the history ends
        return {"case": _row(i, owner, consultant, urgency, shared, status="accepted", specialty=consultant.specialty,
                             due=due, accepted=accepted, pool_id=pooled), "events": events,
                "participants": participants}
    return {"case": _row(i, owner, consultant, urgency, shared, status="closed" if closed else "answered",
                         specialty=consultant.specialty, due=due + paused, accepted=accepted, answered=answered,
                         paused=paused, rating=rating, outcome=outcome, advice=advice, pool_id=pooled,
                         closed=answered + timedelta(days=2) if closed else None),
            "events": events, "participants": participants}


def _row(i, owner, consultant, urgency, shared, *, status, specialty, due=None, accepted=None, answered=None,
         paused=timedelta(), rating=None, outcome=None, advice=None, pool_id=None, closed=None) -> dict:
    return {"owner_id": owner.id, "consultant_id": consultant.id if consultant else None,
            "title": f"{LABEL}合成病例 #{i + 1}",
            "clinical_question": "演示数据（合成，非真实患者）/ synthetic demo case",
            "summary": "synthetic demo activity for the dashboards; not a real patient", "specialty": specialty,
            "urgency": urgency, "status": status, "created_at": shared, "updated_at": closed or answered or shared,
            "submitted_at": shared, "due_at": due, "accepted_at": accepted, "answered_at": answered,
            "closed_at": closed, "paused_seconds": int(paused.total_seconds()), "rating": rating,
            "outcome": outcome, "advice": advice, "pool_id": pool_id}
