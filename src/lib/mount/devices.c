#include "mount/devices.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"

static const struct silo_device default_devices[] = {
        { "/dev/null",    'c', 1, 3, { true, 0666 }, { true, 0 }, { true, 0 } },
        { "/dev/zero",    'c', 1, 5, { true, 0666 }, { true, 0 }, { true, 0 } },
        { "/dev/full",    'c', 1, 7, { true, 0666 }, { true, 0 }, { true, 0 } },
        { "/dev/random",  'c', 1, 8, { true, 0666 }, { true, 0 }, { true, 0 } },
        { "/dev/urandom", 'c', 1, 9, { true, 0666 }, { true, 0 }, { true, 0 } },
        { "/dev/tty",     'c', 5, 0, { true, 0666 }, { true, 0 }, { true, 0 } },
};

static const struct { const char *target, *name; } dev_links[] = {
        { "/proc/self/fd",   "fd" },
        { "/proc/self/fd/0", "stdin" },
        { "/proc/self/fd/1", "stdout" },
        { "/proc/self/fd/2", "stderr" },
        { "pts/ptmx",        "ptmx" },
};

/* replace: what is at the path already is replaced unless it is the same
 * device (our own /dev tmpfs, linux.devices); without it, anything there is
 * left alone (the image's own /dev, as runc does). */
static int make_node(int rootfd, const struct silo_device *d, bool in_userns, bool replace, silo_error *err)
{
        mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
        mode_t perm = d->file_mode.set ? (d->file_mode.value & 07777) : 0666;
        dev_t dev = makedev((unsigned) d->major, (unsigned) d->minor);

        /* Split into parent (created inside the root) and name. */
        const char *slash = strrchr(d->path, '/');
        const char *name = slash + 1;
        char parent[4096];
        snprintf(parent, sizeof(parent), "%.*s", (int) (slash - d->path), d->path);
        if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
                return silo_error_msg(err, EINVAL, "linux.devices: invalid path %s", d->path);
        _cleanup_close_ int dir = silo_mkpath_in_root(rootfd, *parent ? parent : "/", false, err);
        if (dir < 0 && !replace && (dir == -EROFS || dir == -EPERM || dir == -EACCES))
                return 0;       /* the image's /dev, read-only: best effort, as runc */
        if (dir < 0)
                return dir;
        /* The O_PATH fd of the directory works as a dirfd for *at() calls. */

        if (in_userns) {
                /* No mknod in a user namespace: bind the host's node. */
                if (!replace && faccessat(dir, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                        return 0;
                int f = openat(dir, name, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (f < 0 && errno != EEXIST)
                        return silo_error_set(err, errno, "create %s", d->path);
                if (f >= 0)
                        close(f);
                _cleanup_close_ int target = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (target < 0)
                        return silo_error_set(err, errno, "open %s", d->path);
                char host[4096];
                snprintf(host, sizeof(host), "%s", d->path);
                _cleanup_close_ int tree = open_tree(AT_FDCWD, host, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
                if (tree < 0)
                        return silo_error_set(err, errno, "bind host device %s", host);
                if (move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        return silo_error_set(err, errno, "bind host device %s", host);
                return 0;
        }

        if (mknodat(dir, name, type | perm, dev) < 0) {
                if (!replace && (errno == EEXIST || errno == EROFS || errno == EPERM || errno == EACCES))
                        return 0;
                if (errno != EEXIST)
                        return silo_error_set(err, errno, "mknod %s", d->path);
                /* Something is there already: replace it only if it is not
                 * the same device, and never follow a symlink. */
                struct stat st;
                if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == type &&
                    st.st_rdev == dev)
                        goto owner;
                if (unlinkat(dir, name, 0) < 0 || mknodat(dir, name, type | perm, dev) < 0)
                        return silo_error_set(err, errno, "mknod %s", d->path);
        }
owner:
        /* mknod honours the umask; set the exact mode and owner. */
        if (fchmodat(dir, name, perm, 0) < 0)
                return silo_error_set(err, errno, "chmod %s", d->path);
        uid_t uid = d->uid.set ? (uid_t) d->uid.value : 0;
        gid_t gid = d->gid.set ? (gid_t) d->gid.value : 0;
        if (fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                return silo_error_set(err, errno, "chown %s", d->path);
        return 0;
}

/* As runc: /dev gets the default devices and links unless it is a bind
 * mount (a host /dev has its own).  Without any /dev mount they go into the
 * rootfs's own /dev, as with runc, so a minimal config still has /dev/null;
 * *ret_ours: /dev is a filesystem we mount (not the image's). */
static bool dev_needs_setup(const struct silo_spec *spec, bool *ret_ours)
{
        *ret_ours = false;
        for (size_t i = 0; i < spec->n_mounts; i++) {
                const struct silo_mount *m = &spec->mounts[i];
                if (!strcmp(m->destination, "/dev") || !strcmp(m->destination, "/dev/")) {
                        *ret_ours = !m->bind;
                        return !m->bind;
                }
        }
        return true;
}

int silo_devices_setup(int rootfd, const struct silo_spec *spec, bool in_userns, silo_error *err)
{
        /* A bind-mounted host /dev already has its devices; add nothing to it. */
        bool ours;
        bool populate = dev_needs_setup(spec, &ours);

        if (populate)
                for (size_t i = 0; i < ARRAY_SIZE(default_devices); i++) {
                        int r = make_node(rootfd, &default_devices[i], in_userns, ours, err);
                        if (r < 0)
                                return silo_error_prefix(err, "default devices");
                }
        for (size_t i = 0; i < spec->n_devices; i++) {
                int r = make_node(rootfd, &spec->devices[i], in_userns, true, err);
                if (r < 0)
                        return silo_error_prefix(err, "linux.devices[%zu]", i);
        }
        if (!populate)
                return 0;

        _cleanup_close_ int dev = silo_open_in_root(rootfd, "/dev", O_PATH | O_DIRECTORY, 0, ours ? err : NULL);
        if (dev < 0)
                return ours ? dev : 0;
        for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++)
                if (symlinkat(dev_links[i].target, dev, dev_links[i].name) < 0 && errno != EEXIST &&
                    (ours || errno != EROFS))
                        return silo_error_set(err, errno, "symlink /dev/%s", dev_links[i].name);
        if (access("/proc/kcore", F_OK) == 0 && symlinkat("/proc/kcore", dev, "core") < 0 && errno != EEXIST &&
            (ours || errno != EROFS))
                return silo_error_set(err, errno, "symlink /dev/core");
        return 0;
}
