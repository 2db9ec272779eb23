"""A site's own endpoint: the allowed fields as JSON, ``Authorization: Bearer`` from the
environment; the sender passes ``Sec-GPC: 1`` on (``pass_gpc``, on by default for webhooks)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from middleware.forward.kinds import DAY, Outbound, Prepared
from middleware.forward.spec import ForwardSpec
from middleware.ledger.records import format_time


class Webhook:
    max_age_s = 7 * DAY
    max_batch = 1

    def merge(self, bodies: list[dict[str, Any]]) -> dict[str, Any]:
        return bodies[0]

    def body(self, spec: ForwardSpec, ev: Outbound) -> dict[str, Any]:
        return {
            "event": ev.event, "event_id": ev.event_id,
            "event_time": format_time(dt.datetime.fromtimestamp(ev.event_time, dt.UTC)),
            "fields": dict(ev.values), "limited_data_use": ev.limited_data_use,
        }

    def prepare(self, spec: ForwardSpec, secret: str, gpc: bool) -> Prepared:
        headers = {"content-type": "application/json"}
        if secret:
            headers["authorization"] = f"Bearer {secret}"
        return Prepared(spec.endpoint, headers)  # the sender adds Sec-GPC where pass_gpc is on

    def accepted(self, status: int, body: bytes) -> tuple[bool, str]:
        return True, f"HTTP {status}"


KIND = Webhook()
