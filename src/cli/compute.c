/* silo compute ...: the HCS-style compute API from the command line, driven
 * by JSON documents (a file, "-" for stdin, or inline text starting with
 * "{").  State and cgroups come from the environment:
 *   SILO_COMPUTE_STATE          state root (default /run/silo/compute)
 *   SILO_COMPUTE_CGROUP_PARENT  absolute cgroup parent (default /silo-compute)
 *   SILO_COMPUTE_INIT           the static silo-compute-init binary */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "api/compute.h"
#include "cli.h"
#include "silo-config.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define DOC_MAX (1024 * 1024)

static void compute_ctx(const cli_ctx *ctx, struct silo_compute_context *c, char exe_init[PATH_MAX])
{
        *c = (struct silo_compute_context) {
                .store_root = ctx->root,
                .state_root = getenv("SILO_COMPUTE_STATE"),
                .cgroup_parent = getenv("SILO_COMPUTE_CGROUP_PARENT"),
                .init_path = getenv("SILO_COMPUTE_INIT"),
        };
        if (c->init_path && *c->init_path)
                return;
        c->init_path = NULL;
        if (access(SILO_LIBEXECDIR "/silo-compute-init", X_OK) == 0)
                return;
        /* Uninstalled: the build tree keeps it at src/lib/api beside src/cli. */
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
                return;
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (!slash)
                return;
        *slash = '\0';
        if (snprintf(exe_init, PATH_MAX, "%s/../lib/api/silo-compute-init", self) < PATH_MAX &&
            access(exe_init, X_OK) == 0)
                c->init_path = exe_init;
}

int cli_compute_read_doc(const char *arg, char **ret, silo_error *err)
{
        if (arg[0] == '{' || arg[0] == '[') {
                *ret = strdup(arg);
                return *ret ? 0 : silo_error_set(err, ENOMEM, "document");
        }
        if (!strcmp(arg, "-"))
                return silo_read_file_at(AT_FDCWD, "/dev/stdin", DOC_MAX, ret, NULL, err);
        return silo_read_file_at(AT_FDCWD, arg, DOC_MAX, ret, NULL, err);
}

int cli_compute_parse_opts(int argc, char **argv, struct cli_compute_opts *o)
{
        static const struct option lo[] = {
                { "timeout", required_argument, NULL, 't' },
                { "force", no_argument, NULL, 'f' },
                { "detach", no_argument, NULL, 'd' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        optind = 1;
        int c;
        while ((c = getopt_long(argc, argv, "+t:fdh", lo, NULL)) != -1) {
                switch (c) {
                case 't': {
                        char *end;
                        double s = strtod(optarg, &end);
                        if (*end || s < 0 || s > 86400) {
                                cli_failf("--timeout: expected seconds (0-86400), got '%s'", optarg);
                                return -3;
                        }
                        o->timeout_ms = (int) (s * 1000);
                        break;
                }
                case 'f': o->force = true; break;
                case 'd': o->detach = true; break;
                case 'h': return -2;
                default: return -1;
                }
        }
        return optind;
}

static int open_system(const cli_ctx *ctx, const char *id, silo_compute_system **ret)
{
        struct silo_compute_context c;
        char buf[PATH_MAX];
        compute_ctx(ctx, &c, buf);
        silo_error err = SILO_ERROR_INIT;
        if (silo_compute_system_open(&c, id, ret, &err) < 0)
                return cli_fail(&err);
        return 0;
}

static int cmd_create(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 3)
                return cli_usage(argv[0]);
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *doc = NULL;
        if (cli_compute_read_doc(argv[2], &doc, &err) < 0)
                return cli_fail(&err);
        struct silo_compute_context c;
        char buf[PATH_MAX];
        compute_ctx(ctx, &c, buf);
        silo_compute_system *sys = NULL;
        if (silo_compute_system_create(&c, argv[1], doc, &sys, &err) < 0)
                return cli_fail(&err);
        printf("%s\n", silo_compute_system_id(sys));
        silo_compute_system_close(sys);
        return 0;
}

typedef int (*system_op)(silo_compute_system *sys, silo_error *err);

static int run_op(const cli_ctx *ctx, char **argv, int argc, system_op op)
{
        if (argc != 2)
                return cli_usage(argv[0]);
        silo_compute_system *sys = NULL;
        if (open_system(ctx, argv[1], &sys))
                return 1;
        silo_error err = SILO_ERROR_INIT;
        int r = op(sys, &err);
        silo_compute_system_close(sys);
        return r < 0 ? cli_fail(&err) : 0;
}

static int cmd_start(cli_ctx *ctx, int argc, char **argv)
{
        return run_op(ctx, argv, argc, silo_compute_system_start);
}

static int cmd_terminate(cli_ctx *ctx, int argc, char **argv)
{
        return run_op(ctx, argv, argc, silo_compute_system_terminate);
}

static int cmd_pause(cli_ctx *ctx, int argc, char **argv)
{
        return run_op(ctx, argv, argc, silo_compute_system_pause);
}

static int cmd_resume(cli_ctx *ctx, int argc, char **argv)
{
        return run_op(ctx, argv, argc, silo_compute_system_resume);
}

static int cmd_shutdown(cli_ctx *ctx, int argc, char **argv)
{
        struct cli_compute_opts o = { .timeout_ms = 10000 };
        int i = cli_compute_parse_opts(argc, argv, &o);
        if (i < 0 || argc - i != 1)
                return cli_usage(argv[0]);
        silo_compute_system *sys = NULL;
        if (open_system(ctx, argv[i], &sys))
                return 1;
        silo_error err = SILO_ERROR_INIT;
        int r = silo_compute_system_shutdown(sys, o.timeout_ms, &err);
        if (r == -ETIMEDOUT && o.force) {
                silo_error_clear(&err);
                r = silo_compute_system_terminate(sys, &err);
        }
        silo_compute_system_close(sys);
        return r < 0 ? cli_fail(&err) : 0;
}

static int cmd_properties(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 2 && argc != 3)
                return cli_usage(argv[0]);
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *query = NULL, *out = NULL;
        if (argc == 3 && cli_compute_read_doc(argv[2], &query, &err) < 0)
                return cli_fail(&err);
        silo_compute_system *sys = NULL;
        if (open_system(ctx, argv[1], &sys))
                return 1;
        int r = silo_compute_system_get_properties(sys, query, &out, &err);
        silo_compute_system_close(sys);
        if (r < 0)
                return cli_fail(&err);
        printf("%s\n", out);
        return 0;
}

static int cmd_modify(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 3)
                return cli_usage(argv[0]);
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *req = NULL;
        if (cli_compute_read_doc(argv[2], &req, &err) < 0)
                return cli_fail(&err);
        silo_compute_system *sys = NULL;
        if (open_system(ctx, argv[1], &sys))
                return 1;
        int r = silo_compute_system_modify(sys, req, &err);
        silo_compute_system_close(sys);
        return r < 0 ? cli_fail(&err) : 0;
}

static int cmd_list(cli_ctx *ctx, int argc, char **argv)
{
        if (argc > 2)
                return cli_usage(argv[0]);
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *query = NULL, *out = NULL;
        if (argc == 2 && cli_compute_read_doc(argv[1], &query, &err) < 0)
                return cli_fail(&err);
        struct silo_compute_context c;
        char buf[PATH_MAX];
        compute_ctx(ctx, &c, buf);
        if (silo_compute_system_enumerate(&c, query, &out, &err) < 0)
                return cli_fail(&err);
        printf("%s\n", out);
        return 0;
}

static int cmd_delete(cli_ctx *ctx, int argc, char **argv)
{
        struct cli_compute_opts o = {};
        int i = cli_compute_parse_opts(argc, argv, &o);
        if (i < 0 || i >= argc)
                return cli_usage(argv[0]);
        struct silo_compute_context c;
        char buf[PATH_MAX];
        compute_ctx(ctx, &c, buf);
        int ret = 0;
        for (; i < argc; i++) {
                silo_error err = SILO_ERROR_INIT;
                if (silo_compute_system_delete(&c, argv[i], o.force, &err) < 0)
                        ret = cli_fail(&err);
        }
        return ret;
}

static bool copy_some(int from, int to, bool *eof)
{
        char buf[16384];
        ssize_t n = read(from, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return true;
        if (n <= 0) {
                *eof = true;
                return false;
        }
        for (ssize_t off = 0; off < n;) {
                ssize_t w = write(to, buf + off, (size_t) (n - off));
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return false;
                off += w;
        }
        return true;
}

/* Signals for an attached process arrive here and are passed on from the
 * proxy loop (the process is in its monitor's session, not ours). */
static volatile sig_atomic_t pending_signal;

static volatile sig_atomic_t pending_winch;

static void on_signal(int sig)
{
        if (sig == SIGWINCH)
                pending_winch = 1;
        else
                pending_signal = sig;
}

/* Our terminal's size onto the process's console. */
static void sync_size(silo_compute_process *proc)
{
        struct winsize ws;
        if (ioctl(0, TIOCGWINSZ, &ws) < 0)
                return;
        char req[128];
        snprintf(req, sizeof(req), "{\"Operation\": \"ConsoleSize\", \"ConsoleSize\": {\"Height\": %u, \"Width\": %u}}",
                 ws.ws_row, ws.ws_col);
        silo_compute_process_modify(proc, req, NULL);
}

/* Copies our stdin to the process and its output to ours until its output
 * ends.  For a console, in and out are the same pty master. */
static void proxy(silo_compute_process *proc, const struct silo_compute_process_info *info, bool console)
{
        static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };
        struct sigaction sa = { .sa_handler = on_signal };
        sigset_t block, unblocked;
        sigemptyset(&block);
        for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++) {
                sigaction(forwarded[i], &sa, NULL);
                sigaddset(&block, forwarded[i]);
        }
        /* Blocked except inside ppoll: a signal cannot slip in between the
         * check and the wait. */
        sigprocmask(SIG_BLOCK, &block, &unblocked);
        int in = info->std_input, out = info->std_output, errfd = info->std_error;
        bool in_open = in >= 0, out_open = out >= 0, err_open = errfd >= 0;
        struct termios saved;
        bool raw = console && isatty(0) && tcgetattr(0, &saved) == 0;
        if (raw) {
                struct termios t = saved;
                cfmakeraw(&t);
                tcsetattr(0, TCSANOW, &t);
                sync_size(proc);
        }
        /* Until the output has ended and the process has exited (which also
         * covers a process without pipes, whose signals we still pass on). */
        int exit_fd = -1;
        bool exited = silo_compute_process_exit_fd(proc, &exit_fd, NULL) < 0;
        while (out_open || err_open || !exited) {
                struct pollfd p[4] = {
                        { .fd = in_open ? 0 : -1, .events = POLLIN },
                        { .fd = out_open ? out : -1, .events = POLLIN },
                        { .fd = err_open ? errfd : -1, .events = POLLIN },
                        { .fd = exited ? -1 : exit_fd, .events = POLLIN },
                };
                int n = ppoll(p, 4, NULL, &unblocked);
                int saved_errno = errno;
                if (pending_signal) {
                        silo_compute_process_signal(proc, pending_signal, NULL);
                        pending_signal = 0;
                }
                if (pending_winch) {
                        pending_winch = 0;
                        if (raw)
                                sync_size(proc);
                }
                if (n < 0) {
                        if (saved_errno == EINTR)
                                continue;
                        break;
                }
                bool eof = false;
                if (p[0].revents && !copy_some(0, in, &eof)) {
                        in_open = false;
                        /* Our input ended: so does the process's. */
                        silo_compute_process_modify(proc, "{\"Operation\": \"CloseHandle\", "
                                                    "\"CloseHandle\": {\"Handle\": \"StdIn\"}}", NULL);
                }
                if (p[1].revents && !copy_some(out, 1, &eof))
                        out_open = false;
                if (p[2].revents && !copy_some(errfd, 2, &eof))
                        err_open = false;
                if (p[3].revents)
                        exited = true;
        }
        if (exit_fd >= 0)
                close(exit_fd);
        if (raw)
                tcsetattr(0, TCSANOW, &saved);
        sigprocmask(SIG_SETMASK, &unblocked, NULL);
}

static int cmd_exec(cli_ctx *ctx, int argc, char **argv)
{
        struct cli_compute_opts o = { .timeout_ms = -1 };
        int i = cli_compute_parse_opts(argc, argv, &o);
        if (i < 0 || argc - i != 2)
                return cli_usage(argv[0]);
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *params = NULL;
        if (cli_compute_read_doc(argv[i + 1], &params, &err) < 0)
                return cli_fail(&err);
        silo_compute_system *sys = NULL;
        if (open_system(ctx, argv[i], &sys))
                return 1;
        silo_compute_process *proc = NULL;
        struct silo_compute_process_info info;
        if (silo_compute_process_create(sys, params, &proc, &info, &err) < 0) {
                silo_compute_system_close(sys);
                return cli_fail(&err);
        }
        if (o.detach) {
                printf("%d\n", (int) info.process_id);
                silo_compute_process_close(proc);
                silo_compute_system_close(sys);
                return 0;
        }
        /* After the monitor forked: the process must not inherit it. */
        signal(SIGPIPE, SIG_IGN);
        proxy(proc, &info, info.std_input >= 0 && info.std_input == info.std_output);
        int code = 0;
        int r = silo_compute_process_wait(proc, o.timeout_ms, &code, &err);
        silo_compute_process_close(proc);
        silo_compute_system_close(sys);
        if (r < 0)
                return cli_fail(&err);
        return code;
}

static int cmd_wait(cli_ctx *ctx, int argc, char **argv)
{
        struct cli_compute_opts o = { .timeout_ms = -1 };
        int i = cli_compute_parse_opts(argc, argv, &o);
        if (i < 0 || (argc - i != 1 && argc - i != 2))
                return cli_usage(argv[0]);
        silo_compute_system *sys = NULL;
        if (open_system(ctx, argv[i], &sys))
                return 1;
        silo_error err = SILO_ERROR_INIT;
        int r;
        if (argc - i == 2) {
                char *end;
                long pid = strtol(argv[i + 1], &end, 10);
                silo_compute_process *proc = NULL;
                int code = 0;
                if (*end || pid <= 0 || pid > INT_MAX)
                        r = silo_error_msg(&err, EINVAL, "'%s' is not a process id", argv[i + 1]);
                else
                        r = silo_compute_process_open(sys, (pid_t) pid, &proc, &err);
                if (r == 0)
                        r = silo_compute_process_wait(proc, o.timeout_ms, &code, &err);
                silo_compute_process_close(proc);
                if (r == 0)
                        printf("%d\n", code);
        } else {
                r = silo_compute_system_wait(sys, o.timeout_ms, &err);
        }
        silo_compute_system_close(sys);
        return r < 0 ? cli_fail(&err) : 0;
}

static int cmd_process(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 3 && argc != 4)
                return cli_usage(argv[0]);
        char *end;
        long pid = strtol(argv[2], &end, 10);
        if (*end || pid <= 0 || pid > INT_MAX)
                return cli_failf("'%s' is not a process id", argv[2]);
        silo_compute_system *sys = NULL;
        if (open_system(ctx, argv[1], &sys))
                return 1;
        silo_error err = SILO_ERROR_INIT;
        silo_compute_process *proc = NULL;
        _cleanup_free_ char *out = NULL;
        int r = silo_compute_process_open(sys, (pid_t) pid, &proc, &err);
        if (r == 0 && argc == 4 && argv[3][0] == '{') {
                r = silo_compute_process_modify(proc, argv[3], &err);
        } else if (r == 0 && argc == 4) {
                long sig = strtol(argv[3], &end, 10);
                r = *end || sig <= 0 || sig >= NSIG
                        ? silo_error_msg(&err, EINVAL, "'%s' is not a signal number", argv[3])
                        : silo_compute_process_signal(proc, (int) sig, &err);
        } else if (r == 0) {
                r = silo_compute_process_get_properties(proc, &out, &err);
        }
        silo_compute_process_close(proc);
        silo_compute_system_close(sys);
        if (r < 0)
                return cli_fail(&err);
        if (out)
                printf("%s\n", out);
        return 0;
}

extern const cli_command cli_compute_commands[];

/* `silo compute` alone (or with an unknown verb): the group's usage. */
static int cmd_group(cli_ctx *ctx, int argc, char **argv)
{
        (void) ctx;
        FILE *f = argc > 1 && strcmp(argv[1], "--help") && strcmp(argv[1], "-h") ? stderr : stdout;
        if (f == stderr)
                fprintf(stderr, "silo: unknown compute command '%s'\n", argv[1]);
        fprintf(f, "usage: silo compute COMMAND ...  (documents: FILE, - or inline JSON; see docs/API.md)\n\n");
        for (const cli_command *c = cli_compute_commands; c->name; c++)
                if (c->run != cmd_group)
                        fprintf(f, "  %s %s\n      %s\n", c->name, c->usage, c->summary);
        return f == stderr ? CLI_EXIT_USAGE : 0;
}

const cli_command cli_compute_commands[] = {
        { "compute", cmd_group, "COMMAND ...", NULL },
        { "compute create", cmd_create, "ID DOCUMENT", "create a compute system from an HCS ComputeSystem document" },
        { "compute start", cmd_start, "ID", "start a compute system" },
        { "compute shutdown", cmd_shutdown, "[--timeout SEC] [--force] ID", "stop gracefully (SIGTERM, wait)" },
        { "compute terminate", cmd_terminate, "ID", "stop forcibly (SIGKILL)" },
        { "compute pause", cmd_pause, "ID", "freeze every process" },
        { "compute resume", cmd_resume, "ID", "thaw a paused system" },
        { "compute properties", cmd_properties, "ID [PROPERTY-QUERY]", "print Properties as JSON" },
        { "compute modify", cmd_modify, "ID MODIFY-SETTING-REQUEST", "update memory/CPU, add or remove a mapped directory" },
        { "compute list", cmd_list, "[SYSTEM-QUERY]", "enumerate compute systems as JSON" },
        { "compute exec", cmd_exec, "[--detach] ID PROCESS-PARAMETERS", "run a process, proxying its stdio" },
        { "compute process", cmd_process, "ID PID [SIGNAL|MODIFY-REQUEST]",
          "print a process's status, signal it, or modify it (ConsoleSize, CloseHandle)" },
        { "compute wait", cmd_wait, "[--timeout SEC] ID [PID]", "wait for a system (or a process) to exit" },
        { "compute delete", cmd_delete, "[--force] ID...", "remove stopped compute systems" },
        {},
};
