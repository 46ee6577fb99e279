"""cases: search_tsv, a copy of the case's search tsvector on the case row (PostgreSQL), under GIN

So one bitmap scan of ``cases`` can AND the words with the caller's visibility and the filters
(owner, consultant, pool, status, ...) before a single row is read. On SQLite the column exists
but stays empty: the FTS5 table answers there.

Revision ID: e5a1c9f03d72
Revises: 71cdbcc6d061
Create Date: 2026-11-28 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import TSVECTOR


# revision identifiers, used by Alembic.
revision = 'e5a1c9f03d72'
down_revision = '71cdbcc6d061'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_tsv', sa.Text().with_variant(TSVECTOR(), 'postgresql'),
                                      nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("UPDATE cases SET search_tsv = case_search.tsv FROM case_search "
                   "WHERE case_search.case_id = cases.id")
    # fastupdate off: no pending list of new entries for every search to scan until a vacuum merges it.
    op.create_index('ix_cases_search_tsv', 'cases', ['search_tsv'], unique=False, postgresql_using='gin',
                    postgresql_with={'fastupdate': 'off'})


def downgrade():
    op.drop_index('ix_cases_search_tsv', table_name='cases', postgresql_using='gin')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('search_tsv')
