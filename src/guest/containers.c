/* Containers and their processes inside the VM (docs/VM.md): the root
 * (a rootfs disk, or an uploaded layer for a container hosted in a utility
 * VM) under a tmpfs overlay, read-only mapped disks, and libsilo's create,
 * start and exec in children of the agent. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "fuse.h"
#include "layers.h"
#include "process/container.h"
#include "process/sync.h"

/* Finds the disk the host labelled `serial` (virtio-blk serial numbers). */
static int find_disk(const char *serial, char *ret_path, size_t len)
{
        int64_t deadline = now_ms() + DEVICE_WAIT_MS;
        for (;;) {
                DIR *d = opendir("/sys/block");
                for (struct dirent *de; d && (de = readdir(d));) {
                        if (strncmp(de->d_name, "vd", 2) || strlen(de->d_name) > 16)
                                continue;
                        char path[64], buf[64] = "";
                        snprintf(path, sizeof(path), "/sys/block/%s/serial", de->d_name);
                        if (read_sysfs_line(path, buf, sizeof(buf)) < 0 || strcmp(buf, serial))
                                continue;
                        snprintf(ret_path, len, "/dev/%s", de->d_name);
                        closedir(d);
                        if (access(ret_path, F_OK) == 0)
                                return 0;
                        d = NULL;
                        break;
                }
                if (d)
                        closedir(d);
                if (now_ms() > deadline)
                        return -ENODEV;
                usleep(2000);
        }
}

static int mount_disk(const char *serial, const char *target, bool readonly, char *errbuf, size_t errlen)
{
        char dev[64];
        if (find_disk(serial, dev, sizeof(dev)) < 0) {
                snprintf(errbuf, errlen, "disk %s did not appear", serial);
                return -ENODEV;
        }
        mkdir(target, 0755);
        if (readonly && mount(dev, target, "erofs", MS_RDONLY, NULL) == 0)
                return 0;
        if (mount(dev, target, "ext4", readonly ? MS_RDONLY : 0, readonly ? "noload" : NULL) < 0) {
                snprintf(errbuf, errlen, "mount %s (%s): %s", dev, serial, strerror(errno));
                return -errno;
        }
        return 0;
}

/* Where a container's own directories are: fixed for the one container of
 * a VM container's VM, per container in a utility VM. */
static void ctr_path(const struct ctr *c, char *buf, size_t len, const char *single, const char *sub)
{
        if (c->hosted)
                snprintf(buf, len, HOSTED_DIR "/%u/%s", c->seq, sub);
        else
                snprintf(buf, len, "%s", single ? single : "");
}

/* The container's root: its read-only image (the rootfs disk, or for a
 * hosted container the uploaded layer it names) under an overlay whose
 * upper layer is a tmpfs (libsilo applies root.readonly on top). */
static int mount_rootfs(struct ctr *c, json_t *b, char *errbuf, size_t errlen)
{
        char lower[128], scratch[128], root[128], upper[160], work[160], opts[512];
        ctr_path(c, lower, sizeof(lower), LOWER_DIR, "lower");
        ctr_path(c, scratch, sizeof(scratch), SCRATCH_DIR, "scratch");
        ctr_path(c, root, sizeof(root), ROOT_DIR, "root");
        if (c->hosted) {
                char dir[64];
                snprintf(dir, sizeof(dir), HOSTED_DIR "/%u", c->seq);
                mkdir(HOSTED_DIR, 0700);
                mkdir(dir, 0700);
                const char *layer = json_string_value(json_object_get(b, "RootfsLayer"));
                if (!guest_layer_name_valid(layer)) {
                        snprintf(errbuf, errlen, "RootfsLayer: expected the name of an uploaded layer");
                        return -EINVAL;
                }
                snprintf(lower, sizeof(lower), GUEST_LAYERS_DIR "/%s", layer);
                struct stat st;
                if (stat(lower, &st) < 0 || !S_ISDIR(st.st_mode)) {
                        snprintf(errbuf, errlen, "RootfsLayer %s: no such layer", layer);
                        return -ENOENT;
                }
        } else {
                int r = mount_disk(ROOT_SERIAL, lower, true, errbuf, errlen);
                if (r < 0)
                        return r;
        }
        mkdir(root, 0755);
        mkdir(scratch, 0755);
        snprintf(upper, sizeof(upper), "%s/upper", scratch);
        snprintf(work, sizeof(work), "%s/work", scratch);
        snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
        if (mount("tmpfs", scratch, "tmpfs", 0, "mode=0755") == 0 && mkdir(upper, 0755) == 0 &&
            mkdir(work, 0755) == 0 && mount("overlay", root, "overlay", 0, opts) == 0)
                return 0;
        logmsg("silo-guest: overlay: %m; rootfs stays read-only");
        if (mount(lower, root, NULL, MS_BIND, NULL) < 0) {
                snprintf(errbuf, errlen, "bind rootfs: %s", strerror(errno));
                return -errno;
        }
        return 0;
}

/* After a hosted container is gone: its root, scratch and directory. */
void unmount_rootfs(const struct ctr *c)
{
        char path[128];
        if (!c->hosted)
                return;
        ctr_path(c, path, sizeof(path), "", "root");
        umount2(path, MNT_DETACH);
        rmdir(path);
        ctr_path(c, path, sizeof(path), "", "scratch");
        umount2(path, MNT_DETACH);
        rmdir(path);
        ctr_path(c, path, sizeof(path), "", "bundle/config.json");
        unlink(path);
        ctr_path(c, path, sizeof(path), "", "bundle");
        rmdir(path);
        snprintf(path, sizeof(path), HOSTED_DIR "/%u", c->seq);
        rmdir(path);
}

/* Read-only mapped directories: disk i is mounted at MAPPED_DIR/i; the host
 * already pointed the bind mounts of the config there (read-write ones are
 * live shares, fuse.c).  (A hosted container's
 * read-only mapped directories are uploaded layers the host pointed its
 * binds at: nothing to do here.) */
static int mount_mapped(struct ctr *c, json_t *mapped, char *errbuf, size_t errlen)
{
        if (!mapped || (c->hosted && json_is_array(mapped) && json_array_size(mapped) == 0))
                return 0;
        if (c->hosted) {
                snprintf(errbuf, errlen, "MappedDirectories: disks cannot be added to a running utility VM");
                return -EINVAL;
        }
        if (!json_is_array(mapped) || json_array_size(mapped) > MAX_MAPPED) {
                snprintf(errbuf, errlen, "MappedDirectories: expected an array of at most %d", MAX_MAPPED);
                return -EINVAL;
        }
        mkdir(MAPPED_DIR, 0755);
        for (size_t i = 0; i < json_array_size(mapped); i++) {
                json_t *m = json_array_get(mapped, i);
                const char *serial = json_string_value(json_object_get(m, "Serial"));
                if (!serial || strlen(serial) > 20) {
                        snprintf(errbuf, errlen, "MappedDirectories[%zu].Serial: expected a short string", i);
                        return -EINVAL;
                }
                char target[64];
                snprintf(target, sizeof(target), MAPPED_DIR "/%zu", i);
                int r = mount_disk(serial, target, true, errbuf, errlen);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The container's config as the guest runs it: the rootfs the agent mounted,
 * no host-side hooks, process isolation (we are the VM). */
static json_t *guest_config(const struct ctr *c)
{
        json_t *cfg = json_deep_copy(c->spec);
        if (!cfg)
                return NULL;
        char rootdir[128];
        ctr_path(c, rootdir, sizeof(rootdir), ROOT_DIR, "root");
        json_t *root = json_object_get(cfg, "root");
        bool ro = json_is_true(json_object_get(root, "readonly"));
        json_object_set_new(cfg, "root", json_pack("{sssb}", "path", rootdir, "readonly", ro));
        json_object_del(cfg, "hooks");
        /* The guest is ours: have the memory and pids controllers on the
         * container's cgroup even without a limit ("max"), so its own usage
         * can be reported (libsilo enables only what a limit needs). */
        json_t *lx = json_object_get(cfg, "linux");
        if (json_is_object(lx)) {
                json_t *res = json_object_get(lx, "resources");
                if (!json_is_object(res)) {
                        res = json_object();
                        json_object_set_new(lx, "resources", res);
                }
                json_t *mem = json_object_get(res, "memory"), *pids = json_object_get(res, "pids");
                if (!json_is_object(mem))
                        json_object_set_new(res, "memory", mem = json_object());
                if (!json_is_object(pids))
                        json_object_set_new(res, "pids", pids = json_object());
                if (mem && !json_object_get(mem, "limit"))
                        json_object_set_new(mem, "limit", json_integer(-1));
                if (pids && !json_object_get(pids, "limit"))
                        json_object_set_new(pids, "limit", json_integer(-1));
        }
        json_t *annotations = json_object_get(cfg, "annotations");
        if (json_is_object(annotations))
                json_object_set_new(annotations, "io.silo.isolation", json_string("process"));
        return cfg;
}

static int listen_console(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        unlink(path);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
                if (fd >= 0)
                        close(fd);
                return -errno;
        }
        return fd;
}

/* The pty master libsilo sends to the console socket while it sets the
 * process up; `child` dying first means the setup failed. */
static int receive_console(int listen_fd, pid_t child)
{
        int64_t deadline = now_ms() + SETUP_TIMEOUT_MS;
        while (now_ms() < deadline) {
                struct pollfd p = { .fd = listen_fd, .events = POLLIN };
                if (poll(&p, 1, 50) > 0) {
                        int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
                        if (conn < 0)
                                return -errno;
                        struct pollfd q = { .fd = conn, .events = POLLIN };
                        int master = poll(&q, 1, SETUP_TIMEOUT_MS) > 0 ? silo_recv_fd(conn) : -ETIMEDOUT;
                        close(conn);
                        return master;
                }
                siginfo_t si = { 0 };
                if (waitid(P_PID, (id_t) child, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == child)
                        return -ECHILD;
        }
        return -ETIMEDOUT;
}

/* "O" or "E<message>" from the init's owner; EOF means it died. */
static int read_status(int fd, char *errbuf, size_t errlen)
{
        char buf[512];
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int n = poll(&p, 1, SETUP_TIMEOUT_MS);
        if (n <= 0) {
                snprintf(errbuf, errlen, "the container runtime did not answer");
                return -ETIMEDOUT;
        }
        ssize_t k;
        do
                k = read(fd, buf, sizeof(buf) - 1);
        while (k < 0 && errno == EINTR);
        if (k <= 0) {
                snprintf(errbuf, errlen, "the container runtime process died");
                return -EPIPE;
        }
        buf[k] = 0;
        if (buf[0] == 'O')
                return 0;
        snprintf(errbuf, errlen, "%.250s", buf + 1);
        return -EIO;
}

static void write_status(int fd, const silo_error *e)
{
        char buf[512];
        int n = e ? snprintf(buf, sizeof(buf), "E%s", e->message) : snprintf(buf, sizeof(buf), "O");
        ssize_t w = write(fd, buf, n > 0 && (size_t) n < sizeof(buf) ? (size_t) n : sizeof(buf) - 1);
        (void) w;
}

/* The process that owns the container from create to delete: libsilo's
 * create, then start when the agent says so, then waits forwarding signals.
 * Its exit status is the container's. */
static __attribute__((noreturn)) void container_owner(const char *id, const char *bundle, const char *console,
                                                      int status_fd, int go_fd)
{
        struct silo_runtime rt = { .state_root = STATE_DIR };
        /* The initramfs is the root mount, which pivot_root cannot move. */
        struct silo_create_options o = { .bundle = bundle, .no_pivot = true, .console_socket = console };
        silo_error e = SILO_ERROR_INIT;
        /* Blocked from before the container exists (libsilo gives the
         * container a clean signal state), so none is lost. */
        static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT };
        sigset_t fwd;
        sigemptyset(&fwd);
        for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
                sigaddset(&fwd, forwarded[i]);
        sigprocmask(SIG_SETMASK, &fwd, NULL);
        json_t *state = NULL;
        if (silo_container_create(&rt, id, &o, &e) < 0 || silo_container_state(&rt, id, &state, &e) < 0) {
                write_status(status_fd, &e);
                _exit(127);
        }
        json_t *jpid = json_object_get(state, "pid");
        pid_t pid = json_is_integer(jpid) ? (pid_t) json_integer_value(jpid) : 0;
        json_decref(state);
        write_status(status_fd, NULL);
        char go;
        ssize_t n;
        do
                n = read(go_fd, &go, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1 || go != 'g') {
                /* Abandoned, or a signal for a container that never started:
                 * it ends as if the signal had killed it. */
                silo_container_delete(&rt, id, true, NULL);
                _exit(n == 1 && go >= 1 && go <= 64 ? 128 + go : 127);
        }
        if (pid <= 0 || silo_container_start(&rt, id, &e) < 0) {
                if (pid <= 0)
                        silo_error_msg(&e, ESRCH, "the container has no process");
                write_status(status_fd, &e);
                silo_container_delete(&rt, id, true, NULL);
                _exit(127);
        }
        write_status(status_fd, NULL);
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
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

/* A forked child keeps only stdio and `keep`: it never execs, so the
 * agent's other fds (other processes' stdin pipes above all) would stay
 * open in it and their readers would never see EOF. */
static void close_fds_but(int keep1, int keep2)
{
        for (int fd = 3; fd < 1024; fd++)
                if (fd != keep1 && fd != keep2)
                        close(fd);
}

/* A slot for a new process: a fresh one, else one whose process ended,
 * was reported and is not waited for (a utility VM lives long). */
static struct proc *add_proc(struct agent *a, pid_t pid)
{
        struct proc *p = NULL;
        if (a->n_procs < MAX_PROCS)
                p = &a->procs[a->n_procs++];
        for (size_t i = 0; !p && i < a->n_procs; i++) {
                struct proc *q = &a->procs[i];
                if (q->exited && !q->wait_id && q->in_fd < 0 && q->out_fd < 0 && q->err_fd < 0 && q->master < 0)
                        p = q;
        }
        if (!p)
                return NULL;
        *p = (struct proc) { .pid = pid, .in_fd = -1, .out_fd = -1, .err_fd = -1, .master = -1 };
        return p;
}

bool procs_full(const struct agent *a)
{
        if (a->n_procs < MAX_PROCS)
                return false;
        for (size_t i = 0; i < a->n_procs; i++) {
                const struct proc *q = &a->procs[i];
                if (q->exited && !q->wait_id && q->in_fd < 0 && q->out_fd < 0 && q->err_fd < 0 && q->master < 0)
                        return false;
        }
        return true;
}

void set_nonblock(int fd)
{
        if (fd >= 0)
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

void closep(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

/* Create: rootfs, mapped directories, and libsilo's create in the
 * container's owner process, which then waits for Start. */
int create_container(struct agent *a, struct ctr *c, json_t *b, char *errbuf, size_t errlen)
{
        if (procs_full(a)) {
                snprintf(errbuf, errlen, "too many processes in this VM");
                return -EAGAIN;
        }
        int r = mount_rootfs(c, b, errbuf, errlen);
        if (r < 0)
                return r;
        r = mount_mapped(c, json_object_get(b, "MappedDirectories"), errbuf, errlen);
        if (r == 0 && json_is_true(json_object_get(b, "Shares")))
                r = guest_share_mount(errbuf, errlen);
        if (r < 0)
                return r;
        char bundle[128], config[160], console_buf[64];
        ctr_path(c, bundle, sizeof(bundle), BUNDLE_DIR, "bundle");
        snprintf(config, sizeof(config), "%s/config.json", bundle);
        json_t *cfg = guest_config(c);
        mkdir(bundle, 0700);
        if (!cfg || json_dump_file(cfg, config, JSON_COMPACT) < 0) {
                json_decref(cfg);
                snprintf(errbuf, errlen, "writing %s failed", config);
                return -EIO;
        }
        bool tty = json_is_true(json_object_get(json_object_get(cfg, "process"), "terminal"));
        json_decref(cfg);

        /* The single container's init writes straight to its own ports; a
         * hosted one's output is multiplexed like an exec'd process's. */
        int status[2] = { -1, -1 }, go[2] = { -1, -1 }, in[2] = { -1, -1 }, out[2] = { -1, -1 },
            errp[2] = { -1, -1 }, console = -1;
        snprintf(console_buf, sizeof(console_buf), CONSOLE_DIR "/init-%u.sock", c->seq);
        const char *console_path = tty ? console_buf : NULL;
        mkdir(CONSOLE_DIR, 0700);
        if (pipe2(status, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0 || (!tty && pipe2(in, O_CLOEXEC) < 0) ||
            (!tty && c->hosted && (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)) ||
            (tty && (console = listen_console(console_path)) < 0)) {
                snprintf(errbuf, errlen, "setting up the container's stdio: %s", strerror(errno));
                r = -errno;
                goto fail;
        }
        pid_t pid = fork();
        if (pid < 0) {
                r = -errno;
                snprintf(errbuf, errlen, "fork: %s", strerror(errno));
                goto fail;
        }
        if (pid == 0) {
                setsid();
                int devnull = open("/dev/null", O_RDWR);
                int fd1 = tty ? devnull : c->hosted ? out[1] : a->ports[PORT_STDOUT];
                int fd2 = tty ? devnull : c->hosted ? errp[1] : a->ports[PORT_STDERR];
                if (devnull < 0 || dup2(tty ? devnull : in[0], 0) < 0 || dup2(fd1, 1) < 0 || dup2(fd2, 2) < 0)
                        _exit(127);
                close_fds_but(status[1], go[0]);
                container_owner(c->id, bundle, console_path, status[1], go[0]);
        }
        closep(&status[1]);
        closep(&go[0]);
        closep(&in[0]);
        closep(&out[1]);
        closep(&errp[1]);
        struct proc *p = add_proc(a, pid);
        c->init = pid;
        c->go_fd = go[1];
        c->status_fd = status[0];
        p->in_fd = in[1];
        p->out_fd = out[0];
        p->err_fd = errp[0];
        set_nonblock(p->in_fd);
        set_nonblock(p->out_fd);
        set_nonblock(p->err_fd);
        r = read_status(c->status_fd, errbuf, errlen);
        if (r == 0 && tty) {
                p->master = receive_console(console, pid);
                if (p->master < 0) {
                        r = p->master;
                        snprintf(errbuf, errlen, "no terminal from the container runtime: %s", strerror(-r));
                } else {
                        set_nonblock(p->master);
                }
        }
        closep(&console);
        if (console_path)
                unlink(console_path);
        if (r < 0)
                closep(&c->go_fd);      /* the owner deletes what it made and exits */
        return r;
fail:
        for (int i = 0; i < 2; i++) {
                closep(&status[i]);
                closep(&go[i]);
                closep(&in[i]);
                closep(&out[i]);
                closep(&errp[i]);
        }
        closep(&console);
        return r;
}

int start_container(struct ctr *c, char *errbuf, size_t errlen)
{
        char go = 'g';
        if (write(c->go_fd, &go, 1) != 1) {
                snprintf(errbuf, errlen, "the container runtime process died");
                return -EPIPE;
        }
        closep(&c->go_fd);
        return read_status(c->status_fd, errbuf, errlen);
}

/* A process in the running container through libsilo's exec, from a child
 * whose exit status is the process's. */
int exec_process(struct agent *a, const struct ctr *c, json_t *process, pid_t *ret_pid, char *errbuf,
                        size_t errlen)
{
        bool tty = json_is_true(json_object_get(process, "terminal"));
        int in[2] = { -1, -1 }, out[2] = { -1, -1 }, errp[2] = { -1, -1 }, console = -1, r = 0;
        char console_path[64];
        snprintf(console_path, sizeof(console_path), CONSOLE_DIR "/exec-%u.sock", ++a->exec_seq);
        mkdir(CONSOLE_DIR, 0700);
        if (tty ? (console = listen_console(console_path)) < 0
                : pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
                r = -errno;
                snprintf(errbuf, errlen, "setting up the process's stdio: %s", strerror(errno));
                goto out;
        }
        pid_t pid = fork();
        if (pid < 0) {
                r = -errno;
                snprintf(errbuf, errlen, "fork: %s", strerror(errno));
                goto out;
        }
        if (pid == 0) {
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                setsid();
                int devnull = open("/dev/null", O_RDWR);
                if (devnull < 0 || dup2(tty ? devnull : in[0], 0) < 0 || dup2(tty ? devnull : out[1], 1) < 0 ||
                    dup2(tty ? devnull : errp[1], 2) < 0)
                        _exit(127);
                close_fds_but(devnull, -1);
                struct silo_runtime rt = { .state_root = STATE_DIR };
                /* pid_file: the process itself, for a SIGKILL this child cannot forward. */
                char pid_file[64];
                snprintf(pid_file, sizeof(pid_file), CONSOLE_DIR "/exec-%u.pid", a->exec_seq);
                struct silo_exec_options o = { .console_socket = tty ? console_path : NULL, .pid_file = pid_file };
                silo_error e = SILO_ERROR_INIT;
                int status = 0;
                if (silo_container_exec(&rt, c->id, process, &o, &status, &e) < 0) {
                        dprintf(tty ? devnull : 2, "silo-guest: exec: %s\n", e.message);
                        _exit(127);
                }
                _exit(status);
        }
        struct proc *p = add_proc(a, pid);
        p->exec_seq = a->exec_seq;
        if (tty) {
                p->master = receive_console(console, pid);
                if (p->master < 0) {
                        snprintf(errbuf, errlen, "exec: no terminal from the container runtime (%s)",
                                 strerror(-p->master));
                        kill(pid, SIGKILL);
                        r = -EIO;       /* its exit is reaped and reported like any other */
                        goto out;
                }
                set_nonblock(p->master);
        } else {
                p->in_fd = in[1];
                p->out_fd = out[0];
                p->err_fd = errp[0];
                in[1] = out[0] = errp[0] = -1;
                set_nonblock(p->in_fd);
                set_nonblock(p->out_fd);
                set_nonblock(p->err_fd);
        }
        *ret_pid = pid;
out:
        for (int i = 0; i < 2; i++) {
                closep(&in[i]);
                closep(&out[i]);
                closep(&errp[i]);
        }
        if (console >= 0) {
                close(console);
                unlink(console_path);
        }
        return r;
}

/* SIGKILL for an exec'd process: its libsilo exec child forwards other
 * signals, but this one would only kill that child; the process's pid is in
 * the pid file the child wrote. */
void kill_exec_process(struct proc *p)
{
        char path[64], buf[32] = "";
        snprintf(path, sizeof(path), CONSOLE_DIR "/exec-%u.pid", p->exec_seq);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        if (fd >= 0)
                close(fd);
        long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
        if (pid > 1)
                kill((pid_t) pid, SIGKILL);
}

/* The container a request names by ContainerId; without one, the single
 * container of a VM container's VM. */
struct ctr *find_ctr(struct agent *a, json_t *body)
{
        const char *id = json_string_value(json_object_get(body, "ContainerId"));
        struct ctr *only = NULL;
        for (int k = 0; k < MAX_CONTAINERS; k++) {
                struct ctr *c = &a->ctrs[k];
                if (!c->id[0])
                        continue;
                if (id && !strcmp(c->id, id))
                        return c;
                if (!c->hosted)
                        only = c;
        }
        return id ? NULL : only;
}

struct ctr *ctr_of_init(struct agent *a, pid_t pid)
{
        for (int k = 0; k < MAX_CONTAINERS; k++)
                if (a->ctrs[k].id[0] && a->ctrs[k].init == pid)
                        return &a->ctrs[k];
        return NULL;
}

/* A signal for a container's owner.  Created, not started: the owner waits
 * for Start with signals blocked, and ends as if the signal killed it.
 * SIGKILL cannot be forwarded by the owner: libsilo kills every process of
 * the container instead, and the owner sees its init die. */
void stop_container(struct ctr *c, int sig)
{
        if (!c->started && c->go_fd >= 0) {
                char byte = (char) sig;
                if (write(c->go_fd, &byte, 1) != 1)
                        logmsg("silo-guest: signal before start: %m");
                closep(&c->go_fd);
                return;
        }
        if (sig == SIGKILL) {
                struct silo_runtime rt = { .state_root = STATE_DIR };
                silo_error e = SILO_ERROR_INIT;
                if (silo_container_kill(&rt, c->id, SIGKILL, true, &e) < 0)
                        logmsg("silo-guest: kill %s: %s", c->id, e.message);
                /* Frozen tasks die only once thawed. */
                silo_container_resume(&rt, c->id, NULL);
                return;
        }
        if (kill(c->init, sig) < 0)
                logmsg("silo-guest: signal %d to %s: %m", sig, c->id);
}
