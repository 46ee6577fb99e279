"""Peer comparison and gap analysis for an org's dashboard.

A consortium's dashboard compares its member institutions; a pool's or department's compares its
doctors. Each member is set against a peer group: the other members (the default), institutions
of the same level or region, doctors of the same specialty, or a list the user chose. For each
metric: the peers' quartiles, the member's percentile among them, a verdict from the member's 95%
interval against the peer median (better / no different / worse, as CMS Care Compare does), the
gap to the peer median and to the best quartile, the opportunity (gap × yearly volume), and the
best-performing peer, named only when its org agreed to be named (``Org.name_peers_ok``).
"""

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa

from app.accounts.models import Institution, User
from app.core.errors import BadRequest
from app.extensions import db
from app.metrics.definitions import ADDITIVE, HIGHER, LOWER, METRICS, Metric
from app.metrics.service import Stat, compute_rollup, shown, stat_of
from app.orgs.models import ConsortiumInstitution, Org, OrgMember

ANONYMOUS = "an anonymous peer"
MAX_PEERS = 200
# Peers whose figures the viewer cannot read one by one (doctors of the same specialty elsewhere,
# hospitals of the same region outside the consortium): with fewer than this many among the values
# compared, the quartiles, percentile and best value (four equations) would solve theirs, so the
# peer block is withheld.
MIN_UNSEEN_PEERS = 5


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        return datetime.combine(self.start, time()), datetime.combine(self.end + timedelta(days=1), time())

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def period(start: date | None, end: date | None, *, today: date) -> Period:
    """The period asked for; by default the twelve months up to today."""
    end = end or today
    start = start or end - timedelta(days=364)
    if start > end:
        raise BadRequest("from must not be after to", {"from": start.isoformat(), "to": end.isoformat()})
    if (end - start).days > 366 * 5:
        raise BadRequest("the period may span at most five years")
    return Period(start, end)


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """p25, p50 and p75 with linear interpolation (as percentile_cont)."""
    return _quartiles_sorted(sorted(values))


def _quartiles_sorted(ordered: list[float]) -> tuple[float, float, float]:
    def at(q: float) -> float:
        pos = q * (len(ordered) - 1)
        low = int(pos)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)

    return at(0.25), at(0.5), at(0.75)


def percentile(metric: Metric, value: float, peers: list[float]) -> int:
    """The share of peers the value does better than (ties count half), 0–100."""
    return _percentile_sorted(metric, value, sorted(peers))


def _percentile_sorted(metric: Metric, value: float, ordered: list[float]) -> int:
    below, upto = bisect_left(ordered, value), bisect_right(ordered, value)
    strict = len(ordered) - upto if metric.direction == LOWER else below  # lower is better: beats the higher
    beaten = strict + (upto - below) / 2
    return round(100 * beaten / len(ordered))


def verdict(metric: Metric, stat: Stat, p50: float) -> str | None:
    """better / no_different / worse: does the value's 95% interval exclude the peer median?"""
    if metric.direction not in (HIGHER, LOWER) or stat.lo is None:
        return None
    if stat.lo > p50:
        return "better" if metric.direction == HIGHER else "worse"
    if stat.hi < p50:
        return "worse" if metric.direction == HIGHER else "better"
    return "no_different"


def _shortfall(metric: Metric, value: float, target: float) -> float:
    """How far the value is behind the target, in the metric's unit (negative: ahead)."""
    return target - value if metric.direction == HIGHER else value - target


def _per_year(metric: Metric, gap: float, stat: Stat, days: int) -> float | None:
    if metric.kind not in ("rate", "median") or gap <= 0:
        return 0.0 if metric.kind in ("rate", "median") else None
    yearly = stat.n * 365 / days
    return round((gap / 100 if metric.kind == "rate" else gap) * yearly, 1)


OPPORTUNITY_UNITS = {"rate": "cases/year", "median": "case-hours/year"}


def metric_value(metric: Metric, stat: Stat, peers: list[tuple[int, Stat]] | None, *, days: int,
                 names: dict[int, str | None], unseen: frozenset[int] | set[int] = frozenset(),
                 withheld: bool = False) -> dict:
    """A metric value of the contract: value (or suppressed), n, the peer block, gap and opportunity."""
    comparable = [(pid, s.value) for pid, s in (peers or []) if shown(metric, s) is not None]
    return metric_value_among(metric, stat, comparable, days=days, names=names, unseen=unseen, withheld=withheld)


def metric_value_among(metric: Metric, stat: Stat, comparable: list[tuple[int, float]], *, days: int,
                       names: dict[int, str | None], unseen: frozenset[int] | set[int] = frozenset(),
                       withheld: bool = False) -> dict:
    """:func:`metric_value` given the peers' values already read (only those not suppressed, in peer order).

    ``unseen``: the peers whose figures the viewer may not read one by one (see ``MIN_UNSEEN_PEERS``).
    ``withheld``: suppress the value although its n suffices (see :func:`withhold_total`).
    """
    value = None if withheld else shown(metric, stat)
    out = {"code": metric.code, "value": value, "n": stat.n}
    if value is None:
        out["suppressed"] = True
        out["suppressed_reason"] = "complementary" if withheld else "small_n"
    ci = None if value is None or stat.lo is None else [round(stat.lo, 2), round(stat.hi, 2)]
    out["ci95"] = ci
    hidden = sum(1 for pid, _ in comparable if pid in unseen)
    if 0 < hidden < MIN_UNSEEN_PEERS:
        comparable = []
        out["peer_withheld"] = "too_few_peers"
    if not comparable:
        out.update(peer=None, verdict=None, gap=None, gap_best_quartile=None, opportunity=None, best_peer=None)
        return out
    ordered = sorted([v for _, v in comparable])
    p25, p50, p75 = _quartiles_sorted(ordered)
    out["peer"] = {"p25": round(p25, 2), "p50": round(p50, 2), "p75": round(p75, 2),
                   "percentile": _percentile_sorted(metric, stat.value, ordered) if value is not None else None,
                   "n_peers": len(ordered)}
    directed = metric.direction in (HIGHER, LOWER)
    if value is None or not directed:
        out.update(verdict=None, gap=None, gap_best_quartile=None, opportunity=None, best_peer=None)
        return out
    best_quartile = p75 if metric.direction == HIGHER else p25
    gap = _shortfall(metric, stat.value, p50)
    best_id, best_value = max(comparable, key=lambda pv: pv[1] if metric.direction == HIGHER else -pv[1])
    out.update(
        verdict=verdict(metric, stat, p50),
        gap=round(gap, 2),
        gap_best_quartile=round(_shortfall(metric, stat.value, best_quartile), 2),
        opportunity=_per_year(metric, gap, stat, days),
        opportunity_best_quartile=_per_year(metric, _shortfall(metric, stat.value, best_quartile), stat, days),
        opportunity_unit=OPPORTUNITY_UNITS.get(metric.kind),
        best_peer={"name": names.get(best_id) or ANONYMOUS, "anonymous": not names.get(best_id),
                   "value": round(best_value, 2)},
    )
    return out


def withhold_total(metric: Metric, member_ns: Iterable[int], whole: Stat) -> bool:
    """Whether the org's figure must be withheld so that no suppressed member's follows by subtraction.

    When exactly one member's figure is suppressed (n below the minimum), the org's figure less
    the others' (shown here, and a doctor's also in their public track record, which adds up to
    a hospital's) would give it. So the org's figure, and its monthly series that adds up to it,
    are withheld instead; with two or more suppressed, only their pooled figure would follow. Each
    month of the series is judged the same way on its own. Differences between periods the viewer
    chooses (a year less its last month) are not guarded against.
    """
    if metric.kind not in ADDITIVE or shown(metric, whole) is None:
        return False
    return sum(1 for n in member_ns if 0 < n < metric.min_n) == 1  # an additive figure has a value once n > 0


# ---- peer groups ------------------------------------------------------------------------------

def _ids_where(model, column, value) -> list[int]:
    return list(db.session.scalars(sa.select(model.id).where(column == value)))


def peer_groups(*, org: Org, level: str, member_ids: list[int], peers: str | list[int]) -> dict[int, list[int]]:
    """Each member's peer ids: the other members, same level/region/specialty, or a chosen list."""
    if isinstance(peers, list):
        # Chosen among the org's own members only: a list of any ids would read anyone's figures
        # (one chosen peer's "median" is that peer's value), beyond what the org may see.
        chosen = list(dict.fromkeys(peers))[:MAX_PEERS]
        members = set(member_ids)
        outside = [i for i in chosen if i not in members]
        if outside:
            raise BadRequest("chosen peers must be members of this org", {"peers": outside})
        return {m: [p for p in chosen if p != m] for m in member_ids}
    if peers in ("consortium", "pool", "members"):
        return {m: [p for p in member_ids if p != m] for m in member_ids}
    attribute = {("institution", "level"): Institution.level, ("institution", "region"): Institution.region,
                 ("doctor", "specialty"): User.specialty, ("doctor", "institution"): User.institution_id}.get(
        (level, peers))
    if attribute is None:
        raise BadRequest("unknown peer group for this org", {"peers": peers})
    model = Institution if level == "institution" else User
    own = dict(db.session.execute(sa.select(model.id, attribute).where(model.id.in_(member_ids))).all())
    stmt = sa.select(model.id, attribute).where(attribute.in_(set(own.values()))).order_by(model.id)
    if model is User:
        stmt = stmt.where(~User.is_admin)
    alike: dict = {}
    for pid, value in db.session.execute(stmt).all():  # one query for every member's group
        alike.setdefault(value, []).append(pid)
    return {m: [p for p in alike.get(own[m], []) if p != m][:MAX_PEERS] for m in member_ids}


def members_of(org: Org) -> tuple[str, list[tuple[int, str]]]:
    """The level compared and the org's members as (id, name): institutions or doctors."""
    if org.kind == "consortium":
        rows = db.session.execute(sa.select(Institution.id, Institution.name).join(
            ConsortiumInstitution, ConsortiumInstitution.institution_id == Institution.id).where(
            ConsortiumInstitution.org_id == org.id).order_by(Institution.id)).all()
        return "institution", [tuple(r) for r in rows]
    rows = db.session.execute(sa.select(User.id, User.name).join(OrgMember, OrgMember.user_id == User.id).where(
        OrgMember.org_id == org.id, OrgMember.role != "coordinator").order_by(User.id)).all()
    return "doctor", [tuple(r) for r in rows]


def build(*, org: Org, span: Period, peers: str | list[int] | None, sees_all: bool = False) -> dict:
    """Compute an org's dashboard: its own figures, each member against its peers, trends and gaps.

    ``sees_all``: the viewer may read every unit's figures (a platform admin), so peers outside the
    org are compared however few they are.
    """
    level, members = members_of(org)
    member_ids = [m for m, _ in members]
    peers = peers or ("consortium" if level == "institution" else "pool")
    groups = peer_groups(org=org, level=level, member_ids=member_ids, peers=peers)
    everyone = sorted(set(member_ids) | {p for ps in groups.values() for p in ps})
    start, end = span.bounds
    rolled = compute_rollup(level=level, ids=everyone, members=member_ids, start=start, end=end)
    stats, whole, monthly = rolled.entities, rolled.whole, rolled.months
    # Members are named to whoever may see the org; other peers only if the org agreed to naming.
    names = dict(members) if org.name_peers_ok else {}
    who = "user" if level == "doctor" else level
    withheld = {m.code for m in METRICS
                if withhold_total(m, (stat_of(stats, (mid,), m).n for mid in member_ids), stat_of(whole, (), m))}
    # Each unit's value of each metric, read once, only where it is shown (not suppressed).
    visible = {m.code: {uid: s.value for uid in everyone if shown(m, s := stat_of(stats, (uid,), m)) is not None}
               for m in METRICS}
    # Peers of an attribute group from outside the org: not shown in member rows.
    outsiders = set() if sees_all else set(everyone) - set(member_ids)
    member_rows = []
    for mid, name in members:
        metrics = []
        for m in METRICS:
            values = visible[m.code]
            comparable = [(p, values[p]) for p in groups[mid] if p in values]
            metrics.append(metric_value_among(m, stat_of(stats, (mid,), m), comparable, days=span.days,
                                              names=names, unseen=outsiders))
        member_rows.append({who: {"id": mid, "name": name}, "metrics": metrics})
    overall = [metric_value(m, stat_of(whole, (), m), None, days=span.days, names=names, withheld=m.code in withheld)
               for m in METRICS]
    for item, m in zip(overall, METRICS, strict=True):
        spread = [visible[m.code][mid] for mid in member_ids if mid in visible[m.code]]
        if spread:  # the spread of the members, so the whole can be read against its parts
            p25, p50, p75 = quartiles(spread)
            item["peer"] = {"p25": round(p25, 2), "p50": round(p50, 2), "p75": round(p75, 2),
                            "percentile": None, "n_peers": len(spread)}
    series = trends(monthly, span)
    parts = rolled.member_months
    for m in METRICS:  # each month of the org by the same rule, and every month if they add up to a withheld total
        if m.kind not in ADDITIVE:
            continue
        values = series["series"][m.code]
        for i, month in enumerate(series["months"]):
            ns = (parts.get((mid, month), {}).get(m.code, 0) for mid in member_ids)
            if m.code in withheld or withhold_total(m, ns, stat_of(monthly, (month,), m)):
                values[i] = None
    return {
        "org": {"id": org.id, "kind": org.kind, "name": org.name},
        "period": {"from": span.start.isoformat(), "to": span.end.isoformat()},
        "peers": peers,
        "level": level,
        "member_key": who,
        "metrics": overall,
        "members": member_rows,
        "gaps": gap_table(member_rows, who),
        "trends": series,
    }


def gap_table(member_rows: list[dict], level: str) -> list[dict]:
    """Every member's shortfalls against its peer median, largest opportunity first."""
    rows = []
    for row in member_rows:
        for mv in row["metrics"]:
            if mv.get("opportunity"):
                rows.append({level: row[level], "code": mv["code"], "value": mv["value"], "n": mv["n"],
                             "peer_p50": mv["peer"]["p50"], "gap": mv["gap"],
                             "gap_best_quartile": mv["gap_best_quartile"], "opportunity": mv["opportunity"],
                             "opportunity_unit": mv["opportunity_unit"], "verdict": mv["verdict"],
                             "best_peer": mv["best_peer"]["name"]})
    return sorted(rows, key=lambda r: (-r["opportunity"], r["code"], r[level]["id"]))


def months(span: Period) -> list[str]:
    """The calendar months the period touches, ``YYYY-MM``."""
    out, y, m = [], span.start.year, span.start.month
    while (y, m) <= (span.end.year, span.end.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def trends(monthly: dict[tuple, dict[str, Stat]], span: Period) -> dict:
    """Monthly values of every metric for the org as a whole (suppressed months are null)."""
    labels = months(span)
    return {"months": labels,
            "series": {m.code: [shown(m, stat_of(monthly, (month,), m)) for month in labels] for m in METRICS}}
