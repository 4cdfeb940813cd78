#include "image/unpack.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "util/cleanup.h"
#include "util/fs.h"

#define WHITEOUT_PREFIX ".wh."
#define WHITEOUT_META_PREFIX ".wh..wh."
#define WHITEOUT_OPAQUE ".wh..wh..opq"
#define OVERLAY_OPAQUE_XATTR "trusted.overlay.opaque"

struct dir_time {
        char *path;
        struct timespec mtime;
};

struct unpack {
        int root_fd;
        const silo_unpack_options *o;
        silo_unpack_stats *st;
        silo_decompressor *dec;
        silo_error stream_err;
        bool stream_failed;

        /* The last parent directory opened, by cleaned path.  Invalidated
         * whenever a directory or symlink is removed, since either can
         * change what a path resolves to. */
        char cache_path[PATH_MAX];
        int cache_fd;
        bool cache_sgid;
        bool root_sgid;
        bool parent_sgid;       /* of the directory open_dir() returned last */

        /* To skip chown/chmod calls that would change nothing. */
        uid_t euid;
        gid_t egid;
        mode_t umask;

        struct dir_time *dirs;
        size_t n_dirs, cap_dirs;
};

void silo_unpack_options_init(silo_unpack_options *o)
{
        *o = (silo_unpack_options) {
                .compression = SILO_COMPRESSION_AUTO,
                .limits = {
                        .max_bytes = SILO_UNPACK_MAX_BYTES,
                        .max_ratio = SILO_UNPACK_MAX_RATIO,
                        .ratio_floor = SILO_UNPACK_RATIO_FLOOR,
                },
                .max_entries = SILO_UNPACK_MAX_ENTRIES,
                .max_depth = SILO_UNPACK_MAX_DEPTH,
        };
}

int silo_clean_member_path(const char *name, char *buf, size_t bufsize, unsigned *ret_depth)
{
        size_t len = 0;
        unsigned depth = 0;
        const char *p = name;

        buf[0] = '\0';
        while (*p) {
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                const char *end = strchrnul(p, '/');
                size_t n = (size_t) (end - p);
                if (n == 1 && p[0] == '.') {
                        /* nothing */
                } else if (n == 2 && p[0] == '.' && p[1] == '.') {
                        if (depth == 0)
                                return -EXDEV;
                        char *slash = strrchr(buf, '/');
                        len = slash ? (size_t) (slash - buf) : 0;
                        buf[len] = '\0';
                        depth--;
                } else {
                        if (len + (len ? 1 : 0) + n + 1 > bufsize)
                                return -ENAMETOOLONG;
                        if (len)
                                buf[len++] = '/';
                        memcpy(buf + len, p, n);
                        len += n;
                        buf[len] = '\0';
                        depth++;
                }
                p = end;
        }
        if (ret_depth)
                *ret_depth = depth;
        return 0;
}

static long openat2_in_root(int rootfd, const char *path, int flags, unsigned long long resolve)
{
        struct open_how how = {
                .flags = (unsigned long long) (flags | O_CLOEXEC),
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV | resolve,
        };
        long fd;
        do
                fd = syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
        while (fd < 0 && errno == EAGAIN);
        return fd;
}

static void cache_drop(struct unpack *u)
{
        if (u->cache_fd >= 0)
                close(u->cache_fd);
        u->cache_fd = -1;
        u->cache_path[0] = '\0';
}

/* Stops lookups from hitting the cache but keeps the fd open: the entry
 * being processed may be using it as its parent right now.  The next
 * cache_set() or cache_drop() closes it. */
static void cache_invalidate(struct unpack *u)
{
        u->cache_path[0] = '\0';
}

static void cache_set(struct unpack *u, const char *path, int fd, bool sgid)
{
        cache_drop(u);
        snprintf(u->cache_path, sizeof(u->cache_path), "%s", path);
        u->cache_fd = fd;
        u->cache_sgid = sgid;
}

/* The umask without changing it: /proc/self/status has it. */
static mode_t current_umask(void)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
        char line[256];
        unsigned m;
        while (f && fgets(line, sizeof(line), f))
                if (sscanf(line, "Umask: %o", &m) == 1)
                        return (mode_t) m;
        return 0777;    /* unknown: never trust the create mode */
}

/* Returns a borrowed fd for directory `path` (relative, cleaned) inside the
 * layer, creating missing directories (0755 root:root, like tar) if create.
 * Symlinks on the way are resolved inside the root, never outside. */
static int open_dir(struct unpack *u, const char *path, bool create, int *ret_fd, silo_error *err)
{
        if (!*path) {
                *ret_fd = u->root_fd;
                u->parent_sgid = u->root_sgid;
                return 0;
        }
        if (u->cache_fd >= 0 && !strcmp(u->cache_path, path)) {
                *ret_fd = u->cache_fd;
                u->parent_sgid = u->cache_sgid;
                return 0;
        }

        long fd = openat2_in_root(u->root_fd, path, O_PATH | O_DIRECTORY, 0);
        if (fd < 0 && errno == ENOENT && create) {
                char buf[PATH_MAX];
                snprintf(buf, sizeof(buf), "%s", path);
                _cleanup_close_ int cur = -1;
                for (char *p = buf; ; ) {
                        char *slash = strchr(p, '/');
                        if (slash)
                                *slash = '\0';
                        long next = openat2_in_root(u->root_fd, buf, O_PATH | O_DIRECTORY, 0);
                        if (next < 0 && errno == ENOENT) {
                                /* p is the last component of buf; its parent is cur (or the root). */
                                if (mkdirat(cur >= 0 ? cur : u->root_fd, p, 0755) < 0) {
                                        if (errno == EEXIST)
                                                return silo_error_msg(err, ENOTDIR, "parent '%s' is a dangling symlink", buf);
                                        return silo_error_set(err, errno, "mkdir '%s'", buf);
                                }
                                next = openat2_in_root(u->root_fd, buf, O_PATH | O_DIRECTORY, 0);
                        }
                        if (next < 0)
                                return silo_error_set(err, errno, "parent '%s'", buf);
                        if (cur >= 0)
                                close(cur);
                        cur = (int) next;
                        if (!slash)
                                break;
                        *slash = '/';
                        p = slash + 1;
                }
                fd = TAKE_FD(cur);
        }
        if (fd < 0)
                return silo_error_set(err, errno, "parent '%s'", path);
        struct stat st;
        if (fstat((int) fd, &st) < 0) {
                int e = errno;
                close((int) fd);
                return silo_error_set(err, e, "parent '%s'", path);
        }
        cache_set(u, path, (int) fd, st.st_mode & S_ISGID);
        u->parent_sgid = st.st_mode & S_ISGID;
        *ret_fd = (int) fd;
        return 0;
}

/* Makes room for a new object at parent/name.  Returns 1 if a directory is
 * there and want_dir (the caller merges into it), 0 if the name is free. */
static int prepare_target(struct unpack *u, int parent, const char *name, bool want_dir, silo_error *err)
{
        struct stat st;
        if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return 0;
                return silo_error_set(err, errno, "stat '%s'", name);
        }
        if (S_ISDIR(st.st_mode) && want_dir)
                return 1;
        if (S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode))
                cache_invalidate(u);
        if (S_ISDIR(st.st_mode)) {
                int r = silo_rm_rf_at(parent, name, err);
                if (r < 0)
                        return r;
        } else if (unlinkat(parent, name, 0) < 0) {
                return silo_error_set(err, errno, "unlink '%s'", name);
        }
        return 0;
}

static int entry_owner(struct archive_entry *e, uid_t *uid, gid_t *gid, silo_error *err)
{
        la_int64_t u = archive_entry_uid(e), g = archive_entry_gid(e);
        if (u < 0 || u >= UINT32_MAX || g < 0 || g >= UINT32_MAX)
                return silo_error_msg(err, ERANGE, "invalid owner %lld:%lld", (long long) u, (long long) g);
        *uid = (uid_t) u;
        *gid = (gid_t) g;
        return 0;
}

static struct timespec entry_mtime(struct archive_entry *e)
{
        if (!archive_entry_mtime_is_set(e))
                return (struct timespec) { 0, 0 };
        return (struct timespec) { archive_entry_mtime(e), archive_entry_mtime_nsec(e) };
}

/* Only user.* and file capabilities: trusted.* would let a layer forge
 * overlayfs metadata (opaque, redirect, metacopy), security.selinux and
 * friends belong to the host policy. */
static int apply_xattrs(struct unpack *u, int fd, struct archive_entry *e, silo_error *err)
{
        const char *name;
        const void *value;
        size_t size;

        if (archive_entry_xattr_reset(e) == 0)
                return 0;
        while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
                bool cap = !strcmp(name, "security.capability");
                if (!cap && strncmp(name, "user.", 5) != 0) {
                        u->st->skipped_xattrs++;
                        continue;
                }
                if (fsetxattr(fd, name, value, size, 0) < 0) {
                        if (!cap && (errno == ENOTSUP || errno == EPERM)) {
                                u->st->skipped_xattrs++;
                                continue;
                        }
                        return silo_error_set(err, errno, "set xattr %s", name);
                }
        }
        return 0;
}

/* chown before chmod: chown clears setuid/setgid bits. */
static int apply_meta_fd(struct unpack *u, int fd, struct archive_entry *e, silo_error *err)
{
        uid_t uid;
        gid_t gid;
        int r = entry_owner(e, &uid, &gid, err);
        if (r < 0)
                return r;
        if (fchown(fd, uid, gid) < 0)
                return silo_error_set(err, errno, "chown");
        if (fchmod(fd, archive_entry_perm(e) & 07777) < 0)
                return silo_error_set(err, errno, "chmod");
        return apply_xattrs(u, fd, e, err);
}

static int add_dir_time(struct unpack *u, const char *path, struct archive_entry *e, silo_error *err)
{
        if (!archive_entry_mtime_is_set(e))
                return 0;
        if (u->n_dirs == u->cap_dirs) {
                size_t cap = u->cap_dirs ? u->cap_dirs * 2 : 64;
                struct dir_time *v = realloc(u->dirs, cap * sizeof(*v));
                if (!v)
                        return silo_error_set(err, ENOMEM, "directory list");
                u->dirs = v;
                u->cap_dirs = cap;
        }
        char *p = strdup(path);
        if (!p)
                return silo_error_set(err, ENOMEM, "directory list");
        u->dirs[u->n_dirs++] = (struct dir_time) { p, entry_mtime(e) };
        return 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
        const char *p = buf;
        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t) n;
                off += n;
        }
        return 0;
}

static int archive_fail(struct unpack *u, struct archive *a, const char *what, silo_error *err)
{
        if (u->stream_failed) {
                *err = u->stream_err;
                return -err->code;
        }
        const char *msg = archive_error_string(a);
        return silo_error_msg(err, EBADMSG, "%s: %s", what, msg ? msg : "unknown tar error");
}

static int unpack_regular(struct unpack *u, struct archive *a, struct archive_entry *e,
                          int parent, const char *name, silo_error *err)
{
        /* Created with its final permissions when the umask lets them
         * through, owned by us already when that is what the tar says:
         * then chmod and chown can be skipped (most files of a layer). */
        mode_t perm = archive_entry_perm(e) & 07777;
        uid_t uid;
        gid_t gid;
        int r = entry_owner(e, &uid, &gid, err);
        if (r < 0)
                return r;
        bool parent_sgid = u->parent_sgid;
        const int flags = O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY;
        _cleanup_close_ int fd = openat(parent, name, flags, perm & 0777);
        if (fd < 0 && errno == EEXIST) {
                /* Replaces an earlier entry: remove it (never write through it). */
                r = prepare_target(u, parent, name, false, err);
                if (r < 0)
                        return r;
                fd = openat(parent, name, flags, perm & 0777);
        }
        if (fd < 0)
                return silo_error_set(err, errno, "create");

        off_t end = 0;
        for (;;) {
                const void *buf;
                size_t size;
                la_int64_t offset;
                int ar = archive_read_data_block(a, &buf, &size, &offset);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN)
                        return archive_fail(u, a, "read file data", err);
                if (offset < 0)
                        return silo_error_msg(err, EBADMSG, "negative data offset");
                r = pwrite_all(fd, buf, size, (off_t) offset);
                if (r < 0)
                        return silo_error_set(err, r, "write");
                u->st->file_bytes += size;
                if ((off_t) (offset + size) > end)
                        end = (off_t) (offset + size);
        }
        /* Sparse files end in a hole that no data block covers. */
        if (archive_entry_size_is_set(e) && archive_entry_size(e) > end &&
            ftruncate(fd, (off_t) archive_entry_size(e)) < 0)
                return silo_error_set(err, errno, "truncate");

        bool need_chown = uid != u->euid || gid != u->egid || parent_sgid;
        bool need_chmod = need_chown || (perm & 07000) || (perm & u->umask);
        if (need_chown && fchown(fd, uid, gid) < 0)
                return silo_error_set(err, errno, "chown");
        if (need_chmod && fchmod(fd, perm) < 0)
                return silo_error_set(err, errno, "chmod");
        r = apply_xattrs(u, fd, e, err);
        if (r < 0)
                return r;
        struct timespec ts[2] = { entry_mtime(e), entry_mtime(e) };
        if (archive_entry_mtime_is_set(e) && futimens(fd, ts) < 0)
                return silo_error_set(err, errno, "set times");
        return 0;
}

static int unpack_dir(struct unpack *u, struct archive_entry *e, int parent, const char *name,
                      const char *path, silo_error *err)
{
        int r = prepare_target(u, parent, name, true, err);
        if (r < 0)
                return r;
        if (r == 0 && mkdirat(parent, name, 0700) < 0)
                return silo_error_set(err, errno, "mkdir");
        _cleanup_close_ int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return silo_error_set(err, errno, "open directory");
        r = apply_meta_fd(u, fd, e, err);
        if (r < 0)
                return r;
        r = add_dir_time(u, path, e, err);
        if (r < 0)
                return r;
        /* Its children usually come next. */
        cache_set(u, path, TAKE_FD(fd), archive_entry_perm(e) & S_ISGID);
        return 0;
}

static int unpack_symlink(struct unpack *u, struct archive_entry *e, int parent, const char *name, silo_error *err)
{
        const char *target = archive_entry_symlink(e);
        if (!target || !*target)
                return silo_error_msg(err, EINVAL, "symlink without a target");
        if (strlen(target) >= PATH_MAX)
                return silo_error_msg(err, ENAMETOOLONG, "symlink target too long");
        int r = prepare_target(u, parent, name, false, err);
        if (r < 0)
                return r;
        /* The target is stored verbatim and never followed by us. */
        if (symlinkat(target, parent, name) < 0)
                return silo_error_set(err, errno, "symlink");
        uid_t uid;
        gid_t gid;
        if ((r = entry_owner(e, &uid, &gid, err)) < 0)
                return r;
        if (fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                return silo_error_set(err, errno, "chown symlink");
        struct timespec ts[2] = { entry_mtime(e), entry_mtime(e) };
        if (archive_entry_mtime_is_set(e) && utimensat(parent, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
                return silo_error_set(err, errno, "set symlink times");
        return 0;
}

static int unpack_node(struct unpack *u, struct archive_entry *e, int parent, const char *name, silo_error *err)
{
        mode_t type = archive_entry_filetype(e);
        if (type == AE_IFSOCK) {
                u->st->skipped_devices++;
                return 0;
        }
        /* Device nodes in an image are not needed (the runtime populates
         * /dev) and on the host they would be doors into real devices. */
        if ((type == AE_IFCHR || type == AE_IFBLK) && !u->o->allow_devices) {
                u->st->skipped_devices++;
                return 0;
        }
        int r = prepare_target(u, parent, name, false, err);
        if (r < 0)
                return r;
        dev_t dev = (type == AE_IFIFO) ? 0 : makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
        if (mknodat(parent, name, type | 0600, dev) < 0)
                return silo_error_set(err, errno, "mknod");
        uid_t uid;
        gid_t gid;
        if ((r = entry_owner(e, &uid, &gid, err)) < 0)
                return r;
        if (fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                return silo_error_set(err, errno, "chown");
        /* We just created it as a node, not a symlink: following is moot. */
        if (fchmodat(parent, name, archive_entry_perm(e) & 07777, 0) < 0)
                return silo_error_set(err, errno, "chmod");
        struct timespec ts[2] = { entry_mtime(e), entry_mtime(e) };
        if (archive_entry_mtime_is_set(e) && utimensat(parent, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
                return silo_error_set(err, errno, "set times");
        return 0;
}

static void split_path(char *path, const char **ret_parent, const char **ret_base)
{
        char *slash = strrchr(path, '/');
        if (slash) {
                *slash = '\0';
                *ret_parent = path;
                *ret_base = slash + 1;
        } else {
                *ret_parent = "";
                *ret_base = path;
        }
}

static int unpack_hardlink(struct unpack *u, const char *target_name, int parent, const char *name,
                           const char *path, silo_error *err)
{
        char tpath[PATH_MAX];
        int r = silo_clean_member_path(target_name, tpath, sizeof(tpath), NULL);
        if (r == -EXDEV)
                return silo_error_msg(err, EXDEV, "hardlink target '%s' is outside the layer", target_name);
        if (r < 0)
                return silo_error_msg(err, -r, "hardlink target '%.200s' is too long", target_name);
        if (!*tpath)
                return silo_error_msg(err, EPERM, "hardlink to the layer root");
        if (!strcmp(tpath, path))
                return 0;

        char tcopy[PATH_MAX];
        snprintf(tcopy, sizeof(tcopy), "%s", tpath);
        const char *tparent_path, *tbase;
        split_path(tcopy, &tparent_path, &tbase);

        long tparent = *tparent_path ? openat2_in_root(u->root_fd, tparent_path, O_PATH | O_DIRECTORY, 0)
                                     : fcntl(u->root_fd, F_DUPFD_CLOEXEC, 3);
        if (tparent < 0) {
                if (errno == ENOENT || errno == ENOTDIR)
                        return silo_error_msg(err, ENOENT, "hardlink target '%s' does not exist in this layer", target_name);
                return silo_error_set(err, errno, "hardlink target '%s'", target_name);
        }
        _cleanup_close_ int tfd = (int) tparent;

        struct stat st;
        if (fstatat(tfd, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return silo_error_msg(err, ENOENT, "hardlink target '%s' does not exist in this layer", target_name);
                return silo_error_set(err, errno, "hardlink target '%s'", target_name);
        }
        /* A link to a symlink links the symlink itself (linkat without
         * AT_SYMLINK_FOLLOW), and we never follow it afterwards. */
        if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode) && !S_ISFIFO(st.st_mode))
                return silo_error_msg(err, EPERM, "hardlink target '%s' is not a regular file", target_name);

        r = prepare_target(u, parent, name, false, err);
        if (r < 0)
                return r;
        if (linkat(tfd, tbase, parent, name, 0) < 0)
                return silo_error_set(err, errno, "link to '%s'", target_name);
        u->st->hardlinks++;
        return 0;
}

static int unpack_whiteout(struct unpack *u, int parent, const char *victim, silo_error *err)
{
        if (!*victim || !strcmp(victim, ".") || !strcmp(victim, ".."))
                return silo_error_msg(err, EINVAL, "invalid whiteout name");
        int r = prepare_target(u, parent, victim, false, err);
        if (r < 0)
                return r;
        if (mknodat(parent, victim, S_IFCHR | 0000, makedev(0, 0)) < 0)
                return silo_error_set(err, errno, "create overlay whiteout '%s'", victim);
        u->st->whiteouts++;
        return 0;
}

static int unpack_opaque(struct unpack *u, const char *dir_path, silo_error *err)
{
        long fd = *dir_path ? openat2_in_root(u->root_fd, dir_path, O_RDONLY | O_DIRECTORY, 0)
                            : fcntl(u->root_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return silo_error_set(err, errno, "opaque directory '%s'", dir_path);
        _cleanup_close_ int dfd = (int) fd;
        if (fsetxattr(dfd, OVERLAY_OPAQUE_XATTR, "y", 1, 0) < 0)
                return silo_error_set(err, errno, "set %s on '%s'", OVERLAY_OPAQUE_XATTR, dir_path);
        u->st->opaque_dirs++;
        return 0;
}

static int unpack_entry(struct unpack *u, struct archive *a, struct archive_entry *e, silo_error *err)
{
        const char *name = archive_entry_pathname(e);
        if (!name)
                return silo_error_msg(err, EINVAL, "entry without a name");

        char path[PATH_MAX];
        unsigned depth;
        int r = silo_clean_member_path(name, path, sizeof(path), &depth);
        if (r == -EXDEV)
                return silo_error_msg(err, EXDEV, "path escapes the layer root");
        if (r < 0)
                return silo_error_msg(err, -r, "path too long");
        if (depth > u->o->max_depth)
                return silo_error_msg(err, ELOOP, "nested deeper than %u levels", u->o->max_depth);

        mode_t type = archive_entry_filetype(e);
        const char *hardlink = archive_entry_hardlink(e);

        if (!*path) {
                /* "./": metadata of the layer root itself. */
                if (hardlink || type != AE_IFDIR)
                        return silo_error_msg(err, EINVAL, "the layer root must be a directory");
                r = apply_meta_fd(u, u->root_fd, e, err);
                if (r < 0)
                        return r;
                u->root_sgid = archive_entry_perm(e) & S_ISGID;
                return add_dir_time(u, "", e, err);
        }

        char full[PATH_MAX];
        snprintf(full, sizeof(full), "%s", path);
        const char *parent_path, *base;
        split_path(path, &parent_path, &base);

        if (!strncmp(base, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX))) {
                if (!strcmp(base, WHITEOUT_OPAQUE)) {
                        int pfd;
                        r = open_dir(u, parent_path, true, &pfd, err);
                        if (r < 0)
                                return r;
                        return unpack_opaque(u, parent_path, err);
                }
                if (!strncmp(base, WHITEOUT_META_PREFIX, strlen(WHITEOUT_META_PREFIX)))
                        return 0;       /* aufs bookkeeping (.wh..wh.plnk etc.) */
                int pfd;
                r = open_dir(u, parent_path, true, &pfd, err);
                if (r < 0)
                        return r;
                return unpack_whiteout(u, pfd, base + strlen(WHITEOUT_PREFIX), err);
        }

        int pfd;
        r = open_dir(u, parent_path, true, &pfd, err);
        if (r < 0)
                return r;

        if (hardlink)
                return unpack_hardlink(u, hardlink, pfd, base, full, err);

        switch (type) {
        case AE_IFREG:
                return unpack_regular(u, a, e, pfd, base, err);
        case AE_IFDIR:
                return unpack_dir(u, e, pfd, base, full, err);
        case AE_IFLNK:
                return unpack_symlink(u, e, pfd, base, err);
        case AE_IFCHR:
        case AE_IFBLK:
        case AE_IFIFO:
        case AE_IFSOCK:
                return unpack_node(u, e, pfd, base, err);
        default:
                return silo_error_msg(err, EINVAL, "unsupported entry type 0%o", (unsigned) type);
        }
}

static int apply_dir_times(struct unpack *u, silo_error *err)
{
        /* Children were created after their directory's entry, so the
         * directory times go on last. */
        for (size_t i = u->n_dirs; i-- > 0; ) {
                struct dir_time *d = &u->dirs[i];
                struct timespec ts[2] = { d->mtime, d->mtime };
                if (!*d->path) {
                        if (futimens(u->root_fd, ts) < 0)
                                return silo_error_set(err, errno, "set times of the layer root");
                        continue;
                }
                long fd = openat2_in_root(u->root_fd, d->path, O_RDONLY | O_DIRECTORY, RESOLVE_NO_SYMLINKS);
                if (fd < 0)
                        continue;       /* replaced by a later entry */
                int r = futimens((int) fd, ts);
                close((int) fd);
                if (r < 0)
                        return silo_error_set(err, errno, "set times of '%s'", d->path);
        }
        return 0;
}

static la_ssize_t read_cb(struct archive *a, void *userdata, const void **buf)
{
        struct unpack *u = userdata;
        ssize_t n = silo_decompressor_read(u->dec, buf, &u->stream_err);
        if (n < 0) {
                u->stream_failed = true;
                archive_set_error(a, EIO, "%s", u->stream_err.message);
                return -1;
        }
        return n;
}

static void unpack_done(struct unpack *u)
{
        cache_drop(u);
        for (size_t i = 0; i < u->n_dirs; i++)
                free(u->dirs[i].path);
        free(u->dirs);
}

static int unpack_run(struct unpack *u, silo_error *err)
{
        struct archive *a = archive_read_new();
        if (!a)
                return silo_error_set(err, ENOMEM, "archive_read_new");
        /* tar only (ustar, pax, gnu): no cpio/zip/iso surprises. */
        archive_read_support_format_tar(a);
        archive_read_support_format_gnutar(a);
        int r = 0;
        if (archive_read_open(a, u, NULL, read_cb, NULL) != ARCHIVE_OK) {
                r = archive_fail(u, a, "open tar stream", err);
                goto out;
        }

        for (;;) {
                struct archive_entry *e;
                int ar = archive_read_next_header(a, &e);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN) {
                        r = archive_fail(u, a, "read tar header", err);
                        goto out;
                }
                if (++u->st->entries > u->o->max_entries) {
                        r = silo_error_msg(err, EFBIG, "layer has more than %llu entries",
                                           (unsigned long long) u->o->max_entries);
                        goto out;
                }
                r = unpack_entry(u, a, e, err);
                if (r < 0) {
                        const char *n = archive_entry_pathname(e);
                        silo_error_prefix(err, "entry '%.200s'", n ? n : "?");
                        goto out;
                }
        }
        r = apply_dir_times(u, err);
out:
        archive_read_free(a);
        return r;
}

int silo_unpack_layer_fd(int src_fd, int root_fd, const silo_unpack_options *o,
                         silo_unpack_stats *ret_stats, silo_error *err)
{
        silo_unpack_stats stats = {};
        struct unpack u = {
                .root_fd = root_fd,
                .o = o,
                .st = &stats,
                .cache_fd = -1,
                .euid = geteuid(),
                .egid = getegid(),
                .umask = current_umask(),
        };
        struct stat rst;
        if (fstat(root_fd, &rst) < 0)
                return silo_error_set(err, errno, "layer root");
        u.root_sgid = rst.st_mode & S_ISGID;

        _cleanup_decompressor_ silo_decompressor *dec = NULL;
        int r = silo_decompressor_new(src_fd, o->compression, &o->limits, &dec, err);
        if (r < 0)
                return r;
        if (o->progress)
                silo_decompressor_set_progress(dec, o->progress, o->progress_userdata);
        u.dec = dec;

        r = unpack_run(&u, err);
        unpack_done(&u);
        if (r < 0)
                return r;

        /* The digests cover the whole stream, including the padding after
         * the tar end marker that libarchive does not read. */
        r = silo_decompressor_drain(dec, err);
        if (r < 0)
                return r;
        silo_decompressor_digests(dec, stats.blob_digest, stats.diff_id);
        stats.blob_bytes = silo_decompressor_in_bytes(dec);
        stats.tar_bytes = silo_decompressor_out_bytes(dec);

        if (o->expected_blob && strcmp(o->expected_blob, stats.blob_digest) != 0)
                return silo_error_msg(err, EBADMSG, "blob digest mismatch: expected %s, content hashes to %s",
                                      o->expected_blob, stats.blob_digest);
        if (o->expected_diff_id && strcmp(o->expected_diff_id, stats.diff_id) != 0)
                return silo_error_msg(err, EBADMSG, "diff_id mismatch: the image config says %s, "
                                      "the uncompressed layer hashes to %s", o->expected_diff_id, stats.diff_id);
        if (ret_stats)
                *ret_stats = stats;
        return 0;
}
