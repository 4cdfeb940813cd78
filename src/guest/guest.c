/* silo-guest: the agent inside a utility VM, running as /init of silo's
 * initramfs (docs/VM.md).  It brings up just enough of the guest (proc, sys,
 * dev, the virtio modules), serves the framed protocol of vm/proto.h on the
 * "silo.control" virtio-serial port and runs containers through libsilo's
 * process backend (containers.c: roots, mapped disks, create/start/exec).  The init's stdout/stderr are the "silo.stdout" and
 * "silo.stderr" ports; every other stream (stdin, terminals, exec'd
 * processes) is multiplexed on "silo.stdio".  Static, no sanitizer: it is
 * the only program in the initramfs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "fuse.h"
#include "layers.h"
#include "net.h"
#include "process/container.h"
#include "process/sync.h"
#include "vm/proto.h"

static const char *const port_names[_PORT_MAX] = { "silo.control", "silo.stdout", "silo.stderr", "silo.stdio",
                                                   "silo.data" };

int read_sysfs_line(const char *path, char *buf, size_t len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = read(fd, buf, len - 1);
        close(fd);
        if (n <= 0)
                return n < 0 ? -EIO : -ENODATA;
        buf[n] = 0;
        buf[strcspn(buf, "\n")] = 0;
        return 0;
}

void logmsg(const char *fmt, ...)
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

int64_t now_ms(void)
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
                /* The initramfs is guest memory: a loaded module's file is dead weight. */
                unlink(path);
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
                        if (read_sysfs_line(path, name, sizeof(name)) < 0)
                                continue;
                        for (int i = 0; i < _PORT_MAX; i++) {
                                if (ports[i] >= 0 || strcmp(name, port_names[i]))
                                        continue;
                                snprintf(path, sizeof(path), "/dev/%s", de->d_name);
                                int mode = i == PORT_CONTROL || i == PORT_STDIO ? O_RDWR
                                           : i == PORT_DATA ? O_RDONLY : O_WRONLY;
                                ports[i] = open(path, mode | O_CLOEXEC | O_NOCTTY);
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

/* Writes a whole stdio frame (blocking: the host always reads this port). */
static void send_stream(struct agent *a, uint32_t stream, const void *data, size_t len)
{
        uint8_t hdr[SILO_VM_STDIO_HEADER];
        silo_vm_stdio_header(hdr, stream, (uint32_t) len);
        struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *) data, len } };
        size_t total = sizeof(hdr) + len, done = 0;
        while (done < total) {
                ssize_t n = writev(a->ports[PORT_STDIO], iov, 2);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                done += (size_t) n;
                for (int i = 0; i < 2 && n > 0; i++) {
                        size_t k = (size_t) n < iov[i].iov_len ? (size_t) n : iov[i].iov_len;
                        iov[i].iov_base = (uint8_t *) iov[i].iov_base + k;
                        iov[i].iov_len -= k;
                        n -= (ssize_t) k;
                }
        }
}


static struct proc *find_proc(struct agent *a, int64_t pid)
{
        for (size_t i = 0; i < a->n_procs; i++)
                if (a->procs[i].pid == pid)
                        return &a->procs[i];
        return NULL;
}

/* Copies what one output fd has to the stdio port; false at its end. */
static bool pump_output(struct agent *a, struct proc *p, int *fd, int stream_fd)
{
        static char buf[SILO_VM_STDIO_CHUNK];
        ssize_t n = read(*fd, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return true;
        if (n <= 0) {   /* EOF, or EIO from a master whose slave is closed */
                send_stream(a, SILO_VM_STREAM(p->pid, stream_fd), NULL, 0);
                closep(fd);
                return false;
        }
        send_stream(a, SILO_VM_STREAM(p->pid, stream_fd), buf, (size_t) n);
        return true;
}

static void send_exit(struct agent *a, struct proc *p)
{
        /* Its output first: the host finishes a process once its streams ended. */
        for (int i = 0; i < 1024 && p->out_fd >= 0 && pump_output(a, p, &p->out_fd, 1); i++)
                ;
        for (int i = 0; i < 1024 && p->err_fd >= 0 && pump_output(a, p, &p->err_fd, 2); i++)
                ;
        for (int i = 0; i < 1024 && p->master >= 0 && pump_output(a, p, &p->master, 1); i++)
                ;
        if (p->out_fd >= 0 || p->err_fd >= 0 || p->master >= 0) {
                /* Something else still holds them open: end the streams anyway. */
                if (p->out_fd >= 0)
                        send_stream(a, SILO_VM_STREAM(p->pid, 1), NULL, 0);
                if (p->err_fd >= 0)
                        send_stream(a, SILO_VM_STREAM(p->pid, 2), NULL, 0);
                if (p->master >= 0)
                        send_stream(a, SILO_VM_STREAM(p->pid, 1), NULL, 0);
                closep(&p->out_fd);
                closep(&p->err_fd);
                closep(&p->master);
        }
        closep(&p->in_fd);
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
                if (p->exec_seq) {
                        char path[64];
                        snprintf(path, sizeof(path), CONSOLE_DIR "/exec-%u.pid", p->exec_seq);
                        unlink(path);
                }
                /* A hosted container's owner deleted it before it exited:
                 * its slot and directories are free again. */
                for (int k = 0; k < MAX_CONTAINERS; k++) {
                        struct ctr *c = &a->ctrs[k];
                        if (!c->id[0] || c->init != pid || !c->hosted)
                                continue;
                        unmount_rootfs(c);
                        closep(&c->go_fd);
                        closep(&c->status_fd);
                        json_decref(c->spec);
                        *c = (struct ctr) { .go_fd = -1, .status_fd = -1 };
                }
        }
}

/* Stdin from the host.  A process that does not read its stdin loses what
 * does not fit its pipe rather than stalling the agent. */
static void handle_stdin(struct agent *a)
{
        ssize_t n = read(a->ports[PORT_STDIO], a->in_buf + a->in_len, sizeof(a->in_buf) - a->in_len);
        if (n <= 0)
                return;
        a->in_len += (size_t) n;
        while (a->in_len >= SILO_VM_STDIO_HEADER) {
                uint32_t stream, size;
                silo_vm_stdio_parse(a->in_buf, &stream, &size);
                if (size > SILO_VM_STDIO_CHUNK) {
                        logmsg("silo-guest: stdio frame of %u bytes", size);
                        a->in_len = 0;
                        return;
                }
                if (a->in_len < SILO_VM_STDIO_HEADER + size)
                        return;
                struct proc *p = stream % 4 == 0 ? find_proc(a, stream / 4) : NULL;
                int fd = p ? (p->master >= 0 ? p->master : p->in_fd) : -1;
                if (fd >= 0 && size > 0) {
                        ssize_t w = write(fd, a->in_buf + SILO_VM_STDIO_HEADER, size);
                        (void) w;
                } else if (p && size == 0 && p->master < 0) {
                        closep(&p->in_fd);
                }
                memmove(a->in_buf, a->in_buf + SILO_VM_STDIO_HEADER + size, a->in_len - SILO_VM_STDIO_HEADER - size);
                a->in_len -= SILO_VM_STDIO_HEADER + size;
        }
}

static json_int_t read_number(const char *path, const char *key)
{
        FILE *f = fopen(path, "re");
        char line[256];
        json_int_t v = -1;
        size_t klen = key ? strlen(key) : 0;
        while (f && fgets(line, sizeof(line), f)) {
                if (key && strncmp(line, key, klen))
                        continue;
                v = strtoll(line + klen, NULL, 10);
                break;
        }
        if (f)
                fclose(f);
        return v;
}

/* Stats from inside the VM: the guest's memory and the container's cgroup. */
static json_t *properties(const struct ctr *c)
{
        json_t *r = json_pack("{sIsI}", "MemTotalKiB", read_number("/proc/meminfo", "MemTotal:"),
                              "MemAvailableKiB", read_number("/proc/meminfo", "MemAvailable:"));
        const char *cg = c ? json_string_value(json_object_get(json_object_get(c->spec, "linux"), "cgroupsPath"))
                           : NULL;
        if (r && cg && cg[0] == '/' && !strstr(cg, "..") && strlen(cg) < 200) {
                char path[320];
                snprintf(path, sizeof(path), "/sys/fs/cgroup%s/memory.current", cg);
                json_object_set_new(r, "ContainerMemoryBytes", json_integer(read_number(path, NULL)));
                snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cpu.stat", cg);
                json_object_set_new(r, "ContainerCpuUsec", json_integer(read_number(path, "usage_usec ")));
                snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cgroup.procs", cg);
                json_int_t n = -1;
                FILE *f = fopen(path, "re");
                char line[32];
                for (n = f ? 0 : -1; f && n < 100000 && fgets(line, sizeof(line), f); n++)
                        ;
                if (f)
                        fclose(f);
                json_object_set_new(r, "ContainerPids", json_integer(n));
        }
        return r;
}

/* Everything stops, then the power-off (read-write mapped directories are
 * live shares: nothing to flush for the host). */
static __attribute__((noreturn)) void shutdown_guest(bool graceful)
{
        if (graceful) {
                kill(-1, SIGTERM);
                usleep(200 * 1000);
        }
        kill(-1, SIGKILL);
        int64_t deadline = now_ms() + 2000;
        while (now_ms() < deadline && (waitpid(-1, NULL, WNOHANG) >= 0 || errno != ECHILD))
                usleep(5000);
        sync();
        power_off();
}


/* ModifySettings of a utility VM: {"ResourceType": "Layer", "RequestType":
 * "Add" | "Remove", "Settings": {"Name", "Size"}}.  An Add is answered
 * before its bytes are read from "silo.data": the host sends them once it
 * knows the guest takes them, and the agent reads them all before it looks
 * at the next request, so a Create naming the layer comes after it. */
static void modify_settings(struct agent *a, struct silo_vm_msg *m)
{
        char errbuf[256] = "";
        json_t *b = m->body, *settings = json_object_get(b, "Settings");
        const char *type = json_string_value(json_object_get(b, "ResourceType"));
        const char *req = json_string_value(json_object_get(b, "RequestType"));
        const char *name = json_string_value(json_object_get(settings, "Name"));
        json_t *size = json_object_get(settings, "Size");
        /* Pause/Resume of a hosted container: libsilo freezes its cgroup here. */
        if (type && !strcmp(type, "Container") && req && (!strcmp(req, "Pause") || !strcmp(req, "Resume"))) {
                struct ctr *c = find_ctr(a, settings);
                struct silo_runtime rt = { .state_root = STATE_DIR };
                silo_error e = SILO_ERROR_INIT;
                int r = !c || !c->started ? -ESRCH
                        : !strcmp(req, "Pause") ? silo_container_pause(&rt, c->id, &e) : silo_container_resume(&rt, c->id, &e);
                if (r < 0)
                        respond_error(a, m->type, m->id, -r, "%s", c && c->started ? e.message : "no such running container");
                else
                        respond(a, m->type, m->id, 0, NULL, NULL);
                return;
        }
        /* A utility VM's NIC, configured once at boot: its containers share it. */
        if (type && !strcmp(type, "Network") && req && !strcmp(req, "Add")) {
                int r = guest_net_configure(settings, errbuf, sizeof(errbuf));
                if (r < 0)
                        respond_error(a, m->type, m->id, -r, "%s", errbuf);
                else
                        respond(a, m->type, m->id, 0, NULL, NULL);
                return;
        }
        if (!type || strcmp(type, "Layer") || !req || (strcmp(req, "Add") && strcmp(req, "Remove"))) {
                respond_error(a, m->type, m->id, ENOTSUP, "ModifySettings: only Layer Add and Remove and Network "
                              "Add are known");
                return;
        }
        if (!guest_layer_name_valid(name)) {
                respond_error(a, m->type, m->id, EINVAL, "Settings.Name: expected [A-Za-z0-9._-], at most %d",
                              GUEST_LAYER_NAME_MAX);
                return;
        }
        if (!strcmp(req, "Remove")) {
                int r = guest_layer_remove(name, errbuf, sizeof(errbuf));
                if (r < 0)
                        respond_error(a, m->type, m->id, -r, "%s", errbuf);
                else
                        respond(a, m->type, m->id, 0, NULL, NULL);
                return;
        }
        /* The image lives in guest memory until the loop device lets go. */
        json_int_t avail = read_number("/proc/meminfo", "MemAvailable:");
        if (!json_is_integer(size) || json_integer_value(size) < 1 ||
            (avail > 0 && json_integer_value(size) / 1024 > avail / 4 * 3)) {
                respond_error(a, m->type, m->id, json_is_integer(size) ? ENOSPC : EINVAL,
                              "Settings.Size: expected 1 .. 3/4 of the guest's available memory (%lld KiB)",
                              (long long) avail);
                return;
        }
        respond(a, m->type, m->id, 0, NULL, NULL);
        int r = guest_layer_add(a->ports[PORT_DATA], name, (uint64_t) json_integer_value(size), errbuf,
                                sizeof(errbuf));
        if (r < 0) {
                logmsg("silo-guest: %s", errbuf);
                snprintf(a->layer_error, sizeof(a->layer_error), "%s", errbuf);
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
                json_t *r = json_pack("{si s{sbsbsbsbsb}}", "Version", SILO_VM_PROTOCOL_VERSION, "Capabilities",
                                      "ExecuteProcess", 1, "SignalProcess", 1, "WaitForProcess", 1,
                                      "ResizeConsole", 1, "GetProperties", 1);
                respond(a, m->type, m->id, 0, NULL, r);
                return;
        }
        case SILO_VM_OP_CREATE: {
                json_t *spec = json_object_get(b, "Spec");
                const char *id = json_string_value(json_object_get(b, "ContainerId"));
                bool hosted = json_is_true(json_object_get(b, "Hosted"));
                if (!json_is_object(spec) || !id || !*id || strlen(id) >= sizeof(a->ctrs[0].id)) {
                        respond_error(a, m->type, m->id, EINVAL, "Spec: expected an object with a ContainerId");
                        return;
                }
                /* A VM container's VM holds that one container; a utility
                 * VM any number of hosted ones. */
                struct ctr *c = NULL;
                for (int k = 0; k < MAX_CONTAINERS; k++) {
                        struct ctr *x = &a->ctrs[k];
                        if (x->id[0] && (!strcmp(x->id, id) || !x->hosted || !hosted)) {
                                respond_error(a, m->type, m->id, EEXIST, "the container exists already");
                                return;
                        }
                        if (!x->id[0] && !c)
                                c = x;
                }
                if (!c) {
                        respond_error(a, m->type, m->id, EAGAIN, "this VM hosts %d containers already", MAX_CONTAINERS);
                        return;
                }
                const char *hostname = json_string_value(json_object_get(b, "HostName"));
                if (!hosted && hostname && sethostname(hostname, strnlen(hostname, 64)) < 0)
                        logmsg("silo-guest: sethostname: %m");
                *c = (struct ctr) { .spec = json_incref(spec), .hosted = hosted, .go_fd = -1, .status_fd = -1,
                                    .seq = ++a->ctr_seq };
                snprintf(c->id, sizeof(c->id), "%s", id);
                /* The VM's NIC is the single container's network (a hosted
                 * container has the VM's loopback only). */
                int r = hosted ? 0 : guest_net_configure(json_object_get(b, "Networking"), errbuf, sizeof(errbuf));
                if (r == 0)
                        r = create_container(a, c, b, errbuf, sizeof(errbuf));
                if (r < 0) {
                        bool why = r == -ENOENT && a->layer_error[0];
                        respond_error(a, m->type, m->id, -r, "%s%s%s%s", errbuf, why ? " (" : "",
                                      why ? a->layer_error : "", why ? ")" : "");
                        /* Without an owner nothing else will free it. */
                        if (c->hosted && c->init <= 0) {
                                unmount_rootfs(c);
                                json_decref(c->spec);
                                *c = (struct ctr) { .go_fd = -1, .status_fd = -1 };
                        }
                        return;
                }
                respond(a, m->type, m->id, 0, NULL, json_pack("{sI}", "ProcessId", (json_int_t) c->init));
                return;
        }
        case SILO_VM_OP_START: {
                struct ctr *c = find_ctr(a, b);
                if (!c || c->started || c->init <= 0 || c->go_fd < 0) {
                        respond_error(a, m->type, m->id, EINVAL, "%s", !c ? "no such container"
                                      : c->started ? "already started" : "the container was not created");
                        return;
                }
                c->started = true;
                int r = start_container(c, errbuf, sizeof(errbuf));
                if (r < 0) {
                        respond_error(a, m->type, m->id, -r, "%s", errbuf);
                        return;
                }
                respond(a, m->type, m->id, 0, NULL, json_pack("{sI}", "ProcessId", (json_int_t) c->init));
                return;
        }
        case SILO_VM_OP_EXECUTE_PROCESS: {
                json_t *process = json_object_get(b, "Process");
                struct ctr *c = find_ctr(a, b);
                if (!c || !c->started || !json_is_object(process) || procs_full(a)) {
                        respond_error(a, m->type, m->id, EINVAL, "%s", !c ? "no such container"
                                      : !c->started ? "the container is not started"
                                      : procs_full(a) ? "too many processes" : "Process: expected an object");
                        return;
                }
                pid_t pid = 0;
                int r = exec_process(a, c, process, &pid, errbuf, sizeof(errbuf));
                if (r < 0) {
                        respond_error(a, m->type, m->id, -r, "%s", errbuf);
                        return;
                }
                respond(a, m->type, m->id, 0, NULL, json_pack("{sI}", "ProcessId", (json_int_t) pid));
                return;
        }
        case SILO_VM_OP_MODIFY_SETTINGS:
                modify_settings(a, m);
                return;
        case SILO_VM_OP_SIGNAL_PROCESS:
        case SILO_VM_OP_WAIT_FOR_PROCESS:
        case SILO_VM_OP_RESIZE_CONSOLE: {
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
                if (op == SILO_VM_OP_RESIZE_CONSOLE) {
                        json_t *h = json_object_get(b, "Height"), *w = json_object_get(b, "Width");
                        struct winsize ws = {
                                .ws_row = (unsigned short) json_integer_value(h),
                                .ws_col = (unsigned short) json_integer_value(w),
                        };
                        if (!json_is_integer(h) || !json_is_integer(w) || json_integer_value(h) < 0 ||
                            json_integer_value(h) > 65535 || json_integer_value(w) < 0 || json_integer_value(w) > 65535)
                                respond_error(a, m->type, m->id, EINVAL, "Height, Width: expected 0..65535");
                        else if (p->master < 0 || ioctl(p->master, TIOCSWINSZ, &ws) < 0)
                                respond_error(a, m->type, m->id, ENOTTY, "the process has no terminal");
                        else
                                respond(a, m->type, m->id, 0, NULL, NULL);
                        return;
                }
                json_t *jsig = json_object_get(b, "Signal");
                if (!json_is_integer(jsig) || json_integer_value(jsig) < 1 || json_integer_value(jsig) > 64) {
                        respond_error(a, m->type, m->id, EINVAL, "Signal: expected 1..64");
                        return;
                }
                struct ctr *owned = ctr_of_init(a, p->pid);
                if (owned && !p->exited) {
                        stop_container(owned, (int) json_integer_value(jsig));
                        respond(a, m->type, m->id, 0, NULL, NULL);
                        return;
                }
                if (!p->exited && p->exec_seq && json_integer_value(jsig) == SIGKILL)
                        kill_exec_process(p);
                if (!p->exited && kill(p->pid, (int) json_integer_value(jsig)) < 0) {
                        respond_error(a, m->type, m->id, errno, "kill: %s", strerror(errno));
                        return;
                }
                respond(a, m->type, m->id, 0, NULL, NULL);
                return;
        }
        case SILO_VM_OP_GET_PROPERTIES:
                respond(a, m->type, m->id, 0, NULL, properties(find_ctr(a, b)));
                return;
        case SILO_VM_OP_SHUTDOWN_GRACEFUL:
        case SILO_VM_OP_SHUTDOWN_FORCED: {
                /* A hosted container stops alone; anything else powers off. */
                struct ctr *c = json_object_get(b, "ContainerId") ? find_ctr(a, b) : NULL;
                if (c && c->hosted) {
                        stop_container(c, op == SILO_VM_OP_SHUTDOWN_GRACEFUL ? SIGTERM : SIGKILL);
                        respond(a, m->type, m->id, 0, NULL, NULL);
                        return;
                }
                respond(a, m->type, m->id, 0, NULL, NULL);
                shutdown_guest(op == SILO_VM_OP_SHUTDOWN_GRACEFUL);
        }
        default:
                respond_error(a, m->type, m->id, ENOTSUP, "operation not supported");
                return;
        }
}

int main(void)
{
        static struct agent a = { .ports = { -1, -1, -1, -1, -1 } };
        mount_basics();
        load_modules();
        if (find_ports(a.ports) < 0) {
                logmsg("silo-guest: virtio-serial ports did not appear");
                power_off();
        }

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        sigaddset(&mask, SIGPIPE);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        sigdelset(&mask, SIGPIPE);
        int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

        struct silo_vm_reader reader;
        silo_error e = SILO_ERROR_INIT;
        if (sigfd < 0 || silo_vm_reader_init(&reader, &e) < 0)
                power_off();
        enum { P_CONTROL, P_STDIO, P_SIGNAL, P_PROCS };
        for (;;) {
                struct pollfd p[P_PROCS + 3 * MAX_PROCS];
                struct { struct proc *proc; int *fd; int stream; } src[3 * MAX_PROCS];
                p[P_CONTROL] = (struct pollfd) { .fd = a.ports[PORT_CONTROL], .events = POLLIN };
                p[P_STDIO] = (struct pollfd) { .fd = a.ports[PORT_STDIO], .events = POLLIN };
                p[P_SIGNAL] = (struct pollfd) { .fd = sigfd, .events = POLLIN };
                size_t n_src = 0;
                for (size_t i = 0; i < a.n_procs; i++) {
                        struct proc *pr = &a.procs[i];
                        int *fds[3] = { &pr->out_fd, &pr->err_fd, &pr->master };
                        for (int k = 0; k < 3; k++) {
                                if (*fds[k] < 0)
                                        continue;
                                src[n_src] = (typeof(src[0])) { pr, fds[k], k == 1 ? 2 : 1 };
                                p[P_PROCS + n_src++] = (struct pollfd) { .fd = *fds[k], .events = POLLIN };
                        }
                }
                if (poll(p, P_PROCS + n_src, -1) < 0 && errno != EINTR)
                        power_off();
                for (size_t i = 0; i < n_src; i++)
                        if (p[P_PROCS + i].revents && *src[i].fd >= 0)
                                pump_output(&a, src[i].proc, src[i].fd, src[i].stream);
                if (p[P_SIGNAL].revents) {
                        struct signalfd_siginfo si;
                        while (read(sigfd, &si, sizeof(si)) == sizeof(si))
                                ;
                        reap(&a);
                }
                if (p[P_STDIO].revents & POLLIN)
                        handle_stdin(&a);
                else if (p[P_STDIO].revents)
                        usleep(10000);  /* the host end is not connected (yet): wait */
                if (!p[P_CONTROL].revents)
                        continue;
                ssize_t n = silo_vm_reader_fill(&reader, a.ports[PORT_CONTROL], &e);
                if (n == 0 || p[P_CONTROL].revents & POLLHUP) {
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
