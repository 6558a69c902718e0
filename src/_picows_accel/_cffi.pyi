# Types for the compiled module that _build.py generates (absent in the pure wheel).
from typing import Final

import cffi

class _Lib:
    def picows_mask(
        self, src: object, dst: object, n: int, key: object, key_offset: int, /
    ) -> None: ...
    def picows_build_frame(
        self, dst: object, first_byte: int, payload: object, n: int, key: object, /
    ) -> int: ...
    def picows_send_frame(
        self, fd: int, first_byte: int, payload: object, n: int, key: object, /
    ) -> int: ...
    def picows_send_frame_in(
        self, fd: int, frame: object, first_byte: int, payload: object, n: int, key: object, /
    ) -> int: ...
    def picows_unmask(self, buf: object, start: int, end: int, /) -> None: ...
    def picows_unmask_in(self, buf: object, size: int, start: int, end: int, /) -> int: ...
    def picows_build_info(self) -> cffi.FFI.CData: ...
    def picows_decode_header(
        self,
        buf: object,
        avail: int,
        expect_masked: int,
        allow_rsv: int,
        max_frame_size: int,
        out: object,
        /,
    ) -> int: ...
    def picows_decode_headers(
        self,
        buf: object,
        avail: int,
        expect_masked: int,
        allow_rsv: int,
        max_frame_size: int,
        max_frames: int,
        out: object,
        /,
    ) -> int: ...
    PICOWS_HDR_OK: int
    PICOWS_HDR_INCOMPLETE: int
    PICOWS_HDR_PARTIAL: int
    PICOWS_HDR_LIMIT: int
    PICOWS_HDR_BAD_OPCODE: int
    PICOWS_HDR_BAD_RSV: int
    PICOWS_HDR_FRAGMENTED_CONTROL: int
    PICOWS_HDR_CONTROL_TOO_LONG: int
    PICOWS_HDR_BAD_LENGTH_16: int
    PICOWS_HDR_BAD_LENGTH_64: int
    PICOWS_HDR_TOO_BIG: int
    PICOWS_HDR_MASKED: int
    PICOWS_HDR_UNMASKED: int

ffi: Final[cffi.FFI]
lib: Final[_Lib]
