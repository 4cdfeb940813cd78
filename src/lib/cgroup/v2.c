/* cgroup v2 backend: one directory in the unified tree.  Controllers are
 * enabled in the ancestors' cgroup.subtree_control only for the resources
 * actually requested; OCI values are mapped the way crun and runc do. */
#include "cgroup/cgroup-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define FREEZE_TIMEOUT_MS 2000
#define MAX_NEEDS 32

static int v2_open(const silo_cgroup *cg, struct cgroup_dir *d, silo_error *err)
{
        return cgroup_dir_open(d, &cg->hier[0], NULL, err);
}

uint64_t cgroup_v2_cpu_weight(uint64_t shares)
{
        /* The quadratic fit crun (1.23+) and runc (1.3+) use: on a log
         * scale it maps 2 -> 1, 1024 -> 100 (both defaults) and
         * 262144 -> 10000.  The older linear mapping gave 1024 -> 39, so
         * default containers were starved next to native v2 services. */
        if (shares == 0)
                return 0;
        if (shares <= 2)
                return 1;
        if (shares >= 262144)
                return 10000;
        double l = log2((double) shares);
        double exponent = (l * l + 125 * l) / 612.0 - 7.0 / 34.0;
        return (uint64_t) ceil(pow(10, exponent));
}

uint64_t cgroup_v2_io_weight(uint64_t blkio_weight)
{
        /* blkio's 10..1000 onto io.weight's 1..10000, linearly (runc). */
        return 1 + (blkio_weight - 10) * 9999 / 990;
}

/* ---- which controllers a resource set needs ---- */

struct need {
        char controller[32];
        char field[96];
};

static void add_need(struct need *needs, size_t *n, const char *controller, size_t clen, const char *field)
{
        if (clen >= sizeof(needs[0].controller))
                return;
        for (size_t i = 0; i < *n; i++)
                if (strlen(needs[i].controller) == clen && !strncmp(needs[i].controller, controller, clen))
                        return;
        if (*n >= MAX_NEEDS)
                return;
        snprintf(needs[*n].controller, sizeof(needs[*n].controller), "%.*s", (int) clen, controller);
        snprintf(needs[*n].field, sizeof(needs[*n].field), "%s", field);
        (*n)++;
}

static void need(struct need *needs, size_t *n, const char *controller, const char *field)
{
        add_need(needs, n, controller, strlen(controller), field);
}

static bool nonzero(const silo_opt_i64 *v)
{
        return v->set && v->value != 0;
}

static size_t needed_controllers(const struct silo_resources *res, struct need needs[MAX_NEEDS])
{
        const typeof(res->block_io) *b = &res->block_io;
        size_t n = 0;

        if (res->cpu.cpus && *res->cpu.cpus)
                need(needs, &n, "cpuset", "linux.resources.cpu.cpus");
        if (res->cpu.mems && *res->cpu.mems)
                need(needs, &n, "cpuset", "linux.resources.cpu.mems");
        if (nonzero(&res->memory.limit))
                need(needs, &n, "memory", "linux.resources.memory.limit");
        if (nonzero(&res->memory.swap))
                need(needs, &n, "memory", "linux.resources.memory.swap");
        if (nonzero(&res->memory.reservation))
                need(needs, &n, "memory", "linux.resources.memory.reservation");
        if (res->cpu.shares.set && res->cpu.shares.value)
                need(needs, &n, "cpu", "linux.resources.cpu.shares");
        if (nonzero(&res->cpu.quota) || (res->cpu.period.set && res->cpu.period.value))
                need(needs, &n, "cpu", "linux.resources.cpu.quota");
        if (res->cpu.burst.set)
                need(needs, &n, "cpu", "linux.resources.cpu.burst");
        if (res->cpu.idle.set)
                need(needs, &n, "cpu", "linux.resources.cpu.idle");
        if (res->pids.limit.set)
                need(needs, &n, "pids", "linux.resources.pids.limit");
        if ((b->weight.set && b->weight.value) || b->n_weight_devices)
                need(needs, &n, "io", "linux.resources.blockIO.weight");
        if (b->n_throttle_read_bps || b->n_throttle_write_bps || b->n_throttle_read_iops || b->n_throttle_write_iops)
                need(needs, &n, "io", "linux.resources.blockIO.throttle");
        if (res->n_hugepage_limits)
                need(needs, &n, "hugetlb", "linux.resources.hugepageLimits");

        const char *key;
        json_t *v;
        if (res->unified) {
                json_object_foreach(res->unified, key, v) {
                        /* "memory.high" needs "memory"; "cgroup.*" are core files. */
                        size_t clen = strcspn(key, ".");
                        char field[96];
                        if (clen == 6 && !strncmp(key, "cgroup", 6))
                                continue;
                        snprintf(field, sizeof(field), "linux.resources.unified.%s", key);
                        add_need(needs, &n, key, clen, field);
                }
        }
        return n;
}

/* Makes each needed controller available down to the leaf: every ancestor
 * must list it in cgroup.controllers and enable it in subtree_control.  The
 * leaf's own subtree_control stays empty (no internal processes). */
static int enable_controllers(const silo_cgroup *cg, const struct need *needs, size_t n, silo_error *err)
{
        const struct cgroup_hierarchy *leaf = &cg->hier[0];
        char prefix[PATH_MAX] = "/";
        const char *p = leaf->path;

        if (n == 0)
                return 0;
        for (;;) {
                _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
                _cleanup_free_ char *available = NULL, *enabled = NULL;
                struct cgroup_hierarchy at = { .mount = leaf->mount, .path = prefix };
                char enable[MAX_NEEDS * 34] = "";
                int r;

                r = cgroup_dir_open(&d, &at, NULL, err);
                if (r < 0)
                        return r;
                r = cgroup_read(&d, "cgroup.controllers", &available, err);
                if (r < 0)
                        return r;
                r = cgroup_read(&d, "cgroup.subtree_control", &enabled, err);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n; i++) {
                        if (!cgroup_list_contains(available, needs[i].controller, " \n"))
                                return silo_error_msg(err, EOPNOTSUPP, "cgroup v2 controller '%s' is not available "
                                                      "(needed for %s; %s/cgroup.controllers does not list it)",
                                                      needs[i].controller, needs[i].field, d.path);
                        if (cgroup_list_contains(enabled, needs[i].controller, " \n"))
                                continue;
                        size_t len = strlen(enable);
                        int w = snprintf(enable + len, sizeof(enable) - len, "%s+%s", len ? " " : "",
                                         needs[i].controller);
                        if (w < 0 || (size_t) w >= sizeof(enable) - len)
                                return silo_error_msg(err, E2BIG, "too many controllers to enable");
                }
                /* One write for all: the kernel applies the list atomically. */
                if (*enable && (r = cgroup_write(&d, "cgroup.subtree_control", enable, err)) < 0)
                        return silo_error_prefix(err, "enable controllers");

                /* Next component; stop before the leaf itself. */
                p += strspn(p, "/");
                size_t clen = strcspn(p, "/");
                const char *rest = p + clen;
                if (!*(rest + strspn(rest, "/")))
                        return 0;
                size_t plen = strlen(prefix);
                if (plen + clen + 2 >= sizeof(prefix))
                        return silo_error_msg(err, ENAMETOOLONG, "cgroup path %s is too long", leaf->path);
                snprintf(prefix + plen, sizeof(prefix) - plen, "%s%.*s", plen > 1 ? "/" : "", (int) clen, p);
                p = rest;
        }
}

/* ---- resources ---- */

static void format_limit(char buf[32], int64_t v)
{
        if (v < 0)
                snprintf(buf, 32, "max");
        else
                snprintf(buf, 32, "%" PRId64, v);
}

static int v2_set_memory(const struct cgroup_dir *d, const struct silo_resources *res, silo_error *err)
{
        int64_t limit = nonzero(&res->memory.limit) ? res->memory.limit.value : 0;
        int64_t swap = nonzero(&res->memory.swap) ? res->memory.swap.value : 0;
        int64_t reservation = nonzero(&res->memory.reservation) ? res->memory.reservation.value : 0;
        char buf[32];
        int r;

        /* kernel, kernelTCP, swappiness, disableOOMKiller and useHierarchy
         * have no v2 equivalent; like runc we ignore them. */
        if (!limit && !swap && !reservation)
                return 0;

        if (limit > 0 && res->memory.check_before_update.set && res->memory.check_before_update.value) {
                uint64_t current;
                r = cgroup_read_u64(d, "memory.current", &current, err);
                if (r < 0)
                        return r;
                if (current > (uint64_t) limit)
                        return silo_error_msg(err, EBUSY, "linux.resources.memory.limit: %" PRId64 " is below the "
                                              "current usage of %" PRIu64 " bytes", limit, current);
        }

        /* OCI swap is memory+swap (the v1 memsw); v2 limits swap alone. */
        bool write_swap = true;
        int64_t swap_max = 0;
        if (swap == -1 || (limit == -1 && !swap))
                swap_max = -1;
        else if (swap > 0) {
                if (limit <= 0)
                        return silo_error_msg(err, EINVAL, "linux.resources.memory.swap: cannot limit swap without "
                                              "a memory limit on cgroup v2");
                swap_max = swap - limit;        /* swap >= limit was checked */
        } else
                write_swap = false;

        if (write_swap) {
                if (cgroup_file_exists(d, "memory.swap.max")) {
                        format_limit(buf, swap_max);
                        r = cgroup_set(d, "memory.swap.max", "linux.resources.memory.swap", err, "%s", buf);
                        if (r < 0)
                                return r;
                } else if (swap && swap_max != -1) {
                        return silo_error_msg(err, EOPNOTSUPP, "linux.resources.memory.swap: %s/memory.swap.max is "
                                              "missing (swap accounting is disabled in this kernel)", d->path);
                }
        }
        if (limit) {
                format_limit(buf, limit);
                r = cgroup_set(d, "memory.max", "linux.resources.memory.limit", err, "%s", buf);
                if (r < 0)
                        return r;
        }
        if (reservation) {
                format_limit(buf, reservation);
                r = cgroup_set(d, "memory.low", "linux.resources.memory.reservation", err, "%s", buf);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int v2_set_cpu(const struct cgroup_dir *d, const struct silo_resources *res, silo_error *err)
{
        const typeof(res->cpu) *c = &res->cpu;
        uint64_t period = c->period.set ? c->period.value : 0;
        int64_t quota = nonzero(&c->quota) ? c->quota.value : 0;
        int r;

        /* cpuset.* here too: OCI keeps cpus and mems under "cpu". */
        if (c->cpus && *c->cpus && (r = cgroup_set(d, "cpuset.cpus", "linux.resources.cpu.cpus", err, "%s", c->cpus)) < 0)
                return r;
        if (c->mems && *c->mems && (r = cgroup_set(d, "cpuset.mems", "linux.resources.cpu.mems", err, "%s", c->mems)) < 0)
                return r;
        if (c->shares.set && c->shares.value &&
            (r = cgroup_set(d, "cpu.weight", "linux.resources.cpu.shares", err, "%" PRIu64,
                            cgroup_v2_cpu_weight(c->shares.value))) < 0)
                return r;

        if (quota || period) {
                char q[32];
                if (quota) {
                        format_limit(q, quota);
                } else {
                        /* Only the period changes: keep the current quota. */
                        _cleanup_free_ char *cur = NULL;
                        r = cgroup_read(d, "cpu.max", &cur, err);
                        if (r < 0)
                                return silo_error_prefix(err, "linux.resources.cpu.period");
                        snprintf(q, sizeof(q), "%.*s", (int) strcspn(cur, " \n"), cur);
                }
                if (period)
                        r = cgroup_set(d, "cpu.max", "linux.resources.cpu.quota", err, "%s %" PRIu64, q, period);
                else
                        r = cgroup_set(d, "cpu.max", "linux.resources.cpu.quota", err, "%s", q);
                if (r < 0)
                        return r;
        }
        if (c->burst.set && (r = cgroup_set(d, "cpu.max.burst", "linux.resources.cpu.burst", err, "%" PRIu64,
                                            c->burst.value)) < 0)
                return r;
        if (c->idle.set && (r = cgroup_set(d, "cpu.idle", "linux.resources.cpu.idle", err, "%" PRId64,
                                           c->idle.value)) < 0)
                return r;
        return 0;
}

static int check_blkio_weight(uint64_t w, const char *field, silo_error *err)
{
        if (w < 10 || w > 1000)
                return silo_error_msg(err, ERANGE, "%s: %" PRIu64 " is outside the blkio range 10-1000", field, w);
        return 0;
}

/* The throttle limits of one device as a single io.max line. */
static void io_max_line(const struct silo_resources *res, int64_t major, int64_t minor, char *buf, size_t size)
{
        const typeof(res->block_io) *b = &res->block_io;
        const struct { const struct silo_throttle_device *list; size_t n; const char *key; } kinds[] = {
                { b->throttle_read_bps, b->n_throttle_read_bps, "rbps" },
                { b->throttle_write_bps, b->n_throttle_write_bps, "wbps" },
                { b->throttle_read_iops, b->n_throttle_read_iops, "riops" },
                { b->throttle_write_iops, b->n_throttle_write_iops, "wiops" },
        };
        size_t len = (size_t) snprintf(buf, size, "%" PRId64 ":%" PRId64, major, minor);
        for (size_t k = 0; k < ARRAY_SIZE(kinds); k++)
                for (size_t i = 0; i < kinds[k].n && len < size; i++)
                        if (kinds[k].list[i].major == major && kinds[k].list[i].minor == minor)
                                len += (size_t) snprintf(buf + len, size - len, " %s=%" PRIu64, kinds[k].key,
                                                         kinds[k].list[i].rate);
}

static int v2_set_io(const struct cgroup_dir *d, const struct silo_resources *res, silo_error *err)
{
        const typeof(res->block_io) *b = &res->block_io;
        char field[SILO_JSON_PATH_MAX];
        int r;

        /* BFQ takes blkio weights as they are; io.weight wants 1..10000.
         * leafWeight has no v2 equivalent and is ignored, as runc does. */
        bool bfq = cgroup_file_exists(d, "io.bfq.weight");
        if (b->weight.set && b->weight.value) {
                r = check_blkio_weight(b->weight.value, "linux.resources.blockIO.weight", err);
                if (r < 0)
                        return r;
                r = cgroup_set(d, bfq ? "io.bfq.weight" : "io.weight", "linux.resources.blockIO.weight", err,
                               "%" PRIu64, bfq ? b->weight.value : cgroup_v2_io_weight(b->weight.value));
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < b->n_weight_devices; i++) {
                const struct silo_weight_device *w = &b->weight_devices[i];
                snprintf(field, sizeof(field), "linux.resources.blockIO.weightDevice[%zu].weight", i);
                if (!w->weight.set)
                        continue;
                r = check_blkio_weight(w->weight.value, field, err);
                if (r < 0)
                        return r;
                r = cgroup_set(d, bfq ? "io.bfq.weight" : "io.weight", field, err, "%" PRId64 ":%" PRId64 " %" PRIu64,
                               w->major, w->minor, bfq ? w->weight.value : cgroup_v2_io_weight(w->weight.value));
                if (r < 0)
                        return r;
        }

        const struct { const struct silo_throttle_device *list; size_t n; const char *name; } kinds[] = {
                { b->throttle_read_bps, b->n_throttle_read_bps, "throttleReadBpsDevice" },
                { b->throttle_write_bps, b->n_throttle_write_bps, "throttleWriteBpsDevice" },
                { b->throttle_read_iops, b->n_throttle_read_iops, "throttleReadIOPSDevice" },
                { b->throttle_write_iops, b->n_throttle_write_iops, "throttleWriteIOPSDevice" },
        };
        for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
                for (size_t i = 0; i < kinds[k].n; i++) {
                        const struct silo_throttle_device *t = &kinds[k].list[i];
                        /* Each device once, with all its limits, at its first mention. */
                        bool seen = false;
                        for (size_t k2 = 0; k2 <= k && !seen; k2++)
                                for (size_t j = 0; j < (k2 == k ? i : kinds[k2].n) && !seen; j++)
                                        seen = kinds[k2].list[j].major == t->major && kinds[k2].list[j].minor == t->minor;
                        if (seen)
                                continue;
                        char line[256];
                        io_max_line(res, t->major, t->minor, line, sizeof(line));
                        snprintf(field, sizeof(field), "linux.resources.blockIO.%s[%zu]", kinds[k].name, i);
                        r = cgroup_set(d, "io.max", field, err, "%s", line);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int v2_set_hugetlb(const struct cgroup_dir *d, const struct silo_resources *res, silo_error *err)
{
        for (size_t i = 0; i < res->n_hugepage_limits; i++) {
                const struct silo_hugepage_limit *h = &res->hugepage_limits[i];
                char file[64], field[SILO_JSON_PATH_MAX];
                snprintf(field, sizeof(field), "linux.resources.hugepageLimits[%zu]", i);
                snprintf(file, sizeof(file), "hugetlb.%s.max", h->page_size);
                int r = cgroup_set(d, file, field, err, "%" PRIu64, h->limit);
                if (r < 0)
                        return r;
                /* Limiting reservations too makes an over-limit mmap() fail
                 * cleanly instead of a SIGBUS at fault time (runc >= 1.2). */
                snprintf(file, sizeof(file), "hugetlb.%s.rsvd.max", h->page_size);
                if (cgroup_file_exists(d, file) && (r = cgroup_set(d, file, field, err, "%" PRIu64, h->limit)) < 0)
                        return r;
        }
        return 0;
}

static int v2_set_unified(const struct cgroup_dir *d, const struct silo_resources *res, silo_error *err)
{
        const char *key;
        json_t *v;

        if (!res->unified)
                return 0;
        json_object_foreach(res->unified, key, v) {
                char field[SILO_JSON_PATH_MAX];
                snprintf(field, sizeof(field), "linux.resources.unified.%s", key);
                int r = cgroup_check_unified_key(key, "linux.resources.unified", err);
                if (r < 0)
                        return r;
                if (!json_is_string(v))
                        return silo_error_msg(err, EINVAL, "%s: expected a string", field);
                r = cgroup_set(d, key, field, err, "%s", json_string_value(v));
                if (r < 0)
                        return r;
        }
        return 0;
}

static int v2_set_resources(silo_cgroup *cg, const struct silo_resources *res, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        struct need needs[MAX_NEEDS];
        int r;

        /* Whole v1-only controllers: refuse before writing anything. */
        if (res->cpu.realtime_runtime.set || res->cpu.realtime_period.set)
                return silo_error_msg(err, EOPNOTSUPP, "linux.resources.cpu.realtime%s: real-time CPU limits are not "
                                      "supported on cgroup v2", res->cpu.realtime_runtime.set ? "Runtime" : "Period");
        if (res->network.class_id.set || res->network.n_priorities)
                return silo_error_msg(err, EOPNOTSUPP, "linux.resources.network: the net_cls and net_prio "
                                      "controllers do not exist on cgroup v2");

        size_t n = needed_controllers(res, needs);
        r = enable_controllers(cg, needs, n, err);
        if (r < 0)
                return r;

        r = v2_open(cg, &d, err);
        if (r < 0)
                return r;
        if ((r = v2_set_cpu(&d, res, err)) < 0 ||
            (r = v2_set_memory(&d, res, err)) < 0 ||
            (r = v2_set_io(&d, res, err)) < 0 ||
            (r = v2_set_hugetlb(&d, res, err)) < 0)
                return r;
        if (res->pids.limit.set) {
                char buf[32];
                format_limit(buf, res->pids.limit.value <= 0 ? -1 : res->pids.limit.value);
                r = cgroup_set(&d, "pids.max", "linux.resources.pids.limit", err, "%s", buf);
                if (r < 0)
                        return r;
        }
        /* Raw settings last, so they override the mapped ones. */
        r = v2_set_unified(&d, res, err);
        if (r < 0)
                return r;
        if (res->n_devices)
                return cgroup_bpf_devices_apply(&d, res->devices, res->n_devices, err);
        return 0;
}

/* ---- processes ---- */

static int v2_add_pid(silo_cgroup *cg, pid_t pid, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        int r = v2_open(cg, &d, err);
        if (r < 0)
                return r;
        return cgroup_writef(&d, "cgroup.procs", err, "%d", (int) pid);
}

static int v2_clone_fd(silo_cgroup *cg, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        int r = v2_open(cg, &d, err);
        if (r < 0)
                return r;
        return TAKE_FD(d.fd);
}

static int read_frozen(const struct cgroup_dir *d, bool *ret, silo_error *err)
{
        _cleanup_free_ char *events = NULL;
        uint64_t v;
        int r = cgroup_read(d, "cgroup.events", &events, err);
        if (r < 0)
                return r;
        if (cgroup_kv_get(events, "frozen", &v) < 0)
                return silo_error_msg(err, EOPNOTSUPP, "%s/cgroup.events has no 'frozen' entry (kernel < 5.2)", d->path);
        *ret = v != 0;
        return 0;
}

static int v2_freeze(silo_cgroup *cg, bool frozen, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        bool state = !frozen;

        int r = v2_open(cg, &d, err);
        if (r < 0)
                return r;
        if (!cgroup_file_exists(&d, "cgroup.freeze"))
                return silo_error_msg(err, EOPNOTSUPP, "%s/cgroup.freeze is missing (kernel < 5.2)", d.path);
        r = cgroup_write(&d, "cgroup.freeze", frozen ? "1" : "0", err);
        if (r < 0)
                return r;

        /* The kernel reports completion in cgroup.events and signals each
         * change with POLLPRI; the short poll slices also cover a change
         * that lands between our read and the poll. */
        _cleanup_close_ int efd = openat(d.fd, "cgroup.events", O_RDONLY | O_CLOEXEC);
        if (efd < 0)
                return silo_error_set(err, errno, "open %s/cgroup.events", d.path);
        uint64_t deadline = cgroup_now_ms() + FREEZE_TIMEOUT_MS;
        for (;;) {
                r = read_frozen(&d, &state, err);
                if (r < 0)
                        return r;
                if (state == frozen)
                        return 0;
                uint64_t now = cgroup_now_ms();
                if (now >= deadline)
                        break;
                struct pollfd pfd = { .fd = efd, .events = POLLPRI };
                uint64_t slice = deadline - now < 50 ? deadline - now : 50;
                if (poll(&pfd, 1, (int) slice) < 0 && errno != EINTR)
                        return silo_error_set(err, errno, "poll %s/cgroup.events", d.path);
        }
        if (frozen)
                (void) cgroup_write(&d, "cgroup.freeze", "0", NULL);
        return silo_error_msg(err, ETIMEDOUT, "timed out after %d ms waiting for %s to %s", FREEZE_TIMEOUT_MS,
                              d.path, frozen ? "freeze" : "thaw");
}

static int v2_is_frozen(silo_cgroup *cg, bool *ret, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        int r = v2_open(cg, &d, err);
        if (r < 0)
                return r;
        return read_frozen(&d, ret, err);
}

static int v2_kill_all(silo_cgroup *cg, int sig, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;

        /* cgroup.kill (5.14+) kills the whole subtree atomically, forks
         * included; other signals take the freeze-and-signal path. */
        if (sig != SIGKILL)
                return -EOPNOTSUPP;
        int r = v2_open(cg, &d, err);
        if (r < 0)
                return r;
        if (!cgroup_file_exists(&d, "cgroup.kill"))
                return -EOPNOTSUPP;
        return cgroup_write(&d, "cgroup.kill", "1", err);
}

static const struct cgroup_hierarchy *v2_procs_hierarchy(const silo_cgroup *cg)
{
        return &cg->hier[0];
}

static int v2_oom_count(silo_cgroup *cg, uint64_t *ret, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        _cleanup_free_ char *events = NULL;

        int r = v2_open(cg, &d, err);
        if (r < 0)
                return r;
        if (!cgroup_file_exists(&d, "memory.events"))
                return silo_error_msg(err, EOPNOTSUPP, "%s/memory.events is missing (the memory controller is not "
                                      "enabled for this cgroup)", d.path);
        r = cgroup_read(&d, "memory.events", &events, err);
        if (r < 0)
                return r;
        if (cgroup_kv_get(events, "oom_kill", ret) < 0)
                return silo_error_msg(err, EOPNOTSUPP, "%s/memory.events has no oom_kill count", d.path);
        return 0;
}

const struct cgroup_backend cgroup_v2_backend = {
        .version = SILO_CGROUP_V2,
        .init_dir = NULL,
        .set_resources = v2_set_resources,
        .add_pid = v2_add_pid,
        .clone_fd = v2_clone_fd,
        .freeze = v2_freeze,
        .is_frozen = v2_is_frozen,
        .kill_all = v2_kill_all,
        .stats = cgroup_v2_stats,
        .oom_count = v2_oom_count,
        .procs_hierarchy = v2_procs_hierarchy,
};
