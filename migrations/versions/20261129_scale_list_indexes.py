"""indexes for keyset pages of every list

Revision ID: 5ca1e11c0a01
Revises: 3b7d5e9a1c20
Create Date: 2026-11-29 23:30:00.000000

Each list page filters on one column and walks its sort key (created_at or updated_at, then
id) from the cursor; these indexes make that one range scan whatever the table's size.
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '5ca1e11c0a01'
down_revision = '3b7d5e9a1c20'
branch_labels = None
depends_on = None

INDEXES = [
    ("ix_consults_created_at_id", "consults", ["created_at", "id"]),
    ("ix_consults_updated_at_id", "consults", ["updated_at", "id"]),
    ("ix_consults_status_created_at_id", "consults", ["status", "created_at", "id"]),
    ("ix_consults_clinic_id_updated_at_id", "consults", ["clinic_id", "updated_at", "id"]),
    ("ix_consults_specialist_id_updated_at_id", "consults",
     ["specialist_id", "updated_at", "id"]),
    ("ix_consults_specialty_id_created_at_id", "consults", ["specialty_id", "created_at", "id"]),
    ("ix_consults_accepted_at_specialist_id", "consults", ["accepted_at", "specialist_id"]),
    ("ix_offers_specialist_id_status_created_at_id", "offers",
     ["specialist_id", "status", "created_at", "id"]),
    ("ix_offers_status_expires_at", "offers", ["status", "expires_at"]),
    ("ix_users_name_id", "users", ["name", "id"]),
    ("ix_users_role_name_id", "users", ["role", "name", "id"]),
]


def upgrade():
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade():
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
