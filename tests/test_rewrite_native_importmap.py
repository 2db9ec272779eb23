"""The native pass hands every ``<script>`` whose first type may spell ``importmap`` (or
``speculationrules``, or holds a reference) to Python (``maybe_speculation`` in
middleware/_speedups.c, ``tokenizer._speculation``): the same bytes, enabled partners,
unknown hosts and blocked partners as the pure-Python rewriter, on every chunking
(red-team round 4: an import map to a refused partner is made inert)."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.budget import examples
from tests.test_rewrite_native import PARTNERS, check

TYPES = ["importmap", "ImportMap", " importmap\t", "&#x69;mportmap", "import&#109;ap", "importmaps",
         "text/importmap", "module", "speculationrules", "", "text/javascript", "application/json"]
TARGETS = ["https://pagead2.googlesyndication.com/a.js", "//ad.doubleclick.net/m.js",
           "https:\\/\\/www.youtube.com\\/x.js", "\\u0068ttps://i.ytimg.com/y.js", "/own.js",
           "https://cdn.example/z.js", "https://a.example.org/q.js", "lib/", "\\ud800"]


@st.composite
def import_map(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(TYPES))
    quote = draw(st.sampled_from(['"', "'", ""]))
    attr = "" if kind == "" and draw(st.booleans()) else f" type={quote}{kind}{quote}"
    more = draw(st.sampled_from(["", " async", " src=/x.js", " type=module", " data-x=1"]))
    targets = draw(st.lists(st.sampled_from(TARGETS), max_size=3))
    body = ",".join(f'"k{i}":"{t}"' for i, t in enumerate(targets))
    text = draw(st.sampled_from([f'{{"imports":{{{body}}}}}', f'{{"scopes":{{"/s/":{{{body}}}}}}}',
                                 f"not json {body}", f'{{"imports":{{{body}}}}}<!--', ""]))
    wrap = draw(st.sampled_from(["{}", "<svg><foreignObject>{}</foreignObject></svg>",
                                 "<noscript>{}</noscript>", "<head>{}</head>"]))
    return wrap.format(f"<script{attr}{more}>{text}</script>")


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(import_map(), st.sampled_from(["<p>x</p>", "<img src=//ad.doubleclick.net/i>",
                                                          "<base href=//cdn.example/>"])),
                min_size=1, max_size=4).map("".join),
       st.lists(st.integers(0, 400), max_size=3),
       st.sampled_from([frozenset(), frozenset({"ads"}), frozenset(PARTNERS)]))
@example('<script type=importmap>{"imports":{"a":"//ad.doubleclick.net/m.js"}}</script>', [],
         frozenset())
@example('<script type=importmap>{"imports":{"a":"//ad.doubleclick.net/m.js"}}</script>', [30],
         frozenset({"ads"}))
def test_native_pass_equals_pure_python_on_import_maps(doc: str, cuts: list[int],
                                                       allowed: frozenset[str]) -> None:
    check(doc.encode(), cuts, allowed, False)
