"""Which parts of the tokenizer run in C (``middleware/_speedups.c``).

``skip_end(low, pos) == _SKIP_RE.match(low, pos).end()``: the same scan, used when the
extension was built and exports the same name lists as ``grammar``. ``CONSENT_GATE_PURE_PYTHON=1``
(read at import) or setting ``skip_end`` to None selects the regex; the output is the same.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .grammar import _END_NAMES, _NAME_SET, _PLAIN_URL_TAGS

skip_end: Callable[[bytes, int], int] | None = None
if not os.environ.get("CONSENT_GATE_PURE_PYTHON"):
    try:
        from .. import _speedups
    except ImportError:
        pass
    else:
        _names = (tuple(_NAME_SET), _END_NAMES, _PLAIN_URL_TAGS)
        if _names == (_speedups.NAMES, _speedups.END_NAMES, _speedups.PLAIN_URL_TAGS):
            skip_end = _speedups.skip_end
