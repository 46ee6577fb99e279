"""dicom nodes: an AE title per case and holder (who asked for it), not one per case

Revision ID: 8c3f1a6d2e59
Revises: 5d2c8e1f0a47
Create Date: 2026-12-07 18:15:00

A title issued before keeps working for the one who asked for it first (created_by_id), while
they may upload to the case; everyone else with upload rights gets a title of their own.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '8c3f1a6d2e59'
down_revision = '5d2c8e1f0a47'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('dicom_nodes', schema=None) as batch_op:
        batch_op.drop_constraint('uq_dicom_nodes_case_id', type_='unique')
        batch_op.create_unique_constraint('uq_dicom_nodes_case_holder', ['case_id', 'created_by_id'])


def downgrade():
    # One title per case again: the oldest of each case's is kept.
    op.execute("DELETE FROM dicom_nodes WHERE id NOT IN (SELECT min(id) FROM dicom_nodes GROUP BY case_id)")
    with op.batch_alter_table('dicom_nodes', schema=None) as batch_op:
        batch_op.drop_constraint('uq_dicom_nodes_case_holder', type_='unique')
        batch_op.create_unique_constraint('uq_dicom_nodes_case_id', ['case_id'])
