/* Private to the agent*.c files (not a public header: it is outside include/). agent.c was
 * split by concern; the types below were local to it, and the functions were static in it and
 * are now shared between the files, so they carry an agent_ prefix. Nothing else changed. */
#ifndef STB_AGENT_INTERNAL_H
#define STB_AGENT_INTERNAL_H

#include "stb_agent.h"

#include <libwebsockets.h>

#define TX_CAP (1 << 20)

typedef enum { TP_WS = 1, TP_HTTP } tp_kind;

/* Per-connection transport state; the wsi's opaque user data. box is NULL once the box
 * has let go of the connection (reboot, shutdown, cancelled download). */
typedef struct tp {
    struct tp *next_dl;  /* download list */
    stb_box *box;
    struct lws *wsi;
    char *rx;
    size_t rx_len, rx_cap;
    uint8_t kind;
    uint8_t established;
    uint8_t reported;    /* the box was told the connection ended */
    uint16_t close_code; /* from the peer's close frame */
    uint16_t closing;    /* close code to send on the next writable */
} tp;

struct agent {
    agent_config c;
    struct lws_context *ctx;
    stb_world *w;
    lws_sorted_usec_list_t sul;
    char *tx;
    int pending;          /* handshakes in flight */
    uint32_t connected;   /* welcomed or upgraded */
    double ramp_tokens;
    int64_t ramp_ms;
    uint32_t cursor;      /* round-robin start for connects */
    int64_t start_ms;
    int64_t next_progress_ms;
    int64_t stop_deadline_ms;
    bool stopping;
    bool done;
    bool evlib;           /* an event library runs the loop inside lws_service */
    int exit_code;
    tp *downloads;
    /* diagnostics rate limit (fleet) */
    int64_t diag_window_ms;
    uint32_t diag_in_window, diag_suppressed;
    uint64_t last_sent, last_bytes;
    int64_t last_progress_ms;
};

/* ------------------------------------------------------------------ agent.c: clocks and diagnostics (stb_ops) */

int64_t agent_op_wall(void *ctx);
int64_t agent_op_mono(void *ctx);
void agent_op_diag(void *ctx, stb_box *b, int level, const char *msg);
void agent_op_screen(void *ctx, stb_box *b, const char *text, int64_t dur);

/* ------------------------------------------------------------------ agent_transport.c: connects, the lws callback */

void agent_box_connect(agent *a, stb_box *b);
extern const struct lws_protocols agent_protocols[];

#endif
