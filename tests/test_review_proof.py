"""Versioned proof of consent: each decision records the hash of the consent UI the visitor saw
and of the effective policy; the exact HTML is kept once per hash and shown by the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx2
import pytest

from middleware.asgi import ConsentMiddleware
from middleware.cli import main
from middleware.config import parse_config
from middleware.review.db import ReviewDb
from middleware.review.proof import BannerVersions

from .asgi_helpers import CONFIG, SECRET, html_app, make_config


def _versions(tmp_path: Path, **ui: object) -> BannerVersions:
    config = make_config(tmp_path, **({"ui": ui} if ui else {}))
    return ConsentMiddleware(html_app(), config=config, secret=SECRET).review.versions  # type: ignore[return-value]


def test_proof_banner_hash_changes_when_a_text_changes(tmp_path: Path) -> None:
    before = _versions(tmp_path)
    after = _versions(tmp_path, texts={"en": {"banner_title": "Your choices about partners"}})
    same = _versions(tmp_path)
    assert before.hash_of("banner", "en") == same.hash_of("banner", "en")
    assert before.hash_of("banner", "en") != after.hash_of("banner", "en")
    assert before.hash_of("preferences", "en") == after.hash_of("preferences", "en")
    pb = {b.kind: b.policy_hash for b in before.banners()}
    pa = {b.kind: b.policy_hash for b in after.banners()}
    assert pb["banner"] != pa["banner"], "the texts are part of the effective policy"
    assert len({b.hash for b in before.banners()}) == len(before.banners()), "one hash per version"


def test_proof_policy_hash_changes_with_a_partner(tmp_path: Path) -> None:
    import copy

    data = copy.deepcopy(CONFIG)
    data["ledger"]["path"] = str(tmp_path / "l.sqlite3")
    one = BannerVersions(parse_config(data), ConsentMiddleware(
        html_app(), config=parse_config(data), secret=SECRET).ui)
    data["partners"]["adsense"]["receives"] = ["ip_address", "identifiers"]
    two = BannerVersions(parse_config(data), ConsentMiddleware(
        html_app(), config=parse_config(data), secret=SECRET).ui)
    assert one.banners()[0].policy_hash != two.banners()[0].policy_hash


def test_proof_decision_records_the_banner_shown_and_cli_shows_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(tmp_path)
    gate = ConsentMiddleware(html_app(), config=config, secret=SECRET)

    async def run() -> str:
        await gate._open()
        transport = httpx2.ASGITransport(app=gate)
        async with httpx2.AsyncClient(transport=transport, base_url="http://site.example") as c:
            r = await c.post("/.consent/choice", data={"action": "accept-all", "source": "banner"},
                             headers={"origin": "http://site.example"})
            assert r.status_code == 303
            await c.post("/.consent/choice", data={"action": "save", "source": "preferences"},
                         headers={"origin": "http://site.example"})
        await gate._close()
        return str(r.cookies.get(config.policy.cookie.name))

    asyncio.run(run())
    versions = gate.review.versions
    assert versions is not None
    db = ReviewDb(config.ledger.path, create=False)
    (cid,) = {row[0] for row in db.read("SELECT consent_id FROM review_proofs")}
    proofs = db.proofs(cid)
    assert [(p.action, p.outcome, p.source) for p in proofs] == [
        ("given", "accept", "banner"), ("changed", "reject", "preferences")]
    assert proofs[0].banner_hash == versions.hash_of("banner", "en")
    assert proofs[1].banner_hash == versions.hash_of("preferences", "en")
    stored = db.banner(proofs[0].banner_hash)
    db.close()
    assert stored is not None and 'id="consent-gate-banner"' in stored.html

    assert main(["log", "subject", cid, "--ledger", config.ledger.path]) == 0
    out = capsys.readouterr().out
    assert f"banner {proofs[0].banner_hash[:16]}" in out and "accept" in out
    assert main(["log", "subject", cid, "--ledger", config.ledger.path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [b["banner_hash"] for b in data["banners_shown"]] == [p.banner_hash for p in proofs]
    assert main(["log", "banner", proofs[0].banner_hash[:12], "--ledger",
                 config.ledger.path]) == 0
    assert capsys.readouterr().out.strip() == stored.html


def test_proof_records_the_visitors_region() -> None:
    from middleware.consent import Consent
    from middleware.review.recorder import _jurisdiction
    from middleware.signals.jurisdiction import Jurisdiction

    base = Consent(consent_id="c" * 12, granted=frozenset(), policy_version="v1")
    assert _jurisdiction(base) is None
    import dataclasses

    fr = dataclasses.replace(base, jurisdiction=Jurisdiction("FR", "opt-in", "EEA"))
    unknown = dataclasses.replace(base, jurisdiction=Jurisdiction(None, "opt-in", "unknown"))
    assert (_jurisdiction(fr), _jurisdiction(unknown)) == ("FR", "unknown")
