"""Roster pages: the list, profiles, credentials, invitations, CSV, the load report."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    make_response,
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
from sqlalchemy import select

from telehealth import clock, uploads
from telehealth.accounts.models import Specialty
from telehealth.boundary import on_refusal
from telehealth.errors import InvalidInput, NotFound, PermissionDenied
from telehealth.extensions import db
from telehealth.pagination import page_size_from_request
from telehealth.roster import csvio, services
from telehealth.roster.forms import (
    CredentialForm,
    ImportForm,
    InviteForm,
    LeaveForm,
    ProfileForm,
    SetPasswordForm,
    SignUpForm,
)
from telehealth.roster.models import Invite, ProfileStatus

bp = Blueprint("roster", __name__, template_folder="templates")

STATUS_MESSAGES = {"approve": _l("The specialist is approved."),
                   "suspend": _l("The specialist is suspended."),
                   "reactivate": _l("The specialist is active again.")}


def _specialties() -> list[Specialty]:
    return list(db.session.scalars(select(Specialty).order_by(Specialty.name)))


def _can_see_profile(user_id: int) -> None:
    if not (services.is_roster_manager(current_user) or current_user.id == user_id):
        raise PermissionDenied(_("Only coordinators manage the roster."))


@bp.route("/roster")
@login_required
def index() -> str:
    services.require_roster_manager(current_user)
    services.ensure_profiles()
    args = request.args
    try:
        specialty_id = int(args["specialty"]) if args.get("specialty") else None
    except ValueError as exc:
        raise InvalidInput(_("Choose a specialty from the list.")) from exc
    filters = services.RosterFilters(text=args.get("q", "")[:100], specialty_id=specialty_id,
                                     language=args.get("language", "")[:12],
                                     status=args.get("status", ""), load=args.get("load", ""))
    page = services.roster_page(filters, args.get("cursor"), page_size_from_request())
    return render_template("roster/index.html", rows=page.items, page=page, filters=filters,
                           waiting=services.count_waiting_for_a_link(),
                           specialties=_specialties(), flag=services.credential_flag,
                           status_label=services.profile_status_label,
                           credential_label=services.credential_status_label,
                           ProfileStatus=ProfileStatus)


def _profile_page(user_id: int, status: int = 200, **forms: Any) -> Any:
    user = services.get_specialist(user_id)
    profile = services.get_profile(user)
    profile_form = forms.get("profile_form") or ProfileForm(formdata=None, data={
        "name": user.name, "timezone": user.timezone, "subspecialty": profile.subspecialty,
        "languages": services.format_languages(user), "capacity": profile.capacity,
        "specialties": [str(s.id) for s in user.specialties],
        "availability": services.format_windows(profile.windows, str(get_locale())),
    })
    profile_form.specialties.choices = [(str(s.id), s.name) for s in _specialties()]
    credential_form = forms.get("credential_form") or CredentialForm(formdata=None, data={
        "licence_number": profile.licence_number, "licence_body": profile.licence_body,
        "licence_country": profile.licence_country, "expires_on": profile.licence_expires_on})
    return render_template(
        "roster/profile.html", user=user, profile=profile, profile_form=profile_form,
        credential_form=credential_form, leave_form=forms.get("leave_form") or LeaveForm(
            formdata=None), flag=services.credential_flag(profile),
        status_label=services.profile_status_label,
        credential_label=services.credential_status_label,
        is_manager=services.is_roster_manager(current_user), ProfileStatus=ProfileStatus,
        now=clock.now(), has_password=services.has_password(user),
        password_link=services.live_password_link(user),
    ), status


@bp.route("/roster/<int:user_id>")
@login_required
def profile(user_id: int) -> Any:
    _can_see_profile(user_id)
    response = _profile_page(user_id)
    return response


@bp.route("/roster/<int:user_id>/profile", methods=["POST"])
@login_required
def save_profile(user_id: int) -> Any:
    _can_see_profile(user_id)
    user = services.get_specialist(user_id)
    form = ProfileForm()
    form.specialties.choices = [(str(s.id), s.name) for s in _specialties()]
    if not form.validate_on_submit():
        flash(_("Please correct the marked fields."), "error")
        return _profile_page(user_id, 400, profile_form=form)
    on_refusal(lambda: _profile_page(user_id, profile_form=form))
    chosen = {int(v) for v in form.specialties.data or []}
    data = services.ProfileInput(
        name=form.name.data or "", timezone=form.timezone.data or "",
        subspecialty=form.subspecialty.data or "", capacity=int(form.capacity.data or 0),
        specialties=[s for s in _specialties() if s.id in chosen],
        languages=services.parse_languages(form.languages.data or ""))
    windows = services.parse_windows(form.availability.data or "")
    services.update_profile(user, data, current_user)
    services.set_windows(user, windows, current_user)
    flash(_("The profile is saved."), "success")
    return redirect(url_for("roster.profile", user_id=user_id))


@bp.route("/roster/<int:user_id>/credential", methods=["POST"])
@login_required
def save_credential(user_id: int) -> Any:
    _can_see_profile(user_id)
    user = services.get_specialist(user_id)
    form = CredentialForm()
    if not form.validate_on_submit():
        flash(_("Please correct the marked fields."), "error")
        return _profile_page(user_id, 400, credential_form=form)
    upload = form.document.data
    on_refusal(lambda: _profile_page(user_id, credential_form=form))
    services.update_credential(
        user, services.CredentialInput(
            licence_number=form.licence_number.data or "",
            licence_body=form.licence_body.data or "",
            licence_country=form.licence_country.data or "",
            expires_on=form.expires_on.data),
        upload.stream if upload and upload.filename else None,
        (upload.filename or "") if upload else "", current_user)
    flash(_("The licence is saved; a coordinator will verify it."), "success")
    return redirect(url_for("roster.profile", user_id=user_id))


@bp.route("/roster/<int:user_id>/credential/document")
@login_required
def credential_document(user_id: int) -> Response:
    _can_see_profile(user_id)
    profile = services.get_profile(services.get_specialist(user_id))
    if not profile.document_stored_name:
        raise NotFound(_("No licence document has been uploaded."))
    response = send_file(uploads.stored_path(profile.document_stored_name), as_attachment=True,
                         download_name=profile.document_name or "licence", max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/roster/<int:user_id>/credential/<any(verify,reject):decision>", methods=["POST"])
@login_required
def verify_credential(user_id: int, decision: str) -> Any:
    services.require_roster_manager(current_user)
    profile = services.get_profile(services.get_specialist(user_id))
    services.verify_credential(profile, current_user, accept=decision == "verify")
    flash(_("The licence is verified.") if decision == "verify" else
          _("The licence is rejected."), "success")
    return redirect(url_for("roster.profile", user_id=user_id))


@bp.route("/roster/<int:user_id>/<any(approve,suspend,reactivate):action>", methods=["POST"])
@login_required
def change_status(user_id: int, action: str) -> Any:
    services.require_roster_manager(current_user)
    profile = services.get_profile(services.get_specialist(user_id))
    services.apply_status_action(profile, action, current_user)
    flash(str(STATUS_MESSAGES[action]), "success")
    return redirect(url_for("roster.profile", user_id=user_id))


@bp.route("/roster/<int:user_id>/leave", methods=["POST"])
@login_required
def add_leave(user_id: int) -> Any:
    _can_see_profile(user_id)
    user = services.get_specialist(user_id)
    form = LeaveForm()
    if not form.validate_on_submit():
        flash(_("Give the first and last day of the leave."), "error")
        return _profile_page(user_id, 400, leave_form=form)
    on_refusal(lambda: _profile_page(user_id, leave_form=form))  # dates kept, reason shown
    services.add_leave(user, form.first_day.data, form.last_day.data,
                       form.reason.data or "", current_user)
    flash(_("The leave is recorded."), "success")
    return redirect(url_for("roster.profile", user_id=user_id))


@bp.route("/roster/leave/<int:leave_id>/delete", methods=["POST"])
@login_required
def remove_leave(leave_id: int) -> Any:
    user_id = services.remove_leave(leave_id, current_user)
    flash(_("The leave is removed."), "success")
    return redirect(url_for("roster.profile", user_id=user_id))


@bp.route("/roster/invite", methods=["GET", "POST"])
@login_required
def invite() -> Any:
    services.require_roster_manager(current_user)
    form = InviteForm()
    link = None
    if form.validate_on_submit():
        on_refusal(lambda: render_template("roster/invite.html", form=form, link=None))
        invitation, token = services.invite_specialist(form.email.data or "", current_user)
        link = url_for("roster.sign_up", token=token, _external=True)
        flash(_("Send this link to %(email)s; it works once, until %(when)s.",
                email=invitation.email, when=invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC")),
              "success")
    elif form.is_submitted():
        return render_template("roster/invite.html", form=form, link=None), 400
    return render_template("roster/invite.html", form=form, link=link)


@bp.route("/signup/<token>", methods=["GET", "POST"])
def sign_up(token: str) -> Any:
    # Public by design: the one-time token is the access check.
    invitation = services.find_invite(token)
    if invitation.user_id is not None:
        return _set_password(token, invitation)
    form = SignUpForm()
    form.specialties.choices = [(str(s.id), s.name) for s in _specialties()]
    if form.validate_on_submit():
        chosen = {int(v) for v in form.specialties.data or []}
        on_refusal(lambda: render_template("roster/signup.html", form=form, invite=invitation))
        services.sign_up(token, form.name.data or "", form.password.data or "",
                         form.timezone.data or "",
                         services.parse_languages(form.languages.data or ""),
                         [s for s in _specialties() if s.id in chosen])
        flash(_("Your account is created. A coordinator will approve it; you can sign in now "
                "to add your licence and availability."), "success")
        return redirect(url_for("accounts.login"))
    status = 400 if form.is_submitted() else 200
    return render_template("roster/signup.html", form=form, invite=invitation), status


def _set_password(token: str, invitation: Invite) -> Any:
    """The sign-up page for an account that exists (an imported one): choose a password."""
    user = services.get_specialist(invitation.user_id or 0)
    form = SetPasswordForm(data={"name": user.name, "timezone": user.timezone})
    if form.validate_on_submit():
        on_refusal(lambda: render_template("roster/set_password.html", form=form, user=user))
        services.set_password(token, form.name.data or "", form.password.data or "",
                              form.timezone.data or "")
        flash(_("Your password is set; sign in with %(email)s.", email=user.email), "success")
        return redirect(url_for("accounts.login"))
    status = 400 if form.is_submitted() else 200
    return render_template("roster/set_password.html", form=form, user=user), status


def _link_for(token: str) -> str:
    return url_for("roster.sign_up", token=token, _external=True)


def _handed_out(links: list[services.PasswordLink], back: str) -> Any:
    """Say the links were e-mailed, or show them for the coordinator to pass on."""
    if all(link.emailed for link in links):
        flash(ngettext("The set-password link was e-mailed.",
                       "%(num)d set-password links were e-mailed.", len(links)), "success")
        return redirect(back)
    response = make_response(render_template("roster/password_links.html", links=links,
                                              back=back))
    response.headers["Cache-Control"] = "private, no-store"  # the links are passwords for now
    return response


@bp.route("/roster/<int:user_id>/password-link", methods=["POST"])
@login_required
def password_link(user_id: int) -> Any:
    services.require_roster_manager(current_user)
    user = services.get_specialist(user_id)
    back = url_for("roster.profile", user_id=user_id)
    on_refusal(lambda: redirect(back))
    link = services.create_password_link(user, current_user, _link_for)
    return _handed_out([link], back)


@bp.route("/roster/password-links", methods=["POST"])
@login_required
def password_links() -> Any:
    services.require_roster_manager(current_user)
    waiting = services.specialists_waiting_for_a_link()
    if not waiting:
        flash(_("Every specialist has a password or an unused link to set one."), "success")
        return redirect(url_for("roster.index"))
    links = [services.create_password_link(user, current_user, _link_for) for user in waiting]
    return _handed_out(links, url_for("roster.index"))


@bp.route("/roster/export.csv")
@login_required
def export() -> Response:
    services.require_roster_manager(current_user)
    services.ensure_profiles()
    return Response(csvio.export_csv(), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=roster.csv"})


@bp.route("/roster/import", methods=["GET", "POST"])
@login_required
def import_roster() -> Any:
    services.require_roster_manager(current_user)
    form = ImportForm()
    if not form.is_submitted():
        return render_template("roster/import.html", form=form, errors=[])
    upload = form.file.data if form.validate_on_submit() else None
    if not upload or not upload.filename:
        flash(_("Choose a CSV file."), "error")
        return render_template("roster/import.html", form=form, errors=[]), 400
    try:
        text = upload.stream.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        flash(_("The file is not UTF-8 text; save it as CSV UTF-8."), "error")
        return render_template("roster/import.html", form=form, errors=[]), 400
    try:
        created, updated = csvio.import_csv(text, current_user)
    except csvio.ImportFailed as exc:
        # Not on_refusal: this page lists every bad line, which only this refusal carries.
        db.session.rollback()
        flash(exc.message, "error")
        return render_template("roster/import.html", form=form, errors=exc.errors), 400
    flash(_("Imported: %(created)d new, %(updated)d updated.", created=created, updated=updated),
          "success")
    return redirect(url_for("roster.index"))


@bp.route("/roster/load")
@login_required
def load() -> str:
    services.require_roster_manager(current_user)
    return render_template("roster/load.html", report=services.load_report(
        request.args.get("cursor"), page_size_from_request()))
