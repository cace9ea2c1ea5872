"""Offline language detection of a note (py3langid's model ships inside its package)."""

from __future__ import annotations

from functools import cache
from typing import Any

# The languages of the platform; restricting the model to them avoids look-alike guesses
# (Galician for Portuguese, Catalan for Spanish).
DETECTABLE = ("en", "fr", "es", "pt", "sw", "ar")


@cache
def _identifier(languages: tuple[str, ...]) -> Any:
    # Imported on first use: numpy and the model cost a few hundred ms, not needed at start.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(languages))
    return identifier


def detect_language(text: str, languages: tuple[str, ...] = DETECTABLE) -> str:
    """Return the BCP 47 code of the likeliest language of the text among `languages`."""
    code, _probability = _identifier(languages).classify(text)
    return str(code)
