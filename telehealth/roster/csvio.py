"""The roster as CSV: export every specialist, import a file all or nothing."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from telehealth import clock
from telehealth.accounts.models import Role, Specialty, User, UserLanguage
from telehealth.audit.services import record
from telehealth.errors import ServiceError
from telehealth.extensions import db
from telehealth.roster.models import (
    AvailabilityWindow,
    CredentialStatus,
    ProfileStatus,
    SpecialistProfile,
)
from telehealth.roster.services import (
    check_timezone,
    format_languages,
    format_windows,
    parse_languages,
    parse_windows,
)

COLUMNS = ["email", "name", "timezone", "specialties", "subspecialty", "languages", "capacity",
           "status", "availability", "licence_number", "licence_body", "licence_country",
           "licence_expires_on", "credential_status"]
REQUIRED = ["email", "name", "timezone", "specialties", "languages"]
MAX_ROWS = 20_000
# Imported accounts cannot sign in until invited: this is no Argon2 hash, so nothing matches.
NO_PASSWORD = "!imported"


def export_csv() -> str:
    """Every specialist on the roster, one row each, in the import format."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    rows = db.session.execute(
        select(User, SpecialistProfile).join(SpecialistProfile,
                                             SpecialistProfile.user_id == User.id)
        .where(User.role == Role.SPECIALIST).order_by(User.email)
        .options(selectinload(User.specialties), selectinload(User.languages),
                 selectinload(SpecialistProfile.windows)))
    for user, profile in rows:
        writer.writerow([
            user.email, user.name, user.timezone, " ".join(s.code for s in user.specialties),
            profile.subspecialty, format_languages(user), profile.capacity, profile.status.value,
            format_windows(profile.windows), profile.licence_number, profile.licence_body,
            profile.licence_country,
            profile.licence_expires_on.isoformat() if profile.licence_expires_on else "",
            profile.credential_status.value,
        ])
    return out.getvalue()


@dataclass
class RowError:
    line: int
    message: str


@dataclass
class ParsedRow:
    line: int
    email: str
    name: str
    timezone: str
    specialties: list[Specialty]
    subspecialty: str
    languages: dict[str, int]
    capacity: int
    status: ProfileStatus
    windows: list[tuple[int, int, int]] | None
    licence: tuple[str, str, str, date | None]
    credential_status: CredentialStatus


class ImportFailed(ServiceError):
    """The file had errors; nothing was imported."""

    status_code = 400

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(_("Nothing was imported: the file has %(n)d error(s).", n=len(errors)))
        self.errors = errors


def _parse_row(line: int, raw: dict[str, str], specialties: dict[str, Specialty]) -> ParsedRow:
    def cell(name: str) -> str:
        return (raw.get(name) or "").strip()

    for name in REQUIRED:
        if not cell(name):
            raise ServiceError(_("the column %(column)s is empty", column=name))
    email = cell("email").lower()
    if "@" not in email or len(email) > 254:
        raise ServiceError(_("%(value)s is not an e-mail address", value=email))
    codes = cell("specialties").replace(",", " ").split()
    unknown = [c for c in codes if c not in specialties]
    if unknown:
        raise ServiceError(_("unknown specialty %(codes)s", codes=", ".join(unknown)))
    try:
        capacity = int(cell("capacity") or 3)
    except ValueError as exc:
        raise ServiceError(_("the capacity must be a whole number")) from exc
    if not 0 <= capacity <= 100:
        raise ServiceError(_("the capacity must be between 0 and 100"))
    try:
        status = ProfileStatus(cell("status") or ProfileStatus.PENDING.value)
        credential_status = CredentialStatus(cell("credential_status") or
                                             CredentialStatus.UNVERIFIED.value)
    except ValueError as exc:
        raise ServiceError(_("unknown status %(value)s", value=cell("status") + " / " +
                             cell("credential_status"))) from exc
    expires_on = None
    if cell("licence_expires_on"):
        try:
            expires_on = date.fromisoformat(cell("licence_expires_on"))
        except ValueError as exc:
            raise ServiceError(_("%(value)s is not a date like 2027-03-31",
                                 value=cell("licence_expires_on"))) from exc
    country = cell("licence_country").upper()
    if country and (len(country) != 2 or not country.isalpha()):
        raise ServiceError(_("the licence country must be a two-letter code"))
    return ParsedRow(
        line=line, email=email, name=cell("name")[:120], timezone=check_timezone(cell("timezone")),
        specialties=[specialties[c] for c in codes], subspecialty=cell("subspecialty")[:120],
        languages=parse_languages(cell("languages")), capacity=capacity, status=status,
        windows=parse_windows(cell("availability")) if cell("availability") else None,
        licence=(cell("licence_number")[:60], cell("licence_body")[:160], country, expires_on),
        credential_status=credential_status,
    )


def parse_csv(text: str) -> list[ParsedRow]:
    """Check every row; raise ImportFailed listing each bad row by its line number."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise ImportFailed([RowError(1, _("the header lacks the column(s) %(columns)s",
                                          columns=", ".join(missing)))])
    specialties = {s.code: s for s in db.session.scalars(select(Specialty))}
    rows: list[ParsedRow] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    line = 1
    for raw in reader:
        line = reader.line_num
        if len(rows) + len(errors) >= MAX_ROWS:
            errors.append(RowError(line, _("more than %(n)d rows", n=MAX_ROWS)))
            break
        if None in raw:
            errors.append(RowError(line, _("more cells than columns")))
            continue
        try:
            row = _parse_row(line, raw, specialties)
        except ServiceError as exc:
            errors.append(RowError(line, exc.message))
            continue
        if row.email in seen:
            errors.append(RowError(line, _("%(email)s is already on line %(other)d",
                                           email=row.email, other=seen[row.email])))
            continue
        seen[row.email] = line
        rows.append(row)
    if not rows and not errors:
        errors.append(RowError(line, _("the file has no rows")))
    # Existing accounts that are not specialists cannot be turned into roster entries here.
    if rows:
        taken: dict[str, Role] = {email: role for email, role in db.session.execute(
            select(User.email, User.role).where(User.email.in_([r.email for r in rows])))}
        for row in rows:
            if row.email in taken and taken[row.email] != Role.SPECIALIST:
                errors.append(RowError(row.line, _("%(email)s belongs to a user who is not a "
                                                   "specialist", email=row.email)))
    if errors:
        raise ImportFailed(sorted(errors, key=lambda e: e.line))
    return rows


def import_csv(text: str, actor: User) -> tuple[int, int]:
    """Create or update every specialist in the file; (created, updated). All or nothing."""
    rows = parse_csv(text)
    emails = [row.email for row in rows]
    # A few set-wide queries instead of several per row.
    users = {u.email: u for u in db.session.scalars(
        select(User).where(User.email.in_(emails))
        .options(selectinload(User.specialties), selectinload(User.languages)))}
    created = [User(email=row.email, name=row.name, password_hash=NO_PASSWORD,
                    role=Role.SPECIALIST, timezone=row.timezone, specialties=[], languages=[])
               for row in rows if row.email not in users]
    db.session.add_all(created)
    db.session.flush()
    users.update({u.email: u for u in created})
    ids = [users[email].id for email in emails]
    profiles = {p.user_id: p for p in db.session.scalars(
        select(SpecialistProfile).where(SpecialistProfile.user_id.in_(ids)))}
    replaced = [users[row.email].id for row in rows if row.windows is not None]
    with db.session.no_autoflush:
        if replaced:
            db.session.execute(db.delete(AvailabilityWindow).where(
                AvailabilityWindow.user_id.in_(replaced)))
        for row in rows:
            user = users[row.email]
            user.name = row.name
            user.timezone = row.timezone
            user.specialties = row.specialties
            existing = {lang.language: lang for lang in user.languages}
            user.languages = [existing.get(code) or UserLanguage(language=code, level=level)
                              for code, level in row.languages.items()]
            for lang in user.languages:
                lang.level = row.languages[lang.language]
            profile = profiles.get(user.id)
            if profile is None:
                profile = SpecialistProfile(user_id=user.id)
                db.session.add(profile)
            profile.subspecialty = row.subspecialty
            profile.capacity = row.capacity
            profile.status = row.status
            (profile.licence_number, profile.licence_body, profile.licence_country,
             profile.licence_expires_on) = row.licence
            if row.credential_status == CredentialStatus.VERIFIED and \
                    profile.credential_status != CredentialStatus.VERIFIED:
                profile.verified_by_id, profile.verified_at = actor.id, clock.now()
            profile.credential_status = row.credential_status
            if row.windows is not None:
                db.session.add_all(AvailabilityWindow(user_id=user.id, weekday=d,
                                                      start_minute=start, end_minute=end)
                                   for d, start, end in row.windows)
    db.session.flush()
    record("roster.imported", actor_id=actor.id, created=len(created),
           updated=len(rows) - len(created))
    return len(created), len(rows) - len(created)
