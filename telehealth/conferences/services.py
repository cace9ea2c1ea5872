"""Series, sessions, invitations, de-identified cases, recommendations and attendance.

Services flush, never commit: the view (or the CLI) that called them commits once.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import IO, Any
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from sqlalchemy import delete, or_, select, update

from telehealth import clock, signals, transaction, uploads
from telehealth.accounts.models import Role, User
from telehealth.audit.services import record
from telehealth.clinics.models import Clinic
from telehealth.conferences.identifiers import Finding, find_identifiers
from telehealth.conferences.models import (
    CASE_TRANSITIONS,
    DECK_TRANSITIONS,
    EDITABLE_CASE_STATUSES,
    HUB_ROLES,
    AttendanceCorrection,
    AttendanceEvent,
    AttendanceKind,
    CaseStatus,
    ConferenceCase,
    ConferenceCaseImage,
    ConferenceDeck,
    ConferenceInvitation,
    ConferenceMember,
    ConferenceSeries,
    ConferenceSession,
    ConferenceSlide,
    DeckStatus,
    IdentifierDismissal,
    MemberRole,
    Recommendation,
)
from telehealth.consults.models import Attachment, Consult
from telehealth.crypto import hash_token
from telehealth.db_types import known
from telehealth.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ServiceError,
    TooLarge,
)
from telehealth.extensions import db
from telehealth.i18n.formatting import is_timezone, local_call_time
from telehealth.notes.models import NoteKind
from telehealth.notes.services import write_note
from telehealth.notifications.services import notify
from telehealth.validation import check_timezone

INVITATION_DAYS = 30
MAX_TEXT = 5000
MAX_REASON = 500

# ---------------------------------------------------------------- series and membership


@dataclass(frozen=True)
class SeriesInput:
    topic: str
    languages: list[str]
    timezone: str
    weekday: int
    start: time
    duration_minutes: int = 90
    teaching_minutes: int = 20
    case_slots: int = 3
    certificate_percent: int = 80


def create_series(actor: User, data: SeriesInput) -> ConferenceSeries:
    """A coordinator starts a series and becomes its first hub coordinator."""
    if actor.role not in (Role.COORDINATOR, Role.ADMIN):
        raise PermissionDenied(_("Only coordinators can start a conference series."))
    if not data.topic.strip():
        raise InvalidInput(_("Give the series a topic."))
    if not is_timezone(data.timezone):
        raise InvalidInput(_("Unknown time zone."))
    if not 0 <= data.weekday <= 6:
        raise InvalidInput(_("Choose a weekday."))
    if not 15 <= data.duration_minutes <= 480 \
            or not 0 <= data.teaching_minutes < data.duration_minutes:
        raise InvalidInput(_("The teaching slot must fit in the session."))
    if not 1 <= data.certificate_percent <= 100 or not 0 <= data.case_slots <= 12:
        raise InvalidInput(_("Check the numbers of the series."))
    series = ConferenceSeries(
        topic=data.topic.strip()[:200], languages=",".join(data.languages) or "en",
        timezone=data.timezone, weekday=data.weekday,
        start_minute=data.start.hour * 60 + data.start.minute,
        duration_minutes=data.duration_minutes, teaching_minutes=data.teaching_minutes,
        case_slots=data.case_slots, certificate_percent=data.certificate_percent,
        created_by_id=actor.id)
    db.session.add(series)
    db.session.flush()
    db.session.add(ConferenceMember(series_id=series.id, user_id=actor.id,
                                    role=MemberRole.COORDINATOR))
    db.session.flush()
    record("conference.series_created", obj=series)
    return series


def add_member(series: ConferenceSeries, actor: User, role: MemberRole, *,
               user: User | None = None, clinic: Clinic | None = None) -> ConferenceMember:
    """A hub coordinator adds a hub member, a participant, or a whole clinic (idempotent)."""
    require_hub(actor, series, coordinator=True)
    if (user is None) == (clinic is None):
        raise InvalidInput(_("Choose one person or one clinic."))
    if clinic is not None and role in HUB_ROLES:
        raise InvalidInput(_("A clinic takes part; people make up the hub."))
    if user is not None:
        same = ConferenceMember.user_id == user.id
    else:
        assert clinic is not None
        same = ConferenceMember.clinic_id == clinic.id
    existing = db.session.scalar(select(ConferenceMember).where(
        ConferenceMember.series_id == series.id, same))
    if existing is not None:
        return existing
    member = ConferenceMember(series_id=series.id, role=role,
                              user_id=user.id if user else None,
                              clinic_id=clinic.id if clinic else None)
    db.session.add(member)
    db.session.flush()
    record("conference.member_added", obj=series, role=role.value,
           user_id=member.user_id, clinic_id=member.clinic_id)
    return member


def member_role(user: User, series_id: int) -> MemberRole | None:
    """The strongest role this user has in the series, or None (deny by default)."""
    if not user.is_authenticated:
        return None
    rows = db.session.scalars(select(ConferenceMember.role).where(
        ConferenceMember.series_id == series_id,
        or_(ConferenceMember.user_id == user.id,
            ConferenceMember.clinic_id == user.clinic_id if user.clinic_id is not None
            else ConferenceMember.id.is_(None))))
    roles = set(rows)
    for role in (MemberRole.COORDINATOR, MemberRole.SPECIALIST, MemberRole.PARTICIPANT):
        if role in roles:
            return role
    return None


def require_hub(user: User, series: ConferenceSeries, coordinator: bool = False) -> MemberRole:
    role = member_role(user, series.id)
    if role is None:
        raise NotFound(_("No such conference."))
    if role not in HUB_ROLES or (coordinator and role != MemberRole.COORDINATOR):
        raise PermissionDenied(_("Only the hub's coordinators can do this."))
    return role


def get_series(user: User, series_id: int) -> tuple[ConferenceSeries, MemberRole]:
    """The series and the reader's role in it; 404 for anyone who is not a member."""
    series = db.session.get(ConferenceSeries, series_id)
    role = member_role(user, series_id) if series is not None else None
    if series is None or role is None:
        raise NotFound(_("No such conference."))
    return series, role


def series_for(user: User) -> list[ConferenceSeries]:
    ids = select(ConferenceMember.series_id).where(or_(
        ConferenceMember.user_id == user.id,
        ConferenceMember.clinic_id == user.clinic_id if user.clinic_id is not None
        else ConferenceMember.id.is_(None)))
    return list(db.session.scalars(select(ConferenceSeries).where(
        ConferenceSeries.id.in_(ids)).order_by(ConferenceSeries.topic)))


def members_of(series: ConferenceSeries) -> list[User]:
    """Every person in the series: named members and the clinicians of invited clinics."""
    user_ids = [m.user_id for m in series.members if m.user_id is not None]
    clinic_ids = [m.clinic_id for m in series.members if m.clinic_id is not None]
    return list(db.session.scalars(select(User).where(User.active.is_(True), or_(
        User.id.in_(user_ids), User.clinic_id.in_(clinic_ids) & (User.role == Role.CLINICIAN)))
        .order_by(User.name)))


# ---------------------------------------------------------------- invitations


def create_invitation(series: ConferenceSeries, actor: User, *, user: User | None = None,
                      clinic: Clinic | None = None) -> tuple[ConferenceInvitation, str]:
    """A link bound to one person or one clinic; returns (invitation, the token to send)."""
    require_hub(actor, series, coordinator=True)
    if (user is None) == (clinic is None):
        raise InvalidInput(_("Choose one person or one clinic."))
    token = secrets.token_urlsafe(32)
    invitation = ConferenceInvitation(
        series_id=series.id, user_id=user.id if user else None,
        clinic_id=clinic.id if clinic else None, token_hash=hash_token(token),
        created_by_id=actor.id, expires_at=clock.now() + timedelta(days=INVITATION_DAYS))
    db.session.add(invitation)
    db.session.flush()
    record("conference.invited", obj=invitation, series_id=series.id)
    return invitation, token


def accept_invitation(token: str, user: User) -> ConferenceSeries:
    """The person (or a clinician of the clinic) the link is bound to joins the series."""
    invitation = db.session.scalar(select(ConferenceInvitation).where(
        ConferenceInvitation.token_hash == hash_token(token)))
    if invitation is None or invitation.expires_at <= clock.now():
        raise NotFound(_("This invitation link is not valid or has expired."))
    bound_here = (invitation.user_id == user.id if invitation.user_id is not None
                  else user.role == Role.CLINICIAN and user.clinic_id == invitation.clinic_id)
    if not bound_here:
        raise NotFound(_("This invitation link is not valid or has expired."))
    series = db.session.get(ConferenceSeries, invitation.series_id)
    assert series is not None
    if member_role(user, series.id) is None:
        db.session.add(ConferenceMember(series_id=series.id, role=MemberRole.PARTICIPANT,
                                        user_id=invitation.user_id,
                                        clinic_id=invitation.clinic_id))
        db.session.flush()
    invitation.accepted_at = invitation.accepted_at or clock.now()
    record("conference.invitation_accepted", obj=invitation, series_id=series.id)
    return series


# ---------------------------------------------------------------- sessions and the agenda


def occurrences(series: ConferenceSeries, first_day: date, weeks: int) -> list[datetime]:
    """Session starts (UTC) of the weekly recurrence, computed in the hub's own zone so a
    daylight-saving change moves the UTC time, never the hub's local time."""
    zone = ZoneInfo(check_timezone(series.timezone))  # a stored zone gone bad: refused
    day = first_day + timedelta(days=(series.weekday - first_day.weekday()) % 7)
    local = time(series.start_minute // 60, series.start_minute % 60)
    return [datetime.combine(day + timedelta(weeks=n), local, tzinfo=zone).astimezone(UTC)
            for n in range(weeks)]


def generate_sessions(series: ConferenceSeries, actor: User, weeks: int,
                      first_day: date | None = None) -> list[ConferenceSession]:
    """Create the next sessions of the recurrence (those that exist already are kept)."""
    require_hub(actor, series, coordinator=True)
    if not 1 <= weeks <= 52:
        raise InvalidInput(_("Plan between 1 and 52 weeks."))
    hub_zone = ZoneInfo(check_timezone(series.timezone))
    first = first_day or clock.now().astimezone(hub_zone).date()
    existing = set(db.session.scalars(select(ConferenceSession.starts_at).where(
        ConferenceSession.series_id == series.id)))
    created = []
    for starts_at in occurrences(series, first, weeks):
        if starts_at in existing or starts_at < clock.now():
            continue
        session = ConferenceSession(
            series_id=series.id, starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=series.duration_minutes))
        db.session.add(session)
        created.append(session)
    db.session.flush()
    record("conference.sessions_planned", obj=series, count=len(created))
    return created


def sessions_of(series: ConferenceSeries) -> list[ConferenceSession]:
    return list(db.session.scalars(select(ConferenceSession).where(
        ConferenceSession.series_id == series.id).order_by(ConferenceSession.starts_at)))


def get_session(user: User, session_id: int) -> tuple[ConferenceSession, MemberRole]:
    """The session and the reader's role in its series; 404 for non-members."""
    session = db.session.get(ConferenceSession, session_id)
    if session is None:
        raise NotFound(_("No such conference session."))
    _series, role = get_series(user, session.series_id)
    return session, role


@dataclass(frozen=True)
class Slot:
    starts_at: datetime
    ends_at: datetime
    case: ConferenceCase | None  # None: the teaching slot, or a free case slot
    teaching: bool


def agenda(session: ConferenceSession) -> list[Slot]:
    """A teaching slot, then the case slots sharing the rest of the session equally."""
    series = session.series
    teaching_end = session.starts_at + timedelta(minutes=series.teaching_minutes)
    slots = [Slot(session.starts_at, teaching_end, None, True)]
    if series.case_slots:
        cases = {c.slot: c for c in approved_cases(session)}
        length = (session.ends_at - teaching_end) / series.case_slots
        for n in range(series.case_slots):
            start = teaching_end + n * length
            slots.append(Slot(start, start + length, cases.get(n + 1), False))
    return slots


def send_reminders(now: datetime | None = None, within: timedelta = timedelta(hours=24)) -> int:
    """Notify every member of each session starting within `within`, once per session."""
    now = now or clock.now()
    due = list(db.session.scalars(select(ConferenceSession).where(
        ConferenceSession.reminded_at.is_(None), ConferenceSession.starts_at > now,
        ConferenceSession.starts_at <= now + within)))
    sent = 0
    for session in due:
        # Claim the session first: two schedulers never both remind.
        claimed = db.session.execute(update(ConferenceSession).where(
            ConferenceSession.id == session.id, ConferenceSession.reminded_at.is_(None))
            .values(reminded_at=now)).rowcount  # type: ignore[attr-defined]
        if not claimed:
            continue
        for person in members_of(session.series):
            _remind(person, session)
            sent += 1
    return sent


def _remind(person: User, session: ConferenceSession) -> None:
    """One reminder: the time in the person's own zone, the e-mail in their language."""
    topic = session.series.topic

    def when() -> str:
        return local_call_time(session.starts_at, str(get_locale() or "en"),
                               person.timezone or "UTC")

    notify(person, "conference_reminder",
           {"session_id": session.id, "series_id": session.series_id, "topic": topic,
            "starts_at": session.starts_at.isoformat()},
           subject=lambda: _("Case conference: %(topic)s", topic=topic),
           body=lambda: _("The case conference \u201c%(topic)s\u201d meets on %(when)s.",
                          topic=topic, when=when()))


# ---------------------------------------------------------------- case presentations


def age_band(age_years: int | None) -> str:
    """A ten-year band; everyone over 89 shares one band (a rare age identifies)."""
    if age_years is None:
        return "unknown"
    if age_years >= 90:
        return "90+"
    if age_years < 1:
        return "<1"
    low = age_years // 10 * 10
    return f"{low}-{low + 9}"


@dataclass(frozen=True)
class CaseInput:
    history: str
    question: str
    image_ids: list[int]


def _check_case_text(data: CaseInput) -> None:
    if not data.question.strip():
        raise InvalidInput(_("Write the question for the hub."))
    if len(data.history) > MAX_TEXT or len(data.question) > MAX_TEXT:
        raise InvalidInput(_("The text is longer than %(n)d characters.", n=MAX_TEXT))


def _copy_images(case: ConferenceCase, consult: Consult, image_ids: Iterable[int]) -> None:
    """Copy chosen consult photos, decoded and re-encoded: EXIF, GPS and comments stay behind."""
    wanted = set(image_ids)
    for attachment in consult.attachments:
        if attachment.id not in wanted or not attachment.is_image:
            continue
        data = uploads.stored_path(attachment.stored_name).read_bytes()
        checked = uploads.check_upload(io.BytesIO(data), "case-image")
        stored_name, digest = uploads.store(db.session(), checked)
        db.session.add(ConferenceCaseImage(case_id=case.id, stored_name=stored_name,
                                           content_type=checked.content_type, sha256=digest))
    if wanted - {a.id for a in consult.attachments if a.is_image}:
        raise InvalidInput(_("Choose images of this consult only."))
    db.session.flush()


def create_case(session: ConferenceSession, consult: Consult, presenter: User,
                data: CaseInput) -> ConferenceCase:
    """A clinician turns one of their consults into a draft case: a separate summary."""
    role = member_role(presenter, session.series_id)
    if role is None:
        raise NotFound(_("No such conference session."))
    if presenter.role != Role.CLINICIAN or presenter.clinic_id != consult.clinic_id:
        raise NotFound(_("No such consult."))
    if session.ends_at <= clock.now():
        raise Conflict(_("This session is over."))
    _check_case_text(data)
    case = ConferenceCase(
        session_id=session.id, consult_id=consult.id, presenter_id=presenter.id,
        status=CaseStatus.DRAFT, age_band=consult.patient_age_band
        or age_band(consult.patient_age_years), sex=consult.patient_sex.value,
        history=data.history.strip(), question=data.question.strip())
    db.session.add(case)
    db.session.flush()
    _copy_images(case, consult, data.image_ids)
    record("conference.case_created", consult_id=consult.id, obj=case)
    return case


def update_case(case: ConferenceCase, presenter: User, data: CaseInput) -> None:
    """The presenter edits the summary (e.g. removes what the check flagged)."""
    _require_presenter(case, presenter)
    if case.status not in EDITABLE_CASE_STATUSES:
        raise Conflict(_("A submitted case can no longer be edited."))
    _check_case_text(data)
    case.history, case.question = data.history.strip(), data.question.strip()
    db.session.flush()


def _require_presenter(case: ConferenceCase, user: User) -> None:
    if case.presenter_id != user.id:
        raise PermissionDenied(_("Only the presenting clinician can change this case."))


def _known_names(case: ConferenceCase) -> tuple[str, ...]:
    consult = db.session.get(Consult, case.consult_id)
    return (consult.patient_ref,) if consult is not None else ()


def findings(case: ConferenceCase) -> list[Finding]:
    """Everything the automatic check flags in the case's texts."""
    text = f"{case.history}\n{case.question}"
    return find_identifiers(text, _known_names(case))


def open_findings(case: ConferenceCase) -> list[Finding]:
    """Findings neither edited away nor marked "not an identifier"."""
    dismissed = {(d.kind, d.text) for d in case.dismissals}
    return [f for f in findings(case) if (f.kind, f.text) not in dismissed]


def dismiss_finding(case: ConferenceCase, presenter: User, kind: str, text: str,
                    reason: str) -> IdentifierDismissal:
    """The presenter states that one flagged text is not an identifier, and why."""
    _require_presenter(case, presenter)
    if case.status not in EDITABLE_CASE_STATUSES:
        raise Conflict(_("A submitted case can no longer be edited."))
    reason = reason.strip()
    if not reason:
        raise InvalidInput(_("Say why this is not an identifier."))
    if len(reason) > MAX_REASON:
        raise InvalidInput(_("The reason is longer than %(n)d characters.", n=MAX_REASON))
    if Finding(kind, text) not in findings(case):
        raise InvalidInput(_("This text is not flagged in the case."))
    dismissal = IdentifierDismissal(case_id=case.id, kind=kind, text=text[:200], reason=reason,
                                    by_id=presenter.id)
    db.session.add(dismissal)
    db.session.flush()
    db.session.refresh(case)
    record("conference.identifier_dismissed", consult_id=case.consult_id, obj=case, kind=kind,
           reason=reason)
    return dismissal


def transition_case(case: ConferenceCase, new: CaseStatus, **values: object) -> None:
    """The one way a case changes status: allowed moves only, and one conditional UPDATE."""
    if new not in CASE_TRANSITIONS[known(case.status)]:
        raise Conflict(_("This case cannot go from %(old)s to %(new)s.", old=case.status.value,
                         new=new.value))
    done = db.session.execute(update(ConferenceCase).where(
        ConferenceCase.id == case.id, ConferenceCase.status == case.status)
        .values(status=new, **values)).rowcount  # type: ignore[attr-defined]
    if not done:
        raise Conflict(_("Somebody changed this case at the same time; reload the page."))
    db.session.refresh(case)


def submit_case(case: ConferenceCase, presenter: User) -> None:
    """Send the case to the hub; refused while any flagged identifier is unresolved."""
    _require_presenter(case, presenter)
    remaining = open_findings(case)
    if remaining:
        raise InvalidInput(_("Resolve every flagged identifier first (%(n)d left).",
                             n=len(remaining)))
    transition_case(case, CaseStatus.SUBMITTED)
    record("conference.case_submitted", consult_id=case.consult_id, obj=case)


def approve_case(case: ConferenceCase, coordinator: User) -> None:
    """A hub coordinator approves the case into the session's next free case slot."""
    require_hub(coordinator, case.session.series, coordinator=True)
    if open_findings(case):  # text changed under the check's feet: never approve a leak
        raise InvalidInput(_("Resolve every flagged identifier first (%(n)d left).",
                             n=len(open_findings(case))))
    taken = {c.slot for c in approved_cases(case.session)}
    free = [n for n in range(1, case.session.series.case_slots + 1) if n not in taken]
    if not free:
        raise Conflict(_("Every case slot of this session is taken."))
    transition_case(case, CaseStatus.APPROVED, approved_by_id=coordinator.id,
                    approved_at=clock.now(), slot=free[0])
    record("conference.case_approved", consult_id=case.consult_id, obj=case)


def return_case(case: ConferenceCase, coordinator: User) -> None:
    require_hub(coordinator, case.session.series, coordinator=True)
    transition_case(case, CaseStatus.RETURNED)
    record("conference.case_returned", consult_id=case.consult_id, obj=case)


def approved_cases(session: ConferenceSession) -> list[ConferenceCase]:
    return list(db.session.scalars(select(ConferenceCase).where(
        ConferenceCase.session_id == session.id, ConferenceCase.status == CaseStatus.APPROVED)
        .order_by(ConferenceCase.slot)))


def cases_visible_in(session: ConferenceSession, user: User) -> list[ConferenceCase]:
    """Approved cases for every member; the hub also sees submitted ones; a presenter theirs."""
    role = member_role(user, session.series_id)
    if role is None:
        return []
    rows = db.session.scalars(select(ConferenceCase).where(
        ConferenceCase.session_id == session.id).order_by(ConferenceCase.id))
    return [c for c in rows if c.status == CaseStatus.APPROVED or c.presenter_id == user.id
            or (role in HUB_ROLES and c.status == CaseStatus.SUBMITTED)]


def get_case(user: User, case_id: int) -> tuple[ConferenceCase, MemberRole]:
    """The case if this reader may see it, else 404 (its existence is not revealed)."""
    case = db.session.get(ConferenceCase, case_id)
    if case is None or case not in cases_visible_in(case.session, user):
        raise NotFound(_("No such case."))
    role = member_role(user, case.session.series_id)
    assert role is not None
    return case, role


def consults_to_present(user: User) -> list[Consult]:
    """The clinician's own clinic's consults (not drafts), newest first."""
    if user.role != Role.CLINICIAN or user.clinic_id is None:
        return []
    return list(db.session.scalars(select(Consult).where(
        Consult.clinic_id == user.clinic_id, Consult.submitted_at.is_not(None))
        .order_by(Consult.id.desc()).limit(50)))


def consult_images(consult: Consult) -> list[Attachment]:
    return [a for a in consult.attachments if a.is_image]


def get_case_image(user: User, image_id: int) -> ConferenceCaseImage:
    image = db.session.get(ConferenceCaseImage, image_id)
    if image is None:
        raise NotFound(_("No such image."))
    get_case(user, image.case_id)
    return image


# ---------------------------------------------------------------- recommendations


def add_recommendation(case: ConferenceCase, author: User, body: str,
                       language: str | None = None) -> Recommendation:
    """The hub's advice, kept with the case and written to the consult as a note from the hub
    (language detected, translatable like any note)."""
    require_hub(author, case.session.series)
    if case.status != CaseStatus.APPROVED:
        raise Conflict(_("Recommendations go on approved cases."))
    consult = db.session.get(Consult, case.consult_id)
    assert consult is not None
    header = _("Recommendation of the case conference \u201c%(topic)s\u201d",
               topic=case.session.series.topic)
    note = write_note(consult, author, f"{header}\n\n{body.strip()}" if body.strip() else "",
                      NoteKind.NOTE, language)
    recommendation = Recommendation(case_id=case.id, author_id=author.id, body=body.strip(),
                                    note_id=note.id)
    db.session.add(recommendation)
    db.session.flush()
    record("conference.recommendation", consult_id=consult.id, obj=recommendation)
    return recommendation


def recommendations_of(case: ConferenceCase) -> list[Recommendation]:
    return list(db.session.scalars(select(Recommendation).where(
        Recommendation.case_id == case.id).order_by(Recommendation.id)))


# ---------------------------------------------------------------- attendance


def record_attendance(session: ConferenceSession, user: User, kind: AttendanceKind,
                      at: datetime | None = None) -> AttendanceEvent:
    """A join or leave reported by the media server (the conference room calls this)."""
    event = AttendanceEvent(session_id=session.id, user_id=user.id, kind=kind,
                            at=at or clock.now())
    db.session.add(event)
    db.session.flush()
    return event


def attended_seconds(events: Iterable[tuple[AttendanceKind, datetime]], start: datetime,
                     end: datetime) -> int:
    """Seconds inside [start, end] covered by join..leave intervals.

    A second device or a reconnect overlaps an interval that is still open: intervals are
    merged, so no minute counts twice; a join without a leave lasts to the session's end.
    """
    intervals: list[tuple[datetime, datetime]] = []
    open_since: datetime | None = None
    depth = 0
    for kind, at in sorted(events, key=lambda e: (e[1], e[0] == AttendanceKind.JOIN)):
        if kind == AttendanceKind.JOIN:
            if depth == 0:
                open_since = at
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0 and open_since is not None:
                intervals.append((open_since, at))
                open_since = None
    if open_since is not None:
        intervals.append((open_since, max(end, open_since)))
    total = 0
    for a, b in intervals:
        a, b = max(a, start), min(b, end)
        if b > a:
            total += int((b - a).total_seconds())
    return total


@dataclass(frozen=True)
class Attendance:
    user: User
    minutes: int
    measured_minutes: int
    corrected: AttendanceCorrection | None
    eligible: bool


def attendance(session: ConferenceSession) -> list[Attendance]:
    """Everyone who joined or was corrected: minutes, and whether a certificate is due."""
    events = db.session.scalars(select(AttendanceEvent).where(
        AttendanceEvent.session_id == session.id))
    by_user: dict[int, list[tuple[AttendanceKind, datetime]]] = {}
    for event in events:
        by_user.setdefault(event.user_id, []).append((event.kind, event.at))
    corrections: dict[int, AttendanceCorrection] = {}
    for newer in db.session.scalars(select(AttendanceCorrection).where(
            AttendanceCorrection.session_id == session.id).order_by(AttendanceCorrection.id)):
        corrections[newer.user_id] = newer  # the newest wins
    needed = session.minutes * session.series.certificate_percent / 100
    rows = []
    for user_id in sorted(set(by_user) | set(corrections)):
        user = db.session.get(User, user_id)
        assert user is not None
        measured = attended_seconds(by_user.get(user_id, []), session.starts_at,
                                    session.ends_at) // 60
        correction = corrections.get(user_id)
        minutes = correction.minutes if correction is not None else measured
        rows.append(Attendance(user, minutes, measured, correction, minutes >= needed))
    return rows


def attendance_of(session: ConferenceSession, user: User) -> Attendance | None:
    return next((row for row in attendance(session) if row.user.id == user.id), None)


def correct_attendance(session: ConferenceSession, coordinator: User, person: User,
                       minutes: int, reason: str) -> AttendanceCorrection:
    """A hub coordinator sets someone's minutes; the reason is mandatory and audited."""
    require_hub(coordinator, session.series, coordinator=True)
    reason = reason.strip()
    if not reason:
        raise InvalidInput(_("A correction needs a reason."))
    if len(reason) > MAX_REASON:
        raise InvalidInput(_("The reason is longer than %(n)d characters.", n=MAX_REASON))
    if not 0 <= minutes <= session.minutes:
        raise InvalidInput(_("Minutes must be between 0 and %(n)d.", n=session.minutes))
    if member_role(person, session.series_id) is None:
        raise InvalidInput(_("This person is not in the conference."))
    before = attendance_of(session, person)
    correction = AttendanceCorrection(session_id=session.id, user_id=person.id, minutes=minutes,
                                      reason=reason, by_id=coordinator.id)
    db.session.add(correction)
    db.session.flush()
    record("conference.attendance_corrected", obj=correction, session_id=session.id,
           user_id=person.id, minutes=minutes, before=before.minutes if before else 0,
           reason=reason)
    return correction


def attendance_csv(series: ConferenceSeries, actor: User) -> str:
    """One row per session and person: minutes, the share required, certificate or not."""
    require_hub(actor, series, coordinator=True)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["session_start_utc", "person", "email", "minutes", "session_minutes",
                     "certificate", "corrected_reason"])
    for session in sessions_of(series):
        for row in attendance(session):
            writer.writerow([session.starts_at.isoformat(), _csv_safe(row.user.name),
                             _csv_safe(row.user.email), row.minutes, session.minutes,
                             "yes" if row.eligible else "no",
                             _csv_safe(row.corrected.reason) if row.corrected else ""])
    return out.getvalue()


def _csv_safe(value: str) -> str:
    # A cell starting with = + - @ is a formula in a spreadsheet: neutralise it.
    return f"'{value}" if value[:1] in ("=", "+", "-", "@") else value


# ---------------------------------------------------------------- the live room


@dataclass(frozen=True)
class RoomMember:
    """A person allowed into a session's live room, and what they may do there."""

    session_id: int
    user_id: int
    participant_id: str
    display_name: str
    role: MemberRole

    @property
    def moderator(self) -> bool:
        """Hub coordinators and specialists mute, lower hands, remove and show slides."""
        return self.role in HUB_ROLES


def room_member(user: User, session_id: object) -> RoomMember:
    """The user as a member of the session's room: session members only (404 for anyone
    else), until the room closes a while after the session's end."""
    if not isinstance(session_id, int) or isinstance(session_id, bool):
        raise InvalidInput(_("The conference session is not specified."))
    if not user.is_authenticated:
        raise NotFound(_("No such conference session."))
    session, role = get_session(user, session_id)
    if not room_open(session):
        raise Conflict(_("This session is over."))
    return RoomMember(session.id, user.id, participant_of(user.id), user.name, role)


def participant_of(user_id: int) -> str:
    """A user's participant id in a session's room (and on its pages)."""
    return f"u{user_id}"


def may_present(person: RoomMember) -> bool:
    """Who may put their screen before everyone in the room: the hub (moderators) and the
    presenter of one of the session's approved cases."""
    return person.moderator or presents_case(person.user_id, person.session_id)


def presents_case(user_id: int, session_id: int) -> bool:
    """Whether the user presents one of the session's approved cases."""
    return db.session.scalar(select(ConferenceCase.id).where(
        ConferenceCase.session_id == session_id,
        ConferenceCase.presenter_id == user_id,
        ConferenceCase.status == CaseStatus.APPROVED).limit(1)) is not None


def room_open(session: ConferenceSession) -> bool:
    """Whether the session's room still takes people: until a while after its end (a
    session that runs late is not cut off)."""
    late = timedelta(minutes=int(current_app.config.get("CONFERENCE_JOIN_LATE_MINUTES", 60)))
    return clock.now() < session.ends_at + late


def record_room_attendance(session_id: int, user_id: int, kind: AttendanceKind) -> None:
    """A join or leave the media server reported for a room member (by ids: the room keeps
    no database objects between events)."""
    session = db.session.get(ConferenceSession, session_id)
    user = db.session.get(User, user_id)
    if session is not None and user is not None:
        record_attendance(session, user, kind)


def slides_of(session_id: int) -> list[ConferenceSlide]:
    """A session's slides in order."""
    return list(db.session.scalars(select(ConferenceSlide).where(
        ConferenceSlide.session_id == session_id).order_by(ConferenceSlide.position)))


def add_slides(session: ConferenceSession, user: User,
               files: list[tuple[IO[bytes], str]]) -> list[ConferenceSlide]:
    """A hub member adds slides to the session: JPEG or PNG images become slides now; each
    PDF deck is stored and, once this transaction commits, a job turns its pages into
    slides (`prepare_deck`). Every image is decoded and re-encoded (no EXIF, GPS or
    comments survive), with a small preview for audio-only and `low` participants. Returns
    the image slides; the decks are the uploader's `decks_shown`."""
    require_hub(user, session.series)
    config = current_app.config
    if not files:
        raise InvalidInput(_("Choose one or more slide images or a PDF."))
    existing = slides_of(session.id)
    max_slides = int(config["CONFERENCE_MAX_SLIDES"])
    images: list[tuple[bytes, str]] = []
    decks: list[tuple[bytes, str]] = []
    for stream, name in files:
        data, is_pdf = _read_slide_file(stream, name)
        (decks if is_pdf else images).append((data, name))
    if len(existing) + len(images) > max_slides \
            or decks and len(existing) + len(images) >= max_slides:
        raise InvalidInput(_("A session holds at most %(n)d slides.", n=max_slides))
    position = existing[-1].position if existing else 0
    added = []
    for data, name in images:
        position += 1
        added.append(_store_slide(session.id, user.id, position, data, name))
    # A new upload answers the uploader's earlier refusals: they are not shown again.
    db.session.execute(delete(ConferenceDeck).where(
        ConferenceDeck.session_id == session.id, ConferenceDeck.uploaded_by_id == user.id,
        ConferenceDeck.status == DeckStatus.FAILED))
    for data, name in decks:
        _queue_deck(session, user, data, name)
    db.session.flush()
    if added:
        record("conference.slides_added", obj=session, count=len(added))
    return added


def _read_slide_file(stream: IO[bytes], name: str) -> tuple[bytes, bool]:
    """One uploaded file's bytes, within its size limit, and whether it is a PDF deck
    (checked at once as far as can be without rendering it)."""
    config = current_app.config
    image_limit = int(config["CONFERENCE_SLIDE_MAX_BYTES"])
    deck_limit = int(config["CONFERENCE_DECK_MAX_BYTES"])
    data = stream.read(max(image_limit, deck_limit) + 1)
    is_pdf = uploads.sniff(data) == "application/pdf"
    limit = deck_limit if is_pdf else image_limit
    if len(data) > limit:
        raise TooLarge(_("%(name)s is larger than the limit of %(mb)s MB.",
                         name=name[:200], mb=limit // (1024 * 1024)))
    if is_pdf:
        uploads.check_pdf_deck(data, name)
    return data, is_pdf


def _store_slide(session_id: int, user_id: int, position: int, data: bytes,
                 name: str) -> ConferenceSlide:
    """One slide image, checked, re-encoded and stored with its preview (flushed later)."""
    checked = uploads.check_upload(io.BytesIO(data), name)
    if not checked.content_type.startswith("image/") or checked.preview is None:
        raise InvalidInput(_("%(name)s is not an image: save each slide as a JPEG or PNG "
                             "image, or the deck as a PDF.", name=checked.original_name))
    stored_name, _digest = uploads.store(db.session(), checked)
    preview_name = uploads.write_file(db.session(), checked.preview)
    slide = ConferenceSlide(session_id=session_id, position=position,
                            stored_name=stored_name, preview_name=preview_name,
                            content_type=checked.content_type, uploaded_by_id=user_id)
    db.session.add(slide)
    return slide


def _queue_deck(session: ConferenceSession, user: User, data: bytes, name: str) -> None:
    """Keep a PDF deck in the uploads store for the job that renders it (asked for once
    this transaction commits; the file goes if it rolls back)."""
    deck = ConferenceDeck(session_id=session.id, original_name=uploads.clean_name(name),
                          stored_name=uploads.write_file(db.session(), data),
                          status=DeckStatus.PREPARING, uploaded_by_id=user.id)
    db.session.add(deck)
    db.session.flush()
    record("conference.deck_uploaded", obj=session, deck_id=deck.id)
    transaction.after_commit(partial(signals.conference_deck_uploaded.send, None,
                                     deck_id=deck.id))


def deck_limits() -> dict[str, int] | None:
    """What a PDF deck may be (MB, pages) on this server; None: PDFs are not accepted
    (no renderer installed), only images."""
    if not uploads.pdf_rendering_available():
        return None
    config = current_app.config
    return {"mb": int(config["CONFERENCE_DECK_MAX_BYTES"]) // (1024 * 1024),
            "pages": int(config["CONFERENCE_DECK_MAX_PAGES"])}


def decks_shown(session_id: int, user: User) -> list[ConferenceDeck]:
    """The decks a hub member's room page lists: every one being prepared, and their own
    refused ones (until their next upload)."""
    return list(db.session.scalars(select(ConferenceDeck).where(
        ConferenceDeck.session_id == session_id,
        or_(ConferenceDeck.status == DeckStatus.PREPARING,
            (ConferenceDeck.status == DeckStatus.FAILED)
            & (ConferenceDeck.uploaded_by_id == user.id))).order_by(ConferenceDeck.id)))


def deck_summary(deck: ConferenceDeck) -> dict[str, Any]:
    """What a room page shows of a deck (JSON)."""
    return {"id": deck.id, "name": deck.original_name, "status": known(deck.status).value,
            "error": deck.error, "uploader": participant_of(deck.uploaded_by_id)}


def prepare_deck(deck_id: int) -> ConferenceDeck | None:
    """Turn an uploaded deck's pages into slides, after the session's slides (the
    render_conference_deck job): every page or none. A refusal (unreadable, too slow, too
    many pages, the session full) is kept as a sentence in the uploader's language. The
    deck's file is removed once this commits. None: no deck waits under that id."""
    deck = db.session.get(ConferenceDeck, deck_id)
    if deck is None or deck.status != DeckStatus.PREPARING:
        return None  # done already (a job delivered twice) or gone
    with force_locale(_uploader_locale(deck)):
        try:
            with db.session.begin_nested():  # a refusal keeps no page of it
                slides = _deck_slides(deck)
                finish_deck(deck, DeckStatus.READY, slide_count=len(slides))
        except Conflict:
            raise  # another run finished it: that one's outcome stands
        except ServiceError as exc:
            finish_deck(deck, DeckStatus.FAILED, error=exc.message[:500])
            record("conference.deck_refused", obj=deck, actor_id=deck.uploaded_by_id,
                   session_id=deck.session_id)
        else:
            record("conference.slides_added", obj=deck, actor_id=deck.uploaded_by_id,
                   session_id=deck.session_id, count=len(slides))
    return deck


def _uploader_locale(deck: ConferenceDeck) -> str:
    uploader = db.session.get(User, deck.uploaded_by_id)
    return (uploader.locale if uploader else None) \
        or str(current_app.config["BABEL_DEFAULT_LOCALE"])


def _deck_broke(deck: ConferenceDeck) -> InvalidInput:
    return InvalidInput(_("%(name)s could not be turned into slides; please upload it again, "
                          "or each slide as an image.", name=deck.original_name))


def lost_decks() -> list[int]:
    """Decks still being prepared CONFERENCE_DECK_RETRY_SECONDS after their upload: their
    job was lost (a broker away at the upload, a restarted worker)."""
    seconds = int(current_app.config["CONFERENCE_DECK_RETRY_SECONDS"])
    return list(db.session.scalars(select(ConferenceDeck.id).where(
        ConferenceDeck.status == DeckStatus.PREPARING,
        ConferenceDeck.created_at < clock.now() - timedelta(seconds=seconds))
        .order_by(ConferenceDeck.id)))


def give_up_deck(deck_id: int) -> ConferenceDeck | None:
    """A deck whose preparation broke down (not a refusal: a fault, logged by the job) is
    refused with a general sentence, its file removed; None if it was not waiting."""
    deck = db.session.get(ConferenceDeck, deck_id)
    if deck is None or deck.status != DeckStatus.PREPARING:
        return None
    with force_locale(_uploader_locale(deck)):
        finish_deck(deck, DeckStatus.FAILED, error=_deck_broke(deck).message)
    return deck


def finish_deck(deck: ConferenceDeck, new: DeckStatus, **values: object) -> None:
    """The one way a deck changes status: allowed moves only, and one conditional UPDATE
    (two runs of its job cannot both finish it); its file goes once this commits."""
    if new not in DECK_TRANSITIONS[known(deck.status)]:
        raise Conflict(_("This deck is already prepared."))
    stored_name = deck.stored_name  # (the UPDATE below sets it on the object too)
    done = db.session.execute(update(ConferenceDeck).where(
        ConferenceDeck.id == deck.id, ConferenceDeck.status == deck.status)
        .values(status=new, finished_at=clock.now(), stored_name=None, **values)
    ).rowcount  # type: ignore[attr-defined]
    if not done:
        raise Conflict(_("This deck is already prepared."))
    if stored_name:
        uploads.remove_after_commit(db.session(), stored_name)
    db.session.refresh(deck)


def _deck_slides(deck: ConferenceDeck) -> list[ConferenceSlide]:
    """The deck's pages as slides after the session's others, within the deck's page limit
    and the session's slide limit."""
    config = current_app.config
    max_slides = int(config["CONFERENCE_MAX_SLIDES"])
    existing = slides_of(deck.session_id)
    room_left = max_slides - len(existing)
    if room_left <= 0:
        raise InvalidInput(_("A session holds at most %(n)d slides.", n=max_slides))
    if not deck.stored_name:
        raise _deck_broke(deck)
    try:
        data = uploads.stored_path(deck.stored_name).read_bytes()
    except FileNotFoundError:  # the uploads store lost it (a restore, a wrong mount)
        raise _deck_broke(deck) from None
    pages = uploads.pdf_page_images(
        data, deck.original_name,
        max_pages=min(int(config["CONFERENCE_DECK_MAX_PAGES"]), room_left),
        timeout=float(config["CONFERENCE_DECK_TIMEOUT_SECONDS"]))
    stem = deck.original_name[:190].rsplit(".", 1)[0] or "slides"
    position = existing[-1].position if existing else 0
    slides = [_store_slide(deck.session_id, deck.uploaded_by_id, position + number, page,
                           f"{stem}-{number}.png")
              for number, page in enumerate(pages, 1)]
    db.session.flush()
    return slides


def get_slide(user: User, slide_id: int) -> ConferenceSlide:
    """A slide for a member of its session (404 for anyone else)."""
    slide = db.session.get(ConferenceSlide, slide_id)
    if slide is None:
        raise NotFound(_("No such slide."))
    get_session(user, slide.session_id)
    return slide


def slide_in_session(session_id: int, slide_id: int) -> ConferenceSlide:
    """One of this session's slides (what a presenter may show in its room)."""
    slide = db.session.get(ConferenceSlide, slide_id)
    if slide is None or slide.session_id != session_id:
        raise InvalidInput(_("No such slide in this session."))
    return slide
