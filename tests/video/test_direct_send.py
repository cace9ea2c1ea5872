"""direct_send writes the packets aiortc's own send loop would, and notices when aiortc's
internals it reaches into change shape (an aiortc upgrade must fail here, not in a call)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc import RTCRtpSender
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket

from telehealth.video import direct_send

ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
MID = "urn:ietf:params:rtp-hdrext:sdes:mid"


def test_aiortc_still_has_the_internals_direct_send_uses() -> None:
    direct_send.check_aiortc_shape.cache_clear()
    direct_send.check_aiortc_shape()
    sender = direct_send._names_used_by(RTCRtpSender)
    for name in direct_send.SENDER_ATTRS:
        assert f"_RTCRtpSender__{name}" in sender
    # The loop it replaces still is a coroutine method taking the codec, started by send().
    assert asyncio.iscoroutinefunction(RTCRtpSender._run_rtp)
    assert "_run_rtp" in RTCRtpSender.send.__code__.co_names


@pytest.mark.parametrize("size", [1, 100, 1196, 1197, 3000, 10_000])
@pytest.mark.parametrize("picture_id", [0, 1, 255, 256, 32767])
def test_vp8_payloads_match_aiortcs_packetizer(size: int, picture_id: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    template = direct_send.vp8_template(data)
    assert direct_send.with_picture_id(template, picture_id) == \
        Vp8Encoder._packetize(data, picture_id)


class _Udp:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))


class _Srtp:
    def protect(self, data: bytes) -> bytes:
        return b"srtp:" + data


class _Pair:
    def __init__(self, udp: _Udp) -> None:
        self.protocol = type("Protocol", (), {"transport": udp})()
        self.remote_addr = ("127.0.0.1", 9)


class _Dtls:
    """Stands in for RTCDtlsTransport: state, SRTP session, ICE connection, counters."""

    def __init__(self, udp: _Udp) -> None:
        self.state = "connected"
        self._state = State.CONNECTED
        self._tx_srtp = _Srtp()
        connection = type("Connection", (), {"_nominated": {1: _Pair(udp)}})()
        self.transport = type("Ice", (), {"_connection": connection})()
        self._RTCDtlsTransport__tx_bytes = 0
        self._RTCDtlsTransport__tx_packets = 0


def _stream(kind: str, extensions: list[tuple[int, str]], mid: str = "3"
            ) -> tuple[direct_send.RtpStream, RTCRtpSender, _Udp, _Dtls]:
    udp = _Udp()
    dtls = _Dtls(udp)
    sender = RTCRtpSender(kind, dtls)  # type: ignore[arg-type]
    codec = RTCRtpCodecParameters(mimeType="video/VP8" if kind == "video" else "audio/opus",
                                  clockRate=90000 if kind == "video" else 48000,
                                  payloadType=97 if kind == "video" else 111)
    parameters = RTCRtpSendParameters(
        codecs=[codec], muxId=mid,
        headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=uri)
                          for i, uri in extensions])
    sender._RTCRtpSender__rtp_header_extensions_map.configure(parameters)
    sender._RTCRtpSender__mid = mid  # type: ignore[attr-defined]
    encoder = Vp8Encoder() if kind == "video" else None
    stream = direct_send.RtpStream(sender, encoder)
    stream.start(codec)
    return stream, sender, udp, dtls


@pytest.mark.parametrize("kind", ["audio", "video"])
@pytest.mark.parametrize("extensions", [[(1, MID), (3, ABS_SEND_TIME)],
                                        [(9, ABS_SEND_TIME), (4, MID)],
                                        [(1, MID)], []])
def test_packets_are_those_aiortcs_loop_writes(kind: str,
                                               extensions: list[tuple[int, str]]) -> None:
    async def run() -> None:
        stream, sender, udp, dtls = _stream(kind, extensions)
        extensions_map = sender._RTCRtpSender__rtp_header_extensions_map
        ntp = (3_900_000_000 << 32) | 123_456_789
        start = stream._sequence_number
        stream.send([b"first", b"second!", b"last"], 1234, ntp)
        stream.send([b"x" * 50], 5000, ntp + (1 << 32))
        expected = []
        for n, (payload, timestamp, when, marker) in enumerate([
                (b"first", 1234, ntp, 0), (b"second!", 1234, ntp, 0), (b"last", 1234, ntp, 1),
                (b"x" * 50, 5000, ntp + (1 << 32), 1)]):
            packet = RtpPacket(payload_type=97 if kind == "video" else 111,
                               sequence_number=(start + n) & 0xFFFF,
                               timestamp=(stream._timestamp_origin + timestamp) & 0xFFFFFFFF,
                               ssrc=sender._ssrc, payload=payload, marker=marker)
            packet.extensions.abs_send_time = (when >> 14) & 0xFFFFFF
            packet.extensions.mid = "3"
            expected.append(b"srtp:" + packet.serialize(extensions_map))
        assert [data for data, _addr in udp.sent] == expected
        # What aiortc's RTCP sender and getStats read.
        assert sender._RTCRtpSender__packet_count == 4  # type: ignore[attr-defined]
        assert sender._RTCRtpSender__octet_count == 5 + 7 + 4 + 50  # type: ignore[attr-defined]
        assert sender._RTCRtpSender__ntp_timestamp == ntp + (1 << 32)  # type: ignore[attr-defined]
        assert dtls._RTCDtlsTransport__tx_packets == 4
        assert dtls._RTCDtlsTransport__tx_bytes == sum(len(d) for d in expected)
        history = sender._RTCRtpSender__rtp_history  # type: ignore[attr-defined]
        if kind == "video":  # what a NACK retransmits
            last = history[(start + 3) % RTP_HISTORY_SIZE]
            assert b"srtp:" + last.serialize(extensions_map) == expected[3]
        else:
            assert not history

    asyncio.run(run())


def test_forward_numbers_vp8_pictures_on_the_senders_encoder() -> None:
    async def run() -> None:
        stream, sender, udp, _dtls = _stream("video", [(1, MID), (3, ABS_SEND_TIME)])
        encoder = stream.encoder
        encoder.picture_id = 32767
        frame = bytes(2000)
        assert stream.forward(frame, direct_send.vp8_template(frame), 90, 1 << 32)
        assert stream.forward(frame, direct_send.vp8_template(frame), 180, 1 << 32)
        payloads = [RtpPacket.parse(data[len(b"srtp:"):]).payload for data, _a in udp.sent]
        assert payloads == Vp8Encoder._packetize(frame, 32767) + Vp8Encoder._packetize(frame, 0)
        assert encoder.picture_id == 1
        # A disabled sender drops the frame, as aiortc's loop does.
        sender._enabled = False
        assert not stream.forward(frame, direct_send.vp8_template(frame), 270, 1 << 32)
        assert len(udp.sent) == 4

    asyncio.run(run())


def test_a_connection_that_is_down_drops_the_frame() -> None:
    async def run() -> None:
        stream, _sender, udp, dtls = _stream("audio", [(1, MID)])
        dtls._state = State.CLOSED
        assert not stream.forward(b"opus", None, 960, 1 << 32)
        with pytest.raises(ConnectionError):
            stream.send([b"opus"], 960, 1 << 32)
        assert not udp.sent

    asyncio.run(run())


def test_install_replaces_the_senders_rtp_loop() -> None:
    async def run() -> None:
        udp = _Udp()
        sender = RTCRtpSender("video", _Dtls(udp))  # type: ignore[arg-type]
        encoder = Vp8Encoder()
        stream = direct_send.install(sender, encoder)
        assert sender._run_rtp == stream.run
        assert stream.encoder is encoder and not stream.ready

    asyncio.run(run())
