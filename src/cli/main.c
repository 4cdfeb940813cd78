/* silo: command line front end.  Image and store verbs call libsilo
 * directly; container verbs talk to silod (engine*.c).  The image verbs
 * that exist both ways (images, pull, push, load, save, tag, rmi, inspect)
 * use the local store with --local, --root or $SILO_ROOT, and silod
 * otherwise when -H/--host or $SILO_HOST names it or its socket exists. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "engine.h"
#include "image/unpack.h"
#include "silo-config.h"

extern const cli_command cli_network_commands[];  /* network.c */
extern const cli_command cli_compute_commands[];  /* compute.c */

/* The daemon's image verbs come first so that they shadow the local ones
 * when silod is in use (find_command keeps the first of equal matches). */
static const cli_command *const tables[] = {
        cli_engine_image_commands,
        cli_engine_commands,
        cli_image_commands,
        cli_compute_commands,
        cli_network_commands,
        cli_registry_commands,
        cli_rootfs_commands,
};

int cli_fail(const silo_error *err)
{
        fprintf(stderr, "silo: %s\n", err && err->message[0] ? err->message : "unknown error");
        return 1;
}

int cli_failf(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fputs("silo: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        return 1;
}

int cli_output_open(cli_output *o, const char *path, const char *verb, const char *what)
{
        *o = (cli_output) { .fd = STDOUT_FILENO, .path = path };
        if (path && strcmp(path, "-") != 0) {
                if (asprintf(&o->tmp, "%s.silo-tmp-%d", path, (int) getpid()) < 0) {
                        o->tmp = NULL;
                        return cli_failf("out of memory");
                }
                o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (o->fd < 0) {
                        int r = cli_failf("create %s: %s", o->tmp, strerror(errno));
                        free(o->tmp);
                        o->tmp = NULL;
                        return r;
                }
        } else if (isatty(STDOUT_FILENO)) {
                return cli_failf("%s: refusing to write %s to a terminal (use -o FILE)", verb, what);
        }
        return 0;
}

int cli_output_finish(cli_output *o, int r, silo_error *err)
{
        if (!o->tmp)
                return r;
        if (r == 0 && fsync(o->fd) < 0)
                r = silo_error_set(err, errno, "fsync %s", o->tmp);
        close(o->fd);
        if (r == 0 && rename(o->tmp, o->path) < 0)
                r = silo_error_set(err, errno, "rename %s", o->path);
        if (r < 0)
                unlink(o->tmp);
        free(o->tmp);
        o->tmp = NULL;
        return r;
}

/* Set once in main(): the tables in effect, first match wins (the daemon's
 * image verbs and the remote compute verbs only when they apply). */
static const cli_command *active[16];
static size_t n_active;

static void set_active(bool daemon, bool compute_remote)
{
        n_active = 0;
        if (compute_remote)
                active[n_active++] = cli_engine_compute_commands;
        for (size_t t = daemon ? 0 : 1; t < sizeof(tables) / sizeof(tables[0]); t++)
                active[n_active++] = tables[t];
}

int cli_usage(const char *command)
{
        for (size_t t = 0; t < n_active; t++)
                for (const cli_command *c = active[t]; c->name; c++)
                        if (!strcmp(c->name, command)) {
                                fprintf(stderr, "usage: silo %s %s\n", c->name, c->usage);
                                return CLI_EXIT_USAGE;
                        }
        fprintf(stderr, "usage: silo %s\n", command);
        return CLI_EXIT_USAGE;
}

int cli_store(cli_ctx *ctx, silo_store **ret)
{
        if (!ctx->store) {
                silo_error err = SILO_ERROR_INIT;
                if (silo_store_open(ctx->root, &ctx->store, &err) < 0) {
                        cli_fail(&err);
                        return -err.code;
                }
        }
        *ret = ctx->store;
        return 0;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
        const char *v = getenv(name);
        if (!v || !*v)
                return def;
        char *end;
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || *end || end == v) {
                fprintf(stderr, "silo: ignoring invalid %s=%s\n", name, v);
                return def;
        }
        return x;
}

void cli_register_options(cli_ctx *ctx, silo_register_options *o)
{
        (void) ctx;
        silo_register_options_init(o);
        silo_unpack_options *u = &o->unpack;
        u->limits.max_bytes = env_u64("SILO_UNPACK_MAX_BYTES", u->limits.max_bytes);
        u->limits.max_ratio = (uint32_t) env_u64("SILO_UNPACK_MAX_RATIO", u->limits.max_ratio);
        u->limits.ratio_floor = env_u64("SILO_UNPACK_RATIO_FLOOR", u->limits.ratio_floor);
        u->max_entries = env_u64("SILO_UNPACK_MAX_ENTRIES", u->max_entries);
        u->max_depth = (unsigned) env_u64("SILO_UNPACK_MAX_DEPTH", u->max_depth);
        o->jobs = (unsigned) env_u64("SILO_JOBS", o->jobs);
}

const char *cli_format_size(char buf[32], uint64_t bytes)
{
        static const char *const units[] = { "B", "kB", "MB", "GB", "TB" };
        double v = (double) bytes;
        size_t u = 0;
        while (v >= 1000 && u + 1 < sizeof(units) / sizeof(units[0])) {
                v /= 1000;
                u++;
        }
        if (u == 0)
                snprintf(buf, 32, "%lluB", (unsigned long long) bytes);
        else
                snprintf(buf, 32, "%.3g%s", v, units[u]);
        return buf;
}

const char *cli_format_ago(char buf[64], const char *rfc3339)
{
        struct tm tm = {};
        if (!rfc3339 || !strptime(rfc3339, "%Y-%m-%dT%H:%M:%S", &tm)) {
                snprintf(buf, 64, "N/A");
                return buf;
        }
        time_t then = timegm(&tm);
        long long d = (long long) (time(NULL) - then);
        if (d < 0)
                d = 0;
        if (d < 60)
                snprintf(buf, 64, "%lld seconds ago", d);
        else if (d < 3600)
                snprintf(buf, 64, "%lld minutes ago", d / 60);
        else if (d < 86400 * 2)
                snprintf(buf, 64, "%lld hours ago", d / 3600);
        else if (d < 86400 * 60)
                snprintf(buf, 64, "%lld days ago", d / 86400);
        else if (d < 86400 * 730)
                snprintf(buf, 64, "%lld months ago", d / (86400 * 30));
        else
                snprintf(buf, 64, "%lld years ago", d / (86400 * 365));
        return buf;
}

static void help(FILE *f)
{
        fprintf(f, "usage: silo [--root DIR] [--local] [-H HOST] [--quiet] COMMAND [ARGS...]\n\n"
                   "Global options:\n"
                   "  --root DIR    store location (default $SILO_ROOT or " SILO_DEFAULT_ROOT ")\n"
                   "  --local       image verbs work on the store directly, never through silod\n"
                   "  -H, --host    silod's socket, unix:///PATH (default $SILO_HOST, $DOCKER_HOST or\n"
                   "                " ENGINE_DEFAULT_HOST ")\n"
                   "  --quiet       print results only, no progress\n\n"
                   "images, pull, push, load, save, tag, rmi and inspect use the store directly with\n"
                   "--local, --root or $SILO_ROOT; otherwise silod when -H or $SILO_HOST is given or\n"
                   "its socket exists.  Verbs marked (silod) always talk to silod; inspect shows\n"
                   "containers or images.  `compute --host HOST ...` (or -H before compute) runs the\n"
                   "compute verbs through silod's /compute API.\n\n"
                   "Commands:\n");
        /* The daemon's image verbs are listed once, by their local twins. */
        for (size_t t = 1; t < sizeof(tables) / sizeof(tables[0]); t++)
                for (const cli_command *c = tables[t]; c->name; c++)
                        if (c->summary)
                                fprintf(f, "  %-16s %s\n", c->name, c->summary);
}

/* The longest command name matching the leading words of argv. */
static const cli_command *find_command(int argc, char **argv, int *ret_words)
{
        const cli_command *best = NULL;
        int best_words = 0;
        for (size_t t = 0; t < n_active; t++)
                for (const cli_command *c = active[t]; c->name; c++) {
                        char buf[64];
                        snprintf(buf, sizeof(buf), "%s", c->name);
                        int words = 0;
                        bool match = true;
                        for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
                                if (words >= argc || strcmp(argv[words], w) != 0) {
                                        match = false;
                                        break;
                                }
                                words++;
                        }
                        if (match && words > best_words) {
                                best = c;
                                best_words = words;
                        }
                }
        *ret_words = best_words;
        return best;
}

static bool in_table(const cli_command *table, const cli_command *c)
{
        for (const cli_command *x = table; x->name; x++)
                if (x == c)
                        return true;
        return false;
}

/* Whether the image verbs go to silod (see the comment at the top). */
static bool use_daemon(const cli_ctx *ctx)
{
        const char *env_root = getenv("SILO_ROOT");
        if (ctx->local || ctx->root || (env_root && *env_root))
                return false;
        const char *silo_host = getenv("SILO_HOST");
        if ((ctx->host && *ctx->host) || (silo_host && *silo_host))
                return true;
        char *path = NULL;
        bool explicit_host;
        if (engine_resolve_host(ctx, &path, &explicit_host, NULL) < 0)
                return explicit_host;   /* a bad $DOCKER_HOST is reported by the verb */
        bool exists = access(path, F_OK) == 0;
        free(path);
        return exists;
}

int main(int argc, char **argv)
{
        cli_ctx ctx = {};
        int i = 1;
        for (; i < argc && argv[i][0] == '-'; i++) {
                if (!strcmp(argv[i], "--root") && i + 1 < argc)
                        ctx.root = argv[++i];
                else if (!strncmp(argv[i], "--root=", 7))
                        ctx.root = argv[i] + 7;
                else if ((!strcmp(argv[i], "--host") || !strcmp(argv[i], "-H")) && i + 1 < argc)
                        ctx.host = argv[++i];
                else if (!strncmp(argv[i], "--host=", 7))
                        ctx.host = argv[i] + 7;
                else if (!strcmp(argv[i], "--local"))
                        ctx.local = true;
                else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q"))
                        ctx.quiet = true;
                else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
                        help(stdout);
                        return 0;
                } else if (!strcmp(argv[i], "--version")) {
                        printf("silo %s\n", SILO_VERSION);
                        return 0;
                } else {
                        fprintf(stderr, "silo: unknown option '%s'\n", argv[i]);
                        help(stderr);
                        return CLI_EXIT_USAGE;
                }
        }
        if (i >= argc) {
                help(stderr);
                return CLI_EXIT_USAGE;
        }

        int words;
        /* `silo compute --host HOST ...` (or -H before it): compute through silod. */
        if (!strcmp(argv[i], "compute") && i + 1 < argc) {
                int shift = 0;
                if ((!strcmp(argv[i + 1], "--host") || !strcmp(argv[i + 1], "-H")) && i + 2 < argc) {
                        ctx.host = argv[i + 2];
                        shift = 2;
                } else if (!strncmp(argv[i + 1], "--host=", 7)) {
                        ctx.host = argv[i + 1] + 7;
                        shift = 1;
                }
                if (shift) {
                        argv[i + shift] = argv[i];
                        i += shift;
                }
        }
        set_active(use_daemon(&ctx), ctx.host && *ctx.host);
        const cli_command *c = find_command(argc - i, argv + i, &words);
        if (!c) {
                fprintf(stderr, "silo: unknown command '%s'\n", argv[i]);
                help(stderr);
                return CLI_EXIT_USAGE;
        }
        /* The verb sees argv[0] = its own name, like a separate program. */
        int vargc = argc - i - words + 1;
        char **vargv = argv + i + words - 1;
        /* `silo VERB --help` anywhere before a "--": the verb's usage, on stdout.
         * Daemon verbs parse their own (`run IMAGE ls -h` belongs to ls). */
        bool own_help = in_table(cli_engine_commands, c) || in_table(cli_engine_image_commands, c) ||
                        in_table(cli_engine_compute_commands, c);
        for (int k = 1; !own_help && k < vargc && strcmp(vargv[k], "--"); k++)
                if (!strcmp(vargv[k], "--help") || !strcmp(vargv[k], "-h")) {
                        printf("usage: silo %s %s\n       %s\n", c->name, c->usage, c->summary);
                        return 0;
                }
        vargv[0] = (char *) c->name;
        int r = c->run(&ctx, vargc, vargv);
        silo_store_free(ctx.store);
        return r;
}
