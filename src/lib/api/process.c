/* Processes of compute systems.
 *
 * Each process gets a monitor: a child of the caller that wires the pipes
 * (or the pty) to the process's stdio, runs it through the runtime's exec,
 * records it in STATE/systems/<id>/processes/<pid>.json, waits for it and
 * records its exit code there before exiting.  The caller waits on the
 * monitor's pidfd, then reads the record: the record is written before the
 * monitor exits, so a waiter can never miss an exit, and any process can
 * wait (not only the monitor's parent). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "api/system-internal.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

struct silo_compute_process {
        silo_compute_system *sys;       /* borrowed: must outlive the handle */
        pid_t pid;
        int std_input, std_output, std_error;
        bool console;
};

/* What the monitor tells its creator once the process runs (or failed). */
struct monitor_report {
        int code;                       /* 0 or a positive errno */
        pid_t pid;
        char message[SILO_ERROR_MAX];
};

static int record_path(silo_compute_process *p, pid_t pid, char buf[PATH_MAX])
{
        char name[64];
        snprintf(name, sizeof(name), "processes/%d.json", (int) pid);
        return compute_system_dir(p->sys, buf, name);
}

static int record_load(silo_compute_process *p, json_t **ret, silo_error *err)
{
        char path[PATH_MAX];
        if (record_path(p, p->pid, path) < 0)
                return silo_error_msg(err, ENAMETOOLONG, "process record path too long");
        int r = silo_json_load_file_at(AT_FDCWD, path, 64 * 1024, ret, err);
        if (r == -ENOENT)
                return silo_error_msg(err, ESRCH, "process %d of compute system \"%s\" does not exist", (int) p->pid,
                                      p->sys->id);
        return r;
}

static int send_report(int sock, const struct monitor_report *rep, int fd)
{
        struct iovec iov = { (void *) rep, sizeof(*rep) };
        union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
        memset(&control, 0, sizeof(control));
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (fd >= 0) {
                mh.msg_control = control.buf;
                mh.msg_controllen = sizeof(control.buf);
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        }
        return sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

static ssize_t recv_report(int sock, struct monitor_report *rep, int *ret_fd)
{
        struct iovec iov = { rep, sizeof(*rep) };
        union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        *ret_fd = -1;
        ssize_t n;
        do
                n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n > 0 && cm; cm = CMSG_NXTHDR(&mh, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
                        memcpy(ret_fd, CMSG_DATA(cm), sizeof(int));
        return n;
}

static int recv_fd(int sock)
{
        char c;
        struct iovec iov = { &c, 1 };
        union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) <= 0)
                return -1;
        int fd = -1;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
                        memcpy(&fd, CMSG_DATA(cm), sizeof(int));
        return fd;
}

static int write_record(int dirfd, pid_t pid, json_t *rec)
{
        char name[64];
        snprintf(name, sizeof(name), "%d.json", (int) pid);
        _cleanup_free_ char *text = json_dumps(rec, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        return silo_write_file_replace_at(dirfd, name, text, strlen(text), 0600, NULL);
}

/* Runs the process and lives as long as it does.  stdio[] are the
 * process's ends (or -1 for /dev/null); `sock` reports to the creator. */
__attribute__((noreturn)) static void monitor(silo_compute_process *p, json_t *process, const int stdio[3], int sock,
                                              const char *procdir)
{
        struct monitor_report rep = {};
        silo_error err = SILO_ERROR_INIT;
        int master = -1;
        char console_sock[64] = "", pid_file[64];

        /* Own session: a terminal's signals for the caller are not ours. */
        setsid();
        /* Whatever the caller ignores or handles, the process starts with
         * the defaults (dispositions survive fork and ignored ones exec). */
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        signal(sig, SIG_DFL);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        /* Everything goes above 10 first: a caller without stdio may have
         * any of these at 0-2, where the dup2s below would clobber them. */
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        int tmp[3];
        for (int i = 0; i < 3; i++)
                tmp[i] = fcntl(stdio[i] >= 0 ? stdio[i] : devnull, F_DUPFD_CLOEXEC, 10);
        sock = fcntl(sock, F_DUPFD_CLOEXEC, 10);
        for (int i = 0; i < 3; i++)
                if (tmp[i] < 0 || dup2(tmp[i], i) < 0)
                        _exit(127);
        if (sock < 0 || dup2(sock, 3) < 0 || fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
                _exit(127);
        sock = 3;
        /* Nothing of the caller's (listening sockets, other pipes) stays
         * open in a process that may outlive it. */
        syscall(SYS_close_range, 4, ~0U, 0);

        if (chdir(procdir) < 0) {
                silo_error_set(&err, errno, "chdir %s", procdir);
                goto fail;
        }
        _cleanup_close_ int dirfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        snprintf(pid_file, sizeof(pid_file), ".pid-%d", (int) getpid());
        struct silo_exec_options eo = { .detach = true, .pid_file = pid_file };
        _cleanup_close_ int listener = -1;
        if (p->console) {
                /* The runtime hands out pty masters over a socket path; a
                 * relative name keeps it within sun_path whatever the root. */
                snprintf(console_sock, sizeof(console_sock), ".con-%d", (int) getpid());
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                strcpy(sa.sun_path, console_sock);
                listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (listener < 0 || bind(listener, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(listener, 1) < 0) {
                        silo_error_set(&err, errno, "console socket");
                        goto fail;
                }
                eo.console_socket = console_sock;
        }
        int status = 0;
        int r = silo_container_exec(&p->sys->rt, p->sys->id, process, &eo, &status, &err);
        if (console_sock[0])
                unlink(console_sock);
        if (r < 0)
                goto fail;
        _cleanup_free_ char *pidtext = NULL;
        if (silo_read_file_at(dirfd, pid_file, 64, &pidtext, NULL, &err) < 0)
                goto fail;
        unlinkat(dirfd, pid_file, 0);
        pid_t pid = (pid_t) atoi(pidtext);
        if (p->console) {
                struct pollfd pfd = { .fd = listener, .events = POLLIN };
                _cleanup_close_ int conn = -1;
                if (poll(&pfd, 1, 5000) == 1)
                        conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
                master = conn >= 0 ? recv_fd(conn) : -1;
                if (master < 0) {
                        kill(pid, SIGKILL);
                        silo_error_msg(&err, EIO, "no pty master from the runtime");
                        goto fail;
                }
        }
        unsigned long long start = 0;
        silo_pid_start_time(pid, &start);
        _cleanup_json_ json_t *rec = json_pack("{s:i, s:i, s:I, s:I, s:b}", "ProcessId", (int) pid, "MonitorPid",
                                               (int) getpid(), "ProcessStart", (json_int_t) start,
                                               "MonitorStart", (json_int_t) 0, "Exited", false);
        unsigned long long mstart = 0;
        silo_pid_start_time(getpid(), &mstart);
        if (rec)
                json_object_set_new(rec, "MonitorStart", json_integer((json_int_t) mstart));
        if (!rec || write_record(dirfd, pid, rec) < 0) {
                kill(pid, SIGKILL);
                silo_error_msg(&err, EIO, "cannot record process %d", (int) pid);
                goto fail;
        }
        rep.pid = pid;
        send_report(sock, &rep, master);
        close(sock);
        if (master >= 0)
                close(master);
        for (int i = 0; i < 3; i++)
                close(i);

        int ws = 0;
        while (waitpid(pid, &ws, 0) < 0) {
                if (errno != EINTR) {
                        ws = -1;
                        break;
                }
        }
        int code = ws == -1 ? -1 : WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        json_object_set_new(rec, "Exited", json_true());
        json_object_set_new(rec, "ExitCode", json_integer(code));
        char now[64];
        silo_rfc3339_now(now);
        json_object_set_new(rec, "ExitTime", json_string(now));
        write_record(dirfd, pid, rec);
        _exit(0);
fail:
        rep.code = err.code ? err.code : EIO;
        snprintf(rep.message, sizeof(rep.message), "%s", err.message);
        send_report(sock, &rep, -1);
        _exit(1);
}

static void close_fds(silo_compute_process *p)
{
        if (p->std_output == p->std_input)
                p->std_output = -1;
        silo_closep(&p->std_input);
        silo_closep(&p->std_output);
        silo_closep(&p->std_error);
        p->std_input = p->std_output = p->std_error = -1;
}

void silo_compute_process_close(silo_compute_process *p)
{
        if (!p)
                return;
        close_fds(p);
        free(p);
}

static void process_closep(silo_compute_process **p)
{
        silo_compute_process_close(*p);
}

pid_t silo_compute_process_id(const silo_compute_process *p)
{
        return p->pid;
}

static silo_compute_process *process_new(silo_compute_system *sys)
{
        silo_compute_process *p = calloc(1, sizeof(*p));
        if (p) {
                p->sys = sys;
                p->std_input = p->std_output = p->std_error = -1;
        }
        return p;
}

int silo_compute_process_create(silo_compute_system *sys, const char *parameters, silo_compute_process **ret,
                                struct silo_compute_process_info *ret_info, silo_error *err)
{
        if (!parameters)
                return silo_error_msg(err, EINVAL, "ProcessParameters: none given");
        _cleanup_json_ json_t *params = NULL, *config = NULL, *process = NULL;
        int r = silo_json_load_buffer(parameters, strlen(parameters), "ProcessParameters", &params, err);
        if (r < 0)
                return r;
        enum compute_state st;
        pid_t init;
        if ((r = compute_system_state(sys, &st, &init, err)) < 0)
                return r;
        if (st != COMPUTE_STATE_RUNNING)
                return silo_error_msg(err, EINVAL, "compute system \"%s\" is %s, not Running", sys->id,
                                      compute_state_name(st));
        if ((r = silo_container_config(&sys->rt, sys->id, &config, err)) < 0)
                return r;
        /* The system's root as its init sees it, for names in User. */
        char rootpath[64];
        snprintf(rootpath, sizeof(rootpath), "/proc/%d/root", (int) init);
        _cleanup_close_ int rootfd = open(rootpath, O_PATH | O_DIRECTORY | O_CLOEXEC);
        struct compute_process_params pp;
        r = compute_process_to_oci(params, json_object_get(config, "process"), rootfd, &process, &pp, err);
        if (r < 0)
                return r;
        char procdir[PATH_MAX];
        if (compute_system_dir(sys, procdir, "processes") < 0)
                return silo_error_msg(err, ENAMETOOLONG, "compute system %s: state path too long", sys->id);

        _cleanup_(process_closep) silo_compute_process *p = process_new(sys);
        if (!p)
                return silo_error_set(err, ENOMEM, "process");
        p->console = pp.console;
        /* child[] are the process's ends, ours go into the handle. */
        _cleanup_close_ int child_in = -1, child_out = -1, child_err = -1;
        int fds[2];
        if (!pp.console && pp.stdin_pipe) {
                if (pipe2(fds, O_CLOEXEC) < 0)
                        return silo_error_set(err, errno, "CreateStdInPipe: pipe");
                child_in = fds[0], p->std_input = fds[1];
        }
        if (!pp.console && pp.stdout_pipe) {
                if (pipe2(fds, O_CLOEXEC) < 0)
                        return silo_error_set(err, errno, "CreateStdOutPipe: pipe");
                p->std_output = fds[0], child_out = fds[1];
        }
        if (!pp.console && pp.stderr_pipe) {
                if (pipe2(fds, O_CLOEXEC) < 0)
                        return silo_error_set(err, errno, "CreateStdErrPipe: pipe");
                p->std_error = fds[0], child_err = fds[1];
        }
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
                return silo_error_set(err, errno, "socketpair");
        _cleanup_close_ int sock = sp[0];
        pid_t mon = fork();
        if (mon < 0) {
                close(sp[1]);
                return silo_error_set(err, errno, "fork process monitor");
        }
        if (mon == 0) {
                const int stdio[3] = { child_in, child_out, child_err };
                monitor(p, process, stdio, sp[1], procdir);
        }
        close(sp[1]);
        struct monitor_report rep = {};
        int master = -1;
        ssize_t n = recv_report(sock, &rep, &master);
        if (n != (ssize_t) sizeof(rep) || rep.code) {
                if (master >= 0)
                        close(master);
                while (waitpid(mon, NULL, 0) < 0 && errno == EINTR)
                        ;
                if (n != (ssize_t) sizeof(rep))
                        return silo_error_msg(err, EIO, "process monitor died before starting the process");
                rep.message[sizeof(rep.message) - 1] = '\0';
                return silo_error_msg(err, rep.code, "%s", rep.message);
        }
        p->pid = rep.pid;
        if (pp.console) {
                p->std_input = master;
                p->std_output = master;
        }
        if (ret_info)
                *ret_info = (struct silo_compute_process_info) { .process_id = p->pid, .std_input = p->std_input,
                                                                  .std_output = p->std_output,
                                                                  .std_error = p->std_error };
        *ret = TAKE_PTR(p);
        return 0;
}

int silo_compute_process_open(silo_compute_system *sys, pid_t process_id, silo_compute_process **ret, silo_error *err)
{
        _cleanup_(process_closep) silo_compute_process *p = process_new(sys);
        if (!p)
                return silo_error_set(err, ENOMEM, "process");
        p->pid = process_id;
        _cleanup_json_ json_t *rec = NULL;
        int r = record_load(p, &rec, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

/* A pidfd for the process if it still is the one we started, else -ESRCH. */
static int process_pidfd(silo_compute_process *p, silo_error *err)
{
        _cleanup_json_ json_t *rec = NULL;
        int r = record_load(p, &rec, err);
        if (r < 0)
                return r;
        if (json_is_true(json_object_get(rec, "Exited")))
                return silo_error_msg(err, ESRCH, "process %d has exited", (int) p->pid);
        _cleanup_close_ int fd = (int) syscall(SYS_pidfd_open, p->pid, 0);
        unsigned long long start = (unsigned long long) json_integer_value(json_object_get(rec, "ProcessStart"));
        if (fd < 0 || !silo_pid_matches(p->pid, start))
                return silo_error_msg(err, ESRCH, "process %d has exited", (int) p->pid);
        return TAKE_FD(fd);
}

int silo_compute_process_signal(silo_compute_process *p, int sig, silo_error *err)
{
        if (sig <= 0 || sig >= NSIG)
                return silo_error_msg(err, EINVAL, "Signal: %d is not a signal number", sig);
        _cleanup_close_ int fd = process_pidfd(p, err);
        if (fd < 0)
                return fd;
        if (syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) < 0)
                return silo_error_set(err, errno, "signal %d to process %d", sig, (int) p->pid);
        return 0;
}

int silo_compute_process_terminate(silo_compute_process *p, silo_error *err)
{
        return silo_compute_process_signal(p, SIGKILL, err);
}

int silo_compute_process_get_properties(silo_compute_process *p, char **ret, silo_error *err)
{
        _cleanup_json_ json_t *rec = NULL;
        int r = record_load(p, &rec, err);
        if (r < 0)
                return r;
        bool exited = json_is_true(json_object_get(rec, "Exited"));
        _cleanup_json_ json_t *out = json_pack("{s:i, s:b}", "ProcessId", (int) p->pid, "Exited", exited);
        if (out && exited)
                json_object_set(out, "ExitCode", json_object_get(rec, "ExitCode"));
        if (out && !exited) {
                /* A monitor killed from outside cannot record the exit: say
                 * what we know rather than "running" forever. */
                unsigned long long ms = (unsigned long long) json_integer_value(json_object_get(rec, "MonitorStart"));
                pid_t mon = (pid_t) json_integer_value(json_object_get(rec, "MonitorPid"));
                if (!silo_pid_matches(mon, ms) &&
                    !silo_pid_matches(p->pid, (unsigned long long) json_integer_value(json_object_get(rec, "ProcessStart")))) {
                        _cleanup_json_ json_t *again = NULL;
                        if (record_load(p, &again, NULL) == 0 && json_is_true(json_object_get(again, "Exited"))) {
                                json_object_set_new(out, "Exited", json_true());
                                json_object_set(out, "ExitCode", json_object_get(again, "ExitCode"));
                        }
                }
        }
        *ret = out ? json_dumps(out, JSON_COMPACT) : NULL;
        return *ret ? 0 : silo_error_set(err, ENOMEM, "ProcessStatus");
}

static int resize(silo_compute_process *p, json_t *size, silo_error *err)
{
        struct { uint32_t h, w; } s = {};
        const struct silo_json_field f[] = {
                { "Height", SILO_JSON_UINT32, offsetof(typeof(s), h), SILO_JSON_REQUIRED },
                { "Width", SILO_JSON_UINT32, offsetof(typeof(s), w), SILO_JSON_REQUIRED },
                { NULL },
        };
        if (!json_is_object(size))
                return silo_error_msg(err, EINVAL, "ConsoleSize: expected an object, got %s", silo_json_type_name(size));
        int r = silo_json_dispatch(size, "ConsoleSize", f, &s, err);
        if (r < 0)
                return r;
        if (s.h > 65535 || s.w > 65535)
                return silo_error_msg(err, ERANGE, "ConsoleSize: Height and Width must be 0-65535");
        struct winsize ws = { .ws_row = (unsigned short) s.h, .ws_col = (unsigned short) s.w };
        if (p->console && p->std_input >= 0) {
                if (ioctl(p->std_input, TIOCSWINSZ, &ws) < 0)
                        return silo_error_set(err, errno, "resize the console of process %d", (int) p->pid);
                return 0;
        }
        /* Another handle's process: reach its terminal through its stdin. */
        _cleanup_close_ int pidfd = process_pidfd(p, err);
        if (pidfd < 0)
                return pidfd;
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/fd/0", (int) p->pid);
        _cleanup_close_ int tty = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        if (tty < 0 || !isatty(tty))
                return silo_error_msg(err, ENOTTY, "process %d has no console (EmulateConsole was false)", (int) p->pid);
        if (ioctl(tty, TIOCSWINSZ, &ws) < 0)
                return silo_error_set(err, errno, "resize the console of process %d", (int) p->pid);
        return 0;
}

static int close_handle(silo_compute_process *p, json_t *ch, silo_error *err)
{
        const char *h = NULL;
        const struct silo_json_field f[] = {
                { "Handle", SILO_JSON_STRING, 0, SILO_JSON_REQUIRED },
                { NULL },
        };
        if (!json_is_object(ch))
                return silo_error_msg(err, EINVAL, "CloseHandle: expected an object, got %s", silo_json_type_name(ch));
        int r = silo_json_dispatch(ch, "CloseHandle", f, &h, err);
        if (r < 0)
                return r;
        if (!strcmp(h, "All")) {
                close_fds(p);
                return 0;
        }
        if (p->console) {
                /* One pty carries every stream: closing input means end of
                 * file for the reader, the terminal's EOF character. */
                if (!strcmp(h, "StdIn")) {
                        if (p->std_input >= 0 && write(p->std_input, "\x04", 1) < 0)
                                return silo_error_set(err, errno, "send EOF to the console");
                        return 0;
                }
                if (!strcmp(h, "StdOut") || !strcmp(h, "StdErr"))
                        return 0;
        } else if (!strcmp(h, "StdIn")) {
                silo_closep(&p->std_input);
                p->std_input = -1;
                return 0;
        } else if (!strcmp(h, "StdOut")) {
                silo_closep(&p->std_output);
                p->std_output = -1;
                return 0;
        } else if (!strcmp(h, "StdErr")) {
                silo_closep(&p->std_error);
                p->std_error = -1;
                return 0;
        }
        return silo_error_msg(err, EINVAL, "CloseHandle.Handle: unknown handle \"%s\" (expected StdIn, StdOut, "
                              "StdErr or All)", h);
}

int silo_compute_process_modify(silo_compute_process *p, const char *request, silo_error *err)
{
        if (!request)
                return silo_error_msg(err, EINVAL, "ProcessModifyRequest: none given");
        _cleanup_json_ json_t *req = NULL;
        int r = silo_json_load_buffer(request, strlen(request), "ProcessModifyRequest", &req, err);
        if (r < 0)
                return r;
        if (!json_is_object(req))
                return silo_error_msg(err, EINVAL, "ProcessModifyRequest: expected an object, got %s",
                                      silo_json_type_name(req));
        const char *op = NULL;
        const struct silo_json_field f[] = {
                { "Operation", SILO_JSON_STRING, 0, SILO_JSON_REQUIRED },
                { NULL },
        };
        r = silo_json_dispatch(req, "", f, &op, err);
        if (r < 0)
                return r;
        if (!strcmp(op, "ConsoleSize"))
                return resize(p, json_object_get(req, "ConsoleSize"), err);
        if (!strcmp(op, "CloseHandle"))
                return close_handle(p, json_object_get(req, "CloseHandle"), err);
        return silo_error_msg(err, EINVAL, "Operation: unknown operation \"%s\" (expected ConsoleSize or CloseHandle)",
                              op);
}

static bool record_exit(silo_compute_process *p, int *ret_code)
{
        _cleanup_json_ json_t *rec = NULL;
        if (record_load(p, &rec, NULL) < 0 || !json_is_true(json_object_get(rec, "Exited")))
                return false;
        *ret_code = (int) json_integer_value(json_object_get(rec, "ExitCode"));
        return true;
}

int silo_compute_process_exit_fd(silo_compute_process *p, int *ret_fd, silo_error *err)
{
        _cleanup_json_ json_t *rec = NULL;
        int r = record_load(p, &rec, err);
        if (r < 0)
                return r;
        pid_t mon = (pid_t) json_integer_value(json_object_get(rec, "MonitorPid"));
        unsigned long long ms = (unsigned long long) json_integer_value(json_object_get(rec, "MonitorStart"));
        _cleanup_close_ int pidfd = (int) syscall(SYS_pidfd_open, mon, 0);
        unsigned long long now_start = 0;
        int code;
        if (pidfd < 0 || silo_pid_start_time(mon, &now_start) < 0 || now_start != ms || record_exit(p, &code))
                return silo_error_msg(err, ESRCH, "process %d has exited", (int) p->pid);
        *ret_fd = TAKE_FD(pidfd);
        return 0;
}

int silo_compute_process_wait(silo_compute_process *p, int timeout_ms, int *ret_exit_code, silo_error *err)
{
        _cleanup_json_ json_t *rec = NULL;
        int r = record_load(p, &rec, err);
        if (r < 0)
                return r;
        if (record_exit(p, ret_exit_code))
                return 0;
        pid_t mon = (pid_t) json_integer_value(json_object_get(rec, "MonitorPid"));
        unsigned long long ms = (unsigned long long) json_integer_value(json_object_get(rec, "MonitorStart"));
        _cleanup_close_ int pidfd = (int) syscall(SYS_pidfd_open, mon, 0);
        /* The monitor writes the record before it exits: if it is gone (or
         * its pid now names another process) the record has the answer. */
        unsigned long long now_start = 0;
        bool alive = pidfd >= 0 && silo_pid_start_time(mon, &now_start) == 0 && now_start == ms;
        if (record_exit(p, ret_exit_code))
                return 0;
        if (alive) {
                struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
                struct timespec t0;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                for (;;) {
                        int left = timeout_ms;
                        if (timeout_ms >= 0) {
                                struct timespec t;
                                clock_gettime(CLOCK_MONOTONIC, &t);
                                long el = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
                                left = el >= timeout_ms ? 0 : timeout_ms - (int) el;
                        }
                        int n = poll(&pfd, 1, left);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                return silo_error_set(err, errno, "wait for process %d", (int) p->pid);
                        if (n == 0)
                                return silo_error_msg(err, ETIMEDOUT, "process %d still running after %d ms",
                                                      (int) p->pid, timeout_ms);
                        break;
                }
                siginfo_t si;
                waitid(P_PIDFD, (id_t) pidfd, &si, WEXITED | WNOHANG);
        }
        if (record_exit(p, ret_exit_code))
                return 0;
        return silo_error_msg(err, EIO, "process %d: its monitor died without recording an exit", (int) p->pid);
}
