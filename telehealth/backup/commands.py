"""`flask --app wsgi backup ARCHIVE` and `flask --app wsgi restore ARCHIVE`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app

from telehealth.audit.checkpoints import (
    CheckpointError,
    Settings,
    check_backup_statement,
    newest_in_file,
    statement_for_backup,
)
from telehealth.audit.services import record
from telehealth.backup.services import BackupError, read_backup, write_backup
from telehealth.boundary import unit_of_work
from telehealth.extensions import db


@click.command("backup")
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
def backup_command(archive: Path) -> None:
    """Write the database and every attachment into one .tar.gz archive."""
    settings = Settings.from_config(current_app.config)
    try:
        # Read before the snapshot: everything this checkpoint covers is in the snapshot.
        newest = newest_in_file(settings)
        summary = write_backup(
            db.engine, Path(current_app.config["UPLOAD_DIR"]), archive,
            sign_head=lambda seq, chain_hash: statement_for_backup(settings, seq, chain_hash))
    except (BackupError, CheckpointError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    if newest is not None and (summary.checkpoint_seq or 0) < newest.seq:
        click.echo(f"WARNING: the audit trail in this backup ends at #{summary.checkpoint_seq} "
                   f"but {newest.label} in {settings.path} covers #{newest.seq}: entries were "
                   "cut off its end; run `flask audit verify`.", err=True)
    click.echo(f"Backup written to {archive}: {sum(summary.tables.values())} rows in "
               f"{len(summary.tables)} tables, {len(summary.files)} files "
               f"(schema {summary.revision}; audit checkpoint at entry "
               f"#{summary.checkpoint_seq}).")


@click.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore_command(archive: Path) -> None:
    """Restore an archive into an empty database (run `db upgrade` first)."""
    settings = Settings.from_config(current_app.config)
    try:
        with unit_of_work():
            summary = read_backup(
                db.session(), Path(current_app.config["UPLOAD_DIR"]), archive,
                check_checkpoint=lambda data: check_backup_statement(data, settings))
            checkpoint = summary.checkpoint
            # The chain goes on from the restored head; this entry's commit is checkpointed.
            record("backup.restored", rows=sum(summary.tables.values()),
                   files=len(summary.files),
                   checkpoint_seq=checkpoint.seq if checkpoint else None,
                   checkpoint_at=checkpoint.at if checkpoint else None)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    if summary.checkpoint is None:
        click.echo("WARNING: the archive carries no audit checkpoint (it was made before "
                   "checkpoints existed): whether audit entries were cut off its end cannot "
                   "be told.", err=True)
    click.echo(f"Restored {sum(summary.tables.values())} rows and {len(summary.files)} files.")


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)
