"""The catalogs are complete, match the sources, and compile; the checker catches gaps."""

from __future__ import annotations

import gettext
import io
import shutil

import pytest
from babel.messages.pofile import write_po

from telehealth.i18n import catalogs

TRANSLATED = ["fr", "es", "pt", "ar", "sw"]


@pytest.fixture(scope="module")
def template():
    """One extraction of the sources for the module (it takes about a second)."""
    return catalogs.extracted_template()


def test_every_language_has_a_catalog():
    assert catalogs.languages() == sorted(TRANSLATED)


def test_catalogs_are_complete_and_match_the_sources(template):
    problems = catalogs.check(template)
    assert not problems, "\n".join(p.summary() for p in problems) + (
        "\nRun `flask --app wsgi translate update`, fill in the entries, and check again.")


@pytest.mark.parametrize("language", TRANSLATED)
def test_catalog_compiles(language):
    path = catalogs.TRANSLATIONS_DIR / language / "LC_MESSAGES" / "messages.po"
    compiled = catalogs.compile_to_bytes(path, language)
    translations = gettext.GNUTranslations(io.BytesIO(compiled))
    assert translations.gettext("Sign out") not in ("", "Sign out")


def test_arabic_has_six_plural_forms():
    path = catalogs.TRANSLATIONS_DIR / "ar" / "LC_MESSAGES" / "messages.po"
    catalog = catalogs.read_catalog(path, "ar")
    assert catalog.num_plurals == 6
    compiled = gettext.GNUTranslations(io.BytesIO(catalogs.compile_to_bytes(path, "ar")))
    forms = {n: compiled.ngettext("%(num)d year", "%(num)d years", n) % {"num": n}
             for n in (0, 1, 2, 3, 11, 100)}
    assert len(set(forms.values())) == 6, forms
    assert forms[2] == "سنتان"


def test_the_checker_finds_every_kind_of_gap(template, tmp_path):
    shutil.copytree(catalogs.TRANSLATIONS_DIR / "fr", tmp_path / "fr",
                    ignore=shutil.ignore_patterns("*.mo"))
    path = tmp_path / "fr" / "LC_MESSAGES" / "messages.po"
    catalog = catalogs.read_catalog(path, "fr")
    catalog["Sign out"].string = ""
    catalog["Sign in"].flags.add("fuzzy")
    catalog["Dashboard"].string = "Tableau de bord de %(name)s"
    catalog.delete("Save")
    with path.open("wb") as fh:
        write_po(fh, catalog)
    bigger = catalogs.read_catalog(path, "fr")
    bigger.add("A message added by another branch")

    template.add("A message added by another branch")
    try:
        [found] = catalogs.check(template, tmp_path)
    finally:
        template.delete("A message added by another branch")
    assert found.untranslated == ["Sign out"]
    assert found.fuzzy == ["Sign in"]
    assert found.broken_placeholders == ["Dashboard"]
    assert set(found.missing) == {"Save", "A message added by another branch"}


def test_compiling_a_broken_catalog_fails(tmp_path):
    catalog = catalogs.read_catalog(
        catalogs.TRANSLATIONS_DIR / "fr" / "LC_MESSAGES" / "messages.po", "fr")
    catalog["%(num)d year"].string = ("%(num)d an", "%(num)d ans", "trois")
    catalog["Consults of %(clinic)s"].string = "Consultations de %(centre)s"
    path = tmp_path / "messages.po"
    with path.open("wb") as fh:
        write_po(fh, catalog)
    with pytest.raises(ValueError, match="clinic"):
        catalogs.compile_to_bytes(path, "fr")
    # The command that `make translations` runs fails too.
    (tmp_path / "fr" / "LC_MESSAGES").mkdir(parents=True)
    path.rename(tmp_path / "fr" / "LC_MESSAGES" / "messages.po")
    with pytest.raises(catalogs.CatalogError):
        catalogs.compile_catalogs(tmp_path)


def test_translate_commands(app, tmp_path, monkeypatch):
    """`translate compile` and `check` run from the command line."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["translate", "compile"])
    assert result.exit_code == 0, result.output
    assert "fr" in result.output
    result = runner.invoke(args=["translate", "check"])
    assert result.exit_code == 0, result.output
    assert "complete" in result.output


def test_update_brings_new_messages_in_empty_never_fuzzy(template, tmp_path):
    """After a merge, `translate update` adds the new messages for translators to fill in."""
    shutil.copytree(catalogs.TRANSLATIONS_DIR / "es", tmp_path / "es",
                    ignore=shutil.ignore_patterns("*.mo"))
    path = tmp_path / "es" / "LC_MESSAGES" / "messages.po"
    catalog = catalogs.read_catalog(path, "es")
    catalog.delete("Sign in")  # as if another branch had just added it
    catalog.delete(("%(num)d year", "%(num)d years"))
    with path.open("wb") as fh:
        write_po(fh, catalog)

    assert catalogs.update(tmp_path) == ["es"]
    [found] = catalogs.check(template, tmp_path)
    assert sorted(found.untranslated) == ["%(num)d year", "Sign in"]
    assert found.fuzzy == [] and found.missing == []
    # Nothing already translated was touched.
    assert catalogs.read_catalog(path, "es")["Sign out"].string == "Cerrar sesión"
