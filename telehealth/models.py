"""Every feature's models, imported in one place so metadata (and Alembic) sees them all."""

from telehealth.accounts.models import Role, Specialty, User, UserLanguage, user_specialties
from telehealth.audit.models import AuditEvent
from telehealth.clinics.models import Clinic
from telehealth.consults.models import Attachment, Consult
from telehealth.matching.models import Offer
from telehealth.notes.models import Note, NoteRevision
from telehealth.video.models import (
    CallMessage,
    CallProposal,
    VideoInvite,
    VideoParticipation,
    VideoSession,
)

__all__ = [
    "Attachment", "AuditEvent", "Clinic", "Consult", "Note", "NoteRevision", "Offer", "Role",
    "Specialty", "User", "UserLanguage", "user_specialties",
    "CallMessage", "CallProposal", "VideoInvite", "VideoParticipation", "VideoSession",
]
