"""metrics: a case taken back from a designated specialist who left the pool is nobody's answer;
an MDT needs a colleague of another discipline (stored months dropped)

Revision ID: f2b6d8a13c57
Revises: e4a1c7b95d23
Create Date: 2026-12-08 01:10:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'f2b6d8a13c57'
down_revision = 'e4a1c7b95d23'
branch_labels = None
depends_on = None


def upgrade():
    # The acceptance rate counted that release (a return to the pool recorded by whoever removed the
    # specialist) as that person's, their hospital's and the pool's decline, and mdt_pct counted a
    # colleague of the consultant's own discipline. The stored months are a cache of the old
    # definitions: dropped here and built again on first use.
    op.execute('DELETE FROM metric_dirty')
    op.execute('DELETE FROM metric_cells')
    op.execute('DELETE FROM metric_months')


def downgrade():
    pass  # the months rebuild themselves
