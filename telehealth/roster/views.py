"""Roster pages (placeholder while being written)."""

from flask import Blueprint

bp = Blueprint("roster", __name__, template_folder="templates")
