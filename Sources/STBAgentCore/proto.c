#include "stb_proto.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

static void envelope(sj_writer *w, const char *type, const char *id, int64_t seq, int64_t ts)
{
    sjw_obj_begin(w);
    sjw_kv_str(w, "type", type);
    if (id) sjw_kv_str(w, "id", id);
    if (seq >= 0) sjw_kv_int(w, "seq", seq);
    if (ts >= 0) sjw_kv_int(w, "ts", ts);
}

void stb_enc_hello(sj_writer *w, const char *id, int64_t seq, int64_t ts, const char *model,
                   const char *firmware, const char *boot_id)
{
    envelope(w, "hello", id, seq, ts);
    sjw_kv_int(w, "protocol", STB_PROTOCOL_VERSION);
    sjw_kv_str(w, "model", model);
    sjw_kv_str(w, "firmware", firmware);
    sjw_kv_str(w, "bootId", boot_id);
    sjw_obj_end(w);
}

void stb_enc_ping(sj_writer *w, const char *id, int64_t seq, int64_t ts)
{
    envelope(w, "ping", id, seq, ts);
    sjw_obj_end(w);
}

void stb_enc_metrics(sj_writer *w, const char *id, int64_t seq, int64_t ts, const stb_metrics *m)
{
    envelope(w, "metrics", id, seq, ts);
    sjw_kv_double(w, "cpu", m->cpu, 1);
    sjw_kv_double(w, "mem", m->mem, 1);
    sjw_kv_double(w, "tempC", m->temp_c, 1);
    sjw_kv_int(w, "uptimeSec", m->uptime_sec);
    sjw_kv_double(w, "rttMs", m->rtt_ms, 1);
    sjw_kv_int(w, "bitrateKbps", m->bitrate_kbps);
    sjw_kv_int(w, "underruns", m->underruns);
    sjw_kv_int(w, "droppedFrames", m->dropped_frames);
    sjw_obj_end(w);
}

void stb_enc_event(sj_writer *w, const char *id, int64_t seq, int64_t ts, const char *event,
                   const char *channel, const char *code, const char *mode)
{
    envelope(w, "event", id, seq, ts);
    sjw_kv_str(w, "event", event);
    if (channel) sjw_kv_str(w, "channel", channel);
    if (code) sjw_kv_str(w, "code", code);
    if (mode) sjw_kv_str(w, "mode", mode);
    sjw_obj_end(w);
}

void stb_enc_log(sj_writer *w, const char *id, int64_t seq, int64_t ts, const char *level,
                 const char *source, const char *text, const char *tail)
{
    envelope(w, "log", id, seq, ts);
    sjw_kv_str(w, "level", level);
    sjw_kv_str(w, "source", source);
    /* text is at most 4,096 bytes on the wire */
    size_t n = strlen(text);
    if (n > 4096) {
        n = 4096;
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80) n--; /* do not split a UTF-8 sequence */
    }
    sjw_key(w, "text");
    sjw_strn(w, text, n);
    if (tail) sjw_kv_str(w, "tail", tail);
    sjw_obj_end(w);
}

void stb_enc_command_status(sj_writer *w, const char *id, int64_t seq, int64_t ts, const char *ref,
                            const char *state, const char *progress, const char *reason,
                            const char *result_json)
{
    envelope(w, "command_status", id, seq, ts);
    sjw_kv_str(w, "ref", ref);
    sjw_kv_str(w, "state", state);
    if (progress) sjw_kv_str(w, "progress", progress);
    if (reason) sjw_kv_str(w, "reason", reason);
    if (result_json) {
        sjw_key(w, "result");
        sjw_raw(w, result_json, strlen(result_json));
    }
    sjw_obj_end(w);
}

void stb_enc_batch_begin(sj_writer *w, const char *id, int64_t ts)
{
    envelope(w, "batch", id, -1, ts);
    sjw_key(w, "messages");
    sjw_arr_begin(w);
}

void stb_enc_batch_end(sj_writer *w)
{
    sjw_arr_end(w);
    sjw_obj_end(w);
}

bool stb_valid_ident(const char *s)
{
    if (!s) return false;
    size_t n = strlen(s);
    if (n == 0 || n > STB_MAX_IDENT) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F) return false;
    }
    return true;
}

static int opt_int(const sj_value *o, const char *key, int64_t dflt, int64_t lo, int64_t hi, int64_t *out,
                   char *err, size_t errlen)
{
    const sj_value *v = sj_get(o, key);
    if (!v) { *out = dflt; return 0; }
    if (v->type != SJ_INT || v->u.integer < lo || v->u.integer > hi) {
        snprintf(err, errlen, "%s must be an integer in %lld..%lld", key, (long long)lo, (long long)hi);
        return -1;
    }
    *out = v->u.integer;
    return 0;
}

static int opt_str(const sj_value *o, const char *key, const char **out, char *err, size_t errlen)
{
    const sj_value *v = sj_get(o, key);
    *out = NULL;
    if (!v) return 0;
    if (v->type != SJ_STRING) { snprintf(err, errlen, "%s must be a string", key); return -1; }
    *out = v->u.str.ptr;
    return 0;
}

int stb_decode(const char *data, size_t len, stb_msg *m, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) { err = dummy; errlen = sizeof dummy; }
    memset(m, 0, sizeof *m);
    m->server_time = -1;
    m->deadline = -1;
    m->up_to = -1;
    char perr[96];
    sj_status st = sj_parse(data, len, &m->root, perr, sizeof perr);
    if (st != SJ_OK) {
        snprintf(err, errlen, "%s: %s", st == SJ_ERR_UTF8 ? "invalid UTF-8" : "invalid JSON", perr);
        return -1;
    }
    const sj_value *r = m->root;
    if (r->type != SJ_OBJECT) { snprintf(err, errlen, "a frame must be a JSON object"); goto bad; }
    const sj_value *t = sj_get(r, "type");
    if (!t) { snprintf(err, errlen, "type is required"); goto bad; }
    if (t->type != SJ_STRING || !stb_valid_ident(t->u.str.ptr)) { snprintf(err, errlen, "type must be a string of 1 to 64 bytes"); goto bad; }
    m->type = t->u.str.ptr;
    if (opt_str(r, "id", &m->id, err, errlen) || opt_str(r, "ref", &m->ref, err, errlen)) goto bad;
    if (opt_int(r, "serverTime", -1, 0, INT64_MAX, &m->server_time, err, errlen)) goto bad;

    if (strcmp(m->type, "welcome") == 0) {
        m->kind = STB_MSG_WELCOME;
        if (opt_int(r, "protocol", STB_PROTOCOL_VERSION, 1, 1000, &m->protocol, err, errlen)) goto bad;
        if (m->protocol != STB_PROTOCOL_VERSION) { snprintf(err, errlen, "unsupported protocol %lld", (long long)m->protocol); goto bad; }
        if (opt_str(r, "session", &m->session, err, errlen) || opt_str(r, "node", &m->node, err, errlen)) goto bad;
        if (opt_int(r, "heartbeatSec", STB_DEFAULT_HEARTBEAT, 1, 86400, &m->heartbeat_sec, err, errlen)) goto bad;
        const sj_value *lim = sj_get(r, "limits");
        if (lim && lim->type != SJ_OBJECT) { snprintf(err, errlen, "limits must be an object"); goto bad; }
        if (opt_int(lim, "maxFrameBytes", STB_DEFAULT_MAX_FRAME, 256, 1 << 30, &m->max_frame_bytes, err, errlen)) goto bad;
        if (opt_int(lim, "maxBatch", STB_DEFAULT_MAX_BATCH, 1, 100000, &m->max_batch, err, errlen)) goto bad;
        if (opt_int(lim, "messagesPerSecond", STB_DEFAULT_MPS, 1, 1000000, &m->messages_per_second, err, errlen)) goto bad;
    } else if (strcmp(m->type, "pong") == 0) {
        m->kind = STB_MSG_PONG;
    } else if (strcmp(m->type, "error") == 0) {
        m->kind = STB_MSG_ERROR;
        if (opt_str(r, "code", &m->code, err, errlen) || opt_str(r, "reason", &m->reason, err, errlen) ||
            opt_str(r, "field", &m->field, err, errlen)) goto bad;
        if (!m->code) { snprintf(err, errlen, "error without code"); goto bad; }
    } else if (strcmp(m->type, "ack") == 0) {
        m->kind = STB_MSG_ACK;
        if (!sj_get(r, "upTo")) { snprintf(err, errlen, "upTo is required"); goto bad; }
        if (opt_int(r, "upTo", -1, 0, INT64_MAX, &m->up_to, err, errlen)) goto bad;
    } else if (strcmp(m->type, "command") == 0) {
        static sj_value empty = { .type = SJ_OBJECT };
        m->kind = STB_MSG_COMMAND;
        if (!m->id) { snprintf(err, errlen, "command without id"); goto bad; }
        if (!stb_valid_ident(m->id)) { snprintf(err, errlen, "command id must be 1 to 64 bytes"); goto bad; }
        if (opt_str(r, "name", &m->name, err, errlen)) goto bad;
        if (!m->name || !m->name[0]) { snprintf(err, errlen, "command without name"); goto bad; }
        const sj_value *p = sj_get(r, "params");
        if (p && p->type != SJ_OBJECT && p->type != SJ_NULL) { snprintf(err, errlen, "params must be an object"); goto bad; }
        m->params = (p && p->type == SJ_OBJECT) ? p : &empty;
        if (opt_int(r, "deadline", -1, 0, INT64_MAX, &m->deadline, err, errlen)) goto bad;
    } else {
        m->kind = STB_MSG_OTHER;
    }
    return 0;
bad:
    sj_free(m->root);
    m->root = NULL;
    return -1;
}

void stb_msg_free(stb_msg *m)
{
    sj_free(m->root);
    m->root = NULL;
}
