#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "process/exe.h"
#include "runtime.h"
#include "silo-config.h"
#include "state/state.h"
#include "util/cleanup.h"

static const struct command commands[] = {
        { "create",   cmd_create,   "create [--bundle DIR] [--pid-file F] [--console-socket S] [--no-pivot] [--preserve-fds N] ID",
          "create a container" },
        { "start",    cmd_start,    "start ID", "start the user process of a created container" },
        { "run",      cmd_run,      "run [--bundle DIR] [--detach] [--pid-file F] [--console-socket S] [--no-pivot] ID",
          "create and start a container" },
        { "exec",     cmd_exec,     "exec [--process F | flags] ID [COMMAND [ARG...]]", "run a process in a container" },
        { "state",    cmd_state,    "state ID", "print the state of a container" },
        { "list",     cmd_list,     "list [--format table|json] [--quiet]", "list containers" },
        { "kill",     cmd_kill,     "kill [--all] ID [SIGNAL]", "send a signal to a container (default SIGTERM)" },
        { "delete",   cmd_delete,   "delete [--force] ID", "delete a container and its resources" },
        { "pause",    cmd_pause,    "pause ID", "freeze every process of a container" },
        { "resume",   cmd_resume,   "resume ID", "thaw a paused container" },
        { "ps",       cmd_ps,       "ps [--format table|json] ID [PS_ARGS...]", "list a container's processes" },
        { "events",   cmd_events,   "events [--stats] [--interval 5s] ID", "print container statistics and OOM events" },
        { "update",   cmd_update,   "update [--resources F|-] [--memory N] [--pids-limit N] ... ID", "change resource limits" },
        { "spec",     cmd_spec,     "spec [--bundle DIR] [--rootless]", "write a default config.json" },
        { "features", cmd_features, "features", "print what this runtime supports (JSON)" },
        { NULL },
};

static void log_line(struct cli *cli, const char *level, const char *msg)
{
        bool is_debug = !strcmp(level, "debug");
        if (!cli->log_path && !is_debug)
                return;
        _cleanup_close_ int fd = cli->log_path ? open(cli->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)
                                               : fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return;
        char now[64];
        silo_rfc3339_now(now);
        _cleanup_free_ char *line = NULL;
        if (cli->log_json) {
                _cleanup_json_ json_t *j = json_pack("{ss ss ss}", "level", level, "msg", msg, "time", now);
                line = j ? json_dumps(j, JSON_COMPACT) : NULL;
        } else if (asprintf(&line, "time=\"%s\" level=%s msg=\"%s\"", now, level, msg) < 0) {
                line = NULL;
        }
        if (line)
                dprintf(fd, "%s\n", line);
}

int cli_fail(struct cli *cli, const silo_error *err)
{
        const char *msg = err->message[0] ? err->message : strerror(err->code ? err->code : EINVAL);
        fprintf(stderr, "silo-runtime: %s\n", msg);
        log_line(cli, "error", msg);
        return 1;
}

int cli_usage_error(struct cli *cli, const char *fmt, ...)
{
        silo_error err = SILO_ERROR_INIT;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err.message, sizeof(err.message), fmt, ap);
        va_end(ap);
        err.code = EINVAL;
        return cli_fail(cli, &err);
}

static void cli_debug(void *userdata, const char *message)
{
        log_line(userdata, "debug", message);
}

void cli_warn(void *userdata, const char *message)
{
        struct cli *cli = userdata;
        fprintf(stderr, "silo-runtime: warning: %s\n", message);
        log_line(cli, "warning", message);
}

int cli_bool(struct cli *cli, const char *flag, const char *arg)
{
        if (!arg || !strcmp(arg, "true") || !strcmp(arg, "1"))
                return 1;
        if (!strcmp(arg, "false") || !strcmp(arg, "0"))
                return 0;
        cli_usage_error(cli, "--%s: \"%s\" is not a boolean (true or false)", flag, arg);
        return -1;
}

int cli_parse_signal(const char *s)
{
        char *end;
        long n = strtol(s, &end, 10);
        if (*s && !*end)
                return n > 0 && n < NSIG ? (int) n : -1;
        if (!strncasecmp(s, "SIG", 3))
                s += 3;
        for (int sig = 1; sig < NSIG; sig++) {
                const char *name = sigabbrev_np(sig);
                if (name && !strcasecmp(s, name))
                        return sig;
        }
        if (!strncasecmp(s, "RTMIN+", 6))
                return SIGRTMIN + atoi(s + 6);
        return -1;
}

static void usage(FILE *f)
{
        fprintf(f, "Usage: silo-runtime [GLOBAL OPTIONS] COMMAND [OPTIONS] [ARGS]\n\n"
                   "An OCI runtime (runc-compatible command line) built on libsilo.\n\n"
                   "Global options:\n"
                   "  --root DIR          state directory (default %s)\n"
                   "  --log FILE          also write errors to FILE\n"
                   "  --log-format FMT    text or json\n"
                   "  --debug             verbose log\n"
                   "  --systemd-cgroup    not supported: silo manages cgroupfs paths itself\n\n"
                   "Commands:\n", SILO_DEFAULT_STATE_ROOT);
        for (const struct command *c = commands; c->name; c++)
                fprintf(f, "  %-10s %s\n", c->name, c->summary);
        fprintf(f, "\nRun 'silo-runtime COMMAND --help' for a command's options.\n");
}

static bool needs_sealed_binary(const char *cmd)
{
        /* Only these place runtime code inside a container. */
        return !strcmp(cmd, "create") || !strcmp(cmd, "run") || !strcmp(cmd, "exec");
}

int main(int argc, char **argv, char **envp)
{
        struct cli cli = {
                .rt = { .state_root = SILO_DEFAULT_STATE_ROOT, .warn = cli_warn },
        };
        cli.rt.userdata = &cli;
        bool systemd_cgroup = false;

        enum { OPT_ROOT = 256, OPT_LOG, OPT_LOG_FORMAT, OPT_DEBUG, OPT_SYSTEMD, OPT_ROOTLESS, OPT_CRIU };
        static const struct option opts[] = {
                { "root", required_argument, NULL, OPT_ROOT },
                { "log", required_argument, NULL, OPT_LOG },
                { "log-format", required_argument, NULL, OPT_LOG_FORMAT },
                { "debug", optional_argument, NULL, OPT_DEBUG },
                { "systemd-cgroup", optional_argument, NULL, OPT_SYSTEMD },
                { "rootless", required_argument, NULL, OPT_ROOTLESS },
                { "criu", required_argument, NULL, OPT_CRIU },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'v' },
                { NULL },
        };
        int c;
        while ((c = getopt_long_only(argc, argv, "+hv", opts, NULL)) != -1) {
                switch (c) {
                case OPT_ROOT: cli.rt.state_root = optarg; break;
                case OPT_LOG: cli.log_path = optarg; break;
                case OPT_LOG_FORMAT:
                        if (strcmp(optarg, "json") && strcmp(optarg, "text"))
                                return cli_usage_error(&cli, "--log-format: unknown format \"%s\" (text or json)", optarg);
                        cli.log_json = !strcmp(optarg, "json");
                        break;
                case OPT_DEBUG:
                case OPT_SYSTEMD: {
                        int b = cli_bool(&cli, c == OPT_DEBUG ? "debug" : "systemd-cgroup", optarg);
                        if (b < 0)
                                return 1;
                        if (c == OPT_DEBUG)
                                cli.debug = b;
                        else
                                systemd_cgroup = b;
                        break;
                }
                case OPT_ROOTLESS: case OPT_CRIU: break;
                case 'h': usage(stdout); return 0;
                case 'v':
                        printf("silo-runtime version %s\nspec: 1.2.0\n", SILO_VERSION);
                        return 0;
                default:
                        usage(stderr);
                        return 1;
                }
        }
        if (optind >= argc) {
                usage(stderr);
                return 1;
        }
        cli.command = argv[optind];
        /* --debug lines go to the --log file (stderr if there is none). */
        if (cli.debug)
                cli.rt.debug = cli_debug;
        if (systemd_cgroup)
                return cli_usage_error(&cli, "--systemd-cgroup is not supported: silo-runtime drives cgroupfs itself; "
                                             "use the cgroupfs cgroup manager");
        /* A write to a closed pipe (a hook that ignores its stdin) is an error, not a death. */
        signal(SIGPIPE, SIG_IGN);

        for (const struct command *cmd = commands; cmd->name; cmd++) {
                if (strcmp(cmd->name, cli.command))
                        continue;
                if (needs_sealed_binary(cmd->name)) {
                        silo_error err = SILO_ERROR_INIT;
                        if (silo_exe_ensure_protected(argv, envp, &err) < 0)
                                return cli_fail(&cli, &err);
                }
                int sub_argc = argc - optind;
                char **sub_argv = argv + optind;
                optind = 0;     /* reset getopt for the command's own options */
                return cmd->run(&cli, sub_argc, sub_argv);
        }
        return cli_usage_error(&cli, "unknown command \"%s\" (see silo-runtime --help)", cli.command);
}

const struct command *cli_find_command(const char *name);
const struct command *cli_find_command(const char *name)
{
        for (const struct command *c = commands; c->name; c++)
                if (!strcmp(c->name, name))
                        return c;
        return NULL;
}
