/* silo-compute-init: pid 1 of a compute system that has no program of its
 * own.  Statically linked and bound into the container read-only, so it
 * needs nothing from the container's root filesystem.
 *
 * It reaps orphans, and on SIGTERM/SIGINT/SIGPWR (a graceful shutdown)
 * passes SIGTERM on to every process of the container, waits until none
 * is left (up to SILO_INIT_GRACE seconds), kills what remains and exits 0;
 * its exit takes the pid namespace down with it. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SILO_INIT_GRACE 10

/* Processes started through exec are children of their host-side monitors,
 * not ours: whether any process is left is asked of the whole namespace
 * (kill(-1) reaches every process but us, and fails with ESRCH if none). */
static void reap(bool *ret_none_left)
{
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
        *ret_none_left = kill(-1, 0) < 0 && errno == ESRCH;
}

int main(void)
{
        sigset_t set;
        sigfillset(&set);
        sigprocmask(SIG_BLOCK, &set, NULL);
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGPWR);

        bool stopping = false, none_left = false;
        time_t deadline = 0;
        for (;;) {
                struct timespec ts = { 0, 50 * 1000 * 1000 };
                int sig = sigtimedwait(&set, NULL, stopping ? &ts : NULL);
                if (sig == SIGCHLD || stopping)
                        reap(&none_left);
                if (!stopping && (sig == SIGTERM || sig == SIGINT || sig == SIGPWR)) {
                        stopping = true;
                        deadline = time(NULL) + SILO_INIT_GRACE;
                        kill(-1, SIGTERM);
                        reap(&none_left);
                }
                if (stopping && none_left)
                        return 0;
                if (stopping && time(NULL) >= deadline) {
                        kill(-1, SIGKILL);
                        while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
                                ;
                        return 0;
                }
        }
}
