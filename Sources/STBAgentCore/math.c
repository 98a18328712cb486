#include "stb_math.h"

#include <string.h>

#define LN2 0.693147180559945309417232121458176568
#define PI 3.14159265358979323846264338327950288

static double from_bits(uint64_t b) { double d; memcpy(&d, &b, sizeof d); return d; }
static uint64_t to_bits(double d) { uint64_t b; memcpy(&b, &d, sizeof b); return b; }

double stb_fabs(double x) { return x < 0 ? -x : x; }

/* 2^k for -1022 <= k <= 1023 */
static double pow2i(int k)
{
    if (k < -1022) return 0.0;
    if (k > 1023) return from_bits(0x7FF0000000000000ULL); /* +inf */
    return from_bits((uint64_t)(k + 1023) << 52);
}

double stb_exp(double x)
{
    if (x != x) return x;
    if (x > 709.0) return from_bits(0x7FF0000000000000ULL);
    if (x < -745.0) return 0.0;
    /* x = k ln2 + r, |r| <= ln2/2 */
    double kf = x / LN2;
    int k = (int)(kf < 0 ? kf - 0.5 : kf + 0.5);
    double r = x - k * LN2;
    /* Taylor series of e^r; |r| < 0.35 so 18 terms reach double precision */
    double term = 1.0, sum = 1.0;
    for (int n = 1; n < 18; n++) {
        term *= r / n;
        sum += term;
    }
    /* split the scaling so k near the limits does not overflow 2^k itself */
    if (k > 1000) return sum * pow2i(k - 1000) * pow2i(1000);
    if (k < -1000) return sum * pow2i(k + 1000) * pow2i(-1000);
    return sum * pow2i(k);
}

double stb_log(double x)
{
    if (!(x > 0)) return -745.0;
    if (x == from_bits(0x7FF0000000000000ULL)) return x;
    int e = 0;
    if (x < 2.2250738585072014e-308) { x *= 4503599627370496.0; e = -52; } /* subnormal: scale by 2^52 */
    uint64_t b = to_bits(x);
    e += (int)((b >> 52) & 0x7FF) - 1023;
    double m = from_bits((b & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL); /* [1, 2) */
    if (m > 1.4142135623730951) { m *= 0.5; e++; }                              /* [0.707, 1.414) */
    /* log m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172 */
    double s = (m - 1.0) / (m + 1.0), s2 = s * s, term = s, sum = 0.0;
    for (int n = 1; n < 40; n += 2) {
        sum += term / n;
        term *= s2;
    }
    return 2.0 * sum + e * LN2;
}

double stb_pow(double x, double y)
{
    if (y == 0.0) return 1.0;
    if (!(x > 0)) return 0.0;
    if (y == 1.0) return x;
    return stb_exp(y * stb_log(x));
}

double stb_sqrt(double x)
{
    if (!(x > 0)) return 0.0;
    double g = stb_exp(0.5 * stb_log(x));
    for (int i = 0; i < 3; i++) g = 0.5 * (g + x / g); /* Newton polishes the last bits */
    return g;
}

double stb_cos(double x)
{
    if (x != x) return x;
    /* reduce to [-pi, pi] */
    double twopi = 2.0 * PI;
    if (x > PI || x < -PI) {
        double n = x / twopi;
        long long k = (long long)(n < 0 ? n - 0.5 : n + 0.5);
        x -= (double)k * twopi;
    }
    /* cos(x) = 1 - 2 sin^2(x/2); with |x/2| <= pi/2 the sine series converges fast */
    double h = x * 0.5, h2 = h * h, term = h, s = 0.0;
    for (int n = 1; n < 30; n += 2) {
        s += term;
        term *= -h2 / ((n + 1) * (n + 2));
    }
    return 1.0 - 2.0 * s * s;
}

double stb_round(double x)
{
    if (x != x || stb_fabs(x) >= 4503599627370496.0) return x; /* NaN or already integral */
    double r = (double)(long long)(stb_fabs(x) + 0.5);
    return x < 0 ? -r : r;
}

long long stb_llround(double x)
{
    if (x != x) return 0;
    if (x >= 9.2e18) return INT64_MAX;
    if (x <= -9.2e18) return INT64_MIN;
    return (long long)stb_round(x);
}
