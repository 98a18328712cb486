/* A box's state directory: atomic writes and the boot, executed-ids, config and outbox
 * files, written on change or at flush and read back at start. */
#include "stb_agent_core.h"
#include "box_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

bool box_persisting(const stb_box *b) { return b->state_dir && b->w->cfg.persist; }

/* ------------------------------------------------------------------ persistence */

void box_write_boot(stb_box *b)
{
    if (!box_persisting(b)) return;
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
        box_diagf(b, STB_LOG_WARN, "cannot write %s: %s", path, strerror(errno));
}

void box_write_exec(stb_box *b)
{
    if (!box_persisting(b)) return;
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
            box_diagf(b, STB_LOG_WARN, "cannot write %s: %s", path, strerror(errno));
    }
    free(buf);
}

void box_write_config(stb_box *b)
{
    if (!box_persisting(b)) return;
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
        const stb_rec *r = box_ring_at(&b->ring, i);
        if (!r->kind) continue;
        sj_writer w;
        sjw_init(&w, tmp, b->w->scratch_cap);
        box_enc_rec(b, &w, r, false);
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
        box_diagf(b, STB_LOG_WARN, "cannot write %s: %s", path, strerror(errno));
    free(out);
}

void stb_box_flush(stb_box *b, bool force)
{
    if (!box_persisting(b)) return;
    int64_t now = stb_box_now_ms(b);
    if (!force && (!b->dirty || now - b->last_flush_ms < (int64_t)b->w->cfg.flush_interval_ms)) return;
    write_outbox(b);
    box_write_boot(b);
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

void box_load_config(stb_box *b)
{
    sj_value *v = load_json(b, "config.json");
    if (!v) return;
    int lv = stb_level_parse(sj_get_str(v, "logLevel"));
    if (lv >= 0) b->log_min = (uint8_t)lv;
    int64_t m;
    if (sj_get_int(v, "metricsIntervalSec", &m) && m >= 0 && m <= 3600) b->metrics_sec = (uint16_t)m;
    sj_free(v);
}

void box_load_exec(stb_box *b)
{
    sj_value *v = load_json(b, "executed.json");
    if (!v) return;
    const sj_value *arr = sj_get(v, "executed");
    if (arr && arr->type == SJ_ARRAY) {
        for (size_t i = 0; i < arr->u.arr.count; i++) {
            const sj_value *o = arr->u.arr.items[i];
            const char *id = sj_get_str(o, "id");
            if (!id || box_find_exec(b, id)) continue;
            int name = 0, state = 0, progress = 0;
            const char *s;
            if ((s = sj_get_str(o, "name")))
                for (int k = 0; k < STB_CMD_COUNT; k++) if (strcmp(s, stb_cmd_names[k]) == 0) name = k;
            if ((s = sj_get_str(o, "state")))
                for (int k = 0; k < 6; k++) if (strcmp(s, stb_state_names[k]) == 0) state = k;
            if ((s = sj_get_str(o, "progress")))
                for (int k = 1; k < STB_PG_COUNT; k++) if (strcmp(s, stb_progress_names[k]) == 0) progress = k;
            stb_exec *e = box_add_exec(b, id, name);
            if (!e) break;
            e->state = (uint8_t)state;
            e->progress = (uint8_t)progress;
            e->reason = box_xstrdup(sj_get_str(o, "reason"));
        }
    }
    sj_free(v);
}

void box_load_outbox(stb_box *b)
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
                    stb_rec *r = box_ring_push(b);
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
    if (bad) box_diagf(b, STB_LOG_WARN, "outbox.jsonl: %u unreadable lines skipped", bad);
}

/* Returns true when a persisted boot was found and resumed. */
bool box_load_boot(stb_box *b)
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
        b->boot_sim_ms = sj_get_int(v, "bootedAt", &at) ? at : box_sim_ms(b);
        if (sj_get_int(v, "dropped", &dropped) && dropped >= 0) b->ring.dropped = (uint64_t)dropped;
        const char *fw = sj_get_str(v, "firmware");
        if (fw && stb_valid_ident(fw)) box_set_str(&b->firmware, fw);
        const char *next = sj_get_str(v, "firmwareNext");
        if (next && stb_valid_ident(next)) box_set_str(&b->firmware_next, next);
    }
    sj_free(v);
    return ok;
}

void box_remove_state_files(stb_box *b)
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
