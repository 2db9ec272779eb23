"""A worker process for the kill -9 tests: ``python -m tests.support.forward_worker MODE
PARTNER_URL LEDGER N``.

``produce``: forward N events (ids ``ev-0``..), print ``queued`` once ``forward()`` returned
for all of them, then keep sending (until killed). ``drain``: send until the outbox is empty,
print ``drained`` and exit. Leases are 1 s so that a killed worker's events come back soon.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.forward_helpers import consent, make_config, make_forwarder, outbox_rows, scope


async def main(mode: str, url: str, ledger: str, n: int) -> None:
    config = make_config({"meta": url}, Path(ledger))
    fw = make_forwarder(config, sender={"lease_s": 1.0, "idle_s": 0.05})
    await fw.startup()
    if mode == "produce":
        c = consent(config, {"ads", "analytics", "measurement"})
        for i in range(n):
            await fw.forward(scope(), c, "purchase", {"event_id": f"ev-{i}", "value": i})
        print("queued", flush=True)
        await asyncio.sleep(3600)
    else:
        while outbox_rows(Path(ledger)):
            await asyncio.sleep(0.05)
        await fw.aclose()
        await fw.writer.aclose()
        print("drained", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
