"""An aiortc participant that joins a call through the real /call signaling."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

from telehealth.video.codecs import install_encoder, make_encoder
from telehealth.video.profiles import get_profile
from tests.video.conftest import SignalClient
from tests.video.media import ColourTrack, Received, ToneTrack, close_peer, consume


class CallPeer:
    """Sends a solid colour and a tone; notes what arrives on every mid.

    Like a browser, it encodes within the profile the server asks it to send (`limits`);
    with `limits=False` it sends with aiortc's stock encoders (Opus 96 kbps, VP8 >= 250
    kbps), a client that ignores the server's limits.
    """

    def __init__(self, signal: SignalClient, colour: str, relay_only: bool = False,
                 video: MediaStreamTrack | None = None, limits: bool = True,
                 video_encoder: object | None = None) -> None:
        """video_encoder: the encoder our video sender uses (instead of `limits`)."""
        self.signal, self.colour, self.relay_only = signal, colour, relay_only
        self.limits, self.video_encoder = limits, video_encoder
        self.pc: RTCPeerConnection | None = None
        self.received: dict[str, Received] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.tracks: list[MediaStreamTrack] = [ToneTrack(), video or ColourTrack(colour)]
        self.offer: dict[str, Any] = {}
        self.participant_id = ""

    async def join(self, consult_id: int, profile: str = "low") -> None:
        """Join, answer the server's offer with our tracks on mids 0 and 1."""
        self.signal.emit("join", {"consult_id": consult_id, "profile": profile})
        self.offer = await self.signal.await_event("offer")
        self.participant_id = self.offer["self"]
        servers = [RTCIceServer(urls=s["urls"], username=s.get("username"),
                                credential=s.get("credential"))
                   for s in self.offer["ice_servers"]]
        # MAX_BUNDLE: aiortc's default (balanced) leaves all but the first video m-line on a
        # transport that BUNDLE then discards, so those tracks never receive.
        self.pc = pc = RTCPeerConnection(RTCConfiguration(
            iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            iceTransportPolicy=RTCIceTransportPolicy.RELAY if self.relay_only
            else RTCIceTransportPolicy.ALL))

        @pc.on("track")
        def on_track(track: Any) -> None:
            mid = next(t.mid for t in pc.getTransceivers() if t.receiver.track is track)
            assert mid is not None
            self.received[mid] = Received(track.kind)
            self.tasks.append(asyncio.ensure_future(consume(track, self.received[mid])))

        await pc.setRemoteDescription(RTCSessionDescription(self.offer["sdp"], "offer"))
        transceivers = {t.mid: t for t in pc.getTransceivers()}
        for mid, track in (("0", self.tracks[0]), ("1", self.tracks[1])):
            transceivers[mid].sender.replaceTrack(track)
            transceivers[mid].direction = "sendonly"
            if track.kind == "video" and self.video_encoder is not None:
                install_encoder(transceivers[mid].sender, self.video_encoder)
            elif self.limits:
                send = get_profile(self.offer.get("send_profile", profile))
                install_encoder(transceivers[mid].sender, make_encoder(track.kind, send))
        await pc.setLocalDescription(await pc.createAnswer())
        self.signal.emit("answer", {"consult_id": consult_id, "sdp": pc.localDescription.sdp})

    def colours_from(self, layout: dict[str, Any], other_id: str) -> dict[str, int]:
        peer = next(p for p in layout["peers"] if p["id"] == other_id)
        got = self.received.get(peer["video_mid"])
        return dict(got.colours) if got else {}

    def loud_frames_from(self, layout: dict[str, Any], other_id: str) -> int:
        peer = next(p for p in layout["peers"] if p["id"] == other_id)
        got = self.received.get(peer["audio_mid"])
        return got.loud_frames if got else 0

    async def close(self) -> None:
        await close_peer(self.pc, self.tracks, self.tasks)
