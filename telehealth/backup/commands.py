"""`flask --app wsgi backup ARCHIVE` and `flask --app wsgi restore ARCHIVE`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app

from telehealth.audit.services import record
from telehealth.backup.services import BackupError, read_backup, write_backup
from telehealth.boundary import unit_of_work
from telehealth.extensions import db


@click.command("backup")
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
def backup_command(archive: Path) -> None:
    """Write the database and every attachment into one .tar.gz archive."""
    try:
        summary = write_backup(db.engine, Path(current_app.config["UPLOAD_DIR"]), archive)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Backup written to {archive}: {sum(summary.tables.values())} rows in "
               f"{len(summary.tables)} tables, {len(summary.files)} files "
               f"(schema {summary.revision}).")


@click.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def restore_command(archive: Path) -> None:
    """Restore an archive into an empty database (run `db upgrade` first)."""
    try:
        with unit_of_work():
            summary = read_backup(db.session(), Path(current_app.config["UPLOAD_DIR"]), archive)
            record("backup.restored", rows=sum(summary.tables.values()),
                   files=len(summary.files))
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Restored {sum(summary.tables.values())} rows and {len(summary.files)} files.")


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)
