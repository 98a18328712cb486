/* Strict JSON (RFC 8259) parser and an appending writer for the STB agent.
 * The parser rejects what the hub rejects: trailing commas, comments, duplicate keys,
 * leading zeros, invalid UTF-8 or escapes, nesting deeper than 32. */
#ifndef STB_JSON_H
#define STB_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum { SJ_NULL, SJ_BOOL, SJ_INT, SJ_DOUBLE, SJ_STRING, SJ_ARRAY, SJ_OBJECT } sj_type;

typedef struct sj_value sj_value;
typedef struct sj_member { char *key; size_t key_len; sj_value *value; } sj_member;

struct sj_value {
    sj_type type;
    union {
        bool boolean;
        int64_t integer;
        double number;
        struct { char *ptr; size_t len; } str; /* NUL-terminated copy */
        struct { sj_value **items; size_t count; } arr;
        struct { sj_member *members; size_t count; } obj; /* document order */
    } u;
};

#define SJ_MAX_DEPTH 32

typedef enum { SJ_OK = 0, SJ_ERR_SYNTAX = 1, SJ_ERR_UTF8 = 2, SJ_ERR_NOMEM = 3 } sj_status;

/* Parses one JSON text. On success *out owns a tree (free with sj_free). On failure err
 * (if not NULL) receives a message with the byte offset. */
sj_status sj_parse(const char *text, size_t len, sj_value **out, char *err, size_t errlen);
void sj_free(sj_value *v);

/* Lookups; NULL when absent or of another type. */
const sj_value *sj_get(const sj_value *obj, const char *key);
const char *sj_get_str(const sj_value *obj, const char *key);
/* Returns true and sets *out when key is an integer. */
bool sj_get_int(const sj_value *obj, const char *key, int64_t *out);
/* Returns true for an integer or a double. */
bool sj_get_num(const sj_value *obj, const char *key, double *out);

/* Semantic equality: objects compare as sets of members (order-insensitive), arrays in
 * order, integers and doubles are distinct types (1 != 1.0). */
bool sj_equal(const sj_value *a, const sj_value *b);

/* True when the bytes are valid UTF-8 (no overlongs, no surrogates). */
bool sj_utf8_valid(const char *s, size_t len);

/* ---- writer: appends into a caller buffer; overflow is sticky ---- */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow;
    bool need_comma;
} sj_writer;

void sjw_init(sj_writer *w, char *buf, size_t cap);
void sjw_obj_begin(sj_writer *w);
void sjw_obj_end(sj_writer *w);
void sjw_arr_begin(sj_writer *w);
void sjw_arr_end(sj_writer *w);
void sjw_key(sj_writer *w, const char *key);
void sjw_str(sj_writer *w, const char *s);
void sjw_strn(sj_writer *w, const char *s, size_t n);
void sjw_int(sj_writer *w, int64_t v);
/* decimals >= 0: fixed with that many decimals (always a '.' so it reads back as a double);
 * decimals < 0: shortest round-trip form, with ".0" added when integral. */
void sjw_double(sj_writer *w, double v, int decimals);
void sjw_bool(sj_writer *w, bool v);
void sjw_null(sj_writer *w);
/* Appends pre-encoded JSON as one value. */
void sjw_raw(sj_writer *w, const char *json, size_t n);
/* Appends one value given as two pre-encoded pieces (a then b). */
void sjw_raw2(sj_writer *w, const char *a, size_t an, const char *b, size_t bn);
/* Serializes a parsed tree. */
void sjw_value(sj_writer *w, const sj_value *v);
/* NUL-terminates (if room) and returns 0, or -1 on overflow. */
int sjw_finish(sj_writer *w);

/* Convenience key/value helpers. */
void sjw_kv_str(sj_writer *w, const char *k, const char *v);
void sjw_kv_int(sj_writer *w, const char *k, int64_t v);
void sjw_kv_double(sj_writer *w, const char *k, double v, int decimals);

#endif
