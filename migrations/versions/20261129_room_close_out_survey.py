"""close-out survey: referral or evacuation avoided, course of action changed; period indexes

Revision ID: 3b7d5e9a1c20
Revises: outboxmsg01
Create Date: 2026-11-29 23:10:00.000000

The questions Champlain BASE asks on every case, answered when the clinic closes a consult.
Nullable: consults closed before (and clinics that skip a question) have no answer.
The situation room reads consults by period (submitted_at, accepted_at, closed_at) and knows
whether anything changed from max(updated_at): indexes on all four.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3b7d5e9a1c20'
down_revision = 'outboxmsg01'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('consults', schema=None) as batch_op:
        batch_op.add_column(sa.Column('referral_avoided', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('course_changed', sa.Boolean(), nullable=True))
        for column in ('submitted_at', 'accepted_at', 'closed_at', 'updated_at'):
            batch_op.create_index(f'ix_consults_{column}', [column], unique=False)


def downgrade():
    with op.batch_alter_table('consults', schema=None) as batch_op:
        for column in ('submitted_at', 'accepted_at', 'closed_at', 'updated_at'):
            batch_op.drop_index(f'ix_consults_{column}')
        batch_op.drop_column('course_changed')
        batch_op.drop_column('referral_avoided')
