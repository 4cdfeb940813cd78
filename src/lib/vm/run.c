/* What every VM is made of: its parameters, the rootfs image; and `run`,
 * which is create + start + wait + delete through the shim (lifecycle.c). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "silo-config.h"
#include "spec/spec.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "process/internal.h"
#include "process/sync.h"
#include "vm/vm.h"

#define DEFAULT_BOOT_TIMEOUT_MS 60000
#define REQUEST_TIMEOUT_MS 30000
#define SHUTDOWN_TIMEOUT_MS 3000
#define OUTPUT_DRAIN_IDLE_MS 50

bool silo_vm_wanted(json_t *config)
{
        const char *iso = json_string_value(json_object_get(json_object_get(config, "annotations"), SILO_VM_ANNOTATION));
        return iso && (!strcmp(iso, "vm") || !strcmp(iso, "hyperv"));
}

int silo_vm_rootfs_image(const char *rootfs, int *ret_fd, silo_error *err)
{
        int r = silo_vm_erofs_image(rootfs, ret_fd, err);
        return r < 0 ? silo_error_prefix(err, "building the VM rootfs image of %s", rootfs) : 0;
}

int silo_vm_erofs_image(const char *source, int *ret_fd, silo_error *err)
{
        char dir[PATH_MAX], image[PATH_MAX];
        int r = silo_vm_tempdir(dir, err);
        if (r < 0)
                return r;
        if (snprintf(image, sizeof(image), "%s/rootfs.erofs", dir) >= (int) sizeof(image)) {
                rmdir(dir);
                return silo_error_msg(err, ENAMETOOLONG, "TMPDIR too long");
        }
        /* -x-1: no xattrs (security.* labels of the host mean nothing in the guest). */
        char *const argv[] = { "mkfs.erofs", "--quiet", "-x-1", (char *) image, (char *) source, NULL };
        r = silo_vm_run_tool(argv, -1, err);
        int fd = -1;
        if (r == 0) {
                fd = open(image, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0)
                        r = silo_error_set(err, errno, "open %s", image);
        }
        unlink(image);
        rmdir(dir);
        if (r < 0)
                return r;
        *ret_fd = fd;
        return 0;
}

static const char *first_existing(const char *env, const char *const *candidates)
{
        const char *e = getenv(env);
        if (e && *e)
                return e;
        for (; *candidates; candidates++)
                if (access(*candidates, R_OK) == 0)
                        return *candidates;
        return NULL;
}

static int env_int(const char *name, long min, long max, long *ret, silo_error *err)
{
        const char *v = getenv(name);
        if (!v || !*v)
                return 0;
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || *end || x < min || x > max)
                return silo_error_msg(err, EINVAL, "%s=%s: expected an integer in [%ld, %ld]", name, v, min, max);
        *ret = x;
        return 1;
}

static int annotation_int(json_t *annotations, const char *key, long min, long max, long *ret, silo_error *err)
{
        const char *v = json_string_value(json_object_get(annotations, key));
        if (!v)
                return 0;
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || !*v || *end || x < min || x > max)
                return silo_error_msg(err, EINVAL, "annotation %s=\"%.32s\": expected an integer in [%ld, %ld]", key, v,
                                      min, max);
        *ret = x;
        return 1;
}

/* A utility VM's own settings (the compute API's VirtualMachine document):
 * they win over the defaults and the environment. */
static int params_from_annotations(json_t *ann, struct silo_vm_params *p, silo_error *err)
{
        const char *kernel = json_string_value(json_object_get(ann, SILO_VM_KERNEL_ANNOTATION));
        const char *initrd = json_string_value(json_object_get(ann, SILO_VM_INITRD_ANNOTATION));
        const char *cmdline = json_string_value(json_object_get(ann, SILO_VM_CMDLINE_ANNOTATION));
        if (kernel && (kernel[0] != '/' || access(kernel, R_OK) < 0))
                return silo_error_set(err, kernel[0] != '/' ? EINVAL : errno, "VM kernel %s (annotation %s)", kernel,
                                      SILO_VM_KERNEL_ANNOTATION);
        if (initrd && (initrd[0] != '/' || access(initrd, R_OK) < 0))
                return silo_error_set(err, initrd[0] != '/' ? EINVAL : errno, "VM initrd %s (annotation %s)", initrd,
                                      SILO_VM_INITRD_ANNOTATION);
        if (cmdline && strlen(cmdline) > 512)
                return silo_error_msg(err, E2BIG, "annotation %s: longer than 512 bytes", SILO_VM_CMDLINE_ANNOTATION);
        if (kernel)
                p->kernel = kernel;
        if (initrd)
                p->initrd = initrd;
        if (cmdline)
                p->extra_cmdline = cmdline;
        long v = 0;
        int r = annotation_int(ann, SILO_VM_MEMORY_ANNOTATION, SILO_VM_MIN_MEM_MB, SILO_VM_MAX_MEM_MB, &v, err);
        if (r < 0)
                return r;
        if (r)
                p->mem_mb = (unsigned) v;
        r = annotation_int(ann, SILO_VM_CPUS_ANNOTATION, 1, SILO_VM_MAX_CPUS, &v, err);
        if (r < 0)
                return r;
        if (r)
                p->cpus = (unsigned) v;
        return 0;
}

int silo_vm_params_get(const struct silo_spec *spec, struct silo_vm_params *p, silo_error *err)
{
        int r;
        /* The uncompressed kernel mkinitramfs.sh extracts boots faster. */
        /* Installed, else beside an uninstalled build's binaries
         * (build/src/{runtime,daemon}/ -> build/src/guest/): runtimes
         * started by podman's conmon or silod do not get our environment. */
        /* argv[0], not /proc/self/exe: silo-runtime re-executes itself from
         * a detached clone of its mount (process/exe.h). */
        char self[PATH_MAX] = "";
        int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
        ssize_t len = fd >= 0 ? read(fd, self, sizeof(self) - 1) : -1;
        if (fd >= 0)
                close(fd);
        self[len > 0 ? len : 0] = 0;
        if (self[0] != '/') {
                len = readlink("/proc/self/exe", self, sizeof(self) - 1);
                self[len > 0 ? len : 0] = 0;
        }
        char *slash = strrchr(self, '/');
        if (slash)
                *slash = 0;
        snprintf(p->kernel_buf, sizeof(p->kernel_buf), "%.4000s/../guest/vmlinux", self);
        snprintf(p->initrd_buf, sizeof(p->initrd_buf), "%.4000s/../guest/initramfs.img", self);
        const char *const kernels[] = { SILO_LIBEXECDIR "/silo/vmlinux", p->kernel_buf, "/vmlinuz", NULL };
        const char *const initrds[] = { SILO_LIBEXECDIR "/silo/initramfs.img", p->initrd_buf, NULL };
        p->kernel = first_existing("SILO_VM_KERNEL", kernels);
        p->initrd = first_existing("SILO_VM_INITRD", initrds);
        p->extra_cmdline = getenv("SILO_VM_APPEND");
        if (p->extra_cmdline && strlen(p->extra_cmdline) > 512)
                return silo_error_msg(err, E2BIG, "SILO_VM_APPEND: longer than 512 bytes");
        r = params_from_annotations(spec->annotations, p, err);
        if (r < 0)
                return r;
        if (!p->kernel)
                return silo_error_msg(err, ENOENT, "VM isolation: no guest kernel (install linux-image-cloud-amd64 "
                                      "or set SILO_VM_KERNEL)");
        if (!p->initrd)
                return silo_error_msg(err, ENOENT, "VM isolation: no initramfs at " SILO_LIBEXECDIR
                                      "/silo/initramfs.img (build it with scripts/mkinitramfs.sh or set SILO_VM_INITRD)");
        p->qemu = getenv("SILO_VM_QEMU");

        const char *accel = json_string_value(json_object_get(spec->annotations, "io.silo.vm.accel"));
        if (getenv("SILO_VM_ACCEL") && *getenv("SILO_VM_ACCEL"))
                accel = getenv("SILO_VM_ACCEL");
        p->accel = silo_vm_accel_from_string(accel);
        if (p->accel == _SILO_VM_ACCEL_INVALID)
                return silo_error_msg(err, EINVAL, "VM accelerator \"%s\": expected auto, kvm or tcg", accel);
        p->accel_auto = p->accel == SILO_VM_ACCEL_AUTO;
        p->accel = silo_vm_accel_resolve(p->accel);

        /* The container's memory limit sizes the VM, plus the guest's own needs. */
        p->mem_mb = SILO_VM_DEFAULT_MEM_MB;
        if (spec->resources.memory.limit.set && spec->resources.memory.limit.value > 0) {
                int64_t mb = spec->resources.memory.limit.value / (1024 * 1024) + SILO_VM_MEM_OVERHEAD_MB;
                p->mem_mb = (unsigned) (mb < SILO_VM_MIN_MEM_MB ? SILO_VM_MIN_MEM_MB
                                        : mb > SILO_VM_MAX_MEM_MB ? SILO_VM_MAX_MEM_MB : mb);
        }
        /* A CPU quota becomes whole vCPUs (rounded up), at most the host's. */
        p->cpus = 1;
        if (spec->resources.cpu.quota.set && spec->resources.cpu.quota.value > 0) {
                uint64_t period = spec->resources.cpu.period.set && spec->resources.cpu.period.value ?
                                  spec->resources.cpu.period.value : 100000;
                uint64_t n = ((uint64_t) spec->resources.cpu.quota.value + period - 1) / period;
                long host = sysconf(_SC_NPROCESSORS_ONLN);
                uint64_t cap = host > 0 && host < SILO_VM_MAX_CPUS ? (uint64_t) host : SILO_VM_MAX_CPUS;
                p->cpus = (unsigned) (n < 1 ? 1 : n > cap ? cap : n);
        }
        long v = 0;
        r = env_int("SILO_VM_BOOT_TIMEOUT_MS", 1, 600000, &v, err);
        if (r < 0)
                return r;
        p->boot_timeout_ms = r ? (int) v : DEFAULT_BOOT_TIMEOUT_MS;
        r = env_int("SILO_VM_MEM_MB", SILO_VM_MIN_MEM_MB, SILO_VM_MAX_MEM_MB, &v, err);
        if (r < 0)
                return r;
        if (r)
                p->mem_mb = (unsigned) v;
        p->debug = getenv("SILO_VM_DEBUG") && !strcmp(getenv("SILO_VM_DEBUG"), "1");
        long mem = 0, cpus = 0;
        if (annotation_int(spec->annotations, SILO_VM_MEMORY_ANNOTATION, SILO_VM_MIN_MEM_MB, SILO_VM_MAX_MEM_MB,
                           &mem, NULL) > 0)
                p->mem_mb = (unsigned) mem;
        if (annotation_int(spec->annotations, SILO_VM_CPUS_ANNOTATION, 1, SILO_VM_MAX_CPUS, &cpus, NULL) > 0)
                p->cpus = (unsigned) cpus;
        return 0;
}

/* Waits a little for QEMU to leave after the guest powered off, then kills it. */
void silo_vm_stop(struct silo_vm *vm, int timeout_ms)
{
        if (vm->pidfd >= 0 && vm->pid > 0) {
                struct pollfd p = { .fd = vm->pidfd, .events = POLLIN };
                while (poll(&p, 1, timeout_ms) < 0 && errno == EINTR)
                        ;
        }
        silo_vm_destroy(vm);
}

int silo_vm_container_run(const struct silo_runtime *rt, const char *id, const struct silo_create_options *opts,
                          bool detach, int *ret_status, silo_error *err)
{
        *ret_status = 0;
        bool local_tty = false;
        if (!detach) {
                _cleanup_json_ json_t *config = NULL;
                char path[PATH_MAX];
                snprintf(path, sizeof(path), "%s/config.json", opts->bundle ? opts->bundle : ".");
                if (silo_json_load_file_at(AT_FDCWD, path, SILO_CONFIG_MAX_BYTES, &config, NULL) == 0 &&
                    silo_vm_hosted(json_object_get(config, "annotations")))
                        return silo_error_msg(err, EOPNOTSUPP, "run: a container hosted in a utility VM runs "
                                              "detached (its VM's shim holds its exit code): use --detach or "
                                              "create and start");
                local_tty = !opts->console_socket && config &&
                            json_is_true(json_object_get(json_object_get(config, "process"), "terminal"));
        }
        /* A foreground run with a terminal and no console socket proxies the
         * pty itself, as for a process container: the master comes to a
         * socket of our own in a private directory. */
        char tmpdir[PATH_MAX] = "", sock_path[PATH_MAX + 16] = "";
        _cleanup_close_ int listener = -1, master = -1;
        struct silo_create_options local_opts = *opts;
        if (local_tty) {
                int r = silo_vm_tempdir(tmpdir, err);
                if (r < 0)
                        return r;
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                snprintf(sock_path, sizeof(sock_path), "%s/console.sock", tmpdir);
                listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (strlen(sock_path) >= sizeof(sa.sun_path) || listener < 0) {
                        rmdir(tmpdir);
                        return silo_error_msg(err, ENAMETOOLONG, "console socket %s", sock_path);
                }
                strcpy(sa.sun_path, sock_path);
                if (bind(listener, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(listener, 1) < 0) {
                        r = silo_error_set(err, errno, "console socket %s", sock_path);
                        rmdir(tmpdir);
                        return r;
                }
                local_opts.console_socket = sock_path;
                opts = &local_opts;
        }
        if (detach) {
                bool handled = false;
                int r = silo_vm_container_dispatch_create(rt, id, opts, &handled, err);
                if (r == 0 && handled) {
                        r = silo_container_start(rt, id, err);
                        if (r < 0) {
                                silo_error keep = *err;
                                silo_container_delete(rt, id, true, NULL);
                                *err = keep;
                        }
                }
                if (r < 0 || handled)
                        return r;
        }
        /* Blocked from before the shim exists: a signal at any point is
         * forwarded to the container rather than killing us. */
        sigset_t fwd, old;
        silo_forwarded_signals(&fwd);
        if (!detach)
                sigprocmask(SIG_BLOCK, &fwd, &old);
        pid_t shim = 0;
        int r = silo_vm_container_create_shim(rt, id, opts, !detach, &shim, err);
        if (local_tty) {
                /* create connected and sent the master before it returned. */
                if (r == 0) {
                        _cleanup_close_ int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                        master = conn >= 0 ? silo_recv_fd(conn) : -1;
                        if (master < 0)
                                r = silo_error_msg(err, EIO, "no terminal from the VM shim");
                        /* Our terminal's size, before the process starts. */
                        struct winsize ws;
                        if (master >= 0 && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
                                ioctl(master, TIOCSWINSZ, &ws);
                }
                unlink(sock_path);
                rmdir(tmpdir);
        }
        if (r == 0)
                r = silo_container_start(rt, id, err);
        if (r < 0 || detach) {
                if (r < 0 && shim > 0) {
                        silo_error keep = *err;
                        silo_container_delete(rt, id, true, NULL);
                        *err = keep;
                }
                if (!detach)
                        sigprocmask(SIG_SETMASK, &old, NULL);
                return r;
        }
        if (master >= 0) {
                _cleanup_close_ int pidfd = (int) syscall(SYS_pidfd_open, shim, 0);
                silo_console_proxy(master, shim, pidfd, NULL);
        }
        *ret_status = silo_wait_forwarding(shim, &fwd);
        struct timespec zero = { 0, 0 };
        while (sigtimedwait(&fwd, NULL, &zero) > 0)
                ;
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (opts->keep)
                return 0;
        return silo_container_delete(rt, id, true, err);
}
