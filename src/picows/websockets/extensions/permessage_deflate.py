"""permessage-deflate, RFC 7692: negotiation, compression, bounded decompression.

Sans-I/O: bytes in, bytes out, no asyncio.  Three parts:

* :class:`PerMessageDeflate` compresses outgoing and decompresses incoming
  messages once the handshake agreed on the parameters.  Decompression is
  incremental and capped (7.2.2 inflates whatever the peer sends; a few hundred
  kilobytes of zeros become gigabytes): a message over its size limit stops
  after at most one byte beyond the limit, whether it came in one frame or many.
* :class:`ClientPerMessageDeflateFactory` builds the client's offer and checks the
  server's answer (7.1); :class:`ServerPerMessageDeflateFactory` answers an offer.
  Both take the parameters of websockets' factories of the same names, and follow
  the same negotiation tables, so that an application configures them alike.
* :func:`enable_client_permessage_deflate` / :func:`enable_server_permessage_deflate`
  give websockets' defaults for ``compression="deflate"``.

One deliberate difference: zlib cannot deflate with a 256-byte window (raw
``wbits=-8`` is refused, madler/zlib#171), and websockets therefore refuses a
``*_max_window_bits=8`` meant for its compressor.  We compress such a connection
with Huffman coding only: output without back-references, which a decoder with
any window accepts.  So a peer's 8 is honoured instead of refused.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Optional, Union

from ..._exceptions import WSProtocolError
from ..._types import WSCloseCode
from ..exceptions import (
    DuplicateParameter,
    InvalidParameterName,
    InvalidParameterValue,
    NegotiationError,
)
from ..headers import parse_extension

__all__ = [
    "ClientPerMessageDeflateFactory",
    "PerMessageDeflate",
    "ServerPerMessageDeflateFactory",
    "enable_client_permessage_deflate",
    "enable_server_permessage_deflate",
]

Buffer = Union[bytes, bytearray, memoryview]
Params = Sequence[tuple[str, Optional[str]]]

NAME = "permessage-deflate"

# 7.2.1: the compressor's sync flush ends with an empty stored block, "0x00 0x00
# 0xff 0xff", which the sender removes; 7.2.2: the receiver appends it back.
_EMPTY_BLOCK = b"\x00\x00\xff\xff"
# Below this size a final frame is inflated with its tail in one call (measured:
# the copy is cheaper than a second call; websockets draws the line there too).
_SMALL_FRAME = 2048
# 7.1.2.1: "a decimal integer value without leading zeroes between 8 to 15"
_WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}


class PerMessageDeflate:
    """The agreed compression of one connection, seen from one side.

    ``remote_*`` are the peer's compressor's parameters (what we inflate),
    ``local_*`` our compressor's.  A ``*_no_context_takeover`` side starts every
    message with a fresh (de)compressor (7.1.1); otherwise the LZ77 window is kept
    from message to message.
    """

    name = NAME

    def __init__(
        self,
        remote_no_context_takeover: bool,
        local_no_context_takeover: bool,
        remote_max_window_bits: int,
        local_max_window_bits: int,
        compress_settings: Optional[dict[str, Any]] = None,
    ) -> None:
        if not 8 <= remote_max_window_bits <= 15 or not 8 <= local_max_window_bits <= 15:
            raise ValueError("window bits must be between 8 and 15")
        settings = dict(compress_settings or {})
        if "wbits" in settings:
            raise ValueError("compress_settings must not include wbits")
        if local_max_window_bits == 8:
            # See the module docstring: no back-references, so no window at all.
            settings["strategy"] = zlib.Z_HUFFMAN_ONLY
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_max_window_bits = remote_max_window_bits
        self.local_max_window_bits = local_max_window_bits
        self._compress_wbits = -max(local_max_window_bits, 9)
        self._compress_settings = settings
        self._decoder: Any = None
        self._encoder: Any = None
        self._frame_api_compressed = False  # see decode_frame()

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_max_window_bits={self.remote_max_window_bits}, "
            f"local_max_window_bits={self.local_max_window_bits})"
        )

    def decompress(
        self, data: Buffer, *, first: bool, fin: bool, max_length: Optional[int]
    ) -> bytes:
        """Inflate one frame of a compressed message.

        ``first``: the message's first frame; ``fin``: its last.  ``max_length`` is
        how many bytes this frame may still inflate to (None: no limit).  Raises
        :class:`~picows.WSProtocolError`: 1009 when the message would be larger
        (after inflating at most ``max_length + 1`` bytes), 1002 when the data is
        not a valid DEFLATE stream.
        """
        decoder = self._decoder
        if decoder is None or (first and self.remote_no_context_takeover):
            decoder = self._decoder = zlib.decompressobj(wbits=-self.remote_max_window_bits)
        tail_pending = fin  # the 4-byte tail of 7.2.2 is still to inflate
        if fin and len(data) < _SMALL_FRAME:
            # One zlib call instead of two: copying a small frame costs less.
            data, tail_pending = bytes(data) + _EMPTY_BLOCK, False
        try:
            if max_length is None:
                out: bytes = decoder.decompress(data)
                if tail_pending:
                    out += decoder.decompress(_EMPTY_BLOCK)
            else:
                # One byte more than allowed is enough to know the message is too
                # big; zlib's max_length=0 would mean "no limit", so never pass 0.
                out = decoder.decompress(data, max_length + 1)
                if tail_pending and len(out) <= max_length:
                    out += decoder.decompress(_EMPTY_BLOCK, max_length - len(out) + 1)
                if len(out) > max_length:
                    raise WSProtocolError(
                        WSCloseCode.MESSAGE_TOO_BIG, "message too big after decompression"
                    )
        except zlib.error as exc:
            raise WSProtocolError(
                WSCloseCode.PROTOCOL_ERROR, f"decompression failed: {exc}"
            ) from None
        if fin and self.remote_no_context_takeover:
            self._decoder = None  # the next message starts afresh: free the window now
        return out

    def compress(self, data: Buffer, *, first: bool, fin: bool) -> bytes:
        """Deflate one frame of an outgoing message (7.2.1)."""
        encoder = self._encoder
        if encoder is None or (first and self.local_no_context_takeover):
            encoder = self._encoder = zlib.compressobj(
                wbits=self._compress_wbits, **self._compress_settings
            )
        out: bytes = encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH)
        if fin:
            # 7.2.1: "Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the tail end."
            if out[-4:] != _EMPTY_BLOCK:
                raise AssertionError("zlib sync flush did not end with an empty block")
            out = out[:-4]
            if self.local_no_context_takeover:
                self._encoder = None
        return out

    # -- upstream picows' frame-level API (``_PerMessageDeflate``) ---------------

    @classmethod
    def from_response_header(cls, header: str) -> PerMessageDeflate:
        """The compression a client agrees to when a server answers ``header`` to
        the default offer; NegotiationError (an InvalidHandshake) if it can't."""
        extensions = parse_extension(header)
        if len(extensions) != 1:
            raise NegotiationError(f"expected one extension, got {header!r}")
        name, params = extensions[0]
        if name != NAME:
            raise NegotiationError(f"unsupported extension: {name}")
        return ClientPerMessageDeflateFactory().process_response_params(params, [])

    def encode_frame(self, msg_type: int, data: Union[str, Buffer], fin: bool) -> memoryview:
        """Compress one frame of a message whose first frame has type ``msg_type``
        (CONTINUATION for the following ones); the payload to send with RSV1 set on
        the first frame."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        return memoryview(self.compress(data, first=msg_type != 0, fin=fin))

    def decode_frame(self, frame: Any, max_length: int) -> bytes:
        """The data of a received frame (a :class:`~picows.WSFrame`), inflated if
        its message is compressed.  ``max_length`` bounds the output as zlib's
        does: 0 means no limit."""
        payload = frame.get_payload_as_memoryview()
        first = frame.msg_type != 0
        if not first:
            if frame.rsv1:
                raise WSProtocolError(
                    WSCloseCode.PROTOCOL_ERROR, "unexpected rsv1 on continuation frame"
                )
            if not self._frame_api_compressed:
                return bytes(payload)
        elif not frame.rsv1:
            return bytes(payload)
        self._frame_api_compressed = not frame.fin
        return self.decompress(
            payload, first=first, fin=bool(frame.fin), max_length=max_length or None
        )


def _extract(
    params: Params, *, is_server: bool
) -> tuple[bool, bool, Optional[int], Union[int, bool, None]]:
    """The four parameters of 7.1 from ``params``; ``client_max_window_bits`` may be
    True (present without a value), which only an offer may say (7.1.2.2)."""
    server_nct = client_nct = False
    server_bits: Optional[int] = None
    client_bits: Union[int, bool, None] = None
    seen: set[str] = set()
    for name, value in params:
        # 7.1: "MUST NOT include more than one instance of each parameter"
        if name in seen:
            raise DuplicateParameter(name)
        seen.add(name)
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:  # 7.1.1.1 / 7.1.1.2: "has no value"
                raise InvalidParameterValue(name, value)
            if name == "server_no_context_takeover":
                server_nct = True
            else:
                client_nct = True
        elif name == "server_max_window_bits":
            if value not in _WINDOW_BITS:
                raise InvalidParameterValue(name, value)
            server_bits = _WINDOW_BITS[value]
        elif name == "client_max_window_bits":
            if value is None and is_server:
                client_bits = True
            elif value in _WINDOW_BITS:
                client_bits = _WINDOW_BITS[value]
            else:
                raise InvalidParameterValue(name, value)
        else:
            raise InvalidParameterName(name)
    return server_nct, client_nct, server_bits, client_bits


def _build(
    server_nct: bool,
    client_nct: bool,
    server_bits: Optional[int],
    client_bits: Union[int, bool, None],
) -> list[tuple[str, Optional[str]]]:
    params: list[tuple[str, Optional[str]]] = []
    if server_nct:
        params.append(("server_no_context_takeover", None))
    if client_nct:
        params.append(("client_no_context_takeover", None))
    if server_bits:
        params.append(("server_max_window_bits", str(server_bits)))
    if client_bits is True:
        params.append(("client_max_window_bits", None))
    elif client_bits:
        params.append(("client_max_window_bits", str(client_bits)))
    return params


def _check_bits(name: str, value: Union[int, bool, None], allow_true: bool) -> None:
    if value is None or (value is True and allow_true):
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 8 <= value <= 15:
        raise ValueError(f"{name} must be between 8 and 15")


class ClientPerMessageDeflateFactory:
    """The client's offer (7.1) and its check of the server's answer.

    ``client_max_window_bits=True`` offers the parameter without a value: the
    server may then limit our window.  ``compress_settings`` go to
    :func:`zlib.compressobj` (not ``wbits``).
    """

    name = NAME

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: Optional[int] = None,
        client_max_window_bits: Union[int, bool, None] = True,
        compress_settings: Optional[dict[str, Any]] = None,
    ) -> None:
        _check_bits("server_max_window_bits", server_max_window_bits, False)
        _check_bits("client_max_window_bits", client_max_window_bits, True)
        if compress_settings is not None and "wbits" in compress_settings:
            raise ValueError("compress_settings must not include wbits")
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.compress_settings = compress_settings

    def get_request_params(self) -> list[tuple[str, Optional[str]]]:
        return _build(
            self.server_no_context_takeover,
            self.client_no_context_takeover,
            self.server_max_window_bits,
            self.client_max_window_bits,
        )

    def process_response_params(
        self, params: Params, accepted_extensions: Sequence[Any]
    ) -> PerMessageDeflate:
        """The agreed compression, or NegotiationError if the answer breaks 7.1."""
        if any(getattr(ext, "name", None) == NAME for ext in accepted_extensions):
            raise NegotiationError(f"received duplicate {NAME}")
        server_nct, client_nct, server_bits, client_bits = _extract(params, is_server=False)
        # 7.1.1.1: a server that is asked not to take over its context must agree.
        if self.server_no_context_takeover and not server_nct:
            raise NegotiationError("expected server_no_context_takeover")
        # 7.1.1.2: the server may omit it; we still honour what we asked for.
        client_nct = client_nct or self.client_no_context_takeover
        # 7.1.2.1: the server's window may only be what we allowed, or smaller.
        if self.server_max_window_bits is not None:
            if server_bits is None:
                raise NegotiationError("expected server_max_window_bits")
            if server_bits > self.server_max_window_bits:
                raise NegotiationError("unsupported server_max_window_bits")
        # 7.1.2.2: the server may set ours only if we offered the parameter, and
        # never above the value we offered.
        if self.client_max_window_bits is None:
            if client_bits is not None:
                raise NegotiationError("unexpected client_max_window_bits")
        elif self.client_max_window_bits is not True:
            if client_bits is None:
                client_bits = self.client_max_window_bits
            elif client_bits > self.client_max_window_bits:
                raise NegotiationError("unsupported client_max_window_bits")
        return PerMessageDeflate(
            server_nct,  # remote: the server compresses what we inflate
            client_nct,
            server_bits or 15,
            int(client_bits or 15),
            self.compress_settings,
        )


class ServerPerMessageDeflateFactory:
    """The server's answer to a client's offer (7.1), as websockets negotiates it.

    ``server_no_context_takeover`` and ``client_no_context_takeover`` are imposed
    even if the client did not ask; ``server_max_window_bits`` caps our window;
    ``client_max_window_bits`` caps the client's when it offered the parameter
    (``require_client_max_window_bits``: decline a client that did not).
    """

    name = NAME

    def __init__(
        self,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_max_window_bits: Optional[int] = None,
        client_max_window_bits: Optional[int] = None,
        compress_settings: Optional[dict[str, Any]] = None,
        require_client_max_window_bits: bool = False,
    ) -> None:
        _check_bits("server_max_window_bits", server_max_window_bits, False)
        _check_bits("client_max_window_bits", client_max_window_bits, False)
        if compress_settings is not None and "wbits" in compress_settings:
            raise ValueError("compress_settings must not include wbits")
        if require_client_max_window_bits and client_max_window_bits is None:
            raise ValueError("require_client_max_window_bits needs client_max_window_bits")
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.compress_settings = compress_settings
        self.require_client_max_window_bits = require_client_max_window_bits

    def process_request_params(
        self, params: Params, accepted_extensions: Sequence[Any]
    ) -> tuple[list[tuple[str, Optional[str]]], PerMessageDeflate]:
        """The response parameters and the agreed compression for one offer.

        NegotiationError (or another NegotiationError subclass for a malformed
        offer) means this offer is declined: the caller tries the next one.
        """
        if any(getattr(ext, "name", None) == NAME for ext in accepted_extensions):
            raise NegotiationError(f"skipped duplicate {NAME}")
        server_nct, client_nct, server_bits, client_bits = _extract(params, is_server=True)
        # 7.1.1.1: the client's request binds us; our own config may add it.
        server_nct = server_nct or self.server_no_context_takeover
        # 7.1.1.2: a hint we may echo; our config may impose it.
        client_nct = client_nct or self.client_no_context_takeover
        # 7.1.2.1: accept the client's limit for our window, lowered to our cap.
        if self.server_max_window_bits is not None:
            if server_bits is None or server_bits > self.server_max_window_bits:
                server_bits = self.server_max_window_bits
        # 7.1.2.2: we may limit the client's window only if it offered the
        # parameter ("client_max_window_bits" alone means "any value you like").
        if self.client_max_window_bits is None:
            if client_bits is True:
                client_bits = None
        elif client_bits is None:
            if self.require_client_max_window_bits:
                raise NegotiationError("required client_max_window_bits")
        elif client_bits is True or client_bits > self.client_max_window_bits:
            client_bits = self.client_max_window_bits
        return (
            _build(server_nct, client_nct, server_bits, client_bits),
            PerMessageDeflate(
                client_nct,  # remote: the client compresses what we inflate
                server_nct,
                int(client_bits or 15),
                server_bits or 15,
                self.compress_settings,
            ),
        )


Factory = Union[ClientPerMessageDeflateFactory, ServerPerMessageDeflateFactory]


def enable_client_permessage_deflate(
    extensions: Optional[Sequence[ClientPerMessageDeflateFactory]],
) -> list[ClientPerMessageDeflateFactory]:
    """``extensions`` plus websockets' default client factory, unless one is there."""
    result = list(extensions or [])
    if not any(ext.name == NAME for ext in result):
        result.append(ClientPerMessageDeflateFactory(compress_settings={"memLevel": 5}))
    return result


def enable_server_permessage_deflate(
    extensions: Optional[Sequence[ServerPerMessageDeflateFactory]],
) -> list[ServerPerMessageDeflateFactory]:
    """``extensions`` plus websockets' default server factory (12-bit windows, the
    client's capped when it lets us), unless one is there."""
    result = list(extensions or [])
    if not any(ext.name == NAME for ext in result):
        result.append(
            ServerPerMessageDeflateFactory(
                server_max_window_bits=12,
                client_max_window_bits=12,
                compress_settings={"memLevel": 5},
            )
        )
    return result
