"""Managing the roster, one module per responsibility; this module names them all.

access (who manages it), profiles, availability (hours and leave), credentials,
invitations (accounts and password links) and reports (the roster page, the load report).
"""

from __future__ import annotations

from telehealth.i18n.services import check_timezone
from telehealth.roster.access import (
    is_roster_manager,
    require_roster_manager,
)
from telehealth.roster.availability import (
    WEEKDAYS,
    add_leave,
    format_windows,
    parse_windows,
    remove_leave,
    set_windows,
)
from telehealth.roster.credentials import (
    CredentialInput,
    credential_flag,
    update_credential,
    verify_credential,
)
from telehealth.roster.invitations import (
    PasswordLink,
    count_waiting_for_a_link,
    create_password_link,
    find_invite,
    has_password,
    invite_specialist,
    live_password_link,
    mail_configured,
    recipient_language,
    set_password,
    sign_up,
    specialists_waiting_for_a_link,
)
from telehealth.roster.profiles import (
    ProfileInput,
    apply_status_action,
    assignable_specialists,
    credential_status_label,
    format_languages,
    get_profile,
    get_specialist,
    parse_languages,
    profile_status_label,
    set_status,
    specialist_by_email,
    update_profile,
)
from telehealth.roster.reports import (
    LoadReport,
    LoadRow,
    RosterFilters,
    ensure_profiles,
    load_report,
    open_load_subquery,
    roster_page,
    roster_query,
)

__all__ = [
    "CredentialInput",
    "LoadReport",
    "LoadRow",
    "PasswordLink",
    "ProfileInput",
    "RosterFilters",
    "WEEKDAYS",
    "add_leave",
    "apply_status_action",
    "check_timezone",
    "count_waiting_for_a_link",
    "create_password_link",
    "credential_flag",
    "credential_status_label",
    "ensure_profiles",
    "find_invite",
    "format_languages",
    "format_windows",
    "get_profile",
    "get_specialist",
    "has_password",
    "invite_specialist",
    "is_roster_manager",
    "live_password_link",
    "load_report",
    "mail_configured",
    "open_load_subquery",
    "parse_languages",
    "parse_windows",
    "profile_status_label",
    "assignable_specialists",
    "specialist_by_email",
    "recipient_language",
    "remove_leave",
    "require_roster_manager",
    "roster_page",
    "roster_query",
    "set_password",
    "set_status",
    "set_windows",
    "sign_up",
    "specialists_waiting_for_a_link",
    "update_credential",
    "update_profile",
    "verify_credential",
]
