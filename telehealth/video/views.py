"""Call pages: the call itself, guest invites, proposed times, the pre-call check."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required

from telehealth import clock
from telehealth.boundary import on_refusal
from telehealth.consults.models import Consult
from telehealth.consults.services import get_visible_consult
from telehealth.errors import InvalidInput, PermissionDenied
from telehealth.extensions import db
from telehealth.security.headers import allow_for_this_page
from telehealth.validation import check_timezone
from telehealth.video import services
from telehealth.video.directory import connect_sources, socket_origins
from telehealth.video.forms import InviteForm, ProposalActionForm, ProposeForm
from telehealth.video.hub import get_hub
from telehealth.video.probe import ProbeError, ProbeLimits, probes_for
from telehealth.video.profiles import DEFAULT_PROFILE, PROFILES
from telehealth.video.services import GUEST_SESSION_KEY
from telehealth.video.turn import ice_servers
from telehealth.web import error_response

bp = Blueprint("video", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/video")

# Bytes the pre-call check sends each way through the probe connection: enough to get past
# the data channel's slow start, small enough to take about 4 s on a 256 kbps link.
BURST_BYTES = 128 * 1024


def _call_consult_for_viewer(consult_id: int) -> tuple[Consult, services.Caller]:
    user = current_user._get_current_object() if current_user.is_authenticated else None
    # The same refusal, word for word, for a made-up id and for a consult this reader may not
    # read (services.caller_for).
    caller = services.caller_for(user, session.get(GUEST_SESSION_KEY), consult_id)
    consult = db.session.get(Consult, caller.consult_id)
    assert consult is not None  # caller_for found it
    return consult, caller


@bp.route("/consults/<int:consult_id>/call")
def call(consult_id: int) -> Any:
    if not current_user.is_authenticated and not session.get(GUEST_SESSION_KEY):
        return redirect(url_for("accounts.login", next=request.path))
    consult, caller = _call_consult_for_viewer(consult_id)
    profile = request.args.get("profile", DEFAULT_PROFILE)
    if profile not in PROFILES:
        profile = DEFAULT_PROFILE
    # Every participant's socket goes to the node that holds the call's media; the call may
    # move to another node while the page is open (see `where`).
    socket_url = get_hub().socket_url(consult.id)
    for url in (socket_url, *(socket_origins(current_app.config) or [])):
        if url:
            allow_for_this_page("connect-src", connect_sources(url))
    return render_template("video/call.html", consult=consult, caller=caller, profile=profile,
                           profiles=PROFILES, invite_form=InviteForm(), socket_url=socket_url)


@bp.route("/consults/<int:consult_id>/call/where")
def where(consult_id: int) -> Any:
    """Where the call page opens its socket now (JSON), after it lost its socket or was
    told the call moved: the node that holds the call, claimed for this one if nobody does."""
    if not current_user.is_authenticated and not session.get(GUEST_SESSION_KEY):
        return error_response(401, _("Your session has ended; please sign in again."))
    consult, _caller = _call_consult_for_viewer(consult_id)
    return jsonify({"socket_url": get_hub().socket_url(consult.id) or ""})


@bp.route("/consults/<int:consult_id>/call/invites", methods=["POST"])
@login_required
def invite(consult_id: int) -> Any:
    consult = get_visible_consult(current_user, consult_id)
    if not services.can_call(current_user, consult):  # access first, then the form
        raise PermissionDenied(_("Only the call's participants can invite a guest."))
    form = InviteForm()
    if not form.validate_on_submit():
        flash(_("Give the guest's name."), "error")
        return redirect(url_for("video.call", consult_id=consult.id)), 303
    invite, token = services.create_invite(consult, current_user, form.guest_name.data or "")
    link = url_for("video.redeem", token=token, _external=True)
    return render_template("video/invite_created.html", consult=consult, invite=invite,
                           link=link)


@bp.route("/call/invite/<token>")
def redeem(token: str) -> Any:
    if len(token) > 100:
        abort(404)
    invite = services.redeem_invite(token)
    session[GUEST_SESSION_KEY] = invite.id
    return redirect(url_for("video.call", consult_id=invite.consult_id))


@bp.route("/consults/<int:consult_id>/call/proposals", methods=["POST"])
@login_required
def propose(consult_id: int) -> Any:
    consult = get_visible_consult(current_user, consult_id)
    if not services.can_call(current_user, consult):  # access first, then the form
        raise PermissionDenied(_("Only the call's participants can propose a time."))
    form = ProposeForm()
    if not form.validate_on_submit() or form.starts_at.data is None:
        flash(_("Give a date and time."), "error")
        return redirect(url_for("consults.detail", consult_id=consult.id)), 303
    # A stored zone gone bad is refused (fix it in the preferences), never guessed as UTC.
    local = form.starts_at.data.replace(tzinfo=ZoneInfo(check_timezone(current_user.timezone
                                                                       or "UTC")))
    # A time in the past is refused on the consult's page, next to the call, like an empty one.
    on_refusal(lambda: (redirect(url_for("consults.detail", consult_id=consult.id) + "#call"),
                        303))
    services.propose_time(consult, current_user, local)
    flash(_("The time is proposed."), "success")
    return redirect(url_for("consults.detail", consult_id=consult.id) + "#call"), 303


@bp.route("/consults/<int:consult_id>/call/proposals/<int:proposal_id>/"
          "<any(accept,withdraw):action>", methods=["POST"])
@login_required
def answer_proposal(consult_id: int, proposal_id: int, action: str) -> Any:
    consult = get_visible_consult(current_user, consult_id)
    if not services.can_call(current_user, consult):  # access first, then the proposal
        raise PermissionDenied(_("Only the call's participants can answer a proposed time."))
    proposal = services.get_proposal(consult, proposal_id)
    if not ProposalActionForm().validate_on_submit():
        abort(400)
    services.set_proposal_status(proposal, consult, current_user, action)
    flash(_("The call time is agreed.") if action == "accept" else
          _("The proposed time is withdrawn."), "success")
    return redirect(url_for("consults.detail", consult_id=consult.id) + "#call"), 303


@bp.route("/call/check")
@login_required
def check() -> Any:
    hub = get_hub()
    # The same ICE servers and TURN credentials a call hands this user (see events.on_join).
    servers = ice_servers(hub.ice_settings(), f"u{current_user.id}",
                          int(clock.now().timestamp()))
    return render_template("video/check.html", ice_servers=servers, burst_bytes=BURST_BYTES)


@bp.route("/call/check/probe", methods=["POST"])
def probe() -> Any:
    """Answer the pre-call check's offer (one data channel) with a probe connection."""
    if not current_user.is_authenticated:  # JSON for the page's fetch(), not a redirect
        return error_response(401, _("Your session has ended; please sign in again."))
    data = request.get_json(silent=True)
    sdp = data.get("sdp") if isinstance(data, dict) else None
    if not isinstance(sdp, str):
        raise InvalidInput(_("The check did not send a connection offer."))
    hub = get_hub()
    config = current_app.config
    limits = ProbeLimits(timeout_seconds=float(config["VIDEO_PROBE_TIMEOUT"]),
                         per_user=int(config["VIDEO_PROBE_PER_USER"]),
                         total=int(config["VIDEO_PROBE_TOTAL"]))
    try:
        answer = probes_for(hub.engine).open(f"u{current_user.id}", sdp, hub.server_ice(),
                                             limits)
    except ProbeError as exc:
        messages = {
            400: _("The check's connection offer is not valid."),
            429: _("Your other checks are still running; wait a moment and try again."),
            503: _("The media server is busy; try the check again in a minute."),
        }
        return error_response(exc.status, messages[exc.status])
    return jsonify({"type": "answer", "sdp": answer.sdp, "id": answer.id})


@bp.app_context_processor
def call_helpers() -> dict[str, Any]:
    def video_call_panel(consult: Consult) -> dict[str, Any]:
        user = current_user
        member = bool(user.is_authenticated and services.can_call(user, consult))
        config = current_app.config
        early = timedelta(minutes=config["VIDEO_JOIN_EARLY_MINUTES"])
        proposals = services.proposals_for(consult)
        return {
            "can_call": member,
            "window": services.join_window(
                consult, early, timedelta(minutes=config["VIDEO_JOIN_LATE_MINUTES"]))
            if member else None,
            "early_minutes": config["VIDEO_JOIN_EARLY_MINUTES"],
            "sessions": services.sessions_for(consult),
            "proposals": [(p, services.proposal_actions(p, consult, user) if member else [])
                          for p in proposals],
            "propose_form": ProposeForm() if member else None,
            "action_form": ProposalActionForm() if member else None,
        }

    return {"video_call_panel": video_call_panel}


