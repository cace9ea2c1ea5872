"""Errors a service raises for a person to read; views turn them into pages or JSON."""

from __future__ import annotations


class ServiceError(Exception):
    """A refusal with a message for the user and the HTTP status that fits it."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServiceError):
    status_code = 400


class PermissionDenied(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    """The action does not fit the object's current state (or somebody was faster)."""

    status_code = 409


class Superseded(Conflict):
    """Somebody else acted first and the object has left this person's hands (a consult
    another specialist took): pages send them back to their dashboard with the message."""


class TooLarge(ServiceError):
    status_code = 413


class Unavailable(ServiceError):
    """A service the action needs is down for a moment; trying again later may work."""

    status_code = 503


class Unprocessable(ServiceError):
    """Input that breaks a form's rules (length, choice, required); `fields` says which."""

    status_code = 422

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}
