/* The monitor: one small process per container run (the conmon role).
 * It owns the container's stdio pipes, so output is logged and the exit
 * recorded whether or not silod is running. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/engine.h"
#include "process/container.h"
#include "util/cleanup.h"
#include "util/fs.h"

/* started.json and exit.json are replaced atomically (a reader sees the old
 * file or the new one) but not fsync'd: what they describe does not survive
 * a host crash (the container and its monitor die with the kernel), and a
 * crash of silod or of the monitor loses nothing (the page cache keeps it).
 * After a power loss silod finds the monitor gone and reports the container
 * exited (255), or created if started.json was lost too.  Two durable
 * replaces cost 2-30 ms of every `docker run` on this kind of disk. */
static int write_state_json(int dirfd, const char *name, json_t *doc, silo_error *err)
{
        _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT);
        if (!text)
                return silo_error_set(err, ENOMEM, "encode %s", name);
        return silo_write_file_replace_at(dirfd, name, text, strlen(text), 0600, err);
}

static void report(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(int fd, const char *fmt, ...)
{
        if (fd < 0)
                return;
        char buf[SILO_ERROR_MAX + 64];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n > 0)
                (void) !write(fd, buf, (size_t) n < sizeof(buf) ? (size_t) n : sizeof(buf) - 1);
}

/* Points fds 0..2 at the given fds (dup2 clears O_CLOEXEC, so the container
 * init inherits them). */
static int set_stdio(int in, int out, int errfd, silo_error *err)
{
        if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0)
                return silo_error_set(err, errno, "dup2 stdio");
        return 0;
}

/* Moves one read's worth from a pipe to the log; returns 0 at EOF. */
static int pump(int pipe_fd, int stream, int logfd)
{
        char buf[32768];
        ssize_t n = read(pipe_fd, buf, sizeof(buf));
        if (n < 0)
                return errno == EINTR || errno == EAGAIN ? 1 : 0;
        if (n == 0)
                return 0;
        /* A full disk must not stop the container: output is dropped. */
        (void) silo_log_append(logfd, stream, buf, (size_t) n, NULL);
        return 1;
}

#define CONSOLE_SOCKET "console.sock"

/* A listening socket for the runtime's console protocol, bound by a path
 * relative to the container directory (absolute paths can exceed
 * sun_path); the caller's cwd is that directory while create runs. */
static int console_listen(int dirfd, silo_error *err)
{
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return silo_error_set(err, errno, "console socket");
        struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = CONSOLE_SOCKET };
        unlinkat(dirfd, CONSOLE_SOCKET, 0);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
                int r = silo_error_set(err, errno, "bind console socket");
                close(fd);
                return r;
        }
        return fd;
}

/* Receives the pty master the runtime sent during create. */
static int console_receive(int listen_fd, silo_error *err)
{
        struct pollfd p = { listen_fd, POLLIN, 0 };
        if (poll(&p, 1, 10000) <= 0)
                return silo_error_msg(err, ETIMEDOUT, "console socket: no pty master from the runtime");
        _cleanup_close_ int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0)
                return silo_error_set(err, errno, "accept console socket");
        return silo_console_receive(conn, err);
}

static int stdin_listen(silo_error *err)
{
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return silo_error_set(err, errno, "stdin socket");
        struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = SILO_ENGINE_STDIN_SOCKET };
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
                int r = silo_error_set(err, errno, "bind stdin socket");
                close(fd);
                return r;
        }
        return fd;
}

/* Stdin forwarding: one attached client at a time; its bytes go to the
 * container (non-blocking, so a container that does not read stdin cannot
 * stall the output pumping). */
struct stdin_fwd {
        int listen_fd, client, target;
        char buf[16384];
        size_t len, off;
        bool once;
};

static void stdin_close_target(struct stdin_fwd *f, bool tty)
{
        /* A pty has no EOF to send by closing: the master also carries output. */
        if (!tty)
                silo_close_reset(&f->target);
        silo_close_reset(&f->listen_fd);
}

static void stdin_events(struct stdin_fwd *f, const struct pollfd *pl, const struct pollfd *pc,
                         const struct pollfd *pt, bool tty)
{
        if (pl->revents && f->client < 0)
                f->client = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (pc->revents && f->client >= 0 && f->len == 0) {
                ssize_t n = read(f->client, f->buf, sizeof(f->buf));
                if (n > 0) {
                        f->len = (size_t) n;
                        f->off = 0;
                } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                        silo_close_reset(&f->client);
                        if (f->once)
                                stdin_close_target(f, tty);
                }
        }
        if (f->len > 0 && f->target >= 0 && (pt->revents || pc->revents)) {
                ssize_t n = write(f->target, f->buf + f->off, f->len - f->off);
                if (n > 0) {
                        f->off += (size_t) n;
                        if (f->off == f->len)
                                f->len = f->off = 0;
                } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                        f->len = f->off = 0;    /* the container closed its stdin */
                }
        }
}

/* The control socket: silod asks for terminal resizes here.  One short
 * line per connection ("resize ROWS COLS\n"), answered with "O\n" or
 * "E<message>\n"; longer messages are refused, and only root or our own
 * uid may talk to us (the directory is root's 0700 anyway). */
#define CTL_CLIENTS 4

struct ctl_client {
        int fd;
        size_t len;
        char buf[SILO_ENGINE_CONTROL_MAX];
};

struct ctl {
        int listen_fd;
        struct ctl_client clients[CTL_CLIENTS];
        unsigned next_victim;
};

static int ctl_listen(silo_error *err)
{
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return silo_error_set(err, errno, "control socket");
        struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = SILO_ENGINE_CONTROL_SOCKET };
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, CTL_CLIENTS) < 0) {
                int r = silo_error_set(err, errno, "bind control socket");
                close(fd);
                return r;
        }
        return fd;
}

static void ctl_reply(struct ctl_client *cl, const char *text)
{
        (void) !send(cl->fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
        silo_close_reset(&cl->fd);
        cl->len = 0;
}

static void ctl_command(struct ctl_client *cl, int master)
{
        unsigned rows, cols;
        int n = 0;
        cl->buf[cl->len - 1] = 0;       /* the newline */
        if (sscanf(cl->buf, "resize %u %u%n", &rows, &cols, &n) != 2 || cl->buf[n] != 0 || rows > 0xffff ||
            cols > 0xffff) {
                ctl_reply(cl, "Eunknown or malformed command\n");
                return;
        }
        if (master < 0) {
                ctl_reply(cl, "Ethe container has no terminal\n");
                return;
        }
        struct winsize ws = { .ws_row = (unsigned short) rows, .ws_col = (unsigned short) cols };
        if (ioctl(master, TIOCSWINSZ, &ws) < 0) {
                char msg[128];
                snprintf(msg, sizeof(msg), "Eresize: %s\n", strerror(errno));
                ctl_reply(cl, msg);
                return;
        }
        ctl_reply(cl, "O\n");
}

static void ctl_accept(struct ctl *c)
{
        int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
                return;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
            (cred.uid != 0 && cred.uid != geteuid())) {
                close(fd);
                return;
        }
        struct ctl_client *slot = NULL;
        for (unsigned i = 0; i < CTL_CLIENTS && !slot; i++)
                if (c->clients[i].fd < 0)
                        slot = &c->clients[i];
        if (!slot) {
                /* All busy (idle peers): the oldest-served slot makes room. */
                slot = &c->clients[c->next_victim++ % CTL_CLIENTS];
                silo_close_reset(&slot->fd);
        }
        slot->fd = fd;
        slot->len = 0;
}

static void ctl_read(struct ctl_client *cl, int master)
{
        ssize_t n = read(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                silo_close_reset(&cl->fd);
                cl->len = 0;
                return;
        }
        cl->len += (size_t) n;
        char *nl = memchr(cl->buf, '\n', cl->len);
        if (nl) {
                cl->len = (size_t) (nl - cl->buf) + 1;
                ctl_command(cl, master);
        } else if (cl->len == sizeof(cl->buf))
                ctl_reply(cl, "Econtrol message too long\n");
}

static void ctl_close(struct ctl *c)
{
        silo_close_reset(&c->listen_fd);
        for (unsigned i = 0; i < CTL_CLIENTS; i++)
                silo_close_reset(&c->clients[i].fd);
}

int silo_engine_resize(int dirfd, unsigned rows, unsigned cols, silo_error *err)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/" SILO_ENGINE_CONTROL_SOCKET, dirfd);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return silo_error_set(err, errno, "control socket");
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return silo_error_set(err, errno == ENOENT || errno == ECONNREFUSED ? ESRCH : errno,
                                      "connect to the container's monitor");
        char msg[64];
        int n = snprintf(msg, sizeof(msg), "resize %u %u\n", rows, cols);
        if (send(fd, msg, (size_t) n, MSG_NOSIGNAL) != n)
                return silo_error_set(err, errno ? errno : EIO, "send to the container's monitor");
        char reply[SILO_ENGINE_CONTROL_MAX];
        size_t len = 0;
        while (len < sizeof(reply) - 1) {
                struct pollfd p = { fd, POLLIN, 0 };
                if (poll(&p, 1, 5000) <= 0)
                        return silo_error_msg(err, ETIMEDOUT, "the container's monitor did not answer");
                ssize_t k = read(fd, reply + len, sizeof(reply) - 1 - len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                len += (size_t) k;
        }
        reply[len] = 0;
        char *nl = strchr(reply, '\n');
        if (nl)
                *nl = 0;
        if (reply[0] == 'O')
                return 0;
        if (reply[0] == 'E')
                return silo_error_msg(err, EINVAL, "%s", reply + 1);
        return silo_error_msg(err, EIO, "the container's monitor closed the control connection");
}

static int exit_code_of(int status)
{
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return 255;
}

int silo_monitor_run(const struct silo_monitor_options *o, silo_error *err)
{
        _cleanup_close_ int dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
                int r = silo_error_set(err, errno, "open %s", o->dir);
                report(o->sync_fd, "E%s\n", err->message);
                return r;
        }
        _cleanup_free_ char *bundle = NULL, *pidfile = NULL;
        if (asprintf(&bundle, "%s/" SILO_ENGINE_BUNDLE, o->dir) < 0 ||
            asprintf(&pidfile, "%s/" SILO_ENGINE_PIDFILE, o->dir) < 0)
                return silo_error_set(err, ENOMEM, "monitor");

        _cleanup_close_ int logfd = openat(dirfd, SILO_ENGINE_LOG, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
                                           0600);
        _cleanup_close_ int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        int out[2] = { -1, -1 }, errp[2] = { -1, -1 }, inp[2] = { -1, -1 };
        struct stdin_fwd fwd = { .listen_fd = -1, .client = -1, .target = -1, .once = o->stdin_once };
        struct ctl ctl = { .listen_fd = -1 };
        for (unsigned i = 0; i < CTL_CLIENTS; i++)
                ctl.clients[i].fd = -1;
        _cleanup_close_ int pidfd = -1, console_fd = -1, master = -1;
        _cleanup_json_ json_t *started = NULL, *ex = NULL;
        _cleanup_free_ char *pidtext = NULL;
        int r = 0;
        if (logfd < 0 || devnull < 0) {
                r = silo_error_set(err, errno, "open %s", logfd < 0 ? SILO_ENGINE_LOG : "/dev/null");
                goto fail;
        }
        if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
                r = silo_error_set(err, errno, "pipe");
                goto fail;
        }

        struct silo_runtime rt = { .state_root = o->runtime_root };
        struct silo_create_options copts = { .bundle = bundle, .pid_file = pidfile };
        /* Sockets are bound by names relative to the container directory
         * (absolute paths can exceed sun_path). */
        if (fchdir(dirfd) < 0) {
                r = silo_error_set(err, errno, "chdir %s", o->dir);
                goto fail;
        }
        /* Listening before the start is reported: a resize right after
         * `start` must find it. */
        unlinkat(dirfd, SILO_ENGINE_CONTROL_SOCKET, 0);
        ctl.listen_fd = ctl_listen(err);
        if (ctl.listen_fd < 0) {
                r = ctl.listen_fd;
                goto fail;
        }
        if (o->open_stdin) {
                unlinkat(dirfd, SILO_ENGINE_STDIN_SOCKET, 0);
                fwd.listen_fd = stdin_listen(err);
                if (fwd.listen_fd < 0) {
                        r = fwd.listen_fd;
                        goto fail;
                }
                if (!o->tty && pipe2(inp, O_CLOEXEC) < 0) {
                        r = silo_error_set(err, errno, "pipe");
                        goto fail;
                }
        }
        if (o->tty) {
                console_fd = console_listen(dirfd, err);
                if (console_fd < 0) {
                        r = console_fd;
                        goto fail;
                }
                copts.console_socket = CONSOLE_SOCKET;
        }
        r = set_stdio(inp[0] >= 0 ? inp[0] : devnull, out[1], errp[1], err);
        if (r < 0)
                goto fail;
        r = silo_container_create(&rt, o->id, &copts, err);
        if (r == 0 && o->tty) {
                master = console_receive(console_fd, err);
                if (master < 0) {
                        r = master;
                        silo_container_delete(&rt, o->id, true, NULL);
                }
        }
        if (o->tty) {
                unlinkat(dirfd, CONSOLE_SOCKET, 0);
                silo_close_reset(&console_fd);
        }
        (void) !chdir("/");
        if (r == 0) {
                r = silo_container_start(&rt, o->id, err);
                if (r < 0)
                        silo_container_delete(&rt, o->id, true, NULL);
        }
        (void) set_stdio(devnull, devnull, devnull, NULL);
        silo_close_reset(&out[1]);
        silo_close_reset(&errp[1]);
        silo_close_reset(&inp[0]);
        if (r < 0)
                goto fail;
        if (o->open_stdin) {
                fwd.target = o->tty ? fcntl(master, F_DUPFD_CLOEXEC, 3) : TAKE_FD(inp[1]);
                if (fwd.target >= 0)
                        fcntl(fwd.target, F_SETFL, fcntl(fwd.target, F_GETFL) | O_NONBLOCK);
        }

        r = silo_read_file_at(dirfd, SILO_ENGINE_PIDFILE, 64, &pidtext, NULL, err);
        pid_t pid = r == 0 ? (pid_t) atoi(pidtext) : 0;
        if (pid <= 0) {
                if (r == 0)
                        r = silo_error_msg(err, EBADMSG, "%s: bad pid", SILO_ENGINE_PIDFILE);
                silo_container_kill(&rt, o->id, SIGKILL, true, NULL);
                silo_container_delete(&rt, o->id, true, NULL);
                goto fail;
        }
        started = json_pack("{s:i, s:i, s:I}", "Pid", (int) pid, "MonitorPid",
                                                   (int) getpid(), "StartedAt", (json_int_t) silo_engine_now_ns());
        if (!started || write_state_json(dirfd, SILO_ENGINE_STARTED, started, err) < 0) {
                r = started ? -err->code : silo_error_set(err, ENOMEM, "started.json");
                silo_container_kill(&rt, o->id, SIGKILL, true, NULL);
                silo_container_delete(&rt, o->id, true, NULL);
                goto fail;
        }
        /* Our child, not yet reaped: the pid cannot have been reused. */
        pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        report(o->sync_fd, "O%d\n", (int) pid);
        if (o->sync_fd >= 0)
                close(o->sync_fd);
        if (o->on_running)
                o->on_running();

        int status = 0;
        bool exited = false, out_open = true, err_open = true, tty_open = master >= 0;
        while (!exited || out_open || err_open || tty_open) {
                bool pending = fwd.len > 0 && fwd.target >= 0;
                struct pollfd p[8 + CTL_CLIENTS] = {
                        { out_open ? out[0] : -1, POLLIN, 0 },
                        { err_open ? errp[0] : -1, POLLIN, 0 },
                        { exited ? -1 : pidfd, POLLIN, 0 },
                        { tty_open ? master : -1, POLLIN, 0 },
                        { fwd.client < 0 && !exited ? fwd.listen_fd : -1, POLLIN, 0 },
                        { !pending && !exited ? fwd.client : -1, POLLIN, 0 },
                        { pending && !exited ? fwd.target : -1, POLLOUT, 0 },
                        { !exited ? ctl.listen_fd : -1, POLLIN, 0 },
                };
                for (unsigned i = 0; i < CTL_CLIENTS; i++)
                        p[8 + i] = (struct pollfd) { !exited ? ctl.clients[i].fd : -1, POLLIN, 0 };
                /* After the init died the pipes close when its pid namespace
                 * is gone; a stray holder gets a second, then is ignored. */
                int n = poll(p, ARRAY_SIZE(p), exited ? 1000 : (pidfd < 0 ? 100 : 5000));
                if (n < 0 && errno != EINTR)
                        break;
                if (n == 0 && exited)
                        break;
                if (p[0].revents && !pump(out[0], 1, logfd))
                        out_open = false;
                if (p[1].revents && !pump(errp[0], 2, logfd))
                        err_open = false;
                /* EIO once the last slave fd closed. */
                if (p[3].revents && !pump(master, 1, logfd))
                        tty_open = false;
                if (!exited)
                        stdin_events(&fwd, &p[4], &p[5], &p[6], o->tty);
                for (unsigned i = 0; i < CTL_CLIENTS; i++)
                        if (p[8 + i].revents && ctl.clients[i].fd >= 0)
                                ctl_read(&ctl.clients[i], tty_open ? master : -1);
                if (p[7].revents)
                        ctl_accept(&ctl);
                if (!exited && (pidfd < 0 || p[2].revents) && waitpid(pid, &status, WNOHANG) == pid)
                        exited = true;
        }
        if (!exited)
                waitpid(pid, &status, 0);

        silo_close_reset(&fwd.client);
        silo_close_reset(&fwd.listen_fd);
        silo_close_reset(&fwd.target);
        if (o->open_stdin)
                unlinkat(dirfd, SILO_ENGINE_STDIN_SOCKET, 0);
        ctl_close(&ctl);
        unlinkat(dirfd, SILO_ENGINE_CONTROL_SOCKET, 0);
        silo_error derr = SILO_ERROR_INIT;
        silo_container_delete(&rt, o->id, true, &derr);
        ex = json_pack("{s:i, s:I, s:s}", "ExitCode", exit_code_of(status), "FinishedAt",
                                              (json_int_t) silo_engine_now_ns(), "Error", derr.message);
        r = ex ? write_state_json(dirfd, SILO_ENGINE_EXIT, ex, err) : silo_error_set(err, ENOMEM, "exit.json");
        goto done;

fail:
        report(o->sync_fd, "E%s\n", err->message);
        if (o->sync_fd >= 0)
                close(o->sync_fd);
done:
        for (int i = 0; i < 2; i++) {
                silo_close_reset(&out[i]);
                silo_close_reset(&errp[i]);
                silo_close_reset(&inp[i]);
        }
        silo_close_reset(&fwd.client);
        silo_close_reset(&fwd.listen_fd);
        silo_close_reset(&fwd.target);
        if (o->open_stdin)
                unlinkat(dirfd, SILO_ENGINE_STDIN_SOCKET, 0);
        if (ctl.listen_fd >= 0) {
                ctl_close(&ctl);
                unlinkat(dirfd, SILO_ENGINE_CONTROL_SOCKET, 0);
        }
        return r;
}
