/* Unit tests of the STB agent core, held to the shared protocol examples.
 *
 *   STBAgentCoreTests [EXAMPLES_DIR]
 *
 * EXAMPLES_DIR defaults to $ARGUS_PROTOCOL_EXAMPLES, else docs/protocol/examples (relative
 * to the working directory). Prints one line per failure and a last line "N passed, M failed";
 * exits non-zero when anything failed. */
#include "stb_agent_core.h"

#include <dirent.h>
#include <errno.h>
#include "stb_math.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int passed, failed;
static const char *examples = "docs/protocol/examples";
static const char *current = "";

#define CHECK(cond, ...) check_impl((cond) ? 1 : 0, __LINE__, #cond, __VA_ARGS__)
static void check_impl(int ok, int line, const char *expr, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void check_impl(int ok, int line, const char *expr, const char *fmt, ...)
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

/* ------------------------------------------------------------------ helpers */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf) { fclose(f); return NULL; }
    size_t r = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[r] = 0;
    /* fixtures end with a newline; a frame does not */
    while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == '\r')) buf[--r] = 0;
    if (len) *len = r;
    return buf;
}

static char *example(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", examples, name);
    char *t = slurp(path, len);
    if (!t) {
        printf("cannot read %s: %s\n", path, strerror(errno));
        failed++;
    }
    return t;
}

static sj_value *parse_or_null(const char *text, size_t len)
{
    sj_value *v = NULL;
    if (sj_parse(text, len, &v, NULL, 0) != SJ_OK) return NULL;
    return v;
}

/* Compares encoder output with the example file, semantically. */
static void expect_same(const char *file, const char *encoded)
{
    size_t len;
    char *ex = example(file, &len);
    if (!ex) return;
    sj_value *a = parse_or_null(ex, len), *b = parse_or_null(encoded, strlen(encoded));
    CHECK(a && b && sj_equal(a, b), "encoder output for %s differs:\n  want %s\n  got  %s", file, ex, encoded);
    sj_free(a);
    sj_free(b);
    free(ex);
}

/* ------------------------------------------------------------------ fake environment */

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

static int64_t f_wall(void *c) { return ((fake *)c)->wall_ms; }
static int64_t f_mono(void *c) { return ((fake *)c)->mono_us; }
static void f_want(void *c, stb_box *b) { (void)b; ((fake *)c)->want_writes++; }
static void f_close(void *c, stb_box *b, int code, const char *r)
{
    (void)b; (void)r;
    ((fake *)c)->closes++;
    ((fake *)c)->last_close = code;
}
static int f_http(void *c, stb_box *b, const char *url)
{
    (void)b;
    fake *f = c;
    f->http_gets++;
    snprintf(f->url, sizeof f->url, "%s", url);
    return 0;
}
static void f_cancel(void *c, stb_box *b) { (void)b; ((fake *)c)->http_cancels++; }
static void f_screen(void *c, stb_box *b, const char *text, int64_t d)
{
    (void)b;
    fake *f = c;
    f->screens++;
    snprintf(f->screen_text, sizeof f->screen_text, "%s", text);
    f->screen_dur = d;
}
static void f_diag(void *c, stb_box *b, int level, const char *msg)
{
    (void)b; (void)level;
    ((fake *)c)->diags++;
    if (getenv("STB_TEST_VERBOSE")) fprintf(stderr, "  diag: %s\n", msg);
}

static const stb_ops fake_ops = { f_wall, f_mono, f_want, f_close, f_http, f_cancel, f_screen, f_diag };

static void advance(fake *f, int64_t ms)
{
    f->wall_ms += ms;
    f->mono_us += ms * 1000;
}

/* Collected outbound messages (batches flattened). */
typedef struct {
    sj_value *frames[4096];
    int nframes;
    const sj_value *msgs[8192];
    int nmsgs;
} outbox;

static void out_reset(outbox *o)
{
    for (int i = 0; i < o->nframes; i++) sj_free(o->frames[i]);
    o->nframes = 0;
    o->nmsgs = 0;
}

static char txbuf[1 << 20];

/* Drains everything the box wants to send, moving the clock for the rate limiter. */
static void drain(fake *f, stb_box *b, outbox *o)
{
    for (int round = 0; round < 400; round++) {
        size_t len;
        while (stb_box_next_frame(b, txbuf, sizeof txbuf, &len)) {
            sj_value *v = parse_or_null(txbuf, len);
            CHECK(v != NULL, "box sent invalid JSON: %.200s", txbuf);
            if (!v || o->nframes >= 4096) { sj_free(v); continue; }
            o->frames[o->nframes++] = v;
            const char *type = sj_get_str(v, "type");
            if (type && strcmp(type, "batch") == 0) {
                const sj_value *ms = sj_get(v, "messages");
                for (size_t i = 0; ms && i < ms->u.arr.count && o->nmsgs < 8192; i++) o->msgs[o->nmsgs++] = ms->u.arr.items[i];
            } else if (o->nmsgs < 8192) {
                o->msgs[o->nmsgs++] = v;
            }
        }
        if (stb_box_pending(b) == 0 || b->conn_state != STB_CONN_READY) break;
        advance(f, 1000);
    }
}

static void feed(stb_box *b, const char *json) { stb_box_on_frame(b, json, strlen(json)); }

static void cmd_frame(stb_box *b, const char *id, const char *name)
{
    char buf[256];
    snprintf(buf, sizeof buf, "{\"type\":\"command\",\"id\":\"%s\",\"name\":\"%s\",\"params\":{}}", id, name);
    feed(b, buf);
}

static void feed_example(stb_box *b, const char *file)
{
    size_t len;
    char *t = example(file, &len);
    if (t) stb_box_on_frame(b, t, len);
    free(t);
}

/* Opens a fake connection and completes hello/welcome. */
static void connect_box(fake *f, stb_box *b, outbox *o)
{
    (void)f;
    b->conn = (void *)b;
    stb_box_on_connecting(b);
    stb_box_on_open(b);
    size_t len;
    CHECK(stb_box_next_frame(b, txbuf, sizeof txbuf, &len) == 1, "hello is sent first");
    sj_value *h = parse_or_null(txbuf, len);
    CHECK(h && strcmp(sj_get_str(h, "type"), "hello") == 0, "first frame is hello: %.200s", txbuf);
    if (h && o && o->nframes < 4096) o->frames[o->nframes++] = h;
    else sj_free(h);
    CHECK(stb_box_next_frame(b, txbuf, sizeof txbuf, &len) == 0, "nothing before welcome");
    feed_example(b, "out-welcome.json");
    CHECK(b->conn_state == STB_CONN_READY, "welcome makes the session ready");
}

/* "state[/progress]" of every command_status for ref, joined by spaces. */
static void statuses(const outbox *o, const char *ref, char *out, size_t cap)
{
    out[0] = 0;
    size_t n = 0;
    for (int i = 0; i < o->nmsgs; i++) {
        const sj_value *m = o->msgs[i];
        const char *t = sj_get_str(m, "type");
        if (!t || strcmp(t, "command_status") != 0) continue;
        const char *r = sj_get_str(m, "ref");
        if (!r || strcmp(r, ref) != 0) continue;
        const char *st = sj_get_str(m, "state"), *pg = sj_get_str(m, "progress");
        n += (size_t)snprintf(out + n, cap - n, "%s%s%s%s", n ? " " : "", st ? st : "?", pg ? "/" : "", pg ? pg : "");
        if (n >= cap) break;
    }
}

static const sj_value *last_status(const outbox *o, const char *ref)
{
    const sj_value *found = NULL;
    for (int i = 0; i < o->nmsgs; i++) {
        const sj_value *m = o->msgs[i];
        const char *t = sj_get_str(m, "type"), *r = sj_get_str(m, "ref");
        if (t && r && strcmp(t, "command_status") == 0 && strcmp(r, ref) == 0) found = m;
    }
    return found;
}

static int count_type(const outbox *o, const char *type, const char *field, const char *value)
{
    int n = 0;
    for (int i = 0; i < o->nmsgs; i++) {
        const char *t = sj_get_str(o->msgs[i], "type");
        if (!t || strcmp(t, type) != 0) continue;
        if (field) {
            const char *v = sj_get_str(o->msgs[i], field);
            if (!v || (value && strcmp(v, value) != 0)) continue;
        }
        n++;
    }
    return n;
}

static char tmproot[256];

static char *tmpdir(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmproot, name);
    return path;
}

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        char p[1024];
        while ((de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
            snprintf(p, sizeof p, "%s/%s", path, de->d_name);
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rm_rf(p);
            else unlink(p);
        }
        closedir(d);
    }
    rmdir(path);
}

static bool file_exists(const char *dir, const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

/* A world with one box, no viewing model (deterministic frames). */
typedef struct {
    fake f;
    stb_world *w;
    stb_box *b;
    outbox o;
} rig;

static void rig_open(rig *r, const char *state_dir, uint32_t ring_cap)
{
    memset(&r->f, 0, sizeof r->f);
    r->f.wall_ms = 1795315579000LL;
    r->f.mono_us = 1000000000LL;
    r->o.nframes = r->o.nmsgs = 0;
    stb_config c;
    stb_config_defaults(&c);
    c.simulate = false;
    c.fsync = false;
    c.ring_cap = ring_cap;
    c.persist = state_dir != NULL;
    r->w = stb_world_new(&c, &fake_ops, &r->f);
    r->b = stb_box_new(r->w, 0, "stb-test-1", "secret", state_dir);
    CHECK(r->b && stb_box_start(r->b) == 0, "box starts");
}

static void rig_close(rig *r)
{
    out_reset(&r->o);
    stb_world_free(r->w);
}

/* Runs ticks for ms of fake time, in 100 ms steps. */
static void run_for(rig *r, int64_t ms)
{
    for (int64_t t = 0; t < ms; t += 100) {
        advance(&r->f, 100);
        stb_box_tick(r->b);
    }
}

/* ------------------------------------------------------------------ tests */

static void test_json(void)
{
    current = "json";
    const char *good[] = { "in-hello.json", "in-ping.json", "in-metrics.json", "in-event-tune.json", "in-log.json",
                           "in-batch.json", "in-command-status-progress.json", "in-command-status-rejected.json",
                           "out-welcome.json", "out-pong.json", "out-error.json", "out-ack.json",
                           "out-command-reboot.json", "out-command-firmware.json" };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        size_t len;
        char *t = example(good[i], &len);
        if (!t) continue;
        sj_value *v = NULL;
        CHECK(sj_parse(t, len, &v, NULL, 0) == SJ_OK && v->type == SJ_OBJECT, "%s parses", good[i]);
        sj_free(v);
        free(t);
    }
    struct { const char *file; sj_status st; } bad[] = {
        { "bad-invalid_json-duplicate-key.json", SJ_ERR_SYNTAX },
        { "bad-invalid_json-trailing-comma.json", SJ_ERR_SYNTAX },
        { "bad-invalid_utf8-bad-bytes.json", SJ_ERR_UTF8 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t len;
        char *t = example(bad[i].file, &len);
        if (!t) continue;
        sj_value *v = NULL;
        sj_status st = sj_parse(t, len, &v, NULL, 0);
        CHECK(st == bad[i].st, "%s is rejected with status %d (got %d)", bad[i].file, bad[i].st, st);
        sj_free(v);
        free(t);
    }
    const char *invalid[] = { "{\"a\":01}", "{\"a\":1,}", "[1,2", "{\"a\" 1}", "\"\\ud800\"", "{\"a\":tru}", "1 2",
                              "{\"a\":\"x\ny\"}", "/*c*/{}", "" };
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        sj_value *v = NULL;
        CHECK(sj_parse(invalid[i], strlen(invalid[i]), &v, NULL, 0) != SJ_OK, "rejects %s", invalid[i]);
        sj_free(v);
    }
    /* Same depth rule as the hub's parser (Sources/STBProtocol/JSON.swift): the root is
     * depth 0 and depth 32 is the deepest accepted. */
    char deep[100];
    memset(deep, '[', 34);
    memset(deep + 34, ']', 34);
    sj_value *v = NULL;
    CHECK(sj_parse(deep, 68, &v, NULL, 0) != SJ_OK, "nesting beyond depth 32 is rejected");
    sj_free(v);
    CHECK(sj_parse(deep + 1, 66, &v, NULL, 0) == SJ_OK, "depth 32 is accepted");
    sj_free(v);
    const char *esc = "{\"s\":\"a\\u00e9\\ud83d\\ude00\\n\\\"\"}";
    CHECK(sj_parse(esc, strlen(esc), &v, NULL, 0) == SJ_OK && strcmp(sj_get_str(v, "s"), "a\xC3\xA9\xF0\x9F\x98\x80\n\"") == 0,
          "escapes and surrogate pairs decode");
    char out[128];
    sj_writer w;
    sjw_init(&w, out, sizeof out);
    sjw_value(&w, v);
    sjw_finish(&w);
    sj_value *v2 = parse_or_null(out, w.len);
    CHECK(v2 && sj_equal(v, v2), "writer round-trips: %s", out);
    sj_free(v);
    sj_free(v2);
    const char *a = "{\"x\":1,\"y\":[1,2.5,\"s\"]}", *b = "{\"y\":[1,2.5,\"s\"],\"x\":1}", *c = "{\"x\":1.0,\"y\":[1,2.5,\"s\"]}";
    sj_value *va = parse_or_null(a, strlen(a)), *vb = parse_or_null(b, strlen(b)), *vc = parse_or_null(c, strlen(c));
    CHECK(sj_equal(va, vb), "member order does not matter");
    CHECK(!sj_equal(va, vc), "1 and 1.0 differ");
    sj_free(va);
    sj_free(vb);
    sj_free(vc);
    sjw_init(&w, out, 8);
    sjw_str(&w, "a long string");
    CHECK(sjw_finish(&w) != 0, "writer reports overflow");
}

static void test_encoders(void)
{
    current = "encoders";
    char buf[2048];
    sj_writer w;

    sjw_init(&w, buf, sizeof buf);
    stb_enc_hello(&w, "h-1", 1, 1795315579000LL, "argus-sim-1", "1.4.2", "5f0c2a9e7b1d4c3a");
    sjw_finish(&w);
    expect_same("in-hello.json", buf);

    sjw_init(&w, buf, sizeof buf);
    stb_enc_ping(&w, "p-7", 7, 1795315609000LL);
    sjw_finish(&w);
    expect_same("in-ping.json", buf);

    stb_metrics m = { .cpu = 23.5, .mem = 61.2, .temp_c = 54.0, .uptime_sec = 86400, .rtt_ms = 12.4,
                      .bitrate_kbps = 8200, .underruns = 0, .dropped_frames = 3 };
    sjw_init(&w, buf, sizeof buf);
    stb_enc_metrics(&w, "m-42", 42, 1795315639000LL, &m);
    sjw_finish(&w);
    expect_same("in-metrics.json", buf);

    sjw_init(&w, buf, sizeof buf);
    stb_enc_event(&w, "e-43", 43, 1795315640000LL, "tune", "bbc-one.uk", NULL);
    sjw_finish(&w);
    expect_same("in-event-tune.json", buf);

    sjw_init(&w, buf, sizeof buf);
    stb_enc_log(&w, "l-44", 44, 1795315641000LL, "warn", "player", "buffer underrun on bbc-one.uk", NULL);
    sjw_finish(&w);
    expect_same("in-log.json", buf);

    sjw_init(&w, buf, sizeof buf);
    stb_enc_batch_begin(&w, "b-45", 1795315642000LL);
    stb_enc_event(&w, NULL, 45, 1795315641500LL, "play_error", "bbc-one.uk", "E_DECODE");
    stb_enc_log(&w, NULL, 46, 1795315641600LL, "error", "player", "decoder reset", NULL);
    stb_enc_batch_end(&w);
    sjw_finish(&w);
    expect_same("in-batch.json", buf);

    sjw_init(&w, buf, sizeof buf);
    stb_enc_command_status(&w, "s-90", 90, -1, "x-7f3b", "in_progress", "verifying", NULL, NULL);
    sjw_finish(&w);
    expect_same("in-command-status-progress.json", buf);

    sjw_init(&w, buf, sizeof buf);
    stb_enc_command_status(&w, "s-91", 91, -1, "x-9999", "rejected", NULL, "unknown command teleport", NULL);
    sjw_finish(&w);
    expect_same("in-command-status-rejected.json", buf);

    /* The box's own buffered records encode to the same frames. */
    rig r;
    rig_open(&r, NULL, 100);
    char chfile[512];
    snprintf(chfile, sizeof chfile, "%s/channels.txt", tmproot);
    FILE *cf = fopen(chfile, "w");
    if (cf) { fputs("# test\nzdf.de\nbbc-one.uk BBC One\n", cf); fclose(cf); }
    CHECK(stb_world_load_channels(r.w, chfile) == 2, "channel file loads");
    r.w->sim_start_ms = r.w->real_start_ms; /* sim clock = fake wall clock */
    connect_box(&r.f, r.b, NULL);
    r.b->seq = 42;
    r.b->log_min = STB_LOG_WARN;
    stb_box_event(r.b, 1795315640000LL, STB_EV_TUNE, 1, -1);
    size_t len;
    CHECK(stb_box_next_frame(r.b, txbuf, sizeof txbuf, &len) == 1, "event frame");
    expect_same("in-event-tune.json", txbuf);
    r.b->seq = 44;
    r.f.wall_ms = 1795315642000LL;
    stb_box_event(r.b, 1795315641500LL, STB_EV_PLAY_ERROR, 1, 1);
    stb_box_log(r.b, 1795315641600LL, STB_LOG_ERROR, "player", "decoder reset");
    CHECK(stb_box_next_frame(r.b, txbuf, sizeof txbuf, &len) == 1, "batch frame");
    expect_same("in-batch.json", txbuf);
    r.b->seq = 43;
    stb_box_log_t(r.b, 1795315641000LL, STB_T_UNDERRUN, 1, -1, 0);
    CHECK(stb_box_next_frame(r.b, txbuf, sizeof txbuf, &len) == 1, "log frame");
    expect_same("in-log.json", txbuf);
    rig_close(&r);
}

static void test_decoders(void)
{
    current = "decoders";
    size_t len;
    char *t;
    stb_msg m;
    char err[200];

    if ((t = example("out-welcome.json", &len))) {
        CHECK(stb_decode(t, len, &m, err, sizeof err) == 0, "welcome decodes: %s", err);
        CHECK(m.kind == STB_MSG_WELCOME, "kind welcome");
        CHECK(m.ref && strcmp(m.ref, "h-1") == 0, "welcome ref");
        CHECK(m.protocol == 1 && m.server_time == 1795315579012LL, "protocol, serverTime");
        CHECK(m.session && strcmp(m.session, "0b1c2d3e4f5a6b7c") == 0, "session");
        CHECK(m.node && strcmp(m.node, "hub-a:8081") == 0, "node");
        CHECK(m.heartbeat_sec == 30, "heartbeatSec");
        CHECK(m.max_frame_bytes == 65536 && m.max_batch == 100 && m.messages_per_second == 50, "limits");
        stb_msg_free(&m);
        free(t);
    }
    if ((t = example("out-pong.json", &len))) {
        CHECK(stb_decode(t, len, &m, err, sizeof err) == 0 && m.kind == STB_MSG_PONG, "pong decodes");
        CHECK(m.ref && strcmp(m.ref, "p-7") == 0 && m.server_time == 1795315609004LL, "pong fields");
        stb_msg_free(&m);
        free(t);
    }
    if ((t = example("out-error.json", &len))) {
        CHECK(stb_decode(t, len, &m, err, sizeof err) == 0 && m.kind == STB_MSG_ERROR, "error decodes");
        CHECK(m.code && strcmp(m.code, "missing_field") == 0, "error code");
        CHECK(m.reason && strcmp(m.reason, "model is required") == 0, "error reason");
        CHECK(m.field && strcmp(m.field, "model") == 0 && m.ref && strcmp(m.ref, "h-2") == 0, "error field, ref");
        stb_msg_free(&m);
        free(t);
    }
    if ((t = example("out-ack.json", &len))) {
        CHECK(stb_decode(t, len, &m, err, sizeof err) == 0 && m.kind == STB_MSG_ACK && m.up_to == 46, "ack upTo 46");
        stb_msg_free(&m);
        free(t);
    }
    if ((t = example("out-command-reboot.json", &len))) {
        CHECK(stb_decode(t, len, &m, err, sizeof err) == 0 && m.kind == STB_MSG_COMMAND, "reboot command decodes");
        CHECK(strcmp(m.id, "x-7f3a") == 0 && strcmp(m.name, "reboot") == 0, "reboot id, name");
        CHECK(m.params && m.params->type == SJ_OBJECT && m.params->u.obj.count == 0, "reboot params {}");
        CHECK(m.deadline == 1795319242000LL, "reboot deadline");
        stb_msg_free(&m);
        free(t);
    }
    if ((t = example("out-command-firmware.json", &len))) {
        CHECK(stb_decode(t, len, &m, err, sizeof err) == 0 && m.kind == STB_MSG_COMMAND, "firmware command decodes");
        CHECK(strcmp(m.id, "x-7f3b") == 0 && strcmp(m.name, "firmware_update") == 0, "firmware id, name");
        int64_t size = 0;
        CHECK(strcmp(sj_get_str(m.params, "version"), "1.5.0") == 0, "params.version");
        CHECK(strcmp(sj_get_str(m.params, "url"), "http://127.0.0.1:8080/firmware/1.5.0.bin") == 0, "params.url");
        CHECK(sj_get_int(m.params, "size", &size) && size == 1048576, "params.size");
        CHECK(strcmp(sj_get_str(m.params, "sha256"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08") == 0, "params.sha256");
        CHECK(m.deadline == 1795319242000LL, "firmware deadline");
        stb_msg_free(&m);
        free(t);
    }
    const char *malformed[] = { "[\"ping\"]", "{\"id\":\"x\"}", "{\"type\":\"command\",\"name\":\"reboot\"}",
                                "{\"type\":\"command\",\"id\":\"x\",\"params\":{}}", "{\"type\":\"ack\"}",
                                "{\"type\":\"ack\",\"upTo\":-1}", "{\"type\":\"welcome\",\"heartbeatSec\":\"30\"}",
                                "{\"type\":\"command\",\"id\":\"x\",\"name\":\"reboot\",\"params\":[1]}", "not json" };
    for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++) {
        int rc = stb_decode(malformed[i], strlen(malformed[i]), &m, err, sizeof err);
        CHECK(rc != 0, "malformed frame rejected: %s", malformed[i]);
        if (rc == 0) stb_msg_free(&m);
    }
    const char *other = "{\"type\":\"teleport\"}";
    CHECK(stb_decode(other, strlen(other), &m, err, sizeof err) == 0 && m.kind == STB_MSG_OTHER, "unknown types decode as other");
    stb_msg_free(&m);
}

static void test_sha256(void)
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

static void test_math(void)
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

static void test_backoff(void)
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

static void test_fail_firmware_choice(void)
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

static void test_connection(void)
{
    current = "connection";
    rig r;
    rig_open(&r, NULL, 1000);
    stb_box *b = r.b;
    r.w->sim_start_ms = r.w->real_start_ms; /* sim = wall */
    b->conn = b;
    stb_box_on_connecting(b);
    stb_box_on_open(b);
    size_t len;
    CHECK(stb_box_next_frame(b, txbuf, sizeof txbuf, &len) == 1, "hello");
    sj_value *h = parse_or_null(txbuf, len);
    int64_t seq = -1, proto = 0;
    const char *boot = h ? sj_get_str(h, "bootId") : NULL;
    CHECK(h && strcmp(sj_get_str(h, "model"), "argus-sim-1") == 0 && strcmp(sj_get_str(h, "firmware"), "1.4.2") == 0, "hello model, firmware");
    CHECK(boot && strlen(boot) == 16, "bootId is 16 hex digits");
    CHECK(h && sj_get_int(h, "protocol", &proto) && proto == 1, "protocol 1");
    CHECK(h && sj_get_int(h, "seq", &seq) && seq >= 1, "hello has a seq");
    char boot1[17] = "";
    if (boot) snprintf(boot1, sizeof boot1, "%s", boot);
    sj_free(h);
    feed_example(b, "out-welcome.json");
    CHECK(b->heartbeat_sec == 30 && b->max_batch == 100 && b->mps == 50, "welcome limits applied");
    /* heartbeats */
    int before = r.o.nmsgs;
    run_for(&r, 95000);
    drain(&r.f, b, &r.o);
    int metrics = count_type(&r.o, "metrics", NULL, NULL);
    CHECK(metrics >= 3 && metrics <= 4, "a metrics heartbeat every heartbeatSec (%d in 95 s)", metrics);
    (void)before;
    const sj_value *mm = NULL;
    for (int i = 0; i < r.o.nmsgs; i++) if (strcmp(sj_get_str(r.o.msgs[i], "type"), "metrics") == 0) mm = r.o.msgs[i];
    const char *fields[] = { "cpu", "mem", "tempC", "uptimeSec", "rttMs", "bitrateKbps", "underruns", "droppedFrames" };
    for (size_t i = 0; mm && i < 8; i++) {
        double v = -1;
        CHECK(sj_get_num(mm, fields[i], &v) && v >= 0, "metrics.%s present", fields[i]);
    }
    /* telemetry is buffered until acked, sent in batches when there is a backlog */
    out_reset(&r.o);
    for (int i = 0; i < 250; i++) stb_box_event(b, -1, STB_EV_TUNE, -1, -1);
    drain(&r.f, b, &r.o);
    CHECK(count_type(&r.o, "event", NULL, NULL) == 250, "all 250 events sent (%d)", count_type(&r.o, "event", NULL, NULL));
    int batches = 0;
    for (int i = 0; i < r.o.nframes; i++) {
        const char *t = sj_get_str(r.o.frames[i], "type");
        if (t && strcmp(t, "batch") == 0) batches++;
    }
    CHECK(batches >= 3, "backlog goes out in batches (%d)", batches);
    int maxb = 0;
    for (int i = 0; i < r.o.nframes; i++) {
        const sj_value *ms = sj_get(r.o.frames[i], "messages");
        if (ms && (int)ms->u.arr.count > maxb) maxb = (int)ms->u.arr.count;
    }
    CHECK(maxb <= 40, "a batch respects the rate budget and maxBatch (%d)", maxb);
    uint32_t buffered = b->ring.count;
    CHECK(buffered >= 250, "unacked messages stay buffered (%u)", buffered);
    /* an error frame (the hub does not ingest telemetry yet) is tolerated */
    int closes = r.f.closes;
    feed(b, "{\"type\":\"error\",\"code\":\"unknown_type\",\"reason\":\"unknown message type \\\"event\\\"\",\"field\":\"type\"}");
    feed(b, "{\"type\":\"error\",\"code\":");
    feed(b, "\x01\x02garbage");
    CHECK(r.f.closes == closes && b->conn_state == STB_CONN_READY, "error and malformed frames keep the connection");
    CHECK(r.w->stats.malformed_rx == 2 && r.w->stats.errors_rx == 1, "counted: %llu malformed, %llu errors",
          (unsigned long long)r.w->stats.malformed_rx, (unsigned long long)r.w->stats.errors_rx);
    /* command_status never travels in a batch (the hub batches metrics, events and logs only) */
    out_reset(&r.o);
    for (int i = 0; i < 5; i++) stb_box_event(b, -1, STB_EV_TUNE, -1, -1);
    cmd_frame(b, "x-inbatch", "reload_portal");
    for (int i = 0; i < 5; i++) stb_box_event(b, -1, STB_EV_TUNE, -1, -1);
    drain(&r.f, b, &r.o);
    int in_batch = 0, alone = 0;
    for (int i = 0; i < r.o.nframes; i++) {
        const sj_value *ms = sj_get(r.o.frames[i], "messages");
        const char *t = sj_get_str(r.o.frames[i], "type");
        for (size_t k = 0; ms && k < ms->u.arr.count; k++)
            if (strcmp(sj_get_str(ms->u.arr.items[k], "type"), "command_status") == 0) in_batch++;
        if (t && strcmp(t, "command_status") == 0 && sj_get_str(r.o.frames[i], "id")) alone++;
    }
    CHECK(in_batch == 0 && alone == 3, "command_status frames go alone, with an id (%d in batches, %d alone)", in_batch, alone);
    /* ack drops everything up to upTo */
    uint32_t last = b->seq;
    char ack[64];
    snprintf(ack, sizeof ack, "{\"type\":\"ack\",\"upTo\":%u}", last);
    feed(b, ack);
    CHECK(b->ring.count == 0 && r.w->stats.acked >= 250, "ack upTo empties the buffer (%u left)", b->ring.count);
    /* reconnect: unacked messages are resent */
    out_reset(&r.o);
    for (int i = 0; i < 5; i++) stb_box_event(b, -1, STB_EV_LEAVE, -1, -1);
    drain(&r.f, b, &r.o);
    CHECK(count_type(&r.o, "event", "event", "leave") == 5, "5 sent");
    stb_box_on_closed(b, STB_END_CLOSED, 1001, 0, -1);
    CHECK(b->conn_state == STB_CONN_IDLE, "1001: back to idle for a reconnect");
    int64_t wait = b->next_connect_ms - stb_box_now_ms(b);
    CHECK(wait >= 0 && wait <= 1000, "after a stable session the first retry is within base (%lld)", (long long)wait);
    out_reset(&r.o);
    connect_box(&r.f, b, &r.o);
    drain(&r.f, b, &r.o);
    CHECK(count_type(&r.o, "event", "event", "leave") == 5, "resent after reconnect (%d)", count_type(&r.o, "event", "event", "leave"));
    /* same boot across reconnects */
    const char *boot2 = sj_get_str(r.o.frames[0], "bootId");
    CHECK(boot2 && strcmp(boot1, boot2) == 0, "reconnect keeps the boot id");
    /* backoff grows while the hub is gone, up to the cap, and never busy-loops. One sample per
     * failure proves little with full jitter, so the outage is repeated: each round starts after
     * a stable session (which resets the backoff) and fails 8 times in a row. Failure i then
     * draws from [0, ceiling(i)], ceiling(i) = min(1 s x 2^(i+1), 60 s); over the rounds its
     * largest delay must pass the previous ceiling (the ceiling grew) or, at the cap, come near
     * it, and the delays must spread over the range (jitter), never past the ceiling. */
    enum { ROUNDS = 64, FAILS = 8 };
    int64_t lo[FAILS], hi[FAILS];
    for (int i = 0; i < FAILS; i++) { lo[i] = INT64_MAX; hi[i] = -1; }
    for (int round = 0; round < ROUNDS; round++) {
        if (round > 0) {
            connect_box(&r.f, b, NULL);
            out_reset(&r.o);
            drain(&r.f, b, &r.o);
            snprintf(ack, sizeof ack, "{\"type\":\"ack\",\"upTo\":%u}", b->seq);
            feed(b, ack);
            advance(&r.f, 30000); /* stable_ms */
            stb_box_on_closed(b, STB_END_CLOSED, 1001, 0, -1);
        }
        for (int i = 0; i < FAILS; i++) {
            b->conn = b;
            stb_box_on_connecting(b);
            stb_box_on_closed(b, STB_END_CONNECT_FAILED, 0, 0, -1);
            int64_t d = b->next_connect_ms - stb_box_now_ms(b);
            int64_t ceiling = 1000LL << (i + 1 > 6 ? 6 : i + 1);
            if (ceiling > 60000) ceiling = 60000;
            CHECK(d >= 0 && d <= ceiling, "failure %d: delay %lld within [0, %lld]", i, (long long)d, (long long)ceiling);
            if (d < lo[i]) lo[i] = d;
            if (d > hi[i]) hi[i] = d;
        }
    }
    for (int i = 0; i < FAILS; i++) {
        int64_t ceiling = 1000LL << (i + 1 > 6 ? 6 : i + 1), below = 1000LL << i;
        if (ceiling > 60000) ceiling = 60000;
        if (below > 60000) below = 60000;
        if (below < ceiling)
            CHECK(hi[i] > below, "failure %d: the ceiling grew past %lld (largest delay %lld of %d)", i, (long long)below, (long long)hi[i], ROUNDS);
        else
            CHECK(hi[i] > ceiling * 3 / 4, "failure %d: at the cap, delays reach near %lld (largest %lld)", i, (long long)ceiling, (long long)hi[i]);
        CHECK(hi[i] - lo[i] > ceiling / 2, "failure %d: jitter varies the delay (%lld to %lld of [0, %lld])", i,
              (long long)lo[i], (long long)hi[i], (long long)ceiling);
    }
    b->conn = b;
    stb_box_on_connecting(b);
    stb_box_on_closed(b, STB_END_HTTP, 0, 503, 20);
    CHECK(b->next_connect_ms - stb_box_now_ms(b) >= 20000, "503 Retry-After honoured");
    b->conn = b;
    stb_box_on_connecting(b);
    stb_box_on_open(b);
    stb_box_on_closed(b, STB_END_CLOSED, 4001, 0, -1);
    CHECK(b->conn_state == STB_CONN_STOPPED && b->stop_reason == STB_STOP_REVOKED, "4001 stops the box");
    rig_close(&r);
}

static void test_refusals(void)
{
    current = "refusals";
    rig r;
    rig_open(&r, NULL, 1000);
    stb_box *b = r.b;
    connect_box(&r.f, b, NULL);
    for (int i = 0; i < 10; i++) stb_box_event(b, -1, STB_EV_TUNE, -1, -1);
    drain(&r.f, b, &r.o);
    /* the hub refuses the batch as invalid: it is not sent again */
    const sj_value *batch = NULL;
    for (int i = 0; i < r.o.nframes; i++)
        if (strcmp(sj_get_str(r.o.frames[i], "type"), "batch") == 0) batch = r.o.frames[i];
    CHECK(batch != NULL, "a batch was sent");
    char err[256];
    snprintf(err, sizeof err, "{\"type\":\"error\",\"code\":\"invalid_field\",\"reason\":\"x\",\"field\":\"messages[0].cpu\",\"ref\":\"%s\"}",
             batch ? sj_get_str(batch, "id") : "b-0");
    feed(b, err);
    feed(b, "{\"type\":\"error\",\"code\":\"invalid_field\",\"reason\":\"x\",\"ref\":\"q-1\"}"); /* not ours: ignored */
    stb_box_on_closed(b, STB_END_CLOSED, 1001, 0, -1);
    out_reset(&r.o);
    connect_box(&r.f, b, &r.o);
    drain(&r.f, b, &r.o);
    CHECK(count_type(&r.o, "event", NULL, NULL) == 0, "refused messages are not resent (%d)", count_type(&r.o, "event", NULL, NULL));
    /* rate_limited: everything unacknowledged goes again, after a pause */
    out_reset(&r.o);
    for (int i = 0; i < 6; i++) stb_box_event(b, -1, STB_EV_LEAVE, -1, -1);
    size_t len;
    int frames = 0;
    while (stb_box_next_frame(b, txbuf, sizeof txbuf, &len)) frames++;
    CHECK(frames >= 1, "sent");
    feed(b, "{\"type\":\"error\",\"code\":\"rate_limited\",\"reason\":\"over 50 messages per second; resend later\"}");
    CHECK(stb_box_next_frame(b, txbuf, sizeof txbuf, &len) == 0, "paused after rate_limited");
    CHECK(r.f.closes == 0 && b->conn_state == STB_CONN_READY, "still connected");
    drain(&r.f, b, &r.o);
    CHECK(count_type(&r.o, "event", "event", "leave") == 6, "all 6 resent after the pause (%d)", count_type(&r.o, "event", "event", "leave"));
    rig_close(&r);
}

static void test_buffer_persistence(void)
{
    current = "buffer";
    char *dir = tmpdir("buf");
    rig r;
    rig_open(&r, dir, 10);
    stb_box *b = r.b;
    char boot1[17];
    stb_box_boot_id_hex(b, boot1);
    uint32_t first = b->seq + 1;
    for (int i = 0; i < 25; i++) stb_box_event(b, -1, STB_EV_TUNE, -1, -1);
    CHECK(b->ring.count == 10, "bounded at 10 (%u)", b->ring.count);
    CHECK(b->ring.dropped >= 15, "oldest dropped and counted (%llu)", (unsigned long long)b->ring.dropped);
    uint32_t oldest = b->ring.r[b->ring.head].seq;
    CHECK(oldest == first + 15, "the oldest kept is seq %u (got %u)", first + 15, oldest);
    stb_box_flush(b, true);
    CHECK(file_exists(dir, "outbox.jsonl") && file_exists(dir, "boot.json"), "state files written");
    CHECK(!file_exists(dir, "outbox.jsonl.tmp"), "no temp file left (atomic rename)");
    uint32_t seq_before = b->seq;
    rig_close(&r);

    /* an agent restart resumes the boot and reloads the buffer */
    rig_open(&r, dir, 10);
    b = r.b;
    char boot2[17];
    stb_box_boot_id_hex(b, boot2);
    CHECK(strcmp(boot1, boot2) == 0, "restart resumes the boot id");
    CHECK(b->ring.count == 10, "buffer reloaded (%u)", b->ring.count);
    CHECK(b->ring.count && b->ring.r[b->ring.head].seq == oldest, "reloaded with the same seqs");
    CHECK(b->seq > seq_before, "seq continues past the persisted reservation (%u > %u)", b->seq, seq_before);
    connect_box(&r.f, b, &r.o);
    drain(&r.f, b, &r.o);
    CHECK(count_type(&r.o, "event", "event", "tune") == 10, "reloaded messages resent (%d)", count_type(&r.o, "event", "event", "tune"));
    char ack[64];
    snprintf(ack, sizeof ack, "{\"type\":\"ack\",\"upTo\":%u}", oldest + 4);
    feed(b, ack);
    CHECK(b->ring.count == 5, "ack removes up to upTo (%u left)", b->ring.count);
    stb_box_flush(b, true);
    rig_close(&r);
    rig_open(&r, dir, 10);
    CHECK(r.b->ring.count == 5, "acked messages are gone after a restart (%u)", r.b->ring.count);
    rig_close(&r);
}

static void cmd(stb_box *b, const char *id, const char *name, const char *params)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "{\"type\":\"command\",\"id\":\"%s\",\"name\":\"%s\",\"params\":%s,\"deadline\":1895319242000}", id, name, params);
    feed(b, buf);
}

static void test_commands(void)
{
    char st[512];
    rig r;

    current = "reboot";
    rig_open(&r, tmpdir("reboot"), 100);
    connect_box(&r.f, r.b, NULL);
    char boot1[17];
    stb_box_boot_id_hex(r.b, boot1);
    uint32_t seq_before = r.b->seq;
    feed_example(r.b, "out-command-reboot.json");
    drain(&r.f, r.b, &r.o);
    CHECK(r.f.closes == 1, "reboot closes the connection");
    CHECK(r.b->conn_state == STB_CONN_REBOOTING, "rebooting");
    run_for(&r, 900);
    CHECK(r.b->conn_state == STB_CONN_REBOOTING, "still down before 1 s");
    run_for(&r, 2200);
    CHECK(r.b->conn_state == STB_CONN_IDLE && stb_box_connect_due(r.b, stb_box_now_ms(r.b)), "back within 1-3 s, connecting");
    char boot2[17];
    stb_box_boot_id_hex(r.b, boot2);
    CHECK(strcmp(boot1, boot2) != 0, "new boot id after reboot");
    CHECK(r.b->seq < seq_before + 5 && r.b->seq < 20, "seq restarted (%u)", r.b->seq);
    connect_box(&r.f, r.b, &r.o);
    int64_t hseq = 0;
    sj_get_int(r.o.frames[r.o.nframes - 1], "seq", &hseq);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-7f3a", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/rebooting succeeded") == 0, "reboot states: %s", st);
    feed_example(r.b, "out-command-reboot.json");
    CHECK(r.f.closes == 1 && r.b->conn_state == STB_CONN_READY, "a second delivery does not reboot again");
    out_reset(&r.o);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-7f3a", st, sizeof st);
    CHECK(strcmp(st, "succeeded") == 0, "duplicate answered with the state reached: %s", st);
    rig_close(&r);

    current = "factory_reset";
    char *dir = tmpdir("reset");
    rig_open(&r, dir, 100);
    connect_box(&r.f, r.b, NULL);
    cmd(r.b, "x-cfg", "set_config", "{\"values\":{\"logLevel\":\"info\"}}");
    for (int i = 0; i < 20; i++) stb_box_event(r.b, -1, STB_EV_TUNE, -1, -1);
    stb_box_flush(r.b, true);
    {
        char p[600];
        snprintf(p, sizeof p, "%s/stray.tmp", dir);
        FILE *f = fopen(p, "w");
        if (f) { fputs("x", f); fclose(f); }
    }
    CHECK(file_exists(dir, "config.json"), "config persisted");
    cmd(r.b, "x-reset", "factory_reset", "{}");
    CHECK(!file_exists(dir, "config.json") && !file_exists(dir, "stray.tmp"), "state dir cleared");
    CHECK(r.b->log_min == STB_LOG_WARN, "config back to defaults");
    CHECK(stb_box_find_exec(r.b, "x-cfg") == NULL && stb_box_find_exec(r.b, "x-reset") != NULL, "executed ids cleared except the reset");
    CHECK(r.b->conn_state == STB_CONN_REBOOTING, "factory reset reboots");
    run_for(&r, 3200);
    connect_box(&r.f, r.b, &r.o);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-reset", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/resetting in_progress/rebooting succeeded") == 0, "reset states survive the wipe: %s", st);
    CHECK(count_type(&r.o, "event", "event", "tune") == 0, "buffer cleared (%d old events sent)", count_type(&r.o, "event", "event", "tune"));
    cmd(r.b, "x-reset", "factory_reset", "{}");
    CHECK(r.b->conn_state == STB_CONN_READY, "the reset is not run twice");
    rig_close(&r);

    current = "firmware";
    rig_open(&r, tmpdir("fw"), 100);
    connect_box(&r.f, r.b, NULL);
    cmd(r.b, "x-fw1", "firmware_update",
        "{\"version\":\"1.5.0\",\"url\":\"http://127.0.0.1:9/fw.bin\",\"size\":4,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
    CHECK(r.f.http_gets == 1 && strcmp(r.f.url, "http://127.0.0.1:9/fw.bin") == 0, "download started from params.url");
    stb_box_fw_data(r.b, "te", 2);
    stb_box_fw_data(r.b, "st", 2);
    stb_box_fw_done(r.b, true, 200, NULL);
    run_for(&r, 1600);
    CHECK(r.b->conn_state == STB_CONN_REBOOTING, "installs then reboots");
    run_for(&r, 3100);
    connect_box(&r.f, r.b, &r.o);
    CHECK(strcmp(sj_get_str(r.o.frames[r.o.nframes - 1], "firmware"), "1.5.0") == 0, "hello reports the new firmware");
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-fw1", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/downloading in_progress/verifying in_progress/installing in_progress/rebooting succeeded") == 0,
          "firmware states: %s", st);
    const sj_value *ls = last_status(&r.o, "x-fw1");
    CHECK(ls && strcmp(sj_get_str(sj_get(ls, "result"), "firmware"), "1.5.0") == 0, "result names the firmware");
    /* bad checksum: failed with a reason, old version kept */
    out_reset(&r.o);
    cmd(r.b, "x-fw2", "firmware_update",
        "{\"version\":\"1.6.0\",\"url\":\"http://127.0.0.1:9/fw2.bin\",\"size\":4,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
    stb_box_fw_data(r.b, "tesT", 4);
    stb_box_fw_done(r.b, true, 200, NULL);
    run_for(&r, 5000);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-fw2", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/downloading in_progress/verifying failed") == 0, "bad checksum states: %s", st);
    ls = last_status(&r.o, "x-fw2");
    CHECK(ls && sj_get_str(ls, "reason") && strstr(sj_get_str(ls, "reason"), "sha256 mismatch"), "reason names the checksum");
    CHECK(strcmp(r.b->firmware, "1.5.0") == 0 && r.b->firmware_next == NULL && r.b->conn_state == STB_CONN_READY,
          "old version kept, no reboot");
    /* size mismatch, HTTP error, timeout */
    out_reset(&r.o);
    cmd(r.b, "x-fw3", "firmware_update", "{\"version\":\"1.6.0\",\"url\":\"http://h/f\",\"size\":10,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
    stb_box_fw_data(r.b, "test", 4);
    stb_box_fw_done(r.b, true, 200, NULL);
    cmd(r.b, "x-fw4", "firmware_update", "{\"version\":\"1.6.0\",\"url\":\"http://h/f\",\"size\":4,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
    stb_box_fw_done(r.b, false, 404, NULL);
    cmd(r.b, "x-fw5", "firmware_update", "{\"version\":\"1.6.0\",\"url\":\"http://h/f\",\"size\":4,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
    cmd(r.b, "x-fw6", "firmware_update", "{\"version\":\"1.6.0\",\"url\":\"http://h/f\",\"size\":4,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
    run_for(&r, 301000);
    drain(&r.f, r.b, &r.o);
    ls = last_status(&r.o, "x-fw3");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "failed") == 0 && strstr(sj_get_str(ls, "reason"), "size mismatch"), "size mismatch fails");
    ls = last_status(&r.o, "x-fw4");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "failed") == 0 && strstr(sj_get_str(ls, "reason"), "HTTP 404"), "HTTP 404 fails");
    ls = last_status(&r.o, "x-fw6");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "rejected") == 0 && strstr(sj_get_str(ls, "reason"), "busy"), "a second concurrent update is rejected");
    ls = last_status(&r.o, "x-fw5");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "failed") == 0 && strstr(sj_get_str(ls, "reason"), "timed out"), "a stalled download times out");
    CHECK(r.f.http_cancels >= 1, "the stalled download is cancelled");
    CHECK(strcmp(r.b->firmware, "1.5.0") == 0, "still 1.5.0");
    out_reset(&r.o);
    cmd(r.b, "x-fw7", "firmware_update", "{\"version\":\"1.6.0\",\"url\":\"ftp://h/f\",\"size\":4,\"sha256\":\"00\"}");
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-fw7", st, sizeof st);
    CHECK(strcmp(st, "rejected") == 0, "bad params rejected: %s", st);
    /* --fail-firmware 1: downloaded and verified, then the install fails; no reboot */
    out_reset(&r.o);
    r.w->cfg.fail_firmware = 1.0;
    cmd(r.b, "x-fw8", "firmware_update", "{\"version\":\"1.6.0\",\"url\":\"http://h/f\",\"size\":4,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
    stb_box_fw_data(r.b, "test", 4);
    stb_box_fw_done(r.b, true, 200, NULL);
    run_for(&r, 5000);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-fw8", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/downloading in_progress/verifying in_progress/installing failed/installing") == 0,
          "injected failure states: %s", st);
    ls = last_status(&r.o, "x-fw8");
    CHECK(ls && sj_get_str(ls, "reason") && strcmp(sj_get_str(ls, "reason"), "injected install failure") == 0, "injected failure reason");
    CHECK(strcmp(r.b->firmware, "1.5.0") == 0 && r.b->firmware_next == NULL && r.b->conn_state == STB_CONN_READY,
          "injected failure keeps the old version, no reboot");
    r.w->cfg.fail_firmware = 0;
    rig_close(&r);

    current = "message";
    rig_open(&r, NULL, 100);
    connect_box(&r.f, r.b, NULL);
    cmd(r.b, "x-msg", "message", "{\"text\":\"Maintenance tonight at 02:00\",\"durationSec\":15}");
    drain(&r.f, r.b, &r.o);
    CHECK(r.f.screens == 1 && strcmp(r.f.screen_text, "Maintenance tonight at 02:00") == 0 && r.f.screen_dur == 15, "message shown on screen");
    statuses(&r.o, "x-msg", st, sizeof st);
    CHECK(strcmp(st, "received in_progress succeeded") == 0, "message states: %s", st);
    cmd(r.b, "x-msg", "message", "{\"text\":\"Maintenance tonight at 02:00\",\"durationSec\":15}");
    CHECK(r.f.screens == 1, "duplicate message not shown twice");
    char big[700];
    memset(big, 'x', 600);
    big[600] = 0;
    char params[800];
    snprintf(params, sizeof params, "{\"text\":\"%s\"}", big);
    cmd(r.b, "x-msg2", "message", params);
    out_reset(&r.o);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-msg2", st, sizeof st);
    CHECK(strcmp(st, "rejected") == 0 && r.f.screens == 1, "text over 512 bytes rejected: %s", st);

    current = "reload_portal";
    out_reset(&r.o);
    cmd(r.b, "x-rp", "reload_portal", "{}");
    drain(&r.f, r.b, &r.o);
    CHECK(count_type(&r.o, "event", "event", "portal_reload") == 1, "portal_reload event emitted");
    statuses(&r.o, "x-rp", st, sizeof st);
    CHECK(strcmp(st, "received in_progress succeeded") == 0, "reload states: %s", st);

    current = "set_config";
    out_reset(&r.o);
    cmd(r.b, "x-sc1", "set_config", "{\"values\":{\"logLevel\":\"debug\",\"metricsIntervalSec\":10}}");
    cmd(r.b, "x-sc2", "set_config", "{\"values\":{\"rootShell\":true}}");
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-sc1", st, sizeof st);
    CHECK(strcmp(st, "received in_progress succeeded") == 0 && r.b->log_min == STB_LOG_DEBUG && r.b->metrics_sec == 10, "config applied: %s", st);
    const sj_value *sc2 = last_status(&r.o, "x-sc2");
    CHECK(sc2 && strcmp(sj_get_str(sc2, "state"), "rejected") == 0 && strstr(sj_get_str(sc2, "reason"), "rootShell"), "key outside the allow-list rejected");

    current = "log_pull";
    for (int i = 0; i < 30; i++) {
        char t[64];
        snprintf(t, sizeof t, "line %d", i);
        stb_box_log(r.b, -1, STB_LOG_INFO, "test", t);
    }
    out_reset(&r.o);
    cmd(r.b, "x-lp", "log_pull", "{\"lines\":5}");
    drain(&r.f, r.b, &r.o);
    const sj_value *lp = last_status(&r.o, "x-lp");
    const sj_value *lines = lp ? sj_get(sj_get(lp, "result"), "lines") : NULL;
    CHECK(lp && strcmp(sj_get_str(lp, "state"), "succeeded") == 0 && lines && lines->type == SJ_ARRAY && lines->u.arr.count == 5,
          "log_pull returns 5 lines");
    /* the last line is the agent's own "command x-lp log_pull received" */
    CHECK(lines && lines->u.arr.count == 5 && strstr(lines->u.arr.items[3]->u.str.ptr, "info test: line 29") &&
          strstr(lines->u.arr.items[0]->u.str.ptr, "line 26") && strstr(lines->u.arr.items[4]->u.str.ptr, "x-lp"),
          "the most recent lines, oldest first: %s", lines && lines->u.arr.count ? lines->u.arr.items[0]->u.str.ptr : "-");
    cmd(r.b, "x-lp2", "log_pull", "{\"lines\":6000}");
    out_reset(&r.o);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-lp2", st, sizeof st);
    CHECK(strcmp(st, "rejected") == 0, "lines over 5000 rejected: %s", st);

    current = "log_tail";
    out_reset(&r.o);
    cmd(r.b, "x-lt", "log_tail", "{\"durationSec\":30}");
    stb_box_log(r.b, -1, STB_LOG_DEBUG, "test", "tailed one");
    stb_box_log_t(r.b, -1, STB_T_EPG, -1, -1, 42);
    cmd(r.b, "x-lt2", "log_tail", "{\"durationSec\":30}");
    drain(&r.f, r.b, &r.o);
    int tails = 0;
    for (int i = 0; i < r.o.nmsgs; i++) {
        const char *tl = sj_get_str(r.o.msgs[i], "tail");
        if (tl && strcmp(tl, "x-lt") == 0 && strcmp(sj_get_str(r.o.msgs[i], "type"), "log") == 0) tails++;
    }
    CHECK(tails >= 2, "log lines streamed with tail = execution id (%d)", tails);
    statuses(&r.o, "x-lt2", st, sizeof st);
    CHECK(strcmp(st, "rejected") == 0, "one tail at a time: %s", st);
    cmd(r.b, "x-lts", "log_tail_stop", "{\"ref\":\"x-lt\"}");
    stb_box_log(r.b, -1, STB_LOG_INFO, "test", "after stop");
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-lt", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/streaming succeeded") == 0, "tail states: %s", st);
    statuses(&r.o, "x-lts", st, sizeof st);
    CHECK(strcmp(st, "received in_progress succeeded") == 0 || strcmp(st, "received succeeded") == 0, "stop states: %s", st);
    int after = 0;
    for (int i = 0; i < r.o.nmsgs; i++) {
        const char *tl = sj_get_str(r.o.msgs[i], "tail"), *tx = sj_get_str(r.o.msgs[i], "text");
        if (tl && tx && strstr(tx, "after stop")) after++;
    }
    CHECK(after == 0, "no tail lines after log_tail_stop");
    out_reset(&r.o);
    cmd(r.b, "x-lt3", "log_tail", "{\"durationSec\":2}");
    run_for(&r, 2500);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-lt3", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/streaming succeeded") == 0, "tail ends after durationSec: %s", st);
    cmd(r.b, "x-lts2", "log_tail_stop", "{\"ref\":\"x-nope\"}");
    out_reset(&r.o);
    drain(&r.f, r.b, &r.o);
    ls = last_status(&r.o, "x-lts2");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "failed") == 0, "stopping a tail that is not running fails");

    current = "diagnostics";
    out_reset(&r.o);
    cmd(r.b, "x-dg", "diagnostics", "{}");
    for (int step = 0; step < 40; step++) {
        size_t len;
        while (stb_box_next_frame(r.b, txbuf, sizeof txbuf, &len)) {
            sj_value *v = parse_or_null(txbuf, len);
            if (v && strcmp(sj_get_str(v, "type"), "ping") == 0) {
                advance(&r.f, 3);
                char pong[128];
                snprintf(pong, sizeof pong, "{\"type\":\"pong\",\"ref\":\"%s\",\"serverTime\":1}", sj_get_str(v, "id"));
                feed(r.b, pong);
                sj_free(v);
            } else if (v && r.o.nframes < 4096) {
                r.o.frames[r.o.nframes++] = v;
                const sj_value *ms = sj_get(v, "messages");
                if (ms) for (size_t i = 0; i < ms->u.arr.count; i++) r.o.msgs[r.o.nmsgs++] = ms->u.arr.items[i];
                else r.o.msgs[r.o.nmsgs++] = v;
            } else {
                sj_free(v);
            }
        }
        run_for(&r, 100);
    }
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-dg", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/measuring succeeded") == 0, "diagnostics states: %s", st);
    const sj_value *dg = last_status(&r.o, "x-dg");
    const sj_value *rtts = dg ? sj_get(sj_get(dg, "result"), "rttMs") : NULL;
    CHECK(rtts && rtts->type == SJ_ARRAY && rtts->u.arr.count == 5, "5 RTT samples");
    for (size_t i = 0; rtts && i < rtts->u.arr.count; i++)
        CHECK(rtts->u.arr.items[i]->type == SJ_DOUBLE && stb_fabs(rtts->u.arr.items[i]->u.number - 3.0) < 0.01, "sample %zu is 3 ms", i);
    out_reset(&r.o);
    cmd(r.b, "x-dg2", "diagnostics", "{}");
    run_for(&r, 7000);
    out_reset(&r.o);
    drain(&r.f, r.b, &r.o); /* pings are sent but never answered */
    run_for(&r, 7000);
    drain(&r.f, r.b, &r.o);
    ls = last_status(&r.o, "x-dg2");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "failed") == 0, "no pong: diagnostics failed");

    current = "unknown";
    out_reset(&r.o);
    int closes = r.f.closes, screens = r.f.screens, gets = r.f.http_gets;
    cmd(r.b, "x-9999", "teleport", "{\"to\":\"mars\"}");
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-9999", st, sizeof st);
    CHECK(strcmp(st, "rejected") == 0, "unknown command rejected: %s", st);
    ls = last_status(&r.o, "x-9999");
    CHECK(ls && strcmp(sj_get_str(ls, "reason"), "unknown command teleport") == 0, "with a reason");
    CHECK(r.f.closes == closes && r.f.screens == screens && r.f.http_gets == gets && r.b->conn_state == STB_CONN_READY, "and nothing run");
    out_reset(&r.o);
    cmd(r.b, "x-9999", "teleport", "{}");
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-9999", st, sizeof st);
    CHECK(strcmp(st, "rejected") == 0, "a repeat gets the same answer: %s", st);

    current = "deadline";
    out_reset(&r.o);
    feed(r.b, "{\"type\":\"command\",\"id\":\"x-old\",\"name\":\"message\",\"params\":{\"text\":\"late\"},\"deadline\":1000}");
    drain(&r.f, r.b, &r.o);
    ls = last_status(&r.o, "x-old");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "rejected") == 0 && r.f.screens == screens, "an expired command is rejected, not run");

    current = "malformed";
    closes = r.f.closes;
    feed(r.b, "{\"type\":\"command\",\"name\":\"reboot\"}");
    feed(r.b, "{\"type\":\"command\",\"id\":\"x-p\",\"name\":\"reboot\",\"params\":\"now\"}");
    feed(r.b, "{{{{");
    CHECK(r.f.closes == closes && r.b->conn_state == STB_CONN_READY, "malformed commands logged, connection kept, nothing run");
    rig_close(&r);

    current = "at-most-once";
    dir = tmpdir("once");
    rig_open(&r, dir, 100);
    connect_box(&r.f, r.b, NULL);
    cmd(r.b, "x-once", "message", "{\"text\":\"hello\"}");
    CHECK(r.f.screens == 1, "shown once");
    rig_close(&r);
    rig_open(&r, dir, 100);
    connect_box(&r.f, r.b, &r.o);
    cmd(r.b, "x-once", "message", "{\"text\":\"hello\"}");
    CHECK(r.f.screens == 0, "not shown again after an agent restart");
    drain(&r.f, r.b, &r.o);
    ls = last_status(&r.o, "x-once");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "succeeded") == 0, "answered with the persisted state");
    /* the executed list is bounded */
    for (int i = 0; i < 300; i++) {
        char id[32];
        snprintf(id, sizeof id, "x-b%d", i);
        cmd(r.b, id, "reload_portal", "{}");
    }
    CHECK(r.b->n_exec == 256, "executed ids bounded at 256 (%u)", r.b->n_exec);
    CHECK(stb_box_find_exec(r.b, "x-b299") && !stb_box_find_exec(r.b, "x-b0"), "the oldest forgotten first");
    rig_close(&r);
}

/* ------------------------------------------------------------------ viewing model */

typedef struct { fake f; stb_world *w; } vworld;

static uint64_t run_world(uint64_t seed, int boxes, int64_t sim_hours, uint64_t *tunes_by_hour, uint32_t *chan_tunes, uint32_t nch_max,
                          uint64_t *errors)
{
    vworld v;
    memset(&v.f, 0, sizeof v.f);
    v.f.wall_ms = 1795305600000LL; /* 2026-11-22 00:00 UTC */
    v.f.mono_us = 1;
    stb_config c;
    stb_config_defaults(&c);
    c.seeded = true;
    c.seed = seed;
    c.persist = false;
    c.ring_cap = 100000;
    c.log_cap = 0;
    c.clock_speed = 1.0;
    v.w = stb_world_new(&c, &fake_ops, &v.f);
    stb_world_default_channels(v.w);
    for (int i = 0; i < boxes; i++) {
        char id[32];
        snprintf(id, sizeof id, "v%03d", i);
        stb_box *b = stb_box_new(v.w, (uint32_t)i, id, "s", NULL);
        stb_box_boot(b);
    }
    uint64_t hash = 1469598103934665603ULL;
    for (int64_t t = 0; t < sim_hours * 60; t++) {
        advance(&v.f, 60000);
        stb_world_advance(v.w);
        for (uint32_t i = 0; i < v.w->nboxes; i++) {
            stb_box *b = v.w->boxes[i];
            while (b->ring.count) {
                stb_rec *r = &b->ring.r[b->ring.head];
                if (r->kind == STB_REC_EVENT) {
                    hash ^= (uint64_t)r->ts * 31 + r->a * 7 + r->u.e.chan + i * 131;
                    hash *= 1099511628211ULL;
                    if (r->a == STB_EV_TUNE) {
                        int hour = (int)(((r->ts / 3600000) + 1) % 24);
                        if (tunes_by_hour) tunes_by_hour[hour]++;
                        if (chan_tunes && r->u.e.chan < nch_max) chan_tunes[r->u.e.chan]++;
                    }
                    if (r->a == STB_EV_PLAY_ERROR && errors) (*errors)++;
                }
                if (r->kind == STB_REC_RAW) free(r->u.raw);
                r->kind = 0;
                b->ring.head = (b->ring.head + 1) % b->ring.alloc;
                b->ring.count--;
            }
        }
    }
    stb_world_free(v.w);
    return hash;
}

static void test_viewing(void)
{
    current = "viewing";
    uint64_t by_hour[24] = { 0 };
    uint32_t chans[64] = { 0 };
    uint64_t errors = 0;
    uint64_t h1 = run_world(7, 200, 48, by_hour, chans, 64, &errors);
    uint64_t h2 = run_world(7, 200, 48, NULL, NULL, 0, NULL);
    uint64_t h3 = run_world(8, 200, 48, NULL, NULL, 0, NULL);
    CHECK(h1 == h2, "same seed, same viewing events");
    CHECK(h1 != h3, "another seed, other events");
    uint64_t evening = by_hour[19] + by_hour[20] + by_hour[21], night = by_hour[3] + by_hour[4] + by_hour[5];
    CHECK(evening > 4 * night, "evening peak: %llu tunes 19-22h vs %llu at 3-6h", (unsigned long long)evening, (unsigned long long)night);
    CHECK(chans[0] > chans[5] && chans[0] > chans[20], "Zipf: the first channel is the most tuned (%u, %u, %u)", chans[0], chans[5], chans[20]);
    CHECK(errors > 0, "channel outages produce play_error events (%llu)", (unsigned long long)errors);
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
