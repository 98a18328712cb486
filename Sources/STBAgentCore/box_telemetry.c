/* What a box reports: log lines (kept in the log ring, buffered at or above the log level,
 * streamed to a running log_tail), events, metrics and pings. */
#include "stb_agent_core.h"
#include "box_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ logs */

static void tail_send(stb_box *b, int64_t ts, int level, const char *source, const char *text)
{
    stb_job *j = box_tail_job(b);
    if (!j || b->conn_state != STB_CONN_READY) return;
    sj_writer w;
    sjw_init(&w, b->w->scratch, b->w->scratch_cap);
    uint32_t seq = box_next_seq(b);
    char id[24];
    snprintf(id, sizeof id, "l-%u", seq);
    stb_enc_log(&w, id, seq, ts, stb_level_names[level & 3], source, text, box_job_ref(j));
    if (sjw_finish(&w) == 0) {
        box_direct_push(b, w.buf, w.len);
        box_tail_counted(j);
    }
}

void stb_box_log(stb_box *b, int64_t ts, int level, const char *source, const char *text)
{
    if (ts < 0) ts = box_sim_ms(b);
    level &= 3;
    size_t sl = strlen(source), tl = strlen(text);
    stb_logline l = { .ts = ts, .level = (uint8_t)level, .tmpl = STB_T_TEXT };
    l.text = malloc(sl + tl + 2);
    if (l.text) {
        memcpy(l.text, source, sl + 1);
        memcpy(l.text + sl + 1, text, tl + 1);
        box_logring_push(b, &l);
    }
    if (level >= b->log_min) {
        sj_writer w;
        sjw_init(&w, b->w->scratch, b->w->scratch_cap);
        uint32_t seq = box_next_seq(b);
        stb_enc_log(&w, NULL, seq, ts, stb_level_names[level], source, text, NULL);
        box_push_raw(b, 'l', seq, ts, box_scratch_dup(&w));
    }
    tail_send(b, ts, level, source, text);
}

void stb_box_log_t(stb_box *b, int64_t ts, int tmpl, int chan, int code, uint32_t num)
{
    if (tmpl <= 0 || tmpl >= STB_T_COUNT) return;
    if (ts < 0) ts = box_sim_ms(b);
    int level = box_templates[tmpl].level;
    stb_logline l = { .ts = ts, .level = (uint8_t)level, .tmpl = (uint8_t)tmpl,
                      .chan = chan < 0 ? NONE16 : (uint16_t)chan, .code = code < 0 ? NONE16 : (uint16_t)code, .num = num };
    box_logring_push(b, &l);
    if (level >= b->log_min) {
        stb_rec *r = box_ring_push(b);
        if (r) {
            r->kind = STB_REC_LOG;
            r->seq = box_next_seq(b);
            r->ts = ts;
            r->a = (uint8_t)level;
            r->b = (uint16_t)tmpl;
            r->u.e.chan = l.chan;
            r->u.e.code = l.code;
            r->u.e.num = num;
            box_kick(b);
        }
    }
    if (box_tail_job(b)) {
        char text[512];
        box_fmt_tmpl(b->w, tmpl, chan, code, num, text, sizeof text);
        tail_send(b, ts, level, box_templates[tmpl].source, text);
    }
}

size_t stb_box_format_log(const stb_box *b, const stb_logline *l, char *out, size_t cap)
{
    time_t secs = (time_t)(l->ts / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    const char *source, *text;
    char tbuf[512];
    if (l->tmpl == STB_T_TEXT) {
        source = l->text ? l->text : "";
        text = l->text ? l->text + strlen(l->text) + 1 : "";
    } else {
        source = box_templates[l->tmpl].source;
        box_fmt_tmpl(b->w, l->tmpl, l->chan == NONE16 ? -1 : l->chan, l->code == NONE16 ? -1 : l->code, l->num, tbuf, sizeof tbuf);
        text = tbuf;
    }
    int n = snprintf(out, cap, "%s.%03dZ %s %s: %s", when, (int)(l->ts % 1000), stb_level_names[l->level & 3], source, text);
    return n < 0 ? 0 : ((size_t)n >= cap ? cap - 1 : (size_t)n);
}

/* ------------------------------------------------------------------ telemetry */

void stb_box_event(stb_box *b, int64_t ts, stb_event_kind ev, int chan, int code)
{
    stb_box_event_mode(b, ts, ev, chan, code, STB_MODE_UNSAID);
}

void stb_box_event_mode(stb_box *b, int64_t ts, stb_event_kind ev, int chan, int code, int mode)
{
    if (ts < 0) ts = box_sim_ms(b);
    stb_rec *r = box_ring_push(b);
    if (!r) return;
    r->kind = STB_REC_EVENT;
    r->seq = box_next_seq(b);
    r->ts = ts;
    r->a = (uint8_t)ev;
    r->u.e.chan = chan < 0 ? NONE16 : (uint16_t)chan;
    r->u.e.code = code < 0 ? NONE16 : (uint16_t)code;
    r->u.e.num = (uint32_t)mode;
    b->w->stats.events++;
    box_kick(b);
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }

void stb_box_metrics(stb_box *b)
{
    int64_t now = box_sim_ms(b);
    bool playing = b->w->cfg.simulate ? b->view.state != 0 : true;
    bool erroring = playing && b->view.erroring;
    uint64_t *rng = &b->rng;
    double cpu = playing ? 18.0 + 20.0 * stb_rand_unit(rng) + (erroring ? 12.0 : 0.0) : 2.0 + 5.0 * stb_rand_unit(rng);
    double mem = clampd(b->mem10_base + (playing ? 6.0 : 0.0) + 2.0 * stb_rand_normal(rng), 20.0, 98.0);
    double temp = clampd(40.0 + b->temp_off + cpu * 0.3 + 0.7 * stb_rand_normal(rng), 30.0, 95.0);
    double rtt = b->rtt_ms >= 0 ? b->rtt_ms : b->rtt_base * (0.8 + 0.5 * stb_rand_unit(rng));
    double kbps = 0;
    if (playing && !erroring) {
        int c = b->view.chan;
        double nominal = (b->w->nch && (uint32_t)c < b->w->nch) ? b->w->ch[c].kbps : 6000;
        kbps = nominal * (0.85 + 0.2 * stb_rand_unit(rng));
    }
    uint32_t under = b->underruns + (playing ? stb_rand_poisson(rng, erroring ? 3.0 : 0.15) : 0);
    uint32_t dropped = b->dropped_frames + (playing ? stb_rand_poisson(rng, erroring ? 40.0 : 1.2) : 0);
    b->underruns = 0;
    b->dropped_frames = 0;

    stb_rec *r = box_ring_push(b);
    if (!r) return;
    r->kind = STB_REC_METRICS;
    r->seq = box_next_seq(b);
    r->ts = now;
    r->a = (uint8_t)(under > 255 ? 255 : under);
    r->b = (uint16_t)(dropped > 65535 ? 65535 : dropped);
    r->u.m.cpu10 = (uint16_t)stb_llround(cpu * 10);
    r->u.m.mem10 = (uint16_t)stb_llround(mem * 10);
    r->u.m.temp10 = (int16_t)stb_llround(temp * 10);
    r->u.m.rtt10 = (uint16_t)stb_llround(clampd(rtt, 0, 6000) * 10);
    r->u.m.kbps = (uint16_t)clampd(kbps, 0, 65535);
    int64_t up = (now - b->boot_sim_ms) / 1000;
    r->u.m.uptime = (uint32_t)(up < 0 ? 0 : (up > UINT32_MAX ? UINT32_MAX : up));
    if (under > 0 && playing && stb_rand_unit(rng) < 0.5) stb_box_log_t(b, now, STB_T_UNDERRUN, b->view.chan, -1, 0);
    box_kick(b);
}

void stb_box_ping(stb_box *b)
{
    b->pings_wanted = 1;
    box_kick(b);
}
