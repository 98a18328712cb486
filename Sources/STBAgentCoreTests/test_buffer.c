/* The bounded buffer (box_ring.c) and its persistence across agent restarts (box_persist.c). */
#include "tests.h"

#include <stdio.h>
#include <string.h>

void test_buffer_persistence(void)
{
    current = "buffer";
    char *dir = tmpdir("buf");
    rig r;
    rig_open(&r, dir, 10);
    stb_box *b = r.b;
    char boot1[17];
    stb_box_boot_id_hex(b, boot1);
    uint32_t first = b->seq + 1;
    for (int i = 0; i < 25; i++) stb_box_event(b, -1, STB_EV_TUNE, -1, -1);
    CHECK(b->ring.count == 10, "bounded at 10 (%u)", b->ring.count);
    CHECK(b->ring.dropped >= 15, "oldest dropped and counted (%llu)", (unsigned long long)b->ring.dropped);
    uint32_t oldest = b->ring.r[b->ring.head].seq;
    CHECK(oldest == first + 15, "the oldest kept is seq %u (got %u)", first + 15, oldest);
    stb_box_flush(b, true);
    CHECK(file_exists(dir, "outbox.jsonl") && file_exists(dir, "boot.json"), "state files written");
    CHECK(!file_exists(dir, "outbox.jsonl.tmp"), "no temp file left (atomic rename)");
    uint32_t seq_before = b->seq;
    rig_close(&r);

    /* an agent restart resumes the boot and reloads the buffer */
    rig_open(&r, dir, 10);
    b = r.b;
    char boot2[17];
    stb_box_boot_id_hex(b, boot2);
    CHECK(strcmp(boot1, boot2) == 0, "restart resumes the boot id");
    CHECK(b->ring.count == 10, "buffer reloaded (%u)", b->ring.count);
    CHECK(b->ring.count && b->ring.r[b->ring.head].seq == oldest, "reloaded with the same seqs");
    CHECK(b->seq > seq_before, "seq continues past the persisted reservation (%u > %u)", b->seq, seq_before);
    connect_box(&r.f, b, &r.o);
    drain(&r.f, b, &r.o);
    CHECK(count_type(&r.o, "event", "event", "tune") == 10, "reloaded messages resent (%d)", count_type(&r.o, "event", "event", "tune"));
    char ack[64];
    snprintf(ack, sizeof ack, "{\"type\":\"ack\",\"upTo\":%u}", oldest + 4);
    feed(b, ack);
    CHECK(b->ring.count == 5, "ack removes up to upTo (%u left)", b->ring.count);
    stb_box_flush(b, true);
    rig_close(&r);
    rig_open(&r, dir, 10);
    CHECK(r.b->ring.count == 5, "acked messages are gone after a restart (%u)", r.b->ring.count);
    rig_close(&r);
}
