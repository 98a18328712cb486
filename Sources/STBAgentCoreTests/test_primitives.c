/* SHA-256, the math library, reconnect backoff and the injected firmware failure draw. */
#include "tests.h"

#include <stdio.h>
#include <string.h>

void test_sha256(void)
{
    current = "sha256";
    char hex[65];
    stb_sha256_hex("", 0, hex);
    CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0, "sha256('') = %s", hex);
    stb_sha256_hex("abc", 3, hex);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0, "sha256(abc) = %s", hex);
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    stb_sha256_hex(m448, strlen(m448), hex);
    CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0, "sha256(448 bits) = %s", hex);
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    stb_sha256_hex(m896, strlen(m896), hex);
    CHECK(strcmp(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1") == 0, "sha256(896 bits) = %s", hex);
    stb_sha256 c;
    stb_sha256_init(&c);
    char block[1001];
    memset(block, 'a', sizeof block);
    for (int i = 0; i < 1000; i++) stb_sha256_update(&c, block, i % 2 ? 999 : 1001); /* odd chunks */
    uint8_t d[32];
    stb_sha256_final(&c, d);
    stb_hex(d, 32, hex);
    CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0, "sha256(10^6 x a) = %s", hex);
    stb_sha256_hex("test", 4, hex);
    CHECK(strcmp(hex, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08") == 0, "fixture digest is sha256(test)");
}

static void near(double got, double want, const char *what)
{
    double tol = 1e-12 * (stb_fabs(want) > 1 ? stb_fabs(want) : 1);
    CHECK(stb_fabs(got - want) <= tol, "%s = %.17g, want %.17g", what, got, want);
}

void test_math(void)
{
    current = "math";
    near(stb_exp(0), 1, "exp(0)");
    near(stb_exp(1), 2.718281828459045, "exp(1)");
    near(stb_exp(-3.5), 0.0301973834223185, "exp(-3.5)");
    near(stb_exp(100), 2.6881171418161356e43, "exp(100)");
    near(stb_log(1), 0, "log(1)");
    near(stb_log(10), 2.302585092994046, "log(10)");
    near(stb_log(1e-300), -690.7755278982137, "log(1e-300)");
    near(stb_log(0.75), -0.2876820724517809, "log(0.75)");
    near(stb_sqrt(2), 1.4142135623730951, "sqrt(2)");
    near(stb_sqrt(1e6), 1000, "sqrt(1e6)");
    near(stb_cos(0), 1, "cos(0)");
    near(stb_cos(3.141592653589793 / 3), 0.5, "cos(pi/3)");
    near(stb_cos(6.0), 0.960170286650366, "cos(6)");
    near(stb_cos(-2.5), -0.8011436155469337, "cos(-2.5)");
    near(stb_pow(2, 10), 1024, "pow(2,10)");
    near(stb_pow(0.3, 2.5), 0.04929503017546495, "pow(0.3,2.5)");
    CHECK(stb_round(2.5) == 3 && stb_round(-2.5) == -3 && stb_round(2.49) == 2 && stb_llround(23.45 * 10) == 235, "rounding");
    for (double x = 0.001; x < 700; x *= 1.7) near(stb_log(stb_exp(x)), x, "log(exp(x))");
}

void test_backoff(void)
{
    current = "backoff";
    stb_backoff_policy p = { 1000, 60000 };
    uint32_t want[] = { 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000 };
    for (uint32_t a = 0; a < 9; a++) CHECK(stb_backoff_ceiling(&p, a) == want[a], "ceiling(%u) = %u", a, stb_backoff_ceiling(&p, a));
    CHECK(stb_backoff_ceiling(&p, 1000) == 60000, "huge attempt stays capped");
    uint64_t rng = 42;
    for (uint32_t a = 0; a < 12; a++) {
        uint32_t ceil = stb_backoff_ceiling(&p, a), lo = UINT32_MAX, hi = 0;
        double sum = 0;
        int n = 4000;
        for (int i = 0; i < n; i++) {
            uint32_t d = stb_backoff_delay(&p, a, &rng);
            if (d < lo) lo = d;
            if (d > hi) hi = d;
            sum += d;
        }
        CHECK(hi <= ceil, "attempt %u: delay %u <= ceiling %u", a, hi, ceil);
        CHECK(lo < ceil / 20 + 1, "attempt %u: full jitter reaches near 0 (min %u)", a, lo);
        CHECK(hi > ceil - ceil / 20 - 1, "attempt %u: full jitter reaches near the ceiling (max %u)", a, hi);
        double mean = sum / n;
        CHECK(stb_fabs(mean - ceil / 2.0) < ceil * 0.05, "attempt %u: mean %.0f about ceiling/2", a, mean);
    }
    uint32_t d;
    CHECK(stb_reconnect_plan(&p, STB_END_CLOSED, 4001, 0, -1, 0, &rng, &d) == STB_NEXT_STOP, "4001 revoked stops");
    CHECK(stb_reconnect_plan(&p, STB_END_HTTP, 0, 401, -1, 0, &rng, &d) == STB_NEXT_STOP, "401 stops");
    for (int i = 0; i < 200; i++) {
        CHECK(stb_reconnect_plan(&p, STB_END_HTTP, 0, 503, 7, 3, &rng, &d) == STB_NEXT_RETRY && d >= 7000 && d <= 7000 + 8000,
              "503 Retry-After 7 waits 7 s plus jitter (%u)", d);
        CHECK(stb_reconnect_plan(&p, STB_END_CLOSED, 4000, 0, -1, 0, &rng, &d) == STB_NEXT_RETRY && d >= 60000 && d <= 61000,
              "4000 replaced waits longer (%u)", d);
        CHECK(stb_reconnect_plan(&p, STB_END_CLOSED, 1001, 0, -1, 2, &rng, &d) == STB_NEXT_RETRY && d <= 4000,
              "1001 drain: backoff (%u)", d);
        CHECK(stb_reconnect_plan(&p, STB_END_CONNECT_FAILED, 0, 0, -1, 10, &rng, &d) == STB_NEXT_RETRY && d <= 60000,
              "connect failure capped (%u)", d);
    }
}

void test_fail_firmware_choice(void)
{
    current = "fail-firmware";
    CHECK(!stb_fw_injected_failure("sim000001", "x-1", 0) && stb_fw_injected_failure("sim000001", "x-1", 1), "P = 0 never, P = 1 always");
    double d = stb_fw_fail_draw("sim000001", "x-1");
    CHECK(d >= 0 && d < 1 && d == stb_fw_fail_draw("sim000001", "x-1"), "the draw is in [0, 1) and reproducible (%g)", d);
    CHECK(stb_fw_injected_failure("sim000001", "x-1", d + 1e-9) && !stb_fw_injected_failure("sim000001", "x-1", d),
          "fails exactly when the draw is below P");
    /* Over a fleet: about P of the boxes fail, and another command picks other boxes. */
    int fail_a = 0, fail_b = 0, both = 0;
    char id[32];
    for (int i = 1; i <= 20000; i++) {
        snprintf(id, sizeof id, "sim%06d", i);
        bool a = stb_fw_injected_failure(id, "cmd-a", 0.3), b = stb_fw_injected_failure(id, "cmd-b", 0.3);
        fail_a += a;
        fail_b += b;
        both += a && b;
    }
    CHECK(fail_a > 5700 && fail_a < 6300 && fail_b > 5700 && fail_b < 6300, "about 30 %% fail (%d, %d of 20000)", fail_a, fail_b);
    CHECK(both > 1500 && both < 2100, "the choices for two commands are independent (%d in both, ~1800 expected)", both);
}
