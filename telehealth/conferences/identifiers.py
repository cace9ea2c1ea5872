"""Finding likely patient identifiers in a case text, before anyone else reads it.

Deliberately eager: a false alarm costs the presenter one click ("not an identifier", with a
reason); a missed name costs the patient their privacy. Each finding is (kind, text) so that a
dismissal of one text does not silence a different one of the same kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME = "name"
DATE = "date"
PHONE = "phone"
RECORD = "record"
PLACE = "place"
AGE = "age"
KINDS = (NAME, DATE, PHONE, RECORD, PLACE, AGE)

_MONTHS = (r"jan(?:uary|vier)?|feb(?:ruary)?|f[ée]v(?:rier)?|mar(?:ch|s)?|apr(?:il)?|avr(?:il)?"
           r"|may|mai|june?|juin|july?|juil(?:let)?|aug(?:ust)?|ao[uû]t|sep(?:t(?:ember|embre)?)?"
           r"|oct(?:ober|obre)?|nov(?:ember|embre)?|dec(?:ember)?|d[ée]c(?:embre)?")
_TITLES = r"(?:Mr|Mrs|Ms|Miss|Mme|Mlle|Dr|Sr|Sra|Bw|Bi|Mzee|Madame|Monsieur|Mister)"
_PLACE_WORDS = (r"village|street|road|avenue|quartier|rue|bairro|aldeia|kijiji|mtaa|hamlet"
                r"|estate|compound|lane|cell|colline|localit[ée]|barrio|calle")

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (DATE, re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b|\b\d{4}-\d{1,2}-\d{1,2}\b")),
    (DATE, re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th|er)?\s+(?:{_MONTHS})\.?\s+\d{{4}}\b"
                      rf"|\b(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b",
                      re.IGNORECASE)),
    (PHONE, re.compile(r"(?<![\w/.-])\+?\d(?:[\s().-]?\d){7,14}(?![\w/-])(?!\.\d)")),
    (RECORD, re.compile(r"\b(?:MRN|ID|NIN|NHS|record|dossier|file|registre|ficha|nº|no\.?)"
                        r"\s*(?:number|no\.?|num[ée]ro|#)?\s*[:#]?\s*[A-Z]*-?\d[\w-]{2,}",
                        re.IGNORECASE)),
    (RECORD, re.compile(r"\b[A-Z]{1,4}-?\d{3,}[A-Z\d]*\b")),
    (NAME, re.compile(rf"\b{_TITLES}\.?\s+[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?")),
    (NAME, re.compile(r"\b(?:named|called|nomm[ée]e?|appel[ée]e?|llamad[oa]|chamad[oa]|anaitwa)"
                      r"\s+[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)?")),
    # Two capitalised words in a row inside a sentence ("... seen with Amina Diallo ...").
    (NAME, re.compile(r"(?<=[a-z,;:] )[A-Z][a-z'-]+\s+[A-Z][a-z'-]+")),
    (PLACE, re.compile(rf"\b(?:{_PLACE_WORDS})\s+(?:of\s+|de\s+|du\s+|des\s+)?[A-Z][\w'-]+"
                       rf"|\b[A-Z][\w'-]+\s+(?:{_PLACE_WORDS})\b", re.IGNORECASE)),
    (AGE, re.compile(r"\b(?:9\d|1[0-4]\d)\s*(?:-\s*)?(?:years?|yrs?|y/?o|ans|años|anos|miaka)\b",
                     re.IGNORECASE)),
]


@dataclass(frozen=True)
class Finding:
    kind: str
    text: str


def find_identifiers(text: str, known_names: tuple[str, ...] = ()) -> list[Finding]:
    """Every likely identifier in the text, in order of appearance, each (kind, text) once."""
    hits: list[tuple[int, int, Finding]] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            if kind == PLACE and not any(ch.isupper() for ch in match.group(0)):
                continue  # "the road" is not a place; "Kasika road" is
            hits.append((match.start(), match.end(), Finding(kind, match.group(0).strip())))
    for name in known_names:
        name = name.strip()
        if len(name) >= 3:
            for match in re.finditer(re.escape(name), text, re.IGNORECASE):
                hits.append((match.start(), match.end(), Finding(NAME, match.group(0))))
    seen: set[Finding] = set()
    kept: list[tuple[int, int]] = []
    found = []
    # Longest first at each position, and nothing inside what is already flagged.
    for start, end, finding in sorted(hits, key=lambda hit: (hit[0], -hit[1])):
        if finding in seen or any(a <= start and end <= b for a, b in kept):
            continue
        seen.add(finding)
        kept.append((start, end))
        found.append(finding)
    return found
