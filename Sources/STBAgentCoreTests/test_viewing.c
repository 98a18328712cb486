/* The fleet world's viewing model. */
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ viewing model */

typedef struct { fake f; stb_world *w; } vworld;

static uint64_t run_world_tastes(uint64_t seed, int boxes, int64_t sim_hours, uint64_t *tunes_by_hour, uint32_t *chan_tunes,
                                 uint32_t nch_max, uint64_t *errors, uint32_t tastes, uint64_t *own_genre, uint64_t *all_tunes)
{
    vworld v;
    memset(&v.f, 0, sizeof v.f);
    v.f.wall_ms = 1795305600000LL; /* 2026-11-22 00:00 UTC */
    v.f.mono_us = 1;
    stb_config c;
    stb_config_defaults(&c);
    c.seeded = true;
    c.seed = seed;
    c.persist = false;
    c.ring_cap = 100000;
    c.log_cap = 0;
    c.clock_speed = 1.0;
    c.tastes = tastes;
    v.w = stb_world_new(&c, &fake_ops, &v.f);
    stb_world_default_channels(v.w);
    for (int i = 0; i < boxes; i++) {
        char id[32];
        snprintf(id, sizeof id, "v%03d", i);
        stb_box *b = stb_box_new(v.w, (uint32_t)i, id, "s", NULL);
        stb_box_boot(b);
    }
    uint64_t hash = 1469598103934665603ULL;
    for (int64_t t = 0; t < sim_hours * 60; t++) {
        advance(&v.f, 60000);
        stb_world_advance(v.w);
        for (uint32_t i = 0; i < v.w->nboxes; i++) {
            stb_box *b = v.w->boxes[i];
            while (b->ring.count) {
                stb_rec *r = &b->ring.r[b->ring.head];
                if (r->kind == STB_REC_EVENT) {
                    hash ^= (uint64_t)r->ts * 31 + r->a * 7 + r->u.e.chan + i * 131;
                    hash *= 1099511628211ULL;
                    if (r->a == STB_EV_TUNE) {
                        int hour = (int)(((r->ts / 3600000) + 1) % 24);
                        if (tunes_by_hour) tunes_by_hour[hour]++;
                        if (chan_tunes && r->u.e.chan < nch_max) chan_tunes[r->u.e.chan]++;
                        if (tastes && all_tunes) (*all_tunes)++;
                        if (tastes && own_genre && r->u.e.chan % tastes == b->view.taste) (*own_genre)++;
                    }
                    if (r->a == STB_EV_PLAY_ERROR && errors) (*errors)++;
                }
                if (r->kind == STB_REC_RAW) free(r->u.raw);
                r->kind = 0;
                b->ring.head = (b->ring.head + 1) % b->ring.alloc;
                b->ring.count--;
            }
        }
    }
    stb_world_free(v.w);
    return hash;
}

static uint64_t run_world(uint64_t seed, int boxes, int64_t sim_hours, uint64_t *tunes_by_hour, uint32_t *chan_tunes, uint32_t nch_max,
                          uint64_t *errors)
{
    return run_world_tastes(seed, boxes, sim_hours, tunes_by_hour, chan_tunes, nch_max, errors, 0, NULL, NULL);
}

void test_viewing(void)
{
    current = "viewing";
    uint64_t by_hour[24] = { 0 };
    uint32_t chans[64] = { 0 };
    uint64_t errors = 0;
    uint64_t h1 = run_world(7, 200, 48, by_hour, chans, 64, &errors);
    uint64_t h2 = run_world(7, 200, 48, NULL, NULL, 0, NULL);
    uint64_t h3 = run_world(8, 200, 48, NULL, NULL, 0, NULL);
    CHECK(h1 == h2, "same seed, same viewing events");
    CHECK(h1 != h3, "another seed, other events");
    uint64_t evening = by_hour[19] + by_hour[20] + by_hour[21], night = by_hour[3] + by_hour[4] + by_hour[5];
    CHECK(evening > 4 * night, "evening peak: %llu tunes 19-22h vs %llu at 3-6h", (unsigned long long)evening, (unsigned long long)night);
    CHECK(chans[0] > chans[5] && chans[0] > chans[20], "Zipf: the first channel is the most tuned (%u, %u, %u)", chans[0], chans[5], chans[20]);
    CHECK(errors > 0, "channel outages produce play_error events (%llu)", (unsigned long long)errors);

    /* Tastes: boxes tune mostly within their genre (by chance it would be 1 in 5). */
    uint64_t own = 0, all = 0;
    uint64_t t1 = run_world_tastes(7, 100, 48, NULL, NULL, 0, NULL, 5, &own, &all);
    uint64_t t2 = run_world_tastes(7, 100, 48, NULL, NULL, 0, NULL, 5, NULL, NULL);
    CHECK(t1 == t2, "tastes: same seed, same viewing events");
    CHECK(all > 1000 && own * 2 > all, "tastes: %llu of %llu tunes in the box's own genre", (unsigned long long)own, (unsigned long long)all);
}
