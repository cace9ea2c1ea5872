"""Sanitising rich text, for the places that allow it (none yet: notes are plain text).

Plain text is escaped by Jinja's autoescape and needs nothing here. A feature that lets people
write formatted text stores what they wrote and renders `sanitize_rich_text(text)|safe`.
"""

from __future__ import annotations

import nh3

ALLOWED_TAGS = {"p", "br", "b", "strong", "i", "em", "ul", "ol", "li", "a", "blockquote",
                "code", "pre"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def sanitize_rich_text(html: str) -> str:
    """Keep simple formatting and links; drop scripts, handlers, styles and other tags."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
