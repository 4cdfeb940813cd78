#include "process/creds.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "process/caps.h"
#include "process/sync.h"
#include "util/cleanup.h"
#include "util/fs.h"

bool silo_have_cap(int cap)
{
        struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct d[2] = { 0 };
        if (syscall(SYS_capget, &h, d) < 0)
                return false;
        return d[cap / 32].effective & (1u << (cap % 32));
}

static void fmt_limit(char buf[32], uint64_t v)
{
        if (v == RLIM_INFINITY)
                snprintf(buf, 32, "unlimited");
        else
                snprintf(buf, 32, "%llu", (unsigned long long) v);
}

int silo_rlimits_check(const struct silo_process *p, silo_error *err)
{
        bool can_raise = silo_have_cap(CAP_SYS_RESOURCE);
        for (size_t i = 0; i < p->n_rlimits; i++) {
                const struct silo_rlimit *rl = &p->rlimits[i];
                struct rlimit cur;
                if (getrlimit(rl->resource, &cur) < 0)
                        return silo_error_set(err, errno, "process.rlimits[%zu]: getrlimit %s", i, rl->name);
                if (rl->hard > cur.rlim_max && !can_raise) {
                        char want[32], have[32];
                        fmt_limit(want, rl->hard);
                        fmt_limit(have, cur.rlim_max);
                        return silo_error_msg(err, EPERM,
                                              "process.rlimits[%zu]: %s hard limit %s is above the current hard limit %s, "
                                              "and raising it needs CAP_SYS_RESOURCE, which this runtime does not have",
                                              i, rl->name, want, have);
                }
        }
        return 0;
}

int silo_rlimits_apply(const struct silo_process *p, silo_error *err)
{
        for (size_t i = 0; i < p->n_rlimits; i++) {
                const struct silo_rlimit *rl = &p->rlimits[i];
                struct rlimit v = { rl->soft, rl->hard };
                if (setrlimit(rl->resource, &v) < 0)
                        return silo_error_set(err, errno, "process.rlimits[%zu]: set %s", i, rl->name);
        }
        return 0;
}

int silo_oom_score_adj_apply(const struct silo_process *p, silo_error *err)
{
        if (!p->oom_score_adj.set)
                return 0;
        char v[32];
        snprintf(v, sizeof(v), "%lld", (long long) p->oom_score_adj.value);
        int r = silo_write_string_at(AT_FDCWD, "/proc/self/oom_score_adj", v, err);
        if (r == -EACCES || r == -EPERM)
                return silo_error_msg(err, -r, "process.oomScoreAdj: lowering the OOM score to %s needs CAP_SYS_RESOURCE", v);
        return r < 0 ? silo_error_prefix(err, "process.oomScoreAdj") : 0;
}

static const char *env_get(const char **env, const char *name)
{
        size_t n = strlen(name);
        for (const char **e = env; e && *e; e++)
                if (!strncmp(*e, name, n) && (*e)[n] == '=')
                        return *e + n + 1;
        return NULL;
}

static bool is_executable(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) && access(path, X_OK) == 0;
}

int silo_find_executable(const struct silo_process *p, char *ret_path, size_t size, silo_error *err)
{
        if (!p->args || !p->args[0] || !p->args[0][0])
                return silo_error_msg(err, EINVAL, "process.args: must name at least the program to run");
        const char *arg0 = p->args[0];
        if (strchr(arg0, '/')) {
                struct stat st;
                if (stat(arg0, &st) < 0)
                        return silo_error_set(err, errno, "exec: \"%s\"", arg0);
                if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111))
                        return silo_error_msg(err, EACCES, "exec: \"%s\": permission denied", arg0);
                snprintf(ret_path, size, "%s", arg0);
                return 0;
        }
        const char *path = env_get(p->env, "PATH");
        if (!path)
                path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        for (const char *dir = path; ; ) {
                const char *end = strchrnul(dir, ':');
                int len = (int) (end - dir);
                if (snprintf(ret_path, size, "%.*s%s%s", len, len ? dir : ".", "/", arg0) < (int) size &&
                    is_executable(ret_path))
                        return 0;
                if (!*end)
                        break;
                dir = end + 1;
        }
        return silo_error_msg(err, ENOENT, "exec: \"%s\": executable file not found in $PATH", arg0);
}

static int load_seccomp(silo_seccomp *seccomp, int notify_sock, silo_error *err)
{
        int fd = -1;
        int r = silo_seccomp_load(seccomp, &fd, err);
        if (r < 0 || fd < 0)
                return r;
        r = silo_sync_send(notify_sock, SILO_SYNC_FD, 0, NULL, 0, fd);
        close(fd);
        if (r < 0)
                return silo_error_set(err, -r, "hand over the seccomp listener fd");
        return 0;
}

int silo_process_finalize(const struct silo_process *p, silo_seccomp *seccomp, int notify_sock, silo_error *err)
{
        int r;

        /* Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which
         * the uid change below drops: load it now.  With no_new_privs, load
         * it as the very last step so it constrains only the container. */
        if (seccomp && !p->no_new_privileges) {
                r = load_seccomp(seccomp, notify_sock, err);
                if (r < 0)
                        return r;
        }

        /* No capabilities object means none at all, bounding set included:
         * a root process would otherwise regain the bounding set on exec. */
        const struct silo_caps none = { .set = true };
        const struct silo_caps *caps = p->caps.set ? &p->caps : &none;
        r = silo_caps_apply_bounding(caps, err);
        if (r < 0)
                return r;

        gid_t *groups = NULL;
        if (p->user.n_additional_gids)
                groups = (gid_t *) p->user.additional_gids;
        if (setgroups(p->user.n_additional_gids, groups) < 0 && !(errno == EPERM && !p->user.n_additional_gids))
                return silo_error_set(err, errno, "process.user.additionalGids: setgroups");

        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
                return silo_error_set(err, errno, "prctl(PR_SET_KEEPCAPS)");
        if (setresgid(p->user.gid, p->user.gid, p->user.gid) < 0)
                return silo_error_set(err, errno, "process.user.gid: setresgid(%u)", p->user.gid);
        if (setresuid(p->user.uid, p->user.uid, p->user.uid) < 0)
                return silo_error_set(err, errno, "process.user.uid: setresuid(%u)", p->user.uid);
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);

        r = silo_caps_apply(caps, err);
        if (r < 0)
                return r;

        umask(p->user.umask.set ? (mode_t) p->user.umask.value : 0022);

        if (chdir(p->cwd) < 0)
                return silo_error_set(err, errno, "process.cwd: chdir to %s", p->cwd);

        if (p->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return silo_error_set(err, errno, "process.noNewPrivileges");

        if (seccomp && p->no_new_privileges) {
                r = load_seccomp(seccomp, notify_sock, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int silo_process_default_home(struct silo_process *p, silo_error *err)
{
        if (env_get(p->env, "HOME"))
                return 0;
        const char *home = "/";
        _cleanup_free_ char *passwd = NULL;
        /* Bounded read of a file inside the (hostile) rootfs; we are chrooted into it. */
        if (silo_read_file_at(AT_FDCWD, "/etc/passwd", 4u << 20, &passwd, NULL, NULL) == 0) {
                for (char *save = NULL, *line = strtok_r(passwd, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                        /* name:pw:uid:gid:gecos:home:shell */
                        char *f[7] = { 0 };
                        int n = 0;
                        for (char *c = line; n < 7; n++) {
                                f[n] = c;
                                c = strchr(c, ':');
                                if (!c)
                                        break;
                                *c++ = '\0';
                        }
                        if (n >= 5 && f[2] && f[5] && *f[5] && strtoul(f[2], NULL, 10) == p->user.uid) {
                                home = f[5];
                                break;
                        }
                }
        }
        size_t count = 0;
        while (p->env && p->env[count])
                count++;
        const char **env = reallocarray(p->env, count + 2, sizeof(char *));
        if (!env)
                return silo_error_set(err, ENOMEM, "process.env");
        p->env = env;
        char *entry = NULL;
        if (asprintf(&entry, "HOME=%s", home) < 0)
                return silo_error_set(err, ENOMEM, "process.env");
        env[count] = entry;     /* lives until execve */
        env[count + 1] = NULL;
        return 0;
}

void silo_signals_reset(void)
{
        for (int sig = 1; sig < NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        signal(sig, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
}
