"""The monthly report of an org: the dashboard's figures for one calendar month, as data.

Everything comes from :func:`app.metrics.dashboard.build`, so the report shows the same numbers as
``GET /api/orgs/{id}/dashboard`` with ``from``/``to`` set to the month: the month's key figures,
each member against its peers (the default peer group), the gap table, and the monthly trend of
the twelve months up to the month (the dashboard's ``trends`` over those months), from which the
previous month's figures are read. :mod:`app.metrics.report_pdf` lays it out as a PDF.
"""

from datetime import date, timedelta

from app.core.errors import BadRequest
from app.metrics import dashboard
from app.metrics.definitions import BY_CODE
from app.orgs.models import Org

FIRST_MONTH = "2000-01"  # nothing in the app is older; it also keeps the trend's year in range
TREND_MONTHS = 12


def _shift(month: str, by: int) -> str:
    """The ``YYYY-MM`` month ``by`` months later (earlier when negative)."""
    index = int(month[:4]) * 12 + int(month[5:]) - 1 + by
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def last_complete_month(today: date) -> str:
    """The calendar month before today's, ``YYYY-MM``."""
    return _shift(f"{today:%Y-%m}", -1)


def month_period(month: str) -> dashboard.Period:
    """The first to the last day of a ``YYYY-MM`` month."""
    start = date(int(month[:4]), int(month[5:]), 1)
    following = _shift(month, 1)
    return dashboard.Period(start, date(int(following[:4]), int(following[5:]), 1) - timedelta(days=1))


def check_month(month: str | None, *, today: date) -> str:
    """The month asked for (default: the last complete one); BadRequest outside 2000-01 … this month."""
    month = month or last_complete_month(today)
    if not FIRST_MONTH <= month <= f"{today:%Y-%m}":
        raise BadRequest(f"month must be between {FIRST_MONTH} and the current month",
                         {"month": month, "latest": f"{today:%Y-%m}"})
    return month


def _change(value: float | None, previous: float | None) -> float | None:
    if value is None or previous is None:
        return None
    return round(value - previous, 2)


def _trend_of(code: str, trends: dict, month: str) -> float | None:
    labels = trends["months"]
    return trends["series"][code][labels.index(month)] if month in labels else None


def monthly_report(*, org: Org, month: str, today: date) -> dict:
    """Gather an org's report for a month: key figures against the previous month, members, gaps, trend."""
    span = month_period(month)
    board = dashboard.build(org=org, span=span, peers=None)
    year = dashboard.Period(month_period(_shift(month, 1 - TREND_MONTHS)).start, span.end)
    trends = dashboard.build(org=org, span=year, peers=None)["trends"]
    previous_month = _shift(month, -1)
    key_figures = []
    for mv in board["metrics"]:
        previous = _trend_of(mv["code"], trends, previous_month)
        key_figures.append({"code": mv["code"], "value": mv["value"], "n": mv["n"],
                            "suppressed": bool(mv.get("suppressed")), "previous": previous,
                            "change": _change(mv["value"], previous)})
    return {
        "org": board["org"],
        "month": month,
        "previous_month": previous_month,
        "period": board["period"],
        "partial": span.end >= today,  # the current month, still running
        "today": today.isoformat(),
        "has_data": any(mv["n"] for mv in board["metrics"]),
        "level": board["level"],
        "member_key": board["member_key"],
        "peers": board["peers"],
        "key_figures": key_figures,
        "members": board["members"],
        "gaps": board["gaps"],
        "trends": trends,
        "metrics": [BY_CODE[mv["code"]] for mv in board["metrics"]],
    }
