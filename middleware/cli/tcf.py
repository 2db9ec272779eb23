"""consent-gate tcf update-gvl: fetch IAB's Global Vendor List into the file the TOML names."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import tomllib
from pathlib import Path

from ..errors import ConsentGateError
from ..signals.gvl import GVL_URL, GlobalVendorList, parse_gvl
from .common import EXIT_OK, emit, find_config_path

#: The list is a few MB; refuse anything far larger rather than fill the disk.
MAX_GVL_BYTES = 64 * 1024 * 1024


def update_gvl_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=GVL_URL, help=f"where to fetch it (default: {GVL_URL})")
    p.add_argument("--output", metavar="PATH",
                   help="the file to write (default: the config's [tcf] gvl path)")


def _output_path(args: argparse.Namespace) -> Path:
    if args.output:
        return Path(args.output)
    config = find_config_path(args)
    if config is not None:
        # Only [tcf] gvl is read: the whole config would refuse a list that does not exist yet.
        try:
            data = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConsentGateError(f"cannot read {config}: {exc}") from None
        tcf_table = data.get("tcf")
        gvl_path = tcf_table.get("gvl") if isinstance(tcf_table, dict) else None
        if isinstance(gvl_path, str) and gvl_path.strip():
            # A relative path is relative to where consent-gate runs, as the server reads it.
            return Path(gvl_path)
    raise ConsentGateError("where to write the Global Vendor List: give --output PATH, "
                           "or a config whose [tcf] table has gvl = \"PATH\"")


def fetch_gvl(url: str) -> tuple[bytes, GlobalVendorList]:
    import httpx2

    try:
        with httpx2.stream("GET", url, timeout=30.0, follow_redirects=True) as response:
            if response.status_code != 200:
                raise ConsentGateError(f"{url} answered HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_GVL_BYTES:
                    raise ConsentGateError(f"{url}: more than {MAX_GVL_BYTES} bytes; not a vendor list")
    except httpx2.HTTPError as exc:
        raise ConsentGateError(f"cannot fetch {url}: {exc}") from None
    try:
        data = json.loads(bytes(body))
    except ValueError as exc:
        raise ConsentGateError(f"{url} did not send JSON ({exc})") from None
    return bytes(body), parse_gvl(data, url)


def format_update(path: Path, gvl: GlobalVendorList) -> str:
    return (f"Global Vendor List v{gvl.version} (TCF policy {gvl.policy_version}, "
            f"{len(gvl.vendors)} vendors) written to {path}")


def run_update_gvl(args: argparse.Namespace) -> int:
    path = _output_path(args)
    body, gvl = fetch_gvl(args.url)
    # Written beside the target and renamed: a running server never reads half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".gvl-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    emit(args, format_update(path, gvl), {"path": str(path), "vendor_list_version": gvl.version,
                                          "tcf_policy_version": gvl.policy_version,
                                          "vendors": len(gvl.vendors)})
    return EXIT_OK
