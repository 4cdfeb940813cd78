#include "state/state.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup/cgroup.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

static const char *const status_names[_SILO_STATUS_MAX] = {
        [SILO_STATUS_CREATING] = "creating",
        [SILO_STATUS_CREATED] = "created",
        [SILO_STATUS_RUNNING] = "running",
        [SILO_STATUS_PAUSED] = "paused",
        [SILO_STATUS_STOPPED] = "stopped",
};

const char *silo_status_name(enum silo_status s)
{
        return s < _SILO_STATUS_MAX ? status_names[s] : "unknown";
}

int silo_id_validate(const char *id, silo_error *err)
{
        if (!id || !*id)
                return silo_error_msg(err, EINVAL, "container ID must not be empty");
        size_t len = strnlen(id, SILO_ID_MAX + 1);
        if (len > SILO_ID_MAX)
                return silo_error_msg(err, EINVAL, "container ID is longer than %d bytes", SILO_ID_MAX);
        if (!strcmp(id, ".") || !strcmp(id, ".."))
                return silo_error_msg(err, EINVAL, "invalid container ID \"%s\"", id);
        for (const char *p = id; *p; p++) {
                unsigned char c = *p;
                /* The runc/Docker alphabet: letters, digits, _ + - . */
                if (!isalnum(c) && c != '_' && c != '+' && c != '-' && c != '.')
                        return silo_error_msg(err, EINVAL, "invalid container ID \"%.64s\": only [A-Za-z0-9_+.-] are allowed", id);
        }
        return 0;
}

int silo_state_root_open(const char *root, bool create, int *ret_fd, silo_error *err)
{
        if (create) {
                int r = silo_mkdir_p_at(AT_FDCWD, root, 0700, err);
                if (r < 0)
                        return r;
        }
        int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return silo_error_set(err, errno, "open state root %s", root);
        *ret_fd = fd;
        return 0;
}

int silo_state_dir_create(int rootfd, const char *id, int *ret_dirfd, silo_error *err)
{
        if (mkdirat(rootfd, id, 0700) < 0) {
                if (errno == EEXIST)
                        return silo_error_msg(err, EEXIST, "container with ID \"%s\" already exists", id);
                return silo_error_set(err, errno, "create state directory for %s", id);
        }
        int fd = openat(rootfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                int e = errno;
                unlinkat(rootfd, id, AT_REMOVEDIR);
                return silo_error_set(err, e, "open state directory for %s", id);
        }
        flock(fd, LOCK_EX);
        *ret_dirfd = fd;
        return 0;
}

int silo_state_dir_open(int rootfd, const char *id, int *ret_dirfd, silo_error *err)
{
        _cleanup_close_ int fd = openat(rootfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return silo_error_msg(err, ENOENT, "container \"%s\" does not exist", id);
                return silo_error_set(err, errno, "open state of container %s", id);
        }
        if (flock(fd, LOCK_EX) < 0)
                return silo_error_set(err, errno, "lock container %s", id);
        /* Deleted while we waited for the lock? */
        struct stat st;
        if (fstat(fd, &st) < 0 || st.st_nlink == 0)
                return silo_error_msg(err, ENOENT, "container \"%s\" does not exist", id);
        *ret_dirfd = TAKE_FD(fd);
        return 0;
}

int silo_state_dir_remove(int rootfd, const char *id, silo_error *err)
{
        return silo_rm_rf_at(rootfd, id, err);
}

int silo_state_write(int dirfd, const struct silo_state *st, enum silo_state_write_mode mode, silo_error *err)
{
        _cleanup_json_ json_t *j = json_pack("{ss sI sI ss ss ss ss sb}",
                                             "id", st->id,
                                             "pid", (json_int_t) st->pid,
                                             "pidStart", (json_int_t) st->pid_start,
                                             "bundle", st->bundle,
                                             "rootfs", st->rootfs,
                                             "created", st->created,
                                             "owner", st->owner ? st->owner : "",
                                             "ownPidNamespace", st->own_pid_ns);
        if (!j)
                return silo_error_set(err, ENOMEM, "state");
        if (st->annotations)
                json_object_set(j, "annotations", st->annotations);
        if (st->cgroup)
                json_object_set(j, "cgroup", st->cgroup);
        if (st->config)
                json_object_set(j, "config", st->config);
        _cleanup_free_ char *s = json_dumps(j, JSON_COMPACT);
        if (!s)
                return silo_error_set(err, ENOMEM, "state");
        if (mode == SILO_STATE_REPLACE)
                return silo_write_file_replace_at(dirfd, "state.json", s, strlen(s), 0600, err);
        int flags = mode == SILO_STATE_CREATE ? O_CREAT | O_EXCL : O_TRUNC;
        _cleanup_close_ int fd = openat(dirfd, "state.json", O_WRONLY | O_NOFOLLOW | O_CLOEXEC | flags, 0600);
        if (fd < 0)
                return silo_error_set(err, errno, "write state.json");
        size_t len = strlen(s);
        for (size_t off = 0; off < len;) {
                ssize_t n = write(fd, s + off, len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return silo_error_set(err, n < 0 ? errno : EIO, "write state.json");
                off += (size_t) n;
        }
        return 0;
}

struct silo_state *silo_state_free(struct silo_state *st)
{
        if (!st)
                return NULL;
        free(st->id);
        free(st->bundle);
        free(st->rootfs);
        free(st->created);
        free(st->owner);
        json_decref(st->annotations);
        json_decref(st->cgroup);
        json_decref(st->config);
        free(st);
        return NULL;
}

static void state_freep(struct silo_state **s) { silo_state_free(*s); }

int silo_state_read(int dirfd, struct silo_state **ret, silo_error *err)
{
        _cleanup_json_ json_t *j = NULL;
        int r = silo_json_load_file_at(dirfd, "state.json", 1u << 20, &j, err);
        if (r < 0)
                return r;
        struct {
                const char *id, *bundle, *rootfs, *created, *owner;
                int64_t pid, pid_start;
                bool own_pid_ns;
                json_t *annotations, *cgroup, *config;
        } raw = { 0 };
        const struct silo_json_field fields[] = {
                { "id", SILO_JSON_STRING, offsetof(__typeof__(raw), id), SILO_JSON_REQUIRED },
                { "pid", SILO_JSON_INT64, offsetof(__typeof__(raw), pid), SILO_JSON_REQUIRED },
                { "pidStart", SILO_JSON_INT64, offsetof(__typeof__(raw), pid_start), 0 },
                { "bundle", SILO_JSON_STRING, offsetof(__typeof__(raw), bundle), 0 },
                { "rootfs", SILO_JSON_STRING, offsetof(__typeof__(raw), rootfs), 0 },
                { "created", SILO_JSON_STRING, offsetof(__typeof__(raw), created), 0 },
                { "owner", SILO_JSON_STRING, offsetof(__typeof__(raw), owner), 0 },
                { "ownPidNamespace", SILO_JSON_BOOL, offsetof(__typeof__(raw), own_pid_ns), 0 },
                { "annotations", SILO_JSON_OBJECT, offsetof(__typeof__(raw), annotations), SILO_JSON_NULLABLE },
                { "cgroup", SILO_JSON_OBJECT, offsetof(__typeof__(raw), cgroup), SILO_JSON_NULLABLE },
                { "config", SILO_JSON_OBJECT, offsetof(__typeof__(raw), config), SILO_JSON_NULLABLE },
                { NULL },
        };
        r = silo_json_dispatch(j, "state.json", fields, &raw, err);
        if (r < 0)
                return r;
        _cleanup_(state_freep) struct silo_state *st = calloc(1, sizeof(*st));
        if (!st)
                return silo_error_set(err, ENOMEM, "state");
        st->id = strdup(raw.id);
        st->bundle = strdup(raw.bundle ? raw.bundle : "");
        st->rootfs = strdup(raw.rootfs ? raw.rootfs : "");
        st->created = strdup(raw.created ? raw.created : "");
        st->owner = strdup(raw.owner ? raw.owner : "");
        if (!st->id || !st->bundle || !st->rootfs || !st->created || !st->owner)
                return silo_error_set(err, ENOMEM, "state");
        st->pid = (pid_t) raw.pid;
        st->pid_start = (unsigned long long) raw.pid_start;
        st->own_pid_ns = raw.own_pid_ns;
        st->annotations = raw.annotations ? json_incref(raw.annotations) : NULL;
        st->cgroup = raw.cgroup ? json_incref(raw.cgroup) : NULL;
        st->config = raw.config ? json_incref(raw.config) : NULL;
        *ret = TAKE_PTR(st);
        return 0;
}

/* Field 22 of /proc/PID/stat, parsed after the last ')' since comm may hold anything. */
static int read_proc_stat(pid_t pid, char *ret_state, unsigned long long *ret_start)
{
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return -EIO;
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        if (!p)
                return -EIO;
        p += 2;
        char state = *p;
        /* Skip fields 3..21 to reach starttime (22). */
        for (int field = 3; field < 22; field++) {
                p = strchr(p, ' ');
                if (!p)
                        return -EIO;
                p++;
        }
        if (ret_state)
                *ret_state = state;
        if (ret_start)
                *ret_start = strtoull(p, NULL, 10);
        return 0;
}

int silo_pid_start_time(pid_t pid, unsigned long long *ret)
{
        return read_proc_stat(pid, NULL, ret);
}

bool silo_pid_matches(pid_t pid, unsigned long long start_time)
{
        char state;
        unsigned long long start;
        if (pid <= 0 || read_proc_stat(pid, &state, &start) < 0)
                return false;
        if (state == 'Z' || state == 'X')
                return false;
        return start_time == 0 || start == start_time;
}

enum silo_status silo_state_status(int dirfd, const struct silo_state *st)
{
        if (st->pid <= 0)
                return SILO_STATUS_CREATING;
        if (!silo_pid_matches(st->pid, st->pid_start))
                return SILO_STATUS_STOPPED;
        if (faccessat(dirfd, "start.sock", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return SILO_STATUS_CREATED;
        if (st->cgroup) {
                silo_cgroup *cg = NULL;
                bool frozen = false;
                if (silo_cgroup_load(st->cgroup, &cg, NULL) == 0) {
                        silo_cgroup_is_frozen(cg, &frozen, NULL);
                        silo_cgroup_free(cg);
                }
                if (frozen)
                        return SILO_STATUS_PAUSED;
        }
        return SILO_STATUS_RUNNING;
}

json_t *silo_state_to_oci_json(const struct silo_state *st, enum silo_status status)
{
        json_t *j = json_pack("{ss ss sI ss ss ss ss ss}",
                              "ociVersion", "1.2.0",
                              "id", st->id,
                              "pid", (json_int_t) (status == SILO_STATUS_STOPPED ? 0 : st->pid),
                              "status", silo_status_name(status),
                              "bundle", st->bundle,
                              "rootfs", st->rootfs,
                              "created", st->created,
                              "owner", st->owner ? st->owner : "");
        if (j && st->annotations && json_object_size(st->annotations))
                json_object_set(j, "annotations", st->annotations);
        return j;
}

void silo_rfc3339_now(char buf[64])
{
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(buf, 64, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, 64 - n, ".%09ldZ", ts.tv_nsec);
}
