"""totp secrets encrypted at rest

Revision ID: 81c21cc316e7
Revises: f57e1f7e7d8c
Create Date: 2026-11-25 16:05:00.000000

The column grows to hold Fernet ciphertext, and every stored secret is encrypted in place with
the deployment's data key (TELEHEALTH_DATA_KEY, or the key derived from SECRET_KEY); the
downgrade decrypts them back, and stops if a secret opens with no configured key.
"""
from alembic import op
import sqlalchemy as sa
from cryptography.fernet import InvalidToken

from telehealth.security.crypto import key_ring


# revision identifiers, used by Alembic.
revision = '81c21cc316e7'
down_revision = 'f57e1f7e7d8c'
branch_labels = None
depends_on = None

users = sa.table('users', sa.column('id', sa.Integer()),
                 sa.column('totp_secret', sa.String()))


def _rewrite(change):
    conn = op.get_bind()
    rows = conn.execute(sa.select(users.c.id, users.c.totp_secret)
                        .where(users.c.totp_secret.is_not(None))).all()
    for user_id, value in rows:
        conn.execute(users.update().where(users.c.id == user_id)
                     .values(totp_secret=change(user_id, value)))


def _encrypt(user_id, value):
    ring = key_ring()
    try:
        ring.decrypt(value.encode())
        return value  # already encrypted (new code ran before this migration on SQLite)
    except InvalidToken:
        return ring.encrypt(value.encode()).decode()


def _decrypt(user_id, value):
    try:
        return key_ring().decrypt(value.encode()).decode()
    except InvalidToken:
        raise RuntimeError(
            f"the TOTP secret of user {user_id} opens with no configured data key "
            "(TELEHEALTH_DATA_KEY / TELEHEALTH_DATA_OLD_KEYS / SECRET_KEY): set the key it was "
            "encrypted with before downgrading") from None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('totp_secret', existing_type=sa.String(length=64),
                              type_=sa.String(length=255), existing_nullable=True)
    _rewrite(_encrypt)


def downgrade():
    _rewrite(_decrypt)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('totp_secret', existing_type=sa.String(length=255),
                              type_=sa.String(length=64), existing_nullable=True)
