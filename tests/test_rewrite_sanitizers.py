"""The C skip and native pass built with AddressSanitizer and UndefinedBehaviorSanitizer
(``-fsanitize=address,undefined``, into a temp dir), run in a child Python with libasan
preloaded over the hypothesis corpora of tests/test_rewrite_speedups.py (``skip_end``) and
tests/test_rewrite_native.py (``scan_end`` with a partner host table, and ``make_hosts``), ``splice``
(the one-buffer output) against ``tokenizer.splice_py`` on random edits and on large outputs
that reuse the last one's bytes object, ``start_kind`` against ``gate.start.start_kind_py`` on
tests/test_gate_start_native.py's header lists, and
the corpus pages at every position: any out-of-bounds read, overflow or undefined behaviour
aborts the child. Skipped, with the reason, when the compiler cannot build or run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.support.budget import examples

ROOT = Path(__file__).resolve().parent.parent
DRIVER = r"""
import ctypes, importlib.machinery, importlib.util, sys
from pathlib import Path
from hypothesis import HealthCheck, given, settings, strategies as st
spec = importlib.util.spec_from_loader(
    "middleware._speedups", importlib.machinery.ExtensionFileLoader("middleware._speedups", sys.argv[1]))
san = importlib.util.module_from_spec(spec)
spec.loader.exec_module(san)
from middleware import _speedups, rewrite
from tests import test_rewrite_native as nat, test_rewrite_speedups as t
assert (san.NAMES, san.END_NAMES, san.PLAIN_URL_TAGS) == (
    tuple(rewrite._NAME_SET), rewrite._END_NAMES, rewrite._PLAIN_URL_TAGS)

def check(buf):
    # An exactly sized malloc block (PYTHONMALLOC=malloc): a read one past the end is seen
    # (a bytes object would hide it behind its trailing NUL).
    block = (ctypes.c_char * len(buf)).from_buffer_copy(buf)
    for pos in range(-1, len(buf) + 2):
        assert san.skip_end(block, pos) == t.regex_end(buf, pos), (buf, pos)

SAN_TABLE = san.make_hosts(*nat.MATCHER.table())
TABLE = _speedups.make_hosts(*nat.MATCHER.table())
ALLOWED = frozenset({"yt", "fb"})

def check_scan(buf, positions=None):
    block = (ctypes.c_char * len(buf)).from_buffer_copy(buf)
    for pos in range(-1, len(buf) + 2) if positions is None else positions:
        for allowed in (None, ALLOWED):
            got, want, on, on2 = set(), set(), set(), set()
            assert san.scan_end(block, pos, SAN_TABLE, got, allowed, on) == _speedups.scan_end(
                buf, pos, TABLE, want, allowed, on2)
            assert (got, on) == (want, on2), (buf, pos)
            # with the edits of blocked partners' tags
            res = []
            for mod, tab, data in ((san, SAN_TABLE, block), (_speedups, TABLE, buf)):
                found, on, off, edits = set(), set(), set(), []
                res.append((mod.scan_end(data, pos, tab, found, allowed, on, off, edits),
                            found, on, off, edits))
            assert res[0] == res[1], (buf, pos)
            # and with the injections
            res = []
            for mod, tab, data in ((san, SAN_TABLE, block), (_speedups, TABLE, buf)):
                found, on, off, edits, inj = set(), set(), set(), [], [b"<!--H-->", b"", b"E"]
                res.append((mod.scan_end(data, pos, tab, found, allowed, on, off, edits, inj,
                                         frozenset({"ads"}), nat.PARTS, frozenset({"ads"}),
                                         True),
                            found, on, off, edits, inj))
            assert res[0] == res[1], (buf, pos)

from middleware.html.tokenizer import splice_py

def check_splice(buf, edits):
    block = (ctypes.c_char * len(buf)).from_buffer_copy(buf)
    for stop in (0, len(buf) // 2, len(buf), len(buf) + 1):
        assert san.splice(block, edits, stop) == splice_py(buf, edits, stop), (buf, edits, stop)

def check_prefixes(buf):
    # A token cut off by the end of the buffer is where a read past it would happen: every
    # prefix, scanned from every '<' (where tokens start).
    starts = [i for i in range(len(buf)) if buf[i] == 0x3C]
    for cut in range(1, len(buf) + 1):
        check_scan(buf[:cut], [0, *(i for i in starts if i < cut)])

for page in sorted((Path("tests") / "corpus").glob("*.html")):
    raw = page.read_bytes()
    data = raw.lower()
    for cut in range(0, len(data), 1499):
        check(data[:cut])
    check_prefixes(raw)

@settings(max_examples=int(sys.argv[2]), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(t.buffers())
def run(buf):
    check(buf)

@settings(max_examples=int(sys.argv[2]), deadline=None, database=None)
@given(st.binary(max_size=40).flatmap(lambda b: st.tuples(st.just(b), t.edit_lists(len(b)))))
def run_splice(case):
    check_splice(*case)

@settings(max_examples=int(sys.argv[2]) // 3, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(nat.documents, t.buffers(), st.lists(st.sampled_from(nat.SVG_BITS), max_size=12),
       nat.svgs, st.lists(st.one_of(nat.optin_tags, nat.refresh_tag(), nat.srcdoc_tags),
                          max_size=3))
def run_scan(doc, buf, svg, careful_svg, optin):
    check_prefixes(doc.encode("utf-8", "replace"))
    check_prefixes("".join(optin).encode())
    check_scan(buf)
    check_prefixes(("<svg" + "".join(svg)).encode())
    check_prefixes(careful_svg.encode())

def check_spare():
    # Large outputs: written into the last one's bytes object when nobody holds it (resized).
    kept = []
    for size, seed in ((300_000, 1), (300_000, 2), (420_000, 3), (280_000, 4), (280_000, 5)):
        buf, edits, want = t.big_splice(size, seed)
        got = san.splice(buf, edits, len(buf))
        assert got == want and hash(got) == hash(want)
        if seed % 2:
            kept.append((got, want))
    assert all(got == want for got, want in kept)

from middleware.gate import start
from tests import test_gate_start_native as gs
san.start_setup(start._PAIRS[start.HTML], start._PAIRS[start.OTHER], start.start_kind_py)

@settings(max_examples=int(sys.argv[2]), deadline=None, database=None)
@given(st.one_of(gs.header_lists, gs.odd_lists), st.sampled_from([list, tuple]))
def run_start(headers, kind):
    assert gs._outcome(san.start_kind, kind(headers)) == gs._outcome(start.start_kind_py,
                                                                     kind(headers))

run()
run_scan()
run_splice()
check_spare()
run_start()
print("sanitized skip_end, scan_end, splice and start_kind: ok")
"""


def test_c_skip_under_address_and_undefined_sanitizers(tmp_path: Path) -> None:
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        pytest.skip("no C compiler")
    libasan = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    if not os.path.isabs(libasan) or not os.path.exists(libasan):
        pytest.skip(f"{cc} has no libasan.so (-fsanitize=address unsupported)")
    out = tmp_path / ("_speedups" + sysconfig.get_config_var("EXT_SUFFIX"))
    build = subprocess.run(
        [cc, "-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
         "-I" + sysconfig.get_paths()["include"], str(ROOT / "middleware" / "_speedups.c"),
         "-o", str(out)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip(f"sanitizer build failed: {build.stderr.strip()[:300]}")
    env = {**os.environ, "LD_PRELOAD": libasan, "PYTHONMALLOC": "malloc",
           "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
           "PYTHONPATH": str(ROOT)}
    env.pop("CONSENT_GATE_PURE_PYTHON", None)
    run = subprocess.run([sys.executable, "-c", DRIVER, str(out), str(examples(400))],
                         cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "sanitized skip_end, scan_end, splice and start_kind: ok" in run.stdout
