"""[partners.ID.forward]: checked at start-up with key paths; secrets only by variable name."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from middleware.config import parse_config
from middleware.errors import ConfigError
from middleware.forward.forwarder import read_secrets
from tests.forward_helpers import config_toml, make_config

URLS = {"meta": "http://127.0.0.1:1"}


def load(tmp_path: Path, meta: str) -> object:
    return parse_config(tomllib.loads(config_toml(URLS, str(tmp_path / "l"), meta=meta)), "p.toml")


def test_forward_config_parsed_into_partner(tmp_path: Path) -> None:
    spec = make_config(URLS, tmp_path / "l").partners["meta"].forward
    assert spec is not None and spec.kind == "meta-conversions-api" and spec.account == "1234567890"
    assert spec.cookies == ("_fbp",) and "email_sha256" in spec.fields and spec.test_loopback


@pytest.mark.parametrize(("body", "key", "message"), [
    ('kind = "meta-capi"\naccount = "1"\ncredential_env = "T"', "kind", "expected one of"),
    ('kind = "meta-conversions-api"\naccount = "123456"\ncredential_env = "T"\nendpoint = "http://graph.facebook.com/v21.0"',
     "endpoint", "https://"),
    ('kind = "meta-conversions-api"\naccount = "123456"\ncredential_env = "T"\nendpoint = "https://127.0.0.1/v21.0"',
     "endpoint", "loopback endpoint needs test_loopback"),
    ('kind = "meta-conversions-api"\naccount = "123456"\ncredential_env = "T"\nendpoint = "https://10.0.0.8/v21.0"',
     "endpoint", "private"),
    ('kind = "meta-conversions-api"\naccount = "123456"\ncredential_env = "T"\nendpoint = "https://169.254.169.254/"',
     "endpoint", "link-local"),
    ('kind = "meta-conversions-api"\naccount = "123456"\ncredential_env = "T"\nendpoint = "https://graph.facebook.com/v21.0?access_token=x"',
     "endpoint", "no query"),
    ('kind = "meta-conversions-api"\naccount = "123456"\ncredential_env = "T"\nendpoint = "https://u:p@graph.facebook.com/"',
     "endpoint", "credentials do not belong"),
    ('kind = "meta-conversions-api"\naccount = "123456"\ncredential_env = "T"\ntest_loopback = true\nendpoint = "http://example.com/"',
     "endpoint", "only a loopback"),
    ('kind = "meta-conversions-api"\naccount = "pixel"\ncredential_env = "T"', "account", "pixel"),
    ('kind = "meta-conversions-api"\naccount = "123456"\ncredential_env = "EAAB-token-value!"',
     "credential_env", "never the secret"),
    ('kind = "meta-conversions-api"\naccount = "123456"', "credential_env", "missing"),
    ('kind = "meta-conversions-api"\naccount = "123456"\ncredential_env = "T"\nfields = ["email"]',
     "fields[0]", "unknown field 'email'"),
    ('kind = "meta-conversions-api"\naccount = "123456"\ncredential_env = "T"\nfields = ["page_url"]',
     "fields", "requires 'ua_family'"),
    ('kind = "meta-conversions-api"\naccount = "123456"\ncredential_env = "T"\ncookies = ["_ga"]',
     "cookies[0]", "not one of the partner's cookies"),
    ('kind = "meta-conversions-api"\naccount = "123456"\ncredential_env = "T"\ntoken = "x"',
     "token", "unknown key"),
])
def test_forward_config_errors_name_the_key(tmp_path: Path, body: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, body)
    text = str(info.value)
    assert f"partners.meta.forward.{key}" in text and message in text, text


def test_forward_config_default_endpoints_are_the_partners(tmp_path: Path) -> None:
    body = 'kind = "meta-conversions-api"\naccount = "123456"\ncredential_env = "T"'
    spec = load(tmp_path, body).partners["meta"].forward  # type: ignore[attr-defined]
    assert spec.endpoint == "https://graph.facebook.com/v21.0" and not spec.test_loopback


def test_forward_missing_credential_stops_start_up_without_showing_values(tmp_path: Path) -> None:
    config = make_config(URLS, tmp_path / "l")
    specs = {"meta": config.partners["meta"].forward}
    with pytest.raises(ConfigError, match="environment variable META_TOKEN is not set"):
        read_secrets("p.toml", specs, {})  # type: ignore[arg-type]
    assert read_secrets("p.toml", specs, {"META_TOKEN": "t0k"}) == {"meta": "t0k"}  # type: ignore[arg-type]


def test_forward_readme_example_is_the_example_file_and_valid() -> None:
    from middleware.config import load_config
    from tests.support.servers import REPO_ROOT

    example = (REPO_ROOT / "examples" / "forwarding" / "partners.toml").read_text()
    assert example.strip() in (REPO_ROOT / "README.md").read_text()
    config = load_config(REPO_ROOT / "examples" / "forwarding" / "partners.toml")
    assert {pid for pid, p in config.partners.items() if p.forward} == {"ga4", "meta"}
