"""The signals through the whole middleware: jurisdictions, TCF vendors, GPP, macros, Consent Mode,
other tools' cookies. Real ledger (SQLite in a temp dir), the example TOML of the README."""

from __future__ import annotations

import asyncio
import random
import tomllib
from pathlib import Path
from typing import Any

import pytest

from middleware import ConsentMiddleware
from middleware.config import parse_config
from middleware.signals import gpp
from tests.asgi_helpers import PAGE, SECRET, cookie_for, html_app, http_scope, run
from tests.support import reference
from tests.test_signals_foreign import ONETRUST
from tests.test_signals_tcf import random_fields

EXAMPLE = Path(__file__).parent / "signals_data" / "signals.toml"
EEA = [(b"cloudfront-viewer-country", b"DE")]
CALIFORNIA = [(b"cloudfront-viewer-country", b"US"), (b"cloudfront-viewer-country-region", b"CA")]
JAPAN = [(b"cloudfront-viewer-country", b"JP")]
GPT = b"securepubads.g.doubleclick.net/tag/js/gpt.js"
MEASURE = b"px.measure.example/p.gif"


def _gate(tmp_path: Path, **changes: Any) -> ConsentMiddleware:
    data = tomllib.loads(EXAMPLE.read_text())
    data["ledger"] = {"path": str(tmp_path / "ledger.sqlite3")}
    for key, value in changes.items():
        section, _, name = key.partition(".")
        data[section][name] = value
    return ConsentMiddleware(html_app([PAGE]), config=parse_config(data, "signals.toml"), secret=SECRET)


def _get(gate: ConsentMiddleware, headers: list[tuple[bytes, bytes]], cookie: str | None = None) -> Any:
    return asyncio.run(run(gate, http_scope("/", cookie=cookie, headers=headers)))


_TC: dict[str, str] = {}


def _tc_string(name: str) -> str:
    """TC strings from the reference encoder: vendor 755 consented (or not), 20 disclosed only."""
    if not _TC:
        base = random_fields(random.Random(42))
        base.update(purpose_consents=[1, 2, 3, 4, 7], purpose_legitimate_interests=[],
                    vendor_consents=[755], vendor_legitimate_interests=[], publisher_restrictions=[],
                    disclosed_vendors=[20, 755])
        refused = dict(base, vendor_consents=[])
        _TC.update(zip(["yes", "no"], reference.run("tcf_encode", [base, refused]), strict=True))
    return _TC[name]


def test_signals_gate_eea_visitor_gets_nothing_before_consent(tmp_path: Path) -> None:
    gate = _gate(tmp_path)
    out = _get(gate, EEA)
    assert GPT not in out.body and MEASURE not in out.body
    assert b'id="consent-gate-banner"' in out.body
    assert b"__gpp" not in out.body  # GPP is for the US-style regions
    vary = b",".join(out.header(b"vary")).lower()
    assert b"cloudfront-viewer-country" in vary and b"cloudfront-viewer-country-region" in vary


def test_signals_gate_tcf_vendor_needs_the_tc_string(tmp_path: Path) -> None:
    gate = _gate(tmp_path)
    ours = cookie_for(gate, {"ads", "analytics"})
    refused = _get(gate, EEA, cookie=f"{ours}; euconsent-v2={_tc_string('no')}")
    assert GPT not in refused.body  # our consent is there, the CMP's vendor consent is not
    allowed = _get(gate, EEA, cookie=f"{ours}; euconsent-v2={_tc_string('yes')}")
    assert GPT in allowed.body
    # The macros carry the same string to the partner, and GDPR applies.
    assert f"gdpr=1&gdpr_consent={_tc_string('yes')}&gpp=&gpp_sid=".encode() in allowed.body
    assert MEASURE not in allowed.body  # vendor 20 has no consent for purpose 8 in that string
    csp = b"".join(allowed.header(b"content-security-policy"))
    assert b"securepubads.g.doubleclick.net" in csp and b"px.measure.example" not in csp
    junk = _get(gate, EEA, cookie=f"{ours}; euconsent-v2=CPgarbage")
    assert GPT not in junk.body


def test_signals_gate_consent_mode_default_then_update_before_the_google_tag(tmp_path: Path) -> None:
    gate = _gate(tmp_path)
    cookie = f"{cookie_for(gate, {'ads'})}; euconsent-v2={_tc_string('yes')}"
    body = _get(gate, EEA, cookie=cookie).body
    default = body.index(b"gtag('consent','default',")
    update = body.index(b"gtag('consent','update',")
    assert default < update < body.index(GPT)
    assert b'"ad_storage":"denied"' in body[default:update]
    assert b'"ad_storage":"granted","ad_user_data":"granted","ad_personalization":"granted",' \
           b'"analytics_storage":"denied"' in body[update:]


def test_signals_gate_california_opt_out_runs_partners_and_gpc_stops_sale(tmp_path: Path) -> None:
    gate = _gate(tmp_path)
    out = _get(gate, CALIFORNIA)
    assert GPT in out.body and MEASURE in out.body  # opt-out: partners run, no TCF check here
    assert b"Do Not Sell or Share My Personal Information" in out.body
    assert b"Opt-out preference signal honored" not in out.body
    assert b"gdpr=0&gdpr_consent=&" in out.body
    parsed = gpp.decode(_gpp_in(out.body))
    assert parsed.usnat is not None and parsed.usnat.sale_opt_out == gpp.DID_NOT_OPT_OUT
    assert parsed.usnat.gpc is False
    with_gpc = _get(gate, [*CALIFORNIA, (b"sec-gpc", b"1")])
    assert GPT not in with_gpc.body  # ads is a sale/sharing purpose
    assert MEASURE in with_gpc.body
    assert b"Opt-out preference signal honored" in with_gpc.body
    usnat = gpp.decode(_gpp_in(with_gpc.body)).usnat
    assert usnat is not None and usnat.sale_opt_out == gpp.OPTED_OUT and usnat.gpc is True
    theirs = reference.run("gpp_decode", [_gpp_in(with_gpc.body)])[0]
    assert theirs["usnat"]["SaleOptOut"] == 1 and theirs["usnat"]["Gpc"] is True


def _gpp_in(body: bytes) -> str:
    """The GPP string the page's __gpp stub serves."""
    start = body.index(b'"gppString":"') + len(b'"gppString":"')
    return body[start:body.index(b'"', start)].decode()


def test_signals_gate_elsewhere_notice_only_no_banner(tmp_path: Path) -> None:
    out = _get(_gate(tmp_path), JAPAN)
    assert GPT in out.body and b'id="consent-gate-banner"' not in out.body
    assert b"Privacy choices" in out.body


def test_signals_gate_unknown_region_gets_the_strictest_stance(tmp_path: Path) -> None:
    out = _get(_gate(tmp_path), [])
    assert GPT not in out.body and b'id="consent-gate-banner"' in out.body


def test_signals_gate_onetrust_cookie_is_a_consent_source_and_ours_wins(tmp_path: Path) -> None:
    gate = _gate(tmp_path)
    tc = f"euconsent-v2={_tc_string('yes')}"
    adopted = _get(gate, EEA, cookie=f"OptanonConsent={ONETRUST}; {tc}")
    assert GPT in adopted.body and b'id="consent-gate-banner"' not in adopted.body
    ours = _get(gate, EEA, cookie=f"{cookie_for(gate, {'analytics'})}; OptanonConsent=groups=C0004:1; {tc}")
    assert GPT not in ours.body  # our cookie refused ads; OneTrust's grant does not count
    junk = _get(gate, EEA, cookie=f"OptanonConsent=groups=nonsense; {tc}")
    assert GPT not in junk.body and b'id="consent-gate-banner"' in junk.body


@pytest.mark.parametrize("header", ["CF-IPCountry", "X-Vercel-IP-Country"])
def test_signals_gate_headers_the_toml_does_not_name_are_ignored(tmp_path: Path, header: str) -> None:
    out = _get(_gate(tmp_path), [(header.lower().encode(), b"JP")])
    assert GPT not in out.body  # unknown region: strictest (opt-in)


def test_signals_gate_ledger_records_jurisdiction_rule_and_strings(tmp_path: Path) -> None:
    import json

    from tests.test_disclosure import rows

    gate = _gate(tmp_path)
    cookie = f"{cookie_for(gate, {'ads', 'analytics'})}; euconsent-v2={_tc_string('yes')}"
    _get(gate, EEA, cookie=cookie)
    _get(gate, [*CALIFORNIA, (b"sec-gpc", b"1")])
    views = rows(tmp_path / "ledger.sqlite3", "page_views")
    assert len(views) == 2
    eea, ca = (json.loads(v["fields"]) for v in views)
    assert eea == {"jurisdiction": "DE", "rule": "EEA", "stance": "opt-in",
                   "tc_string": _tc_string("yes"), "tc_string_to": ["gpt"]}
    assert ca["jurisdiction"] == "US-CA" and ca["rule"] == "US-CA" and ca["stance"] == "opt-out"
    assert "tc_string" not in ca and gpp.decode(ca["gpp_string"]).usnat is not None


def test_signals_gate_consent_mode_advanced_loads_google_tags_told_denied(tmp_path: Path) -> None:
    gate = _gate(tmp_path, **{"consent_mode.mode": "advanced"})
    body = _get(gate, EEA).body
    assert b'id="consent-gate-banner"' in body
    assert GPT in body and MEASURE not in body  # the Google tag only
    head = body[:body.index(GPT)]
    assert b'"ad_storage":"denied"' in head and b'"wait_for_update":500' in head
    assert b"gtag('set','ads_data_redaction',true)" in head
    basic = _get(_gate(tmp_path / "basic"), EEA).body
    assert GPT not in basic and b"gtag(" not in basic  # basic: no Google tag, so no calls either


HARD_CODED = (b'<!DOCTYPE html><html><head><title>T</title></head><body>'
              b'<img alt="" src="https://px.measure.example/p.gif?gdpr=${GDPR}&amp;c=${GDPR_CONSENT_20}'
              b'&amp;s=%24%7BGPP_SID%7D&amp;x=${GDPR_CONSENT_99}"></body></html>')


@pytest.mark.parametrize("split", [None, *range(60, 140, 7)])
def test_signals_gate_fills_macros_in_hard_coded_urls_across_chunks(tmp_path: Path, split: int | None) -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    data["ledger"] = {"path": str(tmp_path / "ledger.sqlite3")}
    chunks = [HARD_CODED] if split is None else [HARD_CODED[:split], HARD_CODED[split:]]
    gate = ConsentMiddleware(html_app(chunks), config=parse_config(data, "signals.toml"), secret=SECRET)
    out = _get(gate, CALIFORNIA)
    assert b'src="https://px.measure.example/p.gif?gdpr=0&amp;c=&amp;s=7&amp;x="' in out.body
    eea = _get(gate, EEA, cookie=f"{cookie_for(gate, {'analytics'})}; euconsent-v2={_tc_string('yes')}")
    # Vendor 20 is declared by a partner: it gets the string (the rewriter keeps or neutralises the tag).
    assert f"gdpr=1&amp;c={_tc_string('yes')}&amp;s=&amp;x=\"".encode() in eea.body


@pytest.mark.parametrize(("default", "gdpr"), [("deny", b"gdpr=1"), ("allow", b"gdpr=0")])
def test_signals_gate_without_jurisdictions_gdpr_follows_the_policy(tmp_path: Path, default: str,
                                                                    gdpr: bytes) -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    data["ledger"] = {"path": str(tmp_path / "ledger.sqlite3")}
    del data["jurisdictions"]
    data["policy"]["default"] = default
    gate = ConsentMiddleware(html_app([PAGE]), config=parse_config(data, "signals.toml"), secret=SECRET)
    cookie = f"{cookie_for(gate, {'ads', 'analytics'})}; euconsent-v2={_tc_string('yes')}"
    body = _get(gate, [], cookie=cookie).body
    assert gdpr + b"&gdpr_consent=" in body and GPT in body
