"""Rewriter paths the other suites did not reach (found with a coverage run of the rewriter
tests): the empty comment ``<!--->``, oversized end and structural tags, a ``<style>`` too long
to read, MathML ``mglyph src``, CSS escapes in ``url()``, and the per-response memos past
their bounds. Exact output bytes."""

from __future__ import annotations

from middleware.rewrite import HtmlRewriter, RewritePlan

from .test_rewrite import BLOCKED, make_plan, rewrite

AD = b"//ad.doubleclick.net/x"
NEUTRAL = b'<img data-consent-partner="ads" data-consent-src=' + AD + b">"


def chunked(doc: bytes, plan: RewritePlan, max_tag: int, size: int) -> tuple[bytes, HtmlRewriter]:
    rw = HtmlRewriter(plan, max_tag=max_tag)
    out = b"".join(rw.feed(doc[i : i + size]) for i in range(0, len(doc), size))
    return out + rw.finish(), rw


def test_rewrite_empty_comment_ends_at_once() -> None:
    out, _, _ = rewrite(b"<!---><img src=" + AD + b">", BLOCKED)
    assert out == b"<!--->" + NEUTRAL


def test_rewrite_oversized_end_tag_passes_and_markup_after_it_is_read() -> None:
    end_tag = b"</div data-a='" + b"y" * 200 + b"'>"
    out, _ = chunked(b"<p>x" + end_tag + b"<img src=" + AD + b">", BLOCKED, 100, 50)
    assert out == b"<p>x" + end_tag + NEUTRAL


def test_rewrite_oversized_body_tag_keeps_its_name_and_its_injections() -> None:
    plan = make_plan(head=b"[H]", start=b"[S]", end=b"[E]")
    body = b"<body data-a='" + b"y" * 200 + b"'>"
    out, _ = chunked(b"<html>" + body + b"<p>x</p></body></html>", plan, 100, 50)
    assert out == b"<html>[H]" + body + b"[S]<p>x</p>[E]</body></html>"


def test_rewrite_oversized_noscript_tag_still_reads_its_content_as_markup() -> None:
    tag = b"<noscript data-a='" + b"y" * 200 + b"'>"
    out, rw = chunked(tag + b"<img src=" + AD + b"></noscript>", BLOCKED, 100, 50)
    assert out == tag + NEUTRAL + b"</noscript>"
    assert rw.blocked == {"ads"}


def test_rewrite_style_text_too_long_to_read_is_made_inert() -> None:
    css = b"a{}" + b"x" * 200
    out, _ = chunked(b"<style>" + css + b"</style><img src=" + AD + b">", BLOCKED, 100, 50)
    assert out == b'<style type="text/plain" data-consent-oversized="">' + css + b"</style>" + NEUTRAL


def test_rewrite_mathml_mglyph_src_is_a_fetch() -> None:
    out, _, _ = rewrite(b"<math><mi><mglyph src=" + AD + b"></mi></math>", BLOCKED)
    assert out == (b'<math><mi><mglyph data-consent-partner="ads" data-consent-src=' + AD
                   + b"></mi></math>")


def test_rewrite_css_escape_in_url_is_decoded_before_matching() -> None:
    # "\l" is "l" (not a hex digit): the URL is //ad.doubleclick.net/x.
    doc = b"<div style='background:url(//ad.doub\\leclick.net/x)'>a</div>"
    out, _, _ = rewrite(doc, BLOCKED)
    assert out == doc.replace(b"<div style", b'<div data-consent-partner="ads" data-consent-style')


def test_rewrite_many_distinct_tags_and_urls_past_the_memo_bounds() -> None:
    # More distinct tags than the tag memo holds and more URLs than the URL memo holds: each
    # is still judged (the memos are cleared, never wrong).
    tags = [b'<img src="https://ad.doubleclick.net/p/%d">' % i for i in range(4200)]
    tags += [b'<img src="https://example.org/i/%d">' % i for i in range(300)]
    rw = HtmlRewriter(BLOCKED)
    out = rw.feed(b"".join(tags)) + rw.finish()
    assert out == b"".join(tags).replace(
        b'<img src="https://ad.', b'<img data-consent-partner="ads" data-consent-src="https://ad.')
    assert rw.blocked == {"ads"}
    assert rw.unknown_hosts == {"example.org"}
