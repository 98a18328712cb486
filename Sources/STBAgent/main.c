/* stb-agent: the Argus reference set-top-box agent and fleet simulator.
 *
 *   single box: stb-agent --hub ws://HOST:PORT/v1/stb --id ID --secret S [--state-dir DIR] ...
 *   fleet:      stb-agent --fleet N --id-prefix P --secrets-file F --hub URL ...
 *
 * See docs/agent.md. Exit codes: 0 done, 1 internal error, 2 bad flags or unreadable
 * secrets file, 3 credentials revoked or refused (every box stopped), 4 hub path not found. */
#include "stb_agent.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage:\n"
    "  stb-agent --hub ws://HOST:PORT/v1/stb --id ID (--secret S | --secrets-file F)\n"
    "            [--state-dir DIR] [--model M] [--firmware F] [--buffer N] [options]\n"
    "  stb-agent --fleet N --id-prefix P --secrets-file F --hub URL\n"
    "            [--source-ips 127.0.0.2-127.0.0.9] [--ramp R/s] [--seed S] [--clock-speed X]\n"
    "            [--channels FILE] [--duration SEC] [--state-dir DIR] [--buffer N] [options]\n"
    "\n"
    "single box:\n"
    "  --id ID              the box id registered with the hub\n"
    "  --secret S           its secret (or --secrets-file with an \"ID SECRET\" line)\n"
    "  --state-dir DIR      telemetry buffer, boot, executed commands\n"
    "                       (default $XDG_STATE_HOME or ~/.local/state, /stb-agent/ID)\n"
    "  --model M            hardware model in hello (default argus-sim-1)\n"
    "  --firmware F         factory firmware version (default 1.4.2)\n"
    "fleet:\n"
    "  --fleet N            simulate N boxes in this process (one thread)\n"
    "  --id-prefix P        box ids are P000001, P000002, ... (see --first-index)\n"
    "  --first-index K      index of the first box (default 1)\n"
    "  --secrets-file F     lines \"ID SECRET\" (scripts/register-fleet writes it)\n"
    "  --source-ips SPEC    spread client source addresses: A-B, or A,B,C\n"
    "  --ramp R[/s]         connection attempts per second (default 200)\n"
    "  --max-pending N      handshakes in flight at once (default 512)\n"
    "  --event-loop L       libwebsockets loop: ev (epoll via libev, the fleet default), uv, poll\n"
    "                       (the single-box default)\n"
    "both:\n"
    "  --hub URL            ws://HOST:PORT/v1/stb (wss:// too)\n"
    "  --buffer N           unacknowledged messages kept per box (default 10000, fleet 256)\n"
    "  --seed S             reproducible viewing model (with --start)\n"
    "  --start T            simulated start: Unix seconds or YYYY-MM-DDTHH:MM[:SS]Z (default: now,\n"
    "                       or with --clock-speed X > 1 and --duration D, now - D*(X-1): the run ends now)\n"
    "  --clock-speed X      simulated time runs X times faster (default 1)\n"
    "  --force-outage K     channel K of the list (0 = most popular) goes down one simulated minute in\n"
    "  --outage-minutes M   the forced outage lasts M simulated minutes (default: drawn, median 8)\n"
    "  --tastes G           channels fall in G genres (index mod G); each box prefers one genre (default 0: none)\n"
    "  --channels FILE      channel ids, most popular first (default data/channels.txt if present)\n"
    "  --duration SEC       stop after SEC seconds (default: until SIGINT/SIGTERM)\n"
    "  --progress SEC       progress line period (default 5 fleet, 30 single)\n"
    "  --fail-firmware P    fault injection: each box fails a firmware install with probability P\n"
    "                       (0..1, default 0) after download and verification, reporting failed\n"
    "                       \"injected install failure\"; the choice depends only on the box id and\n"
    "                       the command id, so reruns are reproducible\n"
    "  -v, --verbose        more diagnostics (twice: libwebsockets too); -q, --quiet: errors only\n"
    "  -h, --help           this text\n";

static void usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "stb-agent: ");
    fprintf(stderr, fmt, arg ? arg : "");
    fprintf(stderr, "\n\n%s", usage_text);
    exit(2);
}

static void on_signal(int sig)
{
    (void)sig;
    agent_request_stop();
}

/* ------------------------------------------------------------------ secrets */

typedef struct { char *id; char *secret; } secret_entry;
typedef struct { char *text; secret_entry *e; size_t n; } secrets;

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const secret_entry *)a)->id, ((const secret_entry *)b)->id);
}

static int load_secrets(const char *path, secrets *s)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t cap = 1 << 16, len = 0;
    s->text = malloc(cap);
    if (!s->text) { fclose(f); errno = ENOMEM; return -1; }
    size_t r;
    while ((r = fread(s->text + len, 1, cap - len - 1, f)) > 0) {
        len += r;
        if (len + 1 == cap) {
            char *n = realloc(s->text, cap * 2);
            if (!n) { fclose(f); errno = ENOMEM; return -1; }
            s->text = n;
            cap *= 2;
        }
    }
    if (ferror(f)) { int e = errno; fclose(f); errno = e ? e : EIO; return -1; }
    fclose(f);
    s->text[len] = 0;
    size_t ecap = 1024;
    s->e = malloc(ecap * sizeof *s->e);
    s->n = 0;
    char *save = NULL;
    for (char *line = strtok_r(s->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '#' || *p == 0 || *p == '\r') continue;
        char *id = p;
        while (*p && *p != ' ' && *p != '\t') p++;
        if (!*p) continue;
        *p++ = 0;
        while (*p == ' ' || *p == '\t') p++;
        char *secret = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r') p++;
        *p = 0;
        if (!*secret) continue;
        if (s->n == ecap) {
            ecap *= 2;
            secret_entry *ne = realloc(s->e, ecap * sizeof *ne);
            if (!ne) { errno = ENOMEM; return -1; }
            s->e = ne;
        }
        s->e[s->n].id = id;
        s->e[s->n].secret = secret;
        s->n++;
    }
    qsort(s->e, s->n, sizeof *s->e, cmp_entry);
    return 0;
}

static const char *find_secret(const secrets *s, const char *id)
{
    secret_entry key = { (char *)id, NULL };
    secret_entry *e = bsearch(&key, s->e, s->n, sizeof *s->e, cmp_entry);
    return e ? e->secret : NULL;
}

/* ------------------------------------------------------------------ helpers */

static double parse_double(const char *s, const char *flag)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || (*end && strcmp(end, "/s") != 0)) usage_error("%s needs a number", flag);
    return v;
}

static long long parse_int(const char *s, const char *flag, long long lo, long long hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        char msg[160];
        snprintf(msg, sizeof msg, "%%s must be an integer in %lld..%lld", lo, hi);
        usage_error(msg, flag);
    }
    return v;
}

static int64_t parse_start(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end == 0 && end != s) return v > 100000000000LL ? v : v * 1000; /* ms or s */
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *r = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!r) r = strptime(s, "%Y-%m-%dT%H:%M", &tm);
    if (!r || (*r && strcmp(r, "Z") != 0)) usage_error("--start: expected Unix seconds or YYYY-MM-DDTHH:MM[:SS]Z, got %s", s);
    return (int64_t)timegm(&tm) * 1000;
}

static int fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit up = { rl.rlim_max, rl.rlim_max };
        if (setrlimit(RLIMIT_NOFILE, &up) == 0) rl.rlim_cur = rl.rlim_max;
    }
    return rl.rlim_cur > 1000000 ? 1000000 : (int)rl.rlim_cur;
}

/* ------------------------------------------------------------------ main */

enum {
    O_HUB = 1000, O_ID, O_SECRET, O_SECRETS, O_STATE, O_MODEL, O_FIRMWARE, O_FLEET, O_PREFIX, O_FIRST, O_SRC,
    O_RAMP, O_SEED, O_SPEED, O_CHANNELS, O_DURATION, O_BUFFER, O_PROGRESS, O_START, O_PENDING, O_LOOP, O_VERSION, O_OUTAGE,
    O_FAIL_FW, O_OUTAGE_MIN, O_TASTES
};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "hub", required_argument, 0, O_HUB }, { "id", required_argument, 0, O_ID },
        { "secret", required_argument, 0, O_SECRET }, { "secrets-file", required_argument, 0, O_SECRETS },
        { "state-dir", required_argument, 0, O_STATE }, { "model", required_argument, 0, O_MODEL },
        { "firmware", required_argument, 0, O_FIRMWARE }, { "fleet", required_argument, 0, O_FLEET },
        { "id-prefix", required_argument, 0, O_PREFIX }, { "first-index", required_argument, 0, O_FIRST },
        { "source-ips", required_argument, 0, O_SRC }, { "ramp", required_argument, 0, O_RAMP },
        { "seed", required_argument, 0, O_SEED }, { "clock-speed", required_argument, 0, O_SPEED },
        { "force-outage", required_argument, 0, O_OUTAGE }, { "outage-minutes", required_argument, 0, O_OUTAGE_MIN }, { "tastes", required_argument, 0, O_TASTES },
        { "channels", required_argument, 0, O_CHANNELS }, { "duration", required_argument, 0, O_DURATION },
        { "buffer", required_argument, 0, O_BUFFER }, { "progress", required_argument, 0, O_PROGRESS },
        { "start", required_argument, 0, O_START }, { "max-pending", required_argument, 0, O_PENDING },
        { "event-loop", required_argument, 0, O_LOOP }, { "fail-firmware", required_argument, 0, O_FAIL_FW },
        { "verbose", no_argument, 0, 'v' }, { "quiet", no_argument, 0, 'q' }, { "help", no_argument, 0, 'h' },
        { "version", no_argument, 0, O_VERSION }, { 0, 0, 0, 0 },
    };
    const char *hub = NULL, *id = NULL, *secret = NULL, *secrets_file = NULL, *state_dir = NULL, *model = NULL;
    const char *firmware = NULL, *prefix = NULL, *src = NULL, *channels = NULL;
    long long fleet = 0, first = 1, buffer = -1, seed = 0, max_pending = 0;
    double ramp = 200, speed = 1, duration = 0, progress_s = 0, fail_firmware = 0;
    int force_outage = -1;
    long outage_minutes = 0;
    long tastes = 0;
    bool seeded = false;
    int64_t start = -1;
    int verbosity = 1, opt, event_loop = -1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "vqh", longopts, NULL)) != -1) {
        switch (opt) {
        case O_HUB: hub = optarg; break;
        case O_ID: id = optarg; break;
        case O_SECRET: secret = optarg; break;
        case O_SECRETS: secrets_file = optarg; break;
        case O_STATE: state_dir = optarg; break;
        case O_MODEL: model = optarg; break;
        case O_FIRMWARE: firmware = optarg; break;
        case O_FLEET: fleet = parse_int(optarg, "--fleet", 1, 1000000); break;
        case O_PREFIX: prefix = optarg; break;
        case O_FIRST: first = parse_int(optarg, "--first-index", 0, 99999999); break;
        case O_SRC: src = optarg; break;
        case O_RAMP: ramp = parse_double(optarg, "--ramp"); break;
        case O_SEED: seed = parse_int(optarg, "--seed", 0, INT64_MAX); seeded = true; break;
        case O_SPEED: speed = parse_double(optarg, "--clock-speed"); break;
        case O_OUTAGE: force_outage = (int)parse_int(optarg, "--force-outage", 0, 65535); break;
        case O_OUTAGE_MIN: outage_minutes = parse_int(optarg, "--outage-minutes", 1, 10080); break;
        case O_TASTES: tastes = parse_int(optarg, "--tastes", 0, 255); break;
        case O_CHANNELS: channels = optarg; break;
        case O_DURATION: duration = parse_double(optarg, "--duration"); break;
        case O_BUFFER: buffer = parse_int(optarg, "--buffer", 1, 10000000); break;
        case O_PROGRESS: progress_s = parse_double(optarg, "--progress"); break;
        case O_START: start = parse_start(optarg); break;
        case O_PENDING: max_pending = parse_int(optarg, "--max-pending", 1, 60000); break;
        case O_FAIL_FW: fail_firmware = parse_double(optarg, "--fail-firmware"); break;
        case O_LOOP:
            if (strcmp(optarg, "ev") == 0) event_loop = AGENT_LOOP_EV;
            else if (strcmp(optarg, "uv") == 0) event_loop = AGENT_LOOP_UV;
            else if (strcmp(optarg, "poll") == 0) event_loop = AGENT_LOOP_POLL;
            else usage_error("--event-loop must be ev, uv or poll, not %s", optarg);
            break;
        case 'v': verbosity++; break;
        case 'q': verbosity = 0; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case O_VERSION: printf("stb-agent %s (protocol %d)\n", STB_CORE_VERSION, STB_PROTOCOL_VERSION); return 0;
        default: usage_error("unknown or incomplete option %s", argv[optind - 1]);
        }
    }
    if (optind < argc) usage_error("unexpected argument %s", argv[optind]);
    if (!hub) usage_error("--hub is required%s", NULL);
    if (ramp <= 0 || ramp > 100000) usage_error("--ramp must be in (0, 100000]%s", NULL);
    if (speed <= 0 || speed > 1e6) usage_error("--clock-speed must be in (0, 1000000]%s", NULL);
    if (duration < 0) usage_error("--duration must be >= 0%s", NULL);
    if (!(fail_firmware >= 0 && fail_firmware <= 1)) usage_error("--fail-firmware must be a probability in [0, 1]%s", NULL);
    if (fleet && id) usage_error("--fleet and --id are exclusive (a fleet names boxes with --id-prefix)%s", NULL);
    if (!fleet && !id) usage_error("give --id (one box) or --fleet N (many)%s", NULL);
    if (fleet && (!prefix || !*prefix)) usage_error("--fleet needs --id-prefix%s", NULL);
    if (fleet && !secrets_file) usage_error("--fleet needs --secrets-file%s", NULL);
    if (!fleet && !secret && !secrets_file) usage_error("--id needs --secret or --secrets-file%s", NULL);
    if (!fleet && src) usage_error("--source-ips is for --fleet%s", NULL);
    if (id && !stb_valid_ident(id)) usage_error("--id must be 1 to 64 printable bytes%s", NULL);
    if (model && !stb_valid_ident(model)) usage_error("--model must be 1 to 64 printable bytes%s", NULL);
    if (firmware && !stb_valid_ident(firmware)) usage_error("--firmware must be 1 to 64 printable bytes%s", NULL);
    if (prefix && strlen(prefix) > 50) usage_error("--id-prefix is too long%s", NULL);

    agent_config ac;
    memset(&ac, 0, sizeof ac);
    char err[256];
    if (agent_parse_url(hub, &ac, err, sizeof err) != 0) usage_error("%s", err);
    if (src && agent_parse_source_ips(src, &ac, err, sizeof err) != 0) usage_error("%s", err);
    ac.ramp = ramp;
    ac.max_pending = (int)(max_pending ? max_pending : 512);
    ac.fleet = fleet > 0;
    ac.verbosity = verbosity;
    ac.event_loop = event_loop >= 0 ? event_loop : (fleet ? AGENT_LOOP_AUTO : AGENT_LOOP_POLL);
    ac.duration_ms = (int64_t)(duration * 1000);
    ac.progress_ms = (int64_t)((progress_s > 0 ? progress_s : (fleet ? 5 : 30)) * 1000);

    /* Descriptors: one per box plus headroom for lws, stdio and downloads. */
    int limit = fd_limit();
    ac.fd_budget = limit;
    if (fleet) {
        long long need = fleet + 64;
        if (need > limit) {
            fprintf(stderr,
                    "stb-agent: --fleet %lld needs about %lld file descriptors, but this process may open only %d "
                    "(RLIMIT_NOFILE, which cannot be raised here).\n"
                    "Run at most %d boxes per process, and start more processes with --first-index for the rest.\n",
                    fleet, need, limit, limit - 64 > 0 ? limit - 64 : 0);
            return 2;
        }
    }

    secrets sec;
    memset(&sec, 0, sizeof sec);
    if (secrets_file && load_secrets(secrets_file, &sec) != 0) {
        fprintf(stderr, "stb-agent: cannot read the secrets file %s: %s\n", secrets_file, strerror(errno));
        return 2;
    }

    stb_config cfg;
    stb_config_defaults(&cfg);
    if (model) cfg.model = model;
    if (firmware) cfg.firmware = firmware;
    cfg.clock_speed = speed;
    cfg.force_outage = force_outage;
    cfg.outage_minutes = (uint32_t)outage_minutes;
    cfg.tastes = (uint32_t)tastes;
    cfg.fail_firmware = fail_firmware;
    cfg.seeded = seeded;
    cfg.seed = (uint64_t)seed;
    if (fleet) {
        cfg.ring_cap = buffer > 0 ? (uint32_t)buffer : 256;
        cfg.log_cap = 32;
        cfg.direct_cap = 64;
        cfg.persist = state_dir != NULL;
        cfg.fsync = false;
        cfg.flush_interval_ms = 15000;
    } else {
        if (buffer > 0) cfg.ring_cap = (uint32_t)buffer;
    }

    agent *a = agent_new(&ac);
    if (!a) { fprintf(stderr, "stb-agent: out of memory\n"); return 1; }
    stb_world *w = stb_world_new(&cfg, agent_ops(), agent_ops_ctx(a));
    if (!w) { fprintf(stderr, "stb-agent: out of memory\n"); return 1; }
    if (start >= 0) {
        w->sim_start_ms = start;
    } else if (speed > 1 && duration > 0) {
        /* A fast clock with a known run time replays a history that ends now, so the data
         * lands in the hub's recent past rather than in the future. */
        w->sim_start_ms = w->real_start_ms - (int64_t)(duration * 1000 * (speed - 1));
    }

    const char *chfile = channels;
    if (!chfile && access("data/channels.txt", R_OK) == 0) chfile = "data/channels.txt";
    if (chfile) {
        if (stb_world_load_channels(w, chfile) < 0) {
            fprintf(stderr, "stb-agent: cannot read channels from %s: %s\n", chfile, strerror(errno));
            return 2;
        }
    } else {
        stb_world_default_channels(w);
    }

    char path[4096];
    if (!fleet) {
        if (!secret) {
            secret = find_secret(&sec, id);
            if (!secret) {
                fprintf(stderr, "stb-agent: no secret for %s in %s\n", id, secrets_file);
                return 2;
            }
        }
        if (!state_dir) {
            const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
            if (xdg && *xdg) snprintf(path, sizeof path, "%s/stb-agent/%s", xdg, id);
            else if (home && *home) snprintf(path, sizeof path, "%s/.local/state/stb-agent/%s", home, id);
            else snprintf(path, sizeof path, "/tmp/stb-agent/%s", id);
        } else {
            snprintf(path, sizeof path, "%s", state_dir);
        }
        stb_box *b = stb_box_new(w, 0, id, secret, path);
        if (!b || stb_box_start(b) != 0) {
            fprintf(stderr, "stb-agent: cannot use the state dir %s: %s\n", path, strerror(errno));
            return 1;
        }
        char boot[17];
        stb_box_boot_id_hex(b, boot);
        fprintf(stderr, "stb-agent %s: box %s, model %s, firmware %s, boot %s, state %s, hub %s\n", STB_CORE_VERSION, id,
                b->model, b->firmware, boot, path, hub);
    } else {
        unsigned missing = 0;
        const char *first_missing = NULL;
        static char missing_id[80];
        for (long long k = 0; k < fleet; k++) {
            char bid[80];
            snprintf(bid, sizeof bid, "%s%06lld", prefix, first + k);
            const char *s = find_secret(&sec, bid);
            if (!s) {
                if (!missing++) { snprintf(missing_id, sizeof missing_id, "%s", bid); first_missing = missing_id; }
                continue;
            }
            const char *dir = NULL;
            if (state_dir) {
                snprintf(path, sizeof path, "%s/%s", state_dir, bid);
                dir = path;
            }
            stb_box *b = stb_box_new(w, (uint32_t)k, bid, s, dir);
            if (!b || stb_box_start(b) != 0) {
                fprintf(stderr, "stb-agent: cannot start box %s%s%s: %s\n", bid, dir ? " in " : "", dir ? dir : "", strerror(errno));
                return 1;
            }
        }
        if (missing) {
            fprintf(stderr, "stb-agent: %u of %lld boxes have no secret in %s (first: %s); register them with "
                            "scripts/register-fleet\n", missing, fleet, secrets_file, first_missing);
            return 2;
        }
        fprintf(stderr, "stb-agent %s: fleet of %lld boxes %s%06lld..%s%06lld, %u channels, hub %s, ramp %.0f/s%s%s, clock x%g\n",
                STB_CORE_VERSION, fleet, prefix, first, prefix, first + fleet - 1, w->nch, hub, ramp,
                ac.n_src ? ", source IPs " : "", ac.n_src ? src : "", speed);
    }

    if (fail_firmware > 0)
        fprintf(stderr, "stb-agent: fault injection: firmware installs fail with probability %g\n", fail_firmware);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = agent_run(a, w);
    stb_world_free(w);
    agent_free(a);
    free(sec.e);
    free(sec.text);
    return rc;
}
