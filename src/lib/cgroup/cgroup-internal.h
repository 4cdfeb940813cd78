/* Shared between the cgroup core (cgroup.c), its helpers and the two
 * backends (v1.c, v2.c).  Nothing here is part of the public API; the unit
 * tests use a few of these functions directly (path parsing, the forced-v2
 * constructor for a fake hierarchy, the BPF program builder). */
#pragma once

#include <limits.h>
#include <linux/bpf.h>

#include "cgroup/cgroup.h"
#include "util/cleanup.h"

#define CGROUP_DEFAULT_ROOT "/sys/fs/cgroup"
#define CGROUP_FILE_MAX (1u << 20)      /* bound on any cgroupfs file we read whole */
#define CGROUP_MAX_DEPTH 64             /* bound on nested cgroups we walk */
#define CGROUP_MAX_HIERARCHIES 16       /* v1 mounts we track */
#define CGROUP_MAX_PIDS (1u << 22)      /* the kernel's PID_MAX_LIMIT */

/* One hierarchy the container's cgroup lives in: every v1 controller
 * mount (co-mounted controllers share one), or the single v2 tree. */
struct cgroup_hierarchy {
        char *controllers;      /* v1: "cpu,cpuacct" as mounted; v2: "" */
        char *mount;            /* absolute mount point of the hierarchy */
        char *path;             /* the container's cgroup below mount, "/a/b" */
        unsigned created;       /* trailing components of path we made */
};

struct cgroup_backend {
        enum silo_cgroup_version version;
        /* Called for every directory create() makes, parent first. */
        int (*init_dir)(const struct cgroup_hierarchy *h, int parent_fd, int dir_fd, silo_error *err);
        int (*set_resources)(silo_cgroup *cg, const struct silo_resources *res, silo_error *err);
        int (*add_pid)(silo_cgroup *cg, pid_t pid, silo_error *err);
        int (*clone_fd)(silo_cgroup *cg, silo_error *err);
        int (*freeze)(silo_cgroup *cg, bool frozen, silo_error *err);
        int (*is_frozen)(silo_cgroup *cg, bool *ret, silo_error *err);
        /* Signals everything at once if the kernel can (cgroup.kill);
         * -EOPNOTSUPP (err untouched) makes the core freeze and signal. */
        int (*kill_all)(silo_cgroup *cg, int sig, silo_error *err);
        int (*stats)(silo_cgroup *cg, json_t **ret, silo_error *err);
        int (*oom_count)(silo_cgroup *cg, uint64_t *ret, silo_error *err);
        /* The hierarchy whose cgroup.procs files we read for the pid list. */
        const struct cgroup_hierarchy *(*procs_hierarchy)(const silo_cgroup *cg);
};

/* An open cgroup directory plus its full path for messages. */
struct cgroup_dir {
        int fd;
        char path[PATH_MAX];
};

static inline void cgroup_dir_closep(struct cgroup_dir *d)
{
        silo_closep(&d->fd);
}
#define _cleanup_cgroup_dir_ _cleanup_(cgroup_dir_closep)
#define CGROUP_DIR_INIT { .fd = -1 }

struct silo_cgroup {
        enum silo_cgroup_version version;
        const struct cgroup_backend *backend;
        struct cgroup_hierarchy *hier;
        size_t n_hier;
};

extern const struct cgroup_backend cgroup_v1_backend;
extern const struct cgroup_backend cgroup_v2_backend;

static inline void silo_cgroup_freep(silo_cgroup **cg)
{
        silo_cgroup_free(*cg);
}
#define _cleanup_cgroup_ _cleanup_(silo_cgroup_freep)

/* Like silo_cgroup_create() with the version given instead of detected from
 * statfs: lets tests drive the v2 writer against a tree of plain files. */
int cgroup_create_as(const struct silo_cgroup_options *opts, enum silo_cgroup_version version,
                     const char *cgroups_path, const char *id, silo_cgroup **ret, silo_error *err);

/* ---- v1.c / v1-stats.c / v2-stats.c ---- */

const struct cgroup_hierarchy *cgroup_v1_find(const silo_cgroup *cg, const char *controller);
/* Opens the controller's directory, or fails naming the field that needs it. */
int cgroup_v1_open(const silo_cgroup *cg, const char *controller, const char *field, struct cgroup_dir *d,
                   silo_error *err);
int cgroup_v1_stats(silo_cgroup *cg, json_t **ret, silo_error *err);
int cgroup_v2_stats(silo_cgroup *cg, json_t **ret, silo_error *err);
/* OCI cpu.shares -> cpu.weight, blkio weight -> io.weight (v2.c). */
uint64_t cgroup_v2_cpu_weight(uint64_t shares);
uint64_t cgroup_v2_io_weight(uint64_t blkio_weight);

/* ---- path.c: paths, /proc/self/cgroup and /proc/self/mountinfo ---- */

/* "//a/./b/" style input is rejected where it could escape ("..") and
 * otherwise collapsed to "/a/b".  An empty input gives "/". */
int cgroup_normalize_path(const char *in, char **ret, silo_error *err);

/* The container's cgroup path inside a hierarchy.  own is the caller's cgroup
 * there (only used for relative paths; already relative to the mount). */
int cgroup_resolve_path(const char *cgroups_path, const char *id, const char *own, char **ret, silo_error *err);

/* The caller's cgroup from /proc/self/cgroup text: the line naming
 * `controller` on v1, the "0::" line when controller is NULL. */
int cgroup_parse_own(const char *proc_cgroup, const char *controller, char **ret, silo_error *err);

struct cgroup_mount {
        char *controllers;      /* v1: known controllers, "cpu,cpuacct"; v2: "" */
        char *mount_point;
        char *root;             /* what part of the hierarchy is mounted there */
};

/* The v1 controller mounts directly below `root` (all_v1 = true), or the
 * cgroup2 mount at exactly `root` (all_v1 = false), from mountinfo text. */
int cgroup_parse_mounts(const char *mountinfo, const char *root, bool all_v1,
                        struct cgroup_mount **ret, size_t *ret_n, silo_error *err);
void cgroup_mounts_free(struct cgroup_mount *m, size_t n);

/* Strips the mount's root from an own-cgroup path: "/a/b" under root "/a" is "/b". */
int cgroup_strip_mount_root(const char *own, const char *mount_root, char **ret, silo_error *err);

/* True if `word` is an element of a list separated by any of `seps`. */
bool cgroup_list_contains(const char *list, const char *word, const char *seps);

/* ---- util.c: reading and writing cgroup files ---- */

/* Opens mount + path (+ "/" + sub, if sub is not NULL). */
int cgroup_dir_open(struct cgroup_dir *d, const struct cgroup_hierarchy *h, const char *sub, silo_error *err);

bool cgroup_file_exists(const struct cgroup_dir *d, const char *file);
int cgroup_read(const struct cgroup_dir *d, const char *file, char **ret, silo_error *err);
/* A single number; "max" reads as UINT64_MAX. */
int cgroup_read_u64(const struct cgroup_dir *d, const char *file, uint64_t *ret, silo_error *err);
/* For statistics: a missing file (older kernel, controller off) reads as
 * NULL / 0 instead of failing. */
int cgroup_read_opt(const struct cgroup_dir *d, const char *file, char **ret, silo_error *err);
int cgroup_read_u64_opt(const struct cgroup_dir *d, const char *file, uint64_t *ret, silo_error *err);
int cgroup_write(const struct cgroup_dir *d, const char *file, const char *value, silo_error *err);
int cgroup_writef(const struct cgroup_dir *d, const char *file, silo_error *err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* Writes a setting and names the spec field it came from on failure:
 * "linux.resources.memory.limit: write '...' to .../memory.max: ...". */
int cgroup_set(const struct cgroup_dir *d, const char *file, const char *field, silo_error *err, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

/* "key value" lines (memory.stat, cpu.stat, cgroup.events): -ENOENT if absent. */
int cgroup_kv_get(const char *text, const char *key, uint64_t *ret);

/* Appends every pid in d's cgroup.procs and in all nested cgroups. */
int cgroup_collect_pids(const struct cgroup_dir *d, pid_t **pids, size_t *n, silo_error *err);

/* Milliseconds on CLOCK_MONOTONIC, for bounded waits. */
uint64_t cgroup_now_ms(void);
void cgroup_sleep_ms(unsigned ms);

/* linux.resources.memory checks shared by both backends (runc semantics). */
int cgroup_check_memory(const struct silo_resources *res, silo_error *err);

/* Validates a linux.resources.unified key (a file name in the cgroup). */
int cgroup_check_unified_key(const char *key, const char *path, silo_error *err);

/* ---- stats.c: the runc `events --stats` shape ---- */

json_t *cgroup_stats_new(void);
/* Sets obj[key] = v; omitempty skips zeros like Go's encoding/json does. */
int cgroup_json_u64(json_t *obj, const char *key, uint64_t v, bool omitempty);
json_t *cgroup_stats_memory_entry(uint64_t limit, uint64_t usage, uint64_t max, uint64_t failcnt);
int cgroup_stats_blkio_add(json_t *list, uint64_t major, uint64_t minor, const char *op, uint64_t value);
/* "key value" lines into a JSON object of numbers (memory.stat as "raw"). */
json_t *cgroup_stats_kv_map(const char *text);
/* "0-3,7" into a JSON array of numbers (cpuset stats). */
json_t *cgroup_stats_cpu_list(const char *text);

/* ---- bpf-devices.c: cgroup v2 device access as an eBPF program ---- */

/* Generates the program (last matching rule wins, no match = deny). */
int cgroup_bpf_devices_build(const struct silo_device_rule *rules, size_t n, struct bpf_insn **ret,
                             size_t *ret_n, silo_error *err);
/* Loads it and attaches it to the cgroup directory, replacing the ones a
 * previous call attached. */
int cgroup_bpf_devices_apply(const struct cgroup_dir *d, const struct silo_device_rule *rules, size_t n,
                             silo_error *err);
