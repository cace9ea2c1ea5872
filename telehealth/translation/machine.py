"""Optional machine translation: a provider interface and a LibreTranslate-compatible client."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Protocol

from flask import current_app

logger = logging.getLogger(__name__)


class MachineTranslationError(Exception):
    """The provider could not translate (down, refused, or answered nonsense)."""


class MachineTranslator(Protocol):
    def translate(self, text: str, source: str, target: str) -> str:
        """Return the text in the target language."""
        ...


class LibreTranslateProvider:
    """A self-hosted LibreTranslate (or compatible) service: POST {url}/translate."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 20.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def translate(self, text: str, source: str, target: str) -> str:
        payload: dict[str, str] = {"q": text, "source": source.split("-")[0],
                                   "target": target.split("-")[0], "format": "text"}
        if self.api_key:
            payload["api_key"] = self.api_key
        request = urllib.request.Request(
            f"{self.url}/translate", data=json.dumps(payload).encode(), method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = json.loads(response.read().decode("utf-8"))
        except (urllib.error.URLError, TimeoutError, ValueError, OSError) as exc:
            logger.warning("machine translation %s->%s failed: %s", source, target, exc)
            raise MachineTranslationError(str(exc)) from exc
        translated = body.get("translatedText") if isinstance(body, dict) else None
        if not isinstance(translated, str) or not translated.strip():
            raise MachineTranslationError(f"unexpected answer: {str(body)[:200]}")
        return translated


def get_provider() -> MachineTranslator | None:
    """The configured provider, or None: then machine translation is absent from the pages."""
    provider = current_app.extensions.get("machine_translator")
    if provider is not None:
        return provider
    url = current_app.config.get("MACHINE_TRANSLATION_URL")
    if not url:
        return None
    return LibreTranslateProvider(url, current_app.config.get("MACHINE_TRANSLATION_API_KEY"))
