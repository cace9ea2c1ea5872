"""`flask --app wsgi audit verify`: check that nobody changed, deleted or cut off audit entries.

`flask --app wsgi audit checkpoint` writes a checkpoint of the chain's head at once.
"""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from telehealth.audit.chain import HEAD_ID, ChainReport, verify_chain
from telehealth.audit.checkpoints import CheckpointError, Settings, append
from telehealth.audit.models import AuditChainHead
from telehealth.audit.verify import verify_trail
from telehealth.extensions import db

audit_cli = AppGroup("audit", help="The audit trail.")


def _checked(copies: tuple[Path, ...], *, chain_only: bool = False
             ) -> tuple[ChainReport, Settings]:
    """Run the check; whatever goes wrong becomes a message, never a traceback."""
    settings = Settings.from_config(current_app.config)
    try:
        if chain_only:
            return verify_chain(db.session()), settings
        return verify_trail(db.session(), settings, copies), settings
    except SQLAlchemyError as exc:
        raise click.ClickException(f"the audit trail cannot be read: {exc}") from exc
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - an operator needs a sentence, not a traceback
        raise click.ClickException(f"the audit trail could not be checked: "
                                   f"{type(exc).__name__}: {exc}") from exc


@audit_cli.command("verify")
@click.option("--checkpoints", "copies", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Another copy of the checkpoints to check too (a syslog file, say).")
def verify_command(copies: tuple[Path, ...]) -> None:
    """Check the audit trail against its checkpoints; exit 1 if it was tampered with."""
    report, settings = _checked(copies)
    for warning in report.warnings:
        click.echo(f"WARNING: {warning}", err=True)
    for error in report.errors:
        click.echo(f"CANNOT CHECK: {error}", err=True)
    for problem in report.problems:
        click.echo(f"TAMPERED: {problem}", err=True)
    if not report.intact:
        raise click.ClickException(
            f"the audit trail is broken or cannot be checked ({len(report.problems)} problems "
            f"in {report.entries} entries)")
    newest = report.newest_checkpoint
    anchored = f"; {newest.label} in {settings.path} covers #{newest.seq}" if newest else ""
    click.echo(f"Audit chain intact: {report.entries} entries{anchored}.")


@audit_cli.command("checkpoint")
def checkpoint_command() -> None:
    """Check the trail, then write a checkpoint of its newest entry now (after an upgrade)."""
    # Before the first checkpoint (just after an upgrade) there is only the chain to check.
    settings = Settings.from_config(current_app.config)
    report, _ = _checked((), chain_only=not settings.path.exists())
    if not report.intact:
        raise click.ClickException("the audit trail does not verify (run `audit verify`): a "
                                   "checkpoint now would vouch for it; none written")
    head = db.session.get(AuditChainHead, HEAD_ID)
    if head is None or not head.last_seq:
        click.echo("The audit trail is empty: nothing to checkpoint.")
        return
    try:
        written = append(settings, head.last_seq, head.last_hash)
    except (OSError, CheckpointError) as exc:
        raise click.ClickException(f"no checkpoint written to {settings.path}: {exc}") from exc
    click.echo(f"Checkpoint {written['n']} of entry #{head.last_seq} written to {settings.path}."
               if written else f"{settings.path} already covers entry #{head.last_seq}.")


def init_app(app: Flask) -> None:
    """Register the `audit` command group."""
    app.cli.add_command(audit_cli)
