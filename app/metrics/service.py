"""Computing the metrics from the monthly rollup (:mod:`app.metrics.rollup`), never a loop over cases.

:func:`compute` answers "every metric for each of these doctors / institutions / pools over this
period" (optionally per month, or for the whole set as one) by adding up the units' monthly cells:
sums for counts, rates and means, half-hour distributions for medians. Intervals for the verdicts
are derived from the same figures.
"""

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm as so

from app.accounts.models import User
from app.cases.models import Case, CaseEvent
from app.metrics.definitions import ADDITIVE, BY_CODE, METRICS, Metric
from app.metrics.rollup import Cell, View, gather, median_stat

LEVELS = ("doctor", "institution", "pool")
Z = 1.96
ADDITIVE_CODES = frozenset(m.code for m in METRICS if m.kind in ADDITIVE)


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
        cols += [sa.func.sum(sa.case((inc, v * 1.0))).label(f"{metric.code}__s"),
                 sa.func.sum(sa.case((inc, v * v * 1.0))).label(f"{metric.code}__ss")]
    return cols


def plain_stat(metric: Metric, raw: Cell) -> Stat:
    """A count, rate (Wilson interval) or mean (±1.96 SE) from its sums."""
    n = raw.n
    if metric.kind == "count" or n == 0:
        return Stat(n=n, value=float(n) if metric.kind == "count" else None)
    if metric.kind == "rate":
        return Stat(n, 100.0 * raw.k / n, *wilson(raw.k, n))
    mean = raw.s / n
    sd = math.sqrt(max(0.0, (raw.ss / n - mean * mean) * n / (n - 1))) if n > 1 else 0.0
    return Stat(n, mean, mean - Z * sd / math.sqrt(n), mean + Z * sd / math.sqrt(n))


def _stat(metric: Metric, cell: Cell) -> Stat:
    if metric.kind != "median":
        return plain_stat(metric, cell)
    n, median, lo, hi = median_stat(cell.hist)
    return Stat(n, median, lo, hi)


def _stats(grouped: dict[tuple, dict[str, Cell]], metrics: list[Metric]) -> dict[tuple, dict[str, Stat]]:
    out: dict[tuple, dict[str, Stat]] = defaultdict(dict)
    for key, by_code in grouped.items():
        for m in metrics:
            cell = by_code.get(m.code)
            if cell is not None:  # a median's cell exists only with values in it
                out[key][m.code] = _stat(m, cell)
    return out


def compute(*, level: str, ids: list[int], start: datetime, end: datetime, codes: list[str] | None = None,
            by_month: bool = False, collapse: bool = False) -> dict[tuple, dict[str, Stat]]:
    """Return {group: {code: Stat}} for the doctors, institutions or pools ``ids`` over [start, end).

    The group is ``(id,)``, ``(id, "YYYY-MM")`` by month, ``()`` or ``("YYYY-MM",)`` when ``collapse``
    counts the whole set as one. Groups without any row are absent; :func:`stat_of` fills them.
    """
    metrics = [BY_CODE[c] for c in codes] if codes else list(METRICS)
    if not ids:
        return defaultdict(dict)

    view = View(by_unit=not collapse, by_month=by_month)
    return _stats(gather(level=level, ids=ids, start=start, end=end, views=[view]), metrics)


@dataclass
class Rollup:
    """One pass over a period for a dashboard: each entity, the members as a whole, and each month."""

    entities: dict[tuple, dict[str, Stat]]
    whole: dict[tuple, dict[str, Stat]]
    months: dict[tuple, dict[str, Stat]]
    member_months: dict[tuple, dict[str, int]]  # (member, month): n of each additive metric, a month's parts


def compute_rollup(*, level: str, ids: list[int], members: list[int], start: datetime, end: datetime) -> Rollup:
    """Every metric for each of ``ids``, for ``members`` together, for ``members`` by month, and for
    each member by month, from one read of the monthly cells."""
    if not ids:
        return Rollup(defaultdict(dict), defaultdict(dict), defaultdict(dict), defaultdict(dict))
    member_set = frozenset(members)
    views = [View(("e",)), View(("w",), member_set, by_unit=False),
             View(("m",), member_set, by_unit=False, by_month=True),
             View(("u",), member_set, by_month=True, codes=ADDITIVE_CODES)]
    cells = gather(level=level, ids=ids, start=start, end=end, views=views)
    parts = {key[1:]: {code: cell.n for code, cell in by_code.items()} for key, by_code in cells.items()
             if key[0] == "u"}  # only how many: whether each part is suppressed
    grouped = _stats({key: by_code for key, by_code in cells.items() if key[0] != "u"}, list(METRICS))
    views: dict[str, dict] = {tag: defaultdict(dict) for tag in ("e", "w", "m")}
    for key, stats in grouped.items():
        views[key[0]][key[1:]] = stats
    return Rollup(views["e"], views["w"], views["m"], parts)


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
