"""Enums, constants and type aliases shared by every layer.

The enums mirror upstream picows' Cython ``cpdef enum`` types: they are ``IntEnum``
subclasses whose members are plain ``int`` values, and they are *flexible*: an
unknown value (a close code 4000 from an application, an opcode 0x4 passed to
``send``) becomes a pseudo-member instead of raising ``ValueError``.
"""

from __future__ import annotations

import codecs
import enum
from collections.abc import Iterable, Mapping
from typing import NewType, Optional, Union

__all__ = [
    "PICOWS_DEBUG_LL",
    "WSAutoPingStrategy",
    "WSBuffer",
    "WSCloseCode",
    "WSHeadersLike",
    "WSHost",
    "WSMsgType",
    "WSPort",
    "decode_utf8",
]

#: Logging level of picows' very verbose traces (below ``logging.DEBUG``).
PICOWS_DEBUG_LL = 9

WSHost = NewType("WSHost", str)
WSPort = NewType("WSPort", int)
WSBuffer = Union[str, bytes, bytearray, memoryview]
WSHeadersLike = Union[Mapping[str, str], Iterable["tuple[str, str]"]]


def decode_utf8(data: Union[bytes, bytearray, memoryview]) -> str:
    """Strict UTF-8 decoding of any buffer, without copying it first.

    Not ``str(data, "utf-8")``: PyPy 7.3's str() constructor accepts encoded
    surrogates (ED A0 80), which RFC 3629 forbids; the codec function rejects them.
    """
    return codecs.utf_8_decode(data, "strict", True)[0]


class _FlexibleIntEnum(enum.IntEnum):
    """An ``IntEnum`` that turns unknown integers into cached pseudo-members."""

    @classmethod
    def _missing_(cls, value: object) -> Optional[_FlexibleIntEnum]:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        pseudo = int.__new__(cls, value)
        pseudo._name_ = None  # type: ignore[assignment]
        pseudo._value_ = value
        # setdefault keeps one object per value, even if two threads race here.
        return cls._value2member_map_.setdefault(value, pseudo)  # type: ignore[return-value]

    def __repr__(self) -> str:
        if self._name_ is None:
            return f"<{type(self).__name__}: {self._value_}>"
        return f"<{type(self).__name__}.{self._name_}: {self._value_}>"

    def __str__(self) -> str:
        if self._name_ is None:
            return f"{type(self).__name__}.{self._value_}"
        return f"{type(self).__name__}.{self._name_}"

    def __format__(self, format_spec: str) -> str:
        # f"{code}" gives the number, as for int, on every Python version.
        return int.__format__(int(self), format_spec)


class WSMsgType(_FlexibleIntEnum):
    """Frame opcodes, RFC 6455 section 5.2 and 11.8."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class WSCloseCode(_FlexibleIntEnum):
    """Close status codes, RFC 6455 section 7.4.1 and the IANA registry."""

    NO_INFO = 0
    OK = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    ABNORMAL_CLOSURE = 1006
    INVALID_TEXT = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014


class WSAutoPingStrategy(_FlexibleIntEnum):
    """When the auto-ping loop sends its PING."""

    #: Ping only after ``auto_ping_idle_timeout`` seconds without incoming data.
    PING_WHEN_IDLE = 1
    #: Ping every ``auto_ping_idle_timeout`` seconds, whatever arrives.
    PING_PERIODICALLY = 2
