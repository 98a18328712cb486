/* Commands: parameter validation, dispatch of a command frame (at most once per id), and the
 * commands that finish at once (log_pull, factory_reset, set_config, message, ...). */
#include "stb_agent_core.h"
#include "box_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        stb_job *j = box_job_find(b, JOB_FW);
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
        stb_job *j = box_tail_job(b);
        if (j) { snprintf(reason, rl, "busy: log_tail %s is running", j->ref); return -1; }
        return 0;
    }
    case STB_CMD_LOG_TAIL_STOP: {
        const char *ref = sj_get_str(p, "ref");
        if (!ref || !stb_valid_ident(ref)) { snprintf(reason, rl, "params.ref must name the log_tail execution"); return -1; }
        return 0;
    }
    case STB_CMD_DIAGNOSTICS:
        if (box_job_find(b, JOB_DIAG)) { snprintf(reason, rl, "busy: diagnostics already running"); return -1; }
        return 0;
    default:
        return 0;
    }
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
    if (!res) { box_set_status(b, ref, STB_ST_FAILED, STB_PG_NONE, "out of memory", NULL); return; }
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
    if (sjw_finish(&w) == 0) box_set_status(b, ref, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, res);
    else box_set_status(b, ref, STB_ST_FAILED, STB_PG_NONE, "result too large", NULL);
    free(res);
}

static void factory_reset(stb_box *b, const char *keep_id)
{
    /* The buffer goes, except this command's own statuses (the hub still needs them). */
    char needle[96];
    snprintf(needle, sizeof needle, "\"ref\":\"%s\"", keep_id);
    for (uint32_t i = 0; i < b->ring.count; i++) {
        stb_rec *r = box_ring_at(&b->ring, i);
        if (!(r->kind == STB_REC_RAW && r->a == 's' && strstr(r->u.raw, needle))) box_rec_free(r);
    }
    uint32_t n = 0;
    stb_rec *kept = b->ring.count ? malloc((size_t)b->ring.count * sizeof *kept) : NULL;
    for (uint32_t i = 0; kept && i < b->ring.count; i++) {
        stb_rec *r = box_ring_at(&b->ring, i);
        if (r->kind) kept[n++] = *r;
    }
    if (kept) memcpy(b->ring.r, kept, (size_t)n * sizeof *kept);
    free(kept);
    b->ring.head = 0;
    b->ring.count = n;
    b->ring.sent = 0;
    b->ring.dropped = 0;
    box_logring_clear(&b->logs);
    for (uint16_t i = 0; i < b->n_exec;) {
        if (strcmp(b->exec[i].id, keep_id) != 0) {
            box_exec_free(&b->exec[i]);
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
    box_remove_state_files(b);
    if (box_persisting(b)) { box_write_exec(b); box_write_boot(b); }
}

void box_handle_command(stb_box *b, const stb_msg *m)
{
    const char *id = m->id;
    stb_exec *e = box_find_exec(b, id);
    if (e) {
        /* At most once: answer a repeated delivery with the state already reached. */
        b->w->stats.cmds_duplicate++;
        box_diagf(b, STB_LOG_INFO, "command %s delivered again; answering %s", id, stb_state_names[e->state]);
        char *reason = box_xstrdup(e->reason);
        int state = e->state, progress = e->progress;
        sj_writer w;
        sjw_init(&w, b->w->scratch, b->w->scratch_cap);
        uint32_t seq = box_next_seq(b);
        int64_t ts = box_sim_ms(b);
        stb_enc_command_status(&w, NULL, seq, ts, id, stb_state_names[state], stb_progress_names[progress], reason, NULL);
        box_push_raw(b, 's', seq, ts, box_scratch_dup(&w));
        free(reason);
        return;
    }
    int name = STB_CMD_UNKNOWN;
    for (int k = 1; k < STB_CMD_COUNT; k++)
        if (strcmp(m->name, stb_cmd_names[k]) == 0) name = k;
    char reason[300];
    if (name == STB_CMD_UNKNOWN) {
        snprintf(reason, sizeof reason, "unknown command %.64s", m->name);
    } else if (m->deadline >= 0 && box_wall_ms(b) > m->deadline) {
        snprintf(reason, sizeof reason, "deadline passed");
    } else if (validate(b, name, m->params, reason, sizeof reason) == 0) {
        reason[0] = 0;
    }
    e = box_add_exec(b, id, name);
    if (!e) return;
    if (reason[0]) {
        box_set_status(b, id, STB_ST_REJECTED, STB_PG_NONE, reason, NULL);
        return;
    }
    /* Persisted before it runs: a restart never runs it twice. */
    box_set_status(b, id, STB_ST_RECEIVED, STB_PG_NONE, NULL, NULL);
    char text[200];
    snprintf(text, sizeof text, "command %s %s received", id, stb_cmd_names[name]);
    stb_box_log(b, -1, STB_LOG_INFO, "agent", text);
    const sj_value *p = m->params;
    int64_t v;
    switch (name) {
    case STB_CMD_REBOOT:
        box_set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_REBOOTING, NULL, NULL);
        box_start_reboot(b, id);
        break;
    case STB_CMD_FACTORY_RESET:
        box_set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_RESETTING, NULL, NULL);
        box_cancel_jobs_for_reboot(b, id);
        factory_reset(b, id);
        box_set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_REBOOTING, NULL, NULL);
        box_start_reboot(b, id);
        break;
    case STB_CMD_FIRMWARE_UPDATE: {
        stb_job *j = box_job_new(b, JOB_FW, id);
        if (!j) { box_set_status(b, id, STB_ST_FAILED, STB_PG_NONE, "out of memory", NULL); break; }
        j->stage = FW_DOWNLOADING;
        j->u.fw.version = box_xstrdup(sj_get_str(p, "version"));
        sj_get_int(p, "size", &v);
        j->u.fw.size = (uint64_t)v;
        hex_to_bytes(sj_get_str(p, "sha256"), j->u.fw.want);
        stb_sha256_init(&j->u.fw.sha);
        j->end_ms = stb_box_now_ms(b) + b->w->cfg.download_timeout_ms;
        box_set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_DOWNLOADING, NULL, NULL);
        const char *url = sj_get_str(p, "url");
        snprintf(text, sizeof text, "downloading firmware %s from %.120s", j->u.fw.version, url);
        stb_box_log(b, -1, STB_LOG_INFO, "updater", text);
        if (!b->w->ops->http_get || b->w->ops->http_get(b->w->ops_ctx, b, url) != 0) {
            stb_job *jj = box_job_find(b, JOB_FW);
            if (jj) box_fw_fail(b, jj, "download failed: cannot start the request");
        }
        break;
    }
    case STB_CMD_MESSAGE: {
        int64_t dur = 10;
        sj_get_int(p, "durationSec", &dur);
        box_set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_NONE, NULL, NULL);
        if (b->w->ops->screen) b->w->ops->screen(b->w->ops_ctx, b, sj_get_str(p, "text"), dur);
        box_set_status(b, id, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, NULL);
        break;
    }
    case STB_CMD_RELOAD_PORTAL:
        box_set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_NONE, NULL, NULL);
        stb_box_event(b, -1, STB_EV_PORTAL_RELOAD, -1, -1);
        stb_box_log_t(b, -1, STB_T_PORTAL_RELOAD, -1, -1, 0);
        box_set_status(b, id, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, NULL);
        break;
    case STB_CMD_SET_CONFIG: {
        box_set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_NONE, NULL, NULL);
        const sj_value *vals = sj_get(p, "values");
        const char *lv = sj_get_str(vals, "logLevel");
        if (lv) b->log_min = (uint8_t)stb_level_parse(lv);
        if (sj_get_int(vals, "metricsIntervalSec", &v)) {
            b->metrics_sec = (uint16_t)v;
            uint32_t interval = b->metrics_sec ? b->metrics_sec : b->heartbeat_sec;
            b->next_metrics_ms = stb_box_now_ms(b) + (int64_t)interval * 1000;
        }
        box_write_config(b);
        char res[128];
        snprintf(res, sizeof res, "{\"logLevel\":\"%s\",\"metricsIntervalSec\":%u}", stb_level_names[b->log_min & 3], b->metrics_sec);
        box_set_status(b, id, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, res);
        break;
    }
    case STB_CMD_LOG_PULL:
        box_set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_NONE, NULL, NULL);
        do_log_pull(b, id, p);
        break;
    case STB_CMD_LOG_TAIL: {
        int64_t dur = 60;
        sj_get_int(p, "durationSec", &dur);
        stb_job *j = box_job_new(b, JOB_TAIL, id);
        if (!j) { box_set_status(b, id, STB_ST_FAILED, STB_PG_NONE, "out of memory", NULL); break; }
        j->end_ms = stb_box_now_ms(b) + dur * 1000;
        box_set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_STREAMING, NULL, NULL);
        break;
    }
    case STB_CMD_LOG_TAIL_STOP: {
        const char *ref = sj_get_str(p, "ref");
        stb_job *j = box_tail_job(b);
        if (j && strcmp(j->ref, ref) == 0) {
            box_finish_tail(b, j, id);
            box_set_status(b, id, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, NULL);
        } else {
            snprintf(reason, sizeof reason, "no log_tail %.64s is running", ref);
            box_set_status(b, id, STB_ST_FAILED, STB_PG_NONE, reason, NULL);
        }
        break;
    }
    case STB_CMD_DIAGNOSTICS: {
        stb_job *j = box_job_new(b, JOB_DIAG, id);
        if (!j) { box_set_status(b, id, STB_ST_FAILED, STB_PG_NONE, "out of memory", NULL); break; }
        j->u.diag.n = b->w->cfg.diag_pings > DIAG_MAX ? DIAG_MAX : (b->w->cfg.diag_pings ? b->w->cfg.diag_pings : 1);
        j->u.diag.want = 1;
        j->due_ms = stb_box_now_ms(b);
        j->end_ms = j->due_ms + (int64_t)j->u.diag.n * b->w->cfg.diag_interval_ms + b->w->cfg.diag_timeout_ms;
        box_set_status(b, id, STB_ST_IN_PROGRESS, STB_PG_MEASURING, NULL, NULL);
        box_kick(b);
        break;
    }
    default:
        break;
    }
}
