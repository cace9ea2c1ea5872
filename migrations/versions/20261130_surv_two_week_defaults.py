"""surveillance: built-in AWD, bloody diarrhoea and meningitis still on their former default
rule (count_quantile) move to the one bench/surveillance.py now backs (count_two_weeks)

Revision ID: 9b2e4d7a6c13
Revises: 7c0a11e5d3f2
Create Date: 2026-11-30 09:20:00

Data only, as 7a3c9e51d204 did for the previous defaults: a row somebody edited (another
detector or threshold) stays as they left it.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9b2e4d7a6c13'
down_revision = '7c0a11e5d3f2'
branch_labels = None
depends_on = None


# code: threshold; (former detector, detector) below.
THRESHOLDS = {'awd': 5, 'bloody_diarrhoea': 3, 'meningitis': 2}
FORMER, CHOSEN = 'count_quantile', 'count_two_weeks'


def _set_defaults(old: str, new: str) -> None:
    syndromes = sa.table('syndromes', sa.column('code', sa.String), sa.column('detector', sa.String),
                         sa.column('threshold', sa.Integer))
    for code, threshold in THRESHOLDS.items():
        op.execute(syndromes.update()
                   .where(syndromes.c.code == code, syndromes.c.detector == old,
                          syndromes.c.threshold == threshold)
                   .values(detector=new))


def upgrade():
    _set_defaults(FORMER, CHOSEN)


def downgrade():
    _set_defaults(CHOSEN, FORMER)
