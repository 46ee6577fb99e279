"""postings: a match forms once both sides accepted it (who accepted which counterpart)

Revision ID: 7b1e4c2a9d30
Revises: 3a7d9c2e5f14
Create Date: 2026-12-07 13:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7b1e4c2a9d30'
down_revision = '3a7d9c2e5f14'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accepted_other_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('accepted_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_postings_accepted_other_id_postings'), 'postings',
                                    ['accepted_other_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(batch_op.f('fk_postings_accepted_by_id_users'), 'users',
                                    ['accepted_by_id'], ['id'], ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('postings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_postings_accepted_by_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_postings_accepted_other_id_postings'), type_='foreignkey')
        batch_op.drop_column('accepted_by_id')
        batch_op.drop_column('accepted_other_id')
