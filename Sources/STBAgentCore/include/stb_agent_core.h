/* The STB agent's transport-independent core: per-box state, the bounded persisted
 * telemetry buffer, command handling (at most once), the viewing model and the fleet
 * world that holds them. The transport (libwebsockets in Sources/STBAgent, a fake in the
 * tests) drives it through the stb_box_on_* calls and services its requests (stb_ops). */
#ifndef STB_AGENT_CORE_H
#define STB_AGENT_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "stb_json.h"
#include "stb_proto.h"
#include "stb_rand.h"
#include "stb_sha256.h"
#include "stb_math.h"

#define STB_CORE_VERSION "1.0.0"

typedef struct stb_world stb_world;
typedef struct stb_box stb_box;

/* ---------------------------------------------------------------- tables */

typedef enum {
    STB_EV_TUNE = 0, STB_EV_LEAVE, STB_EV_STANDBY_ON, STB_EV_STANDBY_OFF, STB_EV_PLAY_START,
    STB_EV_PLAY_STOP, STB_EV_PLAY_ERROR, STB_EV_APP_CRASH, STB_EV_PORTAL_RELOAD, STB_EV_COUNT
} stb_event_kind;
extern const char *const stb_event_names[STB_EV_COUNT];

typedef enum { STB_LOG_DEBUG = 0, STB_LOG_INFO, STB_LOG_WARN, STB_LOG_ERROR } stb_log_level;
extern const char *const stb_level_names[4];
int stb_level_parse(const char *s); /* -1 if unknown */

typedef enum {
    STB_ST_NONE = 0, STB_ST_RECEIVED, STB_ST_IN_PROGRESS, STB_ST_SUCCEEDED, STB_ST_FAILED, STB_ST_REJECTED
} stb_cmd_state;
extern const char *const stb_state_names[6];

typedef enum {
    STB_PG_NONE = 0, STB_PG_DOWNLOADING, STB_PG_VERIFYING, STB_PG_INSTALLING, STB_PG_REBOOTING,
    STB_PG_RESETTING, STB_PG_STREAMING, STB_PG_MEASURING, STB_PG_COUNT
} stb_progress;
extern const char *const stb_progress_names[STB_PG_COUNT];

typedef enum {
    STB_CMD_UNKNOWN = 0, STB_CMD_REBOOT, STB_CMD_FACTORY_RESET, STB_CMD_FIRMWARE_UPDATE, STB_CMD_MESSAGE,
    STB_CMD_RELOAD_PORTAL, STB_CMD_SET_CONFIG, STB_CMD_LOG_PULL, STB_CMD_LOG_TAIL, STB_CMD_LOG_TAIL_STOP,
    STB_CMD_DIAGNOSTICS, STB_CMD_COUNT
} stb_cmd_name;
extern const char *const stb_cmd_names[STB_CMD_COUNT];

/* Log line templates (compact log lines; see box.c for the texts). */
typedef enum {
    STB_T_TEXT = 0, STB_T_UNDERRUN, STB_T_DECODER_RESET, STB_T_TUNED, STB_T_PLAY_ERROR, STB_T_RECOVERED,
    STB_T_STANDBY_ON, STB_T_STANDBY_OFF, STB_T_CRASH, STB_T_PORTAL_RELOAD, STB_T_CONNECTED, STB_T_CONN_LOST,
    STB_T_UNREACHABLE, STB_T_EPG, STB_T_PACKET_LOSS, STB_T_PLAYING, STB_T_COUNT
} stb_template;

/* Playback error codes used by the viewing model. */
#define STB_ERR_CODES 5
extern const char *const stb_error_codes[STB_ERR_CODES];

/* ---------------------------------------------------------------- environment */

/* What the core asks of its transport. Every callback receives ops_ctx. */
typedef struct {
    int64_t (*wall_ms)(void *ctx);  /* Unix time, ms: message ts, command deadlines */
    int64_t (*mono_us)(void *ctx);  /* monotonic, us: timers and RTT */
    /* The box has something to send: call stb_box_next_frame when the socket is writable. */
    void (*want_write)(void *ctx, stb_box *b);
    /* Close the box's connection (reboot, shutdown) and detach it from the box at once:
     * stb_box_on_closed is NOT called for a connection closed this way. */
    void (*close_conn)(void *ctx, stb_box *b, int code, const char *reason);
    /* Start an HTTP GET of url; report with stb_box_fw_data and stb_box_fw_done. 0 = started. */
    int (*http_get)(void *ctx, stb_box *b, const char *url);
    void (*http_cancel)(void *ctx, stb_box *b);
    /* The on-screen message of a `message` command. */
    void (*screen)(void *ctx, stb_box *b, const char *text, int64_t duration_sec);
    /* The agent's own diagnostics (stderr), not the box's simulated log. */
    void (*diag)(void *ctx, stb_box *b, int level, const char *msg);
} stb_ops;

typedef struct {
    uint32_t ring_cap;          /* unacknowledged telemetry kept per box (messages) */
    uint32_t log_cap;           /* in-memory log ring (lines), for log_pull */
    uint32_t exec_cap;          /* executed command ids remembered (at most once) */
    uint32_t direct_cap;        /* unbuffered frames queued (log_tail lines) */
    bool persist;               /* boxes with a state dir write it */
    bool fsync;                 /* fsync state files before rename */
    uint32_t flush_interval_ms; /* telemetry buffer written at most this often */
    const char *model;
    const char *firmware;       /* factory firmware version */
    double clock_speed;         /* simulated time runs this many times faster */
    uint64_t seed;
    bool seeded;                /* reproducible viewing and ids */
    bool simulate;              /* run the viewing model and generated logs */
    uint32_t reboot_min_ms, reboot_max_ms;
    uint32_t install_ms;        /* firmware "installing" step */
    uint32_t download_timeout_ms;
    uint32_t diag_pings, diag_interval_ms, diag_timeout_ms;
    uint32_t ping_every;        /* an RTT ping every this many heartbeats (0 = never) */
    uint32_t stable_ms;         /* a connection up this long resets the backoff */
    double rate_fraction;       /* fraction of messagesPerSecond the box uses */
    stb_backoff_policy backoff;
    int log_level_min;          /* default: lines at or above are sent as telemetry */
    int force_outage;           /* channel index forced into an outage one simulated minute in (-1: none) */
    uint32_t outage_minutes;    /* the forced outage's length in simulated minutes (0: drawn like any outage) */
    uint32_t tastes;            /* 0: every box picks channels by the fleet's Zipf popularity; G > 0: channel i is in
                                 * genre i mod G, and each box has a genre it picks from 17 times in 20 */
    double fail_firmware;       /* fault injection: probability (0..1) that a firmware install fails */
} stb_config;

void stb_config_defaults(stb_config *c); /* single-box defaults */

/* ---------------------------------------------------------------- world */

typedef struct {
    char *name;
    uint16_t kbps;          /* nominal bitrate */
    uint8_t in_outage;
    uint8_t forced;         /* the forced outage is next (or running) on this channel */
    uint8_t code;           /* error code index during an outage */
    int64_t next_change;    /* sim ms */
    uint64_t rng;
} stb_channel;

typedef struct {
    uint64_t sent_msgs, sent_frames, acked, dropped, cmds_done, cmds_rejected, cmds_duplicate;
    uint64_t errors_rx, malformed_rx, events, connects, connect_failures, closes;
    uint64_t bytes_out, bytes_in;
} stb_stats;

struct stb_world {
    stb_config cfg;
    const stb_ops *ops;
    void *ops_ctx;
    int64_t real_start_ms;   /* wall clock at start */
    int64_t sim_start_ms;    /* simulated clock at start */
    stb_channel *ch;
    double *ch_cdf;          /* Zipf */
    uint32_t nch;
    stb_box **boxes;
    uint32_t nboxes;
    uint32_t *heap;          /* viewing model: box indices ordered by next transition */
    uint32_t heap_len;
    uint32_t ch_next;        /* channel with the earliest outage change */
    stb_stats stats;
    char *scratch;           /* frame building */
    size_t scratch_cap;
    uint64_t rng;            /* world stream (outage setup) */
};

stb_world *stb_world_new(const stb_config *cfg, const stb_ops *ops, void *ops_ctx);
void stb_world_free(stb_world *w);
/* Loads channel ids (one per line; '#' comments; extra words after the id are ignored).
 * Returns the count, or -1 with errno set. */
int stb_world_load_channels(stb_world *w, const char *path);
/* Uses a built-in list when no file is given. */
void stb_world_default_channels(stb_world *w);
int64_t stb_world_sim_ms(const stb_world *w);
/* Advances the viewing model to the current simulated time. */
void stb_world_advance(stb_world *w);
/* Adds a box to the world's viewing model (called by stb_box_new). */
void stb_world_add_box(stb_world *w, stb_box *b);

/* ---------------------------------------------------------------- box */

typedef enum {
    STB_CONN_IDLE = 0,  /* waiting until next_connect_ms */
    STB_CONN_CONNECTING,
    STB_CONN_OPEN,      /* upgraded; hello sent or pending */
    STB_CONN_READY,     /* welcomed */
    STB_CONN_REBOOTING, /* simulated reboot: down until next_connect_ms */
    STB_CONN_STOPPED,   /* will not reconnect */
} stb_conn_state;

typedef enum { STB_STOP_NONE = 0, STB_STOP_REVOKED, STB_STOP_UNAUTHORIZED, STB_STOP_NOT_FOUND, STB_STOP_SHUTDOWN } stb_stop_reason;

typedef enum { STB_REC_METRICS = 1, STB_REC_EVENT, STB_REC_LOG, STB_REC_RAW } stb_rec_kind;

/* One buffered telemetry message, 32 bytes. Frequent kinds are compact; the rest keep
 * their encoded JSON (without "id") on the heap. */
typedef struct {
    int64_t ts;
    uint32_t seq;
    uint8_t kind;
    uint8_t a;   /* event kind | log level | metrics underruns | RAW id prefix */
    uint16_t b;  /* channel | log template | metrics dropped frames */
    union {
        struct { uint16_t cpu10, mem10; int16_t temp10; uint16_t rtt10, kbps, pad; uint32_t uptime; } m;
        struct { uint16_t chan, code; uint32_t num; } e;
        char *raw;
    } u;
} stb_rec;

typedef struct {
    stb_rec *r;
    uint32_t cap;   /* bound */
    uint32_t alloc; /* allocated slots (grows to cap) */
    uint32_t head, count;
    uint32_t sent;  /* records from head already sent on this connection */
    uint64_t dropped;
} stb_ring;

typedef struct {
    int64_t ts;
    uint8_t level, tmpl;
    uint16_t chan, code, pad;
    uint32_t num;
    char *text; /* free text when tmpl == 0 */
} stb_logline;

typedef struct {
    stb_logline *l;
    uint32_t cap, alloc, head, count;
} stb_logring;

typedef struct {
    char *id;
    uint8_t name, state, progress;
    char *reason;
} stb_exec;

typedef struct stb_frame {
    struct stb_frame *next;
    uint32_t len;
    char data[];
} stb_frame;

typedef struct stb_job stb_job;

/* Viewing state (see viewing.c). */
typedef struct {
    int64_t next_ms;     /* sim time of the next transition */
    int64_t session_end; /* sim time the current viewing session ends */
    uint64_t rng;        /* deterministic stream */
    uint32_t heap_pos;
    uint16_t chan;
    uint8_t state;       /* 0 standby, 1 watching, 2 tv off (box playing, nobody watching) */
    uint8_t surf_left;   /* short dwells left in a surfing burst */
    uint8_t activity;    /* household activity, percent */
    uint8_t erroring;    /* the current channel failed */
    uint8_t taste;       /* the box's genre (cfg.tastes > 0) */
} stb_view;

struct stb_box {
    stb_world *w;
    void *conn;            /* transport handle */
    void *tp;              /* transport scratch (e.g. frame reassembly) */
    char *id;
    const char *secret;
    char *state_dir;       /* NULL: nothing persisted */
    const char *model;
    char *firmware;        /* running version */
    char *firmware_next;   /* installed, active from the next boot */
    uint32_t index;

    uint64_t rng;
    uint64_t boot_id;
    int64_t boot_sim_ms;
    uint32_t seq, seq_reserved;
    uint32_t boots;

    uint8_t conn_state, attempt, hello_sent, write_wanted;
    uint8_t stop_reason, hb_count, log_min, dirty;
    uint16_t heartbeat_sec, max_batch, mps, metrics_sec;
    uint32_t max_frame;
    int64_t next_connect_ms;  /* mono ms */
    int64_t ready_ms;         /* mono ms of the last welcome */
    int64_t next_metrics_ms;  /* mono ms */
    int64_t tokens_ms;
    float tokens;
    float rtt_ms;             /* last measured app-level RTT, < 0 none */
    uint32_t ping_seq;        /* outstanding periodic ping */
    int64_t ping_us;
    int64_t last_flush_ms;
    uint8_t pings_wanted;     /* periodic ping to send */
    uint8_t mem10_base, temp_off, rtt_base;
    uint16_t underruns, dropped_frames; /* since the last heartbeat */
    uint8_t lf_i;             /* the last frames sent: seq ranges, to map an error's ref */
    uint32_t lf_first[4], lf_last[4];

    stb_ring ring;
    stb_frame *direct, *direct_tail;
    uint32_t n_direct;
    stb_exec *exec;
    uint16_t n_exec, cap_exec;
    stb_job *jobs;
    stb_logring logs;
    stb_view view;
};

/* Creates a box. id is copied; secret is borrowed; state_dir (copied) may be NULL. */
stb_box *stb_box_new(stb_world *w, uint32_t index, const char *id, const char *secret, const char *state_dir);
void stb_box_free(stb_box *b);
/* Loads the state dir (resuming the persisted boot, buffer and executed ids) or boots
 * fresh, and makes the box ready to connect now. Returns 0, or -1 if the state dir
 * cannot be created. */
int stb_box_start(stb_box *b);
/* A new boot: new boot id, seq restarts, the buffer is renumbered into the new boot. */
void stb_box_boot(stb_box *b);
void stb_box_boot_id_hex(const stb_box *b, char out[17]);

/* transport events */
void stb_box_on_connecting(stb_box *b);
void stb_box_on_open(stb_box *b);
void stb_box_on_frame(stb_box *b, const char *data, size_t len);
void stb_box_on_closed(stb_box *b, stb_end_kind kind, int close_code, int http_status, int retry_after_s);
/* Produces the next frame to send into buf (cap bytes). Returns 1 with *len set, or 0 when
 * nothing is due (rate limit, nothing pending, not welcomed). */
int stb_box_next_frame(stb_box *b, char *buf, size_t cap, size_t *len);
/* Timers: heartbeats, command steps, rate refills, persistence. */
void stb_box_tick(stb_box *b);
/* True when the box wants a connection now. */
bool stb_box_connect_due(const stb_box *b, int64_t mono_ms);
/* Graceful end: stops reconnecting and flushes the state dir. */
void stb_box_shutdown(stb_box *b);
/* Writes the state dir now if anything changed (or always when force). */
void stb_box_flush(stb_box *b, bool force);

/* firmware download results */
void stb_box_fw_data(stb_box *b, const void *data, size_t len);
void stb_box_fw_done(stb_box *b, bool ok, int http_status, const char *error);

/* telemetry producers */
void stb_box_event(stb_box *b, int64_t ts, stb_event_kind ev, int chan, int code);
/* A tune's viewing mode (protocol 1.1). Live is left unsaid, as a 1.0 box would. */
enum { STB_MODE_UNSAID = 0, STB_MODE_TIMESHIFT = 2, STB_MODE_CATCHUP = 3 };
void stb_box_event_mode(stb_box *b, int64_t ts, stb_event_kind ev, int chan, int code, int mode);
void stb_box_log(stb_box *b, int64_t ts, int level, const char *source, const char *text);
/* A templated log line (see the template table in box.c). */
void stb_box_log_t(stb_box *b, int64_t ts, int tmpl, int chan, int code, uint32_t num);
void stb_box_metrics(stb_box *b);
/* Queues an application ping (RTT). */
void stb_box_ping(stb_box *b);

/* helpers */
int64_t stb_box_now_ms(const stb_box *b); /* mono */
uint32_t stb_box_pending(const stb_box *b); /* unsent telemetry on this connection */
const stb_exec *stb_box_find_exec(const stb_box *b, const char *id);
/* Formats log line i (0 = oldest) as "ISO-time LEVEL source: text". */
size_t stb_box_format_log(const stb_box *b, const stb_logline *l, char *out, size_t cap);
/* mkdir -p */
int stb_mkdirs(const char *path, unsigned mode);
/* Writes data to path atomically (temp file in the same dir + rename). */
int stb_write_atomic(const char *path, const char *data, size_t len, bool do_fsync);

/* Fault injection (--fail-firmware P): a number in [0, 1) drawn from the box id and the
 * command id only (FNV-1a hashes mixed by splitmix64), so a rerun makes the same choices;
 * the install fails when it is below P. P <= 0 never fails, P >= 1 always does. */
double stb_fw_fail_draw(const char *box_id, const char *cmd_id);
bool stb_fw_injected_failure(const char *box_id, const char *cmd_id, double p);

/* viewing model (viewing.c) */
void stb_view_init(stb_box *b);
const char *stb_channel_name(const stb_world *w, int chan);

#endif
