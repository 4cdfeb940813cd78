/* Building the container's filesystem view inside its new mount namespace.
 * Every target inside the rootfs is resolved by fd (RESOLVE_IN_ROOT) and
 * mounted by fd (open_tree/move_mount, or mount(2) on /proc/self/fd/N), so a
 * hostile rootfs cannot redirect a mount outside itself. */
#pragma once

#include <stdbool.h>

#include "spec/spec.h"
#include "util/error.h"

struct silo_rootfs {
        const struct silo_spec *spec;
        const char *rootfs_path;        /* absolute host path, for messages */
        int rootfd;                     /* the rootfs mount (after prepare) */
        int devnull_fd;                 /* verified host /dev/null (char 1:3), O_PATH */
        bool in_userns;                 /* created a user namespace */
        bool no_pivot;
        int console_slave_fd;           /* set if a terminal was made; mounted on /dev/console */
        const silo_cgroup *cgroup;      /* the container's cgroup, for cgroup mounts */
        bool cgroup_ns;                 /* the container has its own cgroup namespace */
};

/* Opens the rootfs dir and the host /dev/null; call before the namespaces
 * are entered so the host view is used. */
int silo_rootfs_open(struct silo_rootfs *ctx, int bundlefd, silo_error *err);

/* Makes / a slave (rootfsPropagation), bind-mounts the rootfs onto itself,
 * performs spec->mounts, creates devices and /dev links. */
int silo_rootfs_prepare(struct silo_rootfs *ctx, silo_error *err);

/* Creates the container's pty from its own devpts (ptmx opened by fd, peer via
 * TIOCGPTPEER, no path lookup), mounts the peer on /dev/console.  Returns the
 * master fd. */
int silo_rootfs_make_console(struct silo_rootfs *ctx, unsigned rows, unsigned cols, int *ret_master, int *ret_slave,
                             silo_error *err);

/* sysctls, maskedPaths, readonlyPaths (after the mounts, before pivot). */
int silo_rootfs_finalize(struct silo_rootfs *ctx, silo_error *err);

/* pivot_root (or MS_MOVE + chroot with no_pivot), then root.readonly. */
int silo_rootfs_pivot(struct silo_rootfs *ctx, silo_error *err);

void silo_rootfs_done(struct silo_rootfs *ctx);
