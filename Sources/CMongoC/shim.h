#ifndef ARGUS_CMONGOC_SHIM_H
#define ARGUS_CMONGOC_SHIM_H
/*
 * libmongoc / libbson for Swift. bson_t, bson_iter_t and bson_error_t are declared with
 * alignment attributes that Swift cannot import, so Swift sees them as opaque pointers.
 * These tiny helpers allocate them on the heap and read their fields. Only MongoStore
 * includes this module.
 */
#include <stdlib.h>
#include <string.h>
#include <mongoc/mongoc.h>
#include <bson/bson.h>

/* --- iteration -------------------------------------------------------------------- */

static inline bson_iter_t *argus_iter_new(void) {
    void *p = NULL;
    if (posix_memalign(&p, 128, sizeof(bson_iter_t)) != 0) return NULL;
    memset(p, 0, sizeof(bson_iter_t));
    return (bson_iter_t *)p;
}
static inline void argus_iter_free(bson_iter_t *iter) { free(iter); }
static inline int argus_iter_type(const bson_iter_t *iter) { return (int)bson_iter_type(iter); }
static inline const uint8_t *argus_iter_oid_bytes(const bson_iter_t *iter) { return bson_iter_oid(iter)->bytes; }
static inline uint32_t argus_iter_timestamp_t(const bson_iter_t *iter) {
    uint32_t t = 0, i = 0; bson_iter_timestamp(iter, &t, &i); return t;
}
static inline uint32_t argus_iter_timestamp_i(const bson_iter_t *iter) {
    uint32_t t = 0, i = 0; bson_iter_timestamp(iter, &t, &i); return i;
}
/* Writes the decimal128 value as text into buf (at least BSON_DECIMAL128_STRING bytes). */
static inline void argus_iter_decimal128_string(const bson_iter_t *iter, char *buf) {
    bson_decimal128_t d; buf[0] = 0;
    if (bson_iter_decimal128(iter, &d)) bson_decimal128_to_string(&d, buf);
}
static inline const uint8_t *argus_iter_binary(const bson_iter_t *iter, uint32_t *len, int *subtype) {
    const uint8_t *data = NULL; bson_subtype_t st = BSON_SUBTYPE_BINARY;
    bson_iter_binary(iter, &st, len, &data); *subtype = (int)st; return data;
}

/* --- appending -------------------------------------------------------------------- */

static inline bool argus_append_oid(bson_t *b, const char *key, const uint8_t *bytes12) {
    bson_oid_t oid; memcpy(oid.bytes, bytes12, 12); return bson_append_oid(b, key, -1, &oid);
}
static inline void argus_oid_generate(uint8_t *out12) {
    bson_oid_t oid; bson_oid_init(&oid, NULL); memcpy(out12, oid.bytes, 12);
}

/* --- errors ----------------------------------------------------------------------- */

static inline bson_error_t *argus_error_new(void) {
    return (bson_error_t *)calloc(1, sizeof(bson_error_t));
}
static inline void argus_error_free(bson_error_t *e) { free(e); }
static inline uint32_t argus_error_domain(const bson_error_t *e) { return e->domain; }
static inline uint32_t argus_error_code(const bson_error_t *e) { return e->code; }
static inline const char *argus_error_message(const bson_error_t *e) { return e->message; }

#endif
