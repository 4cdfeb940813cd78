/* state, list, ps, events. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "runtime.h"
#include "util/cleanup.h"

static int no_options(struct cli *cli, int argc, char **argv, const char *usage)
{
        static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, { NULL } };
        int c;
        while ((c = getopt_long_only(argc, argv, "+h", opts, NULL)) != -1) {
                if (c == 'h') {
                        printf("Usage: silo-runtime %s\n", usage);
                        return -2;
                }
                return cli_usage_error(cli, "usage: silo-runtime %s", usage);
        }
        return 0;
}

static void print_json(json_t *j)
{
        _cleanup_free_ char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s)
                printf("%s\n", s);
}

int cmd_state(struct cli *cli, int argc, char **argv)
{
        int r = no_options(cli, argc, argv, "state ID");
        if (r)
                return r == -2 ? 0 : r;
        if (optind >= argc)
                return cli_usage_error(cli, "state: missing container ID");
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *st = NULL;
        if (silo_container_state(&cli->rt, argv[optind], &st, &err) < 0)
                return cli_fail(cli, &err);
        print_json(st);
        return 0;
}

int cmd_list(struct cli *cli, int argc, char **argv)
{
        static const struct option opts[] = {
                { "format", required_argument, NULL, 'f' },
                { "quiet", optional_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                { NULL },
        };
        const char *format = "table";
        bool quiet = false;
        int c;
        while ((c = getopt_long_only(argc, argv, "+f:qh", opts, NULL)) != -1) {
                switch (c) {
                case 'f': format = optarg; break;
                case 'q': {
                        int b = cli_bool(cli, "quiet", optarg);
                        if (b < 0)
                                return 1;
                        quiet = b;
                        break;
                }
                case 'h': printf("Usage: silo-runtime list [--format table|json] [--quiet]\n"); return 0;
                default: return cli_usage_error(cli, "usage: silo-runtime list [--format table|json] [--quiet]");
                }
        }
        if (strcmp(format, "table") && strcmp(format, "json"))
                return cli_usage_error(cli, "list: unknown format \"%s\" (table or json)", format);
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *list = NULL;
        if (silo_container_list(&cli->rt, &list, &err) < 0)
                return cli_fail(cli, &err);
        size_t i;
        json_t *s;
        if (quiet) {
                json_array_foreach(list, i, s)
                        printf("%s\n", json_string_value(json_object_get(s, "id")));
                return 0;
        }
        if (!strcmp(format, "json")) {
                if (json_array_size(list) == 0)
                        printf("null\n");       /* what runc prints for none */
                else
                        print_json(list);
                return 0;
        }
        printf("%-12s %-10s %-10s %-40s %-30s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
        json_array_foreach(list, i, s)
                printf("%-12s %-10lld %-10s %-40s %-30s %s\n", json_string_value(json_object_get(s, "id")),
                       (long long) json_integer_value(json_object_get(s, "pid")),
                       json_string_value(json_object_get(s, "status")), json_string_value(json_object_get(s, "bundle")),
                       json_string_value(json_object_get(s, "created")), json_string_value(json_object_get(s, "owner")));
        return 0;
}

static int cmp_pid(const void *a, const void *b)
{
        return *(const pid_t *) a - *(const pid_t *) b;
}

int cmd_ps(struct cli *cli, int argc, char **argv)
{
        static const struct option opts[] = {
                { "format", required_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                { NULL },
        };
        const char *format = "table";
        int c;
        while ((c = getopt_long_only(argc, argv, "+f:h", opts, NULL)) != -1) {
                switch (c) {
                case 'f': format = optarg; break;
                case 'h': printf("Usage: silo-runtime ps [--format table|json] ID [PS_ARGS...]\n"); return 0;
                default: return cli_usage_error(cli, "usage: silo-runtime ps [--format table|json] ID [PS_ARGS...]");
                }
        }
        if (optind >= argc)
                return cli_usage_error(cli, "ps: missing container ID");
        if (strcmp(format, "table") && strcmp(format, "json"))
                return cli_usage_error(cli, "ps: unknown format \"%s\" (table or json)", format);
        const char *id = argv[optind];
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0;
        if (silo_container_pids(&cli->rt, id, &pids, &n, &err) < 0)
                return cli_fail(cli, &err);
        qsort(pids, n, sizeof(pid_t), cmp_pid);
        if (!strcmp(format, "json")) {
                if (optind + 1 < argc)
                        return cli_usage_error(cli, "ps: PS_ARGS cannot be used with --format json");
                _cleanup_json_ json_t *arr = json_array();
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(arr, json_integer(pids[i]));
                _cleanup_free_ char *s = json_dumps(arr, JSON_COMPACT);
                printf("%s\n", s ? s : "[]");
                return 0;
        }

        /* Table: run ps(1) with the given arguments and keep the header and
         * the rows whose PID column belongs to the container. */
        int fds[2];
        if (pipe(fds) < 0)
                return cli_usage_error(cli, "ps: pipe: %s", strerror(errno));
        pid_t child = fork();
        if (child == 0) {
                dup2(fds[1], 1);
                close(fds[0]);
                close(fds[1]);
                int extra = argc - optind - 1;
                /* "ps", the arguments (or "-ef"), NULL */
                char **pargv = calloc(extra + 3, sizeof(char *));
                if (!pargv)
                        _exit(127);
                pargv[0] = "ps";
                for (int i = 0; i < extra; i++)
                        pargv[i + 1] = argv[optind + 1 + i];
                if (extra == 0) {
                        pargv[1] = "-ef";
                        pargv[2] = NULL;
                }
                execvp("ps", pargv);
                _exit(127);
        }
        close(fds[1]);
        _cleanup_fclose_ FILE *f = fdopen(fds[0], "r");
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        int pid_col = -1;
        bool header = true;
        while (f && getline(&line, &cap, f) > 0) {
                if (header) {
                        header = false;
                        _cleanup_free_ char *copy = strdup(line);
                        int col = 0;
                        for (char *save = NULL, *tok = strtok_r(copy, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save), col++)
                                if (!strcmp(tok, "PID"))
                                        pid_col = col;
                        fputs(line, stdout);
                        continue;
                }
                if (pid_col < 0)
                        continue;
                _cleanup_free_ char *copy = strdup(line);
                int col = 0;
                for (char *save = NULL, *tok = strtok_r(copy, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save), col++)
                        if (col == pid_col) {
                                pid_t p = (pid_t) atoi(tok);
                                if (bsearch(&p, pids, n, sizeof(pid_t), cmp_pid))
                                        fputs(line, stdout);
                                break;
                        }
        }
        int status;
        waitpid(child, &status, 0);
        if (pid_col < 0)
                return cli_usage_error(cli, "ps: couldn't find PID field in ps output");
        return 0;
}

static int parse_duration_ms(const char *s, long *ret)
{
        char *end;
        double v = strtod(s, &end);
        if (end == s || v < 0)
                return -1;
        double mult = 1000;     /* bare number: seconds */
        if (!strcmp(end, "ms"))
                mult = 1;
        else if (!strcmp(end, "s") || !*end)
                mult = 1000;
        else if (!strcmp(end, "m"))
                mult = 60000;
        else
                return -1;
        *ret = (long) (v * mult);
        return *ret > 0 ? 0 : -1;
}

int cmd_events(struct cli *cli, int argc, char **argv)
{
        static const struct option opts[] = {
                { "stats", optional_argument, NULL, 's' },
                { "interval", required_argument, NULL, 'i' },
                { "help", no_argument, NULL, 'h' },
                { NULL },
        };
        bool once = false;
        long interval_ms = 5000;
        int c;
        while ((c = getopt_long_only(argc, argv, "+si:h", opts, NULL)) != -1) {
                switch (c) {
                case 's': {
                        int b = cli_bool(cli, "stats", optarg);
                        if (b < 0)
                                return 1;
                        once = b;
                        break;
                }
                case 'i':
                        if (parse_duration_ms(optarg, &interval_ms) < 0)
                                return cli_usage_error(cli, "events: invalid --interval \"%s\" (e.g. 5s, 500ms)", optarg);
                        break;
                case 'h': printf("Usage: silo-runtime events [--stats] [--interval 5s] ID\n"); return 0;
                default: return cli_usage_error(cli, "usage: silo-runtime events [--stats] [--interval 5s] ID");
                }
        }
        if (optind >= argc)
                return cli_usage_error(cli, "events: missing container ID");
        const char *id = argv[optind];
        silo_error err = SILO_ERROR_INIT;
        uint64_t ooms = 0;
        silo_container_oom_count(&cli->rt, id, &ooms, NULL);
        setvbuf(stdout, NULL, _IOLBF, 0);
        for (;;) {
                _cleanup_json_ json_t *data = NULL;
                if (silo_container_stats(&cli->rt, id, &data, &err) < 0) {
                        /* The container stopping ends the stream. */
                        if (!once && (err.code == ESRCH || err.code == ENOENT))
                                return 0;
                        return cli_fail(cli, &err);
                }
                _cleanup_json_ json_t *ev = json_pack("{ss ss sO}", "type", "stats", "id", id, "data", data);
                _cleanup_free_ char *s = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
                if (s)
                        printf("%s\n", s);
                if (once)
                        return 0;
                /* OOM kills since the last look become "oom" events. */
                long slept = 0;
                while (slept < interval_ms) {
                        long step = interval_ms - slept < 200 ? interval_ms - slept : 200;
                        struct timespec ts = { step / 1000, (step % 1000) * 1000000L };
                        nanosleep(&ts, NULL);
                        slept += step;
                        uint64_t now = 0;
                        if (silo_container_oom_count(&cli->rt, id, &now, NULL) == 0 && now > ooms) {
                                printf("{\"type\":\"oom\",\"id\":\"%s\"}\n", id);
                                ooms = now;
                        }
                }
        }
}
