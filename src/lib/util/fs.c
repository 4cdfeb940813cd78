#include "util/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/cleanup.h"

const char *silo_fd_path(char buf[64], int fd)
{
        snprintf(buf, 64, "/proc/self/fd/%d", fd);
        return buf;
}

int silo_read_file_at(int dirfd, const char *path, size_t max_bytes, char **ret, size_t *ret_len, silo_error *err)
{
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return silo_error_set(err, errno, "open %s", path);

        size_t cap = 4096, len = 0;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return silo_error_set(err, ENOMEM, "read %s", path);
        for (;;) {
                if (len + 1 >= cap) {
                        if (cap > max_bytes + 1)
                                return silo_error_msg(err, EFBIG, "%s: larger than the limit of %zu bytes", path, max_bytes);
                        cap *= 2;
                        char *n = realloc(buf, cap);
                        if (!n)
                                return silo_error_set(err, ENOMEM, "read %s", path);
                        buf = n;
                }
                ssize_t n = read(fd, buf + len, cap - len - 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return silo_error_set(err, errno, "read %s", path);
                }
                if (n == 0)
                        break;
                len += n;
                if (len > max_bytes)
                        return silo_error_msg(err, EFBIG, "%s: larger than the limit of %zu bytes", path, max_bytes);
        }
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = len;
        return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, data, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                data += n;
                len -= n;
        }
        return 0;
}

int silo_write_file_at(int dirfd, const char *path, const char *data, size_t len, silo_error *err)
{
        _cleanup_close_ int fd = openat(dirfd, path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        if (fd < 0)
                return silo_error_set(err, errno, "open %s", path);
        int r = write_all(fd, data, len);
        if (r < 0)
                return silo_error_set(err, -r, "write '%.*s' to %s", (int) (len > 64 ? 64 : len), data, path);
        return 0;
}

int silo_write_string_at(int dirfd, const char *path, const char *s, silo_error *err)
{
        return silo_write_file_at(dirfd, path, s, strlen(s), err);
}

static int write_replace(int dirfd, const char *name, const char *data, size_t len, mode_t mode, bool durable,
                         silo_error *err)
{
        char tmp[PATH_MAX];
        if (snprintf(tmp, sizeof(tmp), ".%s.tmp.%d", name, (int) getpid()) >= (int) sizeof(tmp))
                return silo_error_msg(err, ENAMETOOLONG, "%s: name too long", name);

        _cleanup_close_ int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return silo_error_set(err, errno, "create %s", tmp);
        int r = write_all(fd, data, len);
        if (r == 0 && durable && fsync(fd) < 0)
                r = -errno;
        if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = -errno;
        if (r < 0) {
                unlinkat(dirfd, tmp, 0);
                return silo_error_set(err, -r, "write %s", name);
        }
        /* The rename is durable only once the directory is. */
        if (durable && dirfd != AT_FDCWD)
                fsync(dirfd);
        return 0;
}

int silo_write_file_atomic_at(int dirfd, const char *name, const char *data, size_t len, mode_t mode, silo_error *err)
{
        return write_replace(dirfd, name, data, len, mode, true, err);
}

int silo_write_file_replace_at(int dirfd, const char *name, const char *data, size_t len, mode_t mode, silo_error *err)
{
        return write_replace(dirfd, name, data, len, mode, false, err);
}

int silo_mkdir_p_at(int dirfd, const char *path, mode_t mode, silo_error *err)
{
        char buf[PATH_MAX];
        if (strlen(path) >= sizeof(buf))
                return silo_error_msg(err, ENAMETOOLONG, "%s: path too long", path);
        strcpy(buf, path);

        for (char *p = buf + 1; ; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                char saved = *p;
                *p = '\0';
                if (mkdirat(dirfd, buf, mode) < 0 && errno != EEXIST)
                        return silo_error_set(err, errno, "mkdir %s", buf);
                *p = saved;
                if (saved == '\0')
                        break;
        }
        return 0;
}

static long do_openat2(int dirfd, const char *path, int flags, unsigned long long resolve)
{
        struct open_how how = {
                .flags = (unsigned long long) (flags | O_CLOEXEC),
                .resolve = resolve,
        };
        return syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

int silo_open_in_root(int rootfd, const char *path, int flags, unsigned long long resolve, silo_error *err)
{
        long fd;
        do
                fd = do_openat2(rootfd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | resolve);
        while (fd < 0 && errno == EAGAIN);  /* a concurrent rename raced the lookup */
        if (fd < 0)
                return silo_error_set(err, errno, "open %s in container root", path);
        return (int) fd;
}

/* Appends "/name" to a resolved in-root path. */
static int path_push(char *resolved, size_t size, const char *name, size_t len)
{
        size_t cur = strlen(resolved);
        if (cur + 1 + len + 1 > size)
                return -ENAMETOOLONG;
        resolved[cur] = '/';
        memcpy(resolved + cur + 1, name, len);
        resolved[cur + 1 + len] = '\0';
        return 0;
}

static void path_pop(char *resolved)
{
        char *slash = strrchr(resolved, '/');
        if (slash)
                *slash = '\0';
}

#define MKPATH_MAX_SYMLINKS 40

int silo_mkpath_in_root(int rootfd, const char *path, bool make_file, silo_error *err)
{
        /* Fast path: it exists already. */
        long fd = do_openat2(rootfd, path, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
        if (fd >= 0)
                return (int) fd;
        if (errno != ENOENT)
                return silo_error_set(err, errno, "open %s in container root", path);

        /* Walk component by component, keeping `resolved` free of symlinks:
         * a symlink in the rootfs is read and spliced into what is left to
         * walk (an absolute one restarts at the root), so creation happens
         * where the link points *inside* the root, never outside.  Each
         * lookup uses RESOLVE_NO_SYMLINKS, so a link swapped in behind our
         * back fails instead of being followed. */
        char resolved[PATH_MAX] = "";
        char todo[PATH_MAX];
        if (snprintf(todo, sizeof(todo), "%s", path) >= (int) sizeof(todo))
                return silo_error_msg(err, ENAMETOOLONG, "%s: path too long", path);
        int links = 0;
        char *rest = todo;

        while (*rest) {
                while (*rest == '/')
                        rest++;
                if (!*rest)
                        break;
                char *end = strchrnul(rest, '/');
                size_t len = (size_t) (end - rest);
                bool last = *end == '\0';
                const char *name = rest;
                rest = *end ? end + 1 : end;

                if (len == 1 && name[0] == '.')
                        continue;
                if (len == 2 && name[0] == '.' && name[1] == '.') {
                        path_pop(resolved);     /* never above the root */
                        continue;
                }
                size_t before = strlen(resolved);
                if (path_push(resolved, sizeof(resolved), name, len) < 0)
                        return silo_error_msg(err, ENAMETOOLONG, "%s: path too long", path);

                _cleanup_close_ int cur = (int) do_openat2(rootfd, resolved, O_PATH | O_NOFOLLOW,
                                                           RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS);
                if (cur < 0 && errno == ENOENT) {
                        resolved[before] = '\0';
                        _cleanup_close_ int parent = (int) do_openat2(rootfd, *resolved ? resolved : "/", O_PATH | O_DIRECTORY,
                                                                      RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS);
                        if (parent < 0)
                                return silo_error_set(err, errno, "open %s in container root", *resolved ? resolved : "/");
                        char leaf[NAME_MAX + 1];
                        if (len > NAME_MAX)
                                return silo_error_msg(err, ENAMETOOLONG, "%s: name too long", path);
                        memcpy(leaf, name, len);
                        leaf[len] = '\0';
                        if (last && make_file) {
                                int f = openat(parent, leaf, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
                                if (f < 0 && errno != EEXIST)
                                        return silo_error_set(err, errno, "create %s in container root", path);
                                if (f >= 0)
                                        close(f);
                        } else if (mkdirat(parent, leaf, 0755) < 0 && errno != EEXIST) {
                                return silo_error_set(err, errno, "mkdir %s in container root", path);
                        }
                        path_push(resolved, sizeof(resolved), name, len);
                        cur = (int) do_openat2(rootfd, resolved, O_PATH | O_NOFOLLOW, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS);
                }
                if (cur < 0)
                        return silo_error_set(err, errno, "open %s in container root", path);

                struct stat st;
                if (fstat(cur, &st) < 0)
                        return silo_error_set(err, errno, "stat %s in container root", path);
                if (!S_ISLNK(st.st_mode))
                        continue;

                if (++links > MKPATH_MAX_SYMLINKS)
                        return silo_error_msg(err, ELOOP, "%s: too many symlinks in container root", path);
                char target[PATH_MAX];
                ssize_t n = readlinkat(cur, "", target, sizeof(target) - 1);
                if (n < 0)
                        return silo_error_set(err, errno, "readlink %s in container root", resolved);
                target[n] = '\0';
                resolved[before] = '\0';
                if (target[0] == '/')
                        resolved[0] = '\0';
                char next[PATH_MAX];
                if (snprintf(next, sizeof(next), "%s/%s", target, rest) >= (int) sizeof(next))
                        return silo_error_msg(err, ENAMETOOLONG, "%s: path too long", path);
                memcpy(todo, next, sizeof(next));
                rest = todo;
        }

        fd = do_openat2(rootfd, *resolved ? resolved : "/", O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS);
        if (fd < 0)
                return silo_error_set(err, errno, "open %s in container root", path);
        return (int) fd;
}

/* One level of the walk: the directory's name in its parent and, for the
 * levels near the top, its open stream. */
struct rm_level {
        char *name;
        DIR *dir;       /* NULL: reopened through ".." when we come back up */
};

#define RM_OPEN_LEVELS 64

static void rm_levels_free(struct rm_level *levels, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(levels[i].name);
                if (levels[i].dir)
                        closedir(levels[i].dir);
        }
        free(levels);
}

/* Removes everything below the directory open as `top` (which it takes),
 * iteratively: no recursion, no depth limit, at most RM_OPEN_LEVELS open
 * streams.  Symlinks are removed, never followed. */
static int rm_tree(int top, const char *display, silo_error *err)
{
        size_t n = 0, cap = 16;
        struct rm_level *levels = calloc(cap, sizeof(*levels));
        DIR *cur = fdopendir(top);
        if (!levels || !cur) {
                if (cur)
                        closedir(cur);
                else
                        close(top);
                free(levels);
                return silo_error_set(err, ENOMEM, "remove %s", display);
        }
        int r = 0;
        for (;;) {
                errno = 0;
                struct dirent *de = readdir(cur);
                if (!de && errno) {
                        r = silo_error_set(err, errno, "read %s", display);
                        break;
                }
                if (!de) {
                        /* This level is empty: back to its parent and remove it. */
                        if (n == 0)
                                break;
                        struct rm_level *lv = &levels[--n];
                        DIR *parent = lv->dir;
                        if (!parent) {
                                int pfd = openat(dirfd(cur), "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                                parent = pfd >= 0 ? fdopendir(pfd) : NULL;
                                if (!parent) {
                                        if (pfd >= 0)
                                                close(pfd);
                                        r = silo_error_set(err, errno, "reopen parent in %s", display);
                                        free(lv->name);
                                        lv->name = NULL;
                                        break;
                                }
                        }
                        closedir(cur);
                        cur = parent;
                        lv->dir = NULL;
                        if (unlinkat(dirfd(cur), lv->name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
                                r = silo_error_set(err, errno, "rmdir %s/.../%s", display, lv->name);
                                free(lv->name);
                                break;
                        }
                        free(lv->name);
                        lv->name = NULL;
                        if (n >= RM_OPEN_LEVELS)
                                rewinddir(cur);  /* reopened stream: start over, what is gone stays gone */
                        continue;
                }
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                bool is_dir = de->d_type == DT_DIR;
                if (de->d_type == DT_UNKNOWN) {
                        struct stat st;
                        is_dir = fstatat(dirfd(cur), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
                }
                if (!is_dir) {
                        if (unlinkat(dirfd(cur), de->d_name, 0) < 0 && errno != ENOENT) {
                                r = silo_error_set(err, errno, "unlink %s/.../%s", display, de->d_name);
                                break;
                        }
                        continue;
                }
                int sub = openat(dirfd(cur), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                DIR *subdir = sub >= 0 ? fdopendir(sub) : NULL;
                if (!subdir) {
                        if (sub >= 0)
                                close(sub);
                        if (errno == ENOENT)
                                continue;
                        r = silo_error_set(err, errno, "open %s/.../%s", display, de->d_name);
                        break;
                }
                if (n == cap) {
                        struct rm_level *grown = reallocarray(levels, cap * 2, sizeof(*levels));
                        if (!grown) {
                                closedir(subdir);
                                r = silo_error_set(err, ENOMEM, "remove %s", display);
                                break;
                        }
                        memset(grown + cap, 0, cap * sizeof(*levels));
                        levels = grown;
                        cap *= 2;
                }
                levels[n].name = strdup(de->d_name);
                if (!levels[n].name) {
                        closedir(subdir);
                        r = silo_error_set(err, ENOMEM, "remove %s", display);
                        break;
                }
                /* Keep the parent's stream only near the top; deeper ones are
                 * reopened through "..", so fds stay bounded. */
                if (n < RM_OPEN_LEVELS) {
                        levels[n].dir = cur;
                } else {
                        closedir(cur);
                        levels[n].dir = NULL;
                }
                n++;
                cur = subdir;
        }
        closedir(cur);
        rm_levels_free(levels, n);
        return r;
}

int silo_rm_rf_at(int dirfd, const char *name, silo_error *err)
{
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return 0;
                if (errno == ENOTDIR || errno == ELOOP)
                        return unlinkat(dirfd, name, 0) < 0 ? silo_error_set(err, errno, "unlink %s", name) : 0;
                return silo_error_set(err, errno, "open %s", name);
        }
        int r = rm_tree(fd, name, err);
        if (r < 0)
                return r;
        if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return silo_error_set(err, errno, "rmdir %s", name);
        return 0;
}
