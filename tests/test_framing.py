"""Clickjacking: who may frame the site's pages ([csp] frame_ancestors) and ours."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from .asgi_helpers import html_app, http_scope, make_gate, run


def directives(value: bytes) -> dict[str, list[str]]:
    parts = [p.strip().split() for p in value.decode().split(";")]
    return {p[0]: p[1:] for p in parts if p}


@pytest.mark.parametrize(("configured", "expected"), [
    (None, ["'self'"]),
    (["'none'"], ["'none'"]),
    (["'self'", "https://partner.example"], ["'self'", "https://partner.example"]),
])
def test_framing_site_pages_carry_frame_ancestors(tmp_path: Path, configured: list[str] | None,
                                                  expected: list[str]) -> None:
    overrides = {"csp": {"frame_ancestors": configured}} if configured else {}
    gate = make_gate(html_app(), tmp_path, **overrides)
    out = asyncio.run(run(gate, http_scope()))
    assert directives(out.header(b"content-security-policy")[0])["frame-ancestors"] == expected


@pytest.mark.parametrize(("configured", "expected"), [
    (None, [b"SAMEORIGIN"]), (["'none'"], [b"DENY"]), (["'self'", "https://partner.example"], []),
])
def test_framing_site_pages_carry_x_frame_options(tmp_path: Path, configured: list[str] | None,
                                                  expected: list[bytes]) -> None:
    overrides = {"csp": {"frame_ancestors": configured}} if configured else {}
    gate = make_gate(html_app(), tmp_path, **overrides)
    assert asyncio.run(run(gate, http_scope())).header(b"x-frame-options") == expected


def test_framing_site_own_x_frame_options_is_kept(tmp_path: Path) -> None:
    app = html_app(headers=[(b"content-type", b"text/html"), (b"x-frame-options", b"DENY")])
    out = asyncio.run(run(make_gate(app, tmp_path), http_scope()))
    assert out.header(b"x-frame-options") == [b"DENY"]


@pytest.mark.parametrize("mode", ["report-only", "off"])
def test_framing_x_frame_options_also_without_enforced_csp(tmp_path: Path, mode: str) -> None:
    gate = make_gate(html_app(), tmp_path, csp={"mode": mode})
    out = asyncio.run(run(gate, http_scope()))
    assert out.header(b"x-frame-options") == [b"SAMEORIGIN"]
    # Only the base rule is enforced, no frame-ancestors.
    assert out.header(b"content-security-policy") == [b"base-uri 'self'"]
