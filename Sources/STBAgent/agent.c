/* libwebsockets glue: one context, one thread, one client connection per simulated box,
 * plus plain-HTTP client connections for firmware downloads. This file: clocks, diagnostics,
 * the timer tick (connect ramp, progress, stop) and the lifecycle; the stb_ops and the lws
 * callback are in agent_transport.c, --hub/--source-ips parsing in agent_config.c. */
#include "stb_agent.h"
#include "agent_internal.h"

#include <libwebsockets.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK_US 100000

static volatile sig_atomic_t stop_requested;

void agent_request_stop(void) { stop_requested = 1; }

/* ------------------------------------------------------------------ clocks */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t agent_op_wall(void *ctx) { (void)ctx; return wall_ms(); }
int64_t agent_op_mono(void *ctx) { (void)ctx; return mono_us(); }

/* ------------------------------------------------------------------ diagnostics */

static void stamp(char *out, size_t cap)
{
    int64_t now = wall_ms();
    time_t s = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char b[32];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03dZ", b, (int)(now % 1000));
}

void agent_op_diag(void *ctx, stb_box *b, int level, const char *msg)
{
    agent *a = ctx;
    int need = a->c.verbosity >= 2 ? STB_LOG_DEBUG : a->c.verbosity == 1 ? (a->c.fleet ? STB_LOG_WARN : STB_LOG_INFO) : STB_LOG_ERROR;
    if (level < need) return;
    if (a->c.fleet && a->c.verbosity < 2) {
        int64_t now = mono_us() / 1000;
        if (now - a->diag_window_ms > 10000) {
            if (a->diag_suppressed) fprintf(stderr, "stb-agent: %u more diagnostics suppressed\n", a->diag_suppressed);
            a->diag_window_ms = now;
            a->diag_in_window = 0;
            a->diag_suppressed = 0;
        }
        if (++a->diag_in_window > 20) { a->diag_suppressed++; return; }
    }
    char ts[40];
    stamp(ts, sizeof ts);
    fprintf(stderr, "%s %s %s: %s\n", ts, b ? b->id : "stb-agent", stb_level_names[level & 3], msg);
}

static void agent_log(agent *a, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void agent_log(agent *a, int level, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    agent_op_diag(a, NULL, level, msg);
}

void agent_op_screen(void *ctx, stb_box *b, const char *text, int64_t dur)
{
    (void)ctx;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    printf("[on-screen message] %s (%llds) at %lld: %s\n", b->id, (long long)dur,
           (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000, text);
    fflush(stdout);
}

/* ------------------------------------------------------------------ tick */

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) { kb = atol(line + 6); break; }
    fclose(f);
    return kb;
}

static void progress(agent *a, int64_t now)
{
    stb_world *w = a->w;
    uint32_t ready = 0, stopped = 0;
    uint64_t buffered = 0;
    for (uint32_t i = 0; i < w->nboxes; i++) {
        stb_box *b = w->boxes[i];
        if (b->conn_state == STB_CONN_READY) ready++;
        if (b->conn_state == STB_CONN_STOPPED) stopped++;
        buffered += b->ring.count;
    }
    double secs = (now - a->start_ms) / 1000.0;
    double dt = (now - a->last_progress_ms) / 1000.0;
    double rate = dt > 0 ? (w->stats.sent_msgs - a->last_sent) / dt : 0;
    a->last_sent = w->stats.sent_msgs;
    a->last_progress_ms = now;
    time_t sim = (time_t)(stb_world_sim_ms(w) / 1000);
    struct tm tm;
    gmtime_r(&sim, &tm);
    char simbuf[32];
    strftime(simbuf, sizeof simbuf, "%Y-%m-%d %H:%MZ", &tm);
    long kb = rss_kb();
    printf("[%6.0fs] connected %u/%u | sent %llu (%.0f/s) | acked %llu | buffered %llu dropped %llu | cmds done %llu rejected %llu"
           " | hub errors %llu | connects %llu failed %llu | sim %s | rss %.1f MB%s\n",
           secs, ready, w->nboxes, (unsigned long long)w->stats.sent_msgs, rate, (unsigned long long)w->stats.acked,
           (unsigned long long)buffered, (unsigned long long)w->stats.dropped, (unsigned long long)w->stats.cmds_done,
           (unsigned long long)w->stats.cmds_rejected, (unsigned long long)w->stats.errors_rx,
           (unsigned long long)w->stats.connects, (unsigned long long)w->stats.connect_failures, simbuf,
           kb / 1024.0, stopped && !a->stopping ? " | stopped boxes present" : "");
    fflush(stdout);
}

static void begin_stop(agent *a, const char *why)
{
    if (a->stopping) return;
    a->stopping = true;
    agent_log(a, STB_LOG_INFO, "stopping (%s)", why);
    for (uint32_t i = 0; i < a->w->nboxes; i++) stb_box_shutdown(a->w->boxes[i]);
    a->stop_deadline_ms = mono_us() / 1000 + 3000;
}

/* Ends the service loop. With an event library lws_service() runs the loop itself and
 * returns only once the context is being destroyed, so the destroy starts from inside the
 * loop (as lws's own eventlib examples do); agent_run finishes it. */
static void finish(agent *a)
{
    a->done = true;
    if (a->evlib) lws_context_destroy(a->ctx);
    else lws_cancel_service(a->ctx);
}

static void on_lws_signal(void *handle, int signum)
{
    (void)handle;
    (void)signum;
    stop_requested = 1;
}

static void tick(lws_sorted_usec_list_t *sul)
{
    agent *a = lws_container_of(sul, agent, sul);
    stb_world *w = a->w;
    int64_t now = mono_us() / 1000;

    if (stop_requested) begin_stop(a, "signal");
    if (a->c.duration_ms && now - a->start_ms >= a->c.duration_ms) begin_stop(a, "--duration elapsed");
    if (a->stopping) {
        bool open = a->connected > 0 || a->pending > 0;
        if (!open || now >= a->stop_deadline_ms) {
            finish(a);
            return;
        }
        lws_sul_schedule(a->ctx, 0, &a->sul, tick, TICK_US);
        return;
    }

    stb_world_advance(w);

    double dt = (now - a->ramp_ms) / 1000.0;
    a->ramp_ms = now;
    a->ramp_tokens += dt * a->c.ramp;
    double burst = a->c.ramp * TICK_US / 1e6 * 2 + 1;
    if (a->ramp_tokens > burst) a->ramp_tokens = burst;

    uint32_t n = w->nboxes, stopped = 0, revoked = 0, notfound = 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (a->cursor + k) % n;
        stb_box *b = w->boxes[i];
        stb_box_tick(b);
        if (b->conn_state == STB_CONN_STOPPED) {
            stopped++;
            if (b->stop_reason == STB_STOP_REVOKED || b->stop_reason == STB_STOP_UNAUTHORIZED) revoked++;
            if (b->stop_reason == STB_STOP_NOT_FOUND) notfound++;
            continue;
        }
        if (stb_box_connect_due(b, now) && a->ramp_tokens >= 1 && a->pending < a->c.max_pending) {
            a->ramp_tokens -= 1;
            a->cursor = i + 1;
            agent_box_connect(a, b);
        }
    }
    if (n && stopped == n) {
        a->exit_code = notfound ? 4 : revoked ? 3 : 0;
        if (!a->c.fleet)
            fprintf(stderr, "stb-agent: %s\n", notfound ? "the hub has no /v1/stb endpoint at that URL (404); check --hub"
                                           : "the hub refused this box's credentials (revoked or unknown); stopping");
        else
            fprintf(stderr, "stb-agent: every box was stopped by the hub (%u revoked or unauthorized, %u not found)\n", revoked, notfound);
        finish(a);
        return;
    }
    if (now >= a->next_progress_ms) {
        progress(a, now);
        a->next_progress_ms = now + a->c.progress_ms;
    }
    lws_sul_schedule(a->ctx, 0, &a->sul, tick, TICK_US);
}

/* ------------------------------------------------------------------ lifecycle */

agent *agent_new(const agent_config *c)
{
    agent *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->c = *c;
    if (a->c.ramp <= 0) a->c.ramp = 200;
    if (a->c.max_pending <= 0) a->c.max_pending = 512;
    if (a->c.progress_ms <= 0) a->c.progress_ms = 5000;
    a->tx = malloc(TX_CAP);
    if (!a->tx) { free(a); return NULL; }
    return a;
}

void agent_free(agent *a)
{
    if (!a) return;
    free(a->tx);
    free(a);
}

static void lws_log_emit(int level, const char *line)
{
    (void)level;
    fprintf(stderr, "lws: %s", line);
}

int agent_run(agent *a, stb_world *w)
{
    a->w = w;
    int levels = LLL_ERR;
    if (a->c.verbosity >= 3) levels |= LLL_WARN | LLL_NOTICE | LLL_INFO | LLL_CLIENT;
    else if (a->c.verbosity >= 2) levels |= LLL_WARN;
    lws_set_log_level(levels, lws_log_emit);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = agent_protocols;
    info.user = a;
    info.gid = -1;
    info.uid = -1;
    info.fd_limit_per_thread = (unsigned int)(a->c.fd_budget > 0 ? a->c.fd_budget : 0);
    info.max_http_header_pool = (unsigned short)(a->c.max_pending + 32 > 65000 ? 65000 : a->c.max_pending + 32);
    info.max_http_header_data = 2048;
    info.timeout_secs = 20;
    info.connect_timeout_secs = 10;
    if (a->c.tls) info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info.signal_cb = on_lws_signal; /* event libraries watch SIGINT/SIGTERM themselves */
    uint64_t base = info.options;
    int loop = a->c.event_loop;
    if (loop == AGENT_LOOP_EV || loop == AGENT_LOOP_AUTO) {
        info.options = base | LWS_SERVER_OPTION_LIBEV;
        a->ctx = lws_create_context(&info);
        a->evlib = a->ctx != NULL;
        if (!a->ctx && loop == AGENT_LOOP_EV) { fprintf(stderr, "stb-agent: cannot use libev (lws evlib_ev plugin)\n"); return 1; }
    } else if (loop == AGENT_LOOP_UV) {
        info.options = base | LWS_SERVER_OPTION_LIBUV;
        a->ctx = lws_create_context(&info);
        a->evlib = a->ctx != NULL;
        if (!a->ctx) { fprintf(stderr, "stb-agent: cannot use libuv (lws evlib_uv plugin)\n"); return 1; }
    }
    if (!a->ctx) {
        info.options = base;
        info.signal_cb = NULL;
        a->ctx = lws_create_context(&info);
    }
    if (!a->ctx) {
        fprintf(stderr, "stb-agent: cannot create the libwebsockets context\n");
        return 1;
    }
    agent_log(a, STB_LOG_DEBUG, "event loop: %s", a->evlib ? (loop == AGENT_LOOP_UV ? "libuv" : "libev") : "poll");
    a->start_ms = a->ramp_ms = a->last_progress_ms = mono_us() / 1000;
    a->next_progress_ms = a->start_ms + a->c.progress_ms;
    lws_sul_schedule(a->ctx, 0, &a->sul, tick, 1000);
    while (!a->done) {
        int n = lws_service(a->ctx, 0);
        if (n < 0 || (n && a->evlib)) break;
    }
    progress(a, mono_us() / 1000);
    for (uint32_t i = 0; i < w->nboxes; i++) stb_box_flush(w->boxes[i], true);
    /* Detach every transport record from its box before the context goes. */
    for (uint32_t i = 0; i < w->nboxes; i++) {
        stb_box *b = w->boxes[i];
        tp *t = b->tp;
        if (t) { t->box = NULL; t->reported = 1; }
        b->tp = NULL;
        b->conn = NULL;
    }
    for (tp *t = a->downloads; t; t = t->next_dl) t->box = NULL;
    if (!a->evlib) lws_sul_cancel(&a->sul);
    lws_context_destroy(a->ctx);
    a->ctx = NULL;
    return a->exit_code;
}
