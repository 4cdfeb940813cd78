/* Exec: POST /containers/{id}/exec, POST /exec/{id}/start (hijacked or
 * detached, with or without a terminal and stdin), POST /exec/{id}/resize,
 * GET /exec/{id}/json.
 *
 * Each exec runs in a `silo-monitor --exec` helper (silod never forks after
 * its threads exist).  Without a terminal the process's stdio are pipes
 * silod frames onto the connection (stdin a pipe when AttachStdin).  With a
 * terminal silod listens on a console socket in STATE/tmp and the runtime
 * hands it the pty master: silod copies the master raw to and from the
 * connection and resizes it directly (TIOCSWINSZ).  One thread per started
 * exec, attached or detached, waits for the helper and records the exit. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "process/container.h"
#include "silod.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

extern char **environ;

#define EXEC_TTY_MAX 0xffff

struct exec_rec {
        struct exec_rec *next;
        char id[65];
        char container_id[65];
        json_t *process;                /* OCI process object */
        bool tty, open_stdin, open_stdout, open_stderr;
        bool started, running, exited;
        int exit_code;
        pid_t pid;                      /* the process (from the helper's pid file), 0 unknown */
        int master;                     /* pty master while a terminal exec runs, else -1 */
        unsigned rows, cols;            /* last requested size (applied when the master arrives) */
};

static void exec_rec_free(struct exec_rec *e)
{
        json_decref(e->process);
        free(e);
}

void execs_free(struct silod *d)
{
        while (d->execs) {
                struct exec_rec *e = d->execs;
                d->execs = e->next;
                exec_rec_free(e);
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
                        exec_rec_free(e);
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

struct console_size {
        bool set;
        unsigned rows, cols;
};

/* ConsoleSize: [height, width] (API 1.42). */
static int parse_console_size(json_t *v, const char *path, void *field, silo_error *err)
{
        struct console_size *cs = field;
        json_t *h = json_array_get(v, 0), *w = json_array_get(v, 1);
        if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_integer(h) || !json_is_integer(w) ||
            json_integer_value(h) < 0 || json_integer_value(h) > EXEC_TTY_MAX || json_integer_value(w) < 0 ||
            json_integer_value(w) > EXEC_TTY_MAX)
                return silo_error_msg(err, EINVAL, "%s: expected [height, width] (0..%d), got %s", path, EXEC_TTY_MAX,
                                      silo_json_type_name(v));
        cs->set = json_integer_value(h) > 0 || json_integer_value(w) > 0;
        cs->rows = (unsigned) json_integer_value(h);
        cs->cols = (unsigned) json_integer_value(w);
        return 0;
}

struct exec_body {
        const char **cmd;
        const char **env;
        const char *working_dir;
        const char *user;
        bool tty;
        bool attach_stdin, attach_stdout, attach_stderr;
        bool privileged;
        struct console_size size;
};

static const struct silo_json_field exec_fields[] = {
        { "Cmd", SILO_JSON_STRV, offsetof(struct exec_body, cmd), SILO_JSON_REQUIRED },
        { "Env", SILO_JSON_STRV, offsetof(struct exec_body, env), SILO_JSON_NULLABLE },
        { "WorkingDir", SILO_JSON_STRING, offsetof(struct exec_body, working_dir), SILO_JSON_NULLABLE },
        { "User", SILO_JSON_STRING, offsetof(struct exec_body, user), SILO_JSON_NULLABLE },
        { "Tty", SILO_JSON_BOOL, offsetof(struct exec_body, tty), SILO_JSON_NULLABLE },
        { "AttachStdin", SILO_JSON_BOOL, offsetof(struct exec_body, attach_stdin), SILO_JSON_NULLABLE },
        { "AttachStdout", SILO_JSON_BOOL, offsetof(struct exec_body, attach_stdout), SILO_JSON_NULLABLE },
        { "AttachStderr", SILO_JSON_BOOL, offsetof(struct exec_body, attach_stderr), SILO_JSON_NULLABLE },
        { "Privileged", SILO_JSON_BOOL, offsetof(struct exec_body, privileged), SILO_JSON_NULLABLE },
        { "ConsoleSize", SILO_JSON_CUSTOM, offsetof(struct exec_body, size), SILO_JSON_NULLABLE, parse_console_size },
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

static bool env_has(json_t *env, const char *name)
{
        size_t len = strlen(name), i;
        json_t *v;
        json_array_foreach(env, i, v) {
                const char *s = json_string_value(v);
                if (s && strncmp(s, name, len) == 0 && s[len] == '=')
                        return true;
        }
        return false;
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
        if (b.privileged)
                return reply_error(c, 501, "Privileged: not supported by silod yet");
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        bool running = ct->status == CTR_RUNNING, paused = ct->paused;
        pthread_mutex_unlock(&d->lock);
        if (!running)
                return reply_error(c, 409, "Container %s is not running", ct->id);
        if (paused)
                return reply_error(c, 409, "Container %s is paused, unpause the container before exec", ct->id);

        /* The running container's process is the template: same
         * capabilities, rlimits, env and user unless overridden. */
        struct silo_runtime rt = { .state_root = d->runtime_root };
        _cleanup_json_ json_t *config = NULL;
        r = silo_container_config(&rt, ct->id, &config, &err);
        if (r < 0)
                return reply_errno(c, r == -ENOENT ? -EBUSY : r, &err);
        _cleanup_json_ json_t *process = json_deep_copy(json_object_get(config, "process"));
        if (!json_is_object(process))
                return reply_error(c, 500, "container %s: no process in its config", ct->id);
        json_t *args = json_array();
        for (const char **a = b.cmd; *a; a++)
                json_array_append_new(args, json_string(*a));
        json_object_set_new(process, "args", args);
        json_object_set_new(process, "terminal", json_boolean(b.tty));
        json_object_del(process, "consoleSize");
        if (b.tty && b.size.set)
                json_object_set_new(process, "consoleSize",
                                    json_pack("{s:i, s:i}", "height", (int) b.size.rows, "width", (int) b.size.cols));
        json_t *penv = json_object_get(process, "env");
        if (!json_is_array(penv)) {
                penv = json_array();
                json_object_set_new(process, "env", penv);
        }
        for (const char **e = b.env; e && *e; e++)
                json_array_append_new(penv, json_string(*e));
        /* As docker: a terminal exec gets a TERM unless it brings one. */
        if (b.tty && !env_has(penv, "TERM"))
                json_array_append_new(penv, json_string("TERM=xterm"));
        if (b.working_dir && *b.working_dir)
                json_object_set_new(process, "cwd", json_string(b.working_dir));
        if (b.user && *b.user && parse_user(b.user, process, &err) < 0)
                return reply_error(c, 501, "%s", err.message);
        struct exec_rec *e = calloc(1, sizeof(*e));
        if (!e)
                return reply_error(c, 500, "out of memory");
        silo_random_hex(e->id, 64);
        e->id[64] = 0;
        snprintf(e->container_id, sizeof(e->container_id), "%s", ct->id);
        e->process = TAKE_PTR(process);
        e->tty = b.tty;
        e->open_stdin = b.attach_stdin;
        e->open_stdout = b.attach_stdout;
        e->open_stderr = b.attach_stderr;
        e->master = -1;
        if (b.size.set) {
                e->rows = b.size.rows;
                e->cols = b.size.cols;
        }
        pthread_mutex_lock(&d->lock);
        e->next = d->execs;
        d->execs = e;
        events_exec_locked(d, e->container_id, "exec_create", e->process, e->id, -1);
        pthread_mutex_unlock(&d->lock);
        return reply_json(c, 201, json_pack("{s:s}", "Id", e->id));
}

/* ---- the running exec ---- */

struct exec_session {
        struct silod *d;
        struct exec_rec *e;
        pid_t helper;
        int helper_pidfd;
        int out, err;                   /* helper's stdout/stderr pipes (our ends); -1 closed */
        int in;                         /* stdin pipe (no terminal, AttachStdin) */
        int console_listen;             /* terminal: the runtime connects here once */
        int master;                     /* terminal: our copy, e->master is the shared one */
        char *console_path, *pid_path;  /* in STATE/tmp, removed at the end */
        MHD_socket sock;                /* the hijacked connection, -1 detached */
        struct MHD_UpgradeResponseHandle *urh;
        bool stdin_wanted;
        bool stdin_eof;                 /* the client half-closed or left: stdin is at its end */
        char inbuf[16384];              /* client bytes not yet taken by the process */
        size_t in_len, in_off;
};

static void session_free(struct exec_session *s)
{
        silo_close_reset(&s->helper_pidfd);
        silo_close_reset(&s->out);
        silo_close_reset(&s->err);
        silo_close_reset(&s->in);
        silo_close_reset(&s->console_listen);
        silo_close_reset(&s->master);
        if (s->console_path)
                unlink(s->console_path);
        if (s->pid_path)
                unlink(s->pid_path);
        free(s->console_path);
        free(s->pid_path);
        free(s);
}

static bool send_frame(int sock, int stream, const char *data, size_t len)
{
        unsigned char hdr[SILO_LOG_HEADER];
        silo_log_header(hdr, stream, 0, len);
        return socket_send_all(sock, hdr, sizeof(hdr)) && socket_send_all(sock, data, len);
}

/* The client left: its stdin ends (a pipe closes, a terminal gets its EOF
 * character, now or when the master arrives), the process goes on. */
static void session_stdin_eof(struct exec_session *s)
{
        if (s->stdin_eof)
                return;
        s->stdin_eof = true;
        silo_close_reset(&s->in);
        if (s->e->tty && s->master >= 0 && s->stdin_wanted)
                (void) !write(s->master, "\004", 1);
}

static void session_client_gone(struct exec_session *s)
{
        s->sock = -1;
        s->in_len = s->in_off = 0;
        session_stdin_eof(s);
}

/* Output to the client: raw with a terminal, stdcopy-framed without. */
static void session_output(struct exec_session *s, int stream, const char *data, size_t len)
{
        if (s->sock < 0)
                return;
        bool ok = s->e->tty ? socket_send_all(s->sock, data, len) : send_frame(s->sock, stream, data, len);
        if (!ok)
                session_client_gone(s);         /* the process goes on */
}

/* One read from fd to the client; false at EOF/EIO (the fd is done). */
static bool session_pump(struct exec_session *s, int fd, int stream)
{
        char buf[32768];
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0)
                return errno == EINTR || errno == EAGAIN;
        if (n == 0)
                return false;
        session_output(s, stream, buf, (size_t) n);
        return true;
}

static int recv_master(int listen_fd)
{
        _cleanup_close_ int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0)
                return -1;
        struct pollfd p = { conn, POLLIN, 0 };
        if (poll(&p, 1, 5000) <= 0)
                return -1;
        int master = silo_console_receive(conn, NULL);
        return master < 0 ? -1 : master;
}

static void session_got_master(struct exec_session *s, int master)
{
        struct silod *d = s->d;
        int flags = fcntl(master, F_GETFL);
        fcntl(master, F_SETFL, flags | O_NONBLOCK);
        s->master = master;
        pthread_mutex_lock(&d->lock);
        /* The size asked for before the terminal existed. */
        if (s->e->rows || s->e->cols) {
                struct winsize ws = { .ws_row = (unsigned short) s->e->rows, .ws_col = (unsigned short) s->e->cols };
                ioctl(master, TIOCSWINSZ, &ws);
        }
        s->e->master = master;
        pthread_mutex_unlock(&d->lock);
        if (s->stdin_eof && s->stdin_wanted)
                (void) !write(master, "\004", 1);
}

/* Client bytes: to the stdin pipe or the terminal, never blocking the
 * output (one buffer, refilled once the process took it). */
static void session_input(struct exec_session *s, bool *client_eof)
{
        if (s->in_len == 0) {
                ssize_t n = recv(s->sock, s->inbuf, sizeof(s->inbuf), MSG_DONTWAIT);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return;
                if (n <= 0) {
                        /* Half-close: the end of stdin.  A pipe closes; a
                         * terminal gets its EOF character, as a keyboard would. */
                        *client_eof = true;
                        if (n < 0) {
                                session_client_gone(s);
                                return;
                        }
                        session_stdin_eof(s);
                        return;
                }
                if (!s->stdin_wanted)
                        return;
                s->in_len = (size_t) n;
                s->in_off = 0;
        }
        int target = s->e->tty ? s->master : s->in;
        if (target < 0) {
                if (!s->e->tty)
                        s->in_len = 0;  /* stdin closed: dropped */
                return;
        }
        ssize_t w = write(target, s->inbuf + s->in_off, s->in_len - s->in_off);
        if (w > 0) {
                s->in_off += (size_t) w;
                if (s->in_off == s->in_len)
                        s->in_len = s->in_off = 0;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                s->in_len = s->in_off = 0;      /* the process closed its stdin */
                if (!s->e->tty)
                        silo_close_reset(&s->in);
        }
}

static int exit_code_of(int status)
{
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void *exec_session_thread(void *userdata)
{
        struct exec_session *s = userdata;
        struct silod *d = s->d;
        struct exec_rec *e = s->e;
        bool exited = false, stopping = false, client_eof = false;
        int status = 0;
        struct timespec exit_time = {};
        for (;;) {
                pthread_mutex_lock(&d->lock);
                stopping = d->stopping;
                pthread_mutex_unlock(&d->lock);
                /* silod stops: the connection must close; the exec goes on. */
                if (stopping)
                        break;
                bool out_open = s->out >= 0 || s->err >= 0 || s->master >= 0;
                /* After the exit: what is buffered, for 2 s at most (a
                 * background child holding the output must not keep the
                 * client attached forever). */
                if (exited && !out_open)
                        break;
                if (exited) {
                        struct timespec now;
                        clock_gettime(CLOCK_MONOTONIC, &now);
                        if (now.tv_sec - exit_time.tv_sec > 2)
                                break;
                }
                bool pending_in = s->in_len > 0;
                int in_target = e->tty ? s->master : s->in;
                struct pollfd p[7] = {
                        { s->out, POLLIN, 0 },
                        { s->err, POLLIN, 0 },
                        { s->master, POLLIN, 0 },
                        { s->console_listen, POLLIN, 0 },
                        { exited ? -1 : s->helper_pidfd, POLLIN, 0 },
                        { s->sock >= 0 && !client_eof && !pending_in ? s->sock : -1, POLLIN | POLLRDHUP, 0 },
                        { pending_in ? in_target : -1, POLLOUT, 0 },
                };
                int n = poll(p, 7, exited ? 200 : 1000);
                if (n < 0 && errno != EINTR)
                        break;
                if (n == 0 && exited)
                        break;
                if (p[0].revents && !session_pump(s, s->out, 1))
                        silo_close_reset(&s->out);
                if (p[1].revents && !session_pump(s, s->err, 2))
                        silo_close_reset(&s->err);
                if (p[2].revents && !session_pump(s, s->master, 1)) {
                        pthread_mutex_lock(&d->lock);
                        e->master = -1;
                        pthread_mutex_unlock(&d->lock);
                        silo_close_reset(&s->master);
                }
                if (p[3].revents) {
                        int master = recv_master(s->console_listen);
                        silo_close_reset(&s->console_listen);
                        if (master >= 0)
                                session_got_master(s, master);
                }
                if (s->sock >= 0 && (p[5].revents & (POLLHUP | POLLERR)) && !(p[5].revents & POLLIN))
                        session_client_gone(s); /* the process goes on, output is dropped */
                else if (p[5].revents || p[6].revents)
                        session_input(s, &client_eof);
                if (!exited && p[4].revents) {
                        pid_t w = waitpid(s->helper, &status, WNOHANG);
                        if (w == s->helper || (w < 0 && errno == ECHILD)) {
                                exited = true;
                                clock_gettime(CLOCK_MONOTONIC, &exit_time);
                        }
                }
                if (exited)
                        silo_close_reset(&s->console_listen);
        }
        if (!exited && !stopping) {
                while (waitpid(s->helper, &status, 0) < 0 && errno == EINTR)
                        ;
                exited = true;
        }
        pthread_mutex_lock(&d->lock);
        e->master = -1;
        if (exited) {
                e->running = false;
                e->exited = true;
                e->exit_code = exit_code_of(status);
                events_exec_locked(d, e->container_id, "exec_die", e->process, e->id, e->exit_code);
        }
        pthread_cond_broadcast(&d->changed);
        pthread_mutex_unlock(&d->lock);
        if (s->urh)
                MHD_upgrade_action(s->urh, MHD_UPGRADE_ACTION_CLOSE);
        session_free(s);
        attach_thread_done(d);
        return NULL;
}

static void session_run(struct exec_session *s)
{
        struct silod *d = s->d;
        pthread_mutex_lock(&d->lock);
        d->attach_threads++;
        pthread_mutex_unlock(&d->lock);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int r = pthread_create(&t, &attr, exec_session_thread, s);
        pthread_attr_destroy(&attr);
        if (r != 0) {
                /* No thread: the exec runs unattended; record what we can. */
                s->sock = -1;
                exec_session_thread(s);
        }
}

/* The client left before the upgrade: the exec runs unattended. */
static void exec_abandoned(void *cls)
{
        struct exec_session *s = cls;
        struct silod *d = s->d;
        pthread_mutex_lock(&d->lock);
        bool stopping = d->stopping;
        pthread_mutex_unlock(&d->lock);
        /* MHD_stop_daemon() closing connections: no new thread may outlive
         * the exec records it would use. */
        if (stopping) {
                session_free(s);
                return;
        }
        session_client_gone(s);
        session_run(s);
}

static void exec_upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in,
                          size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
        (void) c;
        (void) extra_in;
        (void) extra_in_size;
        struct request *req = con_cls;
        if (req)
                req->abandoned = NULL;
        struct exec_session *s = cls;
        s->sock = sock;
        s->urh = urh;
        int flags = fcntl(sock, F_GETFL);
        if (flags >= 0)
                fcntl(sock, F_SETFL, flags & ~O_NONBLOCK);
        session_run(s);
}

/* Binds a listening console socket at STATE/tmp/NAME (by a /proc/self/fd
 * path: STATE may be longer than sun_path). */
static int console_listen(int tmpfd, const char *name, silo_error *err)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", tmpfd, name);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return silo_error_set(err, errno, "console socket");
        unlinkat(tmpfd, name, 0);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 1) < 0)
                return silo_error_set(err, errno, "bind console socket %s", name);
        return TAKE_FD(fd);
}

/* Spawns the helper: cwd STATE/tmp (console socket and pid file are named
 * relative to it), stdio the given fds (-1: /dev/null). */
static int spawn_exec_helper(struct silod *d, struct exec_rec *e, json_t *process, int in_fd, int out_fd,
                             int err_fd, const char *console_name, const char *pid_name, const char *tmpdir,
                             pid_t *ret_pid, silo_error *err)
{
        _cleanup_free_ char *text = json_dumps(process, JSON_COMPACT);
        if (!text)
                return silo_error_set(err, ENOMEM, "exec");
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        int fds[3] = { in_fd, out_fd, err_fd };
        for (int i = 0; i < 3; i++) {
                if (fds[i] >= 0)
                        posix_spawn_file_actions_adddup2(&fa, fds[i], i);
                else
                        posix_spawn_file_actions_addopen(&fa, i, "/dev/null", O_RDWR, 0);
        }
        posix_spawn_file_actions_addchdir_np(&fa, tmpdir);
        posix_spawnattr_t attr;
        spawnattr_init_clean_signals(&attr);
        char *argv[10] = { d->monitor_path, "--exec", e->container_id, d->runtime_root, text };
        int argc = 5;
        argv[argc++] = "--pid-file";
        argv[argc++] = (char *) pid_name;
        if (console_name) {
                argv[argc++] = "--console-socket";
                argv[argc++] = (char *) console_name;
        }
        argv[argc] = NULL;
        int r = posix_spawn(ret_pid, d->monitor_path, &fa, &attr, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return silo_error_set(err, r, "spawn %s", d->monitor_path);
        return 0;
}

/* Prepares the pipes/console socket and spawns the helper. */
static int session_start(struct exec_session *s, json_t *process, bool attached, silo_error *err)
{
        struct silod *d = s->d;
        struct exec_rec *e = s->e;
        _cleanup_free_ char *tmpdir = NULL;
        if (asprintf(&tmpdir, "%s/tmp", d->state) < 0)
                return silo_error_set(err, ENOMEM, "exec");
        _cleanup_close_ int tmpfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (tmpfd < 0)
                return silo_error_set(err, errno, "open %s", tmpdir);
        char console_name[64], pid_name[64];
        snprintf(console_name, sizeof(console_name), "exec-%.16s.sock", e->id);
        snprintf(pid_name, sizeof(pid_name), "exec-%.16s.pid", e->id);
        if (asprintf(&s->pid_path, "%s/%s", tmpdir, pid_name) < 0) {
                s->pid_path = NULL;
                return silo_error_set(err, ENOMEM, "exec");
        }
        int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, inp[2] = { -1, -1 };
        int r = 0;
        if (e->tty) {
                s->console_listen = console_listen(tmpfd, console_name, err);
                if (s->console_listen < 0)
                        return s->console_listen;
                if (asprintf(&s->console_path, "%s/%s", tmpdir, console_name) < 0) {
                        s->console_path = NULL;
                        return silo_error_set(err, ENOMEM, "exec");
                }
        }
        /* The helper's own messages (a failed start) reach the client too:
         * with a terminal they share one pipe. */
        if (pipe2(outp, O_CLOEXEC) < 0 || (!e->tty && pipe2(errp, O_CLOEXEC) < 0) ||
            (!e->tty && attached && e->open_stdin && pipe2(inp, O_CLOEXEC) < 0)) {
                r = silo_error_set(err, errno, "pipe");
                goto out;
        }
        r = spawn_exec_helper(d, e, process, inp[0], outp[1], e->tty ? outp[1] : errp[1],
                              e->tty ? console_name : NULL, pid_name, tmpdir, &s->helper, err);
        if (r < 0)
                goto out;
        s->helper_pidfd = (int) syscall(SYS_pidfd_open, s->helper, 0);
        s->out = TAKE_FD(outp[0]);
        s->err = TAKE_FD(errp[0]);
        s->in = TAKE_FD(inp[1]);
        if (s->in >= 0)
                fcntl(s->in, F_SETFL, O_NONBLOCK);
out:
        for (int i = 0; i < 2; i++) {
                silo_close_reset(&outp[i]);
                silo_close_reset(&errp[i]);
                silo_close_reset(&inp[i]);
        }
        return r;
}

struct exec_start_body {
        bool detach;
        bool tty;
        struct console_size size;
};

static const struct silo_json_field exec_start_fields[] = {
        { "Detach", SILO_JSON_BOOL, offsetof(struct exec_start_body, detach), SILO_JSON_NULLABLE },
        { "Tty", SILO_JSON_BOOL, offsetof(struct exec_start_body, tty), SILO_JSON_NULLABLE },
        { "ConsoleSize", SILO_JSON_CUSTOM, offsetof(struct exec_start_body, size), SILO_JSON_NULLABLE,
          parse_console_size },
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
        struct ctr *ct = lookup_locked(d, e->container_id);
        if (ct)
                ctr_refresh_locked(d, ct);
        if (!ct || ct->status != CTR_RUNNING || ct->paused) {
                pthread_mutex_unlock(&d->lock);
                return reply_error(c, 409, "Container %.12s is %s", e->container_id,
                                   ct && ct->paused ? "paused" : "not running");
        }
        if (b.tty != e->tty) {
                /* The terminal was decided at create; start's Tty must agree
                 * (docker's CLI sends the same value). */
                pthread_mutex_unlock(&d->lock);
                return reply_error(c, 400, "Tty: exec %s was created with Tty=%s", id, e->tty ? "true" : "false");
        }
        e->started = true;
        e->running = true;
        if (b.size.set) {
                e->rows = b.size.rows;
                e->cols = b.size.cols;
                json_object_set_new(e->process, "consoleSize",
                                    json_pack("{s:i, s:i}", "height", (int) e->rows, "width", (int) e->cols));
        }
        json_t *process = json_incref(e->process);
        pthread_mutex_unlock(&d->lock);

        struct exec_session *s = calloc(1, sizeof(*s));
        if (!s) {
                json_decref(process);
                r = silo_error_set(&err, ENOMEM, "exec");
        } else {
                *s = (struct exec_session) { .d = d, .e = e, .helper_pidfd = -1, .out = -1, .err = -1, .in = -1,
                                             .console_listen = -1, .master = -1, .sock = -1,
                                             .stdin_wanted = e->open_stdin };
                r = session_start(s, process, !b.detach, &err);
                json_decref(process);
        }
        if (r < 0) {
                if (s)
                        session_free(s);
                pthread_mutex_lock(&d->lock);
                e->running = false;
                e->exited = true;
                e->exit_code = 126;
                pthread_mutex_unlock(&d->lock);
                return reply_errno(c, r, &err);
        }
        events_exec(d, e->container_id, "exec_start", e->process, e->id, -1);
        if (b.detach) {
                session_run(s);
                return reply_empty(c, 200);
        }
        struct MHD_Response *resp = MHD_create_response_for_upgrade(exec_upgraded, s);
        if (!resp) {
                session_run(s);         /* unattended: the exit is still recorded */
                return MHD_NO;
        }
        add_hijack_headers(resp, e->tty);
        req->abandoned = exec_abandoned;
        req->abandoned_cls = s;
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* h and w query parameters of a resize (0..65535). */
int parse_resize_query(struct MHD_Connection *c, unsigned *ret_rows, unsigned *ret_cols, char *msg, size_t msg_size)
{
        const char *names[2] = { "h", "w" };
        unsigned vals[2];
        for (int i = 0; i < 2; i++) {
                const char *v = query(c, names[i]);
                char *end = NULL;
                long n = v && *v ? strtol(v, &end, 10) : -1;
                if (!v || !*v || *end || n < 0 || n > EXEC_TTY_MAX) {
                        snprintf(msg, msg_size, "invalid or missing \"%s\": %s (expected 0..%d)", names[i],
                                 v ? v : "(none)", EXEC_TTY_MAX);
                        return -EINVAL;
                }
                vals[i] = (unsigned) n;
        }
        *ret_rows = vals[0];
        *ret_cols = vals[1];
        return 0;
}

static enum MHD_Result exec_resize(struct silod *d, struct MHD_Connection *c, const char *id)
{
        unsigned rows, cols;
        char msg[256];
        if (parse_resize_query(c, &rows, &cols, msg, sizeof(msg)) < 0)
                return reply_error(c, 400, "%s", msg);
        pthread_mutex_lock(&d->lock);
        struct exec_rec *e = exec_lookup_locked(d, id);
        if (!e) {
                pthread_mutex_unlock(&d->lock);
                return reply_error(c, 404, "No such exec instance: %s", id);
        }
        if (!e->tty) {
                pthread_mutex_unlock(&d->lock);
                return reply_error(c, 409, "exec %s has no terminal (created without Tty)", id);
        }
        if (e->exited) {
                pthread_mutex_unlock(&d->lock);
                return reply_error(c, 409, "exec %s is not running", id);
        }
        /* Before the terminal exists the size is kept and applied when the
         * master arrives (the CLI resizes right after start). */
        e->rows = rows;
        e->cols = cols;
        int r = 0;
        if (e->master >= 0) {
                struct winsize ws = { .ws_row = (unsigned short) rows, .ws_col = (unsigned short) cols };
                r = ioctl(e->master, TIOCSWINSZ, &ws) < 0 ? -errno : 0;
        }
        pthread_mutex_unlock(&d->lock);
        if (r < 0)
                return reply_error(c, 500, "resize exec %s: %s", id, strerror(-r));
        return reply_empty(c, 200);
}

static enum MHD_Result exec_inspect(struct silod *d, struct MHD_Connection *c, const char *id)
{
        pthread_mutex_lock(&d->lock);
        struct exec_rec *e = exec_lookup_locked(d, id);
        if (!e) {
                pthread_mutex_unlock(&d->lock);
                return reply_error(c, 404, "No such exec instance: %s", id);
        }
        if (e->running && e->pid == 0) {
                /* The helper writes it once the process runs. */
                _cleanup_free_ char *path = NULL, *text = NULL;
                if (asprintf(&path, "%s/tmp/exec-%.16s.pid", d->state, e->id) >= 0 &&
                    silo_read_file_at(AT_FDCWD, path, 32, &text, NULL, NULL) == 0)
                        e->pid = (pid_t) atoi(text);
        }
        json_t *args = json_object_get(e->process, "args");
        json_t *rest = json_array();
        for (size_t i = 1; i < json_array_size(args); i++)
                json_array_append(rest, json_array_get(args, i));
        json_t *user = json_object_get(e->process, "user");
        char user_text[64] = "";
        if (json_is_object(user))
                snprintf(user_text, sizeof(user_text), "%lld:%lld",
                         (long long) json_integer_value(json_object_get(user, "uid")),
                         (long long) json_integer_value(json_object_get(user, "gid")));
        json_t *doc = json_pack("{s:s, s:s, s:b, s:o, s:{s:b, s:O, s:o, s:b, s:s}, s:b, s:b, s:b, s:b, s:s, s:i}",
                                "ID", e->id, "ContainerID", e->container_id, "Running", e->running, "ExitCode",
                                e->exited ? json_integer(e->exit_code) : json_null(), "ProcessConfig", "tty", e->tty,
                                "entrypoint", json_array_get(args, 0), "arguments", rest, "privileged", 0, "user",
                                user_text, "OpenStdin", e->open_stdin, "OpenStdout", e->open_stdout, "OpenStderr",
                                e->open_stderr, "CanRemove", 0, "DetachKeys", "", "Pid",
                                e->running ? (int) e->pid : 0);
        pthread_mutex_unlock(&d->lock);
        return reply_json(c, 200, doc);
}

enum MHD_Result handle_exec(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                            const char *path)
{
        const char *slash = strchr(path, '/');
        if (!slash)
                return reply_no_route(c, method, "/exec/%s", path);
        _cleanup_free_ char *id = strndup(path, (size_t) (slash - path));
        if (!id)
                return MHD_NO;
        if (strcmp(method, "POST") == 0 && strcmp(slash, "/start") == 0)
                return exec_start(d, c, req, id);
        if (strcmp(method, "GET") == 0 && strcmp(slash, "/json") == 0)
                return exec_inspect(d, c, id);
        if (strcmp(method, "POST") == 0 && strcmp(slash, "/resize") == 0)
                return exec_resize(d, c, id);
        return reply_no_route(c, method, "/exec/%s", path);
}
