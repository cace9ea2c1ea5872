"""Who may be in a consult's call, and what a call leaves on the case."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, or_, select, text
from sqlalchemy.exc import OperationalError

from telehealth import clock
from telehealth.accounts.models import Role, User
from telehealth.audit.services import record
from telehealth.consults.models import Consult, ConsultStatus
from telehealth.consults.services import consult_url, visible_consults_clause
from telehealth.db_types import known
from telehealth.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.i18n.formatting import local_call_time
from telehealth.notifications.services import in_language_of, notify
from telehealth.video.models import (
    PROPOSAL_TRANSITIONS,
    CallMessage,
    CallProposal,
    ProposalStatus,
    VideoInvite,
    VideoParticipation,
    VideoSession,
)

# A call can be held once a specialist has the case, until it is closed.
CALL_STATUSES = frozenset({ConsultStatus.ACCEPTED, ConsultStatus.ANSWERED})
INVITE_LIFETIME = timedelta(hours=24)
MAX_CHAT_CHARS = 2000
MAX_GUEST_NAME = 120
# The Flask session key of the invite a guest redeemed in this browser.
GUEST_SESSION_KEY = "video_invite_id"


@dataclass(frozen=True)
class Caller:
    """A person allowed into one consult's call: a user or a guest with an invite."""

    consult_id: int
    participant_id: str
    display_name: str
    user_id: int | None = None
    invite_id: int | None = None


def is_call_member(user: User, consult: Consult) -> bool:
    """The requesting clinic's clinicians and the assigned specialist (deny by default).

    Coordinators are not: they manage the roster, not the patient; a clinician can invite
    one with a link when needed.
    """
    if user.role == Role.CLINICIAN:
        return user.clinic_id is not None and user.clinic_id == consult.clinic_id
    if user.role == Role.SPECIALIST:
        return consult.specialist_id == user.id
    return False


def can_call(user: User, consult: Consult) -> bool:
    """May this user join the consult's call now."""
    return consult.status in CALL_STATUSES and is_call_member(user, consult)


def _call_consult(consult_id: object) -> Consult:
    if not isinstance(consult_id, int) or isinstance(consult_id, bool):
        raise InvalidInput(_("The call is not specified."))
    consult = db.session.get(Consult, consult_id)
    if consult is None:
        raise NotFound(_("No such consult, or you do not have access to it."))
    return consult


def caller_for(user: User | None, invite_id: int | None, consult_id: object) -> Caller:
    """The caller this user (or guest session) is for the consult's call, or PermissionDenied.

    A participant is always themselves; anyone else (signed in or not) comes in as the guest
    of an invite redeemed in this browser for this consult: a coordinator who is signed in
    and opens an invitation link must not be turned away for being signed in. Someone who
    may not even read the consult gets what a made-up id gets (NotFound): neither that it
    exists nor whether its call is open.
    """
    consult = _call_consult(consult_id)
    member = user is not None and is_call_member(user, consult)
    invite = db.session.get(VideoInvite, invite_id) if invite_id is not None else None
    invited_here = invite is not None and invite.consult_id == consult.id
    if not (member or invited_here) and (user is None or not _can_read(user, consult)):
        raise NotFound(_("No such consult, or you do not have access to it."))
    if consult.status not in CALL_STATUSES:
        raise PermissionDenied(_("This consult has no call at the moment."))
    if user is not None and member:
        return Caller(consult.id, f"u{user.id}", user.name, user_id=user.id)
    if (invite is not None and invited_here and invite.redeemed_at is not None
            and invite.expires_at > clock.now()):
        return Caller(consult.id, f"g{invite.id}", invite.guest_name, invite_id=invite.id)
    if user is not None:
        raise PermissionDenied(_("You are not a participant in this consult's call."))
    raise PermissionDenied(_("Please sign in, or open your invitation link again."))


def _can_read(user: User, consult: Consult) -> bool:
    return db.session.scalar(select(Consult.id).where(
        Consult.id == consult.id, visible_consults_clause(user))) is not None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_invite(consult: Consult, actor: User, guest_name: str) -> tuple[VideoInvite, str]:
    """A one-time link for a guest; returns the invite and the token (shown only once)."""
    if not can_call(actor, consult):
        raise PermissionDenied(_("Only the call's participants can invite a guest."))
    guest_name = guest_name.strip()
    if not guest_name or len(guest_name) > MAX_GUEST_NAME:
        raise InvalidInput(_("Give the guest's name (at most %(n)d characters).",
                             n=MAX_GUEST_NAME))
    token = secrets.token_urlsafe(32)
    invite = VideoInvite(consult_id=consult.id, created_by_id=actor.id, guest_name=guest_name,
                         token_hash=hash_token(token), expires_at=clock.now() + INVITE_LIFETIME)
    db.session.add(invite)
    db.session.flush()
    record("video.invite_created", consult_id=consult.id, obj=invite, guest=guest_name)
    return invite, token


def redeem_invite(token: str) -> VideoInvite:
    """Use an invite link once; a used, expired or unknown link is refused."""
    invite = db.session.scalar(select(VideoInvite).where(
        VideoInvite.token_hash == hash_token(token)))
    if invite is None or invite.redeemed_at is not None or invite.expires_at <= clock.now():
        raise PermissionDenied(_("This invitation link is not valid any more."))
    invite.redeemed_at = clock.now()
    record("video.invite_redeemed", consult_id=invite.consult_id, obj=invite)
    return invite


def active_session(consult_id: int, lock: bool = False) -> VideoSession | None:
    """The consult's call in progress; `lock`: row-locked until commit, for a change.

    Every change to a call (join, leave, profile, end) locks its session row first, so
    two of them at once queue there instead of locking participations in opposite orders
    (two people leaving together deadlocked on PostgreSQL).
    """
    query = select(VideoSession).where(VideoSession.consult_id == consult_id,
                                       VideoSession.ended_at.is_(None))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return db.session.scalar(query)


def open_call_consult_ids() -> list[int]:
    """Consults whose call session has not ended."""
    return list(db.session.scalars(select(VideoSession.consult_id).where(
        VideoSession.ended_at.is_(None))))


def _wait_for_a_first_join(consult_id: int) -> bool:
    """Queue behind another first join of the call still in progress (one that has not
    committed its new session yet), so that the two share one session instead of opening
    two. Not for ever: a process stalled in the middle of its join (it holds the consult's
    row) costs this join 2 s, not the whole stall. False: nothing to wait for (SQLite runs
    one writer at a time anyway)."""
    if db.session.get_bind().dialect.name != "postgresql":
        return False
    try:
        with db.session.begin_nested():  # a lock time-out undoes this savepoint only
            db.session.execute(text("SET LOCAL lock_timeout = '2s'"))
            db.session.execute(select(Consult.id).where(Consult.id == consult_id)
                               .with_for_update())
            db.session.execute(text("SET LOCAL lock_timeout = DEFAULT"))
    except OperationalError:
        return False
    return True


def record_join(caller: Caller, profile: str) -> VideoParticipation:
    """Note a (re)join on the consult's current session, opening one if needed."""
    session = active_session(caller.consult_id, lock=True)
    if session is None and _wait_for_a_first_join(caller.consult_id):
        session = active_session(caller.consult_id, lock=True)
    if session is None:
        session = VideoSession(consult_id=caller.consult_id, profile=profile)
        db.session.add(session)
        db.session.flush()
    _close_participations(session, caller.participant_id, "rejoined")
    participation = VideoParticipation(
        session_id=session.id, user_id=caller.user_id, invite_id=caller.invite_id,
        display_name=caller.display_name, profile=profile)
    db.session.add(participation)
    db.session.flush()
    record("video.joined", consult_id=caller.consult_id, obj=session, actor_id=caller.user_id,
           participant=caller.participant_id, profile=profile)
    return participation


def _close_participations(session: VideoSession, participant_id: str, reason: str) -> None:
    now = clock.now()
    for p in session.participations:
        if p.participant_id == participant_id and p.left_at is None:
            p.left_at, p.left_reason = now, reason


def record_leave(consult_id: int, participant_id: str, reason: str) -> None:
    """Note that a participant left (or was dropped)."""
    session = active_session(consult_id, lock=True)
    if session is not None:
        _close_participations(session, participant_id, reason)


def set_profile(consult_id: int, participant_id: str, profile: str) -> None:
    """Remember the profile a participant is now using."""
    session = active_session(consult_id, lock=True)
    if session is None:
        return
    for p in session.participations:
        if p.left_at is None and p.participant_id == participant_id:
            p.profile = profile


def end_session(consult_id: int) -> VideoSession | None:
    """Close the consult's call: the session ends and every invite link expires."""
    session = active_session(consult_id, lock=True)
    now = clock.now()
    if session is not None:
        session.ended_at = now
        for p in session.participations:
            if p.left_at is None:
                p.left_at, p.left_reason = now, "ended"
        record("video.ended", consult_id=consult_id, obj=session,
               duration_seconds=session.duration_seconds)
    for invite in db.session.scalars(select(VideoInvite).where(
            VideoInvite.consult_id == consult_id, VideoInvite.expires_at > now)):
        invite.expires_at = now
    return session


def add_chat(caller: Caller, body: object) -> CallMessage:
    """Save a chat line on the consult's current session."""
    if not isinstance(body, str) or not body.strip():
        raise InvalidInput(_("The message is empty."))
    if len(body) > MAX_CHAT_CHARS:
        raise InvalidInput(_("A message can have at most %(n)d characters.", n=MAX_CHAT_CHARS))
    session = active_session(caller.consult_id)
    if session is None:
        raise InvalidInput(_("The call has ended."))
    message = CallMessage(session_id=session.id, user_id=caller.user_id,
                          author_name=caller.display_name, body=body.strip())
    db.session.add(message)
    db.session.flush()
    return message


def sessions_for(consult: Consult) -> list[VideoSession]:
    """The consult's calls, oldest first, for the case page."""
    return list(db.session.scalars(select(VideoSession).where(
        VideoSession.consult_id == consult.id).order_by(VideoSession.id)))


def propose_time(consult: Consult, actor: User, starts_at: datetime) -> CallProposal:
    """Propose a call time (stored in UTC)."""
    if not can_call(actor, consult):
        raise PermissionDenied(_("Only the call's participants can propose a time."))
    if starts_at.tzinfo is None:
        raise InvalidInput(_("The time has no time zone."))
    if starts_at <= clock.now():
        raise InvalidInput(_("Propose a time in the future."))
    proposal = CallProposal(consult_id=consult.id, proposed_by_id=actor.id, starts_at=starts_at)
    db.session.add(proposal)
    db.session.flush()
    record("video.time_proposed", consult_id=consult.id, obj=proposal)
    _tell_about_time(proposal, consult, actor)
    return proposal


def proposals_for(consult: Consult) -> list[CallProposal]:
    """The consult's proposed and agreed call times (not the withdrawn ones), earliest first."""
    return list(db.session.scalars(select(CallProposal).where(
        CallProposal.consult_id == consult.id,
        CallProposal.status != ProposalStatus.WITHDRAWN).order_by(CallProposal.starts_at)))


def get_proposal(consult: Consult, proposal_id: int) -> CallProposal:
    """One of this consult's proposed times, or NotFound."""
    proposal = db.session.get(CallProposal, proposal_id)
    if proposal is None or proposal.consult_id != consult.id:
        raise NotFound(_("No such proposed time."))
    return proposal


def call_side(user: User) -> str:
    """The side of the consult a call member is on: the specialist's or the clinic's."""
    return "specialist" if user.role == Role.SPECIALIST else "clinic"


def _may_set_proposal(proposal: CallProposal, consult: Consult, actor: User,
                      to: ProposalStatus) -> bool:
    """The other side accepts a time; the side that proposed it withdraws it."""
    if not can_call(actor, consult):
        return False
    same_side = call_side(actor) == call_side(proposal.proposed_by)
    return same_side if to == ProposalStatus.WITHDRAWN else not same_side


PROPOSAL_ACTIONS = {"accept": ProposalStatus.ACCEPTED, "withdraw": ProposalStatus.WITHDRAWN}


def proposal_actions(proposal: CallProposal, consult: Consult, actor: User) -> list[str]:
    """What this user may do with a proposed time now ("accept", "withdraw")."""
    passed = proposal.starts_at <= clock.now()
    return [action for action, to in PROPOSAL_ACTIONS.items()
            if to in PROPOSAL_TRANSITIONS.get(proposal.status, ())
            and not (passed and to == ProposalStatus.ACCEPTED)
            and _may_set_proposal(proposal, consult, actor, to)]


def set_proposal_status(proposal: CallProposal, consult: Consult, actor: User,
                        action: str) -> None:
    """Accept (the other side) or withdraw (the proposing side) a proposed call time."""
    to = PROPOSAL_ACTIONS[action]
    if not _may_set_proposal(proposal, consult, actor, to):
        raise PermissionDenied(_("The other side accepts a proposed time; the side that "
                                 "proposed it can withdraw it."))
    if to not in PROPOSAL_TRANSITIONS[known(proposal.status)]:
        raise Conflict(_("This time has already been accepted or withdrawn."))
    if to == ProposalStatus.ACCEPTED and proposal.starts_at <= clock.now():
        raise Conflict(_("This time has passed; propose a new one."))
    proposal.status = to
    record(f"video.time_{to.value}", consult_id=consult.id, obj=proposal)
    _tell_about_time(proposal, consult, actor)


def call_members(consult: Consult) -> list[User]:
    """The active users who may be in the consult's call (see is_call_member)."""
    candidates = db.session.scalars(select(User).where(
        User.active.is_(True),
        or_(and_(User.role == Role.CLINICIAN, User.clinic_id == consult.clinic_id),
            User.id == consult.specialist_id)).order_by(User.id))
    return [user for user in candidates if is_call_member(user, consult)]


# Live event name per proposal status: what the other people on the call hear.
TIME_EVENTS = {ProposalStatus.PROPOSED: "call.proposed", ProposalStatus.ACCEPTED: "call.agreed",
               ProposalStatus.WITHDRAWN: "call.withdrawn"}


def _time_subject(status: ProposalStatus, ref: str) -> str:
    if status == ProposalStatus.ACCEPTED:
        return _("Call time agreed for consult %(ref)s", ref=ref)
    if status == ProposalStatus.WITHDRAWN:
        return _("Proposed call time withdrawn for consult %(ref)s", ref=ref)
    return _("New call time proposed for consult %(ref)s", ref=ref)


def _time_body(status: ProposalStatus, name: str, ref: str, time: str, url: str) -> str:
    if status == ProposalStatus.ACCEPTED:
        return _("%(name)s accepted the video call on consult %(ref)s for %(time)s: %(url)s",
                 name=name, ref=ref, time=time, url=url)
    if status == ProposalStatus.WITHDRAWN:
        return _("%(name)s withdrew the video call proposed on consult %(ref)s for %(time)s: "
                 "%(url)s", name=name, ref=ref, time=time, url=url)
    return _("%(name)s proposes a video call on consult %(ref)s for %(time)s. Accept it or "
             "propose another time: %(url)s", name=name, ref=ref, time=time, url=url)


def _tell_about_time(proposal: CallProposal, consult: Consult, actor: User) -> None:
    """Tell everyone else on the call that a time was proposed, agreed or withdrawn.

    Each person reads the time in their own zone and language; notify() queues it and
    delivers only once the change has committed. The proposer is always among them when
    the other side accepts; the colleagues of either side hear too, as they may take the call.
    """
    status = proposal.status
    url = consult_url(consult) + "#call"
    payload = {"consult_id": consult.id, "reference": consult.reference,
               "specialty": consult.specialty.name, "proposal_id": proposal.id,
               "status": status.value, "by": actor.name,
               "url": consult_url(consult, external=False) + "#call"}
    for person in call_members(consult):
        if person.id == actor.id:
            continue
        locale = person.locale or current_app.config["BABEL_DEFAULT_LOCALE"]
        time = local_call_time(proposal.starts_at, locale, person.timezone or "UTC")
        with in_language_of(person):
            notify(person, TIME_EVENTS[status], payload | {"time": time},
                   subject=_time_subject(status, consult.reference),
                   body=_time_body(status, actor.name, consult.reference, time, url))


@dataclass(frozen=True)
class JoinWindow:
    """Whether "Join call" shows on a consult now, and the next agreed call time."""

    open: bool
    in_progress: bool
    next_agreed: datetime | None


def join_window(consult: Consult, early: timedelta, late: timedelta) -> JoinWindow:
    """Open from `early` before an agreed time to `late` after it, or while a call is on.

    Only agreed (accepted) times open it: a time one side merely proposed may never happen.
    """
    now = clock.now()
    in_progress = active_session(consult.id) is not None
    coming = [p.starts_at for p in proposals_for(consult)
              if p.status == ProposalStatus.ACCEPTED and p.starts_at + late > now]
    near = any(starts_at - early <= now for starts_at in coming)
    return JoinWindow(open=in_progress or near, in_progress=in_progress,
                      next_agreed=min(coming, default=None))
