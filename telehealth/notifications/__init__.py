"""Telling people: live events (Socket.IO, a room per user) and e-mail, through the outbox."""
