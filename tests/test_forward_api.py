"""forward() from site code and POST /.consent/collect through the real middleware;
``consent-gate log forward-status`` on the resulting ledger."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from middleware import ConsentMiddleware, forward
from middleware.cli import main as cli_main
from tests.forward_helpers import ENV, make_config, outbox_rows
from tests.support.partners import PartnerServer

SECRET = "forward-test-secret-" + "x" * 32
ORIGIN = "http://testserver"


async def checkout(request: Request) -> JSONResponse:
    result = await forward(request, "purchase", {"value": 30.0, "currency": "EUR",
                                                 "email": "buyer@shop.example"})
    return JSONResponse({"event_id": result.event_id, "queued": list(result.queued)})


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, PartnerServer, Path]]:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    with PartnerServer("meta") as meta:
        config = make_config({"meta": meta.url}, tmp_path / "l.sqlite3")
        app = ConsentMiddleware(Starlette(routes=[Route("/checkout", checkout, methods=["POST"])]),
                                config, secret=SECRET)
        with TestClient(app, base_url=ORIGIN) as client:
            yield client, meta, tmp_path / "l.sqlite3"


def accept_all(client: TestClient) -> None:
    r = client.post("/.consent/choice", data={"action": "accept-all"},
                    headers={"origin": ORIGIN, "accept": "application/json"})
    assert r.status_code == 200


def collect(client: TestClient, body: Any, **headers: str) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/.consent/collect", content=raw, headers={
        "content-type": "application/json", "origin": ORIGIN, "sec-fetch-site": "same-origin",
        "referer": f"{ORIGIN}/thanks?order=77", **headers})


def wait_empty(ledger: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while outbox_rows(ledger) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_forward_api_from_site_code_sends_with_consent(site: Any) -> None:
    client, meta, _ledger = site
    accept_all(client)
    answer = client.post("/checkout").json()
    assert answer["queued"] == ["meta"]
    reqs = meta.wait_for(1)
    ev = reqs[0].body["data"][0]
    assert ev["event_id"] == answer["event_id"] and reqs[0].schema_errors == []
    assert ev["event_source_url"] == f"{ORIGIN}/checkout"


def test_forward_api_without_consent_sends_nothing(site: Any) -> None:
    client, meta, ledger = site
    assert client.post("/checkout").json()["queued"] == []
    assert collect(client, {"event": "purchase", "value": 3}).status_code == 202  # same answer
    time.sleep(0.3)
    assert meta.requests == [] and outbox_rows(ledger) == 0


def test_forward_collect_sends_only_allowed_fields(site: Any) -> None:
    client, meta, _ledger = site
    accept_all(client)
    r = collect(client, {"event": "lead", "value": 5, "email": "A@B.example", "order_id": "o-9"})
    assert r.status_code == 202 and r.headers["cache-control"] == "no-store"
    ev = meta.wait_for(1)[0].body["data"][0]
    assert ev["event_name"] == "Lead" and ev["event_id"] == r.json()["event_id"]
    assert ev["event_source_url"] == f"{ORIGIN}/thanks"  # from the Referer, without its query
    assert "order_id" not in json.dumps(ev)


@pytest.mark.parametrize(("body", "headers", "status"), [
    ({"event": "purchase"}, {"sec-fetch-site": "cross-site"}, 403),
    ({"event": "purchase"}, {"origin": "https://evil.example"}, 403),
    ({"event": "purchase"}, {"content-type": "text/plain"}, 415),
    (b"{" + b" " * 5000 + b"}", {}, 413),
    (b"not json", {}, 400),
    ([1, 2], {}, 400),
    ({"value": 1}, {}, 400),
    ({"event": "purchase", "password": "x"}, {}, 400),
    ({"event": "purchase", "value": "1e9"}, {}, 400),
    ({"event": "Purchase!"}, {}, 400),
    ({"event": "purchase", "page_url": "https://evil.example/x"}, {}, 400),
])
def test_forward_collect_refuses_bad_requests(site: Any, body: Any, headers: dict[str, str],
                                              status: int) -> None:
    client, _meta, ledger = site
    accept_all(client)
    assert collect(client, body, **headers).status_code == status
    assert outbox_rows(ledger) == 0


def test_forward_collect_get_is_not_allowed(site: Any) -> None:
    client, _, _ = site
    assert client.get("/.consent/collect").status_code == 405


def test_forward_collect_is_rate_limited_per_client(site: Any) -> None:
    client, _meta, _ledger = site
    statuses = [collect(client, {"event": "page_view"}).status_code for _ in range(25)]
    assert statuses.count(429) >= 4 and statuses[0] == 202


def test_forward_outside_the_middleware_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        asyncio.run(forward({"type": "http", "headers": []}, "purchase", {}))


def test_forward_status_cli_shows_queue_failures_and_last_error(site: Any, capsys: Any) -> None:
    client, meta, ledger = site
    accept_all(client)
    meta.script(("status", 503), ("status", 503))
    client.post("/checkout")
    meta.wait_for(1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        capsys.readouterr()
        assert cli_main(["log", "forward-status", "--ledger", str(ledger), "--json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)
        if row["retries"]:
            break
        time.sleep(0.05)
    assert row["partner"] == "meta" and row["pending"] == 1 and row["retrying"] == 1
    assert row["last_error"].startswith("HTTP 503")
    assert cli_main(["log", "forward-status", "--ledger", str(ledger)]) == 0
    text = capsys.readouterr().out
    assert "meta" in text and "queued" in text and "last error per partner:" in text
    assert ENV["META_TOKEN"] not in text
