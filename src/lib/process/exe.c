#include "process/exe.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/cleanup.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

#define SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

static bool is_sealed(int fd)
{
        int seals = fcntl(fd, F_GET_SEALS);
        return seals >= 0 && (seals & SEALS) == SEALS;
}

static int exec_sealed_copy(int self, char **argv, char **envp, silo_error *err)
{

        struct stat st;
        if (fstat(self, &st) < 0)
                return silo_error_set(err, errno, "stat /proc/self/exe");

        int memfd = memfd_create("silo-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
        if (memfd < 0 && errno == EINVAL)       /* kernels before 6.3 have no MFD_EXEC */
                memfd = memfd_create("silo-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (memfd < 0)
                return silo_error_set(err, errno, "memfd_create");
        _cleanup_close_ int fd = memfd;

        off_t off = 0;
        while (off < st.st_size) {
                ssize_t n = sendfile(fd, self, &off, (size_t) (st.st_size - off));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return silo_error_set(err, errno, "copy runtime binary");
                }
                if (n == 0)
                        return silo_error_msg(err, EIO, "copy runtime binary: short read");
        }
        if (fcntl(fd, F_ADD_SEALS, SEALS) < 0)
                return silo_error_set(err, errno, "seal runtime binary copy");

        syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
        return silo_error_set(err, errno, "re-execute sealed runtime binary");
}

int silo_exe_ensure_protected(char **argv, char **envp, silo_error *err)
{
        _cleanup_close_ int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        if (self < 0)
                return silo_error_set(err, errno, "open /proc/self/exe");
        /* Already out of a container's reach: a sealed memfd, a read-only
         * mount, or an immutable file (which even root cannot write without
         * CAP_LINUX_IMMUTABLE, a capability containers are not given). */
        struct statvfs sv;
        int inode_flags = 0;
        if (is_sealed(self) || (fstatvfs(self, &sv) == 0 && (sv.f_flag & ST_RDONLY)) ||
            (ioctl(self, FS_IOC_GETFLAGS, &inode_flags) == 0 && (inode_flags & FS_IMMUTABLE_FL)))
                return 0;

        /* A private read-only bind of just this file, attached nowhere. */
        _cleanup_close_ int tree = open_tree(self, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (tree >= 0) {
                struct mount_attr attr = { .attr_set = MOUNT_ATTR_RDONLY };
                if (mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof(attr)) == 0) {
                        syscall(SYS_execveat, tree, "", argv, envp, AT_EMPTY_PATH);
                        return silo_error_set(err, errno, "re-execute runtime binary from a read-only mount");
                }
        }
        return exec_sealed_copy(self, argv, envp, err);
}
