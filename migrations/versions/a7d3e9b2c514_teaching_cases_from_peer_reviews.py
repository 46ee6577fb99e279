"""teaching cases from peer reviews: teaching_cases.peer_review_id and .disagreement

Revision ID: a7d3e9b2c514
Revises: 9b3e5d1c7a20
Create Date: 2026-12-05 10:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'a7d3e9b2c514'
down_revision = '9b3e5d1c7a20'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('teaching_cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('peer_review_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('disagreement', sa.String(length=10), nullable=True))
        batch_op.create_index(batch_op.f('ix_teaching_cases_peer_review_id'), ['peer_review_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_teaching_cases_peer_review_id_peer_reviews'), 'peer_reviews',
                                    ['peer_review_id'], ['id'], ondelete='SET NULL')
        batch_op.create_check_constraint(batch_op.f('ck_teaching_cases_disagreement'),
                                         sa.text("disagreement IN ('minor', 'major')"))


def downgrade():
    with op.batch_alter_table('teaching_cases', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_teaching_cases_disagreement'), type_='check')
        batch_op.drop_constraint(batch_op.f('fk_teaching_cases_peer_review_id_peer_reviews'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_teaching_cases_peer_review_id'))
        batch_op.drop_column('disagreement')
        batch_op.drop_column('peer_review_id')
