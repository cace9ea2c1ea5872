"""Calls through the real signaling: aiortc participants receive each other's media."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from telehealth.accounts.models import Role
from telehealth.extensions import db
from telehealth.video.models import CallMessage, VideoParticipation, VideoSession
from tests.video.conftest import SignalClient
from tests.video.peers import CallPeer


def latest_peers(client: SignalClient, count: int, timeout: float = 10.0) -> dict[str, Any]:
    """Wait for a `peers` event listing `count` others, each with its mids known."""
    return client.wait("peers", timeout, where=lambda d: len(d["peers"]) == count and all(
        p["video_mid"] for p in d["peers"]))


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def test_two_then_three_participants_receive_each_other(
        call_consult: Any, world: dict[str, Any], make_user: Callable[..., Any],
        signal_client: Callable[..., SignalClient]) -> None:
    colleague = make_user(Role.CLINICIAN, clinic=world["clinic"])
    people = [(world["clinician"], "red"), (world["specialist"], "blue"), (colleague, "green")]
    signals = [signal_client(user) for user, _colour in people]

    async def scenario() -> None:
        peers = [CallPeer(s, colour) for s, (_u, colour) in zip(signals, people, strict=True)]
        try:
            await peers[0].join(call_consult.id)
            await peers[1].join(call_consult.id)
            layouts = [await s.await_event("peers", where=lambda d: len(d["peers"]) == 1 and
                                           d["peers"][0]["video_mid"]) for s in signals[:2]]
            a, b = peers[0].participant_id, peers[1].participant_id

            def two_way() -> bool:
                return (peers[0].colours_from(layouts[0], b).get("blue", 0) >= 3
                        and peers[1].colours_from(layouts[1], a).get("red", 0) >= 3
                        and peers[0].loud_frames_from(layouts[0], b) > 10
                        and peers[1].loud_frames_from(layouts[1], a) > 10)

            await until(two_way)

            await peers[2].join(call_consult.id)
            layouts = [await s.await_event("peers", where=lambda d: len(d["peers"]) == 2 and all(
                p["video_mid"] for p in d["peers"])) for s in signals]
            ids = [p.participant_id for p in peers]
            colours = ["red", "blue", "green"]

            def everyone() -> bool:
                return all(
                    peers[i].colours_from(layouts[i], ids[j]).get(colours[j], 0) >= 3
                    and peers[i].loud_frames_from(layouts[i], ids[j]) > 10
                    for i in range(3) for j in range(3) if i != j)

            await until(everyone)
            # Nobody sees a colour that is not someone else's.
            for i in range(3):
                for j in range(3):
                    if i != j:
                        seen = peers[i].colours_from(layouts[i], ids[j])
                        assert max(seen, key=lambda c: seen[c]) == colours[j]
        finally:
            for peer in peers:
                await peer.close()

    asyncio.run(scenario())

    # The session is on the case: three participants, one profile.
    session = db.session.query(VideoSession).one()
    assert session.consult_id == call_consult.id and session.profile == "low"
    assert {p.display_name for p in session.participations} == {
        u.name for u, _c in people}


def test_leave_chat_and_session_record(call_consult: Any, world: dict[str, Any],
                                       signal_client: Callable[..., SignalClient]) -> None:
    clinician = signal_client(world["clinician"])
    specialist = signal_client(world["specialist"])

    async def scenario() -> None:
        one, two = CallPeer(clinician, "red"), CallPeer(specialist, "blue")
        try:
            await one.join(call_consult.id)
            await two.join(call_consult.id)
            clinician.emit("chat", {"consult_id": call_consult.id, "body": "Can you see the rash?"})
            said = await specialist.await_event("chat")
            assert said["body"] == "Can you see the rash?"
            specialist.emit("leave", {"consult_id": call_consult.id})
            assert (await specialist.await_event("left"))["consult_id"] == call_consult.id
            gone = await clinician.await_event("peer_state", where=lambda d: d["state"] == "left")
            assert gone["id"] == two.participant_id
            clinician.emit("leave", {"consult_id": call_consult.id})
            await clinician.await_event("peers", where=lambda d: d["peers"] == [])
        finally:
            await one.close()
            await two.close()

    asyncio.run(scenario())
    db.session.expire_all()
    session = db.session.query(VideoSession).one()
    deadline = time.monotonic() + 5
    while session.ended_at is None and time.monotonic() < deadline:
        time.sleep(0.1)
        db.session.expire_all()
    assert session.ended_at is not None
    assert all(p.left_at is not None for p in db.session.query(VideoParticipation))
    assert db.session.query(CallMessage).one().body == "Can you see the rash?"


def test_reconnect_after_a_dropped_page(call_consult: Any, world: dict[str, Any],
                                        signal_client: Callable[..., SignalClient]) -> None:
    first = signal_client(world["clinician"])
    specialist = signal_client(world["specialist"])
    second = signal_client(world["clinician"], connect=False)  # the reloaded page

    async def scenario() -> None:
        clinician, other = CallPeer(first, "red"), CallPeer(specialist, "blue")
        again = None
        try:
            await clinician.join(call_consult.id)
            await other.join(call_consult.id)
            layout = await specialist.await_event(
                "peers", where=lambda d: d["peers"] and d["peers"][0]["video_mid"])
            await until(lambda: other.colours_from(layout, clinician.participant_id)
                        .get("red", 0) >= 2)

            # The clinician's page dies: socket and peer connection gone, no "leave".
            await asyncio.get_running_loop().run_in_executor(None, first.close)
            await clinician.close()
            state = await specialist.await_event("peer_state",
                                                 where=lambda d: d["state"] == "reconnecting")
            assert state["id"] == clinician.participant_id

            # The reloaded page joins the same call and media flows again.
            await asyncio.get_running_loop().run_in_executor(None, second.connect)
            again = CallPeer(second, "red")
            await again.join(call_consult.id)
            assert again.participant_id == clinician.participant_id
            layout = await specialist.await_event(
                "peers", where=lambda d: d["peers"] and d["peers"][0]["video_mid"]
                and d["peers"][0]["state"] != "reconnecting")
            mid = layout["peers"][0]["video_mid"]
            before = other.received[mid].frames if mid in other.received else 0
            await until(lambda: other.received[mid].frames > before + 10)
            mine = await second.await_event(
                "peers", where=lambda d: d["peers"] and d["peers"][0]["video_mid"])
            await until(lambda: again.colours_from(mine, other.participant_id)
                        .get("blue", 0) >= 2)
        finally:
            for peer in (clinician, other, again):
                if peer is not None:
                    await peer.close()

    asyncio.run(scenario())
    session = db.session.query(VideoSession).one()
    reasons = sorted(p.left_reason for p in session.participations if p.left_at)
    assert "rejoined" in reasons

