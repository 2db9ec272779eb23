"""Streaming HTML rewriter: inject snippets, neutralise blocked partners' tags, activate opt-in.

The public entry of the rewriter; its parts live in ``middleware/html/``, one job each:

* ``grammar``   what is a tag: names, the attribute grammar, the skip (and the name lists its
                C version shares), the end of each text state and its guards
* ``native``    which parts run in C (``middleware/_speedups.c``), else the regexes
* ``tokenizer`` the scan: text states, the stop loop, where each tag goes, edits applied
* ``foreign``   the stack of open elements inside ``<svg>``/``<math>`` (the tree builder's view)
* ``decide``    what a start tag gets, as a value (``TagDecision``), remembered per tag bytes
* ``partners``  URL -> partner id for the plan's host table
* ``attrs``, ``fetch``  attributes and how each may fetch; URLs in CSS, srcset, refresh, data:
* ``nested``    documents inside an attribute (``srcdoc``, ``data:``), judged by a second rewriter
* ``oversized`` a tag longer than ``max_tag``: passed through, made inert
* ``plan``      ``RewritePlan``, the value the rewriter works from

Bytes are only changed inside the tags it rewrites; everything else is copied as it came.
Memory is bounded: between calls it keeps at most one incomplete tag (up to ``max_tag``
bytes) or a few bytes of a possible end marker. See docs/rewriter.md for the design and the
fail-closed choices.

References: https://html.spec.whatwg.org/multipage/parsing.html#tokenization
"""

from __future__ import annotations

from .html import native
from .html.fetch import UNREADABLE as UNREADABLE
from .html.grammar import _END_NAMES as _END_NAMES
from .html.grammar import _NAME_SET as _NAME_SET
from .html.grammar import _PLAIN_URL_TAGS as _PLAIN_URL_TAGS
from .html.grammar import _SKIP_RE as _SKIP_RE
from .html.plan import RewritePlan as RewritePlan
from .html.tokenizer import MAX_TAG as MAX_TAG
from .html.tokenizer import Tokenizer

__all__ = ["MAX_TAG", "UNREADABLE", "HtmlRewriter", "RewritePlan"]

#: The skip chosen at import (C, or None for the regex). To change it, set
#: ``middleware.html.native.skip_end``: the tokenizer reads it there.
_skip_end = native.skip_end


class HtmlRewriter(Tokenizer):
    """One response's rewriter: ``feed`` chunks, then ``finish``; ``take_enabled`` after each
    (log before disclose); ``snapshot``/``restore`` to redo a chunk with another plan.
    ``unknown_hosts``: third-party hosts seen that match no partner. See docs/rewriter.md."""
