"""``WSListener``: the base class of user handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._types import WSMsgType

if TYPE_CHECKING:
    from ._frames import WSFrame
    from ._transport import WSTransport

__all__ = ["WSListener"]


class WSListener:
    """Base class for user handlers.

    Every ``on_ws_*`` method receives the connection's :class:`WSTransport` first;
    it is always the same object for the same connection.
    """

    __slots__ = ("__weakref__",)

    def on_ws_connected(self, transport: WSTransport) -> None:
        """The handshake is complete; frames can be sent and received.

        If this raises, picows sends CLOSE(INTERNAL_ERROR) and disconnects.  On
        the client, the exception is re-raised by ``wait_disconnected``; on the
        server, it is logged.
        """

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """A frame arrived.  ``frame`` is only valid until this method returns."""

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        """The connection is gone (called only if the handshake completed)."""

    def send_user_specific_ping(self, transport: WSTransport) -> None:
        """Send the auto-ping / round-trip probe; override to send something else."""
        transport.send_ping()

    def is_user_specific_pong(self, frame: WSFrame) -> bool:
        """Whether ``frame`` answers our ping (asked only while a pong is awaited).

        True consumes the frame: ``on_ws_frame`` is not called for it.
        """
        return frame.msg_type == WSMsgType.PONG

    def pause_writing(self) -> None:
        """The transport's write buffer went over its high watermark.

        Informative only: sends keep being queued.  If not overridden, picows
        logs a warning instead.
        """

    def resume_writing(self) -> None:
        """The transport's write buffer drained below its low watermark."""


def overrides(listener: Any, name: str) -> bool:
    """Whether ``listener``'s class replaces ``WSListener.<name>``."""
    return getattr(type(listener), name, None) is not getattr(WSListener, name)
