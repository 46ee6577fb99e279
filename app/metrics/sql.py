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
        sa.func.avg(sa.case((r.in_([(c + 1) // 2, (c + 2) // 2]), x))).label("median"),
        sa.func.min(sa.case((in_band, x))).label("lo"),
        sa.func.max(sa.case((in_band, x))).label("hi"),
    ).group_by(*group)
