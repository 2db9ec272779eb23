"""AnyRespeller's <?xml-stylesheet?> judgement in UTF-16 (``_WideStylesheetJudge``): the same
verdicts as in UTF-8, whatever the chunking, the byte order and the alignment (differential
against the 8-bit path), and in every UTF-16 reading of what goes out no stylesheet
instruction the 8-bit judge would rename (so none a browser could apply from a partner)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from middleware.html.refresh_guard import _PI_MAX, AnyRespeller, _StylesheetJudge
from tests.support.budget import examples

OWN = '<?xml-stylesheet type="text/css" href="/own.css"?>'
PARTNER = '<?xml-stylesheet type="text/css" href="https://pagead2.googlesyndication.com/a.css"?>'
#: ASCII pieces: the 8-bit path's verdict on them is the oracle.
ASCII = [OWN, PARTNER, OWN.replace('"', "'"), '<?xml-stylesheet type="text/xsl" href="/t.xsl"?>',
         '<?xml-stylesheet type="text/css" href="//pagead2.googlesyndication.com/a.css"?>',
         '<?xml-stylesheet type="text/css" href="&#104;ttps://pagead2.googlesyndication.com/"?>',
         '<?xml-stylesheet type="text/css" href="/own.css" href="//p.example/"?>',
         "<?xml-stylesheet", "<?XML-STYLESHEET", "?>", '"', " href=", "<doc>", "<!-- c -->",
         "<", "?", ">", "\n", "x", "\x00", "http-equiv", "&#104;", "<meta http-equiv='refresh'/>"]
#: Pieces whose other readings differ: code units with a zero byte beside '<', '?' or '>'.
WIDE = ["\u3c00", "\u003c\u3f00", "\u263e", "\u3e00", "\u3f00", "\u6800", "\u00e9", "\ud800",
        "\u4e2d"]
CODECS = ["utf-16-le", "utf-16-be"]
#: Before the document: none, or one byte (odd alignment; a zero makes the other byte order
#: read the same ASCII one byte on).
PREFIXES = [b"", b"\x00", b"\x01", b"\xff"]


def _stream(data: bytes, size: int) -> bytes:
    r = AnyRespeller()
    out = b"".join(r.feed(data[i:i + size]) for i in range(0, len(data), size))
    return out + r.finish()


def _narrow(text: str) -> str:
    r = AnyRespeller()
    return (r.feed(text.encode()) + r.finish()).decode()


@settings(max_examples=examples(400), deadline=None)
@given(st.lists(st.sampled_from(ASCII), max_size=14), st.sampled_from(CODECS),
       st.sampled_from(PREFIXES), st.integers(1, 70))
@example(['<?xml version="1.0"?>', OWN, "\n", PARTNER, "<doc>", OWN], "utf-16-be", b"", 1)
@example([OWN, "<doc>", OWN], "utf-16-le", b"\x00", 3)
def test_wide_verdicts_are_the_utf8_verdicts(parts: list[str], codec: str, prefix: bytes,
                                             size: int) -> None:
    text = "".join(parts)
    out = _stream(prefix + text.encode(codec), size)
    assert out[:len(prefix)] == prefix
    assert out[len(prefix):].decode(codec) == _narrow(text)


def _readings(data: bytes) -> list[str]:
    """Every way a browser could decode ``data`` as UTF-16: each byte order, each alignment."""
    out = []
    for codec in CODECS:
        for skip in (0, 1):
            body = data[skip:]
            out.append(body[:len(body) // 2 * 2].decode(codec, "surrogatepass"))
    return out


@settings(max_examples=examples(500), deadline=None)
@given(st.lists(st.sampled_from(ASCII + WIDE), max_size=16), st.sampled_from(CODECS),
       st.sampled_from(PREFIXES), st.integers(1, 70))
@example([OWN[:-1], "\u263e", " type='text/xsl' href='/t.xsl'?>"], "utf-16-le", b"\x00", 5)
@example([OWN[:-1] + "\u3e00", "?>"], "utf-16-be", b"", 100)
def test_no_reading_of_the_output_applies_a_stylesheet_the_8bit_judge_renames(
        parts: list[str], codec: str, prefix: bytes, size: int) -> None:
    data = prefix + "".join(parts).encode(codec, "surrogatepass")
    out = _stream(data, size)
    assert out == _stream(data, len(data) + 1)
    for reading in _readings(out):
        last = reading.rfind("<?xml-stylesheet")
        if last >= 0 and reading.find("?>", last) < 0:
            reading = reading[:last]  # unended at the end: no instruction (an XML error)
        narrow = reading.encode("utf-8", "surrogatepass")
        assert _StylesheetJudge().feed(narrow, final=True) == narrow, reading


def test_a_big_endian_instruction_is_kept_only_with_a_zero_byte_after_it() -> None:
    """Read as UTF-16BE from the zero byte, an own CSS instruction; read as UTF-16LE one byte
    on, its '>' is U+263E and the instruction goes on to an XSLT href: renamed (in both)."""
    rest = " type='text/xsl' href='/t.xsl'?><doc/>".encode("utf-16-le")
    data = b"\x00" + OWN.encode("utf-16-le")[:-1] + b"\x26" + rest
    for size in (1, 4, len(data)):
        out = _stream(data, size)
        assert out[1:].decode("utf-16-le").startswith("<?consent-blocked-xml-stylesheet")
        assert out.decode("utf-16-be", "replace").startswith("<?consent-blocked-xml-stylesheet")
    fine = b"\x00" + OWN.encode("utf-16-le") + rest
    assert _stream(fine, 3) == fine


def test_an_instruction_past_the_bound_is_renamed_and_one_within_kept() -> None:
    for codec in CODECS:
        pad = (2 * _PI_MAX - len(OWN.encode(codec))) // 2
        within = OWN.replace("?>", " " * (pad - 2) + "?>")
        past = OWN.replace("?>", " " * (pad + 1) + "?>")
        for text, kept in ((within, True), (past, False)):
            for size in (1, 7, 100_000):
                out = _stream((text + "<doc/>").encode(codec), size).decode(codec)
                assert out.startswith("<?xml-stylesheet") is kept, (codec, len(text), size)
                assert out.count("<?") == 1


def test_an_unended_instruction_at_the_end_is_renamed() -> None:
    for codec in CODECS:
        out = _stream(OWN[:-2].encode(codec), 3).decode(codec)
        assert out == "<?consent-blocked-xml-stylesheet" + OWN[len("<?xml-stylesheet"):-2]
