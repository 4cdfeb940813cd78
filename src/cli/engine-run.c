/* silo run, create, exec, attach: the verbs with a container's stdio. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "util/cleanup.h"

enum {
        OPT_RM = 0x100, OPT_NAME, OPT_ENTRYPOINT, OPT_PIDS, OPT_READONLY, OPT_PRIVILEGED, OPT_CAP_ADD, OPT_CAP_DROP,
        OPT_CPUS, OPT_RESTART, OPT_INIT, OPT_ISOLATION, OPT_NETWORK, OPT_STOP_SIGNAL, OPT_NO_STDIN, OPT_SHM,
        OPT_ENV_FILE,
};

static int parse_bytes(const char *s, json_int_t *ret)
{
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || end == s || v < 0)
                return -EINVAL;
        double mult = 1;
        switch (tolower((unsigned char) *end)) {
        case 0: case 'b': break;
        case 'k': mult = 1024.0; break;
        case 'm': mult = 1024.0 * 1024; break;
        case 'g': mult = 1024.0 * 1024 * 1024; break;
        default: return -EINVAL;
        }
        if (*end && end[1] && !(tolower((unsigned char) end[1]) == 'b' && !end[2]))
                return -EINVAL;
        *ret = (json_int_t) (v * mult);
        return 0;
}

static void append(json_t *obj, const char *key, const char *value)
{
        json_t *a = json_object_get(obj, key);
        if (!a) {
                a = json_array();
                json_object_set_new(obj, key, a);
        }
        json_array_append_new(a, json_string(value));
}

static int read_env_file(const char *path, json_t *config)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return cli_failf("--env-file %s: %s", path, strerror(errno));
        char line[8192];
        while (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\r\n")] = 0;
                const char *l = line + strspn(line, " \t");
                if (!*l || *l == '#')
                        continue;
                if (strchr(l, '='))
                        append(config, "Env", l);
                else if (getenv(l)) {
                        char kv[8192];
                        snprintf(kv, sizeof(kv), "%s=%s", l, getenv(l));
                        append(config, "Env", kv);
                }
        }
        fclose(f);
        return 0;
}

struct run_opts {
        bool detach, interactive, tty, rm, no_stdin;
        const char *name;
};

/* Parses run/create/exec options into config (and host for run/create).
 * Returns the index of the first operand, -1 on error, -2 after --help. */
static int parse_run(int argc, char **argv, bool exec, json_t *config, json_t *host, struct run_opts *o)
{
        static const struct option lo[] = {
                { "detach", no_argument, NULL, 'd' }, { "interactive", no_argument, NULL, 'i' },
                { "tty", no_argument, NULL, 't' }, { "env", required_argument, NULL, 'e' },
                { "workdir", required_argument, NULL, 'w' }, { "user", required_argument, NULL, 'u' },
                { "memory", required_argument, NULL, 'm' }, { "hostname", required_argument, NULL, 'h' },
                { "label", required_argument, NULL, 'l' }, { "volume", required_argument, NULL, 'v' },
                { "rm", no_argument, NULL, OPT_RM }, { "name", required_argument, NULL, OPT_NAME },
                { "entrypoint", required_argument, NULL, OPT_ENTRYPOINT },
                { "pids-limit", required_argument, NULL, OPT_PIDS }, { "read-only", no_argument, NULL, OPT_READONLY },
                { "privileged", no_argument, NULL, OPT_PRIVILEGED }, { "cap-add", required_argument, NULL, OPT_CAP_ADD },
                { "cap-drop", required_argument, NULL, OPT_CAP_DROP }, { "cpus", required_argument, NULL, OPT_CPUS },
                { "restart", required_argument, NULL, OPT_RESTART }, { "init", no_argument, NULL, OPT_INIT },
                { "isolation", required_argument, NULL, OPT_ISOLATION },
                { "network", required_argument, NULL, OPT_NETWORK }, { "net", required_argument, NULL, OPT_NETWORK },
                { "stop-signal", required_argument, NULL, OPT_STOP_SIGNAL },
                { "shm-size", required_argument, NULL, OPT_SHM }, { "env-file", required_argument, NULL, OPT_ENV_FILE },
                { "no-stdin", no_argument, NULL, OPT_NO_STDIN }, { "help", no_argument, NULL, 'H' }, {},
        };
        optind = 1;
        int c;
        json_int_t n;
        while ((c = getopt_long(argc, argv, exec ? "+ditHe:w:u:" : "+ditHe:w:u:m:h:l:v:", lo, NULL)) != -1) {
                bool run_only = c != 'd' && c != 'i' && c != 't' && c != 'e' && c != 'w' && c != 'u' && c != 'H' &&
                                c != OPT_PRIVILEGED && c != OPT_ENV_FILE && c != OPT_NO_STDIN && c != '?';
                if (exec && run_only) {
                        cli_failf("%s: option '%s' is not valid for exec", argv[0], argv[optind - 1]);
                        return -1;
                }
                switch (c) {
                case 'H': engine_help(argv[0]); return -2;
                case 'd': o->detach = true; break;
                case 'i': o->interactive = true; break;
                case 't': o->tty = true; break;
                case 'e': append(config, "Env", optarg); break;
                case 'w': json_object_set_new(config, "WorkingDir", json_string(optarg)); break;
                case 'u': json_object_set_new(config, "User", json_string(optarg)); break;
                case 'h': json_object_set_new(config, "Hostname", json_string(optarg)); break;
                case 'v': append(host, "Binds", optarg); break;
                case OPT_CAP_ADD: append(host, "CapAdd", optarg); break;
                case OPT_CAP_DROP: append(host, "CapDrop", optarg); break;
                case OPT_RM: o->rm = true; break;
                case OPT_NAME: o->name = optarg; break;
                case OPT_NO_STDIN: o->no_stdin = true; break;
                case OPT_READONLY: json_object_set_new(host, "ReadonlyRootfs", json_true()); break;
                case OPT_PRIVILEGED:
                        json_object_set_new(exec ? config : host, "Privileged", json_true());
                        break;
                case OPT_INIT: json_object_set_new(host, "Init", json_true()); break;
                case OPT_ISOLATION: json_object_set_new(host, "Isolation", json_string(optarg)); break;
                case OPT_NETWORK: json_object_set_new(host, "NetworkMode", json_string(optarg)); break;
                case OPT_STOP_SIGNAL: json_object_set_new(config, "StopSignal", json_string(optarg)); break;
                case OPT_ENV_FILE:
                        if (read_env_file(optarg, config))
                                return -1;
                        break;
                case OPT_ENTRYPOINT:
                        /* An empty --entrypoint resets the image's. */
                        json_object_set_new(config, "Entrypoint",
                                            *optarg ? json_pack("[s]", optarg) : json_array());
                        break;
                case 'l': {
                        json_t *labels = json_object_get(config, "Labels");
                        if (!labels) {
                                labels = json_object();
                                json_object_set_new(config, "Labels", labels);
                        }
                        const char *eq = strchr(optarg, '=');
                        _cleanup_free_ char *k = eq ? strndup(optarg, (size_t) (eq - optarg)) : strdup(optarg);
                        json_object_set_new(labels, k, json_string(eq ? eq + 1 : ""));
                        break;
                }
                case 'm':
                case OPT_SHM:
                        if (parse_bytes(optarg, &n) < 0) {
                                cli_failf("%s: invalid size '%s' (expected a number with b, k, m or g)",
                                          c == 'm' ? "--memory" : "--shm-size", optarg);
                                return -1;
                        }
                        json_object_set_new(host, c == 'm' ? "Memory" : "ShmSize", json_integer(n));
                        break;
                case OPT_PIDS: {
                        char *end;
                        long long v = strtoll(optarg, &end, 10);
                        if (*end || end == optarg) {
                                cli_failf("--pids-limit: expected a number, got '%s'", optarg);
                                return -1;
                        }
                        json_object_set_new(host, "PidsLimit", json_integer(v));
                        break;
                }
                case OPT_CPUS: {
                        char *end;
                        double v = strtod(optarg, &end);
                        if (*end || end == optarg || v <= 0 || v > 1024) {
                                cli_failf("--cpus: expected a positive number, got '%s'", optarg);
                                return -1;
                        }
                        json_object_set_new(host, "NanoCpus", json_integer((json_int_t) (v * 1e9)));
                        break;
                }
                case OPT_RESTART: {
                        const char *colon = strchr(optarg, ':');
                        _cleanup_free_ char *nm = colon ? strndup(optarg, (size_t) (colon - optarg)) : strdup(optarg);
                        json_object_set_new(host, "RestartPolicy",
                                            json_pack("{s:s, s:i}", "Name", nm ? nm : "", "MaximumRetryCount",
                                                      colon ? atoi(colon + 1) : 0));
                        break;
                }
                default:
                        cli_usage(argv[0]);
                        return -1;
                }
        }
        return optind;
}

/* 125 for daemon errors, 126/127 for a command that cannot run, as docker. */
static int run_failure(const silo_error *err)
{
        cli_fail(err);
        if (strcasestr(err->message, "no such file") || strcasestr(err->message, "executable file not found"))
                return 127;
        if (strcasestr(err->message, "permission denied"))
                return 126;
        return 125;
}

static int create_container(engine *e, json_t *config, const char *name, bool quiet_pull, char **ret_id,
                            silo_error *err)
{
        _cleanup_free_ char *esc = name ? engine_escape(name) : NULL, *path = NULL;
        if (asprintf(&path, "/containers/create%s%s", esc ? "?name=" : "", esc ? esc : "") < 0)
                return silo_error_set(err, ENOMEM, "create");
        _cleanup_json_ json_t *ans = NULL;
        int r = engine_json(e, "POST", path, config, &ans, err);
        if (r == -ENOENT && strstr(err->message, "image")) {
                const char *image = json_string_value(json_object_get(config, "Image"));
                fprintf(stderr, "Unable to find image '%s' locally\n", image);
                silo_error_clear(err);
                if ((r = engine_pull(e, image, quiet_pull ? NULL : stderr, err)) < 0)
                        return r;
                r = engine_json(e, "POST", path, config, &ans, err);
        }
        if (r < 0)
                return r;
        for (size_t i = 0; i < json_array_size(json_object_get(ans, "Warnings")); i++)
                fprintf(stderr, "WARNING: %s\n", json_string_value(json_array_get(json_object_get(ans, "Warnings"), i)));
        const char *id = json_string_value(json_object_get(ans, "Id"));
        if (!id)
                return silo_error_msg(err, EBADMSG, "create: no Id in the daemon's answer");
        *ret_id = strdup(id);
        return *ret_id ? 0 : silo_error_set(err, ENOMEM, "create");
}

/* The container's exit, waited for on a second connection that must be
 * registered (headers in) before the container starts. */
struct waiter {
        engine e;
        char path[256];
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool ready, done;
        volatile int cancel;
        int r;
        char *body;
        silo_error err;
};

static void waiter_ready(void *userdata)
{
        struct waiter *w = userdata;
        pthread_mutex_lock(&w->lock);
        w->ready = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
}

static void *waiter_thread(void *userdata)
{
        struct waiter *w = userdata;
        engine_req rq = { .method = "POST", .path = w->path, .upload_fd = -1, .on_headers = waiter_ready,
                          .userdata = w, .cancel = &w->cancel };
        w->r = engine_call(&w->e, &rq, NULL, &w->body, &w->err);
        pthread_mutex_lock(&w->lock);
        w->done = w->ready = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

static int attached_run(engine *e, const char *id, const struct run_opts *o)
{
        silo_error err = SILO_ERROR_INIT;
        char path[512];
        bool stdin_on = o->interactive;
        snprintf(path, sizeof(path), "/containers/%s/attach?stream=1&stdout=1&stderr=1&stdin=%d", id, stdin_on);
        engine_conn conn;
        if (engine_hijack(e, path, NULL, &conn, &err) < 0)
                return run_failure(&err);

        struct waiter *w = calloc(1, sizeof(*w));
        if (!w) {
                engine_conn_close(&conn);
                return cli_failf("out of memory");
        }
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        bool have_engine = engine_dup(e, &w->e) == 0;
        snprintf(w->path, sizeof(w->path), "/containers/%s/wait?condition=%s", id, o->rm ? "removed" : "next-exit");
        pthread_t t;
        bool started = have_engine && pthread_create(&t, NULL, waiter_thread, w) == 0;
        if (started) {
                pthread_mutex_lock(&w->lock);
                while (!w->ready)
                        pthread_cond_wait(&w->cond, &w->lock);
                pthread_mutex_unlock(&w->lock);
        }
        int ret;
        snprintf(path, sizeof(path), "/containers/%s/start", id);
        engine_req rq = { .method = "POST", .path = path, .upload_fd = -1 };
        if (!started || (w->done && w->r < 0)) {
                ret = w->done ? cli_fail(&w->err) : cli_failf("cannot wait for the container");
        } else if (engine_call(e, &rq, NULL, NULL, &err) < 0) {
                ret = run_failure(&err);
        } else {
                char resize[256], kill[256];
                snprintf(resize, sizeof(resize), "/containers/%s/resize", id);
                snprintf(kill, sizeof(kill), "/containers/%s/kill", id);
                engine_session s = { .forward_stdin = stdin_on, .tty = o->tty, .resize_path = resize,
                                     .kill_path = o->tty ? NULL : kill };
                silo_error_clear(&err);
                if (engine_session_run(e, &conn, &s, &err) < 0)
                        cli_fail(&err);
                ret = -1;
        }
        engine_conn_close(&conn);
        if (ret != -1) {
                w->cancel = 1;
                if (o->rm) {
                        snprintf(path, sizeof(path), "/containers/%s?force=1", id);
                        engine_req del = { .method = "DELETE", .path = path, .upload_fd = -1 };
                        (void) engine_call(e, &del, NULL, NULL, NULL);
                }
        }
        if (started)
                pthread_join(t, NULL);
        if (ret == -1) {
                json_error_t je;
                _cleanup_json_ json_t *ans = w->r == 0 && w->body ? json_loads(w->body, 0, &je) : NULL;
                const char *msg = json_string_value(json_object_get(json_object_get(ans, "Error"), "Message"));
                if (w->r < 0) {
                        cli_fail(&w->err);
                        ret = 125;
                } else if (msg && *msg) {
                        cli_failf("%s", msg);
                        ret = 125;
                } else
                        ret = (int) json_integer_value(json_object_get(ans, "StatusCode"));
        }
        engine_close(&w->e);
        free(w->body);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w);
        return ret;
}

int engine_cmd_run(cli_ctx *ctx, int argc, char **argv)
{
        bool create_only = !strcmp(argv[0], "create");
        _cleanup_json_ json_t *config = json_object(), *host = json_object();
        struct run_opts o = {};
        int i = parse_run(argc, argv, false, config, host, &o);
        if (i == -2)
                return 0;
        if (i < 0)
                return CLI_EXIT_USAGE;
        if (i >= argc)
                return cli_usage(argv[0]);
        json_object_set_new(config, "Image", json_string(argv[i]));
        if (i + 1 < argc) {
                json_t *cmd = json_array();
                for (int k = i + 1; k < argc; k++)
                        json_array_append_new(cmd, json_string(argv[k]));
                json_object_set_new(config, "Cmd", cmd);
        }
        bool attach = !o.detach && !create_only;
        json_object_set_new(config, "Tty", json_boolean(o.tty));
        json_object_set_new(config, "OpenStdin", json_boolean(o.interactive));
        json_object_set_new(config, "StdinOnce", json_boolean(o.interactive && attach));
        json_object_set_new(config, "AttachStdin", json_boolean(o.interactive && attach));
        json_object_set_new(config, "AttachStdout", json_boolean(attach));
        json_object_set_new(config, "AttachStderr", json_boolean(attach));
        /* As the docker CLI: always an object (silod's list relies on it). */
        if (!json_object_get(config, "Labels"))
                json_object_set_new(config, "Labels", json_object());
        if (o.rm)
                json_object_set_new(host, "AutoRemove", json_true());
        json_object_set(config, "HostConfig", host);

        engine e;
        if (engine_open(ctx, &e))
                return 125;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *id = NULL;
        int ret = 0;
        if (create_container(&e, config, o.name, ctx->quiet, &id, &err) < 0) {
                ret = run_failure(&err);
        } else if (create_only) {
                printf("%s\n", id);
        } else if (o.detach) {
                char path[256];
                snprintf(path, sizeof(path), "/containers/%s/start", id);
                engine_req rq = { .method = "POST", .path = path, .upload_fd = -1 };
                if (engine_call(&e, &rq, NULL, NULL, &err) < 0)
                        ret = run_failure(&err);
                else
                        printf("%s\n", id);
        } else {
                ret = attached_run(&e, id, &o);
        }
        engine_close(&e);
        return ret;
}

int engine_cmd_exec(cli_ctx *ctx, int argc, char **argv)
{
        _cleanup_json_ json_t *config = json_object(), *host = json_object();
        struct run_opts o = {};
        int i = parse_run(argc, argv, true, config, host, &o);
        if (i == -2)
                return 0;
        if (i < 0)
                return CLI_EXIT_USAGE;
        if (i + 1 >= argc)
                return cli_usage(argv[0]);
        json_t *cmd = json_array();
        for (int k = i + 1; k < argc; k++)
                json_array_append_new(cmd, json_string(argv[k]));
        json_object_set_new(config, "Cmd", cmd);
        json_object_set_new(config, "Tty", json_boolean(o.tty));
        json_object_set_new(config, "AttachStdin", json_boolean(o.interactive && !o.detach));
        json_object_set_new(config, "AttachStdout", json_boolean(!o.detach));
        json_object_set_new(config, "AttachStderr", json_boolean(!o.detach));

        engine e;
        if (engine_open(ctx, &e))
                return 125;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *ref = engine_escape(argv[i]), *path = NULL;
        _cleanup_json_ json_t *ans = NULL;
        int ret = 0;
        if (!ref || asprintf(&path, "/containers/%s/exec", ref) < 0) {
                path = NULL;
                ret = cli_failf("out of memory");
                goto out;
        }
        if (engine_json(&e, "POST", path, config, &ans, &err) < 0) {
                ret = run_failure(&err);
                goto out;
        }
        const char *exec_id = json_string_value(json_object_get(ans, "Id"));
        if (!exec_id) {
                ret = cli_failf("exec: no Id in the daemon's answer");
                goto out;
        }
        char start[256], body[64];
        snprintf(start, sizeof(start), "/exec/%s/start", exec_id);
        snprintf(body, sizeof(body), "{\"Detach\": %s, \"Tty\": %s}", o.detach ? "true" : "false",
                 o.tty ? "true" : "false");
        if (o.detach) {
                engine_req rq = { .method = "POST", .path = start, .body = body, .upload_fd = -1 };
                if (engine_call(&e, &rq, NULL, NULL, &err) < 0)
                        ret = run_failure(&err);
                goto out;
        }
        engine_conn conn;
        if (engine_hijack(&e, start, body, &conn, &err) < 0) {
                ret = run_failure(&err);
                goto out;
        }
        char resize[256], inspect[256];
        snprintf(resize, sizeof(resize), "/exec/%s/resize", exec_id);
        engine_session s = { .forward_stdin = o.interactive, .tty = o.tty, .resize_path = resize };
        if (engine_session_run(&e, &conn, &s, &err) < 0)
                cli_fail(&err);
        engine_conn_close(&conn);
        /* The exit code: recorded as the stream ends; wait briefly for it. */
        snprintf(inspect, sizeof(inspect), "/exec/%s/json", exec_id);
        ret = 125;
        for (int tries = 0; tries < 200; tries++) {
                _cleanup_json_ json_t *st = NULL;
                silo_error_clear(&err);
                if (engine_json(&e, "GET", inspect, NULL, &st, &err) < 0) {
                        cli_fail(&err);
                        break;
                }
                json_t *code = json_object_get(st, "ExitCode");
                if (json_is_integer(code) && !json_is_true(json_object_get(st, "Running"))) {
                        ret = (int) json_integer_value(code);
                        break;
                }
                usleep(25 * 1000);
        }
out:
        engine_close(&e);
        return ret;
}

int engine_cmd_attach(cli_ctx *ctx, int argc, char **argv)
{
        _cleanup_json_ json_t *config = json_object(), *host = json_object();
        struct run_opts o = {};
        int i = parse_run(argc, argv, true, config, host, &o);
        if (i == -2)
                return 0;
        if (i < 0)
                return CLI_EXIT_USAGE;
        if (i + 1 != argc)
                return cli_usage(argv[0]);
        engine e;
        if (engine_open(ctx, &e))
                return 1;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *ref = engine_escape(argv[i]), *path = NULL;
        _cleanup_json_ json_t *doc = NULL;
        int ret = 1;
        if (!ref || asprintf(&path, "/containers/%s/json", ref) < 0) {
                path = NULL;
                goto out;
        }
        if (engine_json(&e, "GET", path, NULL, &doc, &err) < 0) {
                ret = cli_fail(&err);
                goto out;
        }
        json_t *cfg = json_object_get(doc, "Config");
        bool tty = json_is_true(json_object_get(cfg, "Tty"));
        bool in = !o.no_stdin && json_is_true(json_object_get(cfg, "OpenStdin"));
        const char *id = json_string_value(json_object_get(doc, "Id"));
        char apath[512], resize[256], kill[256];
        snprintf(apath, sizeof(apath), "/containers/%s/attach?stream=1&stdout=1&stderr=1&stdin=%d", id ? id : ref, in);
        snprintf(resize, sizeof(resize), "/containers/%s/resize", id ? id : ref);
        snprintf(kill, sizeof(kill), "/containers/%s/kill", id ? id : ref);
        engine_conn conn;
        if (engine_hijack(&e, apath, NULL, &conn, &err) < 0) {
                ret = cli_fail(&err);
                goto out;
        }
        engine_session s = { .forward_stdin = in, .tty = tty, .resize_path = resize, .kill_path = tty ? NULL : kill };
        if (engine_session_run(&e, &conn, &s, &err) < 0)
                cli_fail(&err);
        engine_conn_close(&conn);
        json_decref(doc);
        doc = NULL;
        ret = 0;
        if (engine_json(&e, "GET", path, NULL, &doc, &err) == 0)
                ret = (int) json_integer_value(json_object_get(json_object_get(doc, "State"), "ExitCode"));
out:
        engine_close(&e);
        return ret;
}
