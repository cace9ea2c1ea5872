"""Answers from other WebRTC clients, made into what aiortc takes.

The server is always the offerer; any standards-following client may answer (README, "The
call protocol"). aiortc, which applies the answer, is stricter than the standards in a few
places where other clients legitimately differ from our page, so each answer passes here
first:

- Line ends and stray spaces: RFC 4566 asks for CRLF but tells parsers to take a bare LF;
  aiortc takes LF but fails on a trailing space (`c=IN IP4 0.0.0.0 `).
- Declined m-lines (RFC 3264 section 6: port 0): a client with no codec in common (an
  H.264-only bot), or that wants no video, answers port 0, often with no ICE or DTLS
  attributes and codecs of its own. aiortc reads the port as nothing, checks the ICE
  credentials and codecs of every m-line, and would refuse the answer, or else keep
  sending media nobody reads. Such a section becomes an inactive one with the offer's
  codecs and the answer's transport: nothing is sent or expected on it.
- Bundled m-lines without transport attributes (RFC 9143 puts them in the BUNDLE-tagged
  section only): they get the tagged section's, which is the one transport anyway.
- mDNS host candidates (`<uuid>.local`, what browsers write for their private
  addresses): the server cannot resolve a name on the client's network, and aioice would
  try for a second per answer, on a wildcard multicast socket. They are left out; the
  client's own connectivity checks reach the server's candidates (in the offer) and are
  answered as peer-reflexive, which is what mDNS hiding relies on.
- Candidates that are not an IP address and a port (a host name, port 70000): aioice
  sends its checks to whatever is written. On the standard loop a host name is resolved
  inside the send, blocking the media loop (every call of the process), and a port out
  of range is a fatal error that closes the socket of the participant's ICE transport;
  uvloop refuses a name in the check task. They are left out too (a trickled one is
  refused, see `candidate_problem`).
- More than MAX_CANDIDATES candidates: each one is paired with every server candidate
  and checked (STUN requests sent to whatever address it names); a browser gathers a
  handful. The first MAX_CANDIDATES are kept.
"""

from __future__ import annotations

import ipaddress
import re

CRLF = "\r\n"
# Remote candidates one connection takes, from its answer and trickled (see the doc).
MAX_CANDIDATES = 40
# Attributes a bundled m-line shares with the BUNDLE-tagged one (its transport).
TRANSPORT_ATTRIBUTES = ("a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:", "a=setup:",
                        "a=ice-options:")
# What a declined m-line keeps from our offer: its codecs.
CODEC_ATTRIBUTES = ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")
_MEDIA_LINE = re.compile(r"^m=(\w+) (\d+)(/\d+)? (\S+)(.*)$")


class AnswerRefused(ValueError):
    """An answer that cannot be used even after tidying (its reason is said to the client)."""


def is_mdns_candidate(candidate: str) -> bool:
    """Whether an SDP candidate (with or without `a=`/`candidate:`) names an mDNS host."""
    fields = candidate.split()
    return len(fields) > 4 and fields[4].lower().endswith(".local")


def candidate_count(sdp: str) -> int:
    """How many candidates an SDP carries."""
    return sum(1 for line in sdp.splitlines() if line.strip().startswith("a=candidate:"))


def candidate_problem(candidate: str) -> str | None:
    """Why a (non-mDNS) candidate cannot be used: its address is not an IP literal or its
    port is out of range; None when it can."""
    fields = candidate.split()
    if len(fields) < 8 or fields[6] != "typ":
        return "the ICE candidate is not valid"
    try:
        ipaddress.ip_address(fields[4])
    except ValueError:
        return "the ICE candidate's address is not an IP address"
    if not fields[5].isdigit() or not 0 < int(fields[5]) < 65536:
        return "the ICE candidate's port is not valid"
    return None


def _unusable(line: str) -> bool:
    return line.startswith("a=candidate:") and (
        is_mdns_candidate(line) or candidate_problem(line.removeprefix("a=")) is not None)


def split_sections(sdp: str) -> tuple[list[str], list[list[str]]]:
    """Session lines and each media section's lines, stripped, blank lines dropped."""
    session: list[str] = []
    media: list[list[str]] = []
    for raw in sdp.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        else:
            session.append(line)
    return session, media


def _join(session: list[str], media: list[list[str]]) -> str:
    return CRLF.join([*session, *(line for section in media for line in section)]) + CRLF


def _value(section: list[str], prefix: str) -> str | None:
    return next((line[len(prefix):] for line in section if line.startswith(prefix)), None)


def _declined(section: list[str]) -> bool:
    match = _MEDIA_LINE.match(section[0])
    return match is not None and match.group(2) == "0" and "a=bundle-only" not in section


def tidy_answer(answer: str, offer: str) -> str:
    """The client's answer in the form aiortc applies correctly (see the module's doc);
    AnswerRefused when nothing in it can carry media."""
    session, media = split_sections(answer)
    _offer_session, offered = split_sections(offer)
    if not media:
        raise AnswerRefused("the answer has no media section")
    if len(media) != len(offered):
        raise AnswerRefused(f"the answer has {len(media)} media sections for the offer's "
                            f"{len(offered)}; decline one with port 0 instead of leaving it out")
    media = [[line for line in section if not _unusable(line)] for section in media]
    kept = 0
    for section in media:
        for line in [line for line in section if line.startswith("a=candidate:")]:
            kept += 1
            if kept > MAX_CANDIDATES:
                section.remove(line)
    taken = [section for section in media if not _declined(section)]
    if not taken:
        raise AnswerRefused("the answer declines every media section")
    transport = next((section for section in taken if _value(section, "a=ice-ufrag:")),
                     taken[0])
    shared = [line for line in transport if line.startswith(TRANSPORT_ATTRIBUTES)]
    tidied: list[list[str]] = []
    for index, section in enumerate(media):
        ours = offered[index]
        if _declined(section):
            section = _inactive(section, ours, shared)
        elif not _value(section, "a=ice-ufrag:"):
            section = [*section, *shared]  # a bundled section that relies on the tagged one
        tidied.append(section)
    return _join(session, tidied)


def _inactive(section: list[str], ours: list[str], shared: list[str]) -> list[str]:
    """A declined section rewritten as an inactive one: our codecs, the shared transport."""
    match = _MEDIA_LINE.match(ours[0])
    if match is None:
        raise AnswerRefused("the offer has a media line we cannot read")
    kind, _port, _ports, proto, formats = match.groups()
    mid = _value(section, "a=mid:") or _value(ours, "a=mid:") or ""
    return [f"m={kind} 9 {proto}{formats}", "c=IN IP4 0.0.0.0", *shared,
            f"a=mid:{mid}", "a=inactive", "a=rtcp-mux",
            *(line for line in ours if line.startswith(CODEC_ATTRIBUTES))]
