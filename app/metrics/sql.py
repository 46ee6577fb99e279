"""The two places where PostgreSQL and SQLite differ for the metrics: time arithmetic and months."""

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class hours_between(FunctionElement):  # noqa: N801 - reads like the SQL function it compiles to
    """Hours from the second timestamp to the first (a float)."""

    type = sa.Float()
    name = "hours_between"
    inherit_cache = True


@compiles(hours_between)
def _hours_sqlite(element, compiler, **kw):
    end, start = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({end}) - julianday({start})) * 24.0)"


@compiles(hours_between, "postgresql")
def _hours_postgresql(element, compiler, **kw):
    end, start = (compiler.process(c, **kw) for c in element.clauses)
    # date_part gives a double; EXTRACT gives numeric, several times slower to sort and average.
    return f"(date_part('epoch', {end} - {start}) / 3600.0)"


class month_of(FunctionElement):  # noqa: N801
    """The calendar month of a timestamp as text, ``YYYY-MM``."""

    type = sa.String()
    name = "month_of"
    inherit_cache = True


@compiles(month_of)
def _month_sqlite(element, compiler, **kw):
    (value,) = (compiler.process(c, **kw) for c in element.clauses)
    return f"strftime('%Y-%m', {value})"


@compiles(month_of, "postgresql")
def _month_postgresql(element, compiler, **kw):
    (value,) = (compiler.process(c, **kw) for c in element.clauses)
    return f"to_char({value}, 'YYYY-MM')"


Z2 = 3.8416  # 1.96², the 95% normal quantile squared


def grouped_median(keys: list[sa.ColumnElement], value: sa.ColumnElement, source, where: list) -> sa.Select:
    """Median of ``value`` per group of ``keys`` over the rows of ``source`` meeting ``where``, with a 95% interval.

    One ordered window numbers each group's values (portable: PostgreSQL and SQLite alike, and
    it gives the interval's order statistics in the same pass, which percentile_cont cannot):
    the median is the middle value (the mean of the two middle ones for an even ``n``); the
    interval runs over the ranks r with |n + 1 − 2r| ≤ 1.96·√n, written squared so no sqrt is needed.
    """
    labelled = [k.label(f"k{i}") for i, k in enumerate(keys)]
    ranked = sa.select(
        *labelled, value.label("x"),
        sa.func.row_number().over(partition_by=keys, order_by=value).label("r"),
        sa.func.count().over(partition_by=keys).label("c"),
    ).select_from(source).where(*where).subquery()
    r, c, x = ranked.c.r, ranked.c.c, ranked.c.x
    in_band = (c + 1 - 2 * r) * (c + 1 - 2 * r) <= Z2 * c
    group = [ranked.c[f"k{i}"] for i in range(len(keys))]
    return sa.select(
        *group, sa.func.max(c).label("n"),
        sa.func.avg(sa.case((_middle(r, c), x))).label("median"),
        sa.func.min(sa.case((in_band, x))).label("lo"),
        sa.func.max(sa.case((in_band, x))).label("hi"),
    ).group_by(*group)


def _middle(r, c):
    return r.in_([(c + 1) // 2, (c + 2) // 2])


def median_rollup(entity, month, member, value, source, where: list) -> sa.Select:
    """Per (entity, month) partial sums from which medians are assembled for each entity (with its
    95% interval), for the members as a whole, and for the members by month — one scan.

    Each row is numbered three ways: within its entity, within all member (or non-member) rows,
    and within its month among them. A group's median is the mean of its middle rows, so summing
    the middle rows' values and counts over the (entity, month) cells gives each median exactly.
    """
    ranked = sa.select(
        entity.label("e"), month.label("m"), value.label("x"),
        sa.func.row_number().over(partition_by=[entity], order_by=value).label("r_e"),
        sa.func.count().over(partition_by=[entity]).label("c_e"),
        sa.func.row_number().over(partition_by=[member], order_by=value).label("r_a"),
        sa.func.count().over(partition_by=[member]).label("c_a"),
        sa.func.row_number().over(partition_by=[member, month], order_by=value).label("r_m"),
        sa.func.count().over(partition_by=[member, month]).label("c_m"),
    ).select_from(source).where(*where).subquery()
    q = ranked.c
    band = (q.c_e + 1 - 2 * q.r_e) * (q.c_e + 1 - 2 * q.r_e) <= Z2 * q.c_e
    cells = []
    for name, r, c in (("e", q.r_e, q.c_e), ("a", q.r_a, q.c_a), ("m", q.r_m, q.c_m)):
        cells += [sa.func.max(c).label(f"{name}_n"),
                  sa.func.sum(sa.case((_middle(r, c), q.x))).label(f"{name}_sum"),
                  sa.func.sum(sa.case((_middle(r, c), 1), else_=0)).label(f"{name}_cnt")]
    return sa.select(q.e, q.m, *cells, sa.func.min(sa.case((band, q.x))).label("e_lo"),
                     sa.func.max(sa.case((band, q.x))).label("e_hi")).group_by(q.e, q.m)
