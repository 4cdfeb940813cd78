/* silo-init -- CMD [ARGS...]: the tiny init of `docker run --init` (the role
 * of tini/docker-init, which this host does not have).  silod bind-mounts it
 * read-only at /sbin/docker-init and prepends it to the command.
 *
 * As PID 1 it runs CMD as its child in a process group of its own (which
 * gets the terminal, if stdin is one), forwards every signal it receives to
 * CMD, reaps every process that gets re-parented to it, and exits with CMD's
 * status (128+N if CMD died of signal N) once CMD exits.  Static, libc only,
 * no allocation: it runs inside any image. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int usage(void)
{
        fprintf(stderr, "usage: silo-init -- COMMAND [ARG...]\n");
        return 2;
}

static void exec_child(char **argv, const sigset_t *old)
{
        setpgid(0, 0);
        /* SIGTTOU is still blocked here, so a background group may take the tty. */
        if (isatty(STDIN_FILENO))
                tcsetpgrp(STDIN_FILENO, getpgrp());
        sigprocmask(SIG_SETMASK, old, NULL);
        execvp(argv[0], argv);
        int e = errno;
        fprintf(stderr, "silo-init: exec %s: %s\n", argv[0], strerror(e));
        _exit(e == ENOENT ? 127 : 126);
}

int main(int argc, char **argv)
{
        int first = 1;
        if (argc > 1 && strcmp(argv[1], "--") == 0)
                first = 2;
        if (first >= argc)
                return usage();
        if (getpid() != 1)
                prctl(PR_SET_CHILD_SUBREAPER, 1);

        sigset_t all, old;
        sigfillset(&all);
        sigprocmask(SIG_BLOCK, &all, &old);
        pid_t child = fork();
        if (child < 0) {
                perror("silo-init: fork");
                return 126;
        }
        if (child == 0)
                exec_child(argv + first, &old);

        for (;;) {
                siginfo_t si;
                int sig = sigwaitinfo(&all, &si);
                if (sig < 0)
                        continue;       /* EINTR */
                if (sig != SIGCHLD) {
                        /* Job-control stops are meant for CMD, not for us. */
                        kill(child, sig);
                        continue;
                }
                for (;;) {
                        int status;
                        pid_t pid = waitpid(-1, &status, WNOHANG);
                        if (pid <= 0)
                                break;
                        if (pid != child)
                                continue;
                        if (WIFEXITED(status))
                                return WEXITSTATUS(status);
                        return 128 + WTERMSIG(status);
                }
        }
}
