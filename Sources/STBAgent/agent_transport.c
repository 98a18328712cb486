/* The libwebsockets side of the agent: the stb_ops the core calls (write wanted, close,
 * firmware HTTP GET), WebSocket connects with Basic credentials, and the lws callback for
 * the hub connections and the firmware downloads. */
#include "stb_agent.h"
#include "agent_internal.h"

#include <libwebsockets.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static const stb_ops ops = { agent_op_wall, agent_op_mono, op_want_write, op_close, op_http_get, op_http_cancel, agent_op_screen, agent_op_diag };

const stb_ops *agent_ops(void) { return &ops; }
void *agent_ops_ctx(agent *a) { return a; }

/* ------------------------------------------------------------------ connect */

void agent_box_connect(agent *a, stb_box *b)
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
            agent_op_diag(a, t->box, t->close_code == 4001 || t->close_code == 4000 ? STB_LOG_WARN : STB_LOG_INFO, msg);
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
                agent_op_diag(a, t->box, STB_LOG_DEBUG, msg);
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

const struct lws_protocols agent_protocols[] = {
    { "argus-stb", callback, 0, 1024, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};
