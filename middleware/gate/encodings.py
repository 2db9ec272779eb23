"""A response's Content-Encoding, read as Chromium reads it, and decoded in bounded steps.

The site gets no ``Accept-Encoding`` (asgi.py), yet a site may still compress: a
pre-compressed ``.br`` file, a proxying app. Chromium 156 advertises ``gzip, deflate, br,
zstd`` and decodes each of them; it joins every Content-Encoding header into one list,
undoes the codings in reverse order, and passes a coding it does not know as if it were
absent (measured, ``tests/browser/test_encoding_vectors.py``: ``Content-Encoding:
x-consent-test`` over plain HTML rendered the HTML and followed its meta refresh), and it
reads ``deflate`` without its zlib header as raw deflate (measured: rendered, its partner img
fetched; ``_Zlib``). So the
body the rewriter must read is the one Chromium reads: every known coding undone, unknown
names skipped. Each coding is decoded lazily at most ``step`` bytes at a time, and the whole
chain stops with ``InflateError`` once the decoded size passes ``floor + ratio * compressed
size`` (``FLOOR``, ``RATIO``, ``STEP`` below: a zip bomb in any coding). The caller rewrites
and sends each piece before asking for the next, and on ``InflateError`` ends the response; it
never passes the rest raw. The decoded body
leaves as identity (Content-Encoding dropped).

br needs ``brotli`` >= 1.2 (or ``brotlicffi`` >= 1.2: ``output_buffer_limit``, the bound);
zstd needs ``compression.zstd`` (Python 3.14) or ``backports.zstd`` (``max_length``; the
``zstandard`` package's decompressobj has no output bound). Both are dependencies; without
the library ``decoder_for`` answers the coding's name and the responder ends the body (fails
closed) rather than send bytes it cannot read.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

__all__ = ["BR_WINDOW_BITS_MAX", "FLOOR", "MAX_CODINGS", "RATIO", "STEP", "WINDOW_BUDGET",
           "BodyDecoder", "InflateError", "br_window_bits", "cannot_decode", "codings",
           "decoder_for", "undecodable", "zstd_window_size"]

# The bomb limits: a small body can expand to hundreds of megabytes. At most STEP decoded bytes
# are handed out at a time, and a layer stops once its decoded size passes FLOOR + RATIO * its
# input.
STEP = 64 * 1024
RATIO = 100
FLOOR = 1024 * 1024


class InflateError(Exception):
    """The body is corrupt or expands past the cap; carries what happened for the log."""


# Chromium's names (net/filter/filter_source_stream.cc): x-gzip is gzip; anything else is
# skipped. "identity" is no coding either.
_ZLIB = frozenset({"gzip", "x-gzip", "deflate"})
KNOWN = frozenset({*_ZLIB, "br", "zstd"})


def _brotli() -> Any:
    try:
        import brotli  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        try:
            import brotlicffi as brotli  # type: ignore[import-not-found, no-redef, unused-ignore]
        except ImportError:
            return None
    # output_buffer_limit (the bound) came with 1.2 in both.
    try:
        brotli.Decompressor().process(b"", output_buffer_limit=1)
    except TypeError:  # pragma: no cover - an old brotli
        return None
    except Exception:  # pragma: no cover - empty input is fine for a working one
        pass
    return brotli


def _zstd() -> Any:
    try:
        from compression import zstd  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        try:
            from backports import zstd  # type: ignore[import-not-found, no-redef, unused-ignore]
        except ImportError:
            return None
    return zstd


_LIBS: dict[str, Any] = {}


def _lib(name: str) -> Any:
    if name not in _LIBS:
        _LIBS[name] = _brotli() if name == "br" else _zstd()
    return _LIBS[name]


def codings(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, ...]:
    """The codings Chromium undoes, in the order they were applied (the last is undone
    first): every ``content-encoding`` value (lower-case names), comma lists split, names
    lower-cased, unknown names and ``identity`` left out."""
    out: list[str] = []
    for key, value in headers:
        if key == b"content-encoding":
            for part in value.split(b","):
                name = part.strip(b"\t ").decode("latin-1").lower()
                if name in KNOWN:
                    out.append(name)
    return tuple(out)


def undecodable(names: tuple[str, ...]) -> str | None:
    """The first coding in ``names`` this process has no decoder for (its library is not
    installed), or None."""
    for name in names:
        if name not in _ZLIB and _lib(name) is None:
            return name
    return None


class _Stage(Protocol):
    def pieces(self, data: bytes, final: bool) -> Iterator[bytes]: ...

    def truncated(self) -> bool: ...


#: Chromium's deflate sniff (net/filter/gzip_source_stream.cc, kMaxZlibHeaderSniffBytes): a
#: ``deflate`` body is read as zlib; an error before any output, within its first 1000 bytes,
#: replays it as raw deflate (behind a dummy zlib header there: see ``_Zlib._as_raw``).
DEFLATE_SNIFF_BYTES = 1000


_FEXTRA, _FNAME, _FCOMMENT, _FHCRC = 4, 8, 16, 2


class _GzipHeader:
    """A gzip member's header read as Chromium's GZipHeader reads it (RFC 1952: ID1 ID2 CM
    checked; FEXTRA, FNAME, FCOMMENT and FHCRC skipped, the header CRC not checked), bytes
    in any chunking, nothing kept but the fixed 10 bytes."""

    def __init__(self) -> None:
        self._fixed = bytearray()
        self._flags = 0
        self._extra = bytearray()  # FEXTRA's 2-byte length, as it comes
        self._skip = 0  # FEXTRA bytes still to skip
        self._phase = 0  # 0 fixed, 1 extra length, 2 extra, 3 name, 4 comment, 5 hcrc, 6 done

    @property
    def done(self) -> bool:
        return self._phase == 6

    def read(self, data: bytes) -> int:
        """How many bytes of ``data`` the header takes (all of them while it is not done)."""
        pos, n = 0, len(data)
        while pos < n and self._phase != 6:
            phase = self._phase
            if phase == 0:
                take = min(10 - len(self._fixed), n - pos)
                self._fixed += data[pos:pos + take]
                pos += take
                if len(self._fixed) == 10:
                    if self._fixed[:3] != b"\x1f\x8b\x08":
                        raise InflateError("corrupt gzip body (not a gzip header: Chromium "
                                           "ends such a body too)")
                    self._flags = self._fixed[3]
                    self._phase = 1
            elif phase == 1:
                if not self._flags & _FEXTRA:
                    self._phase = 3
                    continue
                take = min(2 - len(self._extra), n - pos)
                self._extra += data[pos:pos + take]
                pos += take
                if len(self._extra) == 2:
                    self._skip = int.from_bytes(self._extra, "little")
                    self._phase = 2
            elif phase == 2:
                take = min(self._skip, n - pos)
                self._skip -= take
                pos += take
                if self._skip == 0:
                    self._phase = 3
            elif phase in (3, 4):
                if not self._flags & (_FNAME if phase == 3 else _FCOMMENT):
                    self._phase += 1
                    continue
                zero = data.find(b"\x00", pos)
                if zero < 0:
                    pos = n
                else:
                    pos = zero + 1
                    self._phase += 1
            else:  # 5
                if not self._flags & _FHCRC:
                    self._phase = 6
                    continue
                self._skip = self._skip or 2
                take = min(self._skip, n - pos)
                self._skip -= take
                pos += take
                if self._skip == 0:
                    self._phase = 6
        return pos


class _Zlib:
    """gzip or deflate, as Chromium 156 reads them (net/filter/gzip_source_stream.cc):

    * ``deflate`` is zlib-wrapped (RFC 9110), yet Chromium renders raw deflate under that
      name (measured, tests/browser/test_encoding_vectors.py). The dummy header makes the
      last 4 bytes after a raw stream its Adler-32, as in Chromium (raw deflate followed by
      other bytes fails there and here).
    * ``gzip``: its header must be gzip's (a zlib or raw stream under that name is ended, as
      Chromium ends it); its footer (CRC-32, ISIZE) is skipped unchecked and what follows the
      first member is ignored: Chromium rendered a body with a wrong CRC whole (measured),
      which zlib's own check ended before its last block."""

    def __init__(self, name: str, step: int) -> None:
        gzip = name != "deflate"
        self._z = zlib.decompressobj(-15 if gzip else 15)
        self._gzip: _GzipHeader | None = _GzipHeader() if gzip else None
        self._step = step
        #: deflate while sniffing: the input consumed so far, to replay as raw deflate.
        self._replay: bytearray | None = None if gzip else bytearray()
        self._fed = False
        #: Raw deflate (after the replay): the Adler-32 of its output, the bytes after it.
        self._adler: int | None = None
        self._trailer = b""

    def truncated(self) -> bool:
        return self._fed and not self._z.eof

    def _as_raw(self, pending: bytes) -> bytes:
        """The zlib header was wrong: the input again, as raw deflate. (Chromium puts a dummy
        zlib header before it: the 4 bytes after the stream, if they come, are its Adler-32;
        ``_raw_trailer`` checks them, a stream without them is whole.)"""
        replay, self._replay = bytes(self._replay or b""), None
        self._z = zlib.decompressobj(-15)
        self._adler = 1
        return replay + pending

    def _raw_trailer(self, after: bytes) -> None:
        self._trailer += after[:4 - len(self._trailer)]
        if len(self._trailer) == 4 and int.from_bytes(self._trailer, "big") != self._adler:
            raise InflateError("corrupt compressed body (raw deflate followed by bytes that are "
                               "not its Adler-32: Chromium ends such a body too)")

    def pieces(self, data: bytes, final: bool) -> Iterator[bytes]:
        if self._adler is not None and self._z.eof:
            if len(self._trailer) < 4:
                self._raw_trailer(data)
            return
        pending = data
        self._fed = self._fed or bool(data)
        header = self._gzip
        if header is not None and not header.done:
            pending = pending[header.read(pending):]
            if not header.done:
                return
        while not self._z.eof:
            try:
                piece = self._z.decompress(pending, self._step)
            except zlib.error as exc:
                if self._replay is not None:
                    pending = self._as_raw(pending)
                    continue
                raise InflateError(f"corrupt compressed body ({exc})") from None
            tail = self._z.unconsumed_tail
            if self._replay is not None:
                used = len(pending) - len(tail)
                if piece or self._z.eof or len(self._replay) + used >= DEFLATE_SNIFF_BYTES:
                    self._replay = None  # the zlib header holds
                else:
                    self._replay += pending[:used]
            pending = tail
            if self._adler is not None:
                self._adler = zlib.adler32(piece, self._adler)
                if self._z.eof:
                    self._raw_trailer(self._z.unused_data)
            if piece:
                yield piece
            if not pending and len(piece) < self._step:
                break
        if final and not self._z.eof:
            try:
                rest = self._z.flush()
            except zlib.error as exc:  # pragma: no cover - flush after a full decompress
                raise InflateError(f"corrupt compressed body ({exc})") from None
            if rest:
                if self._adler is not None:
                    self._adler = zlib.adler32(rest, self._adler)
                yield rest


def _window_size(n: int) -> str:
    """A window for the log: whole MB, else KB."""
    return f"{n >> 20} MB" if not n & ((1 << 20) - 1) else f"{n >> 10} KB"


#: br's window (the ring buffer its decoder holds) at most 8 MB, as zstd's (RFC 9659): the
#: brotli binding has no cap, and a stream's header may ask for 16 MB (WBITS 24). Measured,
#: RSS per decoder 70 % through a 24 MB page: 4.1 MB at WBITS 22, 8.1 at 23, 16.1 at 24.
BR_WINDOW_BITS_MAX = 23


def br_window_bits(first: int) -> int | None:
    """WBITS of a brotli stream from its first byte (RFC 7932 §9.1: 1, 4 or 7 bits, LSB
    first); None for the large-window escape (not RFC 7932: the decoder refuses it)."""
    if not first & 1:
        return 16
    n = (first >> 1) & 7
    if n:
        return 17 + n
    m = (first >> 4) & 7
    if m == 1:
        return None
    return 17 if m == 0 else 8 + m


class _Brotli:
    def __init__(self, step: int, charge: Callable[[int], None]) -> None:
        self._lib = _lib("br")
        self._d = self._lib.Decompressor()
        self._step = step
        self._charge = charge
        self._fed = False

    def truncated(self) -> bool:
        return self._fed and not self._d.is_finished()

    def pieces(self, data: bytes, final: bool) -> Iterator[bytes]:
        d = self._d
        if data and not self._fed:
            bits = br_window_bits(data[0])
            if bits is not None and bits > BR_WINDOW_BITS_MAX:
                # Chromium 156 renders it (measured); here it would hold 16 MB per response.
                raise InflateError(
                    f"br stream asks for a {_window_size(1 << bits)} window (WBITS {bits}; at "
                    f"most {_window_size(1 << BR_WINDOW_BITS_MAX)} is decoded: recompress "
                    f"with lgwin <= {BR_WINDOW_BITS_MAX}, brotli -w {BR_WINDOW_BITS_MAX})")
            if bits is not None:
                self._charge((1 << bits) - 16)  # RFC 7932 §9.1: the window is 2**WBITS - 16
        self._fed = self._fed or bool(data)
        if d.is_finished():
            return  # bytes after the end of the stream: not part of the body
        pending = data
        while True:
            try:
                piece = d.process(pending, output_buffer_limit=self._step)
            except self._lib.error as exc:
                raise InflateError(f"corrupt br body ({exc})") from None
            pending = b""
            # The limit stops the buffer's growth, not its last block (up to 32 KB more,
            # measured): cut to ``step``.
            for i in range(0, len(piece), self._step):
                yield piece[i:i + self._step]
            if d.is_finished() or d.can_accept_more_data():
                return


#: zstd's window (the memory a frame makes the decoder hold) at most 8 MB, as RFC 9659 asks of
#: HTTP's zstd: a frame that asks for more (up to 128 MB by the library's default, per
#: response) is refused as br's past BR_WINDOW_BITS_MAX is (the same log, the same ending).
ZSTD_WINDOW_LOG_MAX = 23

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_WINDOW_MIN = 1 << 10  # ZSTD_WINDOWLOG_ABSOLUTEMIN: libzstd holds at least 1 KB
_ZSTD_DID_BYTES = (0, 1, 2, 4)


def zstd_window_size(head: bytes) -> int | None:
    """The window a zstd frame makes the decoder hold, read from the frame's header as libzstd
    reads it (RFC 8878 §3.1.1.1, ZSTD_getFrameHeader): the Window_Descriptor's size, or for a
    single-segment frame its Frame_Content_Size, at least 1 KB; 0 for a skippable frame or
    bytes that are no frame (the decoder refuses those itself); None while ``head`` is too
    short to tell."""
    if len(head) < 4:
        return None
    if head[:4] != _ZSTD_MAGIC:
        return 0  # a skippable frame (0x184D2A5?) holds no window; anything else is refused
    if len(head) < 5:
        return None
    fhd = head[4]
    if not fhd & 0x20:  # Single_Segment_flag clear: a Window_Descriptor follows
        if len(head) < 6:
            return None
        exponent, mantissa = head[5] >> 3, head[5] & 7
        base = 1 << (10 + exponent)
        return base + (base >> 3) * mantissa
    fcs_bytes = (1, 2, 4, 8)[fhd >> 6]
    start = 5 + _ZSTD_DID_BYTES[fhd & 3]
    if len(head) < start + fcs_bytes:
        return None
    size = int.from_bytes(head[start:start + fcs_bytes], "little")
    if fcs_bytes == 2:
        size += 256
    return max(size, _ZSTD_WINDOW_MIN)


#: A frame header is at most 18 bytes (magic 4, descriptor 1, window 1, dictionary id 4,
#: content size 8).
_ZSTD_HEADER_MAX = 18


class _Zstd:
    """One or more zstd frames (Chromium decodes concatenated frames)."""

    def __init__(self, step: int, charge: Callable[[int], None]) -> None:
        self._lib = _lib("zstd")
        self._d = self._new()
        self._step = step
        self._charge = charge
        #: A frame was begun and has not ended.
        self._open = False
        #: The decoder has been fed nothing of its frame yet: its header is read first.
        self._fresh = True
        #: The start of a frame header held back until its window can be read.
        self._head = b""

    def truncated(self) -> bool:
        return self._open and not self._d.eof

    def _new(self) -> Any:
        lib = self._lib
        return lib.ZstdDecompressor(
            options={lib.DecompressionParameter.window_log_max: ZSTD_WINDOW_LOG_MAX})

    def pieces(self, data: bytes, final: bool) -> Iterator[bytes]:
        pending = data
        while True:
            d = self._d
            if d.eof:
                pending = d.unused_data + pending
                if not pending:
                    return
                d = self._d = self._new()
                self._fresh = True
            if self._fresh:
                head = self._head + pending
                window = zstd_window_size(head[:_ZSTD_HEADER_MAX])
                if window is None and not final:
                    self._head = head
                    self._open = self._open or bool(head)
                    return
                self._head, pending, self._fresh = b"", head, False
                if window and window > 1 << ZSTD_WINDOW_LOG_MAX:
                    # Chromium 156 does not render it either (measured); libzstd would refuse
                    # it too, as "corrupt" ("Frame requires too much memory for decoding").
                    raise InflateError(
                        f"zstd frame asks for a {_window_size(window)} window (at most "
                        f"{_window_size(1 << ZSTD_WINDOW_LOG_MAX)} is decoded, RFC 9659: "
                        f"recompress with window_log <= {ZSTD_WINDOW_LOG_MAX}, zstd "
                        f"--zstd=wlog={ZSTD_WINDOW_LOG_MAX})")
                if window:
                    self._charge(window)  # before the decoder allocates it
            self._open = self._open or bool(pending)
            try:
                piece = d.decompress(pending, self._step)
            except self._lib.ZstdError as exc:
                raise InflateError(f"corrupt zstd body ({exc})") from None
            pending = b""
            if piece:
                yield piece
            if d.eof:
                self._open = False
                continue
            if d.needs_input:
                return


class BodyDecoder:
    """Undoes a response's codings (``names`` in the order applied) piece by piece: each piece
    at most ``step`` bytes, made only when the caller asks for it (it rewrites and sends one
    before the next is made)."""

    def __init__(self, names: tuple[str, ...], *, step: int = STEP, ratio: int = RATIO,
                 floor: int = FLOOR) -> None:
        stages: list[_Stage] = []
        #: The largest window each stage's decoder has asked for (br, zstd; zlib's 32 KB is
        #: not counted).
        self._windows = [0] * len(names)
        for i, name in enumerate(reversed(names)):  # the last coding applied is undone first
            charge = functools.partial(self._charge, i)
            if name in _ZLIB:
                stages.append(_Zlib(name, step))
            elif name == "br":
                stages.append(_Brotli(step, charge))
            else:
                stages.append(_Zstd(step, charge))
        self._stages = stages
        self.names = names
        self.step = step
        self.ratio = ratio
        self.floor = floor
        self.compressed = 0
        self.decoded = 0
        self._inner = [0] * len(stages)

    def pieces(self, data: bytes, *, final: bool) -> Iterator[bytes]:
        self.compressed += len(data)
        chain = self._chain(0, data, final)
        while True:
            try:
                piece = next(chain)
            except StopIteration:
                return
            except InflateError:
                raise
            except Exception as exc:  # pragma: no cover - a decoder failing with another type
                raise InflateError(f"undecodable body ({type(exc).__name__}: {exc})") from None
            self.decoded += len(piece)
            if self.decoded > self.floor + self.ratio * self.compressed:
                raise InflateError(
                    f"compressed body ({', '.join(self.names)}) expands more than "
                    f"{self.ratio}:1 ({self.compressed} bytes in, over {self.decoded} out)")
            yield piece

    def _charge(self, i: int, window: int) -> None:
        """Stage ``i`` asks for a ``window`` of memory (read from its stream's header, before
        its decoder holds it): the windows of one body's decoders together at most
        ``WINDOW_BUDGET``."""
        windows = self._windows
        windows[i] = max(windows[i], window)
        total = sum(windows)
        if total > WINDOW_BUDGET:
            raise InflateError(
                f"compressed body ({', '.join(self.names)}) asks for {total >> 10} KB of "
                f"br/zstd windows (at most {WINDOW_BUDGET >> 20} MB per body: coding "
                f"{i + 1} asks for {window >> 10} KB)")

    def truncated(self) -> tuple[str, ...]:
        """The codings whose stream ended before its end (asked after the final piece):
        Chromium 156 renders what a truncated gzip, deflate, br or zstd stream decoded to
        (measured), and so the gate sends the rewrite of those bytes."""
        return tuple(name for name, stage in zip(reversed(self.names), self._stages, strict=True)
                     if stage.truncated())

    def _chain(self, i: int, data: bytes, final: bool) -> Iterator[bytes]:
        stage = self._stages[i]
        if i == len(self._stages) - 1:
            yield from stage.pieces(data, final)
            return
        for piece in stage.pieces(data, False):
            self._made(i, piece)
            yield from self._chain(i + 1, piece, False)
        if final:
            for piece in stage.pieces(b"", True):
                self._made(i, piece)
                yield from self._chain(i + 1, piece, False)
            yield from self._chain(i + 1, b"", True)

    def _made(self, i: int, piece: bytes) -> None:
        """An inner stage's output is held to the same limit as the body's: the next stage may
        make nothing of it (bytes after its stream's end, a zstd skippable frame), so without
        this a 3.4 KB gzip, gzip, gzip body made 2 GB of inner gzip, 1.1 s of CPU on the event
        loop, for 15 bytes out (measured)."""
        made = self._inner[i] = self._inner[i] + len(piece)
        if made > self.floor + self.ratio * self.compressed:
            raise InflateError(
                f"compressed body ({', '.join(self.names)}) expands more than {self.ratio}:1 "
                f"inside ({self.compressed} bytes in, over {made} out of coding {i + 1})")



#: More codings than this on one body are not decoded (each is a decoder's state, and a stack
#: of thousands is no page): the response ends.
MAX_CODINGS = 8


def decoder_for(headers: Iterable[tuple[bytes, bytes]]) -> BodyDecoder | str | None:
    """None for a body Chromium reads as sent (no known coding); a ``BodyDecoder`` for the
    rest; why not, when it cannot be decoded here (a coding whose library is missing, too
    many codings): the responder then fails closed."""
    names = codings(headers)
    if not names:
        return None
    why = cannot_decode(names)
    return BodyDecoder(names) if why is None else why


#: The br and zstd windows one body's decoders may hold together, each window as its stream's
#: header declares it (zstd_window_size, br_window_bits): two of the largest each may ask for
#: (8 MB), or more smaller ones (MAX_CODINGS of them at 8 MB made 64 MB per response); zlib's
#: 32 KB are not counted.
WINDOW_BUDGET = 2 << 23


def cannot_decode(names: tuple[str, ...]) -> str | None:
    """Why the codings ``names`` cannot be decoded here (too many codings, a coding whose
    library is missing), or None."""
    if len(names) > MAX_CODINGS:
        return f"{len(names)} codings stacked (at most {MAX_CODINGS} are decoded)"
    missing = undecodable(names)
    if missing is not None:
        return f"{missing} (no decoder installed)"
    return None
