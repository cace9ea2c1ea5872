"""A mail server the tests can stop, hang and bring back on one port; draining the outbox."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from email import message_from_bytes, policy
from typing import Any

from aiosmtpd.controller import Controller

from telehealth.notifications.outbox import DeliveryResult, deliver_due


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MailServer:
    """aiosmtpd on a fixed loopback port: `up()`, `down()` (connections refused) or
    `silent()` (connections accepted, never answered: a hung mail server)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[tuple[list[str], Any]] = []
        self.lock = threading.Lock()
        self.controller: Controller | None = None
        self.listener: socket.socket | None = None
        self.held: list[socket.socket] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content,
                                                                    policy=policy.default)))
        return "250 Message accepted for delivery"

    def up(self) -> MailServer:
        self.down()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def silent(self) -> MailServer:
        self.down()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)  # the kernel accepts; nobody ever says "220"
        self.listener = listener
        return self

    def down(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def received(self) -> Counter[tuple[str, str]]:
        """How many times each (recipient, subject) arrived."""
        with self.lock:
            return Counter((rcpt, str(message["Subject"])) for rcpts, message in self.messages
                           for rcpt in rcpts)


def drain_outbox() -> DeliveryResult:
    """Deliver every due outbox message now, in the test's thread."""
    return deliver_due()
