"""The roster page's query and the load report for coordinators."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select

from telehealth import clock
from telehealth.accounts.models import Role, User, UserLanguage, user_specialties
from telehealth.consults.models import Consult, ConsultStatus
from telehealth.extensions import db
from telehealth.roster.models import (
    EXPIRY_WARNING_DAYS,
    ProfileStatus,
    SpecialistProfile,
)


@dataclass
class RosterFilters:
    text: str = ""
    specialty_id: int | None = None
    language: str = ""
    status: str = ""
    load: str = ""  # "free" (no open consult), "busy" (some), "full" (at capacity)


def open_load_subquery() -> Any:
    return (select(func.count(Consult.id))
            .where(Consult.specialist_id == User.id, Consult.status == ConsultStatus.ACCEPTED)
            .correlate(User).scalar_subquery())


def roster_query(filters: RosterFilters) -> Select[Any]:
    """Specialists with their profile and open load, filtered in SQL."""
    load = open_load_subquery().label("open_consults")
    query = (select(User, SpecialistProfile, load)
             .join(SpecialistProfile, SpecialistProfile.user_id == User.id)
             .where(User.role == Role.SPECIALIST))
    if filters.text:
        like = f"%{filters.text.strip().lower()}%"
        query = query.where(or_(func.lower(User.name).like(like),
                                func.lower(User.email).like(like),
                                func.lower(SpecialistProfile.subspecialty).like(like)))
    if filters.specialty_id:
        query = query.where(select(user_specialties.c.user_id).where(
            user_specialties.c.user_id == User.id,
            user_specialties.c.specialty_id == filters.specialty_id).exists())
    if filters.language:
        query = query.where(select(UserLanguage.id).where(
            UserLanguage.user_id == User.id,
            UserLanguage.language == filters.language.strip().lower()).exists())
    if filters.status in {s.value for s in ProfileStatus}:
        query = query.where(SpecialistProfile.status == ProfileStatus(filters.status))
    elif filters.status in ("expiring", "expired"):
        today = clock.now().date()
        if filters.status == "expired":
            query = query.where(SpecialistProfile.licence_expires_on < today)
        else:
            query = query.where(SpecialistProfile.licence_expires_on >= today,
                                SpecialistProfile.licence_expires_on <=
                                today + timedelta(days=EXPIRY_WARNING_DAYS))
    raw_load = open_load_subquery()
    if filters.load == "free":
        query = query.where(raw_load == 0)
    elif filters.load == "busy":
        query = query.where(raw_load > 0, raw_load < SpecialistProfile.capacity)
    elif filters.load == "full":
        query = query.where(raw_load >= SpecialistProfile.capacity)
    return query.order_by(User.name, User.id)


def ensure_profiles() -> None:
    """Give every specialist account a roster profile (accounts made before the roster)."""
    missing = select(User.id).where(User.role == Role.SPECIALIST, ~select(
        SpecialistProfile.id).where(SpecialistProfile.user_id == User.id).exists())
    for user_id in db.session.scalars(missing):
        db.session.add(SpecialistProfile(user_id=user_id, status=ProfileStatus.PENDING))
    db.session.flush()


# ---------------------------------------------------------------- load report


@dataclass
class LoadRow:
    user_id: int
    name: str
    last_30: int
    last_90: int


@dataclass
class LoadReport:
    rows: list[LoadRow]
    total_90: int
    busiest_count: int
    busiest_share: float  # 0..1 of the last 90 days' consults done by the busiest 10%


def load_report() -> LoadReport:
    """Each specialist's consults in the last 30 and 90 days, and the busiest 10%'s share."""
    now = clock.now()
    since_30, since_90 = now - timedelta(days=30), now - timedelta(days=90)
    counts = (
        select(Consult.specialist_id.label("user_id"),
               func.count(Consult.id).filter(Consult.accepted_at >= since_30).label("last_30"),
               func.count(Consult.id).label("last_90"))
        .where(Consult.specialist_id.is_not(None), Consult.accepted_at >= since_90)
        .group_by(Consult.specialist_id)
        .subquery()
    )
    rows = [
        LoadRow(user_id=r.id, name=r.name, last_30=int(r.last_30 or 0),
                last_90=int(r.last_90 or 0))
        for r in db.session.execute(
            select(User.id, User.name, counts.c.last_30, counts.c.last_90)
            .outerjoin(counts, counts.c.user_id == User.id)
            .where(User.role == Role.SPECIALIST)
            .order_by(func.coalesce(counts.c.last_90, 0).desc(), User.name)
        )
    ]
    total = sum(r.last_90 for r in rows)
    busiest = max(1, -(-len(rows) // 10)) if rows else 0  # ceil(10%)
    share = (sum(r.last_90 for r in rows[:busiest]) / total) if total else 0.0
    return LoadReport(rows=rows, total_90=total, busiest_count=busiest, busiest_share=share)
