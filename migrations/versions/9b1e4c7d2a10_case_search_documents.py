"""case search: a per-case search document of CJK bigrams and words (tsvector + GIN on PostgreSQL,
an FTS5 table kept in step by triggers on SQLite), backfilled from the existing cases

Revision ID: 9b1e4c7d2a10
Revises: 492e5798ca88
Create Date: 2026-12-01 09:00:00

"""
import json
import re

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '9b1e4c7d2a10'
down_revision = '492e5798ca88'
branch_labels = None
depends_on = None

# The tokenizer as of this revision (app/core/fulltext.py), copied so the backfill never changes.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")


def _document(*texts):
    out = []
    for text in texts:
        for run in _RUN.findall((text or "").lower()):
            if re.match(rf"[{_CJK}]", run):
                out.extend(run[i:i + 2] for i in range(len(run) - 1))
                out.append(run[-1])
            else:
                out.append(run)
    return " ".join(out)


def _opinion_text(content):
    content = content or {}
    parts = [content.get(k) or "" for k in ("diagnosis", "recommendations", "follow_up")]
    parts += [d for d in content.get("differential") or [] if isinstance(d, str)]
    parts += [(c or {}).get("summary") or "" for c in content.get("contributions") or []]
    return "\n".join(parts)


def create_fulltext(table, key):
    """The dialect's index over (title, body): GIN on the tsvector, or an FTS5 table with triggers."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.create_index(f'ix_{table}_tsv', table, ['tsv'], unique=False, postgresql_using='gin')
        return
    op.create_index(f'ix_{table}_tsv', table, ['tsv'], unique=False)
    fts = f"{table}_fts"
    op.execute(f"CREATE VIRTUAL TABLE {fts} USING fts5(title, body, content='{table}', content_rowid='{key}')")
    op.execute(f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {table} BEGIN "
               f"INSERT INTO {fts}(rowid, title, body) VALUES (new.{key}, new.title, new.body); END")
    op.execute(f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {table} BEGIN "
               f"INSERT INTO {fts}({fts}, rowid, title, body) VALUES ('delete', old.{key}, old.title, old.body); END")
    op.execute(f"CREATE TRIGGER {fts}_au AFTER UPDATE ON {table} BEGIN "
               f"INSERT INTO {fts}({fts}, rowid, title, body) VALUES ('delete', old.{key}, old.title, old.body); "
               f"INSERT INTO {fts}(rowid, title, body) VALUES (new.{key}, new.title, new.body); END")


def drop_fulltext(table):
    if op.get_bind().dialect.name != "postgresql":
        op.execute(f"DROP TABLE IF EXISTS {table}_fts")
    op.drop_index(f'ix_{table}_tsv', table_name=table)


def upgrade():
    op.create_table('case_search',
    sa.Column('case_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('tsv', sa.Text().with_variant(postgresql.TSVECTOR(), 'postgresql'), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_search_case_id_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('case_id', name=op.f('pk_case_search'))
    )
    create_fulltext('case_search', 'case_id')
    _backfill()


def _backfill():
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    reports, opinions = {}, {}
    for case_id, body in bind.execute(sa.text("SELECT case_id, body FROM discipline_reports ORDER BY id")):
        reports.setdefault(case_id, []).append(body)
    for case_id, content in bind.execute(sa.text(
            "SELECT case_id, content FROM opinions WHERE state = 'signed' ORDER BY version")):
        opinions[case_id] = content  # the latest signed version wins
    insert = sa.text(
        "INSERT INTO case_search (case_id, title, body, tsv, updated_at) VALUES (:id, :title, :body, "
        + ("setweight(to_tsvector('simple'::regconfig, :title), 'A') || to_tsvector('simple'::regconfig, :body)"
           if pg else "NULL") + ", CURRENT_TIMESTAMP)")
    rows = []
    for case_id, title, question, summary in bind.execute(sa.text(
            "SELECT id, title, clinical_question, summary FROM cases")):
        content = opinions.get(case_id)
        if isinstance(content, str):
            content = json.loads(content)
        rows.append({"id": case_id, "title": _document(title),
                     "body": _document(question, summary, *reports.get(case_id, []), _opinion_text(content))})
    if rows:
        bind.execute(insert, rows)


def downgrade():
    drop_fulltext('case_search')
    op.drop_table('case_search')
