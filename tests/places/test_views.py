"""Areas and GeoJSON boundaries: an admin imports them; bad files get a clear 400, nothing half."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from telehealth.accounts.models import Role
from telehealth.extensions import db
from telehealth.places.models import Area
from telehealth.places.services import load_tree

SQUARE = [[[29, -2], [30, -2], [30, -1], [29, -1], [29, -2]]]


def feature(code: str = "CD-GOMA", name: str = "Goma", geometry: Any = None,
            **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": {"code": code, "name": name, **props},
            "geometry": geometry or {"type": "Polygon", "coordinates": SQUARE}}


def collection(*features: Any) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


@pytest.fixture()
def admin_client(app, make_user):
    admin = make_user(Role.ADMIN)
    client = app.test_client()
    client.post("/login", data={"email": admin.email, "password": "correct horse battery"})
    return client


def upload(client: Any, content: str) -> Any:
    return client.post("/admin/areas/import", data={"file": (io.BytesIO(content.encode()),
                                                             "areas.geojson")},
                       content_type="multipart/form-data")


def test_an_admin_builds_the_hierarchy_and_imports_boundaries(admin_client) -> None:
    assert admin_client.post("/admin/areas", data={"name": "RD Congo", "code": "CD",
                                                   "level": "country"}).status_code == 302
    response = upload(admin_client, collection(
        feature("CD-NK", "Nord-Kivu", parent="CD", level="region"),
        feature("CD-GOMA", "Goma", parent="CD-NK"),
        feature("CD-BENI", "Beni", {"type": "MultiPolygon", "coordinates": [SQUARE]},
                parent="CD-NK")))
    assert response.status_code == 302
    areas = {a.code: a for a in db.session.scalars(select(Area))}
    tree = load_tree()
    assert tree.ancestors(areas["CD-GOMA"].id) == [areas[c].id for c in ("CD-GOMA", "CD-NK",
                                                                          "CD")]
    assert areas["CD-GOMA"].latitude == pytest.approx(-1.5)
    page = admin_client.get("/admin/areas").get_data(as_text=True)
    assert "Nord-Kivu" in page
    # Every select says what it chooses (two bare selects side by side did not).
    assert '<label>Clinic <select name="clinic_id">' in page
    assert '<label>Surveillance officer <select name="user_id">' in page


BAD = [
    ("{not json", "not valid JSON"),
    (json.dumps({"type": "Feature"}), "FeatureCollection"),
    (collection(), "FeatureCollection"),
    (collection(feature(), feature(code="")), "Feature 2"),
    (collection(feature(geometry={"type": "Point", "coordinates": [29, -2]})),
     "Polygon or a MultiPolygon"),
    (collection(feature(geometry={"type": "Polygon", "coordinates": [[[29, -2], [30, -2],
                                                                     [30, -1], [29, -1]]]})),
     "must end where it starts"),
    (collection(feature(geometry={"type": "Polygon", "coordinates": [[[29, -2], [30, -2],
                                                                     [30, 95], [29, -2]]]})),
     "outside"),
    (collection(feature(geometry={"type": "Polygon", "coordinates": [[["a", "b"]] * 4]})),
     "in numbers"),
    (collection(feature(parent="NOWHERE")), "NOWHERE"),
    (collection(feature(), feature()), "appears twice"),
    (collection(feature("A", "A", parent="B"), feature("B", "B", parent="A")), "loop"),
]


@pytest.mark.parametrize(("content", "message"), BAD)
def test_malformed_geojson_is_refused_with_a_reason_and_nothing_saved(
        admin_client, content: str, message: str) -> None:
    response = upload(admin_client, content)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(Area.id))) == 0


@pytest.mark.parametrize("data", [{"name": "", "code": "X"},
                                  {"name": "X", "code": "X", "latitude": "north"},
                                  {"name": "X", "code": "X", "latitude": "91"},
                                  {"name": "X", "code": "X", "parent_id": "999"}])
def test_bad_areas_are_refused(admin_client, data: dict[str, str]) -> None:
    response = admin_client.post("/admin/areas", data=data)
    assert response.status_code in (400, 404)
    assert db.session.scalar(select(func.count(Area.id))) == 0
    # The form again with the reason and what was typed, not an error page that loses it.
    page = response.get_data(as_text=True)
    assert 'id="new-area"' in page and 'class="flash flash-error"' in page
    assert f'name="code" required maxlength="40" value="{data["code"]}"' in page
    if data.get("latitude"):
        assert f'value="{data["latitude"]}"' in page
