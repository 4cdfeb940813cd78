#include "mount/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "mount/devices.h"
#include "util/cleanup.h"
#include "util/fs.h"

/* MS_* per-mount flags -> MOUNT_ATTR_* for mount_setattr(). */
static uint64_t flags_to_attr(unsigned long flags)
{
        uint64_t attr = 0;
        if (flags & MS_RDONLY)
                attr |= MOUNT_ATTR_RDONLY;
        if (flags & MS_NOSUID)
                attr |= MOUNT_ATTR_NOSUID;
        if (flags & MS_NODEV)
                attr |= MOUNT_ATTR_NODEV;
        if (flags & MS_NOEXEC)
                attr |= MOUNT_ATTR_NOEXEC;
        if (flags & MS_NODIRATIME)
                attr |= MOUNT_ATTR_NODIRATIME;
        if (flags & MS_NOATIME)
                attr |= MOUNT_ATTR_NOATIME;
        else if (flags & MS_STRICTATIME)
                attr |= MOUNT_ATTR_STRICTATIME;
        else if (flags & MS_RELATIME)
                attr |= MOUNT_ATTR_RELATIME;
        return attr;
}

static bool has_atime_flag(unsigned long flags)
{
        return flags & (MS_NOATIME | MS_STRICTATIME | MS_RELATIME);
}

int silo_rootfs_open(struct silo_rootfs *ctx, int bundlefd, silo_error *err)
{
        ctx->rootfd = -1;
        ctx->devnull_fd = -1;
        ctx->console_slave_fd = -1;

        const char *root = ctx->spec->root_path ? ctx->spec->root_path : "rootfs";
        ctx->rootfd = openat(bundlefd, root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (ctx->rootfd < 0)
                return silo_error_set(err, errno, "root.path: cannot open rootfs directory %s", ctx->rootfs_path);

        /* maskedPaths are covered only with a /dev/null we checked ourselves:
         * never one the container's rootfs could have planted. */
        ctx->devnull_fd = open("/dev/null", O_PATH | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (ctx->devnull_fd < 0 || fstat(ctx->devnull_fd, &st) < 0)
                return silo_error_set(err, errno, "open host /dev/null");
        if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3))
                return silo_error_msg(err, EPERM, "host /dev/null is not the null device (char 1:3)");
        return 0;
}

void silo_rootfs_done(struct silo_rootfs *ctx)
{
        silo_closep(&ctx->rootfd);
        silo_closep(&ctx->devnull_fd);
        silo_closep(&ctx->console_slave_fd);
        ctx->rootfd = ctx->devnull_fd = ctx->console_slave_fd = -1;
}

/* Attaches a detached mount tree (from open_tree/fsmount) onto target_fd. */
static int attach_tree(int tree_fd, int target_fd, const char *what, silo_error *err)
{
        if (move_mount(tree_fd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return silo_error_set(err, errno, "mount %s", what);
        return 0;
}

static int bind_mount_fd(int source_fd, const char *source_path, int target_fd, bool recursive, unsigned long flags,
                         bool recursive_attr, const char *what, int *ret_tree, silo_error *err)
{
        unsigned tree_flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
        _cleanup_close_ int tree = source_fd >= 0
                ? open_tree(source_fd, "", tree_flags | AT_EMPTY_PATH)
                : open_tree(AT_FDCWD, source_path, tree_flags);
        if (tree < 0)
                return silo_error_set(err, errno, "bind mount %s: open %s", what, source_path ? source_path : "source");

        struct mount_attr attr = { .attr_set = flags_to_attr(flags) };
        if (has_atime_flag(flags))
                attr.attr_clr = MOUNT_ATTR__ATIME;
        if (attr.attr_set || attr.attr_clr) {
                unsigned at = AT_EMPTY_PATH | (recursive_attr ? AT_RECURSIVE : 0);
                if (mount_setattr(tree, "", at, &attr, sizeof(attr)) < 0)
                        return silo_error_set(err, errno, "bind mount %s: set mount flags", what);
        }
        int r = attach_tree(tree, target_fd, what, err);
        if (r < 0)
                return r;
        if (ret_tree)
                *ret_tree = TAKE_FD(tree);
        return 0;
}

/* Applies propagation to an attached mount given by an fd to its root. */
static int set_propagation_fd(int mnt_fd, unsigned long propagation, const char *what, silo_error *err)
{
        char p[64];
        if (!propagation)
                return 0;
        if (mount(NULL, silo_fd_path(p, mnt_fd), NULL, propagation, NULL) < 0)
                return silo_error_set(err, errno, "set propagation of %s", what);
        return 0;
}

static bool is_type(const struct silo_mount *m, const char *type)
{
        return m->type && !strcmp(m->type, type);
}

/* One hierarchy of the container's cgroup at `sub`: in a cgroup namespace a
 * fresh mount (its root is the namespace's, i.e. the container's cgroup);
 * otherwise, or where a user namespace may not mount cgroup v1, a bind of
 * the container's own cgroup directory, as runc does. */
static int mount_one_hierarchy(struct silo_rootfs *ctx, const struct silo_mount *m, int sub, bool v2, const char *mnt,
                               const char *controllers, const char *path, silo_error *err)
{
        char p[64];
        unsigned long flags = m->flags | MS_NOSUID | MS_NODEV | MS_NOEXEC;
        if (ctx->cgroup_ns && (v2 || !ctx->in_userns)) {
                if (mount(v2 ? "cgroup2" : "cgroup", silo_fd_path(p, sub), v2 ? "cgroup2" : "cgroup", flags,
                          v2 ? NULL : controllers) == 0)
                        return 0;
                if (errno != EPERM)
                        return silo_error_set(err, errno, "mount cgroup %s on %s", v2 ? "v2" : controllers, m->destination);
        }
        char host[PATH_MAX];
        snprintf(host, sizeof(host), "%s%s", mnt, path);
        return bind_mount_fd(-1, host, sub, false, flags, false, m->destination, NULL, err);
}

/* The cgroup filesystem as the container should see it. */
static int mount_cgroup(struct silo_rootfs *ctx, const struct silo_mount *m, int target, silo_error *err)
{
        char p[64];
        size_t n = silo_cgroup_n_hierarchies(ctx->cgroup);
        if (n == 0)
                return silo_error_msg(err, ENOENT, "mount %s: the container has no cgroup", m->destination);

        const char *mnt, *controllers, *path;
        silo_cgroup_hierarchy(ctx->cgroup, 0, &mnt, &controllers, &path);
        if (silo_cgroup_version(ctx->cgroup) == SILO_CGROUP_V2)
                return mount_one_hierarchy(ctx, m, target, true, mnt, controllers, path, err);

        /* cgroup v1: a tmpfs holding one mount per hierarchy, like the host. */
        if (mount("tmpfs", silo_fd_path(p, target), "tmpfs", (m->flags & ~MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=755") < 0)
                return silo_error_set(err, errno, "mount tmpfs on %s", m->destination);
        _cleanup_close_ int dir = silo_open_in_root(ctx->rootfd, m->destination, O_PATH | O_DIRECTORY, 0, err);
        if (dir < 0)
                return dir;
        for (size_t i = 0; i < n; i++) {
                silo_cgroup_hierarchy(ctx->cgroup, i, &mnt, &controllers, &path);
                const char *name = strrchr(mnt, '/');
                name = name ? name + 1 : mnt;
                if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
                        continue;
                if (mkdirat(dir, name, 0755) < 0 && errno != EEXIST)
                        return silo_error_set(err, errno, "mkdir %s/%s", m->destination, name);
                _cleanup_close_ int sub = openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0)
                        return silo_error_set(err, errno, "open %s/%s", m->destination, name);
                int r = mount_one_hierarchy(ctx, m, sub, false, mnt, controllers, path, err);
                if (r < 0)
                        return r;
                /* Co-mounted controllers ("cpu,cpuacct") get a link per name. */
                if (strchr(name, ',')) {
                        char list[256];
                        snprintf(list, sizeof(list), "%s", name);
                        for (char *save = NULL, *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save))
                                if (symlinkat(name, dir, c) < 0 && errno != EEXIST)
                                        return silo_error_set(err, errno, "symlink %s/%s", m->destination, c);
                }
        }
        if (m->flags & MS_RDONLY) {
                struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
                if (mount_setattr(dir, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
                        return silo_error_set(err, errno, "make %s read-only", m->destination);
        }
        return 0;
}

/* mount(2) of a new filesystem instance onto target; retries the cases a user
 * namespace cannot do with the nearest equivalent, as runc does. */
static int mount_fs(struct silo_rootfs *ctx, const struct silo_mount *m, int target, silo_error *err)
{
        char p[64];
        const char *source = m->source ? m->source : m->type;

        if (mount(source, silo_fd_path(p, target), m->type, m->flags, m->data) == 0)
                return 0;
        int e = errno;
        if (ctx->in_userns && e == EPERM && (is_type(m, "sysfs") || is_type(m, "mqueue"))) {
                const char *host = is_type(m, "sysfs") ? "/sys" : "/dev/mqueue";
                return bind_mount_fd(-1, host, target, true, m->flags, true, m->destination, NULL, err);
        }
        if (is_type(m, "devpts") && e == EINVAL && m->data && strstr(m->data, "gid=")) {
                /* gid=5 may be unmapped in a user namespace. */
                _cleanup_free_ char *data = strdup(m->data);
                if (!data)
                        return silo_error_set(err, ENOMEM, "devpts");
                char *g = strstr(data, "gid=");
                char *end = strchr(g, ',');
                memmove(g, end ? end + 1 : g + strlen(g), strlen(end ? end + 1 : "") + 1);
                if (mount(source, p, m->type, m->flags, data) == 0)
                        return 0;
                e = errno;
        }
        return silo_error_set(err, e, "mount %s (type %s) on %s", source, m->type, m->destination);
}

/* Mounting over parts of procfs can defeat the masks and read-only paths
 * (or hide /proc/self); only the files lxcfs-style tools replace are allowed,
 * as in runc. */
static int check_proc_destination(const struct silo_mount *m, int target, silo_error *err)
{
        static const char *const allowed[] = {
                "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
                "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid",
                NULL,
        };
        struct statfs sfs;
        if (fstatfs(target, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC)
                return 0;
        for (size_t i = 0; allowed[i]; i++)
                if (!strcmp(m->destination, allowed[i]))
                        return 0;
        return silo_error_msg(err, EPERM, "mount %s: destination is inside /proc; only %s and the like may be "
                              "mounted over", m->destination, allowed[0]);
}

static int mount_one(struct silo_rootfs *ctx, const struct silo_mount *m, silo_error *err)
{
        bool is_proc_like = is_type(m, "proc") || is_type(m, "sysfs");
        bool make_file = false;

        if (m->bind) {
                struct stat st;
                if (stat(m->source, &st) < 0)
                        return silo_error_set(err, errno, "mount %s: source %s", m->destination, m->source);
                make_file = !S_ISDIR(st.st_mode);
        }

        _cleanup_close_ int target = -1;
        if (is_proc_like) {
                /* A rootfs whose /proc or /sys is a symlink could aim the new
                 * procfs at a host path once pivoted: refuse outright. */
                struct open_how how = {
                        .flags = O_PATH | O_CLOEXEC,
                        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
                };
                target = (int) syscall(SYS_openat2, ctx->rootfd, m->destination, &how, sizeof(how));
                if (target < 0 && errno == ENOENT) {
                        silo_closep(&target);
                        target = silo_mkpath_in_root(ctx->rootfd, m->destination, false, err);
                        if (target < 0)
                                return target;
                        silo_closep(&target);
                        target = (int) syscall(SYS_openat2, ctx->rootfd, m->destination, &how, sizeof(how));
                }
                if (target < 0) {
                        if (errno == ELOOP)
                                return silo_error_msg(err, ELOOP, "mount %s: refusing a %s destination that is a symlink",
                                                      m->destination, m->type);
                        return silo_error_set(err, errno, "mount %s", m->destination);
                }
                struct stat st;
                if (fstat(target, &st) < 0 || !S_ISDIR(st.st_mode))
                        return silo_error_msg(err, ENOTDIR, "mount %s: destination is not a directory", m->destination);
        } else {
                target = silo_mkpath_in_root(ctx->rootfd, m->destination, make_file, err);
                if (target < 0)
                        return silo_error_prefix(err, "mount %s", m->destination);
                int r = check_proc_destination(m, target, err);
                if (r < 0)
                        return r;
        }

        int r;
        if (m->bind) {
                _cleanup_close_ int tree = -1;
                r = bind_mount_fd(-1, m->source, target, m->recursive, m->flags, m->recursive_ro, m->destination, &tree, err);
                if (r < 0)
                        return r;
                return set_propagation_fd(tree, m->propagation, m->destination, err);
        }
        if (is_type(m, "cgroup") || is_type(m, "cgroup2"))
                r = mount_cgroup(ctx, m, target, err);
        else
                r = mount_fs(ctx, m, target, err);
        if (r < 0 || !m->propagation)
                return r;
        _cleanup_close_ int mnt = silo_open_in_root(ctx->rootfd, m->destination, O_PATH, 0, err);
        if (mnt < 0)
                return mnt;
        return set_propagation_fd(mnt, m->propagation, m->destination, err);
}

/* fds opened before the clone name mounts of the host's namespace, which
 * mount APIs refuse: reopen by path in ours and check it is the same inode. */
static int reopen_in_ns(int *fd, const char *path, int flags, silo_error *err)
{
        struct stat before, after;
        if (fstat(*fd, &before) < 0)
                return silo_error_set(err, errno, "stat %s", path);
        int n = open(path, flags | O_CLOEXEC | O_NOFOLLOW);
        if (n < 0)
                return silo_error_set(err, errno, "reopen %s", path);
        if (fstat(n, &after) < 0 || after.st_dev != before.st_dev || after.st_ino != before.st_ino) {
                close(n);
                return silo_error_msg(err, EBUSY, "%s changed while the container was being created", path);
        }
        close(*fd);
        *fd = n;
        return 0;
}

int silo_rootfs_prepare(struct silo_rootfs *ctx, silo_error *err)
{
        const struct silo_spec *spec = ctx->spec;

        int r = reopen_in_ns(&ctx->rootfd, ctx->rootfs_path, O_PATH | O_DIRECTORY, err);
        if (r < 0)
                return r;
        r = reopen_in_ns(&ctx->devnull_fd, "/dev/null", O_PATH, err);
        if (r < 0)
                return r;

        /* Nothing we mount may propagate back to the host.  "shared" and
         * "unbindable" for the root are applied after the pivot: before it
         * they would leak mounts to the host, or forbid binding the rootfs. */
        unsigned long propagation = spec->rootfs_propagation;
        unsigned long base = MS_SLAVE | MS_REC;
        if (propagation & (MS_PRIVATE | MS_SLAVE))
                base = propagation | MS_REC;
        if (mount(NULL, "/", NULL, base, NULL) < 0)
                return silo_error_set(err, errno, "make / %s", (base & MS_PRIVATE) ? "private" : "slave");

        /* pivot_root needs the rootfs to be a mount point; the clone becomes
         * the fd every later lookup is relative to. */
        int tree = open_tree(ctx->rootfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
        if (tree < 0)
                return silo_error_set(err, errno, "bind mount rootfs %s", ctx->rootfs_path);
        if (move_mount(tree, "", ctx->rootfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
                int e = errno;
                close(tree);
                return silo_error_set(err, e, "bind mount rootfs %s", ctx->rootfs_path);
        }
        close(ctx->rootfd);
        ctx->rootfd = tree;

        for (size_t i = 0; i < spec->n_mounts; i++) {
                r = mount_one(ctx, &spec->mounts[i], err);
                if (r < 0)
                        return r;
        }

        return silo_devices_setup(ctx->rootfd, spec, ctx->in_userns, err);
}

int silo_rootfs_make_console(struct silo_rootfs *ctx, unsigned rows, unsigned cols, int *ret_master, int *ret_slave,
                             silo_error *err)
{
        struct open_how how = {
                .flags = O_RDWR | O_NOCTTY | O_CLOEXEC,
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        _cleanup_close_ int master = (int) syscall(SYS_openat2, ctx->rootfd, "dev/pts/ptmx", &how, sizeof(how));
        if (master < 0)
                return silo_error_set(err, errno, "process.terminal: open /dev/pts/ptmx in the container "
                                      "(a devpts mount on /dev/pts is needed)");
        struct statfs sfs;
        if (fstatfs(master, &sfs) < 0 || sfs.f_type != DEVPTS_SUPER_MAGIC)
                return silo_error_msg(err, EPERM, "process.terminal: /dev/pts/ptmx is not on a devpts filesystem");
        int unlock = 0;
        if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
                return silo_error_set(err, errno, "unlock pty");
        _cleanup_close_ int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
                return silo_error_set(err, errno, "open pty peer");
        if (rows || cols) {
                struct winsize ws = { .ws_row = rows, .ws_col = cols };
                if (ioctl(slave, TIOCSWINSZ, &ws) < 0)
                        return silo_error_set(err, errno, "set console size");
        }

        /* /dev/console is the pty, as on a real system. */
        _cleanup_close_ int console = silo_mkpath_in_root(ctx->rootfd, "/dev/console", true, err);
        if (console < 0)
                return console;
        struct stat st;
        if (fstat(console, &st) == 0 && (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))) {
                int r = bind_mount_fd(slave, NULL, console, false, 0, false, "/dev/console", NULL, err);
                if (r < 0)
                        return r;
        }
        *ret_master = TAKE_FD(master);
        *ret_slave = TAKE_FD(slave);
        return 0;
}

/* Sysctls that belong to a namespace the container has; others would change
 * the host. */
static int sysctl_allowed(const struct silo_spec *spec, const char *key, silo_error *err)
{
        static const char *const ipc_keys[] = {
                "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced", NULL,
        };
        for (size_t i = 0; ipc_keys[i]; i++)
                if (!strcmp(key, ipc_keys[i]))
                        goto ipc;
        if (!strncmp(key, "fs.mqueue.", 10))
                goto ipc;
        if (!strncmp(key, "net.", 4)) {
                if (!spec->ns[SILO_NS_NET].wanted)
                        return silo_error_msg(err, EPERM, "linux.sysctl: \"%s\" needs a network namespace", key);
                return 0;
        }
        if (!strcmp(key, "kernel.hostname") || !strcmp(key, "kernel.domainname")) {
                if (!spec->ns[SILO_NS_UTS].wanted)
                        return silo_error_msg(err, EPERM, "linux.sysctl: \"%s\" needs a uts namespace", key);
                return 0;
        }
        return silo_error_msg(err, EPERM, "linux.sysctl: \"%s\" is not namespaced and cannot be set for a container", key);
ipc:
        if (!spec->ns[SILO_NS_IPC].wanted)
                return silo_error_msg(err, EPERM, "linux.sysctl: \"%s\" needs an ipc namespace", key);
        return 0;
}

static int apply_sysctls(struct silo_rootfs *ctx, silo_error *err)
{
        const struct silo_spec *spec = ctx->spec;
        if (!spec->n_sysctl)
                return 0;

        struct open_how how = {
                .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        _cleanup_close_ int proc = (int) syscall(SYS_openat2, ctx->rootfd, "proc/sys", &how, sizeof(how));
        struct statfs sfs;
        if (proc < 0 || fstatfs(proc, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC)
                return silo_error_msg(err, ENOENT, "linux.sysctl: needs /proc mounted in the container");

        for (size_t i = 0; i < spec->n_sysctl; i++) {
                const char *key = spec->sysctl[i].key;
                /* Both "net.ipv4.ip_forward" and "net/ipv4/ip_forward" are
                 * accepted; in the slash form a dot belongs to a name
                 * ("eth0.100").  Check the dotted form, write the path form. */
                char path[512], dotted[512];
                if (snprintf(path, sizeof(path), "%s", key) >= (int) sizeof(path))
                        return silo_error_msg(err, ENAMETOOLONG, "linux.sysctl: \"%s\" is too long", key);
                bool slash_form = strchr(path, '/') != NULL;
                for (char *c = path; *c; c++) {
                        if (!slash_form && *c == '.')
                                *c = '/';
                }
                snprintf(dotted, sizeof(dotted), "%s", path);
                for (char *c = dotted; *c; c++)
                        if (*c == '/')
                                *c = '.';
                int r = sysctl_allowed(spec, dotted, err);
                if (r < 0)
                        return r;
                struct open_how wh = {
                        .flags = O_WRONLY | O_TRUNC | O_CLOEXEC,
                        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
                };
                _cleanup_close_ int fd = (int) syscall(SYS_openat2, proc, path, &wh, sizeof(wh));
                if (fd < 0)
                        return silo_error_set(err, errno, "linux.sysctl: %s", key);
                const char *v = spec->sysctl[i].value;
                if (write(fd, v, strlen(v)) < 0)
                        return silo_error_set(err, errno, "linux.sysctl: write \"%s\" to %s", v, key);
        }
        return 0;
}

/* One empty read-only tmpfs, made on first use: every masked directory
 * gets a clone of it rather than a superblock of its own. */
static int empty_tmpfs(int *fd, silo_error *err)
{
        if (*fd >= 0)
                return 0;
        _cleanup_close_ int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
        if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "size", "0", 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0555", 0) < 0 ||
            fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return silo_error_set(err, errno, "linux.maskedPaths: create an empty tmpfs");
        *fd = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
        if (*fd < 0)
                return silo_error_set(err, errno, "linux.maskedPaths: mount an empty tmpfs");
        return 0;
}

static int mask_paths(struct silo_rootfs *ctx, silo_error *err)
{
        /* The first masked directory gets the fresh tmpfs itself; the others
         * get clones of it once it is attached (kernels before 6.5 or so
         * cannot clone a detached mount). */
        _cleanup_close_ int empty = -1;
        bool empty_attached = false;
        for (const char **p = ctx->spec->masked_paths; p && *p; p++) {
                silo_error ignored = SILO_ERROR_INIT;
                _cleanup_close_ int target = silo_open_in_root(ctx->rootfd, *p, O_PATH | O_NOFOLLOW, 0, &ignored);
                if (target < 0) {
                        if (target == -ENOENT || target == -ELOOP)
                                continue;
                        return silo_error_set(err, -target, "linux.maskedPaths: %s", *p);
                }
                struct stat st;
                if (fstat(target, &st) < 0)
                        return silo_error_set(err, errno, "linux.maskedPaths: %s", *p);
                /* A directory is hidden under an empty read-only tmpfs, a
                 * file under the verified /dev/null. */
                int source = ctx->devnull_fd;
                if (S_ISDIR(st.st_mode)) {
                        int r = empty_tmpfs(&empty, err);
                        if (r < 0)
                                return r;
                        if (!empty_attached) {
                                r = attach_tree(empty, target, *p, err);
                                if (r < 0)
                                        return silo_error_prefix(err, "linux.maskedPaths");
                                empty_attached = true;
                                continue;
                        }
                        source = empty;
                }
                int r = bind_mount_fd(source, NULL, target, false, 0, false, *p, NULL, err);
                if (r < 0)
                        return silo_error_prefix(err, "linux.maskedPaths");
        }
        return 0;
}

static int readonly_paths(struct silo_rootfs *ctx, silo_error *err)
{
        for (const char **p = ctx->spec->readonly_paths; p && *p; p++) {
                silo_error ignored = SILO_ERROR_INIT;
                _cleanup_close_ int target = silo_open_in_root(ctx->rootfd, *p, O_PATH | O_NOFOLLOW, 0, &ignored);
                if (target < 0) {
                        if (target == -ENOENT || target == -ELOOP)
                                continue;
                        return silo_error_set(err, -target, "linux.readonlyPaths: %s", *p);
                }
                int r = bind_mount_fd(target, NULL, target, true, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, true,
                                      *p, NULL, err);
                if (r < 0)
                        return silo_error_prefix(err, "linux.readonlyPaths");
        }
        return 0;
}

int silo_rootfs_finalize(struct silo_rootfs *ctx, silo_error *err)
{
        int r = apply_sysctls(ctx, err);
        if (r < 0)
                return r;
        r = mask_paths(ctx, err);
        if (r < 0)
                return r;
        return readonly_paths(ctx, err);
}

int silo_rootfs_pivot(struct silo_rootfs *ctx, silo_error *err)
{
        if (fchdir(ctx->rootfd) < 0)
                return silo_error_set(err, errno, "chdir to rootfs");

        if (ctx->no_pivot) {
                if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
                        return silo_error_set(err, errno, "move rootfs to /");
                if (chroot(".") < 0)
                        return silo_error_set(err, errno, "chroot");
        } else {
                /* pivot_root(".", ".") stacks the old root on top of the new
                 * one; detaching it leaves just the container's tree.  The old
                 * root is addressed by fd: our cwd is still the new root, and
                 * making *that* a slave would undo the container's own
                 * propagation settings. */
                _cleanup_close_ int oldroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (oldroot < 0)
                        return silo_error_set(err, errno, "open old root");
                if (syscall(SYS_pivot_root, ".", ".") < 0)
                        return silo_error_set(err, errno, "pivot_root to %s", ctx->rootfs_path);
                if (fchdir(oldroot) < 0)
                        return silo_error_set(err, errno, "chdir to old root");
                if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
                        return silo_error_set(err, errno, "make old root a slave");
                if (umount2(".", MNT_DETACH) < 0)
                        return silo_error_set(err, errno, "detach old root");
                if (fchdir(ctx->rootfd) < 0)
                        return silo_error_set(err, errno, "chdir to new root");
        }
        if (chdir("/") < 0)
                return silo_error_set(err, errno, "chdir /");

        unsigned long prop = ctx->spec->rootfs_propagation;
        if (prop & (MS_SHARED | MS_UNBINDABLE)) {
                if (mount(NULL, "/", NULL, prop, NULL) < 0)
                        return silo_error_set(err, errno, "linux.rootfsPropagation: apply to /");
        }
        if (ctx->spec->root_readonly) {
                struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
                if (mount_setattr(AT_FDCWD, "/", 0, &attr, sizeof(attr)) < 0)
                        return silo_error_set(err, errno, "root.readonly: remount / read-only");
        }
        return 0;
}
