/* The foreground side of `run` and `exec`: handing a pty master to a console
 * socket, being the terminal's other end when there is no socket (like runc),
 * and waiting for the process while forwarding signals to it. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

int silo_console_send(int sock, int master, silo_error *err)
{
        char name[64] = "/dev/ptmx";
        int ptn = 0;
        if (ioctl(master, TIOCGPTN, &ptn) == 0)
                snprintf(name, sizeof(name), "/dev/pts/%d", ptn);
        struct iovec iov = { name, strlen(name) };
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } control;
        memset(&control, 0, sizeof(control));
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &master, sizeof(int));
        if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0)
                return silo_error_set(err, errno, "send pty master to console socket");
        return 0;
}

int silo_console_receive(int conn, silo_error *err)
{
        char name[128];
        struct iovec iov = { name, sizeof(name) };
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } control;
        memset(&control, 0, sizeof(control));
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        if (recvmsg(conn, &mh, MSG_CMSG_CLOEXEC) < 0)
                return silo_error_set(err, errno, "receive pty master");
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int)))
                return silo_error_msg(err, EBADMSG, "console socket: no pty master in the message");
        int master;
        memcpy(&master, CMSG_DATA(cm), sizeof(int));
        return master;
}

void silo_forwarded_signals(sigset_t *set)
{
        static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
        sigemptyset(set);
        for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
                sigaddset(set, forwarded[i]);
        sigaddset(set, SIGCHLD);
}

int silo_wait_forwarding(pid_t pid, const sigset_t *forwarded)
{
        int status = 0;
        for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR)
                        return 255;
                siginfo_t si;
                struct timespec ts = { 0, 100 * 1000 * 1000 };
                int sig = sigtimedwait(forwarded, &si, &ts);
                if (sig > 0 && sig != SIGCHLD)
                        kill(pid, sig);
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
