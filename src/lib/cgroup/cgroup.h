/* Cgroups: the container's "job".  One manager API over two backends
 * (cgroup v1 and v2, chosen by what is mounted at the hierarchy root), each a
 * const vtable in its own file.  Only cgroups this code created are removed. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "util/error.h"
#include "util/json.h"

/* linux.resources of the OCI runtime spec (also the input of `update`). */
struct silo_device_rule {
        bool allow;
        char type;              /* 'a', 'c' or 'b' */
        int64_t major, minor;   /* -1 = wildcard */
        char access[4];         /* subset of "rwm" */
};

struct silo_weight_device { int64_t major, minor; silo_opt_u64 weight, leaf_weight; };
struct silo_throttle_device { int64_t major, minor; uint64_t rate; };
struct silo_hugepage_limit { const char *page_size; uint64_t limit; };
struct silo_net_priority { const char *name; uint32_t priority; };

struct silo_resources {
        struct silo_device_rule *devices; size_t n_devices;
        struct {
                silo_opt_i64 limit, reservation, swap, kernel, kernel_tcp;
                silo_opt_u64 swappiness;
                silo_opt_bool disable_oom_killer, use_hierarchy, check_before_update;
        } memory;
        struct {
                silo_opt_u64 shares, period, realtime_period;
                silo_opt_i64 quota, realtime_runtime, idle;
                silo_opt_u64 burst;
                const char *cpus, *mems;
        } cpu;
        struct { silo_opt_i64 limit; } pids;
        struct {
                silo_opt_u64 weight, leaf_weight;
                struct silo_weight_device *weight_devices; size_t n_weight_devices;
                struct silo_throttle_device *throttle_read_bps, *throttle_write_bps,
                        *throttle_read_iops, *throttle_write_iops;
                size_t n_throttle_read_bps, n_throttle_write_bps,
                        n_throttle_read_iops, n_throttle_write_iops;
        } block_io;
        struct silo_hugepage_limit *hugepage_limits; size_t n_hugepage_limits;
        /* v1 net_cls / net_prio only. */
        struct {
                silo_opt_u64 class_id;
                struct silo_net_priority *priorities; size_t n_priorities;
        } network;
        /* linux.resources.unified: raw cgroup v2 "file": "value" pairs. */
        json_t *unified;
};

/* Parses a linux.resources object; `path` names it in errors.  Strings and
 * `unified` are borrowed from obj, which must outlive *ret.  Numbers keep
 * the runc convention that 0 means "not set" for memory limit/swap/
 * reservation, cpu quota/period and blockIO weight; pids.limit <= 0 means
 * "max". */
int silo_resources_parse(json_t *obj, const char *path, struct silo_resources *ret, silo_error *err);
void silo_resources_done(struct silo_resources *res);   /* frees arrays, not the struct */

enum silo_cgroup_version { SILO_CGROUP_NONE = 0, SILO_CGROUP_V1 = 1, SILO_CGROUP_V2 = 2 };

struct silo_cgroup_options {
        const char *root;       /* hierarchy root; NULL = /sys/fs/cgroup */
};

typedef struct silo_cgroup silo_cgroup;

/* Resolves the container's cgroup.  cgroups_path absolute: under the hierarchy
 * root; relative: under the calling process's own cgroup (per controller on
 * v1); NULL/empty: "/silo/<id>".  Creates the directories (recording which
 * ones it made, so destroy removes only those).  systemd "slice:prefix:name"
 * paths give -EOPNOTSUPP. */
int silo_cgroup_create(const struct silo_cgroup_options *opts, const char *cgroups_path, const char *id,
                       silo_cgroup **ret, silo_error *err);

/* Persisting: {"version": 1|2, "hierarchies": [{"controllers": "cpu,cpuacct"
 * (v1) or "" (v2), "mount": "/sys/fs/cgroup/cpu,cpuacct", "path": "/silo/id"
 * (below the mount), "dir": mount + path, "created": how many trailing
 * components of path this manager made}]}.  save returns a new reference
 * (NULL on ENOMEM); load validates what destroy would act on. */
json_t *silo_cgroup_save(const silo_cgroup *cg);
int silo_cgroup_load(json_t *saved, silo_cgroup **ret, silo_error *err);

enum silo_cgroup_version silo_cgroup_version(const silo_cgroup *cg);

/* Writes the limits; a controller that is missing gives an error naming it
 * and the field that needs it.  Ignored as runc does: memory.kernel (v1 and
 * v2); on v2 also kernelTCP, swappiness, disableOOMKiller, useHierarchy and
 * blockIO leaf weights, which have no v2 equivalent. */
int silo_cgroup_set_resources(silo_cgroup *cg, const struct silo_resources *res, silo_error *err);

/* Moves a process in (all controllers on v1). */
int silo_cgroup_add_pid(silo_cgroup *cg, pid_t pid, silo_error *err);

/* v2: an O_DIRECTORY fd (the caller closes it) for clone3(CLONE_INTO_CGROUP);
 * -EOPNOTSUPP on v1. */
int silo_cgroup_clone_fd(silo_cgroup *cg, silo_error *err);

int silo_cgroup_freeze(silo_cgroup *cg, bool frozen, silo_error *err);     /* waits until settled */
int silo_cgroup_is_frozen(silo_cgroup *cg, bool *ret, silo_error *err);

/* Every pid in the cgroup and its nested cgroups; *ret is malloc'd. */
int silo_cgroup_pids(silo_cgroup *cg, pid_t **ret, size_t *ret_n, silo_error *err);

/* Signals every process (cgroup.kill on v2 for SIGKILL; otherwise freeze,
 * signal each pid, thaw, so nothing forks away in between).  A cgroup that
 * was already frozen stays frozen, except after SIGKILL (thawed so the tasks
 * can die). */
int silo_cgroup_kill_all(silo_cgroup *cg, int sig, silo_error *err);

/* runc `events --stats` "data" object (cpu, cpuset, memory, pids, blkio,
 * hugetlb; new reference).  Missing controllers leave zeroed sections. */
int silo_cgroup_stats(silo_cgroup *cg, json_t **ret, silo_error *err);

/* Number of OOM kills so far (memory.events oom_kill / memory.oom_control);
 * -EOPNOTSUPP when the memory controller is not there to count. */
int silo_cgroup_oom_count(silo_cgroup *cg, uint64_t *ret, silo_error *err);

/* Removes the cgroups this manager created, with any nested cgroups inside
 * the leaf, retrying for about a second while tasks are still leaving
 * (-EBUSY after that: kill first).  Parents it created go too if empty. */
int silo_cgroup_destroy(silo_cgroup *cg, silo_error *err);

silo_cgroup *silo_cgroup_free(silo_cgroup *cg);

/* The hierarchies the container's cgroup lives in (one per v1 mount, or the
 * v2 tree): mount point, controllers as mounted ("cpu,cpuacct", "name=systemd";
 * "" on v2), and the container's path below the mount ("/a/b"). */
size_t silo_cgroup_n_hierarchies(const silo_cgroup *cg);
void silo_cgroup_hierarchy(const silo_cgroup *cg, size_t i, const char **ret_mount, const char **ret_controllers,
                           const char **ret_path);

/* What the running kernel offers, for `features`; SILO_CGROUP_NONE if
 * nothing usable is mounted at the root. */
enum silo_cgroup_version silo_cgroup_host_version(const struct silo_cgroup_options *opts);
