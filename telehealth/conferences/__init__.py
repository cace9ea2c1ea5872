"""Case conferences: a specialist hub teaching many clinics at once (Project ECHO model)."""
