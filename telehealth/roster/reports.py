"""The roster page's query and the load report for coordinators."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import selectinload

from telehealth import clock
from telehealth.accounts.models import Role, User, UserLanguage, user_specialties
from telehealth.consults.models import Consult, ConsultStatus
from telehealth.extensions import db
from telehealth.pagination import DEFAULT_PAGE_SIZE, Page, keyset_page
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
    return query


def roster_page(filters: RosterFilters, cursor: str | None = None,
                size: int = DEFAULT_PAGE_SIZE) -> Page[Any]:
    """One page of the roster by name: (user, profile, open consults) rows, with each user's
    specialties and languages loaded in one statement each."""
    query = roster_query(filters).options(selectinload(User.specialties),
                                          selectinload(User.languages))
    return keyset_page(query, (User.name, User.id), cursor, size, scalars=False,
                       key_of=lambda row: (row[0].name, row[0].id))


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
    next_cursor: str | None = None


def _load_counts_query() -> Any:
    """Consults accepted per specialist in the last 30 and 90 days (only those with some)."""
    now = clock.now()
    since_30, since_90 = now - timedelta(days=30), now - timedelta(days=90)
    return (
        # count(*): the (accepted_at, specialist_id) index answers it alone (index-only).
        select(Consult.specialist_id.label("user_id"),
               func.count().filter(Consult.accepted_at >= since_30).label("last_30"),
               func.count().label("last_90"))
        .where(Consult.specialist_id.is_not(None), Consult.accepted_at >= since_90)
        .group_by(Consult.specialist_id)
    )


def load_report(cursor: str | None = None, size: int = DEFAULT_PAGE_SIZE) -> LoadReport:
    """Each specialist's consults in the last 30 and 90 days, busiest first, one page at a
    time, and the busiest 10%'s share of the 90 days computed in SQL.

    Specialists without a consult in 90 days are counted (for the 10%) but not listed.
    """
    specialists = db.session.scalar(select(func.count(User.id)).where(
        User.role == Role.SPECIALIST)) or 0
    busiest = max(1, -(-specialists // 10)) if specialists else 0  # ceil(10%)
    # One statement: the 90 days are aggregated once (a CTE read three times, which
    # PostgreSQL materialises once) for the page, the total and the busiest 10%'s sum; two
    # statements aggregated them twice, and that aggregate is what grows with the consults.
    summary = _load_counts_query().cte("load_counts")
    ranked = select(summary.c.last_90).order_by(summary.c.last_90.desc()).limit(busiest)
    total_90 = select(func.coalesce(func.sum(summary.c.last_90), 0)).scalar_subquery()
    top_90 = select(func.coalesce(func.sum(ranked.subquery().c.last_90), 0)).scalar_subquery()
    page = keyset_page(select(summary, total_90.label("total_90"), top_90.label("top_90")),
                       (summary.c.last_90, summary.c.user_id), cursor, size,
                       descending=True, scalars=False)
    if page.items:
        total, top = page.items[0].total_90, page.items[0].top_90
    else:  # past the last page (or nobody busy): the sums alone
        total, top = db.session.execute(select(total_90, top_90)).one()
    # Then the names of the page's specialists only (by primary key).
    names = dict(db.session.execute(select(User.id, User.name).where(
        User.id.in_([r.user_id for r in page.items]))).tuples().all())
    rows = [LoadRow(user_id=r.user_id, name=names.get(r.user_id, ""),
                    last_30=int(r.last_30 or 0), last_90=int(r.last_90 or 0))
            for r in page.items]
    return LoadReport(rows=rows, total_90=int(total), busiest_count=busiest,
                      busiest_share=(int(top) / int(total)) if total else 0.0,
                      next_cursor=page.next_cursor)
