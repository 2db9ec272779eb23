# Stub for the optional C accelerator (middleware/_speedups.c).

from collections.abc import Callable, Iterable, Mapping, Set
from typing import Any, NewType

HostTable = NewType("HostTable", object)

NAMES: tuple[str, ...]
END_NAMES: tuple[str, ...]
PLAIN_URL_TAGS: tuple[str, ...]
LINK_NO_FETCH: tuple[str, ...]
FETCH_URL_ATTRS: tuple[str, ...]
SVG_NOT_FLAT: tuple[str, ...]
# what the native pass reads an inline <svg> with (grammar's _SWITCHERS, _VOID, _BREAKOUT,
# _SVG_HTML_IP)
SWITCHERS: tuple[str, ...]
VOID: tuple[str, ...]
BREAKOUT: tuple[str, ...]
SVG_HTML_IP: tuple[str, ...]
# (tag, URL attributes, data: is a document, text after it: "" | "raw" | "script" | "doc")
RULES: tuple[tuple[str, tuple[str, ...], bool, str], ...]

def skip_end(low: bytes | bytearray | memoryview, pos: int, /) -> int: ...
def flat_svg_end(buf: bytes | bytearray | memoryview, pos: int, /) -> int: ...
def make_hosts(exact: tuple[tuple[str, str], ...], wild: tuple[tuple[str, str], ...], /) -> HostTable: ...
def scan_end(buf: bytes | bytearray | memoryview, pos: int, hosts: HostTable | None,
             unknown: set[str], allowed: Set[str] | None, enabled: set[str],
             blocked: set[str] = ..., edits: list[tuple[int, int, bytes]] | None = None,
             inject: list[bytes | None] | None = None, injected: Iterable[str] = ...,
             placeholders: Mapping[str, tuple[bytes, bytes]] | None = None,
             purposes: Set[str] | None = None, documents: bool = False, /) -> int: ...
def splice(buf: bytes | bytearray | memoryview, edits: list[tuple[int, int, bytes]],
           stop: int, /) -> bytes: ...
def start_setup(html_pairs: tuple[object, object], other_pairs: tuple[object, object],
                fallback: Callable[[Any], object], /) -> None: ...
def start_kind(headers: Any, /) -> Any: ...
def app_headers_setup(drop: bytes, ask: bytes, fallback: Callable[[Any], object], /) -> None: ...
def app_headers(headers: Any, /) -> Any: ...
def pass_send_setup(make: Callable[[Any, Any, Any, Any], object], /) -> None: ...
def pass_send(gate: Any, scope: Any, raw_send: Any, state: Any, /) -> Any: ...

class PassSend:
    @property
    def responder(self) -> Any: ...
    @property
    def passing(self) -> bool: ...
    def __call__(self, message: Any, /) -> Any: ...
