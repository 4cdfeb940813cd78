/* cgroup v1 statistics in the runc `events --stats` shape.  Controllers
 * that are not mounted leave their (zeroed) section as is; files missing on
 * older kernels read as zero. */
#include "cgroup/cgroup-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Opens the controller's directory; 0 with d->fd < 0 if it is not mounted. */
static int open_opt(const silo_cgroup *cg, const char *controller, struct cgroup_dir *d, silo_error *err)
{
        const struct cgroup_hierarchy *h = cgroup_v1_find(cg, controller);
        return h ? cgroup_dir_open(d, h, NULL, err) : 0;
}

/* "N N N" per-cpu counters into a JSON array; omitted when empty. */
static int put_u64_list(const struct cgroup_dir *d, const char *file, json_t *obj, const char *key, silo_error *err)
{
        _cleanup_free_ char *s = NULL;
        int r = cgroup_read_opt(d, file, &s, err);
        if (r < 0 || !s)
                return r;

        _cleanup_json_ json_t *list = json_array();
        if (!list)
                return silo_error_set(err, ENOMEM, "stats");
        for (char *p = s, *end;; p = end) {
                unsigned long long v = strtoull(p, &end, 10);
                if (end == p)
                        break;
                if (json_array_append_new(list, json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t) v)) < 0)
                        return silo_error_set(err, ENOMEM, "stats");
        }
        if (json_array_size(list) && json_object_set(obj, key, list) < 0)
                return silo_error_set(err, ENOMEM, "stats");
        return 0;
}

static int stats_cpu(silo_cgroup *cg, json_t *cpu, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir acct = CGROUP_DIR_INIT, d = CGROUP_DIR_INIT;
        json_t *usage = json_object_get(cpu, "usage"), *throttling = json_object_get(cpu, "throttling");
        uint64_t v;
        int r;

        r = open_opt(cg, "cpuacct", &acct, err);
        if (r < 0)
                return r;
        if (acct.fd >= 0) {
                _cleanup_free_ char *stat = NULL;
                if ((r = cgroup_read_u64_opt(&acct, "cpuacct.usage", &v, err)) < 0 ||
                    cgroup_json_u64(usage, "total", v, true) < 0)
                        return r < 0 ? r : silo_error_set(err, ENOMEM, "stats");
                if ((r = put_u64_list(&acct, "cpuacct.usage_percpu", usage, "percpu", err)) < 0 ||
                    (r = put_u64_list(&acct, "cpuacct.usage_percpu_sys", usage, "percpu_kernel", err)) < 0 ||
                    (r = put_u64_list(&acct, "cpuacct.usage_percpu_user", usage, "percpu_user", err)) < 0)
                        return r;
                /* user/system are in USER_HZ ticks. */
                r = cgroup_read_opt(&acct, "cpuacct.stat", &stat, err);
                if (r < 0)
                        return r;
                long hz = sysconf(_SC_CLK_TCK);
                uint64_t ns_per_tick = hz > 0 ? 1000000000ull / (uint64_t) hz : 10000000ull;
                if (stat && cgroup_kv_get(stat, "user", &v) == 0 && cgroup_json_u64(usage, "user", v * ns_per_tick, false) < 0)
                        return silo_error_set(err, ENOMEM, "stats");
                if (stat && cgroup_kv_get(stat, "system", &v) == 0 &&
                    cgroup_json_u64(usage, "kernel", v * ns_per_tick, false) < 0)
                        return silo_error_set(err, ENOMEM, "stats");
        }

        r = open_opt(cg, "cpu", &d, err);
        if (r < 0 || d.fd < 0)
                return r;
        _cleanup_free_ char *stat = NULL;
        r = cgroup_read_opt(&d, "cpu.stat", &stat, err);
        if (r < 0 || !stat)
                return r;
        static const struct { const char *file_key, *json_key; } keys[] = {
                { "nr_periods", "periods" },
                { "nr_throttled", "throttledPeriods" },
                { "throttled_time", "throttledTime" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
                if (cgroup_kv_get(stat, keys[i].file_key, &v) == 0 &&
                    cgroup_json_u64(throttling, keys[i].json_key, v, true) < 0)
                        return silo_error_set(err, ENOMEM, "stats");
        return 0;
}

static int memory_entry(const struct cgroup_dir *d, const char *prefix, json_t *memory, const char *key, silo_error *err)
{
        static const char *const suffixes[] = { "limit_in_bytes", "usage_in_bytes", "max_usage_in_bytes", "failcnt" };
        uint64_t v[4];

        for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
                char file[128];
                snprintf(file, sizeof(file), "%s.%s", prefix, suffixes[i]);
                int r = cgroup_read_u64_opt(d, file, &v[i], err);
                if (r < 0)
                        return r;
        }
        if (json_object_set_new(memory, key, cgroup_stats_memory_entry(v[0], v[1], v[2], v[3])) < 0)
                return silo_error_set(err, ENOMEM, "stats");
        return 0;
}

static int stats_memory(silo_cgroup *cg, json_t *memory, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        _cleanup_free_ char *stat = NULL;
        uint64_t cache;
        int r;

        r = open_opt(cg, "memory", &d, err);
        if (r < 0 || d.fd < 0)
                return r;
        if ((r = memory_entry(&d, "memory", memory, "usage", err)) < 0 ||
            (r = memory_entry(&d, "memory.memsw", memory, "swap", err)) < 0 ||
            (r = memory_entry(&d, "memory.kmem", memory, "kernel", err)) < 0 ||
            (r = memory_entry(&d, "memory.kmem.tcp", memory, "kernelTCP", err)) < 0)
                return r;

        r = cgroup_read_opt(&d, "memory.stat", &stat, err);
        if (r < 0 || !stat)
                return r;
        json_t *raw = cgroup_stats_kv_map(stat);
        if (!raw || json_object_set_new(memory, "raw", raw) < 0)
                return silo_error_set(err, ENOMEM, "stats");
        if (cgroup_kv_get(stat, "cache", &cache) == 0 && cgroup_json_u64(memory, "cache", cache, true) < 0)
                return silo_error_set(err, ENOMEM, "stats");
        return 0;
}

static int stats_pids(silo_cgroup *cg, json_t *pids, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        uint64_t current, limit;

        int r = open_opt(cg, "pids", &d, err);
        if (r < 0 || d.fd < 0)
                return r;
        if ((r = cgroup_read_u64_opt(&d, "pids.current", &current, err)) < 0 ||
            (r = cgroup_read_u64_opt(&d, "pids.max", &limit, err)) < 0)
                return r;
        /* runc reports "max" as 0 (no limit). */
        if (cgroup_json_u64(pids, "current", current, true) < 0 ||
            cgroup_json_u64(pids, "limit", limit == UINT64_MAX ? 0 : limit, true) < 0)
                return silo_error_set(err, ENOMEM, "stats");
        return 0;
}

/* "8:0 Read 4096" lines (or "8:0 4096" without an op) into entries. */
static int blkio_list(const struct cgroup_dir *d, const char *file, json_t *blkio, const char *key, silo_error *err)
{
        _cleanup_free_ char *s = NULL;
        int r = cgroup_read_opt(d, file, &s, err);
        if (r < 0 || !s)
                return r;

        _cleanup_json_ json_t *list = json_array();
        if (!list)
                return silo_error_set(err, ENOMEM, "stats");
        for (char *line = s, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                unsigned long long major, minor, value;
                char op[32] = "";
                if (sscanf(line, "%llu:%llu %31s %llu", &major, &minor, op, &value) != 4) {
                        op[0] = '\0';
                        if (sscanf(line, "%llu:%llu %llu", &major, &minor, &value) != 3)
                                continue;       /* the trailing "Total N" */
                }
                if (cgroup_stats_blkio_add(list, major, minor, op, value) < 0)
                        return silo_error_set(err, ENOMEM, "stats");
        }
        if (json_array_size(list) && json_object_set(blkio, key, list) < 0)
                return silo_error_set(err, ENOMEM, "stats");
        return 0;
}

static int stats_blkio(silo_cgroup *cg, json_t *blkio, silo_error *err)
{
        static const struct { const char *suffix, *key; } files[] = {
                { "io_service_bytes_recursive", "ioServiceBytesRecursive" },
                { "io_serviced_recursive", "ioServicedRecursive" },
                { "io_queued_recursive", "ioQueueRecursive" },
                { "io_service_time_recursive", "ioServiceTimeRecursive" },
                { "io_wait_time_recursive", "ioWaitTimeRecursive" },
                { "io_merged_recursive", "ioMergedRecursive" },
                { "time_recursive", "ioTimeRecursive" },
                { "sectors_recursive", "sectorsRecursive" },
        };
        /* CFQ's full set, else BFQ's, else what the throttle layer counts. */
        static const char *const families[] = { "blkio.", "blkio.bfq.", "blkio.throttle." };
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        const char *family = "blkio.throttle.";

        int r = open_opt(cg, "blkio", &d, err);
        if (r < 0 || d.fd < 0)
                return r;
        for (size_t f = 0; f < ARRAY_SIZE(families); f++) {
                _cleanup_free_ char *s = NULL;
                char file[128];
                snprintf(file, sizeof(file), "%sio_serviced_recursive", families[f]);
                r = cgroup_read_opt(&d, file, &s, err);
                if (r < 0)
                        return r;
                if (s && strchr(s, ':')) {
                        family = families[f];
                        break;
                }
        }
        for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
                char file[128];
                snprintf(file, sizeof(file), "%s%s", family, files[i].suffix);
                r = blkio_list(&d, file, blkio, files[i].key, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int stats_hugetlb(silo_cgroup *cg, json_t *hugetlb, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;

        int r = open_opt(cg, "hugetlb", &d, err);
        if (r < 0 || d.fd < 0)
                return r;
        int fd = openat(d.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return silo_error_set(err, errno, "open %s", d.path);
        _cleanup_closedir_ DIR *dir = fdopendir(fd);
        if (!dir) {
                close(fd);
                return silo_error_set(err, errno, "opendir %s", d.path);
        }
        /* One "hugetlb.<size>.limit_in_bytes" per page size the kernel has. */
        struct dirent *de;
        while ((de = readdir(dir))) {
                char size[32], file[128];
                uint64_t usage, max, failcnt;
                const char *name = de->d_name;
                size_t len = strlen(name);
                static const char pre[] = "hugetlb.", suf[] = ".limit_in_bytes";
                if (len <= strlen(pre) + strlen(suf) || strncmp(name, pre, strlen(pre)) ||
                    strcmp(name + len - strlen(suf), suf) || len - strlen(pre) - strlen(suf) >= sizeof(size))
                        continue;
                snprintf(size, sizeof(size), "%.*s", (int) (len - strlen(pre) - strlen(suf)), name + strlen(pre));
                if (strchr(size, '.'))
                        continue;       /* hugetlb.2MB.rsvd.limit_in_bytes */
                snprintf(file, sizeof(file), "hugetlb.%s.usage_in_bytes", size);
                if ((r = cgroup_read_u64_opt(&d, file, &usage, err)) < 0)
                        return r;
                snprintf(file, sizeof(file), "hugetlb.%s.max_usage_in_bytes", size);
                if ((r = cgroup_read_u64_opt(&d, file, &max, err)) < 0)
                        return r;
                snprintf(file, sizeof(file), "hugetlb.%s.failcnt", size);
                if ((r = cgroup_read_u64_opt(&d, file, &failcnt, err)) < 0)
                        return r;
                json_t *e = json_object();
                if (!e || json_object_set_new(hugetlb, size, e) < 0 ||
                    cgroup_json_u64(e, "usage", usage, true) < 0 || cgroup_json_u64(e, "max", max, true) < 0 ||
                    cgroup_json_u64(e, "failcnt", failcnt, false) < 0)
                        return silo_error_set(err, ENOMEM, "stats");
        }
        return 0;
}

static int stats_cpuset(silo_cgroup *cg, json_t *cpuset, silo_error *err)
{
        static const char *const numbers[] = {
                "cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                "memory_spread_slab", "memory_pressure", "sched_load_balance", "sched_relax_domain_level",
        };
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;

        int r = open_opt(cg, "cpuset", &d, err);
        if (r < 0 || d.fd < 0)
                return r;
        static const char *const lists[] = { "cpus", "mems" };
        for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
                _cleanup_free_ char *s = NULL;
                char file[64];
                snprintf(file, sizeof(file), "cpuset.%s", lists[i]);
                r = cgroup_read_opt(&d, file, &s, err);
                if (r < 0)
                        return r;
                json_t *list = s ? cgroup_stats_cpu_list(s) : NULL;
                if (s && !list)
                        return silo_error_set(err, ENOMEM, "stats");
                if (list && json_array_size(list) == 0)
                        json_decref(TAKE_PTR(list));
                if (list && json_object_set_new(cpuset, lists[i], list) < 0)
                        return silo_error_set(err, ENOMEM, "stats");
        }
        for (size_t i = 0; i < ARRAY_SIZE(numbers); i++) {
                _cleanup_free_ char *s = NULL;
                char file[64];
                snprintf(file, sizeof(file), "cpuset.%s", numbers[i]);
                r = cgroup_read_opt(&d, file, &s, err);
                if (r < 0)
                        return r;
                /* sched_relax_domain_level is -1 by default: signed. */
                if (s && json_object_set_new(cpuset, numbers[i], json_integer(strtoll(s, NULL, 10))) < 0)
                        return silo_error_set(err, ENOMEM, "stats");
        }
        return 0;
}

int cgroup_v1_stats(silo_cgroup *cg, json_t **ret, silo_error *err)
{
        _cleanup_json_ json_t *stats = cgroup_stats_new();
        int r;

        if (!stats)
                return silo_error_set(err, ENOMEM, "stats");
        if ((r = stats_cpu(cg, json_object_get(stats, "cpu"), err)) < 0 ||
            (r = stats_cpuset(cg, json_object_get(stats, "cpuset"), err)) < 0 ||
            (r = stats_memory(cg, json_object_get(stats, "memory"), err)) < 0 ||
            (r = stats_pids(cg, json_object_get(stats, "pids"), err)) < 0 ||
            (r = stats_blkio(cg, json_object_get(stats, "blkio"), err)) < 0 ||
            (r = stats_hugetlb(cg, json_object_get(stats, "hugetlb"), err)) < 0)
                return r;
        *ret = TAKE_PTR(stats);
        return 0;
}
