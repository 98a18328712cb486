/* Shared by the test files: fixtures, the fake environment (stb_ops), the outbox that
 * collects what a box sends, and the one-box rig. */
#include "tests.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

char *example(const char *name, size_t *len)
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

sj_value *parse_or_null(const char *text, size_t len)
{
    sj_value *v = NULL;
    if (sj_parse(text, len, &v, NULL, 0) != SJ_OK) return NULL;
    return v;
}

/* Compares encoder output with the example file, semantically. */
void expect_same(const char *file, const char *encoded)
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

const stb_ops fake_ops = { f_wall, f_mono, f_want, f_close, f_http, f_cancel, f_screen, f_diag };

void advance(fake *f, int64_t ms)
{
    f->wall_ms += ms;
    f->mono_us += ms * 1000;
}

void out_reset(outbox *o)
{
    for (int i = 0; i < o->nframes; i++) sj_free(o->frames[i]);
    o->nframes = 0;
    o->nmsgs = 0;
}

char txbuf[1 << 20];

/* Drains everything the box wants to send, moving the clock for the rate limiter. */
void drain(fake *f, stb_box *b, outbox *o)
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

void feed(stb_box *b, const char *json) { stb_box_on_frame(b, json, strlen(json)); }

void cmd_frame(stb_box *b, const char *id, const char *name)
{
    char buf[256];
    snprintf(buf, sizeof buf, "{\"type\":\"command\",\"id\":\"%s\",\"name\":\"%s\",\"params\":{}}", id, name);
    feed(b, buf);
}

void feed_example(stb_box *b, const char *file)
{
    size_t len;
    char *t = example(file, &len);
    if (t) stb_box_on_frame(b, t, len);
    free(t);
}

/* Opens a fake connection and completes hello/welcome. */
void connect_box(fake *f, stb_box *b, outbox *o)
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
void statuses(const outbox *o, const char *ref, char *out, size_t cap)
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

const sj_value *last_status(const outbox *o, const char *ref)
{
    const sj_value *found = NULL;
    for (int i = 0; i < o->nmsgs; i++) {
        const sj_value *m = o->msgs[i];
        const char *t = sj_get_str(m, "type"), *r = sj_get_str(m, "ref");
        if (t && r && strcmp(t, "command_status") == 0 && strcmp(r, ref) == 0) found = m;
    }
    return found;
}

int count_type(const outbox *o, const char *type, const char *field, const char *value)
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

char tmproot[256];

char *tmpdir(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmproot, name);
    return path;
}

void rm_rf(const char *path)
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

bool file_exists(const char *dir, const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

void rig_open(rig *r, const char *state_dir, uint32_t ring_cap)
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

void rig_close(rig *r)
{
    out_reset(&r->o);
    stb_world_free(r->w);
}

/* Runs ticks for ms of fake time, in 100 ms steps. */
void run_for(rig *r, int64_t ms)
{
    for (int64_t t = 0; t < ms; t += 100) {
        advance(&r->f, 100);
        stb_box_tick(r->b);
    }
}
