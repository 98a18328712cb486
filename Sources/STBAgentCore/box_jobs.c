/* Command executions: the executed-ids memory (at most once), command_status, and the jobs
 * that outlive one frame (firmware update, diagnostics, log_tail) with their timers. */
#include "stb_agent_core.h"
#include "box_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ jobs */

const char *box_job_ref(const stb_job *j) { return j->ref; }

stb_job *box_job_find(stb_box *b, int kind)
{
    for (stb_job *j = b->jobs; j; j = j->next)
        if (j->kind == kind) return j;
    return NULL;
}

stb_job *box_tail_job(stb_box *b) { return b->jobs ? box_job_find(b, JOB_TAIL) : NULL; }
void box_tail_counted(stb_job *j) { j->u.tail.lines++; }

stb_job *box_job_new(stb_box *b, int kind, const char *ref)
{
    stb_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->kind = (uint8_t)kind;
    j->ref = box_xstrdup(ref);
    j->next = b->jobs;
    b->jobs = j;
    return j;
}

void box_job_remove(stb_box *b, stb_job *j)
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

stb_exec *box_find_exec(stb_box *b, const char *id) { return (stb_exec *)stb_box_find_exec(b, id); }

void box_exec_free(stb_exec *e)
{
    free(e->id);
    free(e->reason);
}

stb_exec *box_add_exec(stb_box *b, const char *id, int name)
{
    if (b->cap_exec == 0) b->cap_exec = 1;
    if (b->n_exec >= b->cap_exec) {
        /* Forget the oldest finished entry (or the oldest at all). */
        uint16_t victim = 0;
        for (uint16_t i = 0; i < b->n_exec; i++) {
            if (b->exec[i].state >= STB_ST_SUCCEEDED) { victim = i; break; }
        }
        box_exec_free(&b->exec[victim]);
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
    e->id = box_xstrdup(id);
    e->name = (uint8_t)name;
    return e;
}

/* Records the state and sends a command_status (through the buffer, with a seq). */
void box_set_status(stb_box *b, const char *ref, int state, int progress, const char *reason, const char *result)
{
    stb_exec *e = box_find_exec(b, ref);
    if (e) {
        e->state = (uint8_t)state;
        e->progress = (uint8_t)progress;
        if (reason || state >= STB_ST_SUCCEEDED) box_set_str(&e->reason, reason);
    }
    sj_writer w;
    sjw_init(&w, b->w->scratch, b->w->scratch_cap);
    uint32_t seq = box_next_seq(b);
    int64_t ts = box_sim_ms(b);
    stb_enc_command_status(&w, NULL, seq, ts, ref, stb_state_names[state], stb_progress_names[progress], reason, result);
    char *json = box_scratch_dup(&w);
    if (!json && result) {
        /* The result did not fit: report without it. */
        sjw_init(&w, b->w->scratch, b->w->scratch_cap);
        stb_enc_command_status(&w, NULL, seq, ts, ref, stb_state_names[state], stb_progress_names[progress],
                               "result too large", NULL);
        json = box_scratch_dup(&w);
    }
    box_push_raw(b, 's', seq, ts, json);
    if (state == STB_ST_SUCCEEDED || state == STB_ST_FAILED) b->w->stats.cmds_done++;
    if (state == STB_ST_REJECTED) b->w->stats.cmds_rejected++;
    if (box_persisting(b)) box_write_exec(b);
    box_diagf(b, STB_LOG_INFO, "command %s: %s%s%s%s%s", ref, stb_state_names[state], progress ? " " : "",
          progress ? stb_progress_names[progress] : "", reason ? ": " : "", reason ? reason : "");
}

void box_cancel_jobs_for_reboot(stb_box *b, const char *keep_ref)
{
    stb_job *j = b->jobs;
    while (j) {
        stb_job *next = j->next;
        if (keep_ref && strcmp(j->ref, keep_ref) == 0) { box_job_remove(b, j); j = next; continue; }
        if (j->kind == JOB_FW) {
            if (j->stage == FW_DOWNLOADING && b->w->ops->http_cancel) b->w->ops->http_cancel(b->w->ops_ctx, b);
            box_fw_fail(b, j, "interrupted by reboot");
        } else if (j->kind == JOB_TAIL) {
            char res[48];
            snprintf(res, sizeof res, "{\"lines\":%u}", j->u.tail.lines);
            box_set_status(b, j->ref, STB_ST_SUCCEEDED, STB_PG_NONE, "ended by reboot", res);
            box_job_remove(b, j);
        } else {
            box_set_status(b, j->ref, STB_ST_FAILED, STB_PG_NONE, "interrupted by reboot", NULL);
            box_job_remove(b, j);
        }
        j = next;
    }
}

/* Ends the firmware job j as failed; progress is the step it failed at (STB_PG_NONE: not said). */
static void fw_fail_at(stb_box *b, stb_job *j, int progress, const char *reason)
{
    char *ref = box_xstrdup(j->ref);
    box_job_remove(b, j);
    if (ref) box_set_status(b, ref, STB_ST_FAILED, progress, reason, NULL);
    free(ref);
    char text[400];
    snprintf(text, sizeof text, "firmware update failed: %s (keeping %s)", reason, b->firmware);
    stb_box_log(b, -1, STB_LOG_ERROR, "updater", text);
}

void box_fw_fail(stb_box *b, stb_job *j, const char *fmt, ...)
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

void box_finish_tail(stb_box *b, stb_job *j, const char *stopped_by)
{
    char res[160];
    sj_writer w;
    sjw_init(&w, res, sizeof res);
    sjw_obj_begin(&w);
    sjw_kv_int(&w, "lines", j->u.tail.lines);
    if (stopped_by) sjw_kv_str(&w, "stoppedBy", stopped_by);
    sjw_obj_end(&w);
    sjw_finish(&w);
    char *ref = box_xstrdup(j->ref);
    box_job_remove(b, j);
    if (ref) box_set_status(b, ref, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, res);
    free(ref);
}

/* ------------------------------------------------------------------ firmware download */

void stb_box_fw_data(stb_box *b, const void *data, size_t len)
{
    stb_job *j = box_job_find(b, JOB_FW);
    if (!j || j->stage != FW_DOWNLOADING) return;
    j->u.fw.got += len;
    if (j->u.fw.got > j->u.fw.size) {
        if (b->w->ops->http_cancel) b->w->ops->http_cancel(b->w->ops_ctx, b);
        box_fw_fail(b, j, "size mismatch: more than the expected %llu bytes", (unsigned long long)j->u.fw.size);
        return;
    }
    stb_sha256_update(&j->u.fw.sha, data, len);
}

void stb_box_fw_done(stb_box *b, bool ok, int http_status, const char *error)
{
    stb_job *j = box_job_find(b, JOB_FW);
    if (!j || j->stage != FW_DOWNLOADING) return;
    if (!ok) {
        if (http_status && http_status != 200) box_fw_fail(b, j, "download failed: HTTP %d", http_status);
        else box_fw_fail(b, j, "download failed: %s", error ? error : "connection error");
        return;
    }
    box_set_status(b, j->ref, STB_ST_IN_PROGRESS, STB_PG_VERIFYING, NULL, NULL);
    if (j->u.fw.got != j->u.fw.size) {
        box_fw_fail(b, j, "size mismatch: expected %llu bytes, got %llu", (unsigned long long)j->u.fw.size,
                (unsigned long long)j->u.fw.got);
        return;
    }
    uint8_t digest[32];
    stb_sha256_final(&j->u.fw.sha, digest);
    if (memcmp(digest, j->u.fw.want, 32) != 0) {
        char got[65], want[65];
        stb_hex(digest, 32, got);
        stb_hex(j->u.fw.want, 32, want);
        box_fw_fail(b, j, "sha256 mismatch: expected %s, got %s", want, got);
        return;
    }
    j->stage = FW_INSTALLING;
    j->due_ms = stb_box_now_ms(b) + b->w->cfg.install_ms;
    box_set_status(b, j->ref, STB_ST_IN_PROGRESS, STB_PG_INSTALLING, NULL, NULL);
}

/* ------------------------------------------------------------------ timers */

void box_tick_jobs(stb_box *b, int64_t now)
{
    stb_job *j = b->jobs;
    while (j) {
        stb_job *next = j->next;
        switch (j->kind) {
        case JOB_FW:
            if (j->stage == FW_DOWNLOADING && now >= j->end_ms) {
                if (b->w->ops->http_cancel) b->w->ops->http_cancel(b->w->ops_ctx, b);
                box_fw_fail(b, j, "download timed out");
            } else if (j->stage == FW_INSTALLING && now >= j->due_ms) {
                if (stb_fw_injected_failure(b->id, j->ref, b->w->cfg.fail_firmware)) {
                    /* Downloaded and verified, then the "install" fails: no reboot, old version kept. */
                    fw_fail_at(b, j, STB_PG_INSTALLING, "injected install failure");
                    break;
                }
                box_set_str(&b->firmware_next, j->u.fw.version);
                char *ref = box_xstrdup(j->ref);
                char text[160];
                snprintf(text, sizeof text, "firmware %s installed; rebooting", j->u.fw.version);
                stb_box_log(b, -1, STB_LOG_INFO, "updater", text);
                box_write_boot(b);
                if (ref) {
                    box_set_status(b, ref, STB_ST_IN_PROGRESS, STB_PG_REBOOTING, NULL, NULL);
                    box_start_reboot(b, ref);
                }
                free(ref);
                return; /* the job list was rebuilt */
            }
            break;
        case JOB_DIAG: {
            uint32_t n = j->u.diag.n;
            if (j->u.diag.sent < n && now >= j->due_ms && !j->u.diag.want && b->conn_state == STB_CONN_READY) {
                j->u.diag.want = 1;
                box_kick(b);
            }
            if (j->u.diag.recv >= n || now >= j->end_ms) {
                if (j->u.diag.recv == 0) {
                    char *ref = box_xstrdup(j->ref);
                    box_job_remove(b, j);
                    if (ref) box_set_status(b, ref, STB_ST_FAILED, STB_PG_NONE, "no pong received", NULL);
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
                    char *ref = box_xstrdup(j->ref);
                    box_job_remove(b, j);
                    if (ref) box_set_status(b, ref, STB_ST_SUCCEEDED, STB_PG_NONE, NULL, res);
                    free(ref);
                }
            }
            break;
        }
        case JOB_TAIL:
            if (now >= j->end_ms) box_finish_tail(b, j, NULL);
            break;
        default:
            break;
        }
        j = next;
    }
}
