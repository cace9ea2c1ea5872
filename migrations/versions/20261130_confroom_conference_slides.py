"""Conference rooms: slide images of a session

Revision ID: 7c4d2e9a1b35
Revises: 5e1f0a7c2b9d
Create Date: 2026-11-30 02:30:00

"""
import sqlalchemy as sa
from alembic import op

import telehealth.db_types

# revision identifiers, used by Alembic.
revision = '7c4d2e9a1b35'
down_revision = '7a3c9e51d204'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('conference_slides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('stored_name', sa.String(length=64), nullable=False),
    sa.Column('preview_name', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=40), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', telehealth.db_types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['conference_sessions.id'], name=op.f('fk_conference_slides_session_id_conference_sessions')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['users.id'], name=op.f('fk_conference_slides_uploaded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conference_slides')),
    sa.UniqueConstraint('preview_name', name=op.f('uq_conference_slides_preview_name')),
    sa.UniqueConstraint('stored_name', name=op.f('uq_conference_slides_stored_name'))
    )
    with op.batch_alter_table('conference_slides', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conference_slides_session_id'), ['session_id'], unique=False)


def downgrade():
    with op.batch_alter_table('conference_slides', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conference_slides_session_id'))

    op.drop_table('conference_slides')
