/* The stb-agent executable: libwebsockets transport for the agent core. */
#ifndef STB_AGENT_H
#define STB_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include "stb_agent_core.h"

#define AGENT_MAX_SOURCE_IPS 256

/* AGENT_LOOP_AUTO: libev (epoll) when its lws plugin loads, else poll(). poll() scans every
 * descriptor on each wakeup, which costs a core at a few thousand boxes. */
enum { AGENT_LOOP_AUTO = 0, AGENT_LOOP_POLL, AGENT_LOOP_EV, AGENT_LOOP_UV };

typedef struct {
    char host[256];
    int port;
    char path[512];
    bool tls;
    char src_ips[AGENT_MAX_SOURCE_IPS][48];
    int n_src;
    double ramp;          /* connection attempts per second (all boxes) */
    int max_pending;      /* handshakes in flight at once */
    bool fleet;
    int verbosity;        /* 0 quiet, 1 normal, 2 verbose, 3 + libwebsockets debug */
    int64_t duration_ms;  /* 0: until a signal */
    int64_t progress_ms;  /* progress line period */
    int fd_budget;        /* descriptors libwebsockets may use */
    int event_loop;       /* AGENT_LOOP_*: libwebsockets' event loop */
} agent_config;

typedef struct agent agent;

/* ws://host[:port][/path] or wss://...; the path defaults to /v1/stb. */
int agent_parse_url(const char *url, agent_config *c, char *err, size_t errlen);
/* "A-B" (IPv4 range), "A,B,C" or "A". */
int agent_parse_source_ips(const char *spec, agent_config *c, char *err, size_t errlen);

agent *agent_new(const agent_config *c);
/* The ops to give stb_world_new, with agent_ops_ctx(a) as context. */
const stb_ops *agent_ops(void);
void *agent_ops_ctx(agent *a);
/* Runs until --duration, a signal, or every box stopped. Returns the exit code. */
int agent_run(agent *a, stb_world *w);
void agent_free(agent *a);
/* Asks the running agent to stop (async-signal-safe). */
void agent_request_stop(void);

#endif
