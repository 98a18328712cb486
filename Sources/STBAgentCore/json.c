#include "stb_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <errno.h>

/* ------------------------------------------------------------------ UTF-8 */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) {
        if (avail < 2 || (s[1] & 0xC0) != 0x80) return 0;
        return 2;
    }
    if (c < 0xF0) {
        if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;      /* overlong */
        if (c == 0xED && s[1] >= 0xA0) return 0;     /* surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;      /* overlong */
        if (c == 0xF4 && s[1] >= 0x90) return 0;     /* > U+10FFFF */
        return 4;
    }
    return 0;
}

bool sj_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_seq(p + i, len - i);
        if (!n) return false;
        i += n;
    }
    return true;
}

/* ------------------------------------------------------------------ parser */

typedef struct {
    const unsigned char *b;
    size_t n, i;
    sj_status st;
    char *err;
    size_t errlen;
} parser;

static void fail(parser *p, sj_status st, const char *msg)
{
    if (p->st != SJ_OK) return;
    p->st = st;
    if (p->err && p->errlen) snprintf(p->err, p->errlen, "%s at byte %zu", msg, p->i);
}

static void skip_ws(parser *p)
{
    while (p->i < p->n) {
        unsigned char c = p->b[p->i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') p->i++;
        else break;
    }
}

static sj_value *new_value(parser *p, sj_type t)
{
    sj_value *v = calloc(1, sizeof *v);
    if (!v) { fail(p, SJ_ERR_NOMEM, "out of memory"); return NULL; }
    v->type = t;
    return v;
}

static sj_value *parse_value(parser *p, int depth);

static int hex4(parser *p, uint32_t *out)
{
    if (p->i + 4 > p->n) { fail(p, SJ_ERR_SYNTAX, "short \\u escape"); return -1; }
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = p->b[p->i++];
        uint32_t d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else { fail(p, SJ_ERR_SYNTAX, "invalid \\u escape"); return -1; }
        v = (v << 4) | d;
    }
    *out = v;
    return 0;
}

typedef struct { char *p; size_t len, cap; } sbuf;

static int sb_put(sbuf *s, const void *d, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 32;
        while (nc < s->len + n + 1) nc *= 2;
        char *np = realloc(s->p, nc);
        if (!np) return -1;
        s->p = np;
        s->cap = nc;
    }
    memcpy(s->p + s->len, d, n);
    s->len += n;
    s->p[s->len] = 0;
    return 0;
}

static int utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string literal at p->i (which is '"'); returns a malloc'd NUL-terminated copy. */
static char *parse_string(parser *p, size_t *out_len)
{
    sbuf s = {0};
    p->i++; /* opening quote */
    for (;;) {
        if (p->i >= p->n) { fail(p, SJ_ERR_SYNTAX, "unterminated string"); goto bad; }
        unsigned char c = p->b[p->i];
        if (c == '"') { p->i++; break; }
        if (c < 0x20) { fail(p, SJ_ERR_SYNTAX, "control character in string"); goto bad; }
        if (c == '\\') {
            p->i++;
            if (p->i >= p->n) { fail(p, SJ_ERR_SYNTAX, "unterminated escape"); goto bad; }
            unsigned char e = p->b[p->i++];
            char ch;
            switch (e) {
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u': {
                uint32_t cp;
                if (hex4(p, &cp)) goto bad;
                if (cp >= 0xD800 && cp < 0xDC00) {
                    if (p->i + 1 >= p->n || p->b[p->i] != '\\' || p->b[p->i + 1] != 'u') {
                        fail(p, SJ_ERR_SYNTAX, "lone surrogate"); goto bad;
                    }
                    p->i += 2;
                    uint32_t lo;
                    if (hex4(p, &lo)) goto bad;
                    if (lo < 0xDC00 || lo >= 0xE000) { fail(p, SJ_ERR_SYNTAX, "invalid surrogate pair"); goto bad; }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp < 0xE000) {
                    fail(p, SJ_ERR_SYNTAX, "lone surrogate"); goto bad;
                }
                char u[4];
                int k = utf8_encode(cp, u);
                if (sb_put(&s, u, (size_t)k)) { fail(p, SJ_ERR_NOMEM, "out of memory"); goto bad; }
                continue;
            }
            default: fail(p, SJ_ERR_SYNTAX, "invalid escape"); goto bad;
            }
            if (sb_put(&s, &ch, 1)) { fail(p, SJ_ERR_NOMEM, "out of memory"); goto bad; }
            continue;
        }
        size_t k = utf8_seq(p->b + p->i, p->n - p->i);
        if (!k) { fail(p, SJ_ERR_UTF8, "invalid UTF-8 in string"); goto bad; }
        if (sb_put(&s, p->b + p->i, k)) { fail(p, SJ_ERR_NOMEM, "out of memory"); goto bad; }
        p->i += k;
    }
    if (!s.p && sb_put(&s, "", 0)) { fail(p, SJ_ERR_NOMEM, "out of memory"); goto bad; }
    *out_len = s.len;
    return s.p;
bad:
    free(s.p);
    return NULL;
}

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static sj_value *parse_number(parser *p)
{
    size_t start = p->i;
    bool is_int = true;
    if (p->b[p->i] == '-') p->i++;
    if (p->i >= p->n || !is_digit(p->b[p->i])) { fail(p, SJ_ERR_SYNTAX, "invalid number"); return NULL; }
    if (p->b[p->i] == '0') {
        p->i++;
        if (p->i < p->n && is_digit(p->b[p->i])) { fail(p, SJ_ERR_SYNTAX, "leading zero in number"); return NULL; }
    } else {
        while (p->i < p->n && is_digit(p->b[p->i])) p->i++;
    }
    if (p->i < p->n && p->b[p->i] == '.') {
        is_int = false;
        p->i++;
        if (p->i >= p->n || !is_digit(p->b[p->i])) { fail(p, SJ_ERR_SYNTAX, "invalid number"); return NULL; }
        while (p->i < p->n && is_digit(p->b[p->i])) p->i++;
    }
    if (p->i < p->n && (p->b[p->i] == 'e' || p->b[p->i] == 'E')) {
        is_int = false;
        p->i++;
        if (p->i < p->n && (p->b[p->i] == '+' || p->b[p->i] == '-')) p->i++;
        if (p->i >= p->n || !is_digit(p->b[p->i])) { fail(p, SJ_ERR_SYNTAX, "invalid number"); return NULL; }
        while (p->i < p->n && is_digit(p->b[p->i])) p->i++;
    }
    char tmp[64];
    size_t len = p->i - start;
    if (len >= sizeof tmp) {
        /* Too long to be an int64; parse as a double via a heap copy. */
        char *h = malloc(len + 1);
        if (!h) { fail(p, SJ_ERR_NOMEM, "out of memory"); return NULL; }
        memcpy(h, p->b + start, len);
        h[len] = 0;
        double d = strtod(h, NULL);
        free(h);
        if (!isfinite(d)) { fail(p, SJ_ERR_SYNTAX, "number out of range"); return NULL; }
        sj_value *v = new_value(p, SJ_DOUBLE);
        if (v) v->u.number = d;
        return v;
    }
    memcpy(tmp, p->b + start, len);
    tmp[len] = 0;
    if (is_int) {
        errno = 0;
        long long ll = strtoll(tmp, NULL, 10);
        if (errno == 0) {
            sj_value *v = new_value(p, SJ_INT);
            if (v) v->u.integer = (int64_t)ll;
            return v;
        }
    }
    double d = strtod(tmp, NULL);
    if (!isfinite(d)) { fail(p, SJ_ERR_SYNTAX, "number out of range"); return NULL; }
    sj_value *v = new_value(p, SJ_DOUBLE);
    if (v) v->u.number = d;
    return v;
}

static int literal(parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->i + n > p->n || memcmp(p->b + p->i, word, n) != 0) { fail(p, SJ_ERR_SYNTAX, "invalid literal"); return -1; }
    p->i += n;
    return 0;
}

static sj_value *parse_array(parser *p, int depth)
{
    sj_value *v = new_value(p, SJ_ARRAY);
    if (!v) return NULL;
    size_t cap = 0;
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->b[p->i] == ']') { p->i++; return v; }
    for (;;) {
        skip_ws(p);
        sj_value *item = parse_value(p, depth + 1);
        if (!item) goto bad;
        if (v->u.arr.count == cap) {
            size_t nc = cap ? cap * 2 : 4;
            sj_value **ni = realloc(v->u.arr.items, nc * sizeof *ni);
            if (!ni) { sj_free(item); fail(p, SJ_ERR_NOMEM, "out of memory"); goto bad; }
            v->u.arr.items = ni;
            cap = nc;
        }
        v->u.arr.items[v->u.arr.count++] = item;
        skip_ws(p);
        if (p->i >= p->n) { fail(p, SJ_ERR_SYNTAX, "unexpected end of input"); goto bad; }
        if (p->b[p->i] == ',') { p->i++; continue; }
        if (p->b[p->i] == ']') { p->i++; return v; }
        fail(p, SJ_ERR_SYNTAX, "expected ',' or ']'");
        goto bad;
    }
bad:
    sj_free(v);
    return NULL;
}

static sj_value *parse_object(parser *p, int depth)
{
    sj_value *v = new_value(p, SJ_OBJECT);
    if (!v) return NULL;
    size_t cap = 0;
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->b[p->i] == '}') { p->i++; return v; }
    for (;;) {
        skip_ws(p);
        if (p->i >= p->n || p->b[p->i] != '"') { fail(p, SJ_ERR_SYNTAX, "expected a string key"); goto bad; }
        size_t klen;
        char *key = parse_string(p, &klen);
        if (!key) goto bad;
        for (size_t k = 0; k < v->u.obj.count; k++) {
            if (v->u.obj.members[k].key_len == klen && memcmp(v->u.obj.members[k].key, key, klen) == 0) {
                free(key);
                fail(p, SJ_ERR_SYNTAX, "duplicate key");
                goto bad;
            }
        }
        skip_ws(p);
        if (p->i >= p->n || p->b[p->i] != ':') { free(key); fail(p, SJ_ERR_SYNTAX, "expected ':'"); goto bad; }
        p->i++;
        skip_ws(p);
        sj_value *item = parse_value(p, depth + 1);
        if (!item) { free(key); goto bad; }
        if (v->u.obj.count == cap) {
            size_t nc = cap ? cap * 2 : 8;
            sj_member *nm = realloc(v->u.obj.members, nc * sizeof *nm);
            if (!nm) { free(key); sj_free(item); fail(p, SJ_ERR_NOMEM, "out of memory"); goto bad; }
            v->u.obj.members = nm;
            cap = nc;
        }
        v->u.obj.members[v->u.obj.count].key = key;
        v->u.obj.members[v->u.obj.count].key_len = klen;
        v->u.obj.members[v->u.obj.count].value = item;
        v->u.obj.count++;
        skip_ws(p);
        if (p->i >= p->n) { fail(p, SJ_ERR_SYNTAX, "unexpected end of input"); goto bad; }
        if (p->b[p->i] == ',') { p->i++; continue; }
        if (p->b[p->i] == '}') { p->i++; return v; }
        fail(p, SJ_ERR_SYNTAX, "expected ',' or '}'");
        goto bad;
    }
bad:
    sj_free(v);
    return NULL;
}

static sj_value *parse_value(parser *p, int depth)
{
    if (depth > SJ_MAX_DEPTH) { fail(p, SJ_ERR_SYNTAX, "nesting too deep"); return NULL; }
    if (p->i >= p->n) { fail(p, SJ_ERR_SYNTAX, "unexpected end of input"); return NULL; }
    unsigned char c = p->b[p->i];
    sj_value *v;
    switch (c) {
    case '{': return parse_object(p, depth);
    case '[': return parse_array(p, depth);
    case '"': {
        size_t len;
        char *s = parse_string(p, &len);
        if (!s) return NULL;
        v = new_value(p, SJ_STRING);
        if (!v) { free(s); return NULL; }
        v->u.str.ptr = s;
        v->u.str.len = len;
        return v;
    }
    case 't':
        if (literal(p, "true")) return NULL;
        v = new_value(p, SJ_BOOL);
        if (v) v->u.boolean = true;
        return v;
    case 'f':
        if (literal(p, "false")) return NULL;
        v = new_value(p, SJ_BOOL);
        if (v) v->u.boolean = false;
        return v;
    case 'n':
        if (literal(p, "null")) return NULL;
        return new_value(p, SJ_NULL);
    default:
        if (c == '-' || is_digit(c)) return parse_number(p);
        fail(p, SJ_ERR_SYNTAX, "unexpected character");
        return NULL;
    }
}

sj_status sj_parse(const char *text, size_t len, sj_value **out, char *err, size_t errlen)
{
    parser p = { (const unsigned char *)text, len, 0, SJ_OK, err, errlen };
    *out = NULL;
    if (err && errlen) err[0] = 0;
    /* Whole-text UTF-8 check first, so a bad byte anywhere is reported as invalid_utf8. */
    {
        size_t i = 0;
        while (i < len) {
            size_t k = utf8_seq(p.b + i, len - i);
            if (!k) { p.i = i; fail(&p, SJ_ERR_UTF8, "invalid UTF-8"); return p.st; }
            i += k;
        }
    }
    skip_ws(&p);
    sj_value *v = parse_value(&p, 0);
    if (!v) return p.st == SJ_OK ? SJ_ERR_SYNTAX : p.st;
    skip_ws(&p);
    if (p.i != p.n) {
        sj_free(v);
        fail(&p, SJ_ERR_SYNTAX, "unexpected data after the JSON value");
        return p.st;
    }
    *out = v;
    return SJ_OK;
}

void sj_free(sj_value *v)
{
    if (!v) return;
    switch (v->type) {
    case SJ_STRING: free(v->u.str.ptr); break;
    case SJ_ARRAY:
        for (size_t i = 0; i < v->u.arr.count; i++) sj_free(v->u.arr.items[i]);
        free(v->u.arr.items);
        break;
    case SJ_OBJECT:
        for (size_t i = 0; i < v->u.obj.count; i++) {
            free(v->u.obj.members[i].key);
            sj_free(v->u.obj.members[i].value);
        }
        free(v->u.obj.members);
        break;
    default: break;
    }
    free(v);
}

const sj_value *sj_get(const sj_value *obj, const char *key)
{
    if (!obj || obj->type != SJ_OBJECT) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < obj->u.obj.count; i++)
        if (obj->u.obj.members[i].key_len == kl && memcmp(obj->u.obj.members[i].key, key, kl) == 0)
            return obj->u.obj.members[i].value;
    return NULL;
}

const char *sj_get_str(const sj_value *obj, const char *key)
{
    const sj_value *v = sj_get(obj, key);
    return v && v->type == SJ_STRING ? v->u.str.ptr : NULL;
}

bool sj_get_int(const sj_value *obj, const char *key, int64_t *out)
{
    const sj_value *v = sj_get(obj, key);
    if (!v || v->type != SJ_INT) return false;
    *out = v->u.integer;
    return true;
}

bool sj_get_num(const sj_value *obj, const char *key, double *out)
{
    const sj_value *v = sj_get(obj, key);
    if (!v) return false;
    if (v->type == SJ_INT) { *out = (double)v->u.integer; return true; }
    if (v->type == SJ_DOUBLE) { *out = v->u.number; return true; }
    return false;
}

bool sj_equal(const sj_value *a, const sj_value *b)
{
    if (!a || !b) return a == b;
    if (a->type != b->type) return false;
    switch (a->type) {
    case SJ_NULL: return true;
    case SJ_BOOL: return a->u.boolean == b->u.boolean;
    case SJ_INT: return a->u.integer == b->u.integer;
    case SJ_DOUBLE: return a->u.number == b->u.number;
    case SJ_STRING: return a->u.str.len == b->u.str.len && memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len) == 0;
    case SJ_ARRAY:
        if (a->u.arr.count != b->u.arr.count) return false;
        for (size_t i = 0; i < a->u.arr.count; i++)
            if (!sj_equal(a->u.arr.items[i], b->u.arr.items[i])) return false;
        return true;
    case SJ_OBJECT:
        if (a->u.obj.count != b->u.obj.count) return false;
        for (size_t i = 0; i < a->u.obj.count; i++) {
            const sj_value *o = sj_get(b, a->u.obj.members[i].key);
            if (!o || !sj_equal(a->u.obj.members[i].value, o)) return false;
        }
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------ writer */

void sjw_init(sj_writer *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->overflow = false;
    w->need_comma = false;
    if (cap) buf[0] = 0;
}

static void put(sj_writer *w, const char *s, size_t n)
{
    if (w->overflow) return;
    if (w->len + n >= w->cap) { w->overflow = true; return; }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void putc1(sj_writer *w, char c) { put(w, &c, 1); }

static void sep(sj_writer *w)
{
    if (w->need_comma) putc1(w, ',');
}

void sjw_obj_begin(sj_writer *w) { sep(w); putc1(w, '{'); w->need_comma = false; }
void sjw_obj_end(sj_writer *w) { putc1(w, '}'); w->need_comma = true; }
void sjw_arr_begin(sj_writer *w) { sep(w); putc1(w, '['); w->need_comma = false; }
void sjw_arr_end(sj_writer *w) { putc1(w, ']'); w->need_comma = true; }

static void put_string(sj_writer *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    putc1(w, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c == '"') { put(w, "\\\"", 2); i++; continue; }
        if (c == '\\') { put(w, "\\\\", 2); i++; continue; }
        if (c == '\n') { put(w, "\\n", 2); i++; continue; }
        if (c == '\r') { put(w, "\\r", 2); i++; continue; }
        if (c == '\t') { put(w, "\\t", 2); i++; continue; }
        if (c < 0x20 || c == 0x7F) {
            char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            put(w, e, 6);
            i++;
            continue;
        }
        size_t k = utf8_seq(p + i, n - i);
        if (!k) { put(w, "\xEF\xBF\xBD", 3); i++; continue; } /* U+FFFD for invalid bytes */
        put(w, s + i, k);
        i += k;
    }
    putc1(w, '"');
}

void sjw_key(sj_writer *w, const char *key)
{
    sep(w);
    put_string(w, key, strlen(key));
    putc1(w, ':');
    w->need_comma = false;
}

void sjw_strn(sj_writer *w, const char *s, size_t n) { sep(w); put_string(w, s, n); w->need_comma = true; }
void sjw_str(sj_writer *w, const char *s) { sjw_strn(w, s, strlen(s)); }

void sjw_int(sj_writer *w, int64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    sep(w);
    put(w, tmp, (size_t)n);
    w->need_comma = true;
}

void sjw_double(sj_writer *w, double v, int decimals)
{
    char tmp[64];
    int n;
    if (!isfinite(v)) v = 0;
    if (decimals >= 0) {
        if (decimals == 0) decimals = 1;
        n = snprintf(tmp, sizeof tmp, "%.*f", decimals, v);
    } else {
        n = snprintf(tmp, sizeof tmp, "%.17g", v);
        for (int p = 15; p <= 17; p++) { /* shortest form that reads back exactly */
            n = snprintf(tmp, sizeof tmp, "%.*g", p, v);
            if (strtod(tmp, NULL) == v) break;
        }
        if (!strpbrk(tmp, ".eEn")) { tmp[n++] = '.'; tmp[n++] = '0'; tmp[n] = 0; }
    }
    /* "-0.0" is valid JSON but odd; normalize. */
    if (strcmp(tmp, "-0.0") == 0) { strcpy(tmp, "0.0"); n = 3; }
    sep(w);
    put(w, tmp, (size_t)n);
    w->need_comma = true;
}

void sjw_bool(sj_writer *w, bool v) { sep(w); put(w, v ? "true" : "false", v ? 4 : 5); w->need_comma = true; }
void sjw_null(sj_writer *w) { sep(w); put(w, "null", 4); w->need_comma = true; }
void sjw_raw(sj_writer *w, const char *json, size_t n) { sep(w); put(w, json, n); w->need_comma = true; }

void sjw_raw2(sj_writer *w, const char *a, size_t an, const char *b, size_t bn)
{
    sep(w);
    put(w, a, an);
    put(w, b, bn);
    w->need_comma = true;
}

void sjw_value(sj_writer *w, const sj_value *v)
{
    switch (v->type) {
    case SJ_NULL: sjw_null(w); break;
    case SJ_BOOL: sjw_bool(w, v->u.boolean); break;
    case SJ_INT: sjw_int(w, v->u.integer); break;
    case SJ_DOUBLE: sjw_double(w, v->u.number, -1); break;
    case SJ_STRING: sjw_strn(w, v->u.str.ptr, v->u.str.len); break;
    case SJ_ARRAY:
        sjw_arr_begin(w);
        for (size_t i = 0; i < v->u.arr.count; i++) sjw_value(w, v->u.arr.items[i]);
        sjw_arr_end(w);
        break;
    case SJ_OBJECT:
        sjw_obj_begin(w);
        for (size_t i = 0; i < v->u.obj.count; i++) {
            sjw_key(w, v->u.obj.members[i].key);
            sjw_value(w, v->u.obj.members[i].value);
        }
        sjw_obj_end(w);
        break;
    }
}

int sjw_finish(sj_writer *w)
{
    if (w->overflow || w->len >= w->cap) { w->overflow = true; return -1; }
    w->buf[w->len] = 0;
    return 0;
}

void sjw_kv_str(sj_writer *w, const char *k, const char *v) { sjw_key(w, k); sjw_str(w, v); }
void sjw_kv_int(sj_writer *w, const char *k, int64_t v) { sjw_key(w, k); sjw_int(w, v); }
void sjw_kv_double(sj_writer *w, const char *k, double v, int decimals) { sjw_key(w, k); sjw_double(w, v, decimals); }
