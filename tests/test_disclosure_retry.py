"""After a failed ledger write: how long partners stay off, and how often the error is logged.

The pause runs on the Discloser's clock (``clock=``), so these tests step a clock instead of
sleeping through ``[ledger] retry_seconds``. The ledger is a real SQLite file whose directory
cannot be created (a regular file is in the way) until the test removes the obstacle.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from middleware import ConsentMiddleware
from middleware.config import parse_config
from middleware.disclosure import Discloser
from middleware.errors import ConfigError
from middleware.ledger import LedgerWriter, open_store

from .asgi_helpers import ADS_SNIPPET, CONFIG, SECRET, cookie_for, html_app, http_scope, make_config, run
from .test_disclosure import rows

LEDGER_ERROR = "the ledger cannot write"


class StepClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _gate(tmp_path: Path, clock: StepClock, **ledger: object) -> tuple[ConsentMiddleware, Path]:
    """A gate whose ledger lives under ``tmp_path/blocked``, a regular file for now."""
    blocked = tmp_path / "blocked"
    blocked.write_text("a regular file: nothing can be created under it, not even by root")
    path = blocked / "ledger.sqlite3"
    config = make_config(tmp_path, ledger={"path": str(path), "writer": "thread", **ledger})
    writer = LedgerWriter(open_store(str(path)))
    gate = ConsentMiddleware(html_app(), config=config, secret=SECRET,
                             ledger=Discloser(config, writer, None, clock=clock))
    return gate, path


def _unblock(path: Path) -> None:
    """The obstacle goes: the ledger's directory can be created now."""
    path.parent.unlink()
    path.parent.mkdir()


def test_retry_waits_the_interval_on_the_clock_then_writes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = StepClock()
    gate, path = _gate(tmp_path, clock)
    cookie = cookie_for(gate, {"ads"})

    async def scenario() -> list[bytes]:
        bodies = [(await run(gate, http_scope(cookie=cookie))).body]
        _unblock(path)
        clock.now += 4.999  # within the 5 s default: not tried again, though it would work now
        bodies.append((await run(gate, http_scope(cookie=cookie))).body)
        clock.now += 0.001  # the interval has passed: this page view tries, and the write lands
        bodies.append((await run(gate, http_scope(cookie=cookie))).body)
        assert gate.discloser.writer is not None
        await gate.discloser.aclose()
        return bodies

    failed, paused, retried = asyncio.run(scenario())
    assert ADS_SNIPPET.encode() not in failed, "fail closed"
    assert ADS_SNIPPET.encode() not in paused, "tried again before retry_seconds passed"
    assert ADS_SNIPPET.encode() in retried, "not tried again once retry_seconds passed"
    assert [r["partner"] for r in rows(path)] == ["adsense"], "only the retried page view is recorded"
    assert caplog.text.count(LEDGER_ERROR) == 1


def test_retry_seconds_from_the_config(tmp_path: Path) -> None:
    clock = StepClock()
    gate, path = _gate(tmp_path, clock, retry_seconds=0.25)
    cookie = cookie_for(gate, {"ads"})

    async def scenario() -> list[bytes]:
        bodies = [(await run(gate, http_scope(cookie=cookie))).body]
        _unblock(path)
        clock.now += 0.2
        bodies.append((await run(gate, http_scope(cookie=cookie))).body)
        clock.now += 0.05
        bodies.append((await run(gate, http_scope(cookie=cookie))).body)
        await gate.discloser.aclose()
        return bodies

    bodies = asyncio.run(scenario())
    assert [ADS_SNIPPET.encode() in b for b in bodies] == [False, False, True]


def test_retry_seconds_zero_tries_every_page_view(tmp_path: Path) -> None:
    clock = StepClock()
    gate, path = _gate(tmp_path, clock, retry_seconds=0)
    cookie = cookie_for(gate, {"ads"})

    async def scenario() -> list[bytes]:
        bodies = [(await run(gate, http_scope(cookie=cookie))).body]
        _unblock(path)  # the clock stands still: the next page view tries at once
        bodies.append((await run(gate, http_scope(cookie=cookie))).body)
        await gate.discloser.aclose()
        return bodies

    bodies = asyncio.run(scenario())
    assert [ADS_SNIPPET.encode() in b for b in bodies] == [False, True]
    assert len(rows(path)) == 1


def test_error_logged_once_a_minute_of_the_clock_while_failures_repeat(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = StepClock()
    gate, _ = _gate(tmp_path, clock)
    cookie = cookie_for(gate, {"ads"})
    counts: list[int] = []

    async def scenario() -> None:
        # Each retry (5 s or more apart) fails again; the error is logged at 0 s and 64 s only.
        for step in (0, 5, 10, 59, 64, 70):
            clock.now = 1000.0 + step
            out = await run(gate, http_scope(cookie=cookie))
            assert out.start["status"] == 200 and ADS_SNIPPET.encode() not in out.body
            counts.append(caplog.text.count(LEDGER_ERROR))
        await gate.discloser.aclose()

    with caplog.at_level(logging.ERROR, logger="consent_gate"):
        asyncio.run(scenario())
    assert counts == [1, 1, 1, 1, 2, 2]


def test_error_logged_with_a_clock_that_starts_near_zero(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """time.monotonic() may be small on a host that has just booted: the first failure is
    logged all the same (the log's interval counted from 0.0 once hid it for a minute)."""
    clock = StepClock()
    clock.now = 3.0
    gate, _ = _gate(tmp_path, clock)
    asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads"}))))
    asyncio.run(gate.discloser.aclose())
    assert caplog.text.count(LEDGER_ERROR) == 1


@pytest.mark.parametrize(("value", "message"), [
    (-1, "expected 0 or more seconds, got -1"),
    (float("nan"), "expected 0 or more seconds, got nan"),
    (float("inf"), "expected 0 or more seconds, got inf"),
    ("5", "expected a number of seconds, got str '5'"),
    (True, "expected a number of seconds, got bool True"),
])
def test_retry_seconds_bad_values_stop_start_up(value: object, message: str) -> None:
    data = {**CONFIG, "ledger": {"path": "ledger.sqlite3", "retry_seconds": value}}
    with pytest.raises(ConfigError) as info:
        parse_config(data, "partners.toml")
    assert "ledger.retry_seconds" in str(info.value) and message in str(info.value)


def test_retry_seconds_default_and_integer() -> None:
    assert parse_config(CONFIG, "partners.toml").ledger.retry_seconds == 5.0
    data = {**CONFIG, "ledger": {"path": "ledger.sqlite3", "retry_seconds": 2}}
    assert parse_config(data, "partners.toml").ledger.retry_seconds == 2.0
