/* Named network namespaces: a bind mount of a namespace on a file keeps it
 * alive without a process, the way `ip netns add` and netavark do. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "net/net.h"
#include "util/cleanup.h"

struct netns_job {
        const char *path;
        silo_error *err;
        int r;
};

/* Runs on its own thread: unshare() changes only the calling thread's
 * namespace, and the thread ends right after, so the caller's threads never
 * see the new namespace. */
static void *netns_thread(void *userdata)
{
        struct netns_job *job = userdata;
        if (unshare(CLONE_NEWNET) < 0) {
                job->r = silo_error_set(job->err, errno, "unshare network namespace");
                return NULL;
        }
        if (mount("/proc/thread-self/ns/net", job->path, NULL, MS_BIND, NULL) < 0) {
                job->r = silo_error_set(job->err, errno, "bind-mount network namespace on %s", job->path);
                return NULL;
        }
        job->r = 0;
        return NULL;
}

int silo_net_netns_create(const char *path, silo_error *err)
{
        if (!path || !*path)
                return silo_error_msg(err, EINVAL, "network namespace: no path");
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0444);
        if (fd < 0)
                return silo_error_set(err, errno, "create %s", path);
        struct netns_job job = { .path = path, .err = err, .r = -EIO };
        pthread_t t;
        int e = pthread_create(&t, NULL, netns_thread, &job);
        if (e != 0) {
                unlink(path);
                return silo_error_set(err, e, "network namespace thread");
        }
        pthread_join(t, NULL);
        if (job.r < 0)
                unlink(path);
        return job.r;
}

int silo_net_netns_remove(const char *path, silo_error *err)
{
        if (!path || !*path)
                return silo_error_msg(err, EINVAL, "network namespace: no path");
        /* MNT_DETACH: a process still entering it must not make this fail. */
        if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
                return silo_error_set(err, errno, "unmount %s", path);
        if (unlink(path) < 0 && errno != ENOENT)
                return silo_error_set(err, errno, "unlink %s", path);
        return 0;
}
