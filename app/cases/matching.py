"""Ranking specialists for a referral, with the reasons shown to the referring doctor.

Score = specialty fit + hospital level − current open workload + speed of past answers + ratings.
Each term that applies adds a human-readable reason, so the ranking can be checked by eye.
"""

import statistics
from dataclasses import dataclass, field

import sqlalchemy as sa

from app.accounts.models import User
from app.accounts.specialties import LEVEL_RANK, specialty_names
from app.cases.models import Case
from app.cases.service import open_case_counts
from app.extensions import db

LEVEL_TEXT = {"tertiary": "三级医院", "provincial": "省级医院", "county": "县级医院", "community": "社区卫生服务中心"}


@dataclass
class Stats:
    """A specialist's record: answered cases, median hours to answer, mean rating."""

    answered: int = 0
    median_response_hours: float | None = None
    mean_rating: float | None = None
    ratings: int = 0

    def as_json(self) -> dict:
        return {"answered_cases": self.answered,
                "median_response_hours": None if self.median_response_hours is None
                else round(self.median_response_hours, 1),
                "mean_rating": None if self.mean_rating is None else round(self.mean_rating, 2),
                "ratings": self.ratings}


@dataclass
class Ranked:
    user: User
    open_cases: int
    stats: Stats
    score: float
    reasons: list[str] = field(default_factory=list)


def specialist_stats(user_ids: list[int]) -> dict[int, Stats]:
    """Return each specialist's answered count, median response time and mean rating."""
    rows = db.session.execute(sa.select(Case.consultant_id, Case.submitted_at, Case.answered_at, Case.rating)
                              .where(Case.consultant_id.in_(user_ids), Case.answered_at.is_not(None))).all()
    by_user: dict[int, list] = {}
    for uid, submitted, answered, rating in rows:
        by_user.setdefault(uid, []).append((submitted, answered, rating))
    out = {}
    for uid in user_ids:
        cases = by_user.get(uid, [])
        hours = [(a - s).total_seconds() / 3600 for s, a, _ in cases if s and a]
        ratings = [r for _, _, r in cases if r is not None]
        out[uid] = Stats(answered=len(cases), median_response_hours=statistics.median(hours) if hours else None,
                         mean_rating=statistics.fmean(ratings) if ratings else None, ratings=len(ratings))
    return out


def rank(users: list[User], *, specialty: str | None) -> list[Ranked]:
    """Rank the candidate specialists for a case asking for ``specialty``, best first."""
    ids = [u.id for u in users]
    workload = open_case_counts(ids)
    stats = specialist_stats(ids)
    ranked = []
    for user in users:
        score, reasons = 0.0, []
        if specialty and user.specialty == specialty:
            score += 50
            reasons.append(f"专科匹配：{specialty_names(specialty)['zh']} (specialty: {specialty})")
        level = user.institution.level
        score += LEVEL_RANK.get(level, 0) * 10
        reasons.append(f"{LEVEL_TEXT.get(level, level)} (hospital level: {level})")
        open_cases = workload.get(user.id, 0)
        score -= open_cases * 4
        reasons.append(f"在办会诊 {open_cases} 例 (open cases: {open_cases})")
        s = stats[user.id]
        if s.median_response_hours is not None:
            score += max(0.0, 10 - s.median_response_hours / 12)
            reasons.append(f"中位回复 {s.median_response_hours:.0f} 小时 "
                           f"(median response: {s.median_response_hours:.0f} h over {s.answered} cases)")
        if s.mean_rating is not None:
            score += (s.mean_rating - 3) * 5
            reasons.append(f"平均评分 {s.mean_rating:.1f}/5（{s.ratings} 次）(mean rating {s.mean_rating:.1f})")
        ranked.append(Ranked(user=user, open_cases=open_cases, stats=s, score=round(score, 2), reasons=reasons))
    ranked.sort(key=lambda r: (-r.score, r.open_cases, r.user.name))
    return ranked
