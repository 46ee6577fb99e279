"""Monthly rollup of every metric, so a dashboard reads a few thousand small rows, never every case.

A *cell* holds one metric for one unit (doctor, institution or pool) in one calendar month: the
additive sums of a count, rate or mean (``n``, ``k``, ``s``, ``ss``) and, for a median, the
distribution of its values in half-hour buckets (value = bucket × 0.5 h; stored as little-endian
int32 (bucket, count) pairs), from
which the median of any set of months and units is read exactly at that resolution and without
re-sorting cases. Cells of whole calendar months are stored in ``metric_cells`` when first asked
for; the pieces of a period that are not whole months (and the current month while it is partial)
are computed from the cases on each request by the same query.

The change log is the timeline: every step that moves a metric writes a ``case_events`` row. A
stored month is rebuilt when a timeline entry newer than the month's ``built_upto`` belongs to a
case whose timeline or sharing touches the month (a case shared in March and closed in May
rebuilds March and May), and
when its ``stale_after`` time passes (an open case becomes past due, which moves "answered within
due time" without any step). Untouched months stay frozen.
"""

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.cases.models import Case, CaseEvent
from app.core.time import utcnow
from app.extensions import db
from app.metrics.definitions import METRICS
from app.metrics.models import MetricCell, MetricMonth
from app.metrics.sql import Z2, half_hour_bucket, month_of

BUCKET_HOURS = 0.5  # the resolution of every median, stated in the metric definitions

Cells = dict[tuple[int, str], dict[str, "Cell"]]  # (unit id, "YYYY-MM") -> {code: cell}


def dense(pairs) -> np.ndarray:
    """A distribution as counts indexed by bucket, from distinct (bucket, count) pairs."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    out = np.zeros(int(pairs[:, 0].max()) + 1 if len(pairs) else 0, dtype=np.int64)
    out[pairs[:, 0]] = pairs[:, 1]
    return out


class Cell:
    """One metric's additive figures for one unit and month (``hist``, counts by bucket, only for medians)."""

    __slots__ = ("hist", "k", "n", "s", "ss")

    def __init__(self, n: int = 0, k: int = 0, s: float = 0.0, ss: float = 0.0, hist: np.ndarray | None = None):
        self.n, self.k, self.s, self.ss, self.hist = n, k, s, ss, hist

    def add(self, other: "Cell") -> None:
        """Add another cell's sums to this one (distributions are added up in :func:`_add_distributions`)."""
        self.n += other.n
        self.k += other.k
        self.s += other.s
        self.ss += other.ss


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The first instant of a ``YYYY-MM`` month and of the next one."""
    y, m = int(month[:4]), int(month[5:])
    return datetime(y, m, 1), datetime(y + m // 12, m % 12 + 1, 1)


def split(start: datetime, end: datetime) -> tuple[list[str], list[tuple[datetime, datetime]]]:
    """The whole calendar months inside [start, end) and the partial pieces around them."""
    first = datetime(start.year, start.month, 1)
    if first < start:
        first = month_bounds(f"{first:%Y-%m}")[1]
    whole, cursor = [], first
    while True:
        following = month_bounds(f"{cursor:%Y-%m}")[1]
        if following > end:
            break
        whole.append(f"{cursor:%Y-%m}")
        cursor = following
    if not whole:
        return [], [(start, end)] if start < end else []
    pieces = [(start, first)] if start < first else []
    if cursor < end:
        pieces.append((cursor, end))
    return whole, pieces


def _jit_off() -> None:
    if db.session.get_bind().dialect.name == "postgresql":
        # These short aggregates look costly to the planner, whose JIT then spends longer compiling
        # than the query runs (~100 ms each). For this transaction only.
        db.session.execute(sa.text("SET LOCAL jit = off"))


# ---- computing cells from the cases -----------------------------------------------------------

def live_cells(*, level: str, start: datetime, end: datetime, ids: list[int] | None = None) -> Cells:
    """Every metric's cells per unit and month over [start, end), from the cases (``ids``: only these units)."""
    from app.metrics.service import _plain_columns, _source  # the sources and sums are defined there

    cells: Cells = defaultdict(dict)
    for source in ("cases", "events"):
        chosen = [m for m in METRICS if m.source == source]
        frm, entity, clock = _source(source, level)
        where = [entity.is_not(None), clock >= start, clock < end]
        if ids is not None:
            where.append(entity.in_(ids))
        month = month_of(clock)
        plain = [m for m in chosen if m.kind != "median"]
        stmt = sa.select(entity.label("u"), month.label("m"), *[c for m in plain for c in _plain_columns(m)])
        for row in db.session.execute(stmt.select_from(frm).where(*where).group_by(entity, month)).mappings():
            for m in plain:
                code = m.code
                cells[(row["u"], row["m"])][code] = Cell(
                    int(row[f"{code}__n"] or 0), int(row.get(f"{code}__k") or 0),
                    float(row.get(f"{code}__s") or 0), float(row.get(f"{code}__ss") or 0))
        for m in (m for m in chosen if m.kind == "median"):
            bucket = half_hour_bucket(m.value())
            stmt = sa.select(entity, month, bucket, sa.func.count()).select_from(frm).where(
                *where, m.include()).group_by(entity, month, bucket)
            pairs: dict[tuple, list] = defaultdict(list)
            for unit, mon, b, count in db.session.execute(stmt):
                pairs[(unit, mon)].append((int(b), count))
            for key, found in pairs.items():
                cells[key][m.code] = Cell(n=sum(c for _, c in found), hist=dense(found))
    return cells


# ---- the stored months ----------------------------------------------------------------------

def _touched(since: int) -> dict[str, int]:
    """Months moved by timeline entries newer than ``since``: month -> newest such entry id.

    A case touched by a new entry moves the months of its whole timeline, not only the month it is
    shared in now: shared again after a decline, it leaves the month of its first sharing (dated
    by that sharing's entry).
    """
    touched = sa.select(CaseEvent.case_id, sa.func.max(CaseEvent.id).label("top")).where(
        CaseEvent.id > since).group_by(CaseEvent.case_id).subquery()
    history = sa.select(month_of(CaseEvent.at).label("m"), touched.c.top).join(
        touched, touched.c.case_id == CaseEvent.case_id)
    current = sa.select(month_of(Case.submitted_at).label("m"), touched.c.top).join(
        touched, touched.c.case_id == Case.id).where(Case.submitted_at.is_not(None))
    both = sa.union_all(history, current).subquery()
    return {m: top for m, top in db.session.execute(sa.select(both.c.m, sa.func.max(both.c.top)).group_by(both.c.m))}


def _next_past_due(month: str, now: datetime) -> datetime | None:
    """When the next open case shared in the month passes its due time (its cells then change)."""
    start, end = month_bounds(month)
    return db.session.scalar(sa.select(sa.func.min(Case.due_at)).where(
        Case.submitted_at >= start, Case.submitted_at < end, Case.status.in_(("submitted", "accepted")),
        Case.paused_at.is_(None), Case.answered_at.is_(None), Case.due_at >= now))


def _upsert_month(level: str, month: str, top: int, stale_after: datetime | None, now: datetime) -> None:
    values = {"kind": level, "month": month, "built_upto": top, "stale_after": stale_after, "built_at": now}
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    # Taking the month's row first also serialises two requests rebuilding the same month.
    stmt = dialect.insert(MetricMonth).values(**values)
    db.session.execute(stmt.on_conflict_do_update(index_elements=["kind", "month"], set_={
        k: stmt.excluded[k] for k in ("built_upto", "stale_after", "built_at")}))


def _build(level: str, month: str, top: int, now: datetime) -> None:
    _upsert_month(level, month, top, _next_past_due(month, now), now)
    db.session.execute(sa.delete(MetricCell).where(MetricCell.kind == level, MetricCell.month == month))
    start, end = month_bounds(month)
    rows = [{"kind": level, "month": month, "unit_id": unit, "code": code, "n": c.n, "k": c.k, "s": c.s, "ss": c.ss,
             "hist": None if c.hist is None else _encode(c.hist)}
            for (unit, _), by_code in live_cells(level=level, start=start, end=end).items()
            for code, c in by_code.items()]
    if rows:
        db.session.execute(sa.insert(MetricCell), rows)


def refresh(*, level: str, months: list[str]) -> None:
    """Bring the stored cells of these months up to date (build missing, touched or stale months) and commit."""
    if not months:
        return
    _jit_off()
    now = utcnow()
    top = db.session.scalar(sa.select(sa.func.max(CaseEvent.id))) or 0
    state = {s.month: s for s in db.session.scalars(
        sa.select(MetricMonth).where(MetricMonth.kind == level, MetricMonth.month.in_(months)))}
    stale = {m for m in months if m not in state or (state[m].stale_after is not None and state[m].stale_after <= now)}
    frozen = [m for m in state if m not in stale]
    since = min((state[m].built_upto for m in frozen), default=top)
    if since < top:
        touched = _touched(since)
        stale |= {m for m in frozen if touched.get(m, 0) > state[m].built_upto}
        kept = [m for m in frozen if m not in stale]
        if kept:  # checked up to the newest entry: the next request looks only at newer ones
            db.session.execute(sa.update(MetricMonth).where(
                MetricMonth.kind == level, MetricMonth.month.in_(kept), MetricMonth.built_upto < top).values(
                built_upto=top))
    for month in sorted(stale):
        _build(level, month, top, now)
    db.session.commit()


def _encode(hist: np.ndarray) -> bytes:
    buckets = np.flatnonzero(hist)
    return np.column_stack([buckets, hist[buckets]]).astype("<i4").tobytes()


@dataclass(frozen=True)
class View:
    """One way of adding the cells up: over ``units`` (None: all asked for), by unit and/or by month.
    Its groups are keyed ``tag + (unit,)? + (month,)?``."""

    tag: tuple = ()
    units: frozenset | None = None
    by_unit: bool = True
    by_month: bool = False

    def key(self, unit: int, month: str) -> tuple:
        """The group a cell of this unit and month adds to."""
        return self.tag + ((unit,) if self.by_unit else ()) + ((month,) if self.by_month else ())


def gather(*, level: str, ids: list[int], start: datetime, end: datetime, views: list[View]) -> dict[tuple, dict]:
    """Add up every metric's cells of the units over [start, end) in each view: {group: {code: Cell}}.

    Whole months come from the stored cells (their sums added up in SQL, their distributions merged
    here), the partial pieces from the cases.
    """
    out: dict[tuple, dict[str, Cell]] = defaultdict(dict)
    whole, pieces = split(start, end)
    refresh(level=level, months=whole)
    _jit_off()  # again: refresh committed, which ended the SET LOCAL
    c = MetricCell
    stored = [c.kind == level, c.month.in_(whole), c.unit_id.in_(ids)]
    for view in views if whole else ():
        units = ids if view.units is None else [u for u in ids if u in view.units]
        groups = ([c.unit_id] if view.by_unit else []) + ([c.month] if view.by_month else []) + [c.code]
        stmt = sa.select(*groups, sa.func.sum(c.n), sa.func.sum(c.k), sa.func.sum(c.s), sa.func.sum(c.ss)).where(
            *stored, c.unit_id.in_(units), c.hist.is_(None)).group_by(*groups)
        for row in db.session.execute(stmt):
            *key, code, n, k, total, squares = row
            out[view.tag + tuple(key)][code] = Cell(int(n), int(k), float(total), float(squares))
    # Distributions: every (bucket, count) pair of every cell, added up per group in one bincount.
    spread: dict[str, list[tuple[int, str, np.ndarray]]] = defaultdict(list)
    if whole:
        for unit, month, code, blob in db.session.execute(sa.select(c.unit_id, c.month, c.code, c.hist).where(
                *stored, c.hist.is_not(None))):
            spread[code].append((unit, month, np.frombuffer(blob, dtype="<i4").reshape(-1, 2)))
    for a, b in pieces:
        for (unit, month), by_code in live_cells(level=level, start=a, end=b, ids=ids).items():
            for code, cell in by_code.items():
                if cell.hist is not None:
                    buckets = np.flatnonzero(cell.hist)
                    spread[code].append((unit, month, np.column_stack([buckets, cell.hist[buckets]])))
                    continue
                for view in views:
                    if view.units is None or unit in view.units:
                        out[view.key(unit, month)].setdefault(code, Cell()).add(cell)
    for code, parts in spread.items():
        _add_distributions(out, code, parts, views)
    return out


def _add_distributions(out: dict, code: str, parts: list[tuple[int, str, np.ndarray]], views: list[View]) -> None:
    pairs = np.concatenate([p for _, _, p in parts]).astype(np.int64)
    lengths = [len(p) for _, _, p in parts]
    width = int(pairs[:, 0].max()) + 1 if len(pairs) else 1
    for view in views:
        groups: dict[tuple, int] = {}
        index = [groups.setdefault(view.key(unit, month), len(groups))
                 if view.units is None or unit in view.units else -1 for unit, month, _ in parts]
        if not groups:
            continue
        row = np.repeat(np.asarray(index, dtype=np.int64), lengths)
        keep = row >= 0
        table = np.bincount(row[keep] * width + pairs[keep, 0], weights=pairs[keep, 1],
                            minlength=len(groups) * width).reshape(len(groups), width).astype(np.int64)
        for key, i in groups.items():
            out[key][code] = Cell(n=int(table[i].sum()), hist=table[i])


def median_stat(hist: np.ndarray) -> tuple[int, float, float, float]:
    """n, median and the distribution-free 95% interval (order statistics) of a bucketed distribution."""
    n = int(hist.sum())
    half = math.sqrt(Z2 * n)
    # Ranks r with |n + 1 − 2r| ≤ 1.96·√n; the two middle ranks give the median.
    lo_rank = max(1, math.ceil((n + 1 - half) / 2))
    while (n + 1 - 2 * lo_rank) ** 2 > Z2 * n:  # float rounding at the edge of the band
        lo_rank += 1
    hi_rank = n + 1 - lo_rank  # the band is symmetric about the middle
    ranks = np.array([lo_rank, (n + 1) // 2, (n + 2) // 2, hi_rank])
    # The value at rank r is the first bucket whose running count reaches r.
    lo, m1, m2, hi = (np.searchsorted(np.cumsum(hist), ranks) * BUCKET_HOURS).tolist()
    return n, (m1 + m2) / 2, lo, hi
