"""Signed chain heads: what makes truncation and replacement of the ledger detectable.

A hash chain alone proves that the rows it holds were not edited; it cannot show that its
newest rows were deleted, or that the whole file was swapped for a fresh one. So every N
records or T seconds (whichever comes first) the writer signs its chain tip (writer id,
seq, hash, time) with an Ed25519 key and hands it to witnesses the ledger's database
cannot rewrite: an append-only file on another path or volume, an HTTP endpoint. Anyone
with the public key checks a ledger against them (:func:`check_heads`); nobody without the
private key can forge one. Publishing runs on its own thread: a witness that is slow or
down delays no page, it is reported (log line, ``HeadPublisher.stats``) and retried.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from middleware.errors import ConsentGateError
from middleware.ledger.chain import ChainTip, Checkpoint, canonical_json
from middleware.ledger.records import format_time, parse_time

log = logging.getLogger("consent_gate.ledger")

DEFAULT_EVERY_RECORDS = 1000
DEFAULT_EVERY_SECONDS = 60.0


class HeadError(ConsentGateError):
    """A key or a heads source that cannot be read."""


# -- keys ------------------------------------------------------------------------------
def key_id(public: Ed25519PublicKey) -> str:
    """Short fingerprint of a public key: 16 hex chars of SHA-256 of its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 key pair (private PEM 0600, public PEM); return the key id.
    Refuses to overwrite an existing file: a lost private key only stops new heads, an
    overwritten public key makes every old head unverifiable."""
    for p in (private_path, public_path):
        if p.exists():
            raise HeadError(f"{p} exists; not overwriting a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = key.public_key()
    public_path.write_bytes(public.public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_id(public)


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise HeadError(f"cannot read the heads signing key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise HeadError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise HeadError(f"cannot read the heads public key {path}: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise HeadError(f"{path} is not an Ed25519 public key")
    return key


# -- heads -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ChainHead:
    """A writer's chain tip, signed: "writer W had written seq 1..S, the last one hashing H"."""

    writer_id: str
    seq: int
    hash: str
    time: datetime
    key_id: str = ""
    signature: str = ""  # base64 Ed25519 signature over payload()

    def payload(self) -> bytes:
        return canonical_json({"writer": self.writer_id, "seq": self.seq, "hash": self.hash,
                               "time": format_time(self.time), "key": self.key_id})

    def signed(self, key: Ed25519PrivateKey) -> ChainHead:
        kid = key_id(key.public_key())
        unsigned = ChainHead(self.writer_id, self.seq, self.hash, self.time, kid)
        sig = base64.b64encode(key.sign(unsigned.payload())).decode("ascii")
        return ChainHead(self.writer_id, self.seq, self.hash, self.time, kid, sig)

    def signature_ok(self, public: Ed25519PublicKey) -> bool:
        try:
            public.verify(base64.b64decode(self.signature, validate=True), self.payload())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"writer": self.writer_id, "seq": self.seq, "hash": self.hash,
                "time": format_time(self.time), "key": self.key_id, "sig": self.signature}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChainHead:
        seq = d["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ValueError(f"seq must be an integer, got {seq!r}")
        return cls(str(d["writer"]), seq, str(d["hash"]), parse_time(str(d["time"])),
                   str(d.get("key", "")), str(d.get("sig", "")))


def parse_heads(text: str, source: str) -> tuple[list[ChainHead], list[str]]:
    """JSON lines (or one JSON array) of heads -> heads, and one problem per unreadable line."""
    heads: list[ChainHead] = []
    bad: list[str] = []
    stripped = text.strip()
    items: Iterable[tuple[int, Any]]
    if stripped.startswith("["):
        try:
            items = enumerate(json.loads(stripped), start=1)
        except ValueError as exc:
            return [], [f"{source}: not JSON: {exc}"]
    else:
        def lines() -> Iterable[tuple[int, Any]]:
            for n, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    try:
                        yield n, json.loads(line)
                    except ValueError:
                        bad.append(f"{source} line {n}: not JSON (a torn write?)")
        items = lines()
    for n, obj in items:
        try:
            heads.append(ChainHead.from_dict(obj))
        except (KeyError, TypeError, ValueError) as exc:
            bad.append(f"{source} line {n}: not a chain head ({exc})")
    return heads, bad


def read_heads(source: str, timeout: float = 10.0) -> tuple[list[ChainHead], list[str]]:
    """Heads from a witness file or an HTTP(S) witness URL (GET returns JSON lines)."""
    if source.startswith(("http://", "https://")):
        import httpx2

        try:
            resp = httpx2.get(source, timeout=timeout)
            resp.raise_for_status()
        except httpx2.HTTPError as exc:
            raise HeadError(f"cannot read heads from {source}: {exc}") from None
        return parse_heads(resp.text, source)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise HeadError(f"cannot read heads file {source}: {exc}") from None
    return parse_heads(text, source)


# -- witnesses ---------------------------------------------------------------------------
class Witness(Protocol):
    name: str

    def publish(self, head: ChainHead) -> None:
        """Store the head durably; raise on failure (the publisher retries)."""


class FileWitness:
    """Appends one JSON line per head and fsyncs it. Put it on another volume than the
    ledger, writable by the site but append-only (``chattr +a``), or shipped elsewhere."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = f"file {self.path}"

    def publish(self, head: ChainHead) -> None:
        line = (json.dumps(head.to_dict(), separators=(",", ":"), sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one write of a short line with O_APPEND: never interleaved
            os.fsync(fd)
        finally:
            os.close(fd)


class HttpWitness:
    """POSTs each head as JSON to a URL (a transparency service, a small collector on
    another host); a 2xx answer means stored."""

    def __init__(self, url: str, timeout: float = 3.0, attempts: int = 3,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = url
        self.name = f"url {url}"
        self.timeout = timeout
        self.attempts = attempts
        self._sleep = sleep

    def publish(self, head: ChainHead) -> None:
        import httpx2

        error: Exception | None = None
        for attempt in range(self.attempts):
            try:
                resp = httpx2.post(self.url, json=head.to_dict(), timeout=self.timeout)
                resp.raise_for_status()
                return
            except httpx2.HTTPError as exc:
                error = exc
                if attempt + 1 < self.attempts:
                    self._sleep(0.2 * 2 ** attempt)
        raise HeadError(f"witness {self.url}: {error}")


# -- publishing ----------------------------------------------------------------------------
@dataclass
class PublisherStats:
    published: int = 0
    failures: int = 0
    last_error: str | None = None
    #: Per witness: the last seq it acknowledged, per writer.
    acknowledged: dict[str, int] = field(default_factory=dict)


class HeadPublisher:
    """Signs a writer's chain tip every ``every_records`` records or ``every_seconds``
    seconds and sends it to each witness, on its own thread.

    ``committed`` is what the ledger writer calls after each commit: it stores the tip
    and at most wakes the thread, so the page that waited for the commit never waits for
    a witness. A witness that fails is retried with the next head (the newest head
    supersedes older ones) and reported once a minute.
    """

    def __init__(self, key: Ed25519PrivateKey, witnesses: Sequence[Witness], *,
                 every_records: int = DEFAULT_EVERY_RECORDS,
                 every_seconds: float = DEFAULT_EVERY_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if every_records < 1 or every_seconds <= 0:
            raise ValueError("heads need every_records >= 1 and every_seconds > 0")
        self.key = key
        self.witnesses = tuple(witnesses)
        self.every_records = every_records
        self.every_seconds = every_seconds
        self.stats = PublisherStats()
        self._clock = clock
        self._now = now
        self._cond = threading.Condition()
        self._tip: tuple[str, int, str] | None = None  # writer, seq, hash
        self._since_head = 0
        self._last_published: dict[str, int] = {}  # witness name -> seq
        self._last_at = clock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_warning = float("-inf")

    def committed(self, writer_id: str, seq: int, hash_: str, count: int) -> None:
        with self._cond:
            self._tip = (writer_id, seq, hash_)
            self._since_head += count
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"ledger-heads-{writer_id}")
                self._thread.start()
            if self._since_head >= self.every_records:
                self._cond.notify()

    def poke(self) -> None:
        """Re-check whether a head is due now (after the injected clock moved, in tests)."""
        with self._cond:
            self._cond.notify()

    def _due(self) -> bool:
        if self._tip is None:
            return False
        seq = self._tip[1]
        if all(self._last_published.get(w.name, 0) >= seq for w in self.witnesses):
            return False  # nothing new since the last head every witness took
        return (self._since_head >= self.every_records
                or self._clock() - self._last_at >= self.every_seconds)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._due():
                    wait = self.every_seconds - (self._clock() - self._last_at)
                    self._cond.wait(timeout=max(wait, 0.05))
                if self._closed:
                    return
                tip = self._tip
                self._since_head = 0
                self._last_at = self._clock()
            if tip is not None:
                self.publish_now(tip)

    def publish_now(self, tip: tuple[str, int, str] | None = None) -> bool:
        """Sign and send the current tip to every witness that lacks it; True if all took it."""
        tip = tip or self._tip
        if tip is None:
            return True
        writer_id, seq, hash_ = tip
        head = ChainHead(writer_id, seq, hash_, self._now()).signed(self.key)
        ok = True
        for w in self.witnesses:
            if self._last_published.get(w.name, 0) >= seq:
                continue
            try:
                w.publish(head)
            except Exception as exc:  # any failure of a witness: report, retry with the next head
                ok = False
                self.stats.failures += 1
                self.stats.last_error = f"{w.name}: {exc}"
                now = self._clock()
                if now - self._last_warning >= 60.0:
                    self._last_warning = now
                    log.warning("consent-gate: ledger witness %s is down (%s); chain heads after "
                                "seq %d are not witnessed yet; pages are not affected",
                                w.name, exc, self._last_published.get(w.name, 0))
            else:
                self._last_published[w.name] = seq
                self.stats.acknowledged[w.name] = seq
                self.stats.published += 1
        return ok

    def close(self, final_timeout: float = 5.0) -> None:
        """Stop the thread and publish the final tip (so a clean stop leaves no gap)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(final_timeout)
        done = threading.Event()

        def final() -> None:
            self.publish_now()
            done.set()

        t = threading.Thread(target=final, daemon=True, name="ledger-heads-final")
        t.start()
        t.join(final_timeout)


# -- checking ------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeadFinding:
    writer_id: str
    what: str
    fatal: bool

    def __str__(self) -> str:
        return f"writer {self.writer_id}: {self.what}"


def check_heads(heads: Iterable[ChainHead], public: Ed25519PublicKey,
                tips: Mapping[str, ChainTip], checkpoints: Iterable[Checkpoint]) -> list[HeadFinding]:
    """Compare the witnessed heads with the chains in the ledger, per writer.

    Fatal: a head whose signature fails; rows missing after the last witnessed head (the
    chain was cut short); a row at a witnessed seq whose hash differs (the chain was
    replaced); a witnessed writer absent from the ledger (deleted, or the file replaced).
    Reported, not fatal: rows after the last head (not witnessed yet: the witness was down,
    or the next head is not due), and writers no head mentions.
    """
    findings: list[HeadFinding] = []
    best: dict[str, ChainHead] = {}
    for h in heads:
        if not h.signature_ok(public):
            findings.append(HeadFinding(h.writer_id, f"head at seq {h.seq} ({format_time(h.time)}):"
                                        " signature fails (forged, or another key)", True))
            continue
        if h.writer_id not in best or h.seq > best[h.writer_id].seq:
            best[h.writer_id] = h
    purged: dict[str, Checkpoint] = {}
    for c in checkpoints:
        if c.writer_id not in purged or c.last_seq > purged[c.writer_id].last_seq:
            purged[c.writer_id] = c
    for writer, h in sorted(best.items()):
        tip = tips.get(writer)
        cp = purged.get(writer)
        if tip is None:
            if cp is not None and cp.last_seq >= h.seq:
                continue  # purged up to and beyond the head
            findings.append(HeadFinding(writer, f"all {h.seq:,} witnessed records are missing "
                                        "(chain deleted, or the ledger file replaced)", True))
            continue
        if tip.last_seq < h.seq:
            missing = h.seq - tip.last_seq
            findings.append(HeadFinding(
                writer, f"{missing:,} records missing after seq {tip.last_seq} (the witnessed "
                f"head of {format_time(h.time)} is at seq {h.seq}): the chain was cut short", True))
            continue
        have = tip.hashes.get(h.seq)
        if have is None:
            if cp is not None and cp.last_seq >= h.seq:
                continue
            findings.append(HeadFinding(writer, f"the row at witnessed seq {h.seq} is missing", True))
        elif have != h.hash:
            findings.append(HeadFinding(
                writer, f"chain replaced: the row at seq {h.seq} hashes {have[:16]}…, the "
                f"witnessed head says {h.hash[:16]}…", True))
        elif tip.last_seq > h.seq:
            findings.append(HeadFinding(
                writer, f"{tip.last_seq - h.seq:,} records after seq {h.seq} not witnessed yet "
                f"(last head {format_time(h.time)})", False))
    for writer, tip in sorted(tips.items()):
        if writer not in best:
            findings.append(HeadFinding(writer, f"{tip.last_seq:,} records, no witnessed head",
                                        False))
    return findings
