/* silo-guest: the agent inside a utility VM, running as /init of silo's
 * initramfs (docs/VM.md).  It brings up just enough of the guest (proc, sys,
 * dev, the virtio modules), serves the framed protocol of vm/proto.h on the
 * "silo.control" virtio-serial port, mounts the container's rootfs from the
 * virtio-blk disk and runs its processes with stdout/stderr on the
 * "silo.stdout"/"silo.stderr" ports.  Static, no sanitizer: it is the only
 * program in the initramfs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "process/container.h"
#include "vm/proto.h"

#define MODULES_DIR "/lib/modules"
#define ROOT_DISK "/dev/vda"
#define LOWER_DIR "/run/lower"
#define SCRATCH_DIR "/run/scratch"
#define ROOT_DIR "/run/root"
#define BUNDLE_DIR "/run/bundle"
#define STATE_DIR "/run/silo"
#define DEVICE_WAIT_MS 10000
#define MAX_PROCS 64
#define MAX_ARGS 4096

enum { PORT_CONTROL, PORT_STDOUT, PORT_STDERR, _PORT_MAX };
static const char *const port_names[_PORT_MAX] = { "silo.control", "silo.stdout", "silo.stderr" };

struct proc {
        pid_t pid;
        bool exited;
        int exit_code;
        uint64_t wait_id;       /* a WaitForProcess waiting for this exit, 0 if none */
};

struct agent {
        int ports[_PORT_MAX];
        json_t *process;        /* the container's init process (Create) */
        json_t *spec;           /* the whole OCI config (Create), run through libsilo */
        char id[128];
        bool created;
        bool started;
        struct proc procs[MAX_PROCS];
        size_t n_procs;
};

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if (n > (int) sizeof(buf) - 2)
                n = (int) sizeof(buf) - 2;
        buf[n++] = '\n';
        int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                fd = dup(2);
        if (fd >= 0) {
                ssize_t w = write(fd, buf, (size_t) n);
                (void) w;
                close(fd);
        }
}

static __attribute__((noreturn)) void power_off(void)
{
        sync();
        /* QEMU runs with -no-reboot: a reboot ends it. */
        reboot(RB_AUTOBOOT);
        for (;;)
                pause();
}

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Delegate every controller to children, as a cgroup v2 manager does. */
static void write_cgroup_controllers(void)
{
        char buf[256] = "";
        int fd = open("/sys/fs/cgroup/cgroup.controllers", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return;
        buf[n] = 0;
        char out[512] = "";
        size_t used = 0;
        for (char *save = NULL, *tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
                int w = snprintf(out + used, sizeof(out) - used, "%s+%s", used ? " " : "", tok);
                if (w < 0 || (size_t) w >= sizeof(out) - used)
                        break;
                used += (size_t) w;
        }
        fd = open("/sys/fs/cgroup/cgroup.subtree_control", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
                if (write(fd, out, used) < 0)
                        logmsg("silo-guest: cgroup.subtree_control: %m");
                close(fd);
        }
}

static void mount_basics(void)
{
        mkdir("/proc", 0555);
        mkdir("/sys", 0555);
        mkdir("/dev", 0755);
        mkdir("/run", 0755);
        if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                logmsg("silo-guest: mount /proc: %m");
        if (mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                logmsg("silo-guest: mount /sys: %m");
        if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0 && errno != EBUSY)
                logmsg("silo-guest: mount /dev: %m");
        /* cgroup v2 in the guest: the container's limits apply inside the VM too. */
        mkdir("/sys/fs/cgroup", 0755);
        if (mount("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                logmsg("silo-guest: mount cgroup2: %m");
        else
                write_cgroup_controllers();
}

/* modules.order lists the .ko files in dependency order (mkinitramfs.sh). */
static void load_modules(void)
{
        FILE *f = fopen(MODULES_DIR "/modules.order", "re");
        if (!f)
                return;
        char line[PATH_MAX];
        for (int i = 0; i < 256 && fgets(line, sizeof(line), f); i++) {
                line[strcspn(line, "\n")] = 0;
                if (!*line || strchr(line, '/'))
                        continue;
                char path[PATH_MAX + 32];
                snprintf(path, sizeof(path), MODULES_DIR "/%s", line);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                        logmsg("silo-guest: open %s: %m", path);
                        continue;
                }
                if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
                        logmsg("silo-guest: load %s: %m", line);
                close(fd);
        }
        fclose(f);
}

/* Ports appear under /sys/class/virtio-ports/vportNpM with a name file;
 * devtmpfs creates /dev/vportNpM for each. */
static int find_ports(int ports[_PORT_MAX])
{
        int64_t deadline = now_ms() + DEVICE_WAIT_MS;
        for (;;) {
                DIR *d = opendir("/sys/class/virtio-ports");
                for (struct dirent *de; d && (de = readdir(d));) {
                        if (de->d_name[0] == '.' || strlen(de->d_name) > 64)
                                continue;
                        char path[128], name[64] = "";
                        snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
                        int fd = open(path, O_RDONLY | O_CLOEXEC);
                        if (fd < 0)
                                continue;
                        ssize_t n = read(fd, name, sizeof(name) - 1);
                        close(fd);
                        if (n <= 0)
                                continue;
                        name[n] = 0;
                        name[strcspn(name, "\n")] = 0;
                        for (int i = 0; i < _PORT_MAX; i++) {
                                if (ports[i] >= 0 || strcmp(name, port_names[i]))
                                        continue;
                                snprintf(path, sizeof(path), "/dev/%s", de->d_name);
                                ports[i] = open(path, (i == PORT_CONTROL ? O_RDWR : O_WRONLY) | O_CLOEXEC | O_NOCTTY);
                        }
                }
                if (d)
                        closedir(d);
                bool all = true;
                for (int i = 0; i < _PORT_MAX; i++)
                        all &= ports[i] >= 0;
                if (all)
                        return 0;
                if (now_ms() > deadline)
                        return -ETIMEDOUT;
                usleep(2000);
        }
}

static int send_msg(struct agent *a, uint32_t type, uint64_t id, json_t *body)
{
        silo_error e = SILO_ERROR_INIT;
        int r = silo_vm_msg_send(a->ports[PORT_CONTROL], type, id, body, -1, &e);
        if (r < 0)
                logmsg("silo-guest: %s", e.message);
        return r;
}

static int respond(struct agent *a, uint32_t req_type, uint64_t id, int result, const char *error, json_t *extra)
{
        json_t *body = extra ? extra : json_object();
        if (!body)
                return -ENOMEM;
        json_object_set_new(body, "Result", json_integer(result));
        if (error)
                json_object_set_new(body, "ErrorMessage", json_string(error));
        uint32_t type = SILO_VM_KIND_RESPONSE | (req_type & ~SILO_VM_KIND_MASK);
        int r = send_msg(a, type, id, body);
        json_decref(body);
        return r;
}

static int respond_error(struct agent *a, uint32_t req_type, uint64_t id, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
static int respond_error(struct agent *a, uint32_t req_type, uint64_t id, int errnum, const char *fmt, ...)
{
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        return respond(a, req_type, id, errnum ? -errnum : -1, buf, NULL);
}

static int mount_rootfs(bool readonly, bool premount, char *errbuf, size_t errlen)
{
        int64_t deadline = now_ms() + DEVICE_WAIT_MS;
        while (access(ROOT_DISK, F_OK) < 0) {
                if (now_ms() > deadline) {
                        snprintf(errbuf, errlen, "%s did not appear", ROOT_DISK);
                        return -ENODEV;
                }
                usleep(2000);
        }
        mkdir(LOWER_DIR, 0755);
        mkdir(ROOT_DIR, 0755);
        if (mount(ROOT_DISK, LOWER_DIR, "erofs", MS_RDONLY, NULL) < 0 &&
            mount(ROOT_DISK, LOWER_DIR, "ext4", MS_RDONLY, "noload") < 0) {
                snprintf(errbuf, errlen, "mount %s: %s", ROOT_DISK, strerror(errno));
                return -errno;
        }
        /* The image is read-only; a writable container gets a tmpfs upper layer. */
        if (!readonly) {
                mkdir(SCRATCH_DIR, 0755);
                if (mount("tmpfs", SCRATCH_DIR, "tmpfs", 0, "mode=0755") == 0 &&
                    mkdir(SCRATCH_DIR "/upper", 0755) == 0 && mkdir(SCRATCH_DIR "/work", 0755) == 0 &&
                    mount("overlay", ROOT_DIR, "overlay", 0,
                          "lowerdir=" LOWER_DIR ",upperdir=" SCRATCH_DIR "/upper,workdir=" SCRATCH_DIR "/work") == 0)
                        goto mounted;
                logmsg("silo-guest: overlay: %m; rootfs stays read-only");
        }
        if (mount(LOWER_DIR, ROOT_DIR, NULL, MS_BIND, NULL) < 0) {
                snprintf(errbuf, errlen, "bind rootfs: %s", strerror(errno));
                return -errno;
        }
mounted:
        if (!premount)
                return 0;
        /* Best effort: a read-only image without these directories still runs. */
        mkdir(ROOT_DIR "/proc", 0555);
        mkdir(ROOT_DIR "/sys", 0555);
        mkdir(ROOT_DIR "/dev", 0755);
        mount("proc", ROOT_DIR "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        mount("sysfs", ROOT_DIR "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL);
        mount("devtmpfs", ROOT_DIR "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
        return 0;
}

static char **strv_from_json(json_t *arr, size_t max)
{
        if (!json_is_array(arr) || json_array_size(arr) > max)
                return NULL;
        char **v = calloc(json_array_size(arr) + 1, sizeof(char *));
        if (!v)
                return NULL;
        for (size_t i = 0; i < json_array_size(arr); i++) {
                const char *s = json_string_value(json_array_get(arr, i));
                if (!s) {
                        free(v);
                        return NULL;
                }
                v[i] = (char *) s;
        }
        return v;
}

/* Forks the process described by an OCI process object; exec failures come
 * back through a CLOEXEC pipe so the request fails with the reason. */
static int spawn(struct agent *a, json_t *process, pid_t *ret_pid, char *errbuf, size_t errlen)
{
        if (a->n_procs >= MAX_PROCS) {
                snprintf(errbuf, errlen, "too many processes");
                return -EAGAIN;
        }
        char **args = strv_from_json(json_object_get(process, "args"), MAX_ARGS);
        if (!args || !args[0]) {
                free(args);
                snprintf(errbuf, errlen, "process.args: expected a non-empty array of strings");
                return -EINVAL;
        }
        json_t *jenv = json_object_get(process, "env");
        char **env = jenv ? strv_from_json(jenv, MAX_ARGS) : calloc(1, sizeof(char *));
        if (!env) {
                free(args);
                snprintf(errbuf, errlen, "process.env: expected an array of strings");
                return -EINVAL;
        }
        const char *cwd = json_string_value(json_object_get(process, "cwd"));
        json_t *user = json_object_get(process, "user");
        json_t *juid = json_object_get(user, "uid"), *jgid = json_object_get(user, "gid");
        uid_t uid = json_is_integer(juid) ? (uid_t) json_integer_value(juid) : 0;
        gid_t gid = json_is_integer(jgid) ? (gid_t) json_integer_value(jgid) : 0;
        json_t *jgroups = json_object_get(user, "additionalGids");
        gid_t groups[64];
        size_t n_groups = 0;
        for (size_t i = 0; json_is_array(jgroups) && i < json_array_size(jgroups) && n_groups < 64; i++)
                if (json_is_integer(json_array_get(jgroups, i)))
                        groups[n_groups++] = (gid_t) json_integer_value(json_array_get(jgroups, i));

        int errpipe[2];
        if (pipe2(errpipe, O_CLOEXEC) < 0) {
                free(args);
                free(env);
                snprintf(errbuf, errlen, "pipe: %s", strerror(errno));
                return -errno;
        }
        pid_t pid = fork();
        if (pid == 0) {
                sigset_t all;
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                setsid();
                int devnull = open("/dev/null", O_RDONLY);
                const char *step = "open /dev/null";
                if (devnull < 0 || dup2(devnull, 0) < 0)
                        goto fail;
                step = "stdio";
                if (dup2(a->ports[PORT_STDOUT], 1) < 0 || dup2(a->ports[PORT_STDERR], 2) < 0)
                        goto fail;
                step = "chroot";
                if (chdir(ROOT_DIR) < 0 || chroot(".") < 0)
                        goto fail;
                step = "cwd";
                if (chdir(cwd && *cwd ? cwd : "/") < 0)
                        goto fail;
                step = "setgroups";
                if (setgroups(n_groups, groups) < 0)
                        goto fail;
                step = "setgid";
                if (setgid(gid) < 0)
                        goto fail;
                step = "setuid";
                if (setuid(uid) < 0)
                        goto fail;
                environ = env;
                step = "exec";
                execvp(args[0], args);
        fail:;
                char msg[256];
                int n = snprintf(msg, sizeof(msg), "%s%s%s: %s", step, !strcmp(step, "exec") ? " " : "",
                                 !strcmp(step, "exec") ? args[0] : "", strerror(errno));
                ssize_t w = write(errpipe[1], msg, n > 0 ? (size_t) n : 0);
                (void) w;
                _exit(127);
        }
        int saved = errno;
        free(args);
        free(env);
        close(errpipe[1]);
        if (pid < 0) {
                close(errpipe[0]);
                snprintf(errbuf, errlen, "fork: %s", strerror(saved));
                return -saved;
        }
        char msg[256];
        ssize_t n;
        do
                n = read(errpipe[0], msg, sizeof(msg) - 1);
        while (n < 0 && errno == EINTR);
        close(errpipe[0]);
        if (n > 0) {
                msg[n] = 0;
                snprintf(errbuf, errlen, "%s", msg);
                /* Keep it tracked: its exit is reaped and reported like any other. */
                a->procs[a->n_procs++] = (struct proc) { .pid = pid };
                return -ENOEXEC;
        }
        a->procs[a->n_procs++] = (struct proc) { .pid = pid };
        *ret_pid = pid;
        return 0;
}

/* The container's config as the guest runs it: the rootfs the agent mounted,
 * no host-side hooks, no host bind mounts (mapped directories are not
 * supported yet), and process isolation (we are the VM). */
static json_t *guest_config(struct agent *a)
{
        json_t *cfg = json_deep_copy(a->spec);
        if (!cfg)
                return NULL;
        json_t *root = json_object_get(cfg, "root");
        bool ro = json_is_true(json_object_get(root, "readonly"));
        json_object_set_new(cfg, "root", json_pack("{sssb}", "path", ROOT_DIR, "readonly", ro));
        json_object_del(cfg, "hooks");
        json_t *annotations = json_object_get(cfg, "annotations");
        if (json_is_object(annotations))
                json_object_set_new(annotations, "io.silo.isolation", json_string("process"));
        /* libsilo hides a masked directory under a clone of a detached tmpfs,
         * which this guest kernel (6.1) refuses (EINVAL); such directories stay
         * visible inside the VM, whose kernel serves only this container.
         * Masked files are still covered.  TODO: remove once mount/ falls back. */
        json_t *masked = json_object_get(json_object_get(cfg, "linux"), "maskedPaths");
        for (size_t i = json_is_array(masked) ? json_array_size(masked) : 0; i-- > 0;) {
                const char *path = json_string_value(json_array_get(masked, i));
                struct stat st;
                if (path && path[0] == '/' && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
                        json_array_remove(masked, i);
        }
        json_t *mounts = json_object_get(cfg, "mounts");
        for (size_t i = json_is_array(mounts) ? json_array_size(mounts) : 0; i-- > 0;) {
                json_t *m = json_array_get(mounts, i);
                const char *type = json_string_value(json_object_get(m, "type"));
                bool bind = type && !strcmp(type, "bind");
                json_t *opts = json_object_get(m, "options");
                for (size_t k = 0; json_is_array(opts) && k < json_array_size(opts); k++) {
                        const char *o = json_string_value(json_array_get(opts, k));
                        bind |= o && (!strcmp(o, "bind") || !strcmp(o, "rbind"));
                }
                if (bind)
                        json_array_remove(mounts, i);
        }
        return cfg;
}

/* create + start + wait + delete, in the child that owns the container.  Not
 * silo_container_run(): it blocks the forwarded signals before cloning the
 * init, and the container would inherit that mask (SIGTERM blocked). */
static int run_container(const char *id)
{
        struct silo_runtime rt = { .state_root = STATE_DIR };
        /* The initramfs is the root mount, which pivot_root cannot move. */
        struct silo_create_options o = { .bundle = BUNDLE_DIR, .no_pivot = true };
        silo_error e = SILO_ERROR_INIT;
        json_t *state = NULL;
        if (silo_container_create(&rt, id, &o, &e) < 0 || silo_container_state(&rt, id, &state, &e) < 0) {
                dprintf(2, "silo-guest: %s\n", e.message);
                return 127;
        }
        json_t *jpid = json_object_get(state, "pid");
        pid_t pid = json_is_integer(jpid) ? (pid_t) json_integer_value(jpid) : 0;
        json_decref(state);
        static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
        sigset_t fwd;
        sigemptyset(&fwd);
        for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
                sigaddset(&fwd, forwarded[i]);
        sigprocmask(SIG_BLOCK, &fwd, NULL);
        if (pid <= 0 || silo_container_start(&rt, id, &e) < 0) {
                dprintf(2, "silo-guest: %s\n", pid <= 0 ? "container has no pid" : e.message);
                silo_container_delete(&rt, id, true, NULL);
                return 127;
        }
        int status = 0;
        for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid || (w < 0 && errno != EINTR))
                        break;
                struct timespec ts = { 0, 50 * 1000 * 1000 };
                int sig = sigtimedwait(&fwd, NULL, &ts);
                if (sig > 0)
                        kill(pid, sig);
        }
        silo_container_delete(&rt, id, true, NULL);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs the container through libsilo's process backend inside the VM, from a
 * child whose stdio are the ports: namespaces, cgroups v2, seccomp and
 * capabilities apply as on a host.  Failures to create show on the stderr
 * port and as exit code 127, as `runc run` reports them. */
static int spawn_container(struct agent *a, pid_t *ret_pid, char *errbuf, size_t errlen)
{
        if (a->n_procs >= MAX_PROCS) {
                snprintf(errbuf, errlen, "too many processes");
                return -EAGAIN;
        }
        json_t *cfg = guest_config(a);
        mkdir(BUNDLE_DIR, 0700);
        if (!cfg || json_dump_file(cfg, BUNDLE_DIR "/config.json", JSON_COMPACT) < 0) {
                json_decref(cfg);
                snprintf(errbuf, errlen, "writing %s/config.json failed", BUNDLE_DIR);
                return -EIO;
        }
        json_decref(cfg);
        pid_t pid = fork();
        if (pid < 0) {
                snprintf(errbuf, errlen, "fork: %s", strerror(errno));
                return -errno;
        }
        if (pid == 0) {
                sigset_t all;
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                setsid();
                int devnull = open("/dev/null", O_RDONLY);
                if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(a->ports[PORT_STDOUT], 1) < 0 ||
                    dup2(a->ports[PORT_STDERR], 2) < 0)
                        _exit(127);
                _exit(run_container(a->id));
        }
        a->procs[a->n_procs++] = (struct proc) { .pid = pid };
        *ret_pid = pid;
        return 0;
}

static struct proc *find_proc(struct agent *a, int64_t pid)
{
        for (size_t i = 0; i < a->n_procs; i++)
                if (a->procs[i].pid == pid)
                        return &a->procs[i];
        return NULL;
}

static void send_exit(struct agent *a, struct proc *p)
{
        json_t *body = json_pack("{sIsi}", "ProcessId", (json_int_t) p->pid, "ExitCode", p->exit_code);
        if (body) {
                send_msg(a, SILO_VM_TYPE(SILO_VM_KIND_NOTIFY, SILO_VM_NOTIFY_PROCESS_EXITED), 0, body);
                json_decref(body);
        }
        if (p->wait_id) {
                json_t *r = json_pack("{sIsi}", "ProcessId", (json_int_t) p->pid, "ExitCode", p->exit_code);
                respond(a, SILO_VM_TYPE(SILO_VM_KIND_REQUEST, SILO_VM_OP_WAIT_FOR_PROCESS), p->wait_id, 0, NULL, r);
                p->wait_id = 0;
        }
}

static void reap(struct agent *a)
{
        for (;;) {
                int status;
                pid_t pid = waitpid(-1, &status, WNOHANG);
                if (pid <= 0)
                        return;
                struct proc *p = find_proc(a, pid);
                if (!p || p->exited)
                        continue;       /* an orphan reparented to us */
                p->exited = true;
                p->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                send_exit(a, p);
        }
}

static void handle_request(struct agent *a, struct silo_vm_msg *m)
{
        char errbuf[256] = "";
        uint32_t op = m->type & SILO_VM_OP_MASK;
        json_t *b = m->body;
        switch (op) {
        case SILO_VM_OP_NEGOTIATE_PROTOCOL: {
                json_t *lo = json_object_get(b, "MinimumVersion"), *hi = json_object_get(b, "MaximumVersion");
                if (!json_is_integer(lo) || !json_is_integer(hi) || json_integer_value(lo) > SILO_VM_PROTOCOL_VERSION ||
                    json_integer_value(hi) < SILO_VM_PROTOCOL_VERSION) {
                        respond_error(a, m->type, m->id, EPROTONOSUPPORT, "no common protocol version (guest has %d)",
                                      SILO_VM_PROTOCOL_VERSION);
                        return;
                }
                json_t *r = json_pack("{si s{sbsbsb}}", "Version", SILO_VM_PROTOCOL_VERSION, "Capabilities",
                                      "ExecuteProcess", 1, "SignalProcess", 1, "WaitForProcess", 1);
                respond(a, m->type, m->id, 0, NULL, r);
                return;
        }
        case SILO_VM_OP_CREATE: {
                json_t *process = json_object_get(b, "Process");
                if (a->created) {
                        respond_error(a, m->type, m->id, EEXIST, "the container exists already");
                        return;
                }
                if (!json_is_object(process)) {
                        respond_error(a, m->type, m->id, EINVAL, "Process: expected an object");
                        return;
                }
                const char *hostname = json_string_value(json_object_get(b, "HostName"));
                if (hostname && sethostname(hostname, strnlen(hostname, 64)) < 0)
                        logmsg("silo-guest: sethostname: %m");
                json_t *spec = json_object_get(b, "Spec");
                const char *id = json_string_value(json_object_get(b, "ContainerId"));
                if (spec && (!json_is_object(spec) || !id || strlen(id) >= sizeof(a->id))) {
                        respond_error(a, m->type, m->id, EINVAL, "Spec: expected an object with a ContainerId");
                        return;
                }
                /* With libsilo inside, the runtime applies root.readonly itself. */
                bool ro = !spec && json_is_true(json_object_get(json_object_get(b, "Rootfs"), "ReadOnly"));
                int r = mount_rootfs(ro, !spec, errbuf, sizeof(errbuf));
                if (r < 0) {
                        respond_error(a, m->type, m->id, -r, "%s", errbuf);
                        return;
                }
                if (spec) {
                        a->spec = json_incref(spec);
                        snprintf(a->id, sizeof(a->id), "%s", id);
                }
                a->process = json_incref(process);
                a->created = true;
                respond(a, m->type, m->id, 0, NULL, NULL);
                return;
        }
        case SILO_VM_OP_START:
        case SILO_VM_OP_EXECUTE_PROCESS: {
                json_t *process = op == SILO_VM_OP_START ? a->process : json_object_get(b, "Process");
                if (!a->created || (op == SILO_VM_OP_START && a->started) || !json_is_object(process)) {
                        respond_error(a, m->type, m->id, EINVAL, "%s", !a->created ? "no container created"
                                      : op == SILO_VM_OP_START ? "already started" : "Process: expected an object");
                        return;
                }
                if (op == SILO_VM_OP_EXECUTE_PROCESS && !a->started) {
                        respond_error(a, m->type, m->id, EINVAL, "the container is not started");
                        return;
                }
                pid_t pid = 0;
                int r = op == SILO_VM_OP_START && a->spec ? spawn_container(a, &pid, errbuf, sizeof(errbuf))
                                                         : spawn(a, process, &pid, errbuf, sizeof(errbuf));
                if (r < 0) {
                        respond_error(a, m->type, m->id, -r, "%s", errbuf);
                        return;
                }
                if (op == SILO_VM_OP_START)
                        a->started = true;
                respond(a, m->type, m->id, 0, NULL, json_pack("{sI}", "ProcessId", (json_int_t) pid));
                return;
        }
        case SILO_VM_OP_SIGNAL_PROCESS:
        case SILO_VM_OP_WAIT_FOR_PROCESS: {
                json_t *jpid = json_object_get(b, "ProcessId");
                struct proc *p = json_is_integer(jpid) ? find_proc(a, json_integer_value(jpid)) : NULL;
                if (!p) {
                        respond_error(a, m->type, m->id, ESRCH, "ProcessId: no such process");
                        return;
                }
                if (op == SILO_VM_OP_WAIT_FOR_PROCESS) {
                        if (p->exited)
                                respond(a, m->type, m->id, 0, NULL, json_pack("{sIsi}", "ProcessId", (json_int_t) p->pid,
                                                                             "ExitCode", p->exit_code));
                        else if (p->wait_id)
                                respond_error(a, m->type, m->id, EBUSY, "already waited for");
                        else
                                p->wait_id = m->id;
                        return;
                }
                json_t *jsig = json_object_get(b, "Signal");
                if (!json_is_integer(jsig) || json_integer_value(jsig) < 1 || json_integer_value(jsig) > 64) {
                        respond_error(a, m->type, m->id, EINVAL, "Signal: expected 1..64");
                        return;
                }
                if (!p->exited && kill(p->pid, (int) json_integer_value(jsig)) < 0) {
                        respond_error(a, m->type, m->id, errno, "kill: %s", strerror(errno));
                        return;
                }
                respond(a, m->type, m->id, 0, NULL, NULL);
                return;
        }
        case SILO_VM_OP_SHUTDOWN_GRACEFUL:
        case SILO_VM_OP_SHUTDOWN_FORCED:
                respond(a, m->type, m->id, 0, NULL, NULL);
                if (op == SILO_VM_OP_SHUTDOWN_GRACEFUL)
                        kill(-1, SIGTERM);
                kill(-1, SIGKILL);
                power_off();
        default:
                respond_error(a, m->type, m->id, ENOTSUP, "operation not supported");
                return;
        }
}

int main(void)
{
        struct agent a = { .ports = { -1, -1, -1 } };
        mount_basics();
        load_modules();
        if (find_ports(a.ports) < 0) {
                logmsg("silo-guest: virtio-serial ports did not appear");
                power_off();
        }

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

        struct silo_vm_reader reader;
        silo_error e = SILO_ERROR_INIT;
        if (sigfd < 0 || silo_vm_reader_init(&reader, &e) < 0)
                power_off();
        for (;;) {
                struct pollfd p[2] = { { .fd = a.ports[PORT_CONTROL], .events = POLLIN }, { .fd = sigfd, .events = POLLIN } };
                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        power_off();
                if (p[1].revents) {
                        struct signalfd_siginfo si;
                        while (read(sigfd, &si, sizeof(si)) == sizeof(si))
                                ;
                        reap(&a);
                }
                if (!p[0].revents)
                        continue;
                ssize_t n = silo_vm_reader_fill(&reader, a.ports[PORT_CONTROL], &e);
                if (n == 0 || p[0].revents & POLLHUP) {
                        /* The host is not connected (yet, or any more): wait. */
                        if (n == 0)
                                usleep(10000);
                        if (n <= 0)
                                continue;
                }
                if (n < 0 && n != -EAGAIN) {
                        logmsg("silo-guest: %s", e.message);
                        power_off();
                }
                for (;;) {
                        struct silo_vm_msg m = { 0 };
                        int r = silo_vm_reader_next(&reader, &m, &e);
                        if (r < 0) {
                                logmsg("silo-guest: %s", e.message);
                                power_off();
                        }
                        if (r == 0)
                                break;
                        if ((m.type & SILO_VM_KIND_MASK) == SILO_VM_KIND_REQUEST)
                                handle_request(&a, &m);
                        silo_vm_msg_done(&m);
                }
        }
}
