/* Small deterministic random numbers (splitmix64) and reconnection backoff. */
#ifndef STB_RAND_H
#define STB_RAND_H

#include <stdint.h>

uint64_t stb_rand_next(uint64_t *state);
/* Uniform in [0, 1). */
double stb_rand_unit(uint64_t *state);
/* Uniform integer in [lo, hi] (inclusive). */
int64_t stb_rand_range(uint64_t *state, int64_t lo, int64_t hi);
/* Exponential with the given mean. */
double stb_rand_exp(uint64_t *state, double mean);
/* Standard normal (Box-Muller). */
double stb_rand_normal(uint64_t *state);
/* Poisson with small mean (Knuth). */
uint32_t stb_rand_poisson(uint64_t *state, double mean);
/* Mixes a seed with a stream number into an independent state. */
uint64_t stb_rand_stream(uint64_t seed, uint64_t stream);
/* A seed from the OS (getrandom / /dev/urandom, falling back to time and pid). */
uint64_t stb_rand_os_seed(void);

/* ---- backoff: exponential with full jitter ---- */
typedef struct {
    uint32_t base_ms; /* 1000 */
    uint32_t cap_ms;  /* 60000 */
} stb_backoff_policy;

/* The ceiling for attempt n (0-based): min(cap, base * 2^n). */
uint32_t stb_backoff_ceiling(const stb_backoff_policy *p, uint32_t attempt);
/* Full jitter: uniform in [0, ceiling(attempt)]. */
uint32_t stb_backoff_delay(const stb_backoff_policy *p, uint32_t attempt, uint64_t *rng);

/* Why a connection ended, for choosing the reconnection delay. */
typedef enum {
    STB_END_CONNECT_FAILED = 0, /* refused, unreachable, handshake failed */
    STB_END_CLOSED,             /* close code below (or none: dropped) */
    STB_END_HTTP,               /* refused before the upgrade with an HTTP status */
} stb_end_kind;

typedef enum {
    STB_NEXT_RETRY = 0, /* reconnect after the delay */
    STB_NEXT_STOP,      /* do not reconnect (revoked, unauthorized) */
} stb_next_action;

/* Decides what to do after a connection ended. close_code 0 = no close frame;
 * http_status 0 = none; retry_after_s < 0 = no Retry-After header.
 * Sets *delay_ms (full jitter, honouring Retry-After and the close code) and returns the
 * action. The attempt counter is the number of consecutive failures so far. */
stb_next_action stb_reconnect_plan(const stb_backoff_policy *p, stb_end_kind kind, int close_code,
                                   int http_status, int retry_after_s, uint32_t attempt,
                                   uint64_t *rng, uint32_t *delay_ms);

#endif
