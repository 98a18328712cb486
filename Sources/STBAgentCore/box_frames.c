/* Frames: encoding buffered records, the outbound frame sequence (hello, direct frames,
 * pings, batches within the rate budget) and inbound frames (welcome, pong, error, ack,
 * command). */
#include "stb_agent_core.h"
#include "box_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ encoding */

/* %c channel, %e error code, %n number */
const tmpl_t box_templates[STB_T_COUNT] = {
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

size_t box_fmt_tmpl(const stb_world *w, int tmpl, int chan, int code, uint32_t num, char *out, size_t cap)
{
    const char *f = box_templates[tmpl].fmt;
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

void box_enc_rec(const stb_box *b, sj_writer *w, const stb_rec *r, bool with_id)
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
                      r->u.e.code == NONE16 ? NULL : stb_error_codes[r->u.e.code % STB_ERR_CODES],
                      r->u.e.num == STB_MODE_TIMESHIFT ? "timeshift" : r->u.e.num == STB_MODE_CATCHUP ? "catchup" : NULL);
        break;
    case STB_REC_LOG: {
        char text[512];
        int t = r->b < STB_T_COUNT ? r->b : STB_T_TEXT;
        box_fmt_tmpl(b->w, t, r->u.e.chan == NONE16 ? -1 : r->u.e.chan, r->u.e.code == NONE16 ? -1 : r->u.e.code,
                 r->u.e.num, text, sizeof text);
        stb_enc_log(w, idp, r->seq, r->ts, stb_level_names[r->a & 3], box_templates[t].source, text, NULL);
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
char *box_scratch_dup(sj_writer *w)
{
    if (sjw_finish(w) != 0) return NULL;
    char *p = malloc(w->len + 1);
    if (p) memcpy(p, w->buf, w->len + 1);
    return p;
}

/* ------------------------------------------------------------------ outbound frames */

void box_refill(stb_box *b, int64_t now)
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

static int emit_ping(stb_box *b, char *buf, size_t cap, size_t *len, stb_job *diag)
{
    sj_writer w;
    sjw_init(&w, buf, cap);
    uint32_t seq = box_next_seq(b);
    char id[24];
    snprintf(id, sizeof id, "p-%u", seq);
    stb_enc_ping(&w, id, seq, box_sim_ms(b));
    if (sjw_finish(&w) != 0) return 0;
    int64_t t = box_now_us(b);
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
        uint32_t seq = box_next_seq(b);
        snprintf(id, sizeof id, "h-%u", seq);
        stb_enc_hello(&w, id, seq, box_sim_ms(b), b->model, b->firmware, boot);
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
    stb_job *diag = box_job_find(b, JOB_DIAG);
    if (diag && diag->u.diag.want) {
        if (emit_ping(b, buf, fcap, len, diag)) { b->w->stats.sent_frames++; return 1; }
    }
    if (b->pings_wanted) {
        if (emit_ping(b, buf, fcap, len, NULL)) { b->w->stats.sent_frames++; return 1; }
    }
    /* refused records (see on_frame) are skipped */
    while (b->ring.sent < b->ring.count && box_ring_at(&b->ring, b->ring.sent)->kind == 0) b->ring.sent++;
    uint32_t pending = stb_box_pending(b);
    if (!pending) { b->write_wanted = 0; return 0; }
    int64_t now = stb_box_now_ms(b);
    box_refill(b, now);
    if (b->tokens < 1) { b->write_wanted = 0; return 0; }
    uint32_t allowed = (uint32_t)b->tokens;
    uint32_t n = pending;
    if (n > b->max_batch) n = b->max_batch;
    if (n > allowed) n = allowed;

    sj_writer w;
    uint32_t msgs = 0, consumed = 0;
    const stb_rec *first = box_ring_at(&b->ring, b->ring.sent);
    uint32_t first_seq = first->seq, last_seq = first->seq;
    if (n > 1 && batchable(first)) {
        char id[24];
        snprintf(id, sizeof id, "b-%u", first_seq);
        sjw_init(&w, buf, fcap > 2 ? fcap - 2 : fcap); /* room for "]}" */
        stb_enc_batch_begin(&w, id, box_sim_ms(b));
        for (uint32_t p = 0; msgs < n && b->ring.sent + p < b->ring.count; p++) {
            const stb_rec *r = box_ring_at(&b->ring, b->ring.sent + p);
            if (r->kind == 0) continue;
            if (!batchable(r)) break;
            size_t save = w.len;
            bool comma = w.need_comma;
            box_enc_rec(b, &w, r, false);
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
    box_enc_rec(b, &w, first, true);
    if (sjw_finish(&w) != 0) {
        /* Larger than the hub accepts: it can never be sent. Skip it for this connection. */
        box_diagf(b, STB_LOG_WARN, "message seq %u exceeds maxFrameBytes %u; skipped", first_seq, b->max_frame);
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
    int64_t t = box_now_us(b);
    stb_job *diag = box_job_find(b, JOB_DIAG);
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
    box_ring_kill(b, lo, hi);
}

void stb_box_on_frame(stb_box *b, const char *data, size_t len)
{
    stb_world *w = b->w;
    w->stats.bytes_in += len;
    stb_msg m;
    char err[200];
    if (stb_decode(data, len, &m, err, sizeof err) != 0) {
        w->stats.malformed_rx++;
        box_diagf(b, w->stats.malformed_rx <= 5 ? STB_LOG_WARN : STB_LOG_DEBUG, "malformed frame from hub ignored (%s)", err);
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
        box_diagf(b, STB_LOG_INFO, "welcome: session %s on %s, heartbeat %us, %u buffered", m.session ? m.session : "?",
              m.node ? m.node : "?", b->heartbeat_sec, b->ring.count);
        box_kick(b);
        break;
    }
    case STB_MSG_PONG:
        on_pong(b, &m);
        break;
    case STB_MSG_ERROR:
        w->stats.errors_rx++;
        box_diagf(b, w->stats.errors_rx <= 3 ? STB_LOG_INFO : STB_LOG_DEBUG, "hub error %s%s%s%s%s", m.code,
              m.reason ? ": " : "", m.reason ? m.reason : "", m.ref ? " ref " : "", m.ref ? m.ref : "");
        on_error(b, &m);
        break;
    case STB_MSG_ACK: {
        uint32_t n = 0;
        while (b->ring.count && (int64_t)box_ring_at(&b->ring, 0)->seq <= m.up_to) { box_ring_pop(&b->ring); n++; }
        if (n) { w->stats.acked += n; b->dirty = 1; }
        break;
    }
    case STB_MSG_COMMAND:
        box_handle_command(b, &m);
        break;
    default:
        box_diagf(b, STB_LOG_DEBUG, "ignoring message of unknown type %s", m.type);
        break;
    }
    stb_msg_free(&m);
}
