/* silo network create/ls/inspect/rm/connect/disconnect/reconcile.
 *
 * State lives in $SILO_NETWORK_DIR, else <root>/network.  connect takes a
 * network namespace (a path such as /run/netns/x, or a pid) so that the
 * plumbing can be driven and tested without a container runtime. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "net/net.h"
#include "util/cleanup.h"

#define MAX_CLI_PORTS 64

static int open_net(cli_ctx *ctx, silo_net **ret)
{
        char dir[4096];
        const char *env = getenv("SILO_NETWORK_DIR");
        if (env && *env)
                snprintf(dir, sizeof(dir), "%s", env);
        else {
                const char *root = ctx->root ? ctx->root : getenv("SILO_ROOT");
                snprintf(dir, sizeof(dir), "%s/network", root && *root ? root : SILO_DEFAULT_ROOT);
        }
        silo_net_options o = {
                .state_dir = dir,
                .default_subnet = getenv("SILO_NETWORK_SUBNET"),
                .host_resolv_conf = getenv("SILO_RESOLV_CONF"),
        };
        silo_error err = SILO_ERROR_INIT;
        if (silo_net_open(&o, ret, &err) < 0)
                return cli_fail(&err);
        return 0;
}

static int print_json(json_t *j)
{
        _cleanup_free_ char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (!text)
                return cli_failf("out of memory");
        printf("%s\n", text);
        return 0;
}

static int cmd_create(cli_ctx *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                { "subnet", required_argument, NULL, 's' },
                { "bridge", required_argument, NULL, 'b' },
                { "mtu", required_argument, NULL, 'm' },
                {}
        };
        silo_net_network_options o = {};
        char *end;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1)
                switch (c) {
                case 's':
                        o.subnet = optarg;
                        break;
                case 'b':
                        o.bridge = optarg;
                        break;
                case 'm':
                        errno = 0;
                        unsigned long mtu = strtoul(optarg, &end, 10);
                        if (errno || *end || end == optarg || mtu > 65535)
                                return cli_failf("--mtu %s: not a number up to 65535", optarg);
                        o.mtu = (unsigned) mtu;
                        break;
                default:
                        return cli_usage(argv[0]);
                }
        if (argc - optind != 1)
                return cli_usage(argv[0]);
        _cleanup_(silo_net_freep) silo_net *n = NULL;
        if (open_net(ctx, &n))
                return 1;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *info = NULL;
        if (silo_net_network_create(n, argv[optind], &o, &info, &err) < 0)
                return cli_fail(&err);
        printf("%s\n", argv[optind]);
        return 0;
}

static int cmd_ls(cli_ctx *ctx, int argc, char **argv)
{
        bool json = argc == 2 && !strcmp(argv[1], "--json");
        if (argc != 1 && !json)
                return cli_usage(argv[0]);
        _cleanup_(silo_net_freep) silo_net *n = NULL;
        if (open_net(ctx, &n))
                return 1;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *list = NULL;
        if (silo_net_network_list(n, &list, &err) < 0)
                return cli_fail(&err);
        if (json)
                return print_json(list);
        printf("%-20s %-16s %-18s %s\n", "NAME", "BRIDGE", "SUBNET", "CONTAINERS");
        size_t i;
        json_t *net;
        json_array_foreach(list, i, net)
                printf("%-20s %-16s %-18s %lld\n", json_string_value(json_object_get(net, "name")),
                       json_string_value(json_object_get(net, "bridge")),
                       json_string_value(json_object_get(net, "subnet")),
                       (long long) json_integer_value(json_object_get(net, "containers")));
        return 0;
}

static int cmd_inspect(cli_ctx *ctx, int argc, char **argv)
{
        if (argc < 2)
                return cli_usage(argv[0]);
        _cleanup_(silo_net_freep) silo_net *n = NULL;
        if (open_net(ctx, &n))
                return 1;
        _cleanup_json_ json_t *all = json_array();
        for (int i = 1; i < argc; i++) {
                silo_error err = SILO_ERROR_INIT;
                json_t *info = NULL;
                if (silo_net_network_inspect(n, argv[i], &info, &err) < 0)
                        return cli_fail(&err);
                json_array_append_new(all, info);
        }
        return print_json(all);
}

static int cmd_rm(cli_ctx *ctx, int argc, char **argv)
{
        if (argc < 2)
                return cli_usage(argv[0]);
        _cleanup_(silo_net_freep) silo_net *n = NULL;
        if (open_net(ctx, &n))
                return 1;
        int status = 0;
        for (int i = 1; i < argc; i++) {
                silo_error err = SILO_ERROR_INIT;
                if (silo_net_network_remove(n, argv[i], &err) < 0)
                        status = cli_fail(&err);
                else
                        printf("%s\n", argv[i]);
        }
        return status;
}

static int cmd_connect(cli_ctx *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                { "id", required_argument, NULL, 'i' },
                { "name", required_argument, NULL, 'n' },
                { "network", required_argument, NULL, 'N' },
                { "mode", required_argument, NULL, 'm' },
                { "publish", required_argument, NULL, 'p' },
                { "files", required_argument, NULL, 'f' },
                { "ifname", required_argument, NULL, 'I' },
                {}
        };
        silo_net_attach_options o = {};
        silo_net_port ports[MAX_CLI_PORTS];
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "+p:", opts, NULL)) != -1) {
                silo_error err = SILO_ERROR_INIT;
                switch (c) {
                case 'i':
                        o.container_id = optarg;
                        break;
                case 'n':
                        o.name = optarg;
                        break;
                case 'N':
                        o.network = optarg;
                        break;
                case 'm':
                        o.mode = optarg;
                        break;
                case 'f':
                        o.files_dir = optarg;
                        break;
                case 'I':
                        o.ifname = optarg;
                        break;
                case 'p':
                        if (o.n_ports >= MAX_CLI_PORTS)
                                return cli_failf("at most %d -p options", MAX_CLI_PORTS);
                        if (silo_net_port_parse(optarg, &ports[o.n_ports], &err) < 0)
                                return cli_fail(&err);
                        o.n_ports++;
                        break;
                default:
                        return cli_usage(argv[0]);
                }
        }
        bool host = o.mode && (!strcmp(o.mode, "host") || !strncmp(o.mode, "container:", 10));
        if (!o.container_id)
                return cli_failf("connect: --id is required");
        if (argc - optind == 0 && !host) {
                /* No namespace: a further network for a connected container. */
                if (!o.network || o.mode || o.n_ports || o.files_dir || o.name || o.ifname)
                        return cli_failf("connect: without a namespace, only --id and --network (a further network)");
                _cleanup_(silo_net_freep) silo_net *n = NULL;
                if (open_net(ctx, &n))
                        return 1;
                silo_error err = SILO_ERROR_INIT;
                _cleanup_json_ json_t *info = NULL;
                if (silo_net_connect(n, o.container_id, o.network, &info, &err) < 0)
                        return cli_fail(&err);
                return print_json(info);
        }
        if (argc - optind > 1)
                return cli_usage(argv[0]);
        o.ports = ports;
        if (argc - optind == 1) {
                const char *ns = argv[optind];
                char *end;
                errno = 0;
                long pid = strtol(ns, &end, 10);
                if (!errno && *end == 0 && end != ns && pid > 0 && pid <= 0x7fffffff)
                        o.pid = (pid_t) pid;
                else
                        o.netns_path = ns;
        }
        _cleanup_(silo_net_freep) silo_net *n = NULL;
        if (open_net(ctx, &n))
                return 1;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *info = NULL;
        if (silo_net_attach(n, &o, &info, &err) < 0)
                return cli_fail(&err);
        return print_json(info);
}

static int cmd_disconnect(cli_ctx *ctx, int argc, char **argv)
{
        const char *network = NULL;
        int first = 1;
        if (argc >= 3 && !strcmp(argv[1], "--network")) {
                network = argv[2];
                first = 3;
        }
        if (argc <= first)
                return cli_usage(argv[0]);
        _cleanup_(silo_net_freep) silo_net *n = NULL;
        if (open_net(ctx, &n))
                return 1;
        int status = 0;
        for (int i = first; i < argc; i++) {
                silo_error err = SILO_ERROR_INIT;
                if ((network ? silo_net_disconnect(n, argv[i], network, &err) : silo_net_detach(n, argv[i], &err)) < 0)
                        status = cli_fail(&err);
        }
        return status;
}

/* The OCI state a runtime hands its hooks on stdin: {"id", "pid", ...}. */
static int read_hook_state(char id[128], char pid[16])
{
        char buf[65536];
        size_t len = fread(buf, 1, sizeof(buf) - 1, stdin);
        buf[len] = 0;
        json_error_t jerr;
        _cleanup_json_ json_t *state = json_loads(buf, 0, &jerr);
        if (!state)
                return cli_failf("hook: the OCI state on stdin is not JSON: %s", jerr.text);
        const char *cid = json_string_value(json_object_get(state, "id"));
        json_t *p = json_object_get(state, "pid");
        if (!cid || strlen(cid) >= 128)
                return cli_failf("hook: the OCI state has no usable \"id\"");
        snprintf(id, 128, "%s", cid);
        if (pid) {
                if (!json_is_integer(p) || json_integer_value(p) <= 0)
                        return cli_failf("hook: the OCI state has no \"pid\"");
                snprintf(pid, 16, "%lld", (long long) json_integer_value(p));
        }
        return 0;
}

/* For a bundle's hooks: createRuntime "attach [CONNECT OPTIONS]" connects the
 * container's namespace (id and pid from the state), poststop "detach". */
static int cmd_hook(cli_ctx *ctx, int argc, char **argv)
{
        if (argc < 2 || (strcmp(argv[1], "attach") != 0 && strcmp(argv[1], "detach") != 0))
                return cli_usage(argv[0]);
        bool attach = !strcmp(argv[1], "attach");
        char id[128], pid[16];
        if (read_hook_state(id, attach ? pid : NULL))
                return 1;
        if (!attach) {
                char *dargv[] = { argv[0], id, NULL };
                return cmd_disconnect(ctx, 2, dargv);
        }
        if (argc > 64)
                return cli_failf("hook: too many arguments");
        char *cargv[70];
        int n = 0;
        cargv[n++] = argv[0];
        cargv[n++] = (char *) "--id";
        cargv[n++] = id;
        for (int i = 2; i < argc; i++)
                cargv[n++] = argv[i];
        cargv[n++] = pid;
        cargv[n] = NULL;
        return cmd_connect(ctx, n, cargv);
}

static int cmd_reconcile(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 1)
                return cli_usage(argv[0]);
        _cleanup_(silo_net_freep) silo_net *n = NULL;
        if (open_net(ctx, &n))
                return 1;
        silo_error err = SILO_ERROR_INIT;
        unsigned removed = 0;
        if (silo_net_reconcile(n, NULL, NULL, &removed, &err) < 0)
                return cli_fail(&err);
        printf("removed %u leftover%s\n", removed, removed == 1 ? "" : "s");
        return 0;
}

const cli_command cli_network_commands[] = {
        { "network create", cmd_create, "[--subnet CIDR] [--bridge IFNAME] [--mtu N] NAME", "create a bridge network" },
        { "network ls", cmd_ls, "[--json]", "list networks" },
        { "network inspect", cmd_inspect, "NAME...", "show networks and their containers (JSON)" },
        { "network rm", cmd_rm, "NAME...", "remove networks without containers" },
        { "network connect", cmd_connect,
          "--id ID [--name NAME] [--network NET] [--mode bridge|none|host|container:ID] [-p [IP:]HOST:CTR[/PROTO]]... "
          "[--files DIR] [--ifname IF] NETNS-PATH|PID | --id ID --network NET",
          "connect a network namespace (for testing and tools), or a connected container to one more network" },
        { "network disconnect", cmd_disconnect, "[--network NET] ID...",
          "disconnect containers (veth, rules, lease), or from one further network" },
        { "network reconcile", cmd_reconcile, "", "remove leftovers of containers that are gone" },
        { "network oci-hook", cmd_hook, "attach [CONNECT OPTIONS] | detach",
          "OCI hook: createRuntime attach / poststop detach, state on stdin" },
        {}
};
