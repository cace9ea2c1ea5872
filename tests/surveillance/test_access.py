"""Acceptance 4: who sees which counts, alerts and line lists; shared bulletins."""

from __future__ import annotations

import re
from typing import Any

import pytest

from telehealth.accounts.models import Role
from telehealth.extensions import db
from telehealth.surveillance import services
from tests.conftest import PASSWORD
from tests.surveillance.conftest import weeks_ago


def client_for(app: Any, user: Any) -> Any:
    client = app.test_client()
    assert client.post("/login", data={"email": user.email,
                                       "password": PASSWORD}).status_code == 302
    return client


@pytest.fixture()
def outbreak(surv, coded) -> Any:
    """Bloody diarrhoea in Goma (three clinics) and one case in Chókwè; detection has run."""
    coded(surv["clinician"], ["A039"], seen_at=weeks_ago(1), patient_ref="GOMA-SECRET-1")
    for clinician in surv["clinicians"]:
        coded(clinician, ["A039"], patient_ref="GOMA-SECRET-2")
    coded(surv["other_clinician"], ["A030"], patient_ref="CHOKWE-1")
    alerts = services.run_detection()
    db.session.commit()
    return next(a for a in alerts if a.area_id == surv["goma"].id)


def test_the_areas_officer_sees_the_alert_and_a_de_identified_line_list(app, surv,
                                                                        outbreak) -> None:
    client = client_for(app, surv["officer"])
    assert outbreak.reference in client.get("/surveillance").get_data(as_text=True)
    page = client.get(f"/surveillance/alerts/{outbreak.id}").get_data(as_text=True)
    assert page.count("<tr><td>") == 3  # the three Goma consults of this week
    assert "GOMA-SECRET" not in page and "/consults/" not in page  # no identifiers, no links
    assert "Goma Nord" in page


def test_an_officer_of_another_area_sees_neither_the_alert_nor_its_line_list(app, surv,
                                                                            outbreak) -> None:
    client = client_for(app, surv["other_officer"])
    assert outbreak.reference not in client.get("/surveillance").get_data(as_text=True)
    assert client.get(f"/surveillance/alerts/{outbreak.id}").status_code == 404
    assert client.post(f"/surveillance/alerts/{outbreak.id}/move",
                       data={"stage": "discarded"}).status_code == 404
    assert client.get(f"/surveillance/bulletin/{surv['goma'].id}").status_code == 404
    csv_text = client.get("/surveillance/export/alerts.csv").get_data(as_text=True)
    assert outbreak.reference not in csv_text
    counts = client.get("/surveillance/export/counts.csv").get_data(as_text=True)
    assert "CD-NK-GOMA" not in counts and "MZ-GZ-CHOK" in counts


def test_a_coordinator_opening_the_alert_may_follow_links_to_consults(app, surv,
                                                                      outbreak) -> None:
    page = client_for(app, surv["coordinator"]).get(
        f"/surveillance/alerts/{outbreak.id}").get_data(as_text=True)
    assert page.count('href="/consults/') == 3


def test_a_clinician_sees_only_their_clinics_counts(app, surv, outbreak) -> None:
    client = client_for(app, surv["clinician"])
    page = client.get("/surveillance").get_data(as_text=True)
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td>((?:<td[^>]*>\d+</td>)+)</tr>", page)
    # Their clinic had 2 cases (one each week), the district 4: they see 2, in their row.
    assert [(name, re.findall(r">(\d+)<", cells)) for name, area, cells in rows] == [
        ("Bloody diarrhoea", ["0", "0", "1", "1"])]
    assert outbreak.reference not in page
    assert client.get(f"/surveillance/alerts/{outbreak.id}").status_code == 403
    assert client.get("/surveillance/export/counts.csv").status_code == 403
    specialist = client_for(app, surv["specialist"])
    assert specialist.get("/surveillance").status_code == 403


def test_a_shared_bulletin_hides_cells_under_5_and_dies_when_revoked(app, surv,
                                                                   outbreak) -> None:
    officer = client_for(app, surv["officer"])
    kivu = surv["goma"]  # the officer's district (a leaf: its map shows itself)
    page = officer.post(f"/surveillance/bulletin/{kivu.id}/share",
                        data={"label": "Ministère de la Santé"}).get_data(as_text=True)
    url = re.search(r'value="(http[^"]+/bulletins/[^"]+)"', page).group(1)
    path = url.split("localhost", 1)[-1]
    public = app.test_client()
    shared = public.get(path)
    assert shared.status_code == 200
    text = shared.get_data(as_text=True)
    table = text.split('id="bulletin-counts"', 1)[1].split("</table>", 1)[0]
    cells = re.findall(r"<td>([^<]*)</td>", table)
    numbers = [int(c) for c in cells if c.isdigit()]
    assert all(n == 0 or n >= 5 for n in numbers) and "&lt;5" in table
    assert "GOMA-SECRET" not in text and "/surveillance/alerts/" not in text
    assert 'data-alert="yes"' in text  # Goma shaded on the map
    # The officer's own bulletin shows the numbers.
    own = officer.get(f"/surveillance/bulletin/{kivu.id}").get_data(as_text=True)
    own_table = own.split('id="bulletin-counts"', 1)[1].split("</table>", 1)[0]
    assert "<td>3</td>" in own_table
    link_id = re.search(r'/surveillance/share/(\d+)/revoke', own).group(1)
    # Only an officer of the area may revoke it.
    other = client_for(app, surv["other_officer"])
    assert other.post(f"/surveillance/share/{link_id}/revoke").status_code == 404
    assert public.get(path).status_code == 200
    assert officer.post(f"/surveillance/share/{link_id}/revoke").status_code == 302
    assert public.get(path).status_code == 404


def test_an_officer_of_no_area_sees_nothing(app, surv, outbreak, make_user) -> None:
    nobody = make_user(Role.SURVEILLANCE_OFFICER)
    client = client_for(app, nobody)
    assert outbreak.reference not in client.get("/surveillance").get_data(as_text=True)
    assert client.get(f"/surveillance/alerts/{outbreak.id}").status_code == 404
