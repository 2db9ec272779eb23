"""consent-gate: check a config, run a wrapped site, scan a page, review the partner logs.

A thin layer over the library: ``main(argv) -> int``; the ``format_*`` functions build
text and never print, so they are testable on their own.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import POSITIONS, Config, load_config
from .errors import ConsentGateError

EXIT_OK = 0
EXIT_FOUND = 1  # verify found a problem
EXIT_USAGE = 2  # bad arguments or configuration


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
    return "\n".join(lines)


def _cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(format_policy(config))
    print("\nOK: the configuration is valid.")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    import uvicorn
    from uvicorn.importer import ImportFromStringError, import_from_string

    from . import runner
    from .secrets import dev_mode_requested, signing_keys

    config_path = str(Path(args.config).resolve())
    # Fail here, with a clear message, not in each worker.
    config = load_config(config_path)
    os.environ[runner.APP_ENV] = args.app
    os.environ[runner.CONFIG_ENV] = config_path
    if args.dev:
        os.environ["CONSENT_GATE_DEV"] = "1"
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


def _cmd_scan(args: argparse.Namespace) -> int:
    from .scan import format_scan, scan_source

    config = load_config(args.config)
    report = scan_source(args.source, config)
    print(format_scan(report))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="consent-gate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="validate a partners.toml and print the effective policy")
    check.add_argument("config", help="path of the TOML file")
    check.set_defaults(func=_cmd_check)

    run = sub.add_parser("run", help="serve an ASGI app wrapped by the middleware, with uvicorn")
    run.add_argument("app", help="the site's ASGI app as module:attribute, e.g. mysite.asgi:application")
    run.add_argument("--config", default="partners.toml", help="the TOML file (default: partners.toml)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--app-dir", default="", help="directory to import the app from")
    run.add_argument("--dev", action="store_true",
                     help="allow an insecure development key when no secret is set (loud warning)")
    run.add_argument("--proxy-headers", action="store_true",
                     help="trust X-Forwarded-* from --forwarded-allow-ips (behind a reverse proxy)")
    run.add_argument("--forwarded-allow-ips", default="127.0.0.1")
    run.add_argument("--log-level", default="info")
    run.add_argument("--no-access-log", dest="access_log", action="store_false",
                     help="no per-request access log (your reverse proxy usually keeps one)")
    run.set_defaults(func=_cmd_run)

    scan = sub.add_parser("scan", help="list the third-party hosts a page loads, by partner")
    scan.add_argument("source", help="a URL (http://127.0.0.1:8000/page) or an HTML file")
    scan.add_argument("--config", default="partners.toml")
    scan.set_defaults(func=_cmd_scan)

    try:
        from .ledger.cli import add_log_parser
    except ImportError:  # pragma: no cover - the ledger package is part of the distribution
        pass
    else:
        add_log_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result: int = args.func(args)
    except ConsentGateError as exc:
        print(f"consent-gate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    raise SystemExit(main())
