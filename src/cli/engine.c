/* silo ps, inspect, start, stop, restart, kill, rm, pause, unpause, wait,
 * logs, top, stats, events: container verbs against silod.  run, create,
 * exec and attach are in engine-run.c, the image verbs in engine-image.c. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "util/cleanup.h"

char *engine_escape(const char *s)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t len = strlen(s);
        char *out = malloc(len * 3 + 1), *o = out;
        if (!out)
                return NULL;
        for (; *s; s++) {
                unsigned char c = (unsigned char) *s;
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-_.~", c))
                        *o++ = (char) c;
                else {
                        *o++ = '%';
                        *o++ = hex[c >> 4];
                        *o++ = hex[c & 15];
                }
        }
        *o = 0;
        return out;
}

const char *engine_human_duration(char buf[64], long long s)
{
        if (s < 1)
                snprintf(buf, 64, "Less than a second");
        else if (s == 1)
                snprintf(buf, 64, "1 second");
        else if (s < 60)
                snprintf(buf, 64, "%lld seconds", s);
        else if (s < 120)
                snprintf(buf, 64, "About a minute");
        else if (s < 3600)
                snprintf(buf, 64, "%lld minutes", s / 60);
        else if (s < 7200)
                snprintf(buf, 64, "About an hour");
        else if (s < 48 * 3600)
                snprintf(buf, 64, "%lld hours", s / 3600);
        else if (s < 14 * 86400)
                snprintf(buf, 64, "%lld days", s / 86400);
        else if (s < 60 * 86400)
                snprintf(buf, 64, "%lld weeks", s / (7 * 86400));
        else if (s < 730 * 86400)
                snprintf(buf, 64, "%lld months", s / (30 * 86400));
        else
                snprintf(buf, 64, "%lld years", s / (365 * 86400));
        return buf;
}

static const cli_command *find_verb(const char *verb)
{
        static const cli_command *const tables[] = { cli_engine_commands, cli_engine_image_commands,
                                                     cli_engine_compute_commands };
        for (size_t t = 0; t < 3; t++)
                for (const cli_command *c = tables[t]; c->name; c++)
                        if (!strcmp(c->name, verb))
                                return c;
        return NULL;
}

int engine_help(const char *verb)
{
        const cli_command *c = find_verb(verb);
        if (c)
                printf("usage: silo %s %s\n       %s\n", c->name, c->usage, c->summary ? c->summary : "");
        return 0;
}

/* Options shared by the simple verbs; `spec` lists which apply. */
struct opts {
        bool all, quiet, no_trunc, force, follow, timestamps, no_stream, latest, size;
        const char *format, *signal, *time, *tail, *since, *until, *type;
        json_t *filters;                /* {"key": ["value", ...]} */
        int last;
};

static int parse_opts(int argc, char **argv, const char *spec, struct opts *o)
{
        static const struct option lo[] = {
                { "all", no_argument, NULL, 'a' }, { "quiet", no_argument, NULL, 'q' },
                { "no-trunc", no_argument, NULL, 'N' }, { "force", no_argument, NULL, 'f' },
                { "follow", no_argument, NULL, 'F' }, { "timestamps", no_argument, NULL, 'T' },
                { "no-stream", no_argument, NULL, 'S' }, { "latest", no_argument, NULL, 'l' },
                { "format", required_argument, NULL, 'o' }, { "signal", required_argument, NULL, 's' },
                { "time", required_argument, NULL, 't' }, { "tail", required_argument, NULL, 'n' },
                { "since", required_argument, NULL, 'B' }, { "until", required_argument, NULL, 'U' },
                { "filter", required_argument, NULL, 'L' }, { "last", required_argument, NULL, 'Z' },
                { "type", required_argument, NULL, 'Y' }, { "size", no_argument, NULL, 'z' },
                { "help", no_argument, NULL, 'h' }, {},
        };
        char shorts[32] = "+h";
        /* Short letters per verb: ps -a -q -f FILTER -n N, rm -f, stop -t ... */
        snprintf(shorts, sizeof(shorts), "+h%s", spec);
        optind = 1;
        opterr = 1;
        int c;
        while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
                switch (c) {
                case 'h': engine_help(argv[0]); return -2;
                case 'a': o->all = true; break;
                case 'q': o->quiet = true; break;
                case 'N': o->no_trunc = true; break;
                case 'F': o->follow = true; break;
                case 'T': o->timestamps = true; break;
                case 'S': o->no_stream = true; break;
                case 'l': o->latest = true; break;
                case 'z': o->size = true; break;
                case 'o': o->format = optarg; break;
                case 's': o->signal = optarg; break;
                case 't':
                        if (strstr(spec, "t:"))
                                o->time = optarg;
                        else
                                o->timestamps = true;
                        break;
                case 'n': o->tail = optarg; break;
                case 'B': o->since = optarg; break;
                case 'U': o->until = optarg; break;
                case 'Y': o->type = optarg; break;
                case 'Z': o->last = atoi(optarg); break;
                case 'f':
                        /* -f: --force (rm), --follow (logs), --format (inspect), --filter (ps, events). */
                        if (!strstr(spec, "f:")) {
                                if (!strcmp(argv[0], "logs"))
                                        o->follow = true;
                                else
                                        o->force = true;
                                break;
                        }
                        if (strstr(argv[0], "inspect")) {
                                o->format = optarg;
                                break;
                        }
                        goto filter;
                case 'L':
                filter: {
                        const char *eq = strchr(optarg, '=');
                        if (!eq || eq == optarg) {
                                cli_failf("--filter: expected KEY=VALUE, got '%s'", optarg);
                                return -1;
                        }
                        if (!o->filters)
                                o->filters = json_object();
                        _cleanup_free_ char *key = strndup(optarg, (size_t) (eq - optarg));
                        json_t *list = json_object_get(o->filters, key);
                        if (!list) {
                                list = json_array();
                                json_object_set_new(o->filters, key, list);
                        }
                        json_array_append_new(list, json_string(eq + 1));
                        break;
                }
                default:
                        cli_usage(argv[0]);
                        return -1;
                }
        }
        return optind;
}

#define PARSE(spec, need_args)                                                         \
        struct opts o = {};                                                            \
        int first = parse_opts(argc, argv, spec, &o);                                  \
        if (first == -2)                                                               \
                return 0;                                                              \
        if (first < 0) {                                                               \
                json_decref(o.filters);                                                \
                return CLI_EXIT_USAGE;                                                 \
        }                                                                              \
        if ((need_args) && first >= argc) {                                            \
                json_decref(o.filters);                                                \
                return cli_usage(argv[0]);                                             \
        }                                                                              \
        engine e;                                                                      \
        if (engine_open(ctx, &e)) {                                                    \
                json_decref(o.filters);                                                \
                return 1;                                                              \
        }

/* The result is computed before the engine goes away. */
#define DONE(ret)                                                                      \
        do {                                                                           \
                int done_ret_ = (ret);                                                 \
                json_decref(o.filters);                                                \
                engine_close(&e);                                                      \
                return done_ret_;                                                      \
        } while (0)

/* POST /containers/{ref}/{action}{query} for each argument; prints each. */
static int each_container(engine *e, int argc, char **argv, int first, const char *method, const char *action,
                          const char *query)
{
        int ret = 0;
        for (int i = first; i < argc; i++) {
                _cleanup_free_ char *ref = engine_escape(argv[i]), *path = NULL;
                if (!ref || asprintf(&path, "/containers/%s%s%s", ref, action, query ? query : "") < 0)
                        return cli_failf("out of memory");
                silo_error err = SILO_ERROR_INIT;
                engine_req rq = { .method = method, .path = path, .upload_fd = -1 };
                if (engine_call(e, &rq, NULL, NULL, &err) < 0)
                        ret = cli_fail(&err);
                else
                        printf("%s\n", argv[i]);
        }
        return ret;
}

static int cmd_start(cli_ctx *ctx, int argc, char **argv)
{
        PARSE("", true);
        DONE(each_container(&e, argc, argv, first, "POST", "/start", NULL));
}

static int cmd_stop(cli_ctx *ctx, int argc, char **argv)
{
        PARSE("t:s:", true);
        char q[128] = "";
        if (o.time || o.signal)
                snprintf(q, sizeof(q), "?%s%s%s%s%s", o.time ? "t=" : "", o.time ? o.time : "",
                         o.time && o.signal ? "&" : "", o.signal ? "signal=" : "", o.signal ? o.signal : "");
        DONE(each_container(&e, argc, argv, first, "POST", !strcmp(argv[0], "restart") ? "/restart" : "/stop", q));
}

static int cmd_kill(cli_ctx *ctx, int argc, char **argv)
{
        PARSE("s:", true);
        _cleanup_free_ char *sig = o.signal ? engine_escape(o.signal) : NULL, *q = NULL;
        if (sig && asprintf(&q, "?signal=%s", sig) < 0)
                q = NULL;
        DONE(each_container(&e, argc, argv, first, "POST", "/kill", q));
}

static int cmd_pause(cli_ctx *ctx, int argc, char **argv)
{
        PARSE("", true);
        DONE(each_container(&e, argc, argv, first, "POST", !strcmp(argv[0], "pause") ? "/pause" : "/unpause", NULL));
}

static int cmd_rm(cli_ctx *ctx, int argc, char **argv)
{
        PARSE("f", true);
        DONE(each_container(&e, argc, argv, first, "DELETE", "", o.force ? "?force=1" : NULL));
}

static int cmd_wait(cli_ctx *ctx, int argc, char **argv)
{
        PARSE("", true);
        int ret = 0;
        for (int i = first; i < argc; i++) {
                _cleanup_free_ char *ref = engine_escape(argv[i]), *path = NULL;
                if (!ref || asprintf(&path, "/containers/%s/wait", ref) < 0)
                        DONE(cli_failf("out of memory"));
                silo_error err = SILO_ERROR_INIT;
                _cleanup_json_ json_t *ans = NULL;
                if (engine_json(&e, "POST", path, NULL, &ans, &err) < 0)
                        ret = cli_fail(&err);
                else
                        printf("%lld\n", (long long) json_integer_value(json_object_get(ans, "StatusCode")));
        }
        DONE(ret);
}

/* ---- ps ---- */

static json_t *ps_row(json_t *c, bool no_trunc)
{
        const char *id = json_string_value(json_object_get(c, "Id"));
        const char *cmd = json_string_value(json_object_get(c, "Command"));
        char idbuf[80], cmdbuf[128], ago[64], created[64] = "";
        snprintf(idbuf, sizeof(idbuf), "%.*s", no_trunc ? 64 : 12, id ? id : "");
        if (cmd && !no_trunc && strlen(cmd) > 20)
                snprintf(cmdbuf, sizeof(cmdbuf), "\"%.19s…\"", cmd);
        else
                snprintf(cmdbuf, sizeof(cmdbuf), "\"%.120s\"", cmd ? cmd : "");
        time_t t = (time_t) json_integer_value(json_object_get(c, "Created"));
        struct tm tm;
        if (gmtime_r(&t, &tm))
                strftime(created, sizeof(created), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
        engine_human_duration(ago, (long long) (time(NULL) - t));
        strncat(ago, " ago", sizeof(ago) - strlen(ago) - 1);
        /* Names without the leading slash, comma-separated. */
        char names[512] = "";
        size_t i;
        json_t *n;
        json_array_foreach(json_object_get(c, "Names"), i, n) {
                const char *s = json_string_value(n);
                if (!s)
                        continue;
                if (names[0])
                        strncat(names, ",", sizeof(names) - strlen(names) - 1);
                strncat(names, s[0] == '/' ? s + 1 : s, sizeof(names) - strlen(names) - 1);
        }
        char labels[1024] = "";
        const char *k;
        json_object_foreach(json_object_get(c, "Labels"), k, n) {
                if (labels[0])
                        strncat(labels, ",", sizeof(labels) - strlen(labels) - 1);
                snprintf(labels + strlen(labels), sizeof(labels) - strlen(labels), "%s=%s", k,
                         json_string_value(n) ? json_string_value(n) : "");
        }
        json_t *row = json_pack("{s:s, s:s?, s:s, s:s, s:s, s:s?, s:s, s:s, s:s?, s:s}", "ID", idbuf, "Image",
                                json_string_value(json_object_get(c, "Image")), "Command", cmdbuf, "CreatedAt",
                                created, "RunningFor", ago, "Status",
                                json_string_value(json_object_get(c, "Status")), "Ports", "", "Names", names,
                                "State", json_string_value(json_object_get(c, "State")), "Labels", labels);
        return row;
}

static json_t *ps_headers(void)
{
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ID", "CONTAINER ID", "Image",
                         "IMAGE", "Command", "COMMAND", "CreatedAt", "CREATED AT", "RunningFor", "CREATED", "Status",
                         "STATUS", "Ports", "PORTS", "Names", "NAMES", "State", "STATE", "Labels", "LABELS", "Size",
                         "SIZE");
}

static int cmd_ps(cli_ctx *ctx, int argc, char **argv)
{
        PARSE("aqf:n:l", false);
        if (first != argc)
                DONE(cli_usage(argv[0]));
        char path[4096];
        _cleanup_free_ char *ftext = o.filters ? json_dumps(o.filters, JSON_COMPACT) : NULL;
        _cleanup_free_ char *fesc = ftext ? engine_escape(ftext) : NULL;
        int limit = o.latest ? 1 : o.last ? o.last : o.tail ? atoi(o.tail) : 0;
        snprintf(path, sizeof(path), "/containers/json?all=%d%s%s", o.all || limit > 0 ? 1 : 0,
                 fesc ? "&filters=" : "", fesc ? fesc : "");
        if (limit > 0)
                snprintf(path + strlen(path), sizeof(path) - strlen(path), "&limit=%d", limit);
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *list = NULL, *rows = json_array(), *headers = ps_headers();
        if (engine_json(&e, "GET", path, NULL, &list, &err) < 0)
                DONE(cli_fail(&err));
        size_t i;
        json_t *c;
        json_array_foreach(list, i, c) {
                if (limit > 0 && (int) i >= limit)
                        break;
                json_array_append_new(rows, ps_row(c, o.no_trunc));
        }
        const char *deflt = o.quiet ? "{{.ID}}"
                                    : "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
                                      "{{.Ports}}\t{{.Names}}";
        DONE(cli_print_objects(rows, o.quiet ? NULL : o.format, deflt, headers));
}

/* ---- inspect ---- */

int engine_inspect_any(cli_ctx *ctx, int argc, char **argv)
{
        PARSE("f:", true);
        static const char *const kinds[] = { "containers", "images" };
        if (!o.type && !strcmp(argv[0], "image inspect"))
                o.type = "image";
        else if (!o.type && !strcmp(argv[0], "container inspect"))
                o.type = "container";
        if (o.type && strcmp(o.type, "container") && strcmp(o.type, "image"))
                DONE(cli_failf("--type: expected container or image, got '%s'", o.type));
        _cleanup_json_ json_t *docs = json_array();
        int ret = 0;
        for (int i = first; i < argc; i++) {
                json_t *doc = NULL;
                silo_error err = SILO_ERROR_INIT;
                int r = -ENOENT;
                for (size_t k = 0; k < 2 && r == -ENOENT; k++) {
                        if (o.type && strncmp(kinds[k], o.type, strlen(o.type)))
                                continue;
                        /* Image names keep their slashes, as docker sends them. */
                        _cleanup_free_ char *ref = k == 0 ? engine_escape(argv[i]) : strdup(argv[i]), *path = NULL;
                        if (!ref || asprintf(&path, "/%s/%s/json", kinds[k], ref) < 0)
                                DONE(cli_failf("out of memory"));
                        silo_error_clear(&err);
                        r = engine_json(&e, "GET", path, NULL, &doc, &err);
                }
                if (r == -ENOENT)
                        ret = cli_failf("No such object: %s", argv[i]);
                else if (r < 0)
                        ret = cli_fail(&err);
                else
                        json_array_append_new(docs, doc);
        }
        if (o.format) {
                int r = cli_print_objects(docs, o.format, NULL, NULL);
                DONE(r ? r : ret);
        }
        char *text = json_dumps(docs, JSON_INDENT(4));
        printf("%s\n", text ? text : "[]");
        free(text);
        DONE(ret);
}

/* ---- logs ---- */

static bool container_tty(engine *e, const char *ref_esc, silo_error *err, int *ret)
{
        _cleanup_free_ char *path = NULL;
        _cleanup_json_ json_t *doc = NULL;
        if (asprintf(&path, "/containers/%s/json", ref_esc) < 0) {
                *ret = silo_error_set(err, ENOMEM, "inspect");
                return false;
        }
        *ret = engine_json(e, "GET", path, NULL, &doc, err);
        return *ret == 0 && json_is_true(json_object_get(json_object_get(doc, "Config"), "Tty"));
}

static int cmd_logs(cli_ctx *ctx, int argc, char **argv)
{
        PARSE("fn:t", true);
        if (first != argc - 1)
                DONE(cli_usage(argv[0]));
        _cleanup_free_ char *ref = engine_escape(argv[first]), *path = NULL;
        silo_error err = SILO_ERROR_INIT;
        int r;
        stdcopy demux = { .raw = container_tty(&e, ref, &err, &r) };
        if (r < 0)
                DONE(cli_fail(&err));
        _cleanup_free_ char *tail = o.tail ? engine_escape(o.tail) : NULL;
        _cleanup_free_ char *since = o.since ? engine_escape(o.since) : NULL;
        if (asprintf(&path, "/containers/%s/logs?stdout=1&stderr=1&follow=%d&timestamps=%d%s%s%s%s", ref,
                     o.follow, o.timestamps, tail ? "&tail=" : "", tail ? tail : "", since ? "&since=" : "",
                     since ? since : "") < 0)
                DONE(cli_failf("out of memory"));
        engine_req rq = { .method = "GET", .path = path, .upload_fd = -1, .sink = engine_sink_stdcopy,
                          .userdata = &demux };
        if (engine_call(&e, &rq, NULL, NULL, &err) < 0)
                DONE(cli_fail(&err));
        DONE(0);
}

/* ---- top ---- */

static int cmd_top(cli_ctx *ctx, int argc, char **argv)
{
        PARSE("", true);
        _cleanup_free_ char *ref = engine_escape(argv[first]), *path = NULL, *psargs = NULL;
        if (first + 1 < argc) {
                /* ps options: everything after the container, joined by spaces. */
                size_t len = 0;
                for (int i = first + 1; i < argc; i++)
                        len += strlen(argv[i]) + 1;
                _cleanup_free_ char *joined = calloc(1, len + 1);
                for (int i = first + 1; joined && i < argc; i++) {
                        if (i > first + 1)
                                strcat(joined, " ");
                        strcat(joined, argv[i]);
                }
                psargs = joined ? engine_escape(joined) : NULL;
        }
        if (!ref || asprintf(&path, "/containers/%s/top%s%s", ref, psargs ? "?ps_args=" : "", psargs ? psargs : "") < 0)
                DONE(cli_failf("out of memory"));
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *doc = NULL;
        if (engine_json(&e, "GET", path, NULL, &doc, &err) < 0)
                DONE(cli_fail(&err));
        cli_table *t = cli_table_new();
        json_t *rows = json_array();
        json_array_append(rows, json_object_get(doc, "Titles"));
        json_array_extend(rows, json_object_get(doc, "Processes"));
        size_t i, k;
        json_t *row, *cell;
        json_array_foreach(rows, i, row) {
                size_t len = 1;
                json_array_foreach(row, k, cell)
                        len += strlen(json_string_value(cell) ? json_string_value(cell) : "") + 1;
                char *line = calloc(1, len);
                json_array_foreach(row, k, cell) {
                        if (!line)
                                break;
                        if (k)
                                strcat(line, "\t");
                        strcat(line, json_string_value(cell) ? json_string_value(cell) : "");
                }
                if (line && t)
                        cli_table_add(t, line);
                free(line);
        }
        json_decref(rows);
        if (t)
                cli_table_print(t, stdout);
        cli_table_free(t);
        DONE(0);
}

/* ---- stats ---- */

static json_t *stats_row(json_t *s)
{
        json_t *cpu = json_object_get(s, "cpu_stats"), *pre = json_object_get(s, "precpu_stats");
        json_t *mem = json_object_get(s, "memory_stats");
        double cpu_delta = (double) json_integer_value(json_object_get(json_object_get(cpu, "cpu_usage"), "total_usage")) -
                           (double) json_integer_value(json_object_get(json_object_get(pre, "cpu_usage"), "total_usage"));
        double sys_delta = (double) json_integer_value(json_object_get(cpu, "system_cpu_usage")) -
                           (double) json_integer_value(json_object_get(pre, "system_cpu_usage"));
        json_int_t ncpu = json_integer_value(json_object_get(cpu, "online_cpus"));
        double cpu_pct = sys_delta > 0 && cpu_delta > 0 ? cpu_delta / sys_delta * (double) (ncpu ? ncpu : 1) * 100 : 0;
        json_t *mstats = json_object_get(mem, "stats");
        json_int_t usage = json_integer_value(json_object_get(mem, "usage"));
        json_int_t inactive = json_integer_value(json_object_get(mstats, "total_inactive_file"));
        if (!inactive)
                inactive = json_integer_value(json_object_get(mstats, "inactive_file"));
        if (inactive < usage)
                usage -= inactive;
        json_int_t limit = json_integer_value(json_object_get(mem, "limit"));
        char cpu_s[32], mem_s[96], mem_pct[32], a[32], b[32], pids[32];
        snprintf(cpu_s, sizeof(cpu_s), "%.2f%%", cpu_pct);
        snprintf(mem_s, sizeof(mem_s), "%s / %s", cli_format_size(a, (uint64_t) usage),
                 cli_format_size(b, (uint64_t) limit));
        snprintf(mem_pct, sizeof(mem_pct), "%.2f%%", limit > 0 ? (double) usage * 100 / (double) limit : 0.0);
        snprintf(pids, sizeof(pids), "%lld",
                 (long long) json_integer_value(json_object_get(json_object_get(s, "pids_stats"), "current")));
        const char *id = json_string_value(json_object_get(s, "id"));
        const char *name = json_string_value(json_object_get(s, "name"));
        char idbuf[16];
        snprintf(idbuf, sizeof(idbuf), "%.12s", id ? id : "");
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ID", idbuf, "Container", idbuf, "Name",
                         name ? (name[0] == '/' ? name + 1 : name) : "", "CPUPerc", cpu_s, "MemUsage", mem_s,
                         "MemPerc", mem_pct, "NetIO", "0B / 0B", "BlockIO", "0B / 0B", "PIDs", pids);
}

static int cmd_stats(cli_ctx *ctx, int argc, char **argv)
{
        PARSE("a", false);
        _cleanup_json_ json_t *refs = json_array(), *headers = json_pack(
                "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ID", "CONTAINER ID", "Container", "CONTAINER",
                "Name", "NAME", "CPUPerc", "CPU %", "MemUsage", "MEM USAGE / LIMIT", "MemPerc", "MEM %", "NetIO",
                "NET I/O", "BlockIO", "BLOCK I/O", "PIDs", "PIDS");
        silo_error err = SILO_ERROR_INIT;
        for (int i = first; i < argc; i++)
                json_array_append_new(refs, json_string(argv[i]));
        if (first == argc) {
                _cleanup_json_ json_t *list = NULL;
                if (engine_json(&e, "GET", o.all ? "/containers/json?all=1" : "/containers/json", NULL, &list, &err) < 0)
                        DONE(cli_fail(&err));
                size_t i;
                json_t *c;
                json_array_foreach(list, i, c)
                        json_array_append(refs, json_object_get(c, "Id"));
        }
        const char *deflt = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t"
                            "{{.BlockIO}}\t{{.PIDs}}";
        bool clear = !o.no_stream && isatty(STDOUT_FILENO);
        for (unsigned round = 0;; round++) {
                _cleanup_json_ json_t *rows = json_array();
                int ret = 0;
                size_t i;
                json_t *ref;
                json_array_foreach(refs, i, ref) {
                        _cleanup_free_ char *esc = engine_escape(json_string_value(ref)), *path = NULL;
                        _cleanup_json_ json_t *s = NULL;
                        if (!esc || asprintf(&path, "/containers/%s/stats?stream=0", esc) < 0)
                                DONE(cli_failf("out of memory"));
                        silo_error_clear(&err);
                        if (engine_json(&e, "GET", path, NULL, &s, &err) < 0)
                                ret = cli_fail(&err);
                        else
                                json_array_append_new(rows, stats_row(s));
                }
                if (clear)
                        fputs("\033[2J\033[H", stdout);
                int r = cli_print_objects(rows, o.format, deflt, headers);
                fflush(stdout);
                if (o.no_stream || r || (ret && json_array_size(rows) == 0))
                        DONE(r ? r : ret);
                /* stream=0 already took half a second per container. */
                if (round < UINT32_MAX)
                        usleep(500 * 1000);
        }
}

/* ---- events ---- */

struct lines {
        char buf[65536];
        size_t len;
        const cli_template *tmpl;
};

static void print_event(struct lines *l, const char *line, size_t len)
{
        json_error_t je;
        _cleanup_json_ json_t *ev = json_loadb(line, len, 0, &je);
        if (!ev)
                return;
        if (l->tmpl) {
                _cleanup_free_ char *out = NULL;
                if (cli_template_render(l->tmpl, ev, &out, NULL) == 0)
                        printf("%s\n", out);
        } else {
                json_int_t nano = json_integer_value(json_object_get(ev, "timeNano"));
                time_t t = nano ? (time_t) (nano / 1000000000) : (time_t) json_integer_value(json_object_get(ev, "time"));
                struct tm tm;
                char when[64] = "";
                if (gmtime_r(&t, &tm))
                        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
                json_t *actor = json_object_get(ev, "Actor");
                printf("%s.%09lldZ %s %s %s", when, (long long) (nano % 1000000000),
                       json_string_value(json_object_get(ev, "Type")) ?: "",
                       json_string_value(json_object_get(ev, "Action")) ?: "",
                       json_string_value(json_object_get(actor, "ID")) ?: "");
                const char *k;
                json_t *v;
                bool firstattr = true;
                json_object_foreach(json_object_get(actor, "Attributes"), k, v) {
                        printf("%s%s=%s", firstattr ? " (" : ", ", k, json_string_value(v) ?: "");
                        firstattr = false;
                }
                printf("%s\n", firstattr ? "" : ")");
        }
        fflush(stdout);
}

static int event_sink(void *userdata, const char *data, size_t len)
{
        struct lines *l = userdata;
        for (size_t i = 0; i < len; i++) {
                if (data[i] == '\n') {
                        print_event(l, l->buf, l->len);
                        l->len = 0;
                } else if (l->len < sizeof(l->buf))
                        l->buf[l->len++] = data[i];
        }
        return 0;
}

static int cmd_events(cli_ctx *ctx, int argc, char **argv)
{
        PARSE("f:", false);
        if (first != argc)
                DONE(cli_usage(argv[0]));
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ struct lines *l = calloc(1, sizeof(*l));
        cli_template *t = NULL;
        if (!l)
                DONE(cli_failf("out of memory"));
        if (o.format && strcmp(o.format, "json") && cli_template_parse(o.format, &t, &err) < 0)
                DONE(cli_fail(&err));
        l->tmpl = t;
        _cleanup_free_ char *ftext = o.filters ? json_dumps(o.filters, JSON_COMPACT) : NULL;
        _cleanup_free_ char *f = ftext ? engine_escape(ftext) : NULL;
        _cleanup_free_ char *since = o.since ? engine_escape(o.since) : NULL;
        _cleanup_free_ char *until = o.until ? engine_escape(o.until) : NULL;
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "/events?%s%s%s%s%s%s", f ? "filters=" : "", f ? f : "", since ? "&since=" : "",
                     since ? since : "", until ? "&until=" : "", until ? until : "") < 0)
                DONE(cli_failf("out of memory"));
        engine_req rq = { .method = "GET", .path = path, .upload_fd = -1, .sink = event_sink, .userdata = l };
        int r = engine_call(&e, &rq, NULL, NULL, &err);
        cli_template_free(t);
        if (r < 0)
                DONE(cli_fail(&err));
        DONE(0);
}


const cli_command cli_engine_commands[] = {
        { "run", engine_cmd_run, "[OPTIONS] IMAGE [COMMAND] [ARG...]", "create and start a container (silod)" },
        { "create", engine_cmd_run, "[OPTIONS] IMAGE [COMMAND] [ARG...]", "create a container (silod)" },
        { "start", cmd_start, "CONTAINER...", "start containers (silod)" },
        { "stop", cmd_stop, "[-t SECONDS] [-s SIGNAL] CONTAINER...", "stop containers (silod)" },
        { "restart", cmd_stop, "[-t SECONDS] CONTAINER...", "restart containers (silod)" },
        { "kill", cmd_kill, "[-s SIGNAL] CONTAINER...", "signal containers (silod)" },
        { "rm", cmd_rm, "[-f] CONTAINER...", "remove containers (silod)" },
        { "ps", cmd_ps, "[-a] [-q] [-n N] [-l] [--no-trunc] [-f KEY=VALUE]... [--format TEMPLATE]",
          "list containers (silod)" },
        { "exec", engine_cmd_exec, "[-d] [-i] [-t] [-e K=V] [-w DIR] [-u USER] CONTAINER COMMAND [ARG...]",
          "run a command in a running container (silod)" },
        { "attach", engine_cmd_attach, "[--no-stdin] CONTAINER", "attach to a running container's output (silod)" },
        { "logs", cmd_logs, "[-f] [-n N|--tail N] [-t] [--since TIME] CONTAINER", "print a container's output (silod)" },
        { "container inspect", engine_inspect_any, "[-f TEMPLATE] CONTAINER...", NULL },
        { "stats", cmd_stats, "[-a] [--no-stream] [--format TEMPLATE] [CONTAINER...]", "resource usage (silod)" },
        { "top", cmd_top, "CONTAINER [PS OPTIONS]", "processes of a container (silod)" },
        { "pause", cmd_pause, "CONTAINER...", "freeze containers (silod)" },
        { "unpause", cmd_pause, "CONTAINER...", "thaw containers (silod)" },
        { "wait", cmd_wait, "CONTAINER...", "wait for containers to stop; prints exit codes (silod)" },
        { "events", cmd_events, "[-f KEY=VALUE]... [--since T] [--until T] [--format TEMPLATE]",
          "stream daemon events (silod)" },
        {}
};
