#include "stb_rand.h"

#include "stb_math.h"
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

uint64_t stb_rand_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

double stb_rand_unit(uint64_t *s) { return (double)(stb_rand_next(s) >> 11) * (1.0 / 9007199254740992.0); }

int64_t stb_rand_range(uint64_t *s, int64_t lo, int64_t hi)
{
    if (hi <= lo) return lo;
    uint64_t span = (uint64_t)(hi - lo) + 1;
    return lo + (int64_t)(stb_rand_next(s) % span);
}

double stb_rand_exp(uint64_t *s, double mean)
{
    double u = stb_rand_unit(s);
    return -mean * stb_log(1.0 - u);
}

double stb_rand_normal(uint64_t *s)
{
    double u1 = stb_rand_unit(s), u2 = stb_rand_unit(s);
    if (u1 < 1e-300) u1 = 1e-300;
    return stb_sqrt(-2.0 * stb_log(u1)) * stb_cos(6.283185307179586 * u2);
}

uint32_t stb_rand_poisson(uint64_t *s, double mean)
{
    if (mean <= 0) return 0;
    if (mean > 30) {
        double v = mean + stb_sqrt(mean) * stb_rand_normal(s);
        return v < 0 ? 0 : (uint32_t)(v + 0.5);
    }
    double l = stb_exp(-mean), p = 1.0;
    uint32_t k = 0;
    do { k++; p *= stb_rand_unit(s); } while (p > l);
    return k - 1;
}

uint64_t stb_rand_stream(uint64_t seed, uint64_t stream)
{
    uint64_t s = seed ^ (stream * 0xD1B54A32D192ED03ULL + 0x8CB92BA72F3D8DD7ULL);
    stb_rand_next(&s);
    return stb_rand_next(&s);
}

uint64_t stb_rand_os_seed(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) == (ssize_t)sizeof v) return v;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        size_t n = fread(&v, sizeof v, 1, f);
        fclose(f);
        if (n == 1) return v;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    v = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    stb_rand_next(&v);
    return v;
}

uint32_t stb_backoff_ceiling(const stb_backoff_policy *p, uint32_t attempt)
{
    uint64_t c = p->base_ms;
    for (uint32_t i = 0; i < attempt && c < p->cap_ms; i++) c *= 2;
    return c > p->cap_ms ? p->cap_ms : (uint32_t)c;
}

uint32_t stb_backoff_delay(const stb_backoff_policy *p, uint32_t attempt, uint64_t *rng)
{
    uint32_t ceil = stb_backoff_ceiling(p, attempt);
    return (uint32_t)stb_rand_range(rng, 0, ceil);
}

stb_next_action stb_reconnect_plan(const stb_backoff_policy *p, stb_end_kind kind, int close_code,
                                   int http_status, int retry_after_s, uint32_t attempt,
                                   uint64_t *rng, uint32_t *delay_ms)
{
    uint32_t jitter = stb_backoff_delay(p, attempt, rng);
    *delay_ms = jitter;
    if (kind == STB_END_HTTP) {
        if (http_status == 401 || http_status == 403) return STB_NEXT_STOP;
        if (retry_after_s >= 0) {
            /* At least Retry-After, plus jitter so a refused fleet does not return in step. */
            uint64_t d = (uint64_t)retry_after_s * 1000u + jitter;
            *delay_ms = d > 3600000u ? 3600000u : (uint32_t)d;
        }
        return STB_NEXT_RETRY;
    }
    if (kind == STB_END_CLOSED) {
        switch (close_code) {
        case 4001: return STB_NEXT_STOP; /* revoked */
        case 4000: {
            /* Replaced: another copy of this box is connected. Do not fight it: wait the
             * full cap plus jitter before trying again. */
            uint64_t d = (uint64_t)p->cap_ms + jitter;
            *delay_ms = (uint32_t)d;
            return STB_NEXT_RETRY;
        }
        case 4029: {
            /* Rate limited: at least half the cap, plus jitter. */
            *delay_ms = p->cap_ms / 2 + jitter;
            return STB_NEXT_RETRY;
        }
        default: return STB_NEXT_RETRY; /* 1000, 1001 drain, 1011, 4002 idle, dropped: backoff */
        }
    }
    return STB_NEXT_RETRY;
}
