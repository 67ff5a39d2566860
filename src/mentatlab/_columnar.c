/* mentatlab._columnar: OTLP ExportTraceServiceRequest protobuf bytes -> column buffers.
 *
 * The C half of mentatlab/receivers/columnar.py (issue 18); the pure-Python fallback there
 * is the reference and the tests check both give identical tables.
 *
 * Two passes over the body:
 *   1. validate(): the whole body, exactly as upb (python protobuf's parser) accepts it:
 *      varints of at most 10 bytes, tags of at most 5 bytes and <= UINT32_MAX, field 0 and
 *      wire types 6/7 refused, lengths inside their parent, unknown groups skipped with a
 *      matching end-group, a depth limit of 100 nested messages/groups, strict UTF-8 in
 *      every proto3 `string` field of a known message (overridden values included).
 *      Any failure raises ValueError, which the Python wrapper turns into DecodeError.
 *   2. extraction of the accepted spans into growable buffers (Arrow layouts: int32
 *      offsets + UTF-8 data for strings, little-endian fixed width, a bitmap for bools),
 *      applying protobuf's merge rules: last value wins for scalars, repeated occurrences
 *      of a singular message field merge (their payloads read as one), oneof cases
 *      replace each other.
 * Python objects are made only for the result, refused spans and resource segments.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 100         /* upb's default (kUpb_WireFormat_DefaultDepthLimit) */
#define MAX_TIME_NS 9223372036000000000ULL  /* receivers/base.py MAX_TIME_NS */

typedef const uint8_t *P;

/* ------------------------------------------------------------------ buffers */

typedef struct { char *p; size_t len, cap; } Buf;
typedef struct { Buf off, data; } StrCol;   /* off holds n+1 int32 */

typedef struct {
    jmp_buf jb;
    const char *err;
    size_t err_at;
    P base;
    int depth;
} Ctx;

static void fail(Ctx *c, const char *why, P at) {
    c->err = why;
    c->err_at = at ? (size_t)(at - c->base) : 0;
    longjmp(c->jb, 1);
}

static void buf_grow(Ctx *c, Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    size_t n = b->cap ? b->cap : 256;
    while (n < b->len + extra) n *= 2;
    char *q = realloc(b->p, n);
    if (!q) fail(c, "out of memory", NULL);
    b->p = q;
    b->cap = n;
}

static inline void buf_put(Ctx *c, Buf *b, const void *src, size_t n) {
    buf_grow(c, b, n);
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

#define PUT(c, b, T, v) do { T v_ = (T)(v); buf_put((c), (b), &v_, sizeof v_); } while (0)

static void str_init(Ctx *c, StrCol *s) { PUT(c, &s->off, int32_t, 0); }

static inline void str_end(Ctx *c, StrCol *s) {
    if (s->data.len > INT32_MAX) fail(c, "column over 2 GiB", NULL);
    PUT(c, &s->off, int32_t, s->data.len);
}

static inline void str_push(Ctx *c, StrCol *s, P p, size_t n) {
    buf_put(c, &s->data, p, n);
    str_end(c, s);
}

static const char HEX[] = "0123456789abcdef";

static void hex_into(Ctx *c, Buf *b, P p, size_t n) {
    buf_grow(c, b, 2 * n);
    char *o = b->p + b->len;
    for (size_t i = 0; i < n; i++) {
        o[2 * i] = HEX[p[i] >> 4];
        o[2 * i + 1] = HEX[p[i] & 15];
    }
    b->len += 2 * n;
}

/* ------------------------------------------------------------------ wire reading */

/* upb's varint: at most 10 bytes, overflowing bits dropped. */
static inline uint64_t rd_varint(Ctx *c, P *pp, P end) {
    P p = *pp;
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (p >= end) fail(c, "truncated varint", p);
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) { *pp = p; return v; }
    }
    fail(c, "varint over 10 bytes", p);
    return 0;
}

static inline uint32_t rd_tag(Ctx *c, P *pp, P end) {
    P start = *pp;
    uint64_t v = rd_varint(c, pp, end);
    if (*pp - start > 5 || v > UINT32_MAX) fail(c, "bad field tag", start);
    return (uint32_t)v;
}

static inline uint64_t rd_fixed(Ctx *c, P *pp, P end, int n) {
    if (end - *pp < n) fail(c, "truncated fixed-width field", *pp);
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | (*pp)[i];
    *pp += n;
    return v;
}

static inline P rd_len(Ctx *c, P *pp, P end, size_t *n) {
    uint64_t len = rd_varint(c, pp, end);
    if (len > (uint64_t)(end - *pp)) fail(c, "length past the end", *pp);
    P start = *pp;
    *n = (size_t)len;
    *pp += len;
    return start;
}

/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF), as upb checks. */
static int utf8_ok(P s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ULL)) { i += 8; continue; }
        }
        uint8_t b = s[i];
        if (b < 0x80) { i++; continue; }
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) need = 1;
        else if (b == 0xe0) { need = 2; lo = 0xa0; }
        else if (b == 0xed) { need = 2; hi = 0x9f; }
        else if (b >= 0xe1 && b <= 0xef) need = 2;
        else if (b == 0xf0) { need = 3; lo = 0x90; }
        else if (b >= 0xf1 && b <= 0xf3) need = 3;
        else if (b == 0xf4) { need = 3; hi = 0x8f; }
        else return 0;
        if (n - i <= need) return 0;
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xc0) != 0x80) return 0;
        i += need + 1;
    }
    return 1;
}

/* ------------------------------------------------------------------ pass 1: validate */

enum { M_UNKNOWN, M_REQ, M_RS, M_RES, M_ENT, M_KV, M_ANY, M_ARR, M_KVL, M_SS, M_SCOPE,
       M_SPAN, M_EVENT, M_LINK, M_STATUS };

/* The string and message fields of each message (opentelemetry-proto 1.x); everything else
 * needs no check beyond its wire type. tests/receivers/test_columnar.py compares this
 * table with the installed descriptors. Returns -1 for a string, a message id, or 0. */
static int field_kind(int msg, uint32_t num) {
    switch (msg) {
    case M_REQ: return num == 1 ? M_RS : 0;
    case M_RS: return num == 1 ? M_RES : num == 2 ? M_SS : num == 3 ? -1 : 0;
    case M_RES: return num == 1 ? M_KV : num == 3 ? M_ENT : 0;
    case M_ENT: return (num >= 1 && num <= 4) ? -1 : 0;
    case M_KV: return num == 1 ? -1 : num == 2 ? M_ANY : 0;
    case M_ANY: return num == 1 ? -1 : num == 5 ? M_ARR : num == 6 ? M_KVL : 0;
    case M_ARR: return num == 1 ? M_ANY : 0;
    case M_KVL: return num == 1 ? M_KV : 0;
    case M_SS: return num == 1 ? M_SCOPE : num == 2 ? M_SPAN : num == 3 ? -1 : 0;
    case M_SCOPE: return (num == 1 || num == 2) ? -1 : num == 3 ? M_KV : 0;
    case M_SPAN:
        return (num == 3 || num == 5) ? -1 : num == 9 ? M_KV : num == 11 ? M_EVENT
             : num == 13 ? M_LINK : num == 15 ? M_STATUS : 0;
    case M_EVENT: return num == 2 ? -1 : num == 3 ? M_KV : 0;
    case M_LINK: return num == 3 ? -1 : num == 4 ? M_KV : 0;
    case M_STATUS: return num == 2 ? -1 : 0;
    default: return 0;
    }
}

/* Validate [p, end) as message `msg`; inside an unknown group (`group` = its field number
 * + 1, so a group of field 0 counts too; 0 outside groups) stop after its end-group tag and
 * return the position after it. Like upb, field number 0 is refused in a message but
 * skipped inside an unknown group (upb does not look at what it skips there). */
static P validate(Ctx *c, P p, P end, int msg, uint32_t group) {
    while (p < end) {
        P at = p;
        uint32_t tag = rd_tag(c, &p, end);
        uint32_t num = tag >> 3, wt = tag & 7;
        if (wt == 4) {
            if (group && num + 1 == group) return p;
            fail(c, "unexpected end-group tag", at);
        }
        if (num == 0 && !group) fail(c, "field number 0", at);
        int kind = field_kind(msg, num);
        size_t n;
        P s;
        switch (wt) {
        case 0: rd_varint(c, &p, end); break;
        case 1: rd_fixed(c, &p, end, 8); break;
        case 5: rd_fixed(c, &p, end, 4); break;
        case 2:
            s = rd_len(c, &p, end, &n);
            if (kind < 0) {
                if (!utf8_ok(s, n)) fail(c, "string field is not UTF-8", s);
            } else if (kind > 0) {
                if (--c->depth < 0) fail(c, "nested too deep", s);
                validate(c, s, s + n, kind, 0);
                c->depth++;
            }
            break;
        case 3:
            if (--c->depth < 0) fail(c, "nested too deep", at);
            p = validate(c, p, end, M_UNKNOWN, num + 1);
            c->depth++;
            break;
        default: fail(c, "bad wire type", at);
        }
    }
    if (group) fail(c, "group without its end", p);
    return p;
}

/* Skip one field's value (the body is already valid). */
static P skip(Ctx *c, P p, P end, uint32_t tag) {
    size_t n;
    switch (tag & 7) {
    case 0: rd_varint(c, &p, end); return p;
    case 1: return p + 8;
    case 5: return p + 4;
    case 2: rd_len(c, &p, end, &n); return p;
    case 3: return validate(c, p, end, M_UNKNOWN, (tag >> 3) + 1);
    default: fail(c, "bad wire type", p); return p;
    }
}

#define FIELD(num, wt) (((uint32_t)(num) << 3) | (wt))

/* ------------------------------------------------------------------ tables */

typedef struct { size_t n; StrCol key, str; Buf type, i64, f64, bits; } AttrTab;

typedef struct {
    size_t n;
    StrCol trace_id, span_id, parent, trace_state, name, kind, status_message, scope_name,
        scope_version;
    Buf start, end, status_code, flags, resource_index, attr_off, attr_cnt, ev_off, ev_cnt,
        ln_off, ln_cnt;
} SpanTab;

typedef struct { size_t n; StrCol name; Buf time, attr_off, attr_cnt; } EventTab;
typedef struct { size_t n; StrCol trace_id, span_id, trace_state; Buf flags, attr_off,
    attr_cnt; } LinkTab;

typedef struct {
    Ctx c;
    SpanTab sp;
    AttrTab at, ev_at, ln_at;
    EventTab ev;
    LinkTab ln;
    PyObject *resources; /* list of lists of (start, end) */
    PyObject *rejected;  /* list of tuples */
} St;

/* ------------------------------------------------------------------ AnyValue */

enum { T_EMPTY = 0, T_STR, T_BOOL, T_INT, T_DOUBLE, T_BYTES, T_ARRAY, T_KVLIST };

typedef struct {
    int type;
    P s;          /* string / bytes payload */
    size_t n;
    uint64_t u;   /* bool / int / double bits */
    P run;        /* array/kvlist: occurrences at or after this position merge */
} Any;

/* Fold one AnyValue occurrence into `a` (oneof: a new case replaces the old one; the same
 * message case again merges). */
static void any_fold(Ctx *c, Any *a, P p, P end) {
    while (p < end) {
        P at = p;
        uint32_t tag = rd_tag(c, &p, end);
        size_t n;
        switch (tag) {
        case FIELD(1, 2): a->type = T_STR; a->s = rd_len(c, &p, end, &a->n); break;
        case FIELD(7, 2): a->type = T_BYTES; a->s = rd_len(c, &p, end, &a->n); break;
        case FIELD(2, 0): a->type = T_BOOL; a->u = rd_varint(c, &p, end) != 0; break;
        case FIELD(3, 0): a->type = T_INT; a->u = rd_varint(c, &p, end); break;
        case FIELD(8, 0): a->type = T_EMPTY; rd_varint(c, &p, end); break; /* strindex */
        case FIELD(4, 1): a->type = T_DOUBLE; a->u = rd_fixed(c, &p, end, 8); break;
        case FIELD(5, 2):
            if (a->type != T_ARRAY) { a->type = T_ARRAY; a->run = at; }
            rd_len(c, &p, end, &n);
            break;
        case FIELD(6, 2):
            if (a->type != T_KVLIST) { a->type = T_KVLIST; a->run = at; }
            rd_len(c, &p, end, &n);
            break;
        default: p = skip(c, p, end, tag);
        }
    }
}

static void json_any(St *st, Buf *o, const Any *a, P p, P end, int in_kv);

static void json_string(Ctx *c, Buf *o, P s, size_t n) {
    buf_grow(c, o, n + 2);
    o->p[o->len++] = '"';
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] >= 0x20 && s[j] != '"' && s[j] != '\\') j++;
        buf_put(c, o, s + i, j - i);
        if (j == n) break;
        uint8_t ch = s[j];
        char esc[6] = {'\\', 0};
        size_t k = 2;
        switch (ch) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
            esc[4] = HEX[ch >> 4]; esc[5] = HEX[ch & 15];
            k = 6;
        }
        buf_put(c, o, esc, k);
        i = j + 1;
    }
    buf_put(c, o, "\"", 1);
}

/* Resolve the AnyValue held by a KeyValue (value occurrences merge) or a bare AnyValue. */
static void resolve_kv_value(Ctx *c, Any *a, P p, P end) {
    memset(a, 0, sizeof *a);
    while (p < end) {
        uint32_t tag = rd_tag(c, &p, end);
        if (tag == FIELD(2, 2)) {
            size_t n;
            P s = rd_len(c, &p, end, &n);
            any_fold(c, a, s, s + n);
        } else {
            p = skip(c, p, end, tag);
        }
    }
}

/* The message payloads of a resolved array/kvlist: every field-5/6 occurrence at or after
 * a->run, inside the AnyValue occurrences found in [p, end) (a KeyValue when in_kv). */
typedef void (*PayloadFn)(St *st, Buf *o, P p, P end, int *first);

static void for_payloads_in_any(St *st, Buf *o, const Any *a, P p, P end, PayloadFn fn,
                                int *first) {
    uint32_t want = a->type == T_ARRAY ? FIELD(5, 2) : FIELD(6, 2);
    while (p < end) {
        P at = p;
        uint32_t tag = rd_tag(&st->c, &p, end);
        if (tag == want) {
            size_t n;
            P s = rd_len(&st->c, &p, end, &n);
            if (at >= a->run) fn(st, o, s, s + n, first);
        } else {
            p = skip(&st->c, p, end, tag);
        }
    }
}

static void for_payloads(St *st, Buf *o, const Any *a, P p, P end, int in_kv, PayloadFn fn,
                         int *first) {
    if (!in_kv) { for_payloads_in_any(st, o, a, p, end, fn, first); return; }
    while (p < end) {
        uint32_t tag = rd_tag(&st->c, &p, end);
        if (tag == FIELD(2, 2)) {
            size_t n;
            P s = rd_len(&st->c, &p, end, &n);
            if (s + n > a->run) for_payloads_in_any(st, o, a, s, s + n, fn, first);
        } else {
            p = skip(&st->c, p, end, tag);
        }
    }
}

static void json_array_items(St *st, Buf *o, P p, P end, int *first) {
    while (p < end) {
        uint32_t tag = rd_tag(&st->c, &p, end);
        if (tag == FIELD(1, 2)) {
            size_t n;
            P s = rd_len(&st->c, &p, end, &n);
            Any a;
            memset(&a, 0, sizeof a);
            any_fold(&st->c, &a, s, s + n);
            if (!*first) buf_put(&st->c, o, ",", 1);
            *first = 0;
            json_any(st, o, &a, s, s + n, 0);
        } else {
            p = skip(&st->c, p, end, tag);
        }
    }
}

static void kv_key(Ctx *c, P p, P end, P *key, size_t *key_n) {
    *key = p;
    *key_n = 0;
    while (p < end) {
        uint32_t tag = rd_tag(c, &p, end);
        if (tag == FIELD(1, 2)) *key = rd_len(c, &p, end, key_n);
        else p = skip(c, p, end, tag);
    }
}

static void json_kvlist_items(St *st, Buf *o, P p, P end, int *first) {
    while (p < end) {
        uint32_t tag = rd_tag(&st->c, &p, end);
        if (tag == FIELD(1, 2)) {
            size_t n, key_n;
            P s = rd_len(&st->c, &p, end, &n), key;
            kv_key(&st->c, s, s + n, &key, &key_n);
            Any a;
            resolve_kv_value(&st->c, &a, s, s + n);
            if (!*first) buf_put(&st->c, o, ",", 1);
            *first = 0;
            json_string(&st->c, o, key, key_n);
            buf_put(&st->c, o, ":", 1);
            json_any(st, o, &a, s, s + n, 1);
        } else {
            p = skip(&st->c, p, end, tag);
        }
    }
}

static void json_double(Ctx *c, Buf *o, uint64_t bits) {
    double d;
    memcpy(&d, &bits, 8);
    if (d != d) { buf_put(c, o, "NaN", 3); return; }
    if (d == Py_HUGE_VAL) { buf_put(c, o, "Infinity", 8); return; }
    if (d == -Py_HUGE_VAL) { buf_put(c, o, "-Infinity", 9); return; }
    /* float.__repr__, which json.dumps uses for finite floats */
    char *txt = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!txt) fail(c, "out of memory", NULL);
    size_t n = strlen(txt);
    buf_grow(c, o, n);
    memcpy(o->p + o->len, txt, n);
    o->len += n;
    PyMem_Free(txt);
}

/* JSON text of a resolved AnyValue; p..end is where it came from (for array/kvlist). */
static void json_any(St *st, Buf *o, const Any *a, P p, P end, int in_kv) {
    Ctx *c = &st->c;
    char num[24];
    int first = 1;
    switch (a->type) {
    case T_EMPTY: buf_put(c, o, "null", 4); break;
    case T_STR: json_string(c, o, a->s, a->n); break;
    case T_BOOL: buf_put(c, o, a->u ? "true" : "false", a->u ? 4 : 5); break;
    case T_INT: buf_put(c, o, num, (size_t)snprintf(num, sizeof num, "%lld",
                                                    (long long)(int64_t)a->u)); break;
    case T_DOUBLE: json_double(c, o, a->u); break;
    case T_BYTES:
        buf_put(c, o, "\"", 1);
        hex_into(c, o, a->s, a->n);
        buf_put(c, o, "\"", 1);
        break;
    case T_ARRAY:
        buf_put(c, o, "[", 1);
        for_payloads(st, o, a, p, end, in_kv, json_array_items, &first);
        buf_put(c, o, "]", 1);
        break;
    default:
        buf_put(c, o, "{", 1);
        for_payloads(st, o, a, p, end, in_kv, json_kvlist_items, &first);
        buf_put(c, o, "}", 1);
    }
}

/* Append one KeyValue (bytes [p, end)) as a row of `t`. */
static void attr_row(St *st, AttrTab *t, P p, P end) {
    Ctx *c = &st->c;
    P key;
    size_t key_n;
    kv_key(c, p, end, &key, &key_n);
    Any a;
    resolve_kv_value(c, &a, p, end);
    str_push(c, &t->key, key, key_n);
    PUT(c, &t->type, int8_t, a.type);
    switch (a.type) {
    case T_STR: buf_put(c, &t->str.data, a.s, a.n); break;
    case T_BYTES: hex_into(c, &t->str.data, a.s, a.n); break;
    case T_ARRAY: case T_KVLIST: json_any(st, &t->str.data, &a, p, end, 1); break;
    default: break;
    }
    str_end(c, &t->str);
    PUT(c, &t->i64, int64_t, a.type == T_INT ? (int64_t)a.u : 0);
    PUT(c, &t->f64, uint64_t, a.type == T_DOUBLE ? a.u : 0);
    if ((t->n & 7) == 0) PUT(c, &t->bits, uint8_t, 0);
    if (a.type == T_BOOL && a.u) t->bits.p[t->n >> 3] |= (char)(1 << (t->n & 7));
    t->n++;
}

/* ------------------------------------------------------------------ spans */

typedef struct { P s; size_t n; } Slice;

static void event_row(St *st, P p, P end) {
    Ctx *c = &st->c;
    uint64_t time = 0;
    Slice name = {p, 0};
    size_t off = st->ev_at.n;
    while (p < end) {
        uint32_t tag = rd_tag(c, &p, end);
        size_t n;
        P s;
        switch (tag) {
        case FIELD(1, 1): time = rd_fixed(c, &p, end, 8); break;
        case FIELD(2, 2): name.s = rd_len(c, &p, end, &name.n); break;
        case FIELD(3, 2): s = rd_len(c, &p, end, &n); attr_row(st, &st->ev_at, s, s + n); break;
        default: p = skip(c, p, end, tag);
        }
    }
    PUT(c, &st->ev.time, uint64_t, time);
    str_push(c, &st->ev.name, name.s, name.n);
    PUT(c, &st->ev.attr_off, int32_t, off);
    PUT(c, &st->ev.attr_cnt, int32_t, st->ev_at.n - off);
    st->ev.n++;
}

static void link_row(St *st, P p, P end) {
    Ctx *c = &st->c;
    Slice tid = {p, 0}, sid = {p, 0}, ts = {p, 0};
    uint32_t flags = 0;
    size_t off = st->ln_at.n;
    while (p < end) {
        uint32_t tag = rd_tag(c, &p, end);
        size_t n;
        P s;
        switch (tag) {
        case FIELD(1, 2): tid.s = rd_len(c, &p, end, &tid.n); break;
        case FIELD(2, 2): sid.s = rd_len(c, &p, end, &sid.n); break;
        case FIELD(3, 2): ts.s = rd_len(c, &p, end, &ts.n); break;
        case FIELD(6, 5): flags = (uint32_t)rd_fixed(c, &p, end, 4); break;
        case FIELD(4, 2): s = rd_len(c, &p, end, &n); attr_row(st, &st->ln_at, s, s + n); break;
        default: p = skip(c, p, end, tag);
        }
    }
    hex_into(c, &st->ln.trace_id.data, tid.s, tid.n);
    str_end(c, &st->ln.trace_id);
    hex_into(c, &st->ln.span_id.data, sid.s, sid.n);
    str_end(c, &st->ln.span_id);
    str_push(c, &st->ln.trace_state, ts.s, ts.n);
    PUT(c, &st->ln.flags, uint32_t, flags);
    PUT(c, &st->ln.attr_off, int32_t, off);
    PUT(c, &st->ln.attr_cnt, int32_t, st->ln_at.n - off);
    st->ln.n++;
}

static int all_zero(Slice x) {
    for (size_t i = 0; i < x.n; i++) if (x.s[i]) return 0;
    return 1;
}

static const char *const KIND_NAMES[] = {"unspecified", "internal", "server", "client",
                                         "producer", "consumer"};

static void reject(St *st, Py_ssize_t ri, Py_ssize_t si, Py_ssize_t pi, Slice tid, Slice sid,
                   Slice par, uint64_t start, uint64_t end) {
    PyObject *t = Py_BuildValue("(nnny#y#y#KK)", ri, si, pi, (const char *)tid.s,
                                (Py_ssize_t)tid.n, (const char *)sid.s, (Py_ssize_t)sid.n,
                                (const char *)par.s, (Py_ssize_t)par.n,
                                (unsigned long long)start, (unsigned long long)end);
    if (!t) fail(&st->c, NULL, NULL);
    int rc = PyList_Append(st->rejected, t);
    Py_DECREF(t);
    if (rc < 0) fail(&st->c, NULL, NULL);
}

static void span(St *st, P p0, P end, Py_ssize_t ri, Py_ssize_t si, Py_ssize_t pi,
                 Slice scope_name, Slice scope_version) {
    Ctx *c = &st->c;
    Slice tid = {p0, 0}, sid = {p0, 0}, par = {p0, 0}, ts = {p0, 0}, name = {p0, 0},
          msg = {p0, 0};
    uint64_t start = 0, stop = 0;
    uint32_t flags = 0;
    int32_t kind = 0, code = 0;
    P p = p0;
    /* first the scalars: the span may be refused before anything is appended */
    while (p < end) {
        uint32_t tag = rd_tag(c, &p, end);
        size_t n;
        P s;
        switch (tag) {
        case FIELD(1, 2): tid.s = rd_len(c, &p, end, &tid.n); break;
        case FIELD(2, 2): sid.s = rd_len(c, &p, end, &sid.n); break;
        case FIELD(3, 2): ts.s = rd_len(c, &p, end, &ts.n); break;
        case FIELD(4, 2): par.s = rd_len(c, &p, end, &par.n); break;
        case FIELD(5, 2): name.s = rd_len(c, &p, end, &name.n); break;
        case FIELD(6, 0): kind = (int32_t)(uint32_t)rd_varint(c, &p, end); break;
        case FIELD(7, 1): start = rd_fixed(c, &p, end, 8); break;
        case FIELD(8, 1): stop = rd_fixed(c, &p, end, 8); break;
        case FIELD(16, 5): flags = (uint32_t)rd_fixed(c, &p, end, 4); break;
        case FIELD(15, 2):  /* Status: occurrences merge */
            s = rd_len(c, &p, end, &n);
            for (P q = s, qe = s + n; q < qe;) {
                uint32_t t2 = rd_tag(c, &q, qe);
                if (t2 == FIELD(2, 2)) msg.s = rd_len(c, &q, qe, &msg.n);
                else if (t2 == FIELD(3, 0)) code = (int32_t)(uint32_t)rd_varint(c, &q, qe);
                else q = skip(c, q, qe, t2);
            }
            break;
        default: p = skip(c, p, end, tag);
        }
    }
    int root = par.n == 0 || (par.n == 8 && all_zero(par));
    int bad = tid.n != 16 || all_zero(tid) || sid.n != 8 || all_zero(sid)
              || (!root && par.n != 8)
              || start == 0 || stop < start || stop > MAX_TIME_NS;
    if (bad) { reject(st, ri, si, pi, tid, sid, par, start, stop); return; }
    SpanTab *t = &st->sp;
    hex_into(c, &t->trace_id.data, tid.s, tid.n);
    str_end(c, &t->trace_id);
    hex_into(c, &t->span_id.data, sid.s, sid.n);
    str_end(c, &t->span_id);
    if (!root) hex_into(c, &t->parent.data, par.s, par.n);
    str_end(c, &t->parent);
    str_push(c, &t->trace_state, ts.s, ts.n);
    str_push(c, &t->name, name.s, name.n);
    const char *kn = KIND_NAMES[(kind >= 0 && kind < 6) ? kind : 0];
    str_push(c, &t->kind, (P)kn, strlen(kn));
    PUT(c, &t->start, int64_t, start);
    PUT(c, &t->end, int64_t, stop);
    PUT(c, &t->status_code, int32_t, code);
    str_push(c, &t->status_message, msg.s, msg.n);
    PUT(c, &t->flags, uint32_t, flags);
    PUT(c, &t->resource_index, int32_t, ri);
    str_push(c, &t->scope_name, scope_name.s, scope_name.n);
    str_push(c, &t->scope_version, scope_version.s, scope_version.n);
    size_t a0 = st->at.n, e0 = st->ev.n, l0 = st->ln.n;
    for (p = p0; p < end;) {
        uint32_t tag = rd_tag(c, &p, end);
        size_t n;
        P s;
        switch (tag) {
        case FIELD(9, 2): s = rd_len(c, &p, end, &n); attr_row(st, &st->at, s, s + n); break;
        case FIELD(11, 2): s = rd_len(c, &p, end, &n); event_row(st, s, s + n); break;
        case FIELD(13, 2): s = rd_len(c, &p, end, &n); link_row(st, s, s + n); break;
        default: p = skip(c, p, end, tag);
        }
    }
    if (st->at.n > INT32_MAX || st->ev.n > INT32_MAX || st->ln.n > INT32_MAX)
        fail(c, "too many rows", NULL);
    PUT(c, &t->attr_off, int32_t, a0);
    PUT(c, &t->attr_cnt, int32_t, st->at.n - a0);
    PUT(c, &t->ev_off, int32_t, e0);
    PUT(c, &t->ev_cnt, int32_t, st->ev.n - e0);
    PUT(c, &t->ln_off, int32_t, l0);
    PUT(c, &t->ln_cnt, int32_t, st->ln.n - l0);
    t->n++;
}

static void scope_spans(St *st, P p0, P end, Py_ssize_t ri, Py_ssize_t si) {
    Ctx *c = &st->c;
    Slice name = {p0, 0}, version = {p0, 0};
    P p = p0;
    /* the scope may follow its spans on the wire, and its occurrences merge */
    while (p < end) {
        uint32_t tag = rd_tag(c, &p, end);
        if (tag == FIELD(1, 2)) {
            size_t n;
            P s = rd_len(c, &p, end, &n);
            for (P q = s, qe = s + n; q < qe;) {
                uint32_t t2 = rd_tag(c, &q, qe);
                if (t2 == FIELD(1, 2)) name.s = rd_len(c, &q, qe, &name.n);
                else if (t2 == FIELD(2, 2)) version.s = rd_len(c, &q, qe, &version.n);
                else q = skip(c, q, qe, t2);
            }
        } else {
            p = skip(c, p, end, tag);
        }
    }
    Py_ssize_t pi = 0;
    for (p = p0; p < end;) {
        uint32_t tag = rd_tag(c, &p, end);
        if (tag == FIELD(2, 2)) {
            size_t n;
            P s = rd_len(c, &p, end, &n);
            span(st, s, s + n, ri, si, pi++, name, version);
        } else {
            p = skip(c, p, end, tag);
        }
    }
}

static void resource_spans(St *st, P p, P end, Py_ssize_t ri) {
    Ctx *c = &st->c;
    Py_ssize_t si = 0;
    PyObject *slices = PyList_New(0);
    if (!slices) fail(c, NULL, NULL);
    int rc = PyList_Append(st->resources, slices);
    Py_DECREF(slices);
    if (rc < 0) fail(c, NULL, NULL);
    while (p < end) {
        uint32_t tag = rd_tag(c, &p, end);
        size_t n;
        P s;
        if (tag == FIELD(1, 2)) {
            s = rd_len(c, &p, end, &n);
            PyObject *pair = Py_BuildValue("(nn)", (Py_ssize_t)(s - c->base),
                                           (Py_ssize_t)(s + n - c->base));
            if (!pair) fail(c, NULL, NULL);
            rc = PyList_Append(slices, pair);
            Py_DECREF(pair);
            if (rc < 0) fail(c, NULL, NULL);
        } else if (tag == FIELD(2, 2)) {
            s = rd_len(c, &p, end, &n);
            scope_spans(st, s, s + n, ri, si++);
        } else {
            p = skip(c, p, end, tag);
        }
    }
}

/* ------------------------------------------------------------------ results */

static PyObject *bytes_of(Buf *b) {
    return PyBytes_FromStringAndSize(b->p ? b->p : "", (Py_ssize_t)b->len);
}

static int set_fix(PyObject *d, const char *name, Buf *b) {
    PyObject *v = bytes_of(b);
    if (!v) return -1;
    int rc = PyDict_SetItemString(d, name, v);
    Py_DECREF(v);
    return rc;
}

static int set_str(PyObject *d, const char *name, StrCol *s) {
    PyObject *v = Py_BuildValue("(NN)", bytes_of(&s->off), bytes_of(&s->data));
    if (!v) return -1;
    int rc = PyDict_SetItemString(d, name, v);
    Py_DECREF(v);
    return rc;
}

static void free_str(StrCol *s) { free(s->off.p); free(s->data.p); }

static PyObject *attr_result(AttrTab *t) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    if (set_str(d, "key", &t->key) || set_fix(d, "type", &t->type)
        || set_str(d, "str_value", &t->str) || set_fix(d, "int_value", &t->i64)
        || set_fix(d, "double_value", &t->f64) || set_fix(d, "bool_value", &t->bits)) {
        Py_DECREF(d);
        return NULL;
    }
    return Py_BuildValue("(nN)", (Py_ssize_t)t->n, d);
}

static PyObject *span_result(SpanTab *t) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    if (set_str(d, "trace_id", &t->trace_id) || set_str(d, "span_id", &t->span_id)
        || set_str(d, "parent_span_id", &t->parent) || set_str(d, "trace_state", &t->trace_state)
        || set_str(d, "name", &t->name) || set_str(d, "kind", &t->kind)
        || set_fix(d, "start_time_ns", &t->start) || set_fix(d, "end_time_ns", &t->end)
        || set_fix(d, "status_code", &t->status_code)
        || set_str(d, "status_message", &t->status_message) || set_fix(d, "flags", &t->flags)
        || set_fix(d, "resource_index", &t->resource_index)
        || set_str(d, "scope_name", &t->scope_name)
        || set_str(d, "scope_version", &t->scope_version)
        || set_fix(d, "attr_offset", &t->attr_off) || set_fix(d, "attr_count", &t->attr_cnt)
        || set_fix(d, "event_offset", &t->ev_off) || set_fix(d, "event_count", &t->ev_cnt)
        || set_fix(d, "link_offset", &t->ln_off) || set_fix(d, "link_count", &t->ln_cnt)) {
        Py_DECREF(d);
        return NULL;
    }
    return Py_BuildValue("(nN)", (Py_ssize_t)t->n, d);
}

static PyObject *event_result(EventTab *t) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    if (set_fix(d, "time_ns", &t->time) || set_str(d, "name", &t->name)
        || set_fix(d, "attr_offset", &t->attr_off) || set_fix(d, "attr_count", &t->attr_cnt)) {
        Py_DECREF(d);
        return NULL;
    }
    return Py_BuildValue("(nN)", (Py_ssize_t)t->n, d);
}

static PyObject *link_result(LinkTab *t) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    if (set_str(d, "trace_id", &t->trace_id) || set_str(d, "span_id", &t->span_id)
        || set_str(d, "trace_state", &t->trace_state) || set_fix(d, "flags", &t->flags)
        || set_fix(d, "attr_offset", &t->attr_off) || set_fix(d, "attr_count", &t->attr_cnt)) {
        Py_DECREF(d);
        return NULL;
    }
    return Py_BuildValue("(nN)", (Py_ssize_t)t->n, d);
}

static void free_attr(AttrTab *t) {
    free_str(&t->key); free_str(&t->str);
    free(t->type.p); free(t->i64.p); free(t->f64.p); free(t->bits.p);
}

static void free_all(St *st) {
    SpanTab *t = &st->sp;
    StrCol *strs[] = {&t->trace_id, &t->span_id, &t->parent, &t->trace_state, &t->name,
                      &t->kind, &t->status_message, &t->scope_name, &t->scope_version,
                      &st->ev.name, &st->ln.trace_id, &st->ln.span_id, &st->ln.trace_state};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) free_str(strs[i]);
    Buf *fix[] = {&t->start, &t->end, &t->status_code, &t->flags, &t->resource_index,
                  &t->attr_off, &t->attr_cnt, &t->ev_off, &t->ev_cnt, &t->ln_off, &t->ln_cnt,
                  &st->ev.time, &st->ev.attr_off, &st->ev.attr_cnt, &st->ln.flags,
                  &st->ln.attr_off, &st->ln.attr_cnt};
    for (size_t i = 0; i < sizeof fix / sizeof *fix; i++) free(fix[i]->p);
    free_attr(&st->at); free_attr(&st->ev_at); free_attr(&st->ln_at);
    Py_XDECREF(st->resources);
    Py_XDECREF(st->rejected);
}

static void init_all(St *st) {
    Ctx *c = &st->c;
    SpanTab *t = &st->sp;
    StrCol *strs[] = {&t->trace_id, &t->span_id, &t->parent, &t->trace_state, &t->name,
                      &t->kind, &t->status_message, &t->scope_name, &t->scope_version,
                      &st->ev.name, &st->ln.trace_id, &st->ln.span_id, &st->ln.trace_state,
                      &st->at.key, &st->at.str, &st->ev_at.key, &st->ev_at.str,
                      &st->ln_at.key, &st->ln_at.str};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) str_init(c, strs[i]);
}

static void run(St *st, P body, P end) {
    Ctx *c = &st->c;
    c->depth = MAX_DEPTH;
    validate(c, body, end, M_REQ, 0);
    init_all(st);
    Py_ssize_t ri = 0;
    for (P p = body; p < end;) {
        uint32_t tag = rd_tag(c, &p, end);
        if (tag == FIELD(1, 2)) {
            size_t n;
            P s = rd_len(c, &p, end, &n);
            resource_spans(st, s, s + n, ri++);
        } else {
            p = skip(c, p, end, tag);
        }
    }
}

static PyObject *decode(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    St *st = calloc(1, sizeof *st);
    if (!st) { PyBuffer_Release(&view); return PyErr_NoMemory(); }
    PyObject *result = NULL;
    st->c.base = (P)view.buf;
    st->resources = PyList_New(0);
    st->rejected = PyList_New(0);
    if (!st->resources || !st->rejected) goto done;
    if (setjmp(st->c.jb)) {
        if (st->c.err)
            PyErr_Format(PyExc_ValueError, "%s at byte %zu", st->c.err, st->c.err_at);
        goto done;  /* else a Python error is already set */
    }
    run(st, (P)view.buf, (P)view.buf + view.len);
    result = Py_BuildValue("(NNNNNNOO)", span_result(&st->sp), attr_result(&st->at),
                           event_result(&st->ev), attr_result(&st->ev_at),
                           link_result(&st->ln), attr_result(&st->ln_at),
                           st->resources, st->rejected);
done:
    free_all(st);
    free(st);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"decode", decode, METH_O,
     "decode(body) -> column buffers of an OTLP ExportTraceServiceRequest; ValueError if "
     "the body is not one."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "mentatlab._columnar",
    "OTLP protobuf to column buffers (see mentatlab.receivers.columnar).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__columnar(void) { return PyModule_Create(&module); }
