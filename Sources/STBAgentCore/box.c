/* One simulated set-top box: the tables, config defaults, clock and diagnostics helpers,
 * sequence numbers, boot, lifecycle, transport events, reboot and the timer tick.
 * Transport-free; see stb_ops. The rest of the box is split by concern:
 *   box_ring.c       the bounded buffers (telemetry ring, log ring, direct frames)
 *   box_telemetry.c  logs, events, metrics and pings into the buffers
 *   box_frames.c     encoding, outbound frames (hello, batches, pings), inbound frames
 *   box_persist.c    state files: boot, executed ids, config, outbox
 *   box_jobs.c       executed ids, command_status, running jobs, firmware download
 *   box_commands.c   command validation and dispatch
 * Functions shared between them are declared in box_internal.h. */
#include "stb_agent_core.h"
#include "box_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int stb_level_parse(const char *s)
{
    if (!s) return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, stb_level_names[i]) == 0) return i;
    return -1;
}

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
int64_t box_now_us(const stb_box *b) { return b->w->ops->mono_us(b->w->ops_ctx); }
int64_t box_wall_ms(const stb_box *b) { return b->w->ops->wall_ms(b->w->ops_ctx); }
int64_t box_sim_ms(const stb_box *b) { return stb_world_sim_ms(b->w); }

void box_diagf(stb_box *b, int level, const char *fmt, ...)
{
    if (!b->w->ops->diag) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->w->ops->diag(b->w->ops_ctx, b, level, msg);
}

char *box_xstrdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void box_set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = box_xstrdup(src);
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

/* ------------------------------------------------------------------ seq, kick */

uint32_t box_next_seq(stb_box *b)
{
    b->seq++;
    if (b->seq > b->seq_reserved) {
        /* Persist a reservation ahead of use, so a restarted agent never reuses a seq. */
        b->seq_reserved = b->seq + SEQ_RESERVE;
        if (box_persisting(b)) box_write_boot(b);
    }
    return b->seq;
}

void box_kick(stb_box *b)
{
    if ((b->conn_state == STB_CONN_OPEN || b->conn_state == STB_CONN_READY) && !b->write_wanted && b->conn) {
        b->write_wanted = 1;
        b->w->ops->want_write(b->w->ops_ctx, b);
    }
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

/* ------------------------------------------------------------------ reboot */

static void drop_connection(stb_box *b, int code, const char *why)
{
    if (b->conn && (b->conn_state == STB_CONN_CONNECTING || b->conn_state == STB_CONN_OPEN || b->conn_state == STB_CONN_READY))
        b->w->ops->close_conn(b->w->ops_ctx, b, code, why);
    b->conn = NULL;
    b->hello_sent = 0;
    b->ring.sent = 0;
    b->write_wanted = 0;
    b->pings_wanted = 0;
    box_direct_clear(b);
}

/* Closes the connection and comes back after 1-3 s as a new boot. keep_ref: the command
 * that asked for it (its state is completed at boot). */
void box_start_reboot(stb_box *b, const char *keep_ref)
{
    box_cancel_jobs_for_reboot(b, keep_ref);
    stb_box_flush(b, true);
    drop_connection(b, 1000, "rebooting");
    b->conn_state = STB_CONN_REBOOTING;
    b->next_connect_ms = stb_box_now_ms(b) + stb_rand_range(&b->rng, b->w->cfg.reboot_min_ms, b->w->cfg.reboot_max_ms);
    box_diagf(b, STB_LOG_INFO, "rebooting");
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
    b->boot_sim_ms = box_sim_ms(b);
    b->rtt_ms = -1;
    /* Unacknowledged telemetry of the previous boot is renumbered into this one: the hub
     * identifies messages by (box, bootId, seq) and a frame carries no bootId. */
    for (uint32_t i = 0; i < b->ring.count; i++) {
        stb_rec *r = box_ring_at(&b->ring, i);
        uint32_t seq = box_next_seq(b);
        if (r->kind == STB_REC_RAW) {
            char *nr = raw_with_seq(r->u.raw, seq);
            if (nr) { free(r->u.raw); r->u.raw = nr; }
        }
        r->seq = seq;
    }
    b->ring.sent = 0;
    b->seq_reserved = b->seq + SEQ_RESERVE;
    box_write_boot(b);
    char boot[17];
    stb_box_boot_id_hex(b, boot);
    char text[160];
    snprintf(text, sizeof text, "boot %u: firmware %s, bootId %s", b->boots, b->firmware, boot);
    stb_box_log(b, -1, STB_LOG_INFO, "system", text);
    /* Commands that asked for this reboot are complete; others were cut short. */
    for (uint16_t i = 0; i < b->n_exec; i++) {
        stb_exec *e = &b->exec[i];
        if (e->state != STB_ST_RECEIVED && e->state != STB_ST_IN_PROGRESS) continue;
        char *ref = box_xstrdup(e->id);
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
            box_set_status(b, ref, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, result);
        } else {
            box_set_status(b, ref, STB_ST_FAILED, STB_PG_NONE, "interrupted by reboot", NULL);
        }
        free(ref);
    }
    box_diagf(b, STB_LOG_INFO, "boot %u: firmware %s, bootId %s", b->boots, b->firmware, boot);
}

/* ------------------------------------------------------------------ lifecycle */

stb_box *stb_box_new(stb_world *w, uint32_t index, const char *id, const char *secret, const char *state_dir)
{
    stb_box *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->w = w;
    b->index = index;
    b->id = box_xstrdup(id);
    b->secret = secret;
    b->state_dir = box_xstrdup(state_dir);
    b->model = w->cfg.model;
    b->firmware = box_xstrdup(w->cfg.firmware);
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
    while (b->jobs) box_job_remove(b, b->jobs);
    box_ring_clear(&b->ring);
    free(b->ring.r);
    box_logring_clear(&b->logs);
    free(b->logs.l);
    for (uint16_t i = 0; i < b->n_exec; i++) box_exec_free(&b->exec[i]);
    free(b->exec);
    box_direct_clear(b);
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
    if (box_persisting(b)) {
        if (stb_mkdirs(b->state_dir, 0700) != 0) return -1;
        box_load_config(b);
        box_load_exec(b);
        resumed = box_load_boot(b);
        box_load_outbox(b);
    }
    bool reboot_pending = false;
    for (uint16_t i = 0; i < b->n_exec; i++)
        if (b->exec[i].state == STB_ST_IN_PROGRESS && b->exec[i].progress == STB_PG_REBOOTING) reboot_pending = true;
    if (resumed && !reboot_pending) {
        /* An agent restart, not a reboot: same boot, seq continues past the reservation. */
        b->seq = b->seq_reserved;
        if (b->ring.count && box_ring_at(&b->ring, b->ring.count - 1)->seq > b->seq) b->seq = box_ring_at(&b->ring, b->ring.count - 1)->seq;
        b->seq_reserved = b->seq + SEQ_RESERVE;
        box_write_boot(b);
        char boot[17];
        stb_box_boot_id_hex(b, boot);
        box_diagf(b, STB_LOG_INFO, "resumed boot %s at seq %u with %u buffered messages", boot, b->seq, b->ring.count);
        for (uint16_t i = 0; i < b->n_exec; i++) {
            stb_exec *e = &b->exec[i];
            if (e->state == STB_ST_RECEIVED || e->state == STB_ST_IN_PROGRESS) {
                char *ref = box_xstrdup(e->id);
                if (ref) box_set_status(b, ref, STB_ST_FAILED, STB_PG_NONE, "interrupted: agent restarted", NULL);
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
    if (box_persisting(b)) { box_write_exec(b); stb_box_flush(b, true); }
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
    box_kick(b);
}

void stb_box_on_closed(stb_box *b, stb_end_kind kind, int close_code, int http_status, int retry_after_s)
{
    b->conn = NULL;
    b->hello_sent = 0;
    b->ring.sent = 0;
    b->write_wanted = 0;
    b->pings_wanted = 0;
    box_direct_clear(b);
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
        box_diagf(b, STB_LOG_ERROR, "%s; not reconnecting",
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
        box_diagf(b, STB_LOG_INFO, "disconnected (close %d), reconnecting in %u ms", close_code, delay);
    } else {
        /* the first failure, then every eighth: a long outage does not fill the buffer with these */
        if (b->attempt == 1 || b->attempt % 8 == 0) stb_box_log_t(b, -1, STB_T_UNREACHABLE, -1, -1, delay);
        if (kind == STB_END_HTTP)
            box_diagf(b, STB_LOG_INFO, "hub refused the connection (HTTP %d%s), retrying in %u ms", http_status,
                  retry_after_s >= 0 ? ", Retry-After" : "", delay);
        else if (kind == STB_END_CLOSED)
            box_diagf(b, STB_LOG_INFO, "connection closed before welcome (close %d), retrying in %u ms", close_code, delay);
        else
            box_diagf(b, STB_LOG_INFO, "cannot connect to hub, retrying in %u ms", delay);
    }
}

/* ------------------------------------------------------------------ timers */

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
    if (b->jobs) box_tick_jobs(b, now);
    if (b->conn_state == STB_CONN_READY && !b->write_wanted && (stb_box_pending(b) || b->direct || b->pings_wanted)) {
        box_refill(b, now);
        if (b->tokens >= 1 || b->direct || b->pings_wanted) box_kick(b);
    }
    if (b->dirty) stb_box_flush(b, false);
}
