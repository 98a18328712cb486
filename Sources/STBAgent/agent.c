/* libwebsockets glue: one context, one thread, one client connection per simulated box,
 * plus plain-HTTP client connections for firmware downloads. */
#include "stb_agent.h"

#include <libwebsockets.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK_US 100000
#define TX_CAP (1 << 20)

typedef enum { TP_WS = 1, TP_HTTP } tp_kind;

/* Per-connection transport state; the wsi's opaque user data. box is NULL once the box
 * has let go of the connection (reboot, shutdown, cancelled download). */
typedef struct tp {
    struct tp *next_dl;  /* download list */
    stb_box *box;
    struct lws *wsi;
    char *rx;
    size_t rx_len, rx_cap;
    uint8_t kind;
    uint8_t established;
    uint8_t reported;    /* the box was told the connection ended */
    uint16_t close_code; /* from the peer's close frame */
    uint16_t closing;    /* close code to send on the next writable */
} tp;

struct agent {
    agent_config c;
    struct lws_context *ctx;
    stb_world *w;
    lws_sorted_usec_list_t sul;
    char *tx;
    int pending;          /* handshakes in flight */
    uint32_t connected;   /* welcomed or upgraded */
    double ramp_tokens;
    int64_t ramp_ms;
    uint32_t cursor;      /* round-robin start for connects */
    int64_t start_ms;
    int64_t next_progress_ms;
    int64_t stop_deadline_ms;
    bool stopping;
    bool done;
    bool evlib;           /* an event library runs the loop inside lws_service */
    int exit_code;
    tp *downloads;
    /* diagnostics rate limit (fleet) */
    int64_t diag_window_ms;
    uint32_t diag_in_window, diag_suppressed;
    uint64_t last_sent, last_bytes;
    int64_t last_progress_ms;
};

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

static int64_t op_wall(void *ctx) { (void)ctx; return wall_ms(); }
static int64_t op_mono(void *ctx) { (void)ctx; return mono_us(); }

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

static void op_diag(void *ctx, stb_box *b, int level, const char *msg)
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
    op_diag(a, NULL, level, msg);
}

static void op_screen(void *ctx, stb_box *b, const char *text, int64_t dur)
{
    (void)ctx;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    printf("[on-screen message] %s (%llds) at %lld: %s\n", b->id, (long long)dur,
           (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000, text);
    fflush(stdout);
}

/* ------------------------------------------------------------------ parsing */

int agent_parse_url(const char *url, agent_config *c, char *err, size_t errlen)
{
    const char *p;
    if (strncmp(url, "ws://", 5) == 0) { c->tls = false; p = url + 5; c->port = 80; }
    else if (strncmp(url, "wss://", 6) == 0) { c->tls = true; p = url + 6; c->port = 443; }
    else { snprintf(err, errlen, "--hub must start with ws:// or wss://"); return -1; }
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    char hostport[256];
    if (hl == 0 || hl >= sizeof hostport) { snprintf(err, errlen, "--hub has no host"); return -1; }
    memcpy(hostport, p, hl);
    hostport[hl] = 0;
    char *colon = strrchr(hostport, ':');
    if (hostport[0] == '[') { /* [v6]:port */
        char *close = strchr(hostport, ']');
        if (!close) { snprintf(err, errlen, "--hub: bad IPv6 literal"); return -1; }
        colon = strchr(close, ':');
        *close = 0;
        memmove(hostport, hostport + 1, strlen(hostport));
    }
    if (colon) {
        *colon = 0;
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port < 1 || port > 65535) { snprintf(err, errlen, "--hub: bad port"); return -1; }
        c->port = (int)port;
    }
    snprintf(c->host, sizeof c->host, "%s", hostport);
    snprintf(c->path, sizeof c->path, "%s", slash && slash[1] ? slash : "/v1/stb");
    return 0;
}

int agent_parse_source_ips(const char *spec, agent_config *c, char *err, size_t errlen)
{
    c->n_src = 0;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    char *dash = strchr(buf, '-');
    if (dash) {
        *dash = 0;
        struct in_addr a, b;
        if (inet_pton(AF_INET, buf, &a) != 1 || inet_pton(AF_INET, dash + 1, &b) != 1) {
            snprintf(err, errlen, "--source-ips: expected A-B with IPv4 addresses");
            return -1;
        }
        uint32_t lo = ntohl(a.s_addr), hi = ntohl(b.s_addr);
        if (hi < lo || hi - lo >= AGENT_MAX_SOURCE_IPS) {
            snprintf(err, errlen, "--source-ips: the range must be ascending and at most %d addresses", AGENT_MAX_SOURCE_IPS);
            return -1;
        }
        for (uint32_t v = lo; v <= hi; v++) {
            struct in_addr x = { htonl(v) };
            inet_ntop(AF_INET, &x, c->src_ips[c->n_src++], 48);
        }
        return 0;
    }
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        unsigned char tmp[16];
        if (inet_pton(AF_INET, tok, tmp) != 1 && inet_pton(AF_INET6, tok, tmp) != 1) {
            snprintf(err, errlen, "--source-ips: %s is not an IP address", tok);
            return -1;
        }
        if (c->n_src >= AGENT_MAX_SOURCE_IPS) { snprintf(err, errlen, "--source-ips: too many"); return -1; }
        snprintf(c->src_ips[c->n_src++], 48, "%s", tok);
    }
    return 0;
}

/* ------------------------------------------------------------------ ops */

static void op_want_write(void *ctx, stb_box *b)
{
    (void)ctx;
    tp *t = b->tp;
    if (t && t->wsi && t->box == b) lws_callback_on_writable(t->wsi);
}

static void detach(tp *t)
{
    if (t->box && t->kind == TP_WS && t->box->tp == t) t->box->tp = NULL;
    t->box = NULL;
}

static void op_close(void *ctx, stb_box *b, int code, const char *reason)
{
    (void)reason;
    agent *a = ctx;
    tp *t = b->tp;
    if (!t) return;
    if (!t->established && a->pending > 0) a->pending--;
    if (t->established && a->connected > 0) a->connected--;
    t->reported = 1;
    detach(t);
    b->conn = NULL;
    t->closing = (uint16_t)code;
    if (t->wsi) {
        if (t->established) lws_callback_on_writable(t->wsi);
        else lws_set_timeout(t->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

static void dl_remove(agent *a, tp *t)
{
    for (tp **pp = &a->downloads; *pp; pp = &(*pp)->next_dl)
        if (*pp == t) { *pp = t->next_dl; break; }
}

static int op_http_get(void *ctx, stb_box *b, const char *url)
{
    agent *a = ctx;
    if (strncmp(url, "http://", 7) != 0) return -1;
    const char *p = url + 7;
    const char *slash = strchr(p, '/');
    char host[256];
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    if (hl == 0 || hl >= sizeof host) return -1;
    memcpy(host, p, hl);
    host[hl] = 0;
    int port = 80;
    char *colon = strrchr(host, ':');
    if (colon) { *colon = 0; port = atoi(colon + 1); if (port <= 0 || port > 65535) return -1; }
    static char path[2048], hosthdr[300];
    snprintf(path, sizeof path, "%s", slash ? slash : "/");
    snprintf(hosthdr, sizeof hosthdr, "%s:%d", host, port);
    tp *t = calloc(1, sizeof *t);
    if (!t) return -1;
    t->kind = TP_HTTP;
    t->box = b;
    t->next_dl = a->downloads;
    a->downloads = t;
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = a->ctx;
    i.address = host;
    i.port = port;
    i.path = path;
    i.host = hosthdr;
    i.origin = hosthdr;
    i.method = "GET";
    i.protocol = NULL;
    i.local_protocol_name = "argus-stb";
    i.opaque_user_data = t;
    i.pwsi = &t->wsi;
    if (!lws_client_connect_via_info(&i)) {
        /* A synchronous failure may already have reported through the callback. */
        if (t->box) {
            t->box = NULL;
            dl_remove(a, t);
            if (!t->wsi) free(t);
            return -1;
        }
        return 0;
    }
    return 0;
}

static void op_http_cancel(void *ctx, stb_box *b)
{
    agent *a = ctx;
    for (tp *t = a->downloads; t; t = t->next_dl) {
        if (t->box == b) {
            t->box = NULL;
            if (t->wsi) lws_set_timeout(t->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
    }
}

static const stb_ops ops = { op_wall, op_mono, op_want_write, op_close, op_http_get, op_http_cancel, op_screen, op_diag };

const stb_ops *agent_ops(void) { return &ops; }
void *agent_ops_ctx(agent *a) { return a; }

/* ------------------------------------------------------------------ connect */

static void box_connect(agent *a, stb_box *b)
{
    char hosthdr[300];
    bool default_port = a->c.port == (a->c.tls ? 443 : 80);
    if (default_port) snprintf(hosthdr, sizeof hosthdr, "%s", a->c.host);
    else snprintf(hosthdr, sizeof hosthdr, "%s:%d", a->c.host, a->c.port);
    tp *t = calloc(1, sizeof *t);
    if (!t) return;
    t->kind = TP_WS;
    t->box = b;
    b->tp = t;
    b->conn = t; /* non-NULL while a connection exists; the wsi is t->wsi */
    stb_box_on_connecting(b);
    a->pending++;
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = a->ctx;
    i.address = a->c.host;
    i.port = a->c.port;
    i.ssl_connection = a->c.tls ? LCCSCF_USE_SSL : 0;
    i.path = a->c.path;
    i.host = hosthdr;
    i.origin = hosthdr;
    i.protocol = NULL; /* no Sec-WebSocket-Protocol: the hub does not negotiate one */
    i.local_protocol_name = "argus-stb";
    i.ietf_version_or_minus_one = -1;
    i.opaque_user_data = t;
    i.pwsi = &t->wsi;
    if (a->c.n_src > 0) i.iface = a->c.src_ips[b->index % (uint32_t)a->c.n_src];
    if (!lws_client_connect_via_info(&i)) {
        if (!t->reported && t->box) {
            /* failed before any callback */
            a->pending--;
            t->reported = 1;
            detach(t);
            b->conn = NULL;
            stb_box_on_closed(b, STB_END_CONNECT_FAILED, 0, 0, -1);
        }
        if (!t->wsi) free(t);
    }
}

/* The hub refused the upgrade: read the HTTP status and Retry-After while the headers are
 * still attached. Returns the status, or 0 when it is not known. */
static int refused_status(struct lws *wsi, const char *why, int *retry_after)
{
    char buf[64];
    int status = 0;
    *retry_after = -1;
    int n = lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_HTTP);
    if (n > 0) status = atoi(buf);
    if (!status) status = (int)lws_http_client_http_response(wsi);
    if (!status && why) {
        /* lws words some refusals itself */
        const char *p = strstr(why, "HTTP/1.1 ");
        if (p) status = atoi(p + 9);
        else if (strstr(why, "unauthorized") || strstr(why, "401")) status = 401;
    }
    n = lws_hdr_copy(wsi, buf, sizeof buf, WSI_TOKEN_HTTP_RETRY_AFTER);
    if (n > 0) *retry_after = atoi(buf);
    return status;
}

static void end_ws(agent *a, tp *t, stb_end_kind kind, int code, int status, int retry_after)
{
    if (t->reported) return;
    t->reported = 1;
    stb_box *b = t->box;
    if (t->established) { if (a->connected) a->connected--; }
    else if (a->pending > 0) a->pending--;
    detach(t);
    if (b) {
        b->conn = NULL;
        stb_box_on_closed(b, kind, code, status, retry_after);
    }
}

/* ------------------------------------------------------------------ callback */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)user;
    struct lws_context *ctx = lws_get_context(wsi);
    agent *a = ctx ? lws_context_user(ctx) : NULL;
    tp *t = lws_get_opaque_user_data(wsi);
    if (!a) return 0;

    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        if (!t || t->kind != TP_WS || !t->box) break;
        unsigned char **p = (unsigned char **)in, *end = (*p) + len;
        char cred[512], hdr[720];
        int n = snprintf(cred, sizeof cred, "%s:%s", t->box->id, t->box->secret ? t->box->secret : "");
        memcpy(hdr, "Basic ", 6);
        int m = lws_b64_encode_string(cred, n, hdr + 6, (int)sizeof hdr - 6);
        if (m < 0) return -1;
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, (unsigned char *)hdr, 6 + m, p, end)) return -1;
        break;
    }

    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!t) return -1;
        t->established = 1;
        if (a->pending > 0) a->pending--;
        a->connected++;
        if (!t->box) return -1;
        stb_box_on_open(t->box);
        lws_callback_on_writable(wsi);
        break;

    case LWS_CALLBACK_CLIENT_RECEIVE: {
        if (!t || !t->box) break;
        if (lws_frame_is_binary(wsi)) break; /* v1 hubs send text only */
        bool first = lws_is_first_fragment(wsi), final = lws_is_final_fragment(wsi);
        if (first && final && !t->rx_len) {
            stb_box_on_frame(t->box, in, len);
            break;
        }
        if (t->rx_len + len > (1u << 22)) { t->rx_len = 0; break; } /* absurd: drop */
        if (t->rx_len + len > t->rx_cap) {
            size_t nc = t->rx_cap ? t->rx_cap : 4096;
            while (nc < t->rx_len + len) nc *= 2;
            char *nr = realloc(t->rx, nc);
            if (!nr) { t->rx_len = 0; break; }
            t->rx = nr;
            t->rx_cap = nc;
        }
        memcpy(t->rx + t->rx_len, in, len);
        t->rx_len += len;
        if (final) {
            stb_box_on_frame(t->box, t->rx, t->rx_len);
            free(t->rx);
            t->rx = NULL;
            t->rx_len = t->rx_cap = 0;
        }
        break;
    }

    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        if (!t) return -1;
        if (t->closing || !t->box) {
            static const char bye[] = "going away";
            lws_close_reason(wsi, t->closing ? (enum lws_close_status)t->closing : LWS_CLOSE_STATUS_GOINGAWAY,
                             (unsigned char *)bye, sizeof bye - 1);
            return -1;
        }
        size_t n;
        if (stb_box_next_frame(t->box, a->tx + LWS_PRE, TX_CAP - LWS_PRE - 16, &n)) {
            int w = lws_write(wsi, (unsigned char *)a->tx + LWS_PRE, n, LWS_WRITE_TEXT);
            if (w < (int)n) return -1;
            lws_callback_on_writable(wsi);
        }
        break;
    }

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (t && len >= 2) {
            const unsigned char *p = in;
            t->close_code = (uint16_t)(p[0] << 8 | p[1]);
        }
        if (t && t->box && len > 2) {
            char why[128];
            size_t k = len - 2 < sizeof why - 1 ? len - 2 : sizeof why - 1;
            memcpy(why, (const char *)in + 2, k);
            why[k] = 0;
            char msg[200];
            snprintf(msg, sizeof msg, "hub closed the connection: %u %s", t->close_code, why);
            op_diag(a, t->box, t->close_code == 4001 || t->close_code == 4000 ? STB_LOG_WARN : STB_LOG_INFO, msg);
        }
        break;

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        if (!t) break;
        if (t->kind == TP_HTTP) {
            stb_box *b = t->box;
            t->box = NULL;
            dl_remove(a, t);
            if (b) {
                char why[160];
                snprintf(why, sizeof why, "%.*s", in ? (int)(len < 150 ? len : 150) : 15, in ? (const char *)in : "connect failed");
                stb_box_fw_done(b, false, 0, why);
            }
            break;
        }
        if (!t->reported) {
            int retry_after = -1;
            int status = refused_status(wsi, in ? (const char *)in : NULL, &retry_after);
            if (t->box) {
                char msg[256];
                snprintf(msg, sizeof msg, "connection failed: %.*s%s%d", in ? (int)(len < 160 ? len : 160) : 0,
                         in ? (const char *)in : "", status ? " HTTP " : "", status);
                op_diag(a, t->box, STB_LOG_DEBUG, msg);
            }
            end_ws(a, t, status ? STB_END_HTTP : STB_END_CONNECT_FAILED, 0, status, retry_after);
        }
        break;

    case LWS_CALLBACK_CLIENT_CLOSED:
        if (t && t->kind == TP_WS) end_ws(a, t, STB_END_CLOSED, t->close_code ? t->close_code : 1006, 0, -1);
        break;

    /* ---- firmware download (plain HTTP client) ---- */
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        if (t && t->kind == TP_HTTP) {
            int status = (int)lws_http_client_http_response(wsi);
            if (status != 200) {
                stb_box *b = t->box;
                t->box = NULL;
                dl_remove(a, t);
                if (b) stb_box_fw_done(b, false, status, NULL);
                return -1;
            }
        }
        break;

    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP: {
        char buf[LWS_PRE + 8192];
        char *px = buf + LWS_PRE;
        int lenx = (int)sizeof buf - LWS_PRE;
        if (lws_http_client_read(wsi, &px, &lenx) < 0) return -1;
        return 0;
    }

    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        if (t && t->kind == TP_HTTP) {
            if (!t->box) return -1;
            stb_box_fw_data(t->box, in, len);
            if (!t->box) return -1; /* cancelled by the core (too large) */
        }
        return 0;

    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        if (t && t->kind == TP_HTTP && t->box) {
            stb_box *b = t->box;
            t->box = NULL;
            dl_remove(a, t);
            stb_box_fw_done(b, true, 200, NULL);
        }
        return -1; /* done with this connection */

    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        if (t && t->kind == TP_HTTP && t->box) {
            stb_box *b = t->box;
            t->box = NULL;
            dl_remove(a, t);
            stb_box_fw_done(b, false, 0, "connection closed before the end of the file");
        }
        break;

    case LWS_CALLBACK_WSI_DESTROY:
        if (t) {
            if (t->kind == TP_WS) end_ws(a, t, t->established ? STB_END_CLOSED : STB_END_CONNECT_FAILED,
                                         t->close_code ? t->close_code : 1006, 0, -1);
            else if (t->box) {
                stb_box *b = t->box;
                t->box = NULL;
                stb_box_fw_done(b, false, 0, "connection lost");
            }
            if (t->kind == TP_HTTP) dl_remove(a, t);
            lws_set_opaque_user_data(wsi, NULL);
            free(t->rx);
            free(t);
        }
        break;

    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    { "argus-stb", callback, 0, 1024, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

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
            box_connect(a, b);
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
    info.protocols = protocols;
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
