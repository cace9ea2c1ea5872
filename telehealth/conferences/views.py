"""Case conference pages: series, sessions and agenda, cases, recommendations, attendance."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

import click
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from telehealth import uploads
from telehealth.accounts.models import Role, User
from telehealth.boundary import committed
from telehealth.clinics.models import Clinic
from telehealth.conferences import services
from telehealth.conferences.forms import CaseForm, SeriesForm
from telehealth.conferences.models import HUB_ROLES, MemberRole
from telehealth.conferences.room import get_conference_hub
from telehealth.consults.models import Consult, Sex
from telehealth.consults.services import sex_label
from telehealth.errors import InvalidInput, NotFound
from telehealth.extensions import db
from telehealth.i18n.formatting import local_call_time
from telehealth.security.headers import allow_for_this_page, cache_privately
from telehealth.validation import database_id
from telehealth.video.directory import connect_sources, socket_origins
from telehealth.video.profiles import DEFAULT_PROFILE, PROFILES
from telehealth.web import error_response, wants_json

bp = Blueprint("conferences", __name__, template_folder="templates",
               static_folder="static", url_prefix="/conferences")


def _int(name: str) -> int:
    try:
        return int(request.form.get(name, ""))
    except ValueError:
        raise InvalidInput(_("Enter a whole number.")) from None


def _languages(text: str) -> list[str]:
    return [code for code in text.replace(",", " ").split() if code.isalpha() and len(code) <= 8]


@bp.route("")
@login_required
def index() -> str:
    return render_template("conferences/index.html", series=services.series_for(current_user),
                           can_create=current_user.role in (Role.COORDINATOR, Role.ADMIN))


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new() -> Any:
    if current_user.role not in (Role.COORDINATOR, Role.ADMIN):
        abort(403)
    form = SeriesForm()
    if form.validate_on_submit():
        series = services.create_series(current_user, services.SeriesInput(
            topic=form.topic.data or "", languages=_languages(form.languages.data or ""),
            timezone=(form.timezone.data or "").strip(), weekday=form.weekday.data or 0,
            start=form.start.data or time(0),  # DataRequired: always given here
            duration_minutes=form.duration_minutes.data or 90,
            teaching_minutes=form.teaching_minutes.data or 0,
            case_slots=form.case_slots.data or 0,
            certificate_percent=form.certificate_percent.data or 80))
        return redirect(url_for("conferences.series", series_id=series.id))
    return render_template("conferences/new.html", form=form), 400 if form.errors else 200


@bp.route("/<int:series_id>")
@login_required
def series(series_id: int) -> str:
    found, role = services.get_series(current_user, series_id)
    clinics = db.session.query(Clinic).order_by(Clinic.name).all() \
        if role == MemberRole.COORDINATOR else []
    people = db.session.query(User).filter(User.active.is_(True)).order_by(User.name).all() \
        if role == MemberRole.COORDINATOR else []
    return render_template("conferences/series.html", series=found, role=role,
                           sessions=services.sessions_of(found), clinics=clinics, people=people,
                           members=services.members_of(found), link=request.args.get("link"))


@bp.route("/<int:series_id>/sessions", methods=["POST"])
@login_required
def plan_sessions(series_id: int) -> Response:
    found, _role = services.get_series(current_user, series_id)
    created = services.generate_sessions(found, current_user, _int("weeks"))
    flash(ngettext("%(num)d session planned.", "%(num)d sessions planned.", len(created)),
          "success")
    return redirect(url_for("conferences.series", series_id=found.id))


@bp.route("/<int:series_id>/invitations", methods=["POST"])
@login_required
def invite(series_id: int) -> Response:
    found, _role = services.get_series(current_user, series_id)
    user = db.session.get(User, _int("user_id")) if request.form.get("user_id") else None
    clinic = db.session.get(Clinic, _int("clinic_id")) if request.form.get("clinic_id") else None
    if request.form.get("user_id") and user is None \
            or request.form.get("clinic_id") and clinic is None:
        raise InvalidInput(_("Choose one person or one clinic."))
    _invitation, token = services.create_invitation(found, current_user, user=user,
                                                    clinic=clinic)
    link = url_for("conferences.accept", token=token, _external=True)
    return redirect(url_for("conferences.series", series_id=found.id, link=link))


@bp.route("/join/<token>")
@login_required
def accept(token: str) -> Response:
    found = services.accept_invitation(token, current_user)
    flash(_("You have joined the conference."), "success")
    return redirect(url_for("conferences.series", series_id=found.id))


@bp.route("/sessions/<int:session_id>")
@login_required
def session(session_id: int) -> str:
    found, role = services.get_session(current_user, session_id)
    return render_template(
        "conferences/session.html", session=found, role=role, hub=role in HUB_ROLES,
        agenda=services.agenda(found), cases=services.cases_visible_in(found, current_user),
        consults=services.consults_to_present(current_user),
        attendance=services.attendance_of(found, current_user),
        room_open=services.room_open(found))


@bp.route("/sessions/<int:session_id>/room")
@login_required
def room(session_id: int) -> str:
    """The live room: the session's members see and hear the hub and each other."""
    found, role = services.get_session(current_user, session_id)
    profile = request.args.get("profile", DEFAULT_PROFILE)
    if profile not in PROFILES:
        profile = DEFAULT_PROFILE
    # As for a call: the socket goes to the node that holds the session's room.
    socket_url = get_conference_hub().socket_url(found.id)
    for url in (socket_url, *(socket_origins(current_app.config) or [])):
        if url:
            allow_for_this_page("connect-src", connect_sources(url))
    slides = services.slides_of(found.id)
    return render_template("conferences/room.html", session=found, role=role,
                           moderator=role in HUB_ROLES, profile=profile, socket_url=socket_url,
                           may_present=role in HUB_ROLES
                           or services.presents_case(current_user.id, found.id),
                           slides=slides if role in HUB_ROLES else [],
                           decks=[services.deck_summary(d)
                                  for d in services.decks_shown(found.id, current_user)]
                           if role in HUB_ROLES else [],
                           max_slide_mb=current_app.config["CONFERENCE_SLIDE_MAX_BYTES"]
                           // (1024 * 1024), deck=services.deck_limits())


@bp.route("/sessions/<int:session_id>/room/where")
def room_where(session_id: int) -> Any:
    """Where the room page opens its socket now (JSON, after it lost its socket)."""
    if not current_user.is_authenticated:
        return error_response(401, _("Your session has ended; please sign in again."))
    found, _role = services.get_session(current_user, session_id)
    return jsonify({"socket_url": get_conference_hub().socket_url(found.id) or ""})


@bp.route("/sessions/<int:session_id>/slides", methods=["POST"])
@login_required
def upload_slides(session_id: int) -> Any:
    """A hub member adds slide images or PDF decks (JSON for the room page, a redirect for
    a form). Images are slides at once; a deck's pages come from a job: the page lists the
    deck as being prepared until then."""
    found, _role = services.get_session(current_user, session_id)
    files = [(f.stream, f.filename or "slide") for f in request.files.getlist("slides")
             if f.filename]
    added = services.add_slides(found, current_user, files)
    # The jobs are asked for at commit: commit first, so that the list below is what
    # the page shows (a job run at once under TESTING has finished by then).
    db.session.commit()
    decks = services.decks_shown(found.id, current_user)
    if wants_json():
        return jsonify({"slides": [{"id": s.id, "position": s.position,
                                    "preview_url": url_for("conferences.slide_image",
                                                           slide_id=s.id, size="preview")}
                                   for s in services.slides_of(found.id)],
                        "added": len(added),
                        "decks": [services.deck_summary(d) for d in decks]})
    if added:
        flash(ngettext("%(num)d slide added.", "%(num)d slides added.", len(added)),
              "success")
    return redirect(url_for("conferences.room", session_id=found.id))


@bp.route("/slides/<int:slide_id>/<any(full,preview):size>")
@login_required
def slide_image(slide_id: int, size: str) -> Response:
    slide = services.get_slide(current_user, slide_id)
    name = slide.stored_name if size == "full" else slide.preview_name
    mimetype = slide.content_type if size == "full" else "image/jpeg"
    # A slide never changes under its id: the browser may keep it for the session.
    return cache_privately(send_file(uploads.stored_path(name), mimetype=mimetype), 3600)


@bp.route("/sessions/<int:session_id>/cases/new", methods=["GET", "POST"])
@login_required
def new_case(session_id: int) -> Any:
    found, _role = services.get_session(current_user, session_id)
    consult_id = request.values.get("consult_id", type=database_id)
    mine = services.consults_to_present(current_user)
    if consult_id is None and request.method == "GET":  # first choose which consult
        return render_template("conferences/new_case.html", session=found, consult=None,
                               consults=mine, form=None, images=[])
    consult = db.session.get(Consult, consult_id) if consult_id else None
    if consult is None or consult not in mine:
        raise NotFound(_("No such consult."))
    form = CaseForm()
    if form.validate_on_submit():
        case = services.create_case(found, consult, current_user, services.CaseInput(
            form.history.data or "", form.question.data or "",
            [int(i) for i in request.form.getlist("image_ids") if i.isdigit()]))
        return redirect(url_for("conferences.case", case_id=case.id))
    return render_template("conferences/new_case.html", session=found, consult=consult,
                           form=form, images=services.consult_images(consult)), \
        400 if form.errors else 200


@bp.route("/cases/<int:case_id>", methods=["GET", "POST"])
@login_required
def case(case_id: int) -> Any:
    found, role = services.get_case(current_user, case_id)
    form = CaseForm(obj=found)
    if request.method == "POST":
        if not form.validate_on_submit():
            raise InvalidInput(_("Write the question for the hub."))
        services.update_case(found, current_user, services.CaseInput(
            form.history.data or "", form.question.data or "", []))
        return redirect(url_for("conferences.case", case_id=found.id))
    presenter = found.presenter_id == current_user.id
    return render_template(
        "conferences/case.html", case=found, role=role, form=form, presenter=presenter,
        findings=services.open_findings(found) if presenter or role in HUB_ROLES else [],
        recommendations=services.recommendations_of(found),
        can_recommend=role in HUB_ROLES, can_approve=role == MemberRole.COORDINATOR)


@bp.route("/cases/<int:case_id>/<any(submit, approve, return):action>", methods=["POST"])
@login_required
def case_action(case_id: int, action: str) -> Response:
    found, _role = services.get_case(current_user, case_id)
    {"submit": services.submit_case, "approve": services.approve_case,
     "return": services.return_case}[action](found, current_user)
    return redirect(url_for("conferences.case", case_id=found.id))


@bp.route("/cases/<int:case_id>/dismissals", methods=["POST"])
@login_required
def dismiss(case_id: int) -> Response:
    found, _role = services.get_case(current_user, case_id)
    services.dismiss_finding(found, current_user, request.form.get("kind", ""),
                             request.form.get("text", ""), request.form.get("reason", ""))
    return redirect(url_for("conferences.case", case_id=found.id))


@bp.route("/case-images/<int:image_id>")
@login_required
def case_image(image_id: int) -> Response:
    image = services.get_case_image(current_user, image_id)
    return send_file(uploads.stored_path(image.stored_name), mimetype=image.content_type)


@bp.route("/cases/<int:case_id>/recommendations", methods=["POST"])
@login_required
def recommend(case_id: int) -> Response:
    found, _role = services.get_case(current_user, case_id)
    services.add_recommendation(found, current_user, request.form.get("body", ""),
                                request.form.get("language") or None)
    flash(_("Recommendation sent to the consult."), "success")
    return redirect(url_for("conferences.case", case_id=found.id))


@bp.route("/sessions/<int:session_id>/attendance", methods=["GET", "POST"])
@login_required
def attendance(session_id: int) -> Any:
    found, role = services.get_session(current_user, session_id)
    if role != MemberRole.COORDINATOR:
        abort(403)
    if request.method == "POST":
        person = db.session.get(User, _int("user_id"))
        if person is None:
            raise InvalidInput(_("This person is not in the conference."))
        services.correct_attendance(found, current_user, person, _int("minutes"),
                                    request.form.get("reason", ""))
        flash(_("Attendance corrected."), "success")
        return redirect(url_for("conferences.attendance", session_id=found.id))
    return render_template("conferences/attendance.html", session=found,
                           rows=services.attendance(found),
                           members=services.members_of(found.series))


@bp.route("/sessions/<int:session_id>/certificate")
@login_required
def certificate(session_id: int) -> str:
    found, _role = services.get_session(current_user, session_id)
    row = services.attendance_of(found, current_user)
    if row is None or not row.eligible:
        abort(403)
    return render_template("conferences/certificate.html", session=found, row=row)


@bp.route("/<int:series_id>/attendance.csv")
@login_required
def attendance_csv(series_id: int) -> Response:
    found, _role = services.get_series(current_user, series_id)
    return Response(services.attendance_csv(found, current_user), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f"attachment; filename=attendance-{found.id}.csv"})


CASE_STATUS_LABELS = {"draft": _l("Draft"), "submitted": _l("Submitted to the hub"),
                      "approved": _l("Approved"), "returned": _l("Returned to the presenter")}
IDENTIFIER_LABELS = {"name": _l("Name"), "date": _l("Exact date"), "phone": _l("Phone number"),
                     "record": _l("Record number"), "place": _l("Place smaller than a district"),
                     "age": _l("Age over 89")}


@bp.app_context_processor
def conference_labels() -> dict[str, Any]:
    return {"case_status_label": lambda status: CASE_STATUS_LABELS[status.value],
            "identifier_label": lambda kind: IDENTIFIER_LABELS.get(kind, kind),
            "case_sex_label": lambda sex: sex_label(Sex(sex))}


@bp.app_template_filter("meeting_time")
def meeting_time(value: datetime) -> str:
    """Weekday, date, time and city in the reader's own zone and language."""
    zone = current_user.timezone if current_user.is_authenticated else "UTC"
    return local_call_time(value, str(get_locale() or "en"), zone or "UTC")


@bp.cli.command("remind")
@committed
def remind_command() -> None:
    """Remind every member of the sessions starting within a day (run it from cron hourly)."""
    sent = services.send_reminders()
    click.echo(f"{sent} reminders sent")
