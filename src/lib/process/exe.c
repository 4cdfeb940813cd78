#include "process/exe.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
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

int silo_exe_ensure_sealed(char **argv, char **envp, silo_error *err)
{
        _cleanup_close_ int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        if (self < 0)
                return silo_error_set(err, errno, "open /proc/self/exe");
        if (is_sealed(self))
                return 0;

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
