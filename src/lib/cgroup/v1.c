/* cgroup v1 backend: one directory per controller mount.  Values are
 * written the way runc's fs driver does, including its ordering rules
 * (memory vs memsw, cfs period vs quota) and the cpuset copy-down. */
#include "cgroup/cgroup-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util/fs.h"

#define FREEZE_TIMEOUT_MS 2000

const struct cgroup_hierarchy *cgroup_v1_find(const silo_cgroup *cg, const char *controller)
{
        for (size_t i = 0; i < cg->n_hier; i++)
                if (cgroup_list_contains(cg->hier[i].controllers, controller, ","))
                        return &cg->hier[i];
        return NULL;
}

int cgroup_v1_open(const silo_cgroup *cg, const char *controller, const char *field, struct cgroup_dir *d,
                   silo_error *err)
{
        const struct cgroup_hierarchy *h = cgroup_v1_find(cg, controller);
        if (!h)
                return silo_error_msg(err, EOPNOTSUPP, "cgroup v1 controller '%s' is not mounted (needed for %s)",
                                      controller, field);
        return cgroup_dir_open(d, h, NULL, err);
}

static char *trim(char *s)
{
        s[strcspn(s, "\n")] = '\0';
        return s;
}

/* A new cpuset cgroup starts with empty cpus and mems, and no task can join
 * it until they are set: copy the parent's, as the kernel's clone_children
 * would. */
static int v1_init_dir(const struct cgroup_hierarchy *h, int parent_fd, int dir_fd, silo_error *err)
{
        static const char *const files[] = { "cpuset.cpus", "cpuset.mems" };

        if (!cgroup_list_contains(h->controllers, "cpuset", ","))
                return 0;
        for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
                _cleanup_free_ char *mine = NULL, *parent = NULL;
                int r = silo_read_file_at(dir_fd, files[i], CGROUP_FILE_MAX, &mine, NULL, err);
                if (r < 0)
                        return r;
                if (*trim(mine))
                        continue;
                /* A parent another runtime process made a moment ago may not
                 * have its own copy yet: give that creator a bounded moment. */
                for (int tries = 0;; tries++) {
                        free(parent);
                        parent = NULL;
                        r = silo_read_file_at(parent_fd, files[i], CGROUP_FILE_MAX, &parent, NULL, err);
                        if (r < 0)
                                return r;
                        if (*trim(parent) || tries >= 200)
                                break;
                        cgroup_sleep_ms(1);
                }
                if (!*trim(parent))
                        return silo_error_msg(err, EINVAL, "the parent cgroup has an empty %s", files[i]);
                r = silo_write_string_at(dir_fd, files[i], parent, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- resources ---- */

static int v1_set_cpuset(silo_cgroup *cg, const struct silo_resources *res, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        bool cpus = res->cpu.cpus && *res->cpu.cpus, mems = res->cpu.mems && *res->cpu.mems;
        int r;

        if (!cpus && !mems)
                return 0;
        r = cgroup_v1_open(cg, "cpuset", cpus ? "linux.resources.cpu.cpus" : "linux.resources.cpu.mems", &d, err);
        if (r < 0)
                return r;
        if (cpus && (r = cgroup_set(&d, "cpuset.cpus", "linux.resources.cpu.cpus", err, "%s", res->cpu.cpus)) < 0)
                return r;
        if (mems && (r = cgroup_set(&d, "cpuset.mems", "linux.resources.cpu.mems", err, "%s", res->cpu.mems)) < 0)
                return r;
        return 0;
}

static int64_t opt_nonzero(const silo_opt_i64 *v)
{
        return v->set ? v->value : 0;
}

/* memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes, at
 * any moment: when growing, raise memsw first; when shrinking, the limit. */
static int v1_set_memory_and_swap(const struct cgroup_dir *d, int64_t limit, int64_t swap, bool swap_requested,
                                  silo_error *err)
{
        static const char memsw[] = "memory.memsw.limit_in_bytes";
        bool have_memsw = cgroup_file_exists(d, memsw);
        int r;

        if (swap && !have_memsw) {
                if (swap_requested)
                        return silo_error_msg(err, EOPNOTSUPP,
                                              "linux.resources.memory.swap: %s/%s is missing (swap accounting is "
                                              "disabled in this kernel)", d->path, memsw);
                swap = 0;       /* only implied by limit == -1 */
        }

        bool swap_first = false;
        if (limit && swap) {
                uint64_t cur;
                r = cgroup_read_u64(d, "memory.limit_in_bytes", &cur, err);
                if (r < 0)
                        return r;
                swap_first = swap == -1 || cur < (uint64_t) swap;
        }
        if (swap_first && (r = cgroup_set(d, memsw, "linux.resources.memory.swap", err, "%" PRId64, swap)) < 0)
                return r;
        if (limit && (r = cgroup_set(d, "memory.limit_in_bytes", "linux.resources.memory.limit", err,
                                     "%" PRId64, limit)) < 0)
                return r;
        if (!swap_first && swap &&
            (r = cgroup_set(d, memsw, "linux.resources.memory.swap", err, "%" PRId64, swap)) < 0)
                return r;
        return 0;
}

static int v1_set_memory(silo_cgroup *cg, const struct silo_resources *res, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        int64_t limit = opt_nonzero(&res->memory.limit), swap = opt_nonzero(&res->memory.swap);
        int64_t reservation = opt_nonzero(&res->memory.reservation), kernel_tcp = opt_nonzero(&res->memory.kernel_tcp);
        int r;

        /* memory.kernel is ignored, as runc does: kernels >= 5.16 reject kmem limits. */
        if (!limit && !swap && !reservation && !kernel_tcp && !res->memory.swappiness.set &&
            !res->memory.disable_oom_killer.set && !res->memory.use_hierarchy.set)
                return 0;
        r = cgroup_v1_open(cg, "memory", "linux.resources.memory", &d, err);
        if (r < 0)
                return r;

        /* Only changeable before limits and children exist. */
        if (res->memory.use_hierarchy.set &&
            (r = cgroup_set(&d, "memory.use_hierarchy", "linux.resources.memory.useHierarchy", err, "%d",
                            res->memory.use_hierarchy.value)) < 0)
                return r;

        if (limit > 0 && res->memory.check_before_update.set && res->memory.check_before_update.value) {
                uint64_t usage;
                r = cgroup_read_u64(&d, "memory.usage_in_bytes", &usage, err);
                if (r < 0)
                        return r;
                if (usage > (uint64_t) limit)
                        return silo_error_msg(err, EBUSY, "linux.resources.memory.limit: %" PRId64 " is below the "
                                              "current usage of %" PRIu64 " bytes", limit, usage);
        }

        /* Unlimited memory with swap unset means unlimited swap too (runc). */
        bool swap_requested = swap != 0;
        if (limit == -1 && !swap)
                swap = -1;
        r = v1_set_memory_and_swap(&d, limit, swap, swap_requested, err);
        if (r < 0)
                return r;

        if (reservation && (r = cgroup_set(&d, "memory.soft_limit_in_bytes", "linux.resources.memory.reservation",
                                           err, "%" PRId64, reservation)) < 0)
                return r;
        if (kernel_tcp && (r = cgroup_set(&d, "memory.kmem.tcp.limit_in_bytes", "linux.resources.memory.kernelTCP",
                                          err, "%" PRId64, kernel_tcp)) < 0)
                return r;
        if (res->memory.swappiness.set &&
            (r = cgroup_set(&d, "memory.swappiness", "linux.resources.memory.swappiness", err, "%" PRIu64,
                            res->memory.swappiness.value)) < 0)
                return r;
        if (res->memory.disable_oom_killer.set &&
            (r = cgroup_set(&d, "memory.oom_control", "linux.resources.memory.disableOOMKiller", err, "%d",
                            res->memory.disable_oom_killer.value)) < 0)
                return r;
        return 0;
}

static int v1_set_cpu(silo_cgroup *cg, const struct silo_resources *res, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        const typeof(res->cpu) *c = &res->cpu;
        uint64_t period = c->period.set ? c->period.value : 0;
        int64_t quota = opt_nonzero(&c->quota);
        int r;

        if (!c->shares.set && !period && !quota && !c->burst.set && !c->realtime_period.set &&
            !c->realtime_runtime.set && !c->idle.set)
                return 0;
        r = cgroup_v1_open(cg, "cpu", "linux.resources.cpu", &d, err);
        if (r < 0)
                return r;

        if (c->shares.set && c->shares.value) {
                uint64_t got;
                r = cgroup_set(&d, "cpu.shares", "linux.resources.cpu.shares", err, "%" PRIu64, c->shares.value);
                if (r < 0)
                        return r;
                /* The kernel clamps silently; say so instead. */
                r = cgroup_read_u64(&d, "cpu.shares", &got, err);
                if (r < 0)
                        return r;
                if (got != c->shares.value)
                        return silo_error_msg(err, ERANGE, "linux.resources.cpu.shares: %" PRIu64 " is out of the "
                                              "kernel's range (it became %" PRIu64 ")", c->shares.value, got);
        }

        /* A shorter period can be refused (EINVAL) while the old quota
         * exceeds the parent's bandwidth; it is retried after the quota. */
        bool retry_period = false;
        if (period) {
                silo_error e = SILO_ERROR_INIT;
                r = cgroup_set(&d, "cpu.cfs_period_us", "linux.resources.cpu.period", &e, "%" PRIu64, period);
                if (r == -EINVAL && quota)
                        retry_period = true;
                else if (r < 0) {
                        if (err)
                                *err = e;
                        return r;
                }
        }
        if (quota && (r = cgroup_set(&d, "cpu.cfs_quota_us", "linux.resources.cpu.quota", err, "%" PRId64, quota)) < 0)
                return r;
        if (retry_period &&
            (r = cgroup_set(&d, "cpu.cfs_period_us", "linux.resources.cpu.period", err, "%" PRIu64, period)) < 0)
                return r;
        if (c->burst.set && (r = cgroup_set(&d, "cpu.cfs_burst_us", "linux.resources.cpu.burst", err, "%" PRIu64,
                                            c->burst.value)) < 0)
                return r;
        /* The runtime must fit the period, so the period goes first. */
        if (c->realtime_period.set &&
            (r = cgroup_set(&d, "cpu.rt_period_us", "linux.resources.cpu.realtimePeriod", err, "%" PRIu64,
                            c->realtime_period.value)) < 0)
                return r;
        if (c->realtime_runtime.set &&
            (r = cgroup_set(&d, "cpu.rt_runtime_us", "linux.resources.cpu.realtimeRuntime", err, "%" PRId64,
                            c->realtime_runtime.value)) < 0)
                return r;
        if (c->idle.set && (r = cgroup_set(&d, "cpu.idle", "linux.resources.cpu.idle", err, "%" PRId64,
                                           c->idle.value)) < 0)
                return r;
        return 0;
}

static int v1_set_pids(silo_cgroup *cg, const struct silo_resources *res, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;

        if (!res->pids.limit.set)
                return 0;
        int r = cgroup_v1_open(cg, "pids", "linux.resources.pids.limit", &d, err);
        if (r < 0)
                return r;
        if (res->pids.limit.value <= 0)
                return cgroup_set(&d, "pids.max", "linux.resources.pids.limit", err, "max");
        return cgroup_set(&d, "pids.max", "linux.resources.pids.limit", err, "%" PRId64, res->pids.limit.value);
}

static int v1_set_blkio(silo_cgroup *cg, const struct silo_resources *res, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        const typeof(res->block_io) *b = &res->block_io;
        char field[SILO_JSON_PATH_MAX];
        int r;

        uint64_t weight = b->weight.set ? b->weight.value : 0, leaf = b->leaf_weight.set ? b->leaf_weight.value : 0;
        if (!weight && !leaf && !b->n_weight_devices && !b->n_throttle_read_bps && !b->n_throttle_write_bps &&
            !b->n_throttle_read_iops && !b->n_throttle_write_iops)
                return 0;
        r = cgroup_v1_open(cg, "blkio", "linux.resources.blockIO", &d, err);
        if (r < 0)
                return r;

        /* CFQ's files, else BFQ's (the only proportional scheduler left). */
        bool cfq = cgroup_file_exists(&d, "blkio.weight");
        if (weight && (r = cgroup_set(&d, cfq ? "blkio.weight" : "blkio.bfq.weight", "linux.resources.blockIO.weight",
                                      err, "%" PRIu64, weight)) < 0)
                return r;
        if (leaf && (r = cgroup_set(&d, "blkio.leaf_weight", "linux.resources.blockIO.leafWeight", err, "%" PRIu64,
                                    leaf)) < 0)
                return r;
        for (size_t i = 0; i < b->n_weight_devices; i++) {
                const struct silo_weight_device *w = &b->weight_devices[i];
                snprintf(field, sizeof(field), "linux.resources.blockIO.weightDevice[%zu]", i);
                if (w->weight.set &&
                    (r = cgroup_set(&d, cfq ? "blkio.weight_device" : "blkio.bfq.weight_device", field, err,
                                    "%" PRId64 ":%" PRId64 " %" PRIu64, w->major, w->minor, w->weight.value)) < 0)
                        return r;
                if (w->leaf_weight.set &&
                    (r = cgroup_set(&d, "blkio.leaf_weight_device", field, err, "%" PRId64 ":%" PRId64 " %" PRIu64,
                                    w->major, w->minor, w->leaf_weight.value)) < 0)
                        return r;
        }

        const struct {
                const struct silo_throttle_device *list;
                size_t n;
                const char *file, *name;
        } throttles[] = {
                { b->throttle_read_bps, b->n_throttle_read_bps, "blkio.throttle.read_bps_device", "throttleReadBpsDevice" },
                { b->throttle_write_bps, b->n_throttle_write_bps, "blkio.throttle.write_bps_device", "throttleWriteBpsDevice" },
                { b->throttle_read_iops, b->n_throttle_read_iops, "blkio.throttle.read_iops_device", "throttleReadIOPSDevice" },
                { b->throttle_write_iops, b->n_throttle_write_iops, "blkio.throttle.write_iops_device", "throttleWriteIOPSDevice" },
        };
        for (size_t t = 0; t < ARRAY_SIZE(throttles); t++) {
                for (size_t i = 0; i < throttles[t].n; i++) {
                        const struct silo_throttle_device *dev = &throttles[t].list[i];
                        snprintf(field, sizeof(field), "linux.resources.blockIO.%s[%zu]", throttles[t].name, i);
                        r = cgroup_set(&d, throttles[t].file, field, err, "%" PRId64 ":%" PRId64 " %" PRIu64,
                                       dev->major, dev->minor, dev->rate);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int v1_set_hugetlb(silo_cgroup *cg, const struct silo_resources *res, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;

        if (!res->n_hugepage_limits)
                return 0;
        int r = cgroup_v1_open(cg, "hugetlb", "linux.resources.hugepageLimits", &d, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < res->n_hugepage_limits; i++) {
                char file[64], field[SILO_JSON_PATH_MAX];
                snprintf(file, sizeof(file), "hugetlb.%s.limit_in_bytes", res->hugepage_limits[i].page_size);
                snprintf(field, sizeof(field), "linux.resources.hugepageLimits[%zu]", i);
                r = cgroup_set(&d, file, field, err, "%" PRIu64, res->hugepage_limits[i].limit);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int v1_set_network(silo_cgroup *cg, const struct silo_resources *res, silo_error *err)
{
        int r;

        if (res->network.class_id.set) {
                _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
                r = cgroup_v1_open(cg, "net_cls", "linux.resources.network.classID", &d, err);
                if (r < 0)
                        return r;
                r = cgroup_set(&d, "net_cls.classid", "linux.resources.network.classID", err, "%" PRIu64,
                               res->network.class_id.value);
                if (r < 0)
                        return r;
        }
        if (res->network.n_priorities) {
                _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
                r = cgroup_v1_open(cg, "net_prio", "linux.resources.network.priorities", &d, err);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < res->network.n_priorities; i++) {
                        char field[SILO_JSON_PATH_MAX];
                        snprintf(field, sizeof(field), "linux.resources.network.priorities[%zu]", i);
                        r = cgroup_set(&d, "net_prio.ifpriomap", field, err, "%s %" PRIu32,
                                       res->network.priorities[i].name, res->network.priorities[i].priority);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static void format_dev_number(char buf[24], int64_t v)
{
        if (v < 0)
                snprintf(buf, 24, "*");
        else
                snprintf(buf, 24, "%" PRId64, v);
}

/* Deny everything, then replay the rules in order: the v1 kernel list then
 * holds exactly what the spec allows (later rules win). */
static int v1_set_devices(silo_cgroup *cg, const struct silo_resources *res, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;

        if (!res->n_devices)
                return 0;
        int r = cgroup_v1_open(cg, "devices", "linux.resources.devices", &d, err);
        if (r < 0)
                return r;
        r = cgroup_set(&d, "devices.deny", "linux.resources.devices", err, "a");
        if (r < 0)
                return r;
        for (size_t i = 0; i < res->n_devices; i++) {
                const struct silo_device_rule *rule = &res->devices[i];
                const char *file = rule->allow ? "devices.allow" : "devices.deny";
                char field[SILO_JSON_PATH_MAX], major[24], minor[24];

                snprintf(field, sizeof(field), "linux.resources.devices[%zu]", i);
                if (rule->type == 'a') {
                        r = cgroup_set(&d, file, field, err, "a");
                } else {
                        format_dev_number(major, rule->major);
                        format_dev_number(minor, rule->minor);
                        r = cgroup_set(&d, file, field, err, "%c %s:%s %s", rule->type, major, minor, rule->access);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int v1_set_resources(silo_cgroup *cg, const struct silo_resources *res, silo_error *err)
{
        static int (*const setters[])(silo_cgroup *, const struct silo_resources *, silo_error *) = {
                v1_set_cpuset, v1_set_memory, v1_set_cpu, v1_set_pids, v1_set_blkio,
                v1_set_hugetlb, v1_set_network, v1_set_devices,
        };

        if (res->unified && json_object_size(res->unified) > 0)
                return silo_error_msg(err, EOPNOTSUPP,
                                      "linux.resources.unified: cgroup v2 settings cannot be applied on a cgroup v1 host");
        for (size_t i = 0; i < ARRAY_SIZE(setters); i++) {
                int r = setters[i](cg, res, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- processes ---- */

static int v1_add_pid(silo_cgroup *cg, pid_t pid, silo_error *err)
{
        for (size_t i = 0; i < cg->n_hier; i++) {
                _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
                int r = cgroup_dir_open(&d, &cg->hier[i], NULL, err);
                if (r < 0)
                        return r;
                r = cgroup_writef(&d, "cgroup.procs", err, "%d", (int) pid);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int v1_clone_fd(silo_cgroup *cg, silo_error *err)
{
        (void) cg;
        return silo_error_msg(err, EOPNOTSUPP, "clone3(CLONE_INTO_CGROUP) needs cgroup v2");
}

static int v1_open_freezer(silo_cgroup *cg, struct cgroup_dir *d, silo_error *err)
{
        const struct cgroup_hierarchy *h = cgroup_v1_find(cg, "freezer");
        if (!h)
                return silo_error_msg(err, EOPNOTSUPP, "the cgroup v1 freezer controller is not mounted");
        return cgroup_dir_open(d, h, NULL, err);
}

static int v1_read_state(const struct cgroup_dir *d, char state[16], silo_error *err)
{
        _cleanup_free_ char *s = NULL;
        int r = cgroup_read(d, "freezer.state", &s, err);
        if (r < 0)
                return r;
        snprintf(state, 16, "%s", trim(s));
        return 0;
}

static int v1_freeze(silo_cgroup *cg, bool frozen, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        const char *want = frozen ? "FROZEN" : "THAWED";
        char state[16];

        int r = v1_open_freezer(cg, &d, err);
        if (r < 0)
                return r;

        /* FREEZING can last while a task sits in an uninterruptible sleep
         * or vfork; rewriting the state (and, now and then, thawing first)
         * gets it unstuck.  All bounded by the timeout. */
        uint64_t deadline = cgroup_now_ms() + FREEZE_TIMEOUT_MS;
        for (unsigned attempt = 0;; attempt++) {
                if (frozen && attempt > 0 && attempt % 25 == 0)
                        (void) cgroup_write(&d, "freezer.state", "THAWED", NULL);
                r = cgroup_write(&d, "freezer.state", want, err);
                if (r < 0)
                        return r;
                r = v1_read_state(&d, state, err);
                if (r < 0)
                        return r;
                if (!strcmp(state, want))
                        return 0;
                if (cgroup_now_ms() >= deadline)
                        break;
                cgroup_sleep_ms(attempt < 4 ? 1u << attempt : 10);
        }
        if (frozen)
                (void) cgroup_write(&d, "freezer.state", "THAWED", NULL);
        return silo_error_msg(err, ETIMEDOUT, "timed out after %d ms waiting for %s to become %s (it is %s)",
                              FREEZE_TIMEOUT_MS, d.path, want, state);
}

static int v1_is_frozen(silo_cgroup *cg, bool *ret, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        char state[16];

        int r = v1_open_freezer(cg, &d, err);
        if (r < 0)
                return r;
        r = v1_read_state(&d, state, err);
        if (r < 0)
                return r;
        *ret = !strcmp(state, "FROZEN");
        return 0;
}

static int v1_kill_all(silo_cgroup *cg, int sig, silo_error *err)
{
        /* No cgroup.kill on v1: the core freezes and signals each pid. */
        (void) cg, (void) sig, (void) err;
        return -EOPNOTSUPP;
}

static const struct cgroup_hierarchy *v1_procs_hierarchy(const silo_cgroup *cg)
{
        /* The freezer's view is the one kill_all freezes. */
        static const char *const preferred[] = { "freezer", "pids", "memory" };
        for (size_t i = 0; i < ARRAY_SIZE(preferred); i++) {
                const struct cgroup_hierarchy *h = cgroup_v1_find(cg, preferred[i]);
                if (h)
                        return h;
        }
        return &cg->hier[0];
}

static int v1_oom_count(silo_cgroup *cg, uint64_t *ret, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        _cleanup_free_ char *s = NULL;

        int r = cgroup_v1_open(cg, "memory", "the OOM kill count", &d, err);
        if (r < 0)
                return r;
        r = cgroup_read(&d, "memory.oom_control", &s, err);
        if (r < 0)
                return r;
        if (cgroup_kv_get(s, "oom_kill", ret) < 0)
                return silo_error_msg(err, EOPNOTSUPP, "%s/memory.oom_control has no oom_kill count", d.path);
        return 0;
}

const struct cgroup_backend cgroup_v1_backend = {
        .version = SILO_CGROUP_V1,
        .init_dir = v1_init_dir,
        .set_resources = v1_set_resources,
        .add_pid = v1_add_pid,
        .clone_fd = v1_clone_fd,
        .freeze = v1_freeze,
        .is_frozen = v1_is_frozen,
        .kill_all = v1_kill_all,
        .stats = cgroup_v1_stats,
        .oom_count = v1_oom_count,
        .procs_hierarchy = v1_procs_hierarchy,
};
