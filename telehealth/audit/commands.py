"""`flask --app wsgi audit verify`: check that nobody changed or deleted audit entries."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from telehealth.audit.chain import verify_chain
from telehealth.extensions import db

audit_cli = AppGroup("audit", help="The audit trail.")


@audit_cli.command("verify")
def verify_command() -> None:
    """Check the hash chain of the audit trail; exit 1 if it was tampered with."""
    report = verify_chain(db.session())
    if report.intact:
        click.echo(f"Audit chain intact: {report.entries} entries.")
        return
    for problem in report.problems:
        click.echo(f"TAMPERED: {problem}", err=True)
    raise click.ClickException(
        f"the audit chain is broken ({len(report.problems)} problems in {report.entries} entries)"
    )


def init_app(app: Flask) -> None:
    """Register the `audit` command group."""
    app.cli.add_command(audit_cli)
