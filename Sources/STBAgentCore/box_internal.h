/* Private to the box_*.c files (not a public header: it is outside include/). box.c was split
 * by concern; the functions below were static in it and are now shared between the files, so
 * they carry a box_ prefix to keep the library's global names prefixed. Nothing else changed. */
#ifndef STB_BOX_INTERNAL_H
#define STB_BOX_INTERNAL_H

#include "stb_agent_core.h"

#define NONE16 0xFFFF
#define SEQ_RESERVE 1000

/* ------------------------------------------------------------------ log templates (box_frames.c) */

typedef struct { uint8_t level; const char *source; const char *fmt; } tmpl_t;
extern const tmpl_t box_templates[STB_T_COUNT];

/* ------------------------------------------------------------------ jobs (box_jobs.c) */

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

/* ------------------------------------------------------------------ box.c: clock, diagnostics, strings, seq, reboot */

int64_t box_now_us(const stb_box *b);
int64_t box_wall_ms(const stb_box *b);
int64_t box_sim_ms(const stb_box *b);
void box_diagf(stb_box *b, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
char *box_xstrdup(const char *s);
void box_set_str(char **dst, const char *src);
uint32_t box_next_seq(stb_box *b);
void box_kick(stb_box *b);
void box_start_reboot(stb_box *b, const char *keep_ref);

/* ------------------------------------------------------------------ box_ring.c: the bounded buffers */

void box_rec_free(stb_rec *r);
stb_rec *box_ring_at(const stb_ring *r, uint32_t i);
void box_ring_pop(stb_ring *r);
void box_ring_clear(stb_ring *r);
stb_rec *box_ring_push(stb_box *b);
void box_ring_kill(stb_box *b, uint32_t lo, uint32_t hi);
void box_push_raw(stb_box *b, char prefix, uint32_t seq, int64_t ts, char *json);
void box_logring_push(stb_box *b, const stb_logline *l);
void box_logring_clear(stb_logring *r);
void box_direct_push(stb_box *b, const char *data, size_t len);
void box_direct_clear(stb_box *b);

/* ------------------------------------------------------------------ box_frames.c: encoding, outbound rate */

size_t box_fmt_tmpl(const stb_world *w, int tmpl, int chan, int code, uint32_t num, char *out, size_t cap);
void box_enc_rec(const stb_box *b, sj_writer *w, const stb_rec *r, bool with_id);
char *box_scratch_dup(sj_writer *w);
void box_refill(stb_box *b, int64_t now);

/* ------------------------------------------------------------------ box_persist.c: state files */

bool box_persisting(const stb_box *b);
void box_write_boot(stb_box *b);
void box_write_exec(stb_box *b);
void box_write_config(stb_box *b);
void box_load_config(stb_box *b);
void box_load_exec(stb_box *b);
void box_load_outbox(stb_box *b);
bool box_load_boot(stb_box *b);
void box_remove_state_files(stb_box *b);

/* ------------------------------------------------------------------ box_jobs.c: executions, statuses, jobs */

const char *box_job_ref(const stb_job *j);
stb_job *box_job_find(stb_box *b, int kind);
stb_job *box_tail_job(stb_box *b);
void box_tail_counted(stb_job *j);
stb_job *box_job_new(stb_box *b, int kind, const char *ref);
void box_job_remove(stb_box *b, stb_job *j);
stb_exec *box_find_exec(stb_box *b, const char *id);
void box_exec_free(stb_exec *e);
stb_exec *box_add_exec(stb_box *b, const char *id, int name);
void box_set_status(stb_box *b, const char *ref, int state, int progress, const char *reason, const char *result);
void box_cancel_jobs_for_reboot(stb_box *b, const char *keep_ref);
void box_fw_fail(stb_box *b, stb_job *j, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void box_finish_tail(stb_box *b, stb_job *j, const char *stopped_by);
void box_tick_jobs(stb_box *b, int64_t now);

/* ------------------------------------------------------------------ box_commands.c */

void box_handle_command(stb_box *b, const stb_msg *m);

#endif
