/* The fleet world and its viewing model.
 *
 * Each box follows a household: standby most of the night, a viewing session that is more
 * likely (and longer) in the evening, channel choice by Zipf popularity, surfing bursts of
 * short dwells between long dwells, the TV switched off while the box keeps playing, and
 * auto-standby. Channel outages are shared by the whole fleet: while a channel is out, every
 * box tuned to it reports play_error, and viewers zap away.
 *
 * Transitions are processed in simulated-time order (a min-heap over boxes, plus the
 * channels' outage schedule) and every box and channel draws from its own random stream,
 * so with --seed and a fixed start the sequence of viewing events is reproducible however
 * the real-time ticks fall. */
#include "stb_agent_core.h"

#include <errno.h>
#include "stb_math.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { V_STANDBY = 0, V_WATCH = 1, V_TVOFF = 2 };

#define MIN_MS 60000LL
#define HOUR_MS 3600000LL
#define TZ_OFFSET_H 1 /* dayparts in CET */

/* Share of households watching, by local hour: low at night, a morning bump, an evening peak. */
static const double daypart[24] = {
    0.10, 0.05, 0.03, 0.02, 0.02, 0.03, 0.07, 0.14, 0.13, 0.10, 0.10, 0.11,
    0.14, 0.14, 0.12, 0.13, 0.17, 0.24, 0.34, 0.48, 0.62, 0.64, 0.48, 0.26,
};

static int hour_of(int64_t sim_ms)
{
    int64_t h = sim_ms / HOUR_MS + TZ_OFFSET_H;
    return (int)(((h % 24) + 24) % 24);
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* ------------------------------------------------------------------ world */

stb_world *stb_world_new(const stb_config *cfg, const stb_ops *ops, void *ops_ctx)
{
    stb_world *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->cfg = *cfg;
    if (w->cfg.clock_speed <= 0) w->cfg.clock_speed = 1;
    w->ops = ops;
    w->ops_ctx = ops_ctx;
    w->real_start_ms = ops->wall_ms(ops_ctx);
    w->sim_start_ms = w->real_start_ms;
    w->scratch_cap = 1 << 20;
    w->scratch = malloc(w->scratch_cap);
    w->rng = cfg->seeded ? stb_rand_stream(cfg->seed, 0x700000000ULL) : stb_rand_os_seed();
    if (!w->scratch) { free(w); return NULL; }
    return w;
}

void stb_world_free(stb_world *w)
{
    if (!w) return;
    for (uint32_t i = 0; i < w->nboxes; i++) stb_box_free(w->boxes[i]);
    free(w->boxes);
    for (uint32_t i = 0; i < w->nch; i++) free(w->ch[i].name);
    free(w->ch);
    free(w->ch_cdf);
    free(w->heap);
    free(w->scratch);
    free(w);
}

int64_t stb_world_sim_ms(const stb_world *w)
{
    int64_t real = w->ops->wall_ms(w->ops_ctx) - w->real_start_ms;
    if (w->cfg.clock_speed == 1.0) return w->sim_start_ms + real;
    return w->sim_start_ms + (int64_t)((double)real * w->cfg.clock_speed);
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ULL; }
    return h;
}

static void schedule_outage(stb_world *w, stb_channel *c, int64_t t);

static int add_channel(stb_world *w, const char *name, uint32_t *cap)
{
    if (!stb_valid_ident(name)) return 0;
    if (w->nch >= 65000) return 0;
    if (w->nch == *cap) {
        uint32_t nc = *cap ? *cap * 2 : 64;
        stb_channel *n = realloc(w->ch, nc * sizeof *n);
        if (!n) return -1;
        w->ch = n;
        *cap = nc;
    }
    stb_channel *c = &w->ch[w->nch];
    memset(c, 0, sizeof *c);
    c->name = strdup(name);
    if (!c->name) return -1;
    uint64_t h = name_hash(name);
    bool hd = strncmp(name, "hd.", 3) == 0 || strstr(name, "hd") != NULL;
    c->kbps = (uint16_t)(hd ? 7000 + h % 2500 : 2500 + h % 2000);
    w->nch++;
    return 0;
}

static void finish_channels(stb_world *w)
{
    free(w->ch_cdf);
    w->ch_cdf = malloc((w->nch ? w->nch : 1) * sizeof *w->ch_cdf);
    double total = 0;
    for (uint32_t i = 0; i < w->nch; i++) total += 1.0 / stb_pow(i + 1.0, 1.0); /* Zipf, s = 1 */
    double acc = 0;
    for (uint32_t i = 0; i < w->nch; i++) {
        acc += 1.0 / stb_pow(i + 1.0, 1.0) / total;
        w->ch_cdf[i] = acc;
    }
    if (w->nch) w->ch_cdf[w->nch - 1] = 1.0;
    int64_t now = stb_world_sim_ms(w);
    for (uint32_t i = 0; i < w->nch; i++) {
        stb_channel *c = &w->ch[i];
        c->rng = w->cfg.seeded ? stb_rand_stream(w->cfg.seed, 0x200000000ULL + i) : stb_rand_next(&w->rng);
        c->in_outage = 0;
        schedule_outage(w, c, now);
        /* A forced outage (tests, demos) starts one simulated minute in. */
        if ((int64_t)i == (int64_t)w->cfg.force_outage) {
            c->next_change = now + MIN_MS;
            c->forced = 1;
        }
    }
    w->ch_next = 0;
    for (uint32_t i = 1; i < w->nch; i++)
        if (w->ch[i].next_change < w->ch[w->ch_next].next_change) w->ch_next = i;
}

int stb_world_load_channels(stb_world *w, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512];
    uint32_t cap = w->nch;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == 0) continue;
        char *end = p;
        while (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r' && *end != ';') end++;
        *end = 0;
        if (add_channel(w, p, &cap) < 0) { fclose(f); errno = ENOMEM; return -1; }
    }
    fclose(f);
    if (w->nch == 0) { errno = EINVAL; return -1; }
    finish_channels(w);
    return (int)w->nch;
}

void stb_world_default_channels(stb_world *w)
{
    static const char *const builtin[] = {
        "ard.de", "zdf.de", "rtl.de", "sat1.de", "prosieben.de", "vox.de", "kabel1.de", "rtl2.de",
        "superrtl.de", "3sat.de", "arte-tv.com", "ndr.de", "wdr.de", "br.de", "mdr.de", "swr.de",
        "hr-online.de", "rbb-online.de", "phoenix.de", "tagesschau24.de", "one.ard.de", "zdfneo.de",
        "zdfinfo.de", "kika.de", "sixx.de", "prosiebenmaxx.de", "tele5.de", "dmax.de", "n-tv.de",
        "welt.de", "nitro.rtl.de", "comedycentral.de", "eurosport.de", "sport1.de", "sky.de",
        "hd.ard.de", "hd.zdf.de", "hd.rtl.de", "hd.prosieben.de", "hd.sat1.de",
    };
    uint32_t cap = w->nch;
    for (size_t i = 0; i < sizeof builtin / sizeof *builtin; i++) add_channel(w, builtin[i], &cap);
    finish_channels(w);
}

/* ------------------------------------------------------------------ heap */

static int64_t key_of(const stb_world *w, uint32_t i) { return w->boxes[i]->view.next_ms; }

static bool less(const stb_world *w, uint32_t a, uint32_t b)
{
    int64_t ka = key_of(w, a), kb = key_of(w, b);
    return ka < kb || (ka == kb && a < b);
}

static void heap_swap(stb_world *w, uint32_t i, uint32_t j)
{
    uint32_t t = w->heap[i];
    w->heap[i] = w->heap[j];
    w->heap[j] = t;
    w->boxes[w->heap[i]]->view.heap_pos = i;
    w->boxes[w->heap[j]]->view.heap_pos = j;
}

static void heap_up(stb_world *w, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!less(w, w->heap[i], w->heap[p])) break;
        heap_swap(w, i, p);
        i = p;
    }
}

static void heap_down(stb_world *w, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < w->heap_len && less(w, w->heap[l], w->heap[m])) m = l;
        if (r < w->heap_len && less(w, w->heap[r], w->heap[m])) m = r;
        if (m == i) break;
        heap_swap(w, i, m);
        i = m;
    }
}

static void reschedule(stb_world *w, stb_box *b, int64_t t)
{
    b->view.next_ms = t;
    uint32_t pos = b->view.heap_pos;
    if (pos < w->heap_len && w->heap[pos] == b->index) {
        heap_up(w, pos);
        heap_down(w, b->view.heap_pos);
    }
}

/* ------------------------------------------------------------------ model */

static int zipf(const stb_world *w, uint64_t *rng)
{
    if (w->nch == 0) return -1;
    double u = stb_rand_unit(rng);
    uint32_t lo = 0, hi = w->nch - 1;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (w->ch_cdf[mid] < u) lo = mid + 1;
        else hi = mid;
    }
    return (int)lo;
}

/* A channel for box b: by the fleet's Zipf popularity or, with tastes, 17 times in 20 from the
 * box's genre (channels taste, taste + G, taste + 2G, ..., weighted 1/sqrt(rank) there: a flatter
 * choice than the fleet's, so what a box likes is not just what everybody likes). */
static int pick_channel(const stb_box *b, uint64_t *rng)
{
    const stb_world *w = b->w;
    uint32_t g = w->cfg.tastes;
    if (g == 0 || w->nch <= b->view.taste || stb_rand_unit(rng) >= 0.85) return zipf(w, rng);
    uint32_t n = (w->nch - b->view.taste + g - 1) / g; /* channels in the genre */
    double total = 0;
    for (uint32_t r = 0; r < n; r++) total += 1.0 / stb_sqrt(r + 1.0);
    double u = stb_rand_unit(rng) * total, acc = 0;
    uint32_t r = 0;
    for (; r + 1 < n; r++) {
        acc += 1.0 / stb_sqrt(r + 1.0);
        if (u < acc) break;
    }
    return (int)(b->view.taste + r * g);
}

static void schedule_outage(stb_world *w, stb_channel *c, int64_t t)
{
    if (c->in_outage && c->forced && w->cfg.outage_minutes > 0) {
        /* The forced outage, of the length asked for. */
        c->forced = 0;
        c->next_change = t + (int64_t)w->cfg.outage_minutes * MIN_MS;
    } else if (c->in_outage) {
        /* Outage length: median ~8 minutes, long tail, 1 min .. 2 h. */
        double len = 8.0 * MIN_MS * stb_exp(0.9 * stb_rand_normal(&c->rng));
        c->next_change = t + (int64_t)clampd(len, MIN_MS, 2 * HOUR_MS);
    } else {
        /* About one outage per channel every two simulated days. */
        c->next_change = t + (int64_t)clampd(stb_rand_exp(&c->rng, 48.0 * HOUR_MS), MIN_MS, 30.0 * 24 * HOUR_MS);
    }
}

static int64_t wake_time(const stb_box *b, uint64_t *rng, int64_t t)
{
    /* Non-homogeneous Poisson by thinning: the rate of switching on follows the dayparts. */
    double act = b->view.activity / 100.0;
    double lmax = act * 0.9 + 0.02; /* per hour */
    for (int i = 0; i < 2000; i++) {
        t += (int64_t)stb_rand_exp(rng, HOUR_MS / lmax) + 1000;
        double rate = act * (0.02 + 1.4 * daypart[hour_of(t)]);
        if (rate > lmax) rate = lmax;
        if (stb_rand_unit(rng) * lmax < rate) return t;
    }
    return t;
}

static int64_t session_length(uint64_t *rng, int64_t t)
{
    double mean_min = 25.0 + 150.0 * daypart[hour_of(t)]; /* evening sessions run longer */
    double len = mean_min * MIN_MS * stb_exp(0.6 * stb_rand_normal(rng) - 0.18);
    return (int64_t)clampd(len, 5.0 * MIN_MS, 8.0 * HOUR_MS);
}

static int64_t dwell(stb_view *v, uint64_t *rng)
{
    if (v->surf_left > 0) {
        v->surf_left--;
        return (int64_t)clampd(3000 + stb_rand_exp(rng, 9000), 2000, 60000);
    }
    if (stb_rand_unit(rng) < 0.3) {
        v->surf_left = (uint8_t)(2 + stb_rand_poisson(rng, 4.0));
        return (int64_t)clampd(3000 + stb_rand_exp(rng, 9000), 2000, 60000);
    }
    return (int64_t)clampd(stb_rand_exp(rng, 22.0 * MIN_MS), MIN_MS, 3.0 * HOUR_MS);
}

/* Tunes to chan at t: tune (+ play_start or play_error). */
static void tune(stb_box *b, int chan, int64_t t, bool from_standby)
{
    stb_world *w = b->w;
    stb_view *v = &b->view;
    v->chan = (uint16_t)chan;
    /* Most viewing is live; about 5 % of tunes are time-shifted and 3 % catch-up. */
    double u = stb_rand_unit(&v->rng);
    int mode = u < 0.05 ? STB_MODE_TIMESHIFT : u < 0.08 ? STB_MODE_CATCHUP : STB_MODE_UNSAID;
    stb_box_event_mode(b, t, STB_EV_TUNE, chan, -1, mode);
    if (w->ch[chan].in_outage) {
        v->erroring = 1;
        stb_box_event(b, t + 300, STB_EV_PLAY_ERROR, chan, w->ch[chan].code);
        stb_box_log_t(b, t + 300, STB_T_PLAY_ERROR, chan, w->ch[chan].code, 0);
    } else {
        v->erroring = 0;
        uint32_t zap = (uint32_t)(250 + stb_rand_exp(&v->rng, 400));
        if (from_standby) {
            stb_box_event(b, t + zap, STB_EV_PLAY_START, chan, -1);
            stb_box_log_t(b, t + zap, STB_T_PLAYING, chan, -1, w->ch[chan].kbps);
        } else {
            stb_box_log_t(b, t + zap, STB_T_TUNED, chan, -1, zap);
        }
    }
}

static void go_standby(stb_box *b, int64_t t)
{
    stb_view *v = &b->view;
    if (v->state != V_STANDBY) {
        stb_box_event(b, t, STB_EV_LEAVE, v->chan, -1);
        stb_box_event(b, t, STB_EV_PLAY_STOP, v->chan, -1);
        stb_box_event(b, t + 200, STB_EV_STANDBY_ON, -1, -1);
        stb_box_log_t(b, t + 200, STB_T_STANDBY_ON, -1, -1, 0);
    }
    v->state = V_STANDBY;
    v->erroring = 0;
    v->next_ms = wake_time(b, &v->rng, t);
}

static void start_session(stb_box *b, int64_t t)
{
    stb_view *v = &b->view;
    uint64_t *rng = &v->rng;
    bool from_standby = v->state == V_STANDBY;
    if (from_standby) {
        stb_box_event(b, t, STB_EV_STANDBY_OFF, -1, -1);
        stb_box_log_t(b, t, STB_T_STANDBY_OFF, -1, -1, 0);
    }
    int chan = (stb_rand_unit(rng) < 0.7) ? v->chan : pick_channel(b, rng);
    if (chan < 0 || (uint32_t)chan >= b->w->nch) chan = 0;
    v->state = V_WATCH;
    v->surf_left = 0;
    v->session_end = t + session_length(rng, t);
    if (from_standby || chan != v->chan) tune(b, chan, t + 1500, from_standby);
    v->next_ms = t + 1500 + dwell(v, rng);
}

static void view_step(stb_box *b, int64_t t)
{
    stb_world *w = b->w;
    stb_view *v = &b->view;
    uint64_t *rng = &v->rng;
    switch (v->state) {
    case V_STANDBY:
        start_session(b, t);
        if (stb_rand_unit(rng) < 0.2) stb_box_log_t(b, t + 5000, STB_T_EPG, -1, -1, (uint32_t)(500 + stb_rand_range(rng, 0, 4000)));
        break;
    case V_TVOFF:
        /* The viewer comes back, or the box's 4-hour auto-standby fires. */
        if (t >= v->session_end) go_standby(b, t);
        else start_session(b, t);
        break;
    case V_WATCH:
    default:
        if (stb_rand_unit(rng) < 0.002) {
            stb_box_event(b, t, STB_EV_APP_CRASH, -1, -1);
            stb_box_log_t(b, t, STB_T_CRASH, -1, -1, 11);
        }
        if (t >= v->session_end) {
            if (stb_rand_unit(rng) < 0.75) {
                go_standby(b, t);
            } else {
                /* TV switched off, box left playing: silent until the viewer returns or auto-standby. */
                v->state = V_TVOFF;
                int64_t back = (int64_t)stb_rand_exp(rng, 2.5 * HOUR_MS);
                int64_t autostandby = 4 * HOUR_MS;
                if (back < autostandby) {
                    v->session_end = t + autostandby + 1; /* not reached: the viewer returns first */
                    v->next_ms = t + back + MIN_MS;
                } else {
                    v->session_end = t + autostandby;
                    v->next_ms = t + autostandby;
                }
            }
            break;
        }
        /* Zap. */
        int chan = pick_channel(b, rng);
        if (chan == v->chan && w->nch > 1) chan = (chan + 1 + (int)stb_rand_range(rng, 0, w->nch - 2)) % (int)w->nch;
        stb_box_event(b, t, STB_EV_LEAVE, v->chan, -1);
        tune(b, chan, t + 50, false);
        if (v->erroring) v->next_ms = t + (int64_t)clampd(stb_rand_exp(rng, 15000), 3000, 120000);
        else v->next_ms = t + dwell(v, rng);
        if (!v->erroring && stb_rand_unit(rng) < 0.01)
            stb_box_log_t(b, t + 60000, STB_T_PACKET_LOSS, chan, -1, (uint32_t)stb_rand_range(rng, 5, 80));
        break;
    }
}

static void channel_change(stb_world *w, uint32_t ci, int64_t t)
{
    stb_channel *c = &w->ch[ci];
    if (!c->in_outage) {
        c->in_outage = 1;
        double u = stb_rand_unit(&c->rng);
        c->code = (uint8_t)(u < 0.35 ? 0 : u < 0.6 ? 1 : u < 0.75 ? 2 : u < 0.92 ? 3 : 4);
    } else {
        c->in_outage = 0;
    }
    schedule_outage(w, c, t);
    for (uint32_t i = 0; i < w->nboxes; i++) {
        stb_box *b = w->boxes[i];
        stb_view *v = &b->view;
        if (v->chan != ci || v->state == V_STANDBY) continue;
        if (c->in_outage) {
            v->erroring = 1;
            stb_box_event(b, t, STB_EV_PLAY_ERROR, (int)ci, c->code);
            stb_box_log_t(b, t, STB_T_PLAY_ERROR, (int)ci, c->code, 0);
            if (v->state == V_WATCH) {
                int64_t away = t + (int64_t)clampd(stb_rand_exp(&v->rng, 20000), 3000, 180000);
                if (away < v->next_ms) reschedule(w, b, away);
            }
        } else if (v->erroring) {
            v->erroring = 0;
            stb_box_event(b, t, STB_EV_PLAY_START, (int)ci, -1);
            stb_box_log_t(b, t, STB_T_RECOVERED, (int)ci, -1, 0);
        }
    }
}

void stb_view_init(stb_box *b)
{
    stb_world *w = b->w;
    stb_view *v = &b->view;
    v->rng = w->cfg.seeded ? stb_rand_stream(w->cfg.seed, 0x300000000ULL + b->index) : stb_rand_os_seed();
    v->activity = (uint8_t)clampd(100.0 * stb_exp(0.5 * stb_rand_normal(&v->rng) - 0.1), 20, 250);
    int64_t t = stb_world_sim_ms(w);
    /* Drawn only with tastes, so a seed without them replays the same viewing as before. */
    if (w->cfg.tastes > 0) v->taste = (uint8_t)(stb_rand_next(&v->rng) % (w->cfg.tastes > 255 ? 255 : w->cfg.tastes));
    int c = pick_channel(b, &v->rng);
    v->chan = (uint16_t)(c < 0 ? 0 : c);
    double pw = clampd(v->activity / 100.0 * daypart[hour_of(t)] * 0.9, 0, 0.95);
    double u = stb_rand_unit(&v->rng);
    if (u < pw) {
        v->state = V_WATCH;
        v->session_end = t + session_length(&v->rng, t) / 2;
        v->next_ms = t + dwell(v, &v->rng) / 2;
        v->erroring = w->nch && w->ch[v->chan].in_outage;
    } else if (u < pw + 0.04) {
        v->state = V_TVOFF;
        v->session_end = t + (int64_t)stb_rand_range(&v->rng, MIN_MS, 4 * HOUR_MS);
        v->next_ms = v->session_end;
    } else {
        v->state = V_STANDBY;
        v->next_ms = wake_time(b, &v->rng, t);
    }
}

void stb_world_add_box(stb_world *w, stb_box *b)
{
    if (w->nboxes % 256 == 0) {
        stb_box **nb = realloc(w->boxes, (w->nboxes + 256) * sizeof *nb);
        uint32_t *nh = realloc(w->heap, (w->nboxes + 256) * sizeof *nh);
        if (nb) w->boxes = nb;
        if (nh) w->heap = nh;
        if (!nb || !nh) return;
    }
    b->index = w->nboxes;
    w->boxes[w->nboxes++] = b;
    if (!w->cfg.simulate) return;
    if (w->nch == 0) stb_world_default_channels(w);
    stb_view_init(b);
    w->heap[w->heap_len] = b->index;
    b->view.heap_pos = w->heap_len;
    w->heap_len++;
    heap_up(w, b->view.heap_pos);
}

void stb_world_advance(stb_world *w)
{
    if (!w->cfg.simulate) return;
    int64_t now = stb_world_sim_ms(w);
    /* Bounded work per call, so an extreme --clock-speed cannot stall the event loop. */
    for (uint32_t n = 0; n < 200000; n++) {
        int64_t tb = w->heap_len ? key_of(w, w->heap[0]) : INT64_MAX;
        int64_t tc = w->nch ? w->ch[w->ch_next].next_change : INT64_MAX;
        if (tb > now && tc > now) break;
        if (tc <= tb) {
            channel_change(w, w->ch_next, tc);
            w->ch_next = 0;
            for (uint32_t i = 1; i < w->nch; i++)
                if (w->ch[i].next_change < w->ch[w->ch_next].next_change) w->ch_next = i;
        } else {
            stb_box *b = w->boxes[w->heap[0]];
            view_step(b, tb);
            if (b->view.next_ms <= tb) b->view.next_ms = tb + 1000;
            heap_down(w, 0);
        }
    }
}
