"""Inbox benchmark: GET / (the inbox page) over 200,000 cases on PostgreSQL.

Loads the same synthetic cases as bench/search.py (its own schema, dropped at the end) and renders
the inbox through the Flask test client for a referring doctor (~130 cases of their own), a
consultant (~400 shared with them) and a pool coordinator who sees ~17,000 (their pool's, in none
of the inbox's sections). For each it prints what the request does, which does not depend on the
load of the machine: SQL statements, Case rows loaded, the HTML's size and the Python process's
CPU time (``time.process_time``, mean of the runs); and, with that caveat, the wall-clock p50/p95.

    python bench/inbox.py [--cases 200000] [--runs 20] [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _servers import pct  # noqa: E402
from search import bench_app, prepare  # noqa: E402

from app.extensions import db  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    with bench_app(args.url) as app:
        run(app, args)


def run(app, args) -> None:
    from app.cases.models import Case

    tokens = prepare(app, args.cases)
    with app.app_context():
        engine = db.engine

    seen = {"statements": 0, "cases": 0}

    def on_execute(*_args):
        seen["statements"] += 1

    def on_load(*_args):
        seen["cases"] += 1

    client = app.test_client()
    print(f"{'caller':<18} {'statements':>10} {'case rows':>9} {'HTML KB':>8} {'CPU ms':>7} "
          f"{'p50 ms':>7} {'p95 ms':>7}")
    for who, tok in tokens.items():
        headers = {"Authorization": f"Bearer {tok}"}
        assert client.get("/", headers=headers).status_code == 200  # warm: the token's first use is written
        times, cpu, size = [], [], 0
        sa.event.listen(engine, "before_cursor_execute", on_execute)
        sa.event.listen(Case, "load", on_load)
        seen.update(statements=0, cases=0)
        for _ in range(args.runs):
            t0, c0 = time.perf_counter(), time.process_time()
            r = client.get("/", headers=headers)
            cpu.append((time.process_time() - c0) * 1000)
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.status_code
            size = len(r.data)
        sa.event.remove(engine, "before_cursor_execute", on_execute)
        sa.event.remove(Case, "load", on_load)
        print(f"{who:<18} {seen['statements'] / args.runs:>10.0f} {seen['cases'] / args.runs:>9.0f} "
              f"{size / 1024:>8.1f} {statistics.mean(cpu):>7.1f} {statistics.median(times):>7.1f} "
              f"{pct(times, 95):>7.1f}")


if __name__ == "__main__":
    main()
