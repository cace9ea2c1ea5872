"""The media engine alone: encoder seam, bounded queues, lifecycle, TURN credentials."""

from __future__ import annotations

import asyncio
import base64
import fractions
import hashlib
import hmac
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc import RTCRtpSender
from aiortc.codecs.vpx import Vp8Encoder
from av import AudioFrame, VideoFrame

from telehealth.video.answers import MAX_CANDIDATES
from telehealth.video.codecs import (
    VP8_TARGET_HEADROOM,
    ProfileOpusEncoder,
    ProfileVp8Encoder,
    install_encoder,
    installed_encoder,
    scaled_size,
)
from telehealth.video.engine import MAX_PARTICIPANTS, EngineError, RoomFull, VideoEngine
from telehealth.video.profiles import get_profile
from telehealth.video.tracks import (
    FORWARD_DEPTH,
    Encoded,
    Feed,
    ReceiverTap,
    SlotTrack,
    vp8_keyframe_size,
)
from telehealth.video.turn import IceSettings, ice_servers, turn_credentials
from tests.video.media import ColourTrack

LOW, STANDARD = get_profile("low"), get_profile("standard")


def test_aiortc_defaults_are_too_much_for_a_clinic_link() -> None:
    # Why the seam exists: aiortc clamps VP8 to >= 250 kbps and fixes Opus at 96 kbps.
    stock = Vp8Encoder()
    stock.target_bitrate = 150_000
    assert stock.target_bitrate >= 250_000


def test_vp8_encoder_keeps_to_the_profile_range() -> None:
    encoder = ProfileVp8Encoder(LOW)
    assert encoder.target_bitrate == 200_000 * VP8_TARGET_HEADROOM  # aims under the ceiling
    encoder.target_bitrate = 1_500_000  # a generous REMB estimate
    assert encoder.target_bitrate == LOW.video_max_bps * VP8_TARGET_HEADROOM
    encoder.target_bitrate = 10_000  # a collapsing link
    assert encoder.target_bitrate == LOW.video_min_bps
    encoder.set_profile(STANDARD)
    assert encoder.target_bitrate == STANDARD.video_max_bps * VP8_TARGET_HEADROOM


def test_opus_encoder_uses_the_profile_bitrate() -> None:
    assert ProfileOpusEncoder(LOW).codec.bit_rate == 16_000


def busy_frames(count: int, fps: int = 15) -> list[VideoFrame]:
    """640x480 frames of grainy texture moving sideways: hard work for an encoder."""
    texture = bytes(96 + b % 64 for b in os.urandom(640 * 480))
    frames = []
    for n in range(count):
        frame = VideoFrame(640, 480, "yuv420p")
        shift = (n * 5) % 640
        luma = b"".join(texture[r * 640 + shift:(r + 1) * 640] + texture[r * 640:r * 640 + shift]
                        for r in range(480))
        frame.planes[0].update(luma)
        frame.planes[1].update(bytes([110]) * frame.planes[1].buffer_size)
        frame.planes[2].update(bytes([140]) * frame.planes[2].buffer_size)
        frame.pts, frame.time_base = n * 90000 // fps, fractions.Fraction(1, 90000)
        frames.append(frame)
    return frames


def test_low_profile_video_stays_under_200_kbps_at_320x240() -> None:
    encoder = ProfileVp8Encoder(LOW)
    total = 0
    frames = busy_frames(90)  # six seconds at 15 fps
    for frame in frames:
        payloads, _ts = encoder.encode(frame)
        total += sum(len(p) for p in payloads)
    assert encoder.codec is not None
    assert (encoder.codec.width, encoder.codec.height) == (320, 240)  # scaled to the profile
    assert total * 8 / 6 <= 200_000
    # aiortc's own encoder, same pictures: more than a 256 kbps link can carry.
    stock, stock_total = Vp8Encoder(), 0
    for frame in frames:
        payloads, _ts = stock.encode(frame)
        stock_total += sum(len(p) for p in payloads)
    assert stock_total * 8 / 6 > 250_000


def test_scaled_size_keeps_aspect() -> None:
    assert scaled_size(1280, 720, LOW) == (320, 180)
    assert scaled_size(160, 120, LOW) == (160, 120)


def test_encoder_is_installed_on_the_sender() -> None:
    async def check() -> None:
        from aiortc import RTCPeerConnection

        pc = RTCPeerConnection()
        transceiver = pc.addTransceiver("video", direction="sendonly")
        encoder = ProfileVp8Encoder(LOW)
        install_encoder(transceiver.sender, encoder)
        assert installed_encoder(transceiver.sender) is encoder
        await pc.close()

    asyncio.run(check())
    assert hasattr(RTCRtpSender, "replaceTrack")


def reencoding_slot(kind: str) -> tuple[SlotTrack, Any]:
    """A slot re-encoding a stand-in source (what a feed does when a source does not fit)."""
    slot, source = SlotTrack(kind, LOW), StubFeed()
    slot.source, slot.transcoding = source, True  # type: ignore[assignment]
    return slot, source


def test_slot_queue_is_bounded_and_rate_limited() -> None:
    async def check() -> None:
        audio, feed = reencoding_slot("audio")
        for _n in range(100):
            audio.offer_frame(feed, AudioFrame(format="s16", layout="mono", samples=960))
        assert len(audio._queue) == 5
        video, feed = reencoding_slot("video")
        source = ColourTrack("red")
        for _n in range(30):  # arriving all at once: only one passes the 15 fps gate
            video.offer_frame(feed, await source.recv())
        assert len(video._queue) == 1
        video.stop()
        audio.stop()

    asyncio.run(check())


@pytest.fixture()
def engine() -> Iterator[VideoEngine]:
    engine = VideoEngine()
    yield engine
    engine.shutdown()


def test_rooms_open_fill_and_close(engine: VideoEngine) -> None:
    for n in range(MAX_PARTICIPANTS):
        assert engine.join("r", f"p{n}", LOW).startswith("v=0")
    with pytest.raises(RoomFull):
        engine.join("r", "one-too-many", LOW)
    assert engine.stats() == {"rooms": 1, "peer_connections": MAX_PARTICIPANTS}
    assert set(engine.layout("r", "p0")) == {"p1", "p2", "p3"}
    room = engine.rooms.get("r")
    assert room is not None
    leaving = room.participants["p1"].pc
    assert engine.leave("r", "p1") is False
    assert leaving.connectionState == "closed"
    assert set(engine.layout("r", "p0")) == {"p2", "p3"}
    # Nobody's feed keeps the slots of the one who left (a slot holds its whole connection).
    for pid in ("p0", "p2", "p3"):
        for feed in room.participants[pid].feeds.values():
            assert len(feed.slots) == 2
    # Joining again replaces the old connection instead of adding one.
    engine.join("r", "p0", LOW)
    assert engine.stats()["peer_connections"] == MAX_PARTICIPANTS - 1


def test_shutdown_closes_every_peer_connection() -> None:
    engine = VideoEngine()
    engine.join("a", "x", LOW)
    engine.join("b", "y", LOW)
    pcs = [p.pc for room in engine.rooms.all() for p in room.participants.values()]
    engine.shutdown()
    assert all(pc.connectionState == "closed" for pc in pcs)
    assert not engine.running


def test_turn_credentials_follow_the_coturn_rest_scheme() -> None:
    username, credential = turn_credentials("north", "u7", 1_000, 3_600)
    assert username == "4600:u7"
    expected = hmac.new(b"north", b"4600:u7", hashlib.sha1).digest()
    assert base64.b64decode(credential) == expected
    settings = IceSettings(stun_urls=("stun:stun.example.org",),
                           turn_urls=("turn:turn.example.org?transport=udp",),
                           turn_secret="north")
    servers = ice_servers(settings, "u7", 1_000)
    assert servers[0] == {"urls": ["stun:stun.example.org"]}
    assert servers[1]["username"] == "4600:u7"
    assert ice_servers(IceSettings(), "u7", 1_000) == []


@pytest.mark.parametrize("source_fps, jitter, expected", [(30, 0.0, 15), (15, 0.02, 15),
                                                          (10, 0.0, 10)])
def test_slot_frame_rate_limit(monkeypatch: pytest.MonkeyPatch, source_fps: int, jitter: float,
                               expected: int) -> None:
    """A 15 fps slot passes a 15 fps source whole (even in bursts) and halves a 30 fps one."""
    import telehealth.video.tracks as tracks

    now = [1000.0]
    monkeypatch.setattr(tracks.time, "monotonic", lambda: now[0])

    async def check() -> int:
        slot, feed = reencoding_slot("video")
        frame = await ColourTrack("red").recv()
        passed = 0
        for n in range(source_fps * 4):
            now[0] = 1000.0 + n / source_fps + (jitter if n % 2 else -jitter)
            slot.offer_frame(feed, frame)
            if slot._queue:
                slot._queue.clear()
                passed += 1
        slot.stop()
        return passed

    passed = asyncio.run(check())
    assert abs(passed / 4 - expected) <= 1


class Recorder:
    def __init__(self) -> None:
        self.states: list[tuple[str, str, str]] = []
        self.changed: list[str] = []

    def on_connection_state(self, room_id: str, participant_id: str, state: str) -> None:
        self.states.append((room_id, participant_id, state))

    def on_room_changed(self, room_id: str) -> None:
        self.changed.append(room_id)


def test_ice_failure_closes_the_connection_and_reports_it() -> None:
    recorder = Recorder()
    engine = VideoEngine(callbacks=recorder)
    try:
        engine.join("r", "a", LOW)
        engine.join("r", "b", LOW)
        room = engine.rooms.get("r")
        assert room is not None
        pc = room.participants["a"].pc

        async def fail() -> None:
            # What aiortc does when ICE consent checks run out: state "failed", then the event.
            pc._RTCPeerConnection__connectionState = "failed"  # type: ignore[attr-defined]
            pc.emit("connectionstatechange")
            await asyncio.sleep(0.2)

        engine._call(fail())
        assert engine.participants("r") == ["b"]
        assert pc.connectionState == "closed"
        assert engine.layout("r", "b") == {}
        deadline = time.monotonic() + 5
        while ("r", "a", "closed") not in recorder.states and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ("r", "a", "failed") in recorder.states and ("r", "a", "closed") in recorder.states
        assert "r" in recorder.changed
    finally:
        engine.shutdown()


# ---------------------------------------------------------------- forwarding


def vp8_frames(count: int, width: int = 320, height: int = 240) -> list[bytes]:
    """Whole encoded VP8 frames (the first a keyframe) of a changing picture."""
    import av

    out: list[bytes] = []
    codec_frames = []
    for n in range(count):
        frame = VideoFrame(width, height, "yuv420p")
        frame.planes[0].update(bytes([(n * 9) % 256]) * frame.planes[0].buffer_size)
        frame.pts, frame.time_base = n * 6000, fractions.Fraction(1, 90000)
        codec_frames.append(frame)
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = fractions.Fraction(1, 90000)
    for frame in codec_frames:
        out.extend(bytes(p) for p in codec.encode(frame))
    return out


def test_vp8_keyframes_are_recognised_with_their_size() -> None:
    frames = vp8_frames(5, 640, 480)
    assert vp8_keyframe_size(frames[0]) == (640, 480)
    # Delta frames have no size; libvpx may still make any later frame a keyframe.
    assert all((vp8_keyframe_size(f) is None) == bool(f[0] & 1) for f in frames)
    assert any(vp8_keyframe_size(f) is None for f in frames[1:])
    assert vp8_keyframe_size(b"") is None and vp8_keyframe_size(b"\x00" * 12) is None


class StubFeed:
    """What a slot asks of its feed."""

    def __init__(self, fits: bool = True) -> None:
        self.label, self._fits, self.keyframes_asked, self.judged_at = "stub", fits, 0, {}

    def known(self) -> bool:
        return True

    def fits(self, profile: Any, strict: bool = False) -> bool:
        return self._fits

    def update_decoding(self) -> None:
        pass

    def detach(self, slot: SlotTrack) -> None:
        slot.source = None

    def describe(self) -> str:
        return "stub"

    def request_keyframe(self) -> None:
        self.keyframes_asked += 1


def encoded(n: int, keyframe: bool) -> Encoded:
    return Encoded(bytes([n % 256]) * 50, n * 6000, 90000, keyframe)


def test_forwarding_slot_starts_from_a_keyframe_and_restarts_after_overflow() -> None:
    async def check() -> None:
        slot, feed = SlotTrack("video", LOW), StubFeed()
        slot.set_source(feed)  # type: ignore[arg-type]
        assert feed.keyframes_asked == 1 and not slot.transcoding
        slot.offer_encoded(feed, encoded(1, False))  # type: ignore[arg-type]
        assert not slot._queue  # a decoder cannot start on a delta frame...
        assert feed.keyframes_asked == 2  # ...so the source is asked again (rate-limited)
        slot.offer_encoded(feed, encoded(2, True))  # type: ignore[arg-type]
        for n in range(3, 2 + FORWARD_DEPTH["video"]):  # a sender that stopped reading
            slot.offer_encoded(feed, encoded(n, False))  # type: ignore[arg-type]
        assert len(slot._queue) == FORWARD_DEPTH["video"] and feed.keyframes_asked == 2
        slot.offer_encoded(feed, encoded(50, False))  # type: ignore[arg-type]
        assert not slot._queue  # overflow: dropped, and...
        assert feed.keyframes_asked == 3  # ...started again from the next keyframe
        slot.offer_encoded(feed, encoded(99, False))  # type: ignore[arg-type]
        assert not slot._queue
        slot.stop()

    asyncio.run(check())


def test_a_slot_whose_sender_does_not_run_takes_nothing_and_asks_no_keyframes() -> None:
    async def check() -> None:
        slot, feed = SlotTrack("video", LOW), StubFeed()
        slot.sending = False  # as the engine makes it: the connection is not up yet
        slot.set_source(feed)  # type: ignore[arg-type]
        asked = feed.keyframes_asked
        for n in range(3 * FORWARD_DEPTH["video"]):  # what made a keyframe every 2 s
            slot.offer_encoded(feed, encoded(n, n % 40 == 0))  # type: ignore[arg-type]
        assert not slot._queue and feed.keyframes_asked == asked
        slot.set_sending(True)  # connected: starts at once, from a keyframe it asks for
        assert feed.keyframes_asked == asked + 1
        slot.offer_encoded(feed, encoded(200, True))  # type: ignore[arg-type]
        assert len(slot._queue) == 1
        slot.stop()

    asyncio.run(check())


def test_trickled_candidates_are_checked_bundled_and_limited(engine: VideoEngine) -> None:
    engine.join("r", "p", LOW)
    for bad, why in (("candidate:1 1 udp 1 example.com 5000 typ host", "IP address"),
                     ("candidate:1 1 udp 1 192.0.2.1 70000 typ host", "port"),
                     ("candidate:%%", "not valid")):
        with pytest.raises(EngineError, match=why):
            engine.add_candidate("r", "p", bad, "0", 0)
    # mDNS names are left out, and do not count; any mid (or none) is the bundle's.
    engine.add_candidate("r", "p", "candidate:1 1 udp 1 ab-cd.local 5000 typ host", "0", 0)
    for n in range(MAX_CANDIDATES):
        engine.add_candidate("r", "p", f"candidate:{n} 1 udp 1 192.0.2.1 {5000 + n} typ host",
                             [None, "0", "5", "77"][n % 4], None)
    with pytest.raises(EngineError, match="too many"):
        engine.add_candidate("r", "p", "candidate:x 1 udp 1 192.0.2.1 4999 typ host", "0", 0)
    engine.add_candidate("r", "p", "", None, None)  # end-of-candidates, twice: no error
    engine.add_candidate("r", "p", "", "0", 0)


def test_forwarded_timestamps_stay_monotonic_across_sources() -> None:
    async def check() -> list[int]:
        slot = SlotTrack("video", LOW)
        out = []
        for source_start in (500_000, 0):  # the second source's clock starts far lower
            feed = StubFeed()
            slot.set_source(feed)  # type: ignore[arg-type]
            for n in range(3):
                frame = Encoded(b"x", source_start + n * 6000, 90000, n == 0)
                slot.offer_encoded(feed, frame)  # type: ignore[arg-type]
                packet = await slot.recv()
                assert bytes(packet) == b"x" and packet.time_base == fractions.Fraction(1, 90000)
                out.append(int(packet.pts))
        slot.stop()
        return out

    stamps = asyncio.run(check())
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert stamps[1] - stamps[0] == 6000 and stamps[4] - stamps[3] == 6000


def test_a_source_that_stops_fitting_is_reencoded_then_forwarded_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import telehealth.video.tracks as tracks

    now = [1000.0]
    monkeypatch.setattr(tracks.time, "monotonic", lambda: now[0])
    keyframes = []

    async def check() -> None:
        slot = SlotTrack("video", LOW, on_keyframe_needed=lambda: keyframes.append(now[0]))
        feed = StubFeed(fits=True)
        slot.set_source(feed)  # type: ignore[arg-type]
        feed._fits = False
        now[0] += 1
        slot.offer_encoded(feed, encoded(1, True))  # type: ignore[arg-type]
        assert slot.transcoding and keyframes  # our encoder starts with a keyframe
        feed._fits = True
        for step in range(12):  # fitting again must last FIT_AGAIN_SECONDS
            now[0] += 0.6
            slot.offer_encoded(feed, encoded(2 + step, False))  # type: ignore[arg-type]
            if step < 7:
                assert slot.transcoding
        assert not slot.transcoding
        slot.stop()

    asyncio.run(check())


def test_feed_measures_its_source_against_profiles() -> None:
    class Codec:
        name, clockRate = "VP8", 90000

    class JitterFrame:
        def __init__(self, data: bytes, timestamp: int) -> None:
            self.data, self.timestamp = data, timestamp

    class Receiver:
        track = None

        def getSynchronizationSources(self) -> list[Any]:
            return []

    frames = vp8_frames(40, 640, 480)
    feed = Feed("video", "t", Receiver(), ReceiverTap())
    start = time.monotonic()
    for n, data in enumerate(frames):  # 40 frames of 640x480 at 15 fps
        while time.monotonic() < start + n / 15:
            time.sleep(0.005)
        feed.on_encoded(Codec(), JitterFrame(data, n * 6000))
    assert feed.known() and feed.size == (640, 480)
    assert 13 <= feed.fps() <= 17
    assert not feed.fits(LOW)  # too large a picture for `low`
    assert feed.fits(STANDARD)  # 4:3 at the standard width, well under its bitrate
    assert feed.bps() < STANDARD.video_max_bps


def test_receiver_tap_feeds_the_decoder_only_when_asked_and_from_a_keyframe() -> None:
    class KeyframeEvery3:
        def on_encoded(self, codec: Any, frame: int) -> bool:
            return frame % 3 == 0

    tap = ReceiverTap()
    tap.feed = KeyframeEvery3()  # type: ignore[assignment]
    tap.put(("vp8", 0))  # forwarding only: nothing for the decoder
    assert tap.qsize() == 0
    tap.decode = True
    tap.put(("vp8", 1))  # a delta frame: the decoder would fail on it
    tap.put(("vp8", 3))
    tap.put(("vp8", 4))
    assert [tap.get_nowait()[1] for _n in range(tap.qsize())] == [3, 4]
    tap.put(None)  # the receiver stopping always reaches the decoder thread
    assert tap.get_nowait() is None
