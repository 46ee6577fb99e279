"""metrics: monthly rollup cells and their build state

Revision ID: 9b3e5d1c7a20
Revises: e5a1c9f03d72
Create Date: 2026-11-26 15:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9b3e5d1c7a20'
down_revision = 'e5a1c9f03d72'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('metric_months',
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('built_upto', sa.BigInteger(), nullable=False),
    sa.Column('stale_after', sa.DateTime(), nullable=True),
    sa.Column('built_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'month', name=op.f('pk_metric_months'))
    )
    op.create_table('metric_cells',
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('k', sa.Integer(), nullable=False),
    sa.Column('s', sa.Float(), nullable=False),
    sa.Column('ss', sa.Float(), nullable=False),
    sa.Column('hist', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('kind', 'month', 'unit_id', 'code', name=op.f('pk_metric_cells'))
    )


def downgrade():
    op.drop_table('metric_cells')
    op.drop_table('metric_months')
