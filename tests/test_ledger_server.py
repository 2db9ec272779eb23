"""The disclosure ledger under a real multi-worker server: concurrency, a crashed worker, fail closed.

Each test runs ``consent-gate run examples.japan_talk.app:app`` (uvicorn on 127.0.0.1) with a
copy of the example's partners.toml whose ``[ledger] path`` is a SQLite file in ``tmp_path``.
Requests carry a signed cookie granting every purpose and a unique ``?n=<number>``; with
``keep_query = true`` the ledger's ``path`` column links each response to its rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import secrets
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from middleware.config import Config, load_config
from middleware.consent import ConsentCodec, StoredChoice
from middleware.ledger import Filters, PageView, StoredRow, open_store, verify
from tests.support.load import LoadRunner, Result
from tests.support.servers import REPO_ROOT, ServerProcess, start_command

pytestmark = pytest.mark.server

EXAMPLE_TOML = REPO_ROOT / "examples" / "japan_talk" / "partners.toml"
APP = "examples.japan_talk.app:app"
#: Its only hard-coded partner tags are plain links: the partners it enables are exactly the
#: ones whose snippets partners.toml injects (hakone-day-trip would add YouTube's iframe).
PAGE = "/articles/kyoto-autumn"
ALL_PURPOSES = frozenset({"ads", "social", "necessary"})
CLIENTS = 32
LEDGER_ERROR = "the ledger cannot write"
#: How long a real condition (workers up, 100 pages served, a replacement connected) may take
#: before the test gives up: a hang guard, not a budget. At load average 12-20 on 2 cores
#: (two copies of the process-starting tests in parallel beside other jobs) 100 pages took
#: more than 15 s and some connects more than 10 s; when the host is idle each condition holds
#: within a second or two and the wait ends then.
PATIENCE = 90.0


# --------------------------------------------------------------------------- helpers


def write_config(tmp_path: Path, ledger_path: Path, *, fail: str = "closed",
                 keep_query: bool = True, retry_seconds: float | None = None) -> Path:
    """A copy of the example's partners.toml with the [ledger] settings replaced
    (``retry_seconds``, which the example leaves at its default, added when given)."""
    text = EXAMPLE_TOML.read_text(encoding="utf-8")
    if retry_seconds is not None:
        text, count = re.subn(r"^\[ledger\]\n", f"[ledger]\nretry_seconds = {retry_seconds}\n",
                              text, flags=re.MULTILINE)
        assert count == 1, "examples/japan_talk/partners.toml: no [ledger] table"
    for key, value in (("path", f'"{ledger_path}"'), ("fail", f'"{fail}"'),
                       ("keep_query", "true" if keep_query else "false")):
        # Only inside the [ledger] table: the key is at the start of a line there.
        pattern = re.compile(rf"(\[ledger\][^\[]*?^{key} = )[^\n#]*", re.MULTILINE | re.DOTALL)
        text, count = pattern.subn(lambda m: m.group(1) + value, text)  # noqa: B023
        assert count == 1, f"examples/japan_talk/partners.toml: no [ledger] {key} line to replace"
    out = tmp_path / "partners.toml"
    out.write_text(text, encoding="utf-8")
    config = load_config(out)
    assert (config.ledger.path, config.ledger.fail, config.ledger.keep_query) == (
        str(ledger_path), fail, keep_query)
    assert retry_seconds is None or config.ledger.retry_seconds == retry_seconds
    return out


def consent_cookie(config: Config, secret: str, granted: frozenset[str] = ALL_PURPOSES) -> str:
    codec = ConsentCodec((secret,), max_age_seconds=config.policy.cookie.max_age_days * 86400)
    choice = StoredChoice("cid-" + secrets.token_hex(8), granted, config.policy.version, "banner",
                          dt.datetime.now(dt.UTC))
    return f"{config.policy.cookie.name}={codec.dumps(choice)}"


def snippet_partners(config: Config) -> dict[str, tuple[str, ...]]:
    """partner id -> the HTML of its injected snippets, for partners that inject any."""
    return {pid: tuple(s.html for s in p.inject) for pid, p in config.partners.items() if p.inject}


def partners_in(body: str, snippets: dict[str, tuple[str, ...]]) -> frozenset[str]:
    """Partners whose injected snippets are all in ``body`` (i.e. enabled by the response)."""
    return frozenset(pid for pid, htmls in snippets.items() if all(h in body for h in htmls))


def any_snippet_in(body: str, snippets: dict[str, tuple[str, ...]]) -> list[str]:
    return sorted(pid for pid, htmls in snippets.items() if any(h in body for h in htmls))


def start_server(config_path: Path, secret: str, *, workers: int) -> ServerProcess:
    argv = [sys.executable, "-m", "middleware", "run", APP, "--config", str(config_path),
            "--workers", str(workers), "--host", "127.0.0.1", "--port", "{port}"]
    return start_command(argv, env={"CONSENT_GATE_SECRET": secret, "CONSENT_GATE_DEV": ""},
                         cwd=REPO_ROOT, startup_timeout=PATIENCE)


def stop_server(srv: ServerProcess) -> str:
    """Stop the server (SIGTERM to its process group, then SIGKILL), return its output and
    delete its log file."""
    srv.stop()
    out = srv.output()
    srv.__exit__(None, None, None)
    return out


def worker_pids(master: int) -> set[int]:
    """uvicorn's worker processes: the master's children started by multiprocessing spawn
    (the master also has a multiprocessing resource-tracker child)."""
    out: set[int] = set()
    for children in Path(f"/proc/{master}/task").glob("*/children"):
        try:
            pids = [int(p) for p in children.read_text().split()]
        except OSError:
            continue
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                out.add(pid)
    return out


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def writer_processes(ledger: Path) -> dict[int, str]:
    """The host's ledger writer processes for ``ledger`` (``middleware.ledger.host`` started
    with ``--listen-fd``): pid -> the writer id (the chain) on its command line. A zombie has
    an empty command line, so a dead writer is not listed even before it is reaped."""
    out: dict[int, str] = {}
    target = str(ledger).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--listen-fd" in argv and target in argv and b"--writer-id" in argv:
            out[int(proc.name)] = argv[argv.index(b"--writer-id") + 1].decode()
    return out


def writer_connections(writer_pid: int) -> set[int]:
    """The workers' connections that the writer process ``writer_pid`` holds: its sockets
    that are connected and carry the listener's name (/proc/net/unix lists an accepted
    socket under the name it was accepted on; a worker's end has none), by inode."""
    mine: set[int] = set()
    for fd in Path(f"/proc/{writer_pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                mine.add(int(link[8:-1]))
    out: set[int] = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()  # Num RefCount Protocol Flags Type St Inode [Path]
        if len(fields) == 8 and fields[5] == "03" and int(fields[6]) in mine:
            out.add(int(fields[6]))
    return out


@dataclass
class LedgerView:
    """What the ledger holds, read after the server stopped; its chains verified."""

    by_path: dict[str, dict[str, set[str]]]  # page path with query -> request id -> partners
    rows: int
    writers: set[str]
    seq: dict[str, int]  # page path with query -> the seq of its record in its chain


def read_ledger(path: Path) -> LedgerView:
    by_path: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    writers: set[str] = set()
    seq: dict[str, int] = {}
    rows = 0
    with open_store(str(path)) as store:
        report = verify(store)
        assert report.ok, f"ledger chain broken: {[str(p) for p in report.problems[:5]]}"
        for row in store.disclosures(Filters(), newest_first=False):
            assert isinstance(row, StoredRow), f"broken row: {row}"
            rec = row.record
            assert isinstance(rec, PageView), "the middleware writes one record per page view"
            assert rec.request_id not in by_path[rec.path], "two records for one page view"
            by_path[rec.path][rec.request_id].update(rec.partner_ids)
            writers.add(row.writer_id)
            seq[rec.path] = row.seq
            rows += 1
    assert report.rows >= rows
    return LedgerView({p: dict(ids) for p, ids in by_path.items()}, rows, writers, seq)


def describe(results: list[Result]) -> str:
    errors: dict[str, int] = defaultdict(int)
    for r in results:
        if not r.ok:
            errors[r.error or f"status {r.status}"] += 1
    return f"{len(results)} requests, {sum(r.ok for r in results)} ok, failures: {dict(errors)}"


@pytest.fixture
def secret() -> Iterator[str]:
    yield secrets.token_urlsafe(36)  # 48 characters


# --------------------------------------------------------------------------- tests


def test_concurrent_page_views_each_get_one_record_holding_their_partners(
        tmp_path: Path, secret: str) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    config_path = write_config(tmp_path, ledger)
    config = load_config(config_path)
    snippets = snippet_partners(config)
    cookie = consent_cookie(config, secret)
    per_client = 8
    srv = start_server(config_path, secret, workers=2)
    try:
        with LoadRunner(srv.url, PAGE, clients=CLIENTS, requests_per_client=per_client,
                        headers={"cookie": cookie}, timeout=PATIENCE) as load:
            load.wait(timeout=3 * PATIENCE)
        results = load.results
    finally:
        log = stop_server(srv)
    assert len(results) == CLIENTS * per_client
    assert all(r.ok for r in results), describe(results) + "\n" + log[-3000:]

    # Every response is the whole page, with every partner's snippets (all purposes granted).
    expected = frozenset(snippets)
    assert len(expected) == 5, sorted(expected)
    for r in results:
        assert r.body.rstrip().endswith("</html>"), r.path
        assert partners_in(r.body, snippets) == expected, (r.path, any_snippet_in(r.body, snippets))

    view = read_ledger(ledger)
    by_path = view.by_path
    views = len(results)
    # Exactly one page view (request id) per response, with exactly the partners it enabled.
    for r in results:
        ids = by_path.get(r.path)
        assert ids is not None, f"no ledger rows for the page view {r.path}"
        assert len(ids) == 1, f"{r.path}: {len(ids)} request ids in the ledger, want 1"
        (partners,) = ids.values()
        assert partners == partners_in(r.body, snippets), r.path
    assert set(by_path) == {r.path for r in results}
    assert view.rows == views, "exactly one record per page view, none lost, none doubled"
    assert 1 <= len(view.writers) <= 2, view.writers  # one chain per worker process
    print(f"\n{views} page views, {view.rows} records, {len(view.writers)} writer chain(s)")


def test_killed_worker_leaves_a_valid_ledger_with_rows_for_every_received_page(
        tmp_path: Path, secret: str) -> None:
    """kill -9 of each worker in turn under load. As designed (middleware/ledger/service.py)
    the host's one writer process outlives the worker that started it: the other worker and
    uvicorn's replacements connect to the same process and go on writing the same chain, so
    the ledger ends with one writer id, seq 1..n without a gap, and the records of the pages
    that only the replacements served come after every record written before the first kill.
    Both originals are killed so that the pages after the second kill are the replacements'
    (the kernel, not the test, picks the worker that accepts a connection)."""
    ledger = tmp_path / "ledger.sqlite3"
    config_path = write_config(tmp_path, ledger)
    config = load_config(config_path)
    snippets = snippet_partners(config)
    expected = frozenset(snippets)
    cookie = consent_cookie(config, secret)
    srv = start_server(config_path, secret, workers=2)
    try:
        assert srv.proc is not None
        master = srv.proc.pid
        assert wait_for(lambda: len(worker_pids(master)) == 2, PATIENCE), "uvicorn did not start 2 workers"
        originals = worker_pids(master)
        with LoadRunner(srv.url, PAGE, clients=CLIENTS, headers={"cookie": cookie},
                        timeout=PATIENCE) as load:
            # Both workers busy and writing before the kill.
            assert wait_for(lambda: load.ok_since(0) >= 100, PATIENCE), describe(load.snapshot())
            writers = writer_processes(ledger)
            assert len(writers) == 1, f"one writer process per host and ledger: {writers}"
            ((writer_pid, writer_id),) = writers.items()
            assert wait_for(lambda: len(writer_connections(writer_pid)) == 2, PATIENCE), (
                "both workers write through the host's writer process")
            killed_at: list[float] = []  # when each victim was gone (its sockets closed)
            for victim in sorted(originals):
                held = writer_connections(writer_pid)
                os.kill(victim, signal.SIGKILL)
                assert wait_for(lambda: victim not in worker_pids(master), PATIENCE), victim  # noqa: B023
                killed_at.append(time.monotonic())
                # uvicorn's supervisor (>= 0.30) replaces a dead worker (checked every 0.5 s);
                # its replacement connects to the same writer process at its first page
                # (a connection the writer did not hold before the kill). Only once it has
                # may the other original go: with no worker connected for idle_exit (2 s)
                # the writer would stop, and the next one would begin a new chain.
                assert wait_for(lambda: bool(writer_connections(writer_pid) - held), PATIENCE), (  # noqa: B023
                    f"no replacement of worker {victim} wrote through the writer process")
                assert len(worker_pids(master) - originals) == len(killed_at)
            assert writer_processes(ledger) == {writer_pid: writer_id}, (
                "the writer process must outlive the workers, not be restarted")
            assert wait_for(lambda: load.ok_since(killed_at[-1]) >= 100, PATIENCE), (
                describe(load.snapshot()))  # pages that only the replacements served
            load.stop()
            load.wait(timeout=2 * PATIENCE)
        results = load.results
        assert srv.proc.poll() is None, "the uvicorn master died with its worker"
    finally:
        log = stop_server(srv)
    # Its last worker gone, the writer commits what it has and exits (idle_exit, 2 s).
    assert wait_for(lambda: not writer_processes(ledger), PATIENCE), "the writer process stayed"

    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    for r in failed:  # only lost connections are acceptable, never an error page
        assert r.status is None, (r.path, r.status, r.error)

    view = read_ledger(ledger)  # verify() passes
    by_path = view.by_path
    for r in ok:
        assert r.body.rstrip().endswith("</html>"), r.path
        enabled = partners_in(r.body, snippets)
        assert enabled == expected, (r.path, any_snippet_in(r.body, snippets))
        ids = by_path.get(r.path)
        assert ids is not None, f"{r.path} was received with partner snippets but has no record"
        assert len(ids) == 1, (r.path, ids)
        (partners,) = ids.values()
        assert partners == enabled, r.path
    # A page view whose response was lost may or may not have its record (log before
    # disclose), but never more than one page view's worth.
    for r in failed:
        ids = by_path.get(r.path, {})
        assert len(ids) <= 1 and all(p == expected for p in ids.values()), (r.path, ids)
    assert set(by_path) <= {r.path for r in results}
    logged_lost = [r for r in failed if r.path in by_path]
    assert view.rows == len(ok) + len(logged_lost), "one record per received page, none lost"

    # One chain, the same writer before and after both kills, no gap and no restart.
    assert view.writers == {writer_id}, view.writers
    assert sorted(view.seq.values()) == list(range(1, view.rows + 1))
    before = [view.seq[r.path] for r in ok if r.finished < killed_at[0]]
    replacements = [view.seq[r.path] for r in ok if r.started >= killed_at[-1]]
    assert len(before) >= 100 and len(replacements) >= 100, (len(before), len(replacements))
    assert min(replacements) > max(before), "the replacements' records continue the chain"
    assert log.count("died") >= 2, log[-3000:]
    print(f"\n{describe(results)}; killed workers {sorted(originals)}, both replaced; "
          f"{view.rows} records in one chain ({len(before)} before the first kill, "
          f"{len(replacements)} from the replacements alone), {len(logged_lost)} of "
          f"{len(failed)} lost responses logged")


def _broken_ledger_path(tmp_path: Path) -> Path:
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    return afile / "ledger.sqlite3"  # ENOTDIR, even for root


def _get_pages(url: str, cookie: str, n: int) -> list[httpx2.Response]:
    with httpx2.Client(base_url=url, headers={"cookie": cookie}, timeout=10,
                       trust_env=False) as c:
        return [c.get(f"{PAGE}?n={i}") for i in range(n)]


def _ledger_error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "ERROR" in line and "ledger" in line]


def _partner_hosts_in_csp(r: httpx2.Response, config: Config) -> list[str]:
    csp = r.headers.get("content-security-policy", "")
    return sorted({h for p in config.partners.values() for h in p.hosts
                   if h.removeprefix("*.") in csp})


def test_unwritable_ledger_fails_closed(tmp_path: Path, secret: str) -> None:
    ledger = _broken_ledger_path(tmp_path)
    # A retry interval of 0.5 s, not the default 5 s: the server runs on the real clock, and
    # the pause itself (how long, on the Discloser's clock) is test_disclosure_retry.py's.
    config_path = write_config(tmp_path, ledger, fail="closed", retry_seconds=0.5)
    config = load_config(config_path)
    snippets = snippet_partners(config)
    cookie = consent_cookie(config, secret)
    srv = start_server(config_path, secret, workers=1)
    try:
        first = _get_pages(srv.url, cookie, 5)
        # After the retry interval the next page view tries the ledger again and fails
        # again: that page must be served without partners too, and nothing new is logged.
        time.sleep(0.6)
        again = _get_pages(srv.url, cookie, 2)
    finally:
        log = stop_server(srv)
    problems: list[str] = []
    for i, r in enumerate(first + again):
        assert r.status_code == 200, (r.status_code, log[-3000:])
        body = r.text
        assert body.rstrip().endswith("</html>")
        assert 'class="post-body"' in body  # the article itself is served
        assert not any_snippet_in(body, snippets), (
            f"fail closed: page view {i} enabled {any_snippet_in(body, snippets)} without a ledger")
        # As for a visitor who consented to nothing, the CSP allows no partner host either:
        # it is what stops partner scripts that first-party code adds at runtime.
        if hosts := _partner_hosts_in_csp(r, config):
            problems.append(f"page view {i}: its CSP allows partner hosts {hosts} although the "
                            "ledger failed and the body was served with every partner off")
    assert not ledger.exists()
    assert LEDGER_ERROR in log and 'fail = "closed"' in log, log[-3000:]
    errors = _ledger_error_lines(log)
    if len(errors) != 1:
        problems.append(f"the ledger error is logged {len(errors)} times within seconds "
                        f"(want once per minute):\n  " + "\n  ".join(errors))
    assert not problems, "\n".join(problems)


def test_unwritable_ledger_with_fail_open_still_enables_partners(
        tmp_path: Path, secret: str) -> None:
    ledger = _broken_ledger_path(tmp_path)
    config_path = write_config(tmp_path, ledger, fail="open")
    config = load_config(config_path)
    snippets = snippet_partners(config)
    cookie = consent_cookie(config, secret)
    srv = start_server(config_path, secret, workers=1)
    try:
        pages = _get_pages(srv.url, cookie, 5)
    finally:
        log = stop_server(srv)
    for r in pages:
        assert r.status_code == 200, (r.status_code, log[-3000:])
        assert partners_in(r.text, snippets) == frozenset(snippets)
    assert LEDGER_ERROR in log and 'fail = "open"' in log, log[-3000:]
    errors = _ledger_error_lines(log)
    assert len(errors) == 1, (f"the ledger error is logged {len(errors)} times for "
                              f"{len(pages)} page views (want once per minute):\n  "
                              + "\n  ".join(errors))
