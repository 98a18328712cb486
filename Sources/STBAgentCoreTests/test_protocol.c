/* JSON, the protocol encoders and decoders, held to docs/protocol/examples. */
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ tests */

void test_json(void)
{
    current = "json";
    const char *good[] = { "in-hello.json", "in-ping.json", "in-metrics.json", "in-event-tune.json", "in-log.json",
                           "in-batch.json", "in-command-status-progress.json", "in-command-status-rejected.json",
                           "out-welcome.json", "out-pong.json", "out-error.json", "out-ack.json",
                           "out-command-reboot.json", "out-command-firmware.json" };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        size_t len;
        char *t = example(good[i], &len);
        if (!t) continue;
        sj_value *v = NULL;
        CHECK(sj_parse(t, len, &v, NULL, 0) == SJ_OK && v->type == SJ_OBJECT, "%s parses", good[i]);
        sj_free(v);
        free(t);
    }
    struct { const char *file; sj_status st; } bad[] = {
        { "bad-invalid_json-duplicate-key.json", SJ_ERR_SYNTAX },
        { "bad-invalid_json-trailing-comma.json", SJ_ERR_SYNTAX },
        { "bad-invalid_utf8-bad-bytes.json", SJ_ERR_UTF8 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t len;
        char *t = example(bad[i].file, &len);
        if (!t) continue;
        sj_value *v = NULL;
        sj_status st = sj_parse(t, len, &v, NULL, 0);
        CHECK(st == bad[i].st, "%s is rejected with status %d (got %d)", bad[i].file, bad[i].st, st);
        sj_free(v);
        free(t);
    }
    const char *invalid[] = { "{\"a\":01}", "{\"a\":1,}", "[1,2", "{\"a\" 1}", "\"\\ud800\"", "{\"a\":tru}", "1 2",
                              "{\"a\":\"x\ny\"}", "/*c*/{}", "" };
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        sj_value *v = NULL;
        CHECK(sj_parse(invalid[i], strlen(invalid[i]), &v, NULL, 0) != SJ_OK, "rejects %s", invalid[i]);
        sj_free(v);
    }
    /* Same depth rule as the hub's parser (Sources/STBProtocol/JSON.swift): the root is
     * depth 0 and depth 32 is the deepest accepted. */
    char deep[100];
    memset(deep, '[', 34);
    memset(deep + 34, ']', 34);
    sj_value *v = NULL;
    CHECK(sj_parse(deep, 68, &v, NULL, 0) != SJ_OK, "nesting beyond depth 32 is rejected");
    sj_free(v);
    CHECK(sj_parse(deep + 1, 66, &v, NULL, 0) == SJ_OK, "depth 32 is accepted");
    sj_free(v);
    const char *esc = "{\"s\":\"a\\u00e9\\ud83d\\ude00\\n\\\"\"}";
    CHECK(sj_parse(esc, strlen(esc), &v, NULL, 0) == SJ_OK && strcmp(sj_get_str(v, "s"), "a\xC3\xA9\xF0\x9F\x98\x80\n\"") == 0,
          "escapes and surrogate pairs decode");
    char out[128];
    sj_writer w;
    sjw_init(&w, out, sizeof out);
    sjw_value(&w, v);
    sjw_finish(&w);
    sj_value *v2 = parse_or_null(out, w.len);
    CHECK(v2 && sj_equal(v, v2), "writer round-trips: %s", out);
    sj_free(v);
    sj_free(v2);
    const char *a = "{\"x\":1,\"y\":[1,2.5,\"s\"]}", *b = "{\"y\":[1,2.5,\"s\"],\"x\":1}", *c = "{\"x\":1.0,\"y\":[1,2.5,\"s\"]}";
    sj_value *va = parse_or_null(a, strlen(a)), *vb = parse_or_null(b, strlen(b)), *vc = parse_or_null(c, strlen(c));
    CHECK(sj_equal(va, vb), "member order does not matter");
    CHECK(!sj_equal(va, vc), "1 and 1.0 differ");
    sj_free(va);
    sj_free(vb);
    sj_free(vc);
    sjw_init(&w, out, 8);
    sjw_str(&w, "a long string");
    CHECK(sjw_finish(&w) != 0, "writer reports overflow");
}

void test_encoders(void)
{
    current = "encoders";
    char buf[2048];
    sj_writer w;

    sjw_init(&w, buf, sizeof buf);
    stb_enc_hello(&w, "h-1", 1, 1795315579000LL, "argus-sim-1", "1.4.2", "5f0c2a9e7b1d4c3a");
    sjw_finish(&w);
    expect_same("in-hello.json", buf);

    sjw_init(&w, buf, sizeof buf);
    stb_enc_ping(&w, "p-7", 7, 1795315609000LL);
    sjw_finish(&w);
    expect_same("in-ping.json", buf);

    stb_metrics m = { .cpu = 23.5, .mem = 61.2, .temp_c = 54.0, .uptime_sec = 86400, .rtt_ms = 12.4,
                      .bitrate_kbps = 8200, .underruns = 0, .dropped_frames = 3 };
    sjw_init(&w, buf, sizeof buf);
    stb_enc_metrics(&w, "m-42", 42, 1795315639000LL, &m);
    sjw_finish(&w);
    expect_same("in-metrics.json", buf);

    sjw_init(&w, buf, sizeof buf);
    stb_enc_event(&w, "e-43", 43, 1795315640000LL, "tune", "bbc-one.uk", NULL, NULL);
    sjw_finish(&w);
    expect_same("in-event-tune.json", buf);

    sjw_init(&w, buf, sizeof buf);
    stb_enc_event(&w, "e-47", 47, 1795315660000LL, "tune", "bbc-one.uk", NULL, "timeshift");
    sjw_finish(&w);
    expect_same("in-event-tune-timeshift.json", buf);

    sjw_init(&w, buf, sizeof buf);
    stb_enc_log(&w, "l-44", 44, 1795315641000LL, "warn", "player", "buffer underrun on bbc-one.uk", NULL);
    sjw_finish(&w);
    expect_same("in-log.json", buf);

    sjw_init(&w, buf, sizeof buf);
    stb_enc_batch_begin(&w, "b-45", 1795315642000LL);
    stb_enc_event(&w, NULL, 45, 1795315641500LL, "play_error", "bbc-one.uk", "E_DECODE", NULL);
    stb_enc_log(&w, NULL, 46, 1795315641600LL, "error", "player", "decoder reset", NULL);
    stb_enc_batch_end(&w);
    sjw_finish(&w);
    expect_same("in-batch.json", buf);

    sjw_init(&w, buf, sizeof buf);
    stb_enc_command_status(&w, "s-90", 90, -1, "x-7f3b", "in_progress", "verifying", NULL, NULL);
    sjw_finish(&w);
    expect_same("in-command-status-progress.json", buf);

    sjw_init(&w, buf, sizeof buf);
    stb_enc_command_status(&w, "s-91", 91, -1, "x-9999", "rejected", NULL, "unknown command teleport", NULL);
    sjw_finish(&w);
    expect_same("in-command-status-rejected.json", buf);

    /* The box's own buffered records encode to the same frames. */
    rig r;
    rig_open(&r, NULL, 100);
    char chfile[512];
    snprintf(chfile, sizeof chfile, "%s/channels.txt", tmproot);
    FILE *cf = fopen(chfile, "w");
    if (cf) { fputs("# test\nzdf.de\nbbc-one.uk BBC One\n", cf); fclose(cf); }
    CHECK(stb_world_load_channels(r.w, chfile) == 2, "channel file loads");
    r.w->sim_start_ms = r.w->real_start_ms; /* sim clock = fake wall clock */
    connect_box(&r.f, r.b, NULL);
    r.b->seq = 42;
    r.b->log_min = STB_LOG_WARN;
    stb_box_event(r.b, 1795315640000LL, STB_EV_TUNE, 1, -1);
    size_t len;
    CHECK(stb_box_next_frame(r.b, txbuf, sizeof txbuf, &len) == 1, "event frame");
    expect_same("in-event-tune.json", txbuf);
    r.b->seq = 44;
    r.f.wall_ms = 1795315642000LL;
    stb_box_event(r.b, 1795315641500LL, STB_EV_PLAY_ERROR, 1, 1);
    stb_box_log(r.b, 1795315641600LL, STB_LOG_ERROR, "player", "decoder reset");
    CHECK(stb_box_next_frame(r.b, txbuf, sizeof txbuf, &len) == 1, "batch frame");
    expect_same("in-batch.json", txbuf);
    r.b->seq = 43;
    stb_box_log_t(r.b, 1795315641000LL, STB_T_UNDERRUN, 1, -1, 0);
    CHECK(stb_box_next_frame(r.b, txbuf, sizeof txbuf, &len) == 1, "log frame");
    expect_same("in-log.json", txbuf);
    rig_close(&r);
}

void test_decoders(void)
{
    current = "decoders";
    size_t len;
    char *t;
    stb_msg m;
    char err[200];

    if ((t = example("out-welcome.json", &len))) {
        CHECK(stb_decode(t, len, &m, err, sizeof err) == 0, "welcome decodes: %s", err);
        CHECK(m.kind == STB_MSG_WELCOME, "kind welcome");
        CHECK(m.ref && strcmp(m.ref, "h-1") == 0, "welcome ref");
        CHECK(m.protocol == 1 && m.server_time == 1795315579012LL, "protocol, serverTime");
        CHECK(m.session && strcmp(m.session, "0b1c2d3e4f5a6b7c") == 0, "session");
        CHECK(m.node && strcmp(m.node, "hub-a:8081") == 0, "node");
        CHECK(m.heartbeat_sec == 30, "heartbeatSec");
        CHECK(m.max_frame_bytes == 65536 && m.max_batch == 100 && m.messages_per_second == 50, "limits");
        stb_msg_free(&m);
        free(t);
    }
    if ((t = example("out-pong.json", &len))) {
        CHECK(stb_decode(t, len, &m, err, sizeof err) == 0 && m.kind == STB_MSG_PONG, "pong decodes");
        CHECK(m.ref && strcmp(m.ref, "p-7") == 0 && m.server_time == 1795315609004LL, "pong fields");
        stb_msg_free(&m);
        free(t);
    }
    if ((t = example("out-error.json", &len))) {
        CHECK(stb_decode(t, len, &m, err, sizeof err) == 0 && m.kind == STB_MSG_ERROR, "error decodes");
        CHECK(m.code && strcmp(m.code, "missing_field") == 0, "error code");
        CHECK(m.reason && strcmp(m.reason, "model is required") == 0, "error reason");
        CHECK(m.field && strcmp(m.field, "model") == 0 && m.ref && strcmp(m.ref, "h-2") == 0, "error field, ref");
        stb_msg_free(&m);
        free(t);
    }
    if ((t = example("out-ack.json", &len))) {
        CHECK(stb_decode(t, len, &m, err, sizeof err) == 0 && m.kind == STB_MSG_ACK && m.up_to == 46, "ack upTo 46");
        stb_msg_free(&m);
        free(t);
    }
    if ((t = example("out-command-reboot.json", &len))) {
        CHECK(stb_decode(t, len, &m, err, sizeof err) == 0 && m.kind == STB_MSG_COMMAND, "reboot command decodes");
        CHECK(strcmp(m.id, "x-7f3a") == 0 && strcmp(m.name, "reboot") == 0, "reboot id, name");
        CHECK(m.params && m.params->type == SJ_OBJECT && m.params->u.obj.count == 0, "reboot params {}");
        CHECK(m.deadline == 1795319242000LL, "reboot deadline");
        stb_msg_free(&m);
        free(t);
    }
    if ((t = example("out-command-firmware.json", &len))) {
        CHECK(stb_decode(t, len, &m, err, sizeof err) == 0 && m.kind == STB_MSG_COMMAND, "firmware command decodes");
        CHECK(strcmp(m.id, "x-7f3b") == 0 && strcmp(m.name, "firmware_update") == 0, "firmware id, name");
        int64_t size = 0;
        CHECK(strcmp(sj_get_str(m.params, "version"), "1.5.0") == 0, "params.version");
        CHECK(strcmp(sj_get_str(m.params, "url"), "http://127.0.0.1:8080/firmware/1.5.0.bin") == 0, "params.url");
        CHECK(sj_get_int(m.params, "size", &size) && size == 1048576, "params.size");
        CHECK(strcmp(sj_get_str(m.params, "sha256"), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08") == 0, "params.sha256");
        CHECK(m.deadline == 1795319242000LL, "firmware deadline");
        stb_msg_free(&m);
        free(t);
    }
    const char *malformed[] = { "[\"ping\"]", "{\"id\":\"x\"}", "{\"type\":\"command\",\"name\":\"reboot\"}",
                                "{\"type\":\"command\",\"id\":\"x\",\"params\":{}}", "{\"type\":\"ack\"}",
                                "{\"type\":\"ack\",\"upTo\":-1}", "{\"type\":\"welcome\",\"heartbeatSec\":\"30\"}",
                                "{\"type\":\"command\",\"id\":\"x\",\"name\":\"reboot\",\"params\":[1]}", "not json" };
    for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++) {
        int rc = stb_decode(malformed[i], strlen(malformed[i]), &m, err, sizeof err);
        CHECK(rc != 0, "malformed frame rejected: %s", malformed[i]);
        if (rc == 0) stb_msg_free(&m);
    }
    const char *other = "{\"type\":\"teleport\"}";
    CHECK(stb_decode(other, strlen(other), &m, err, sizeof err) == 0 && m.kind == STB_MSG_OTHER, "unknown types decode as other");
    stb_msg_free(&m);
}
