/* update: new resource limits from --resources (OCI linux.resources JSON) and/or flags. */
#include <ctype.h>
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

/* "512", "100k", "64m", "1g" (binary units), or -1 for unlimited. */
static int parse_bytes(const char *s, json_int_t *ret)
{
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || errno)
                return -1;
        if (v == -1 && !*end) {
                *ret = -1;
                return 0;
        }
        double mult = 1;
        switch (tolower((unsigned char) *end)) {
        case '\0': break;
        case 'k': mult = 1024.0; break;
        case 'm': mult = 1024.0 * 1024; break;
        case 'g': mult = 1024.0 * 1024 * 1024; break;
        case 't': mult = 1024.0 * 1024 * 1024 * 1024; break;
        default: return -1;
        }
        if (*end && end[1] && !(tolower((unsigned char) end[1]) == 'b' && !end[2]) && strcasecmp(end + 1, "ib"))
                return -1;
        if (v < 0)
                return -1;
        *ret = (json_int_t) (v * mult);
        return 0;
}

static json_t *obj_at(json_t *root, const char *key)
{
        json_t *o = json_object_get(root, key);
        if (!o) {
                o = json_object();
                json_object_set_new(root, key, o);
        }
        return o;
}

int cmd_update(struct cli *cli, int argc, char **argv)
{
        enum {
                O_RESOURCES = 256, O_BLKIO, O_CPU_PERIOD, O_CPU_QUOTA, O_CPU_RT_PERIOD, O_CPU_RT_RUNTIME, O_CPU_SHARE,
                O_CPUSET_CPUS, O_CPUSET_MEMS, O_KMEM, O_KMEM_TCP, O_MEMORY, O_MEM_RES, O_MEM_SWAP, O_PIDS, O_L3, O_MBA,
        };
        static const struct option opts[] = {
                { "resources", required_argument, NULL, O_RESOURCES },
                { "blkio-weight", required_argument, NULL, O_BLKIO },
                { "cpu-period", required_argument, NULL, O_CPU_PERIOD },
                { "cpu-quota", required_argument, NULL, O_CPU_QUOTA },
                { "cpu-rt-period", required_argument, NULL, O_CPU_RT_PERIOD },
                { "cpu-rt-runtime", required_argument, NULL, O_CPU_RT_RUNTIME },
                { "cpu-share", required_argument, NULL, O_CPU_SHARE },
                { "cpuset-cpus", required_argument, NULL, O_CPUSET_CPUS },
                { "cpuset-mems", required_argument, NULL, O_CPUSET_MEMS },
                { "kernel-memory", required_argument, NULL, O_KMEM },
                { "kernel-memory-tcp", required_argument, NULL, O_KMEM_TCP },
                { "memory", required_argument, NULL, O_MEMORY },
                { "memory-reservation", required_argument, NULL, O_MEM_RES },
                { "memory-swap", required_argument, NULL, O_MEM_SWAP },
                { "pids-limit", required_argument, NULL, O_PIDS },
                { "l3-cache-schema", required_argument, NULL, O_L3 },
                { "mem-bw-schema", required_argument, NULL, O_MBA },
                { "help", no_argument, NULL, 'h' },
                { NULL },
        };
        _cleanup_json_ json_t *res = json_object();
        const char *resources_file = NULL;
        int c;
        while ((c = getopt_long_only(argc, argv, "+h", opts, NULL)) != -1) {
                json_int_t n;
                char *end;
                const char *name = NULL;
                json_t *target = NULL;
                const char *key = NULL;
                bool bytes = false, string = false;
                switch (c) {
                case 'h':
                        printf("Usage: silo-runtime update [--resources FILE|-] [--memory N] [--memory-swap N] "
                               "[--memory-reservation N] [--cpu-share N] [--cpu-quota N] [--cpu-period N] "
                               "[--cpuset-cpus L] [--cpuset-mems L] [--pids-limit N] [--blkio-weight N] ID\n");
                        return 0;
                case O_RESOURCES: resources_file = optarg; continue;
                case O_L3: case O_MBA:
                        return cli_usage_error(cli, "update: Intel RDT is not supported");
                case O_BLKIO: target = obj_at(res, "blockIO"); key = "weight"; break;
                case O_CPU_PERIOD: target = obj_at(res, "cpu"); key = "period"; break;
                case O_CPU_QUOTA: target = obj_at(res, "cpu"); key = "quota"; break;
                case O_CPU_RT_PERIOD: target = obj_at(res, "cpu"); key = "realtimePeriod"; break;
                case O_CPU_RT_RUNTIME: target = obj_at(res, "cpu"); key = "realtimeRuntime"; break;
                case O_CPU_SHARE: target = obj_at(res, "cpu"); key = "shares"; break;
                case O_CPUSET_CPUS: target = obj_at(res, "cpu"); key = "cpus"; string = true; break;
                case O_CPUSET_MEMS: target = obj_at(res, "cpu"); key = "mems"; string = true; break;
                case O_KMEM: target = obj_at(res, "memory"); key = "kernel"; bytes = true; break;
                case O_KMEM_TCP: target = obj_at(res, "memory"); key = "kernelTCP"; bytes = true; break;
                case O_MEMORY: target = obj_at(res, "memory"); key = "limit"; bytes = true; break;
                case O_MEM_RES: target = obj_at(res, "memory"); key = "reservation"; bytes = true; break;
                case O_MEM_SWAP: target = obj_at(res, "memory"); key = "swap"; bytes = true; break;
                case O_PIDS: target = obj_at(res, "pids"); key = "limit"; break;
                default: return cli_usage_error(cli, "usage: silo-runtime update [OPTIONS] ID (see --help)");
                }
                name = opts[c - 256].name;
                if (string) {
                        json_object_set_new(target, key, json_string(optarg));
                        continue;
                }
                if (bytes) {
                        if (parse_bytes(optarg, &n) < 0)
                                return cli_usage_error(cli, "update --%s: invalid size \"%s\"", name, optarg);
                } else {
                        errno = 0;
                        n = strtoll(optarg, &end, 10);
                        if (*end || errno || end == optarg)
                                return cli_usage_error(cli, "update --%s: invalid number \"%s\"", name, optarg);
                }
                json_object_set_new(target, key, json_integer(n));
        }
        if (optind >= argc)
                return cli_usage_error(cli, "update: missing container ID");
        const char *id = argv[optind];
        silo_error err = SILO_ERROR_INIT;

        if (resources_file) {
                _cleanup_json_ json_t *from = NULL;
                int r = !strcmp(resources_file, "-")
                        ? (from = json_loadf(stdin, 0, NULL)) ? 0 : silo_error_msg(&err, EINVAL, "update --resources -: invalid JSON on stdin")
                        : silo_json_load_file_at(AT_FDCWD, resources_file, 1u << 20, &from, &err);
                if (r < 0)
                        return cli_fail(cli, &err);
                /* Flags given alongside the file win. */
                json_object_update_recursive(from, res);
                json_decref(res);
                res = json_incref(from);
        }
        if (silo_container_update(&cli->rt, id, res, &err) < 0)
                return cli_fail(cli, &err);
        return 0;
}
