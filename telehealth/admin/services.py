"""Administration lists: users and clinics, one keyset page at a time."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload, selectinload

from telehealth.accounts.models import Role, User
from telehealth.clinics.models import Clinic
from telehealth.pagination import DEFAULT_PAGE_SIZE, Page, keyset_page


def users_page(role: Role | None = None, text: str = "", cursor: str | None = None,
               size: int = DEFAULT_PAGE_SIZE) -> Page[User]:
    """Users by name, optionally of one role or matching a text, with clinic and specialties."""
    query = select(User).options(joinedload(User.clinic), selectinload(User.specialties))
    if role is not None:
        query = query.where(User.role == role)
    if text.strip():
        like = f"%{text.strip().lower()}%"
        query = query.where(or_(func.lower(User.name).like(like),
                                func.lower(User.email).like(like)))
    return keyset_page(query, (User.name, User.id), cursor, size)


def clinics_page(cursor: str | None = None, size: int = DEFAULT_PAGE_SIZE) -> Page[Clinic]:
    """Clinics by name."""
    return keyset_page(select(Clinic), (Clinic.name, Clinic.id), cursor, size)
