"""Google Consent Mode v2: the ``gtag('consent', ...)`` calls placed before any Google tag.

``default`` carries what applies before a choice in the visitor's jurisdiction; when the
visitor has decided, ``update`` follows at once with the choice (each page view starts from
the stored choice, the way Google expects a CMP to restore it).

Modes: ``basic`` (the default): Google tags are partners like any other, so in opt-in regions
no Google tag loads before consent and the calls only reach tags that run. ``advanced``
(explicit TOML choice): Google tags load before consent and get ``denied`` signals, so they
send cookieless pings; ``wait_for_update`` is sent only then, while the banner is open, and
``ads_data_redaction`` while ``ad_storage`` is denied.

References: Google Tag Platform, "Consent mode" (gtag consent default/update, ad_storage,
ad_user_data, ad_personalization, analytics_storage, wait_for_update, ads_data_redaction).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

SIGNALS = ("ad_storage", "ad_user_data", "ad_personalization", "analytics_storage")
Mode = Literal["off", "basic", "advanced"]


@dataclass(frozen=True)
class ConsentModeConfig:
    mode: Mode = "off"
    #: Consent Mode signal -> our purposes that must all be granted for it to be "granted".
    signals: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    wait_for_update_ms: int = 500

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


def state(config: ConsentModeConfig, granted: frozenset[str]) -> dict[str, str]:
    out = {}
    for signal in SIGNALS:
        needed = config.signals.get(signal, ())
        out[signal] = "granted" if needed and all(p in granted for p in needed) else "denied"
    return out


def script(config: ConsentModeConfig, *, before_choice: frozenset[str], granted: frozenset[str],
           decided: bool, banner_visible: bool, nonce: str | None = None) -> bytes:
    """The inline <script> with ``default`` (and ``update`` when decided)."""
    default: dict[str, Any] = dict(state(config, before_choice))
    if config.mode == "advanced" and banner_visible:
        default["wait_for_update"] = config.wait_for_update_ms
    lines = ["window.dataLayer=window.dataLayer||[];",
             "function gtag(){dataLayer.push(arguments);}",
             f"gtag('consent','default',{_js(default)});"]
    current = state(config, granted if decided else before_choice)
    if decided:
        lines.append(f"gtag('consent','update',{_js(current)});")
    if config.mode == "advanced" and current["ad_storage"] == "denied":
        lines.append("gtag('set','ads_data_redaction',true);")
    attr = f' nonce="{html.escape(nonce, quote=True)}"' if nonce else ""
    return f"<script{attr}>{''.join(lines)}</script>".encode()


def _js(value: Mapping[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))
