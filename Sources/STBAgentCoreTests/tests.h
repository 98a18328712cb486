/* Shared by the agent core test files: the CHECK macro and its counters (main.c), the fake
 * environment, outbox and rig with their helpers (support.c), and the test functions that
 * main() runs. */
#ifndef STB_AGENT_CORE_TESTS_H
#define STB_AGENT_CORE_TESTS_H

#include "stb_agent_core.h"
#include "stb_math.h"

/* ------------------------------------------------------------------ checks (main.c) */

extern int passed, failed;
extern const char *examples;
extern const char *current;

#define CHECK(cond, ...) check_impl((cond) ? 1 : 0, __LINE__, #cond, __VA_ARGS__)
void check_impl(int ok, int line, const char *expr, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------------ helpers (support.c) */

char *example(const char *name, size_t *len);
sj_value *parse_or_null(const char *text, size_t len);
void expect_same(const char *file, const char *encoded);

typedef struct {
    int64_t wall_ms, mono_us;
    int want_writes, closes, last_close;
    int http_gets, http_cancels;
    char url[512];
    int screens;
    char screen_text[600];
    int64_t screen_dur;
    int diags;
} fake;

extern const stb_ops fake_ops;
void advance(fake *f, int64_t ms);

/* Collected outbound messages (batches flattened). */
typedef struct {
    sj_value *frames[4096];
    int nframes;
    const sj_value *msgs[8192];
    int nmsgs;
} outbox;

void out_reset(outbox *o);
extern char txbuf[1 << 20];
void drain(fake *f, stb_box *b, outbox *o);
void feed(stb_box *b, const char *json);
void cmd_frame(stb_box *b, const char *id, const char *name);
void feed_example(stb_box *b, const char *file);
void connect_box(fake *f, stb_box *b, outbox *o);
void statuses(const outbox *o, const char *ref, char *out, size_t cap);
const sj_value *last_status(const outbox *o, const char *ref);
int count_type(const outbox *o, const char *type, const char *field, const char *value);

extern char tmproot[256];
char *tmpdir(const char *name);
void rm_rf(const char *path);
bool file_exists(const char *dir, const char *name);

/* A world with one box, no viewing model (deterministic frames). */
typedef struct {
    fake f;
    stb_world *w;
    stb_box *b;
    outbox o;
} rig;

void rig_open(rig *r, const char *state_dir, uint32_t ring_cap);
void rig_close(rig *r);
void run_for(rig *r, int64_t ms);

/* ------------------------------------------------------------------ tests, in the order main() runs them */

void test_json(void);            /* test_protocol.c */
void test_encoders(void);
void test_decoders(void);
void test_sha256(void);          /* test_primitives.c */
void test_math(void);
void test_backoff(void);
void test_fail_firmware_choice(void);
void test_connection(void);      /* test_frames.c */
void test_refusals(void);
void test_buffer_persistence(void); /* test_buffer.c */
void test_commands(void);        /* test_commands.c */
void test_viewing(void);         /* test_viewing.c */

#endif
