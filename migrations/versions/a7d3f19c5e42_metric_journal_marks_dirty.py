"""metrics: the rollup's journal, per-case marks and dirty units (partial rebuilds)

Revision ID: a7d3f19c5e42
Revises: a7d3e9b2c514
Create Date: 2026-12-06 03:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a7d3f19c5e42'
down_revision = 'a7d3e9b2c514'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('metric_journal',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('upto', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metric_journal'))
    )
    op.create_table('metric_marks',
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=True),
    sa.Column('doctor_id', sa.Integer(), nullable=True),
    sa.Column('institution_id', sa.Integer(), nullable=True),
    sa.Column('pool_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_metric_marks_case_id_cases'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('case_id', name=op.f('pk_metric_marks'))
    )
    op.create_table('metric_dirty',
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('upto', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'month', 'unit_id', name=op.f('pk_metric_dirty'))
    )
    # The stored cells are a cache: without marks they cannot be updated unit by unit, so they are
    # dropped and rebuilt on first use (the journal's first run also clears them).
    op.execute('DELETE FROM metric_cells')
    op.execute('DELETE FROM metric_months')


def downgrade():
    op.drop_table('metric_dirty')
    op.drop_table('metric_marks')
    op.drop_table('metric_journal')
