"""The conference media plan (telehealth.video.lastn), on simulated time: no media, no loop."""

from __future__ import annotations

import pytest

from telehealth.video.lastn import (
    ONE_BYTE_PROFILE,
    AudioLevel,
    ReceiverQuality,
    SelectorSettings,
    SpeakerSelector,
    find_extension,
    parse_audio_level,
    quality_for,
)

PACKET_S = 0.02  # Opus sends a packet every 20 ms
SPEECH = AudioLevel(voice=True, dbov=25)  # ordinary speech, -25 dBov
NOISE = AudioLevel(voice=False, dbov=80)  # a quiet room


def test_parse_rfc6464_value() -> None:
    assert parse_audio_level(bytes([0x80 | 25])) == AudioLevel(True, 25)
    assert parse_audio_level(bytes([127])) == AudioLevel(False, 127)
    assert AudioLevel(False, 127).loudness == 0
    with pytest.raises(ValueError):
        parse_audio_level(b"")


def test_find_extension_in_one_and_two_byte_blocks() -> None:
    # One-byte form: id 2 (len 2), padding, id 1 (len 1) = audio level.
    block = bytes([0x21, 0xAA, 0xBB, 0x00, 0x10, 0x80 | 30, 0x00, 0x00])
    assert find_extension(ONE_BYTE_PROFILE, block, 1) == bytes([0x80 | 30])
    assert find_extension(ONE_BYTE_PROFILE, block, 3) is None
    two_byte = bytes([0x05, 0x01, 0x80 | 40, 0x00])
    assert find_extension(0x1000, two_byte, 5) == bytes([0x80 | 40])
    assert find_extension(ONE_BYTE_PROFILE, bytes([0x13, 0x01]), 1) is None  # truncated
    assert find_extension(0x1234, block, 1) is None  # not an RFC 8285 block


def _run(selector: SpeakerSelector, levels: dict[str, AudioLevel], start: float,
         seconds: float) -> float:
    now = start
    while now < start + seconds:
        for participant, level in levels.items():
            selector.on_audio_level(participant, level, now)
        now += PACKET_S
    return now


def _room(n: int) -> SpeakerSelector:
    selector = SpeakerSelector()
    for i in range(n):
        selector.add(f"p{i}")
    return selector


def test_a_rising_level_makes_a_participant_active_within_one_second() -> None:
    selector = _room(12)
    quiet = {f"p{i}": NOISE for i in range(12)}
    now = _run(selector, quiet | {"p0": SPEECH}, 0.0, 3.0)
    assert selector.active == "p0"
    # p0 stops, p7 starts speaking: p7 is active (and on every screen) within a second.
    started = now
    while selector.active != "p7":
        now = _run(selector, quiet | {"p7": SPEECH}, now, PACKET_S)
        assert now - started <= 1.0
    for i in range(12):
        if i != 7:
            assert selector.plan_for(f"p{i}", ReceiverQuality.LOW, now).video == ("p7",)


def test_a_rising_level_into_silence_is_active_within_one_second() -> None:
    selector = _room(3)
    now, started = 0.0, 0.0
    while selector.active != "p2":
        now = _run(selector, {"p0": NOISE, "p1": NOISE, "p2": SPEECH}, now, PACKET_S)
        assert now - started <= 1.0


def test_the_active_speaker_does_not_flap_between_two_similar_voices() -> None:
    selector = _room(2)
    now = _run(selector, {"p0": SPEECH, "p1": NOISE}, 0.0, 1.0)
    assert selector.active == "p0"
    switches, last = 0, selector.active
    # Both speak at almost the same level, alternating louder every 100 ms, for 10 s.
    for step in range(100):
        louder, softer = (("p0", "p1") if step % 2 else ("p1", "p0"))
        now = _run(selector, {louder: AudioLevel(True, 24), softer: AudioLevel(True, 27)}, now,
                   0.1)
        if selector.active != last:
            switches, last = switches + 1, selector.active
    assert switches == 0


def test_plans_bound_audio_to_three_and_video_to_last_n() -> None:
    selector = _room(12)
    now = 0.0
    for speaker in ("p1", "p2", "p3", "p4", "p5", "p6"):  # six speakers take turns
        now = _run(selector, {speaker: SPEECH}, now, 1.5)
    for talkers in ("p7", "p8", "p9", "p10"):  # then four talk at once, quietly
        selector.on_audio_level(talkers, AudioLevel(True, 40), now)
    now = _run(selector, {p: AudioLevel(True, 40) for p in ("p7", "p8", "p9", "p10")}
               | {"p6": SPEECH}, now, 0.5)
    full = selector.plan_for("p0", ReceiverQuality.FULL, now)
    assert len(full.audio) <= 3 and full.audio[0] == "p6"
    assert full.video == ("p6", "p5", "p4", "p3")  # active first, then the most recent
    own = selector.plan_for("p6", ReceiverQuality.FULL, now)
    assert "p6" not in own.video and "p6" not in own.audio and len(own.video) == 4
    assert selector.plan_for("p0", ReceiverQuality.LOW, now).video == ("p6",)
    assert selector.plan_for("p0", ReceiverQuality.AUDIO_ONLY, now).video == ()


def test_a_participant_who_leaves_drops_out_of_every_plan() -> None:
    selector = _room(3)
    now = _run(selector, {"p1": SPEECH}, 0.0, 1.0)
    selector.remove("p1")
    assert selector.active is None
    assert selector.plan_for("p0", ReceiverQuality.FULL, now).video == ()


@pytest.mark.parametrize(("profile", "weak", "audio_only", "quality"), [
    ("standard", False, False, ReceiverQuality.FULL),
    ("low", False, False, ReceiverQuality.LOW),
    ("standard", True, False, ReceiverQuality.LOW),
    ("low", True, True, ReceiverQuality.AUDIO_ONLY),
])
def test_quality_for(profile: str, weak: bool, audio_only: bool,
                     quality: ReceiverQuality) -> None:
    assert quality_for(profile, weak, audio_only) == quality


def test_a_muted_participant_is_silent_to_the_plan_until_unmuted() -> None:
    selector = _room(4)
    now = _run(selector, {"p1": SPEECH}, 0.0, 1.0)
    assert selector.active == "p1"
    selector.set_muted("p1", True)
    assert "p1" not in selector.plan_for("p0", ReceiverQuality.FULL, now).audio
    # Shouting while muted does not keep the floor: a quieter voice takes it.
    start = now
    while selector.active != "p2":
        now = _run(selector, {"p1": AudioLevel(True, 10), "p2": AudioLevel(True, 40)}, now,
                   PACKET_S)
        assert now - start <= 1.0
    plan = selector.plan_for("p0", ReceiverQuality.FULL, now)
    assert plan.audio == ("p2",) and plan.video[:2] == ("p2", "p1")
    selector.set_muted("p1", False)
    now = _run(selector, {"p1": SPEECH}, now, 0.5)
    assert "p1" in selector.plan_for("p0", ReceiverQuality.FULL, now).audio


def test_levels_recorded_without_a_tick_do_not_change_the_speaker() -> None:
    selector = _room(2)
    now = 0.0
    for _n in range(50):
        selector.record("p1", SPEECH, now)
        now += PACKET_S
    selector.record("ghost", SPEECH, now)  # not (or no longer) in the room: ignored
    assert selector.active is None and selector.level("ghost", now) == 0.0
    selector.tick(now)  # the engine's timer: the voice is held from here...
    assert selector.active is None
    selector.record("p1", SPEECH, now + 0.1)
    selector.tick(now + 0.2)  # ...and takes the floor after the dwell into silence
    assert selector.active == "p1"


def test_before_anyone_speaks_video_goes_to_the_first_to_join() -> None:
    selector = SpeakerSelector(SelectorSettings(last_n=2, fill_from_roster=True))
    for participant in ("hub", "a", "b", "c"):
        selector.add(participant)
    assert selector.plan_for("a", ReceiverQuality.FULL, 0.0).video == ("hub", "b")
    assert selector.plan_for("hub", ReceiverQuality.LOW, 0.0).video == ("a",)
    now = _run(selector, {"c": SPEECH}, 0.0, 1.0)
    assert selector.plan_for("a", ReceiverQuality.FULL, now).video == ("c", "hub")


DTX_S = 0.4  # Opus DTX: a silent browser sends one comfort-noise packet every 400 ms


def _run_dtx(selector: SpeakerSelector, speaking: dict[str, AudioLevel], silent: list[str],
             start: float, seconds: float) -> float:
    """Speakers send every 20 ms; the silent send a packet of their silence every 400 ms."""
    now = start
    while now < start + seconds:
        for participant, level in speaking.items():
            selector.on_audio_level(participant, level, now)
        for participant in silent:
            if round(now / PACKET_S) % round(DTX_S / PACKET_S) == 0:
                selector.on_audio_level(participant, NOISE, now)
        selector.tick(now)
        now += PACKET_S
    return now


def test_dtx_gaps_are_silence_and_a_speaker_whose_packets_stop_falls_silent() -> None:
    selector = _room(4)
    others = ["p1", "p2", "p3"]
    now = _run_dtx(selector, {"p0": SPEECH}, others, 0.0, 2.0)
    assert selector.active == "p0" and selector.speaking(now) == {"p0"}
    # p0 stops: DTX, packets stop. Within half a second they no longer count as speaking
    # (nor get an audio lane), though they stay the active speaker until someone speaks.
    now = _run_dtx(selector, {}, ["p0", *others], now, 0.5)
    assert selector.speaking(now) == set()
    assert selector.plan_for("p1", ReceiverQuality.FULL, now).audio == ("p0",)  # active
    assert selector.loudest(now, 3) == []
    # Comfort noise every 400 ms for a long while: still nobody speaks, nobody switches.
    now = _run_dtx(selector, {}, ["p0", *others], now, 10.0)
    assert selector.active == "p0" and selector.speaking(now) == set()
    # Someone speaks out of DTX: on every screen within a second.
    started = now
    while selector.active != "p2":
        now = _run_dtx(selector, {"p2": SPEECH}, ["p0", "p1", "p3"], now, PACKET_S)
        assert now - started <= 1.0


def test_one_loud_packet_after_a_dtx_gap_is_one_frame_of_sound() -> None:
    """A cough (or a door) after seconds of DTX: its packet weighs as 20 ms of sound, not as
    the whole gap, so it neither counts as speech nor takes the floor."""
    selector = _room(2)
    now = _run_dtx(selector, {"p0": SPEECH}, ["p1"], 0.0, 1.0)
    now = _run_dtx(selector, {}, ["p0", "p1"], now, 3.0)
    selector.on_audio_level("p1", AudioLevel(True, 5), now)
    assert selector.level("p1", now) < selector.settings.speech_threshold
    now = _run_dtx(selector, {}, ["p0", "p1"], now + PACKET_S, 1.0)
    assert selector.active == "p0" and selector.speaking(now) == set()


def _six_speakers() -> tuple[SpeakerSelector, float]:
    selector = _room(12)
    now = 0.0
    for speaker in ("p1", "p2", "p3", "p4", "p5", "p6"):  # p6 speaks last: active
        now = _run(selector, {speaker: SPEECH}, now, 1.5)
    return selector, now


def test_a_pinned_participant_comes_first_in_every_plan_without_speaking() -> None:
    selector, now = _six_speakers()
    selector.set_pinned("p9")  # shares a screen, has never spoken
    full = selector.plan_for("p0", ReceiverQuality.FULL, now)
    assert full.video == ("p9", "p6", "p5", "p4")  # the pin, then last-N as before
    assert selector.plan_for("p0", ReceiverQuality.LOW, now).video == ("p9",)
    assert selector.plan_for("p0", ReceiverQuality.AUDIO_ONLY, now).video == ()
    own = selector.plan_for("p9", ReceiverQuality.FULL, now)
    assert own.video == ("p6", "p5", "p4", "p3")  # never their own screen back
    assert "p9" not in full.audio  # the pin is video only: audio still follows voices
    # The active speaker, pinned, is not shown twice.
    selector.set_pinned("p6")
    assert selector.plan_for("p0", ReceiverQuality.FULL, now).video == ("p6", "p5", "p4", "p3")


def test_a_new_pin_replaces_the_old_and_unpinning_restores_last_n() -> None:
    selector, now = _six_speakers()
    selector.set_pinned("p9")
    selector.set_pinned("p10")
    assert selector.plan_for("p0", ReceiverQuality.FULL, now).video == ("p10", "p6", "p5", "p4")
    selector.set_pinned(None)
    assert selector.plan_for("p0", ReceiverQuality.FULL, now).video == ("p6", "p5", "p4", "p3")
    assert selector.plan_for("p0", ReceiverQuality.LOW, now).video == ("p6",)


def test_leaving_unpins_and_nobody_outside_the_room_is_pinned() -> None:
    selector, now = _six_speakers()
    selector.set_pinned("p9")
    selector.remove("p9")
    assert selector.pinned is None
    assert selector.plan_for("p0", ReceiverQuality.FULL, now).video == ("p6", "p5", "p4", "p3")
    selector.set_pinned("stranger")
    assert selector.pinned is None
