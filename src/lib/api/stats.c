/* Properties of compute systems (Statistics, ProcessList, Memory) from the
 * cgroup and /proc, and mapped directories added to a live system. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/system-internal.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

static uint64_t jget_u64(json_t *obj, const char *a, const char *b)
{
        json_t *v = json_object_get(obj, a);
        if (b)
                v = json_object_get(v, b);
        return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t) json_integer_value(v) : 0;
}

static int64_t parse_rfc3339_ns(const char *s)
{
        struct tm tm = {};
        if (!s)
                return 0;
        const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!rest)
                return 0;
        int64_t ns = (int64_t) timegm(&tm) * 1000000000LL;
        if (*rest == '.') {
                int64_t frac = 0, scale = 100000000;
                for (rest++; *rest >= '0' && *rest <= '9'; rest++) {
                        frac += (*rest - '0') * scale;
                        scale /= 10;
                }
                ns += frac;
        }
        return ns;
}

static void blkio_sum(json_t *blkio, const char *list, uint64_t *read, uint64_t *write)
{
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(blkio, list), i, e) {
                const char *op = json_string_value(json_object_get(e, "op"));
                uint64_t v = jget_u64(e, "value", NULL);
                if (op && !strcasecmp(op, "read"))
                        *read += v;
                else if (op && !strcasecmp(op, "write"))
                        *write += v;
        }
}

/* runc stats (nanoseconds, bytes) -> HCS Statistics (100 ns units). */
static int statistics(silo_compute_system *sys, json_t *meta, json_t **ret, silo_error *err)
{
        _cleanup_json_ json_t *s = NULL;
        int r = silo_container_stats(&sys->rt, sys->id, &s, err);
        if (r < 0)
                return r;
        char now[64];
        silo_rfc3339_now(now);
        const char *started = json_string_value(json_object_get(meta, "Started"));
        if (!started)
                started = json_string_value(json_object_get(meta, "Created"));
        int64_t up = parse_rfc3339_ns(now) - parse_rfc3339_ns(started);
        json_t *cpu = json_object_get(s, "cpu"), *mem = json_object_get(s, "memory");
        uint64_t usage = jget_u64(json_object_get(mem, "usage"), "usage", NULL);
        uint64_t inactive = jget_u64(json_object_get(mem, "raw"), "total_inactive_file", NULL);
        if (!inactive)
                inactive = jget_u64(json_object_get(mem, "raw"), "inactive_file", NULL);
        uint64_t rd = 0, wr = 0, rdn = 0, wrn = 0;
        json_t *blkio = json_object_get(s, "blkio");
        blkio_sum(blkio, "ioServiceBytesRecursive", &rd, &wr);
        blkio_sum(blkio, "ioServicedRecursive", &rdn, &wrn);
        *ret = json_pack("{s:s, s:s, s:I, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}}",
                         "Timestamp", now, "ContainerStartTime", started ? started : "",
                         "Uptime100ns", (json_int_t) (up > 0 ? up / 100 : 0),
                         "Processor",
                         "TotalRuntime100ns", (json_int_t) (jget_u64(json_object_get(cpu, "usage"), "total", NULL) / 100),
                         "RuntimeUser100ns", (json_int_t) (jget_u64(json_object_get(cpu, "usage"), "user", NULL) / 100),
                         "RuntimeKernel100ns", (json_int_t) (jget_u64(json_object_get(cpu, "usage"), "kernel", NULL) / 100),
                         "Memory",
                         "MemoryUsageCommitBytes", (json_int_t) usage,
                         "MemoryUsageCommitPeakBytes", (json_int_t) jget_u64(json_object_get(mem, "usage"), "max", NULL),
                         "MemoryUsagePrivateWorkingSetBytes", (json_int_t) (usage > inactive ? usage - inactive : usage),
                         "Storage",
                         "ReadCountNormalized", (json_int_t) rdn, "ReadSizeBytes", (json_int_t) rd,
                         "WriteCountNormalized", (json_int_t) wrn, "WriteSizeBytes", (json_int_t) wr);
        return *ret ? 0 : silo_error_set(err, ENOMEM, "Statistics");
}

static uint64_t boot_time(void)
{
        _cleanup_free_ char *stat = NULL;
        if (silo_read_file_at(AT_FDCWD, "/proc/stat", 1 << 20, &stat, NULL, NULL) < 0)
                return 0;
        const char *b = strstr(stat, "\nbtime ");
        return b ? strtoull(b + 7, NULL, 10) : 0;
}

/* One ProcessList entry from /proc/<pid>/stat and status; NULL if it is gone. */
static json_t *process_entry(pid_t pid, uint64_t btime, long ticks)
{
        char path[64];
        _cleanup_free_ char *stat = NULL, *status = NULL;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        if (silo_read_file_at(AT_FDCWD, path, 4096, &stat, NULL, NULL) < 0)
                return NULL;
        char *open = strchr(stat, '('), *close = strrchr(stat, ')');
        if (!open || !close || close < open)
                return NULL;
        *close = '\0';
        const char *comm = open + 1;
        unsigned long long utime = 0, stime = 0, start = 0;
        /* After ")": state(3) ... utime(14) stime(15) ... starttime(22). */
        if (sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu",
                   &utime, &stime, &start) != 3)
                return NULL;
        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        uint64_t rss_anon = 0;
        if (silo_read_file_at(AT_FDCWD, path, 1 << 16, &status, NULL, NULL) == 0) {
                const char *ra = strstr(status, "\nRssAnon:");
                if (ra)
                        rss_anon = strtoull(ra + 9, NULL, 10) * 1024;
        }
        char created[64] = "";
        if (btime && ticks > 0) {
                time_t t = (time_t) (btime + start / (unsigned long long) ticks);
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        uint64_t per_tick = ticks > 0 ? 10000000ULL / (uint64_t) ticks : 0;
        return json_pack("{s:i, s:s, s:s, s:I, s:I, s:I}", "ProcessId", (int) pid, "ImageName", comm,
                         "CreateTimestamp", created, "UserTime100ns", (json_int_t) (utime * per_tick),
                         "KernelTime100ns", (json_int_t) (stime * per_tick),
                         "MemoryWorkingSetPrivateBytes", (json_int_t) rss_anon);
}

static int process_list(silo_compute_system *sys, json_t **ret, silo_error *err)
{
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0;
        int r = silo_container_pids(&sys->rt, sys->id, &pids, &n, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *list = json_array();
        if (!list)
                return silo_error_set(err, ENOMEM, "ProcessList");
        uint64_t btime = boot_time();
        long ticks = sysconf(_SC_CLK_TCK);
        for (size_t i = 0; i < n; i++) {
                json_t *e = process_entry(pids[i], btime, ticks);
                if (e)
                        json_array_append_new(list, e);
        }
        *ret = TAKE_PTR(list);
        return 0;
}

static int memory_info(silo_compute_system *sys, json_t **ret, silo_error *err)
{
        _cleanup_json_ json_t *config = NULL;
        int r = silo_container_config(&sys->rt, sys->id, &config, err);
        if (r < 0)
                return r;
        json_t *limit = json_object_get(json_object_get(json_object_get(json_object_get(config, "linux"), "resources"),
                                                        "memory"), "limit");
        json_int_t bytes = json_is_integer(limit) ? json_integer_value(limit) : 0;
        /* 0: no limit, as HCS reports an unset SizeInMB. */
        *ret = json_pack("{s:I}", "SizeInMB", (json_int_t) (bytes > 0 ? bytes >> 20 : 0));
        return *ret ? 0 : silo_error_set(err, ENOMEM, "Memory");
}

int silo_compute_system_get_properties(silo_compute_system *sys, const char *query, char **ret, silo_error *err)
{
        _cleanup_json_ json_t *q = NULL;
        int r;
        if (query && *query && (r = silo_json_load_buffer(query, strlen(query), "PropertyQuery", &q, err)) < 0)
                return r;
        unsigned types;
        r = compute_property_query_parse(q, &types, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *meta = NULL, *p = NULL;
        if ((r = compute_system_load(sys, &meta, err)) < 0 || (r = compute_system_basic(sys, meta, &p, err)) < 0)
                return r;
        bool stopped = json_is_true(json_object_get(p, "Stopped"));
        if (types && stopped)
                return silo_error_msg(err, ESRCH, "compute system \"%s\" is Stopped: no %s", sys->id,
                                      types & COMPUTE_PROP_STATISTICS ? "Statistics" :
                                      types & COMPUTE_PROP_PROCESS_LIST ? "ProcessList" : "Memory");
        json_t *v = NULL;
        if (types & COMPUTE_PROP_STATISTICS) {
                if ((r = statistics(sys, meta, &v, err)) < 0)
                        return r;
                json_object_set_new(p, "Statistics", v);
        }
        if (types & COMPUTE_PROP_PROCESS_LIST) {
                if ((r = process_list(sys, &v, err)) < 0)
                        return r;
                json_object_set_new(p, "ProcessList", v);
        }
        if (types & COMPUTE_PROP_MEMORY) {
                if ((r = memory_info(sys, &v, err)) < 0)
                        return r;
                json_object_set_new(p, "Memory", v);
        }
        *ret = json_dumps(p, JSON_COMPACT);
        return *ret ? 0 : silo_error_set(err, ENOMEM, "properties");
}

/* Runs in a child: joins the init's mount namespace, then with a tree
 * (tree >= 0) moves it onto the target, created inside the container root
 * (never resolved outside it); without one unmounts the target. */
static int ns_mount_op(int tree, pid_t init, const char *target, silo_error *err)
{
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/root", (int) init);
        _cleanup_close_ int rootfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int) init);
        _cleanup_close_ int nsfd = open(path, O_RDONLY | O_CLOEXEC);
        if (rootfd < 0 || nsfd < 0)
                return silo_error_set(err, errno, "open %s", path);
        if (setns(nsfd, CLONE_NEWNS) < 0)
                return silo_error_set(err, errno, "join the mount namespace of the compute system");
        if (tree < 0) {
                _cleanup_close_ int dst = silo_open_in_root(rootfd, target, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, err);
                if (dst < 0)
                        return dst;
                /* setns() moved our root into the namespace, whose /proc
                 * is not ours: address the mount through our cwd, set to
                 * the fd resolved inside the container root. */
                if (fchdir(dst) < 0 || umount2(".", MNT_DETACH) < 0)
                        return silo_error_set(err, errno, "unmount %s", target);
                return 0;
        }
        _cleanup_close_ int dst = silo_mkpath_in_root(rootfd, target, false, err);
        if (dst < 0)
                return dst;
        if (move_mount(tree, "", dst, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return silo_error_set(err, errno, "mount at %s", target);
        return 0;
}

static int run_ns_mount_op(int tree, pid_t init, const char *target, silo_error *err)
{
        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return silo_error_set(err, errno, "pipe");
        _cleanup_close_ int rd = pipefd[0];
        pid_t child = fork();
        if (child < 0) {
                close(pipefd[1]);
                return silo_error_set(err, errno, "fork");
        }
        if (child == 0) {
                silo_error e = SILO_ERROR_INIT;
                if (ns_mount_op(tree, init, target, &e) < 0) {
                        ssize_t w = write(pipefd[1], &e, sizeof(e));
                        (void) w;
                        _exit(1);
                }
                _exit(0);
        }
        close(pipefd[1]);
        silo_error e = SILO_ERROR_INIT;
        ssize_t n;
        do
                n = read(rd, &e, sizeof(e));
        while (n < 0 && errno == EINTR);
        int status = 0;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
                ;
        if (n == (ssize_t) sizeof(e) && e.code) {
                e.message[sizeof(e.message) - 1] = '\0';
                return silo_error_msg(err, e.code, "Container/MappedDirectories: %s", e.message);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return silo_error_msg(err, EIO, "Container/MappedDirectories: mount helper failed");
        return 0;
}

static int running_init(silo_compute_system *sys, pid_t *ret, silo_error *err)
{
        enum compute_state st;
        int r = compute_system_state(sys, &st, ret, err);
        if (r < 0)
                return r;
        if (st != COMPUTE_STATE_RUNNING)
                return silo_error_msg(err, EINVAL, "compute system \"%s\" is %s, not Running", sys->id,
                                      compute_state_name(st));
        return 0;
}

/* Keeps Document.Container.MappedDirectories in step: add `md`, or drop the
 * entries for container_path. */
static void record_mapped(silo_compute_system *sys, json_t *md, const char *container_path)
{
        _cleanup_json_ json_t *meta = NULL;
        _cleanup_close_ int lock = compute_system_lock(sys, NULL);
        if (lock < 0 || compute_system_load(sys, &meta, NULL) < 0)
                return;
        json_t *c = json_object_get(json_object_get(meta, "Document"), "Container");
        if (!c)
                return;
        json_t *list = json_object_get(c, "MappedDirectories");
        if (!json_is_array(list)) {
                list = json_array();
                json_object_set_new(c, "MappedDirectories", list);
        }
        if (md) {
                json_array_append(list, md);
        } else {
                for (size_t i = json_array_size(list); i-- > 0;) {
                        const char *cp = json_string_value(json_object_get(json_array_get(list, i), "ContainerPath"));
                        if (cp && !strcmp(cp, container_path))
                                json_array_remove(list, i);
                }
        }
        compute_system_save(sys, meta, NULL);
}

int compute_remove_mapped_directory(silo_compute_system *sys, json_t *settings, silo_error *err)
{
        const char *target = NULL;
        const struct silo_json_field f[] = {
                { "ContainerPath", SILO_JSON_STRING, 0, SILO_JSON_REQUIRED },
                { NULL },
        };
        if (!json_is_object(settings))
                return silo_error_msg(err, EINVAL, "Settings: expected an object, got %s",
                                      silo_json_type_name(settings));
        int r = silo_json_dispatch(settings, "Settings", f, &target, err);
        if (r < 0)
                return r;
        if (target[0] != '/')
                return silo_error_msg(err, EINVAL, "Settings.ContainerPath: expected an absolute path, got \"%s\"",
                                      target);
        /* Only what was mapped can be removed, never the system's own mounts. */
        _cleanup_json_ json_t *meta = NULL;
        if ((r = compute_system_load(sys, &meta, err)) < 0)
                return r;
        bool mapped = false;
        size_t i;
        json_t *md;
        json_array_foreach(json_object_get(json_object_get(json_object_get(meta, "Document"), "Container"),
                                           "MappedDirectories"), i, md) {
                const char *cp = json_string_value(json_object_get(md, "ContainerPath"));
                if (cp && !strcmp(cp, target))
                        mapped = true;
        }
        if (!mapped)
                return silo_error_msg(err, ENOENT, "Settings.ContainerPath: %s is not a mapped directory", target);
        pid_t init;
        if ((r = running_init(sys, &init, err)) < 0)
                return r;
        r = run_ns_mount_op(-1, init, target, err);
        if (r < 0)
                return r;
        record_mapped(sys, NULL, target);
        return 0;
}

int compute_add_mapped_directory(silo_compute_system *sys, json_t *settings, silo_error *err)
{
        _cleanup_json_ json_t *m = NULL;
        int r = compute_mapped_directory(settings, "Settings", &m, err);
        if (r < 0)
                return r;
        pid_t init;
        if ((r = running_init(sys, &init, err)) < 0)
                return r;
        const char *src = json_string_value(json_object_get(m, "source"));
        const char *dst = json_string_value(json_object_get(m, "destination"));
        bool ro = !strcmp(json_string_value(json_array_get(json_object_get(m, "options"), 1)), "ro");
        _cleanup_close_ int tree = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (tree < 0)
                return silo_error_set(err, errno, "Settings.HostPath %s", src);
        struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID | (ro ? MOUNT_ATTR_RDONLY : 0) };
        if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
                return silo_error_set(err, errno, "make %s read-only", src);
        r = run_ns_mount_op(tree, init, dst, err);
        if (r < 0)
                return r;
        record_mapped(sys, settings, NULL);
        return 0;
}
