"""`flask --app wsgi surveillance detect`: look at every series again (cron, or the job runner)."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from telehealth.boundary import unit_of_work
from telehealth.surveillance.services import (
    connect_signals,
    ensure_default_syndromes,
    run_detection,
)

group = AppGroup("surveillance", help="Syndromic surveillance.")


@group.command("detect")
def detect_command() -> None:
    """Run every detector on every series; open (and announce) an alert for each new signal."""
    with unit_of_work():
        opened = run_detection()
    click.echo(f"{len(opened)} new alert(s)")


@group.command("syndromes")
def syndromes_command() -> None:
    """Create the built-in syndromes that are missing."""
    with unit_of_work():
        made = ensure_default_syndromes()
    click.echo(f"{len(made)} active syndrome(s)")


def init_app(app: Flask) -> None:
    """The CLI group, and surveillance's signal receivers (blinker's are process-wide)."""
    app.cli.add_command(group)
    connect_signals()
