/* exec: a process from --process (an OCI process object) or built like runc
 * does: the container's own process as the base, overridden by flags. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "runtime.h"
#include "util/cleanup.h"
#include "util/json.h"

static int append_string(json_t *obj, const char *key, const char *value)
{
        json_t *a = json_object_get(obj, key);
        if (!json_is_array(a)) {
                a = json_array();
                json_object_set_new(obj, key, a);
        }
        /* No duplicates: capability lists must stay sets. */
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v)
                if (json_is_string(v) && !strcmp(json_string_value(v), value))
                        return 0;
        return json_array_append_new(a, json_string(value));
}

/* Replaces NAME=... in env or appends. */
static void set_env(json_t *env, const char *assignment)
{
        const char *eq = strchr(assignment, '=');
        size_t n = eq ? (size_t) (eq - assignment) : strlen(assignment);
        size_t i;
        json_t *v;
        json_array_foreach(env, i, v) {
                const char *s = json_string_value(v);
                if (s && !strncmp(s, assignment, n) && s[n] == '=') {
                        json_array_set_new(env, i, json_string(assignment));
                        return;
                }
        }
        json_array_append_new(env, json_string(assignment));
}

int cmd_exec(struct cli *cli, int argc, char **argv)
{
        enum { O_CONSOLE = 256, O_PID_FILE, O_PROCESS_LABEL, O_APPARMOR, O_NNP, O_PRESERVE, O_CGROUP, O_IGNORE_PAUSED };
        static const struct option opts[] = {
                { "console-socket", required_argument, NULL, O_CONSOLE },
                { "cwd", required_argument, NULL, 'w' },
                { "env", required_argument, NULL, 'e' },
                { "tty", optional_argument, NULL, 't' },
                { "user", required_argument, NULL, 'u' },
                { "additional-gids", required_argument, NULL, 'g' },
                { "process", required_argument, NULL, 'p' },
                { "detach", optional_argument, NULL, 'd' },
                { "pid-file", required_argument, NULL, O_PID_FILE },
                { "process-label", required_argument, NULL, O_PROCESS_LABEL },
                { "apparmor", required_argument, NULL, O_APPARMOR },
                { "no-new-privs", optional_argument, NULL, O_NNP },
                { "cap", required_argument, NULL, 'c' },
                { "preserve-fds", required_argument, NULL, O_PRESERVE },
                { "cgroup", required_argument, NULL, O_CGROUP },
                { "ignore-paused", optional_argument, NULL, O_IGNORE_PAUSED },
                { "help", no_argument, NULL, 'h' },
                { NULL },
        };
        struct silo_exec_options o = { 0 };
        const char *process_file = NULL, *cwd = NULL, *user = NULL;
        bool tty = false, nnp = false;
        _cleanup_json_ json_t *envs = json_array(), *caps = json_array(), *gids = json_array();
        int c;
        while ((c = getopt_long_only(argc, argv, "+w:e:tu:g:p:dc:h", opts, NULL)) != -1) {
                int b = 1;
                if ((c == 't' || c == 'd' || c == O_NNP || c == O_IGNORE_PAUSED) &&
                    (b = cli_bool(cli, c == 't' ? "tty" : c == 'd' ? "detach" : c == O_NNP ? "no-new-privs" : "ignore-paused",
                                  optarg)) < 0)
                        return 1;
                switch (c) {
                case O_CONSOLE: o.console_socket = optarg; break;
                case 'w': cwd = optarg; break;
                case 'e': json_array_append_new(envs, json_string(optarg)); break;
                case 't': tty = b; break;
                case 'u': user = optarg; break;
                case 'g': json_array_append_new(gids, json_string(optarg)); break;
                case 'p': process_file = optarg; break;
                case 'd': o.detach = b; break;
                case O_PID_FILE: o.pid_file = optarg; break;
                case O_NNP: nnp = b; break;
                case 'c': json_array_append_new(caps, json_string(optarg)); break;
                case O_PRESERVE: {
                        char *end;
                        long n = strtol(optarg, &end, 10);
                        if (*end || n < 0 || n > 65536)
                                return cli_usage_error(cli, "exec --preserve-fds: \"%s\" is not a valid count", optarg);
                        o.preserve_fds = (int) n;
                        break;
                }
                case O_PROCESS_LABEL: case O_APPARMOR:
                        return cli_usage_error(cli, "exec --%s: SELinux/AppArmor labels are not supported",
                                               c == O_APPARMOR ? "apparmor" : "process-label");
                case O_CGROUP: case O_IGNORE_PAUSED: break;
                case 'h':
                        printf("Usage: silo-runtime exec [--process FILE] [--tty] [--detach] [--pid-file F] "
                               "[--console-socket S] [--cwd DIR] [--env K=V]... [--user UID[:GID]] "
                               "[--additional-gids G]... [--cap CAP_X]... [--no-new-privs] [--preserve-fds N] "
                               "ID [COMMAND [ARG...]]\n");
                        return 0;
                default:
                        return cli_usage_error(cli, "usage: silo-runtime exec [OPTIONS] ID [COMMAND [ARG...]] (see --help)");
                }
        }
        if (optind >= argc)
                return cli_usage_error(cli, "exec: missing container ID");
        const char *id = argv[optind++];
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *process = NULL;

        if (process_file) {
                if (silo_json_load_file_at(AT_FDCWD, process_file, 1u << 20, &process, &err) < 0)
                        return cli_fail(cli, &err);
        } else {
                if (optind >= argc)
                        return cli_usage_error(cli, "exec: missing command (or --process)");
                _cleanup_json_ json_t *config = NULL;
                if (silo_container_config(&cli->rt, id, &config, &err) < 0)
                        return cli_fail(cli, &err);
                json_t *base = json_object_get(config, "process");
                process = base ? json_deep_copy(base) : json_object();
                json_t *args = json_array();
                for (int i = optind; i < argc; i++)
                        json_array_append_new(args, json_string(argv[i]));
                json_object_set_new(process, "args", args);
                json_object_set_new(process, "terminal", json_boolean(tty));
                json_object_del(process, "consoleSize");
        }

        /* Flags refine a --process file too, as in runc. */
        if (tty)
                json_object_set_new(process, "terminal", json_true());
        if (json_array_size(envs)) {
                json_t *env = json_object_get(process, "env");
                if (!json_is_array(env)) {
                        env = json_array();
                        json_object_set_new(process, "env", env);
                }
                size_t i;
                json_t *v;
                json_array_foreach(envs, i, v)
                        set_env(env, json_string_value(v));
        }
        if (cwd)
                json_object_set_new(process, "cwd", json_string(cwd));
        if (user || json_array_size(gids)) {
                json_t *u = json_object_get(process, "user");
                if (!json_is_object(u)) {
                        u = json_object();
                        json_object_set_new(process, "user", u);
                }
                if (user) {
                        char *end;
                        unsigned long uid = strtoul(user, &end, 10);
                        if (end == user || (*end && *end != ':'))
                                return cli_usage_error(cli, "exec --user: \"%s\" is not UID[:GID] (names are not resolved)", user);
                        json_object_set_new(u, "uid", json_integer((json_int_t) uid));
                        if (*end == ':') {
                                const char *g = end + 1;
                                unsigned long gid = strtoul(g, &end, 10);
                                if (end == g || *end)
                                        return cli_usage_error(cli, "exec --user: \"%s\" is not UID[:GID]", user);
                                json_object_set_new(u, "gid", json_integer((json_int_t) gid));
                        }
                }
                size_t i;
                json_t *v;
                json_t *list = json_array();
                json_array_foreach(gids, i, v) {
                        char *end;
                        unsigned long g = strtoul(json_string_value(v), &end, 10);
                        if (*end) {
                                json_decref(list);
                                return cli_usage_error(cli, "exec --additional-gids: \"%s\" is not a number", json_string_value(v));
                        }
                        json_array_append_new(list, json_integer((json_int_t) g));
                }
                if (json_array_size(list))
                        json_object_set_new(u, "additionalGids", list);
                else
                        json_decref(list);
        }
        if (json_array_size(caps)) {
                json_t *cp = json_object_get(process, "capabilities");
                if (!json_is_object(cp)) {
                        cp = json_object();
                        json_object_set_new(process, "capabilities", cp);
                }
                /* Never inheritable or ambient: what runc does since CVE-2022-29162. */
                size_t i;
                json_t *v;
                json_array_foreach(caps, i, v) {
                        append_string(cp, "bounding", json_string_value(v));
                        append_string(cp, "effective", json_string_value(v));
                        append_string(cp, "permitted", json_string_value(v));
                }
        }
        if (nnp)
                json_object_set_new(process, "noNewPrivileges", json_true());

        int status = 0;
        if (silo_container_exec(&cli->rt, id, process, &o, &status, &err) < 0)
                return cli_fail(cli, &err);
        return status;
}
