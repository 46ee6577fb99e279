"""Ranking specialists for a referral, with the reasons shown to the referring doctor.

Score = specialty fit + hospital level − current open workload + the doctor's track record. Each
term that applies adds a human-readable reason, so the ranking can be checked by eye.

The track record is the metrics module's figures (:mod:`app.metrics.definitions`) over the same
window as a doctor's evaluation (``GET /api/users/{id}/evaluation`` with no dates: the twelve months
up to today), computed for every candidate in one :func:`app.metrics.service.compute` call. Only
metrics with a direction count (cases received is shown, not scored: volume is not merit, and
scoring it would hold new doctors back). Each scored figure counts from a fixed neutral point
(:data:`SCORED`), so a figure suppressed below its metric's minimum ``n`` adds nothing — it neither
helps nor hurts — and the reasons say "样本不足".
"""

from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa

from app.accounts.models import User
from app.accounts.specialties import LEVEL_RANK, specialty_names
from app.cases.service import open_case_counts
from app.core.time import utcnow
from app.extensions import db
from app.metrics.dashboard import Period, period
from app.metrics.definitions import BY_CODE, LOWER, Metric
from app.metrics.service import Stat, compute, shown, stat_of
from app.orgs.models import Availability

LEVEL_TEXT = {"tertiary": "三级医院", "provincial": "省级医院", "county": "县级医院", "community": "社区卫生服务中心"}
WINDOW_ZH, WINDOW_EN = "近12个月", "last 12 months"


@dataclass(frozen=True)
class Term:
    """How one metric moves the score: points per unit away from the neutral value, capped both ways."""

    neutral: float
    per_unit: float
    cap: float


# The neutral points are ordinary figures, not peer medians, so a doctor's score does not depend on
# who else happens to be a candidate: 48 h is the urgent due time; 80 % and a rating of 3 are
# "acceptable". Each term is worth at most ±10 points (acceptance ±5), against 50 for the specialty.
SCORED: dict[str, Term] = {
    "median_hours_to_opinion": Term(neutral=48, per_unit=10 / 48, cap=10),
    "within_due_pct": Term(neutral=80, per_unit=0.5, cap=10),
    "acceptance_pct": Term(neutral=80, per_unit=0.25, cap=5),
    "mean_rating": Term(neutral=3, per_unit=5, cap=10),
}
SHOWN = ("cases_received",)
CODES = (*SCORED, *SHOWN)


def window(today: date | None = None) -> Period:
    """The track record's window: the evaluation's default period, the twelve months up to today."""
    return period(None, None, today=today or utcnow().date())


@dataclass
class TrackRecord:
    """A specialist's figures from the metrics module over :func:`window`."""

    span: Period
    stats: dict[str, Stat]

    def stat(self, code: str) -> Stat:
        return self.stats.get(code) or stat_of({}, (), BY_CODE[code])

    def value(self, code: str) -> float | None:
        """The figure users may see: None when suppressed (n below the metric's minimum)."""
        return shown(BY_CODE[code], self.stat(code))

    def as_json(self) -> dict:
        """The profile's record (the older ``stats`` shape): answered cases, median response, rating."""
        return {"answered_cases": self.stat("median_hours_to_opinion").n,
                "median_response_hours": self.value("median_hours_to_opinion"),
                "mean_rating": self.value("mean_rating"),
                "ratings": self.stat("mean_rating").n}

    def metrics_json(self) -> dict:
        """Each figure as the evaluation reports it (value or suppressed, n), with the window."""
        return {"period": {"from": self.span.start.isoformat(), "to": self.span.end.isoformat()},
                "metrics": [{"code": code, "value": self.value(code), "n": self.stat(code).n,
                             "min_n": BY_CODE[code].min_n, "suppressed": self.value(code) is None}
                            for code in CODES]}


def track_records(user_ids: list[int], *, span: Period | None = None) -> dict[int, TrackRecord]:
    """Return each specialist's track record, from one batched metrics computation for them all."""
    span = span or window()
    start, end = span.bounds
    found = compute(level="doctor", ids=sorted(set(user_ids)), start=start, end=end, codes=list(CODES))
    return {uid: TrackRecord(span, dict(found.get((uid,), {}))) for uid in user_ids}


def records_for(users: list[User]) -> dict[int, TrackRecord]:
    """Return the users' track records, the users still loaded afterwards.

    Reading the metrics may commit (the rollup stores the months it built), which expires every loaded
    object; the users are then read again in one query rather than one by one as they are used.
    """
    ids = [u.id for u in users]  # taken now: reading an expired object's id would load it
    records = track_records(ids)
    if any(sa.inspect(u).expired for u in users):
        db.session.scalars(sa.select(User).where(User.id.in_(ids))).all()
    return records


@dataclass
class Ranked:
    user: User
    open_cases: int
    stats: TrackRecord
    score: float
    reasons: list[str] = field(default_factory=list)
    away_until: datetime | None = None


def away_until(user_ids: list[int]) -> dict[int, datetime]:
    """Return, for the users who are away now, until when (one query)."""
    if not user_ids:
        return {}
    return dict(db.session.execute(sa.select(Availability.user_id, Availability.away_until).where(
        Availability.user_id.in_(user_ids), Availability.away_until > utcnow())).all())


def _fmt(x: float) -> str:
    return f"{x:.1f}".removesuffix(".0")


def _figure_reason(m: Metric, value: float, n: int) -> str:
    if m.code == "median_hours_to_opinion":
        return (f"出具意见中位 {_fmt(value)} 小时（{WINDOW_ZH} {n} 例）"
                f"(median hours to opinion: {_fmt(value)} h over {n} cases, {WINDOW_EN})")
    if m.code == "mean_rating":
        return f"平均评分 {value:.1f}/5（{WINDOW_ZH} {n} 次）(mean rating {value:.1f} of {n}, {WINDOW_EN})"
    if m.code == "cases_received":
        return f"{WINDOW_ZH}收到会诊 {n} 例 (cases received: {n}, {WINDOW_EN})"
    return f"{m.zh} {value:.0f}%（{WINDOW_ZH} {n} 例）({m.en.lower()}: {value:.0f}% of {n}, {WINDOW_EN})"


def _record_terms(record: TrackRecord) -> tuple[float, list[str]]:
    """The track record's points and reasons; suppressed figures add nothing and are named once."""
    points, reasons, thin = 0.0, [], []
    for code, term in SCORED.items():
        m, stat, value = BY_CODE[code], record.stat(code), record.value(code)
        if value is None:
            thin.append((m, stat.n))
            continue
        away = (term.neutral - value) if m.direction == LOWER else (value - term.neutral)
        points += max(-term.cap, min(term.cap, away * term.per_unit))
        reasons.append(_figure_reason(m, value, stat.n))
    if thin:
        reasons.append("样本不足，不计入排序：" + "、".join(f"{m.zh}（{n}/{m.min_n}）" for m, n in thin)
                       + f"（{WINDOW_ZH}）(too few to count, {WINDOW_EN}: "
                       + ", ".join(f"{m.en.lower()} {n} of {m.min_n}" for m, n in thin) + ")")
    received = record.stat("cases_received").n
    reasons.append(_figure_reason(BY_CODE["cases_received"], received, received))
    return points, reasons


def rank(users: list[User], *, specialty: str | None, workload: dict[int, int] | None = None,
         records: dict[int, TrackRecord] | None = None, away: dict[int, datetime] | None = None) -> list[Ranked]:
    """Rank the candidate specialists for a case asking for ``specialty``, best first (ties by id).

    Those away now come last, whatever their score, with a reason saying until when: away specialists
    are not suggested, and the share picker preselects the first. ``workload``, ``records`` and
    ``away`` may be given when ranking the same people for many cases (the queue, whose candidates
    are the available ones).
    """
    ids = [u.id for u in users]
    workload = open_case_counts(ids) if workload is None else workload
    records = records_for(users) if records is None else records
    away = away_until(ids) if away is None else away
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
        record = records[user.id]
        points, why = _record_terms(record)
        score += points
        reasons += why
        until = away.get(user.id)
        if until is not None:
            day = until.date().isoformat()
            reasons.append(f"外出至 {day}，暂不接诊 (away until {day})")
        ranked.append(Ranked(user=user, open_cases=open_cases, stats=record, score=round(score, 2), reasons=reasons,
                             away_until=until))
    ranked.sort(key=lambda r: (r.away_until is not None, -r.score, r.open_cases, r.user.id))
    return ranked
