/* SPDX-License-Identifier: Apache-2.0 */
/*
 * silo-test-helper: a tiny static program copied into test container rootfs images. Each subcommand
 * prints one line of JSON describing what the process sees from inside the container, so the
 * integration tests can assert on namespaces, credentials, mounts and so on without a shell.
 *
 * Before doing anything else it checks its own open file descriptors: anything beyond 0, 1, 2 that
 * the test did not announce (SILO_HELPER_ALLOW_FDS="3,4" or "all", or LISTEN_FDS=N) was leaked by
 * whoever started it. That is reported on stderr and the helper exits with HELPER_EXIT_LEAK, so every
 * test that runs the helper is also an fd-leak test.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define HELPER_EXIT_USAGE 96
#define HELPER_EXIT_LEAK 97
#define MAX_FDS 4096
#define MAX_LINE 8192

/* ---- minimal JSON writer on stdout ---- */

static int json_depth;
static bool json_first[64] = { true };
static bool json_after_key;

static void json_sep(void)
{
        if (json_after_key) {
                json_after_key = false;
                return;
        }
        if (!json_first[json_depth])
                putchar(',');
        json_first[json_depth] = false;
}

static void json_raw_string(const char *s)
{
        putchar('"');
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                switch (*p) {
                case '"':
                        fputs("\\\"", stdout);
                        break;
                case '\\':
                        fputs("\\\\", stdout);
                        break;
                case '\n':
                        fputs("\\n", stdout);
                        break;
                case '\t':
                        fputs("\\t", stdout);
                        break;
                case '\r':
                        fputs("\\r", stdout);
                        break;
                default:
                        /* Bytes >= 0x80 pass through: the tests decode output as UTF-8. */
                        if (*p < 0x20 || *p == 0x7f)
                                printf("\\u%04x", *p);
                        else
                                putchar(*p);
                }
        }
        putchar('"');
}

static void json_open(char c)
{
        json_sep();
        putchar(c);
        if (json_depth < 63)
                json_depth++;
        json_first[json_depth] = true;
}

static void json_close(char c)
{
        putchar(c);
        if (json_depth > 0)
                json_depth--;
        if (json_depth == 0)
                putchar('\n');
}

static void obj_begin(void) { json_open('{'); }
static void obj_end(void) { json_close('}'); }
static void arr_begin(void) { json_open('['); }
static void arr_end(void) { json_close(']'); }

static void key(const char *k)
{
        json_sep();
        json_raw_string(k);
        putchar(':');
        json_after_key = true;
}

static void val_str(const char *s)
{
        json_sep();
        if (s)
                json_raw_string(s);
        else
                fputs("null", stdout);
}

static void val_int(long long v)
{
        json_sep();
        printf("%lld", v);
}

static void val_uint(unsigned long long v)
{
        json_sep();
        printf("%llu", v);
}

static void val_bool(bool v)
{
        json_sep();
        fputs(v ? "true" : "false", stdout);
}

static void kv_str(const char *k, const char *v) { key(k); val_str(v); }
static void kv_int(const char *k, long long v) { key(k); val_int(v); }
static void kv_uint(const char *k, unsigned long long v) { key(k); val_uint(v); }
static void kv_bool(const char *k, bool v) { key(k); val_bool(v); }

static const char *errname(int e)
{
        const char *n = e ? strerrorname_np(e) : NULL;
        return n ? n : (e ? "EUNKNOWN" : "");
}

/* {"ok":..., "errno":N, "error":"ENAME"} members for a result. */
static void kv_result(int ret, int err)
{
        kv_bool("ok", ret >= 0);
        kv_int("ret", ret);
        kv_int("errno", ret >= 0 ? 0 : err);
        kv_str("error", ret >= 0 ? "" : errname(err));
}

/* ---- small utilities ---- */

static void usage(void)
{
        fputs("usage: silo-test-helper SUBCOMMAND [ARGS...]\n"
              "  info caps ids rlimits fds seccomp mounts hostname env cwd cgroup ns pid tty net time\n"
              "  oom-score-adj argv [ARGS] sysctl NAME stat PATH read PATH ls PATH write PATH [DATA]\n"
              "  open PATH [r|w|rw] sleep [SECS] exit N tick PATH trap FILE fork N\n"
              "  syscall-test NAME [ARGS] try-exe-write exe-watch SECS\n",
              stderr);
        exit(HELPER_EXIT_USAGE);
}

static char *read_file(const char *path, size_t max, int *ret_errno)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                if (ret_errno)
                        *ret_errno = errno;
                return NULL;
        }
        char *buf = malloc(max + 1);
        if (!buf)
                abort();
        size_t n = 0;
        while (n < max) {
                ssize_t r = read(fd, buf + n, max - n);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        if (ret_errno)
                                *ret_errno = errno;
                        close(fd);
                        free(buf);
                        return NULL;
                }
                if (r == 0)
                        break;
                n += (size_t) r;
        }
        buf[n] = '\0';
        close(fd);
        if (ret_errno)
                *ret_errno = 0;
        return buf;
}

static char *status_field(const char *name)
{
        static char value[256];
        char *status = read_file("/proc/self/status", 65536, NULL);
        if (!status)
                return NULL;
        size_t len = strlen(name);
        char *ret = NULL;
        for (char *line = strtok(status, "\n"); line; line = strtok(NULL, "\n")) {
                if (strncmp(line, name, len) == 0 && line[len] == ':') {
                        const char *v = line + len + 1;
                        while (*v == ' ' || *v == '\t')
                                v++;
                        snprintf(value, sizeof(value), "%s", v);
                        ret = value;
                        break;
                }
        }
        free(status);
        return ret;
}

static void kv_readlink(const char *k, const char *path)
{
        char buf[PATH_MAX];
        ssize_t n = readlink(path, buf, sizeof(buf) - 1);
        if (n < 0) {
                kv_str(k, NULL);
                return;
        }
        buf[n] = '\0';
        kv_str(k, buf);
}

/* ---- fd leak check, run before anything else ---- */

static bool fd_allowed(int fd)
{
        if (fd <= 2)
                return true;
        const char *listen = getenv("LISTEN_FDS");
        if (listen) {
                long n = strtol(listen, NULL, 10);
                if (n > 0 && n < MAX_FDS && fd < 3 + n)
                        return true;
        }
        const char *allow = getenv("SILO_HELPER_ALLOW_FDS");
        if (!allow)
                return false;
        if (strcmp(allow, "all") == 0)
                return true;
        char copy[512];
        snprintf(copy, sizeof(copy), "%s", allow);
        for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ","))
                if (atoi(tok) == fd)
                        return true;
        return false;
}

static void check_fd_leaks(void)
{
        DIR *d = opendir("/proc/self/fd");
        if (!d)
                return; /* no /proc: nothing we can check */
        int self = dirfd(d), leaks = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                int fd = atoi(de->d_name);
                if (fd == self || fd_allowed(fd))
                        continue;
                char link[64], target[PATH_MAX] = "?";
                snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
                ssize_t n = readlink(link, target, sizeof(target) - 1);
                if (n >= 0)
                        target[n] = '\0';
                fprintf(stderr, "silo-test-helper: LEAKED-FD fd=%d target=%s\n", fd, target);
                leaks++;
        }
        closedir(d);
        if (leaks > 0)
                exit(HELPER_EXIT_LEAK);
}

/* ---- subcommands ---- */

static void emit_caps(void)
{
        static const char *const names[][2] = {
                { "CapInh", "inh" }, { "CapPrm", "prm" }, { "CapEff", "eff" },
                { "CapBnd", "bnd" }, { "CapAmb", "amb" },
        };
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                const char *v = status_field(names[i][0]);
                kv_str(names[i][1], v);
        }
}

static void emit_ids(void)
{
        uid_t ruid, euid, suid;
        gid_t rgid, egid, sgid;
        getresuid(&ruid, &euid, &suid);
        getresgid(&rgid, &egid, &sgid);
        kv_uint("uid", ruid);
        kv_uint("euid", euid);
        kv_uint("suid", suid);
        kv_uint("gid", rgid);
        kv_uint("egid", egid);
        kv_uint("sgid", sgid);
        gid_t groups[NGROUPS_MAX];
        int n = getgroups(NGROUPS_MAX, groups);
        key("groups");
        arr_begin();
        for (int i = 0; i < n; i++)
                val_uint(groups[i]);
        arr_end();
        const char *um = status_field("Umask");
        kv_int("umask", um ? strtol(um, NULL, 8) : -1);
}

static void emit_seccomp(void)
{
        const char *v = status_field("Seccomp");
        kv_int("seccomp", v ? atoi(v) : -1);
        v = status_field("Seccomp_filters");
        kv_int("filters", v ? atoi(v) : -1);
        v = status_field("NoNewPrivs");
        kv_int("no_new_privs", v ? atoi(v) : -1);
        kv_int("prctl_no_new_privs", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
        kv_int("dumpable", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
}

static void emit_hostname(void)
{
        struct utsname u;
        uname(&u);
        kv_str("hostname", u.nodename);
        kv_str("domainname", u.domainname);
}

static void emit_cwd(void)
{
        char buf[PATH_MAX];
        kv_str("cwd", getcwd(buf, sizeof(buf)));
}

static void emit_oom(void)
{
        char *v = read_file("/proc/self/oom_score_adj", 64, NULL);
        kv_int("oom_score_adj", v ? atoi(v) : -100000);
        free(v);
}

static void emit_pid(void)
{
        kv_int("pid", getpid());
        kv_int("ppid", getppid());
        kv_int("pgid", getpgrp());
        kv_int("sid", getsid(0));
}

static void emit_ns(void)
{
        DIR *d = opendir("/proc/self/ns");
        if (!d)
                return;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char path[PATH_MAX];
                snprintf(path, sizeof(path), "/proc/self/ns/%s", de->d_name);
                kv_readlink(de->d_name, path);
        }
        closedir(d);
}

extern char **environ;

static void emit_env(void)
{
        arr_begin();
        for (char **e = environ; e && *e; e++)
                val_str(*e);
        arr_end();
}

static void emit_rlimits(void)
{
        static const struct { const char *name; int res; } limits[] = {
                { "RLIMIT_AS", RLIMIT_AS }, { "RLIMIT_CORE", RLIMIT_CORE },
                { "RLIMIT_CPU", RLIMIT_CPU }, { "RLIMIT_DATA", RLIMIT_DATA },
                { "RLIMIT_FSIZE", RLIMIT_FSIZE }, { "RLIMIT_LOCKS", RLIMIT_LOCKS },
                { "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK }, { "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
                { "RLIMIT_NICE", RLIMIT_NICE }, { "RLIMIT_NOFILE", RLIMIT_NOFILE },
                { "RLIMIT_NPROC", RLIMIT_NPROC }, { "RLIMIT_RSS", RLIMIT_RSS },
                { "RLIMIT_RTPRIO", RLIMIT_RTPRIO }, { "RLIMIT_RTTIME", RLIMIT_RTTIME },
                { "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING }, { "RLIMIT_STACK", RLIMIT_STACK },
        };
        for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
                struct rlimit rl;
                if (getrlimit(limits[i].res, &rl) < 0)
                        continue;
                key(limits[i].name);
                obj_begin();
                kv_uint("soft", rl.rlim_cur);
                kv_uint("hard", rl.rlim_max);
                obj_end();
        }
}

static void emit_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        arr_begin();
        if (d) {
                int self = dirfd(d);
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (de->d_name[0] == '.')
                                continue;
                        int fd = atoi(de->d_name);
                        if (fd == self)
                                continue;
                        char path[64];
                        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                        obj_begin();
                        kv_int("fd", fd);
                        kv_readlink("target", path);
                        int fl = fcntl(fd, F_GETFD);
                        kv_bool("cloexec", fl >= 0 && (fl & FD_CLOEXEC));
                        obj_end();
                }
                closedir(d);
        }
        arr_end();
}

/* Decode the \ooo escapes mountinfo uses for spaces and such. */
static void unescape_octal(char *s)
{
        char *w = s;
        for (char *r = s; *r; ) {
                if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' &&
                    r[3] >= '0' && r[3] <= '7') {
                        *w++ = (char) (((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
                        r += 4;
                } else {
                        *w++ = *r++;
                }
        }
        *w = '\0';
}

static void emit_mounts(void)
{
        FILE *f = fopen("/proc/self/mountinfo", "re");
        arr_begin();
        if (!f) {
                arr_end();
                return;
        }
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
                line[strcspn(line, "\n")] = '\0';
                char *fields[64];
                int n = 0;
                for (char *tok = strtok(line, " "); tok && n < 64; tok = strtok(NULL, " "))
                        fields[n++] = tok;
                int sep = -1;
                for (int i = 6; i < n; i++)
                        if (strcmp(fields[i], "-") == 0) {
                                sep = i;
                                break;
                        }
                if (n < 10 || sep < 0 || sep + 3 >= n + 1)
                        continue;
                obj_begin();
                kv_int("id", atoi(fields[0]));
                kv_int("parent", atoi(fields[1]));
                kv_str("dev", fields[2]);
                unescape_octal(fields[3]);
                kv_str("root", fields[3]);
                unescape_octal(fields[4]);
                kv_str("mount_point", fields[4]);
                kv_str("options", fields[5]);
                key("optional");
                arr_begin();
                for (int i = 6; i < sep; i++)
                        val_str(fields[i]);
                arr_end();
                kv_str("fstype", sep + 1 < n ? fields[sep + 1] : "");
                if (sep + 2 < n)
                        unescape_octal(fields[sep + 2]);
                kv_str("source", sep + 2 < n ? fields[sep + 2] : "");
                kv_str("super_options", sep + 3 < n ? fields[sep + 3] : "");
                obj_end();
        }
        free(line);
        fclose(f);
        arr_end();
}

static void emit_cgroup(void)
{
        char *data = read_file("/proc/self/cgroup", 65536, NULL);
        arr_begin();
        if (data) {
                for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
                        char *c1 = strchr(line, ':');
                        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                        if (!c2)
                                continue;
                        *c1 = *c2 = '\0';
                        obj_begin();
                        kv_int("id", atoi(line));
                        kv_str("controllers", c1 + 1);
                        kv_str("path", c2 + 1);
                        obj_end();
                }
                free(data);
        }
        arr_end();
}

static void emit_tty(void)
{
        key("isatty");
        arr_begin();
        for (int fd = 0; fd < 3; fd++)
                val_bool(isatty(fd));
        arr_end();
        char name[PATH_MAX];
        kv_str("ttyname", ttyname_r(0, name, sizeof(name)) == 0 ? name : NULL);
        struct winsize ws = { 0 };
        int r = ioctl(0, TIOCGWINSZ, &ws);
        kv_int("rows", r == 0 ? ws.ws_row : -1);
        kv_int("cols", r == 0 ? ws.ws_col : -1);
        int ctty = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
        kv_bool("has_ctty", ctty >= 0);
        if (ctty >= 0)
                close(ctty);
        kv_int("tcgetpgrp", tcgetpgrp(0));
        kv_int("pgid", getpgrp());
        struct stat st;
        if (isatty(0) && fstat(0, &st) == 0) {
                kv_uint("tty_uid", st.st_uid);
                kv_uint("tty_gid", st.st_gid);
                kv_int("tty_mode", st.st_mode & 07777);
        }
}

static void emit_net(void)
{
        DIR *d = opendir("/sys/class/net");
        arr_begin();
        if (d) {
                struct dirent *de;
                while ((de = readdir(d)))
                        if (de->d_name[0] != '.')
                                val_str(de->d_name);
                closedir(d);
        }
        arr_end();
}

static double clock_secs(clockid_t id)
{
        struct timespec ts;
        clock_gettime(id, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void emit_time(void)
{
        key("monotonic");
        json_sep();
        printf("%.3f", clock_secs(CLOCK_MONOTONIC));
        key("boottime");
        json_sep();
        printf("%.3f", clock_secs(CLOCK_BOOTTIME));
}

static int cmd_stat(const char *path)
{
        struct stat st;
        obj_begin();
        kv_str("path", path);
        if (lstat(path, &st) < 0) {
                int e = errno;
                kv_bool("exists", false);
                kv_int("errno", e);
                kv_str("error", errname(e));
                obj_end();
                return 0;
        }
        const char *type = S_ISREG(st.st_mode) ? "reg" : S_ISDIR(st.st_mode) ? "dir" :
                           S_ISLNK(st.st_mode) ? "lnk" : S_ISCHR(st.st_mode) ? "chr" :
                           S_ISBLK(st.st_mode) ? "blk" : S_ISFIFO(st.st_mode) ? "fifo" : "sock";
        kv_bool("exists", true);
        kv_str("type", type);
        kv_int("mode", st.st_mode & 07777);
        kv_uint("uid", st.st_uid);
        kv_uint("gid", st.st_gid);
        kv_uint("size", (unsigned long long) st.st_size);
        kv_uint("ino", st.st_ino);
        kv_uint("dev_major", major(st.st_dev));
        kv_uint("dev_minor", minor(st.st_dev));
        kv_uint("rdev_major", major(st.st_rdev));
        kv_uint("rdev_minor", minor(st.st_rdev));
        if (S_ISLNK(st.st_mode))
                kv_readlink("link", path);
        obj_end();
        return 0;
}

static int cmd_read(const char *path)
{
        int e;
        char *data = read_file(path, 1 << 20, &e);
        obj_begin();
        kv_str("path", path);
        kv_bool("ok", data != NULL);
        kv_int("errno", data ? 0 : e);
        kv_str("error", data ? "" : errname(e));
        kv_str("data", data);
        obj_end();
        free(data);
        return 0;
}

static int cmd_ls(const char *path)
{
        DIR *d = opendir(path);
        obj_begin();
        kv_str("path", path);
        kv_bool("ok", d != NULL);
        kv_str("error", d ? "" : errname(errno));
        key("entries");
        arr_begin();
        if (d) {
                struct dirent *de;
                while ((de = readdir(d)))
                        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                                val_str(de->d_name);
                closedir(d);
        }
        arr_end();
        obj_end();
        return 0;
}

static int cmd_write(const char *path, const char *data)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int e = errno;
        obj_begin();
        kv_str("path", path);
        if (fd < 0) {
                kv_result(-1, e);
        } else {
                size_t len = strlen(data);
                ssize_t n = write(fd, data, len);
                e = errno;
                close(fd);
                kv_result(n == (ssize_t) len ? 0 : -1, n < 0 ? e : EIO);
        }
        obj_end();
        return 0;
}

static int cmd_open(const char *path, const char *mode)
{
        int flags = strcmp(mode, "w") == 0 ? O_WRONLY : strcmp(mode, "rw") == 0 ? O_RDWR : O_RDONLY;
        int fd = open(path, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        int e = errno;
        obj_begin();
        kv_str("path", path);
        kv_str("mode", mode);
        kv_result(fd < 0 ? -1 : 0, e);
        obj_end();
        if (fd >= 0)
                close(fd);
        return 0;
}

static int cmd_sysctl(const char *name)
{
        char path[PATH_MAX] = "/proc/sys/";
        size_t off = strlen(path);
        for (const char *p = name; *p && off < sizeof(path) - 1; p++)
                path[off++] = *p == '.' ? '/' : *p;
        path[off] = '\0';
        int e;
        char *data = read_file(path, 65536, &e);
        if (data)
                data[strcspn(data, "\n")] = '\0';
        obj_begin();
        kv_str("name", name);
        kv_bool("ok", data != NULL);
        kv_str("error", data ? "" : errname(e));
        kv_str("value", data);
        obj_end();
        free(data);
        return 0;
}

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
        got_signal = sig;
}

/* Signals that say nothing about the test: runc forwards Go's preemption signal (SIGURG) to the
 * container, terminals send SIGWINCH, children SIGCHLD. */
static bool signal_is_noise(int sig)
{
        return sig == SIGKILL || sig == SIGSTOP || sig == SIGCHLD || sig == SIGURG ||
               sig == SIGWINCH || sig == SIGCONT;
}

/* pid 1 of a pid namespace only receives signals it has a handler for. */
static void install_handlers(void (*fn)(int))
{
        struct sigaction sa = { .sa_handler = fn };
        sigemptyset(&sa.sa_mask);
        for (int sig = 1; sig < 32; sig++)
                if (!signal_is_noise(sig))
                        sigaction(sig, &sa, NULL);
}

static int cmd_sleep(const char *arg)
{
        double secs = arg ? atof(arg) : -1;
        install_handlers(on_signal);
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        while (!got_signal) {
                if (secs >= 0 && clock_secs(CLOCK_MONOTONIC) -
                                 ((double) start.tv_sec + (double) start.tv_nsec / 1e9) >= secs)
                        return 0;
                usleep(20000);
        }
        /* Behave like the default action would for a normal process, as far as we can. */
        return 128 + got_signal;
}

static int cmd_tick(const char *path)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
                perror(path);
                return 1;
        }
        install_handlers(on_signal);
        for (unsigned long long i = 0; !got_signal; i++) {
                char buf[32];
                int n = snprintf(buf, sizeof(buf), "%llu\n", i);
                if (pwrite(fd, buf, (size_t) n, 0) < 0)
                        break;
                usleep(10000);
        }
        close(fd);
        return 128 + got_signal;
}

static int cmd_trap(const char *file)
{
        sigset_t set;
        sigemptyset(&set);
        for (int sig = 1; sig < 32; sig++)
                if (!signal_is_noise(sig))
                        sigaddset(&set, sig);
        install_handlers(on_signal);
        sigprocmask(SIG_BLOCK, &set, NULL);
        int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
                if (write(fd, "ready\n", 6) < 0)
                        perror(file);
                close(fd);
        }
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) {
                char buf[32];
                int n = snprintf(buf, sizeof(buf), "%d\n", sig);
                if (write(fd, buf, (size_t) n) < 0)
                        perror(file);
                close(fd);
        }
        obj_begin();
        kv_int("signal", sig);
        obj_end();
        return 0;
}

static int cmd_fork(const char *arg)
{
        int want = atoi(arg), got = 0, err = 0;
        pid_t pids[4096];
        if (want > 4096)
                want = 4096;
        for (int i = 0; i < want; i++) {
                pid_t p = fork();
                if (p < 0) {
                        err = errno;
                        break;
                }
                if (p == 0) {
                        pause();
                        _exit(0);
                }
                pids[got++] = p;
        }
        for (int i = 0; i < got; i++)
                kill(pids[i], SIGKILL);
        for (int i = 0; i < got; i++)
                waitpid(pids[i], NULL, 0);
        obj_begin();
        kv_int("requested", want);
        kv_int("forked", got);
        kv_int("errno", err);
        kv_str("error", errname(err));
        obj_end();
        return 0;
}

static int cmd_syscall(int argc, char **argv)
{
        if (argc < 1)
                usage();
        const char *name = argv[0];
        const char *a1 = argc > 1 ? argv[1] : NULL;
        const char *a2 = argc > 2 ? argv[2] : NULL;
        long r;
        char buf[PATH_MAX];

        errno = 0;
        if (strcmp(name, "mkdir") == 0)
                r = syscall(SYS_mkdir, a1 ? a1 : "/tmp/silo-mkdir-test",
                            a2 ? strtol(a2, NULL, 8) : 0755);
        else if (strcmp(name, "mkdirat") == 0)
                r = syscall(SYS_mkdirat, AT_FDCWD, a1 ? a1 : "/tmp/silo-mkdir-test",
                            a2 ? strtol(a2, NULL, 8) : 0755);
        else if (strcmp(name, "getcwd") == 0)
                r = syscall(SYS_getcwd, buf, sizeof(buf));
        else if (strcmp(name, "chdir") == 0)
                r = syscall(SYS_chdir, a1 ? a1 : "/");
        else if (strcmp(name, "getpid") == 0)
                r = syscall(SYS_getpid);
        else if (strcmp(name, "uname") == 0) {
                struct utsname u;
                r = syscall(SYS_uname, &u);
        } else if (strcmp(name, "unshare") == 0)
                r = syscall(SYS_unshare, a1 ? strtol(a1, NULL, 0) : CLONE_NEWUTS);
        else if (strcmp(name, "mount") == 0)
                r = syscall(SYS_mount, "none", a1 ? a1 : "/tmp", "tmpfs", 0UL, NULL);
        else if (strcmp(name, "umount") == 0)
                r = syscall(SYS_umount2, a1 ? a1 : "/proc", MNT_DETACH);
        else if (strcmp(name, "chroot") == 0)
                r = syscall(SYS_chroot, a1 ? a1 : "/");
        else if (strcmp(name, "sethostname") == 0)
                r = syscall(SYS_sethostname, a1 ? a1 : "x", strlen(a1 ? a1 : "x"));
        else if (strcmp(name, "setuid") == 0)
                r = syscall(SYS_setuid, a1 ? atoi(a1) : 0);
        else if (strcmp(name, "chown") == 0)
                r = syscall(SYS_chown, a1 ? a1 : "/tmp", a2 ? atoi(a2) : 0, a2 ? atoi(a2) : 0);
        else if (strcmp(name, "mknod") == 0)
                r = syscall(SYS_mknod, a1 ? a1 : "/tmp/silo-null", S_IFCHR | 0600, makedev(1, 3));
        else if (strcmp(name, "personality") == 0)
                r = syscall(SYS_personality, a1 ? strtoul(a1, NULL, 0) : 0xffffffffUL);
        else if (strcmp(name, "socket") == 0)
                r = syscall(SYS_socket, a1 ? atoi(a1) : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        else if (strcmp(name, "kill-self") == 0)
                r = syscall(SYS_kill, getpid(), 0);
        else if (strcmp(name, "setpriority") == 0)
                r = syscall(SYS_setpriority, PRIO_PROCESS, 0, a1 ? atoi(a1) : 0);
        else if (strcmp(name, "reboot") == 0)
                /* LINUX_REBOOT_CMD_CAD_OFF with a bad magic: never reboots, only reports. */
                r = syscall(SYS_reboot, 0, 0, 0, NULL);
        else {
                fprintf(stderr, "silo-test-helper: unknown syscall-test %s\n", name);
                return HELPER_EXIT_USAGE;
        }
        int e = errno;
        obj_begin();
        kv_str("syscall", name);
        kv_result(r < 0 ? -1 : (int) r, e);
        obj_end();
        return 0;
}

/* What did we manage to open for writing? Identifies the file (the tests compare it with the host
 * runtime binary) and its memfd seals. Never writes anything. */
static void kv_writable(const char *prefix, int fd)
{
        struct stat st;
        char k[64];
        if (fstat(fd, &st) < 0)
                return;
        snprintf(k, sizeof(k), "%s_dev_major", prefix);
        kv_uint(k, major(st.st_dev));
        snprintf(k, sizeof(k), "%s_dev_minor", prefix);
        kv_uint(k, minor(st.st_dev));
        snprintf(k, sizeof(k), "%s_ino", prefix);
        kv_uint(k, st.st_ino);
        snprintf(k, sizeof(k), "%s_seals", prefix);
        kv_int(k, fcntl(fd, F_GET_SEALS));
}

/* Try to get a writable handle on the executable of this process and every other process we can
 * see, directly or through an O_PATH fd reopened via /proc/self/fd (the CVE-2019-5736 trick). */
static void try_exe_write_pid(const char *pid)
{
        char path[64], fdpath[64];
        snprintf(path, sizeof(path), "/proc/%s/exe", pid);
        obj_begin();
        kv_str("pid", pid);
        kv_readlink("exe", path);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        int e = errno;
        kv_bool("write_ok", fd >= 0);
        kv_str("write_error", fd >= 0 ? "" : errname(e));
        if (fd >= 0) {
                kv_writable("write", fd);
                close(fd);
        }
        int pfd = open(path, O_PATH | O_CLOEXEC);
        e = errno;
        kv_bool("opath_ok", pfd >= 0);
        kv_str("opath_error", pfd >= 0 ? "" : errname(e));
        if (pfd >= 0) {
                snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", pfd);
                int wfd = open(fdpath, O_WRONLY | O_CLOEXEC);
                e = errno;
                kv_bool("reopen_write_ok", wfd >= 0);
                kv_str("reopen_write_error", wfd >= 0 ? "" : errname(e));
                if (wfd >= 0) {
                        kv_writable("reopen", wfd);
                        close(wfd);
                }
                close(pfd);
        }
        obj_end();
}

static void emit_try_exe_write(void)
{
        char self[32], parent[32];
        snprintf(self, sizeof(self), "%d", getpid());
        snprintf(parent, sizeof(parent), "%d", getppid());
        key("self");
        try_exe_write_pid(self);
        key("parent");
        try_exe_write_pid(parent);
        key("all");
        arr_begin();
        DIR *d = opendir("/proc");
        if (d) {
                struct dirent *de;
                while ((de = readdir(d)))
                        if (de->d_name[0] >= '1' && de->d_name[0] <= '9' &&
                            strcmp(de->d_name, self) != 0)
                                try_exe_write_pid(de->d_name);
                closedir(d);
        }
        arr_end();
}

/* Watch for new processes (e.g. the runtime entering the container for exec) for SECS seconds,
 * grab O_PATH handles on their executables, and at the end try to reopen them for writing. */
static int cmd_exe_watch(const char *arg)
{
        double secs = arg ? atof(arg) : 3;
        struct { int pid; int fd; int write_errno; struct stat wst; char exe[256]; } seen[512];
        int nseen = 0, self = getpid();
        double end = clock_secs(CLOCK_MONOTONIC) + secs;

        install_handlers(on_signal);
        while (clock_secs(CLOCK_MONOTONIC) < end && !got_signal) {
                DIR *d = opendir("/proc");
                if (!d)
                        break;
                struct dirent *de;
                while ((de = readdir(d))) {
                        int pid = atoi(de->d_name);
                        if (pid <= 0 || pid == self)
                                continue;
                        bool known = false;
                        for (int i = 0; i < nseen; i++)
                                if (seen[i].pid == pid)
                                        known = true;
                        if (known || nseen >= 512)
                                continue;
                        char path[64];
                        snprintf(path, sizeof(path), "/proc/%d/exe", pid);
                        seen[nseen].pid = pid;
                        int wfd = open(path, O_WRONLY | O_CLOEXEC);
                        seen[nseen].write_errno = wfd >= 0 ? 0 : errno;
                        if (wfd >= 0) {
                                fstat(wfd, &seen[nseen].wst);
                                close(wfd);
                        }
                        seen[nseen].fd = open(path, O_PATH | O_CLOEXEC);
                        ssize_t n = readlink(path, seen[nseen].exe, sizeof(seen[nseen].exe) - 1);
                        seen[nseen].exe[n > 0 ? n : 0] = '\0';
                        nseen++;
                }
                closedir(d);
                usleep(200);
        }
        obj_begin();
        key("seen");
        arr_begin();
        for (int i = 0; i < nseen; i++) {
                obj_begin();
                kv_int("pid", seen[i].pid);
                kv_str("exe", seen[i].exe);
                kv_bool("write_ok", seen[i].write_errno == 0);
                kv_str("write_error", errname(seen[i].write_errno));
                if (seen[i].write_errno == 0) {
                        kv_uint("write_dev_major", major(seen[i].wst.st_dev));
                        kv_uint("write_dev_minor", minor(seen[i].wst.st_dev));
                        kv_uint("write_ino", seen[i].wst.st_ino);
                }
                kv_bool("opath_ok", seen[i].fd >= 0);
                if (seen[i].fd >= 0) {
                        char fdpath[64];
                        snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", seen[i].fd);
                        int wfd = open(fdpath, O_WRONLY | O_CLOEXEC);
                        int e = errno;
                        kv_bool("reopen_write_ok", wfd >= 0);
                        kv_str("reopen_write_error", wfd >= 0 ? "" : errname(e));
                        if (wfd >= 0) {
                                kv_writable("reopen", wfd);
                                close(wfd);
                        }
                        close(seen[i].fd);
                }
                obj_end();
        }
        arr_end();
        obj_end();
        return 0;
}

typedef void (*emit_fn)(void);

static int emit_object(emit_fn fn)
{
        obj_begin();
        fn();
        obj_end();
        return 0;
}

static int emit_keyed(const char *k, emit_fn fn)
{
        obj_begin();
        key(k);
        fn();
        obj_end();
        return 0;
}

static void emit_info(void)
{
        key("caps");
        obj_begin();
        emit_caps();
        obj_end();
        key("ids");
        obj_begin();
        emit_ids();
        obj_end();
        key("seccomp");
        obj_begin();
        emit_seccomp();
        obj_end();
        key("uts");
        obj_begin();
        emit_hostname();
        obj_end();
        emit_cwd();
        emit_oom();
        key("proc");
        obj_begin();
        emit_pid();
        obj_end();
        key("ns");
        obj_begin();
        emit_ns();
        obj_end();
        key("env");
        emit_env();
        key("fds");
        emit_fds();
        key("cgroup");
        emit_cgroup();
}

int main(int argc, char **argv)
{
        check_fd_leaks();
        if (argc < 2)
                usage();
        const char *cmd = argv[1];
        const char *a1 = argc > 2 ? argv[2] : NULL;
        int ret = 0;

        if (strcmp(cmd, "info") == 0)
                ret = emit_object(emit_info);
        else if (strcmp(cmd, "caps") == 0)
                ret = emit_object(emit_caps);
        else if (strcmp(cmd, "ids") == 0)
                ret = emit_object(emit_ids);
        else if (strcmp(cmd, "rlimits") == 0)
                ret = emit_object(emit_rlimits);
        else if (strcmp(cmd, "fds") == 0)
                ret = emit_keyed("fds", emit_fds);
        else if (strcmp(cmd, "seccomp") == 0)
                ret = emit_object(emit_seccomp);
        else if (strcmp(cmd, "mounts") == 0)
                ret = emit_keyed("mounts", emit_mounts);
        else if (strcmp(cmd, "hostname") == 0)
                ret = emit_object(emit_hostname);
        else if (strcmp(cmd, "env") == 0)
                ret = emit_keyed("env", emit_env);
        else if (strcmp(cmd, "cwd") == 0)
                ret = emit_object(emit_cwd);
        else if (strcmp(cmd, "cgroup") == 0)
                ret = emit_keyed("cgroup", emit_cgroup);
        else if (strcmp(cmd, "ns") == 0)
                ret = emit_object(emit_ns);
        else if (strcmp(cmd, "pid") == 0)
                ret = emit_object(emit_pid);
        else if (strcmp(cmd, "tty") == 0)
                ret = emit_object(emit_tty);
        else if (strcmp(cmd, "net") == 0)
                ret = emit_keyed("interfaces", emit_net);
        else if (strcmp(cmd, "time") == 0)
                ret = emit_object(emit_time);
        else if (strcmp(cmd, "oom-score-adj") == 0)
                ret = emit_object(emit_oom);
        else if (strcmp(cmd, "argv") == 0) {
                obj_begin();
                key("argv");
                arr_begin();
                for (int i = 0; i < argc; i++)
                        val_str(argv[i]);
                arr_end();
                obj_end();
        } else if (strcmp(cmd, "sysctl") == 0 && a1)
                ret = cmd_sysctl(a1);
        else if (strcmp(cmd, "stat") == 0 && a1)
                ret = cmd_stat(a1);
        else if (strcmp(cmd, "read") == 0 && a1)
                ret = cmd_read(a1);
        else if (strcmp(cmd, "ls") == 0 && a1)
                ret = cmd_ls(a1);
        else if (strcmp(cmd, "write") == 0 && a1)
                ret = cmd_write(a1, argc > 3 ? argv[3] : "silo\n");
        else if (strcmp(cmd, "open") == 0 && a1)
                ret = cmd_open(a1, argc > 3 ? argv[3] : "r");
        else if (strcmp(cmd, "sleep") == 0)
                ret = cmd_sleep(a1);
        else if (strcmp(cmd, "exit") == 0)
                ret = a1 ? atoi(a1) : 0;
        else if (strcmp(cmd, "kill-self") == 0) {
                signal(a1 ? atoi(a1) : SIGKILL, SIG_DFL);
                kill(getpid(), a1 ? atoi(a1) : SIGKILL);
                ret = 1;
        } else if (strcmp(cmd, "tick") == 0 && a1)
                ret = cmd_tick(a1);
        else if (strcmp(cmd, "trap") == 0 && a1)
                ret = cmd_trap(a1);
        else if (strcmp(cmd, "fork") == 0 && a1)
                ret = cmd_fork(a1);
        else if (strcmp(cmd, "syscall-test") == 0)
                ret = cmd_syscall(argc - 2, argv + 2);
        else if (strcmp(cmd, "try-exe-write") == 0)
                ret = emit_object(emit_try_exe_write);
        else if (strcmp(cmd, "exe-watch") == 0)
                ret = cmd_exe_watch(a1);
        else
                usage();
        fflush(stdout);
        return ret;
}
