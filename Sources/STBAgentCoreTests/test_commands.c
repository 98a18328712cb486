/* Commands (box_commands.c, box_jobs.c): reboot, factory_reset, firmware, message, reload_portal,
 * set_config, log_pull, log_tail, diagnostics, refusals, at most once. */
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cmd(stb_box *b, const char *id, const char *name, const char *params)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "{\"type\":\"command\",\"id\":\"%s\",\"name\":\"%s\",\"params\":%s,\"deadline\":1895319242000}", id, name, params);
    feed(b, buf);
}

void test_commands(void)
{
    char st[512];
    rig r;

    current = "reboot";
    rig_open(&r, tmpdir("reboot"), 100);
    connect_box(&r.f, r.b, NULL);
    char boot1[17];
    stb_box_boot_id_hex(r.b, boot1);
    uint32_t seq_before = r.b->seq;
    feed_example(r.b, "out-command-reboot.json");
    drain(&r.f, r.b, &r.o);
    CHECK(r.f.closes == 1, "reboot closes the connection");
    CHECK(r.b->conn_state == STB_CONN_REBOOTING, "rebooting");
    run_for(&r, 900);
    CHECK(r.b->conn_state == STB_CONN_REBOOTING, "still down before 1 s");
    run_for(&r, 2200);
    CHECK(r.b->conn_state == STB_CONN_IDLE && stb_box_connect_due(r.b, stb_box_now_ms(r.b)), "back within 1-3 s, connecting");
    char boot2[17];
    stb_box_boot_id_hex(r.b, boot2);
    CHECK(strcmp(boot1, boot2) != 0, "new boot id after reboot");
    CHECK(r.b->seq < seq_before + 5 && r.b->seq < 20, "seq restarted (%u)", r.b->seq);
    connect_box(&r.f, r.b, &r.o);
    int64_t hseq = 0;
    sj_get_int(r.o.frames[r.o.nframes - 1], "seq", &hseq);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-7f3a", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/rebooting succeeded") == 0, "reboot states: %s", st);
    feed_example(r.b, "out-command-reboot.json");
    CHECK(r.f.closes == 1 && r.b->conn_state == STB_CONN_READY, "a second delivery does not reboot again");
    out_reset(&r.o);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-7f3a", st, sizeof st);
    CHECK(strcmp(st, "succeeded") == 0, "duplicate answered with the state reached: %s", st);
    rig_close(&r);

    current = "factory_reset";
    char *dir = tmpdir("reset");
    rig_open(&r, dir, 100);
    connect_box(&r.f, r.b, NULL);
    cmd(r.b, "x-cfg", "set_config", "{\"values\":{\"logLevel\":\"info\"}}");
    for (int i = 0; i < 20; i++) stb_box_event(r.b, -1, STB_EV_TUNE, -1, -1);
    stb_box_flush(r.b, true);
    {
        char p[600];
        snprintf(p, sizeof p, "%s/stray.tmp", dir);
        FILE *f = fopen(p, "w");
        if (f) { fputs("x", f); fclose(f); }
    }
    CHECK(file_exists(dir, "config.json"), "config persisted");
    cmd(r.b, "x-reset", "factory_reset", "{}");
    CHECK(!file_exists(dir, "config.json") && !file_exists(dir, "stray.tmp"), "state dir cleared");
    CHECK(r.b->log_min == STB_LOG_WARN, "config back to defaults");
    CHECK(stb_box_find_exec(r.b, "x-cfg") == NULL && stb_box_find_exec(r.b, "x-reset") != NULL, "executed ids cleared except the reset");
    CHECK(r.b->conn_state == STB_CONN_REBOOTING, "factory reset reboots");
    run_for(&r, 3200);
    connect_box(&r.f, r.b, &r.o);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-reset", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/resetting in_progress/rebooting succeeded") == 0, "reset states survive the wipe: %s", st);
    CHECK(count_type(&r.o, "event", "event", "tune") == 0, "buffer cleared (%d old events sent)", count_type(&r.o, "event", "event", "tune"));
    cmd(r.b, "x-reset", "factory_reset", "{}");
    CHECK(r.b->conn_state == STB_CONN_READY, "the reset is not run twice");
    rig_close(&r);

    current = "firmware";
    rig_open(&r, tmpdir("fw"), 100);
    connect_box(&r.f, r.b, NULL);
    cmd(r.b, "x-fw1", "firmware_update",
        "{\"version\":\"1.5.0\",\"url\":\"http://127.0.0.1:9/fw.bin\",\"size\":4,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
    CHECK(r.f.http_gets == 1 && strcmp(r.f.url, "http://127.0.0.1:9/fw.bin") == 0, "download started from params.url");
    stb_box_fw_data(r.b, "te", 2);
    stb_box_fw_data(r.b, "st", 2);
    stb_box_fw_done(r.b, true, 200, NULL);
    run_for(&r, 1600);
    CHECK(r.b->conn_state == STB_CONN_REBOOTING, "installs then reboots");
    run_for(&r, 3100);
    connect_box(&r.f, r.b, &r.o);
    CHECK(strcmp(sj_get_str(r.o.frames[r.o.nframes - 1], "firmware"), "1.5.0") == 0, "hello reports the new firmware");
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-fw1", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/downloading in_progress/verifying in_progress/installing in_progress/rebooting succeeded") == 0,
          "firmware states: %s", st);
    const sj_value *ls = last_status(&r.o, "x-fw1");
    CHECK(ls && strcmp(sj_get_str(sj_get(ls, "result"), "firmware"), "1.5.0") == 0, "result names the firmware");
    /* bad checksum: failed with a reason, old version kept */
    out_reset(&r.o);
    cmd(r.b, "x-fw2", "firmware_update",
        "{\"version\":\"1.6.0\",\"url\":\"http://127.0.0.1:9/fw2.bin\",\"size\":4,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
    stb_box_fw_data(r.b, "tesT", 4);
    stb_box_fw_done(r.b, true, 200, NULL);
    run_for(&r, 5000);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-fw2", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/downloading in_progress/verifying failed") == 0, "bad checksum states: %s", st);
    ls = last_status(&r.o, "x-fw2");
    CHECK(ls && sj_get_str(ls, "reason") && strstr(sj_get_str(ls, "reason"), "sha256 mismatch"), "reason names the checksum");
    CHECK(strcmp(r.b->firmware, "1.5.0") == 0 && r.b->firmware_next == NULL && r.b->conn_state == STB_CONN_READY,
          "old version kept, no reboot");
    /* size mismatch, HTTP error, timeout */
    out_reset(&r.o);
    cmd(r.b, "x-fw3", "firmware_update", "{\"version\":\"1.6.0\",\"url\":\"http://h/f\",\"size\":10,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
    stb_box_fw_data(r.b, "test", 4);
    stb_box_fw_done(r.b, true, 200, NULL);
    cmd(r.b, "x-fw4", "firmware_update", "{\"version\":\"1.6.0\",\"url\":\"http://h/f\",\"size\":4,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
    stb_box_fw_done(r.b, false, 404, NULL);
    cmd(r.b, "x-fw5", "firmware_update", "{\"version\":\"1.6.0\",\"url\":\"http://h/f\",\"size\":4,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
    cmd(r.b, "x-fw6", "firmware_update", "{\"version\":\"1.6.0\",\"url\":\"http://h/f\",\"size\":4,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
    run_for(&r, 301000);
    drain(&r.f, r.b, &r.o);
    ls = last_status(&r.o, "x-fw3");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "failed") == 0 && strstr(sj_get_str(ls, "reason"), "size mismatch"), "size mismatch fails");
    ls = last_status(&r.o, "x-fw4");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "failed") == 0 && strstr(sj_get_str(ls, "reason"), "HTTP 404"), "HTTP 404 fails");
    ls = last_status(&r.o, "x-fw6");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "rejected") == 0 && strstr(sj_get_str(ls, "reason"), "busy"), "a second concurrent update is rejected");
    ls = last_status(&r.o, "x-fw5");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "failed") == 0 && strstr(sj_get_str(ls, "reason"), "timed out"), "a stalled download times out");
    CHECK(r.f.http_cancels >= 1, "the stalled download is cancelled");
    CHECK(strcmp(r.b->firmware, "1.5.0") == 0, "still 1.5.0");
    out_reset(&r.o);
    cmd(r.b, "x-fw7", "firmware_update", "{\"version\":\"1.6.0\",\"url\":\"ftp://h/f\",\"size\":4,\"sha256\":\"00\"}");
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-fw7", st, sizeof st);
    CHECK(strcmp(st, "rejected") == 0, "bad params rejected: %s", st);
    /* --fail-firmware 1: downloaded and verified, then the install fails; no reboot */
    out_reset(&r.o);
    r.w->cfg.fail_firmware = 1.0;
    cmd(r.b, "x-fw8", "firmware_update", "{\"version\":\"1.6.0\",\"url\":\"http://h/f\",\"size\":4,\"sha256\":\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}");
    stb_box_fw_data(r.b, "test", 4);
    stb_box_fw_done(r.b, true, 200, NULL);
    run_for(&r, 5000);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-fw8", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/downloading in_progress/verifying in_progress/installing failed/installing") == 0,
          "injected failure states: %s", st);
    ls = last_status(&r.o, "x-fw8");
    CHECK(ls && sj_get_str(ls, "reason") && strcmp(sj_get_str(ls, "reason"), "injected install failure") == 0, "injected failure reason");
    CHECK(strcmp(r.b->firmware, "1.5.0") == 0 && r.b->firmware_next == NULL && r.b->conn_state == STB_CONN_READY,
          "injected failure keeps the old version, no reboot");
    r.w->cfg.fail_firmware = 0;
    rig_close(&r);

    current = "message";
    rig_open(&r, NULL, 100);
    connect_box(&r.f, r.b, NULL);
    cmd(r.b, "x-msg", "message", "{\"text\":\"Maintenance tonight at 02:00\",\"durationSec\":15}");
    drain(&r.f, r.b, &r.o);
    CHECK(r.f.screens == 1 && strcmp(r.f.screen_text, "Maintenance tonight at 02:00") == 0 && r.f.screen_dur == 15, "message shown on screen");
    statuses(&r.o, "x-msg", st, sizeof st);
    CHECK(strcmp(st, "received in_progress succeeded") == 0, "message states: %s", st);
    cmd(r.b, "x-msg", "message", "{\"text\":\"Maintenance tonight at 02:00\",\"durationSec\":15}");
    CHECK(r.f.screens == 1, "duplicate message not shown twice");
    char big[700];
    memset(big, 'x', 600);
    big[600] = 0;
    char params[800];
    snprintf(params, sizeof params, "{\"text\":\"%s\"}", big);
    cmd(r.b, "x-msg2", "message", params);
    out_reset(&r.o);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-msg2", st, sizeof st);
    CHECK(strcmp(st, "rejected") == 0 && r.f.screens == 1, "text over 512 bytes rejected: %s", st);

    current = "reload_portal";
    out_reset(&r.o);
    cmd(r.b, "x-rp", "reload_portal", "{}");
    drain(&r.f, r.b, &r.o);
    CHECK(count_type(&r.o, "event", "event", "portal_reload") == 1, "portal_reload event emitted");
    statuses(&r.o, "x-rp", st, sizeof st);
    CHECK(strcmp(st, "received in_progress succeeded") == 0, "reload states: %s", st);

    current = "set_config";
    out_reset(&r.o);
    cmd(r.b, "x-sc1", "set_config", "{\"values\":{\"logLevel\":\"debug\",\"metricsIntervalSec\":10}}");
    cmd(r.b, "x-sc2", "set_config", "{\"values\":{\"rootShell\":true}}");
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-sc1", st, sizeof st);
    CHECK(strcmp(st, "received in_progress succeeded") == 0 && r.b->log_min == STB_LOG_DEBUG && r.b->metrics_sec == 10, "config applied: %s", st);
    const sj_value *sc2 = last_status(&r.o, "x-sc2");
    CHECK(sc2 && strcmp(sj_get_str(sc2, "state"), "rejected") == 0 && strstr(sj_get_str(sc2, "reason"), "rootShell"), "key outside the allow-list rejected");

    current = "log_pull";
    for (int i = 0; i < 30; i++) {
        char t[64];
        snprintf(t, sizeof t, "line %d", i);
        stb_box_log(r.b, -1, STB_LOG_INFO, "test", t);
    }
    out_reset(&r.o);
    cmd(r.b, "x-lp", "log_pull", "{\"lines\":5}");
    drain(&r.f, r.b, &r.o);
    const sj_value *lp = last_status(&r.o, "x-lp");
    const sj_value *lines = lp ? sj_get(sj_get(lp, "result"), "lines") : NULL;
    CHECK(lp && strcmp(sj_get_str(lp, "state"), "succeeded") == 0 && lines && lines->type == SJ_ARRAY && lines->u.arr.count == 5,
          "log_pull returns 5 lines");
    /* the last line is the agent's own "command x-lp log_pull received" */
    CHECK(lines && lines->u.arr.count == 5 && strstr(lines->u.arr.items[3]->u.str.ptr, "info test: line 29") &&
          strstr(lines->u.arr.items[0]->u.str.ptr, "line 26") && strstr(lines->u.arr.items[4]->u.str.ptr, "x-lp"),
          "the most recent lines, oldest first: %s", lines && lines->u.arr.count ? lines->u.arr.items[0]->u.str.ptr : "-");
    cmd(r.b, "x-lp2", "log_pull", "{\"lines\":6000}");
    out_reset(&r.o);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-lp2", st, sizeof st);
    CHECK(strcmp(st, "rejected") == 0, "lines over 5000 rejected: %s", st);

    current = "log_tail";
    out_reset(&r.o);
    cmd(r.b, "x-lt", "log_tail", "{\"durationSec\":30}");
    stb_box_log(r.b, -1, STB_LOG_DEBUG, "test", "tailed one");
    stb_box_log_t(r.b, -1, STB_T_EPG, -1, -1, 42);
    cmd(r.b, "x-lt2", "log_tail", "{\"durationSec\":30}");
    drain(&r.f, r.b, &r.o);
    int tails = 0;
    for (int i = 0; i < r.o.nmsgs; i++) {
        const char *tl = sj_get_str(r.o.msgs[i], "tail");
        if (tl && strcmp(tl, "x-lt") == 0 && strcmp(sj_get_str(r.o.msgs[i], "type"), "log") == 0) tails++;
    }
    CHECK(tails >= 2, "log lines streamed with tail = execution id (%d)", tails);
    statuses(&r.o, "x-lt2", st, sizeof st);
    CHECK(strcmp(st, "rejected") == 0, "one tail at a time: %s", st);
    cmd(r.b, "x-lts", "log_tail_stop", "{\"ref\":\"x-lt\"}");
    stb_box_log(r.b, -1, STB_LOG_INFO, "test", "after stop");
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-lt", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/streaming succeeded") == 0, "tail states: %s", st);
    statuses(&r.o, "x-lts", st, sizeof st);
    CHECK(strcmp(st, "received in_progress succeeded") == 0 || strcmp(st, "received succeeded") == 0, "stop states: %s", st);
    int after = 0;
    for (int i = 0; i < r.o.nmsgs; i++) {
        const char *tl = sj_get_str(r.o.msgs[i], "tail"), *tx = sj_get_str(r.o.msgs[i], "text");
        if (tl && tx && strstr(tx, "after stop")) after++;
    }
    CHECK(after == 0, "no tail lines after log_tail_stop");
    out_reset(&r.o);
    cmd(r.b, "x-lt3", "log_tail", "{\"durationSec\":2}");
    run_for(&r, 2500);
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-lt3", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/streaming succeeded") == 0, "tail ends after durationSec: %s", st);
    cmd(r.b, "x-lts2", "log_tail_stop", "{\"ref\":\"x-nope\"}");
    out_reset(&r.o);
    drain(&r.f, r.b, &r.o);
    ls = last_status(&r.o, "x-lts2");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "failed") == 0, "stopping a tail that is not running fails");

    current = "diagnostics";
    out_reset(&r.o);
    cmd(r.b, "x-dg", "diagnostics", "{}");
    for (int step = 0; step < 40; step++) {
        size_t len;
        while (stb_box_next_frame(r.b, txbuf, sizeof txbuf, &len)) {
            sj_value *v = parse_or_null(txbuf, len);
            if (v && strcmp(sj_get_str(v, "type"), "ping") == 0) {
                advance(&r.f, 3);
                char pong[128];
                snprintf(pong, sizeof pong, "{\"type\":\"pong\",\"ref\":\"%s\",\"serverTime\":1}", sj_get_str(v, "id"));
                feed(r.b, pong);
                sj_free(v);
            } else if (v && r.o.nframes < 4096) {
                r.o.frames[r.o.nframes++] = v;
                const sj_value *ms = sj_get(v, "messages");
                if (ms) for (size_t i = 0; i < ms->u.arr.count; i++) r.o.msgs[r.o.nmsgs++] = ms->u.arr.items[i];
                else r.o.msgs[r.o.nmsgs++] = v;
            } else {
                sj_free(v);
            }
        }
        run_for(&r, 100);
    }
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-dg", st, sizeof st);
    CHECK(strcmp(st, "received in_progress/measuring succeeded") == 0, "diagnostics states: %s", st);
    const sj_value *dg = last_status(&r.o, "x-dg");
    const sj_value *rtts = dg ? sj_get(sj_get(dg, "result"), "rttMs") : NULL;
    CHECK(rtts && rtts->type == SJ_ARRAY && rtts->u.arr.count == 5, "5 RTT samples");
    for (size_t i = 0; rtts && i < rtts->u.arr.count; i++)
        CHECK(rtts->u.arr.items[i]->type == SJ_DOUBLE && stb_fabs(rtts->u.arr.items[i]->u.number - 3.0) < 0.01, "sample %zu is 3 ms", i);
    out_reset(&r.o);
    cmd(r.b, "x-dg2", "diagnostics", "{}");
    run_for(&r, 7000);
    out_reset(&r.o);
    drain(&r.f, r.b, &r.o); /* pings are sent but never answered */
    run_for(&r, 7000);
    drain(&r.f, r.b, &r.o);
    ls = last_status(&r.o, "x-dg2");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "failed") == 0, "no pong: diagnostics failed");

    current = "unknown";
    out_reset(&r.o);
    int closes = r.f.closes, screens = r.f.screens, gets = r.f.http_gets;
    cmd(r.b, "x-9999", "teleport", "{\"to\":\"mars\"}");
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-9999", st, sizeof st);
    CHECK(strcmp(st, "rejected") == 0, "unknown command rejected: %s", st);
    ls = last_status(&r.o, "x-9999");
    CHECK(ls && strcmp(sj_get_str(ls, "reason"), "unknown command teleport") == 0, "with a reason");
    CHECK(r.f.closes == closes && r.f.screens == screens && r.f.http_gets == gets && r.b->conn_state == STB_CONN_READY, "and nothing run");
    out_reset(&r.o);
    cmd(r.b, "x-9999", "teleport", "{}");
    drain(&r.f, r.b, &r.o);
    statuses(&r.o, "x-9999", st, sizeof st);
    CHECK(strcmp(st, "rejected") == 0, "a repeat gets the same answer: %s", st);

    current = "deadline";
    out_reset(&r.o);
    feed(r.b, "{\"type\":\"command\",\"id\":\"x-old\",\"name\":\"message\",\"params\":{\"text\":\"late\"},\"deadline\":1000}");
    drain(&r.f, r.b, &r.o);
    ls = last_status(&r.o, "x-old");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "rejected") == 0 && r.f.screens == screens, "an expired command is rejected, not run");

    current = "malformed";
    closes = r.f.closes;
    feed(r.b, "{\"type\":\"command\",\"name\":\"reboot\"}");
    feed(r.b, "{\"type\":\"command\",\"id\":\"x-p\",\"name\":\"reboot\",\"params\":\"now\"}");
    feed(r.b, "{{{{");
    CHECK(r.f.closes == closes && r.b->conn_state == STB_CONN_READY, "malformed commands logged, connection kept, nothing run");
    rig_close(&r);

    current = "at-most-once";
    dir = tmpdir("once");
    rig_open(&r, dir, 100);
    connect_box(&r.f, r.b, NULL);
    cmd(r.b, "x-once", "message", "{\"text\":\"hello\"}");
    CHECK(r.f.screens == 1, "shown once");
    rig_close(&r);
    rig_open(&r, dir, 100);
    connect_box(&r.f, r.b, &r.o);
    cmd(r.b, "x-once", "message", "{\"text\":\"hello\"}");
    CHECK(r.f.screens == 0, "not shown again after an agent restart");
    drain(&r.f, r.b, &r.o);
    ls = last_status(&r.o, "x-once");
    CHECK(ls && strcmp(sj_get_str(ls, "state"), "succeeded") == 0, "answered with the persisted state");
    /* the executed list is bounded */
    for (int i = 0; i < 300; i++) {
        char id[32];
        snprintf(id, sizeof id, "x-b%d", i);
        cmd(r.b, id, "reload_portal", "{}");
    }
    CHECK(r.b->n_exec == 256, "executed ids bounded at 256 (%u)", r.b->n_exec);
    CHECK(stb_box_find_exec(r.b, "x-b299") && !stb_box_find_exec(r.b, "x-b0"), "the oldest forgotten first");
    rig_close(&r);
}
