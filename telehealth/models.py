"""Every feature's models, imported in one place so metadata (and Alembic) sees them all."""

from telehealth.accounts.models import Role, Specialty, User, UserLanguage, user_specialties
from telehealth.audit.models import AuditChainHead, AuditEvent
from telehealth.clinics.models import Clinic
from telehealth.conferences.models import (
    AttendanceCorrection,
    AttendanceEvent,
    ConferenceCase,
    ConferenceCaseImage,
    ConferenceInvitation,
    ConferenceMember,
    ConferenceSeries,
    ConferenceSession,
    IdentifierDismissal,
    Recommendation,
)
from telehealth.consults.models import Attachment, Consult
from telehealth.diagnoses.models import ConsultDiagnosis
from telehealth.matching.models import Offer
from telehealth.notes.models import Note, NoteRevision
from telehealth.notifications.models import OutboxMessage
from telehealth.places.models import Area
from telehealth.roster.models import (
    AvailabilityWindow,
    Invite,
    LeavePeriod,
    SpecialistProfile,
)
from telehealth.security.models import SignInAttempt
from telehealth.surveillance.models import (
    Alert,
    AlertNote,
    OfficerArea,
    ShareLink,
    Syndrome,
    WeeklyCount,
    WeeklyReport,
)
from telehealth.translation.models import NoteTranslation, TranslationRequest
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
    "ConsultDiagnosis", "NoteTranslation", "TranslationRequest",
    "AuditChainHead", "SignInAttempt",
    "AvailabilityWindow", "Invite", "LeavePeriod", "SpecialistProfile",
    "CallMessage", "CallProposal", "VideoInvite", "VideoParticipation", "VideoSession",
    "OutboxMessage",
    "Area", "Alert", "AlertNote", "OfficerArea", "ShareLink", "Syndrome", "WeeklyCount",
    "WeeklyReport",
    "AttendanceCorrection", "AttendanceEvent", "ConferenceCase", "ConferenceCaseImage",
    "ConferenceInvitation", "ConferenceMember", "ConferenceSeries", "ConferenceSession",
    "IdentifierDismissal", "Recommendation",
]
