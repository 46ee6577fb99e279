"""Computing the metrics: a few grouped SQL aggregates per request, never a loop over cases.

:func:`compute` answers "every metric for each of these doctors / institutions / pools over this
period" (optionally per month, or for the whole set as one) with one aggregate query per source
and one windowed query per median. Intervals for the verdicts are derived from the aggregates.
"""

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm as so

from app.accounts.models import User
from app.cases.models import Case, CaseEvent
from app.extensions import db
from app.metrics.definitions import BY_CODE, METRICS, Metric
from app.metrics.sql import grouped_median, month_of

LEVELS = ("doctor", "institution", "pool")
Z = 1.96


@dataclass(frozen=True)
class Stat:
    """A metric's raw figure for one group: how many rows, the value and its 95% interval."""

    n: int = 0
    value: float | None = None
    lo: float | None = None
    hi: float | None = None


def _source(source: str, level: str):
    """The FROM clause of a source, the column naming the group at a level, and the period's clock."""
    if source == "cases":
        consultant = so.aliased(User)
        frm = sa.join(Case, consultant, Case.consultant_id == consultant.id)
        keys = {"doctor": Case.consultant_id, "institution": consultant.institution_id, "pool": Case.pool_id}
        return frm, keys[level], Case.submitted_at
    actor = so.aliased(User)
    frm = sa.join(CaseEvent, actor, CaseEvent.actor_id == actor.id).join(Case, Case.id == CaseEvent.case_id)
    keys = {"doctor": CaseEvent.actor_id, "institution": actor.institution_id, "pool": Case.pool_id}
    return frm, keys[level], CaseEvent.at


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson 95% interval of k successes in n, in percent."""
    centre = (k + Z * Z / 2) / (n + Z * Z)
    half = Z * math.sqrt(k * (n - k) / n + Z * Z / 4) / (n + Z * Z)
    return 100 * (centre - half), 100 * (centre + half)


def _plain_columns(metric: Metric) -> list:
    inc = metric.include()
    cols = [sa.func.sum(sa.case((inc, 1), else_=0)).label(f"{metric.code}__n")]
    if metric.kind == "rate":
        cols.append(sa.func.sum(sa.case((sa.and_(inc, metric.value()), 1), else_=0)).label(f"{metric.code}__k"))
    elif metric.kind == "mean":
        v = metric.value()
        cols += [sa.func.avg(sa.case((inc, v * 1.0))).label(f"{metric.code}__mean"),
                 sa.func.avg(sa.case((inc, v * v * 1.0))).label(f"{metric.code}__sq")]
    return cols


def _plain_stat(metric: Metric, row) -> Stat:
    n = int(row[f"{metric.code}__n"] or 0)
    if metric.kind == "count" or n == 0:
        return Stat(n=n, value=float(n) if metric.kind == "count" else None)
    if metric.kind == "rate":
        k = int(row[f"{metric.code}__k"] or 0)
        return Stat(n, 100.0 * k / n, *wilson(k, n))
    mean, sq = float(row[f"{metric.code}__mean"]), float(row[f"{metric.code}__sq"])
    sd = math.sqrt(max(0.0, (sq - mean * mean) * n / (n - 1))) if n > 1 else 0.0
    return Stat(n, mean, mean - Z * sd / math.sqrt(n), mean + Z * sd / math.sqrt(n))


def compute(*, level: str, ids: list[int], start: datetime, end: datetime, codes: list[str] | None = None,
            by_month: bool = False, collapse: bool = False) -> dict[tuple, dict[str, Stat]]:
    """Return {group: {code: Stat}} for the doctors, institutions or pools ``ids`` over [start, end).

    The group is ``(id,)``, ``(id, "YYYY-MM")`` by month, ``()`` or ``("YYYY-MM",)`` when ``collapse``
    counts the whole set as one. Groups without any row are absent; :func:`stat_of` fills them.
    """
    metrics = [BY_CODE[c] for c in codes] if codes else list(METRICS)
    out: dict[tuple, dict[str, Stat]] = defaultdict(dict)
    if not ids:
        return out
    if db.session.get_bind().dialect.name == "postgresql":
        # These short aggregates look costly to the planner, whose JIT then spends longer compiling
        # than the query runs (~100 ms each); off for this transaction only.
        db.session.execute(sa.text("SET LOCAL jit = off"))
    for source in ("cases", "events"):
        chosen = [m for m in metrics if m.source == source]
        if not chosen:
            continue
        frm, entity, clock = _source(source, level)
        where = [entity.in_(ids), clock >= start, clock < end]
        keys = ([] if collapse else [entity]) + ([month_of(clock)] if by_month else [])
        labelled = [k.label(f"k{i}") for i, k in enumerate(keys)]
        plain = [m for m in chosen if m.kind != "median"]
        if plain:
            stmt = sa.select(*labelled, *[c for m in plain for c in _plain_columns(m)]).select_from(frm).where(*where)
            for row in db.session.execute(stmt.group_by(*keys) if keys else stmt).mappings():
                key = tuple(row[f"k{i}"] for i in range(len(keys)))
                if not keys and all(not row[f"{m.code}__n"] for m in plain):
                    continue  # an aggregate over no rows at all still returns one row
                for m in plain:
                    out[key][m.code] = _plain_stat(m, row)
        for m in (m for m in chosen if m.kind == "median"):
            for row in db.session.execute(grouped_median(keys, m.value(), frm, [*where, m.include()])).all():
                key = tuple(row[: len(keys)])
                n, median, lo, hi = row[len(keys):]
                if not n:  # an ungrouped window over no rows still returns one row
                    continue
                out[key][m.code] = Stat(int(n), float(median), float(lo), float(hi))
    return out


def stat_of(results: dict[tuple, dict[str, Stat]], key: tuple, metric: Metric) -> Stat:
    """Return the group's figure for the metric, an empty one (n = 0) when it had no rows."""
    found = results.get(key, {}).get(metric.code)
    if found is not None:
        return found
    return Stat(n=0, value=0.0) if metric.kind == "count" else Stat()


def shown(metric: Metric, stat: Stat) -> float | None:
    """The value users may see: None when n is below the metric's minimum (suppressed)."""
    if stat.value is None or stat.n < metric.min_n:
        return None
    return round(stat.value, 2)
