/* `run` and `exec` in the foreground with a terminal and no console socket:
 * we are the terminal's other end, like runc. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "process/internal.h"
#include "util/cleanup.h"

static void copy_size(int from, int to)
{
        struct winsize ws;
        if (ioctl(from, TIOCGWINSZ, &ws) == 0)
                ioctl(to, TIOCSWINSZ, &ws);
}

static int pump(int from, int to)
{
        char buf[8192];
        ssize_t n = read(from, buf, sizeof(buf));
        if (n <= 0)
                return n == 0 || errno == EIO ? -EPIPE : (errno == EINTR || errno == EAGAIN ? 0 : -errno);
        for (ssize_t off = 0; off < n;) {
                ssize_t w = write(to, buf + off, n - off);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                off += w;
        }
        return 0;
}

int silo_console_proxy(int master, pid_t pid, int pidfd, silo_error *err)
{
        (void) pid;
        struct termios saved;
        bool raw = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
        if (raw) {
                struct termios t = saved;
                /* Fully raw: the container's pty already did the line discipline. */
                cfmakeraw(&t);
                tcsetattr(STDIN_FILENO, TCSANOW, &t);
                copy_size(STDIN_FILENO, master);
        }
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGWINCH);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        _cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

        bool stdin_open = true;
        int r = 0;
        for (;;) {
                struct pollfd fds[4] = {
                        { master, POLLIN, 0 },
                        { stdin_open ? STDIN_FILENO : -1, POLLIN, 0 },
                        { sfd, POLLIN, 0 },
                        { pidfd, 0, 0 },
                };
                if (poll(fds, 4, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = silo_error_set(err, errno, "poll");
                        break;
                }
                if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                        /* Drain before looking at HUP: the last output may be pending. */
                        if (pump(master, STDOUT_FILENO) < 0)
                                break;
                        continue;
                }
                if (fds[1].revents & (POLLIN | POLLHUP)) {
                        if (pump(STDIN_FILENO, master) < 0) {
                                /* End of our input: send EOF (^D) to the terminal. */
                                stdin_open = false;
                                char eof = 4;
                                (void) !write(master, &eof, 1);
                        }
                }
                if (fds[2].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof(si)) == sizeof(si))
                                ;
                        copy_size(STDIN_FILENO, master);
                }
        }
        if (raw)
                tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        return r;
}
