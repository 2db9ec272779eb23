/* Optional accelerator for the rewriter's tokenizer (middleware/rewrite.py).
 *
 * skip_end(low, pos) returns exactly _SKIP_RE.match(low, pos).end(): the end of the run of
 * text and uninteresting tags that starts at pos (pos is clamped to [0, len(low)] like re does).
 * The regex is deterministic (possessive quantifiers and atomic groups only), so it is a plain
 * left-to-right scan; each branch below names the part of _SKIP_RE it implements:
 *
 *   (?: [^<]++                                        text
 *     | <(?!NAMES[WS/>])[a-z][^WS/>]*+ GRAM_BODY_SKIP any other start tag, exact grammar
 *                                                   (attributes that fetch: quiet values)
 *     | </(?!END_NAMES[WS/>])[a-z][^WS/>]*+ GRAM_BODY other end tags
 *     | <PLAIN(?=[WS/>]) QUIET_BODY                   URL tags that cannot name another host
 *     | <(?=[^!/?a-z]|/>)                             a '<' that starts no tag
 *   )*+
 *
 * scan_end(buf, pos, hosts, unknown) is the native pass: the same skip read on the buffer
 * itself (ASCII case folded as bytes.lower() does, so no lowercased copy is needed), which also
 * consumes every token whose handling in Python would change nothing but unknown_hosts:
 *   - a URL tag (img link source video ... script iframe) or any tag with background/ping/
 *     attributionsrc whose URL values all have a readable host that no partner declares in
 *     `hosts` (a table made by make_hosts) or an allowed partner declares, or no host at all;
 *     the others are added to the set `unknown` (as HostMatcher.host_of_url and the
 *     rewriter's _partner record them), the allowed partners to the set `enabled`;
 *   - with a script, iframe, title, textarea, xmp, noembed or noframes start tag, its text up
 *     to its end tag (script data with its escaped states), when that end is in the buffer;
 *   - comments and bogus comments (<!DOCTYPE ...>, <?...>, </ x>) whose end is in the buffer;
 *   - a whole inline <svg> that cannot fetch (grammar._SVG_FLAT_RE: icons);
 *   - <html>, <head> and <body> start tags (judged like the others), whose effect "the document
 *     has begun" is returned: the result is then ~end (negative);
 *   - CSS: style= values and a <style>'s text, read as fetch.css_urls reads them (css_judge);
 *   - the injections (with `inject`): </head, <body> and </body as the tokenizer makes them;
 *   - a <noscript>'s content as careful mode reads it, when nothing in it has an effect;
 *   - an inline <svg> that is not flat, as careful mode reads it (svg_run: the stack of open
 *     elements, HTML integration points, a <title>'s guard), when nothing in it has an effect
 *     the model leaves to Python (breakouts, raw text, comments, nested documents ...).
 * With `edits`, the simple tags of blocked partners (not iframe/embed: placeholders) are
 * neutralised here too: the edits decide._judge makes are appended as (start, end, bytes).
 * Anything it is not sure of (character references, percent-encoding, non-ASCII, controls,
 * backslashes, IPv6, odd host bytes, a partner host, an unclosed token) stops it there, and
 * Python decides, exactly as without it. A meta refresh (judge_refresh), opt-in markup
 * (judge_optin, with `purposes`) and an iframe's srcdoc document (judge_srcdoc, with
 * `documents`: a second pass over it) are read when their values are plain.
 *
 * Every read is guarded by the buffer length: a tag cut off by the end of the buffer is simply
 * not skipped. tests/test_rewrite_speedups.py (skip_end == the regex) and
 * tests/test_rewrite_native.py (rewriter with scan_end == the pure-Python rewriter) check them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* Byte classes (the tokenizer's whitespace is \t \n \f \r and space; not \v). */
#define C_WS     0x01  /* \t \n \f \r ' ' */
#define C_NSTOP  0x02  /* ends a tag name: WS / > */
#define C_ASTOP  0x04  /* ends an attribute name after its first byte: WS / > = */
#define C_USTOP  0x08  /* ends an unquoted value: WS > */
#define C_QDQ    0x10  /* stops a quiet "value": " : \ & / */
#define C_QSQ    0x20  /* stops a quiet 'value': ' : \ & / */
#define C_QUQ    0x40  /* stops a quiet unquoted value: WS > : \ & / */
#define C_WSSL   0x80  /* WS or / (between attributes) */
#define C_CDQ    0x100 /* stops a quiet-CSS "value": " ( \ & */
#define C_CSQ    0x200 /* stops a quiet-CSS 'value': ' ( \ & */
#define C_CUQ    0x400 /* stops a quiet-CSS unquoted value: WS > ( \ & */
#define C_HOST   0x800 /* a host byte the native pass reads itself: a-z A-Z 0-9 - . _ */

static unsigned short cls[256];
/* Fold tables: identity (skip_end reads an already lowercased copy, exactly as the regex does)
   and ASCII lowercase (scan_end reads the buffer itself; bytes.lower() folds only ASCII). */
static unsigned char ID[256], LOW[256];

static void
init_classes(void)
{
    static const char ws[] = "\t\n\f\r ";
    memset(cls, 0, sizeof(cls));
    for (int c = 0; c < 256; c++) {
        ID[c] = (unsigned char)c;
        LOW[c] = (unsigned char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
            || c == '-' || c == '.' || c == '_') {
            cls[c] |= C_HOST;
        }
    }
    for (const char *p = ws; *p; p++) {
        unsigned char c = (unsigned char)*p;
        cls[c] |= C_WS | C_NSTOP | C_ASTOP | C_USTOP | C_QUQ | C_WSSL | C_CUQ;
    }
    cls['>'] |= C_CUQ;
    cls['"'] |= C_CDQ;
    cls['\''] |= C_CSQ;
    cls['('] |= C_CDQ | C_CSQ | C_CUQ;
    cls['\\'] |= C_CDQ | C_CSQ | C_CUQ;
    cls['&'] |= C_CDQ | C_CSQ | C_CUQ;
    cls['/'] |= C_NSTOP | C_ASTOP | C_QDQ | C_QSQ | C_QUQ | C_WSSL;
    cls['>'] |= C_NSTOP | C_ASTOP | C_USTOP | C_QUQ;
    cls['='] |= C_ASTOP;
    cls['"'] |= C_QDQ;
    cls['\''] |= C_QSQ;
    cls[':'] |= C_QDQ | C_QSQ | C_QUQ;
    cls['\\'] |= C_QDQ | C_QSQ | C_QUQ;
    cls['&'] |= C_QDQ | C_QSQ | C_QUQ;
}

#define IS(c, f) (cls[(unsigned char)(c)] & (f))


/* The name lists of rewrite.py (checked against it at import and by the tests). */
static const char *const NAMES[] = {
    "audio", "base", "body", "embed", "frame", "head", "html", "iframe", "image", "img",
    "input", "link", "math", "meta", "noembed", "noframes", "noscript", "object", "plaintext",
    "script", "select", "source", "style", "svg", "textarea", "title", "track", "video", "xmp",
    NULL,
};
static const char *const END_NAMES[] = {"body", "head", "noscript", NULL};
static const char *const PLAIN_URL_TAGS[] = {
    "img", "link", "source", "embed", "object", "video", "audio", "base", "input", "track",
    "image", "frame", "meta", NULL,
};
/* Attributes that can fetch on any element (_FETCH_ATTRS); "style" gets the CSS-quiet test. */
static const char *const FETCH_URL_ATTRS[] = {"attributionsrc", "background", "ping", NULL};
/* grammar._LINK_NO_FETCH: link rel tokens that never make the browser fetch the href. */
static const char *const LINK_NO_FETCH[] = {
    "alternate", "amphtml", "archives", "author", "bookmark", "canonical", "edit", "external",
    "first", "help", "last", "license", "me", "next", "nofollow", "noopener", "noreferrer",
    "opener", "pingback", "prev", "search", "shortlink", "tag", "up", NULL,
};

/* Names that keep an inline <svg> from being "flat" (grammar._SVG_SPECIAL | grammar._BREAKOUT). */
static const char *const SVG_NOT_FLAT[] = {
    "a", "annotation-xml", "b", "big", "blockquote", "body", "br", "center", "code", "dd", "desc",
    "div", "dl", "dt", "em", "embed", "font", "foreignobject", "h1", "h2", "h3", "h4", "h5", "h6",
    "head", "hr", "i", "iframe", "img", "li", "listing", "math", "menu", "meta", "nobr", "noembed",
    "noframes", "noscript", "ol", "p", "plaintext", "pre", "ruby", "s", "script", "small", "span",
    "strike", "strong", "style", "sub", "sup", "svg", "table", "textarea", "title", "tt", "u", "ul",
    "var", "xmp", NULL,
};

/* The tags the native pass judges itself: their URL attributes (grammar._URL_ATTRS), whether a
   data: URL in them is a document (grammar._DOC_TAGS), and the text that follows them (or
   T_DOC: the tag only says the document has begun). */
enum { T_NONE, T_RAW, T_SCRIPT, T_DOC, T_STYLE, T_BODY };
typedef struct {
    const char *name;
    const char *urls[3];
    int doc;
    int text;
} TagRule;
static const TagRule RULES[] = {
    {"img", {"src", "srcset", NULL}, 0, T_NONE},
    {"image", {"src", "srcset", NULL}, 0, T_NONE},
    {"link", {"href", "imagesrcset", NULL}, 0, T_NONE},
    {"embed", {"src", NULL, NULL}, 1, T_NONE},
    {"object", {"data", "codebase", NULL}, 1, T_NONE},
    {"source", {"src", "srcset", NULL}, 0, T_NONE},
    {"video", {"src", "poster", NULL}, 0, T_NONE},
    {"audio", {"src", NULL, NULL}, 0, T_NONE},
    {"track", {"src", NULL, NULL}, 0, T_NONE},
    {"input", {"src", NULL, NULL}, 0, T_NONE},
    {"base", {"href", NULL, NULL}, 0, T_NONE},
    {"meta", {NULL, NULL, NULL}, 0, T_NONE},
    {"frame", {"src", NULL, NULL}, 1, T_NONE},
    {"script", {"src", NULL, NULL}, 0, T_SCRIPT},
    {"iframe", {"src", NULL, NULL}, 1, T_RAW},
    {"title", {NULL, NULL, NULL}, 0, T_RAW},
    {"textarea", {NULL, NULL, NULL}, 0, T_RAW},
    {"xmp", {NULL, NULL, NULL}, 0, T_RAW},
    {"noembed", {NULL, NULL, NULL}, 0, T_RAW},
    {"noframes", {NULL, NULL, NULL}, 0, T_RAW},
    /* a style sheet: its text up to </style is read by the CSS reader too */
    {"style", {NULL, NULL, NULL}, 0, T_STYLE},
    /* the document has begun (the rewriter appends missing injections at its end) */
    {"html", {"manifest", NULL, NULL}, 0, T_DOC},
    {"head", {NULL, NULL, NULL}, 0, T_DOC},
    /* the head_end injection before it (if still due), body_start after it */
    {"body", {NULL, NULL, NULL}, 0, T_BODY},
    {NULL, {NULL, NULL, NULL}, 0, T_NONE},
};
static const TagRule GENERIC = {"", {NULL, NULL, NULL}, 0, T_NONE};

/* Whether s[0:len], folded by F, equals the lowercase word w[0:len]. */
static int
eq_n(const unsigned char *F, const unsigned char *s, const char *w, Py_ssize_t len)
{
    for (Py_ssize_t i = 0; i < len; i++) {
        if (F[s[i]] != (unsigned char)w[i]) {
            return 0;
        }
    }
    return 1;
}

/* Whether s[0:len], folded by F, equals the lowercase literal w. */
static int
eq_fold(const unsigned char *F, const unsigned char *s, Py_ssize_t len, const char *w)
{
    return (Py_ssize_t)strlen(w) == len && eq_n(F, s, w, len);
}

/* The same for a string literal (its length known at compile time). */
#define EQ_LIT(F, s, len, lit) ((len) == (Py_ssize_t)sizeof(lit) - 1 && eq_n((F), (s), (lit), (len)))

/* A word list with, per first byte, a bit per word length (< 32): most names are rejected by
   one lookup before any comparison; the rest are compared only with the words that start with
   that byte (by[first], -1 ended; no list has more than NAMES_PER_BYTE words per first byte). */
#define NAMES_PER_BYTE 15
typedef struct {
    const char *const *words;
    unsigned char len[80];
    uint32_t lens[256];
    signed char by[256][NAMES_PER_BYTE + 1];
} Names;
static Names N_NAMES, N_END, N_PLAIN, N_FETCH, N_LINK_NO_FETCH, N_SVG_NOT_FLAT;
/* FETCH_URL_ATTRS and "style": the attributes whose values the skip's grammar checks */
static const char *const FETCH_STYLE[] = {"attributionsrc", "background", "ping", "style", NULL};
static Names N_FETCH_STYLE;

static int
names_init(Names *t, const char *const *words)
{
    t->words = words;
    memset(t->by, -1, sizeof(t->by));
    for (int i = 0; words[i]; i++) {
        size_t k = strlen(words[i]);
        unsigned char c = (unsigned char)words[i][0];
        int j = 0;
        while (t->by[c][j] >= 0) {
            j++;
        }
        if (k > 31 || i >= 80 || j >= NAMES_PER_BYTE) {
            return -1;
        }
        t->len[i] = (unsigned char)k;
        t->lens[c] |= (uint32_t)1 << k;
        t->by[c][j] = (signed char)i;
    }
    return 0;
}

static int
init_names(void)
{
    return names_init(&N_NAMES, NAMES) | names_init(&N_END, END_NAMES)
           | names_init(&N_PLAIN, PLAIN_URL_TAGS) | names_init(&N_FETCH, FETCH_URL_ATTRS)
           | names_init(&N_FETCH_STYLE, FETCH_STYLE)
           | names_init(&N_LINK_NO_FETCH, LINK_NO_FETCH)
           | names_init(&N_SVG_NOT_FLAT, SVG_NOT_FLAT);
}

/* Whether a name of this first byte (folded) and length may be in the list (the one-lookup
   test of in_list: 0 means it is not). */
static inline int
may_be_in(const Names *t, unsigned char first, Py_ssize_t len)
{
    return len >= 1 && len <= 31 && ((t->lens[first] >> len) & 1);
}

static ALWAYS_INLINE int
in_list(const unsigned char *F, const Names *t, const unsigned char *name, Py_ssize_t len)
{
    unsigned char c = F[name[0]];
    if (!may_be_in(t, c, len)) {
        return 0;
    }
    for (const signed char *i = t->by[c]; *i >= 0; i++) {
        if (t->len[*i] == len && eq_n(F, name + 1, t->words[*i] + 1, len - 1)) {
            return 1;
        }
    }
    return 0;
}

/* --- the partner host table ------------------------------------------------------------------ */

typedef struct {
    uint64_t hash;
    Py_ssize_t off, len;  /* the pattern in blob; len < 0: an empty slot */
    PyObject *exact, *wild;  /* the partner id of the exact host / of "*." + it, or NULL */
} Slot;
typedef struct {
    Py_ssize_t mask;  /* capacity - 1, capacity a power of two */
    Slot *slots;
    unsigned char *blob;
} HostTable;

static uint64_t
fnv1a(const unsigned char *s, Py_ssize_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        h = (h ^ s[i]) * 1099511628211ULL;
    }
    return h;
}

static const Slot *
table_get(const HostTable *t, const unsigned char *s, Py_ssize_t n)
{
    uint64_t h = fnv1a(s, n);
    for (Py_ssize_t i = (Py_ssize_t)(h & (uint64_t)t->mask);; i = (i + 1) & t->mask) {
        const Slot *e = &t->slots[i];
        if (e->len < 0) {
            return NULL;
        }
        if (e->hash == h && e->len == n && memcmp(t->blob + e->off, s, (size_t)n) == 0) {
            return e;
        }
    }
}

/* HostMatcher.partner_for_host(host): the exact host first, then "*." patterns from the
   longest suffix (the host itself) to the shortest, as its loop reads them. Borrowed, or NULL. */
static PyObject *
partner_of(const HostTable *t, const unsigned char *h, Py_ssize_t n)
{
    const Slot *e = table_get(t, h, n);
    if (e != NULL && e->exact != NULL) {
        return e->exact;
    }
    if (e != NULL && e->wild != NULL) {
        return e->wild;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (h[i] == '.') {
            e = table_get(t, h + i + 1, n - i - 1);
            if (e != NULL && e->wild != NULL) {
                return e->wild;
            }
        }
    }
    return NULL;
}

static void
table_destroy(HostTable *t)
{
    if (t->slots != NULL) {
        for (Py_ssize_t i = 0; i <= t->mask; i++) {
            Py_XDECREF(t->slots[i].exact);
            Py_XDECREF(t->slots[i].wild);
        }
    }
    PyMem_Free(t->slots);
    PyMem_Free(t->blob);
    PyMem_Free(t);
}

static void
table_free(PyObject *capsule)
{
    HostTable *t = PyCapsule_GetPointer(capsule, "middleware._speedups.hosts");
    if (t != NULL) {
        table_destroy(t);
    }
}

/* make_hosts(exact, wild) -> table: ((host, partner id), ...) twice, the exact hosts and the
   "*." suffixes, as HostMatcher.table() gives them; compiled once per HostMatcher. */
static PyObject *
make_hosts(PyObject *self, PyObject *args)
{
    PyObject *lists[2];
    (void)self;
    if (!PyArg_ParseTuple(args, "O!O!:make_hosts", &PyTuple_Type, &lists[0], &PyTuple_Type,
                          &lists[1])) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(lists[0]) + PyTuple_GET_SIZE(lists[1]);
    Py_ssize_t cap = 8, total = 0;
    while (cap < 2 * count + 2) {
        cap *= 2;
    }
    for (int k = 0; k < 2; k++) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(lists[k]); i++) {
            PyObject *row = PyTuple_GET_ITEM(lists[k], i);
            Py_ssize_t len;
            if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 2
                || !PyUnicode_Check(PyTuple_GET_ITEM(row, 0))
                || !PyUnicode_Check(PyTuple_GET_ITEM(row, 1))
                || PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(row, 0), &len) == NULL) {
                PyErr_SetString(PyExc_TypeError, "make_hosts: rows must be (host, partner) str pairs");
                return NULL;
            }
            total += len;
        }
    }
    HostTable *t = PyMem_Calloc(1, sizeof(HostTable));
    if (t == NULL) {
        return PyErr_NoMemory();
    }
    t->mask = cap - 1;
    t->slots = PyMem_Calloc((size_t)cap, sizeof(Slot));
    t->blob = PyMem_Malloc((size_t)total + 1);
    if (t->slots == NULL || t->blob == NULL) {
        table_destroy(t);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < cap; i++) {
        t->slots[i].len = -1;
    }
    Py_ssize_t off = 0;
    for (int k = 0; k < 2; k++) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(lists[k]); i++) {
            PyObject *row = PyTuple_GET_ITEM(lists[k], i);
            Py_ssize_t len;
            const char *s = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(row, 0), &len);
            PyObject *pid = PyTuple_GET_ITEM(row, 1);
            uint64_t h = fnv1a((const unsigned char *)s, len);
            Py_ssize_t j = (Py_ssize_t)(h & (uint64_t)t->mask);
            Slot *e;
            for (;; j = (j + 1) & t->mask) {
                e = &t->slots[j];
                if (e->len < 0) {
                    memcpy(t->blob + off, s, (size_t)len);
                    e->hash = h;
                    e->off = off;
                    e->len = len;
                    off += len;
                    break;
                }
                if (e->hash == h && e->len == len && memcmp(t->blob + e->off, s, (size_t)len) == 0) {
                    break;
                }
            }
            PyObject **slot = k ? &e->wild : &e->exact;
            if (*slot == NULL) {  /* the first declared wins, as dict.setdefault */
                Py_INCREF(pid);
                *slot = pid;
            }
        }
    }
    PyObject *capsule = PyCapsule_New(t, "middleware._speedups.hosts", table_free);
    if (capsule == NULL) {
        table_destroy(t);
    }
    return capsule;
}

/* --- one scan ---------------------------------------------------------------------------------- */

#define MAX_ATTRS 48
#define MAX_FOUND 16
#define MAX_HOST 253

/* What the tag being judged names, reported once the tag is consumed: hosts no partner
   declares (for the unknown set), allowed partners (for the enabled set; borrowed), blocked
   partners and the edits that neutralise them. */
typedef struct {
    int count, npids, nblocked;
    Py_ssize_t len[MAX_FOUND];
    unsigned char host[MAX_FOUND][MAX_HOST];
    PyObject *pid[MAX_FOUND];
    PyObject *blocked[MAX_FOUND];  /* blocked partners in order of first appearance (borrowed) */
    Py_ssize_t insert_at;          /* the end of the tag's name: data-consent-partner goes there */
    int script;                    /* a <script> or <style>: type="text/plain" first */
    int nmoved;                    /* attribute names to rename data-consent-NAME, in order */
    Py_ssize_t moved[MAX_ATTRS][2];  /* their [start, end) */
    Py_ssize_t text_start, text_end;  /* a blocked <style>'s text: each @import respelled */
    PyObject *parts;               /* a blocked iframe/embed: its partner's (head, tail) of the
                                      placeholder (borrowed), else NULL */
    char size[128];                /* templates.placeholder_size(attrs), between head and tail */
    Py_ssize_t size_len;
    /* Opt-in markup granted (decide._activate): nact edits [start, end) -> act_name (NULL:
       removed), in position order; the partners it enables are in pid, and the ids only the
       site declared (data-consent-partner) in owned (new references). */
    int nact, nowned, ncollect;
    Py_ssize_t act[MAX_ATTRS][2];
    const char *act_name[MAX_ATTRS];
    PyObject *owned[MAX_FOUND];
    PyObject *collect[MAX_FOUND];  /* collecting (Scan.collect): the partners of URLs (borrowed) */
    /* srcdoc documents (judge_srcdoc): their unknown hosts, enabled partners and the blocked
       ones (kept alive for blocked[]), sets made at the first, or NULL */
    PyObject *doc_unknown, *doc_enabled, *doc_blocked;
} Found;

typedef struct {
    const unsigned char *s;
    Py_ssize_t n;
    const unsigned char *F;  /* ID (skip_end) or LOW (scan_end) */
    const HostTable *hosts;  /* NULL: the plain skip, nothing judged */
    PyObject *unknown;       /* set the hosts of consumed tags are added to */
    PyObject *allowed;       /* partners whose tags stay live (a set), or NULL: none */
    PyObject *enabled;       /* set the allowed partners of consumed tags are added to */
    PyObject *blocked;       /* set the blocked partners of neutralised tags are added to */
    PyObject *edits;         /* list the (start, end, bytes) edits are appended to, or NULL:
                                stop at a blocked partner's tag */
    PyObject *inject;        /* [head_end, body_start, body_end]: bytes, None once emitted; or
                                NULL: stop at </head, <body and </body (Python injects) */
    PyObject *injected;      /* partners an emitted non-empty injection enables (iterable) */
    PyObject *placeholders;  /* RewritePlan.placeholder_parts: partner -> (head, tail), the
                                placeholder being head + placeholder_size(attrs) + tail; or
                                NULL: stop at a blocked iframe/embed (Python makes it) */
    Found *found;
    int careful;             /* judging in careful mode (inside a <noscript>): the tag's name
                                is tname[0:tlen] */
    const unsigned char *tname;
    Py_ssize_t tlen;
    PyObject *purposes;      /* RewritePlan.granted_purposes (a set), or NULL: stop at opt-in
                                markup (data-consent) */
    int collect;             /* judge_url only collects the partner of a URL (Found.collect) */
    int documents;           /* an iframe's srcdoc may be read (judge_srcdoc): not inside one,
                                and the plan not nested as deep as nested.MAX_NESTING */
    int seen_doc;            /* an <html>, <head> or <body> start tag was consumed */
    int failed;              /* a Python exception is set */
} Scan;

/* The first byte of class `stop` from p (or n): four bytes per bound check while they last. */
static ALWAYS_INLINE Py_ssize_t
run_to(const unsigned char *s, Py_ssize_t n, Py_ssize_t p, unsigned short stop)
{
    for (; n - p >= 4; p += 4) {
        if (IS(s[p], stop)) {
            return p;
        }
        if (IS(s[p + 1], stop)) {
            return p + 1;
        }
        if (IS(s[p + 2], stop)) {
            return p + 2;
        }
        if (IS(s[p + 3], stop)) {
            return p + 3;
        }
    }
    while (p < n && !IS(s[p], stop)) {
        p++;
    }
    return p;
}

/* The first byte c at or after p in s[0:n], or n: memchr, with up to FIND_VECTORS 16-byte SSE2
   compares inline first (most runs the scan looks through are short: a line of text, a class
   name, a URL). A vector is loaded only where 16 bytes remain before n, so nothing past the
   buffer is read; a shorter tail, or a run longer than the vectors, goes to memchr. */
#define FIND_VECTORS 4
static ALWAYS_INLINE Py_ssize_t
find_byte(const unsigned char *s, Py_ssize_t n, Py_ssize_t p, unsigned char c)
{
#if defined(__SSE2__)
    const __m128i want = _mm_set1_epi8((char)c);
    for (int k = 0; k < FIND_VECTORS && n - p >= 16; k++, p += 16) {
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(s + p)), want));
        if (m != 0) {
            return p + __builtin_ctz(m);
        }
    }
#endif
    if (p >= n) {
        return n;
    }
    const unsigned char *q = memchr(s + p, c, (size_t)(n - p));
    return q == NULL ? n : q - s;
}

/* End of a tag-name run starting at p: [^WS/>]*+ */
static Py_ssize_t
name_end(const unsigned char *s, Py_ssize_t n, Py_ssize_t p)
{
    while (p < n && !IS(s[p], C_NSTOP)) {
        p++;
    }
    return p;
}

/* _quiet(stop): [^stop:\\&/]*+ (?:/(?![/\t\n\r]) [^stop:\\&/]*+)*+  from p; where it stops. */
static Py_ssize_t
quiet(const unsigned char *s, Py_ssize_t n, Py_ssize_t p, unsigned char stopflag)
{
    for (;;) {
        while (p < n && !IS(s[p], stopflag)) {
            p++;
        }
        if (p < n && s[p] == '/') {
            if (p + 1 < n) {
                unsigned char c = s[p + 1];
                if (c == '/' || c == '\t' || c == '\n' || c == '\r') {
                    return p;
                }
            }
            p++;
            continue;
        }
        return p;
    }
}

/* _quiet_css(stop): [^stop(\\&]*+  from p; where it stops. */
static Py_ssize_t
quiet_css(const unsigned char *s, Py_ssize_t n, Py_ssize_t p, unsigned short stopflag)
{
    while (p < n && !IS(s[p], stopflag)) {
        p++;
    }
    return p;
}

typedef struct {
    Py_ssize_t ns, ne;  /* name */
    Py_ssize_t vs, ve;  /* value bytes (vs < 0: no value) */
    Py_ssize_t ae;      /* the end of the attribute (after a closing quote) */
} Attr;

/* Whether the value s[vs:ve] of a fetching attribute is quiet (_quiet / _quiet_css in
   _quiet_attr): quoted (q is the quote) or unquoted (q == 0; the byte at ve ends it). */
static int
quiet_value(const unsigned char *s, Py_ssize_t n, Py_ssize_t vs, Py_ssize_t ve, unsigned char q,
            int css)
{
    unsigned short flag = css ? (q == '"' ? C_CDQ : q ? C_CSQ : C_CUQ)
                              : (q == '"' ? C_QDQ : q ? C_QSQ : C_QUQ);
    return (css ? quiet_css(s, n, vs, flag) : quiet(s, n, vs, (unsigned char)flag)) == ve;
}

/* The attributes of a tag, from p just after its name, with the exact grammar (GRAM_BODY, as
   _TAG_RE and _ATTR_RE read them): (?:[WS/]*+ GRAM_ATTR)*+ [WS/]*+ > ; the end after '>', or
   -1. With at, each attribute is recorded there (more than MAX_ATTRS: -1). Without (the skip's
   check), fetch selects GRAM_ATTR_SKIP: the attributes in FETCH_URL_ATTRS and "style" must
   also have quiet values. */

static ALWAYS_INLINE Py_ssize_t
parse_attrs(const Scan *S, Py_ssize_t p, Attr *at, int *count, int fetch)
{
    const unsigned char *s = S->s, *F = S->F;
    Py_ssize_t n = S->n;
    if (count != NULL) {
        *count = 0;
    }
    for (;;) {
        Py_ssize_t q = p;
        while (q < n && IS(s[q], C_WSSL)) {
            q++;
        }
        if (q >= n) {
            return -1;
        }
        if (s[q] == '>') {
            return q + 1;
        }
        /* Attribute name: [^WS/>] (may be '=') then [^WS/>=]*+ */
        Py_ssize_t r = run_to(s, n, q + 1, C_ASTOP);
        Py_ssize_t vs = -1, ve = -1;
        unsigned char quote = 0;
        Py_ssize_t t = r;
        while (t < n && IS(s[t], C_WS)) {
            t++;
        }
        if (t < n && s[t] == '=') {
            t++;
            while (t < n && IS(s[t], C_WS)) {
                t++;
            }
            if (t < n && (s[t] == '"' || s[t] == '\'')) {
                const unsigned char *ep = memchr(s + t + 1, s[t], (size_t)(n - t - 1));
                Py_ssize_t e = ep == NULL ? n : ep - s;
                if (e >= n) {
                    /* Unclosed value: the attribute fails, and what follows the last
                       complete attribute is not '>'. */
                    return -1;
                }
                quote = s[t];
                vs = t + 1;
                ve = e;
                p = ve + 1;
            }
            else {
                vs = t;
                while (t < n && !IS(s[t], C_USTOP)) {
                    t++;
                }
                ve = p = t;
            }
        }
        else {
            p = r;  /* no value: (?![WS]*+=) */
        }
        if (at != NULL) {
            if (*count >= MAX_ATTRS) {
                return -1;
            }
            Attr *a = &at[(*count)++];
            a->ns = q;
            a->ne = r;
            a->vs = vs;
            a->ve = ve;
            a->ae = p;
        }
        else if (fetch && vs >= 0 && may_be_in(&N_FETCH_STYLE, F[s[q]], r - q)) {
            int css = EQ_LIT(F, s + q, r - q, "style");
            if ((css || in_list(F, &N_FETCH, s + q, r - q))
                && !quiet_value(s, n, vs, ve, quote, css)) {
                return -1;
            }
        }
    }
}

/* The skip's grammar of a tag body: parse_attrs without recording (inlined, so each use is
   compiled for its own arguments). */
static Py_ssize_t
gram_body(const Scan *S, Py_ssize_t p, int fetch)
{
    return fetch ? parse_attrs(S, p, NULL, NULL, 1) : parse_attrs(S, p, NULL, NULL, 0);
}

/* The attributes of a tag for the judge (parse_attrs recording them). */
static Py_ssize_t
read_attrs(const Scan *S, Py_ssize_t p, Attr *at, int *count)
{
    return parse_attrs(S, p, at, count, 0);
}

/* (?:[WS/]*+ QUIET_ATTR)*+ [WS/]*+ >  from p; the end after '>' or -1. */
static Py_ssize_t
quiet_body(const Scan *S, Py_ssize_t p)
{
    const unsigned char *s = S->s, *F = S->F;
    Py_ssize_t n = S->n;
    for (;;) {
        Py_ssize_t q = p;
        while (q < n && IS(s[q], C_WSSL)) {
            q++;
        }
        if (q >= n) {
            return -1;
        }
        unsigned char c = s[q];
        if (c == '>') {
            return q + 1;
        }
        /* First byte: [^WS/>=d] | d(?!ata-consent[WS/>=]) */
        if (c == '=') {
            return -1;
        }
        if (F[c] == 'd' && q + 12 < n && EQ_LIT(F, s + q + 1, 11, "ata-consent")
            && IS(s[q + 12], C_ASTOP)) {
            return -1;
        }
        Py_ssize_t r = q + 1;
        while (r < n && !IS(s[r], C_ASTOP)) {
            r++;
        }
        Py_ssize_t t = r;
        while (t < n && IS(s[t], C_WS)) {
            t++;
        }
        if (t < n && s[t] == '=') {
            t++;
            while (t < n && IS(s[t], C_WS)) {
                t++;
            }
            if (t < n && s[t] == '"') {
                Py_ssize_t v = quiet(s, n, t + 1, C_QDQ);
                if (v >= n || s[v] != '"') {
                    return -1;
                }
                p = v + 1;
            }
            else if (t < n && s[t] == '\'') {
                Py_ssize_t v = quiet(s, n, t + 1, C_QSQ);
                if (v >= n || s[v] != '\'') {
                    return -1;
                }
                p = v + 1;
            }
            else {
                Py_ssize_t v = quiet(s, n, t, C_QUQ);
                if (v >= n || !IS(s[v], C_USTOP)) {  /* (?=[WS>]) */
                    return -1;
                }
                p = v;
            }
        }
        else {
            p = r;
        }
    }
}

/* --- the native judge: URL hosts ------------------------------------------------------------ */

#define HOST_NONE 0   /* no network host (relative URL, another scheme) */
#define HOST_FOUND 1
#define HOST_OTHER 2  /* a scheme that is not a network one (data:, javascript:, ...) */
#define HOST_STOP -1  /* not the simple case: Python reads it */

/* A byte the native pass reads as Python does: printable ASCII, not '&' (a character reference
   that value() would decode) nor '\\' (read as '/' by the URL parser). */
#define PLAIN(c) ((c) >= 0x20 && (c) < 0x7f && (c) != '&' && (c) != '\\')

/* HostMatcher.host_of_url for u[0:len] in the simple case: scheme://host[:port], //host,
   userinfo dropped, trailing dots removed, every byte up to the end of the host PLAIN (what
   follows it, a path or query with character references, cannot change the host). The host
   (folded) goes to out[0:*outlen]. */
static int
host_of(const unsigned char *F, const unsigned char *u, Py_ssize_t len, unsigned char *out,
        Py_ssize_t *outlen)
{
    Py_ssize_t a = 0, b = len;
    while (a < b && u[a] == ' ') {  /* strip(C0 + space); other C0 bytes are not PLAIN */
        a++;
    }
    while (b > a && u[b - 1] == ' ') {
        b--;
    }
    if (a == b) {
        return HOST_NONE;
    }
    if (!PLAIN(u[a])) {
        return HOST_STOP;
    }
    Py_ssize_t i = a;
    unsigned char c0 = F[u[a]];
    if (c0 >= 'a' && c0 <= 'z') {
        i++;
        while (i < b) {
            unsigned char c = F[u[i]];
            if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '.'
                || c == '-') {
                i++;
                continue;
            }
            break;
        }
        if (i < b && u[i] != ':' && !PLAIN(u[i])) {
            return HOST_STOP;  /* "http&colon;//..." */
        }
    }
    Py_ssize_t r;
    if (i > a && i < b && u[i] == ':') {
        Py_ssize_t k = i - a;
        const unsigned char *sc = u + a;
        if (!(EQ_LIT(F, sc, k, "http") || EQ_LIT(F, sc, k, "https") || EQ_LIT(F, sc, k, "ws")
              || EQ_LIT(F, sc, k, "wss") || EQ_LIT(F, sc, k, "ftp"))) {
            return HOST_OTHER;
        }
        r = i + 1;
    }
    else if (b - a >= 2 && u[a] == '/' && u[a + 1] == '/') {
        r = a;
    }
    else if (b - a >= 2 && u[a] == '/' && !PLAIN(u[a + 1])) {
        return HOST_STOP;  /* "/&sol;host" */
    }
    else {
        return HOST_NONE;  /* relative */
    }
    while (r < b && u[r] == '/') {
        r++;
    }
    Py_ssize_t e = r;
    while (e < b && u[e] != '/' && u[e] != '?' && u[e] != '#') {
        if (!PLAIN(u[e])) {
            return HOST_STOP;
        }
        e++;
    }
    for (Py_ssize_t k = e; k > r; k--) {  /* rpartition("@") */
        if (u[k - 1] == '@') {
            r = k;
            break;
        }
    }
    if (r < e && u[r] == '[') {
        return HOST_STOP;  /* IPv6 literal */
    }
    Py_ssize_t d = e;  /* _PORT: ":[0-9]*\Z" */
    while (d > r && u[d - 1] >= '0' && u[d - 1] <= '9') {
        d--;
    }
    if (d > r && u[d - 1] == ':') {
        e = d - 1;
    }
    while (e > r && u[e - 1] == '.') {  /* rstrip(".") */
        e--;
    }
    if (e == r) {
        return HOST_NONE;
    }
    if (e - r > MAX_HOST) {
        return HOST_STOP;
    }
    for (Py_ssize_t k = r; k < e; k++) {
        if (!IS(u[k], C_HOST)) {
            return HOST_STOP;  /* ':', '%', spaces, anything a browser may read otherwise */
        }
        out[k - r] = F[u[k]];
    }
    *outlen = e - r;
    return HOST_FOUND;
}

/* A partner id the edit bytes can hold as written (html.escape leaves it unchanged). */
static int
safe_id(PyObject *pid)
{
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(pid, &n);
    if (u == NULL) {
        PyErr_Clear();
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)u[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '-' || c == '_' || c == '.')) {
            return 0;
        }
    }
    return n > 0;
}

/* A URL of a partner the visitor did not allow: 1 (the attribute is moved aside, the partner
   recorded in order of first appearance), or -1 to stop when no edits are wanted. */
static int
blocked_partner(Scan *S, PyObject *pid)
{
    Found *f = S->found;
    if (S->edits == NULL || !safe_id(pid)) {
        return -1;
    }
    for (int i = 0; i < f->nblocked; i++) {
        if (f->blocked[i] == pid || PyUnicode_Compare(f->blocked[i], pid) == 0) {
            return 1;
        }
    }
    if (f->nblocked >= MAX_FOUND) {
        return -1;
    }
    f->blocked[f->nblocked++] = pid;
    return 1;
}

/* Whether pid is in the allowed set: 1, 0, or -1 (an exception is set). */
static int
is_allowed(Scan *S, PyObject *pid)
{
    if (S->allowed == NULL) {
        return 0;
    }
    int live = PySet_Contains(S->allowed, pid);
    if (live < 0) {
        S->failed = 1;
    }
    return live;
}

/* A partner named by the tag (decide._judge's judge()): an allowed one is remembered for
   `enabled` (0), a blocked one recorded (1); -1 to stop. */
static int
judge_pid(Scan *S, PyObject *pid)
{
    Found *f = S->found;
    int live = is_allowed(S, pid);
    if (live < 0) {
        return -1;
    }
    if (live == 0) {
        return blocked_partner(S, pid);
    }
    for (int i = 0; i < f->npids; i++) {
        if (f->pid[i] == pid) {
            return 0;
        }
    }
    if (f->npids >= MAX_FOUND) {
        return -1;
    }
    f->pid[f->npids++] = pid;
    return 0;
}

/* One URL of a fetching attribute: 0 when it names no blocked partner (its host, if any, is
   remembered for `unknown`, an allowed partner for `enabled`), 1 when it names a blocked one,
   -1 to stop. doc: a data: URL here would be a document. */
static int
judge_url(Scan *S, const unsigned char *u, Py_ssize_t len, int doc)
{
    unsigned char host[MAX_HOST];
    Py_ssize_t hl = 0;
    int k = host_of(S->F, u, len, host, &hl);
    if (k == HOST_STOP || (k == HOST_OTHER && doc)) {
        return -1;
    }
    if (k != HOST_FOUND) {
        return 0;
    }
    Found *f = S->found;
    PyObject *pid = partner_of(S->hosts, host, hl);
    if (pid != NULL) {
        if (S->collect) {
            if (f->ncollect >= MAX_FOUND) {
                return -1;
            }
            f->collect[f->ncollect++] = pid;
            return 0;
        }
        return judge_pid(S, pid);
    }
    for (int i = 0; i < f->count; i++) {
        if (f->len[i] == hl && memcmp(f->host[i], host, (size_t)hl) == 0) {
            return 0;
        }
    }
    if (f->count >= MAX_FOUND) {
        return -1;
    }
    memcpy(f->host[f->count], host, (size_t)hl);
    f->len[f->count++] = hl;
    return 0;
}

/* Tokens of u[0:len] split on spaces (str.split(); the caller refused the other whitespace):
   as judge_url, 1 when any names a blocked partner. */
static int
judge_tokens(Scan *S, const unsigned char *u, Py_ssize_t len, int srcset)
{
    Py_ssize_t i = 0;
    int hit = 0;
    while (i < len) {
        while (i < len && u[i] == ' ') {
            i++;
        }
        Py_ssize_t j = i;
        while (j < len && u[j] != ' ') {
            j++;
        }
        if (j > i) {
            if (!srcset) {
                int r = judge_url(S, u + i, j - i, 0);
                if (r < 0) {
                    return -1;
                }
                hit |= r;
            }
            else {
                /* fetch.srcset_urls: the token without its commas, and each comma piece. */
                Py_ssize_t a = i, b = j;
                int comma = 0;
                for (Py_ssize_t k = i; k < j; k++) {
                    comma |= u[k] == ',';
                }
                while (a < b && u[a] == ',') {
                    a++;
                }
                while (b > a && u[b - 1] == ',') {
                    b--;
                }
                int r = judge_url(S, u + a, b - a, 0);
                if (r < 0) {
                    return -1;
                }
                hit |= r;
                if (comma) {
                    Py_ssize_t p = i;
                    while (p < j) {
                        Py_ssize_t q = p;
                        while (q < j && u[q] != ',') {
                            q++;
                        }
                        if (q > p) {
                            int r = judge_url(S, u + p, q - p, 0);
                            if (r < 0) {
                                return -1;
                            }
                            hit |= r;
                        }
                        p = q + 1;
                    }
                }
            }
        }
        i = j;
    }
    return hit;
}

/* A whole value the native pass can read as Python does: PLAIN bytes only (no decoding, no
   tab/newline removal, no reference that could become a space or a comma); amp: "&amp;" too
   (value() reads it as '&', which splits nothing and is not PLAIN in a host either). */
static int
plain_value(const unsigned char *s, Py_ssize_t a, Py_ssize_t b, int amp)
{
    for (Py_ssize_t i = a; i < b; i++) {
        unsigned char c = s[i];
        if (!PLAIN(c)) {
            if (amp && c == '&' && i + 5 <= b && memcmp(s + i + 1, "amp;", 4) == 0) {
                i += 4;
                continue;
            }
            return 0;
        }
    }
    return 1;
}

static Py_ssize_t find_end_tag(const Scan *S, Py_ssize_t p, const char *name);

/* --- the native judge: CSS (fetch.css_urls) ------------------------------------------------- */

/* \s of a str pattern, on the bytes css_check lets through. */
#define CSS_WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r' || (c) == '\f')

/* Whether t[i:] starts with the lowercase ASCII word w (re.I on ASCII text). */
static int
css_word(const unsigned char *t, Py_ssize_t len, Py_ssize_t i, const char *w, Py_ssize_t k)
{
    return i + k <= len && eq_n(LOW, t + i, w, k);
}

/* The three finditer loops of css_urls over one variant of the text, in their order: every
   url( argument, every @import string, every string in an image-set( list; each URL judged
   (judge_url). 1 when one names a blocked partner, 0, or -1 to stop. */
static int
css_variant(Scan *S, const unsigned char *t, Py_ssize_t len)
{
    int hit = 0, r;
    /* url\(\s*(?:"([^"]*)|'([^']*)|([^)\s]*)) */
    for (Py_ssize_t i = 0; i + 4 <= len;) {
        if (!css_word(t, len, i, "url(", 4)) {
            i++;
            continue;
        }
        Py_ssize_t j = i + 4, k;
        while (j < len && CSS_WS(t[j])) {
            j++;
        }
        if (j < len && (t[j] == '"' || t[j] == '\'')) {
            const unsigned char *q = memchr(t + j + 1, t[j], (size_t)(len - j - 1));
            j++;
            k = q == NULL ? len : q - t;
        }
        else {
            k = j;
            while (k < len && t[k] != ')' && !CSS_WS(t[k])) {
                k++;
            }
        }
        if ((r = judge_url(S, t + j, k - j, 0)) < 0) {
            return -1;
        }
        hit |= r;
        i = k;
    }
    /* @import\s*(?:"([^"]*)|'([^']*)) */
    for (Py_ssize_t i = 0; i + 7 <= len; i++) {
        if (!css_word(t, len, i, "@import", 7)) {
            continue;
        }
        Py_ssize_t j = i + 7;
        while (j < len && CSS_WS(t[j])) {
            j++;
        }
        if (j < len && (t[j] == '"' || t[j] == '\'')) {
            const unsigned char *q = memchr(t + j + 1, t[j], (size_t)(len - j - 1));
            Py_ssize_t k = q == NULL ? len : q - t;
            if ((r = judge_url(S, t + j + 1, k - j - 1, 0)) < 0) {
                return -1;
            }
            hit |= r;
            i = k - 1;  /* the next match may start at the closing quote */
        }
    }
    /* image-set\(([^)]*) and in it "([^"]*)"?|'([^']*)'? */
    for (Py_ssize_t i = 0; i + 10 <= len;) {
        if (!css_word(t, len, i, "image-set(", 10)) {
            i++;
            continue;
        }
        Py_ssize_t g = i + 10, ge = g;
        while (ge < len && t[ge] != ')') {
            ge++;
        }
        for (Py_ssize_t j = g; j < ge;) {
            if (t[j] != '"' && t[j] != '\'') {
                j++;
                continue;
            }
            const unsigned char *q = memchr(t + j + 1, t[j], (size_t)(ge - j - 1));
            Py_ssize_t k = q == NULL ? ge : q - t;
            if ((r = judge_url(S, t + j + 1, k - j - 1, 0)) < 0) {
                return -1;
            }
            hit |= r;
            j = k + 1;  /* past the closing quote */
        }
        i = ge;
    }
    return hit;
}

/* fetch.css_urls(text) judged, for CSS text s[a:b] (a style attribute's value, a <style>'s
   text): 1 when a URL names a blocked partner, 0, or -1 to stop. Read only when nothing can
   differ from Python's reading: printable ASCII with \t \n \f \r (so \s is ASCII and re.I
   folds only ASCII), no '\\' (escapes) and no '&' (character references); a text with a comment
   is read with and without its comments (css_urls' variants), and a blocked partner in it
   stops (Python iterates the variants as a set: its order of partners is not fixed). */
static int
css_judge(Scan *S, Py_ssize_t a, Py_ssize_t b)
{
    const unsigned char *s = S->s;
    int fn = 0, comment = 0;
    for (Py_ssize_t i = a; i < b; i++) {
        unsigned char c = s[i];
        if (c == '\\' || c == '&') {
            return -1;
        }
        fn |= c == '(' || c == '@';
    }
    if (!fn) {
        return 0;  /* no url(, @import nor image-set(: css_urls finds nothing */
    }
    for (Py_ssize_t i = a; i < b; i++) {
        unsigned char c = s[i];
        if (c >= 0x7f || (c < 0x20 && !CSS_WS(c))) {
            return -1;
        }
        comment |= c == '/' && i + 1 < b && s[i + 1] == '*';
    }
    int before = S->found->nblocked;
    int hit = css_variant(S, s + a, b - a);
    if (hit < 0 || !comment) {
        return hit;
    }
    /* _CSS_COMMENT.sub("", text): each comment removed, to its end or the end of the text. */
    unsigned char *t = PyMem_Malloc((size_t)(b - a) + 1);
    if (t == NULL) {
        return -1;
    }
    Py_ssize_t m = 0;
    for (Py_ssize_t i = a; i < b;) {
        if (s[i] == '/' && i + 1 < b && s[i + 1] == '*') {
            Py_ssize_t j = i + 2;
            while (j + 1 < b && !(s[j] == '*' && s[j + 1] == '/')) {
                j++;
            }
            i = j + 1 < b ? j + 2 : b;
            continue;
        }
        t[m++] = s[i++];
    }
    int r = css_variant(S, t, m);
    PyMem_Free(t);
    if (r < 0 || hit || r || S->found->nblocked != before) {
        return -1;
    }
    return 0;
}

/* _judge_tag for a start tag whose name ends at p: the end of the tag when it would give no
   edit and enable no partner (its hosts are then in S->found), or -1. */
/* templates.css_size of the value s[a:b] (ASCII without '&': the caller checked): the fullmatch
   of \s*(\d{1,5}(?:\.\d{1,3})?)\s*(px|%)?\s* (re.ASCII) as group 1 + (group 2 or "px"),
   written to out; its length, or 0 for None. No digit is ever matched by what follows a digit
   run, so the regex's backtracking cannot find another reading. */
#define SIZE_WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r' || (c) == '\f' || (c) == '\v')
static Py_ssize_t
css_size(const unsigned char *s, Py_ssize_t a, Py_ssize_t b, char *out)
{
    Py_ssize_t i = a;
    while (i < b && SIZE_WS(s[i])) {
        i++;
    }
    Py_ssize_t d = i;
    while (i < b && s[i] >= '0' && s[i] <= '9' && i - d <= 5) {
        i++;
    }
    if (i == d || i - d > 5) {
        return 0;
    }
    if (i < b && s[i] == '.') {
        Py_ssize_t f = i + 1;
        while (f < b && s[f] >= '0' && s[f] <= '9' && f - (i + 1) <= 3) {
            f++;
        }
        if (f == i + 1 || f - (i + 1) > 3) {
            return 0;  /* a '.' matches nothing after the number */
        }
        i = f;
    }
    Py_ssize_t k = i - d;
    memcpy(out, s + d, (size_t)k);
    while (i < b && SIZE_WS(s[i])) {
        i++;
    }
    int percent = 0;
    if (i + 1 < b && s[i] == 'p' && s[i + 1] == 'x') {
        i += 2;
    }
    else if (i < b && s[i] == '%') {
        percent = 1;
        i++;
    }
    while (i < b && SIZE_WS(s[i])) {
        i++;
    }
    if (i != b) {
        return 0;
    }
    if (percent) {
        out[k++] = '%';
    }
    else {
        out[k++] = 'p';
        out[k++] = 'x';
    }
    return k;
}

/* templates.placeholder_size from the first width and height attributes (Attr at[0:count]):
   into f->size; 0, or -1 when a value must be decoded first (a reference). */
static int
placeholder_size(const Scan *S, const Attr *at, int count, Found *f)
{
    char w[16], h[16];
    Py_ssize_t wl = -1, hl = -1;  /* -1: the attribute is absent */
    for (int i = 0; i < count; i++) {
        const unsigned char *nm = S->s + at[i].ns;
        Py_ssize_t nl = at[i].ne - at[i].ns;
        int isw = wl < 0 && EQ_LIT(S->F, nm, nl, "width");
        int ish = !isw && hl < 0 && EQ_LIT(S->F, nm, nl, "height");
        if (!isw && !ish) {
            continue;
        }
        Py_ssize_t len = 0;
        if (at[i].vs >= 0) {
            if (memchr(S->s + at[i].vs, '&', (size_t)(at[i].ve - at[i].vs)) != NULL) {
                return -1;
            }
            len = css_size(S->s, at[i].vs, at[i].ve, isw ? w : h);
        }
        if (isw) {
            wl = len;
        }
        else {
            hl = len;
        }
    }
    f->size_len = 0;
    if (wl <= 0 && hl <= 0) {
        return 0;
    }
    char *o = f->size;
#define PUT(str, len) (memcpy(o, (str), (size_t)(len)), o += (len))
    PUT(" style=\"", 8);
    if (wl > 0) {
        PUT("width:", 6);
        PUT(w, wl);
        PUT(";", 1);
    }
    if (hl > 0) {
        PUT("min-height:", 11);
        PUT(h, hl);
        PUT(";", 1);
    }
    PUT("\" data-width=\"", 14);
    if (wl > 0) {
        PUT(w, wl);
    }
    PUT("\" data-height=\"", 15);
    if (hl > 0) {
        PUT(h, hl);
    }
    PUT("\"", 1);
#undef PUT
    f->size_len = o - f->size;
    return 0;
}

/* --- the native judge: meta refresh and opt-in markup ------------------------------------- */

/* fetch.refresh_url on the plain value s[a:b] (spaces are its only blanks): the URL's span. */
static void
refresh_span(const unsigned char *s, Py_ssize_t *pa, Py_ssize_t *pb)
{
    Py_ssize_t a = *pa, b = *pb;
    while (a < b && s[a] == ' ') {
        a++;
    }
    while (a < b && ((s[a] >= '0' && s[a] <= '9') || s[a] == '.')) {
        a++;
    }
    while (a < b && s[a] == ' ') {
        a++;
    }
    if (a < b && (s[a] == ';' || s[a] == ',')) {
        a++;
        while (a < b && s[a] == ' ') {
            a++;
        }
    }
    if (b - a >= 3 && LOW[s[a]] == 'u' && LOW[s[a + 1]] == 'r' && LOW[s[a + 2]] == 'l') {
        Py_ssize_t r = a + 3;
        while (r < b && s[r] == ' ') {
            r++;
        }
        if (r < b && s[r] == '=') {
            a = r + 1;
            while (a < b && s[a] == ' ') {
                a++;
            }
        }
    }
    if (a < b && (s[a] == '\'' || s[a] == '"')) {
        const unsigned char *q = memchr(s + a + 1, s[a], (size_t)(b - a - 1));
        a++;
        if (q != NULL) {
            b = q - s;
        }
    }
    while (a < b && s[a] == ' ') {  /* strip() */
        a++;
    }
    while (b > a && s[b - 1] == ' ') {
        b--;
    }
    *pa = a;
    *pb = b;
}

/* HostMatcher.partners_in_text on the plain (ASCII) text s[a:b], sorted as sorted() sorts str:
   each declared host or "*." suffix found in it (ASCII case folded) gives its partner, the
   exact host's first. The number found (in out), or -1 to stop. */
static int
text_partners(const HostTable *t, const unsigned char *s, Py_ssize_t a, Py_ssize_t b,
              PyObject **out)
{
    /* text.lower(), once: then each host is a memchr for its first byte and a memcmp */
    unsigned char small[1024], *low = b - a <= (Py_ssize_t)sizeof(small) ? small
                                      : PyMem_Malloc((size_t)(b - a));
    Py_ssize_t n = b - a;
    if (low == NULL) {
        return -1;
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        low[j] = LOW[s[a + j]];
    }
    int k = 0;
    for (Py_ssize_t i = 0; i <= t->mask; i++) {
        const Slot *e = &t->slots[i];
        if (e->len < 0 || e->len > n) {
            continue;
        }
        const unsigned char *h = t->blob + e->off;
        int hit = e->len == 0;
        Py_ssize_t j = 0;
        while (!hit && j + e->len <= n) {
            const unsigned char *c = memchr(low + j, h[0], (size_t)(n - e->len + 1 - j));
            if (c == NULL) {
                break;
            }
            j = c - low;
            hit = memcmp(c, h, (size_t)e->len) == 0;
            j++;
        }
        if (!hit) {
            continue;
        }
        PyObject *pid = e->exact != NULL ? e->exact : e->wild;
        int dup = 0;
        for (int m = 0; m < k && !dup; m++) {
            dup = out[m] == pid || PyUnicode_Compare(out[m], pid) == 0;
        }
        if (dup) {
            continue;
        }
        if (k >= MAX_FOUND) {
            k = -1;
            break;
        }
        int m = k++;
        while (m > 0 && PyUnicode_Compare(out[m - 1], pid) > 0) {  /* insertion: sorted() */
            out[m] = out[m - 1];
            m--;
        }
        out[m] = pid;
    }
    if (low != small) {
        PyMem_Free(low);
    }
    return k;
}

/* Each space- (and, with comma, ',') separated word of the plain s[a:b] as a str: 1 when
   every one is in the set (NULL: none is), 0 when one is not, -1 on an error. With keep,
   each word is also kept in the Found's owned references (more than MAX_FOUND: -1). An empty
   list gives 1 (set() <= anything), with nonempty set to whether there was a word. */
static int
words_in(Scan *S, Py_ssize_t a, Py_ssize_t b, int comma, PyObject *set, int keep, int *nonempty)
{
    const unsigned char *s = S->s;
    Found *f = S->found;
    int all = 1;
    *nonempty = 0;
    while (a < b) {
        while (a < b && (s[a] == ' ' || (comma && s[a] == ','))) {
            a++;
        }
        Py_ssize_t j = a;
        while (j < b && s[j] != ' ' && !(comma && s[j] == ',')) {
            j++;
        }
        if (j > a) {
            *nonempty = 1;
            PyObject *w = PyUnicode_DecodeASCII((const char *)s + a, j - a, NULL);
            if (w == NULL) {
                S->failed = 1;
                return -1;
            }
            int in = set == NULL ? 0 : PySet_Contains(set, w);
            if (in < 0) {
                Py_DECREF(w);
                S->failed = 1;
                return -1;
            }
            all &= in;
            if (keep && in) {
                if (f->nowned >= MAX_FOUND) {
                    Py_DECREF(w);
                    return -1;
                }
                f->owned[f->nowned++] = w;
            }
            else {
                Py_DECREF(w);
            }
        }
        a = j;
    }
    return all;
}

static void
drop_owned(Found *f)
{
    for (int i = 0; i < f->nowned; i++) {
        Py_DECREF(f->owned[i]);
    }
    f->nowned = 0;
}

static void
found_clear(Found *f)
{
    for (int i = 0; i < f->nowned; i++) {
        Py_DECREF(f->owned[i]);
    }
    f->count = f->npids = f->nblocked = f->nact = f->nowned = f->ncollect = 0;
    Py_CLEAR(f->doc_unknown);
    Py_CLEAR(f->doc_enabled);
    Py_CLEAR(f->doc_blocked);
}

/* The value s[a:b] with spaces stripped (str.strip() on a plain value). */
#define STRIP(s, a, b) do { while ((a) < (b) && (s)[a] == ' ') (a)++; \
                            while ((b) > (a) && (s)[(b) - 1] == ' ') (b)--; } while (0)

static Py_ssize_t skip_run(Scan *S, Py_ssize_t pos);
static int set_merge(PyObject *dst, PyObject *src);

/* html.unescape of the value s[a:b] into out (at most b - a bytes), for the spellings it reads
   the same way whatever follows: printable ASCII and \t \n \f \r, "&name;" for the names
   below and "&#N;" / "&#xH;" of printable ASCII. The length, or -1 for anything else. */
static Py_ssize_t
unescape_plain(const unsigned char *s, Py_ssize_t a, Py_ssize_t b, unsigned char *out)
{
    static const char *const names[] = {"lt;<", "gt;>", "amp;&", "quot;\"", "apos;'",
                                        "period;.", "sol;/", "colon;:", "equals;=", "lpar;(",
                                        "rpar;)", "num;#", "excl;!", "quest;?", "commat;@",
                                        "semi;;", "comma;,", "lowbar;_", "hyphen;-", NULL};
    Py_ssize_t o = 0;
    for (Py_ssize_t i = a; i < b; i++) {
        unsigned char c = s[i];
        if (c != '&') {
            if (!((c >= 0x20 && c < 0x7f) || c == '\t' || c == '\n' || c == '\f' || c == '\r')) {
                return -1;
            }
            out[o++] = c;
            continue;
        }
        if (i + 1 < b && s[i + 1] == '#') {
            Py_ssize_t j = i + 2;
            int hex = j < b && (s[j] == 'x' || s[j] == 'X');
            j += hex;
            long v = 0;
            Py_ssize_t d0 = j;
            while (j < b && j - d0 < 8) {
                unsigned char h = s[j];
                int dv = h >= '0' && h <= '9' ? h - '0'
                         : hex && (h | 0x20) >= 'a' && (h | 0x20) <= 'f' ? (h | 0x20) - 'a' + 10 : -1;
                if (dv < 0) {
                    break;
                }
                v = v * (hex ? 16 : 10) + dv;
                j++;
            }
            if (j == d0 || j >= b || s[j] != ';' || v < 0x20 || v >= 0x7f) {
                return -1;
            }
            out[o++] = (unsigned char)v;
            i = j;
            continue;
        }
        int done = 0;
        for (int k = 0; names[k] && !done; k++) {
            Py_ssize_t len = (Py_ssize_t)strlen(names[k]) - 1;  /* "lt;" of "lt;<" */
            if (i + 1 + len <= b && memcmp(s + i + 1, names[k], (size_t)len) == 0) {
                out[o++] = (unsigned char)names[k][len];
                i += len;
                done = 1;
            }
        }
        if (!done) {
            return -1;
        }
    }
    return o;
}

/* Sort pids[0:k] as sorted() sorts str. */
static void
sort_pids(PyObject **pids, int k)
{
    for (int i = 1; i < k; i++) {
        PyObject *x = pids[i];
        int m = i;
        while (m > 0 && PyUnicode_Compare(pids[m - 1], x) > 0) {
            pids[m] = pids[m - 1];
            m--;
        }
        pids[m] = x;
    }
}

/* An iframe's srcdoc s[a:b] (decide._partners_of, kind "srcdoc", and nested.document_partners):
   the value's references decoded, the document read by a second native pass of the same plan
   with no injections, which must consume all of it (else -1: Python rewrites it), plus the
   partners whose host occurs in it. Its unknown hosts and enabled partners are kept for the
   tag (Found.doc_*); its blocked partners, sorted, judged as the tag's: 1 when one is. */
static int
judge_srcdoc(Scan *S, Py_ssize_t a, Py_ssize_t b)
{
    Found *f = S->found;
    if (a < 0) {
        a = b = 0;  /* no value: "" */
    }
    unsigned char *doc = PyMem_Malloc((size_t)(b - a) + 1);
    if (doc == NULL) {
        PyErr_NoMemory();
        S->failed = 1;
        return -1;
    }
    Py_ssize_t n = unescape_plain(S->s, a, b, doc);
    int hit = -1;
    PyObject *blocked = NULL, *edits = NULL, *inject = NULL, *none = NULL;
    if (n < 0) {
        goto done;
    }
    if ((f->doc_unknown == NULL && (f->doc_unknown = PySet_New(NULL)) == NULL)
        || (f->doc_enabled == NULL && (f->doc_enabled = PySet_New(NULL)) == NULL)
        || (f->doc_blocked == NULL && (f->doc_blocked = PySet_New(NULL)) == NULL)
        || (blocked = PySet_New(NULL)) == NULL || (edits = PyList_New(0)) == NULL
        || (inject = PyList_New(3)) == NULL || (none = PyTuple_New(0)) == NULL) {
        S->failed = 1;
        goto done;
    }
    for (int k = 0; k < 3; k++) {
        PyObject *e = PyBytes_FromStringAndSize("", 0);
        if (e == NULL) {
            S->failed = 1;
            goto done;
        }
        PyList_SET_ITEM(inject, k, e);
    }
    Found inner;
    memset(&inner, 0, sizeof(inner));
    Scan I = {.s = doc, .n = n, .F = LOW, .hosts = S->hosts, .unknown = f->doc_unknown,
              .allowed = S->allowed, .enabled = f->doc_enabled, .blocked = blocked,
              .edits = edits, .inject = inject, .injected = none,
              .placeholders = S->placeholders, .purposes = S->purposes, .collect = 0,
              .documents = 0, .found = &inner, .seen_doc = 0, .failed = 0};
    Py_ssize_t end = skip_run(&I, 0);
    found_clear(&inner);
    if (I.failed) {
        S->failed = 1;
        goto done;
    }
    if (end != n) {
        goto done;
    }
    /* "Scripts and styles of the inner document may name partners in ways no tag shows." */
    PyObject *text[MAX_FOUND];
    int k = text_partners(S->hosts, doc, 0, n, text);
    if (k < 0) {
        goto done;
    }
    for (int m = 0; m < k; m++) {
        int live = is_allowed(S, text[m]);
        if (live < 0 || PySet_Add(live ? f->doc_enabled : blocked, text[m]) < 0) {
            S->failed = 1;
            goto done;
        }
    }
    PyObject *pids[MAX_FOUND];
    int np = 0;
    Py_ssize_t pos = 0;
    PyObject *key;
    Py_hash_t hash;
    while (_PySet_NextEntry(blocked, &pos, &key, &hash)) {
        if (np >= MAX_FOUND) {
            goto done;
        }
        pids[np++] = key;
    }
    sort_pids(pids, np);
    hit = 0;
    for (int m = 0; m < np; m++) {
        /* kept alive with the tag (blocked[] borrows) */
        if (PySet_Add(f->doc_blocked, pids[m]) < 0) {
            S->failed = 1;
            hit = -1;
            goto done;
        }
        int r = judge_pid(S, pids[m]);
        if (r < 0) {
            hit = -1;
            goto done;
        }
        hit |= r;
    }
done:
    PyMem_Free(doc);
    Py_XDECREF(blocked);
    Py_XDECREF(edits);
    Py_XDECREF(inject);
    Py_XDECREF(none);
    return hit;
}

/* A meta refresh's content s[a:b] (decide._judge, kind "refresh"): the partner of
   fetch.refresh_url's URL, then the sorted partners_in_text; 1 when one is blocked, -1 to
   stop (a value that is not plain). */
static int
judge_refresh(Scan *S, Py_ssize_t a, Py_ssize_t b)
{
    const unsigned char *s = S->s;
    if (!plain_value(s, a, b, 0)) {
        return -1;
    }
    Py_ssize_t ua = a, ub = b;
    refresh_span(s, &ua, &ub);
    int hit = judge_url(S, s + ua, ub - ua, 0);
    if (hit < 0) {
        return -1;
    }
    PyObject *pids[MAX_FOUND];
    int k = text_partners(S->hosts, S->s, a, b, pids);
    if (k < 0) {
        return -1;
    }
    for (int m = 0; m < k; m++) {
        int r = judge_pid(S, pids[m]);
        if (r < 0) {
            return -1;
        }
        hit |= r;
    }
    return hit;
}

/* Opt-in markup (decide._judge after the fetching attributes, and decide._activate): a tag
   with data-consent whose data-consent-URL attributes (or, for a <script>, type=text/plain)
   make it inert. The partners of those URLs are looked up (their unknown hosts recorded);
   when every purpose of data-consent is granted, the partners declared and found are all
   allowed and no partner was blocked, they are enabled and the edits that make it live kept
   in the Found. 0, or -1 to stop (a value that is not plain). */
static int
judge_optin(Scan *S, const TagRule *rule, Py_ssize_t p, const Attr *at, int count, int marker_i,
            int declared_i, int type_i, int dctype_i)
{
    const unsigned char *s = S->s, *F = S->F;
    Found *f = S->found;
    int inert = 0;
    if (rule->text == T_SCRIPT && type_i >= 0 && at[type_i].vs >= 0) {
        Py_ssize_t a = at[type_i].vs, b = at[type_i].ve;
        if (!plain_value(s, a, b, 0)) {
            return -1;
        }
        STRIP(s, a, b);
        inert = EQ_LIT(F, s + a, b - a, "text/plain");
    }
    /* optin: every data-consent-X with X a URL attribute of the tag; targets: the X seen
       (bits 0-2) and, for an inert script, its type (bit 3) */
    signed char opt[MAX_ATTRS];
    int targets = 0;
    for (int i = 0; i < count; i++) {
        const unsigned char *nm = s + at[i].ns;
        Py_ssize_t nl = at[i].ne - at[i].ns;
        opt[i] = -1;
        if (nl > 13 && eq_n(F, nm, "data-consent-", 13)) {
            for (int k = 0; k < 3 && rule->urls[k]; k++) {
                if (eq_fold(F, nm + 13, nl - 13, rule->urls[k])) {
                    opt[i] = (signed char)k;
                    targets |= 1 << k;
                }
            }
        }
    }
    if (!targets && !inert) {
        return 0;
    }
    /* Their partners (Python: _partners_of with an enabled set it drops). */
    f->ncollect = 0;
    S->collect = 1;
    for (int i = 0; i < count; i++) {
        if (opt[i] < 0 || at[i].vs < 0) {
            continue;
        }
        const char *x = rule->urls[(int)opt[i]];
        int srcset = !strcmp(x, "srcset") || !strcmp(x, "imagesrcset");
        int r = srcset ? (plain_value(s, at[i].vs, at[i].ve, 1)
                          ? judge_tokens(S, s + at[i].vs, at[i].ve - at[i].vs, 1) : -1)
                       : judge_url(S, s + at[i].vs, at[i].ve - at[i].vs, rule->doc);
        if (r < 0) {
            S->collect = 0;
            return -1;
        }
    }
    S->collect = 0;
    /* granted = bool(purposes) and purposes <= plan.granted_purposes */
    int nonempty = 0, granted = 0;
    if (at[marker_i].vs >= 0) {
        if (!plain_value(s, at[marker_i].vs, at[marker_i].ve, 0)) {
            return -1;
        }
        granted = words_in(S, at[marker_i].vs, at[marker_i].ve, 1, S->purposes, 0, &nonempty);
        if (granted < 0) {
            return -1;
        }
        granted &= nonempty;
    }
    int all = 1;
    if (declared_i >= 0 && at[declared_i].vs >= 0) {
        if (!plain_value(s, at[declared_i].vs, at[declared_i].ve, 0)) {
            return -1;
        }
        if (granted) {
            all = words_in(S, at[declared_i].vs, at[declared_i].ve, 0, S->allowed, 1, &nonempty);
            if (all < 0) {
                return -1;
            }
        }
    }
    int live = 1;
    for (int m = 0; m < f->ncollect && granted && all && live > 0; m++) {
        live = is_allowed(S, f->collect[m]);
    }
    if (!granted || !all || f->nblocked || live <= 0) {
        drop_owned(f);  /* nothing is activated (or an error: live < 0) */
        return live < 0 ? -1 : 0;
    }
    if (S->edits == NULL) {
        return -1;
    }
    for (int m = 0; m < f->ncollect; m++) {
        int dup = 0;
        for (int i = 0; i < f->npids && !dup; i++) {
            dup = f->pid[i] == f->collect[m];
        }
        if (!dup) {
            if (f->npids >= MAX_FOUND) {
                return -1;
            }
            f->pid[f->npids++] = f->collect[m];
        }
    }
    /* decide._activate: each attribute a target names removed (from the end of the one
       before), each data-consent-X (and an inert script's first data-consent-type) renamed X */
    if (inert) {
        targets |= 8;
    }
    for (int i = 0; i < count; i++) {
        const unsigned char *nm = s + at[i].ns;
        Py_ssize_t nl = at[i].ne - at[i].ns;
        int target = 0;
        for (int k = 0; k < 3 && rule->urls[k]; k++) {
            target |= (targets >> k & 1) && eq_fold(F, nm, nl, rule->urls[k]);
        }
        target |= (targets & 8) && EQ_LIT(F, nm, nl, "type");
        if (target) {
            f->act[f->nact][0] = i > 0 ? at[i - 1].ae : p;
            f->act[f->nact][1] = at[i].ae;
            f->act_name[f->nact++] = NULL;
        }
        else if (opt[i] >= 0 || (inert && i == dctype_i)) {
            f->act[f->nact][0] = at[i].ns;
            f->act[f->nact][1] = at[i].ne;
            f->act_name[f->nact++] = opt[i] >= 0 ? rule->urls[(int)opt[i]] : "type";
        }
    }
    return 0;
}


/* A <script> type value that may be "speculationrules" or "importmap" (a reference may spell
   either: '&'): tokenizer._speculation reads its text. */
static int
maybe_speculation(const unsigned char *F, const unsigned char *v, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (v[i] == '&') {
            return 1;
        }
        if (i + 16 <= n && eq_n(F, v + i, "speculationrules", 16)) {
            return 1;
        }
        if (i + 9 <= n && eq_n(F, v + i, "importmap", 9)) {
            return 1;
        }
    }
    return 0;
}

static Py_ssize_t
judge_tag(Scan *S, const TagRule *rule, Py_ssize_t p)
{
    Attr at[MAX_ATTRS];
    int count;
    const unsigned char *s = S->s, *F = S->F;
    Py_ssize_t end = read_attrs(S, p, at, &count);
    if (end < 0) {
        return -1;
    }
    int generic = rule == &GENERIC, link = eq_fold(F, (const unsigned char *)rule->name,
                                                   (Py_ssize_t)strlen(rule->name), "link");
    int link_quiet = 1, rel_seen = 0, equiv_seen = 0, refresh = 0, equiv_i = -1;
    int marker_i = -1, declared_i = -1, type_i = -1, dctype_i = -1;
    int meta = EQ_LIT(F, (const unsigned char *)rule->name, (Py_ssize_t)strlen(rule->name), "meta");
    /* an iframe's srcdoc in HTML content (its document: judge_srcdoc), which is replaced by a
       placeholder when it names a blocked partner: edits (and parts) wanted */
    int srcdoc_ok = S->documents && !S->careful && S->edits != NULL && !strcmp(rule->name, "iframe");
    found_clear(S->found);
    for (int i = 0; i < count; i++) {
        const unsigned char *nm = s + at[i].ns;
        Py_ssize_t nl = at[i].ne - at[i].ns;
        if (!generic && EQ_LIT(F, nm, nl, "srcdoc") && !srcdoc_ok) {
            return -1;  /* a nested document Python reads */
        }
        if (!generic && nl >= 12 && eq_n(F, nm, "data-consent", 12)) {
            /* opt-in markup (decide._judge): the first of each attribute counts */
            if (nl == 12) {
                if (S->purposes == NULL) {
                    return -1;
                }
                marker_i = marker_i < 0 ? i : marker_i;
            }
            else if (EQ_LIT(F, nm, nl, "data-consent-partner")) {
                declared_i = declared_i < 0 ? i : declared_i;
            }
            else if (EQ_LIT(F, nm, nl, "data-consent-type")) {
                dctype_i = dctype_i < 0 ? i : dctype_i;
            }
        }
        if (type_i < 0 && EQ_LIT(F, nm, nl, "type")) {
            type_i = i;
            if (rule->text == T_SCRIPT && at[i].vs >= 0
                && maybe_speculation(F, s + at[i].vs, at[i].ve - at[i].vs)) {
                return -1;  /* a speculation rule set: Python reads its text (_speculation) */
            }
        }
        if (meta && !equiv_seen && EQ_LIT(F, nm, nl, "http-equiv")) {
            /* decide._judge: a meta refresh when the first http-equiv's value().strip().lower()
               is "refresh" (then its content is read: Python); any other makes the content
               fetch nothing. Read here only when plain (no reference, no other space). */
            equiv_seen = 1;
            Py_ssize_t a = at[i].vs, b = at[i].ve;
            if (a >= 0) {
                if (!plain_value(s, a, b, 0)) {
                    return -1;
                }
                while (a < b && s[a] == ' ') {
                    a++;
                }
                while (b > a && s[b - 1] == ' ') {
                    b--;
                }
                if (EQ_LIT(F, s + a, b - a, "refresh")) {
                    refresh = 1;  /* its content attributes are read as refreshes */
                    equiv_i = i;
                }
            }
        }
        if (link && !rel_seen && EQ_LIT(F, nm, nl, "rel")) {
            rel_seen = 1;  /* the first rel counts, as first["rel"] in Python */
            if (at[i].vs >= 0) {
                if (!plain_value(s, at[i].vs, at[i].ve, 0)) {
                    return -1;
                }
                Py_ssize_t k = at[i].vs;
                while (k < at[i].ve) {
                    while (k < at[i].ve && s[k] == ' ') {
                        k++;
                    }
                    Py_ssize_t j = k;
                    while (j < at[i].ve && s[j] != ' ') {
                        j++;
                    }
                    if (j > k && !in_list(F, &N_LINK_NO_FETCH, s + k, j - k)) {
                        link_quiet = 0;
                    }
                    k = j;
                }
            }
        }
    }
    char hit[MAX_ATTRS];
    memset(hit, 0, sizeof(hit));
    for (int i = 0; i < count; i++) {
        const unsigned char *nm = s + at[i].ns;
        Py_ssize_t nl = at[i].ne - at[i].ns;
        int url = 0, srcset = 0, list = 0;
        if (srcdoc_ok && EQ_LIT(F, nm, nl, "srcdoc")) {
            int r = judge_srcdoc(S, at[i].vs, at[i].ve);
            if (r < 0) {
                return -1;
            }
            hit[i] = (char)r;
            continue;
        }
        if (meta && EQ_LIT(F, nm, nl, "content")) {
            /* attrs._attr_kind: a meta's content is a refresh, read only with http-equiv
               refresh; a partner in it renames the first http-equiv. */
            if (refresh && at[i].vs >= 0) {
                int r = judge_refresh(S, at[i].vs, at[i].ve);
                if (r < 0) {
                    return -1;
                }
                hit[equiv_i] |= (char)r;
            }
            continue;
        }
        for (int k = 0; k < 3 && rule->urls[k]; k++) {
            if (eq_fold(F, nm, nl, rule->urls[k])) {
                url = 1;
                srcset = strcmp(rule->urls[k], "srcset") == 0
                         || strcmp(rule->urls[k], "imagesrcset") == 0;
            }
        }
        if (url && link && link_quiet) {
            continue;
        }
        if (!url) {
            if (EQ_LIT(F, nm, nl, "style")) {
                if (at[i].vs >= 0) {  /* no value: "" holds no URL */
                    int r = css_judge(S, at[i].vs, at[i].ve);
                    if (r < 0) {
                        return -1;
                    }
                    hit[i] = (char)r;
                }
                continue;
            }
            if (EQ_LIT(F, nm, nl, "background")) {
                url = 1;
            }
            else if (EQ_LIT(F, nm, nl, "ping") || EQ_LIT(F, nm, nl, "attributionsrc")) {
                list = 1;
            }
            else if (!S->careful
                     || (EQ_LIT(F, nm, nl, "content") && EQ_LIT(F, S->tname, S->tlen, "meta"))) {
                continue;  /* a meta's content is read only as a refresh (with http-equiv) */
            }
            /* Careful mode (attrs._attr_kind): href and xlink:href load except on <a>, so
               does mglyph's src, and any attribute value may hold url(...). */
            else if (nl >= 4 && eq_n(F, nm + nl - 4, "href", 4)
                     && !(S->tlen == 1 && F[S->tname[0]] == 'a')) {
                url = 1;
            }
            else if (EQ_LIT(F, nm, nl, "src") && EQ_LIT(F, S->tname, S->tlen, "mglyph")) {
                url = 1;
            }
            /* SMIL: a <set>'s or <animate>'s to/from/by/values is a ';' list of URLs the
               element may load (attrs._SMIL_VALUES): Python reads it. */
            else if ((EQ_LIT(F, S->tname, S->tlen, "set") || EQ_LIT(F, S->tname, S->tlen, "animate"))
                     && (EQ_LIT(F, nm, nl, "to") || EQ_LIT(F, nm, nl, "from")
                         || EQ_LIT(F, nm, nl, "by") || EQ_LIT(F, nm, nl, "values"))) {
                return -1;
            }
            else {
                if (at[i].vs >= 0 && memchr(s + at[i].vs, '(', (size_t)(at[i].ve - at[i].vs))) {
                    int r = css_judge(S, at[i].vs, at[i].ve);
                    if (r < 0) {
                        return -1;
                    }
                    hit[i] = (char)r;
                }
                continue;
            }
        }
        if (at[i].vs < 0) {
            continue;  /* no value: "" has no host */
        }
        if ((srcset || list) && !plain_value(s, at[i].vs, at[i].ve, 1)) {
            return -1;  /* a reference could split it elsewhere */
        }
        const unsigned char *v = s + at[i].vs;
        Py_ssize_t vl = at[i].ve - at[i].vs;
        int r = srcset || list ? judge_tokens(S, v, vl, srcset) : judge_url(S, v, vl, rule->doc);
        if (r < 0) {
            return -1;
        }
        hit[i] = (char)r;
    }
    Found *f = S->found;
    f->text_start = f->text_end = end;
    f->parts = NULL;
    if (rule->text == T_STYLE) {
        /* Tokenizer._style_text: the text up to </style (not in this buffer: Python waits or
           fails closed), judged by the CSS reader as well. */
        Py_ssize_t se = find_end_tag(S, end, "style");
        if (se < 0 || css_judge(S, end, se) < 0) {
            return -1;
        }
        f->text_end = se;
    }
    if (marker_i >= 0 && judge_optin(S, rule, p, at, count, marker_i, declared_i, type_i,
                                     dctype_i) < 0) {
        return -1;
    }
    if (f->nblocked) {
        /* decide._judge's neutralisation: the element is replaced for iframe and embed (a
           placeholder: Python), else data-consent-partner after the name and each fetching
           attribute that named a blocked partner renamed (a <script>'s or <style>'s type
           attributes too, with type="text/plain" first; a <style>'s text keeps no literal
           @import: report_edits). */
        if (!strcmp(rule->name, "iframe") || !strcmp(rule->name, "embed")) {
            /* The placeholder of the first blocked partner (decide._judge), from the plan's
               parts, in HTML content only (careful mode leaves it to Python). */
            if (S->placeholders == NULL || S->careful) {
                return -1;
            }
            PyObject *parts = PyDict_GetItemWithError(S->placeholders, f->blocked[0]);
            if (parts == NULL) {
                if (PyErr_Occurred()) {
                    S->failed = 1;
                }
                return -1;
            }
            if (!PyTuple_Check(parts) || PyTuple_GET_SIZE(parts) != 2
                || !PyBytes_Check(PyTuple_GET_ITEM(parts, 0))
                || !PyBytes_Check(PyTuple_GET_ITEM(parts, 1))
                || placeholder_size(S, at, count, f) < 0) {
                return -1;
            }
            f->parts = parts;
            return end;
        }
        int script = rule->text == T_SCRIPT || rule->text == T_STYLE;
        f->insert_at = p;
        f->script = script;
        f->nmoved = 0;
        for (int i = 0; i < count; i++) {
            if (hit[i] || (script && EQ_LIT(F, s + at[i].ns, at[i].ne - at[i].ns, "type"))) {
                f->moved[f->nmoved][0] = at[i].ns;
                f->moved[f->nmoved][1] = at[i].ne;
                f->nmoved++;
            }
        }
    }
    return end;
}

static int
append_edit(PyObject *edits, Py_ssize_t a, Py_ssize_t b, PyObject *data)
{
    if (data == NULL) {
        return -1;
    }
    /* (a, b, data), data's reference taken (as Py_BuildValue's "N"; built by hand: the
       format parser was 3 % of a page's instructions) */
    PyObject *x = PyLong_FromSsize_t(a), *y = PyLong_FromSsize_t(b);
    PyObject *t = x != NULL && y != NULL ? PyTuple_New(3) : NULL;
    if (t == NULL) {
        Py_XDECREF(x);
        Py_XDECREF(y);
        Py_DECREF(data);
        return -1;
    }
    PyTuple_SET_ITEM(t, 0, x);
    PyTuple_SET_ITEM(t, 1, y);
    PyTuple_SET_ITEM(t, 2, data);
    int r = PyList_Append(edits, t);
    Py_DECREF(t);
    return r;
}

/* The neutralised tag's partners to the blocked set and its edits, in order, to the list:
   (name end, name end, [' type="text/plain"'] ' data-consent-partner="a b"') and
   (start, end, b"data-consent-" + name) for each moved attribute, as decide._judge makes them. */
static int
report_edits(Scan *S)
{
    Found *f = S->found;
    static const char typ[] = " type=\"text/plain\"", who[] = " data-consent-partner=\"";
    Py_ssize_t len = (f->script ? (Py_ssize_t)sizeof(typ) - 1 : 0) + (Py_ssize_t)sizeof(who);
    for (int i = 0; i < f->nblocked; i++) {
        Py_ssize_t k;
        if (PyUnicode_AsUTF8AndSize(f->blocked[i], &k) == NULL || PySet_Add(S->blocked, f->blocked[i]) < 0) {
            return -1;
        }
        len += k + (i > 0);
    }
    PyObject *ins = PyBytes_FromStringAndSize(NULL, len);
    if (ins == NULL) {
        return -1;
    }
    char *w = PyBytes_AS_STRING(ins);
    if (f->script) {
        memcpy(w, typ, sizeof(typ) - 1);
        w += sizeof(typ) - 1;
    }
    memcpy(w, who, sizeof(who) - 1);
    w += sizeof(who) - 1;
    for (int i = 0; i < f->nblocked; i++) {
        Py_ssize_t k;
        const char *u = PyUnicode_AsUTF8AndSize(f->blocked[i], &k);
        if (i > 0) {
            *w++ = ' ';
        }
        memcpy(w, u, (size_t)k);
        w += k;
    }
    *w = '"';
    if (append_edit(S->edits, f->insert_at, f->insert_at, ins) < 0) {
        return -1;
    }
    for (int i = 0; i < f->nmoved; i++) {
        Py_ssize_t a = f->moved[i][0], b = f->moved[i][1];
        PyObject *name = PyBytes_FromStringAndSize(NULL, 13 + (b - a));
        if (name == NULL) {
            return -1;
        }
        memcpy(PyBytes_AS_STRING(name), "data-consent-", 13);
        memcpy(PyBytes_AS_STRING(name) + 13, S->s + a, (size_t)(b - a));
        if (append_edit(S->edits, a, b, name) < 0) {
            return -1;
        }
    }
    /* A blocked <style>: each @(?i:import) of its text respelled (Chromium's preload scanner
       fetches a literal @import even from a type=text/plain style sheet). */
    for (Py_ssize_t i = f->text_start; i + 7 <= f->text_end; i++) {
        if (S->s[i] == '@' && eq_n(LOW, S->s + i + 1, "import", 6)) {
            if (append_edit(S->edits, i, i + 7,
                            PyBytes_FromStringAndSize("@-consent-blocked-import", 24)) < 0) {
                return -1;
            }
            i += 6;
        }
    }
    return 0;
}

/* Add the judged tag's hosts to the unknown set, its allowed partners to the enabled set and
   its blocked ones (with their edits) to theirs; -1 with an exception set on failure. */
static int
report_found(Scan *S)
{
    Found *f = S->found;
    for (int i = 0; i < f->count; i++) {
        PyObject *u = PyUnicode_DecodeASCII((const char *)f->host[i], f->len[i], NULL);
        if (u == NULL || PySet_Add(S->unknown, u) < 0) {
            Py_XDECREF(u);
            S->failed = 1;
            return -1;
        }
        Py_DECREF(u);
    }
    for (int i = 0; i < f->npids; i++) {
        if (PySet_Add(S->enabled, f->pid[i]) < 0) {
            S->failed = 1;
            return -1;
        }
    }
    if (f->nblocked && report_edits(S) < 0) {
        S->failed = 1;
        return -1;
    }
    if ((f->doc_unknown != NULL && set_merge(S->unknown, f->doc_unknown) < 0)
        || (f->doc_enabled != NULL && set_merge(S->enabled, f->doc_enabled) < 0)) {
        S->failed = 1;
        return -1;
    }
    for (int i = 0; i < f->nowned; i++) {
        if (PySet_Add(S->enabled, f->owned[i]) < 0) {
            S->failed = 1;
            return -1;
        }
    }
    for (int i = 0; i < f->nact; i++) {
        const char *x = f->act_name[i];
        if (append_edit(S->edits, f->act[i][0], f->act[i][1],
                        PyBytes_FromStringAndSize(x ? x : "", x ? (Py_ssize_t)strlen(x) : 0)) < 0) {
            S->failed = 1;
            return -1;
        }
    }
    found_clear(f);
    return 0;
}

/* A blocked iframe or embed replaced by its placeholder (Tokenizer._html_start): buf[lt:stop]
   becomes head + size + tail; its unknown hosts and blocked partners are recorded, no partner
   is enabled (a placeholder decision has none). -1 with an exception set on failure. */
static int
report_placeholder(Scan *S, Py_ssize_t lt, Py_ssize_t stop)
{
    Found *f = S->found;
    for (int i = 0; i < f->count; i++) {
        PyObject *u = PyUnicode_DecodeASCII((const char *)f->host[i], f->len[i], NULL);
        if (u == NULL || PySet_Add(S->unknown, u) < 0) {
            Py_XDECREF(u);
            return -1;
        }
        Py_DECREF(u);
    }
    for (int i = 0; i < f->nblocked; i++) {
        if (PySet_Add(S->blocked, f->blocked[i]) < 0) {
            return -1;
        }
    }
    if (f->doc_unknown != NULL && set_merge(S->unknown, f->doc_unknown) < 0) {
        return -1;  /* a placeholder enables nothing, its documents' partners neither */
    }
    PyObject *head = PyTuple_GET_ITEM(f->parts, 0), *tail = PyTuple_GET_ITEM(f->parts, 1);
    Py_ssize_t hl = PyBytes_GET_SIZE(head), tl = PyBytes_GET_SIZE(tail);
    PyObject *data = PyBytes_FromStringAndSize(NULL, hl + f->size_len + tl);
    if (data == NULL) {
        return -1;
    }
    char *w = PyBytes_AS_STRING(data);
    memcpy(w, PyBytes_AS_STRING(head), (size_t)hl);
    memcpy(w + hl, f->size, (size_t)f->size_len);
    memcpy(w + hl + f->size_len, PyBytes_AS_STRING(tail), (size_t)tl);
    f->count = f->npids = f->nblocked = 0;
    f->parts = NULL;
    return append_edit(S->edits, lt, stop, data);
}

/* Where "</name" followed by [WS/>] starts at or after p (folded), or -1: _RAW_END[name]. */
static Py_ssize_t
find_end_tag(const Scan *S, Py_ssize_t p, const char *name)
{
    const unsigned char *s = S->s, *F = S->F;
    Py_ssize_t n = S->n, k = (Py_ssize_t)strlen(name);
    while (p < n) {
        const unsigned char *lt = memchr(s + p, '<', (size_t)(n - p));
        if (lt == NULL) {
            return -1;
        }
        Py_ssize_t i = lt - s;
        if (i + 2 + k < n && s[i + 1] == '/' && eq_fold(F, s + i + 2, k, name)
            && IS(s[i + 2 + k], C_NSTOP)) {
            return i;
        }
        p = i + 1;
    }
    return -1;
}

/* "<script" then [WS/>] at i (folded); slash: "</script". */
static int
script_tag_at(const Scan *S, Py_ssize_t i, int slash)
{
    Py_ssize_t k = i + 1 + slash;
    return k + 6 < S->n && (!slash || S->s[i + 1] == '/') && EQ_LIT(S->F, S->s + k, 6, "script")
           && IS(S->s[k + 6], C_NSTOP);
}

/* Script data from p with the escape states of _SCRIPT_END: where its "</script" starts, or
   -1 when the buffer ends first. */
static Py_ssize_t
script_end(const Scan *S, Py_ssize_t p)
{
    const unsigned char *s = S->s;
    Py_ssize_t n = S->n;
    int sub = 0;
    while (p < n) {
        if (sub == 0) {
            const unsigned char *lt = memchr(s + p, '<', (size_t)(n - p));
            if (lt == NULL) {
                return -1;
            }
            Py_ssize_t i = lt - s;
            if (i + 3 < n && s[i + 1] == '!' && s[i + 2] == '-' && s[i + 3] == '-') {
                sub = 1;
                p = i + 2;  /* "<!-->" ends at once */
            }
            else if (script_tag_at(S, i, 1)) {
                return i;
            }
            else {
                p = i + 1;
            }
            continue;
        }
        unsigned char c = s[p];
        if (c == '-' && p + 2 < n && s[p + 1] == '-' && s[p + 2] == '>') {
            sub = 0;
            p += 3;
        }
        else if (c == '<' && script_tag_at(S, p, 1)) {
            if (sub == 1) {
                return p;
            }
            sub = 1;
            p += 8;
        }
        else if (c == '<' && sub == 1 && script_tag_at(S, p, 0)) {
            sub = 2;
            p += 7;
        }
        else {
            p++;
        }
    }
    return -1;
}

/* A comment or bogus comment at pos ("<!", "<?", "</" + not a letter): its end, or -1. */
static Py_ssize_t
skip_decl(const Scan *S, Py_ssize_t pos)
{
    const unsigned char *s = S->s;
    Py_ssize_t n = S->n;
    if (s[pos + 1] == '!' && pos + 3 < n && s[pos + 2] == '-' && s[pos + 3] == '-') {
        if (n - pos < 6) {
            return -1;  /* Python waits for more (or ends the document) */
        }
        if (s[pos + 4] == '>') {
            return pos + 5;
        }
        if (s[pos + 4] == '-' && s[pos + 5] == '>') {
            return pos + 6;
        }
        for (Py_ssize_t i = pos + 4; i + 2 < n; i++) {  /* --!?> */
            if (s[i] == '-' && s[i + 1] == '-') {
                if (s[i + 2] == '>') {
                    return i + 3;
                }
                if (s[i + 2] == '!' && i + 3 < n && s[i + 3] == '>') {
                    return i + 4;
                }
            }
        }
        return -1;
    }
    /* <!-?\Z and </\Z are "short": Python waits; the caller checked pos + 1 < n. */
    if (s[pos + 1] == '!' && (pos + 2 == n || (pos + 3 == n && s[pos + 2] == '-'))) {
        return -1;
    }
    if (s[pos + 1] == '/' && pos + 2 >= n) {
        return -1;
    }
    const unsigned char *gt = memchr(s + pos + 1, '>', (size_t)(n - pos - 1));
    return gt == NULL ? -1 : (gt - s) + 1;
}

/* --- a flat inline <svg> (grammar._SVG_FLAT_RE) --------------------------------------------- */

/* _QUOTED_QUIET from p: (?:[WS]++(?:XMLNS|PLAIN_ATTR))*+[WS]*+ ; where it ends. */
static Py_ssize_t
svg_attrs(const Scan *S, Py_ssize_t p)
{
    const unsigned char *s = S->s, *F = S->F;
    Py_ssize_t n = S->n;
    for (;;) {
        Py_ssize_t q = p;
        while (q < n && IS(s[q], C_WS)) {
            q++;
        }
        if (q == p || q >= n) {
            break;
        }
        Py_ssize_t e = -1;
        /* xmlns(?::[a-z]++)?+ [WS]*+ = [WS]*+ ("[^"]*+"|'[^']*+') (?=[WS/>]) */
        if (q + 5 <= n && EQ_LIT(F, s + q, 5, "xmlns")) {
            Py_ssize_t t = q + 5;
            if (t + 1 < n && s[t] == ':' && F[s[t + 1]] >= 'a' && F[s[t + 1]] <= 'z') {
                t += 2;
                while (t < n && F[s[t]] >= 'a' && F[s[t]] <= 'z') {
                    t++;
                }
            }
            while (t < n && IS(s[t], C_WS)) {
                t++;
            }
            if (t < n && s[t] == '=') {
                t++;
                while (t < n && IS(s[t], C_WS)) {
                    t++;
                }
                if (t < n && (s[t] == '"' || s[t] == '\'')) {
                    const unsigned char *c = memchr(s + t + 1, s[t], (size_t)(n - t - 1));
                    if (c != NULL && (c - s) + 1 < n && IS(c[1], C_NSTOP)) {
                        e = (c - s) + 1;
                    }
                }
            }
        }
        if (e < 0) {
            /* (?:[^WS/>=d]|d(?!ata-consent[WS/>=]))[^WS/>=]*+ (?:[WS]*+=[WS]*+("q"|'q'))?+ */
            unsigned char c = s[q];
            if (c == '/' || c == '>' || c == '=') {
                break;
            }
            if (F[c] == 'd' && q + 12 < n && EQ_LIT(F, s + q + 1, 11, "ata-consent")
                && IS(s[q + 12], C_ASTOP)) {
                break;
            }
            Py_ssize_t r = q + 1;
            while (r < n && !IS(s[r], C_ASTOP)) {
                r++;
            }
            e = r;
            Py_ssize_t t = r;
            while (t < n && IS(s[t], C_WS)) {
                t++;
            }
            if (t < n && s[t] == '=') {
                t++;
                while (t < n && IS(s[t], C_WS)) {
                    t++;
                }
                if (t < n && (s[t] == '"' || s[t] == '\'')) {
                    Py_ssize_t v = quiet(s, n, t + 1, s[t] == '"' ? C_QDQ : C_QSQ);
                    if (v < n && s[v] == s[t]) {
                        e = v + 1;
                    }
                }
            }
        }
        p = e;
    }
    while (p < n && IS(s[p], C_WS)) {
        p++;
    }
    return p;
}

/* _SVG_NAME at p: (?!NOT_FLAT[WS/>])[a-z][^WS/>]*+ ; its end or -1. */
static Py_ssize_t
svg_name(const Scan *S, Py_ssize_t p)
{
    if (p >= S->n || S->F[S->s[p]] < 'a' || S->F[S->s[p]] > 'z') {
        return -1;
    }
    Py_ssize_t r = name_end(S->s, S->n, p);
    if (r >= S->n || in_list(S->F, &N_SVG_NOT_FLAT, S->s + p, r - p)) {
        return -1;  /* at the end of the buffer nothing after the name can match */
    }
    return r;
}

/* _SVG_LEAF at p ('<'): <NAME QUOTED_QUIET/> ; its end or -1. */
static Py_ssize_t
svg_leaf(const Scan *S, Py_ssize_t p)
{
    Py_ssize_t r = svg_name(S, p + 1);
    if (r < 0) {
        return -1;
    }
    Py_ssize_t q = svg_attrs(S, r);
    return q + 1 < S->n && S->s[q] == '/' && S->s[q + 1] == '>' ? q + 2 : -1;
}

/* (?:[^<]++|LEAF)*+ from p, then "</" + the name s[nm:nm+nl] (folded) + [WS]*+ ">"; the end
   or -1. */
static Py_ssize_t
svg_children(const Scan *S, Py_ssize_t p, Py_ssize_t nm, Py_ssize_t nl, int elements)
{
    const unsigned char *s = S->s, *F = S->F;
    Py_ssize_t n = S->n;
    for (;;) {
        if (p >= n) {
            return -1;
        }
        if (s[p] != '<') {
            const unsigned char *lt = memchr(s + p, '<', (size_t)(n - p));
            if (lt == NULL) {
                return -1;
            }
            p = lt - s;
        }
        Py_ssize_t e = svg_leaf(S, p);
        if (e < 0 && elements) {
            /* <(?P<n>NAME) QUOTED_QUIET > (?:[^<]++|LEAF)*+ </(?P=n)[WS]*+> */
            Py_ssize_t r = svg_name(S, p + 1);
            if (r >= 0) {
                Py_ssize_t q = svg_attrs(S, r);
                if (q < n && s[q] == '>') {
                    e = svg_children(S, q + 1, p + 1, r - (p + 1), 0);
                }
            }
        }
        if (e < 0) {
            break;
        }
        p = e;
    }
    if (!(p + 2 + nl < n && s[p + 1] == '/')) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < nl; i++) {
        if (F[s[p + 2 + i]] != F[s[nm + i]]) {
            return -1;
        }
    }
    Py_ssize_t t = p + 2 + nl;
    while (t < n && IS(s[t], C_WS)) {
        t++;
    }
    return t < n && s[t] == '>' ? t + 1 : -1;
}

/* _SVG_FLAT_RE at pos ("<svg"): a whole inline SVG that cannot fetch; its end or -1. */
static Py_ssize_t
svg_flat(const Scan *S, Py_ssize_t pos)
{
    Py_ssize_t p = svg_attrs(S, pos + 4);
    if (p >= S->n || S->s[p] != '>') {
        return -1;
    }
    return svg_children(S, p + 1, pos + 1, 3, 1);
}

static PyObject *
flat_svg_end(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*n:flat_svg_end", &view, &pos)) {
        return NULL;
    }
    Scan S = {.s = view.buf, .n = view.len, .F = LOW};
    Py_ssize_t end = -1;
    if (pos >= 0 && pos + 4 <= view.len && S.s[pos] == '<' && EQ_LIT(LOW, S.s + pos + 1, 3, "svg")) {
        end = svg_flat(&S, pos);
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(end);
}

static const TagRule *
rule_for(const Scan *S, const unsigned char *name, Py_ssize_t len)
{
    for (const TagRule *r = RULES; r->name; r++) {
        if ((unsigned char)r->name[0] == S->F[name[0]] && eq_fold(S->F, name, len, r->name)) {
            return r;
        }
    }
    return NULL;
}

/* Tokenizer._inject: injection i (0 head_end, 1 body_start, 2 body_end) at position at, unless
   already emitted: its bytes as the edit (at, at, bytes) when not empty (its partners are then
   enabled), and None in its place. -1 with an exception set on failure. */
static int
do_inject(Scan *S, int i, Py_ssize_t at)
{
    PyObject *data = PyList_GET_ITEM(S->inject, i);
    if (data == Py_None) {
        return 0;
    }
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "scan_end: injections must be bytes or None");
        return -1;
    }
    Py_INCREF(Py_None);
    PyList_SET_ITEM(S->inject, i, Py_None);  /* the list's reference to data is now ours */
    if (PyBytes_GET_SIZE(data) == 0) {
        Py_DECREF(data);
        return 0;
    }
    if (append_edit(S->edits, at, at, data) < 0) {  /* takes our reference */
        return -1;
    }
    PyObject *it = PyObject_GetIter(S->injected), *pid;
    if (it == NULL) {
        return -1;
    }
    while ((pid = PyIter_Next(it)) != NULL) {
        int r = PySet_Add(S->enabled, pid);
        Py_DECREF(pid);
        if (r < 0) {
            Py_DECREF(it);
            return -1;
        }
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

/* A judged tag: consume it (and its text) when nothing in it needs Python. lt: its '<'. */
static Py_ssize_t
native_tag(Scan *S, const TagRule *rule, Py_ssize_t lt, Py_ssize_t r)
{
    if (rule->text == T_BODY && S->inject == NULL) {
        return -1;  /* Python injects */
    }
    Py_ssize_t end = judge_tag(S, rule, r);
    if (end < 0) {
        return -1;
    }
    if (S->found->parts != NULL) {
        /* An iframe's content is dropped through its end tag (the _DROP state): not in this
           buffer, or that end tag not complete here, and Python waits. */
        if (rule->text == T_RAW) {
            Py_ssize_t e = find_end_tag(S, end, "iframe");
            end = e < 0 ? -1 : gram_body(S, e + 8, 0);
            if (end < 0) {
                return -1;
            }
        }
        if (report_placeholder(S, lt, end) < 0) {
            S->failed = 1;
            return -1;
        }
        return end;
    }
    if (rule->text == T_BODY) {
        /* Tokenizer._html_start: head_end before the tag, its edits, body_start after it. */
        S->seen_doc = 1;
        if (do_inject(S, 0, lt) < 0 || report_found(S) < 0 || do_inject(S, 1, end) < 0) {
            S->failed = 1;
            return -1;
        }
        return end;
    }
    if (rule->text == T_RAW) {
        end = find_end_tag(S, end, rule->name);
    }
    else if (rule->text == T_STYLE) {
        end = S->found->text_end;  /* the text was judged with the tag */
    }
    else if (rule->text == T_SCRIPT) {
        end = script_end(S, end);
    }
    else if (rule->text == T_DOC) {
        S->seen_doc = 1;
    }
    if (end < 0 || report_found(S) < 0) {
        return -1;
    }
    return end;
}

/* Whether s[a:b] holds "</" (a tag holding the end of the <noscript> guard gets its '<'
   respelled by Python: Tokenizer._careful_tag). */
static int
holds_end(const unsigned char *s, Py_ssize_t a, Py_ssize_t b)
{
    for (Py_ssize_t i = a; i + 1 < b; i++) {
        if (s[i] == '<' && s[i + 1] == '/') {
            return 1;
        }
    }
    return 0;
}

/* The content of a <noscript> in HTML content from p, as the tokenizer reads it: careful mode
   with the scripting browser's guard "noscript" and no foreign element (Tokenizer._careful_tag:
   start tags follow the HTML rules and are judged with the careful attribute kinds, end tags
   change nothing but </noscript, which ends the guard). Text, start tags with no effect after
   them (not a raw-text, script, style, noscript, plaintext, svg, math, select, html, head or
   body tag, nor one holding "</") and end tags other than </head and </body are read; anything else
   (comments, bogus comments, CDATA, a tag cut off) stops. The end of "</noscript ...>", or -1. */
static Py_ssize_t
noscript_run(Scan *S, Py_ssize_t p)
{
    const unsigned char *s = S->s, *F = S->F;
    Py_ssize_t n = S->n;
    for (;;) {
        const unsigned char *lt = p < n ? memchr(s + p, '<', (size_t)(n - p)) : NULL;
        if (lt == NULL) {
            return -1;
        }
        Py_ssize_t i = lt - s;
        if (i + 2 >= n) {
            return -1;
        }
        unsigned char c = F[s[i + 1]];
        if (c >= 'a' && c <= 'z') {
            Py_ssize_t r = name_end(s, n, i + 1);
            const unsigned char *nm = s + i + 1;
            Py_ssize_t len = r - (i + 1);
            if (r >= n || EQ_LIT(F, nm, len, "noscript") || EQ_LIT(F, nm, len, "plaintext")
                || EQ_LIT(F, nm, len, "svg") || EQ_LIT(F, nm, len, "math")
                || EQ_LIT(F, nm, len, "select")) {
                return -1;
            }
            const TagRule *rule = rule_for(S, nm, len);
            if (rule != NULL && rule->text != T_NONE) {
                return -1;  /* a text state, a guard or an injection follows */
            }
            S->tname = nm;
            S->tlen = len;
            Py_ssize_t e = judge_tag(S, rule != NULL ? rule : &GENERIC, r);
            if (e < 0 || holds_end(s, i + 1, e - 1) || report_found(S) < 0) {
                return -1;
            }
            p = e;
            continue;
        }
        if (c == '/') {
            unsigned char d = F[s[i + 2]];
            if (!(d >= 'a' && d <= 'z')) {
                return -1;
            }
            Py_ssize_t r = name_end(s, n, i + 2);
            if (r >= n) {
                return -1;
            }
            Py_ssize_t e = gram_body(S, r, 0), len = r - (i + 2);
            if (e < 0 || holds_end(s, i + 1, e - 1) || EQ_LIT(F, s + i + 2, len, "head")
                || EQ_LIT(F, s + i + 2, len, "body")) {
                return -1;
            }
            if (EQ_LIT(F, s + i + 2, len, "noscript")) {
                return e;
            }
            p = e;
            continue;
        }
        if (c == '!' || c == '?') {
            return -1;
        }
        p = i + 1;  /* a '<' that starts no tag is text */
    }
}

/* Add every item of the set src to the set dst. */
static int
set_merge(PyObject *dst, PyObject *src)
{
    Py_ssize_t k = 0;
    PyObject *key;
    Py_hash_t hash;
    while (_PySet_NextEntry(src, &k, &key, &hash)) {
        if (PySet_Add(dst, key) < 0) {
            return -1;
        }
    }
    return 0;
}

/* --- an inline <svg> in careful mode (foreign.OpenElements, Tokenizer._careful_tag) ------ */

#define SVG_DEPTH 32
enum { K_PLAIN, K_HTML_IP };  /* grammar._PLAIN, _HTML_IP (no MathML here: its root stops) */

/* One entry of the stack of open elements: namespace 'h' or 's', the name s[at:at+len]. */
typedef struct {
    Py_ssize_t at, len;
    char ns, kind;
} Open;

static const char *const SWITCHERS[] = {  /* grammar._SWITCHERS */
    "iframe", "noembed", "noframes", "noscript", "plaintext", "script", "style", "textarea",
    "title", "xmp", NULL};
static const char *const VOID[] = {  /* grammar._VOID */
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "image", "img",
    "input", "keygen", "link", "meta", "param", "source", "track", "wbr", NULL};
static const char *const BREAKOUT[] = {  /* grammar._BREAKOUT */
    "b", "big", "blockquote", "body", "br", "center", "code", "dd", "div", "dl", "dt", "em",
    "embed", "h1", "h2", "h3", "h4", "h5", "h6", "head", "hr", "i", "img", "li", "listing",
    "menu", "meta", "nobr", "ol", "p", "pre", "ruby", "s", "small", "span", "strong", "strike",
    "sub", "sup", "table", "tt", "u", "ul", "var", NULL};
static const char *const SVG_HTML_IP[] = {"desc", "foreignobject", "title", NULL};

static int
in_words(const unsigned char *F, const char *const *words, const unsigned char *s, Py_ssize_t len)
{
    for (; *words; words++) {
        if (eq_fold(F, s, len, *words)) {
            return 1;
        }
    }
    return 0;
}

/* Whether two names in the buffer are equal, folded. */
static int
same_name(const Scan *S, const Open *o, const unsigned char *nm, Py_ssize_t len)
{
    if (o->len != len) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        if (S->F[S->s[o->at + i]] != S->F[nm[i]]) {
            return 0;
        }
    }
    return 1;
}

/* attrs._self_closing: the tag whose attributes start at r and which ends at end (after '>')
   ends with "/>" where the '/' is not part of a value; -1 when its attributes cannot be read
   here. */
static int
self_closing(const Scan *S, Py_ssize_t r, Py_ssize_t end)
{
    if (end - 2 < r || S->s[end - 2] != '/') {
        return 0;
    }
    Attr at[MAX_ATTRS];
    int count;
    if (read_attrs(S, r, at, &count) != end) {
        return -1;
    }
    Py_ssize_t last = r;
    if (count > 0) {
        const Attr *a = &at[count - 1];
        last = a->vs < 0 ? a->ne
               : (S->s[a->vs - 1] == '"' || S->s[a->vs - 1] == '\'') ? a->ve + 1 : a->ve;
    }
    return last < end - 1;
}

/* OpenElements.html_end: an HTML end tag with st[top] as the current node pops the HTML element
   of that name unless an integration point comes first. */
static void
svg_html_end(const Scan *S, const Open *st, int *depth, int top, const unsigned char *nm,
             Py_ssize_t len)
{
    for (int k = top; k >= 0; k--) {
        if (st[k].ns == 'h' && same_name(S, &st[k], nm, len)) {
            *depth = k;
            return;
        }
        if (st[k].kind != K_PLAIN) {
            return;
        }
    }
}

/* The content of an <svg> start tag that does not close itself (its name at root, 3 bytes),
   from p, as Tokenizer._careful_tag reads it: the stack of open elements from the <svg> up,
   start tags by the dispatcher (HTML rules in an HTML element or at an SVG integration point:
   foreignObject, desc, title; else foreign), end tags by OpenElements.end_tag, every start tag
   judged with the careful attribute kinds. An SVG <title> is also a guard (grammar._SWITCHERS:
   its raw-text reading), which its end tag ends. Text, those tags and "</>" are read; anything
   with another effect (a comment, bogus comment or CDATA, a breakout or <font>, a raw-text,
   script or style element, a nested <svg>/<math> in HTML rules, <html>/<head>/<body>, a
   </br> or </p> in foreign content, a tag holding "</", a placeholder, a tag cut off, deeper
   than SVG_DEPTH) stops. The end of the end tag that pops the <svg> (no guard left), or -1. */
static Py_ssize_t
svg_run(Scan *S, Py_ssize_t root, Py_ssize_t p)
{
    const unsigned char *s = S->s, *F = S->F;
    Py_ssize_t n = S->n;
    Open st[SVG_DEPTH];
    int depth = 1, guards = 0;
    st[0] = (Open){root, 3, 's', K_PLAIN};
    for (;;) {
        const unsigned char *lt = p < n ? memchr(s + p, '<', (size_t)(n - p)) : NULL;
        if (lt == NULL) {
            return -1;
        }
        Py_ssize_t i = lt - s;
        if (i + 2 >= n) {
            return -1;  /* short, or a tag cut off */
        }
        unsigned char c = F[s[i + 1]];
        if (c == '/') {
            unsigned char d = F[s[i + 2]];
            if (d == '>') {
                p = i + 3;  /* "</>" */
                continue;
            }
            if (!(d >= 'a' && d <= 'z')) {
                return -1;  /* a bogus comment */
            }
            Py_ssize_t r = name_end(s, n, i + 2);
            if (r >= n) {
                return -1;
            }
            Py_ssize_t e = gram_body(S, r, 0), len = r - (i + 2);
            const unsigned char *nm = s + i + 2;
            if (e < 0 || holds_end(s, i + 1, e - 1)) {
                return -1;
            }
            /* OpenElements.end_tag */
            if (st[depth - 1].ns != 'h') {
                if (EQ_LIT(F, nm, len, "br") || EQ_LIT(F, nm, len, "p")) {
                    return -1;  /* pops to HTML */
                }
                for (int k = depth - 1; k >= 0; k--) {
                    if (same_name(S, &st[k], nm, len)) {
                        depth = k;
                        break;
                    }
                    if (st[k].ns == 'h') {
                        svg_html_end(S, st, &depth, k, nm, len);
                        break;
                    }
                }
            }
            else {
                svg_html_end(S, st, &depth, depth - 1, nm, len);
            }
            /* Tokenizer._end_tag: the end tag of a guarded element ends its guard. */
            if (guards > 0 && EQ_LIT(F, nm, len, "title")) {
                guards--;
            }
            p = e;
            if (depth == 0) {
                return guards ? -1 : e;
            }
            continue;
        }
        if (!(c >= 'a' && c <= 'z')) {
            if (c == '!' || c == '?') {
                return -1;
            }
            p = i + 1;  /* a '<' that starts no tag is text */
            continue;
        }
        Py_ssize_t r = name_end(s, n, i + 1);
        if (r >= n) {
            return -1;
        }
        const unsigned char *nm = s + i + 1;
        Py_ssize_t len = r - (i + 1);
        const Open *top = &st[depth - 1];
        /* OpenElements.html_rules: an HTML element or an SVG HTML integration point */
        int html = top->ns == 'h' || top->kind == K_HTML_IP;
        int title = 0;
        if (html) {
            /* Tokenizer._html_start and _after_start_tag in careful mode: a text state, a
               guard, foreign content or the document's start are left to Python. */
            if (in_words(F, SWITCHERS, nm, len) || EQ_LIT(F, nm, len, "svg")
                || EQ_LIT(F, nm, len, "math") || EQ_LIT(F, nm, len, "html")
                || EQ_LIT(F, nm, len, "head") || EQ_LIT(F, nm, len, "body")) {
                return -1;
            }
        }
        else {
            /* A breakout pops to HTML; <font> may; a foreign raw-text element is a guard
               (only <title>'s is followed here) and <style> is read as a style sheet. */
            title = EQ_LIT(F, nm, len, "title");
            if (in_words(F, BREAKOUT, nm, len) || EQ_LIT(F, nm, len, "font")
                || (!title && in_words(F, SWITCHERS, nm, len))) {
                return -1;
            }
        }
        const TagRule *rule = rule_for(S, nm, len);
        if (rule != NULL && rule->text != T_NONE && !title) {
            return -1;
        }
        S->tname = nm;
        S->tlen = len;
        /* (title's rule has no URL attribute: judged like any other tag) */
        Py_ssize_t e = judge_tag(S, rule != NULL && !title ? rule : &GENERIC, r);
        if (e < 0 || holds_end(s, i + 1, e - 1) || report_found(S) < 0) {
            return -1;
        }
        if (html) {
            if (!in_words(F, VOID, nm, len)) {
                if (depth >= SVG_DEPTH) {
                    return -1;
                }
                st[depth++] = (Open){i + 1, len, 'h', K_PLAIN};
            }
        }
        else {
            int closed = self_closing(S, r, e);
            if (closed < 0) {
                return -1;
            }
            if (!closed) {
                if (depth >= SVG_DEPTH) {
                    return -1;
                }
                st[depth++] = (Open){i + 1, len, 's',
                                     in_words(F, SVG_HTML_IP, nm, len) ? K_HTML_IP : K_PLAIN};
                guards += title;
            }
        }
        p = e;
    }
}

/* A <noscript> (svg: an <svg> that is not flat) start tag whose name ends at r: judged as any
   tag, then its content read by noscript_run (svg_run); what they report is kept only when the
   whole element is read (else Python reads it from its start tag). The end after
   "</noscript ...>" (the end tag that closes the <svg>), or -1. */
static Py_ssize_t
content_tag(Scan *S, Py_ssize_t r, int svg)
{
    Py_ssize_t end = judge_tag(S, &GENERIC, r);
    if (end < 0) {
        return -1;
    }
    if (svg) {
        int closed = self_closing(S, r, end);
        if (closed < 0) {
            return -1;
        }
        if (closed) {
            return report_found(S) < 0 ? -1 : end;  /* <svg/>: no foreign content */
        }
    }
    PyObject *sets[3] = {S->unknown, S->enabled, S->blocked}, *tmp[3] = {NULL, NULL, NULL};
    Py_ssize_t nedits = S->edits != NULL ? PyList_GET_SIZE(S->edits) : 0;
    for (int k = 0; k < 3; k++) {
        if (sets[k] != NULL && (tmp[k] = PySet_New(NULL)) == NULL) {
            S->failed = 1;
            goto done;
        }
    }
    S->unknown = tmp[0];
    S->enabled = tmp[1];
    S->blocked = tmp[2];
    if (report_found(S) < 0) {
        end = -1;
    }
    else {
        S->careful = 1;
        end = svg ? svg_run(S, r - 3, end) : noscript_run(S, end);
        S->careful = 0;
    }
    S->unknown = sets[0];
    S->enabled = sets[1];
    S->blocked = sets[2];
    if (S->failed) {
        end = -1;
    }
    else if (end >= 0) {
        for (int k = 0; k < 3; k++) {
            if (tmp[k] != NULL && set_merge(sets[k], tmp[k]) < 0) {
                S->failed = 1;
                end = -1;
                break;
            }
        }
    }
    else if (S->edits != NULL && PyList_SetSlice(S->edits, nedits, PY_SSIZE_T_MAX, NULL) < 0) {
        S->failed = 1;
    }
done:
    for (int k = 0; k < 3; k++) {
        Py_XDECREF(tmp[k]);
    }
    return S->failed ? -1 : end;
}

/* One '<' at pos: the end of what the skip consumes there, or -1 (the skip stops). */
static Py_ssize_t
skip_lt(Scan *S, Py_ssize_t pos)
{
    const unsigned char *s = S->s, *F = S->F;
    Py_ssize_t n = S->n;
    if (pos + 1 >= n) {
        return -1;  /* bare '<' at the end */
    }
    unsigned char c = F[s[pos + 1]];
    if (c >= 'a' && c <= 'z') {
        Py_ssize_t r = name_end(s, n, pos + 1);
        const unsigned char *name = s + pos + 1;
        Py_ssize_t len = r - (pos + 1);
        if (r >= n) {
            return -1;  /* cut off: no branch can reach a '>' */
        }
        if (!in_list(F, &N_NAMES, name, len)) {
            Py_ssize_t e = gram_body(S, r, 1);
            return e >= 0 || S->hosts == NULL ? e : native_tag(S, &GENERIC, pos, r);
        }
        if (in_list(F, &N_PLAIN, name, len)) {
            Py_ssize_t e = quiet_body(S, r);
            if (e >= 0 || S->hosts == NULL) {
                return e;
            }
        }
        if (S->hosts != NULL && EQ_LIT(F, name, len, "svg")) {
            Py_ssize_t e = svg_flat(S, pos);
            return e >= 0 || S->failed ? e : content_tag(S, r, 1);
        }
        if (S->hosts != NULL && EQ_LIT(F, name, len, "noscript")) {
            return content_tag(S, r, 0);
        }
        if (S->hosts != NULL) {
            const TagRule *rule = rule_for(S, name, len);
            if (rule != NULL) {
                return native_tag(S, rule, pos, r);
            }
        }
        return -1;
    }
    if (c == '/') {
        if (pos + 2 >= n) {
            return -1;
        }
        unsigned char d = F[s[pos + 2]];
        if (d == '>') {
            return pos + 1;  /* "</>": the '<' is text */
        }
        if (d >= 'a' && d <= 'z') {
            Py_ssize_t r = name_end(s, n, pos + 2);
            if (r >= n) {
                return -1;
            }
            if (in_list(F, &N_END, s + pos + 2, r - (pos + 2))) {
                if (S->inject == NULL || S->hosts == NULL) {
                    return -1;
                }
                /* Tokenizer._end_tag in HTML content (no guard, no foreign element): </head
                   injects head_end, </body all three still due, </noscript nothing. */
                Py_ssize_t e = gram_body(S, r, 0);
                if (e >= 0 && F[s[pos + 2]] != 'n'
                    && (do_inject(S, 0, pos) < 0
                        || (F[s[pos + 2]] == 'b' && (do_inject(S, 1, pos) < 0
                                                     || do_inject(S, 2, pos) < 0)))) {
                    S->failed = 1;
                    return -1;
                }
                return e;
            }
            return gram_body(S, r, 0);
        }
        return S->hosts != NULL ? skip_decl(S, pos) : -1;  /* bogus comment "</ x>" etc. */
    }
    if (c == '!' || c == '?') {
        return S->hosts != NULL ? skip_decl(S, pos) : -1;
    }
    return pos + 1;  /* '<' followed by anything else is text */
}

/* The skip from pos: text and tags, as long as skip_lt consumes them. The most common tags
   are read here without a call: a start tag whose name is in no list (N_NAMES) with a quiet
   body, and an end tag whose name is not in N_END; every other '<' goes to skip_lt, which reads
   it from the start (the same answer for these two, so which reads them changes nothing).
   Text runs are mostly short (a newline between two tags): the next two bytes are looked at
   before memchr. */
static Py_ssize_t
skip_run(Scan *S, Py_ssize_t pos)
{
    const unsigned char *s = S->s, *F = S->F;
    Py_ssize_t n = S->n;
    while (pos < n) {
        if (s[pos] != '<') {
            if (pos + 1 < n && s[pos + 1] == '<') {
                pos += 1;
            }
            else if (pos + 2 < n && s[pos + 2] == '<') {
                pos += 2;
            }
            else {
                pos = find_byte(s, n, pos + 3, '<');
                if (pos >= n) {
                    return n;
                }
            }
        }
        if (pos + 2 < n) {
            unsigned char c = F[s[pos + 1]];
            if ((unsigned char)(c - 'a') < 26) {
                Py_ssize_t r = name_end(s, n, pos + 2);
                if (r < n && !may_be_in(&N_NAMES, c, r - (pos + 1))) {
                    if (s[r] == '>') {
                        pos = r + 1;
                        continue;
                    }
                    Py_ssize_t e = parse_attrs(S, r, NULL, NULL, 1);
                    if (e >= 0) {
                        pos = e;
                        continue;
                    }
                }
            }
            else if (c == '/') {
                unsigned char d = F[s[pos + 2]];
                if ((unsigned char)(d - 'a') < 26) {
                    Py_ssize_t r = name_end(s, n, pos + 3);
                    if (r < n && !may_be_in(&N_END, d, r - (pos + 2))) {
                        if (s[r] == '>') {
                            pos = r + 1;
                            continue;
                        }
                        Py_ssize_t e = parse_attrs(S, r, NULL, NULL, 0);
                        if (e >= 0) {
                            pos = e;
                            continue;
                        }
                    }
                }
            }
        }
        Py_ssize_t e = skip_lt(S, pos);
        if (e < 0) {
            return pos;
        }
        pos = e;
    }
    return pos;
}

static Py_ssize_t
clamp(Py_ssize_t pos, Py_ssize_t n)
{
    return pos < 0 ? 0 : pos > n ? n : pos;
}

static PyObject *
skip_end(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*n:skip_end", &view, &pos)) {
        return NULL;
    }
    Scan S = {.s = view.buf, .n = view.len, .F = ID};
    Py_ssize_t end = skip_run(&S, clamp(pos, view.len));
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(end);
}

/* The arguments of a METH_FASTCALL function that PyArg_ParseTuple would read with "y*" then
   "n": a contiguous buffer (str refused, as "y*" does) and an index. The tuple parser cost
   ~4.5 k instructions per scan_end call (13 arguments), as much as 30 tags of the scan. */
static int
buffer_and_index(const char *fname, PyObject *const *args, Py_buffer *view, Py_ssize_t *pos)
{
    if (PyUnicode_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "%s() argument 1 must be a bytes-like object, not str",
                     fname);
        return -1;
    }
    if (PyObject_GetBuffer(args[0], view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (!PyBuffer_IsContiguous(view, 'C')) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s() argument 1 must be a contiguous buffer", fname);
        return -1;
    }
    *pos = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    if (*pos == -1 && PyErr_Occurred()) {
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* An argument that "O!" with PySet_Type would accept (a set or a subclass). */
static int
set_arg(const char *fname, PyObject *o, int i)
{
    if (!PyObject_TypeCheck(o, &PySet_Type)) {
        PyErr_Format(PyExc_TypeError, "%s() argument %d must be set, not %.50s", fname, i,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    return 0;
}

static PyObject *
scan_end(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t pos;
    PyObject *table, *unknown, *allowed, *enabled, *blocked = NULL, *edits = Py_None;
    PyObject *inject = Py_None, *injected = NULL, *placeholders = Py_None;
    (void)self;
    PyObject *purposes = Py_None;
    int documents = 0;
    /* As PyArg_ParseTuple(args, "y*nOO!OO!|O!OOOOOp:scan_end", ...) read them. */
    if (nargs < 6 || nargs > 13) {
        PyErr_Format(PyExc_TypeError, "scan_end() takes from 6 to 13 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (set_arg("scan_end", args[3], 4) < 0 || set_arg("scan_end", args[5], 6) < 0
        || (nargs > 6 && set_arg("scan_end", args[6], 7) < 0)) {
        return NULL;
    }
    if (nargs > 12) {
        documents = PyObject_IsTrue(args[12]);
        if (documents < 0) {
            return NULL;
        }
    }
    if (buffer_and_index("scan_end", args, &view, &pos) < 0) {
        return NULL;
    }
    table = args[2];
    unknown = args[3];
    allowed = args[4];
    enabled = args[5];
    if (nargs > 6) blocked = args[6];
    if (nargs > 7) edits = args[7];
    if (nargs > 8) inject = args[8];
    if (nargs > 9) injected = args[9];
    if (nargs > 10) placeholders = args[10];
    if (nargs > 11) purposes = args[11];
    if (purposes != Py_None && !PyAnySet_Check(purposes)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "scan_end: purposes must be a set, a frozenset or None");
        return NULL;
    }
    if (placeholders != Py_None && (!PyDict_Check(placeholders) || edits == Py_None)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "scan_end: placeholders must be a dict (with edits) or None");
        return NULL;
    }
    if (inject != Py_None && (!PyList_Check(inject) || PyList_GET_SIZE(inject) != 3
                              || edits == Py_None || injected == NULL)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "scan_end: inject must be a list of 3 (with edits and "
                        "the injected partners) or None");
        return NULL;
    }
    if (edits != Py_None && (!PyList_Check(edits) || blocked == NULL)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "scan_end: edits must be a list (with a blocked set) or None");
        return NULL;
    }
    if (allowed != Py_None && !PyAnySet_Check(allowed)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "scan_end: allowed must be a set, a frozenset or None");
        return NULL;
    }
    const HostTable *hosts = NULL;
    if (table != Py_None) {
        hosts = PyCapsule_GetPointer(table, "middleware._speedups.hosts");
        if (hosts == NULL) {
            PyBuffer_Release(&view);
            return NULL;
        }
    }
    Found found;
    found.count = found.npids = found.nblocked = found.nact = found.nowned = found.ncollect = 0;
    found.parts = NULL;
    found.doc_unknown = found.doc_enabled = found.doc_blocked = NULL;
    Scan S = {.s = view.buf, .n = view.len, .F = LOW, .hosts = hosts, .unknown = unknown,
              .allowed = allowed == Py_None ? NULL : allowed, .enabled = enabled,
              .blocked = blocked, .edits = edits == Py_None ? NULL : edits,
              .inject = inject == Py_None ? NULL : inject, .injected = injected,
              .placeholders = placeholders == Py_None ? NULL : placeholders,
              .purposes = purposes == Py_None ? NULL : purposes, .collect = 0,
              .documents = documents, .found = &found, .seen_doc = 0, .failed = 0};
    Py_ssize_t end = skip_run(&S, clamp(pos, view.len));
    found_clear(&found);
    PyBuffer_Release(&view);
    return S.failed ? NULL : PyLong_FromSsize_t(S.seen_doc ? ~end : end);
}

/* splice(buf, edits, stop): the tokenizer's output in one bytes object, sized once.
   Each edit (a, b, data) copies buf[cur:a] (nothing when a <= cur), then data, and sets cur = b;
   at the end buf[cur:stop] (cur starts at 0; indexes are clamped to [0, len(buf)], as slices
   of a memoryview would be). The same as tokenizer._splice, which joins those slices. */
static int
edit_at(PyObject *item, Py_ssize_t n, Py_ssize_t *a, Py_ssize_t *b, PyObject **data)
{
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 3
        || !PyLong_CheckExact(PyTuple_GET_ITEM(item, 0))
        || !PyLong_CheckExact(PyTuple_GET_ITEM(item, 1))
        || !PyBytes_Check(PyTuple_GET_ITEM(item, 2))) {
        PyErr_SetString(PyExc_TypeError, "splice: edits must be (int, int, bytes) tuples");
        return -1;
    }
    *a = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 0));
    *b = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 1));
    if ((*a == -1 || *b == -1) && PyErr_Occurred()) {
        return -1;
    }
    *a = clamp(*a, n);
    *b = clamp(*b, n);
    *data = PyTuple_GET_ITEM(item, 2);
    return 0;
}

/* The last large output of splice, kept for the next one: a fresh block above glibc's mmap or
   trim threshold comes back from the kernel as new pages, and faulting 1 MB in cost more than
   the copy into it (0.7 ms on the 1 MB page). Reused only while nothing else holds it
   (refcount 1: the caller, the memo, the server have let it go), resized to the exact length,
   so it is never seen to change. */
static PyObject *spare = NULL;
#define SPARE_MIN ((Py_ssize_t)256 * 1024)
#define SPARE_MAX ((Py_ssize_t)64 * 1024 * 1024)

static PyObject *
output_bytes(Py_ssize_t total)
{
    if (total < SPARE_MIN || total > SPARE_MAX) {
        return PyBytes_FromStringAndSize(NULL, total);
    }
    if (spare != NULL && Py_REFCNT(spare) == 1) {
        PyObject *res = spare;
        spare = NULL;
        if (_PyBytes_Resize(&res, total) < 0) {  /* (res freed and NULL on failure) */
            return NULL;
        }
        /* _PyBytes_Resize leaves the hash when the size is unchanged; the bytes are not. */
_Pragma("GCC diagnostic push")
_Pragma("GCC diagnostic ignored \"-Wdeprecated-declarations\"")
        ((PyBytesObject *)res)->ob_shash = -1;
_Pragma("GCC diagnostic pop")
        spare = res;
        Py_INCREF(res);
        return res;
    }
    PyObject *res = PyBytes_FromStringAndSize(NULL, total);
    if (res != NULL) {
        Py_XSETREF(spare, Py_NewRef(res));
    }
    return res;
}

static PyObject *
splice(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    PyObject *edits;
    Py_ssize_t stop;
    (void)self;
    /* As PyArg_ParseTuple(args, "y*O!n:splice", ...) read them (see buffer_and_index). */
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "splice() takes exactly 3 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!PyObject_TypeCheck(args[1], &PyList_Type)) {
        PyErr_Format(PyExc_TypeError, "splice() argument 2 must be list, not %.50s",
                     Py_TYPE(args[1])->tp_name);
        return NULL;
    }
    edits = args[1];
    PyObject *const both[2] = {args[0], args[2]};
    if (buffer_and_index("splice", both, &view, &stop) < 0) {
        return NULL;
    }
    const char *s = view.buf;
    Py_ssize_t n = view.len, cur = 0, total = 0, a, b;
    Py_ssize_t count = PyList_GET_SIZE(edits);
    PyObject *data, *res = NULL;
    stop = clamp(stop, n);
    /* No Python code runs below (exact ints and tuples, bytes): the list cannot change. */
    for (Py_ssize_t i = 0; i < count; i++) {
        if (edit_at(PyList_GET_ITEM(edits, i), n, &a, &b, &data) < 0) {
            goto done;
        }
        /* each term is at most n or a bytes object's size: no overflow before the check */
        total += (a > cur ? a - cur : 0) + PyBytes_GET_SIZE(data);
        if (total < 0 || total > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            goto done;
        }
        cur = b;
    }
    total += stop > cur ? stop - cur : 0;
    res = output_bytes(total);
    if (res == NULL) {
        goto done;
    }
    char *w = PyBytes_AS_STRING(res), *end = w + total;
    cur = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        (void)edit_at(PyList_GET_ITEM(edits, i), n, &a, &b, &data);  /* checked above */
        Py_ssize_t len = PyBytes_GET_SIZE(data);
        if (a > cur) {
            memcpy(w, s + cur, (size_t)(a - cur));
            w += a - cur;
        }
        memcpy(w, PyBytes_AS_STRING(data), (size_t)len);
        w += len;
        cur = b;
    }
    if (stop > cur) {
        memcpy(w, s + cur, (size_t)(stop - cur));
        w += stop - cur;
    }
    assert(w == end);
    (void)end;
done:
    PyBuffer_Release(&view);
    return res;
}

static PyObject *
name_tuple(const char *const *list)
{
    Py_ssize_t k = 0;
    while (list[k]) {
        k++;
    }
    PyObject *t = PyTuple_New(k);
    if (t == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *u = PyUnicode_FromString(list[i]);
        if (u == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, u);
    }
    return t;
}

/* RULES as Python sees them: ((tag, url attributes, is a document tag, text kind), ...). */
static PyObject *
rules_tuple(void)
{
    Py_ssize_t k = 0;
    while (RULES[k].name) {
        k++;
    }
    PyObject *t = PyTuple_New(k);
    if (t == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < k; i++) {
        int k = RULES[i].text;
        const char *text = k == T_RAW ? "raw" : k == T_SCRIPT ? "script" : k == T_DOC ? "doc"
                           : k == T_STYLE ? "style" : k == T_BODY ? "body" : "";
        PyObject *urls = name_tuple(RULES[i].urls);
        PyObject *row = urls == NULL ? NULL : Py_BuildValue("(sNOs)", RULES[i].name, urls,
                                                            RULES[i].doc ? Py_True : Py_False, text);
        if (row == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, row);
    }
    return t;
}

/* ---- start_kind: gate/start.py's decision on a raw http.response.start header list ----
 * The common answers (one lower-case Content-Type without a comma starting text/html or
 * application/json; every name lower-case) are decided here with no allocation; anything
 * else (no or several Content-Types, other types, odd objects) is handed to the Python
 * reference, so the two cannot disagree on the rare inputs. */
static PyObject *start_html_pairs;  /* (html without Set-Cookie, html with) */
static PyObject *start_other_pairs; /* (other without, other with) */
static PyObject *start_fallback;    /* start.start_kind_py */

static PyObject *
start_setup(PyObject *self, PyObject *args)
{
    PyObject *html, *other, *fallback;
    if (!PyArg_ParseTuple(args, "O!O!O:start_setup", &PyTuple_Type, &html, &PyTuple_Type, &other,
                          &fallback)) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(html) != 2 || PyTuple_GET_SIZE(other) != 2 || !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_ValueError, "start_setup: two (without, with) pairs and a callable");
        return NULL;
    }
    Py_INCREF(html);
    Py_INCREF(other);
    Py_INCREF(fallback);
    Py_XSETREF(start_html_pairs, html);
    Py_XSETREF(start_other_pairs, other);
    Py_XSETREF(start_fallback, fallback);
    Py_RETURN_NONE;
}

/* bytes.islower(): some a-z and no A-Z. */
static int
ascii_islower(const unsigned char *s, Py_ssize_t n)
{
    int cased = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] >= 'A' && s[i] <= 'Z') {
            return 0;
        }
        cased |= s[i] >= 'a' && s[i] <= 'z';
    }
    return cased;
}

/* headers.FETCHING_HEADERS: names whose value may make a browser fetch (gate/start.py). */
static int
fetching_name(const char *k, Py_ssize_t kn)
{
    switch (kn) {
    case 4: return memcmp(k, "link", 4) == 0;
    case 7: return memcmp(k, "refresh", 7) == 0;
    case 9: return memcmp(k, "report-to", 9) == 0;
    case 17: return memcmp(k, "speculation-rules", 17) == 0;
    case 19: return memcmp(k, "reporting-endpoints", 19) == 0;
    case 23: return memcmp(k, "content-security-policy", 23) == 0;
    case 35: return memcmp(k, "content-security-policy-report-only", 35) == 0;
    default: return 0;
    }
}

static PyObject *
start_kind(PyObject *self, PyObject *headers)
{
    if (start_fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "start_kind: start_setup was not called");
        return NULL;
    }
    PyObject **items;
    Py_ssize_t n;
    if (PyList_CheckExact(headers)) {
        items = PySequence_Fast_ITEMS(headers);
        n = PyList_GET_SIZE(headers);
    } else if (PyTuple_CheckExact(headers)) {
        items = PySequence_Fast_ITEMS(headers);
        n = PyTuple_GET_SIZE(headers);
    } else {
        return PyObject_CallOneArg(start_fallback, headers);
    }
    PyObject *content_type = NULL;
    int several = 0, sets_cookie = 0;
    /* Items are borrowed from the list; nothing below runs Python code, so it cannot change. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i];
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2
            || !PyBytes_CheckExact(PyTuple_GET_ITEM(item, 0))
            || !PyBytes_CheckExact(PyTuple_GET_ITEM(item, 1))) {
            return PyObject_CallOneArg(start_fallback, headers);
        }
        PyObject *key = PyTuple_GET_ITEM(item, 0);
        const char *k = PyBytes_AS_STRING(key);
        Py_ssize_t kn = PyBytes_GET_SIZE(key);
        if (kn == 12 && memcmp(k, "content-type", 12) == 0) {
            several = content_type != NULL;
            content_type = PyTuple_GET_ITEM(item, 1);
        } else if (kn == 10 && memcmp(k, "set-cookie", 10) == 0) {
            sets_cookie = 1;
        } else if (kn == 22 && memcmp(k, "x-content-type-options", 22) == 0) {
            /* nosniff only matters to the types handed to Python, which reads it itself */
        } else if (fetching_name(k, kn)) {
            /* Link, Refresh, ...: start_kind_py answers FETCHING_PASS for a passing body */
            return PyObject_CallOneArg(start_fallback, headers);
        } else if (!ascii_islower((const unsigned char *)k, kn)) {
            Py_RETURN_NONE;
        }
    }
    if (content_type != NULL && !several) {
        const char *v = PyBytes_AS_STRING(content_type);
        Py_ssize_t vn = PyBytes_GET_SIZE(content_type);
        if (memchr(v, ',', (size_t)vn) == NULL) {
            PyObject *pairs = NULL;
            if (vn >= 9 && memcmp(v, "text/html", 9) == 0) {
                pairs = start_html_pairs;
            } else if (vn >= 16 && memcmp(v, "application/json", 16) == 0) {
                pairs = start_other_pairs;
            }
            if (pairs != NULL) {
                PyObject *r = PyTuple_GET_ITEM(pairs, sets_cookie);
                Py_INCREF(r);
                return r;
            }
        }
    }
    return PyObject_CallOneArg(start_fallback, headers);
}

/* ---- the entry's request headers: gate/request.py's app_headers ----
 * The headers the site's app is given: the same list when it has no Accept-Encoding, else a
 * new list of the same items without any; None when a scan-token header is among them (the
 * caller checks the token in Python) or the browser asks for a style sheet (the first
 * Sec-Fetch-Dest is "style", or with none the first Accept begins with "text/css": the
 * caller reads the answer as CSS). Anything but an exact list or tuple of exact
 * (bytes, bytes) tuples is handed to the Python reference (for those two names, a value
 * that is not exact bytes too). Names are compared exactly (ASGI servers send them
 * lower-case; Python compares them exactly too). */
static PyObject *headers_drop;     /* b"accept-encoding" */
static PyObject *headers_ask;      /* scan_token.HEADER_BYTES */
static PyObject *headers_dest;     /* b"sec-fetch-dest" */
static PyObject *headers_accept;   /* b"accept" */
static PyObject *headers_fallback; /* request.app_headers_py */

static PyObject *
app_headers_setup(PyObject *self, PyObject *args)
{
    PyObject *drop, *ask, *dest, *accept, *fallback;
    if (!PyArg_ParseTuple(args, "SSSSO:app_headers_setup", &drop, &ask, &dest, &accept,
                          &fallback)) {
        return NULL;
    }
    if (!PyBytes_CheckExact(drop) || !PyBytes_CheckExact(ask) || !PyBytes_CheckExact(dest)
        || !PyBytes_CheckExact(accept) || !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "app_headers_setup: four bytes names and a callable");
        return NULL;
    }
    Py_INCREF(drop);
    Py_INCREF(ask);
    Py_INCREF(dest);
    Py_INCREF(accept);
    Py_INCREF(fallback);
    Py_XSETREF(headers_drop, drop);
    Py_XSETREF(headers_ask, ask);
    Py_XSETREF(headers_dest, dest);
    Py_XSETREF(headers_accept, accept);
    Py_XSETREF(headers_fallback, fallback);
    Py_RETURN_NONE;
}

/* Whether v[0:n] is the lowercase ASCII word w[0:n] in any ASCII case. */
static int
ascii_ieq(const unsigned char *v, const char *w, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = v[i];
        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char)(c + 32);
        }
        if (c != (unsigned char)w[i]) {
            return 0;
        }
    }
    return 1;
}

/* request._asks_for_a_sheet on bytes values (NULL: no such header): the Sec-Fetch-Dest
   value with spaces and tabs stripped is "style" in any case; without one, the Accept value
   with leading spaces and tabs dropped begins with "text/css" in any case. */
static int
asks_for_a_sheet(PyObject *dest, PyObject *accept)
{
    const unsigned char *v;
    Py_ssize_t a = 0, b;
    if (dest != NULL) {
        v = (const unsigned char *)PyBytes_AS_STRING(dest);
        b = PyBytes_GET_SIZE(dest);
        while (a < b && (v[a] == ' ' || v[a] == '\t')) {
            a++;
        }
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) {
            b--;
        }
        return b - a == 5 && ascii_ieq(v + a, "style", 5);
    }
    if (accept == NULL) {
        return 0;
    }
    v = (const unsigned char *)PyBytes_AS_STRING(accept);
    b = PyBytes_GET_SIZE(accept);
    while (a < b && (v[a] == ' ' || v[a] == '\t')) {
        a++;
    }
    return b - a >= 8 && ascii_ieq(v + a, "text/css", 8);
}

static int
bytes_is(PyObject *key, PyObject *name)
{
    Py_ssize_t n = PyBytes_GET_SIZE(name);
    return PyBytes_GET_SIZE(key) == n
           && memcmp(PyBytes_AS_STRING(key), PyBytes_AS_STRING(name), (size_t)n) == 0;
}

static PyObject *
app_headers(PyObject *self, PyObject *headers)
{
    if (headers_fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "app_headers: app_headers_setup was not called");
        return NULL;
    }
    if (!PyList_CheckExact(headers) && !PyTuple_CheckExact(headers)) {
        return PyObject_CallOneArg(headers_fallback, headers);
    }
    PyObject **items = PySequence_Fast_ITEMS(headers);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
    Py_ssize_t dropped = 0;
    int ask = 0;
    PyObject *dest = NULL, *accept = NULL; /* borrowed: the first of each */
    /* Borrowed items; nothing below runs Python code until the copy, so they cannot change. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i];
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2
            || !PyBytes_CheckExact(PyTuple_GET_ITEM(item, 0))) {
            return PyObject_CallOneArg(headers_fallback, headers);
        }
        PyObject *key = PyTuple_GET_ITEM(item, 0);
        if (bytes_is(key, headers_drop)) {
            dropped++;
        } else if (bytes_is(key, headers_ask)) {
            ask = 1;
        } else if (bytes_is(key, headers_dest) || bytes_is(key, headers_accept)) {
            PyObject *value = PyTuple_GET_ITEM(item, 1);
            if (!PyBytes_CheckExact(value)) {
                return PyObject_CallOneArg(headers_fallback, headers);
            }
            if (bytes_is(key, headers_dest)) {
                dest = dest == NULL ? value : dest;
            } else {
                accept = accept == NULL ? value : accept;
            }
        }
    }
    if (ask || asks_for_a_sheet(dest, accept)) {
        Py_RETURN_NONE;
    }
    if (dropped == 0) {
        Py_INCREF(headers);
        return headers;
    }
    PyObject *kept = PyList_New(n - dropped);
    if (kept == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0, j = 0; i < n; i++) {
        PyObject *item = items[i];
        if (!bytes_is(PyTuple_GET_ITEM(item, 0), headers_drop)) {
            Py_INCREF(item);
            PyList_SET_ITEM(kept, j++, item);
        }
    }
    return kept;
}

/* ---- the consent's request inputs: headers.py's consent_inputs ----
 * (the first Cookie value, whether there are several Cookie headers, the first Sec-GPC, DNT
 * and Accept-Language values; None for a name that is absent) in one pass, the values as
 * they are. Anything but an exact list or tuple of exact (bytes, value) tuples is handed to
 * the Python reference. Names are compared exactly, as the Python compares them. */
#define INPUT_NAMES 4
static PyObject *inputs_names[INPUT_NAMES]; /* cookie, sec-gpc, dnt, accept-language */
static PyObject *inputs_fallback;           /* headers.consent_inputs_py */

static PyObject *
consent_inputs_setup(PyObject *self, PyObject *args)
{
    PyObject *names, *fallback;
    if (!PyArg_ParseTuple(args, "O!O:consent_inputs_setup", &PyTuple_Type, &names, &fallback)) {
        return NULL;
    }
    if (PyTuple_GET_SIZE(names) != INPUT_NAMES || !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "consent_inputs_setup: four bytes names and a callable");
        return NULL;
    }
    for (int j = 0; j < INPUT_NAMES; j++) {
        if (!PyBytes_CheckExact(PyTuple_GET_ITEM(names, j))) {
            PyErr_SetString(PyExc_TypeError, "consent_inputs_setup: four bytes names");
            return NULL;
        }
    }
    for (int j = 0; j < INPUT_NAMES; j++) {
        PyObject *name = PyTuple_GET_ITEM(names, j);
        Py_INCREF(name);
        Py_XSETREF(inputs_names[j], name);
    }
    Py_INCREF(fallback);
    Py_XSETREF(inputs_fallback, fallback);
    Py_RETURN_NONE;
}

static PyObject *
consent_inputs(PyObject *self, PyObject *headers)
{
    if (inputs_fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "consent_inputs: consent_inputs_setup was not called");
        return NULL;
    }
    if (!PyList_CheckExact(headers) && !PyTuple_CheckExact(headers)) {
        return PyObject_CallOneArg(inputs_fallback, headers);
    }
    PyObject **items = PySequence_Fast_ITEMS(headers);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
    PyObject *found[INPUT_NAMES] = {NULL, NULL, NULL, NULL}; /* borrowed */
    int several = 0;
    /* Borrowed items; nothing below runs Python code until the tuple is built. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = items[i];
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2
            || !PyBytes_CheckExact(PyTuple_GET_ITEM(item, 0))) {
            return PyObject_CallOneArg(inputs_fallback, headers);
        }
        PyObject *key = PyTuple_GET_ITEM(item, 0);
        for (int j = 0; j < INPUT_NAMES; j++) {
            if (bytes_is(key, inputs_names[j])) {
                if (found[j] == NULL) {
                    found[j] = PyTuple_GET_ITEM(item, 1);
                } else if (j == 0) {
                    several = 1;
                }
                break;
            }
        }
    }
    PyObject *out = PyTuple_New(INPUT_NAMES + 1);
    if (out == NULL) {
        return NULL;
    }
    PyObject *values[INPUT_NAMES + 1] = {found[0], several ? Py_True : Py_False, found[1],
                                         found[2], found[3]};
    for (int j = 0; j <= INPUT_NAMES; j++) {
        PyObject *v = values[j] != NULL ? values[j] : Py_None;
        Py_INCREF(v);
        PyTuple_SET_ITEM(out, j, v);
    }
    return out;
}

/* ---- pass_send: gate/send.py's PassSend, the send the site's app is given ----
 * A first message that is an http.response.start dict whose raw headers start_kind reads as
 * PASSES (JSON or a file, no Set-Cookie), with the consent unread and a method other than
 * HEAD, goes straight to the server's send and so does every later message; any other first
 * message makes the HtmlResponder (as send.responder_for does: the type called with no
 * argument, then gate, scope, raw_send and state set) and hands it that message and every
 * later one: a start that announces an HTML page (start_kind's HTML_PAGE) is held as
 * HtmlResponder.start_message holds it (kind = HTML, start = the message, the done
 * awaitable _HELD returned), any other start goes to responder.start_message(message,
 * announced); a body while the responder's phase is HELD goes to responder._send (what
 * HtmlResponder.send does with it), anything else to responder.send. Anything unusual (not
 * an exact dict, no "type", no str "method") takes the responder's way, which raises as it
 * always did. */
static PyObject *pass_make;       /* responder.HtmlResponder */
static PyObject *pass_html_kind;  /* BodyKind.HTML */
static PyObject *pass_held;       /* responder._HELD: an awaitable already done */
static PyObject *pass_held_phase; /* phases.HELD */
static PyObject *str_type, *str_headers, *str_method, *str_consent_read, *str_send,
    *str_start_message, *str_response_start, *str_head, *str_gate, *str_scope, *str_raw_send,
    *str_state, *str_kind, *str_start, *str_phase, *str_inner_send, *str_response_body;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *gate;
    PyObject *scope;
    PyObject *raw_send;
    PyObject *state;
    PyObject *responder; /* NULL until made */
    int passing;
} PassSend;

static int
pass_send_traverse(PassSend *self, visitproc visit, void *arg)
{
    Py_VISIT(self->gate);
    Py_VISIT(self->scope);
    Py_VISIT(self->raw_send);
    Py_VISIT(self->state);
    Py_VISIT(self->responder);
    return 0;
}

static int
pass_send_clear(PassSend *self)
{
    Py_CLEAR(self->gate);
    Py_CLEAR(self->scope);
    Py_CLEAR(self->raw_send);
    Py_CLEAR(self->state);
    Py_CLEAR(self->responder);
    return 0;
}

static void
pass_send_dealloc(PassSend *self)
{
    PyObject_GC_UnTrack(self);
    pass_send_clear(self);
    PyObject_GC_Del(self);
}

static PyObject *
pass_send_responder(PassSend *self)
{
    PyObject *r = PyObject_CallNoArgs(pass_make);
    if (r == NULL) {
        return NULL;
    }
    if (PyObject_SetAttr(r, str_gate, self->gate) < 0
        || PyObject_SetAttr(r, str_scope, self->scope) < 0
        || PyObject_SetAttr(r, str_raw_send, self->raw_send) < 0
        || PyObject_SetAttr(r, str_state, self->state) < 0) {
        Py_DECREF(r);
        return NULL;
    }
    Py_XSETREF(self->responder, r);
    Py_INCREF(r);
    return r;
}

static PyObject *
pass_send_call(PassSend *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "send(message) takes one positional argument");
        return NULL;
    }
    PyObject *message = args[0];
    if (self->passing) {
        return PyObject_Vectorcall(self->raw_send, args, 1, NULL);
    }
    if (self->responder != NULL) {
        /* HtmlResponder.send's way for a body while the start is held: its _send */
        PyObject *responder = self->responder;
        Py_INCREF(responder);
        PyObject *phase = PyObject_GetAttr(responder, str_phase);
        if (phase == NULL) {
            Py_DECREF(responder);
            return NULL;
        }
        int held = phase == pass_held_phase;
        Py_DECREF(phase);
        PyObject *r;
        PyObject *kind = held && PyDict_CheckExact(message)
                             ? PyDict_GetItemWithError(message, str_type) : NULL;
        if (kind == NULL && PyErr_Occurred()) {
            Py_DECREF(responder);
            return NULL;
        }
        if (kind != NULL && PyUnicode_CheckExact(kind)
            && PyUnicode_Compare(kind, str_response_body) == 0) {
            PyObject *call[2] = {responder, message};
            r = PyObject_VectorcallMethod(str_inner_send, call,
                                          2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        }
        else {
            r = PyObject_CallMethodOneArg(responder, str_send, message);
        }
        Py_DECREF(responder);
        return r;
    }
    PyObject *kind = PyDict_CheckExact(message) ? PyDict_GetItemWithError(message, str_type) : NULL;
    if (kind == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (kind != NULL && PyUnicode_CheckExact(kind)
        && PyUnicode_Compare(kind, str_response_start) == 0) {
        PyObject *headers = PyDict_GetItemWithError(message, str_headers);
        if (headers == NULL && PyErr_Occurred()) {
            return NULL;
        }
        PyObject *empty = NULL;
        if (headers == NULL) {
            headers = empty = PyTuple_New(0);
            if (empty == NULL) {
                return NULL;
            }
        }
        Py_INCREF(message); /* the dict may lose its other references while start_kind runs */
        PyObject *announced = start_kind(NULL, headers);
        Py_XDECREF(empty);
        if (announced == NULL) {
            Py_DECREF(message);
            return NULL;
        }
        if (announced == PyTuple_GET_ITEM(start_other_pairs, 0) && PyDict_CheckExact(self->scope)) {
            /* passes_untouched's order: the flag first, then the method. Reading the flag may
               run Python code that changes the scope, so the method (borrowed from it) is
               looked up only after (read first, it was freed before the compare: ASan,
               tests/support/sanitized_child.py). */
            PyObject *flag = PyObject_GetAttr(self->state, str_consent_read);
            int read = -1;
            if (flag != NULL) {
                read = PyObject_IsTrue(flag);
                Py_DECREF(flag);
            }
            if (read < 0) {
                Py_DECREF(announced);
                Py_DECREF(message);
                return NULL;
            }
            PyObject *method = read ? NULL : PyDict_GetItemWithError(self->scope, str_method);
            if (method != NULL && PyUnicode_CheckExact(method)
                && PyUnicode_Compare(method, str_head) != 0) {
                self->passing = 1;
                Py_DECREF(announced);
                PyObject *r = PyObject_Vectorcall(self->raw_send, &message, 1, NULL);
                Py_DECREF(message);
                return r;
            }
            if (method == NULL && PyErr_Occurred()) {
                Py_DECREF(announced);
                Py_DECREF(message);
                return NULL;
            }
        }
        PyObject *responder = pass_send_responder(self);
        PyObject *r = NULL;
        if (responder != NULL && announced == PyTuple_GET_ITEM(start_html_pairs, 0)) {
            /* start_message's HTML_PAGE way: held until the first body */
            if (PyObject_SetAttr(responder, str_kind, pass_html_kind) == 0
                && PyObject_SetAttr(responder, str_start, message) == 0) {
                r = Py_NewRef(pass_held);
            }
            Py_DECREF(responder);
        }
        else if (responder != NULL) {
            PyObject *call[3] = {responder, message, announced};
            r = PyObject_VectorcallMethod(str_start_message, call,
                                          3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            Py_DECREF(responder);
        }
        Py_DECREF(announced);
        Py_DECREF(message);
        return r;
    }
    PyObject *responder = pass_send_responder(self);
    if (responder == NULL) {
        return NULL;
    }
    PyObject *r = PyObject_CallMethodOneArg(responder, str_send, message);
    Py_DECREF(responder);
    return r;
}

static PyObject *
pass_send_get_responder(PassSend *self, void *closure)
{
    PyObject *r = self->responder != NULL ? self->responder : Py_None;
    Py_INCREF(r);
    return r;
}

static PyObject *
pass_send_get_passing(PassSend *self, void *closure)
{
    return PyBool_FromLong(self->passing);
}

static PyGetSetDef pass_send_getset[] = {
    {"responder", (getter)pass_send_get_responder, NULL, "the HtmlResponder, once made", NULL},
    {"passing", (getter)pass_send_get_passing, NULL, "the response passed untouched", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PassSendType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "middleware._speedups.PassSend",
    .tp_basicsize = sizeof(PassSend),
    .tp_dealloc = (destructor)pass_send_dealloc,
    .tp_vectorcall_offset = offsetof(PassSend, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "The send the site's app is given (gate/send.py); made by pass_send().",
    .tp_traverse = (traverseproc)pass_send_traverse,
    .tp_clear = (inquiry)pass_send_clear,
    .tp_getset = pass_send_getset,
};

static PyObject *
pass_send_setup(PyObject *self, PyObject *args)
{
    PyObject *make, *html, *held, *phase;
    if (!PyArg_ParseTuple(args, "O!OOO:pass_send_setup", &PyType_Type, &make, &html, &held,
                          &phase)) {
        return NULL;
    }
    Py_XSETREF(pass_make, Py_NewRef(make));
    Py_XSETREF(pass_html_kind, Py_NewRef(html));
    Py_XSETREF(pass_held, Py_NewRef(held));
    Py_XSETREF(pass_held_phase, Py_NewRef(phase));
    Py_RETURN_NONE;
}

static PyObject *
pass_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "pass_send(gate, scope, raw_send, state)");
        return NULL;
    }
    if (pass_make == NULL || start_other_pairs == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pass_send: pass_send_setup and start_setup first");
        return NULL;
    }
    PassSend *made = PyObject_GC_New(PassSend, &PassSendType);
    if (made == NULL) {
        return NULL;
    }
    made->vectorcall = (vectorcallfunc)pass_send_call;
    Py_INCREF(args[0]);
    made->gate = args[0];
    Py_INCREF(args[1]);
    made->scope = args[1];
    Py_INCREF(args[2]);
    made->raw_send = args[2];
    Py_INCREF(args[3]);
    made->state = args[3];
    made->responder = NULL;
    made->passing = 0;
    PyObject_GC_Track(made);
    return (PyObject *)made;
}

/* ---- memo_key: memo.py's lookup key of a whole body, its samples hashed in one pass ----
 * (id(plan), len(body), body) for a body of at most 3 * 64 bytes; else (id(plan), len(body),
 * h), h a 64-bit hash of the 64 bytes at the start, the middle (len >> 1) and the end: the
 * same samples as memo._key_py, read in place (no slices, no SipHash of each). A key match
 * is never proof (the memo compares the whole body), so a collision of h only shares a
 * slot, as equal samples do. None for anything but exact bytes: memo._key_py then. */
#define MEMO_SAMPLE 64

static uint64_t
memo_mix(uint64_t h, const unsigned char *p)
{
    for (int i = 0; i < MEMO_SAMPLE; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h ^= w;
        h *= 0x9E3779B97F4A7C15ULL;
        h ^= h >> 29;
    }
    return h;
}

static PyObject *
memo_key(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "memo_key(plan, body)");
        return NULL;
    }
    PyObject *body = args[1];
    if (!PyBytes_CheckExact(body)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(body);
    PyObject *last;
    if (n <= 3 * MEMO_SAMPLE) {
        last = Py_NewRef(body);
    }
    else {
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(body);
        uint64_t h = 0x243F6A8885A308D3ULL ^ (uint64_t)n;
        h = memo_mix(h, p);
        h = memo_mix(h, p + (n >> 1));
        h = memo_mix(h, p + n - MEMO_SAMPLE);
        h ^= h >> 32;
        last = PyLong_FromUnsignedLongLong(h);
        if (last == NULL) {
            return NULL;
        }
    }
    PyObject *plan_id = PyLong_FromVoidPtr(args[0]);
    PyObject *size = plan_id == NULL ? NULL : PyLong_FromSsize_t(n);
    if (size == NULL) {
        Py_XDECREF(plan_id);
        Py_DECREF(last);
        return NULL;
    }
    PyObject *key = PyTuple_New(3);
    if (key == NULL) {
        Py_DECREF(plan_id);
        Py_DECREF(size);
        Py_DECREF(last);
        return NULL;
    }
    PyTuple_SET_ITEM(key, 0, plan_id);
    PyTuple_SET_ITEM(key, 1, size);
    PyTuple_SET_ITEM(key, 2, last);
    return key;
}

/* ---- page_decision: gate/decision.py's decide for the common page ----
 * decide_py's answer for an HTML start (kind HTML, checked by the caller) when every input is
 * the plain case: an exact dict start with an exact int status (or none) outside 204/205/304,
 * a str method other than HEAD, headers an exact list/tuple of exact (bytes, bytes) pairs with
 * at most one Content-Type, no comma in it and no Content-Encoding, that value's remembered
 * reading (content_types) readable and known, an exact bytes body that opens with no wide
 * start, more_body absent/True/False, and the remembered Decision of that charset in
 * whole/streamed. Then it returns that very Decision object (what decide_py returns there);
 * otherwise None, and decide_py decides. So it can only agree with the Python: it answers
 * from the Python's own tables, and runs no Python code. */
static PyObject *str_status, *str_body, *str_more_body;

static int
page_bytes_is(PyObject *b, const char *lit, Py_ssize_t n)
{
    return PyBytes_GET_SIZE(b) == n && memcmp(PyBytes_AS_STRING(b), lit, (size_t)n) == 0;
}

static PyObject *page_decision_read(PyObject *first, PyObject *charset, PyObject *whole,
                                    PyObject *streamed, PyObject *wide);

static PyObject *
page_decision(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "page_decision(method, start, first, content_types, "
                                         "whole, streamed, wide_starts)");
        return NULL;
    }
    PyObject *method = args[0], *start = args[1], *first = args[2], *types = args[3];
    PyObject *whole = args[4], *streamed = args[5], *wide = args[6];
    if (!PyUnicode_CheckExact(method) || !PyDict_CheckExact(start) || !PyDict_CheckExact(first)
        || !PyDict_CheckExact(types) || !PyDict_CheckExact(whole) || !PyDict_CheckExact(streamed)
        || !PyTuple_CheckExact(wide)) {
        Py_RETURN_NONE;
    }
    PyObject *status = PyDict_GetItemWithError(start, str_status);
    if (status == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (status != NULL) {
        if (!PyLong_CheckExact(status)) {
            Py_RETURN_NONE;
        }
        int overflow = 0;
        long code = PyLong_AsLongAndOverflow(status, &overflow);
        if (code == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (overflow || code == 204 || code == 205 || code == 304) {
            Py_RETURN_NONE;
        }
    }
    if (PyUnicode_CompareWithASCIIString(method, "HEAD") == 0) {
        Py_RETURN_NONE;
    }
    PyObject *headers = PyDict_GetItemWithError(start, str_headers);
    if (headers == NULL && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *content_type = NULL; /* borrowed from a pair of headers */
    if (headers != NULL) {
        if (!PyList_CheckExact(headers) && !PyTuple_CheckExact(headers)) {
            Py_RETURN_NONE;
        }
        Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
        PyObject **items = PySequence_Fast_ITEMS(headers);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *pair = items[i];
            if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
                Py_RETURN_NONE;
            }
            PyObject *key = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
            if (!PyBytes_CheckExact(key) || !PyBytes_CheckExact(value)) {
                Py_RETURN_NONE;
            }
            if (page_bytes_is(key, "content-type", 12)) {
                if (content_type != NULL) {
                    Py_RETURN_NONE; /* several */
                }
                content_type = value;
            }
            else if (page_bytes_is(key, "content-encoding", 16)) {
                Py_RETURN_NONE;
            }
        }
    }
    PyObject *empty = NULL;
    if (content_type == NULL) {
        content_type = empty = PyBytes_FromStringAndSize(NULL, 0);
        if (empty == NULL) {
            return NULL;
        }
    }
    else if (memchr(PyBytes_AS_STRING(content_type), ',',
                    (size_t)PyBytes_GET_SIZE(content_type)) != NULL) {
        Py_RETURN_NONE;
    }
    Py_INCREF(content_type); /* the lookup hashes and compares bytes only, but hold it */
    PyObject *read = PyDict_GetItemWithError(types, content_type);
    Py_DECREF(content_type);
    Py_XDECREF(empty);
    if (read == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    if (!PyTuple_CheckExact(read) || PyTuple_GET_SIZE(read) != 3
        || PyTuple_GET_ITEM(read, 1) != Py_False || PyTuple_GET_ITEM(read, 2) != Py_True) {
        Py_RETURN_NONE; /* unreadable, or a label no browser knows: decide_py reads on */
    }
    PyObject *charset = PyTuple_GET_ITEM(read, 0);
    if (charset != Py_None && !PyUnicode_CheckExact(charset)) {
        Py_RETURN_NONE;
    }
    /* Held from here: a key of first's with the hash of "body" or "more_body" runs its
       __eq__ in the look-ups below, and may drop content_types' tuple (and so charset). */
    Py_INCREF(charset);
    PyObject *decision = page_decision_read(first, charset, whole, streamed, wide);
    Py_DECREF(charset);
    return decision;
}

/* page_decision's part that reads first (body, more_body): charset held by the caller. */
static PyObject *
page_decision_read(PyObject *first, PyObject *charset, PyObject *whole, PyObject *streamed,
                   PyObject *wide)
{
    PyObject *body = PyDict_GetItemWithError(first, str_body);
    if (body == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (!PyBytes_CheckExact(body)) {
        Py_RETURN_NONE;
    }
    const char *data = PyBytes_AS_STRING(body);
    Py_ssize_t size = PyBytes_GET_SIZE(body);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(wide); i++) {
        PyObject *w = PyTuple_GET_ITEM(wide, i);
        if (!PyBytes_CheckExact(w)) {
            Py_RETURN_NONE;
        }
        Py_ssize_t k = PyBytes_GET_SIZE(w);
        if (size >= k && memcmp(data, PyBytes_AS_STRING(w), (size_t)k) == 0) {
            Py_RETURN_NONE;
        }
    }
    PyObject *more = PyDict_GetItemWithError(first, str_more_body);
    if (more == NULL && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *made;
    if (more == NULL || more == Py_False) {
        made = whole;
    }
    else if (more == Py_True) {
        made = streamed;
    }
    else {
        Py_RETURN_NONE;
    }
    PyObject *decision = PyDict_GetItemWithError(made, charset);
    if (decision == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    return Py_NewRef(decision);
}

static int
init_gate(PyObject *m)
{
    if (PyType_Ready(&PassSendType) < 0) {
        return -1;
    }
    str_type = PyUnicode_InternFromString("type");
    str_headers = PyUnicode_InternFromString("headers");
    str_method = PyUnicode_InternFromString("method");
    str_consent_read = PyUnicode_InternFromString("consent_read");
    str_send = PyUnicode_InternFromString("send");
    str_start_message = PyUnicode_InternFromString("start_message");
    str_response_start = PyUnicode_InternFromString("http.response.start");
    str_head = PyUnicode_InternFromString("HEAD");
    str_gate = PyUnicode_InternFromString("gate");
    str_scope = PyUnicode_InternFromString("scope");
    str_raw_send = PyUnicode_InternFromString("raw_send");
    str_state = PyUnicode_InternFromString("state");
    str_kind = PyUnicode_InternFromString("kind");
    str_start = PyUnicode_InternFromString("start");
    str_phase = PyUnicode_InternFromString("phase");
    str_inner_send = PyUnicode_InternFromString("_send");
    str_response_body = PyUnicode_InternFromString("http.response.body");
    if (!str_gate || !str_scope || !str_raw_send || !str_state || !str_kind || !str_start
        || !str_phase || !str_inner_send || !str_response_body) {
        return -1;
    }
    str_status = PyUnicode_InternFromString("status");
    str_body = PyUnicode_InternFromString("body");
    str_more_body = PyUnicode_InternFromString("more_body");
    if (!str_status || !str_body || !str_more_body) {
        return -1;
    }
    if (!str_type || !str_headers || !str_method || !str_consent_read || !str_send
        || !str_start_message || !str_response_start || !str_head) {
        return -1;
    }
    Py_INCREF(&PassSendType);
    if (PyModule_AddObject(m, "PassSend", (PyObject *)&PassSendType) < 0) {
        Py_DECREF(&PassSendType);
        return -1;
    }
    return 0;
}

static PyMethodDef methods[] = {
    {"app_headers_setup", app_headers_setup, METH_VARARGS,
     "app_headers_setup(drop, ask, dest, accept, fallback) -> None\n\nThe header names "
     "app_headers drops (Accept-Encoding), answers None for (the scan token's) and reads for a "
     "style sheet request (Sec-Fetch-Dest, Accept), and the Python it defers to."},
    {"app_headers", app_headers, METH_O,
     "app_headers(headers) -> headers | None\n\nThe same as gate/request.py's app_headers_py."},
    {"consent_inputs_setup", consent_inputs_setup, METH_VARARGS,
     "consent_inputs_setup(names, fallback) -> None\n\nThe four header names consent_inputs "
     "reads (Cookie, Sec-GPC, DNT, Accept-Language) and the Python it defers to."},
    {"consent_inputs", consent_inputs, METH_O,
     "consent_inputs(headers) -> (cookie, several, gpc, dnt, accept_language)\n\nThe same as "
     "headers.py's consent_inputs_py."},
    {"pass_send_setup", pass_send_setup, METH_VARARGS,
     "pass_send_setup(HtmlResponder, BodyKind.HTML, _HELD, HELD) -> None\n\nThe responder "
     "type made (then gate, scope, raw_send, state set), and what its start_message and send "
     "do for an HTML page held until its first body."},
    {"pass_send", (PyCFunction)(void (*)(void))pass_send, METH_FASTCALL,
     "pass_send(gate, scope, raw_send, state) -> send\n\nThe same as gate/send.py's "
     "pass_send_py: JSON and files straight to raw_send, no responder made."},
    {"memo_key", (PyCFunction)(void (*)(void))memo_key, METH_FASTCALL,
     "memo_key(plan, body) -> tuple | None\n\nmemo.py's lookup key: (id(plan), len, body) "
     "or (id(plan), len, a 64-bit hash of the three 64-byte samples); None: not bytes."},
    {"page_decision", (PyCFunction)(void (*)(void))page_decision, METH_FASTCALL,
     "page_decision(method, start, first, content_types, whole, streamed, wide_starts) -> "
     "Decision | None\n\ngate/decision.py's decide for the plain HTML page, from its own "
     "tables; None: decide_py decides."},
    {"start_setup", start_setup, METH_VARARGS,
     "start_setup(html_pairs, other_pairs, fallback) -> None\n\nThe answers start_kind returns "
     "(each a (without, with) Set-Cookie pair) and the Python start_kind it defers to."},
    {"start_kind", start_kind, METH_O,
     "start_kind(headers) -> (kind, sets_cookie) | None\n\nThe same as gate/start.py's "
     "start_kind_py; the common JSON and HTML starts without allocation."},
    {"skip_end", skip_end, METH_VARARGS,
     "skip_end(low, pos) -> int\n\nThe same as _SKIP_RE.match(low, pos).end() in rewrite.py."},
    {"scan_end", (PyCFunction)(void (*)(void))scan_end, METH_FASTCALL,
     "scan_end(buf, pos, hosts, unknown, allowed, enabled[, blocked, edits[, inject, injected"
     "[, placeholders[, purposes[, documents]]]]])"
     " -> int\n\nThe skip on buf itself (ASCII folded), also consuming the tags and texts that "
     "need no Python (see the file's comment); hosts: a make_hosts table or None. The hosts no "
     "partner declares are added to the set unknown, the partners in allowed (a set or None) to "
     "the set enabled, blocked partners to the set blocked with their edits appended to the list "
     "edits; inject: [head_end, body_start, body_end] still due (None once emitted), injected: "
     "the partners a non-empty injection enables; placeholders: partner -> (head, tail) of its "
     "placeholder; purposes: the granted purposes (opt-in markup is read with them); documents: "
     "an iframe's srcdoc may be read (a second pass over its document). ~end "
     "(negative) when an <html>, <head> or <body> start tag was consumed."},
    {"flat_svg_end", flat_svg_end, METH_VARARGS,
     "flat_svg_end(buf, pos) -> int\n\n_SVG_FLAT_RE.match(buf.lower(), pos).end(), or -1 (what "
     "scan_end does at an <svg>)."},
    {"splice", (PyCFunction)(void (*)(void))splice, METH_FASTCALL,
     "splice(buf, edits, stop) -> bytes\n\nbuf with the edits (a, b, data) applied, in one bytes "
     "object: buf[cur:a] (if a > cur), data, cur = b for each; then buf[cur:stop]. An output of "
     "256 KB or more reuses the previous such output's bytes object when nothing else holds it."},
    {"make_hosts", make_hosts, METH_VARARGS,
     "make_hosts(exact, wild) -> table\n\nThe partner host table for scan_end: tuples of exact "
     "hosts and of *. suffixes (without '*.'), as HostMatcher holds them."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "middleware._speedups",
    "C accelerator for the rewriter's tokenizer (see middleware/rewrite.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    init_classes();
    if (init_names() < 0) {
        PyErr_SetString(PyExc_SystemError, "_speedups: a name list outgrew its lookup table");
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (init_gate(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    const char *const *lists[] = {NAMES, END_NAMES, PLAIN_URL_TAGS, LINK_NO_FETCH, FETCH_URL_ATTRS,
                                  SVG_NOT_FLAT, SWITCHERS, VOID, BREAKOUT, SVG_HTML_IP};
    const char *attrs[] = {"NAMES", "END_NAMES", "PLAIN_URL_TAGS", "LINK_NO_FETCH",
                           "FETCH_URL_ATTRS", "SVG_NOT_FLAT", "SWITCHERS", "VOID", "BREAKOUT",
                           "SVG_HTML_IP"};
    for (int i = 0; i < 10; i++) {
        PyObject *t = name_tuple(lists[i]);
        if (t == NULL || PyModule_AddObject(m, attrs[i], t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(m);
            return NULL;
        }
    }
    PyObject *r = rules_tuple();
    if (r == NULL || PyModule_AddObject(m, "RULES", r) < 0) {
        Py_XDECREF(r);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
