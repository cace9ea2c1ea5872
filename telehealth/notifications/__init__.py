"""Telling people in real time (Socket.IO, a room per user) and by e-mail."""
