"""Forwarding: the media server passes encoded frames on instead of re-encoding them.

A participant who keeps to the profile the server asks for is forwarded as sent (no
decoder runs, the server's encoders stay idle); one who does not (stock aiortc encoders,
a large busy picture) is re-encoded for the receivers it does not fit, within their profile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from flask import Flask

from telehealth.video.engine import VideoEngine
from tests.video.conftest import SignalClient
from tests.video.media import TexturedTrack
from tests.video.peers import CallPeer
from tests.video.test_call import latest_peers, until


def engine_state(app: Flask, consult_id: int) -> dict[str, Any]:
    """For each participant: whether their feeds decode, and how each slot is filled."""
    engine: VideoEngine = app.extensions["video_hub"].engine

    async def read() -> dict[str, Any]:
        room = engine.rooms.get(f"consult-{consult_id}")
        assert room is not None
        return {pid: {
            "decoding": {kind: feed.tap.decode for kind, feed in p.feeds.items()},
            "send_cap": p.feeds["video"].send_cap_bps,
            "keyframes_requested": p.feeds["video"].keyframes_requested,
            "slots": {s.holder: {"audio": s.audio_track.transcoding,
                                 "video": s.video_track.transcoding,
                                 "video_encoded": s.video_encoder.codec is not None,
                                 "audio_encoded": s.audio_encoder.first_packet_pts is not None}
                      for s in p.slots if s.holder is not None},
        } for pid, p in room.participants.items()}

    return engine._call(read())


async def outbound_video_bps(peer: CallPeer, mid: str, seconds: float = 4.0) -> float:
    """What the server sent us on `mid`, from its own RTCP sender reports."""
    assert peer.pc is not None
    receiver = next(t.receiver for t in peer.pc.getTransceivers() if t.mid == mid)

    async def octets() -> int:
        stats = await receiver.getStats()
        return sum(s.bytesSent for s in stats.values() if s.type == "remote-outbound-rtp")

    before = await octets()
    await asyncio.sleep(seconds)
    return (await octets() - before) * 8 / seconds


async def sent_by_client(peer: CallPeer) -> int:
    """Video payload octets the client's own sender has sent."""
    assert peer.pc is not None
    stats = await peer.pc.getStats()
    return sum(s.bytesSent for s in stats.values() if s.type == "outbound-rtp"
               and s.kind == "video")


def test_sources_within_the_profile_are_forwarded_not_reencoded(
        app: Flask, call_consult: Any, world: dict[str, Any],
        signal_client: Callable[..., SignalClient]) -> None:
    signals = [signal_client(world["clinician"]), signal_client(world["specialist"])]

    async def scenario() -> None:
        # Grainy pictures at the low profile's size, encoded within it (as a browser would).
        peers = [CallPeer(signals[0], "red", video=TexturedTrack("red")),
                 CallPeer(signals[1], "blue", video=TexturedTrack("blue"))]
        try:
            for peer in peers:
                await peer.join(call_consult.id)
            layouts = [latest_peers(s, 1) for s in signals]
            a, b = peers[0].participant_id, peers[1].participant_id
            await until(lambda: peers[0].colours_from(layouts[0], b).get("blue", 0) >= 10
                        and peers[1].colours_from(layouts[1], a).get("red", 0) >= 10
                        and peers[0].loud_frames_from(layouts[0], b) > 50)
            state = engine_state(app, call_consult.id)
            for pid in (a, b):
                assert state[pid]["decoding"] == {"audio": False, "video": False}, state
                for slot in state[pid]["slots"].values():
                    assert slot == {"audio": False, "video": False, "video_encoded": False,
                                    "audio_encoded": False}, state
                assert state[pid]["send_cap"] == 200_000
            # What reaches a receiver is what the sender encoded (within `low`; RTCP
            # reports come once a second, hence the margins).
            video_mid = next(p["video_mid"] for p in layouts[1]["peers"])
            client_before = await sent_by_client(peers[0])
            bps = await outbound_video_bps(peers[1], video_mid, 6.0)
            client_bps = (await sent_by_client(peers[0]) - client_before) * 8 / 6.0
            # (Two counters read at slightly different moments, by RTCP at ~1 s steps.)
            assert 0.7 <= bps / client_bps <= 1.3, (bps, client_bps)
            assert bps <= 200_000 * 1.15, bps
            assert peers[1].received[video_mid].size == (320, 240)
        finally:
            for peer in peers:
                await peer.close()

    asyncio.run(scenario())


def test_a_source_that_ignores_the_profile_is_reencoded_for_its_receiver(
        app: Flask, call_consult: Any, world: dict[str, Any],
        signal_client: Callable[..., SignalClient]) -> None:
    signals = [signal_client(world["clinician"]), signal_client(world["specialist"])]

    async def scenario() -> None:
        # The clinician's client sends 640x480 grain with aiortc's stock encoders (> 250
        # kbps, Opus 96 kbps); the specialist keeps to the profile.
        loud = CallPeer(signals[0], "red", video=TexturedTrack("red", 640, 480), limits=False)
        polite = CallPeer(signals[1], "blue")
        peers = [loud, polite]
        try:
            for peer in peers:
                await peer.join(call_consult.id)
            layouts = [latest_peers(s, 1) for s in signals]
            a, b = loud.participant_id, polite.participant_id
            video_mid = next(p["video_mid"] for p in layouts[1]["peers"])
            await until(lambda: polite.colours_from(layouts[1], a).get("red", 0) >= 5
                        and polite.received[video_mid].size == (320, 240)
                        and loud.colours_from(layouts[0], b).get("blue", 0) >= 5)
            # Video may be re-encoded at once (its first seconds already pass the ceiling);
            # audio once the source has been measured for a while.
            await until(lambda: engine_state(app, call_consult.id)[b]["slots"][a]["audio"])
            state = engine_state(app, call_consult.id)
            # The specialist's slot re-encodes the clinician, audio and video...
            assert state[b]["slots"][a]["video"] and state[b]["slots"][a]["video_encoded"]
            assert state[b]["slots"][a]["audio"]
            assert state[a]["decoding"] == {"audio": True, "video": True}
            # ...while the specialist, who keeps to the profile, is still forwarded.
            assert state[a]["slots"][b] == {"audio": False, "video": False,
                                            "video_encoded": False, "audio_encoded": False}
            assert state[b]["decoding"] == {"audio": False, "video": False}
            await asyncio.sleep(1)  # past the encoder's first, larger frames
            bps = await outbound_video_bps(polite, video_mid)
            assert bps <= 200_000 * 1.05, bps
            assert polite.loud_frames_from(layouts[1], a) > 10
        finally:
            for peer in peers:
                await peer.close()

    asyncio.run(scenario())


def test_audio_only_and_profile_switch_end_to_end(
        app: Flask, call_consult: Any, world: dict[str, Any],
        signal_client: Callable[..., SignalClient]) -> None:
    """The specialist goes audio-only and back, then to `standard`: what they receive
    follows, and the clinician is told each time what it may send."""
    clinician, specialist = signal_client(world["clinician"]), signal_client(world["specialist"])

    async def scenario() -> None:
        a, b = CallPeer(clinician, "red"), CallPeer(specialist, "blue")
        try:
            await a.join(call_consult.id, profile="standard")
            assert a.offer["send_profile"] == "standard"  # alone: its own profile
            await b.join(call_consult.id, profile="low")
            assert b.offer["send_profile"] == "low"
            # The clinician's video now reaches a `low` receiver: it is asked to send `low`.
            assert (await clinician.await_event("send_profile"))["profile"] == "low"
            layouts = [latest_peers(s, 1) for s in (clinician, specialist)]
            video_from_a = next(p["video_mid"] for p in layouts[1]["peers"])
            await until(lambda: b.colours_from(layouts[1], a.participant_id).get("red", 0) >= 3
                        and a.colours_from(layouts[0], b.participant_id).get("blue", 0) >= 3)

            # Audio only: no more video reaches the specialist; sound and their own video go on.
            specialist.emit("media", {"consult_id": call_consult.id, "video": False,
                                      "receive_video": False})
            assert (await clinician.await_event("send_profile"))["profile"] == "standard"
            await asyncio.sleep(1.0)  # frames already on the way
            frames, loud = b.received[video_from_a].frames, b.loud_frames_from(
                layouts[1], a.participant_id)
            await asyncio.sleep(2.0)
            assert b.received[video_from_a].frames <= frames + 1
            assert b.loud_frames_from(layouts[1], a.participant_id) > loud + 30
            state = engine_state(app, call_consult.id)
            assert state[b.participant_id]["decoding"] == {"audio": False, "video": False}

            # Video again: it starts from a keyframe the server asks the clinician for.
            specialist.emit("media", {"consult_id": call_consult.id, "video": True,
                                      "receive_video": True})
            assert (await clinician.await_event("send_profile"))["profile"] == "low"
            await until(lambda: b.received[video_from_a].frames > frames + 15)

            # The specialist's link improves: `standard` for them, and so for the clinician.
            specialist.emit("media", {"consult_id": call_consult.id, "profile": "standard"})
            assert (await clinician.await_event("send_profile"))["profile"] == "standard"
            state = engine_state(app, call_consult.id)
            assert state[a.participant_id]["send_cap"] == 800_000
            assert not state[b.participant_id]["slots"][a.participant_id]["video"]
        finally:
            await a.close()
            await b.close()

    asyncio.run(scenario())
