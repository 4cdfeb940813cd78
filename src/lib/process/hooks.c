#include "process/hooks.h"

#include "process/creds.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"

#define HOOK_OUTPUT_MAX 2048

static long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int run_hook(const struct silo_hook *h, const char *name, size_t index, const char *state, silo_error *err)
{
        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) < 0)
                return silo_error_set(err, errno, "hook %s[%zu]: pipe", name, index);
        if (pipe2(out, O_CLOEXEC) < 0) {
                close(in[0]);
                close(in[1]);
                return silo_error_set(err, errno, "hook %s[%zu]: pipe", name, index);
        }
        _cleanup_close_ int in_w = in[1], out_r = out[0];

        pid_t pid = fork();
        if (pid < 0) {
                close(in[0]);
                close(out[1]);
                return silo_error_set(err, errno, "hook %s[%zu]: fork", name, index);
        }
        if (pid == 0) {
                /* Its own process group: a timeout kills whatever it started too. */
                setpgid(0, 0);
                silo_signals_reset();
                dup2(in[0], 0);
                dup2(out[1], 1);
                dup2(out[1], 2);
                static const char *const empty[] = { NULL };
                const char *const *argv = h->args && h->args[0] ? (const char *const *) h->args
                                                                : (const char *const[]) { h->path, NULL };
                execve(h->path, (char *const *) argv, (char *const *) (h->env ? (const char *const *) h->env : empty));
                dprintf(2, "exec %s: %s", h->path, strerror(errno));
                _exit(127);
        }
        _cleanup_pid_ pid_t child = pid;
        setpgid(pid, pid);      /* also here: no race with the child's own call */
        close(in[0]);
        close(out[1]);

        /* A hook may not read its stdin at all; the front ends ignore
         * SIGPIPE, so a short write just ends here. */
        size_t len = strlen(state);
        for (size_t off = 0; off < len;) {
                ssize_t n = write(in_w, state + off, len - off);
                if (n <= 0)
                        break;
                off += n;
        }
        close(TAKE_FD(in_w));

        char output[HOOK_OUTPUT_MAX + 1];
        size_t out_len = 0;
        long deadline = h->timeout.set ? now_ms() + h->timeout.value * 1000 : -1;
        bool timed_out = false, exited = false;
        /* Watch the hook itself, not just its output: a background child
         * it leaves behind may hold the pipe open forever. */
        _cleanup_close_ int pidfd = (int) syscall(SYS_pidfd_open, child, 0);
        while (!exited) {
                int wait_ms = deadline < 0 ? -1 : (int) (deadline - now_ms());
                if (deadline >= 0 && wait_ms <= 0) {
                        timed_out = true;
                        break;
                }
                struct pollfd pfd[2] = { { out_r, POLLIN, 0 }, { pidfd, POLLIN, 0 } };
                int pr = poll(pfd, 2, wait_ms);
                if (pr < 0 && errno == EINTR)
                        continue;
                if (pr < 0)
                        return silo_error_set(err, errno, "hook %s[%zu]: poll", name, index);
                if (pr == 0) {
                        timed_out = true;
                        break;
                }
                exited = pfd[1].revents & POLLIN;
                if (exited)
                        fcntl(out_r, F_SETFL, O_NONBLOCK);      /* drain what is there, then stop */
                for (;;) {
                        char buf[512];
                        ssize_t n = read(out_r, buf, sizeof(buf));
                        if (n <= 0)
                                break;
                        size_t keep = (size_t) n < HOOK_OUTPUT_MAX - out_len ? (size_t) n : HOOK_OUTPUT_MAX - out_len;
                        memcpy(output + out_len, buf, keep);
                        out_len += keep;
                        if (!exited)
                                break;
                }
        }
        output[out_len] = '\0';
        while (out_len && (output[out_len - 1] == '\n' || output[out_len - 1] == ' '))
                output[--out_len] = '\0';

        if (timed_out) {
                kill(-child, SIGKILL);
                waitpid(child, NULL, 0);
                child = 0;
                return silo_error_msg(err, ETIMEDOUT, "hook %s[%zu] (%s) timed out after %llds", name, index, h->path,
                                      (long long) h->timeout.value);
        }
        int status = 0;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
                ;
        child = 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (WIFEXITED(status))
                return silo_error_msg(err, EIO, "hook %s[%zu] (%s) exited with status %d%s%s", name, index, h->path,
                                      WEXITSTATUS(status), out_len ? ": " : "", output);
        return silo_error_msg(err, EIO, "hook %s[%zu] (%s) killed by signal %d", name, index, h->path, WTERMSIG(status));
}

int silo_hooks_run(const struct silo_spec *spec, enum silo_hook_kind kind, const char *state_json, silo_error *err)
{
        bool keep_going = kind == SILO_HOOK_POSTSTART || kind == SILO_HOOK_POSTSTOP;
        int first = 0;
        for (size_t i = 0; i < spec->hooks.n[kind]; i++) {
                silo_error e = SILO_ERROR_INIT;
                int r = run_hook(&spec->hooks.list[kind][i], silo_hook_kind_name(kind), i, state_json, &e);
                if (r < 0 && first == 0) {
                        first = r;
                        if (err)
                                *err = e;
                }
                if (r < 0 && !keep_going)
                        return r;
        }
        return first;
}
