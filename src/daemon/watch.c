/* Exit notifications: one thread sleeps in epoll_wait() on a pidfd per
 * running container's monitor.  A monitor exits right after it recorded the
 * container's exit, so the moment it does, the container is re-read: waiters
 * (docker run, wait, attach) and the poller (AutoRemove, restart policies)
 * wake at once instead of at the poller's next tick, and the poller need not
 * read the files of running containers at all (ctr_refresh_locked). */
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "silod.h"
#include "util/cleanup.h"

static void *watch_thread(void *userdata)
{
        struct silod *d = userdata;
        for (;;) {
                struct epoll_event ev[16];
                int n = epoll_wait(d->watch_fd, ev, 16, -1);
                if (n < 0 && errno != EINTR)
                        break;
                pthread_mutex_lock(&d->lock);
                bool stop = d->stopping;
                for (int i = 0; i < n && !stop; i++)
                        for (struct ctr *ct = d->containers; ct; ct = ct->next)
                                if (ct->monitor_pidfd == ev[i].data.fd) {
                                        ctr_refresh_locked(d, ct);
                                        break;
                                }
                pthread_mutex_unlock(&d->lock);
                for (int i = 0; i < n; i++)
                        if (ev[i].data.fd == d->watch_wake)
                                stop = true;
                if (stop)
                        break;
        }
        return NULL;
}

int watch_start(struct silod *d, silo_error *err)
{
        d->watch_fd = epoll_create1(EPOLL_CLOEXEC);
        if (d->watch_fd < 0)
                return silo_error_set(err, errno, "epoll_create1");
        d->watch_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = d->watch_wake };
        if (d->watch_wake < 0 || epoll_ctl(d->watch_fd, EPOLL_CTL_ADD, d->watch_wake, &ev) < 0) {
                int r = silo_error_set(err, errno, "eventfd");
                silo_closep(&d->watch_wake);
                silo_closep(&d->watch_fd);
                return r;
        }
        int r = pthread_create(&d->watcher, NULL, watch_thread, d);
        if (r != 0) {
                silo_closep(&d->watch_wake);
                silo_closep(&d->watch_fd);
                return silo_error_set(err, r, "start the exit watcher");
        }
        return 0;
}

void watch_add_locked(struct silod *d, int pidfd)
{
        /* One-shot: a monitor that exited while its container cannot be
         * re-read (being removed) must not make the thread spin; the poller
         * picks such a container up later. */
        struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.fd = pidfd };
        if (d->watch_fd >= 0 && pidfd >= 0)
                (void) epoll_ctl(d->watch_fd, EPOLL_CTL_ADD, pidfd, &ev);
}

void watch_stop(struct silod *d)
{
        if (d->watch_fd < 0)
                return;
        uint64_t one = 1;
        (void) !write(d->watch_wake, &one, sizeof(one));
        pthread_join(d->watcher, NULL);
        silo_closep(&d->watch_wake);
        silo_closep(&d->watch_fd);
}
