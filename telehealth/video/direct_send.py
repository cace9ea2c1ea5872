"""Forwarded frames go straight onto the wire: the engine's replacement for aiortc's send loop.

MONKEYPATCH MODULE. This is the one place that replaces part of aiortc's sending
(`RTCRtpSender._run_rtp`) on the engine's own senders and reaches into the private state of
aiortc's sender, DTLS transport and aioice's connection. `check_aiortc_shape()` fails loudly
when those change shape (tests/video/test_direct_send.py calls it, and compares the packets
written here with aiortc's own, byte for byte).

Why: in a conference one participant's frame goes to up to 29 lanes. Through aiortc, each
lane's task is woken for each frame (an event, a future, a task step), makes an `av.Packet`,
converts its timestamp through a Fraction, packetizes it, builds an `RtpPacket` and its header
extensions object by object, reads the NTP clock twice through `datetime`, and awaits three
coroutine layers down to `sendto`. That Python work per packet was most of the engine's CPU
in the conference bench (bench/README.md, "Conference room"). Here a feed's frame is handed
to each lane's `RtpStream` synchronously as it arrives: packetized once per frame (VP8: only
the picture id differs per lane), the NTP clock read once per frame, each lane's header
written from bytes cached when its sender started, then SRTP-protected and sent.

What aiortc's loop did and this keeps: sequence numbers and a random timestamp origin per
sender, abs-send-time and mid header extensions, the counters its RTCP sender reports and
getStats() read, the history it retransmits from on a NACK (video), and the same loop for
frames the engine re-encodes (decoded frames still go through aiortc's encoders, in
`_next_encoded_frame`, then out through the same `RtpStream`, so a lane switching between
forwarding and re-encoding keeps one sequence of packets).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
import traceback
from typing import Any

from aioice import Connection
from aiortc import RTCRtpSender, clock
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensionsMap, RtpPacket
from aiortc.utils import random32

logger = logging.getLogger(__name__)

# RTCRtpSender's private state (aiortc 1.16), by its name-mangled attribute names.
_SENDER = "_RTCRtpSender__"
SENDER_ATTRS = ("rtp_started", "rtp_exited", "rtp_history", "rtp_header_extensions_map",
                "mid", "track", "encoder", "ntp_timestamp", "rtp_timestamp", "octet_count",
                "packet_count")
# Their full names, spelled once (they are read and written for every frame).
_S_ENCODER = f"{_SENDER}encoder"
_S_MID = f"{_SENDER}mid"
_S_NTP_TIMESTAMP = f"{_SENDER}ntp_timestamp"
_S_OCTET_COUNT = f"{_SENDER}octet_count"
_S_PACKET_COUNT = f"{_SENDER}packet_count"
_S_RTP_EXITED = f"{_SENDER}rtp_exited"
_S_RTP_HEADER_EXTENSIONS_MAP = f"{_SENDER}rtp_header_extensions_map"
_S_RTP_HISTORY = f"{_SENDER}rtp_history"
_S_RTP_STARTED = f"{_SENDER}rtp_started"
_S_RTP_TIMESTAMP = f"{_SENDER}rtp_timestamp"
_S_TRACK = f"{_SENDER}track"
# RTCDtlsTransport's counters for getStats().
_DTLS_TX_BYTES = "_RTCDtlsTransport__tx_bytes"
_DTLS_TX_PACKETS = "_RTCDtlsTransport__tx_packets"
# First byte of every RTP header written here: version 2, no padding, extension, no CSRC.
_V2_X = 0x90
_V2 = 0x80
_HEADER = struct.Struct("!BBHLL")
_PICTURE_ID = struct.Struct("!H")
_ABS_SEND_TIME = struct.Struct("!L")


def _names_used_by(cls: type) -> set[str]:
    """Every attribute name the class's own functions touch (its private state included)."""
    names: set[str] = set()
    for value in vars(cls).values():
        func = getattr(value, "fget", value)  # properties: their getter
        code = getattr(func, "__code__", None)
        if code is not None:
            names.update(code.co_names)
    return names


@functools.cache
def check_aiortc_shape() -> None:
    """Raise RuntimeError if aiortc/aioice no longer have what this module relies on."""
    missing = []
    for owner, names in (
            (RTCRtpSender, ("_run_rtp", "_next_encoded_frame", "_retransmit", "_ssrc",
                            "_enabled", "transport", "kind",
                            *(f"{_SENDER}{name}" for name in SENDER_ATTRS))),
            (RTCDtlsTransport, ("_send_rtp", "_state", "transport", "_tx_srtp",
                                _DTLS_TX_BYTES, _DTLS_TX_PACKETS)),
            (RTCIceTransport, ("_connection",)),
            (Connection, ("_nominated",)),
            (Vp8Encoder, ("_packetize", "picture_id"))):
        used = _names_used_by(owner)
        missing += [f"{owner.__name__}.{name}" for name in names
                    if not hasattr(owner, name) and name not in used]
    if missing:
        raise RuntimeError(f"aiortc internals changed shape; missing: {', '.join(missing)}")


def vp8_template(data: bytes) -> tuple[bytes, ...]:
    """A VP8 frame packetized as aiortc does (RFC 7741 descriptors with a 15-bit picture
    id), with picture id 0: `with_picture_id` makes each lane's payloads from it."""
    return tuple(Vp8Encoder._packetize(data, 0))


def with_picture_id(template: tuple[bytes, ...], picture_id: int) -> list[bytes]:
    # The descriptor is 2 bytes, then the picture id (M bit set), then the data; every
    # packet's split is the same whatever the id (its size is fixed at 2 bytes).
    pid = _PICTURE_ID.pack(0x8000 | picture_id)
    return [payload[:2] + pid + payload[4:] for payload in template]


def _extension_parts(extensions_map: HeaderExtensionsMap, mid: str | None
                     ) -> tuple[bytes, bytes, bool]:
    """(the header-extension bytes before the abs-send-time value, those after it, whether
    there is one), as aiortc's `HeaderExtensionsMap.set` writes them for mid and
    abs-send-time: written twice with different times, the three bytes that differ are the
    time."""
    def block(abs_send_time: int) -> bytes:
        packet = RtpPacket()
        packet.extensions.abs_send_time = abs_send_time
        packet.extensions.mid = mid
        return packet.serialize(extensions_map)[12:]  # after the fixed 12-byte header

    low, high = block(0), block(0xFFFFFF)
    if low == high:  # abs-send-time not negotiated: the block never changes
        return low, b"", False
    at = next(i for i in range(len(low)) if low[i] != high[i])
    if low[at:at + 3] != b"\x00\x00\x00" or high[at:at + 3] != b"\xff\xff\xff" \
            or low[at + 3:] != high[at + 3:]:
        raise RuntimeError("aiortc's abs-send-time extension changed shape")
    return low[:at], low[at + 3:], True


class RtpStream:
    """One sender's RTP packets, written and sent here instead of in aiortc's loop."""

    def __init__(self, sender: RTCRtpSender, encoder: Any) -> None:
        self.sender = sender
        self.encoder = encoder  # the sender's installed encoder (it keeps the VP8 picture id)
        self.ready = False
        self.video = sender.kind == "video"
        self._payload_type = 0
        self._sequence_number = 0
        self._timestamp_origin = 0
        self._ext_before = b""
        self._ext_after = b""
        self._has_abs_send_time = False
        self._history: dict[int, RtpPacket] = {}
        self._mid: str | None = None

    def start(self, codec: RTCRtpCodecParameters) -> None:
        sender = self.sender
        assert codec.payloadType is not None  # negotiated before a sender starts
        self._payload_type = codec.payloadType
        # As aiortc: a random start below 2^15 (no early wrap), a random timestamp origin.
        self._sequence_number = random_sequence_number()
        self._timestamp_origin = random32()
        self._mid = getattr(sender, _S_MID)
        self._history = getattr(sender, _S_RTP_HISTORY)
        self._ext_before, self._ext_after, self._has_abs_send_time = _extension_parts(
            getattr(sender, _S_RTP_HEADER_EXTENSIONS_MAP), self._mid)
        self.ready = True

    def send(self, payloads: list[bytes], timestamp: int, ntp: int,
             audio_level: int | None = None) -> None:
        """Send one frame's payloads (the last one marked). Raises ConnectionError when the
        connection is not (or no longer) up, as aiortc's send does."""
        dtls = self.sender.transport
        if dtls._state != State.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            raise ConnectionError("Cannot send data, not connected")
        udp, addr, protect = pair.protocol.transport, pair.remote_addr, dtls._tx_srtp.protect
        timestamp = (self._timestamp_origin + timestamp) & 0xFFFFFFFF
        abs_send_time = (ntp >> 14) & 0x00FFFFFF
        if audio_level is not None:
            extensions = None  # re-encoded audio carries its level: aiortc writes the header
        elif self._has_abs_send_time:
            extensions = self._ext_before + _ABS_SEND_TIME.pack(abs_send_time)[1:] \
                + self._ext_after
        else:
            extensions = self._ext_before
        first = _V2_X if extensions else _V2
        sequence_number, ssrc, last = self._sequence_number, self.sender._ssrc, len(payloads) - 1
        sent_bytes = octets = 0
        for index, payload in enumerate(payloads):
            marker = 0x80 if index == last else 0
            if extensions is None or self.video:
                # aiortc's own packet: for the retransmission history (video, which
                # receivers NACK), or for the rare header with an audio level.
                packet = RtpPacket(payload_type=self._payload_type,
                                   sequence_number=sequence_number, timestamp=timestamp,
                                   ssrc=ssrc, payload=payload, marker=1 if marker else 0)
                packet.extensions.abs_send_time = abs_send_time
                packet.extensions.mid = self._mid
                if audio_level is not None:
                    packet.extensions.audio_level = (False, -audio_level)
                self._history[sequence_number % RTP_HISTORY_SIZE] = packet
            if extensions is None:
                data = packet.serialize(getattr(self.sender,
                                                _S_RTP_HEADER_EXTENSIONS_MAP))
            else:
                data = _HEADER.pack(first, marker | self._payload_type, sequence_number,
                                    timestamp, ssrc) + extensions + payload
            data = protect(data)
            udp.sendto(data, addr)
            sent_bytes += len(data)
            octets += len(payload)
            sequence_number = (sequence_number + 1) & 0xFFFF
        self._sequence_number = sequence_number
        # What aiortc's loop keeps for its sender reports and getStats().
        sender = self.sender
        setattr(sender, _S_NTP_TIMESTAMP, ntp)
        setattr(sender, _S_RTP_TIMESTAMP, timestamp)
        setattr(sender, _S_OCTET_COUNT,
                getattr(sender, _S_OCTET_COUNT) + octets)
        setattr(sender, _S_PACKET_COUNT,
                getattr(sender, _S_PACKET_COUNT) + len(payloads))
        setattr(dtls, _DTLS_TX_BYTES, getattr(dtls, _DTLS_TX_BYTES) + sent_bytes)
        setattr(dtls, _DTLS_TX_PACKETS, getattr(dtls, _DTLS_TX_PACKETS) + len(payloads))

    def forward(self, data: bytes, vp8: tuple[bytes, ...] | None, timestamp: int,
                ntp: int) -> bool:
        """Send a forwarded frame now (already restamped); False when it cannot be sent
        (the sender is not started or disabled, or the connection is down: a frame
        forwarded to a closed connection is dropped, as aiortc drops it)."""
        if not self.ready or not self.sender._enabled:
            return False
        if vp8 is not None:
            encoder = self.encoder
            payloads = with_picture_id(vp8, encoder.picture_id)
            encoder.picture_id = (encoder.picture_id + 1) % (1 << 15)
        else:
            payloads = [data]
        try:
            self.send(payloads, timestamp, ntp)
        except ConnectionError:
            return False
        return True

    async def run(self, codec: RTCRtpCodecParameters) -> None:
        """aiortc's `_run_rtp`, for what still comes through the sender's track (decoded
        frames the engine re-encodes, forwarded frames queued before the sender started),
        sending through `send`."""
        sender = self.sender
        getattr(sender, _S_RTP_STARTED).set()
        self.start(codec)
        try:
            while True:
                if not getattr(sender, _S_TRACK):
                    await asyncio.sleep(0.02)
                    continue
                frame = await sender._next_encoded_frame(codec)
                if frame is None:
                    continue
                self.send(frame.payloads, frame.timestamp, clock.current_ntp_time(),
                          frame.audio_level)
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:
            # The exited event must be set whatever happens, or the sender's stop() hangs.
            logger.warning("RTP stream failed: %s", traceback.format_exc())
        self.ready = False
        track = getattr(sender, _S_TRACK)
        if track:
            track.stop()
            setattr(sender, _S_TRACK, None)
        setattr(sender, _S_ENCODER, None)
        getattr(sender, _S_RTP_EXITED).set()


def install(sender: RTCRtpSender, encoder: Any) -> RtpStream:
    """Send `sender`'s RTP through an `RtpStream` (before the sender starts)."""
    check_aiortc_shape()
    stream = RtpStream(sender, encoder)
    # aiortc's send() starts `self._run_rtp(codec)`: the instance's attribute wins over the
    # class's method (see the module's doc). Its RTCP loop stays aiortc's: skipping the
    # sender reports of idle lanes (a tenth of the datagrams) made Chrome keep sending
    # video it was asked to pause (tests/conferences/test_room_browser.py), not understood.
    sender._run_rtp = stream.run  # type: ignore[method-assign]
    return stream
