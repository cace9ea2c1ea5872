"""The area hierarchy: creating areas, walking the tree, importing GeoJSON boundaries."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from telehealth.audit.services import record
from telehealth.clinics.models import Clinic
from telehealth.errors import InvalidInput, NotFound
from telehealth.extensions import db
from telehealth.places.models import Area

MAX_GEOJSON_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 8


def all_areas() -> list[Area]:
    return list(db.session.scalars(select(Area).order_by(Area.name)))


def get_area(area_id: int) -> Area:
    area = db.session.get(Area, area_id)
    if area is None:
        raise NotFound(_("No such area."))
    return area


@dataclass(frozen=True)
class AreaTree:
    """Parent and children of every area, loaded once: the hierarchy is small."""

    parent: dict[int, int | None]
    children: dict[int, list[int]]

    def descendants(self, roots: Iterable[int]) -> set[int]:
        """The roots and every area inside them."""
        seen: set[int] = set()
        stack = list(roots)
        while stack:
            area_id = stack.pop()
            if area_id not in seen:
                seen.add(area_id)
                stack.extend(self.children.get(area_id, []))
        return seen

    def ancestors(self, area_id: int) -> list[int]:
        """The area itself then each area above it, up to its country."""
        chain: list[int] = []
        current: int | None = area_id
        while current is not None and current not in chain:
            chain.append(current)
            current = self.parent.get(current)
        return chain


def load_tree() -> AreaTree:
    parent: dict[int, int | None] = {}
    children: dict[int, list[int]] = {}
    for area_id, parent_id in db.session.execute(select(Area.id, Area.parent_id)):
        parent[area_id] = parent_id
        if parent_id is not None:
            children.setdefault(parent_id, []).append(area_id)
    return AreaTree(parent, children)


def create_area(name: str, code: str, level: str = "district", parent: Area | None = None,
                latitude: float | None = None, longitude: float | None = None) -> Area:
    """Add an area under ``parent`` (None: a country)."""
    name, code = name.strip(), code.strip()
    if not name or not code:
        raise InvalidInput(_("An area needs a name and a code."))
    if len(name) > 160 or len(code) > 40 or len(level) > 40:  # the columns' lengths
        raise InvalidInput(_("An area's name has at most 160 characters, its code and level "
                             "40."))
    if db.session.scalar(select(Area.id).where(Area.code == code)) is not None:
        raise InvalidInput(_("An area with the code %(code)s exists already.", code=code))
    _check_coordinates(latitude, longitude)
    area = Area(name=name, code=code, level=level.strip() or "district",
                parent_id=parent.id if parent else None, latitude=latitude, longitude=longitude)
    db.session.add(area)
    db.session.flush()
    record("area.create", obj=area, code=code)
    return area


def place_clinic(clinic: Clinic, area: Area | None) -> None:
    """Put a clinic in an area: its consults count there from now on (and for the past)."""
    clinic.area_id = area.id if area else None
    db.session.flush()
    record("clinic.area", obj=clinic, area_id=clinic.area_id)


def _check_coordinates(latitude: float | None, longitude: float | None) -> None:
    if latitude is not None and not -90 <= latitude <= 90:
        raise InvalidInput(_("A latitude lies between -90 and 90."))
    if longitude is not None and not -180 <= longitude <= 180:
        raise InvalidInput(_("A longitude lies between -180 and 180."))


# --- GeoJSON ---------------------------------------------------------------------------------


def _feature_error(index: int, message: str) -> InvalidInput:
    return InvalidInput(_("Feature %(number)d: %(problem)s", number=index + 1, problem=message))


def _check_position(position: Any) -> tuple[float, float]:
    if (not isinstance(position, list) or len(position) < 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool)
                       and math.isfinite(v) for v in position[:2])):
        raise ValueError(_("a position must be [longitude, latitude] in numbers"))
    lon, lat = float(position[0]), float(position[1])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(_("a position lies outside longitude -180..180, latitude -90..90"))
    return lon, lat


def _check_polygon(rings: Any) -> None:
    if not isinstance(rings, list) or not rings:
        raise ValueError(_("a polygon must be a list of rings"))
    for ring in rings:
        if not isinstance(ring, list) or len(ring) < 4:
            raise ValueError(_("a ring needs at least four positions"))
        points = [_check_position(p) for p in ring]
        if points[0] != points[-1]:
            raise ValueError(_("a ring must end where it starts"))


def check_geometry(geometry: Any) -> dict[str, Any]:
    """A valid GeoJSON Polygon or MultiPolygon (RFC 7946), or ValueError saying what is wrong."""
    if not isinstance(geometry, dict):
        raise ValueError(_("the geometry is missing"))
    kind, coordinates = geometry.get("type"), geometry.get("coordinates")
    if kind == "Polygon":
        _check_polygon(coordinates)
    elif kind == "MultiPolygon":
        if not isinstance(coordinates, list) or not coordinates:
            raise ValueError(_("a multipolygon must be a list of polygons"))
        for polygon in coordinates:
            _check_polygon(polygon)
    else:
        raise ValueError(_("the geometry must be a Polygon or a MultiPolygon"))
    return {"type": kind, "coordinates": coordinates}


def import_geojson(raw: bytes | str) -> list[Area]:
    """Import boundaries from a FeatureCollection, all or nothing.

    Each feature needs properties ``code`` and ``name``; ``parent`` (a code) and ``level``
    are optional. A feature whose code exists updates that area's boundary (and name);
    others create areas. Every feature is checked before anything is written.
    """
    if len(raw) > MAX_GEOJSON_BYTES:
        raise InvalidInput(_("The file is larger than 5 MB."))
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(_("The file is not valid JSON: %(error)s", error=str(exc))) from exc
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection" \
            or not isinstance(data.get("features"), list) or not data["features"]:
        raise InvalidInput(_("The file must be a GeoJSON FeatureCollection with features."))
    existing = {area.code: area for area in all_areas()}
    planned: list[tuple[str, str, str, str | None, dict[str, Any]]] = []
    codes_in_file: set[str] = set()
    for index, feature in enumerate(data["features"]):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise _feature_error(index, _("it is not a GeoJSON Feature"))
        props = feature.get("properties") or {}
        code = str(props.get("code") or "").strip()
        name = str(props.get("name") or "").strip()
        if not code or not name or len(code) > 40 or len(name) > 160:
            raise _feature_error(index, _("properties need a code (≤ 40) and a name (≤ 160)"))
        if code in codes_in_file:
            raise _feature_error(index, _("the code %(code)s appears twice", code=code))
        codes_in_file.add(code)
        parent = props.get("parent")
        parent_code = str(parent).strip() if parent else None
        try:
            geometry = check_geometry(feature.get("geometry"))
        except ValueError as exc:
            raise _feature_error(index, str(exc)) from exc
        planned.append((code, name, str(props.get("level") or "district")[:40], parent_code,
                        geometry))
    for index, (_code, _name, _level, parent_code, _geometry) in enumerate(planned):
        if parent_code and parent_code not in existing and parent_code not in codes_in_file:
            raise _feature_error(index, _("no area has the parent code %(code)s",
                                          code=parent_code))
    imported: list[Area] = []
    for code, name, level, _parent, geometry in planned:
        area = existing.get(code)
        if area is None:
            area = Area(code=code, name=name, level=level)
            db.session.add(area)
            existing[code] = area
        area.name = name
        area.boundary = json.dumps(geometry, separators=(",", ":"))
        if area.latitude is None:
            area.longitude, area.latitude = _centroid(geometry)
        imported.append(area)
    db.session.flush()
    for code, _name, _level, parent_code, _geometry in planned:
        if parent_code:
            existing[code].parent_id = existing[parent_code].id
    db.session.flush()
    _refuse_cycles()
    record("area.import", count=len(imported))
    return imported


def _refuse_cycles() -> None:
    tree = load_tree()
    for area_id in tree.parent:
        if len(tree.ancestors(area_id)) > MAX_DEPTH or _has_cycle(tree, area_id):
            raise InvalidInput(_("The parents in the file make a loop or a tree too deep."))


def _has_cycle(tree: AreaTree, area_id: int) -> bool:
    seen: set[int] = set()
    current: int | None = area_id
    while current is not None:
        if current in seen:
            return True
        seen.add(current)
        current = tree.parent.get(current)
    return False


def _centroid(geometry: dict[str, Any]) -> tuple[float, float]:
    """The mean of the outer rings' vertices: good enough to place a label or a marker."""
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" \
        else geometry["coordinates"]
    points = [p for polygon in polygons for p in polygon[0][:-1]]
    return (sum(float(p[0]) for p in points) / len(points),
            sum(float(p[1]) for p in points) / len(points))


def outer_rings(area: Area) -> list[list[tuple[float, float]]]:
    """The outer ring of each polygon of the area's stored boundary (none if it has none)."""
    if not area.boundary:
        return []
    geometry = json.loads(area.boundary)
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" \
        else geometry["coordinates"]
    return [[(float(p[0]), float(p[1])) for p in polygon[0]] for polygon in polygons]
