/* Command-line values into agent_config: the hub URL (--hub) and the source addresses
 * (--source-ips). */
#include "stb_agent.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ parsing */

int agent_parse_url(const char *url, agent_config *c, char *err, size_t errlen)
{
    const char *p;
    if (strncmp(url, "ws://", 5) == 0) { c->tls = false; p = url + 5; c->port = 80; }
    else if (strncmp(url, "wss://", 6) == 0) { c->tls = true; p = url + 6; c->port = 443; }
    else { snprintf(err, errlen, "--hub must start with ws:// or wss://"); return -1; }
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    char hostport[256];
    if (hl == 0 || hl >= sizeof hostport) { snprintf(err, errlen, "--hub has no host"); return -1; }
    memcpy(hostport, p, hl);
    hostport[hl] = 0;
    char *colon = strrchr(hostport, ':');
    if (hostport[0] == '[') { /* [v6]:port */
        char *close = strchr(hostport, ']');
        if (!close) { snprintf(err, errlen, "--hub: bad IPv6 literal"); return -1; }
        colon = strchr(close, ':');
        *close = 0;
        memmove(hostport, hostport + 1, strlen(hostport));
    }
    if (colon) {
        *colon = 0;
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port < 1 || port > 65535) { snprintf(err, errlen, "--hub: bad port"); return -1; }
        c->port = (int)port;
    }
    snprintf(c->host, sizeof c->host, "%s", hostport);
    snprintf(c->path, sizeof c->path, "%s", slash && slash[1] ? slash : "/v1/stb");
    return 0;
}

int agent_parse_source_ips(const char *spec, agent_config *c, char *err, size_t errlen)
{
    c->n_src = 0;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    char *dash = strchr(buf, '-');
    if (dash) {
        *dash = 0;
        struct in_addr a, b;
        if (inet_pton(AF_INET, buf, &a) != 1 || inet_pton(AF_INET, dash + 1, &b) != 1) {
            snprintf(err, errlen, "--source-ips: expected A-B with IPv4 addresses");
            return -1;
        }
        uint32_t lo = ntohl(a.s_addr), hi = ntohl(b.s_addr);
        if (hi < lo || hi - lo >= AGENT_MAX_SOURCE_IPS) {
            snprintf(err, errlen, "--source-ips: the range must be ascending and at most %d addresses", AGENT_MAX_SOURCE_IPS);
            return -1;
        }
        for (uint32_t v = lo; v <= hi; v++) {
            struct in_addr x = { htonl(v) };
            inet_ntop(AF_INET, &x, c->src_ips[c->n_src++], 48);
        }
        return 0;
    }
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        unsigned char tmp[16];
        if (inet_pton(AF_INET, tok, tmp) != 1 && inet_pton(AF_INET6, tok, tmp) != 1) {
            snprintf(err, errlen, "--source-ips: %s is not an IP address", tok);
            return -1;
        }
        if (c->n_src >= AGENT_MAX_SOURCE_IPS) { snprintf(err, errlen, "--source-ips: too many"); return -1; }
        snprintf(c->src_ips[c->n_src++], 48, "%s", tok);
    }
    return 0;
}
