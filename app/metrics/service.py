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
from app.metrics.sql import grouped_median, median_rollup, month_of

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


@dataclass
class Raw:
    """Additive sums behind a count, rate or mean, so months and members can be rolled up."""

    n: int = 0
    k: int = 0
    s: float = 0.0
    ss: float = 0.0

    def __iadd__(self, other: "Raw") -> "Raw":
        self.n, self.k, self.s, self.ss = self.n + other.n, self.k + other.k, self.s + other.s, self.ss + other.ss
        return self


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


def _raw(metric: Metric, row) -> Raw:
    code = metric.code
    return Raw(int(row[f"{code}__n"] or 0), int(row.get(f"{code}__k") or 0), float(row.get(f"{code}__s") or 0),
               float(row.get(f"{code}__ss") or 0))


def plain_stat(metric: Metric, raw: Raw) -> Stat:
    """A count, rate (Wilson interval) or mean (±1.96 SE) from its sums."""
    n = raw.n
    if metric.kind == "count" or n == 0:
        return Stat(n=n, value=float(n) if metric.kind == "count" else None)
    if metric.kind == "rate":
        return Stat(n, 100.0 * raw.k / n, *wilson(raw.k, n))
    mean = raw.s / n
    sd = math.sqrt(max(0.0, (raw.ss / n - mean * mean) * n / (n - 1))) if n > 1 else 0.0
    return Stat(n, mean, mean - Z * sd / math.sqrt(n), mean + Z * sd / math.sqrt(n))


def _jit_off() -> None:
    if db.session.get_bind().dialect.name == "postgresql":
        # These short aggregates look costly to the planner, whose JIT then spends longer compiling
        # than the query runs (~100 ms each); and the median windows sort every row of the period,
        # which spills to disk at the default 4 MB. Both for this transaction only.
        db.session.execute(sa.text("SET LOCAL jit = off"))
        db.session.execute(sa.text("SET LOCAL work_mem = '64MB'"))


def _plain_rows(plain: list[Metric], frm, keys: list, where: list):
    """Rows of (group key tuple, {code: Raw}) of the plain metrics grouped by keys."""
    labelled = [k.label(f"k{i}") for i, k in enumerate(keys)]
    stmt = sa.select(*labelled, *[c for m in plain for c in _plain_columns(m)]).select_from(frm).where(*where)
    for row in db.session.execute(stmt.group_by(*keys) if keys else stmt).mappings():
        raws = {m.code: _raw(m, row) for m in plain}
        if keys or any(r.n for r in raws.values()):  # an aggregate over no rows still returns one row
            yield tuple(row[f"k{i}"] for i in range(len(keys))), raws


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
    _jit_off()
    for source in ("cases", "events"):
        chosen = [m for m in metrics if m.source == source]
        if not chosen:
            continue
        frm, entity, clock = _source(source, level)
        where = [entity.in_(ids), clock >= start, clock < end]
        keys = ([] if collapse else [entity]) + ([month_of(clock)] if by_month else [])
        plain = [m for m in chosen if m.kind != "median"]
        if plain:
            for key, raws in _plain_rows(plain, frm, keys, where):
                for m in plain:
                    out[key][m.code] = plain_stat(m, raws[m.code])
        for m in (m for m in chosen if m.kind == "median"):
            for row in db.session.execute(grouped_median(keys, m.value(), frm, [*where, m.include()])).all():
                key = tuple(row[: len(keys)])
                n, median, lo, hi = row[len(keys):]
                if not n:  # an ungrouped window over no rows still returns one row
                    continue
                out[key][m.code] = Stat(int(n), float(median), float(lo), float(hi))
    return out


@dataclass
class Rollup:
    """One pass over a period for a dashboard: each entity, the members as a whole, and each month."""

    entities: dict[tuple, dict[str, Stat]]
    whole: dict[tuple, dict[str, Stat]]
    months: dict[tuple, dict[str, Stat]]


def compute_rollup(*, level: str, ids: list[int], members: list[int], start: datetime, end: datetime) -> Rollup:
    """Every metric for each of ``ids``, for ``members`` together, and for ``members`` by month, in
    one grouped query per source and one per median (instead of three passes)."""
    entities: dict = defaultdict(dict)
    whole: dict = defaultdict(dict)
    months: dict = defaultdict(dict)
    if not ids:
        return Rollup(entities, whole, months)
    _jit_off()
    member_set = set(members)
    for source in ("cases", "events"):
        chosen = [m for m in METRICS if m.source == source]
        frm, entity, clock = _source(source, level)
        where = [entity.in_(ids), clock >= start, clock < end]
        plain = [m for m in chosen if m.kind != "median"]
        sums: dict[str, dict] = {"e": defaultdict(lambda: defaultdict(Raw)), "w": defaultdict(lambda: defaultdict(Raw)),
                                 "m": defaultdict(lambda: defaultdict(Raw))}
        for (eid, month), raws in _plain_rows(plain, frm, [entity, month_of(clock)], where):
            for code, raw in raws.items():
                sums["e"][(eid,)][code] += raw
                if eid in member_set:
                    sums["w"][()][code] += raw
                    sums["m"][(month,)][code] += raw
        for target, name in ((entities, "e"), (whole, "w"), (months, "m")):
            for key, raws in sums[name].items():
                for m in plain:
                    target[key][m.code] = plain_stat(m, raws[m.code])
        for m in (m for m in chosen if m.kind == "median"):
            rows = db.session.execute(median_rollup(entity, month_of(clock), entity.in_(members), m.value(), frm,
                                                    [*where, m.include()])).mappings().all()
            _roll_medians(m, rows, member_set, entities, whole, months)
    return Rollup(entities, whole, months)


def _roll_medians(metric: Metric, rows, member_set: set, entities: dict, whole: dict, months: dict) -> None:
    parts: dict = defaultdict(lambda: [0, 0.0, 0, None, None])  # n, sum of middle values, how many, lo, hi
    for row in rows:
        targets = [("e", (row["e"],), row["e_n"], row["e_sum"], row["e_cnt"], row["e_lo"], row["e_hi"])]
        if row["e"] in member_set:
            targets += [("w", (), row["a_n"], row["a_sum"], row["a_cnt"], None, None),
                        ("m", (row["m"],), row["m_n"], row["m_sum"], row["m_cnt"], None, None)]
        for name, key, n, total, count, lo, hi in targets:
            part = parts[(name, key)]
            part[0] = max(part[0], int(n))
            part[1] += float(total or 0)
            part[2] += int(count or 0)
            if lo is not None:
                part[3] = lo if part[3] is None else min(part[3], lo)
                part[4] = hi if part[4] is None else max(part[4], hi)
    for (name, key), (n, total, count, lo, hi) in parts.items():
        target = {"e": entities, "w": whole, "m": months}[name]
        target[key][metric.code] = Stat(n, total / count, None if lo is None else float(lo),
                                        None if hi is None else float(hi))


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
