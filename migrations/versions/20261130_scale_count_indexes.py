"""indexes for the dashboards' counts

Revision ID: 7c0a11e5d3f2
Revises: 5e1f0a7c2b9d
Create Date: 2026-11-30 02:40:00.000000

A clinic's dashboard counts its consults by status, history included (a busy clinic holds
thousands after a few years). With (clinic_id, status) PostgreSQL counts them from the index
alone (an index-only scan) instead of reading every consult row, as (specialist_id, status)
already does for a volunteer's dashboard.
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '7c0a11e5d3f2'
down_revision = '7c4d2e9a1b35'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_consults_clinic_id_status", "consults", ["clinic_id", "status"],
                    unique=False)


def downgrade():
    op.drop_index("ix_consults_clinic_id_status", table_name="consults")
