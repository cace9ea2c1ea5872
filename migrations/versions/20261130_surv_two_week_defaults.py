"""surveillance: built-in syndromes still on their former default rule move to the one
bench/surveillance.py now backs: AWD (count_quantile) and ILI/SARI (farrington) to the seasonal
two-week rule (count_seasonal), bloody diarrhoea and meningitis (count_quantile) to the flat
two-week rule (count_two_weeks)

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


# code: (threshold, former detector, detector).
MOVES = {
    'awd': (5, 'count_quantile', 'count_seasonal'),
    'ili_sari': (10, 'farrington', 'count_seasonal'),
    'bloody_diarrhoea': (3, 'count_quantile', 'count_two_weeks'),
    'meningitis': (2, 'count_quantile', 'count_two_weeks'),
}


def _move(back: bool) -> None:
    syndromes = sa.table('syndromes', sa.column('code', sa.String), sa.column('detector', sa.String),
                         sa.column('threshold', sa.Integer))
    for code, (threshold, former, chosen) in MOVES.items():
        old, new = (chosen, former) if back else (former, chosen)
        op.execute(syndromes.update()
                   .where(syndromes.c.code == code, syndromes.c.detector == old,
                          syndromes.c.threshold == threshold)
                   .values(detector=new))


def upgrade():
    _move(back=False)


def downgrade():
    _move(back=True)
