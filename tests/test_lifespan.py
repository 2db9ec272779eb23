"""Lifespan for apps that refuse it: Django's ASGI handler raises on a lifespan scope, so
before the fix the ledger never opened at start-up and ``purge_on_start`` never ran."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

from examples.django_site import asgi as django_asgi
from middleware import ConsentMiddleware
from tests.asgi_helpers import SECRET
from tests.support.servers import REPO_ROOT, start_consent_gate

PARTNERS = REPO_ROOT / "examples" / "django_site" / "partners.toml"


def purging_config(tmp: Path) -> tuple[Path, Path]:
    text = PARTNERS.read_text(encoding="utf-8")
    ledger = tmp / "consent-ledger.sqlite3"
    old = 'path = "consent-ledger.sqlite3"'
    assert old in text, "examples/django_site/partners.toml changed: update the test"
    path = tmp / "partners.toml"
    path.write_text(text.replace(old, f'path = "{ledger.as_posix()}"\npurge_on_start = true'),
                    encoding="utf-8")
    return path, ledger


def drive_lifespan(app: Any) -> list[MutableMapping[str, Any]]:
    """What a server does: startup, then shutdown; returns what the app answered."""
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    answers: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        while len(answers) < 1 and len(incoming) == 1:
            await asyncio.sleep(0)  # shutdown only after startup was answered
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        answers.append(message)

    asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    return answers


def test_lifespan_answered_for_django_opens_ledger_and_purges(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config, ledger = purging_config(tmp_path)
    gate = ConsentMiddleware(django_asgi.application, config=config, secret=SECRET)
    with pytest.raises(ValueError):  # the premise: Django itself refuses lifespan
        asyncio.run(django_asgi.application({"type": "lifespan"}, None, None))
    with caplog.at_level(logging.INFO, logger="consent_gate"):
        answers = drive_lifespan(gate)
    assert [a["type"] for a in answers] == ["lifespan.startup.complete",
                                            "lifespan.shutdown.complete"]
    assert "does not support lifespan" in caplog.text
    assert "purged ledger records older than 395 days" in caplog.text
    tables = {r[0] for r in sqlite3.connect(ledger).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "disclosures" in tables, "the ledger was opened at start-up, before any request"


def test_lifespan_answered_for_an_app_that_returns_without_answering(tmp_path: Path) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    config, ledger = purging_config(tmp_path)
    answers = drive_lifespan(ConsentMiddleware(app, config=config, secret=SECRET))
    assert [a["type"] for a in answers] == ["lifespan.startup.complete",
                                            "lifespan.shutdown.complete"]
    assert ledger.exists()


def test_lifespan_of_a_real_uvicorn_with_django_purges_on_start(tmp_path: Path) -> None:
    config, ledger = purging_config(tmp_path)
    # uvicorn runs the lifespan start-up before it listens: the log line is there once it does.
    with start_consent_gate("examples.django_site.asgi:application", config, tmp_path) as server:
        output = server.output()
    assert "purged ledger records older than 395 days" in output, output
    assert ledger.exists()
