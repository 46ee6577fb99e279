"""Search benchmark: GET /api/cases?q=… over 200,000 cases on PostgreSQL.

Makes its own schema in the PostgreSQL database given (migrated by the real Alembic revisions),
bulk-loads doctors and cases with synthetic Chinese clinical texts (COPY; the search documents
made by the app's own tokenizer), then times the API through the Flask test client (routing,
permissions, search, serialisation of the first page) for a two-character and a four-character
Chinese query with filters (and the plain list without words), as a referring doctor (~130 cases
of their own), a consultant (~400 shared with them) and a pool coordinator who sees ~17,000 (a
pool's 20,000, drafts aside).
The schema is dropped at the end.

    python bench/search.py [--cases 200000] [--runs 50] [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _servers import pct  # noqa: E402

from app import create_app  # noqa: E402
from app.core import fulltext  # noqa: E402
from app.extensions import db  # noqa: E402
from config import TestingConfig  # noqa: E402

SITES = ["左侧", "右侧", "双侧", "盆腔", "子宫", "宫颈", "附件区", "乳腺", "甲状腺", "肝脏", "肺部", "胰腺"]
FINDINGS = ["卵巢囊肿", "子宫肌瘤", "内膜增厚", "实性包块", "囊实性包块", "结节", "钙化灶", "积液", "息肉",
            "腺肌症", "畸胎瘤", "占位性病变", "淋巴结肿大", "血流信号丰富"]
QUESTIONS = ["请会诊：良性还是恶性？", "是否需要手术？", "下一步检查建议？", "是否可以保守治疗？", "请协助明确诊断"]
OPINIONS = ["考虑良性病变，建议三个月后复查超声", "恶性不能排除，建议增强 MRI 及肿瘤标志物",
            "建议腹腔镜探查", "考虑炎性改变，抗感染治疗后复查", "建议多学科会诊"]
SPECIALTIES = ["gynecology", "radiology", "oncology", "general_practice", "pathology"]
STATUSES = ["submitted", "accepted", "answered", "closed", "closed", "closed", "draft"]
URGENCIES = ["routine", "routine", "routine", "urgent", "emergency"]
QUERIES = [("two characters + status", {"q": "卵巢", "status": "closed"}),
           ("four characters + specialty", {"q": "卵巢囊肿", "specialty": "gynecology"}),
           ("four characters + date range", {"q": "实性包块", "from": "2025-01-01", "to": "2025-12-31"}),
           ("no words, newest first", {})]  # the plain list (the inbox's), not part of issue 18's target


def _copy(conn, table: str, columns: list[str], rows) -> None:
    raw = conn.connection.driver_connection
    with raw.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def load(conn, n_cases: int, rng: random.Random) -> dict[str, int]:
    """Bulk-load institutions, doctors, a pool and n_cases cases with their search documents."""
    now = datetime(2026, 1, 1)
    conn.execute(sa.text("INSERT INTO institutions (id, name, level, region) "
                         "SELECT i, '基准医院' || i, 'county', '' FROM generate_series(1, 50) i"))
    # 1,500 referring doctors (ids 1..1500), 500 specialists (1501..2000), one coordinator (2001).
    _copy(conn, "users", ["id", "email", "name", "password_hash", "specialty", "title", "institution_id", "role",
                          "active", "created_at"],
          ((i, f"bench{i}@bench.huizhen", f"医生{i}", "x", SPECIALTIES[i % 5], "", i % 50 + 1, "doctor", True, now)
           for i in range(1, 2002)))
    conn.execute(sa.text("INSERT INTO orgs (id, kind, name, name_peers_ok, created_at) "
                         "VALUES (1, 'doctor_group', '基准会诊组', false, now())"))
    conn.execute(sa.text("INSERT INTO org_members (org_id, user_id, role, added_at) "
                         "VALUES (1, 2001, 'coordinator', now())"))
    cases, docs = [], []
    for cid in range(1, n_cases + 1):
        title = rng.choice(SITES) + rng.choice(FINDINGS)
        question = f"{rng.choice(SITES)}{rng.choice(FINDINGS)}，{rng.choice(QUESTIONS)}"
        summary = f"患者{rng.randint(18, 80)}岁，超声提示{rng.choice(SITES)}{rng.choice(FINDINGS)}。"
        status = rng.choice(STATUSES)
        opinion = rng.choice(OPINIONS) if status in ("answered", "closed") else ""
        created = now - timedelta(minutes=rng.randint(0, 2 * 365 * 24 * 60))
        cases.append((cid, rng.randint(1, 1500), None if status == "draft" else rng.randint(1501, 2000), title,
                      question, summary, rng.choice(SPECIALTIES), "female", rng.choice(URGENCIES), status,
                      "0" * 64, created, created, 0, 1 if cid % 10 == 0 else None))
        docs.append((cid, fulltext.document(title), fulltext.document(question, summary, opinion), now))
    _copy(conn, "cases", ["id", "owner_id", "consultant_id", "title", "clinical_question", "summary", "specialty",
                          "patient_sex", "urgency", "status", "uid_secret", "created_at", "updated_at",
                          "paused_seconds", "pool_id"], cases)
    _copy(conn, "case_search", ["case_id", "title", "body", "updated_at"], docs)
    conn.execute(sa.text("UPDATE case_search SET tsv = setweight(to_tsvector('simple'::regconfig, title), 'A') "
                         "|| to_tsvector('simple'::regconfig, body)"))
    conn.execute(sa.text("ANALYZE cases, case_search"))  # without statistics the join below is planned as a loop
    conn.execute(sa.text("UPDATE cases SET search_tsv = case_search.tsv FROM case_search "  # as app/cases/search.py
                         "WHERE case_search.case_id = cases.id"))
    conn.execute(sa.text("ANALYZE"))
    busiest_owner = conn.execute(sa.text("SELECT owner_id FROM cases GROUP BY owner_id ORDER BY count(*) DESC "
                                         "LIMIT 1")).scalar()
    busiest_consultant = conn.execute(sa.text("SELECT consultant_id FROM cases WHERE consultant_id IS NOT NULL "
                                              "GROUP BY consultant_id ORDER BY count(*) DESC LIMIT 1")).scalar()
    return {"referring doctor": busiest_owner, "consultant": busiest_consultant, "pool coordinator": 2001}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    with bench_app(args.url) as app:
        run(app, args)


@contextlib.contextmanager
def bench_app(base_url: str):
    """Yield an app on a schema of its own in the PostgreSQL database, dropped at the end."""
    schema = f"hz_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = f"{base_url}{'&' if '?' in base_url else '?'}options={quote(f'-csearch_path={schema}')}"
        with tempfile.TemporaryDirectory() as tmp:
            yield create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_PATH=tmp, UPLOAD_FOLDER=tmp)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def prepare(app, cases: int) -> dict[str, str]:
    """Migrate the app's schema, load the cases and return a bearer token for each caller."""
    from flask_migrate import upgrade

    from app.accounts import service as accounts
    from app.accounts.models import User

    with app.app_context():
        upgrade()
        started = time.perf_counter()
        with db.engine.begin() as conn:
            people = load(conn, cases, random.Random(18))
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE cases")  # as autovacuum would after the search_tsv fill
        print(f"loaded {cases:,} cases in {time.perf_counter() - started:.0f} s")
        tokens = {}
        for who, uid in people.items():
            tokens[who], _ = accounts.issue_token(user=db.session.get(User, uid), ttl=timedelta(days=1))
        db.session.commit()
    return tokens


def run(app, args) -> None:
    tokens = prepare(app, args.cases)
    client = app.test_client()
    print(f"{'caller':<18} {'query':<30} {'hits':>6} {'p50 ms':>7} {'p95 ms':>7}")
    for who, tok in tokens.items():
        for label, params in QUERIES:
            headers = {"Authorization": f"Bearer {tok}"}
            query = {**params, "limit": 20}
            warm = client.get("/api/cases", query_string=query, headers=headers).json
            total, capped = warm["total"], warm["total_capped"]
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                r = client.get("/api/cases", query_string=query, headers=headers)
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.json
            hits = f"{total}{'+' if capped else ''}"
            print(f"{who:<18} {label:<30} {hits:>6} {statistics.median(times):>7.1f} {pct(times, 95):>7.1f}")


if __name__ == "__main__":
    main()
