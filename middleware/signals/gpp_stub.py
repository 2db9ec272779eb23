"""The first-party ``__gpp`` stub: GPP 1.1 commands answered at once, from the server's decision.

Partner scripts ask ``__gpp('ping')`` / ``addEventListener`` / ``getSection`` before they
read a GPP string; a stub that answers with ``signalStatus: 'ready'`` straight away lets them
run without waiting for a CMP that is not there. The script is inline (nonce'd by the
caller's CSP) and fetches nothing.

References: IAB GPP v1.1 "CMP API Specification" (commands, PingReturn, events, __gppLocator).
"""

from __future__ import annotations

import functools
import html
import json
from importlib import resources

from . import gpp


@functools.cache
def _source() -> str:
    return resources.files(__package__).joinpath("gpp_stub.js").read_text("utf-8").strip()


def _script_json(value: object) -> str:
    """JSON that cannot end the <script> element or break a JS string literal."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def stub_data(parsed: gpp.GppString | None, *, applicable: tuple[int, ...],
              banner_visible: bool) -> dict[str, object]:
    sections: dict[str, object] = {}
    if parsed is not None and parsed.usnat is not None:
        sections["usnat"] = parsed.usnat.fields()
    return {
        "gppString": parsed.raw if parsed is not None else "",
        "sectionList": list(parsed.section_ids) if parsed is not None else [],
        "applicableSections": list(applicable) or [-1],
        "supportedAPIs": [f"{gpp.USNAT_ID}:usnat"],
        "parsedSections": sections,
        "cmpDisplayStatus": "visible" if banner_visible else "hidden",
    }


def stub_html(data: dict[str, object], nonce: str | None = None) -> bytes:
    """One inline <script> defining ``window.__gpp``; put it before any partner tag."""
    attr = f' nonce="{html.escape(nonce, quote=True)}"' if nonce else ""
    return f"<script{attr}>{_source()}({_script_json(data)});</script>".encode()
