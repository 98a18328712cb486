/* Frames: hello/welcome, heartbeats, batches, acks, error frames, refusals, rate_limited,
 * reconnects and backoff (box_frames.c, box.c). */
#include "tests.h"

#include <stdio.h>
#include <string.h>

void test_connection(void)
{
    current = "connection";
    rig r;
    rig_open(&r, NULL, 1000);
    stb_box *b = r.b;
    r.w->sim_start_ms = r.w->real_start_ms; /* sim = wall */
    b->conn = b;
    stb_box_on_connecting(b);
    stb_box_on_open(b);
    size_t len;
    CHECK(stb_box_next_frame(b, txbuf, sizeof txbuf, &len) == 1, "hello");
    sj_value *h = parse_or_null(txbuf, len);
    int64_t seq = -1, proto = 0;
    const char *boot = h ? sj_get_str(h, "bootId") : NULL;
    CHECK(h && strcmp(sj_get_str(h, "model"), "argus-sim-1") == 0 && strcmp(sj_get_str(h, "firmware"), "1.4.2") == 0, "hello model, firmware");
    CHECK(boot && strlen(boot) == 16, "bootId is 16 hex digits");
    CHECK(h && sj_get_int(h, "protocol", &proto) && proto == 1, "protocol 1");
    CHECK(h && sj_get_int(h, "seq", &seq) && seq >= 1, "hello has a seq");
    char boot1[17] = "";
    if (boot) snprintf(boot1, sizeof boot1, "%s", boot);
    sj_free(h);
    feed_example(b, "out-welcome.json");
    CHECK(b->heartbeat_sec == 30 && b->max_batch == 100 && b->mps == 50, "welcome limits applied");
    /* heartbeats */
    int before = r.o.nmsgs;
    run_for(&r, 95000);
    drain(&r.f, b, &r.o);
    int metrics = count_type(&r.o, "metrics", NULL, NULL);
    CHECK(metrics >= 3 && metrics <= 4, "a metrics heartbeat every heartbeatSec (%d in 95 s)", metrics);
    (void)before;
    const sj_value *mm = NULL;
    for (int i = 0; i < r.o.nmsgs; i++) if (strcmp(sj_get_str(r.o.msgs[i], "type"), "metrics") == 0) mm = r.o.msgs[i];
    const char *fields[] = { "cpu", "mem", "tempC", "uptimeSec", "rttMs", "bitrateKbps", "underruns", "droppedFrames" };
    for (size_t i = 0; mm && i < 8; i++) {
        double v = -1;
        CHECK(sj_get_num(mm, fields[i], &v) && v >= 0, "metrics.%s present", fields[i]);
    }
    /* telemetry is buffered until acked, sent in batches when there is a backlog */
    out_reset(&r.o);
    for (int i = 0; i < 250; i++) stb_box_event(b, -1, STB_EV_TUNE, -1, -1);
    drain(&r.f, b, &r.o);
    CHECK(count_type(&r.o, "event", NULL, NULL) == 250, "all 250 events sent (%d)", count_type(&r.o, "event", NULL, NULL));
    int batches = 0;
    for (int i = 0; i < r.o.nframes; i++) {
        const char *t = sj_get_str(r.o.frames[i], "type");
        if (t && strcmp(t, "batch") == 0) batches++;
    }
    CHECK(batches >= 3, "backlog goes out in batches (%d)", batches);
    int maxb = 0;
    for (int i = 0; i < r.o.nframes; i++) {
        const sj_value *ms = sj_get(r.o.frames[i], "messages");
        if (ms && (int)ms->u.arr.count > maxb) maxb = (int)ms->u.arr.count;
    }
    CHECK(maxb <= 40, "a batch respects the rate budget and maxBatch (%d)", maxb);
    uint32_t buffered = b->ring.count;
    CHECK(buffered >= 250, "unacked messages stay buffered (%u)", buffered);
    /* an error frame (the hub does not ingest telemetry yet) is tolerated */
    int closes = r.f.closes;
    feed(b, "{\"type\":\"error\",\"code\":\"unknown_type\",\"reason\":\"unknown message type \\\"event\\\"\",\"field\":\"type\"}");
    feed(b, "{\"type\":\"error\",\"code\":");
    feed(b, "\x01\x02garbage");
    CHECK(r.f.closes == closes && b->conn_state == STB_CONN_READY, "error and malformed frames keep the connection");
    CHECK(r.w->stats.malformed_rx == 2 && r.w->stats.errors_rx == 1, "counted: %llu malformed, %llu errors",
          (unsigned long long)r.w->stats.malformed_rx, (unsigned long long)r.w->stats.errors_rx);
    /* command_status never travels in a batch (the hub batches metrics, events and logs only) */
    out_reset(&r.o);
    for (int i = 0; i < 5; i++) stb_box_event(b, -1, STB_EV_TUNE, -1, -1);
    cmd_frame(b, "x-inbatch", "reload_portal");
    for (int i = 0; i < 5; i++) stb_box_event(b, -1, STB_EV_TUNE, -1, -1);
    drain(&r.f, b, &r.o);
    int in_batch = 0, alone = 0;
    for (int i = 0; i < r.o.nframes; i++) {
        const sj_value *ms = sj_get(r.o.frames[i], "messages");
        const char *t = sj_get_str(r.o.frames[i], "type");
        for (size_t k = 0; ms && k < ms->u.arr.count; k++)
            if (strcmp(sj_get_str(ms->u.arr.items[k], "type"), "command_status") == 0) in_batch++;
        if (t && strcmp(t, "command_status") == 0 && sj_get_str(r.o.frames[i], "id")) alone++;
    }
    CHECK(in_batch == 0 && alone == 3, "command_status frames go alone, with an id (%d in batches, %d alone)", in_batch, alone);
    /* ack drops everything up to upTo */
    uint32_t last = b->seq;
    char ack[64];
    snprintf(ack, sizeof ack, "{\"type\":\"ack\",\"upTo\":%u}", last);
    feed(b, ack);
    CHECK(b->ring.count == 0 && r.w->stats.acked >= 250, "ack upTo empties the buffer (%u left)", b->ring.count);
    /* reconnect: unacked messages are resent */
    out_reset(&r.o);
    for (int i = 0; i < 5; i++) stb_box_event(b, -1, STB_EV_LEAVE, -1, -1);
    drain(&r.f, b, &r.o);
    CHECK(count_type(&r.o, "event", "event", "leave") == 5, "5 sent");
    stb_box_on_closed(b, STB_END_CLOSED, 1001, 0, -1);
    CHECK(b->conn_state == STB_CONN_IDLE, "1001: back to idle for a reconnect");
    int64_t wait = b->next_connect_ms - stb_box_now_ms(b);
    CHECK(wait >= 0 && wait <= 1000, "after a stable session the first retry is within base (%lld)", (long long)wait);
    out_reset(&r.o);
    connect_box(&r.f, b, &r.o);
    drain(&r.f, b, &r.o);
    CHECK(count_type(&r.o, "event", "event", "leave") == 5, "resent after reconnect (%d)", count_type(&r.o, "event", "event", "leave"));
    /* same boot across reconnects */
    const char *boot2 = sj_get_str(r.o.frames[0], "bootId");
    CHECK(boot2 && strcmp(boot1, boot2) == 0, "reconnect keeps the boot id");
    /* backoff grows while the hub is gone, up to the cap, and never busy-loops. One sample per
     * failure proves little with full jitter, so the outage is repeated: each round starts after
     * a stable session (which resets the backoff) and fails 8 times in a row. Failure i then
     * draws from [0, ceiling(i)], ceiling(i) = min(1 s x 2^(i+1), 60 s); over the rounds its
     * largest delay must pass the previous ceiling (the ceiling grew) or, at the cap, come near
     * it, and the delays must spread over the range (jitter), never past the ceiling. */
    enum { ROUNDS = 64, FAILS = 8 };
    int64_t lo[FAILS], hi[FAILS];
    for (int i = 0; i < FAILS; i++) { lo[i] = INT64_MAX; hi[i] = -1; }
    for (int round = 0; round < ROUNDS; round++) {
        if (round > 0) {
            connect_box(&r.f, b, NULL);
            out_reset(&r.o);
            drain(&r.f, b, &r.o);
            snprintf(ack, sizeof ack, "{\"type\":\"ack\",\"upTo\":%u}", b->seq);
            feed(b, ack);
            advance(&r.f, 30000); /* stable_ms */
            stb_box_on_closed(b, STB_END_CLOSED, 1001, 0, -1);
        }
        for (int i = 0; i < FAILS; i++) {
            b->conn = b;
            stb_box_on_connecting(b);
            stb_box_on_closed(b, STB_END_CONNECT_FAILED, 0, 0, -1);
            int64_t d = b->next_connect_ms - stb_box_now_ms(b);
            int64_t ceiling = 1000LL << (i + 1 > 6 ? 6 : i + 1);
            if (ceiling > 60000) ceiling = 60000;
            CHECK(d >= 0 && d <= ceiling, "failure %d: delay %lld within [0, %lld]", i, (long long)d, (long long)ceiling);
            if (d < lo[i]) lo[i] = d;
            if (d > hi[i]) hi[i] = d;
        }
    }
    for (int i = 0; i < FAILS; i++) {
        int64_t ceiling = 1000LL << (i + 1 > 6 ? 6 : i + 1), below = 1000LL << i;
        if (ceiling > 60000) ceiling = 60000;
        if (below > 60000) below = 60000;
        if (below < ceiling)
            CHECK(hi[i] > below, "failure %d: the ceiling grew past %lld (largest delay %lld of %d)", i, (long long)below, (long long)hi[i], ROUNDS);
        else
            CHECK(hi[i] > ceiling * 3 / 4, "failure %d: at the cap, delays reach near %lld (largest %lld)", i, (long long)ceiling, (long long)hi[i]);
        CHECK(hi[i] - lo[i] > ceiling / 2, "failure %d: jitter varies the delay (%lld to %lld of [0, %lld])", i,
              (long long)lo[i], (long long)hi[i], (long long)ceiling);
    }
    b->conn = b;
    stb_box_on_connecting(b);
    stb_box_on_closed(b, STB_END_HTTP, 0, 503, 20);
    CHECK(b->next_connect_ms - stb_box_now_ms(b) >= 20000, "503 Retry-After honoured");
    b->conn = b;
    stb_box_on_connecting(b);
    stb_box_on_open(b);
    stb_box_on_closed(b, STB_END_CLOSED, 4001, 0, -1);
    CHECK(b->conn_state == STB_CONN_STOPPED && b->stop_reason == STB_STOP_REVOKED, "4001 stops the box");
    rig_close(&r);
}

void test_refusals(void)
{
    current = "refusals";
    rig r;
    rig_open(&r, NULL, 1000);
    stb_box *b = r.b;
    connect_box(&r.f, b, NULL);
    for (int i = 0; i < 10; i++) stb_box_event(b, -1, STB_EV_TUNE, -1, -1);
    drain(&r.f, b, &r.o);
    /* the hub refuses the batch as invalid: it is not sent again */
    const sj_value *batch = NULL;
    for (int i = 0; i < r.o.nframes; i++)
        if (strcmp(sj_get_str(r.o.frames[i], "type"), "batch") == 0) batch = r.o.frames[i];
    CHECK(batch != NULL, "a batch was sent");
    char err[256];
    snprintf(err, sizeof err, "{\"type\":\"error\",\"code\":\"invalid_field\",\"reason\":\"x\",\"field\":\"messages[0].cpu\",\"ref\":\"%s\"}",
             batch ? sj_get_str(batch, "id") : "b-0");
    feed(b, err);
    feed(b, "{\"type\":\"error\",\"code\":\"invalid_field\",\"reason\":\"x\",\"ref\":\"q-1\"}"); /* not ours: ignored */
    stb_box_on_closed(b, STB_END_CLOSED, 1001, 0, -1);
    out_reset(&r.o);
    connect_box(&r.f, b, &r.o);
    drain(&r.f, b, &r.o);
    CHECK(count_type(&r.o, "event", NULL, NULL) == 0, "refused messages are not resent (%d)", count_type(&r.o, "event", NULL, NULL));
    /* rate_limited: everything unacknowledged goes again, after a pause */
    out_reset(&r.o);
    for (int i = 0; i < 6; i++) stb_box_event(b, -1, STB_EV_LEAVE, -1, -1);
    size_t len;
    int frames = 0;
    while (stb_box_next_frame(b, txbuf, sizeof txbuf, &len)) frames++;
    CHECK(frames >= 1, "sent");
    feed(b, "{\"type\":\"error\",\"code\":\"rate_limited\",\"reason\":\"over 50 messages per second; resend later\"}");
    CHECK(stb_box_next_frame(b, txbuf, sizeof txbuf, &len) == 0, "paused after rate_limited");
    CHECK(r.f.closes == 0 && b->conn_state == STB_CONN_READY, "still connected");
    drain(&r.f, b, &r.o);
    CHECK(count_type(&r.o, "event", "event", "leave") == 6, "all 6 resent after the pause (%d)", count_type(&r.o, "event", "event", "leave"));
    rig_close(&r);
}
