/* The bounded buffers of one box: the telemetry ring (records until acknowledged), the
 * log ring (for log_pull) and the queue of direct frames (log_tail lines). */
#include "stb_agent_core.h"
#include "box_internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ buffer */

void box_rec_free(stb_rec *r)
{
    if (r->kind == STB_REC_RAW) free(r->u.raw);
    r->kind = 0;
}

stb_rec *box_ring_at(const stb_ring *r, uint32_t i) { return &r->r[(r->head + i) % r->alloc]; }

void box_ring_pop(stb_ring *r)
{
    box_rec_free(box_ring_at(r, 0));
    r->head = (r->head + 1) % r->alloc;
    r->count--;
    if (r->sent) r->sent--;
}

void box_ring_clear(stb_ring *r)
{
    while (r->count) box_ring_pop(r);
    r->head = 0;
    r->sent = 0;
}

stb_rec *box_ring_push(stb_box *b)
{
    stb_ring *r = &b->ring;
    if (r->cap == 0) r->cap = 1;
    if (r->count >= r->cap) {
        box_ring_pop(r);
        r->dropped++;
        b->w->stats.dropped++;
    }
    if (r->count == r->alloc) {
        uint32_t na = r->alloc ? r->alloc * 2 : 8;
        if (na > r->cap) na = r->cap;
        stb_rec *nr = malloc((size_t)na * sizeof *nr);
        if (!nr) return NULL;
        for (uint32_t i = 0; i < r->count; i++) nr[i] = *box_ring_at(r, i);
        free(r->r);
        r->r = nr;
        r->alloc = na;
        r->head = 0;
    }
    stb_rec *rec = &r->r[(r->head + r->count) % r->alloc];
    memset(rec, 0, sizeof *rec);
    r->count++;
    b->dirty = 1;
    return rec;
}

uint32_t stb_box_pending(const stb_box *b) { return b->ring.count - b->ring.sent; }

/* Marks buffered records seq lo..hi as refused: never sent again, dropped at the next ack. */
void box_ring_kill(stb_box *b, uint32_t lo, uint32_t hi)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < b->ring.count; i++) {
        stb_rec *r = box_ring_at(&b->ring, i);
        if (r->seq >= lo && r->seq <= hi && r->kind) { box_rec_free(r); n++; }
    }
    if (n) b->dirty = 1;
}

void box_push_raw(stb_box *b, char prefix, uint32_t seq, int64_t ts, char *json)
{
    if (!json) return;
    stb_rec *r = box_ring_push(b);
    if (!r) { free(json); return; }
    r->kind = STB_REC_RAW;
    r->seq = seq;
    r->ts = ts;
    r->a = (uint8_t)prefix;
    r->u.raw = json;
    box_kick(b);
}

/* ------------------------------------------------------------------ logs */

void box_logring_push(stb_box *b, const stb_logline *l)
{
    stb_logring *r = &b->logs;
    if (r->cap == 0) { free(l->text); return; }
    if (r->count >= r->cap) {
        free(r->l[r->head].text);
        r->head = (r->head + 1) % r->alloc;
        r->count--;
    }
    if (r->count == r->alloc) {
        uint32_t na = r->alloc ? r->alloc * 2 : 8;
        if (na > r->cap) na = r->cap;
        stb_logline *nl = malloc((size_t)na * sizeof *nl);
        if (!nl) { free(l->text); return; }
        for (uint32_t i = 0; i < r->count; i++) nl[i] = r->l[(r->head + i) % r->alloc];
        free(r->l);
        r->l = nl;
        r->alloc = na;
        r->head = 0;
    }
    r->l[(r->head + r->count) % r->alloc] = *l;
    r->count++;
}

void box_logring_clear(stb_logring *r)
{
    for (uint32_t i = 0; i < r->count; i++) free(r->l[(r->head + i) % r->alloc].text);
    r->count = 0;
    r->head = 0;
}

/* ------------------------------------------------------------------ direct frames */

void box_direct_push(stb_box *b, const char *data, size_t len)
{
    if (b->n_direct >= b->w->cfg.direct_cap) { b->w->stats.dropped++; return; }
    stb_frame *f = malloc(sizeof *f + len + 1);
    if (!f) return;
    f->next = NULL;
    f->len = (uint32_t)len;
    memcpy(f->data, data, len);
    f->data[len] = 0;
    if (b->direct_tail) b->direct_tail->next = f;
    else b->direct = f;
    b->direct_tail = f;
    b->n_direct++;
    box_kick(b);
}

void box_direct_clear(stb_box *b)
{
    while (b->direct) {
        stb_frame *f = b->direct;
        b->direct = f->next;
        free(f);
    }
    b->direct_tail = NULL;
    b->n_direct = 0;
}
