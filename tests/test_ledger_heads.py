"""Signed chain heads and witnesses: truncation, replacement and forgery are detected."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sqlite3
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from middleware.cli import main
from middleware.config import ConfigError, load_config
from middleware.disclosure import head_publisher
from middleware.ledger import LedgerWriter, PageView, PartnerShare, SqliteStore
from middleware.ledger.heads import (
    ChainHead,
    FileWitness,
    HeadPublisher,
    HttpWitness,
    load_private_key,
)
from tests.support.servers import REPO_ROOT

ADS = PartnerShare("google-adsense", ("ads",), "consent", ("ip_address",), ("__gads",))


def view(i: int) -> PageView:
    return PageView(time=datetime.now(UTC), request_id=f"v{i}", consent_id="c1", path=f"/p{i}",
                    partners=(ADS,), policy_version="v1")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["log", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    priv, pub = tmp_path / "keys" / "heads.key", tmp_path / "keys" / "heads.pub"
    priv.parent.mkdir()
    code, out, _ = run(capsys, "keygen", "--private", str(priv), "--public", str(pub))
    assert code == 0 and "mode 0600" in out
    return priv, pub


def fill(ledger: Path, witness: Path, priv: Path, n: int, every: int = 10) -> str:
    """n page views by one writer whose heads go to the witness file; closed cleanly."""
    pub = HeadPublisher(load_private_key(priv), [FileWitness(witness)], every_records=every)
    w = LedgerWriter(SqliteStore(ledger), heads=pub)
    for i in range(n):
        w.write_sync([view(i)])
    w.close()
    return w.writer_id


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(
        keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    priv, pub = keys
    assert priv.stat().st_mode & 0o777 == 0o600
    assert b"PUBLIC KEY" in pub.read_bytes() and b"PRIVATE KEY" in priv.read_bytes()
    code, _, err = run(capsys, "keygen", "--private", str(priv), "--public", str(pub))
    assert code == 2 and "not overwriting" in err


def test_heads_verify_ok_on_an_intact_ledger(tmp_path: Path, keys: tuple[Path, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    priv, pub = keys
    ledger, witness = tmp_path / "l.db", tmp_path / "witness" / "heads.jsonl"
    witness.parent.mkdir()
    fill(ledger, witness, priv, 25)
    seqs = [json.loads(line)["seq"] for line in witness.read_text().splitlines()]
    # Every 10 records (a busy thread may skip to a newer tip: the newest supersedes), and
    # the final tip at close.
    assert seqs[0] >= 10 and seqs[-1] == 25 and seqs == sorted(set(seqs)) and len(seqs) >= 2, seqs
    code, out, _ = run(capsys, "verify", "--ledger", str(ledger), "--heads", str(witness),
                       "--public-key", str(pub))
    assert code == 0, out
    assert out.startswith(f"ok: 25 records, 1 writers, 0 purge checkpoints, {len(seqs)} witnessed heads"), out


def test_heads_deleted_newest_rows_fail_verify_saying_how_many_after_which_seq(
        tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    priv, pub = keys
    ledger, witness = tmp_path / "l.db", tmp_path / "heads.jsonl"
    writer = fill(ledger, witness, priv, 25)
    with sqlite3.connect(ledger) as c:
        c.execute("DELETE FROM page_views WHERE seq > 18")
    code, out, _ = run(capsys, "verify", "--ledger", str(ledger))
    assert code == 0, "without heads a cut tail goes unseen: that is why heads exist"
    code, out, _ = run(capsys, "verify", "--ledger", str(ledger), "--heads", str(witness),
                       "--public-key", str(pub))
    assert code == 1 and out.startswith("BROKEN")
    assert f"writer {writer}: 7 records missing after seq 18" in out and "at seq 25" in out, out


def test_heads_replaced_ledger_file_fails_verify(tmp_path: Path, keys: tuple[Path, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    priv, pub = keys
    ledger, witness = tmp_path / "l.db", tmp_path / "heads.jsonl"
    writer = fill(ledger, witness, priv, 12)
    fresh = tmp_path / "fresh.db"
    w = LedgerWriter(SqliteStore(fresh))
    w.write_sync([view(i) for i in range(30)])
    w.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(ledger) + suffix).unlink(missing_ok=True)
    shutil.copy(fresh, ledger)
    code, out, _ = run(capsys, "verify", "--ledger", str(ledger))
    assert code == 0, "the swapped file is a valid chain of its own"
    code, out, _ = run(capsys, "verify", "--ledger", str(ledger), "--heads", str(witness),
                       "--public-key", str(pub))
    assert code == 1
    assert f"writer {writer}: all 12 witnessed records are missing" in out, out
    assert "no witnessed head" in out  # the impostor chain


def test_heads_rewritten_chain_under_the_same_writer_fails_verify(
        tmp_path: Path, keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    priv, pub = keys
    ledger, witness = tmp_path / "l.db", tmp_path / "heads.jsonl"
    writer = fill(ledger, witness, priv, 10)
    ledger.unlink()
    w = LedgerWriter(SqliteStore(ledger), writer_id=writer)  # a forger reusing the writer id
    w.write_sync([PageView(time=datetime.now(UTC), request_id=f"x{i}", consent_id=None,
                           path="/", partners=(ADS,)) for i in range(10)])
    w.close()
    code, out, _ = run(capsys, "verify", "--ledger", str(ledger), "--heads", str(witness),
                       "--public-key", str(pub))
    assert code == 1 and f"writer {writer}: chain replaced: the row at seq 10" in out, out


def test_heads_signed_by_another_key_fail_verify(tmp_path: Path, keys: tuple[Path, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    priv, pub = keys
    ledger, witness = tmp_path / "l.db", tmp_path / "heads.jsonl"
    writer = fill(ledger, witness, priv, 10)
    forged = ChainHead(writer, 3, "00" * 32, datetime.now(UTC)).signed(Ed25519PrivateKey.generate())
    with witness.open("a") as f:
        f.write(json.dumps(forged.to_dict()) + "\n")
        f.write('{"writer": "torn\n')
    code, out, _ = run(capsys, "verify", "--ledger", str(ledger), "--heads", str(witness),
                       "--public-key", str(pub))
    assert code == 1
    assert f"writer {writer}: head at seq 3" in out and "signature fails" in out, out
    assert "not JSON (a torn write?)" in out


def test_heads_every_t_seconds_on_an_injected_clock(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    priv, _ = keys
    now = [1000.0]
    witness = tmp_path / "heads.jsonl"
    pub = HeadPublisher(load_private_key(priv), [FileWitness(witness)], every_records=1000,
                        every_seconds=60, clock=lambda: now[0])
    w = LedgerWriter(SqliteStore(tmp_path / "l.db"), heads=pub)
    w.write_sync([view(1), view(2)])
    pub.poke()
    assert not witness.exists(), "neither 1,000 records nor 60 s yet"
    now[0] += 61
    pub.poke()
    deadline = time.monotonic() + 10
    while not witness.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [json.loads(x)["seq"] for x in witness.read_text().splitlines()] == [2]
    w.close()


class HangingWitness:
    """An HTTP endpoint that accepts connections and never answers (a witness that is down)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/heads"
        self.conns: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
            except OSError:
                continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def hanging() -> Iterator[HangingWitness]:
    w = HangingWitness()
    yield w
    w.close()


def test_heads_witness_down_pages_keep_their_latency_and_the_gap_is_reported(
        tmp_path: Path, keys: tuple[Path, Path], hanging: HangingWitness,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    priv, pub_key = keys
    witness_dir = tmp_path / "witness"
    witness_dir.mkdir()
    witness = witness_dir / "heads.jsonl"

    async def pages(writer: LedgerWriter, n: int, start: int) -> list[float]:
        times = []
        for i in range(start, start + n):
            t = time.perf_counter()
            await writer.write([view(i)])
            times.append(time.perf_counter() - t)
        return times

    base_writer = LedgerWriter(SqliteStore(tmp_path / "base.db"))
    base = asyncio.run(pages(base_writer, 40, 0))
    base_writer.close()

    key = load_private_key(priv)
    down = HttpWitness(hanging.url, timeout=2.0, attempts=2)
    pub = HeadPublisher(key, [FileWitness(witness), down], every_records=5)
    ledger = tmp_path / "l.db"
    w = LedgerWriter(SqliteStore(ledger), heads=pub)
    with caplog.at_level("WARNING", logger="consent_gate.ledger"):
        first = asyncio.run(pages(w, 20, 0))
        # The file witness goes away too: its directory is replaced by a plain file.
        deadline = time.monotonic() + 10
        while (not witness.exists() or '"seq":20' not in witness.read_text()) and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        saved = witness.read_text()
        shutil.rmtree(witness_dir)
        witness_dir.write_text("not a directory")
        second = asyncio.run(pages(w, 20, 20))
        pub.close(final_timeout=0.5)
        w.heads = None
        w.close()
    # Pages never waited for a witness: the HTTP one hangs 2 s per attempt.
    med_base, med_down = statistics.median(base), statistics.median(first + second)
    assert max(first + second) < 1.0, max(first + second)
    assert med_down < med_base + 0.05, (med_base, med_down)
    assert pub.stats.failures >= 1 and "witness" in (pub.stats.last_error or "")
    assert any("is down" in r.getMessage() and "pages are not affected" in r.getMessage()
               for r in caplog.records)
    # verify with what the file witness holds: the 20 records after its last head are a gap.
    witness_dir.unlink()
    witness_dir.mkdir()
    witness.write_text(saved)
    code, out, _ = run(capsys, "verify", "--ledger", str(ledger), "--heads", str(witness),
                       "--public-key", str(pub_key))
    assert code == 0, out
    assert "warning: writer" in out and "20 records after seq 20 not witnessed yet" in out, out


def test_heads_config_needs_a_key_and_a_witness_together(tmp_path: Path,
                                                         keys: tuple[Path, Path]) -> None:
    priv, _ = keys
    text = (REPO_ROOT / "examples" / "japan_talk" / "partners.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("[ledger]\n", f'[ledger]\nheads_key = "{priv}"\n'))
    with pytest.raises(ConfigError, match="need a witness"):
        load_config(bad)
    good = tmp_path / "good.toml"
    good.write_text(text.replace("[ledger]\n", f'[ledger]\nheads_key = "{priv}"\n'
                                 f'witness_file = "{tmp_path / "h.jsonl"}"\nheads_every = 100\n'
                                 "heads_seconds = 30\n"))
    config = load_config(good)
    pub = head_publisher(config)
    assert pub is not None and (pub.every_records, pub.every_seconds) == (100, 30.0)
    assert head_publisher(load_config(REPO_ROOT / "examples" / "japan_talk" / "partners.toml")) is None
