/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * spawn_rusage: run ARGV once; print "<exit code> <wall ns> <max RSS KiB>".
 *
 * bench/runtime.py builds this (statically when possible) and times every
 * runtime through it.  A separate tiny program is needed because the kernel
 * folds the high-water RSS of the address space a process had before exec()
 * into its ru_maxrss: a child spawned straight from Python would report the
 * interpreter's ~20 MB for every runtime.  wait4() also folds in the peak of
 * every descendant the child reaped (runtime init, container process).
 *
 * The child's stdin and stdout are /dev/null; stderr is inherited.  The exit
 * code is 128+N when the child died from signal N.
 */

#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char *argv[])
{
        struct rusage ru;
        long long start, elapsed;
        int status, code, devnull;
        pid_t pid;

        if (argc < 2) {
                fprintf(stderr, "usage: %s PROGRAM [ARG...]\n", argv[0]);
                return 2;
        }

        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0) {
                perror("open /dev/null");
                return 2;
        }

        start = now_ns();
        pid = fork();
        if (pid < 0) {
                perror("fork");
                return 2;
        }
        if (pid == 0) {
                if (dup2(devnull, STDIN_FILENO) < 0 || dup2(devnull, STDOUT_FILENO) < 0)
                        _exit(127);
                execv(argv[1], argv + 1);
                perror(argv[1]);
                _exit(127);
        }
        if (wait4(pid, &status, 0, &ru) < 0) {
                perror("wait4");
                return 2;
        }
        elapsed = now_ns() - start;

        if (WIFEXITED(status))
                code = WEXITSTATUS(status);
        else if (WIFSIGNALED(status))
                code = 128 + WTERMSIG(status);
        else
                code = 255;
        printf("%d %lld %ld\n", code, elapsed, ru.ru_maxrss);
        return 0;
}
