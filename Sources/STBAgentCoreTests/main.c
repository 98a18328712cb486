/* Unit tests of the STB agent core, held to the shared protocol examples.
 *
 *   STBAgentCoreTests [EXAMPLES_DIR]
 *
 * EXAMPLES_DIR defaults to $ARGUS_PROTOCOL_EXAMPLES, else docs/protocol/examples (relative
 * to the working directory). Prints one line per failure and a last line "N passed, M failed";
 * exits non-zero when anything failed.
 *
 * The tests are split by concern: test_protocol.c (JSON, encoders, decoders),
 * test_primitives.c (SHA-256, math, backoff, injected firmware failures), test_frames.c
 * (connection, batches, acks, refusals), test_buffer.c (the bounded buffer and its
 * persistence), test_commands.c, test_viewing.c; support.c holds the fake environment and
 * helpers, tests.h the CHECK macro. */
#include "tests.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int passed, failed;
const char *examples = "docs/protocol/examples";
const char *current = "";

void check_impl(int ok, int line, const char *expr, const char *fmt, ...)
{
    if (ok) { passed++; return; }
    failed++;
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("FAIL [%s] line %d: %s (%s)\n", current, line, msg, expr);
}

int main(int argc, char **argv)
{
    const char *env = getenv("ARGUS_PROTOCOL_EXAMPLES");
    if (argc > 1) examples = argv[1];
    else if (env && *env) examples = env;
    snprintf(tmproot, sizeof tmproot, "/tmp/stb-core-tests-XXXXXX");
    if (!mkdtemp(tmproot)) { perror("mkdtemp"); return 1; }
    setvbuf(stdout, NULL, _IOLBF, 0);

    test_json();
    test_encoders();
    test_decoders();
    test_sha256();
    test_math();
    test_backoff();
    test_fail_firmware_choice();
    test_connection();
    test_refusals();
    test_buffer_persistence();
    test_commands();
    test_viewing();

    rm_rf(tmproot);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
