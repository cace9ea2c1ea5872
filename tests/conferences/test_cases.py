"""Acceptance 3: a case cannot leak identity, and only session members see it."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image

from telehealth import uploads
from telehealth.conferences import services
from telehealth.conferences.identifiers import DATE, NAME, PHONE, RECORD, find_identifiers
from telehealth.conferences.models import CaseStatus
from telehealth.errors import InvalidInput, NotFound
from telehealth.extensions import db
from tests.conftest import PASSWORD, image_bytes

LEAKY = ("Mr John Okafor, born 12/03/1950, was seen for fever. Call +243 812 345 678. "
         "MRN 448812.")
CLEAN = "A man in his seventies was seen for fever."


@pytest.mark.parametrize(("text", "kind"), [
    ("Seen by Mrs Amina Diallo yesterday.", NAME),
    ("DOB 1950-03-12.", DATE),
    ("Born 12 March 1950.", DATE),
    ("Phone 0812 345 678 for news.", PHONE),
    ("Record number: KIN-20931.", RECORD),
    ("Lives in Kasika village near the river.", "place"),
    ("A frail 93 years old woman.", "age"),
])
def test_the_check_flags_each_kind(text: str, kind: str) -> None:
    assert kind in {finding.kind for finding in find_identifiers(text)}


def test_a_plain_clinical_text_is_not_flagged() -> None:
    assert find_identifiers("A woman in her forties, fever for 3 days, 500 mg amoxicillin "
                            "twice a day. Is this malaria or typhoid?") == []


def _case(conference: dict[str, Any], history: str = LEAKY) -> Any:
    consult = conference["consult"]
    case = services.create_case(conference["session"], consult, conference["clinician"],
                                services.CaseInput(history=history, question="What next?",
                                                   image_ids=[consult.attachments[0].id]))
    db.session.commit()
    return case


def test_a_case_with_identifiers_cannot_be_submitted_until_each_flag_is_resolved(
        conference: dict[str, Any]) -> None:
    clinician = conference["clinician"]
    case = _case(conference)
    kinds = {f.kind for f in services.open_findings(case)}
    assert {NAME, DATE, PHONE, RECORD} <= kinds
    with pytest.raises(InvalidInput):
        services.submit_case(case, clinician)
    with pytest.raises(InvalidInput):  # a dismissal needs a reason
        services.dismiss_finding(case, clinician, PHONE, "+243 812 345 678", "  ")
    # One flag marked "not an identifier" (with a reason), the others edited away.
    services.dismiss_finding(case, clinician, PHONE, "+243 812 345 678",
                             "The hub's own switchboard, not the patient's.")
    assert PHONE not in {f.kind for f in services.open_findings(case)}
    with pytest.raises(InvalidInput):
        services.submit_case(case, clinician)
    services.update_case(case, clinician, services.CaseInput(
        history=f"{CLEAN} Call +243 812 345 678.", question="What next?", image_ids=[]))
    assert services.open_findings(case) == []
    services.submit_case(case, clinician)
    services.approve_case(case, conference["coordinator"])
    db.session.commit()
    assert case.status == CaseStatus.APPROVED and case.slot == 1


def test_case_images_are_reencoded_without_metadata(conference: dict[str, Any],
                                                    make_consult: Any) -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x9286] = "Patient John Okafor"  # UserComment
    consult = make_consult(conference["clinician"],
                           files=[("gps.jpg", image_bytes(exif=exif.tobytes()))])
    case = services.create_case(conference["session"], consult, conference["clinician"],
                                services.CaseInput(CLEAN, "What next?",
                                                   [consult.attachments[0].id]))
    data = uploads.stored_path(case.images[0].stored_name).read_bytes()
    assert b"Okafor" not in data and b"PhoneMaker" not in data
    with Image.open(uploads.stored_path(case.images[0].stored_name)) as image:
        assert not image.getexif()


def test_only_their_own_clinics_consults_become_cases(conference: dict[str, Any],
                                                      make_consult: Any) -> None:
    theirs = make_consult(conference["other_clinician"])
    with pytest.raises(NotFound):
        services.create_case(conference["session"], theirs, conference["clinician"],
                             services.CaseInput(CLEAN, "What next?", []))


def _approved(conference: dict[str, Any]) -> Any:
    case = _case(conference, history=CLEAN)
    services.submit_case(case, conference["clinician"])
    services.approve_case(case, conference["coordinator"])
    db.session.commit()
    return case


def test_members_see_the_approved_case_without_identifiers_and_others_get_404(
        app: Any, conference: dict[str, Any]) -> None:
    case = _approved(conference)
    url = f"/conferences/cases/{case.id}"
    for who in ("clinician", "specialist", "coordinator"):
        client = app.test_client()
        client.post("/login", data={"email": conference[who].email, "password": PASSWORD})
        page = client.get(url)
        assert page.status_code == 200, who
        assert CLEAN in page.text
        # Nothing of the consult's identity: not its patient reference, not the consult itself.
        assert "Okafor" not in page.text and conference["consult"].reference not in page.text
        image = client.get(f"/conferences/case-images/{case.images[0].id}")
        assert image.status_code == 200
        image.close()
    for who in ("other_clinician", "other_specialist", "admin"):
        client = app.test_client()
        client.post("/login", data={"email": conference[who].email, "password": PASSWORD})
        assert client.get(url).status_code == 404, who
        assert client.get(f"/conferences/case-images/{case.images[0].id}").status_code == 404
        assert client.get(f"/conferences/sessions/{case.session_id}").status_code == 404


def test_a_draft_is_seen_by_its_presenter_only(conference: dict[str, Any]) -> None:
    case = _case(conference)
    assert services.get_case(conference["clinician"], case.id)
    for who in ("specialist", "coordinator"):
        with pytest.raises(NotFound):
            services.get_case(conference[who], case.id)
