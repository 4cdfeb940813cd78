/* silo -H HOST compute ...: the `silo compute` verbs (compute.c) through
 * silod's /compute/... endpoints instead of the library.  Same arguments
 * and output; documents are files, "-" or inline JSON. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "util/cleanup.h"

/* The shared compute options, with help and usage printed as the other
 * silod verbs print them (-2: help was shown). */
static int parse_opts(int argc, char **argv, struct cli_compute_opts *o)
{
        int i = cli_compute_parse_opts(argc, argv, o);
        if (i == -2)
                engine_help(argv[0]);
        else if (i == -1)
                cli_usage(argv[0]);
        return i;
}

/* One request; prints the JSON answer (if print) and returns the exit code. */
static int call(cli_ctx *ctx, const char *method, const char *path, const char *body, bool print, json_t **ret)
{
        engine e;
        if (engine_open(ctx, &e))
                return 1;
        silo_error err = SILO_ERROR_INIT;
        engine_req rq = { .method = method, .path = path, .body = body, .upload_fd = -1 };
        _cleanup_free_ char *answer = NULL;
        int r = engine_call(&e, &rq, NULL, &answer, &err);
        engine_close(&e);
        if (r < 0)
                return cli_fail(&err);
        if (print && answer && *answer)
                fputs(answer, stdout);
        if (ret) {
                json_error_t je;
                *ret = json_loads(answer ? answer : "", JSON_DECODE_ANY, &je);
                if (!*ret)
                        return cli_failf("%s %s: the daemon's answer is not JSON", method, path);
        }
        return 0;
}

static char *system_path(const char *id, const char *op)
{
        _cleanup_free_ char *esc = engine_escape(id);
        char *p = NULL;
        if (!esc || asprintf(&p, "/compute/systems/%s%s%s", esc, op ? "/" : "", op ? op : "") < 0)
                return NULL;
        return p;
}

static int cmd_create(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 3)
                return cli_usage(argv[0]);
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *doc = NULL, *esc = engine_escape(argv[1]), *path = NULL;
        if (cli_compute_read_doc(argv[2], &doc, &err) < 0)
                return cli_fail(&err);
        if (!esc || asprintf(&path, "/compute/systems?id=%s", esc) < 0)
                return cli_failf("out of memory");
        _cleanup_json_ json_t *ans = NULL;
        int r = call(ctx, "POST", path, doc, false, &ans);
        if (r == 0)
                printf("%s\n", json_string_value(json_object_get(ans, "Id")) ?: argv[1]);
        return r;
}

static int cmd_op(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 2)
                return cli_usage(argv[0]);
        _cleanup_free_ char *path = system_path(argv[1], strchr(argv[0], ' ') + 1);
        return path ? call(ctx, "POST", path, NULL, false, NULL) : cli_failf("out of memory");
}

static int cmd_shutdown(cli_ctx *ctx, int argc, char **argv)
{
        struct cli_compute_opts o = { .timeout_ms = 10000 };
        int i = parse_opts(argc, argv, &o);
        if (i == -2)
                return 0;
        if (i < 0 || argc - i != 1)
                return i < 0 ? CLI_EXIT_USAGE : cli_usage(argv[0]);
        char op[64];
        snprintf(op, sizeof(op), "shutdown?timeout=%d", o.timeout_ms);
        _cleanup_free_ char *path = system_path(argv[i], op), *term = system_path(argv[i], "terminate");
        if (!path || !term)
                return cli_failf("out of memory");
        engine e;
        if (engine_open(ctx, &e))
                return 1;
        silo_error err = SILO_ERROR_INIT;
        engine_req rq = { .method = "POST", .path = path, .upload_fd = -1 };
        long status = 0;
        int r = engine_call(&e, &rq, &status, NULL, &err);
        if (r < 0 && status == 504 && o.force) {
                silo_error_clear(&err);
                engine_req t = { .method = "POST", .path = term, .upload_fd = -1 };
                r = engine_call(&e, &t, NULL, NULL, &err);
        }
        engine_close(&e);
        return r < 0 ? cli_fail(&err) : 0;
}

static int cmd_properties(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 2 && argc != 3)
                return cli_usage(argv[0]);
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *q = NULL, *path = system_path(argv[1], argc == 3 ? "properties" : NULL);
        if (argc == 3 && cli_compute_read_doc(argv[2], &q, &err) < 0)
                return cli_fail(&err);
        if (!path)
                return cli_failf("out of memory");
        return call(ctx, q ? "POST" : "GET", path, q, true, NULL);
}

static int cmd_modify(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 3)
                return cli_usage(argv[0]);
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *req = NULL, *path = system_path(argv[1], "modify");
        if (cli_compute_read_doc(argv[2], &req, &err) < 0)
                return cli_fail(&err);
        return path ? call(ctx, "POST", path, req, false, NULL) : cli_failf("out of memory");
}

static int cmd_list(cli_ctx *ctx, int argc, char **argv)
{
        if (argc > 2)
                return cli_usage(argv[0]);
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *q = NULL, *esc = NULL, *path = NULL;
        if (argc == 2 && cli_compute_read_doc(argv[1], &q, &err) < 0)
                return cli_fail(&err);
        if (q && !(esc = engine_escape(q)))
                return cli_failf("out of memory");
        if (asprintf(&path, "/compute/systems%s%s", esc ? "?query=" : "", esc ? esc : "") < 0)
                return cli_failf("out of memory");
        return call(ctx, "GET", path, NULL, true, NULL);
}

static int cmd_delete(cli_ctx *ctx, int argc, char **argv)
{
        struct cli_compute_opts o = {};
        int i = parse_opts(argc, argv, &o);
        if (i == -2)
                return 0;
        if (i < 0 || i >= argc)
                return i < 0 ? CLI_EXIT_USAGE : cli_usage(argv[0]);
        int ret = 0;
        for (; i < argc; i++) {
                _cleanup_free_ char *path = system_path(argv[i], NULL), *full = NULL;
                if (!path || asprintf(&full, "%s%s", path, o.force ? "?force=1" : "") < 0)
                        return cli_failf("out of memory");
                if (call(ctx, "DELETE", full, NULL, false, NULL))
                        ret = 1;
        }
        return ret;
}

/* POST .../wait until it reports an exit; returns the answer. */
static int wait_for(cli_ctx *ctx, const char *id, const char *pid, int timeout_ms, json_t **ret)
{
        char op[128];
        snprintf(op, sizeof(op), "%s%s%swait?timeout=%d", pid ? "processes/" : "", pid ? pid : "", pid ? "/" : "",
                 timeout_ms);
        _cleanup_free_ char *path = system_path(id, op);
        if (!path)
                return cli_failf("out of memory");
        int r = call(ctx, "POST", path, NULL, false, ret);
        if (r)
                return r;
        if (json_is_true(json_object_get(*ret, "TimedOut")))
                return cli_failf("%s %s still running after %d ms", pid ? "process" : "compute system",
                                 pid ? pid : id, timeout_ms);
        return 0;
}

static int cmd_wait(cli_ctx *ctx, int argc, char **argv)
{
        struct cli_compute_opts o = { .timeout_ms = -1 };
        int i = parse_opts(argc, argv, &o);
        if (i == -2)
                return 0;
        if (i < 0 || (argc - i != 1 && argc - i != 2))
                return i < 0 ? CLI_EXIT_USAGE : cli_usage(argv[0]);
        _cleanup_json_ json_t *ans = NULL;
        int r = wait_for(ctx, argv[i], argc - i == 2 ? argv[i + 1] : NULL, o.timeout_ms, &ans);
        if (r == 0 && argc - i == 2)
                printf("%lld\n", (long long) json_integer_value(json_object_get(ans, "ExitCode")));
        return r;
}

static int cmd_process(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 3 && argc != 4)
                return cli_usage(argv[0]);
        char *end;
        long pid = strtol(argv[2], &end, 10);
        if (*end || pid <= 0 || pid > INT_MAX)
                return cli_failf("'%s' is not a process id", argv[2]);
        char op[96];
        if (argc == 3) {
                snprintf(op, sizeof(op), "processes/%ld", pid);
                _cleanup_free_ char *path = system_path(argv[1], op);
                return path ? call(ctx, "GET", path, NULL, true, NULL) : cli_failf("out of memory");
        }
        if (argv[3][0] == '{') {
                snprintf(op, sizeof(op), "processes/%ld/modify", pid);
                _cleanup_free_ char *path = system_path(argv[1], op);
                return path ? call(ctx, "POST", path, argv[3], false, NULL) : cli_failf("out of memory");
        }
        long sig = strtol(argv[3], &end, 10);
        if (*end || sig <= 0 || sig >= NSIG)
                return cli_failf("'%s' is not a signal number", argv[3]);
        snprintf(op, sizeof(op), "processes/%ld/signal?signal=%ld", pid, sig);
        _cleanup_free_ char *path = system_path(argv[1], op);
        return path ? call(ctx, "POST", path, NULL, false, NULL) : cli_failf("out of memory");
}

static int cmd_exec(cli_ctx *ctx, int argc, char **argv)
{
        struct cli_compute_opts o = { .timeout_ms = -1 };
        int i = parse_opts(argc, argv, &o);
        if (i == -2)
                return 0;
        if (i < 0 || argc - i != 2)
                return i < 0 ? CLI_EXIT_USAGE : cli_usage(argv[0]);
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *text = NULL, *path = system_path(argv[i], "processes");
        if (cli_compute_read_doc(argv[i + 1], &text, &err) < 0)
                return cli_fail(&err);
        json_error_t je;
        _cleanup_json_ json_t *params = json_loads(text, 0, &je);
        if (!json_is_object(params))
                return cli_failf("ProcessParameters: expected a JSON object");
        if (!path)
                return cli_failf("out of memory");
        if (o.detach) {
                /* Nobody would read the pipes of a detached process. */
                static const char *const pipes[] = { "CreateStdInPipe", "CreateStdOutPipe", "CreateStdErrPipe",
                                                     "EmulateConsole" };
                for (size_t k = 0; k < 4; k++)
                        json_object_del(params, pipes[k]);
                _cleanup_free_ char *body = json_dumps(params, JSON_COMPACT);
                _cleanup_json_ json_t *ans = NULL;
                int r = body ? call(ctx, "POST", path, body, false, &ans) : cli_failf("out of memory");
                if (r == 0)
                        printf("%lld\n", (long long) json_integer_value(json_object_get(ans, "ProcessId")));
                return r;
        }
        bool console = json_is_true(json_object_get(params, "EmulateConsole"));
        engine e;
        if (engine_open(ctx, &e))
                return 1;
        engine_conn conn;
        if (engine_hijack(&e, path, text, &conn, &err) < 0) {
                engine_close(&e);
                return cli_fail(&err);
        }
        size_t len = 0;
        const char *pidv = engine_conn_header(&conn, "X-Silo-Process-Id", &len);
        char pid[32];
        snprintf(pid, sizeof(pid), "%.*s", pidv ? (int) (len < 31 ? len : 31) : 0, pidv ? pidv : "");
        char op[96];
        snprintf(op, sizeof(op), "processes/%s/resize", pid);
        _cleanup_free_ char *resize = system_path(argv[i], op);
        snprintf(op, sizeof(op), "processes/%s/signal", pid);
        _cleanup_free_ char *sig = system_path(argv[i], op);
        bool stdin_on = console || json_is_true(json_object_get(params, "CreateStdInPipe"));
        engine_session s = { .forward_stdin = stdin_on, .tty = console, .resize_path = resize,
                             .kill_path = console ? NULL : sig };
        int r = engine_session_run(&e, &conn, &s, &err);
        engine_conn_close(&conn);
        engine_close(&e);
        if (r < 0)
                cli_fail(&err);
        if (!*pid)
                return cli_failf("the daemon did not say which process it started");
        _cleanup_json_ json_t *ans = NULL;
        r = wait_for(ctx, argv[i], pid, o.timeout_ms, &ans);
        return r ? r : (int) json_integer_value(json_object_get(ans, "ExitCode"));
}

const cli_command cli_engine_compute_commands[] = {
        { "compute create", cmd_create, "ID DOCUMENT", "create a compute system (through silod)" },
        { "compute start", cmd_op, "ID", NULL },
        { "compute shutdown", cmd_shutdown, "[--timeout SEC] [--force] ID", NULL },
        { "compute terminate", cmd_op, "ID", NULL },
        { "compute pause", cmd_op, "ID", NULL },
        { "compute resume", cmd_op, "ID", NULL },
        { "compute properties", cmd_properties, "ID [PROPERTY-QUERY]", NULL },
        { "compute modify", cmd_modify, "ID MODIFY-SETTING-REQUEST", NULL },
        { "compute list", cmd_list, "[SYSTEM-QUERY]", NULL },
        { "compute exec", cmd_exec, "[--detach] ID PROCESS-PARAMETERS", NULL },
        { "compute process", cmd_process, "ID PID [SIGNAL|MODIFY-REQUEST]", NULL },
        { "compute wait", cmd_wait, "[--timeout SEC] ID [PID]", NULL },
        { "compute delete", cmd_delete, "[--force] ID...", NULL },
        {}
};
