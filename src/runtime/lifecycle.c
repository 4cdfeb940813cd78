/* create, start, run, delete, kill, pause, resume. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

static int one_id(struct cli *cli, int argc, char **argv, const char **ret)
{
        if (optind >= argc)
                return cli_usage_error(cli, "%s: missing container ID", cli->command);
        if (argc - optind > 1)
                return cli_usage_error(cli, "%s: unexpected argument \"%s\"", cli->command, argv[optind + 1]);
        *ret = argv[optind];
        return 0;
}

static int print_help(const char *usage)
{
        printf("Usage: silo-runtime %s\n", usage);
        return 0;
}

enum { OPT_BUNDLE = 256, OPT_PID_FILE, OPT_CONSOLE, OPT_NO_PIVOT, OPT_NO_KEYRING, OPT_PRESERVE, OPT_DETACH, OPT_KEEP,
       OPT_NO_SUBREAPER };

static int parse_create_opts(struct cli *cli, int argc, char **argv, bool allow_detach, struct silo_create_options *o,
                             bool *detach, const char *usage)
{
        static const struct option opts[] = {
                { "bundle", required_argument, NULL, 'b' },
                { "pid-file", required_argument, NULL, OPT_PID_FILE },
                { "console-socket", required_argument, NULL, OPT_CONSOLE },
                { "no-pivot", optional_argument, NULL, OPT_NO_PIVOT },
                { "no-new-keyring", optional_argument, NULL, OPT_NO_KEYRING },
                { "preserve-fds", required_argument, NULL, OPT_PRESERVE },
                { "detach", optional_argument, NULL, 'd' },
                { "keep", optional_argument, NULL, OPT_KEEP },
                { "no-subreaper", optional_argument, NULL, OPT_NO_SUBREAPER },
                { "help", no_argument, NULL, 'h' },
                { NULL },
        };
        int c, idx = -1;
        while ((c = getopt_long_only(argc, argv, "+b:dh", opts, &idx)) != -1) {
                int b = 1;
                if ((c == OPT_NO_PIVOT || c == OPT_NO_KEYRING || c == 'd' || c == OPT_KEEP || c == OPT_NO_SUBREAPER) &&
                    (b = cli_bool(cli, idx >= 0 ? opts[idx].name : "detach", optarg)) < 0)
                        return 1;
                idx = -1;
                switch (c) {
                case 'b': o->bundle = optarg; break;
                case OPT_PID_FILE: o->pid_file = optarg; break;
                case OPT_CONSOLE: o->console_socket = optarg; break;
                case OPT_NO_PIVOT: o->no_pivot = b; break;
                case OPT_NO_KEYRING: o->no_new_keyring = b; break;
                case OPT_KEEP:
                        if (!allow_detach)
                                return cli_usage_error(cli, "%s: unknown option --keep", cli->command);
                        o->keep = b;
                        break;
                case OPT_NO_SUBREAPER: break;  /* we never become a subreaper */
                case OPT_PRESERVE: {
                        char *end;
                        long n = strtol(optarg, &end, 10);
                        if (*end || n < 0 || n > 65536)
                                return cli_usage_error(cli, "--preserve-fds: \"%s\" is not a valid count", optarg);
                        o->preserve_fds = (int) n;
                        break;
                }
                case 'd':
                        if (!allow_detach)
                                return cli_usage_error(cli, "%s: unknown option --detach", cli->command);
                        *detach = b;
                        break;
                case 'h': print_help(usage); return -2;
                default: return cli_usage_error(cli, "usage: silo-runtime %s", usage);
                }
        }
        return 0;
}

int cmd_create(struct cli *cli, int argc, char **argv)
{
        struct silo_create_options o = { 0 };
        const char *id;
        int r = parse_create_opts(cli, argc, argv, false, &o, NULL, "create [OPTIONS] ID");
        if (r)
                return r == -2 ? 0 : r;
        if ((r = one_id(cli, argc, argv, &id)))
                return r;
        silo_error err = SILO_ERROR_INIT;
        if (silo_container_create(&cli->rt, id, &o, &err) < 0)
                return cli_fail(cli, &err);
        return 0;
}

int cmd_run(struct cli *cli, int argc, char **argv)
{
        struct silo_create_options o = { 0 };
        bool detach = false;
        const char *id;
        int r = parse_create_opts(cli, argc, argv, true, &o, &detach, "run [OPTIONS] ID");
        if (r)
                return r == -2 ? 0 : r;
        if ((r = one_id(cli, argc, argv, &id)))
                return r;
        silo_error err = SILO_ERROR_INIT;
        int status = 0;
        if (silo_container_run(&cli->rt, id, &o, detach, &status, &err) < 0)
                return cli_fail(cli, &err);
        return status;
}

static int simple(struct cli *cli, int argc, char **argv, const char *usage,
                  int (*fn)(const struct silo_runtime *, const char *, silo_error *))
{
        static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, { NULL } };
        int c;
        while ((c = getopt_long_only(argc, argv, "+h", opts, NULL)) != -1) {
                if (c == 'h')
                        return print_help(usage);
                return cli_usage_error(cli, "usage: silo-runtime %s", usage);
        }
        const char *id;
        int r = one_id(cli, argc, argv, &id);
        if (r)
                return r;
        silo_error err = SILO_ERROR_INIT;
        if (fn(&cli->rt, id, &err) < 0)
                return cli_fail(cli, &err);
        return 0;
}

int cmd_start(struct cli *cli, int argc, char **argv)
{
        return simple(cli, argc, argv, "start ID", silo_container_start);
}

int cmd_pause(struct cli *cli, int argc, char **argv)
{
        return simple(cli, argc, argv, "pause ID", silo_container_pause);
}

int cmd_resume(struct cli *cli, int argc, char **argv)
{
        return simple(cli, argc, argv, "resume ID", silo_container_resume);
}

int cmd_delete(struct cli *cli, int argc, char **argv)
{
        static const struct option opts[] = {
                { "force", optional_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                { NULL },
        };
        bool force = false;
        int c;
        while ((c = getopt_long_only(argc, argv, "+fh", opts, NULL)) != -1) {
                if (c == 'f') {
                        int b = cli_bool(cli, "force", optarg);
                        if (b < 0)
                                return 1;
                        force = b;
                }
                else if (c == 'h')
                        return print_help("delete [--force] ID");
                else
                        return cli_usage_error(cli, "usage: silo-runtime delete [--force] ID");
        }
        const char *id;
        int r = one_id(cli, argc, argv, &id);
        if (r)
                return r;
        silo_error err = SILO_ERROR_INIT;
        r = silo_container_delete(&cli->rt, id, force, &err);
        /* Deleting what is already gone is not an error with --force (runc). */
        if (r == -ENOENT && force)
                return 0;
        if (r < 0)
                return cli_fail(cli, &err);
        return 0;
}

int cmd_kill(struct cli *cli, int argc, char **argv)
{
        static const struct option opts[] = {
                { "all", optional_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' },
                { NULL },
        };
        bool all = false;
        int c;
        while ((c = getopt_long_only(argc, argv, "+ah", opts, NULL)) != -1) {
                if (c == 'a') {
                        int b = cli_bool(cli, "all", optarg);
                        if (b < 0)
                                return 1;
                        all = b;
                }
                else if (c == 'h')
                        return print_help("kill [--all] ID [SIGNAL]");
                else
                        return cli_usage_error(cli, "usage: silo-runtime kill [--all] ID [SIGNAL]");
        }
        if (optind >= argc)
                return cli_usage_error(cli, "kill: missing container ID");
        const char *id = argv[optind];
        int sig = SIGTERM;
        if (optind + 1 < argc) {
                sig = cli_parse_signal(argv[optind + 1]);
                if (sig < 0)
                        return cli_usage_error(cli, "kill: unknown signal \"%s\"", argv[optind + 1]);
        }
        if (optind + 2 < argc)
                return cli_usage_error(cli, "kill: unexpected argument \"%s\"", argv[optind + 2]);
        silo_error err = SILO_ERROR_INIT;
        if (silo_container_kill(&cli->rt, id, sig, all, &err) < 0)
                return cli_fail(cli, &err);
        return 0;
}
