"""Conference rooms: PDF decks prepared by a job

Revision ID: 3d8b6f2a9c41
Revises: 9b2e4d7a6c13
Create Date: 2026-11-30 09:20:00

A PDF deck's pages are rendered off the upload request: the deck waits here (its file in
the uploads store) until the job has made its slides, or says why it could not.
"""
import sqlalchemy as sa
from alembic import op

import telehealth.db_types

# revision identifiers, used by Alembic.
revision = '3d8b6f2a9c41'
down_revision = '9b2e4d7a6c13'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('conference_decks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('original_name', sa.String(length=200), nullable=False),
    sa.Column('stored_name', sa.String(length=64), nullable=True),
    sa.Column('status', sa.Enum('PREPARING', 'READY', 'FAILED', name='deckstatus', native_enum=False, length=20), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('slide_count', sa.Integer(), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', telehealth.db_types.UTCDateTime(), nullable=False),
    sa.Column('finished_at', telehealth.db_types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['session_id'], ['conference_sessions.id'], name=op.f('fk_conference_decks_session_id_conference_sessions')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['users.id'], name=op.f('fk_conference_decks_uploaded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conference_decks')),
    sa.UniqueConstraint('stored_name', name=op.f('uq_conference_decks_stored_name'))
    )
    with op.batch_alter_table('conference_decks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conference_decks_session_id'), ['session_id'], unique=False)


def downgrade():
    with op.batch_alter_table('conference_decks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conference_decks_session_id'))

    op.drop_table('conference_decks')
