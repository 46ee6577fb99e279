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
journal (``metric_journal``) reads the entries it has not seen and turns them into *dirty units* of
the stored months (``metric_dirty``): per level, where each touched case was counted before (its
*mark*, ``metric_marks``: month of sharing, specialist, the specialist's institution, pool), where it
is counted now, and the month and actor (pool, for the pool level) of each new entry; a case moved to
another pool also moves every entry of its timeline between the two pools. So a case reassigned
to another doctor rebuilds the previous doctor's cells as well, and a case shared again leaves the
month of its first sharing. A stored month is then rebuilt for its dirty units only (a query over the
cases of those units), and, when its ``stale_after`` time passes (an open case becomes past due, which
moves "answered within due time" without any step), for the units of the cases that passed their due
time since ``built_at``. Untouched units and months stay frozen. A case written without any timeline
entry (bulk loads) is not seen until its month is built again whole (``flask --app run
metrics-rebuild``, :func:`rebuild_all`, nightly).

Entry ids are handed out before their transaction commits, so an entry can become visible after
one with a larger id. The journal's watermark (``upto``) therefore never passes an entry younger
than :data:`JOURNAL_LAG`; above it, the count and sum of the ids read are kept, and when the entries
there no longer add up to them (one appeared late) the window is read again (marking dirty twice is
harmless). An entry committed more than the lag after a later one is left to the nightly rebuild.
"""

import math
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import sqlalchemy as sa
from sqlalchemy import orm as so
from sqlalchemy.dialects import postgresql, sqlite

from app.accounts.models import User
from app.cases.models import Case, CaseEvent
from app.core.time import utcnow
from app.extensions import db
from app.metrics.definitions import METRICS, probing
from app.metrics.models import MetricCell, MetricDirty, MetricJournal, MetricMark, MetricMonth
from app.metrics.sql import Z2, half_hour_bucket, month_of

BUCKET_HOURS = 0.5  # the resolution of every median, stated in the metric definitions

Cells = dict[tuple[int, str], dict[str, "Cell"]]  # (unit id, "YYYY-MM") -> {code: cell}


def dense(pairs) -> np.ndarray:
    """A distribution as counts indexed by bucket, from distinct (bucket, count) pairs."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) and pairs[:, 0].min() < 0:
        raise ValueError("a distribution's buckets start at 0")  # a negative index would overwrite the last ones
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

# Above this many dirty units in one month, building the whole month is as quick as the units one by one.
PARTIAL_LIMIT = 64


def _insert(model):
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


# Entries younger than this may still have smaller-id entries in transactions not yet committed:
# the journal's watermark stays behind them and the window above it is checked on every refresh.
JOURNAL_LAG = timedelta(minutes=2)


@dataclass(frozen=True)
class Position:
    """The journal row (None before its first run) against the timeline as this transaction sees it."""

    top: int  # the highest entry id visible
    upto: int | None  # the safe watermark
    read_upto: int | None  # the highest entry read
    read: tuple[int, int] | None  # (count, sum) of the ids read in (upto, read_upto]
    now: tuple[int, int] | None  # (count, sum) of the ids visible there now

    @property
    def current(self) -> bool:
        """Every visible entry has been read (none appeared above or, late, inside the window)."""
        return self.upto is not None and self.read_upto == self.top and self.read == self.now


def _position(*, lock: bool = False) -> Position:
    """Where the journal stands, in one statement (``lock``: take its row, PostgreSQL FOR UPDATE;
    SQLite serialises writers anyway). Every refresh that writes holds the row until its commit, so
    journal runs and builds never interleave."""
    j = MetricJournal
    top = sa.select(sa.func.coalesce(sa.func.max(CaseEvent.id), 0)).scalar_subquery()
    read_upto = sa.func.coalesce(j.read_upto, j.upto)
    inside = sa.and_(CaseEvent.id > j.upto, CaseEvent.id <= read_upto)
    now_count = sa.select(sa.func.count()).where(inside).scalar_subquery()
    now_sum = sa.select(sa.func.coalesce(sa.func.sum(CaseEvent.id), 0)).where(inside).scalar_subquery()
    stmt = sa.select(top, j.upto, read_upto, j.read_count, j.read_sum, now_count, now_sum).where(j.id == 1)
    if lock and db.session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=j)
    row = db.session.execute(stmt).first()
    if row is None:
        return Position(db.session.scalar(sa.select(top)), None, None, None, None)
    top, upto, read_upto, count, total, now_count, now_sum = row
    return Position(top, upto, read_upto, (int(count or 0), int(total or 0)), (int(now_count), int(now_sum)))


def _watermark(upto: int, top: int, now: datetime):
    """The highest visible entry in (upto, top] below every entry younger than the lag (NULL: none), as
    a scalar subquery: an entry not yet visible below it would belong to a transaction open for
    longer than the lag."""
    young = sa.select(sa.func.min(CaseEvent.id)).where(
        CaseEvent.id > upto, CaseEvent.id <= top, CaseEvent.at >= now - JOURNAL_LAG).scalar_subquery()
    return sa.select(sa.func.max(CaseEvent.id)).where(
        CaseEvent.id > upto, CaseEvent.id <= top, CaseEvent.id < sa.func.coalesce(young, top + 1)).scalar_subquery()


def _marks(touched) -> None:
    """Write the marks of the cases (all when ``touched`` is None) as they stand now."""
    consultant = so.aliased(User)
    stmt = sa.select(Case.id, month_of(Case.submitted_at), Case.consultant_id, consultant.institution_id,
                     Case.pool_id).outerjoin(consultant, consultant.id == Case.consultant_id)
    if touched is not None:
        stmt = stmt.join(touched, touched.c.case_id == Case.id)
    stmt = stmt.where(Case.id.is_not(None))  # SQLite reads INSERT … SELECT … ON CONFLICT only with a WHERE
    insert = _insert(MetricMark).from_select(["case_id", "month", "doctor_id", "institution_id", "pool_id"], stmt)
    db.session.execute(insert.on_conflict_do_update(index_elements=["case_id"], set_={
        k: insert.excluded[k] for k in ("month", "doctor_id", "institution_id", "pool_id")}))


def _kind(level: str):
    return sa.literal_column(f"'{level}'", sa.String)


def _journal(top: int | None = None) -> int:
    """Turn the timeline entries the journal has not read into dirty units of the stored months,
    bring the marks of their cases up to date, and return the highest entry read.

    The units a case moves, per level: where its mark says it was counted (month of sharing and
    specialist, institution, pool), where it is counted now, and for the events source the
    month and actor (or pool) of each new entry; when its pool changed, every entry of its timeline
    moves from the old pool to the new one. Takes the journal row. When an entry appeared late
    below the highest one read (its transaction committed after a later one's), every entry above
    the watermark is read again: marking dirty again is harmless. ``top`` is ignored (the entries
    visible once the row is held are read).
    """
    pos = _position(lock=True)
    top, now = pos.top, utcnow()
    if pos.upto is None:  # the first run: mark every case; cells stored without marks cannot be trusted
        for model in (MetricDirty, MetricCell, MetricMonth):
            db.session.execute(sa.delete(model))
        _marks(None)
        db.session.execute(_insert(MetricJournal).values(id=1, upto=0).on_conflict_do_nothing())
        _advance(0, top, now)
        return top
    if pos.current:
        return top
    lo = pos.upto if pos.read != pos.now else pos.read_upto
    new = sa.and_(CaseEvent.id > lo, CaseEvent.id <= top)
    touched = sa.select(CaseEvent.case_id).where(new).distinct().subquery()
    mark, consultant, actor = MetricMark, so.aliased(User), so.aliased(User)
    now_in = sa.select(Case.id, Case.submitted_at, Case.consultant_id, Case.pool_id).join(
        touched, touched.c.case_id == Case.id).subquery()
    was = sa.select(mark).join(touched, touched.c.case_id == mark.case_id).subquery()
    here = month_of(now_in.c.submitted_at)
    at = month_of(CaseEvent.at)
    # Entries of cases whose pool changed (no mark: its pool before is unknown, so its entries move too).
    moved = sa.select(CaseEvent.at, Case.pool_id.label("now"), mark.pool_id.label("was")).join(
        touched, touched.c.case_id == CaseEvent.case_id).join(Case, Case.id == CaseEvent.case_id).outerjoin(
        mark, mark.case_id == Case.id).where(mark.pool_id.is_distinct_from(Case.pool_id)).subquery()
    moved_at = month_of(moved.c.at)
    parts = [
        sa.select(_kind("doctor").label("kind"), was.c.month.label("month"), was.c.doctor_id.label("unit")),
        sa.select(_kind("doctor"), here, now_in.c.consultant_id),
        sa.select(_kind("doctor"), at, CaseEvent.actor_id).where(new),
        sa.select(_kind("institution"), was.c.month, was.c.institution_id),
        sa.select(_kind("institution"), here, consultant.institution_id).join_from(
            now_in, consultant, consultant.id == now_in.c.consultant_id),
        sa.select(_kind("institution"), at, actor.institution_id).join_from(
            CaseEvent, actor, actor.id == CaseEvent.actor_id).where(new),
        sa.select(_kind("pool"), was.c.month, was.c.pool_id),
        sa.select(_kind("pool"), here, now_in.c.pool_id),
        sa.select(_kind("pool"), at, Case.pool_id).join_from(
            CaseEvent, Case, Case.id == CaseEvent.case_id).where(new),
        sa.select(_kind("pool"), moved_at, moved.c.now),
        sa.select(_kind("pool"), moved_at, moved.c.was),
    ]
    units = sa.union(*parts).subquery()
    kind, month, unit = units.c.kind, units.c.month, units.c.unit
    stored = sa.select(kind, month, unit, sa.literal(top)).join(
        MetricMonth, sa.and_(MetricMonth.kind == kind, MetricMonth.month == month)).where(unit.is_not(None))
    insert = _insert(MetricDirty).from_select(["kind", "month", "unit_id", "upto"], stored)
    db.session.execute(insert.on_conflict_do_update(index_elements=["kind", "month", "unit_id"],
                                                    set_={"upto": insert.excluded.upto}))
    _marks(touched)
    _advance(pos.upto, top, now)
    return top


def _advance(upto: int, top: int, now: datetime) -> None:
    """Record that every entry up to ``top`` is read, and move the watermark as far as is safe (one statement)."""
    safe = sa.func.coalesce(_watermark(upto, top, now), upto)
    inside = sa.and_(CaseEvent.id > safe, CaseEvent.id <= top)
    db.session.execute(sa.update(MetricJournal).where(MetricJournal.id == 1).values(
        upto=safe, read_upto=top,
        read_count=sa.select(sa.func.count()).where(inside).scalar_subquery(),
        read_sum=sa.select(sa.func.coalesce(sa.func.sum(CaseEvent.id), 0)).where(inside).scalar_subquery()))


def _next_past_due(month: str, now: datetime) -> datetime | None:
    """When the next open case shared in the month passes its due time (its cells then change)."""
    start, end = month_bounds(month)
    return db.session.scalar(sa.select(sa.func.min(Case.due_at)).where(
        Case.submitted_at >= start, Case.submitted_at < end, Case.status.in_(("submitted", "accepted")),
        Case.paused_at.is_(None), Case.answered_at.is_(None), Case.due_at >= now))


def _passed_due(level: str, month: str, since: datetime, now: datetime) -> set[int]:
    """The units of the open cases shared in the month that passed their due time in [since, now)."""
    from app.metrics.service import _source

    frm, entity, _ = _source("cases", level)
    start, end = month_bounds(month)
    return set(db.session.scalars(sa.select(entity).select_from(frm).where(
        Case.submitted_at >= start, Case.submitted_at < end, Case.status.in_(("submitted", "accepted")),
        Case.paused_at.is_(None), Case.answered_at.is_(None), Case.due_at >= since, Case.due_at < now,
        entity.is_not(None)).distinct()))


def _upsert_month(level: str, month: str, top: int, stale_after: datetime | None, now: datetime) -> None:
    values = {"kind": level, "month": month, "built_upto": top, "stale_after": stale_after, "built_at": now}
    stmt = _insert(MetricMonth).values(**values)
    db.session.execute(stmt.on_conflict_do_update(index_elements=["kind", "month"], set_={
        k: stmt.excluded[k] for k in ("built_upto", "stale_after", "built_at")}))


def _store(level: str, month: str, units: set[int] | None) -> None:
    """Replace the month's cells of these units (None: of every unit) by cells computed from the cases."""
    where = [MetricCell.kind == level, MetricCell.month == month]
    if units is not None:
        where.append(MetricCell.unit_id.in_(sorted(units)))
    db.session.execute(sa.delete(MetricCell).where(*where))
    start, end = month_bounds(month)
    with nullcontext() if units is None else probing():  # a few units: look up their cases' rows one by one
        cells = live_cells(level=level, start=start, end=end, ids=None if units is None else sorted(units))
    rows = [{"kind": level, "month": month, "unit_id": unit, "code": code, "n": c.n, "k": c.k, "s": c.s, "ss": c.ss,
             "hist": None if c.hist is None else _encode(c.hist)}
            for (unit, _), by_code in cells.items() for code, c in by_code.items()]
    if rows:
        db.session.execute(sa.insert(MetricCell), rows)


def refresh(*, level: str, months: list[str]) -> bool:
    """Bring the stored cells of these months up to date and commit; return whether it wrote (and
    committed). When they are up to date it only reads, in the transaction it was called in.

    Missing months are built whole; in a stored month only the dirty units (from the journal) and
    the units of open cases that passed their due time since the month's ``built_at`` are rebuilt.
    """
    if not months:
        return False
    _jit_off()
    now = utcnow()

    def stored() -> dict[str, MetricMonth]:
        return {s.month: s for s in db.session.execute(
            sa.select(MetricMonth).where(MetricMonth.kind == level, MetricMonth.month.in_(months))
            .execution_options(populate_existing=True)).scalars()}

    if _position().current:  # nothing new in the timeline: up to date unless dirty, missing or stale
        dirty_here = sa.exists().where(MetricDirty.kind == level, MetricDirty.month.in_(months))
        rows = db.session.execute(sa.select(MetricMonth.month, MetricMonth.stale_after, dirty_here).where(
            MetricMonth.kind == level, MetricMonth.month.in_(months))).all()
        if len(rows) == len(set(months)) and not any(
                dirty or (stale is not None and stale <= now) for _, stale, dirty in rows):
            return False
    upto = _journal()  # takes the journal row: from here on this request is the only writer
    found = stored()
    dirty: dict[str, set[int]] = defaultdict(set)
    for month, unit in db.session.execute(sa.select(MetricDirty.month, MetricDirty.unit_id).where(
            MetricDirty.kind == level, MetricDirty.month.in_(months))):
        dirty[month].add(unit)
    for month in sorted(months):
        have = found.get(month)
        passed = have is not None and have.stale_after is not None and have.stale_after <= now
        units = dirty.get(month, set()) | (_passed_due(level, month, have.built_at, now) if passed else set())
        if have is not None and not units and not passed:
            continue
        whole = have is None or len(units) > PARTIAL_LIMIT
        # built_at: the time up to which every cell of the month counts the cases past due.
        since = now if whole or passed else have.built_at
        _upsert_month(level, month, upto, _next_past_due(month, now), since)
        _store(level, month, None if whole else units)
    db.session.execute(sa.delete(MetricDirty).where(
        MetricDirty.kind == level, MetricDirty.month.in_(months), MetricDirty.upto <= upto))
    db.session.commit()
    return True


def rebuild_all() -> int:
    """Rebuild every stored month whole, from the cases, and every case's mark; return the months.

    The healing path for changes the journal cannot see (a case written without a timeline entry,
    a late entry older than the lag, a doctor moved to another institution): run it nightly. Each
    month is its own transaction, so dashboards wait for at most one month's build.
    """
    _jit_off()
    _journal()
    _marks(None)
    db.session.commit()
    stored = db.session.execute(sa.select(MetricMonth.kind, MetricMonth.month).order_by(
        MetricMonth.kind, MetricMonth.month)).all()
    for level, month in stored:
        _jit_off()
        upto = _journal()  # takes the journal row until the month's commit
        now = utcnow()
        _upsert_month(level, month, upto, _next_past_due(month, now), now)
        _store(level, month, None)
        db.session.execute(sa.delete(MetricDirty).where(
            MetricDirty.kind == level, MetricDirty.month == month, MetricDirty.upto <= upto))
        db.session.commit()
    return len(stored)


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
    codes: frozenset | None = None  # the metrics added up (None: all)

    def key(self, unit: int, month: str) -> tuple:
        """The group a cell of this unit and month adds to."""
        return self.tag + ((unit,) if self.by_unit else ()) + ((month,) if self.by_month else ())


def gather(*, level: str, ids: list[int], start: datetime, end: datetime, views: list[View]) -> dict[tuple, dict]:
    """Add up every metric's cells of the units over [start, end) in each view: {group: {code: Cell}}.

    Whole months come from the stored cells (their sums added up in SQL, every view in one
    statement; their distributions merged here, all cells of a metric in one bincount per view),
    the partial pieces from the cases.
    """
    out: dict[tuple, dict[str, Cell]] = defaultdict(dict)
    whole, pieces = split(start, end)
    if refresh(level=level, months=whole):
        _jit_off()  # again: refresh committed, which ended the SET LOCAL
    c = MetricCell
    stored = [c.kind == level, c.month.in_(whole), c.unit_id.in_(ids)]
    if whole and views:
        parts = []
        for i, view in enumerate(views):
            unit = c.unit_id if view.by_unit else sa.cast(sa.null(), sa.Integer)
            month = c.month if view.by_month else sa.cast(sa.null(), sa.String)
            groups = ([c.unit_id] if view.by_unit else []) + ([c.month] if view.by_month else []) + [c.code]
            where = [*stored, c.hist.is_(None)]
            if view.codes is not None:
                where.append(c.code.in_(sorted(view.codes)))
            if view.units is not None:
                where.append(c.unit_id.in_([u for u in ids if u in view.units]))
            parts.append(sa.select(sa.literal(i).label("v"), unit.label("u"), month.label("m"), c.code,
                                   sa.func.sum(c.n), sa.func.sum(c.k), sa.func.sum(c.s), sa.func.sum(c.ss))
                         .where(*where).group_by(*groups))
        for i, unit, month, code, n, k, total, squares in db.session.execute(sa.union_all(*parts)):
            view = views[i]
            key = view.tag + ((unit,) if view.by_unit else ()) + ((month,) if view.by_month else ())
            out[key][code] = Cell(int(n), int(k), float(total), float(squares))
    # Distributions: every (bucket, count) pair of every cell, added up per group in one bincount.
    spread: dict[str, tuple[list, list, list]] = defaultdict(lambda: ([], [], []))
    if whole:
        for unit, month, code, blob in db.session.execute(sa.select(c.unit_id, c.month, c.code, c.hist).where(
                *stored, c.hist.is_not(None))):
            units, months, blobs = spread[code]
            units.append(unit)
            months.append(month)
            blobs.append(blob)
    for a, b in pieces:
        for (unit, month), by_code in live_cells(level=level, start=a, end=b, ids=ids).items():
            for code, cell in by_code.items():
                if cell.hist is not None:
                    units, months, blobs = spread[code]
                    units.append(unit)
                    months.append(month)
                    blobs.append(_encode(cell.hist))
                    continue
                for view in views:
                    if (view.units is None or unit in view.units) and (view.codes is None or code in view.codes):
                        out[view.key(unit, month)].setdefault(code, Cell()).add(cell)
    for code, (units, months, blobs) in spread.items():
        _add_distributions(out, code, units, months, blobs, views)
    return out


def _add_distributions(out: dict, code: str, units: list[int], months: list[str], blobs: list[bytes],
                       views: list[View]) -> None:
    """Merge the cells' distributions (encoded (bucket, count) pairs) into each view's groups."""
    pairs = np.frombuffer(b"".join(blobs), dtype="<i4").reshape(-1, 2)
    buckets, weights = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.float64)  # contiguous, once for all views
    lengths = np.asarray([len(b) for b in blobs], dtype=np.int64) // 8
    width = int(buckets.max()) + 1 if len(buckets) else 1
    unit_ids, unit_of = np.unique(np.asarray(units, dtype=np.int64), return_inverse=True)
    month_names, month_of_cell = np.unique(np.asarray(months), return_inverse=True)
    for view in views:
        if view.codes is not None and code not in view.codes:
            continue
        cell_key = (unit_of if view.by_unit else 0) * len(month_names) + (month_of_cell if view.by_month else 0)
        cell_key = np.broadcast_to(np.asarray(cell_key, dtype=np.int64), unit_of.shape)
        if view.units is not None:
            cell_key = np.where(np.isin(unit_ids, list(view.units))[unit_of], cell_key, -1)
        keys, group_of = np.unique(cell_key, return_inverse=True)
        index, weight = buckets, weights
        if len(keys) and keys[0] < 0:  # the cells outside the view
            keys, group_of = keys[1:], group_of - 1
            keep = np.repeat(group_of >= 0, lengths)
            index, weight, lengths_in, group_of = buckets[keep], weights[keep], lengths[group_of >= 0], group_of[
                group_of >= 0]
        else:
            lengths_in = lengths
        if not len(keys):
            continue
        table = np.bincount(np.repeat(group_of * width, lengths_in) + index, weights=weight,
                            minlength=len(keys) * width).reshape(len(keys), width).astype(np.int64)
        totals = table.sum(axis=1).tolist()
        for i, key in enumerate(keys.tolist()):
            unit, month = divmod(key, len(month_names))
            group = view.tag + ((int(unit_ids[unit]),) if view.by_unit else ()) + (
                (str(month_names[month]),) if view.by_month else ())
            out[group][code] = Cell(n=totals[i], hist=table[i])


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
