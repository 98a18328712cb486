/* SHA-256 (FIPS 180-4), incremental. */
#ifndef STB_SHA256_H
#define STB_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t block[64];
    uint32_t used;
} stb_sha256;

void stb_sha256_init(stb_sha256 *c);
void stb_sha256_update(stb_sha256 *c, const void *data, size_t len);
void stb_sha256_final(stb_sha256 *c, uint8_t out[32]);
/* One-shot; hex is 65 bytes (64 lowercase hex digits + NUL). */
void stb_sha256_hex(const void *data, size_t len, char hex[65]);
void stb_hex(const uint8_t *bytes, size_t n, char *out /* 2n+1 */);

#endif
