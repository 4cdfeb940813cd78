/* fd-relative file helpers.  Paths inside a container rootfs are resolved
 * with silo_open_in_root() (openat2 RESOLVE_IN_ROOT), never by string. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

/* Reads a whole file (at most max_bytes, else -EFBIG) into a NUL-terminated buffer. */
int silo_read_file_at(int dirfd, const char *path, size_t max_bytes, char **ret, size_t *ret_len, silo_error *err);

/* Writes data to an existing file (O_WRONLY|O_TRUNC, no create): sysfs/procfs/cgroupfs writes. */
int silo_write_file_at(int dirfd, const char *path, const char *data, size_t len, silo_error *err);
int silo_write_string_at(int dirfd, const char *path, const char *s, silo_error *err);

/* Crash-safe replace: temp file, fsync, rename, fsync dir. */
int silo_write_file_atomic_at(int dirfd, const char *name, const char *data, size_t len, mode_t mode, silo_error *err);

/* Atomic but not durable (temp file + rename, no fsync): for state that
 * does not outlive a reboot anyway, like the runtime's under /run. */
int silo_write_file_replace_at(int dirfd, const char *name, const char *data, size_t len, mode_t mode, silo_error *err);

/* mkdir -p relative to dirfd; does not follow symlinks in the created chain. */
int silo_mkdir_p_at(int dirfd, const char *path, mode_t mode, silo_error *err);

/* Opens `path` inside the directory tree rooted at rootfd as if rootfd were
 * "/" (symlinks and ".." cannot escape).  flags are open(2) flags;
 * resolve are extra RESOLVE_* flags. */
int silo_open_in_root(int rootfd, const char *path, int flags, unsigned long long resolve, silo_error *err);

/* Like silo_open_in_root() but creates missing directories (and, if
 * make_file is set, a final empty regular file) on the way.  Returns an
 * O_PATH fd to the final component. */
int silo_mkpath_in_root(int rootfd, const char *path, bool make_file, silo_error *err);

/* Removes a directory tree relative to dirfd without following symlinks. */
int silo_rm_rf_at(int dirfd, const char *name, silo_error *err);

/* Writes "/proc/self/fd/<fd>" into buf: the way to hand an fd to an API that wants a path. */
const char *silo_fd_path(char buf[64], int fd);
