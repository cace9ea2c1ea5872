"""Administrative areas (country → region → district …) that clinics sit in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from telehealth import clock
from telehealth.db_types import UTCDateTime
from telehealth.extensions import Model


class Area(Model):
    """One area of the hierarchy; its boundary is a GeoJSON geometry for the bulletin maps."""

    __tablename__ = "areas"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("areas.id"), index=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(160))
    # Free text so a deployment can go as deep as it needs: "country", "region", "district"...
    level: Mapped[str] = mapped_column(String(40), default="district")
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    boundary: Mapped[str | None] = mapped_column(Text)  # a GeoJSON Polygon or MultiPolygon
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)

    def __repr__(self) -> str:
        return f"<Area {self.code}>"
