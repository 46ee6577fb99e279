"""cases: a withdrawn case keeps no consultant (the specialist it was shared with, who never took it,
loses access to it, as one who declines does)

Revision ID: e4a1c7b95d23
Revises: 8c3f1a6d2e59
Create Date: 2026-12-08 00:30:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'e4a1c7b95d23'
down_revision = '8c3f1a6d2e59'
branch_labels = None
depends_on = None


def upgrade():
    # A case is withdrawn only from draft or submitted, so its consultant never accepted it; cases
    # withdrawn before this kept them, with the case's clinical texts, images and files. No metric
    # counts a withdrawn case, and the timeline's share step still names who it was sent to.
    op.execute("UPDATE cases SET consultant_id = NULL WHERE status = 'withdrawn' AND consultant_id IS NOT NULL")


def downgrade():
    pass  # which consultant each withdrawn case had is in its timeline, not restored here
