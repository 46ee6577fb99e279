"""Time the consortium dashboard (peers and the gap table) over 200,000 cases on PostgreSQL.

    .venv/bin/python bench/dashboard.py [--cases 200000] [--requests 30] [--cold 20] [--profile]

Makes its own schema in BENCH_DATABASE_URL (default: the local ``test`` database), migrates it,
adds a consortium of 40 hospitals with 6 specialists each, bulk-inserts the cases with their
accept/decline/ask events and MDT participants, runs ANALYZE, then calls
``GET /api/orgs/{id}/dashboard`` through the app (Flask test client, bearer token). It prints the
one-off build of the monthly rollup (the first request over a new database), then p50/p95 per
variant: right after a workflow step (a case shared in a past month is closed and rated, so its
month's touched units are rebuilt) and steady (no change since the last request). The schema is dropped at the
end. Beside wall-clock it prints the CPU time of this process per request (Python and the
driver, not PostgreSQL), which depends less on other load. ``--profile`` adds one request after a
step and one steady request under cProfile (function calls, the time of each SQL statement).
Target: p95 < 300 ms.
"""

import argparse
import os
import random
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app  # noqa: E402
from app.accounts import service as accounts  # noqa: E402
from app.cases.models import Case, CaseEvent, Participant  # noqa: E402
from app.core.time import utcnow  # noqa: E402
from app.extensions import db  # noqa: E402
from app.orgs.models import ConsortiumInstitution, Org, OrgMember  # noqa: E402
from config import Config  # noqa: E402

BASE = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
LEVELS = ("tertiary", "provincial", "county", "community")
SPECIALTIES = ("gynecology", "radiology", "pathology", "oncology", "cardiology", "ultrasound")
CHUNK = 10_000


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def populate(n_cases: int) -> tuple[int, int]:
    """Create the hospitals, doctors, consortium and cases; return (consortium id, admin user id)."""
    rng = random.Random(14)  # noqa: S311 - reproducible synthetic data
    hasher_free = "pbkdf2:sha256:1$x$0"  # bench accounts never log in by password
    insts = [accounts.get_or_create_institution(name=f"基准医院{i:02d}", level=LEVELS[i % 4],
                                                region=f"省{i % 5} 市{i % 9}") for i in range(40)]
    db.session.flush()
    users = [{"email": f"bench{i}-{j}@bench.huizhen", "name": f"医生{i}-{j}", "password_hash": hasher_free,
              "specialty": SPECIALTIES[j], "institution_id": inst.id, "role": "doctor"}
             for i, inst in enumerate(insts) for j in range(len(SPECIALTIES))]
    db.session.execute(sa.insert(accounts.User), users)
    doctors = db.session.execute(sa.select(accounts.User.id, accounts.User.institution_id)).all()
    consortium = Org(kind="consortium", name="基准医联体", name_peers_ok=True)
    db.session.add(consortium)
    db.session.flush()
    for i, inst in enumerate(insts):
        db.session.add(ConsortiumInstitution(org_id=consortium.id, institution_id=inst.id,
                                             side="provider" if i < 20 else "requester"))
    admin_id = doctors[0][0]
    db.session.add(OrgMember(org_id=consortium.id, user_id=admin_id, role="admin"))
    db.session.flush()
    end = datetime(2026, 11, 1)
    start = end - timedelta(days=365)
    slow = {d for d, _ in doctors[::17]}
    next_id = 1
    for offset in range(0, n_cases, CHUNK):
        cases, events, parts = [], [], []
        for k in range(min(CHUNK, n_cases - offset)):
            cid = next_id
            next_id += 1
            owner, consultant = rng.choice(doctors)[0], rng.choice(doctors)[0]
            shared = start + timedelta(seconds=rng.randrange(365 * 86400))
            factor = 4 if consultant in slow else 1
            accepted = shared + timedelta(hours=rng.expovariate(1 / (2 * factor)))
            asked = rng.random() < 0.15
            answered = accepted + timedelta(hours=rng.expovariate(1 / (30 * factor)))
            closed = rng.random() < 0.85
            cases.append({"id": cid, "owner_id": owner, "consultant_id": consultant, "title": f"bench {offset + k}",
                          "clinical_question": "q", "status": "closed" if closed else "answered",
                          "specialty": "gynecology", "submitted_at": shared, "due_at": shared + timedelta(days=3),
                          "accepted_at": accepted, "answered_at": answered, "created_at": shared,
                          "updated_at": answered, "closed_at": answered if closed else None,
                          "rating": rng.randint(2, 5) if closed else None, "paused_seconds": 3600 * 6 if asked else 0,
                          "outcome": rng.choice(("referral_avoided", "referral_needed", "other")) if closed else None,
                          "advice": "new_advice" if closed else None, "uid_secret": uuid.uuid4().hex})
            events.append({"case_id": cid, "actor_id": consultant, "action": "accept", "at": accepted})
            if rng.random() < 0.08:
                events.append({"case_id": cid, "actor_id": rng.choice(doctors)[0], "action": "decline", "at": shared})
            if asked:
                events.append({"case_id": cid, "actor_id": consultant, "action": "ask", "at": accepted})
            if rng.random() < 0.12:
                parts.append({"case_id": cid, "user_id": rng.choice(doctors)[0], "discipline": "radiology",
                              "invited_by_id": consultant, "added_at": accepted})
        db.session.execute(sa.insert(Case), cases)
        db.session.execute(sa.insert(CaseEvent), events)
        db.session.execute(sa.insert(Participant), parts)
        db.session.commit()
        print(f"  inserted {offset + len(cases)} cases", flush=True)
    db.session.execute(sa.text("SELECT setval(pg_get_serial_sequence('cases', 'id'), :n)"), {"n": next_id})
    db.session.commit()
    return consortium.id, admin_id


def profile(app, step, request, label: str) -> None:
    """One request under cProfile, with its function calls and the time of every SQL statement it ran."""
    import cProfile
    import pstats

    step()
    timings: list[tuple[float, str, str, object]] = []
    with app.app_context():
        engine = db.engine

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info.setdefault("t0", []).append(time.perf_counter())

    def after(conn, cursor, statement, parameters, context, executemany):
        timings.append(((time.perf_counter() - conn.info["t0"].pop()) * 1000, " ".join(statement.split())[:150],
                        statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    r = request()
    prof.disable()
    total = (time.perf_counter() - t) * 1000
    sa.event.remove(engine, "before_cursor_execute", before)
    sa.event.remove(engine, "after_cursor_execute", after)
    assert r.status_code == 200
    stats = pstats.Stats(prof)
    print(f"\nprofiled request ({label}): {total:.0f} ms under cProfile, {stats.total_calls} function calls, "
          f"{len(timings)} SQL statements, {sum(t[0] for t in timings):.0f} ms waiting for the database")
    ranked = sorted(timings, key=lambda t: -t[0])
    for ms, short, _, _ in ranked[:12]:
        print(f"  {ms:7.1f} ms  {short}")
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(15)
    if label != "after a step":
        return
    # The plans of the slowest reads of the cases (the rebuild), run again with JIT off as the rollup sets it.
    reads = [t for t in ranked if t[2].lstrip().startswith("SELECT")
             and any(f" FROM {table} " in " ".join(t[2].split()) for table in ("cases", "case_events"))]
    with app.app_context(), engine.connect() as conn:
        for _, short, statement, parameters in reads[:3]:
            conn.execute(sa.text("SET LOCAL jit = off"))
            plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).scalars().all()
            print(f"\nEXPLAIN ANALYZE {short[:100]}\n  " + "\n  ".join(plan))
            conn.rollback()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--cold", type=int, default=20, help="requests right after a workflow step")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one request after a step: cProfile, and each SQL statement's time")
    args = parser.parse_args()
    schema = f"hz_bench_{uuid.uuid4().hex[:10]}"
    admin_engine = sa.create_engine(BASE)
    with admin_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{BASE}{'&' if '?' in BASE else '?'}options={quote(f'-csearch_path={schema}')}"
    try:
        app = create_app(Config, SQLALCHEMY_DATABASE_URI=url, TESTING=True, RATELIMIT_ENABLED=False)
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
            t = time.perf_counter()
            org_id, admin_id = populate(args.cases)
            with db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
            print(f"populated {args.cases} cases in {time.perf_counter() - t:.1f} s")
            token, _ = accounts.issue_token(user=db.session.get(accounts.User, admin_id))
            db.session.commit()
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        q = "from=2025-11-01&to=2026-10-31"
        variants = {
            "consortium, peers = members": f"/api/orgs/{org_id}/dashboard?{q}",
            "consortium, peers = same level": f"/api/orgs/{org_id}/dashboard?{q}&peers=level",
            "gap table as CSV": f"/api/orgs/{org_id}/dashboard?{q}&format=csv&table=gaps",
        }
        rng = random.Random(15)  # noqa: S311 - which cases the bench closes

        def close_a_case() -> None:
            """A workflow step on an old case: close and rate it, with its timeline entry."""
            with app.app_context():
                case_id, owner = db.session.execute(sa.select(Case.id, Case.owner_id).where(
                    Case.status == "answered", Case.id % 97 == rng.randrange(97)).limit(1)).one()
                db.session.execute(sa.update(Case).where(Case.id == case_id).values(
                    status="closed", rating=4, outcome="referral_avoided", advice="new_advice",
                    closed_at=utcnow()))
                db.session.execute(sa.insert(CaseEvent).values(case_id=case_id, actor_id=owner, action="close",
                                                               at=utcnow()))
                db.session.commit()

        cpu: list[float] = []

        def timed(path: str, *, after_step: bool) -> float:
            if after_step:
                close_a_case()
            t, c = time.perf_counter(), time.process_time()
            r = client.get(path, headers=headers)
            assert r.status_code == 200, r.get_data(as_text=True)[:200]
            cpu.append((time.process_time() - c) * 1000)  # this process only: Python and the driver, not PostgreSQL
            return (time.perf_counter() - t) * 1000

        first = timed(variants["consortium, peers = members"], after_step=False)
        print(f"first request (builds the 12 stored months of the institution level): {first:.0f} ms")
        for name, path in variants.items():
            cpu.clear()
            stepped = [timed(path, after_step=True) for _ in range(args.cold)]
            stepped_cpu = list(cpu)
            cpu.clear()
            steady = [timed(path, after_step=False) for _ in range(args.requests)]
            print(f"{name:32s} after a step p50 {pct(stepped, 50):6.1f} ms p95 {pct(stepped, 95):6.1f} ms "
                  f"(n={args.cold})   steady p50 {pct(steady, 50):6.1f} ms p95 {pct(steady, 95):6.1f} ms "
                  f"(n={args.requests})\n{'':32s}   app CPU p50 {pct(stepped_cpu, 50):6.1f} ms p95 "
                  f"{pct(stepped_cpu, 95):6.1f} ms {'':10s}app CPU p50 {pct(cpu, 50):6.1f} ms p95 "
                  f"{pct(cpu, 95):6.1f} ms", flush=True)
        if args.profile:
            path = variants["consortium, peers = members"]
            profile(app, lambda: close_a_case(), lambda: client.get(path, headers=headers), "after a step")
            profile(app, lambda: None, lambda: client.get(path, headers=headers), "steady")
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        with admin_engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin_engine.dispose()


if __name__ == "__main__":
    main()
