"""surveillance: when an alert's stage clock ran out and the sweeper escalated it; built-in
syndromes still on their former default rule move to the one bench/surveillance.py backs

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


# code: (former detector, former threshold) -> (detector, threshold). Only rows nobody edited
# (still exactly the former default) change.
DEFAULTS = {
    'awd': (('farrington', 5), ('count_quantile', 5)),
    'bloody_diarrhoea': (('nb_cusum', 3), ('count_quantile', 3)),
    'measles_rash': (('fixed', 3), ('count_quantile', 1)),
    'acute_jaundice': (('nb_cusum', 3), ('count_quantile', 3)),
    'meningitis': (('nb_cusum', 2), ('count_quantile', 2)),
}


def _set_defaults(backwards: bool) -> None:
    syndromes = sa.table('syndromes', sa.column('code', sa.String), sa.column('detector', sa.String),
                         sa.column('threshold', sa.Integer))
    for code, (former, chosen) in DEFAULTS.items():
        old, new = (chosen, former) if backwards else (former, chosen)
        op.execute(syndromes.update()
                   .where(syndromes.c.code == code, syndromes.c.detector == old[0],
                          syndromes.c.threshold == old[1])
                   .values(detector=new[0], threshold=new[1]))


def upgrade():
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalated_at', telehealth.db_types.UTCDateTime(),
                                      nullable=True))
    _set_defaults(backwards=False)


def downgrade():
    _set_defaults(backwards=True)
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_column('escalated_at')
