"""Query models and JSON/CSV forms of metrics and dashboards."""

import csv
import io
from typing import Literal

from flask_babel import get_locale
from pydantic import Field, field_validator

from app.core.schemas import Query, QueryDate, Schema
from app.core.spreadsheet import safe_cell
from app.metrics.dashboard import MAX_PEERS
from app.metrics.definitions import Metric
from app.orgs.permissions import MAX_ID

PEER_GROUPS = ("consortium", "pool", "members", "level", "region", "specialty", "institution")


class FollowUpIn(Schema):
    followed: bool


class PeriodQuery(Query):
    from_: QueryDate | None = Field(default=None, alias="from")
    to: QueryDate | None = None


class PeerReviewIn(Schema):
    case_id: int = Field(ge=1, le=MAX_ID)
    score: Literal["agree", "minor", "major"]
    teaching_note: str = Field(default="", max_length=10_000)


class DashboardQuery(PeriodQuery):
    peers: str | list[int] | None = Field(default=None, max_length=4000)
    format: Literal["json", "csv"] = "json"
    table: Literal["metrics", "members", "gaps", "trends"] = "members"

    @field_validator("peers", mode="before")
    @classmethod
    def _peers(cls, v):
        if v is None or v in PEER_GROUPS:
            return v
        try:
            ids = [int(p) for p in str(v).split(",") if p.strip()]
        except ValueError:
            raise ValueError(f"peers is one of {', '.join(PEER_GROUPS)} or a comma-separated list of ids") from None
        if not ids or len(ids) > MAX_PEERS or any(not 1 <= i <= MAX_ID for i in ids):
            raise ValueError(f"give between 1 and {MAX_PEERS} peer ids")
        return ids


class ReportQuery(Query):
    month: str | None = Field(default=None, pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$",
                              description="YYYY-MM; by default the last complete month")


def label(metric: Metric) -> str:
    """The metric's label in the request's language."""
    return metric.en if _english() else metric.zh


def _english() -> bool:
    return str(get_locale() or "zh").startswith("en")


def definition(metric: Metric) -> str:
    """The metric's definition in the request's language."""
    return metric.definition if _english() else metric.definition_zh


def metric_json(metric: Metric) -> dict:
    """Serialise a metric's definition: label and definition in the request's language, and both."""
    return {"code": metric.code, "label": label(metric), "label_zh": metric.zh, "label_en": metric.en,
            "unit": metric.unit, "direction": metric.direction, "kind": metric.kind,
            "definition": definition(metric), "definition_zh": metric.definition_zh,
            "definition_en": metric.definition, "min_n": metric.min_n, "method": metric.method}


def _metric_columns(mv: dict) -> list:
    peer = mv.get("peer") or {}
    best = mv.get("best_peer") or {}
    return [mv["code"], mv["value"], mv["n"], bool(mv.get("suppressed")), peer.get("p25"), peer.get("p50"),
            peer.get("p75"), peer.get("percentile"), peer.get("n_peers"), mv.get("verdict"), mv.get("gap"),
            mv.get("gap_best_quartile"), mv.get("opportunity"), best.get("name")]


METRIC_HEADER = ["code", "value", "n", "suppressed", "peer_p25", "peer_p50", "peer_p75", "percentile",
                 "n_peers", "verdict", "gap", "gap_best_quartile", "opportunity", "best_peer"]


def dashboard_csv(board: dict, table: str) -> str:
    """One table of a dashboard as CSV text."""
    level = board["member_key"]
    if table == "metrics":
        rows = [METRIC_HEADER] + [_metric_columns(mv) for mv in board["metrics"]]
    elif table == "members":
        rows = [[f"{level}_id", f"{level}_name", *METRIC_HEADER]]
        rows += [[r[level]["id"], r[level]["name"], *_metric_columns(mv)]
                 for r in board["members"] for mv in r["metrics"]]
    elif table == "gaps":
        keys = ["code", "value", "n", "peer_p50", "gap", "gap_best_quartile", "opportunity", "opportunity_unit",
                "verdict", "best_peer"]
        rows = [[f"{level}_id", f"{level}_name", *keys]]
        rows += [[g[level]["id"], g[level]["name"], *[g[k] for k in keys]] for g in board["gaps"]]
    else:
        codes = list(board["trends"]["series"])
        rows = [["month", *codes]]
        rows += [[month, *[board["trends"]["series"][c][i] for c in codes]]
                 for i, month in enumerate(board["trends"]["months"])]
    buf = io.StringIO()
    writer = csv.writer(buf)
    for row in rows:
        writer.writerow([safe_cell(c) for c in row])
    return buf.getvalue()
