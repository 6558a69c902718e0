"""Type aliases of the ``websockets`` API (``websockets.typing``)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, NewType, Optional, Tuple, Union

from .._types import WSHeadersLike

__all__ = [
    "BytesLike",
    "Data",
    "DataLike",
    "ExtensionName",
    "ExtensionParameter",
    "HeadersLike",
    "LoggerLike",
    "MaxQueue",
    "MaxSize",
    "Origin",
    "StatusLike",
    "Subprotocol",
]

BytesLike = Union[bytes, bytearray, memoryview]
#: A message as ``recv`` returns it: str for TEXT, bytes for BINARY.
Data = Union[str, bytes]
#: What ``send`` accepts for one message or one fragment.
DataLike = Union[str, bytes, bytearray, memoryview]
HeadersLike = WSHeadersLike
#: ``max_size``: a limit for messages, or (messages, frames); None disables it.
MaxSize = Union[int, None, Tuple[Optional[int], Optional[int]]]
#: ``max_queue``: a high-water mark, or (high, low); None disables flow control.
MaxQueue = Union[int, None, Tuple[Optional[int], Optional[int]]]
LoggerLike = Union[str, logging.Logger, "logging.LoggerAdapter[Any]", None]
StatusLike = Union[HTTPStatus, int]
Origin = NewType("Origin", str)
Subprotocol = NewType("Subprotocol", str)
ExtensionName = NewType("ExtensionName", str)
ExtensionParameter = Tuple[str, Optional[str]]
