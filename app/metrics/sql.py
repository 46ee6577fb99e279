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


class half_hour_bucket(FunctionElement):  # noqa: N801
    """The half-hour bucket of a number of hours: hours rounded to the nearest 0.5 (halves up), × 2.

    A negative time (a pause recorded longer than the whole wait) counts as 0 h: a distribution is
    stored indexed by bucket, where a negative bucket would land on the wrong end."""

    type = sa.Integer()
    name = "half_hour_bucket"
    inherit_cache = True


@compiles(half_hour_bucket)
def _bucket_sqlite(element, compiler, **kw):
    (value,) = (compiler.process(c, **kw) for c in element.clauses)
    # CAST truncates toward zero, which is floor for the non-negative hours measured.
    return f"max(CAST(({value}) * 2 + 0.5 AS INTEGER), 0)"


@compiles(half_hour_bucket, "postgresql")
def _bucket_postgresql(element, compiler, **kw):
    (value,) = (compiler.process(c, **kw) for c in element.clauses)
    # floor first: a plain ::int cast would round (half to even), not match SQLite.
    return f"GREATEST(CAST(floor(({value}) * 2 + 0.5) AS INTEGER), 0)"


Z2 = 3.8416  # 1.96², the 95% normal quantile squared
