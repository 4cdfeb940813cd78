/* Exec: POST /containers/{id}/exec, POST /exec/{id}/start (hijacked or
 * detached), GET /exec/{id}/json.  Each exec runs in a `silo-monitor --exec`
 * helper whose stdout/stderr are pipes silod frames onto the connection, so
 * silod itself never forks after threads exist. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/engine.h"
#include "process/container.h"
#include "silod.h"
#include "util/cleanup.h"
#include "util/json.h"

extern char **environ;

struct exec_rec {
        struct exec_rec *next;
        char id[65];
        char container_id[65];
        json_t *process;                /* OCI process object */
        bool started, running, exited;
        int exit_code;
        pid_t helper;
};

void execs_free(struct silod *d)
{
        while (d->execs) {
                struct exec_rec *e = d->execs;
                d->execs = e->next;
                json_decref(e->process);
                free(e);
        }
}

void execs_prune_locked(struct silod *d, const char *container_id)
{
        for (struct exec_rec **p = &d->execs; *p;) {
                struct exec_rec *e = *p;
                /* A running exec's thread still points at it: it goes with
                 * the next removal of this container id (never) or at exit. */
                if (strcmp(e->container_id, container_id) == 0 && !e->running) {
                        *p = e->next;
                        json_decref(e->process);
                        free(e);
                } else
                        p = &e->next;
        }
}

static struct exec_rec *exec_lookup_locked(struct silod *d, const char *id)
{
        for (struct exec_rec *e = d->execs; e; e = e->next)
                if (strcmp(e->id, id) == 0)
                        return e;
        return NULL;
}

struct exec_body {
        const char **cmd;
        const char **env;
        const char *working_dir;
        const char *user;
        bool tty;
        bool attach_stdin;
        bool privileged;
};

static const struct silo_json_field exec_fields[] = {
        { "Cmd", SILO_JSON_STRV, offsetof(struct exec_body, cmd), SILO_JSON_REQUIRED },
        { "Env", SILO_JSON_STRV, offsetof(struct exec_body, env), SILO_JSON_NULLABLE },
        { "WorkingDir", SILO_JSON_STRING, offsetof(struct exec_body, working_dir), SILO_JSON_NULLABLE },
        { "User", SILO_JSON_STRING, offsetof(struct exec_body, user), SILO_JSON_NULLABLE },
        { "Tty", SILO_JSON_BOOL, offsetof(struct exec_body, tty), SILO_JSON_NULLABLE },
        { "AttachStdin", SILO_JSON_BOOL, offsetof(struct exec_body, attach_stdin), SILO_JSON_NULLABLE },
        { "Privileged", SILO_JSON_BOOL, offsetof(struct exec_body, privileged), SILO_JSON_NULLABLE },
        {}
};

/* "uid[:gid]" only: names would need the container's /etc/passwd. */
static int parse_user(const char *user, json_t *process, silo_error *err)
{
        unsigned uid, gid;
        int n = 0;
        if (sscanf(user, "%u:%u%n", &uid, &gid, &n) == 2 && user[n] == 0)
                ;
        else if (sscanf(user, "%u%n", &uid, &n) == 1 && user[n] == 0)
                gid = uid;
        else
                return silo_error_msg(err, EOPNOTSUPP, "User: only numeric uid[:gid] is supported for exec, got \"%s\"",
                                      user);
        json_object_set_new(process, "user", json_pack("{s:i, s:i}", "uid", (int) uid, "gid", (int) gid));
        return 0;
}

enum MHD_Result handle_exec_create(struct silod *d, struct MHD_Connection *c, struct request *req, struct ctr *ct)
{
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *body = NULL;
        int r = request_json(req, &body, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        struct exec_body b = {};
        r = silo_json_dispatch(body, "", exec_fields, &b, &err);
        _cleanup_free_ const char **cmd = b.cmd, **env = b.env;
        if (r < 0)
                return reply_error(c, 400, "%s", err.message);
        if (!b.cmd || !b.cmd[0])
                return reply_error(c, 400, "No exec command specified");
        if (b.tty || b.attach_stdin)
                return reply_error(c, 501, "exec with a terminal or stdin is not supported by silod yet");
        if (b.privileged)
                return reply_error(c, 501, "Privileged: not supported by silod yet");
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        bool running = ct->status == CTR_RUNNING;
        pthread_mutex_unlock(&d->lock);
        if (!running)
                return reply_error(c, 409, "Container %s is not running", ct->id);

        /* The running container's process is the template: same
         * capabilities, rlimits, env and user unless overridden. */
        struct silo_runtime rt = { .state_root = d->runtime_root };
        _cleanup_json_ json_t *config = NULL;
        r = silo_container_config(&rt, ct->id, &config, &err);
        if (r < 0)
                return reply_errno(c, r == -ENOENT ? -EBUSY : r, &err);
        json_t *process = json_deep_copy(json_object_get(config, "process"));
        if (!json_is_object(process)) {
                json_decref(process);
                return reply_error(c, 500, "container %s: no process in its config", ct->id);
        }
        json_t *args = json_array();
        for (const char **a = b.cmd; *a; a++)
                json_array_append_new(args, json_string(*a));
        json_object_set_new(process, "args", args);
        json_object_set_new(process, "terminal", json_false());
        json_object_del(process, "consoleSize");
        json_t *penv = json_object_get(process, "env");
        if (!json_is_array(penv)) {
                penv = json_array();
                json_object_set_new(process, "env", penv);
        }
        for (const char **e = b.env; e && *e; e++)
                json_array_append_new(penv, json_string(*e));
        if (b.working_dir && *b.working_dir)
                json_object_set_new(process, "cwd", json_string(b.working_dir));
        if (b.user && *b.user && parse_user(b.user, process, &err) < 0) {
                json_decref(process);
                return reply_error(c, 501, "%s", err.message);
        }
        struct exec_rec *e = calloc(1, sizeof(*e));
        if (!e) {
                json_decref(process);
                return reply_error(c, 500, "out of memory");
        }
        silo_random_hex(e->id, 64);
        e->id[64] = 0;
        snprintf(e->container_id, sizeof(e->container_id), "%s", ct->id);
        e->process = process;
        pthread_mutex_lock(&d->lock);
        e->next = d->execs;
        d->execs = e;
        pthread_mutex_unlock(&d->lock);
        return reply_json(c, 201, json_pack("{s:s}", "Id", e->id));
}

/* Spawns the helper with stdout/stderr on out_fd/err_fd (or /dev/null). */
static int spawn_exec_helper(struct silod *d, const char *container_id, json_t *process, int out_fd, int err_fd,
                             pid_t *ret_pid, silo_error *err)
{
        _cleanup_free_ char *text = json_dumps(process, JSON_COMPACT);
        if (!text)
                return silo_error_set(err, ENOMEM, "exec");
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
        if (out_fd >= 0)
                posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
        else
                posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_RDWR, 0);
        if (err_fd >= 0)
                posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
        else
                posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_RDWR, 0);
        posix_spawnattr_t attr;
        spawnattr_init_clean_signals(&attr);
        char *argv[] = { d->monitor_path, "--exec", (char *) container_id, d->runtime_root, text, NULL };
        int r = posix_spawn(ret_pid, d->monitor_path, &fa, &attr, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return silo_error_set(err, r, "spawn %s", d->monitor_path);
        return 0;
}

static void exec_finished(struct silod *d, struct exec_rec *e, pid_t pid)
{
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        pthread_mutex_lock(&d->lock);
        e->running = false;
        e->exited = true;
        e->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        pthread_cond_broadcast(&d->changed);
        pthread_mutex_unlock(&d->lock);
}

struct exec_attach {
        struct silod *d;
        struct exec_rec *e;
        int out, err;                   /* our pipe ends */
        pid_t pid;
        MHD_socket sock;
        struct MHD_UpgradeResponseHandle *urh;
};

static bool send_frame(int sock, int stream, const char *data, size_t len)
{
        unsigned char hdr[SILO_LOG_HEADER] = { (unsigned char) stream, 0, 0, 0, (unsigned char) (len >> 24),
                                               (unsigned char) (len >> 16), (unsigned char) (len >> 8),
                                               (unsigned char) len };
        const char *parts[2] = { (const char *) hdr, data };
        size_t sizes[2] = { sizeof(hdr), len };
        for (int i = 0; i < 2; i++) {
                const char *p = parts[i];
                size_t left = sizes[i];
                while (left > 0) {
                        ssize_t n = send(sock, p, left, MSG_NOSIGNAL);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0 && errno == EAGAIN) {
                                struct pollfd pf = { sock, POLLOUT, 0 };
                                if (poll(&pf, 1, 30000) <= 0)
                                        return false;
                                continue;
                        }
                        if (n <= 0)
                                return false;
                        p += n;
                        left -= (size_t) n;
                }
        }
        return true;
}

static void *exec_attach_thread(void *userdata)
{
        struct exec_attach *a = userdata;
        struct silod *d = a->d;
        bool out_open = true, err_open = true, client = true, stopping = false;
        while (out_open || err_open) {
                pthread_mutex_lock(&d->lock);
                stopping = d->stopping;
                pthread_mutex_unlock(&d->lock);
                /* silod stops: the connection must close; the exec goes on. */
                if (stopping)
                        break;
                struct pollfd p[3] = {
                        { out_open ? a->out : -1, POLLIN, 0 },
                        { err_open ? a->err : -1, POLLIN, 0 },
                        { client ? a->sock : -1, POLLRDHUP, 0 },
                };
                if (poll(p, 3, 1000) < 0 && errno != EINTR)
                        break;
                for (int i = 0; i < 2; i++) {
                        if (!p[i].revents)
                                continue;
                        char buf[32768];
                        ssize_t n = read(i == 0 ? a->out : a->err, buf, sizeof(buf));
                        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (n <= 0) {
                                if (i == 0)
                                        out_open = false;
                                else
                                        err_open = false;
                                continue;
                        }
                        if (client && !send_frame(a->sock, i + 1, buf, (size_t) n))
                                client = false;
                }
                if (client && (p[2].revents & (POLLHUP | POLLERR))) {
                        /* The client left: the helper goes, the process stays. */
                        client = false;
                        kill(a->pid, SIGKILL);
                }
        }
        close(a->out);
        close(a->err);
        if (!stopping)
                exec_finished(d, a->e, a->pid);
        MHD_upgrade_action(a->urh, MHD_UPGRADE_ACTION_CLOSE);
        free(a);
        pthread_mutex_lock(&d->lock);
        d->attach_threads--;
        pthread_cond_broadcast(&d->changed);
        pthread_mutex_unlock(&d->lock);
        return NULL;
}

static void exec_upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in,
                          size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
        (void) c;
        (void) con_cls;
        (void) extra_in;
        (void) extra_in_size;
        struct exec_attach *a = cls;
        a->sock = sock;
        a->urh = urh;
        int flags = fcntl(sock, F_GETFL);
        if (flags >= 0)
                fcntl(sock, F_SETFL, flags & ~O_NONBLOCK);
        pthread_t t;
        if (pthread_create(&t, NULL, exec_attach_thread, a) == 0) {
                pthread_detach(t);
                return;
        }
        /* No thread: finish inline without streaming. */
        close(a->out);
        close(a->err);
        exec_finished(a->d, a->e, a->pid);
        pthread_mutex_lock(&a->d->lock);
        a->d->attach_threads--;
        pthread_mutex_unlock(&a->d->lock);
        free(a);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

static void *exec_detached_thread(void *userdata)
{
        struct exec_attach *a = userdata;
        exec_finished(a->d, a->e, a->pid);
        free(a);
        return NULL;
}

struct exec_start_body {
        bool detach;
        bool tty;
};

static const struct silo_json_field exec_start_fields[] = {
        { "Detach", SILO_JSON_BOOL, offsetof(struct exec_start_body, detach), SILO_JSON_NULLABLE },
        { "Tty", SILO_JSON_BOOL, offsetof(struct exec_start_body, tty), SILO_JSON_NULLABLE },
        {}
};

static enum MHD_Result exec_start(struct silod *d, struct MHD_Connection *c, struct request *req, const char *id)
{
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *body = NULL;
        int r = request_json(req, &body, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        struct exec_start_body b = {};
        if (silo_json_dispatch(body, "", exec_start_fields, &b, &err) < 0)
                return reply_error(c, 400, "%s", err.message);
        if (b.tty)
                return reply_error(c, 501, "exec with a terminal is not supported by silod yet");
        bool upgrade = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_UPGRADE) != NULL;
        pthread_mutex_lock(&d->lock);
        struct exec_rec *e = exec_lookup_locked(d, id);
        if (!e) {
                pthread_mutex_unlock(&d->lock);
                return reply_error(c, 404, "No such exec instance: %s", id);
        }
        if (!b.detach && !upgrade) {
                pthread_mutex_unlock(&d->lock);
                return reply_error(c, 400, "exec start needs a hijacked connection (Upgrade: tcp) unless Detach");
        }
        if (e->started) {
                pthread_mutex_unlock(&d->lock);
                return reply_error(c, 409, "Exec %s has already been started", id);
        }
        e->started = true;
        e->running = true;
        json_t *process = json_incref(e->process);
        char container_id[65];
        snprintf(container_id, sizeof(container_id), "%s", e->container_id);
        pthread_mutex_unlock(&d->lock);

        struct exec_attach *a = calloc(1, sizeof(*a));
        int outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
        r = !a ? silo_error_set(&err, ENOMEM, "exec") : 0;
        if (r == 0 && !b.detach && (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0))
                r = silo_error_set(&err, errno, "pipe");
        if (r == 0)
                r = spawn_exec_helper(d, container_id, process, outp[1], errp[1], a ? &a->pid : NULL, &err);
        json_decref(process);
        silo_close_reset(&outp[1]);
        silo_close_reset(&errp[1]);
        if (r < 0) {
                silo_close_reset(&outp[0]);
                silo_close_reset(&errp[0]);
                free(a);
                pthread_mutex_lock(&d->lock);
                e->running = false;
                e->exited = true;
                e->exit_code = 126;
                pthread_mutex_unlock(&d->lock);
                return reply_errno(c, r, &err);
        }
        a->d = d;
        a->e = e;
        if (b.detach) {
                pthread_t t;
                if (pthread_create(&t, NULL, exec_detached_thread, a) == 0)
                        pthread_detach(t);
                else
                        exec_detached_thread(a);
                return reply_empty(c, 200);
        }
        a->out = outp[0];
        a->err = errp[0];
        pthread_mutex_lock(&d->lock);
        d->attach_threads++;
        pthread_mutex_unlock(&d->lock);
        struct MHD_Response *resp = MHD_create_response_for_upgrade(exec_upgraded, a);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "tcp");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "Upgrade");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/vnd.docker.multiplexed-stream");
        add_common_headers(resp);
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
        MHD_destroy_response(resp);
        return ret;
}

static enum MHD_Result exec_inspect(struct silod *d, struct MHD_Connection *c, const char *id)
{
        pthread_mutex_lock(&d->lock);
        struct exec_rec *e = exec_lookup_locked(d, id);
        if (!e) {
                pthread_mutex_unlock(&d->lock);
                return reply_error(c, 404, "No such exec instance: %s", id);
        }
        json_t *args = json_object_get(e->process, "args");
        json_t *rest = json_array();
        for (size_t i = 1; i < json_array_size(args); i++)
                json_array_append(rest, json_array_get(args, i));
        json_t *doc = json_pack("{s:s, s:s, s:b, s:o, s:{s:b, s:O, s:o}, s:b, s:b, s:b, s:i}", "ID", e->id,
                                "ContainerID", e->container_id, "Running", e->running, "ExitCode",
                                e->exited ? json_integer(e->exit_code) : json_null(), "ProcessConfig", "tty", 0,
                                "entrypoint", json_array_get(args, 0), "arguments", rest, "OpenStdin", 0,
                                "OpenStdout", 1, "OpenStderr", 1, "Pid", 0);
        pthread_mutex_unlock(&d->lock);
        return reply_json(c, 200, doc);
}

enum MHD_Result handle_exec(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                            const char *path)
{
        const char *slash = strchr(path, '/');
        if (!slash)
                return reply_error(c, 404, "page not found: %s /exec/%s", method, path);
        _cleanup_free_ char *id = strndup(path, (size_t) (slash - path));
        if (!id)
                return MHD_NO;
        if (strcmp(method, "POST") == 0 && strcmp(slash, "/start") == 0)
                return exec_start(d, c, req, id);
        if (strcmp(method, "GET") == 0 && strcmp(slash, "/json") == 0)
                return exec_inspect(d, c, id);
        if (strcmp(method, "POST") == 0 && strcmp(slash, "/resize") == 0)
                return reply_error(c, 501, "exec resize: exec terminals are not supported yet");
        return reply_error(c, 404, "page not found: %s /exec/%s", method, path);
}
