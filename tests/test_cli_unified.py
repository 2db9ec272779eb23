"""One consent-gate command: the registry, shared options, config/ledger resolution, --json."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from middleware.cli import COMMANDS, build_parser, main
from middleware.cli.common import Command, Group
from middleware.ledger import ConsentEvent, DisclosureRecord, LedgerWriter, SqliteStore

from .support.servers import REPO_ROOT

JAPAN_TALK = REPO_ROOT / "examples" / "japan_talk" / "partners.toml"
NOW = datetime.now(UTC).replace(microsecond=0)


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
            ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, (*path, name))


def test_cli_every_subcommand_takes_json_and_has_a_function() -> None:
    leaves = dict(_leaves(build_parser()))
    assert ("log", "show") in leaves and ("check",) in leaves
    for path, parser in leaves.items():
        options = {o for a in parser._actions for o in a.option_strings}
        assert "--json" in options, path
        assert parser.get_default("func") is not None, path


def test_cli_registry_is_the_only_list_of_commands() -> None:
    def names(entries: tuple[Command | Group, ...], prefix: tuple[str, ...] = ()
              ) -> set[tuple[str, ...]]:
        out: set[tuple[str, ...]] = set()
        for entry in entries:
            if isinstance(entry, Group):
                out |= names(entry.commands, (*prefix, entry.name))
            else:
                out.add((*prefix, entry.name))
        return out

    assert names(COMMANDS) == set(dict(_leaves(build_parser())))


def _seed(ledger: Path) -> None:
    w = LedgerWriter(SqliteStore(ledger))
    w.write_sync([
        ConsentEvent(time=NOW - timedelta(hours=1), consent_id="KUYIJ87SWJURnLp7", action="given",
                     choices={"ads": True, "social": True}, policy_version="2008-01-23",
                     source="banner"),
        *(DisclosureRecord(time=NOW - timedelta(minutes=i), request_id=f"r{i}",
                           consent_id="KUYIJ87SWJURnLp7", path="/", partner="google-adsense",
                           purposes=("ads",), legal_basis="consent") for i in range(5)),
    ])
    w.close()


@pytest.fixture
def repo_like(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory laid out like the repository after `bash scripts/serve-example.sh`."""
    (tmp_path / "examples" / "japan_talk").mkdir(parents=True)
    shutil.copy(JAPAN_TALK, tmp_path / "examples" / "japan_talk" / "partners.toml")
    _seed(tmp_path / "consent-ledger.sqlite3")
    monkeypatch.chdir(tmp_path)
    for name in ("CONSENT_GATE_CONFIG", "CONSENT_GATE_LEDGER", "CONSENT_GATE_LEDGER_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _readme_commands() -> list[list[str]]:
    out = []
    for line in (REPO_ROOT / "README.md").read_text().splitlines():
        m = re.match(r"^\$ consent-gate (log .*)$", line)
        if m:
            argv = shlex.split(m.group(1).split(";")[0], comments=True)
            out.append(argv)
    return out


def test_cli_readme_log_commands_work_from_the_repository_root(
        repo_like: Path, capsys: pytest.CaptureFixture[str]) -> None:
    commands = _readme_commands()
    assert ["log", "show", "--partner", "google-adsense", "--limit", "3"] in commands
    for argv in commands:
        code = main(argv)
        out = capsys.readouterr()
        assert code == 0, (argv, out.err)
    assert main(["log", "show", "--partner", "google-adsense", "--limit", "3"]) == 0
    assert capsys.readouterr().out.count("google-adsense") == 3


def test_cli_config_comes_from_the_environment(repo_like: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 2
    assert "no configuration: give --config partners.toml or set CONSENT_GATE_CONFIG" in \
        capsys.readouterr().err
    monkeypatch.setenv("CONSENT_GATE_CONFIG", "examples/japan_talk/partners.toml")
    assert main(["check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["valid"] and data["policy"]["version"] == "2008-01-23"
    assert data["partners"]["google-adsense"]["inject"]["head-end"] == 1


def test_cli_no_ledger_anywhere_says_where_it_looked(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONSENT_GATE_CONFIG", raising=False)
    monkeypatch.delenv("CONSENT_GATE_LEDGER", raising=False)
    assert main(["log", "summary"]) == 2
    err = capsys.readouterr().err
    assert "no ledger: give --ledger PATH|DSN or --config partners.toml" in err
    assert not (tmp_path / "consent-ledger.sqlite3").exists()
    assert main(["log", "summary", "--json"]) == 2
    assert json.loads(capsys.readouterr().err)["error"].startswith("ledger unavailable: no ledger")


def test_cli_ledger_from_environment(repo_like: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    moved = repo_like / "elsewhere.sqlite3"
    (repo_like / "consent-ledger.sqlite3").rename(moved)
    monkeypatch.setenv("CONSENT_GATE_LEDGER", str(moved))
    assert main(["log", "verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


def test_cli_scan_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "p.html"
    page.write_text("<script src='https://pagead2.googlesyndication.com/a.js'></script>"
                    "<img src='https://tracker.unknown.example/p.gif'>")
    assert main(["scan", str(page), "--config", str(JAPAN_TALK), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["partners"]) == ["google-adsense"]
    assert data["unknown_hosts"] == ["tracker.unknown.example"]
