"""Versioned proof of consent: the exact consent UI a decision was made on.

Every version of the banner, the preferences page and the click-to-load placeholders is
rendered once at start-up (they are built once per language anyway), hashed (SHA-256 of the
exact bytes) and stored once per hash; each decision then records the hash of what the
visitor saw and the hash of the effective policy (purposes, partners, texts). A timestamped
hash of each version of the consent UI is what the CNIL accepts as proof of what was shown.

References: CNIL recommendation on cookies and other trackers (deliberation 2020-092),
its part on proof of consent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..ui import templates
from .db import Banner

if TYPE_CHECKING:
    from starlette.types import Scope

    from ..consent import Consent
    from ..routes import ConsentUI


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def policy_document(config: Config, texts: dict[str, str], lang: str) -> str:
    """The effective policy as canonical JSON: what a decision agreed to, in words."""
    p = config.policy
    doc: dict[str, Any] = {
        "version": p.version, "effective": p.effective.isoformat(), "default": p.default,
        "honor_gpc": p.honor_gpc, "language": lang,
        "purposes": [{"id": q.id, "title": q.title, "description": q.description,
                      "necessary": q.necessary, "sale_or_sharing": q.sale_or_sharing}
                     for q in config.purposes.values()],
        "partners": [{"id": t.id, "name": t.name, "purposes": list(t.purposes),
                      "hosts": list(t.hosts), "receives": list(t.receives),
                      "cookies": list(t.cookies), "privacy_url": t.privacy_url}
                     for t in config.partners.values()],
        "texts": dict(sorted(texts.items())),
    }
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Shown:
    kind: str
    lang: str
    hash: str
    policy_hash: str


class BannerVersions:
    """Every consent UI version of this configuration, with its hash."""

    def __init__(self, config: Config, ui: ConsentUI) -> None:
        self.ui = ui
        self._html: dict[tuple[str, str], tuple[str, str]] = {}  # (kind, lang) -> (html, policy)
        self._policy: dict[str, tuple[str, str]] = {}
        for lang in ui.languages:
            texts = dict(ui.texts(lang))
            policy = policy_document(config, texts, lang)
            self._policy[lang] = (policy, sha256(policy))
            for stale in (False, True):
                for gpc in (False, True):
                    kind = "banner" + ("-stale" if stale else "") + ("-gpc" if gpc else "")
                    html = templates.banner(config, texts, lang, ui.urls, stale=stale, gpc=gpc)
                    self._html[(kind, lang)] = (html, policy)
            prefs = templates.preferences_template(config, texts, lang, ui.urls).render(
                consent_id=None, granted=frozenset(), gpc=False, return_to="")
            self._html[("preferences", lang)] = (prefs, policy)
            placeholders = "".join(
                "".join(templates.placeholder_parts(config, partner, texts, lang, ui.urls))
                for partner in config.partners.values())
            self._html[("placeholder", lang)] = (placeholders, policy)
        self._hash = {key: sha256(html) for key, (html, _p) in self._html.items()}

    def banners(self) -> list[Banner]:
        now = datetime.now(UTC).isoformat()
        return [Banner(self._hash[key], key[0], key[1], sha256(policy), policy, html, now)
                for key, (html, policy) in self._html.items()]

    def hash_of(self, kind: str, lang: str) -> str:
        return self._hash[(kind, lang)]

    def shown(self, source: str, previous: Consent | None, scope: Scope) -> Shown:
        """What the visitor had in front of them when they chose, from where they chose."""
        lang = self.ui.language(scope)
        if lang not in self._policy:
            lang = self.ui.default_language
        if source == "preferences":
            kind = "preferences"
        elif source == "placeholder":
            kind = "placeholder"
        else:
            stale = previous is not None and getattr(previous, "stale_version", None) is not None
            gpc = previous is not None and bool(getattr(previous, "gpc", False))
            kind = "banner" + ("-stale" if stale else "") + ("-gpc" if gpc else "")
        return Shown(kind, lang, self._hash[(kind, lang)], self._policy[lang][1])
