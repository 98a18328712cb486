/* The JSON writer: sj_writer into a caller-owned buffer (sjw_*). */
#include "stb_json.h"
#include "json_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

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
        size_t k = sj_utf8_seq(p + i, n - i);
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
