"""surveillance: when an alert's stage clock ran out and the sweeper escalated it

Revision ID: 7a3c9e51d204
Revises: 5e1f0a7c2b9d
Create Date: 2026-11-30 02:20:00

"""
from alembic import op
import sqlalchemy as sa

import telehealth.db_types


# revision identifiers, used by Alembic.
revision = '7a3c9e51d204'
down_revision = '5e1f0a7c2b9d'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalated_at', telehealth.db_types.UTCDateTime(),
                                      nullable=True))


def downgrade():
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('escalated_at')
