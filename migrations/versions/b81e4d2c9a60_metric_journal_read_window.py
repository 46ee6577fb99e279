"""metrics: the journal's read window (entries committed out of id order are read again); stored
months dropped (negative times now count in bucket 0)

Revision ID: b81e4d2c9a60
Revises: a7d3f19c5e42
Create Date: 2026-12-06 03:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b81e4d2c9a60'
down_revision = 'a7d3f19c5e42'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('metric_journal') as batch_op:
        batch_op.add_column(sa.Column('read_upto', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('read_count', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('read_sum', sa.BigInteger(), nullable=True))
    # A negative time now counts in bucket 0 (it used to overwrite the last buckets of its cell):
    # the stored months are a cache, dropped here and built again on first use.
    op.execute('DELETE FROM metric_dirty')
    op.execute('DELETE FROM metric_cells')
    op.execute('DELETE FROM metric_months')


def downgrade():
    with op.batch_alter_table('metric_journal') as batch_op:
        batch_op.drop_column('read_sum')
        batch_op.drop_column('read_count')
        batch_op.drop_column('read_upto')
