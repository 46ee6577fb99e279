"""Every metric, defined once: code, labels, unit, direction, the definition users read, the
minimum ``n`` below which it is suppressed, the verdict's method, and its SQL.

A metric reads one of two sources. ``cases``: the cases whose submission (``submitted_at``) falls in
the period, credited to the specialist who holds the case (its consultant; a case declined and
shared again counts for the one who took it). ``events``: the accept and decline steps of the
timeline dated in the period, credited to the specialist who took the step. ``include`` selects the
rows counted in ``n``; ``value`` is what is measured on them: for a rate the condition counted in
the numerator, for a median or mean the number. Everything is SQLAlchemy Core, so the same
definitions run on PostgreSQL and SQLite (see :mod:`app.metrics.sql` for the dialect helpers). The
figures are added up from monthly cells (:mod:`app.metrics.rollup`); medians are read from the
times counted to the nearest half hour, which is the resolution their definitions state.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import orm as so

from app.accounts.models import User
from app.cases.models import Case, CaseEvent, Participant
from app.core.time import utcnow
from app.metrics.sql import hours_between

HIGHER, LOWER, NEUTRAL = "higher", "lower", "none"
# Kinds whose figure for a set of units is the sum of the units' parts (a rate's numerator and n, a
# mean's sum and n): a total and all parts but one give that one.
ADDITIVE = ("rate", "mean")
RESPONSES = ("accept", "decline", "return_to_pool")  # a specialist's answer to a case put to them

WILSON = "Wilson 95% interval of the rate; better/worse when it excludes the peer median"
MEDIAN_CI = ("distribution-free 95% interval of the median (order statistics, normal approximation "
             "of the binomial, on the times counted to the nearest 0.5 h); better/worse when it excludes "
             "the peer median")
MEAN_CI = "95% interval of the mean (t ≈ 1.96 × standard error); better/worse when it excludes the peer median"


@dataclass(frozen=True)
class Metric:
    code: str
    zh: str
    en: str
    unit: str  # cases, hours, %, score
    direction: str  # higher or lower is better; none for volumes
    kind: str  # count, rate, median, mean
    source: str  # cases or events
    min_n: int
    definition: str
    method: str
    include: Callable[[], sa.ColumnElement[bool]]
    value: Callable[[], sa.ColumnElement] | None = None
    definition_zh: str = ""  # the definition as Chinese users read it (``definition`` is the English)


def _responded():
    """A specialist's answer to a case put to them: an accept or a decline (by name, or back to the pool).

    A case taken back from a designated specialist who left the pool is recorded as a return to the
    pool too, by whoever removed them (``left_pool`` in its data): nobody answered, so it counts for
    no one, neither as the remover's decline nor as the pool's or the hospital's."""
    return sa.and_(CaseEvent.action.in_(RESPONSES), sa.or_(
        CaseEvent.action != "return_to_pool", CaseEvent.data["left_pool"].as_string().is_(None)))


def _received():
    return Case.status.notin_(("draft", "withdrawn"))


def _accepted():
    return Case.accepted_at.is_not(None)


def _opinion_hours():
    # The clock stands still while information is requested: the pauses are taken off.
    return hours_between(Case.answered_at, Case.submitted_at) - sa.func.coalesce(Case.paused_seconds, 0) / 3600.0


def _due_known():
    """Answered, or still open with its due time passed (and not paused waiting for information)."""
    return sa.and_(Case.due_at.is_not(None), sa.or_(
        Case.answered_at.is_not(None),
        sa.and_(Case.status.in_(("submitted", "accepted")), Case.paused_at.is_(None), Case.due_at < utcnow())))


# How a case's "asked" and "MDT" rows are looked up. IN (subquery) by default: PostgreSQL hashes the
# whole subquery once instead of probing an index for every case, the quicker way over a month of
# cases. Within ``probing()`` a correlated lookup of one row per case instead, the quicker way for
# the few cases of the units a partial rebuild reads (the hash alone takes 30–80 ms over 230,000
# timeline entries). It is written as ``(SELECT 1 … LIMIT 1) IS NOT NULL`` because PostgreSQL turns
# a plain EXISTS inside the aggregates' CASE into the same hashed subplan. Both count the same cases.
_PROBE: ContextVar[bool] = ContextVar("metrics_probe", default=False)


@contextmanager
def probing() -> Iterator[None]:
    """Build the metrics' SQL for reading few cases while inside."""
    token = _PROBE.set(True)
    try:
        yield
    finally:
        _PROBE.reset(token)


def _one(stmt):
    return stmt.limit(1).correlate(Case).scalar_subquery().is_not(None)


def _asked():
    if _PROBE.get():
        return _one(sa.select(1).where(CaseEvent.case_id == Case.id, CaseEvent.action == "ask"))
    return Case.id.in_(sa.select(CaseEvent.case_id).where(CaseEvent.action == "ask"))


def _mdt():
    """A colleague of another discipline than the consultant's own was brought in (a second
    gynecologist asked in by the gynecologist is not a multidisciplinary consultation)."""
    consultant = so.aliased(User)
    if _PROBE.get():
        return _one(sa.select(1).where(Participant.case_id == Case.id, consultant.id == Case.consultant_id,
                                       Participant.discipline != consultant.specialty))
    brought = so.aliased(Case)
    return Case.id.in_(sa.select(Participant.case_id).join(brought, brought.id == Participant.case_id)
                       .join(consultant, consultant.id == brought.consultant_id)
                       .where(Participant.discipline != consultant.specialty))


METRICS: tuple[Metric, ...] = (
    Metric("cases_received", "收到会诊数", "Cases received", "cases", NEUTRAL, "count", "cases", 0,
           "Cases shared in the period and held by the specialist (declined cases count for whoever took "
           "them next; drafts and withdrawn cases are not counted).", "a count; no verdict", _received,
           definition_zh="统计期内分享给该专家并由其承接的会诊病例数（被拒绝后再次分享的病例计入最终承接者；草稿和已撤回的病例不计）。"),
    Metric("median_hours_to_accept", "接诊时间中位数", "Median hours to accept", "hours", LOWER, "median", "cases",
           5, "Median hours from sharing (or sharing again after a decline) to acceptance, over the cases "
           "accepted; each time is counted to the nearest 0.5 h.", MEDIAN_CI, _accepted,
           lambda: hours_between(Case.accepted_at, Case.submitted_at),
           definition_zh="从分享（或被拒绝后再次分享）到专家接诊的小时数的中位数，只计已接诊的病例；每个时间按0.5小时取整。"),
    Metric("median_hours_to_opinion", "出具意见时间中位数", "Median hours to opinion", "hours", LOWER, "median",
           "cases", 5, "Median hours from sharing to the signed opinion, without the time spent waiting for "
           "information the specialist asked for; each time is counted to the nearest 0.5 h.", MEDIAN_CI,
           lambda: Case.answered_at.is_not(None),
           _opinion_hours,
           definition_zh="从分享到签署会诊意见的小时数的中位数，扣除专家请求补充资料后等待的时间；每个时间按0.5小时取整。"),
    Metric("within_due_pct", "按时答复率", "Answered within due time", "%", HIGHER, "rate", "cases", 10,
           "Share of cases answered by their due time (set by urgency, moved by information-request pauses), "
           "among the cases answered or already past due.", WILSON, _due_known,
           lambda: sa.and_(Case.answered_at.is_not(None), Case.answered_at <= Case.due_at),
           definition_zh="在应答期限内答复的病例占比（期限由紧急程度决定，补充资料期间顺延），分母为已答复或已超期的病例。"),
    Metric("acceptance_pct", "接诊率", "Acceptance rate", "%", HIGHER, "rate", "events", 10,
           "Share of the cases put to the specialist (shared or assigned) that they accepted rather than "
           "declined, by the date of their answer.", WILSON, _responded,
           lambda: CaseEvent.action == "accept",
           definition_zh="分享或指派给该专家的病例中，专家接诊而非拒绝的比例，按其答复日期统计。"),
    Metric("info_request_pct", "补充资料率", "Information requested", "%", LOWER, "rate", "cases", 10,
           "Share of accepted cases in which the specialist had to ask the referring doctor for more "
           "information.", WILSON, _accepted, _asked,
           definition_zh="已接诊病例中，专家需要向申请医生请求补充资料的比例。"),
    Metric("referral_avoided_pct", "避免转诊率", "Referral avoided", "%", HIGHER, "rate", "cases", 10,
           "Share of closed cases whose referring doctor answered the close-out survey that the advice "
           "avoided a referral of the patient.", WILSON, lambda: Case.outcome.is_not(None),
           lambda: Case.outcome == "referral_avoided",
           definition_zh="已结案且申请医生填写了结案问卷的病例中，答复“会诊意见避免了患者转诊”的比例。"),
    Metric("mean_rating", "平均评分", "Mean rating", "score", HIGHER, "mean", "cases", 5,
           "Mean of the referring doctors' ratings (1–5) given when closing.", MEAN_CI,
           lambda: Case.rating.is_not(None), lambda: Case.rating,
           definition_zh="申请医生结案时给出的评分（1–5分）的平均值。"),
    Metric("mdt_pct", "多学科会诊比例", "Cases with an MDT participant", "%", NEUTRAL, "rate", "cases", 10,
           "Share of accepted cases into which the specialist brought at least one colleague of another "
           "discipline.", WILSON, _accepted, _mdt,
           definition_zh="已接诊病例中，专家邀请了至少一位其他学科同事参与的比例。"),
)

BY_CODE = {m.code: m for m in METRICS}
