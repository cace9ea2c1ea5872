"""`flask --app wsgi security rotate-secrets` and `flask --app wsgi security new-data-key`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from telehealth import crypto
from telehealth.boundary import unit_of_work
from telehealth.security import services

security_cli = AppGroup("security", help="Keys for the secrets kept encrypted at rest.")


@security_cli.command("rotate-secrets")
def rotate_secrets_command() -> None:
    """Re-encrypt every stored secret under the current data key."""
    with unit_of_work():  # what could be re-encrypted is kept even if some could not
        result = services.rotate_secrets()
    click.echo(f"Re-encrypted {result.resealed} secrets under the current data key.")
    if result.unreadable:
        raise click.ClickException(
            f"{len(result.unreadable)} secrets open with no configured key and were left as "
            "they were (add the key they were encrypted with to TELEHEALTH_DATA_OLD_KEYS and "
            "run this again): " + ", ".join(result.unreadable[:20]))
    click.echo("Keys in TELEHEALTH_DATA_OLD_KEYS are no longer needed.")


@security_cli.command("new-data-key")
def new_data_key_command() -> None:
    """Print a fresh key for TELEHEALTH_DATA_KEY."""
    click.echo(crypto.new_data_key())


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(security_cli)
