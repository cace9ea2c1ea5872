"""Surveillance objects for the page and access-matrix tests of other packages."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from telehealth import clock
from telehealth.extensions import db
from telehealth.places.models import Area
from telehealth.places.services import create_area, place_clinic
from telehealth.surveillance.models import Alert, AlertStage
from telehealth.surveillance.services import (
    create_share_link,
    ensure_default_syndromes,
    week_start,
)


def surveillance_pages(world: dict[str, Any]) -> dict[str, Any]:
    """A district with a boundary holding the world's clinic, an alert there, a share link."""
    n = db.session.scalar(select(func.count(Area.id))) or 0  # called again on the same world
    country = create_area("RD Congo", f"CD{n}", "country")
    district = create_area("Goma", f"CD-GOMA{n}", "district", country)
    district.boundary = json.dumps({"type": "Polygon", "coordinates": [
        [[29, -2], [30, -2], [30, -1], [29, -1], [29, -2]]]})
    place_clinic(world["clinic"], district)
    syndromes = {s.code: s for s in ensure_default_syndromes()}
    now = clock.now()
    alert = Alert(syndrome_id=syndromes["vhf"].id, area_id=district.id,
                  week_start=week_start(now.date(), "iso") - timedelta(weeks=n),
                  detector="fixed", observed=1,
                  expected=0.0, upper_bound=0.0, stage=AlertStage.VERIFICATION,
                  evidence=json.dumps({"weeks": ["2026-W48"], "observed": [1], "upper": [0],
                                       "detector": "fixed", "chosen": "fixed",
                                       "history_weeks": 1}))
    db.session.add(alert)
    db.session.flush()
    link, token = create_share_link(district, world["coordinator"], "WHO")
    db.session.commit()
    return {"alert_id": alert.id, "area_id": district.id, "share_token": token,
            "share_id": link.id}
