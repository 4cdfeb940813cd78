/* `run` of a VM-isolated bundle: rootfs image, QEMU, protocol, output,
 * teardown.  Everything the run creates is gone when it returns: the image
 * is unlinked before QEMU starts and QEMU is killed and reaped. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "silo-config.h"
#include "spec/spec.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
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

static int run_tool(char *const argv[], silo_error *err)
{
        pid_t pid = fork();
        if (pid < 0)
                return silo_error_set(err, errno, "fork %s", argv[0]);
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (devnull >= 0) {
                        dup2(devnull, 0);
                        dup2(devnull, 1);
                        dup2(devnull, 2);
                }
                execvp(argv[0], argv);
                _exit(127);
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return silo_error_set(err, errno, "waitpid %s", argv[0]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return silo_error_msg(err, EIO, "%s failed (status %d%s)", argv[0],
                                      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                                      WIFEXITED(status) && WEXITSTATUS(status) == 127 ? ", is erofs-utils installed?" : "");
        return 0;
}

int silo_vm_rootfs_image(const char *rootfs, int *ret_fd, silo_error *err)
{
        const char *tmp = getenv("TMPDIR");
        char dir[PATH_MAX], image[PATH_MAX];
        if (snprintf(dir, sizeof(dir), "%s/silo-vm-XXXXXX", tmp && *tmp == '/' ? tmp : "/tmp") >= (int) sizeof(dir))
                return silo_error_msg(err, ENAMETOOLONG, "TMPDIR too long");
        if (!mkdtemp(dir))
                return silo_error_set(err, errno, "mkdtemp %s", dir);
        if (snprintf(image, sizeof(image), "%s/rootfs.erofs", dir) >= (int) sizeof(image)) {
                rmdir(dir);
                return silo_error_msg(err, ENAMETOOLONG, "TMPDIR too long");
        }
        /* -x-1: no xattrs (security.* labels of the host mean nothing in the guest). */
        char *const argv[] = { "mkfs.erofs", "--quiet", "-x-1", (char *) image, (char *) rootfs, NULL };
        int r = run_tool(argv, err);
        int fd = -1;
        if (r == 0) {
                fd = open(image, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0)
                        r = silo_error_set(err, errno, "open %s", image);
        }
        unlink(image);
        rmdir(dir);
        if (r < 0)
                return silo_error_prefix(err, "building the VM rootfs image of %s", rootfs);
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

struct vm_params {
        const char *kernel, *initrd, *qemu;
        enum silo_vm_accel accel;
        unsigned mem_mb, cpus;
        int boot_timeout_ms;
        bool debug;
        bool accel_auto;        /* chosen by the probe, not asked for */
        const char *extra_cmdline;
};

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

static int vm_params_get(const struct silo_spec *spec, struct vm_params *p, silo_error *err)
{
        /* The uncompressed kernel mkinitramfs.sh extracts boots faster. */
        static const char *const kernels[] = { SILO_LIBEXECDIR "/silo/vmlinux", "/vmlinuz", NULL };
        static const char *const initrds[] = { SILO_LIBEXECDIR "/silo/initramfs.img", NULL };
        p->kernel = first_existing("SILO_VM_KERNEL", kernels);
        p->initrd = first_existing("SILO_VM_INITRD", initrds);
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
        int r = env_int("SILO_VM_BOOT_TIMEOUT_MS", 1, 600000, &v, err);
        if (r < 0)
                return r;
        p->boot_timeout_ms = r ? (int) v : DEFAULT_BOOT_TIMEOUT_MS;
        r = env_int("SILO_VM_MEM_MB", SILO_VM_MIN_MEM_MB, SILO_VM_MAX_MEM_MB, &v, err);
        if (r < 0)
                return r;
        if (r)
                p->mem_mb = (unsigned) v;
        p->debug = getenv("SILO_VM_DEBUG") && !strcmp(getenv("SILO_VM_DEBUG"), "1");
        p->extra_cmdline = getenv("SILO_VM_APPEND");
        if (p->extra_cmdline && strlen(p->extra_cmdline) > 512)
                return silo_error_msg(err, E2BIG, "SILO_VM_APPEND: longer than 512 bytes");
        return 0;
}

/* Waits a little for QEMU to leave after the guest powered off, then kills it. */
static void vm_stop(struct silo_vm *vm, int timeout_ms)
{
        if (vm->pidfd >= 0 && vm->pid > 0) {
                struct pollfd p = { .fd = vm->pidfd, .events = POLLIN };
                while (poll(&p, 1, timeout_ms) < 0 && errno == EINTR)
                        ;
        }
        silo_vm_destroy(vm);
}

static int forward_signals(struct silo_vm_session *s, uint32_t process_id, silo_error *err)
{
        uint64_t pending = s->pending_signals;
        s->pending_signals = 0;
        for (int sig = 1; sig <= 64; sig++) {
                if (!(pending & (1ull << (sig - 1))))
                        continue;
                _cleanup_json_ json_t *req = json_pack("{sisi}", "ProcessId", (int) process_id, "Signal", sig);
                if (!req)
                        return silo_error_set(err, ENOMEM, "SignalProcess");
                int r = silo_vm_session_request(s, SILO_VM_OP_SIGNAL_PROCESS, req, REQUEST_TIMEOUT_MS, NULL, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Create, Start, wait for the exit: the guest has answered NegotiateProtocol. */
static int run_in_vm(struct silo_vm_session *s, const char *id, const struct silo_spec *spec, int *ret_status,
                     silo_error *err)
{
        json_t *process = json_object_get(spec->json, "process");
        /* The whole config too: the guest runs it through libsilo's process backend. */
        _cleanup_json_ json_t *create = json_pack("{ss sO sO s{sb}}", "ContainerId", id, "Process", process,
                                                  "Spec", spec->json, "Rootfs", "ReadOnly", spec->root_readonly);
        if (!create)
                return silo_error_set(err, ENOMEM, "Create");
        if (spec->hostname && json_object_set_new(create, "HostName", json_string(spec->hostname)) < 0)
                return silo_error_set(err, ENOMEM, "Create");
        int r = silo_vm_session_request(s, SILO_VM_OP_CREATE, create, REQUEST_TIMEOUT_MS, NULL, err);
        if (r < 0)
                return r;

        _cleanup_json_ json_t *start = json_pack("{ss}", "ContainerId", id);
        _cleanup_json_ json_t *started = NULL;
        if (!start)
                return silo_error_set(err, ENOMEM, "Start");
        r = silo_vm_session_request(s, SILO_VM_OP_START, start, REQUEST_TIMEOUT_MS, &started, err);
        if (r < 0)
                return r;
        json_t *jpid = json_object_get(started, "ProcessId");
        if (!json_is_integer(jpid) || json_integer_value(jpid) < 1 || json_integer_value(jpid) > INT32_MAX)
                return silo_error_msg(err, EPROTO, "guest Start: ProcessId missing or out of range");
        uint32_t process_id = (uint32_t) json_integer_value(jpid);

        int code = 0;
        for (;;) {
                r = silo_vm_session_wait_exit(s, process_id, -1, &code, err);
                if (r != -EINTR)
                        break;
                r = forward_signals(s, process_id, err);
                if (r < 0)
                        return r;
        }
        /* A crashed or killed VM ends the run as an error the user sees. */
        if (r == -EPIPE || r == -ESRCH)
                return silo_error_prefix(err, "the VM stopped before the process exited");
        if (r < 0)
                return r;
        silo_vm_session_drain(s, OUTPUT_DRAIN_IDLE_MS);
        *ret_status = code;

        /* Best effort: the guest powers off; QEMU is killed anyway after. */
        _cleanup_json_ json_t *stop = json_pack("{ss}", "ContainerId", id);
        if (stop)
                silo_vm_session_request(s, SILO_VM_OP_SHUTDOWN_FORCED, stop, SHUTDOWN_TIMEOUT_MS, NULL, NULL);
        return 0;
}

int silo_vm_container_run(const struct silo_runtime *rt, const char *id, const struct silo_create_options *opts,
                          bool detach, int *ret_status, silo_error *err)
{
        *ret_status = 0;
        if (detach)
                return silo_error_msg(err, EOPNOTSUPP, "VM isolation: only a foreground run is supported so far");
        if (opts->console_socket)
                return silo_error_msg(err, EOPNOTSUPP, "VM isolation: --console-socket is not supported yet");

        const char *bundle = opts->bundle ? opts->bundle : ".";
        _cleanup_close_ int bundlefd = open(bundle, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (bundlefd < 0)
                return silo_error_set(err, errno, "open bundle %s", bundle);
        struct silo_spec *spec = NULL;
        int r = silo_spec_load_at(bundlefd, "config.json", &spec, err);
        if (r < 0)
                return r;
        struct silo_vm vm = SILO_VM_INIT;
        struct silo_vm_session s;
        bool have_session = false;
        int imagefd = -1, sigfd = -1;
        sigset_t fwd, old;
        sigemptyset(&fwd);
        static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
        for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
                sigaddset(&fwd, forwarded[i]);
        sigprocmask(SIG_BLOCK, &fwd, &old);

        if (!spec->has_process || !spec->process.args || !spec->process.args[0]) {
                r = silo_error_msg(err, EINVAL, "process.args: must name at least the program to run");
                goto out;
        }
        if (spec->process.terminal) {
                r = silo_error_msg(err, EOPNOTSUPP, "VM isolation: process.terminal is not supported yet");
                goto out;
        }
        struct vm_params p = { 0 };
        r = vm_params_get(spec, &p, err);
        if (r < 0)
                goto out;

        char rootfs[PATH_MAX];
        if (snprintf(rootfs, sizeof(rootfs), "%s/%s", spec->root_path[0] == '/' ? "" : bundle, spec->root_path) >=
            (int) sizeof(rootfs)) {
                r = silo_error_msg(err, ENAMETOOLONG, "root.path too long");
                goto out;
        }
        r = silo_vm_rootfs_image(rootfs, &imagefd, err);
        if (r < 0)
                goto out;

        struct silo_vm_config cfg = {
                .qemu = p.qemu, .kernel = p.kernel, .initrd = p.initrd, .rootfs_fd = imagefd,
                .mem_mb = p.mem_mb, .cpus = p.cpus, .accel = p.accel, .debug_console = p.debug,
                .extra_cmdline = p.extra_cmdline,
        };
        sigfd = signalfd(-1, &fwd, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sigfd < 0) {
                r = silo_error_set(err, errno, "signalfd");
                goto out;
        }
        for (int attempt = 0;; attempt++) {
                r = silo_vm_launch(&cfg, &vm, err);
                if (r < 0)
                        goto out;
                r = silo_vm_session_init(&s, vm.control_fd, err);
                if (r < 0)
                        goto out;
                have_session = true;
                s.vm_pidfd = vm.pidfd;
                s.stdout_in = vm.stdout_fd;
                s.stderr_in = vm.stderr_fd;
                s.stdout_out = STDOUT_FILENO;
                s.stderr_out = STDERR_FILENO;
                s.sigfd = sigfd;
                r = silo_vm_session_negotiate(&s, p.boot_timeout_ms, err);
                if (r == 0)
                        break;
                /* The probe cannot prove a KVM boots Linux: if QEMU died on a
                 * KVM that was only chosen automatically, TCG gets one try. */
                if (attempt == 0 && p.accel_auto && cfg.accel == SILO_VM_ACCEL_KVM &&
                    (r == -ESRCH || r == -EPIPE)) {
                        if (rt && rt->warn)
                                rt->warn(rt->userdata, "VM isolation: KVM failed to boot the guest, falling back to TCG");
                        silo_vm_session_done(&s);
                        have_session = false;
                        silo_vm_destroy(&vm);
                        cfg.accel = SILO_VM_ACCEL_TCG;
                        continue;
                }
                silo_error_prefix(err, "VM boot (%s)", silo_vm_accel_to_string(cfg.accel));
                goto out;
        }
        silo_closep(&imagefd);
        imagefd = -1;
        r = run_in_vm(&s, id, spec, ret_status, err);
out:
        if (have_session)
                silo_vm_session_done(&s);
        vm_stop(&vm, r < 0 ? 0 : SHUTDOWN_TIMEOUT_MS);
        silo_closep(&sigfd);
        silo_closep(&imagefd);
        /* Signals that arrived while blocked must not hit us after unblocking:
         * they were meant for the container. */
        struct timespec zero = { 0, 0 };
        while (sigtimedwait(&fwd, NULL, &zero) > 0)
                ;
        sigprocmask(SIG_SETMASK, &old, NULL);
        silo_spec_free(spec);
        return r;
}
