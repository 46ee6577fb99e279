"""teaching collection: teaching_cases (a closed case's copy proposed to an org, consent, tags) and
their search documents (like case_search)

Revision ID: c4f2a8e61b37
Revises: 9b1e4c7d2a10
Create Date: 2026-12-01 10:00:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = 'c4f2a8e61b37'
down_revision = '9b1e4c7d2a10'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('teaching_cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('proposed_by_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('specialty', sa.String(length=50), nullable=True),
    sa.Column('keywords', sa.JSON(), nullable=False),
    sa.Column('difficulty', sa.String(length=20), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('hospital_name', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("difficulty IN ('basic', 'intermediate', 'advanced')", name=op.f('ck_teaching_cases_difficulty')),
    sa.CheckConstraint("state IN ('proposed', 'published', 'refused')", name=op.f('ck_teaching_cases_state')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_teaching_cases_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['orgs.id'], name=op.f('fk_teaching_cases_org_id_orgs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['proposed_by_id'], ['users.id'], name=op.f('fk_teaching_cases_proposed_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_teaching_cases')),
    sa.UniqueConstraint('case_id', 'org_id', name='uq_teaching_cases_case_org')
    )
    with op.batch_alter_table('teaching_cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_teaching_cases_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_teaching_cases_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_teaching_cases_specialty'), ['specialty'], unique=False)
        batch_op.create_index(batch_op.f('ix_teaching_cases_state'), ['state'], unique=False)

    op.create_table('teaching_search',
    sa.Column('teaching_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('tsv', sa.Text().with_variant(postgresql.TSVECTOR(), 'postgresql'), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['teaching_id'], ['teaching_cases.id'], name=op.f('fk_teaching_search_teaching_id_teaching_cases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('teaching_id', name=op.f('pk_teaching_search'))
    )
    # The same index as case_search's (see that revision): GIN on PostgreSQL, FTS5 + triggers on SQLite.
    if op.get_bind().dialect.name == "postgresql":
        op.create_index('ix_teaching_search_tsv', 'teaching_search', ['tsv'], unique=False, postgresql_using='gin')
    else:
        op.create_index('ix_teaching_search_tsv', 'teaching_search', ['tsv'], unique=False)
        op.execute("CREATE VIRTUAL TABLE teaching_search_fts USING fts5(title, body, content='teaching_search', "
                   "content_rowid='teaching_id')")
        op.execute("CREATE TRIGGER teaching_search_fts_ai AFTER INSERT ON teaching_search BEGIN "
                   "INSERT INTO teaching_search_fts(rowid, title, body) VALUES (new.teaching_id, new.title, new.body); END")
        op.execute("CREATE TRIGGER teaching_search_fts_ad AFTER DELETE ON teaching_search BEGIN "
                   "INSERT INTO teaching_search_fts(teaching_search_fts, rowid, title, body) "
                   "VALUES ('delete', old.teaching_id, old.title, old.body); END")
        op.execute("CREATE TRIGGER teaching_search_fts_au AFTER UPDATE ON teaching_search BEGIN "
                   "INSERT INTO teaching_search_fts(teaching_search_fts, rowid, title, body) "
                   "VALUES ('delete', old.teaching_id, old.title, old.body); "
                   "INSERT INTO teaching_search_fts(rowid, title, body) VALUES (new.teaching_id, new.title, new.body); END")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE IF EXISTS teaching_search_fts")
    op.drop_index('ix_teaching_search_tsv', table_name='teaching_search')
    op.drop_table('teaching_search')
    with op.batch_alter_table('teaching_cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_teaching_cases_state'))
        batch_op.drop_index(batch_op.f('ix_teaching_cases_specialty'))
        batch_op.drop_index(batch_op.f('ix_teaching_cases_org_id'))
        batch_op.drop_index(batch_op.f('ix_teaching_cases_case_id'))
    op.drop_table('teaching_cases')
