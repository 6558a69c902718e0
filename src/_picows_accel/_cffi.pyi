# Types for the compiled module that _build.py generates (absent in the pure wheel).
from typing import Final

import cffi

class _Lib:
    def picows_mask(
        self, src: object, dst: object, n: int, key: object, key_offset: int, /
    ) -> None: ...
    def picows_build_info(self) -> cffi.FFI.CData: ...

ffi: Final[cffi.FFI]
lib: Final[_Lib]
