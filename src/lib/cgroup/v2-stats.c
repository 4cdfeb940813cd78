/* cgroup v2 statistics in the runc `events --stats` shape, following how
 * runc's fs2 driver maps the unified files onto the v1-era structure. */
#include "cgroup/cgroup-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENOMEM_STATS(err) silo_error_set((err), ENOMEM, "stats")

static int stats_cpu(const struct cgroup_dir *d, json_t *cpu, silo_error *err)
{
        /* cpu.stat is a core file: present even without the cpu controller. */
        static const struct { const char *file_key, *json_key; bool usage, omitempty; } keys[] = {
                { "usage_usec", "total", true, true },
                { "user_usec", "user", true, false },
                { "system_usec", "kernel", true, false },
                { "nr_periods", "periods", false, true },
                { "nr_throttled", "throttledPeriods", false, true },
                { "throttled_usec", "throttledTime", false, true },
        };
        _cleanup_free_ char *stat = NULL;

        int r = cgroup_read_opt(d, "cpu.stat", &stat, err);
        if (r < 0 || !stat)
                return r;
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
                uint64_t v;
                if (cgroup_kv_get(stat, keys[i].file_key, &v) < 0)
                        continue;
                /* runc's units are nanoseconds (and periods are counts). */
                if (strstr(keys[i].file_key, "usec"))
                        v *= 1000;
                json_t *target = json_object_get(cpu, keys[i].usage ? "usage" : "throttling");
                if (cgroup_json_u64(target, keys[i].json_key, v, keys[i].omitempty) < 0)
                        return ENOMEM_STATS(err);
        }
        return 0;
}

static int stats_cpuset(const struct cgroup_dir *d, json_t *cpuset, silo_error *err)
{
        static const struct { const char *file, *key; } lists[] = {
                { "cpuset.cpus.effective", "cpus" },
                { "cpuset.mems.effective", "mems" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
                _cleanup_free_ char *s = NULL;
                int r = cgroup_read_opt(d, lists[i].file, &s, err);
                if (r < 0)
                        return r;
                if (!s)
                        continue;
                json_t *list = cgroup_stats_cpu_list(s);
                if (!list)
                        return ENOMEM_STATS(err);
                if (json_array_size(list) == 0)
                        json_decref(list);
                else if (json_object_set_new(cpuset, lists[i].key, list) < 0)
                        return ENOMEM_STATS(err);
        }
        return 0;
}

static int stats_memory(const struct cgroup_dir *d, json_t *memory, silo_error *err)
{
        _cleanup_free_ char *stat = NULL, *events = NULL;
        uint64_t usage, limit, peak, failcnt = 0, swap_usage, swap_limit, v;
        int r;

        if (!cgroup_file_exists(d, "memory.current"))
                return 0;       /* memory controller not enabled here */
        if ((r = cgroup_read_u64(d, "memory.current", &usage, err)) < 0 ||
            (r = cgroup_read_u64_opt(d, "memory.max", &limit, err)) < 0 ||
            (r = cgroup_read_u64_opt(d, "memory.peak", &peak, err)) < 0 ||
            (r = cgroup_read_opt(d, "memory.events", &events, err)) < 0)
                return r;
        /* failcnt: how often the limit was hit. */
        if (events)
                (void) cgroup_kv_get(events, "max", &failcnt);
        if (json_object_set_new(memory, "usage", cgroup_stats_memory_entry(limit, usage, peak, failcnt)) < 0)
                return ENOMEM_STATS(err);

        /* Swap as v1's memsw: memory plus swap, with the limits added. */
        if (cgroup_file_exists(d, "memory.swap.current")) {
                if ((r = cgroup_read_u64(d, "memory.swap.current", &swap_usage, err)) < 0 ||
                    (r = cgroup_read_u64_opt(d, "memory.swap.max", &swap_limit, err)) < 0)
                        return r;
                uint64_t total_limit = swap_limit == UINT64_MAX || limit == UINT64_MAX ? UINT64_MAX : swap_limit + limit;
                if (json_object_set_new(memory, "swap", cgroup_stats_memory_entry(total_limit, swap_usage + usage, 0, 0)) < 0)
                        return ENOMEM_STATS(err);
        }

        r = cgroup_read_opt(d, "memory.stat", &stat, err);
        if (r < 0 || !stat)
                return r;
        json_t *raw = cgroup_stats_kv_map(stat);
        if (!raw || json_object_set_new(memory, "raw", raw) < 0)
                return ENOMEM_STATS(err);
        if (cgroup_kv_get(stat, "file", &v) == 0 && cgroup_json_u64(memory, "cache", v, true) < 0)
                return ENOMEM_STATS(err);
        return 0;
}

static int stats_pids(const struct cgroup_dir *d, json_t *pids, silo_error *err)
{
        uint64_t current, limit;
        int r;

        if (!cgroup_file_exists(d, "pids.current"))
                return 0;
        if ((r = cgroup_read_u64(d, "pids.current", &current, err)) < 0 ||
            (r = cgroup_read_u64_opt(d, "pids.max", &limit, err)) < 0)
                return r;
        if (cgroup_json_u64(pids, "current", current, true) < 0 ||
            cgroup_json_u64(pids, "limit", limit == UINT64_MAX ? 0 : limit, true) < 0)
                return ENOMEM_STATS(err);
        return 0;
}

/* io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0". */
static int stats_io(const struct cgroup_dir *d, json_t *blkio, silo_error *err)
{
        static const struct { const char *key, *op; bool bytes; } fields[] = {
                { "rbytes", "Read", true }, { "wbytes", "Write", true },
                { "rios", "Read", false }, { "wios", "Write", false },
        };
        _cleanup_free_ char *s = NULL;
        _cleanup_json_ json_t *bytes = json_array(), *ios = json_array();

        if (!bytes || !ios)
                return ENOMEM_STATS(err);
        int r = cgroup_read_opt(d, "io.stat", &s, err);
        if (r < 0 || !s)
                return r;
        for (char *line = s, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                unsigned long long major, minor;
                int off = 0;
                if (sscanf(line, "%llu:%llu%n", &major, &minor, &off) != 2)
                        continue;
                for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
                        char pat[16];
                        snprintf(pat, sizeof(pat), " %s=", fields[i].key);
                        const char *at = strstr(line + off, pat);
                        if (!at)
                                continue;
                        unsigned long long v = strtoull(at + strlen(pat), NULL, 10);
                        if (cgroup_stats_blkio_add(fields[i].bytes ? bytes : ios, major, minor, fields[i].op, v) < 0)
                                return ENOMEM_STATS(err);
                }
        }
        if ((json_array_size(bytes) && json_object_set(blkio, "ioServiceBytesRecursive", bytes) < 0) ||
            (json_array_size(ios) && json_object_set(blkio, "ioServicedRecursive", ios) < 0))
                return ENOMEM_STATS(err);
        return 0;
}

static int stats_hugetlb(const struct cgroup_dir *d, json_t *hugetlb, silo_error *err)
{
        static const char pre[] = "hugetlb.", suf[] = ".current";
        int fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return silo_error_set(err, errno, "open %s", d->path);
        _cleanup_closedir_ DIR *dir = fdopendir(fd);
        if (!dir) {
                close(fd);
                return silo_error_set(err, errno, "opendir %s", d->path);
        }
        struct dirent *de;
        while ((de = readdir(dir))) {
                const char *name = de->d_name;
                size_t len = strlen(name), plen = strlen(pre), slen = strlen(suf);
                char size[32], file[128];
                _cleanup_free_ char *events = NULL;
                uint64_t usage, failcnt = 0;

                if (len <= plen + slen || strncmp(name, pre, plen) || strcmp(name + len - slen, suf) ||
                    len - plen - slen >= sizeof(size))
                        continue;
                snprintf(size, sizeof(size), "%.*s", (int) (len - plen - slen), name + plen);
                if (strchr(size, '.'))
                        continue;       /* hugetlb.2MB.rsvd.current */
                int r = cgroup_read_u64(d, name, &usage, err);
                if (r < 0)
                        return r;
                snprintf(file, sizeof(file), "hugetlb.%s.events", size);
                r = cgroup_read_opt(d, file, &events, err);
                if (r < 0)
                        return r;
                if (events)
                        (void) cgroup_kv_get(events, "max", &failcnt);
                json_t *e = json_object();
                if (!e || json_object_set_new(hugetlb, size, e) < 0 || cgroup_json_u64(e, "usage", usage, true) < 0 ||
                    cgroup_json_u64(e, "failcnt", failcnt, false) < 0)
                        return ENOMEM_STATS(err);
        }
        return 0;
}

int cgroup_v2_stats(silo_cgroup *cg, json_t **ret, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        _cleanup_json_ json_t *stats = cgroup_stats_new();
        int r;

        if (!stats)
                return ENOMEM_STATS(err);
        r = cgroup_dir_open(&d, &cg->hier[0], NULL, err);
        if (r < 0)
                return r;
        if ((r = stats_cpu(&d, json_object_get(stats, "cpu"), err)) < 0 ||
            (r = stats_cpuset(&d, json_object_get(stats, "cpuset"), err)) < 0 ||
            (r = stats_memory(&d, json_object_get(stats, "memory"), err)) < 0 ||
            (r = stats_pids(&d, json_object_get(stats, "pids"), err)) < 0 ||
            (r = stats_io(&d, json_object_get(stats, "blkio"), err)) < 0 ||
            (r = stats_hugetlb(&d, json_object_get(stats, "hugetlb"), err)) < 0)
                return r;
        *ret = TAKE_PTR(stats);
        return 0;
}
