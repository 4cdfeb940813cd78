/* The container's init between clone and execve.  It runs the runtime's own
 * code inside the new namespaces, so it trusts nothing in the rootfs and
 * reports every failure to the parent through the sync socket. */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "process/creds.h"
#include "process/hooks.h"
#include "process/internal.h"
#include "process/sync.h"
#include "util/cleanup.h"
#include "util/fs.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static int become_ns_root(silo_error *err)
{
        /* In a fresh user namespace we hold every capability but may still
         * carry an unmapped uid: become its root before touching anything. */
        if (setresgid(0, 0, 0) < 0)
                return silo_error_set(err, errno, "setresgid(0) in user namespace (is gid 0 mapped?)");
        if (setresuid(0, 0, 0) < 0)
                return silo_error_set(err, errno, "setresuid(0) in user namespace (is uid 0 mapped?)");
        return 0;
}

static int setup_time_ns(const struct silo_spec *spec, silo_error *err)
{
        if (!spec->ns[SILO_NS_TIME].wanted || spec->ns[SILO_NS_TIME].path)
                return 0;
        /* Offsets can be written only before a process enters the
         * namespace; execve moves us into it. */
        if (unshare(CLONE_NEWTIME) < 0)
                return silo_error_set(err, errno, "create time namespace");
        char buf[128];
        int n = 0;
        if (spec->time_monotonic.set)
                n += snprintf(buf + n, sizeof(buf) - n, "monotonic %lld %u\n",
                              (long long) spec->time_monotonic.secs, spec->time_monotonic.nanosecs);
        if (spec->time_boottime.set)
                n += snprintf(buf + n, sizeof(buf) - n, "boottime %lld %u\n",
                              (long long) spec->time_boottime.secs, spec->time_boottime.nanosecs);
        if (n == 0)
                return 0;
        _cleanup_close_ int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, buf, n) != n)
                return silo_error_set(err, errno, "linux.timeOffsets: write timens_offsets");
        return 0;
}

/* A new network namespace starts with its loopback down.  runc brings it up
 * (its "loopback" network for a namespace without a path), and programs
 * expect 127.0.0.1 to work, so do the same. */
static int loopback_up(silo_error *err)
{
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return silo_error_set(err, errno, "linux.namespaces: network: socket");
        struct ifreq ifr = {};
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                return silo_error_set(err, errno, "linux.namespaces: network: get the flags of lo");
        if (ifr.ifr_flags & IFF_UP)
                return 0;
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                return silo_error_set(err, errno, "linux.namespaces: network: bring lo up");
        return 0;
}

static int setup_terminal(struct create_ctx *c, silo_error *err)
{
        const struct silo_process *p = &c->spec->process;
        _cleanup_close_ int master = -1, slave = -1;
        int r = silo_rootfs_make_console(&c->rootfs, (unsigned) p->console_height.value, (unsigned) p->console_width.value,
                                         &master, &slave, err);
        if (r < 0)
                return r;
        /* The terminal belongs to the user who will run on it. */
        if (fchown(slave, p->user.uid, (gid_t) -1) < 0)
                return silo_error_set(err, errno, "chown the pty to uid %u", p->user.uid);
        r = silo_console_send(c->console_fd, master, err);
        if (r < 0)
                return r;
        silo_closep(&c->console_fd);
        c->console_fd = -1;
        if (setsid() < 0)
                return silo_error_set(err, errno, "setsid");
        if (ioctl(slave, TIOCSCTTY, 0) < 0)
                return silo_error_set(err, errno, "make the pty the controlling terminal");
        for (int fd = 0; fd < 3; fd++)
                if (dup2(slave, fd) < 0)
                        return silo_error_set(err, errno, "dup pty to fd %d", fd);
        return 0;
}

void silo_init_main(struct create_ctx *c)
{
        silo_error err = SILO_ERROR_INIT;
        struct silo_spec *spec = c->spec;
        int sync = c->sync_child;
        int r;

        /* What the runtime blocked or ignored is not the container's business. */
        silo_signals_reset();
        /* Until READY, the runtime may still roll everything back: if it dies
         * (killed mid-create), so do we, instead of idling in accept(). */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        close(c->sync_parent);
        /* The parent's flock on the state directory lives on this open file
         * too: drop our copy so `start` can take the lock. */
        close(c->statefd);
        close(c->state_rootfd);
        /* Only 0-2, the preserved fds and our own CLOEXEC fds may survive exec. */
        syscall(SYS_close_range, 3 + c->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);

        /* The hook state (with our host pid) comes with GO; without hooks
         * there may be no GO at all (see init_needs_go()). */
        _cleanup_free_ char *state_json = NULL;
        if (c->wait_for_go) {
                struct silo_sync_msg *msg = malloc(sizeof(*msg));
                if (!msg)
                        _exit(1);
                r = silo_sync_recv(sync, msg);
                if (r < 0 || msg->type != SILO_SYNC_GO)
                        _exit(1);
                state_json = strdup(msg->payload);
                free(msg);
        }

        if (c->new_userns && become_ns_root(&err) < 0)
                silo_sync_fail(sync, &err);

        /* After the cgroup move, so the namespace's root is the container's cgroup. */
        if (spec->ns[SILO_NS_CGROUP].wanted && !spec->ns[SILO_NS_CGROUP].path && unshare(CLONE_NEWCGROUP) < 0) {
                silo_error_set(&err, errno, "create cgroup namespace");
                silo_sync_fail(sync, &err);
        }
        if (spec->hostname && *spec->hostname && sethostname(spec->hostname, strlen(spec->hostname)) < 0) {
                silo_error_set(&err, errno, "hostname: sethostname(%s)", spec->hostname);
                silo_sync_fail(sync, &err);
        }
        if (spec->domainname && *spec->domainname && setdomainname(spec->domainname, strlen(spec->domainname)) < 0) {
                silo_error_set(&err, errno, "domainname: setdomainname(%s)", spec->domainname);
                silo_sync_fail(sync, &err);
        }
        if (setup_time_ns(spec, &err) < 0 || silo_oom_score_adj_apply(&spec->process, &err) < 0)
                silo_sync_fail(sync, &err);
        if (spec->ns[SILO_NS_NET].wanted && !spec->ns[SILO_NS_NET].path && loopback_up(&err) < 0)
                silo_sync_fail(sync, &err);

        if (silo_rootfs_prepare(&c->rootfs, &err) < 0)
                silo_sync_fail(sync, &err);
        /* A missing working directory is created, as runc does. */
        int cwd_fd = silo_mkpath_in_root(c->rootfs.rootfd, spec->process.cwd, false, &err);
        if (cwd_fd < 0)
                silo_sync_fail(sync, &err);
        close(cwd_fd);

        if (spec->process.terminal && setup_terminal(c, &err) < 0)
                silo_sync_fail(sync, &err);

        if (spec->hooks.n[SILO_HOOK_CREATE_CONTAINER] &&
            silo_hooks_run(spec, SILO_HOOK_CREATE_CONTAINER, state_json, &err) < 0)
                silo_sync_fail(sync, &err);

        if (silo_rootfs_finalize(&c->rootfs, &err) < 0 || silo_rootfs_pivot(&c->rootfs, &err) < 0)
                silo_sync_fail(sync, &err);
        silo_rootfs_done(&c->rootfs);

        char exe[PATH_MAX];
        if (silo_find_executable(&spec->process, exe, sizeof(exe), &err) < 0 ||
            silo_process_default_home(&spec->process, &err) < 0)
                silo_sync_fail(sync, &err);
        if (spec->seccomp && silo_seccomp_prepare(spec->seccomp, &err) < 0)
                silo_sync_fail(sync, &err);

        /* Ready: the parent records the state and exits; we wait for start.
         * `run` starts at once: the sync socket then plays start's part.
         * From here on the container outlives the runtime process, as with runc. */
        prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
        if (silo_sync_send(sync, SILO_SYNC_READY, 0, NULL, 0, -1) < 0)
                _exit(1);
        int conn = sync;
        if (!c->autostart) {
                close(sync);
                do
                        conn = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                while (conn < 0 && errno == EINTR);
                if (conn < 0)
                        _exit(1);
                close(c->listen_fd);
        }

        if (spec->hooks.n[SILO_HOOK_START_CONTAINER] &&
            silo_hooks_run(spec, SILO_HOOK_START_CONTAINER, state_json, &err) < 0)
                silo_sync_fail(conn, &err);

        if (silo_rlimits_apply(&spec->process, &err) < 0)
                silo_sync_fail(conn, &err);
        /* A seccomp listener fd goes to `start`, which forwards it to the host-side agent. */
        if (silo_process_finalize(&spec->process, spec->seccomp, conn, &err) < 0)
                silo_sync_fail(conn, &err);

        const char *empty_env[] = { NULL };
        execve(exe, (char *const *) spec->process.args,
               (char *const *) (spec->process.env ? spec->process.env : empty_env));
        silo_error_set(&err, errno, "exec %s", exe);
        silo_sync_fail(conn, &err);
}
