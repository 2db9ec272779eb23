"""What the signals add to a page: the __gpp stub and Consent Mode calls (first in <head>), and
the consent macros filled in the partners' injected snippets.

Plain data for the plan builder: nothing here touches the rewriter.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from . import consent_mode, gpp_stub
from .macros import MacroStream, MacroValues, fill, has_macros

if TYPE_CHECKING:
    from ..config import Config
    from ..consent import Consent

_MAX_FILLED = 4096


class SignalSnippets:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.mode = config.consent_mode
        self.google = frozenset(pid for pid, p in config.partners.items() if p.signals.google_tag)
        self.all_purposes = frozenset(config.purposes)
        self.necessary = config.necessary_purposes
        self.sale_or_sharing = frozenset(p.id for p in config.purposes.values() if p.sale_or_sharing)
        self.vendors = frozenset(p.signals.tcf_vendor_id for p in config.partners.values()
                                 if p.signals.tcf_vendor_id is not None)
        self.uses_macros = any(has_macros(s.html.encode())
                               for p in config.partners.values() for s in p.inject)
        self._filled: OrderedDict[tuple[object, ...], bytes] = OrderedDict()

    def head(self, consent: Consent, allowed: frozenset[str]) -> bytes:
        """The stub and Consent Mode script, to go before every partner snippet."""
        out = b""
        if consent.gpp is not None and self.config.gpp.enabled:
            data = gpp_stub.stub_data(consent.gpp, applicable=consent.gpp.section_ids,
                                      banner_visible=consent.needs_banner)
            out += gpp_stub.stub_html(data)
        if self.mode.enabled and (allowed & self.google):
            out += consent_mode.script(self.mode, before_choice=self._before_choice(consent),
                                       granted=consent.granted, decided=consent.decided,
                                       banner_visible=consent.needs_banner)
        return out

    def key(self, consent: Consent) -> tuple[object, ...]:
        """What ``head`` depends on beyond the plan builder's own key."""
        return (consent.stance, consent.gpp.raw if consent.gpp is not None else None)

    def _before_choice(self, consent: Consent) -> frozenset[str]:
        stance = consent.stance
        opt_out = stance != "opt-in" if stance is not None else self.config.policy.default == "allow"
        granted = self.all_purposes if opt_out else self.necessary
        return granted - self.sale_or_sharing if consent.gpc else granted

    @property
    def signals_in_use(self) -> bool:
        return bool(self.vendors) or self.config.gpp.enabled

    def page_stream(self, consent: Consent) -> MacroStream | None:
        """A filler for the page's own bytes (hard-coded partner URLs), where TCF or GPP is used."""
        return MacroStream(self.values(consent)) if self.signals_in_use else None

    def values(self, consent: Consent) -> MacroValues:
        where = consent.jurisdiction
        gdpr = where.opt_in if where is not None else self.config.policy.default == "deny"
        return MacroValues(gdpr="1" if gdpr else "0",
                           tc_string=consent.tc.raw if gdpr and consent.tc is not None else "",
                           gpp_string=consent.gpp.raw if consent.gpp is not None else "",
                           gpp_sid=",".join(map(str, consent.gpp.section_ids)) if consent.gpp else "",
                           vendors=self.vendors)

    def fill(self, data: bytes, values: MacroValues) -> bytes:
        """``data`` with its macros filled; remembered, since a visitor sends the same strings."""
        if not data or not has_macros(data):
            return data
        key = (data, values)
        out = self._filled.get(key)
        if out is None:
            out = fill(data, values)
            self._filled[key] = out
            if len(self._filled) > _MAX_FILLED:
                self._filled.popitem(last=False)
        return out


def ledger_fields(consent: Consent, partners: frozenset[str],
                  tcf_partners: frozenset[str]) -> dict[str, object]:
    """What the ledger keeps of the signals for one page view: where the visitor was, the rule
    that applied, and which consent strings went to which partners (empty when none apply)."""
    out: dict[str, object] = {}
    where = consent.jurisdiction
    if where is not None:
        out["jurisdiction"] = where.region or "unknown"
        out["rule"] = where.rule
        out["stance"] = where.stance
    if consent.tc is not None and (got := sorted(partners & tcf_partners)):
        out["tc_string"] = consent.tc.raw
        out["tc_string_to"] = got
    if consent.gpp is not None and partners:
        out["gpp_string"] = consent.gpp.raw
    if consent.source and consent.source.startswith("foreign:"):
        out["consent_source"] = consent.source
    return out
