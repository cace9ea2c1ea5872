"""Holding rooms on one node: what the call hub and the conference hub share.

A room (a consult's call, a conference session's room) lives in one process; the directory
(directory.py) says which. A hub that serves rooms claims them, keeps the claims of the
rooms it serves fresh from a keeper thread (which also writes this node's "alive" key),
hands a room's members over when its claim was lost, and gives every claim up at exit.
This is that logic once; each hub says which rooms it holds, how to send their members
away, and what its log lines call a room.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask_babel import gettext as _

from telehealth.errors import Unavailable
from telehealth.video.directory import (
    DEFAULT_TTL_SECONDS,
    CallDirectory,
    DirectoryUnavailable,
    Node,
    alive_seconds,
    is_node_url,
)

logger = logging.getLogger(__name__)


def lease_seconds(config: Any) -> float:
    """The directory's lease (VIDEO_DIRECTORY_TTL_SECONDS), its default when unset."""
    return float(config.get("VIDEO_DIRECTORY_TTL_SECONDS") or DEFAULT_TTL_SECONDS)


class ClaimedRooms:
    """Mixin of a hub whose rooms are claimed in a directory, one node per room.

    The hub sets `node`, `directory`, `lock` (an RLock), `engine` and `app`, calls
    `init_claims()`, and implements `held_rooms` and `move_members`; `after_keeper_round`
    is its hook for more work in each keeper round.
    """

    app: Any
    engine: Any
    node: Node
    directory: CallDirectory
    lock: threading.RLock
    # What log lines call one of this hub's rooms, before its id ("call of consult").
    room_label = "room"
    keeper_name = "room-claims"

    def init_claims(self) -> None:
        self.closing = threading.Event()  # no new claim from now on (shutting down)
        self.keeper_stop = threading.Event()  # set by close and stop_claim_keeper
        self.claim_keeper: threading.Thread | None = None

    # ---------------------------------------------------------------- the hub's part

    def held_rooms(self) -> list[int]:
        """The rooms with members on this node (their claims are kept)."""
        raise NotImplementedError

    def move_members(self, room_key: int, node_url: str | None) -> None:
        """Close this node's side of a room and send its pages to `node_url` (None: they
        ask the app where the room lives now)."""
        raise NotImplementedError

    def after_keeper_round(self) -> None:
        """More work for each keeper round, after the claims (none by default)."""

    # ---------------------------------------------------------------- which node

    def owner(self, room_key: int) -> str:
        """The node holding the room: this one when nobody held it (unless this node is
        shutting down)."""
        if self.closing.is_set():
            raise Unavailable(_("This server is restarting; please try again."))
        try:
            return self.directory.claim(room_key, self.node.id)
        except DirectoryUnavailable as exc:
            logger.warning("%s %s: directory unavailable: %s", self.room_label, room_key, exc)
            raise Unavailable(_("Calls are unavailable for a moment; please try again.")) \
                from exc

    def socket_url(self, room_key: int) -> str | None:
        """Where the room's page opens its socket: the owning node's URL (None: the page's
        own origin)."""
        owner = self.owner(room_key)
        # Every node that serves rooms looks after their claims.
        self.start_claim_keeper()
        if owner == self.node.id:
            return self.node.url
        if is_node_url(owner):
            return owner
        # Another process holds it but has no public URL (VIDEO_NODE_URL unset there).
        logger.error("%s %s is held by %s, which no page can reach", self.room_label,
                     room_key, owner)
        raise Unavailable(_("This call is held by a server that cannot be reached; "
                            "please try again in a minute."))

    def keep_claim(self, room_key: int) -> bool:
        """Refresh this node's claim on a room with members (claim it again if it lapsed)."""
        if self.directory.refresh(room_key, self.node.id):
            return True
        return self.directory.claim(room_key, self.node.id) == self.node.id

    def release_claim(self, room_key: int) -> None:
        """The room emptied: another node may hold it next."""
        try:
            self.directory.release(room_key, self.node.id)
        except DirectoryUnavailable as exc:
            logger.warning("%s %s: claim not released (it will expire): %s", self.room_label,
                           room_key, exc)

    def evict(self, room_key: int) -> None:
        """Stop serving a room here without ending it, and send its pages to its owner.

        No record is written: the room goes on on the node that holds it now.
        """
        try:
            owner = self.directory.owner(room_key)
        except DirectoryUnavailable:
            owner = None
        self.move_members(room_key, owner if owner and is_node_url(owner) else None)

    def release_all_claims(self) -> None:
        """Give up every claim and send every room's pages elsewhere (at exit): the rooms
        move at once, without waiting for the lease."""
        self.closing.set()
        self.keeper_stop.set()
        for room_key in self.held_rooms():
            self.release_claim(room_key)
            if self.engine.running:
                self.move_members(room_key, None)

    # ---------------------------------------------------------------- the keeper

    def keeper_interval(self) -> float:
        """Seconds between the keeper's rounds. A claim counts only while its node's
        "alive" key does (a few seconds, shorter than the lease): a round every third of
        that, or another node would take our rooms between two refreshes."""
        return alive_seconds(lease_seconds(self.app.config)) / 3

    def start_claim_keeper(self) -> None:
        """While rooms have members here, keep their claims fresh (one thread per hub)."""
        with self.lock:
            if self.claim_keeper is not None and self.claim_keeper.is_alive():
                return
            self.claim_keeper = threading.Thread(target=self._keep_claims, daemon=True,
                                                 name=self.keeper_name)
            self.claim_keeper.start()

    def _keep_claims(self) -> None:
        interval = self.keeper_interval()
        while not self.keeper_stop.is_set():
            self.keep_claims_once()
            self.keeper_stop.wait(interval)

    def stop_claim_keeper(self) -> None:
        """Stop the keeper (it starts again with the next room page or join)."""
        with self.lock:
            keeper = self.claim_keeper
            self.keeper_stop.set()
        if keeper is not None:
            keeper.join(10)
        with self.lock:
            if not self.closing.is_set():
                self.keeper_stop.clear()

    def keep_claims_once(self) -> None:
        """One round of the keeper: this node is alive, and its rooms' claims are fresh (or
        their members sent where the room lives now)."""
        try:
            self.directory.heartbeat(self.node.id)
        except DirectoryUnavailable as exc:
            logger.warning("node %s: heartbeat not written: %s", self.node.id, exc)
        for room_key in self.held_rooms():
            try:
                if not self.keep_claim(room_key):
                    # Another node took the room while our claim had lapsed (Redis
                    # restarted, or this process stalled): stop serving it here at once,
                    # or each side would sit alone in its own half of the room.
                    logger.error("%s %s: node %s lost its claim; moving its members",
                                 self.room_label, room_key, self.node.id)
                    self.evict(room_key)
            except DirectoryUnavailable as exc:
                logger.warning("%s %s: claim not refreshed: %s", self.room_label, room_key,
                               exc)
        try:
            self.after_keeper_round()
        except Exception:  # the keeper must go on keeping claims
            logger.exception("%s claims: the keeper's extra work failed", self.room_label)
