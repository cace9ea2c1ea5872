"""Answers as other clients write them, tidied into what aiortc applies (video/answers.py)."""

from __future__ import annotations

import pytest

from telehealth.video.answers import (
    MAX_CANDIDATES,
    AnswerRefused,
    candidate_count,
    candidate_problem,
    is_mdns_candidate,
    tidy_answer,
)

OFFER = "\r\n".join([
    "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
    "m=audio 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", "a=mid:0", "a=recvonly",
    "a=rtcp-mux", "a=rtpmap:96 opus/48000/2",
    "m=video 9 UDP/TLS/RTP/SAVPF 97 98", "c=IN IP4 0.0.0.0", "a=mid:1", "a=sendonly",
    "a=rtcp-mux", "a=rtpmap:97 VP8/90000", "a=rtcp-fb:97 nack", "a=rtpmap:98 rtx/90000",
    "a=fmtp:98 apt=97", ""])
TRANSPORT = ["a=ice-ufrag:abcd", "a=ice-pwd:0123456789abcdefghijkl",
             "a=fingerprint:sha-256 AA:BB", "a=setup:active"]
AUDIO = ["m=audio 9 UDP/TLS/RTP/SAVPF 96", "c=IN IP4 0.0.0.0", "a=mid:0", "a=sendonly",
         *TRANSPORT, "a=rtcp-mux", "a=rtpmap:96 opus/48000/2"]
VIDEO = ["m=video 9 UDP/TLS/RTP/SAVPF 97", "c=IN IP4 0.0.0.0", "a=mid:1", "a=recvonly",
         "a=rtcp-mux", "a=rtpmap:97 VP8/90000"]
HEAD = ["v=0", "o=- 2 2 IN IP4 0.0.0.0", "s=-", "t=0 0"]


def answer(*sections: list[str], head: list[str] | None = None, end: str = "\r\n") -> str:
    lines = [*(head or [*HEAD, "a=group:BUNDLE 0 1"]), *(x for s in sections for x in s)]
    return end.join(lines) + end


def section(sdp: str, mid: str) -> list[str]:
    lines = sdp.split("\r\n")
    start = max(i for i, line in enumerate(lines) if line.startswith("m=")
                and f"a=mid:{mid}" in lines[i:i + 8])
    stop = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("m=")),
                len(lines))
    return lines[start:stop]


def test_bare_newlines_and_stray_spaces_become_crlf_lines() -> None:
    sdp = answer(AUDIO, [*VIDEO, *TRANSPORT], end=" \n")
    tidied = tidy_answer(sdp, OFFER)
    assert tidied == answer(AUDIO, [*VIDEO, *TRANSPORT])


def test_a_declined_m_line_becomes_inactive_with_our_codecs_and_the_shared_transport() -> None:
    declined = ["m=video 0 UDP/TLS/RTP/SAVPF 102", "c=IN IP4 0.0.0.0", "a=mid:1",
                "a=inactive", "a=rtpmap:102 H264/90000"]
    tidied = tidy_answer(answer(AUDIO, declined, head=[*HEAD, "a=group:BUNDLE 0"]), OFFER)
    video = section(tidied, "1")
    assert video[0] == "m=video 9 UDP/TLS/RTP/SAVPF 97 98"
    assert "a=inactive" in video and "a=rtcp-mux" in video and "a=mid:1" in video
    assert all(line in video for line in TRANSPORT)
    assert "a=rtpmap:97 VP8/90000" in video and not any("H264" in x for x in video)


def test_a_bundled_m_line_without_transport_attributes_gets_the_tagged_ones() -> None:
    video = section(tidy_answer(answer(AUDIO, VIDEO), OFFER), "1")
    assert all(line in video for line in TRANSPORT)
    assert "a=recvonly" in video


def test_mdns_candidates_are_left_out_and_others_kept() -> None:
    candidates = ["a=candidate:1 1 udp 2122260223 0b1c2d3e-aaaa.local 54400 typ host",
                  "a=candidate:2 1 udp 1686052607 198.51.100.7 54400 typ srflx "
                  "raddr 0.0.0.0 rport 0"]
    tidied = tidy_answer(answer([*AUDIO, *candidates], VIDEO), OFFER)
    assert ".local" not in tidied and candidates[1] in tidied
    assert is_mdns_candidate("candidate:1 1 udp 1 AB-cd.LOCAL 9 typ host")
    assert not is_mdns_candidate("candidate:1 1 udp 1 192.0.2.1 9 typ host")
    assert not is_mdns_candidate("candidate:%%")


@pytest.mark.parametrize(("sections", "reason"), [
    ([], "no media section"),
    ([AUDIO], "1 media sections for the offer's 2"),
    ([AUDIO, VIDEO, ["m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:2"]],
     "decline one with port 0"),
    ([["m=audio 0 UDP/TLS/RTP/SAVPF 0", "a=mid:0"], ["m=video 0 RTP/AVP 0", "a=mid:1"]],
     "declines every media section"),
])
def test_answers_nothing_can_mend_are_refused_with_the_reason(
        sections: list[list[str]], reason: str) -> None:
    with pytest.raises(AnswerRefused, match=reason):
        tidy_answer(answer(*sections), OFFER)


@pytest.mark.parametrize(("candidate", "problem"), [
    ("candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host", None),
    ("candidate:2 1 UDP 1686052607 2001:db8::7 54400 typ srflx raddr :: rport 0 "
     "generation 0 network-cost 999", None),
    ("candidate:3 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active", None),
    ("candidate:4 1 udp 1 example.com 5000 typ host", "not an IP address"),
    ("candidate:5 1 udp 1 192.0.2.1 70000 typ host", "port"),
    ("candidate:6 1 udp 1 192.0.2.1 0 typ host", "port"),
    ("candidate:7 1 udp 1 192.0.2.1 9 host", "not valid"),
    ("candidate:x", "not valid"),
])
def test_candidates_must_be_an_ip_address_and_a_port(candidate: str,
                                                     problem: str | None) -> None:
    found = candidate_problem(candidate.removeprefix("candidate:"))
    assert found is None if problem is None else problem in (found or ""), found


def test_unusable_candidates_are_left_out_of_an_answer() -> None:
    lines = ["a=candidate:1 1 udp 1 example.com 5000 typ host",
             "a=candidate:2 1 udp 1 192.0.2.1 70000 typ host",
             "a=candidate:3 1 udp 1 192.0.2.1 5000 typ host"]
    tidied = tidy_answer(answer([*AUDIO, *lines], VIDEO), OFFER)
    assert lines[2] in tidied and lines[0] not in tidied and lines[1] not in tidied


def test_an_answer_keeps_at_most_max_candidates() -> None:
    lines = [f"a=candidate:{n} 1 udp 1 192.0.2.1 {5000 + n} typ host" for n in range(100)]
    tidied = tidy_answer(answer([*AUDIO, *lines], VIDEO), OFFER)
    assert candidate_count(tidied) == MAX_CANDIDATES
    assert lines[0] in tidied and lines[MAX_CANDIDATES] not in tidied
