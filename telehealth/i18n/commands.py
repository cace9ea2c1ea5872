"""`flask --app wsgi translate extract|update|compile|init|check`: catalogs for translators."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from telehealth.i18n import catalogs

translate_cli = AppGroup(
    "translate", help="Message catalogs: extract, update, compile, init LANG, check.")


@translate_cli.command()
def extract() -> None:
    """Write translations/messages.pot from the sources and templates."""
    click.echo(f"Extracted to {catalogs.extract()}")


@translate_cli.command()
@click.option("--fuzzy-matching", is_flag=True,
              help="Pre-fill new entries with guesses (marked fuzzy; check fails on them).")
def update(fuzzy_matching: bool) -> None:
    """Extract, then add new messages to every catalog (and drop vanished ones)."""
    done = catalogs.update(fuzzy_matching=fuzzy_matching)
    click.echo(f"Updated: {', '.join(done)}")
    _report(strict=False)


@translate_cli.command("compile")
def compile_command() -> None:
    """Compile every catalog to .mo."""
    try:
        done = catalogs.compile_catalogs()
    except catalogs.CatalogError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Compiled: {', '.join(done)}")


@translate_cli.command()
@click.argument("language")
def init(language: str) -> None:
    """Start the catalog of a new language."""
    click.echo(f"Created {catalogs.init(language)}")


@translate_cli.command()
def check() -> None:
    """List entries to fill in: missing, empty, fuzzy, wrong plurals, broken placeholders."""
    _report(strict=True)


def _report(strict: bool) -> None:
    problems = catalogs.check(catalogs.extracted_template())
    for found in problems:
        click.echo(found.summary())
    if not problems:
        click.echo("Every catalog is complete.")
    elif strict:
        raise click.ClickException("some catalogs are not complete")


def init_app(app: Flask) -> None:
    """Register the `translate` command group."""
    app.cli.add_command(translate_cli)
