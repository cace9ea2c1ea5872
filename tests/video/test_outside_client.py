"""An independent WebRTC client, written from docs/call-protocol.md only.

It uses aiortc's standard API as any WebRTC stack would (setRemoteDescription of the
server's offer, addTrack, createAnswer), not the mids or the transceiver handling of our
own page (tests/video/peers.py), and answers the way other clients do: audio only, video
only, receive only, rejecting the video m-lines, trickling its candidates (with
end-of-candidates and mDNS names), SDP with bare \\n line ends and attributes our page never
writes. Each variant either works, media flowing both ways with a participant of our own,
or gets a clear `call_error`; none leaves a peer connection behind or harms the other side.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy
from flask import Flask

from telehealth.extensions import db
from telehealth.video.hub import get_hub
from tests.conftest import PASSWORD
from tests.video.conftest import SignalClient
from tests.video.media import ColourTrack, Received, ToneTrack, close_peer, consume
from tests.video.peers import CallPeer
from tests.video.test_call import until

SdpEdit = Callable[[str], str]


class OutsideClient:
    """A client that knows the protocol's documentation and nothing else of ours."""

    def __init__(self, signal: SignalClient, colour: str = "green", audio: bool = True,
                 video: bool = True) -> None:
        self.signal = signal
        self.tracks: list[MediaStreamTrack] = []
        if audio:
            self.tracks.append(ToneTrack())
        if video:
            self.tracks.append(ColourTrack(colour))
        self.pc: RTCPeerConnection | None = None
        self.received: dict[str, Received] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.offer: dict[str, Any] = {}
        self.participant_id = ""

    async def join(self, consult_id: int) -> dict[str, Any]:
        """Send `join`, wait for the server's offer, set it on a fresh peer connection."""
        self.signal.emit("join", {"consult_id": consult_id})
        self.offer = await self.signal.await_event("offer")
        self.participant_id = self.offer["self"]
        servers = [RTCIceServer(**server) for server in self.offer["ice_servers"]]
        # The offer bundles everything (a=group:BUNDLE); browsers default to "balanced",
        # which is the same thing for a bundled offer. aiortc's answerer needs to be told.
        self.pc = pc = RTCPeerConnection(RTCConfiguration(
            iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))

        @pc.on("track")
        def on_track(track: Any) -> None:
            mid = next(t.mid for t in pc.getTransceivers() if t.receiver.track is track)
            assert mid is not None
            self.received[mid] = Received(track.kind)
            self.tasks.append(asyncio.ensure_future(consume(track, self.received[mid])))

        await pc.setRemoteDescription(RTCSessionDescription(self.offer["sdp"], "offer"))
        for track in self.tracks:
            pc.addTrack(track)  # the first transceiver of the kind: what the README says
        await pc.setLocalDescription(await pc.createAnswer())
        return self.offer

    @property
    def answer_sdp(self) -> str:
        assert self.pc is not None and self.pc.localDescription is not None
        return str(self.pc.localDescription.sdp)

    def send_answer(self, consult_id: int, sdp: str | None = None) -> None:
        self.signal.emit("answer", {"consult_id": consult_id, "sdp": sdp or self.answer_sdp})

    async def answer(self, consult_id: int, edit: SdpEdit | None = None) -> None:
        await self.join(consult_id)
        sdp = self.answer_sdp
        self.send_answer(consult_id, edit(sdp) if edit else sdp)

    def received_from(self, layout: dict[str, Any], other_id: str, kind: str) -> Received:
        peer = next(p for p in layout["peers"] if p["id"] == other_id)
        return self.received.get(peer[f"{kind}_mid"]) or Received(kind)

    async def close(self) -> None:
        await close_peer(self.pc, self.tracks, self.tasks)


# ---------------------------------------------------------------- SDP as others write it


def strip_candidates(sdp: str) -> tuple[str, list[str]]:
    """The SDP without its candidate lines (a trickling client's answer), and those lines."""
    lines = sdp.split("\r\n")
    candidates = [line[2:] for line in lines if line.startswith("a=candidate:")]
    kept = [line for line in lines if not line.startswith(("a=candidate:",
                                                           "a=end-of-candidates"))]
    return "\r\n".join(kept), candidates


def sections(sdp: str) -> list[str]:
    return re.split(r"\r\n(?=m=)", sdp)


def reject_video(sdp: str) -> str:
    """Every video m-line declined as an H.264-only client declines it (RFC 3264 section
    6): port 0, its own codec, no ICE or DTLS attributes, out of the BUNDLE group."""
    parts = sections(sdp)
    rejected = []
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("m=video"):
            mid = next(line[6:] for line in part.split("\r\n") if line.startswith("a=mid:"))
            rejected.append(mid)
            parts[i] = "\r\n".join(["m=video 0 UDP/TLS/RTP/SAVPF 102", "c=IN IP4 0.0.0.0",
                                     f"a=mid:{mid}", "a=inactive",
                                     "a=rtpmap:102 H264/90000"]) + "\r\n"
    head = parts[0].split("\r\n")
    for n, line in enumerate(head):
        if line.startswith("a=group:BUNDLE"):
            head[n] = " ".join(t for t in line.split(" ") if t not in rejected)
    parts[0] = "\r\n".join(head)
    return "\r\n".join(parts).replace("\r\n\r\n", "\r\n")


def with_extras(sdp: str) -> str:
    """Attributes a browser or pion writes that our page never does: header extensions
    and feedback the offer did not name, bandwidth lines, extmap-allow-mixed, ssrc-groups."""
    out = []
    for line in sdp.split("\r\n"):
        out.append(line)
        if line.startswith("t="):
            out += ["a=extmap-allow-mixed", "a=msid-semantic: WMS *"]
        elif line.startswith("a=rtpmap:") and "VP8" in line:
            pt = line.split()[0].split(":")[1]
            out += [f"a=rtcp-fb:{pt} transport-cc", f"a=rtcp-fb:{pt} goog-remb",
                    f"a=rtcp-fb:{pt} ccm fir"]
        elif line.startswith("a=mid:"):
            out += ["a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
                    "a=extmap:13 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc"
                    "-extensions-01", "b=AS:2000", "a=x-google-flag:conference"]
    return "\r\n".join(out)


def bare_newlines(sdp: str) -> str:
    """Bare \\n line ends, trailing spaces and no final line end (RFC 4566 asks for CRLF,
    and says parsers should take LF)."""
    return "\n".join(line.rstrip() + (" " if n % 3 == 0 else "")
                     for n, line in enumerate(sdp.split("\r\n")) if line)


# ---------------------------------------------------------------- the call


async def ours_and_theirs(signals: list[SignalClient], consult_id: int,
                          outside: OutsideClient, edit: SdpEdit | None = None
                          ) -> tuple[CallPeer, dict[str, Any], dict[str, Any]]:
    """Our own participant (red) joins, then the outside client; both layouts once known."""
    ours = CallPeer(signals[0], "red")
    await ours.join(consult_id)
    await outside.answer(consult_id, edit)
    mine = await signals[0].await_event(
        "peers", where=lambda d: len(d["peers"]) == 1 and d["peers"][0]["video_mid"])
    theirs = await signals[1].await_event(
        "peers", where=lambda d: len(d["peers"]) == 1 and d["peers"][0]["video_mid"])
    return ours, mine, theirs


async def media_both_ways(ours: CallPeer, mine: dict[str, Any], outside: OutsideClient,
                          theirs: dict[str, Any], send_audio: bool = True,
                          send_video: bool = True, receive_video: bool = True) -> None:
    """What each side should get from the other arrives (frames decoded, colour right)."""
    def flowing() -> bool:
        got_video = ours.colours_from(mine, outside.participant_id).get("green", 0)
        got_audio = ours.loud_frames_from(mine, outside.participant_id)
        seen = outside.received_from(theirs, ours.participant_id, "video").colours
        heard = outside.received_from(theirs, ours.participant_id, "audio").loud_frames
        return ((got_video >= 3 or not send_video) and (got_audio > 10 or not send_audio)
                and (seen.get("red", 0) >= 3 or not receive_video) and heard > 10)

    try:
        await until(flowing, 20)
    except AssertionError:
        raise AssertionError({
            "ours got video": ours.colours_from(mine, outside.participant_id),
            "ours got audio": ours.loud_frames_from(mine, outside.participant_id),
            "they saw": outside.received_from(theirs, ours.participant_id, "video").colours,
            "they heard": outside.received_from(theirs, ours.participant_id,
                                                "audio").loud_frames,
            "state": outside.pc.connectionState if outside.pc else None}) from None


@pytest.fixture()
def two(call_consult: Any, world: dict[str, Any],
        signal_client: Callable[..., SignalClient]) -> list[SignalClient]:
    """Sockets of our participant (the specialist) and the outside client (the clinician)."""
    return [signal_client(world["specialist"]), signal_client(world["clinician"])]


def connections(app: Flask) -> int:
    return get_hub(app).engine.stats()["peer_connections"]


VARIANTS: dict[str, dict[str, Any]] = {
    "audio and video": {},
    "audio only": {"video": False},
    "video only": {"audio": False},
    "receive only": {"audio": False, "video": False},
    "extra attributes": {"edit": with_extras},
    "bare newlines": {"edit": bare_newlines},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_an_answer_as_other_clients_write_it_works_both_ways(
        app: Flask, call_consult: Any, two: list[SignalClient], variant: str) -> None:
    options = VARIANTS[variant]
    audio, video = options.get("audio", True), options.get("video", True)

    async def scenario() -> None:
        outside = OutsideClient(two[1], audio=audio, video=video)
        ours = None
        try:
            ours, mine, theirs = await ours_and_theirs(two, call_consult.id, outside,
                                                       options.get("edit"))
            assert not two[1].drain("call_error")
            await media_both_ways(ours, mine, outside, theirs, send_audio=audio,
                                  send_video=video)
            assert not two[1].drain("call_error")
            assert connections(app) == 2
        finally:
            await outside.close()
            if ours is not None:
                await ours.close()
        # Both closed their peer connections: the server lets both go.
        await until(lambda: connections(app) == 0, 10)

    asyncio.run(scenario())


def test_trickled_candidates_with_end_and_mdns_names(
        app: Flask, call_consult: Any, world: dict[str, Any],
        signal_client: Callable[..., SignalClient]) -> None:
    two = [signal_client(world["specialist"]),
           signal_client(world["clinician"], transport="websocket")]

    async def scenario() -> None:
        outside = OutsideClient(two[1])
        ours = CallPeer(two[0], "red")
        try:
            await ours.join(call_consult.id)
            await outside.join(call_consult.id)
            sdp, candidates = strip_candidates(outside.answer_sdp)
            assert candidates
            outside.send_answer(call_consult.id, sdp)
            # What a browser sends: an mDNS host name first, its real candidates, each
            # with the mid it was gathered for, then end-of-candidates.
            two[1].emit("candidate", {"consult_id": call_consult.id, "sdpMid": "0",
                                      "sdpMLineIndex": 0, "candidate":
                                      "candidate:1 1 udp 2122260223 "
                                      "4b5f2a1c-0d3e-4f5a-8b6c-7d8e9f0a1b2c.local 54400 "
                                      "typ host generation 0"})
            for n, candidate in enumerate(candidates):
                two[1].emit("candidate", {"consult_id": call_consult.id, "candidate":
                                          f"candidate:{candidate.removeprefix('candidate:')}",
                                          "sdpMid": "0" if n % 2 else None,
                                          "sdpMLineIndex": 0 if not n % 2 else None})
            two[1].emit("candidate", {"consult_id": call_consult.id, "candidate": "",
                                      "sdpMid": "0", "sdpMLineIndex": 0})
            mine = await two[0].await_event(
                "peers", where=lambda d: len(d["peers"]) == 1 and d["peers"][0]["video_mid"])
            theirs = await two[1].await_event(
                "peers", where=lambda d: len(d["peers"]) == 1 and d["peers"][0]["video_mid"])
            await media_both_ways(ours, mine, outside, theirs)
            assert not two[1].drain("call_error")
        finally:
            await outside.close()
            await ours.close()

    asyncio.run(scenario())


def server_side(app: Flask, consult_id: int, participant_id: str) -> dict[str, Any]:
    """What the engine holds for one participant: each send m-line's negotiated direction
    and whether its slot takes media; how many keyframes their video was asked for."""
    engine = get_hub(app).engine

    async def read() -> dict[str, Any]:
        room = engine.rooms.get(f"consult-{consult_id}")
        participant = room.participants.get(participant_id) if room else None
        if participant is None:
            return {}
        slots = {}
        for slot in participant.slots:
            for transceiver, track in ((slot.audio, slot.audio_track),
                                       (slot.video, slot.video_track)):
                slots[transceiver.mid] = (transceiver.currentDirection, track.sending)
        return {"slots": slots, "state": participant.pc.connectionState,
                "keyframes": participant.feeds["video"].keyframes_requested}

    return engine.run(read())


def test_declined_video_is_neither_sent_nor_asked_for(
        app: Flask, call_consult: Any, two: list[SignalClient]) -> None:
    async def scenario() -> None:
        outside = OutsideClient(two[1], video=False)
        ours = None
        try:
            ours, mine, theirs = await ours_and_theirs(two, call_consult.id, outside,
                                                       reject_video)
            await media_both_ways(ours, mine, outside, theirs, send_video=False,
                                  receive_video=False)
            held = server_side(app, call_consult.id, outside.participant_id)
            video_mids = {p["video_mid"] for p in theirs["peers"]}
            for mid, (direction, sending) in held["slots"].items():
                if mid in video_mids:
                    assert (direction, sending) == ("inactive", False), held
            # Our participant's video is not asked for keyframes on behalf of nobody.
            before = server_side(app, call_consult.id, ours.participant_id)["keyframes"]
            await asyncio.sleep(5)
            after = server_side(app, call_consult.id, ours.participant_id)["keyframes"]
            assert after - before <= 1, (before, after)
            assert not two[1].drain("call_error")
        finally:
            await outside.close()
            if ours is not None:
                await ours.close()

    asyncio.run(scenario())


def test_a_client_that_never_answers_costs_the_others_nothing_and_is_let_go(
        app: Flask, call_consult: Any, two: list[SignalClient],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("telehealth.video.engine.CONNECT_TIMEOUT", 6.0)

    async def scenario() -> None:
        outside = OutsideClient(two[1])
        ours = CallPeer(two[0], "red")
        try:
            await ours.join(call_consult.id)
            await outside.join(call_consult.id)  # and never answers
            assert ours.pc is not None
            pc = ours.pc
            await until(lambda: pc.connectionState == "connected")
            before = server_side(app, call_consult.id, ours.participant_id)["keyframes"]
            await asyncio.sleep(4)
            after = server_side(app, call_consult.id, ours.participant_id)["keyframes"]
            assert after - before <= 1, (before, after)
            # Given up: the engine lets the connection go and says so to the room.
            gone = await two[1].await_event("peer_state", where=lambda d: d["id"] ==
                                            outside.participant_id)
            assert gone["state"] == "reconnecting"
            await until(lambda: connections(app) == 1)
            # A late answer gets a clear refusal; joining again works.
            outside.send_answer(call_consult.id)
            assert "not in this call" in (await two[1].await_event("call_error"))["message"]
            await outside.close()
            outside = OutsideClient(two[1])
            await outside.answer(call_consult.id)
            mine = await two[0].await_event("peers", where=lambda d: d["peers"] and d[
                "peers"][0]["video_mid"] and d["peers"][0]["state"] != "reconnecting")
            theirs = await two[1].await_event(
                "peers", where=lambda d: d["peers"] and d["peers"][0]["video_mid"])
            await media_both_ways(ours, mine, outside, theirs)
        finally:
            await outside.close()
            await ours.close()

    asyncio.run(scenario())


def test_renegotiation_is_a_new_join_and_closing_the_connection_leaves(
        app: Flask, call_consult: Any, two: list[SignalClient]) -> None:
    async def scenario() -> None:
        outside = OutsideClient(two[1])
        ours = None
        try:
            ours, mine, theirs = await ours_and_theirs(two, call_consult.id, outside)
            await media_both_ways(ours, mine, outside, theirs)
            # An offer of the client's own (an ICE restart, a new track): a clear refusal.
            assert outside.pc is not None
            restart = await outside.pc.createOffer()
            two[1].emit("offer", {"consult_id": call_consult.id, "sdp": restart.sdp})
            error = await two[1].await_event("call_error")
            assert error["event"] == "offer" and "join the call again" in error["message"]
            # Joining again is the renegotiation: a fresh offer, the old connection closed.
            await outside.close()
            for signal in two:
                signal.drain("peers")
            outside = OutsideClient(two[1])
            await outside.answer(call_consult.id)
            mine = await two[0].await_event(
                "peers", where=lambda d: d["peers"] and d["peers"][0]["video_mid"])
            theirs = await two[1].await_event(
                "peers", where=lambda d: d["peers"] and d["peers"][0]["video_mid"])
            await media_both_ways(ours, mine, outside, theirs)
            assert connections(app) == 2
            # Closing the peer connection without `leave` (the socket stays open).
            await outside.close()
            await until(lambda: connections(app) == 1, 10)
            assert not two[1].drain("call_error")
        finally:
            await outside.close()
            if ours is not None:
                await ours.close()

    asyncio.run(scenario())


def h264_instead_of_vp8(sdp: str) -> str:
    """Video m-lines that keep their port but list a codec the offer did not."""
    return re.sub(r"a=rtpmap:(\d+) VP8/90000", r"a=rtpmap:\1 H264/90000", sdp)


def with_data_channel(sdp: str) -> str:
    """An m-line of the answerer's own (a data channel) the offer never had."""
    return sdp + ("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
                  "a=mid:9\r\na=sctp-port:5000\r\n")


def decline_everything(sdp: str) -> str:
    return re.sub(r"^m=(\w+) \d+", r"m=\1 0", sdp, flags=re.M)


def test_answers_that_cannot_work_get_a_clear_error_and_joining_again_works(
        app: Flask, call_consult: Any, two: list[SignalClient]) -> None:
    async def scenario() -> None:
        outside = OutsideClient(two[1])
        ours = CallPeer(two[0], "red")
        try:
            await ours.join(call_consult.id)
            for edit, reason in ((h264_instead_of_vp8, "not valid SDP"),
                                 (with_data_channel, "decline one with port 0"),
                                 (decline_everything, "declines every media section")):
                await outside.close()
                outside = OutsideClient(two[1])
                await outside.answer(call_consult.id, edit)
                error = await two[1].await_event("call_error")
                assert error["event"] == "answer" and reason in error["message"], error
            # An answer sent twice: the second one has nothing to answer.
            await outside.close()
            outside = OutsideClient(two[1])
            await outside.answer(call_consult.id)
            outside.send_answer(call_consult.id)
            error = await two[1].await_event("call_error")
            assert "no offer is waiting" in error["message"], error
            # A candidate that is no IP address (aioice would resolve it on the media loop).
            two[1].emit("candidate", {"consult_id": call_consult.id, "candidate":
                                      "candidate:9 1 udp 1 example.com 5000 typ host"})
            error = await two[1].await_event("call_error")
            assert error["event"] == "candidate" and "IP address" in error["message"], error
            # Candidates naming no mid, an unknown mid, or coming after end-of-candidates
            # all go to the one bundled transport, or are ignored: no error.
            for extra in ({"sdpMid": None, "sdpMLineIndex": None}, {"sdpMid": "77"},
                          {"candidate": ""}, {"sdpMid": "0"}):
                two[1].emit("candidate", {"consult_id": call_consult.id, "candidate":
                                          "candidate:9 1 udp 1 192.0.2.99 9 typ host", **extra})
            mine = await two[0].await_event(
                "peers", where=lambda d: d["peers"] and d["peers"][0]["video_mid"])
            theirs = await two[1].await_event(
                "peers", where=lambda d: d["peers"] and d["peers"][0]["video_mid"])
            await media_both_ways(ours, mine, outside, theirs)
            assert not two[1].drain("call_error")
            assert connections(app) == 2
        finally:
            await outside.close()
            await ours.close()

    asyncio.run(scenario())


def test_signing_in_and_joining_as_the_protocol_page_says(
        app: Flask, live_server: str, call_consult: Any, world: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)  # as in production
    db.session.commit()
    http = requests.Session()
    page = http.get(f"{live_server}/login")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text)
    assert token is not None, page.text[:500]
    signed_in = http.post(f"{live_server}/login", allow_redirects=False, data={
        "csrf_token": token.group(1), "email": world["clinician"].email,
        "password": PASSWORD})
    assert signed_in.status_code in (302, 303)
    where = http.get(f"{live_server}/consults/{call_consult.id}/call/where").json()
    signal = SignalClient(where["socket_url"] or live_server,
                          "; ".join(f"{c.name}={c.value}" for c in http.cookies))
    try:
        signal.connect()
        signal.emit("join", {"consult_id": call_consult.id})
        offer = signal.wait("offer")
        assert offer["sdp"].startswith("v=0") and offer["self"] == \
            f"u{world['clinician'].id}"
        signal.emit("no_such_event", {})
        assert signal.wait("call_error")["event"] == "no_such_event"
        signal.emit("leave", {"consult_id": call_consult.id})
        assert signal.wait("left")["consult_id"] == call_consult.id
    finally:
        signal.close()


# A browser client of its own, as a developer would write it from the protocol page:
# default RTCPeerConnection settings, addTrack, and trickle ICE with end-of-candidates.
DOCS_CLIENT = """async ({consultId, camera}) => {
  const socket = io("/call", {transports: ["websocket"]});
  const offer = await new Promise((resolve, reject) => {
    socket.on("connect", () => socket.emit("join", {consult_id: consultId}));
    socket.on("offer", resolve);
    socket.on("call_error", (e) => reject(new Error(JSON.stringify(e))));
  });
  window.errors = [];
  socket.on("call_error", (e) => window.errors.push(e));
  const pc = new RTCPeerConnection({iceServers: offer.ice_servers});
  let answered = false;
  const early = [];
  window.trickled = [];
  const trickle = (c) => window.trickled.push(c ? c.candidate : "") && socket.emit(
    "candidate", {consult_id: consultId,
    candidate: c ? c.candidate : "", sdpMid: c ? c.sdpMid : null,
    sdpMLineIndex: c ? c.sdpMLineIndex : null});
  pc.onicecandidate = (event) => answered ? trickle(event.candidate)
                                          : early.push(event.candidate);
  await pc.setRemoteDescription({type: "offer", sdp: offer.sdp});
  if (camera) {
    const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
    stream.getTracks().forEach((track) => pc.addTrack(track, stream));
  }
  await pc.setLocalDescription(await pc.createAnswer());
  socket.emit("answer", {consult_id: consultId, sdp: pc.localDescription.sdp});
  answered = true;
  early.forEach(trickle);
  window.docsClient = {pc, socket, sent: pc.localDescription.sdp};
  return offer.self;
}"""

DOCS_CLIENT_RECEIVED = """async () => {
  const stats = await window.docsClient.pc.getStats();
  const got = {video: 0, audio: 0, state: window.docsClient.pc.connectionState,
               errors: window.errors};
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") { got.video += s.framesDecoded || 0; }
    if (s.type === "inbound-rtp" && s.kind === "audio") { got.audio += s.packetsReceived; }
  });
  return got;
}"""


@pytest.mark.browser
def test_a_browser_following_the_protocol_page_and_our_page_see_each_other(
        app: Flask, browser: Any, live_server: str, call_consult: Any,
        world: dict[str, Any]) -> None:
    from tests.conftest import sign_in
    from tests.video.test_browser import wait_playing

    db.session.commit()
    pages = []
    for who in ("clinician", "specialist"):
        context = browser.new_context(viewport={"width": 900, "height": 800})
        page = context.new_page()
        sign_in(page, live_server, world[who].email)
        pages.append(page)
    docs_page, our_page = pages
    # The docs client lives on a plain page of ours (same origin, the session cookie).
    docs_page.add_script_tag(url=f"{live_server}/static/vendor/socket.io.min.js")
    participant = docs_page.evaluate(DOCS_CLIENT, {"consultId": call_consult.id,
                                                   "camera": True})
    assert participant == f"u{world['clinician'].id}"
    our_page.goto(f"{live_server}/consults/{call_consult.id}/call")
    assert wait_playing(our_page)["w"] > 0  # the docs client's camera, on our page
    deadline = time.monotonic() + 20
    while (got := docs_page.evaluate(DOCS_CLIENT_RECEIVED))["video"] < 10 \
            or got["audio"] < 20:
        assert time.monotonic() < deadline, got
        docs_page.wait_for_timeout(200)
    assert got["state"] == "connected" and got["errors"] == [], got
    # It did trickle, ending with end-of-candidates.
    trickled = docs_page.evaluate("window.trickled")
    assert len(trickled) >= 2 and trickled[-1] == "", trickled
