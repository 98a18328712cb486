/* One simulated set-top box: boot and sequence numbers, the bounded telemetry buffer,
 * frame production, inbound handling and commands. Transport-free; see stb_ops. */
#include "stb_agent_core.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include "stb_math.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ tables */

const char *const stb_event_names[STB_EV_COUNT] = {
    "tune", "leave", "standby_on", "standby_off", "play_start", "play_stop", "play_error", "app_crash", "portal_reload",
};
const char *const stb_level_names[4] = { "debug", "info", "warn", "error" };
const char *const stb_state_names[6] = { "none", "received", "in_progress", "succeeded", "failed", "rejected" };
const char *const stb_progress_names[STB_PG_COUNT] = {
    NULL, "downloading", "verifying", "installing", "rebooting", "resetting", "streaming", "measuring",
};
const char *const stb_cmd_names[STB_CMD_COUNT] = {
    "unknown", "reboot", "factory_reset", "firmware_update", "message", "reload_portal", "set_config",
    "log_pull", "log_tail", "log_tail_stop", "diagnostics",
};
const char *const stb_error_codes[STB_ERR_CODES] = { "E_NO_SIGNAL", "E_DECODE", "E_DRM", "E_CDN_TIMEOUT", "E_NETWORK" };

typedef struct { uint8_t level; const char *source; const char *fmt; } tmpl_t;
/* %c channel, %e error code, %n number */
static const tmpl_t templates[STB_T_COUNT] = {
    [STB_T_TEXT] = { STB_LOG_INFO, "", "" },
    [STB_T_UNDERRUN] = { STB_LOG_WARN, "player", "buffer underrun on %c" },
    [STB_T_DECODER_RESET] = { STB_LOG_ERROR, "player", "decoder reset on %c" },
    [STB_T_TUNED] = { STB_LOG_DEBUG, "player", "tuned to %c in %n ms" },
    [STB_T_PLAY_ERROR] = { STB_LOG_ERROR, "player", "playback error %e on %c" },
    [STB_T_RECOVERED] = { STB_LOG_INFO, "player", "playback recovered on %c" },
    [STB_T_STANDBY_ON] = { STB_LOG_INFO, "power", "standby on" },
    [STB_T_STANDBY_OFF] = { STB_LOG_INFO, "power", "standby off" },
    [STB_T_CRASH] = { STB_LOG_ERROR, "portal", "portal crashed (signal %n), restarting" },
    [STB_T_PORTAL_RELOAD] = { STB_LOG_INFO, "portal", "portal reloaded" },
    [STB_T_CONNECTED] = { STB_LOG_INFO, "agent", "connected to hub" },
    [STB_T_CONN_LOST] = { STB_LOG_WARN, "agent", "connection to hub lost (close %n)" },
    [STB_T_UNREACHABLE] = { STB_LOG_WARN, "agent", "hub unreachable, retrying in %n ms" },
    [STB_T_EPG] = { STB_LOG_DEBUG, "epg", "EPG refreshed: %n events" },
    [STB_T_PACKET_LOSS] = { STB_LOG_WARN, "net", "multicast packet loss %n per mille on %c" },
    [STB_T_PLAYING] = { STB_LOG_INFO, "player", "playing %c at %n kbps" },
};

int stb_level_parse(const char *s)
{
    if (!s) return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, stb_level_names[i]) == 0) return i;
    return -1;
}

#define NONE16 0xFFFF
#define SEQ_RESERVE 1000
#define MAX_ATTEMPT 30

/* ------------------------------------------------------------------ config, time */

void stb_config_defaults(stb_config *c)
{
    memset(c, 0, sizeof *c);
    c->ring_cap = 10000;
    c->log_cap = 2000;
    c->exec_cap = 256;
    c->direct_cap = 512;
    c->persist = true;
    c->fsync = true;
    c->flush_interval_ms = 3000;
    c->model = "argus-sim-1";
    c->firmware = "1.4.2";
    c->clock_speed = 1.0;
    c->force_outage = -1;
    c->simulate = true;
    c->reboot_min_ms = 1000;
    c->reboot_max_ms = 3000;
    c->install_ms = 1500;
    c->download_timeout_ms = 300000;
    c->diag_pings = 5;
    c->diag_interval_ms = 200;
    c->diag_timeout_ms = 5000;
    c->ping_every = 10;
    c->stable_ms = 30000;
    c->rate_fraction = 0.8;
    c->backoff.base_ms = 1000;
    c->backoff.cap_ms = 60000;
    c->log_level_min = STB_LOG_WARN;
}

int64_t stb_box_now_ms(const stb_box *b) { return b->w->ops->mono_us(b->w->ops_ctx) / 1000; }
static int64_t now_us(const stb_box *b) { return b->w->ops->mono_us(b->w->ops_ctx); }
static int64_t wall_ms(const stb_box *b) { return b->w->ops->wall_ms(b->w->ops_ctx); }
static int64_t sim_ms(const stb_box *b) { return stb_world_sim_ms(b->w); }

static void diagf(stb_box *b, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void diagf(stb_box *b, int level, const char *fmt, ...)
{
    if (!b->w->ops->diag) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->w->ops->diag(b->w->ops_ctx, b, level, msg);
}

static char *xstrdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static void set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = xstrdup(src);
}

const char *stb_channel_name(const stb_world *w, int chan)
{
    if (chan < 0 || (uint32_t)chan >= w->nch) return "unknown";
    return w->ch[chan].name;
}

void stb_box_boot_id_hex(const stb_box *b, char out[17])
{
    snprintf(out, 17, "%016llx", (unsigned long long)b->boot_id);
}

/* ------------------------------------------------------------------ files */

int stb_mkdirs(const char *path, unsigned mode)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) { errno = ENAMETOOLONG; return -1; }
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST) return -1;
            tmp[i] = c;
        }
    }
    return 0;
}

int stb_write_atomic(const char *path, const char *data, size_t len, bool do_fsync)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) { errno = ENAMETOOLONG; return -1; }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            errno = e;
            return -1;
        }
        off += (size_t)w;
    }
    if (do_fsync && fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        return -1;
    }
    if (close(fd) != 0) { unlink(tmp); return -1; }
    if (rename(tmp, path) != 0) { int e = errno; unlink(tmp); errno = e; return -1; }
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) { fclose(f); return NULL; }
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); fclose(f); return NULL; }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r < 4096) break;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static void state_path(const stb_box *b, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", b->state_dir, name);
}

static bool persisting(const stb_box *b) { return b->state_dir && b->w->cfg.persist; }

/* ------------------------------------------------------------------ buffer */

static void rec_free(stb_rec *r)
{
    if (r->kind == STB_REC_RAW) free(r->u.raw);
    r->kind = 0;
}

static stb_rec *ring_at(const stb_ring *r, uint32_t i) { return &r->r[(r->head + i) % r->alloc]; }

static void ring_pop(stb_ring *r)
{
    rec_free(ring_at(r, 0));
    r->head = (r->head + 1) % r->alloc;
    r->count--;
    if (r->sent) r->sent--;
}

static void ring_clear(stb_ring *r)
{
    while (r->count) ring_pop(r);
    r->head = 0;
    r->sent = 0;
}

static stb_rec *ring_push(stb_box *b)
{
    stb_ring *r = &b->ring;
    if (r->cap == 0) r->cap = 1;
    if (r->count >= r->cap) {
        ring_pop(r);
        r->dropped++;
        b->w->stats.dropped++;
    }
    if (r->count == r->alloc) {
        uint32_t na = r->alloc ? r->alloc * 2 : 8;
        if (na > r->cap) na = r->cap;
        stb_rec *nr = malloc((size_t)na * sizeof *nr);
        if (!nr) return NULL;
        for (uint32_t i = 0; i < r->count; i++) nr[i] = *ring_at(r, i);
        free(r->r);
        r->r = nr;
        r->alloc = na;
        r->head = 0;
    }
    stb_rec *rec = &r->r[(r->head + r->count) % r->alloc];
    memset(rec, 0, sizeof *rec);
    r->count++;
    b->dirty = 1;
    return rec;
}

uint32_t stb_box_pending(const stb_box *b) { return b->ring.count - b->ring.sent; }

/* ------------------------------------------------------------------ seq, kick */

static void write_boot(stb_box *b);

static uint32_t next_seq(stb_box *b)
{
    b->seq++;
    if (b->seq > b->seq_reserved) {
        /* Persist a reservation ahead of use, so a restarted agent never reuses a seq. */
        b->seq_reserved = b->seq + SEQ_RESERVE;
        if (persisting(b)) write_boot(b);
    }
    return b->seq;
}

static void kick(stb_box *b)
{
    if ((b->conn_state == STB_CONN_OPEN || b->conn_state == STB_CONN_READY) && !b->write_wanted && b->conn) {
        b->write_wanted = 1;
        b->w->ops->want_write(b->w->ops_ctx, b);
    }
}

/* ------------------------------------------------------------------ encoding */

static size_t fmt_tmpl(const stb_world *w, int tmpl, int chan, int code, uint32_t num, char *out, size_t cap)
{
    const char *f = templates[tmpl].fmt;
    size_t n = 0;
    out[0] = 0;
    for (; *f && n + 1 < cap; f++) {
        const char *ins = NULL;
        char numbuf[16];
        if (*f == '%' && f[1]) {
            f++;
            if (*f == 'c') ins = stb_channel_name(w, chan);
            else if (*f == 'e') ins = (code >= 0 && code < STB_ERR_CODES) ? stb_error_codes[code] : "E_UNKNOWN";
            else if (*f == 'n') { snprintf(numbuf, sizeof numbuf, "%u", num); ins = numbuf; }
            else ins = "%";
            size_t k = strlen(ins);
            if (n + k >= cap) k = cap - n - 1;
            memcpy(out + n, ins, k);
            n += k;
        } else {
            out[n++] = *f;
        }
    }
    out[n] = 0;
    return n;
}

static char id_prefix(int kind, int a)
{
    switch (kind) {
    case STB_REC_METRICS: return 'm';
    case STB_REC_EVENT: return 'e';
    case STB_REC_LOG: return 'l';
    default: return a ? (char)a : 'x';
    }
}

static void enc_rec(const stb_box *b, sj_writer *w, const stb_rec *r, bool with_id)
{
    char id[24];
    snprintf(id, sizeof id, "%c-%u", id_prefix(r->kind, r->a), r->seq);
    const char *idp = with_id ? id : NULL;
    switch (r->kind) {
    case STB_REC_METRICS: {
        stb_metrics m = {
            .cpu = r->u.m.cpu10 / 10.0, .mem = r->u.m.mem10 / 10.0, .temp_c = r->u.m.temp10 / 10.0,
            .uptime_sec = r->u.m.uptime, .rtt_ms = r->u.m.rtt10 / 10.0, .bitrate_kbps = r->u.m.kbps,
            .underruns = r->a, .dropped_frames = r->b,
        };
        stb_enc_metrics(w, idp, r->seq, r->ts, &m);
        break;
    }
    case STB_REC_EVENT:
        stb_enc_event(w, idp, r->seq, r->ts, stb_event_names[r->a % STB_EV_COUNT],
                      r->u.e.chan == NONE16 ? NULL : stb_channel_name(b->w, r->u.e.chan),
                      r->u.e.code == NONE16 ? NULL : stb_error_codes[r->u.e.code % STB_ERR_CODES]);
        break;
    case STB_REC_LOG: {
        char text[512];
        int t = r->b < STB_T_COUNT ? r->b : STB_T_TEXT;
        fmt_tmpl(b->w, t, r->u.e.chan == NONE16 ? -1 : r->u.e.chan, r->u.e.code == NONE16 ? -1 : r->u.e.code,
                 r->u.e.num, text, sizeof text);
        stb_enc_log(w, idp, r->seq, r->ts, stb_level_names[r->a & 3], templates[t].source, text, NULL);
        break;
    }
    case STB_REC_RAW: {
        size_t n = strlen(r->u.raw);
        if (with_id && n > 2 && r->u.raw[0] == '{') {
            char pre[48];
            int k = snprintf(pre, sizeof pre, "{\"id\":\"%s\",", id);
            sjw_raw2(w, pre, (size_t)k, r->u.raw + 1, n - 1);
        } else {
            sjw_raw(w, r->u.raw, n);
        }
        break;
    }
    default: break;
    }
}

/* Encodes into the world scratch buffer and returns a heap copy. */
static char *scratch_dup(sj_writer *w)
{
    if (sjw_finish(w) != 0) return NULL;
    char *p = malloc(w->len + 1);
    if (p) memcpy(p, w->buf, w->len + 1);
    return p;
}

static void push_raw(stb_box *b, char prefix, uint32_t seq, int64_t ts, char *json)
{
    if (!json) return;
    stb_rec *r = ring_push(b);
    if (!r) { free(json); return; }
    r->kind = STB_REC_RAW;
    r->seq = seq;
    r->ts = ts;
    r->a = (uint8_t)prefix;
    r->u.raw = json;
    kick(b);
}

/* Rewrites "seq" of an encoded message (used when the buffer moves into a new boot). */
static char *raw_with_seq(const char *raw, uint32_t seq)
{
    sj_value *v = NULL;
    if (sj_parse(raw, strlen(raw), &v, NULL, 0) != SJ_OK || v->type != SJ_OBJECT) { sj_free(v); return NULL; }
    size_t cap = strlen(raw) + 32;
    char *buf = malloc(cap);
    if (!buf) { sj_free(v); return NULL; }
    sj_writer w;
    sjw_init(&w, buf, cap);
    sjw_obj_begin(&w);
    bool had = false;
    for (size_t i = 0; i < v->u.obj.count; i++) {
        sjw_key(&w, v->u.obj.members[i].key);
        if (strcmp(v->u.obj.members[i].key, "seq") == 0) { sjw_int(&w, seq); had = true; }
        else sjw_value(&w, v->u.obj.members[i].value);
    }
    if (!had) sjw_kv_int(&w, "seq", seq);
    sjw_obj_end(&w);
    sj_free(v);
    if (sjw_finish(&w) != 0) { free(buf); return NULL; }
    return buf;
}

/* ------------------------------------------------------------------ logs */

static void logring_push(stb_box *b, const stb_logline *l)
{
    stb_logring *r = &b->logs;
    if (r->cap == 0) { free(l->text); return; }
    if (r->count >= r->cap) {
        free(r->l[r->head].text);
        r->head = (r->head + 1) % r->alloc;
        r->count--;
    }
    if (r->count == r->alloc) {
        uint32_t na = r->alloc ? r->alloc * 2 : 8;
        if (na > r->cap) na = r->cap;
        stb_logline *nl = malloc((size_t)na * sizeof *nl);
        if (!nl) { free(l->text); return; }
        for (uint32_t i = 0; i < r->count; i++) nl[i] = r->l[(r->head + i) % r->alloc];
        free(r->l);
        r->l = nl;
        r->alloc = na;
        r->head = 0;
    }
    r->l[(r->head + r->count) % r->alloc] = *l;
    r->count++;
}

static void logring_clear(stb_logring *r)
{
    for (uint32_t i = 0; i < r->count; i++) free(r->l[(r->head + i) % r->alloc].text);
    r->count = 0;
    r->head = 0;
}

static stb_job *tail_job(stb_box *b);
static void tail_counted(stb_job *j);
static void direct_push(stb_box *b, const char *data, size_t len);
static const char *job_ref(const stb_job *j);

static void tail_send(stb_box *b, int64_t ts, int level, const char *source, const char *text)
{
    stb_job *j = tail_job(b);
    if (!j || b->conn_state != STB_CONN_READY) return;
    sj_writer w;
    sjw_init(&w, b->w->scratch, b->w->scratch_cap);
    uint32_t seq = next_seq(b);
    char id[24];
    snprintf(id, sizeof id, "l-%u", seq);
    stb_enc_log(&w, id, seq, ts, stb_level_names[level & 3], source, text, job_ref(j));
    if (sjw_finish(&w) == 0) {
        direct_push(b, w.buf, w.len);
        tail_counted(j);
    }
}

void stb_box_log(stb_box *b, int64_t ts, int level, const char *source, const char *text)
{
    if (ts < 0) ts = sim_ms(b);
    level &= 3;
    size_t sl = strlen(source), tl = strlen(text);
    stb_logline l = { .ts = ts, .level = (uint8_t)level, .tmpl = STB_T_TEXT };
    l.text = malloc(sl + tl + 2);
    if (l.text) {
        memcpy(l.text, source, sl + 1);
        memcpy(l.text + sl + 1, text, tl + 1);
        logring_push(b, &l);
    }
    if (level >= b->log_min) {
        sj_writer w;
        sjw_init(&w, b->w->scratch, b->w->scratch_cap);
        uint32_t seq = next_seq(b);
        stb_enc_log(&w, NULL, seq, ts, stb_level_names[level], source, text, NULL);
        push_raw(b, 'l', seq, ts, scratch_dup(&w));
    }
    tail_send(b, ts, level, source, text);
}

void stb_box_log_t(stb_box *b, int64_t ts, int tmpl, int chan, int code, uint32_t num)
{
    if (tmpl <= 0 || tmpl >= STB_T_COUNT) return;
    if (ts < 0) ts = sim_ms(b);
    int level = templates[tmpl].level;
    stb_logline l = { .ts = ts, .level = (uint8_t)level, .tmpl = (uint8_t)tmpl,
                      .chan = chan < 0 ? NONE16 : (uint16_t)chan, .code = code < 0 ? NONE16 : (uint16_t)code, .num = num };
    logring_push(b, &l);
    if (level >= b->log_min) {
        stb_rec *r = ring_push(b);
        if (r) {
            r->kind = STB_REC_LOG;
            r->seq = next_seq(b);
            r->ts = ts;
            r->a = (uint8_t)level;
            r->b = (uint16_t)tmpl;
            r->u.e.chan = l.chan;
            r->u.e.code = l.code;
            r->u.e.num = num;
            kick(b);
        }
    }
    if (tail_job(b)) {
        char text[512];
        fmt_tmpl(b->w, tmpl, chan, code, num, text, sizeof text);
        tail_send(b, ts, level, templates[tmpl].source, text);
    }
}

size_t stb_box_format_log(const stb_box *b, const stb_logline *l, char *out, size_t cap)
{
    time_t secs = (time_t)(l->ts / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    const char *source, *text;
    char tbuf[512];
    if (l->tmpl == STB_T_TEXT) {
        source = l->text ? l->text : "";
        text = l->text ? l->text + strlen(l->text) + 1 : "";
    } else {
        source = templates[l->tmpl].source;
        fmt_tmpl(b->w, l->tmpl, l->chan == NONE16 ? -1 : l->chan, l->code == NONE16 ? -1 : l->code, l->num, tbuf, sizeof tbuf);
        text = tbuf;
    }
    int n = snprintf(out, cap, "%s.%03dZ %s %s: %s", when, (int)(l->ts % 1000), stb_level_names[l->level & 3], source, text);
    return n < 0 ? 0 : ((size_t)n >= cap ? cap - 1 : (size_t)n);
}

/* ------------------------------------------------------------------ telemetry */

void stb_box_event(stb_box *b, int64_t ts, stb_event_kind ev, int chan, int code)
{
    if (ts < 0) ts = sim_ms(b);
    stb_rec *r = ring_push(b);
    if (!r) return;
    r->kind = STB_REC_EVENT;
    r->seq = next_seq(b);
    r->ts = ts;
    r->a = (uint8_t)ev;
    r->u.e.chan = chan < 0 ? NONE16 : (uint16_t)chan;
    r->u.e.code = code < 0 ? NONE16 : (uint16_t)code;
    b->w->stats.events++;
    kick(b);
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }

void stb_box_metrics(stb_box *b)
{
    int64_t now = sim_ms(b);
    bool playing = b->w->cfg.simulate ? b->view.state != 0 : true;
    bool erroring = playing && b->view.erroring;
    uint64_t *rng = &b->rng;
    double cpu = playing ? 18.0 + 20.0 * stb_rand_unit(rng) + (erroring ? 12.0 : 0.0) : 2.0 + 5.0 * stb_rand_unit(rng);
    double mem = clampd(b->mem10_base + (playing ? 6.0 : 0.0) + 2.0 * stb_rand_normal(rng), 20.0, 98.0);
    double temp = clampd(40.0 + b->temp_off + cpu * 0.3 + 0.7 * stb_rand_normal(rng), 30.0, 95.0);
    double rtt = b->rtt_ms >= 0 ? b->rtt_ms : b->rtt_base * (0.8 + 0.5 * stb_rand_unit(rng));
    double kbps = 0;
    if (playing && !erroring) {
        int c = b->view.chan;
        double nominal = (b->w->nch && (uint32_t)c < b->w->nch) ? b->w->ch[c].kbps : 6000;
        kbps = nominal * (0.85 + 0.2 * stb_rand_unit(rng));
    }
    uint32_t under = b->underruns + (playing ? stb_rand_poisson(rng, erroring ? 3.0 : 0.15) : 0);
    uint32_t dropped = b->dropped_frames + (playing ? stb_rand_poisson(rng, erroring ? 40.0 : 1.2) : 0);
    b->underruns = 0;
    b->dropped_frames = 0;

    stb_rec *r = ring_push(b);
    if (!r) return;
    r->kind = STB_REC_METRICS;
    r->seq = next_seq(b);
    r->ts = now;
    r->a = (uint8_t)(under > 255 ? 255 : under);
    r->b = (uint16_t)(dropped > 65535 ? 65535 : dropped);
    r->u.m.cpu10 = (uint16_t)stb_llround(cpu * 10);
    r->u.m.mem10 = (uint16_t)stb_llround(mem * 10);
    r->u.m.temp10 = (int16_t)stb_llround(temp * 10);
    r->u.m.rtt10 = (uint16_t)stb_llround(clampd(rtt, 0, 6000) * 10);
    r->u.m.kbps = (uint16_t)clampd(kbps, 0, 65535);
    int64_t up = (now - b->boot_sim_ms) / 1000;
    r->u.m.uptime = (uint32_t)(up < 0 ? 0 : (up > UINT32_MAX ? UINT32_MAX : up));
    if (under > 0 && playing && stb_rand_unit(rng) < 0.5) stb_box_log_t(b, now, STB_T_UNDERRUN, b->view.chan, -1, 0);
    kick(b);
}

void stb_box_ping(stb_box *b)
{
    b->pings_wanted = 1;
    kick(b);
}

/* ------------------------------------------------------------------ direct frames */

static void direct_push(stb_box *b, const char *data, size_t len)
{
    if (b->n_direct >= b->w->cfg.direct_cap) { b->w->stats.dropped++; return; }
    stb_frame *f = malloc(sizeof *f + len + 1);
    if (!f) return;
    f->next = NULL;
    f->len = (uint32_t)len;
    memcpy(f->data, data, len);
    f->data[len] = 0;
    if (b->direct_tail) b->direct_tail->next = f;
    else b->direct = f;
    b->direct_tail = f;
    b->n_direct++;
    kick(b);
}

static void direct_clear(stb_box *b)
{
    while (b->direct) {
        stb_frame *f = b->direct;
        b->direct = f->next;
        free(f);
    }
    b->direct_tail = NULL;
    b->n_direct = 0;
}

/* ------------------------------------------------------------------ jobs */

typedef enum { JOB_FW = 1, JOB_DIAG, JOB_TAIL } job_kind;
typedef enum { FW_DOWNLOADING = 1, FW_INSTALLING } fw_stage;

#define DIAG_MAX 16

struct stb_job {
    stb_job *next;
    uint8_t kind, stage;
    char *ref;
    int64_t due_ms, end_ms;
    union {
        struct { stb_sha256 sha; uint64_t got, size; uint8_t want[32]; char *version; } fw;
        struct { uint32_t n, sent, recv; uint8_t want; uint32_t seq[DIAG_MAX]; int64_t sent_us[DIAG_MAX]; double rtt[DIAG_MAX]; } diag;
        struct { uint32_t lines; } tail;
    } u;
};

static const char *job_ref(const stb_job *j) { return j->ref; }

static stb_job *job_find(stb_box *b, int kind)
{
    for (stb_job *j = b->jobs; j; j = j->next)
        if (j->kind == kind) return j;
    return NULL;
}

static stb_job *tail_job(stb_box *b) { return b->jobs ? job_find(b, JOB_TAIL) : NULL; }
static void tail_counted(stb_job *j) { j->u.tail.lines++; }

static stb_job *job_new(stb_box *b, int kind, const char *ref)
{
    stb_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->kind = (uint8_t)kind;
    j->ref = xstrdup(ref);
    j->next = b->jobs;
    b->jobs = j;
    return j;
}

static void job_remove(stb_box *b, stb_job *j)
{
    for (stb_job **pp = &b->jobs; *pp; pp = &(*pp)->next) {
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    }
    if (j->kind == JOB_FW) free(j->u.fw.version);
    free(j->ref);
    free(j);
}

/* ------------------------------------------------------------------ executed ids */

const stb_exec *stb_box_find_exec(const stb_box *b, const char *id)
{
    for (uint16_t i = 0; i < b->n_exec; i++)
        if (strcmp(b->exec[i].id, id) == 0) return &b->exec[i];
    return NULL;
}

static stb_exec *find_exec(stb_box *b, const char *id) { return (stb_exec *)stb_box_find_exec(b, id); }

static void exec_free(stb_exec *e)
{
    free(e->id);
    free(e->reason);
}

static stb_exec *add_exec(stb_box *b, const char *id, int name)
{
    if (b->cap_exec == 0) b->cap_exec = 1;
    if (b->n_exec >= b->cap_exec) {
        /* Forget the oldest finished entry (or the oldest at all). */
        uint16_t victim = 0;
        for (uint16_t i = 0; i < b->n_exec; i++) {
            if (b->exec[i].state >= STB_ST_SUCCEEDED) { victim = i; break; }
        }
        exec_free(&b->exec[victim]);
        memmove(&b->exec[victim], &b->exec[victim + 1], (size_t)(b->n_exec - victim - 1) * sizeof *b->exec);
        b->n_exec--;
    }
    static const uint16_t step = 8;
    if (b->n_exec % step == 0) {
        size_t want = (size_t)b->n_exec + step;
        if (want > b->cap_exec) want = b->cap_exec;
        stb_exec *ne = realloc(b->exec, want * sizeof *ne);
        if (!ne) return NULL;
        b->exec = ne;
    }
    stb_exec *e = &b->exec[b->n_exec++];
    memset(e, 0, sizeof *e);
    e->id = xstrdup(id);
    e->name = (uint8_t)name;
    return e;
}

static void write_exec(stb_box *b);

/* Records the state and sends a command_status (through the buffer, with a seq). */
static void set_status(stb_box *b, const char *ref, int state, int progress, const char *reason, const char *result)
{
    stb_exec *e = find_exec(b, ref);
    if (e) {
        e->state = (uint8_t)state;
        e->progress = (uint8_t)progress;
        if (reason || state >= STB_ST_SUCCEEDED) set_str(&e->reason, reason);
    }
    sj_writer w;
    sjw_init(&w, b->w->scratch, b->w->scratch_cap);
    uint32_t seq = next_seq(b);
    int64_t ts = sim_ms(b);
    stb_enc_command_status(&w, NULL, seq, ts, ref, stb_state_names[state], stb_progress_names[progress], reason, result);
    char *json = scratch_dup(&w);
    if (!json && result) {
        /* The result did not fit: report without it. */
        sjw_init(&w, b->w->scratch, b->w->scratch_cap);
        stb_enc_command_status(&w, NULL, seq, ts, ref, stb_state_names[state], stb_progress_names[progress],
                               "result too large", NULL);
        json = scratch_dup(&w);
    }
    push_raw(b, 's', seq, ts, json);
    if (state == STB_ST_SUCCEEDED || state == STB_ST_FAILED) b->w->stats.cmds_done++;
    if (state == STB_ST_REJECTED) b->w->stats.cmds_rejected++;
    if (persisting(b)) write_exec(b);
    diagf(b, STB_LOG_INFO, "command %s: %s%s%s%s%s", ref, stb_state_names[state], progress ? " " : "",
          progress ? stb_progress_names[progress] : "", reason ? ": " : "", reason ? reason : "");
}

/* ------------------------------------------------------------------ reboot */

static void fw_fail(stb_box *b, stb_job *j, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void cancel_jobs_for_reboot(stb_box *b, const char *keep_ref)
{
    stb_job *j = b->jobs;
    while (j) {
        stb_job *next = j->next;
        if (keep_ref && strcmp(j->ref, keep_ref) == 0) { job_remove(b, j); j = next; continue; }
        if (j->kind == JOB_FW) {
            if (j->stage == FW_DOWNLOADING && b->w->ops->http_cancel) b->w->ops->http_cancel(b->w->ops_ctx, b);
            fw_fail(b, j, "interrupted by reboot");
        } else if (j->kind == JOB_TAIL) {
            char res[48];
            snprintf(res, sizeof res, "{\"lines\":%u}", j->u.tail.lines);
            set_status(b, j->ref, STB_ST_SUCCEEDED, STB_PG_NONE, "ended by reboot", res);
            job_remove(b, j);
        } else {
            set_status(b, j->ref, STB_ST_FAILED, STB_PG_NONE, "interrupted by reboot", NULL);
            job_remove(b, j);
        }
        j = next;
    }
}

static void drop_connection(stb_box *b, int code, const char *why)
{
    if (b->conn && (b->conn_state == STB_CONN_CONNECTING || b->conn_state == STB_CONN_OPEN || b->conn_state == STB_CONN_READY))
        b->w->ops->close_conn(b->w->ops_ctx, b, code, why);
    b->conn = NULL;
    b->hello_sent = 0;
    b->ring.sent = 0;
    b->write_wanted = 0;
    b->pings_wanted = 0;
    direct_clear(b);
}

/* Closes the connection and comes back after 1-3 s as a new boot. keep_ref: the command
 * that asked for it (its state is completed at boot). */
static void start_reboot(stb_box *b, const char *keep_ref)
{
    cancel_jobs_for_reboot(b, keep_ref);
    stb_box_flush(b, true);
    drop_connection(b, 1000, "rebooting");
    b->conn_state = STB_CONN_REBOOTING;
    b->next_connect_ms = stb_box_now_ms(b) + stb_rand_range(&b->rng, b->w->cfg.reboot_min_ms, b->w->cfg.reboot_max_ms);
    diagf(b, STB_LOG_INFO, "rebooting");
}

/* ------------------------------------------------------------------ persistence */

static void write_boot(stb_box *b)
{
    if (!persisting(b)) return;
    char buf[1024], path[4200], boot[17];
    sj_writer w;
    sjw_init(&w, buf, sizeof buf);
    stb_box_boot_id_hex(b, boot);
    sjw_obj_begin(&w);
    sjw_kv_str(&w, "id", b->id);
    sjw_kv_str(&w, "bootId", boot);
    sjw_kv_int(&w, "seq", b->seq_reserved);
    sjw_kv_int(&w, "boots", b->boots);
    sjw_kv_int(&w, "bootedAt", b->boot_sim_ms);
    sjw_kv_str(&w, "firmware", b->firmware);
    if (b->firmware_next) sjw_kv_str(&w, "firmwareNext", b->firmware_next);
    sjw_kv_int(&w, "dropped", (int64_t)b->ring.dropped);
    sjw_obj_end(&w);
    if (sjw_finish(&w) != 0) return;
    buf[w.len++] = '\n';
    state_path(b, "boot.json", path, sizeof path);
    if (stb_write_atomic(path, buf, w.len, b->w->cfg.fsync) != 0)
        diagf(b, STB_LOG_WARN, "cannot write %s: %s", path, strerror(errno));
}

static void write_exec(stb_box *b)
{
    if (!persisting(b)) return;
    size_t cap = 256 + (size_t)b->n_exec * 400;
    char *buf = malloc(cap);
    if (!buf) return;
    sj_writer w;
    sjw_init(&w, buf, cap);
    sjw_obj_begin(&w);
    sjw_key(&w, "executed");
    sjw_arr_begin(&w);
    for (uint16_t i = 0; i < b->n_exec; i++) {
        const stb_exec *e = &b->exec[i];
        sjw_obj_begin(&w);
        sjw_kv_str(&w, "id", e->id);
        sjw_kv_str(&w, "name", stb_cmd_names[e->name < STB_CMD_COUNT ? e->name : 0]);
        sjw_kv_str(&w, "state", stb_state_names[e->state < 6 ? e->state : 0]);
        if (e->progress && e->progress < STB_PG_COUNT) sjw_kv_str(&w, "progress", stb_progress_names[e->progress]);
        if (e->reason) {
            sjw_key(&w, "reason");
            sjw_strn(&w, e->reason, strlen(e->reason) > 300 ? 300 : strlen(e->reason));
        }
        sjw_obj_end(&w);
    }
    sjw_arr_end(&w);
    sjw_obj_end(&w);
    char path[4200];
    state_path(b, "executed.json", path, sizeof path);
    if (sjw_finish(&w) == 0) {
        buf[w.len++] = '\n';
        if (stb_write_atomic(path, buf, w.len, b->w->cfg.fsync) != 0)
            diagf(b, STB_LOG_WARN, "cannot write %s: %s", path, strerror(errno));
    }
    free(buf);
}

static void write_config(stb_box *b)
{
    if (!persisting(b)) return;
    char buf[256], path[4200];
    sj_writer w;
    sjw_init(&w, buf, sizeof buf);
    sjw_obj_begin(&w);
    sjw_kv_str(&w, "logLevel", stb_level_names[b->log_min & 3]);
    sjw_kv_int(&w, "metricsIntervalSec", b->metrics_sec);
    sjw_obj_end(&w);
    if (sjw_finish(&w) != 0) return;
    buf[w.len++] = '\n';
    state_path(b, "config.json", path, sizeof path);
    stb_write_atomic(path, buf, w.len, b->w->cfg.fsync);
}

static void write_outbox(stb_box *b)
{
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    if (!out) return;
    char *tmp = b->w->scratch;
    for (uint32_t i = 0; i < b->ring.count; i++) {
        const stb_rec *r = ring_at(&b->ring, i);
        if (!r->kind) continue;
        sj_writer w;
        sjw_init(&w, tmp, b->w->scratch_cap);
        enc_rec(b, &w, r, false);
        if (sjw_finish(&w) != 0) continue;
        if (len + w.len + 2 > cap) {
            while (len + w.len + 2 > cap) cap *= 2;
            char *no = realloc(out, cap);
            if (!no) { free(out); return; }
            out = no;
        }
        memcpy(out + len, w.buf, w.len);
        len += w.len;
        out[len++] = '\n';
    }
    char path[4200];
    state_path(b, "outbox.jsonl", path, sizeof path);
    if (stb_write_atomic(path, out, len, b->w->cfg.fsync) != 0)
        diagf(b, STB_LOG_WARN, "cannot write %s: %s", path, strerror(errno));
    free(out);
}

void stb_box_flush(stb_box *b, bool force)
{
    if (!persisting(b)) return;
    int64_t now = stb_box_now_ms(b);
    if (!force && (!b->dirty || now - b->last_flush_ms < (int64_t)b->w->cfg.flush_interval_ms)) return;
    write_outbox(b);
    write_boot(b);
    b->dirty = 0;
    b->last_flush_ms = now;
}

static sj_value *load_json(const stb_box *b, const char *name)
{
    char path[4200];
    state_path(b, name, path, sizeof path);
    size_t len;
    char *text = read_file(path, &len);
    if (!text) return NULL;
    sj_value *v = NULL;
    if (sj_parse(text, len, &v, NULL, 0) != SJ_OK || v->type != SJ_OBJECT) {
        sj_free(v);
        v = NULL;
    }
    free(text);
    return v;
}

static void load_config(stb_box *b)
{
    sj_value *v = load_json(b, "config.json");
    if (!v) return;
    int lv = stb_level_parse(sj_get_str(v, "logLevel"));
    if (lv >= 0) b->log_min = (uint8_t)lv;
    int64_t m;
    if (sj_get_int(v, "metricsIntervalSec", &m) && m >= 0 && m <= 3600) b->metrics_sec = (uint16_t)m;
    sj_free(v);
}

static void load_exec(stb_box *b)
{
    sj_value *v = load_json(b, "executed.json");
    if (!v) return;
    const sj_value *arr = sj_get(v, "executed");
    if (arr && arr->type == SJ_ARRAY) {
        for (size_t i = 0; i < arr->u.arr.count; i++) {
            const sj_value *o = arr->u.arr.items[i];
            const char *id = sj_get_str(o, "id");
            if (!id || find_exec(b, id)) continue;
            int name = 0, state = 0, progress = 0;
            const char *s;
            if ((s = sj_get_str(o, "name")))
                for (int k = 0; k < STB_CMD_COUNT; k++) if (strcmp(s, stb_cmd_names[k]) == 0) name = k;
            if ((s = sj_get_str(o, "state")))
                for (int k = 0; k < 6; k++) if (strcmp(s, stb_state_names[k]) == 0) state = k;
            if ((s = sj_get_str(o, "progress")))
                for (int k = 1; k < STB_PG_COUNT; k++) if (strcmp(s, stb_progress_names[k]) == 0) progress = k;
            stb_exec *e = add_exec(b, id, name);
            if (!e) break;
            e->state = (uint8_t)state;
            e->progress = (uint8_t)progress;
            e->reason = xstrdup(sj_get_str(o, "reason"));
        }
    }
    sj_free(v);
}

static void load_outbox(stb_box *b)
{
    char path[4200];
    state_path(b, "outbox.jsonl", path, sizeof path);
    size_t len;
    char *text = read_file(path, &len);
    if (!text) return;
    char *line = text;
    uint32_t bad = 0;
    while (line < text + len) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
        if (ll > 0) {
            sj_value *v = NULL;
            int64_t seq, ts = -1;
            const char *type;
            if (sj_parse(line, ll, &v, NULL, 0) == SJ_OK && v->type == SJ_OBJECT && sj_get_int(v, "seq", &seq) &&
                seq >= 0 && seq <= UINT32_MAX && (type = sj_get_str(v, "type"))) {
                sj_get_int(v, "ts", &ts);
                char *raw = malloc(ll + 1);
                if (raw) {
                    memcpy(raw, line, ll);
                    raw[ll] = 0;
                    char prefix = strcmp(type, "metrics") == 0 ? 'm' : strcmp(type, "event") == 0 ? 'e'
                                : strcmp(type, "log") == 0 ? 'l' : strcmp(type, "command_status") == 0 ? 's' : 'x';
                    stb_rec *r = ring_push(b);
                    if (r) {
                        r->kind = STB_REC_RAW;
                        r->seq = (uint32_t)seq;
                        r->ts = ts;
                        r->a = (uint8_t)prefix;
                        r->u.raw = raw;
                    } else {
                        free(raw);
                    }
                }
            } else {
                bad++;
            }
            sj_free(v);
        }
        line += ll + 1;
    }
    free(text);
    if (bad) diagf(b, STB_LOG_WARN, "outbox.jsonl: %u unreadable lines skipped", bad);
}

/* Returns true when a persisted boot was found and resumed. */
static bool load_boot(stb_box *b)
{
    sj_value *v = load_json(b, "boot.json");
    if (!v) return false;
    const char *boot = sj_get_str(v, "bootId");
    int64_t seq, boots = 0, at = 0, dropped = 0;
    bool ok = boot && strlen(boot) == 16 && sj_get_int(v, "seq", &seq) && seq >= 0 && seq < UINT32_MAX - 2 * SEQ_RESERVE;
    if (ok) {
        b->boot_id = strtoull(boot, NULL, 16);
        b->seq = (uint32_t)seq;
        b->seq_reserved = (uint32_t)seq;
        if (sj_get_int(v, "boots", &boots)) b->boots = (uint32_t)boots;
        b->boot_sim_ms = sj_get_int(v, "bootedAt", &at) ? at : sim_ms(b);
        if (sj_get_int(v, "dropped", &dropped) && dropped >= 0) b->ring.dropped = (uint64_t)dropped;
        const char *fw = sj_get_str(v, "firmware");
        if (fw && stb_valid_ident(fw)) set_str(&b->firmware, fw);
        const char *next = sj_get_str(v, "firmwareNext");
        if (next && stb_valid_ident(next)) set_str(&b->firmware_next, next);
    }
    sj_free(v);
    return ok;
}

static void remove_state_files(stb_box *b)
{
    if (!b->state_dir) return;
    DIR *d = opendir(b->state_dir);
    if (!d) return;
    struct dirent *de;
    char path[4200];
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' && (de->d_name[1] == 0 || (de->d_name[1] == '.' && de->d_name[2] == 0))) continue;
        snprintf(path, sizeof path, "%s/%s", b->state_dir, de->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && !S_ISDIR(st.st_mode)) unlink(path);
    }
    closedir(d);
}

/* ------------------------------------------------------------------ boot */

void stb_box_boot(stb_box *b)
{
    do { b->boot_id = stb_rand_next(&b->rng); } while (b->boot_id == 0);
    b->boots++;
    b->seq = 0;
    b->seq_reserved = 0;
    if (b->firmware_next) {
        free(b->firmware);
        b->firmware = b->firmware_next;
        b->firmware_next = NULL;
    }
    b->boot_sim_ms = sim_ms(b);
    b->rtt_ms = -1;
    /* Unacknowledged telemetry of the previous boot is renumbered into this one: the hub
     * identifies messages by (box, bootId, seq) and a frame carries no bootId. */
    for (uint32_t i = 0; i < b->ring.count; i++) {
        stb_rec *r = ring_at(&b->ring, i);
        uint32_t seq = next_seq(b);
        if (r->kind == STB_REC_RAW) {
            char *nr = raw_with_seq(r->u.raw, seq);
            if (nr) { free(r->u.raw); r->u.raw = nr; }
        }
        r->seq = seq;
    }
    b->ring.sent = 0;
    b->seq_reserved = b->seq + SEQ_RESERVE;
    write_boot(b);
    char boot[17];
    stb_box_boot_id_hex(b, boot);
    char text[160];
    snprintf(text, sizeof text, "boot %u: firmware %s, bootId %s", b->boots, b->firmware, boot);
    stb_box_log(b, -1, STB_LOG_INFO, "system", text);
    /* Commands that asked for this reboot are complete; others were cut short. */
    for (uint16_t i = 0; i < b->n_exec; i++) {
        stb_exec *e = &b->exec[i];
        if (e->state != STB_ST_RECEIVED && e->state != STB_ST_IN_PROGRESS) continue;
        char *ref = xstrdup(e->id);
        if (!ref) continue;
        if (e->progress == STB_PG_REBOOTING) {
            char res[128];
            const char *result = NULL;
            if (e->name == STB_CMD_FIRMWARE_UPDATE) {
                sj_writer w;
                sjw_init(&w, res, sizeof res);
                sjw_obj_begin(&w);
                sjw_kv_str(&w, "firmware", b->firmware);
                sjw_obj_end(&w);
                if (sjw_finish(&w) == 0) result = res;
            }
            set_status(b, ref, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, result);
        } else {
            set_status(b, ref, STB_ST_FAILED, STB_PG_NONE, "interrupted by reboot", NULL);
        }
        free(ref);
    }
    diagf(b, STB_LOG_INFO, "boot %u: firmware %s, bootId %s", b->boots, b->firmware, boot);
}

/* ------------------------------------------------------------------ lifecycle */

stb_box *stb_box_new(stb_world *w, uint32_t index, const char *id, const char *secret, const char *state_dir)
{
    stb_box *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->w = w;
    b->index = index;
    b->id = xstrdup(id);
    b->secret = secret;
    b->state_dir = xstrdup(state_dir);
    b->model = w->cfg.model;
    b->firmware = xstrdup(w->cfg.firmware);
    /* Boot ids must differ between runs even with --seed (the hub dedupes on them), so this
     * stream is always from the OS; only the viewing model follows the seed. */
    b->rng = stb_rand_stream(stb_rand_os_seed(), index);
    b->ring.cap = w->cfg.ring_cap ? w->cfg.ring_cap : 1;
    b->logs.cap = w->cfg.log_cap;
    b->cap_exec = (uint16_t)(w->cfg.exec_cap > 4096 ? 4096 : (w->cfg.exec_cap ? w->cfg.exec_cap : 1));
    b->rtt_ms = -1;
    b->heartbeat_sec = STB_DEFAULT_HEARTBEAT;
    b->max_frame = STB_DEFAULT_MAX_FRAME;
    b->max_batch = STB_DEFAULT_MAX_BATCH;
    b->mps = STB_DEFAULT_MPS;
    b->log_min = (uint8_t)w->cfg.log_level_min;
    b->mem10_base = (uint8_t)stb_rand_range(&b->rng, 38, 62);
    b->temp_off = (uint8_t)stb_rand_range(&b->rng, 0, 8);
    b->rtt_base = (uint8_t)(4 + 60 * stb_pow(stb_rand_unit(&b->rng), 2.5));
    if (!b->id || !b->firmware || (state_dir && !b->state_dir)) { stb_box_free(b); return NULL; }
    stb_world_add_box(w, b);
    return b;
}

void stb_box_free(stb_box *b)
{
    if (!b) return;
    while (b->jobs) job_remove(b, b->jobs);
    ring_clear(&b->ring);
    free(b->ring.r);
    logring_clear(&b->logs);
    free(b->logs.l);
    for (uint16_t i = 0; i < b->n_exec; i++) exec_free(&b->exec[i]);
    free(b->exec);
    direct_clear(b);
    free(b->id);
    free(b->state_dir);
    free(b->firmware);
    free(b->firmware_next);
    free(b);
}

int stb_box_start(stb_box *b)
{
    int64_t now = stb_box_now_ms(b);
    bool resumed = false;
    if (persisting(b)) {
        if (stb_mkdirs(b->state_dir, 0700) != 0) return -1;
        load_config(b);
        load_exec(b);
        resumed = load_boot(b);
        load_outbox(b);
    }
    bool reboot_pending = false;
    for (uint16_t i = 0; i < b->n_exec; i++)
        if (b->exec[i].state == STB_ST_IN_PROGRESS && b->exec[i].progress == STB_PG_REBOOTING) reboot_pending = true;
    if (resumed && !reboot_pending) {
        /* An agent restart, not a reboot: same boot, seq continues past the reservation. */
        b->seq = b->seq_reserved;
        if (b->ring.count && ring_at(&b->ring, b->ring.count - 1)->seq > b->seq) b->seq = ring_at(&b->ring, b->ring.count - 1)->seq;
        b->seq_reserved = b->seq + SEQ_RESERVE;
        write_boot(b);
        char boot[17];
        stb_box_boot_id_hex(b, boot);
        diagf(b, STB_LOG_INFO, "resumed boot %s at seq %u with %u buffered messages", boot, b->seq, b->ring.count);
        for (uint16_t i = 0; i < b->n_exec; i++) {
            stb_exec *e = &b->exec[i];
            if (e->state == STB_ST_RECEIVED || e->state == STB_ST_IN_PROGRESS) {
                char *ref = xstrdup(e->id);
                if (ref) set_status(b, ref, STB_ST_FAILED, STB_PG_NONE, "interrupted: agent restarted", NULL);
                free(ref);
            }
        }
    } else {
        stb_box_boot(b);
    }
    b->conn_state = STB_CONN_IDLE;
    b->next_connect_ms = now;
    uint32_t interval = b->metrics_sec ? b->metrics_sec : b->heartbeat_sec;
    b->next_metrics_ms = now + stb_rand_range(&b->rng, 1000, (int64_t)interval * 1000);
    b->last_flush_ms = now;
    if (persisting(b)) { write_exec(b); stb_box_flush(b, true); }
    return 0;
}

void stb_box_shutdown(stb_box *b)
{
    drop_connection(b, 1001, "agent stopping");
    if (b->conn_state != STB_CONN_STOPPED) {
        b->conn_state = STB_CONN_STOPPED;
        b->stop_reason = STB_STOP_SHUTDOWN;
    }
    stb_box_flush(b, true);
}

bool stb_box_connect_due(const stb_box *b, int64_t mono_ms)
{
    return b->conn_state == STB_CONN_IDLE && mono_ms >= b->next_connect_ms;
}

/* ------------------------------------------------------------------ transport events */

void stb_box_on_connecting(stb_box *b)
{
    b->conn_state = STB_CONN_CONNECTING;
    b->w->stats.connects++;
}

void stb_box_on_open(stb_box *b)
{
    b->conn_state = STB_CONN_OPEN;
    b->hello_sent = 0;
    b->ring.sent = 0;
    b->write_wanted = 0;
    kick(b);
}

void stb_box_on_closed(stb_box *b, stb_end_kind kind, int close_code, int http_status, int retry_after_s)
{
    b->conn = NULL;
    b->hello_sent = 0;
    b->ring.sent = 0;
    b->write_wanted = 0;
    b->pings_wanted = 0;
    direct_clear(b);
    if (b->conn_state == STB_CONN_STOPPED || b->conn_state == STB_CONN_REBOOTING) return;
    int64_t now = stb_box_now_ms(b);
    bool was_ready = b->conn_state == STB_CONN_READY;
    if (was_ready && now - b->ready_ms >= (int64_t)b->w->cfg.stable_ms) b->attempt = 0;
    if (kind == STB_END_CLOSED && was_ready) b->w->stats.closes++;
    else b->w->stats.connect_failures++;
    uint32_t delay = 0;
    stb_next_action act = stb_reconnect_plan(&b->w->cfg.backoff, kind, close_code, http_status, retry_after_s,
                                             b->attempt, &b->rng, &delay);
    if (kind == STB_END_HTTP && http_status == 404) act = STB_NEXT_STOP;
    if (act == STB_NEXT_STOP) {
        b->conn_state = STB_CONN_STOPPED;
        b->stop_reason = close_code == 4001 ? STB_STOP_REVOKED : http_status == 404 ? STB_STOP_NOT_FOUND : STB_STOP_UNAUTHORIZED;
        diagf(b, STB_LOG_ERROR, "%s; not reconnecting",
              close_code == 4001 ? "credentials revoked by the hub (close 4001)"
              : http_status == 404 ? "hub answered 404: wrong path (expected /v1/stb)"
                                   : "hub refused the credentials (HTTP 401)");
        stb_box_flush(b, true);
        return;
    }
    if (b->attempt < MAX_ATTEMPT) b->attempt++;
    b->conn_state = STB_CONN_IDLE;
    b->next_connect_ms = now + delay;
    if (was_ready) {
        stb_box_log_t(b, -1, STB_T_CONN_LOST, -1, -1, (uint32_t)close_code);
        diagf(b, STB_LOG_INFO, "disconnected (close %d), reconnecting in %u ms", close_code, delay);
    } else {
        /* the first failure, then every eighth: a long outage does not fill the buffer with these */
        if (b->attempt == 1 || b->attempt % 8 == 0) stb_box_log_t(b, -1, STB_T_UNREACHABLE, -1, -1, delay);
        if (kind == STB_END_HTTP)
            diagf(b, STB_LOG_INFO, "hub refused the connection (HTTP %d%s), retrying in %u ms", http_status,
                  retry_after_s >= 0 ? ", Retry-After" : "", delay);
        else if (kind == STB_END_CLOSED)
            diagf(b, STB_LOG_INFO, "connection closed before welcome (close %d), retrying in %u ms", close_code, delay);
        else
            diagf(b, STB_LOG_INFO, "cannot connect to hub, retrying in %u ms", delay);
    }
}

/* ------------------------------------------------------------------ outbound frames */

static void refill(stb_box *b, int64_t now)
{
    double rate = b->mps * b->w->cfg.rate_fraction;
    if (rate < 1) rate = 1;
    double burst = rate;
    if (now > b->tokens_ms) {
        b->tokens += (float)((now - b->tokens_ms) / 1000.0 * rate);
        if (b->tokens > burst) b->tokens = (float)burst;
        b->tokens_ms = now;
    }
}

/* Only metrics, events and logs may travel in a batch (command_status goes on its own). */
static bool batchable(const stb_rec *r)
{
    if (r->kind == STB_REC_RAW) return r->a == 'm' || r->a == 'e' || r->a == 'l';
    return r->kind == STB_REC_METRICS || r->kind == STB_REC_EVENT || r->kind == STB_REC_LOG;
}

/* Marks buffered records seq lo..hi as refused: never sent again, dropped at the next ack. */
static void ring_kill(stb_box *b, uint32_t lo, uint32_t hi)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < b->ring.count; i++) {
        stb_rec *r = ring_at(&b->ring, i);
        if (r->seq >= lo && r->seq <= hi && r->kind) { rec_free(r); n++; }
    }
    if (n) b->dirty = 1;
}

static int emit_ping(stb_box *b, char *buf, size_t cap, size_t *len, stb_job *diag)
{
    sj_writer w;
    sjw_init(&w, buf, cap);
    uint32_t seq = next_seq(b);
    char id[24];
    snprintf(id, sizeof id, "p-%u", seq);
    stb_enc_ping(&w, id, seq, sim_ms(b));
    if (sjw_finish(&w) != 0) return 0;
    int64_t t = now_us(b);
    if (diag) {
        uint32_t k = diag->u.diag.sent;
        diag->u.diag.seq[k] = seq;
        diag->u.diag.sent_us[k] = t;
        diag->u.diag.rtt[k] = -1;
        diag->u.diag.sent++;
        diag->u.diag.want = 0;
        diag->due_ms = t / 1000 + b->w->cfg.diag_interval_ms;
    } else {
        b->ping_seq = seq;
        b->ping_us = t;
        b->pings_wanted = 0;
    }
    *len = w.len;
    return 1;
}

int stb_box_next_frame(stb_box *b, char *buf, size_t cap, size_t *len)
{
    *len = 0;
    if (b->conn_state == STB_CONN_OPEN && !b->hello_sent) {
        sj_writer w;
        sjw_init(&w, buf, cap);
        char boot[17], id[24];
        stb_box_boot_id_hex(b, boot);
        uint32_t seq = next_seq(b);
        snprintf(id, sizeof id, "h-%u", seq);
        stb_enc_hello(&w, id, seq, sim_ms(b), b->model, b->firmware, boot);
        if (sjw_finish(&w) != 0) return 0;
        b->hello_sent = 1;
        *len = w.len;
        b->w->stats.sent_frames++;
        b->w->stats.bytes_out += w.len;
        return 1;
    }
    if (b->conn_state != STB_CONN_READY) { b->write_wanted = 0; return 0; }
    size_t fcap = cap < (size_t)b->max_frame + 1 ? cap : (size_t)b->max_frame + 1;
    if (b->direct) {
        stb_frame *f = b->direct;
        if (f->len < fcap) {
            memcpy(buf, f->data, f->len);
            *len = f->len;
        }
        b->direct = f->next;
        if (!b->direct) b->direct_tail = NULL;
        b->n_direct--;
        free(f);
        if (*len) {
            b->w->stats.sent_frames++;
            b->w->stats.bytes_out += *len;
            return 1;
        }
    }
    stb_job *diag = job_find(b, JOB_DIAG);
    if (diag && diag->u.diag.want) {
        if (emit_ping(b, buf, fcap, len, diag)) { b->w->stats.sent_frames++; return 1; }
    }
    if (b->pings_wanted) {
        if (emit_ping(b, buf, fcap, len, NULL)) { b->w->stats.sent_frames++; return 1; }
    }
    /* refused records (see on_frame) are skipped */
    while (b->ring.sent < b->ring.count && ring_at(&b->ring, b->ring.sent)->kind == 0) b->ring.sent++;
    uint32_t pending = stb_box_pending(b);
    if (!pending) { b->write_wanted = 0; return 0; }
    int64_t now = stb_box_now_ms(b);
    refill(b, now);
    if (b->tokens < 1) { b->write_wanted = 0; return 0; }
    uint32_t allowed = (uint32_t)b->tokens;
    uint32_t n = pending;
    if (n > b->max_batch) n = b->max_batch;
    if (n > allowed) n = allowed;

    sj_writer w;
    uint32_t msgs = 0, consumed = 0;
    const stb_rec *first = ring_at(&b->ring, b->ring.sent);
    uint32_t first_seq = first->seq, last_seq = first->seq;
    if (n > 1 && batchable(first)) {
        char id[24];
        snprintf(id, sizeof id, "b-%u", first_seq);
        sjw_init(&w, buf, fcap > 2 ? fcap - 2 : fcap); /* room for "]}" */
        stb_enc_batch_begin(&w, id, sim_ms(b));
        for (uint32_t p = 0; msgs < n && b->ring.sent + p < b->ring.count; p++) {
            const stb_rec *r = ring_at(&b->ring, b->ring.sent + p);
            if (r->kind == 0) continue;
            if (!batchable(r)) break;
            size_t save = w.len;
            bool comma = w.need_comma;
            enc_rec(b, &w, r, false);
            if (w.overflow) { w.overflow = false; w.len = save; w.need_comma = comma; break; }
            msgs++;
            consumed = p + 1;
            last_seq = r->seq;
        }
        if (msgs >= 2) {
            w.cap = fcap;
            stb_enc_batch_end(&w);
            if (sjw_finish(&w) == 0) goto done;
        }
        msgs = consumed = 0;
        last_seq = first_seq;
    }
    /* One message on its own frame, with an id. */
    sjw_init(&w, buf, fcap);
    enc_rec(b, &w, first, true);
    if (sjw_finish(&w) != 0) {
        /* Larger than the hub accepts: it can never be sent. Skip it for this connection. */
        diagf(b, STB_LOG_WARN, "message seq %u exceeds maxFrameBytes %u; skipped", first_seq, b->max_frame);
        b->ring.sent++;
        return stb_box_next_frame(b, buf, cap, len);
    }
    msgs = consumed = 1;
done:
    b->ring.sent += consumed;
    b->tokens -= (float)msgs;
    b->lf_i = (uint8_t)((b->lf_i + 1) % 4);
    b->lf_first[b->lf_i] = first_seq;
    b->lf_last[b->lf_i] = last_seq;
    b->w->stats.sent_msgs += msgs;
    b->w->stats.sent_frames++;
    b->w->stats.bytes_out += w.len;
    *len = w.len;
    return 1;
}

/* ------------------------------------------------------------------ inbound */

static void handle_command(stb_box *b, const stb_msg *m);

static uint32_t parse_ping_ref(const char *ref)
{
    if (!ref || ref[0] != 'p' || ref[1] != '-') return 0;
    char *end;
    unsigned long v = strtoul(ref + 2, &end, 10);
    return *end ? 0 : (uint32_t)v;
}

static void on_pong(stb_box *b, const stb_msg *m)
{
    uint32_t seq = parse_ping_ref(m->ref);
    if (!seq) return;
    int64_t t = now_us(b);
    stb_job *diag = job_find(b, JOB_DIAG);
    if (diag) {
        for (uint32_t i = 0; i < diag->u.diag.sent; i++) {
            if (diag->u.diag.seq[i] == seq && diag->u.diag.rtt[i] < 0) {
                diag->u.diag.rtt[i] = (t - diag->u.diag.sent_us[i]) / 1000.0;
                diag->u.diag.recv++;
                b->rtt_ms = (float)diag->u.diag.rtt[i];
                return;
            }
        }
    }
    if (seq == b->ping_seq && b->ping_us) {
        b->rtt_ms = (float)((t - b->ping_us) / 1000.0);
        b->ping_seq = 0;
        b->ping_us = 0;
    }
}

/* An error frame about one of our frames. rate_limited: the hub took none of it and says
 * nothing about which frame, so everything unacknowledged is sent again after a pause (the
 * hub stores each (box, bootId, seq) once). Any other refusal: the messages of that frame
 * are not sent again (docs/protocol.md: a box must not resend a message refused as invalid). */
static void on_error(stb_box *b, const stb_msg *m)
{
    if (strcmp(m->code, "rate_limited") == 0) {
        b->ring.sent = 0;
        b->tokens = -(float)(b->mps * b->w->cfg.rate_fraction); /* about a second of silence */
        b->tokens_ms = stb_box_now_ms(b);
        return;
    }
    if (!m->ref || strlen(m->ref) < 3 || m->ref[1] != '-') return;
    char kind = m->ref[0];
    if (kind != 'b' && kind != 'm' && kind != 'e' && kind != 'l' && kind != 's' && kind != 'x') return;
    char *end;
    unsigned long seq = strtoul(m->ref + 2, &end, 10);
    if (*end || seq == 0 || seq > UINT32_MAX) return;
    uint32_t lo = (uint32_t)seq, hi = (uint32_t)seq;
    if (kind == 'b') {
        for (int i = 0; i < 4; i++)
            if (b->lf_first[i] == lo && b->lf_last[i] >= lo) hi = b->lf_last[i];
    }
    ring_kill(b, lo, hi);
}

void stb_box_on_frame(stb_box *b, const char *data, size_t len)
{
    stb_world *w = b->w;
    w->stats.bytes_in += len;
    stb_msg m;
    char err[200];
    if (stb_decode(data, len, &m, err, sizeof err) != 0) {
        w->stats.malformed_rx++;
        diagf(b, w->stats.malformed_rx <= 5 ? STB_LOG_WARN : STB_LOG_DEBUG, "malformed frame from hub ignored (%s)", err);
        char text[300];
        snprintf(text, sizeof text, "malformed frame from hub ignored: %s", err);
        stb_box_log(b, -1, STB_LOG_WARN, "agent", text);
        return;
    }
    switch (m.kind) {
    case STB_MSG_WELCOME: {
        int64_t now = stb_box_now_ms(b);
        b->heartbeat_sec = (uint16_t)(m.heartbeat_sec > 65535 ? 65535 : m.heartbeat_sec);
        int64_t mf = m.max_frame_bytes;
        if (mf > (int64_t)w->scratch_cap - 64) mf = (int64_t)w->scratch_cap - 64;
        b->max_frame = (uint32_t)mf;
        b->max_batch = (uint16_t)(m.max_batch > 65535 ? 65535 : m.max_batch);
        b->mps = (uint16_t)(m.messages_per_second > 65535 ? 65535 : m.messages_per_second);
        b->conn_state = STB_CONN_READY;
        b->ready_ms = now;
        b->tokens_ms = now;
        b->tokens = (float)(b->mps * w->cfg.rate_fraction < 1 ? 1 : b->mps * w->cfg.rate_fraction);
        uint32_t interval = b->metrics_sec ? b->metrics_sec : b->heartbeat_sec;
        if (b->next_metrics_ms > now + (int64_t)interval * 1000)
            b->next_metrics_ms = now + stb_rand_range(&b->rng, 1000, (int64_t)interval * 1000);
        stb_box_log_t(b, -1, STB_T_CONNECTED, -1, -1, 0);
        diagf(b, STB_LOG_INFO, "welcome: session %s on %s, heartbeat %us, %u buffered", m.session ? m.session : "?",
              m.node ? m.node : "?", b->heartbeat_sec, b->ring.count);
        kick(b);
        break;
    }
    case STB_MSG_PONG:
        on_pong(b, &m);
        break;
    case STB_MSG_ERROR:
        w->stats.errors_rx++;
        diagf(b, w->stats.errors_rx <= 3 ? STB_LOG_INFO : STB_LOG_DEBUG, "hub error %s%s%s%s%s", m.code,
              m.reason ? ": " : "", m.reason ? m.reason : "", m.ref ? " ref " : "", m.ref ? m.ref : "");
        on_error(b, &m);
        break;
    case STB_MSG_ACK: {
        uint32_t n = 0;
        while (b->ring.count && (int64_t)ring_at(&b->ring, 0)->seq <= m.up_to) { ring_pop(&b->ring); n++; }
        if (n) { w->stats.acked += n; b->dirty = 1; }
        break;
    }
    case STB_MSG_COMMAND:
        handle_command(b, &m);
        break;
    default:
        diagf(b, STB_LOG_DEBUG, "ignoring message of unknown type %s", m.type);
        break;
    }
    stb_msg_free(&m);
}

/* ------------------------------------------------------------------ commands */

static bool hex_to_bytes(const char *hex, uint8_t out[32])
{
    if (!hex || strlen(hex) != 64) return false;
    for (int i = 0; i < 32; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = (char)tolower((unsigned char)hex[2 * i + k]);
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) return false;
            v = v * 16 + d;
        }
        out[i] = (uint8_t)v;
    }
    return true;
}

static int param_int(const sj_value *p, const char *key, int64_t dflt, int64_t lo, int64_t hi, int64_t *out,
                     char *reason, size_t rl)
{
    const sj_value *v = sj_get(p, key);
    if (!v) { *out = dflt; return 0; }
    if (v->type != SJ_INT || v->u.integer < lo || v->u.integer > hi) {
        snprintf(reason, rl, "params.%s must be an integer in %lld..%lld", key, (long long)lo, (long long)hi);
        return -1;
    }
    *out = v->u.integer;
    return 0;
}

/* Checks params; returns 0 or -1 with a reason. */
static int validate(stb_box *b, int name, const sj_value *p, char *reason, size_t rl)
{
    int64_t v;
    switch (name) {
    case STB_CMD_FIRMWARE_UPDATE: {
        const char *version = sj_get_str(p, "version"), *url = sj_get_str(p, "url"), *sha = sj_get_str(p, "sha256");
        uint8_t d[32];
        if (!version || !stb_valid_ident(version)) { snprintf(reason, rl, "params.version must be a string of 1 to 64 bytes"); return -1; }
        if (!url || strncmp(url, "http://", 7) != 0 || strlen(url) > 2048) { snprintf(reason, rl, "params.url must be an http:// URL"); return -1; }
        if (!sj_get(p, "size")) { snprintf(reason, rl, "params.size is required"); return -1; }
        if (param_int(p, "size", 0, 0, (int64_t)1 << 40, &v, reason, rl)) return -1;
        if (!hex_to_bytes(sha, d)) { snprintf(reason, rl, "params.sha256 must be 64 hex digits"); return -1; }
        stb_job *j = job_find(b, JOB_FW);
        if (j) { snprintf(reason, rl, "busy: firmware update %s in progress", j->ref); return -1; }
        if (b->conn_state == STB_CONN_REBOOTING) { snprintf(reason, rl, "busy: rebooting"); return -1; }
        return 0;
    }
    case STB_CMD_MESSAGE: {
        const char *text = sj_get_str(p, "text");
        if (!text || !text[0] || strlen(text) > 512) { snprintf(reason, rl, "params.text must be a string of 1 to 512 bytes"); return -1; }
        return param_int(p, "durationSec", 10, 1, 86400, &v, reason, rl);
    }
    case STB_CMD_SET_CONFIG: {
        const sj_value *vals = sj_get(p, "values");
        if (!vals || vals->type != SJ_OBJECT || vals->u.obj.count == 0) { snprintf(reason, rl, "params.values must be a non-empty object"); return -1; }
        for (size_t i = 0; i < vals->u.obj.count; i++) {
            const char *k = vals->u.obj.members[i].key;
            const sj_value *x = vals->u.obj.members[i].value;
            if (strcmp(k, "logLevel") == 0) {
                if (x->type != SJ_STRING || stb_level_parse(x->u.str.ptr) < 0) { snprintf(reason, rl, "values.logLevel must be debug, info, warn or error"); return -1; }
            } else if (strcmp(k, "metricsIntervalSec") == 0) {
                if (x->type != SJ_INT || x->u.integer < 0 || x->u.integer > 3600 || (x->u.integer > 0 && x->u.integer < 5)) {
                    snprintf(reason, rl, "values.metricsIntervalSec must be 0 (heartbeat) or 5..3600"); return -1;
                }
            } else {
                snprintf(reason, rl, "values.%.64s is not an allowed key (allowed: logLevel, metricsIntervalSec)", k);
                return -1;
            }
        }
        return 0;
    }
    case STB_CMD_LOG_PULL:
        if (param_int(p, "lines", 100, 1, 5000, &v, reason, rl)) return -1;
        return param_int(p, "since", 0, 0, INT64_MAX, &v, reason, rl);
    case STB_CMD_LOG_TAIL: {
        if (param_int(p, "durationSec", 60, 1, 600, &v, reason, rl)) return -1;
        stb_job *j = tail_job(b);
        if (j) { snprintf(reason, rl, "busy: log_tail %s is running", j->ref); return -1; }
        return 0;
    }
    case STB_CMD_LOG_TAIL_STOP: {
        const char *ref = sj_get_str(p, "ref");
        if (!ref || !stb_valid_ident(ref)) { snprintf(reason, rl, "params.ref must name the log_tail execution"); return -1; }
        return 0;
    }
    case STB_CMD_DIAGNOSTICS:
        if (job_find(b, JOB_DIAG)) { snprintf(reason, rl, "busy: diagnostics already running"); return -1; }
        return 0;
    default:
        return 0;
    }
}

/* Ends the firmware job j as failed; progress is the step it failed at (STB_PG_NONE: not said). */
static void fw_fail_at(stb_box *b, stb_job *j, int progress, const char *reason)
{
    char *ref = xstrdup(j->ref);
    job_remove(b, j);
    if (ref) set_status(b, ref, STB_ST_FAILED, progress, reason, NULL);
    free(ref);
    char text[400];
    snprintf(text, sizeof text, "firmware update failed: %s (keeping %s)", reason, b->firmware);
    stb_box_log(b, -1, STB_LOG_ERROR, "updater", text);
}

static void fw_fail(stb_box *b, stb_job *j, const char *fmt, ...)
{
    char reason[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    fw_fail_at(b, j, STB_PG_NONE, reason);
}

static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ULL;
    for (; s && *s; s++) {
        h ^= (uint8_t)*s;
        h *= 0x100000001B3ULL;
    }
    return h;
}

double stb_fw_fail_draw(const char *box_id, const char *cmd_id)
{
    uint64_t s = stb_rand_stream(fnv1a64(box_id), fnv1a64(cmd_id));
    return stb_rand_unit(&s);
}

bool stb_fw_injected_failure(const char *box_id, const char *cmd_id, double p)
{
    if (!(p > 0)) return false; /* NaN too */
    if (p >= 1) return true;
    return stb_fw_fail_draw(box_id, cmd_id) < p;
}

static void do_log_pull(stb_box *b, const char *ref, const sj_value *p)
{
    int64_t lines = 100, since = 0;
    sj_get_int(p, "lines", &lines);
    sj_get_int(p, "since", &since);
    const stb_logring *r = &b->logs;
    /* newest first: find how many qualify, then emit oldest to newest within a byte budget */
    uint32_t take = 0;
    size_t budget = (b->max_frame > 1024 ? b->max_frame : 1024) - 512, used = 0;
    char line[768];
    for (uint32_t i = r->count; i > 0 && take < (uint64_t)lines; i--) {
        const stb_logline *l = &r->l[(r->head + i - 1) % r->alloc];
        if (l->ts < since) break;
        size_t n = stb_box_format_log(b, l, line, sizeof line) + 8;
        if (used + n > budget) break;
        used += n;
        take++;
    }
    size_t cap = used + 256;
    char *res = malloc(cap);
    if (!res) { set_status(b, ref, STB_ST_FAILED, STB_PG_NONE, "out of memory", NULL); return; }
    sj_writer w;
    sjw_init(&w, res, cap);
    sjw_obj_begin(&w);
    sjw_key(&w, "lines");
    sjw_arr_begin(&w);
    for (uint32_t i = r->count - take; i < r->count; i++) {
        stb_box_format_log(b, &r->l[(r->head + i) % r->alloc], line, sizeof line);
        sjw_str(&w, line);
    }
    sjw_arr_end(&w);
    sjw_kv_int(&w, "count", take);
    sjw_key(&w, "truncated");
    sjw_bool(&w, take < (uint64_t)lines && take < r->count);
    sjw_obj_end(&w);
    if (sjw_finish(&w) == 0) set_status(b, ref, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, res);
    else set_status(b, ref, STB_ST_FAILED, STB_PG_NONE, "result too large", NULL);
    free(res);
}

static void finish_tail(stb_box *b, stb_job *j, const char *stopped_by)
{
    char res[160];
    sj_writer w;
    sjw_init(&w, res, sizeof res);
    sjw_obj_begin(&w);
    sjw_kv_int(&w, "lines", j->u.tail.lines);
    if (stopped_by) sjw_kv_str(&w, "stoppedBy", stopped_by);
    sjw_obj_end(&w);
    sjw_finish(&w);
    char *ref = xstrdup(j->ref);
    job_remove(b, j);
    if (ref) set_status(b, ref, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, res);
    free(ref);
}

static void factory_reset(stb_box *b, const char *keep_id)
{
    /* The buffer goes, except this command's own statuses (the hub still needs them). */
    char needle[96];
    snprintf(needle, sizeof needle, "\"ref\":\"%s\"", keep_id);
    for (uint32_t i = 0; i < b->ring.count; i++) {
        stb_rec *r = ring_at(&b->ring, i);
        if (!(r->kind == STB_REC_RAW && r->a == 's' && strstr(r->u.raw, needle))) rec_free(r);
    }
    uint32_t n = 0;
    stb_rec *kept = b->ring.count ? malloc((size_t)b->ring.count * sizeof *kept) : NULL;
    for (uint32_t i = 0; kept && i < b->ring.count; i++) {
        stb_rec *r = ring_at(&b->ring, i);
        if (r->kind) kept[n++] = *r;
    }
    if (kept) memcpy(b->ring.r, kept, (size_t)n * sizeof *kept);
    free(kept);
    b->ring.head = 0;
    b->ring.count = n;
    b->ring.sent = 0;
    b->ring.dropped = 0;
    logring_clear(&b->logs);
    for (uint16_t i = 0; i < b->n_exec;) {
        if (strcmp(b->exec[i].id, keep_id) != 0) {
            exec_free(&b->exec[i]);
            memmove(&b->exec[i], &b->exec[i + 1], (size_t)(b->n_exec - i - 1) * sizeof *b->exec);
            b->n_exec--;
        } else {
            i++;
        }
    }
    b->log_min = (uint8_t)b->w->cfg.log_level_min;
    b->metrics_sec = 0;
    free(b->firmware_next);
    b->firmware_next = NULL;
    remove_state_files(b);
    if (persisting(b)) { write_exec(b); write_boot(b); }
}

static void handle_command(stb_box *b, const stb_msg *m)
{
    const char *id = m->id;
    stb_exec *e = find_exec(b, id);
    if (e) {
        /* At most once: answer a repeated delivery with the state already reached. */
        b->w->stats.cmds_duplicate++;
        diagf(b, STB_LOG_INFO, "command %s delivered again; answering %s", id, stb_state_names[e->state]);
        char *reason = xstrdup(e->reason);
        int state = e->state, progress = e->progress;
        sj_writer w;
        sjw_init(&w, b->w->scratch, b->w->scratch_cap);
        uint32_t seq = next_seq(b);
        int64_t ts = sim_ms(b);
        stb_enc_command_status(&w, NULL, seq, ts, id, stb_state_names[state], stb_progress_names[progress], reason, NULL);
        push_raw(b, 's', seq, ts, scratch_dup(&w));
        free(reason);
        return;
    }
    int name = STB_CMD_UNKNOWN;
    for (int k = 1; k < STB_CMD_COUNT; k++)
        if (strcmp(m->name, stb_cmd_names[k]) == 0) name = k;
    char reason[300];
    if (name == STB_CMD_UNKNOWN) {
        snprintf(reason, sizeof reason, "unknown command %.64s", m->name);
    } else if (m->deadline >= 0 && wall_ms(b) > m->deadline) {
        snprintf(reason, sizeof reason, "deadline passed");
    } else if (validate(b, name, m->params, reason, sizeof reason) == 0) {
        reason[0] = 0;
    }
    e = add_exec(b, id, name);
    if (!e) return;
    if (reason[0]) {
        set_status(b, id, STB_ST_REJECTED, STB_PG_NONE, reason, NULL);
        return;
    }
    /* Persisted before it runs: a restart never runs it twice. */
    set_status(b, id, STB_ST_RECEIVED, STB_PG_NONE, NULL, NULL);
    char text[200];
    snprintf(text, sizeof text, "command %s %s received", id, stb_cmd_names[name]);
    stb_box_log(b, -1, STB_LOG_INFO, "agent", text);
    const sj_value *p = m->params;
    int64_t v;
    switch (name) {
    case STB_CMD_REBOOT:
        set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_REBOOTING, NULL, NULL);
        start_reboot(b, id);
        break;
    case STB_CMD_FACTORY_RESET:
        set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_RESETTING, NULL, NULL);
        cancel_jobs_for_reboot(b, id);
        factory_reset(b, id);
        set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_REBOOTING, NULL, NULL);
        start_reboot(b, id);
        break;
    case STB_CMD_FIRMWARE_UPDATE: {
        stb_job *j = job_new(b, JOB_FW, id);
        if (!j) { set_status(b, id, STB_ST_FAILED, STB_PG_NONE, "out of memory", NULL); break; }
        j->stage = FW_DOWNLOADING;
        j->u.fw.version = xstrdup(sj_get_str(p, "version"));
        sj_get_int(p, "size", &v);
        j->u.fw.size = (uint64_t)v;
        hex_to_bytes(sj_get_str(p, "sha256"), j->u.fw.want);
        stb_sha256_init(&j->u.fw.sha);
        j->end_ms = stb_box_now_ms(b) + b->w->cfg.download_timeout_ms;
        set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_DOWNLOADING, NULL, NULL);
        const char *url = sj_get_str(p, "url");
        snprintf(text, sizeof text, "downloading firmware %s from %.120s", j->u.fw.version, url);
        stb_box_log(b, -1, STB_LOG_INFO, "updater", text);
        if (!b->w->ops->http_get || b->w->ops->http_get(b->w->ops_ctx, b, url) != 0) {
            stb_job *jj = job_find(b, JOB_FW);
            if (jj) fw_fail(b, jj, "download failed: cannot start the request");
        }
        break;
    }
    case STB_CMD_MESSAGE: {
        int64_t dur = 10;
        sj_get_int(p, "durationSec", &dur);
        set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_NONE, NULL, NULL);
        if (b->w->ops->screen) b->w->ops->screen(b->w->ops_ctx, b, sj_get_str(p, "text"), dur);
        set_status(b, id, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, NULL);
        break;
    }
    case STB_CMD_RELOAD_PORTAL:
        set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_NONE, NULL, NULL);
        stb_box_event(b, -1, STB_EV_PORTAL_RELOAD, -1, -1);
        stb_box_log_t(b, -1, STB_T_PORTAL_RELOAD, -1, -1, 0);
        set_status(b, id, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, NULL);
        break;
    case STB_CMD_SET_CONFIG: {
        set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_NONE, NULL, NULL);
        const sj_value *vals = sj_get(p, "values");
        const char *lv = sj_get_str(vals, "logLevel");
        if (lv) b->log_min = (uint8_t)stb_level_parse(lv);
        if (sj_get_int(vals, "metricsIntervalSec", &v)) {
            b->metrics_sec = (uint16_t)v;
            uint32_t interval = b->metrics_sec ? b->metrics_sec : b->heartbeat_sec;
            b->next_metrics_ms = stb_box_now_ms(b) + (int64_t)interval * 1000;
        }
        write_config(b);
        char res[128];
        snprintf(res, sizeof res, "{\"logLevel\":\"%s\",\"metricsIntervalSec\":%u}", stb_level_names[b->log_min & 3], b->metrics_sec);
        set_status(b, id, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, res);
        break;
    }
    case STB_CMD_LOG_PULL:
        set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_NONE, NULL, NULL);
        do_log_pull(b, id, p);
        break;
    case STB_CMD_LOG_TAIL: {
        int64_t dur = 60;
        sj_get_int(p, "durationSec", &dur);
        stb_job *j = job_new(b, JOB_TAIL, id);
        if (!j) { set_status(b, id, STB_ST_FAILED, STB_PG_NONE, "out of memory", NULL); break; }
        j->end_ms = stb_box_now_ms(b) + dur * 1000;
        set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_STREAMING, NULL, NULL);
        break;
    }
    case STB_CMD_LOG_TAIL_STOP: {
        const char *ref = sj_get_str(p, "ref");
        stb_job *j = tail_job(b);
        if (j && strcmp(j->ref, ref) == 0) {
            finish_tail(b, j, id);
            set_status(b, id, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, NULL);
        } else {
            snprintf(reason, sizeof reason, "no log_tail %.64s is running", ref);
            set_status(b, id, STB_ST_FAILED, STB_PG_NONE, reason, NULL);
        }
        break;
    }
    case STB_CMD_DIAGNOSTICS: {
        stb_job *j = job_new(b, JOB_DIAG, id);
        if (!j) { set_status(b, id, STB_ST_FAILED, STB_PG_NONE, "out of memory", NULL); break; }
        j->u.diag.n = b->w->cfg.diag_pings > DIAG_MAX ? DIAG_MAX : (b->w->cfg.diag_pings ? b->w->cfg.diag_pings : 1);
        j->u.diag.want = 1;
        j->due_ms = stb_box_now_ms(b);
        j->end_ms = j->due_ms + (int64_t)j->u.diag.n * b->w->cfg.diag_interval_ms + b->w->cfg.diag_timeout_ms;
        set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_MEASURING, NULL, NULL);
        kick(b);
        break;
    }
    default:
        break;
    }
}

/* ------------------------------------------------------------------ firmware download */

void stb_box_fw_data(stb_box *b, const void *data, size_t len)
{
    stb_job *j = job_find(b, JOB_FW);
    if (!j || j->stage != FW_DOWNLOADING) return;
    j->u.fw.got += len;
    if (j->u.fw.got > j->u.fw.size) {
        if (b->w->ops->http_cancel) b->w->ops->http_cancel(b->w->ops_ctx, b);
        fw_fail(b, j, "size mismatch: more than the expected %llu bytes", (unsigned long long)j->u.fw.size);
        return;
    }
    stb_sha256_update(&j->u.fw.sha, data, len);
}

void stb_box_fw_done(stb_box *b, bool ok, int http_status, const char *error)
{
    stb_job *j = job_find(b, JOB_FW);
    if (!j || j->stage != FW_DOWNLOADING) return;
    if (!ok) {
        if (http_status && http_status != 200) fw_fail(b, j, "download failed: HTTP %d", http_status);
        else fw_fail(b, j, "download failed: %s", error ? error : "connection error");
        return;
    }
    set_status(b, j->ref, STB_ST_IN_PROGRESS, STB_PG_VERIFYING, NULL, NULL);
    if (j->u.fw.got != j->u.fw.size) {
        fw_fail(b, j, "size mismatch: expected %llu bytes, got %llu", (unsigned long long)j->u.fw.size,
                (unsigned long long)j->u.fw.got);
        return;
    }
    uint8_t digest[32];
    stb_sha256_final(&j->u.fw.sha, digest);
    if (memcmp(digest, j->u.fw.want, 32) != 0) {
        char got[65], want[65];
        stb_hex(digest, 32, got);
        stb_hex(j->u.fw.want, 32, want);
        fw_fail(b, j, "sha256 mismatch: expected %s, got %s", want, got);
        return;
    }
    j->stage = FW_INSTALLING;
    j->due_ms = stb_box_now_ms(b) + b->w->cfg.install_ms;
    set_status(b, j->ref, STB_ST_IN_PROGRESS, STB_PG_INSTALLING, NULL, NULL);
}

/* ------------------------------------------------------------------ timers */

static void tick_jobs(stb_box *b, int64_t now)
{
    stb_job *j = b->jobs;
    while (j) {
        stb_job *next = j->next;
        switch (j->kind) {
        case JOB_FW:
            if (j->stage == FW_DOWNLOADING && now >= j->end_ms) {
                if (b->w->ops->http_cancel) b->w->ops->http_cancel(b->w->ops_ctx, b);
                fw_fail(b, j, "download timed out");
            } else if (j->stage == FW_INSTALLING && now >= j->due_ms) {
                if (stb_fw_injected_failure(b->id, j->ref, b->w->cfg.fail_firmware)) {
                    /* Downloaded and verified, then the "install" fails: no reboot, old version kept. */
                    fw_fail_at(b, j, STB_PG_INSTALLING, "injected install failure");
                    break;
                }
                set_str(&b->firmware_next, j->u.fw.version);
                char *ref = xstrdup(j->ref);
                char text[160];
                snprintf(text, sizeof text, "firmware %s installed; rebooting", j->u.fw.version);
                stb_box_log(b, -1, STB_LOG_INFO, "updater", text);
                write_boot(b);
                if (ref) {
                    set_status(b, ref, STB_ST_IN_PROGRESS, STB_PG_REBOOTING, NULL, NULL);
                    start_reboot(b, ref);
                }
                free(ref);
                return; /* the job list was rebuilt */
            }
            break;
        case JOB_DIAG: {
            uint32_t n = j->u.diag.n;
            if (j->u.diag.sent < n && now >= j->due_ms && !j->u.diag.want && b->conn_state == STB_CONN_READY) {
                j->u.diag.want = 1;
                kick(b);
            }
            if (j->u.diag.recv >= n || now >= j->end_ms) {
                if (j->u.diag.recv == 0) {
                    char *ref = xstrdup(j->ref);
                    job_remove(b, j);
                    if (ref) set_status(b, ref, STB_ST_FAILED, STB_PG_NONE, "no pong received", NULL);
                    free(ref);
                } else {
                    char res[600];
                    sj_writer w;
                    sjw_init(&w, res, sizeof res);
                    sjw_obj_begin(&w);
                    sjw_key(&w, "rttMs");
                    sjw_arr_begin(&w);
                    for (uint32_t i = 0; i < j->u.diag.sent; i++)
                        if (j->u.diag.rtt[i] >= 0) sjw_double(&w, stb_round(j->u.diag.rtt[i] * 1000) / 1000, 3);
                    sjw_arr_end(&w);
                    sjw_kv_int(&w, "sent", j->u.diag.sent);
                    sjw_kv_int(&w, "received", j->u.diag.recv);
                    sjw_obj_end(&w);
                    sjw_finish(&w);
                    char *ref = xstrdup(j->ref);
                    job_remove(b, j);
                    if (ref) set_status(b, ref, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, res);
                    free(ref);
                }
            }
            break;
        }
        case JOB_TAIL:
            if (now >= j->end_ms) finish_tail(b, j, NULL);
            break;
        default:
            break;
        }
        j = next;
    }
}

void stb_box_tick(stb_box *b)
{
    int64_t now = stb_box_now_ms(b);
    if (b->conn_state == STB_CONN_STOPPED) return;
    if (b->conn_state == STB_CONN_REBOOTING) {
        if (now >= b->next_connect_ms) {
            stb_box_boot(b);
            b->conn_state = STB_CONN_IDLE;
            b->next_connect_ms = now;
            b->attempt = 0;
            uint32_t interval = b->metrics_sec ? b->metrics_sec : b->heartbeat_sec;
            b->next_metrics_ms = now + (int64_t)interval * 1000;
        }
        return;
    }
    if (now >= b->next_metrics_ms) {
        uint32_t interval = b->metrics_sec ? b->metrics_sec : b->heartbeat_sec;
        stb_box_metrics(b);
        b->next_metrics_ms = now + (int64_t)interval * 1000;
        b->hb_count++;
        if (b->w->cfg.ping_every && b->hb_count % b->w->cfg.ping_every == 0 && b->conn_state == STB_CONN_READY)
            stb_box_ping(b);
    }
    if (b->jobs) tick_jobs(b, now);
    if (b->conn_state == STB_CONN_READY && !b->write_wanted && (stb_box_pending(b) || b->direct || b->pings_wanted)) {
        refill(b, now);
        if (b->tokens >= 1 || b->direct || b->pings_wanted) kick(b);
    }
    if (b->dirty) stb_box_flush(b, false);
}
