"""``consent-gate check | run | scan``: the site owner's commands around the config."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from ..config import POSITIONS, Config, load_config
from ..csp import WildcardOverlap, wildcard_overlaps
from ..env import (
    APP_ENV,
    CONFIG_ENV,
    DEFAULT_GC_THRESHOLD,
    DEFAULT_MALLOC_TRIM_MB,
    DEV_ENV,
    GC_THRESHOLD_ENV,
    MALLOC_TRIM_ENV,
)
from ..errors import ConsentGateError, SecretError
from ..malloc import malloc_trim_mb
from ..secrets import DEV_KEY
from ..signals.describe import partner_dict, partner_lines, signal_lines, signals_dict
from .common import EXIT_FOUND, EXIT_OK, config_path, emit


def format_policy(config: Config) -> str:
    """The effective policy, as a site owner reads it before deploying."""
    p = config.policy
    lines = [
        f"consent-gate configuration: {config.source}",
        f"  policy version {p.version}, effective {p.effective.isoformat()}",
        "  stance: " + ("opt-in (nothing runs until the visitor agrees)" if p.default == "deny"
                        else "opt-out (partners run until the visitor objects)"),
        f"  Global Privacy Control: {'honoured' if p.honor_gpc else 'ignored'}; "
        f"DNT: {'honoured' if p.honor_dnt else 'ignored'}",
        f"  cookie {p.cookie.name!r}, {p.cookie.max_age_days} days, secret from ${p.secret_env}"
        f" ({'set' if os.environ.get(p.secret_env) else 'NOT SET'})",
        f"  routes under {p.prefix}; CSP {config.csp.mode}; ledger {config.ledger.path} "
        f"(fail {config.ledger.fail}, ip {config.ledger.ip}, keep {config.ledger.retention_days} days)",
        *signal_lines(config),
        "",
        "Purposes:",
    ]
    for purpose in config.purposes.values():
        flags = [f for f, on in (("strictly necessary", purpose.necessary),
                                 ("sale/sharing: GPC opts out", purpose.sale_or_sharing)) if on]
        partners = ", ".join(pt.id for pt in config.partners_for_purpose(purpose.id)) or "-"
        lines.append(f"  {purpose.id:<12} {purpose.title}" + (f"  [{'; '.join(flags)}]" if flags else ""))
        lines.append(f"  {'':<12} partners: {partners}")
    lines += ["", "Partners:"]
    for partner in config.partners.values():
        lines.append(f"  {partner.id}  ({partner.name})")
        lines.append(f"      purposes: {', '.join(partner.purposes)}")
        lines.append(f"      hosts:    {', '.join(partner.hosts)}")
        lines.append(f"      receives: {', '.join(partner.receives)}")
        if partner.cookies:
            lines.append(f"      cookies:  {', '.join(partner.cookies)}")
        lines.append(f"      privacy:  {partner.privacy_url}")
        for position in POSITIONS:
            count = sum(1 for s in partner.inject if s.at == position)
            if count:
                lines.append(f"      injects:  {count} snippet(s) at {position}")
        if not partner.inject:
            lines.append("      injects:  nothing (its hard-coded tags are gated in place)")
        lines += partner_lines(partner)
        f = partner.forward
        if f is not None:
            is_set = "set" if os.environ.get(f.credential_env) else "NOT SET"
            secret = f", secret from ${f.credential_env} ({is_set})" if f.credential_env else ""
            lines.append(f"      forward:  {f.kind} to {f.endpoint}{secret}")
            fields = sorted(f.fields - {"event_id"}) + [f"cookie {c}" for c in f.cookies]
            lines.append(f"      sends:    event name, time and id; {', '.join(fields) or 'nothing else'}"
                         + (f"; events: {', '.join(sorted(f.events))}" if f.events else ""))
    return "\n".join(lines)


def overlap_fix(config: Config, w: WildcardOverlap) -> str:
    """The TOML that keeps ``w.partner``'s subdomains allowed while ``w.other`` is refused."""
    hosts = [*config.partners[w.partner].hosts, "SUBDOMAIN." + w.pattern[2:]]
    return (f'list the subdomains {w.partner} loads from as exact hosts: in [partners.{w.partner}] '
            f'hosts = [{", ".join(json.dumps(h) for h in hosts)}]; or, if {w.host!r} serves '
            f'{w.partner}, move it from partners.{w.other}.hosts to partners.{w.partner}.hosts')


def csp_warnings(config: Config) -> list[dict[str, str]]:
    """A consented partner's wildcard the CSP leaves out while another partner is refused
    (csp.without_overlapping): which partner, which pattern, which host, and the fix."""
    out = []
    for w in wildcard_overlaps(config.partners):
        index = config.partners[w.partner].hosts.index(w.pattern)
        apex = w.pattern[2:]
        kept = f"{w.partner}'s exact hosts" + (
            "" if any(apex in p.hosts for pid, p in config.partners.items() if pid != w.partner)
            else f" and {apex!r}")
        out.append({
            "key": f"partners.{w.partner}.hosts[{index}]", "partner": w.partner,
            "pattern": w.pattern, "other_partner": w.other, "host": w.host,
            "effect": (f"While {w.partner} is consented and {w.other} is not, the CSP leaves "
                       f"{w.pattern!r} out (it would let a script reach {w.other}'s {w.host!r}): "
                       f"only {kept} stay allowed, so "
                       f"the browser blocks its tags on other subdomains"),
            "fix": overlap_fix(config, w),
        })
    return out


def format_csp_warnings(warnings: list[dict[str, str]]) -> str:
    """The human lines of ``csp_warnings`` (empty when there are none)."""
    lines = []
    for w in warnings:
        lines += [f"  {w['key']}: {w['pattern']!r} also matches {w['host']!r} of partner "
                  f"{w['other_partner']!r}", f"      {w['effect']}.", f"      Fix: {w['fix']}."]
    return "\n".join(["CSP warnings:", *lines]) if lines else ""


def policy_dict(config: Config) -> dict[str, Any]:
    """The effective policy as JSON-able data (``check --json``)."""
    p = config.policy
    return {
        "source": config.source,
        "policy": {"version": p.version, "effective": p.effective.isoformat(),
                   "default": p.default, "honor_gpc": p.honor_gpc, "honor_dnt": p.honor_dnt,
                   "secret_env": p.secret_env, "secret_set": bool(os.environ.get(p.secret_env)),
                   "prefix": p.prefix, "cookie": {"name": p.cookie.name,
                                                  "max_age_days": p.cookie.max_age_days}},
        "csp": {"mode": config.csp.mode},
        "ledger": {"path": config.ledger.path, "fail": config.ledger.fail, "ip": config.ledger.ip,
                   "retention_days": config.ledger.retention_days},
        "purposes": {q.id: {"title": q.title, "necessary": q.necessary,
                            "sale_or_sharing": q.sale_or_sharing,
                            "partners": [pt.id for pt in config.partners_for_purpose(q.id)]}
                     for q in config.purposes.values()},
        "partners": {pt.id: {"name": pt.name, "purposes": list(pt.purposes),
                             "hosts": list(pt.hosts), "receives": list(pt.receives),
                             "cookies": list(pt.cookies), "privacy_url": pt.privacy_url,
                             "inject": {pos: sum(1 for s in pt.inject if s.at == pos)
                                        for pos in POSITIONS}, **partner_dict(pt)}
                     for pt in config.partners.values()},
        **signals_dict(config),
        "valid": True,
    }


# -- check ---------------------------------------------------------------------------------
def check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config_file", nargs="?", metavar="TOML",
                   help="the file to check (same as --config)")


def secret_status(config: Config) -> tuple[bool, str]:
    """(would ``run`` start?, the sentence saying so) for the secret as the environment has it."""
    from ..secrets import dev_mode_requested, signing_keys

    env = config.policy.secret_env
    try:
        keys = signing_keys(env, dev=dev_mode_requested(), warn=False)
    except SecretError as exc:
        return False, (f"`consent-gate run` would refuse to start: {exc}\n"
                       f"Set it before run, e.g. export {env}=\"$(python -c 'import secrets; "
                       "print(secrets.token_urlsafe(48))')\" (the same value on every server).")
    if keys == (DEV_KEY,):
        return True, (f"`consent-gate run` would start with the PUBLIC development key ({DEV_ENV}=1): "
                      f"anyone can forge consent. Set {env} for production.")
    return True, f"OK: the configuration is valid and {env} holds {len(keys)} signing key(s)."


def check(args: argparse.Namespace) -> int:
    if args.config_file:
        args.config = args.config_file
    config = load_config(config_path(args))
    ready, sentence = secret_status(config)
    if not sentence.startswith("OK"):
        sentence = "The configuration is valid, but:\n" + sentence
    warnings = csp_warnings(config)
    text = "\n\n".join(filter(None, [format_policy(config), format_csp_warnings(warnings), sentence]))
    emit(args, text, {**policy_dict(config), "csp_warnings": warnings, "run_would_start": ready,
                      "secret": sentence})
    return EXIT_OK


# -- run -----------------------------------------------------------------------------------
def run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("app", help="the site's ASGI app as module:attribute, e.g. mysite.asgi:application")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--app-dir", default="", help="directory to import the app from")
    p.add_argument("--dev", action="store_true",
                   help="allow an insecure development key when no secret is set (loud warning)")
    p.add_argument("--proxy-headers", action="store_true",
                   help="trust X-Forwarded-* from --forwarded-allow-ips (behind a reverse proxy)")
    p.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    p.add_argument("--log-level", default="info")
    p.add_argument("--no-access-log", dest="access_log", action="store_false",
                   help="no per-request access log (your reverse proxy usually keeps one)")
    p.add_argument("--gc-threshold", type=int, default=None, metavar="N",
                   help="the cyclic GC's generation-0 threshold in each worker (default "
                        f"{DEFAULT_GC_THRESHOLD:,}, or ${GC_THRESHOLD_ENV}; 0 keeps Python's "
                        "own 700): fewer collections over page views that wait for the ledger")
    p.add_argument("--malloc-trim-mb", type=int, default=None, metavar="MB",
                   help="free memory glibc keeps at its heap top in each worker (default "
                        f"{DEFAULT_MALLOC_TRIM_MB} MB, or ${MALLOC_TRIM_ENV}; 0 keeps glibc's "
                        "own 128 KB): no page faults for every response re-allocated there")


def run(args: argparse.Namespace) -> int:
    import uvicorn
    from uvicorn.importer import ImportFromStringError, import_from_string

    from ..secrets import dev_mode_requested, signing_keys

    path = str(config_path(args).resolve())
    # Fail here, with a clear message, not in each worker.
    config = load_config(path)
    os.environ[APP_ENV] = args.app
    os.environ[CONFIG_ENV] = path
    if args.dev:
        os.environ[DEV_ENV] = "1"
    if args.gc_threshold is not None:
        if args.gc_threshold < 0:
            raise ConsentGateError("--gc-threshold must be 0 (Python's own) or more")
        os.environ[GC_THRESHOLD_ENV] = str(args.gc_threshold)
    else:  # each worker reads it (runner.apply_gc_threshold): a bad one fails here, not there
        raw = os.environ.get(GC_THRESHOLD_ENV, "").strip()
        try:
            bad = bool(raw) and int(raw) < 0
        except ValueError:
            bad = True
        if bad:
            raise ConsentGateError(f"${GC_THRESHOLD_ENV}={raw!r} must be a whole number, 0 "
                                   "(Python's own) or more")
    if args.malloc_trim_mb is not None:
        if args.malloc_trim_mb < 0:
            raise ConsentGateError("--malloc-trim-mb must be 0 (glibc's own) or more")
        os.environ[MALLOC_TRIM_ENV] = str(args.malloc_trim_mb)
    else:  # each worker reads it (middleware.malloc): a bad one fails here, not there
        try:
            malloc_trim_mb()
        except RuntimeError:
            raise ConsentGateError(f"${MALLOC_TRIM_ENV}={os.environ.get(MALLOC_TRIM_ENV)!r} must "
                                   "be a whole number of MB, 0 (glibc's own) or more") from None
    _refuse_clashing_module(Path(args.app_dir or os.getcwd()))
    if args.app_dir:
        sys.path.insert(0, args.app_dir)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [args.app_dir, *filter(None, [os.environ.get("PYTHONPATH")])])
    elif "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    signing_keys(config.policy.secret_env, dev=dev_mode_requested(), warn=False)
    try:
        import_from_string(args.app)
    except ImportFromStringError as exc:
        raise ConsentGateError(f"cannot import the site's app {args.app!r}: {exc}") from None
    if args.json:  # one line saying what is about to be served, for supervisors and scripts
        sys.stdout.write(json.dumps({"app": args.app, "config": path, "workers": args.workers,
                                     "url": f"http://{args.host}:{args.port}"}) + "\n")
        sys.stdout.flush()
    server_config = uvicorn.Config(
        "middleware.runner:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    if args.workers > 1:
        from uvicorn.supervisors import Multiprocess

        sock = tcp_listen_socket(args.host, args.port)
        logging.getLogger("uvicorn.error").info(
            "consent-gate: serving on http://%s:%d with %d workers", args.host, args.port, args.workers)
        Multiprocess(server_config, sockets=[sock]).run()
    else:
        server = uvicorn.Server(server_config)
        server.run()
        if not server.started:  # uvicorn logged why (port taken, app failed at start-up)
            return EXIT_FOUND
    return EXIT_OK


def clashing_module(directory: Path) -> Path | None:
    """The site's own top-level ``middleware`` module or package in ``directory``, if any.

    consent-gate's import name is ``middleware``; one process cannot hold two modules of that
    name, so whichever comes first on ``sys.path`` shadows the other."""
    ours = Path(__file__).resolve().parent.parent
    for candidate in (directory / "middleware.py", directory / "middleware" / "__init__.py"):
        if candidate.exists():
            package = candidate.parent if candidate.name == "__init__.py" else candidate
            if package.resolve() != ours:
                return package
    return None


def _refuse_clashing_module(directory: Path) -> None:
    clash = clashing_module(directory)
    if clash is not None:
        raise ConsentGateError(
            f"{clash} is your site's own module named 'middleware', the import name of "
            "consent-gate itself: in one process, one of the two would silently replace the "
            "other (the site would import consent-gate, or the workers would import your module). "
            "Rename your module (e.g. to mysite_middleware) and its imports, or move it into "
            "your site's package (mysite/middleware.py is fine).")


def tcp_listen_socket(host: str, port: int) -> socket.socket:
    """A listening socket created with IPPROTO_TCP for the worker processes.

    uvicorn binds its multi-worker socket with protocol 0; accepted connections inherit it and
    asyncio then never sets TCP_NODELAY, so every keep-alive response waits ~40 ms for the
    client's delayed ACK (uvicorn issue #3149). Binding it ourselves avoids that.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConsentGateError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


# -- scan ----------------------------------------------------------------------------------
def scan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a URL (http://127.0.0.1:8000/page) or an HTML file")


def scan(args: argparse.Namespace) -> int:
    from ..scan import format_scan, scan_source

    report = scan_source(args.source, load_config(config_path(args)))
    emit(args, format_scan(report), {"source": report.source, "partners": dict(report.partners),
                                     "unknown_hosts": list(report.unknown_hosts)})
    return EXIT_OK
