/* Optional accelerator for middleware/rewrite.py.
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
 * Every read is guarded by the buffer length: a tag cut off by the end of the buffer is simply
 * not skipped (the regex fails there too). tests/test_rewrite_speedups.py checks equality with
 * the regex on adversarial input; keep both in step.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

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

static unsigned short cls[256];

static void
init_classes(void)
{
    static const char ws[] = "\t\n\f\r ";
    memset(cls, 0, sizeof(cls));
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
    "script", "source", "style", "svg", "textarea", "title", "track", "video", "xmp", NULL,
};
static const char *const END_NAMES[] = {"body", "head", "noscript", NULL};
static const char *const PLAIN_URL_TAGS[] = {
    "img", "link", "source", "embed", "object", "video", "audio", "base", "input", "track",
    "image", "frame", "meta", NULL,
};
/* Attributes that can fetch on any element (_FETCH_ATTRS); "style" gets the CSS-quiet test. */
static const char *const FETCH_URL_ATTRS[] = {"attributionsrc", "background", "ping", NULL};

static int
in_list(const char *const *list, const unsigned char *name, Py_ssize_t len)
{
    if (len < 1) {
        return 0;
    }
    for (; *list; list++) {
        if ((unsigned char)(*list)[0] == name[0] && (Py_ssize_t)strlen(*list) == len
            && memcmp(*list, name, (size_t)len) == 0) {
            return 1;
        }
    }
    return 0;
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

/* The value of a fetching attribute (_quiet_attr after its name) from t, just after the name:
   the end of the attribute, or -1 when its value is not quiet. css: the CSS-quiet classes. */
static Py_ssize_t
quiet_value(const unsigned char *s, Py_ssize_t n, Py_ssize_t t, int css)
{
    while (t < n && IS(s[t], C_WS)) {
        t++;
    }
    if (!(t < n && s[t] == '=')) {
        return -2;  /* no value: (?![WS]*+=) holds; the caller goes on after the name */
    }
    t++;
    while (t < n && IS(s[t], C_WS)) {
        t++;
    }
    if (t < n && (s[t] == '"' || s[t] == '\'')) {
        unsigned char q = s[t];
        Py_ssize_t v = css ? quiet_css(s, n, t + 1, q == '"' ? C_CDQ : C_CSQ)
                           : quiet(s, n, t + 1, q == '"' ? C_QDQ : C_QSQ);
        if (v >= n || s[v] != q) {
            return -1;
        }
        return v + 1;
    }
    Py_ssize_t v = css ? quiet_css(s, n, t, C_CUQ) : quiet(s, n, t, C_QUQ);
    if (v >= n || !IS(s[v], C_USTOP)) {  /* (?=[WS>]) */
        return -1;
    }
    return v;
}

/* (?:[WS/]*+ GRAM_ATTR)*+ [WS/]*+ >  from p; the end after '>' or -1. fetch: GRAM_ATTR_SKIP
   instead (attributes in FETCH_URL_ATTRS and "style" must have quiet values). */
static Py_ssize_t
gram_body(const unsigned char *s, Py_ssize_t n, Py_ssize_t p, int fetch)
{
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
        Py_ssize_t r = q + 1;
        while (r < n && !IS(s[r], C_ASTOP)) {
            r++;
        }
        if (fetch && r < n) {
            int css = r - q == 5 && memcmp(s + q, "style", 5) == 0;
            if (css || in_list(FETCH_URL_ATTRS, s + q, r - q)) {
                Py_ssize_t e = quiet_value(s, n, r, css);
                if (e == -1) {
                    return -1;
                }
                p = e == -2 ? r : e;
                continue;
            }
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
            if (t < n && (s[t] == '"' || s[t] == '\'')) {
                const unsigned char *e = memchr(s + t + 1, s[t], (size_t)(n - t - 1));
                if (e == NULL) {
                    /* Unclosed value: the attribute fails, and what follows the last
                       complete attribute is not '>'. */
                    return -1;
                }
                p = (e - s) + 1;
            }
            else {
                while (t < n && !IS(s[t], C_USTOP)) {
                    t++;
                }
                p = t;
            }
        }
        else {
            p = r;  /* no value: (?![WS]*+=) */
        }
    }
}

/* (?:[WS/]*+ QUIET_ATTR)*+ [WS/]*+ >  from p; the end after '>' or -1. */
static Py_ssize_t
quiet_body(const unsigned char *s, Py_ssize_t n, Py_ssize_t p)
{
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
        if (c == 'd' && q + 12 < n && memcmp(s + q + 1, "ata-consent", 11) == 0
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

/* One '<' at pos: the end of what the skip consumes there, or -1 (the skip stops). */
static Py_ssize_t
skip_lt(const unsigned char *s, Py_ssize_t n, Py_ssize_t pos)
{
    if (pos + 1 >= n) {
        return -1;  /* bare '<' at the end */
    }
    unsigned char c = s[pos + 1];
    if (c >= 'a' && c <= 'z') {
        Py_ssize_t r = name_end(s, n, pos + 1);
        const unsigned char *name = s + pos + 1;
        Py_ssize_t len = r - (pos + 1);
        if (r >= n) {
            return -1;  /* cut off: no branch can reach a '>' */
        }
        if (!in_list(NAMES, name, len)) {
            return gram_body(s, n, r, 1);
        }
        if (in_list(PLAIN_URL_TAGS, name, len)) {
            return quiet_body(s, n, r);
        }
        return -1;
    }
    if (c == '/') {
        if (pos + 2 >= n) {
            return -1;
        }
        unsigned char d = s[pos + 2];
        if (d == '>') {
            return pos + 1;  /* "</>": the '<' is text */
        }
        if (d >= 'a' && d <= 'z') {
            Py_ssize_t r = name_end(s, n, pos + 2);
            if (r >= n || in_list(END_NAMES, s + pos + 2, r - (pos + 2))) {
                return -1;
            }
            return gram_body(s, n, r, 0);
        }
        return -1;  /* bogus comment "</ x>" etc. */
    }
    if (c == '!' || c == '?') {
        return -1;
    }
    return pos + 1;  /* '<' followed by anything else is text */
}

static Py_ssize_t
skip_run(const unsigned char *s, Py_ssize_t n, Py_ssize_t pos)
{
    while (pos < n) {
        if (s[pos] != '<') {
            const unsigned char *lt = memchr(s + pos, '<', (size_t)(n - pos));
            if (lt == NULL) {
                return n;
            }
            pos = lt - s;
        }
        Py_ssize_t e = skip_lt(s, n, pos);
        if (e < 0) {
            return pos;
        }
        pos = e;
    }
    return pos;
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
    Py_ssize_t n = view.len;
    if (pos < 0) {
        pos = 0;
    }
    if (pos > n) {
        pos = n;
    }
    Py_ssize_t end = skip_run((const unsigned char *)view.buf, n, pos);
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(end);
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

static PyMethodDef methods[] = {
    {"skip_end", skip_end, METH_VARARGS,
     "skip_end(low, pos) -> int\n\nThe same as _SKIP_RE.match(low, pos).end() in rewrite.py."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "middleware._speedups",
    "C accelerator for the rewriter's skip scan (see middleware/rewrite.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    init_classes();
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    const char *const *lists[] = {NAMES, END_NAMES, PLAIN_URL_TAGS};
    const char *attrs[] = {"NAMES", "END_NAMES", "PLAIN_URL_TAGS"};
    for (int i = 0; i < 3; i++) {
        PyObject *t = name_tuple(lists[i]);
        if (t == NULL || PyModule_AddObject(m, attrs[i], t) < 0) {
            Py_XDECREF(t);
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
