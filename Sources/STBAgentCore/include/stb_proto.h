/* Encoders and decoders for the Argus STB protocol v1 (docs/protocol.md). Transport-free:
 * encoders append to an sj_writer, the decoder takes one text frame. */
#ifndef STB_PROTO_H
#define STB_PROTO_H

#include <stdint.h>
#include <stdbool.h>
#include "stb_json.h"

#define STB_PROTOCOL_VERSION 1
#define STB_MAX_IDENT 64
#define STB_DEFAULT_MAX_FRAME 65536
#define STB_DEFAULT_MAX_BATCH 100
#define STB_DEFAULT_MPS 50
#define STB_DEFAULT_HEARTBEAT 30

typedef struct {
    double cpu;          /* % */
    double mem;          /* % used */
    double temp_c;
    int64_t uptime_sec;
    double rtt_ms;
    int64_t bitrate_kbps;
    int64_t underruns;      /* since the previous heartbeat */
    int64_t dropped_frames; /* since the previous heartbeat */
} stb_metrics;

/* In every encoder: id NULL omits "id", seq < 0 omits "seq", ts < 0 omits "ts". */
void stb_enc_hello(sj_writer *w, const char *id, int64_t seq, int64_t ts, const char *model,
                   const char *firmware, const char *boot_id);
void stb_enc_ping(sj_writer *w, const char *id, int64_t seq, int64_t ts);
void stb_enc_metrics(sj_writer *w, const char *id, int64_t seq, int64_t ts, const stb_metrics *m);
/* channel, code and mode may be NULL. mode (protocol 1.1, tune only): live, timeshift, catchup. */
void stb_enc_event(sj_writer *w, const char *id, int64_t seq, int64_t ts, const char *event,
                   const char *channel, const char *code, const char *mode);
/* tail may be NULL. */
void stb_enc_log(sj_writer *w, const char *id, int64_t seq, int64_t ts, const char *level,
                 const char *source, const char *text, const char *tail);
/* progress, reason and result_json (a pre-encoded JSON value) may be NULL. */
void stb_enc_command_status(sj_writer *w, const char *id, int64_t seq, int64_t ts, const char *ref,
                            const char *state, const char *progress, const char *reason,
                            const char *result_json);
/* A batch: begin, then encode each message (with id NULL), then end. */
void stb_enc_batch_begin(sj_writer *w, const char *id, int64_t ts);
void stb_enc_batch_end(sj_writer *w);

/* ---- hub -> box ---- */
typedef enum {
    STB_MSG_OTHER = 0, /* a type this agent does not know: logged and ignored */
    STB_MSG_WELCOME,
    STB_MSG_PONG,
    STB_MSG_ERROR,
    STB_MSG_ACK,
    STB_MSG_COMMAND,
} stb_msg_kind;

typedef struct {
    stb_msg_kind kind;
    sj_value *root;      /* owns every string below */
    const char *type;
    const char *id;      /* may be NULL */
    const char *ref;     /* may be NULL */
    int64_t server_time; /* -1 when absent */
    /* welcome */
    int64_t protocol;
    const char *session;
    const char *node;
    int64_t heartbeat_sec;
    int64_t max_frame_bytes;
    int64_t max_batch;
    int64_t messages_per_second;
    /* error */
    const char *code;
    const char *reason;
    const char *field;
    /* ack */
    int64_t up_to;
    /* command */
    const char *name;
    const sj_value *params; /* an object; never NULL for a command (an empty object when absent) */
    int64_t deadline;       /* -1 when absent */
} stb_msg;

/* Decodes one frame from the hub. Returns 0 on success; -1 for a malformed frame (not
 * JSON, not an object, a required field missing or mistyped), with a reason in err. */
int stb_decode(const char *data, size_t len, stb_msg *m, char *err, size_t errlen);
void stb_msg_free(stb_msg *m);

/* True for a string of 1..64 bytes without control characters. */
bool stb_valid_ident(const char *s);

#endif
