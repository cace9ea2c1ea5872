"""known sign-in devices, photo previews, consult submission keys

Revision ID: 5e1f0a7c2b9d
Revises: 195763c9a1f0
Create Date: 2026-11-29 23:10:00.000000

sign_in_attempts.device: the known-device cookie an attempt came with, so a stranger's failures
never slow down the person on their own computer. attachments.preview_name: the small preview
pages show instead of the whole photo. consults.submission_key: the form's one-time key, so a
submission sent twice (a dropped connection, a retry) creates one consult.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5e1f0a7c2b9d'
down_revision = '195763c9a1f0'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sign_in_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('device', sa.String(length=32), nullable=True))
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('preview_name', sa.String(length=64), nullable=True))
    with op.batch_alter_table('consults', schema=None) as batch_op:
        batch_op.add_column(sa.Column('submission_key', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_consults_submission_key'), ['submission_key'],
                              unique=True)


def downgrade():
    with op.batch_alter_table('consults', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consults_submission_key'))
        batch_op.drop_column('submission_key')
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_column('preview_name')
    with op.batch_alter_table('sign_in_attempts', schema=None) as batch_op:
        batch_op.drop_column('device')
