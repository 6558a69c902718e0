"""The data types of the ``websockets`` API: :class:`State`, :class:`CloseCode`,
:class:`Request` and :class:`Response`, and their conversion to picows' objects.
"""

from __future__ import annotations

import email.utils
import enum
import http
from dataclasses import dataclass, field
from typing import Union

from multidict import CIMultiDict

from .._http11 import WSUpgradeRequest, WSUpgradeResponse
from .._types import _FlexibleIntEnum

__all__ = ["CloseCode", "Request", "Response", "State", "plain_response"]


class State(enum.IntEnum):
    """The state of a WebSocket connection (RFC 6455 4 and 7)."""

    #: The opening handshake is in progress.
    CONNECTING = 0
    #: The handshake succeeded: messages flow both ways.
    OPEN = 1
    #: A CLOSE frame was sent or received.
    CLOSING = 2
    #: The TCP connection is closed.
    CLOSED = 3


class CloseCode(_FlexibleIntEnum):
    """Close codes (RFC 6455 7.4.1) under websockets' names; unknown codes are accepted."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved.
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


@dataclass
class Request:
    """The opening handshake request: ``path`` (with the query) and ``headers``."""

    path: str
    headers: CIMultiDict[str]

    @classmethod
    def from_picows(cls, request: WSUpgradeRequest) -> Request:
        return cls(request.path.decode("ascii", "surrogateescape"), request.headers)


@dataclass
class Response:
    """An HTTP response to the opening handshake (101 when it succeeded)."""

    status_code: int
    reason_phrase: str
    headers: CIMultiDict[str]
    body: Union[bytes, bytearray] = field(default=b"")

    @property
    def status(self) -> int:
        """``status_code``, under the name of websockets' legacy API."""
        return self.status_code

    @classmethod
    def from_picows(cls, response: WSUpgradeResponse) -> Response:
        status = response.status
        return cls(int(status), status.phrase, response.headers, response.body or b"")

    def to_picows(self) -> WSUpgradeResponse:
        return WSUpgradeResponse(
            b"HTTP/1.1", int(self.status_code), self.headers.copy(), bytes(self.body)
        )


def plain_response(status: int, text: str) -> Response:
    """A plain-text response, as websockets' ``respond``/``reject`` build it."""
    code = http.HTTPStatus(status)
    body = text.encode("utf-8")
    headers: CIMultiDict[str] = CIMultiDict(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", "text/plain; charset=utf-8"),
        ]
    )
    return Response(code.value, code.phrase, headers, body)
