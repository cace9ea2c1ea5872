"""Message catalogs under translations/: extract, update, compile, check (wrapping pybabel)."""

from __future__ import annotations

import io
import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.frontend import CommandLineInterface
from babel.messages.pofile import read_po

from telehealth.config import BASE_DIR

BABEL_CFG = BASE_DIR / "babel.cfg"
TRANSLATIONS_DIR = BASE_DIR / "translations"
POT_FILE = TRANSLATIONS_DIR / "messages.pot"
# Keywords beyond pybabel's defaults (_, gettext, ngettext, ...): Flask-Babel's lazy forms.
KEYWORDS = ["_l", "lazy_gettext", "lazy_ngettext:1,2", "N_", "Nn_:1,2"]


class CatalogError(Exception):
    """pybabel reported errors (a catalog that does not compile, a bad template...)."""


def _pybabel(*args: str) -> None:
    """Run one pybabel command in-process (no dependency on PATH); raise on failure."""
    # pybabel logs every file it reads at INFO; keep the command quiet unless it fails.
    logging.getLogger("babel").setLevel(logging.WARNING)
    status = CommandLineInterface().run(["pybabel", "-q", *args])
    if status:
        raise CatalogError(f"pybabel {args[0]} failed (see the errors above)")


def extract(output: Path = POT_FILE) -> Path:
    """Write every message of the sources and templates to a .pot file."""
    output.parent.mkdir(parents=True, exist_ok=True)
    keywords = [arg for kw in KEYWORDS for arg in ("-k", kw)]
    _pybabel("extract", "-F", str(BABEL_CFG), *keywords, "--no-location", "--sort-output",
             "--project", "Telehealth", "-o", str(output), str(BASE_DIR / "telehealth"))
    return output


def languages(directory: Path = TRANSLATIONS_DIR) -> list[str]:
    """The languages that have a catalog."""
    return sorted(p.parent.parent.name for p in directory.glob("*/LC_MESSAGES/messages.po"))


def init(language: str, directory: Path = TRANSLATIONS_DIR) -> Path:
    """Start a catalog for a new language from a fresh extraction."""
    pot = extract()
    _pybabel("init", "-i", str(pot), "-d", str(directory), "-l", language)
    return directory / language / "LC_MESSAGES" / "messages.po"


def update(directory: Path = TRANSLATIONS_DIR, fuzzy_matching: bool = False) -> list[str]:
    """Extract, then merge the new messages into every catalog; return the languages."""
    pot = extract()
    args = ["update", "-i", str(pot), "-d", str(directory), "--ignore-obsolete",
            "--no-wrap"]
    if not fuzzy_matching:
        # A guessed ("fuzzy") translation is a wrong translation until a person checks it.
        args.append("--no-fuzzy-matching")
    _pybabel(*args)
    return languages(directory)


def compile_catalogs(directory: Path = TRANSLATIONS_DIR) -> list[str]:
    """Compile every catalog to .mo next to it; fuzzy entries are left out."""
    _pybabel("compile", "-d", str(directory))
    return languages(directory)


@dataclass
class CatalogProblems:
    """What stops one catalog from being complete."""

    language: str
    missing: list[str] = field(default_factory=list)  # in the sources, not in the catalog
    untranslated: list[str] = field(default_factory=list)
    fuzzy: list[str] = field(default_factory=list)
    wrong_plurals: list[str] = field(default_factory=list)
    broken_placeholders: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.missing, self.untranslated, self.fuzzy, self.wrong_plurals,
                    self.broken_placeholders))

    def summary(self) -> str:
        parts = [f"{name.replace('_', ' ')}: {values!r}" for name, values in vars(self).items()
                 if name != "language" and values]
        return f"{self.language}: " + "; ".join(parts)


def read_catalog(path: Path, language: str | None = None) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=language)


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\(\w+\)[sd]", text))


def _texts(value: object) -> tuple[str, ...]:
    """A message id or string as a tuple of texts (one, or one per plural form)."""
    if isinstance(value, (tuple, list)):
        return tuple(str(v or "") for v in value)
    return (str(value or ""),)


def check(template: Catalog, directory: Path = TRANSLATIONS_DIR) -> list[CatalogProblems]:
    """Compare every catalog with an extraction; return the catalogs that are not complete."""
    problems = []
    for language in languages(directory):
        catalog = read_catalog(directory / language / "LC_MESSAGES" / "messages.po", language)
        found = CatalogProblems(language)
        for message in template:
            if not message.id:
                continue
            sources = _texts(message.id)
            key = sources[0]
            entry = catalog.get(message.id)
            if entry is None:
                found.missing.append(key)
                continue
            strings = _texts(entry.string)
            plural = len(sources) > 1
            if not all(s.strip() for s in strings):
                found.untranslated.append(key)
            if entry.fuzzy:
                found.fuzzy.append(key)
            if plural and len(strings) != catalog.num_plurals:
                found.wrong_plurals.append(key)
            source = set().union(*(_placeholders(m) for m in sources))
            if plural:
                # A plural form may leave the number out ("one year"), never invent a name.
                broken = any(s and not _placeholders(s) <= source for s in strings)
            else:
                broken = bool(strings[0]) and _placeholders(strings[0]) != source
            if broken:
                found.broken_placeholders.append(key)
        if found:
            problems.append(found)
    return problems


def extracted_template() -> Catalog:
    """A fresh extraction, read back as a catalog (written to a scratch file, not the .pot)."""
    with tempfile.TemporaryDirectory() as scratch:
        pot = extract(Path(scratch) / "messages.pot")
        return read_catalog(pot)


def compile_to_bytes(path: Path, language: str) -> bytes:
    """Compile one catalog in memory (raises on a malformed catalog)."""
    from babel.messages.mofile import write_mo

    catalog = read_catalog(path, language)
    errors = [(m.id, e) for m, e in catalog.check()]
    if errors:
        raise ValueError(f"{path}: {errors}")
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()
