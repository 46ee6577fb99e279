"""instances and attachments: source_sha256, the sha256 of the file as uploaded (resumable uploads)

Revision ID: 7c1e0a5d2b90
Revises: c4f2a8e61b37
Create Date: 2026-11-27 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '7c1e0a5d2b90'
down_revision = 'c4f2a8e61b37'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_sha256', sa.String(length=64), nullable=True))
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_sha256', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_column('source_sha256')
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('source_sha256')
