/* Small cgroupfs I/O helpers shared by both backends: every message names the
 * full file path, every read is bounded. */
#include "cgroup/cgroup-internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/fs.h"

int cgroup_dir_open(struct cgroup_dir *d, const struct cgroup_hierarchy *h, const char *sub, silo_error *err)
{
        int n = snprintf(d->path, sizeof(d->path), "%s%s%s%s", h->mount,
                         strcmp(h->path, "/") ? h->path : "", sub ? "/" : "", sub ? sub : "");
        if (n < 0 || (size_t) n >= sizeof(d->path))
                return silo_error_msg(err, ENAMETOOLONG, "cgroup path %s%s is too long", h->mount, h->path);

        silo_closep(&d->fd);
        /* Not O_PATH: clone3(CLONE_INTO_CGROUP) and BPF attach need a real open. */
        d->fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (d->fd < 0)
                return silo_error_set(err, errno, "open cgroup %s", d->path);
        return 0;
}

bool cgroup_file_exists(const struct cgroup_dir *d, const char *file)
{
        return faccessat(d->fd, file, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int cgroup_read(const struct cgroup_dir *d, const char *file, char **ret, silo_error *err)
{
        int r = silo_read_file_at(d->fd, file, CGROUP_FILE_MAX, ret, NULL, err);
        if (r < 0)
                return silo_error_prefix(err, "cgroup %s", d->path);
        return 0;
}

int cgroup_read_u64(const struct cgroup_dir *d, const char *file, uint64_t *ret, silo_error *err)
{
        _cleanup_free_ char *s = NULL;
        int r = cgroup_read(d, file, &s, err);
        if (r < 0)
                return r;

        s[strcspn(s, "\n")] = '\0';
        if (!strcmp(s, "max")) {
                *ret = UINT64_MAX;
                return 0;
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-')
                return silo_error_msg(err, EINVAL, "%s/%s: expected a number, got '%.32s'", d->path, file, s);
        *ret = v;
        return 0;
}

int cgroup_read_opt(const struct cgroup_dir *d, const char *file, char **ret, silo_error *err)
{
        *ret = NULL;
        if (!cgroup_file_exists(d, file))
                return 0;
        return cgroup_read(d, file, ret, err);
}

int cgroup_read_u64_opt(const struct cgroup_dir *d, const char *file, uint64_t *ret, silo_error *err)
{
        *ret = 0;
        if (!cgroup_file_exists(d, file))
                return 0;
        return cgroup_read_u64(d, file, ret, err);
}

int cgroup_write(const struct cgroup_dir *d, const char *file, const char *value, silo_error *err)
{
        _cleanup_close_ int fd = openat(d->fd, file, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return silo_error_set(err, errno, "open %s/%s", d->path, file);

        /* cgroupfs takes each value in one write(); a short write is an error. */
        size_t len = strlen(value);
        ssize_t n;
        do
                n = write(fd, value, len);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return silo_error_set(err, errno, "write '%.64s' to %s/%s", value, d->path, file);
        if ((size_t) n != len)
                return silo_error_msg(err, EIO, "short write of '%.64s' to %s/%s", value, d->path, file);
        return 0;
}

int cgroup_writef(const struct cgroup_dir *d, const char *file, silo_error *err, const char *fmt, ...)
{
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof(buf))
                return silo_error_msg(err, E2BIG, "value for %s/%s is too long", d->path, file);
        return cgroup_write(d, file, buf, err);
}

int cgroup_set(const struct cgroup_dir *d, const char *file, const char *field, silo_error *err, const char *fmt, ...)
{
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof(buf))
                return silo_error_msg(err, E2BIG, "%s: value for %s/%s is too long", field, d->path, file);
        int r = cgroup_write(d, file, buf, err);
        if (r < 0)
                return silo_error_prefix(err, "%s", field);
        return 0;
}

int cgroup_kv_get(const char *text, const char *key, uint64_t *ret)
{
        size_t klen = strlen(key);
        for (const char *line = text; line && *line;) {
                const char *end = strchrnul(line, '\n');
                if ((size_t) (end - line) > klen && !strncmp(line, key, klen) && line[klen] == ' ') {
                        char *e;
                        errno = 0;
                        unsigned long long v = strtoull(line + klen + 1, &e, 10);
                        if (errno || e == line + klen + 1)
                                return -EINVAL;
                        *ret = v;
                        return 0;
                }
                line = *end ? end + 1 : NULL;
        }
        return -ENOENT;
}

static int append_pid(pid_t **pids, size_t *n, pid_t pid, silo_error *err)
{
        if (*n >= CGROUP_MAX_PIDS)
                return silo_error_msg(err, E2BIG, "more than %u processes in the cgroup", CGROUP_MAX_PIDS);
        /* Capacity is 16, then doubles: grow when n reaches a power of two >= 16. */
        if (*n == 0 || (*n >= 16 && (*n & (*n - 1)) == 0)) {
                size_t cap = *n ? *n * 2 : 16;
                pid_t *grown = realloc(*pids, cap * sizeof(pid_t));
                if (!grown)
                        return silo_error_set(err, ENOMEM, "pid list");
                *pids = grown;
        }
        (*pids)[(*n)++] = pid;
        return 0;
}

static int collect_pids_at(int dfd, const char *path, unsigned depth, pid_t **pids, size_t *n, silo_error *err)
{
        if (depth > CGROUP_MAX_DEPTH)
                return silo_error_msg(err, ELOOP, "%s: cgroups nested deeper than %d", path, CGROUP_MAX_DEPTH);

        /* Line by line rather than read whole: the file can be megabytes. */
        int fd = openat(dfd, "cgroup.procs", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return silo_error_set(err, errno, "open %s/cgroup.procs", path);
        _cleanup_fclose_ FILE *f = fdopen(fd, "re");
        if (!f) {
                close(fd);
                return silo_error_set(err, errno, "fdopen %s/cgroup.procs", path);
        }
        char line[32];
        while (fgets(line, sizeof(line), f)) {
                char *end;
                long v = strtol(line, &end, 10);
                if (end == line || v <= 0 || v > INT32_MAX)
                        continue;
                int r = append_pid(pids, n, (pid_t) v, err);
                if (r < 0)
                        return r;
        }
        if (ferror(f))
                return silo_error_set(err, errno ? errno : EIO, "read %s/cgroup.procs", path);

        int dup_fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dup_fd < 0)
                return silo_error_set(err, errno, "open %s", path);
        _cleanup_closedir_ DIR *dir = fdopendir(dup_fd);
        if (!dir) {
                close(dup_fd);
                return silo_error_set(err, errno, "opendir %s", path);
        }
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                _cleanup_close_ int sub = openat(dirfd(dir), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (sub < 0) {
                        if (errno == ENOENT)    /* removed while we walk */
                                continue;
                        return silo_error_set(err, errno, "open %s/%s", path, de->d_name);
                }
                char subpath[PATH_MAX];
                snprintf(subpath, sizeof(subpath), "%s/%s", path, de->d_name);
                int r = collect_pids_at(sub, subpath, depth + 1, pids, n, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int cgroup_collect_pids(const struct cgroup_dir *d, pid_t **pids, size_t *n, silo_error *err)
{
        return collect_pids_at(d->fd, d->path, 0, pids, n, err);
}

uint64_t cgroup_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

void cgroup_sleep_ms(unsigned ms)
{
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int cgroup_check_memory(const struct silo_resources *res, silo_error *err)
{
        const silo_opt_i64 *limit = &res->memory.limit, *swap = &res->memory.swap;

        /* 0 means "not set" for both, as in runc (Go zero values). */
        if (limit->set && limit->value < -1)
                return silo_error_msg(err, EINVAL, "linux.resources.memory.limit: invalid value %" PRId64, limit->value);
        if (swap->set && swap->value < -1)
                return silo_error_msg(err, EINVAL, "linux.resources.memory.swap: invalid value %" PRId64, swap->value);
        if (res->memory.reservation.set && res->memory.reservation.value < -1)
                return silo_error_msg(err, EINVAL, "linux.resources.memory.reservation: invalid value %" PRId64,
                                      res->memory.reservation.value);
        if (swap->set && swap->value > 0 && limit->set && limit->value > 0 && swap->value < limit->value)
                return silo_error_msg(err, EINVAL,
                                      "linux.resources.memory.swap (%" PRId64 ") is memory+swap and must not be "
                                      "below linux.resources.memory.limit (%" PRId64 ")", swap->value, limit->value);
        if (res->memory.swappiness.set && res->memory.swappiness.value > 100)
                return silo_error_msg(err, EINVAL, "linux.resources.memory.swappiness: %" PRIu64 " is above 100",
                                      res->memory.swappiness.value);
        return 0;
}

int cgroup_check_unified_key(const char *key, const char *path, silo_error *err)
{
        /* The key is a file name inside the container's cgroup: nothing that
         * leaves the directory, and none of the files this manager owns. */
        static const char *const reserved[] = {
                "cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "cgroup.kill", "cgroup.freeze",
        };

        if (!*key || strchr(key, '/') || strstr(key, "..") || !strchr(key, '.') || key[0] == '.')
                return silo_error_msg(err, EINVAL, "%s: invalid cgroup file name '%s'", path, key);
        for (const char *p = key; *p; p++)
                if (!isalnum((unsigned char) *p) && *p != '.' && *p != '_' && *p != '-')
                        return silo_error_msg(err, EINVAL, "%s: invalid cgroup file name '%s'", path, key);
        for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
                if (!strcmp(key, reserved[i]))
                        return silo_error_msg(err, EINVAL, "%s: '%s' is managed by the runtime and cannot be set",
                                              path, key);
        return 0;
}
