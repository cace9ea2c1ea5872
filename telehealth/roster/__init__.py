"""The volunteer roster: specialist profiles, credentials, availability, invitations."""
