"""People who use Telehealth: users, their roles, specialties and languages."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime
from typing import TYPE_CHECKING

from flask_babel import lazy_gettext as _l
from flask_login import UserMixin
from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    false,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from telehealth import clock
from telehealth.crypto import Sealed
from telehealth.db_types import EncryptedString, UTCDateTime, string_enum
from telehealth.extensions import Model, db

if TYPE_CHECKING:
    from telehealth.clinics.models import Clinic


class Role(enum.StrEnum):
    CLINICIAN = "clinician"
    SPECIALIST = "specialist"
    COORDINATOR = "coordinator"
    ADMIN = "admin"
    # An epidemiologist: counts, alerts and de-identified line lists of their areas only.
    SURVEILLANCE_OFFICER = "surveillance_officer"


def _new_session_token() -> str:
    return secrets.token_urlsafe(24)


user_specialties = Table(
    "user_specialties",
    db.metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "specialty_id", Integer, ForeignKey("specialties.id", ondelete="CASCADE"), primary_key=True
    ),
)


# The specialties a deployment starts with (`seed-demo`), named in the reader's language.
# One an administrator adds later keeps the name it was given.
SPECIALTY_NAMES = {
    "cardiology": _l("Cardiology"),
    "dermatology": _l("Dermatology"),
    "emergency": _l("Emergency medicine"),
    "infectious": _l("Infectious diseases"),
    "internal": _l("Internal medicine"),
    "neurology": _l("Neurology"),
    "obstetrics": _l("Obstetrics and gynaecology"),
    "orthopaedics": _l("Orthopaedics"),
    "paediatrics": _l("Paediatrics"),
    "psychiatry": _l("Psychiatry"),
    "radiology": _l("Radiology"),
    "surgery": _l("General surgery"),
}


class Specialty(Model):
    __tablename__ = "specialties"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    stored_name: Mapped[str] = mapped_column("name", String(120))

    # Every page that shows `specialty.name` shows it translated; queries still order and
    # filter by the stored column.
    @hybrid_property
    def name(self) -> str:
        """The specialty's name in the reader's language when it is a known one."""
        label = SPECIALTY_NAMES.get(self.code)
        return str(label) if label is not None else self.stored_name

    @name.inplace.setter
    def _name_setter(self, value: str) -> None:
        self.stored_name = value

    @name.inplace.expression
    @classmethod
    def _name_expression(cls) -> ColumnElement[str]:
        return cls.stored_name.expression

    def __repr__(self) -> str:
        return f"<Specialty {self.code}>"


class UserLanguage(Model):
    """A language a user reads and writes, with how well (1 basic .. 3 fluent/native)."""

    __tablename__ = "user_languages"
    __table_args__ = (UniqueConstraint("user_id", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    language: Mapped[str] = mapped_column(String(12), index=True)
    level: Mapped[int] = mapped_column(default=3)


class User(UserMixin, Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(string_enum(Role), index=True)
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id"), index=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    locale: Mapped[str | None] = mapped_column(String(12))
    active: Mapped[bool] = mapped_column(default=True)
    # Granted by coordinators: sees the translation queue of the languages they read.
    is_translator: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Part of the login cookie: replacing it ends every session of this user at once.
    session_token: Mapped[str] = mapped_column(String(64), default=_new_session_token)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Optional second factor (RFC 6238); the last time step used refuses a replayed code.
    # Encrypted at rest: a database dump or backup does not hand out the second factor.
    totp_secret: Mapped[Sealed | None] = mapped_column(EncryptedString(255))
    totp_last_step: Mapped[int | None]

    clinic: Mapped[Clinic | None] = relationship()
    specialties: Mapped[list[Specialty]] = relationship(
        secondary=user_specialties, order_by=Specialty.name
    )
    languages: Mapped[list[UserLanguage]] = relationship(
        cascade="all, delete-orphan", order_by=UserLanguage.language
    )

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    def rotate_session_token(self) -> None:
        """Invalidate every login cookie issued to this user so far."""
        self.session_token = _new_session_token()

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles

    @property
    def language_codes(self) -> list[str]:
        return [lang.language for lang in self.languages]

    def __repr__(self) -> str:
        return f"<User {self.email} {self.role}>"


# Keyset pages of people by name (admin users, the roster), of all roles or one.
Index("ix_users_name_id", User.name, User.id)
Index("ix_users_role_name_id", User.role, User.name, User.id)
