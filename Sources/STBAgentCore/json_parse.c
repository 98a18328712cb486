/* The JSON reader: UTF-8 validation and the parser (sj_parse). Values: json_value.c;
 * writer: json_write.c. */
#include "stb_json.h"
#include "json_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <errno.h>

/* ------------------------------------------------------------------ UTF-8 */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
size_t sj_utf8_seq(const unsigned char *s, size_t avail)
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
        size_t n = sj_utf8_seq(p + i, len - i);
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
        size_t k = sj_utf8_seq(p->b + p->i, p->n - p->i);
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
            size_t k = sj_utf8_seq(p.b + i, len - i);
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
