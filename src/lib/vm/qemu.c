/* Launching QEMU: microvm, direct kernel boot, virtio-mmio devices only.
 * Every channel is a socketpair whose far end QEMU inherits (chardev
 * socket,fd=N), so no socket path ever exists on disk. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "vm/vm.h"

#define QEMU_ARGV_MAX 160
#define QEMU_ARG_BYTES 8192
#define N_PORTS 6

enum silo_vm_accel silo_vm_accel_from_string(const char *s)
{
        if (!s || !strcmp(s, "auto") || !*s)
                return SILO_VM_ACCEL_AUTO;
        if (!strcmp(s, "kvm"))
                return SILO_VM_ACCEL_KVM;
        if (!strcmp(s, "tcg"))
                return SILO_VM_ACCEL_TCG;
        return _SILO_VM_ACCEL_INVALID;
}

const char *silo_vm_accel_to_string(enum silo_vm_accel a)
{
        switch (a) {
        case SILO_VM_ACCEL_AUTO:
                return "auto";
        case SILO_VM_ACCEL_KVM:
                return "kvm";
        case SILO_VM_ACCEL_TCG:
                return "tcg";
        case _SILO_VM_ACCEL_MAX:
        case _SILO_VM_ACCEL_INVALID:
                break;
        }
        return "invalid";
}

enum silo_vm_accel silo_vm_accel_resolve(enum silo_vm_accel want)
{
        if (want != SILO_VM_ACCEL_AUTO)
                return want;
        return silo_vm_probe_kvm(NULL) == 0 ? SILO_VM_ACCEL_KVM : SILO_VM_ACCEL_TCG;
}

void silo_vm_destroy(struct silo_vm *vm)
{
        if (vm->pid > 0) {
                kill(vm->pid, SIGKILL);
                while (waitpid(vm->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                vm->pid = 0;
        }
        silo_closep(&vm->pidfd);
        silo_closep(&vm->control_fd);
        silo_closep(&vm->stdout_fd);
        silo_closep(&vm->stderr_fd);
        silo_closep(&vm->stdio_fd);
        silo_closep(&vm->data_fd);
        silo_closep(&vm->fs_fd);
        vm->pidfd = vm->control_fd = vm->stdout_fd = vm->stderr_fd = vm->stdio_fd = vm->data_fd = vm->fs_fd = -1;
}

struct argv_builder {
        char *argv[QEMU_ARGV_MAX];
        size_t n;
        char bytes[QEMU_ARG_BYTES];
        size_t used;
        bool overflow;
};

static void __attribute__((format(printf, 2, 3))) arg(struct argv_builder *b, const char *fmt, ...)
{
        if (b->n + 1 >= QEMU_ARGV_MAX) {
                b->overflow = true;
                return;
        }
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->bytes + b->used, sizeof(b->bytes) - b->used, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof(b->bytes) - b->used) {
                b->overflow = true;
                return;
        }
        b->argv[b->n++] = b->bytes + b->used;
        b->argv[b->n] = NULL;
        b->used += (size_t) n + 1;
}

/* Under TCG the guest's TSC ticks at the host's rate, but calibrating it
 * against the emulated PIT fails on a busy host and the boot then stalls:
 * tell the kernel the rate instead.  0 if unknown. */
static unsigned long host_tsc_khz(void)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
        char line[256];
        for (int i = 0; f && i < 64 && fgets(line, sizeof(line), f); i++) {
                double mhz;
                if (sscanf(line, "cpu MHz : %lf", &mhz) == 1 && mhz > 100 && mhz < 100000)
                        return (unsigned long) (mhz * 1000);
        }
        return 0;
}

/* Builds the whole command line before fork: the child only execs. */
static int build_argv(const struct silo_vm_config *cfg, const int guest_fds[N_PORTS], struct argv_builder *b,
                      silo_error *err)
{
        static const char *const port_names[N_PORTS] = { "silo.control", "silo.stdout", "silo.stderr", "silo.stdio",
                                                         "silo.data", "silo.fs" };
        bool kvm = cfg->accel == SILO_VM_ACCEL_KVM;

        arg(b, "%s", cfg->qemu ? cfg->qemu : "qemu-system-x86_64");
        /* No option ROMs, legacy timers or RTC: none is needed by a direct
         * kernel boot, each costs boot time. */
        arg(b, "-M");
        arg(b, "microvm,x-option-roms=off");
        arg(b, "-accel");
        arg(b, "%s", kvm ? "kvm" : "tcg");
        arg(b, "-cpu");
        arg(b, "%s", kvm ? "host" : "max");
        arg(b, "-m");
        arg(b, "%u", cfg->mem_mb);
        arg(b, "-smp");
        arg(b, "%u", cfg->cpus);
        arg(b, "-nodefaults");
        arg(b, "-no-user-config");
        arg(b, "-nographic");
        arg(b, "-no-reboot");
        arg(b, "-serial");
        arg(b, "%s", cfg->debug_console ? "stdio" : "none");
        arg(b, "-kernel");
        arg(b, "%s", cfg->kernel);
        arg(b, "-initrd");
        arg(b, "%s", cfg->initrd);
        /* panic=-1 and reboot=t with -no-reboot: a crashed or finished
         * guest ends QEMU at once. */
        arg(b, "-append");
        /* TCG only: emulated speculation attacks nothing, so the guest's
         * Spectre mitigations and KASLR's relocation are pure emulation cost
         * (about 1.2 s of a 3.3 s boot here, docs/VM.md). */
        char tsc[128] = "";
        unsigned long khz = kvm ? 0 : host_tsc_khz();
        if (!kvm)
                snprintf(tsc, sizeof(tsc), " mitigations=off nokaslr");
        if (khz)
                snprintf(tsc + strlen(tsc), sizeof(tsc) - strlen(tsc), " tsc_early_khz=%lu tsc=reliable", khz);
        arg(b, "console=ttyS0 %s panic=-1 reboot=t pci=off i8042.noaux i8042.nokbd cryptomgr.notests "
            "no_timer_check%s%s%s",
            cfg->debug_console ? "loglevel=7" : "quiet", tsc, cfg->extra_cmdline ? " " : "",
            cfg->extra_cmdline ? cfg->extra_cmdline : "");
        arg(b, "-device");
        /* The share port only when it may be used: every port costs the
         * guest its receive buffers (half a MiB). */
        int n_ports = cfg->fs_port ? N_PORTS : N_PORTS - 1;
        arg(b, "virtio-serial-device,max_ports=%d", N_PORTS + 1);     /* port 0 is the console's */
        for (int i = 0; i < n_ports; i++) {
                arg(b, "-chardev");
                arg(b, "socket,id=port%d,fd=%d", i, guest_fds[i]);
                arg(b, "-device");
                arg(b, "virtserialport,chardev=port%d,name=%s", i, port_names[i]);
        }
        /* Free page reporting hands the pages the guest touched while booting
         * and then freed back to the host. */
        arg(b, "-device");
        arg(b, "virtio-balloon-device,free-page-reporting=on");
        if (cfg->rootfs_fd >= 0) {
                arg(b, "-drive");
                arg(b, "id=rootfs,file=/proc/self/fd/%d,format=raw,if=none,readonly=on", cfg->rootfs_fd);
                arg(b, "-device");
                arg(b, "virtio-blk-device,drive=rootfs,serial=" SILO_VM_ROOTFS_SERIAL);
        }
        /* The guest finds each disk by its serial, whatever order it probes them in. */
        for (unsigned i = 0; i < cfg->n_disks; i++) {
                arg(b, "-drive");
                arg(b, "id=map%u,file=/proc/self/fd/%d,format=raw,if=none,readonly=%s", i, cfg->disks[i].fd,
                    cfg->disks[i].readonly ? "on" : "off");
                arg(b, "-device");
                arg(b, "virtio-blk-device,drive=map%u,serial=" SILO_VM_MAPPED_SERIAL "%u", i, i);
        }
        /* The container's network: a tap in its namespace (net.c), the
         * guest's NIC with the container's MAC and MTU. */
        if (cfg->tap_fd >= 0) {
                arg(b, "-netdev");
                arg(b, "tap,id=net0,fd=%d", cfg->tap_fd);
                arg(b, "-device");
                arg(b, "virtio-net-device,netdev=net0,mac=%s,host_mtu=%u", cfg->mac, cfg->mtu);
        }
        if (b->overflow)
                return silo_error_msg(err, E2BIG, "qemu command line too long (kernel or initrd path)");
        return 0;
}

int silo_vm_launch(const struct silo_vm_config *cfg, struct silo_vm *ret, silo_error *err)
{
        if (!cfg->kernel || !cfg->initrd)
                return silo_error_msg(err, EINVAL, "VM: kernel and initrd are required");
        if (cfg->accel != SILO_VM_ACCEL_KVM && cfg->accel != SILO_VM_ACCEL_TCG)
                return silo_error_msg(err, EINVAL, "VM: accelerator must be resolved to kvm or tcg");
        if (cfg->mem_mb < SILO_VM_MIN_MEM_MB || cfg->mem_mb > SILO_VM_MAX_MEM_MB)
                return silo_error_msg(err, EINVAL, "VM: memory %u MiB out of range", cfg->mem_mb);
        if (cfg->cpus < 1 || cfg->cpus > SILO_VM_MAX_CPUS)
                return silo_error_msg(err, EINVAL, "VM: cpu count %u out of range", cfg->cpus);
        if (cfg->n_disks > SILO_VM_MAX_DISKS)
                return silo_error_msg(err, E2BIG, "VM: more than %d mapped directories", SILO_VM_MAX_DISKS);
        if (cfg->tap_fd >= 0 && (cfg->mtu < 68 || cfg->mtu > 65535 || strlen(cfg->mac) != 17 ||
                                 strspn(cfg->mac, "0123456789abcdefABCDEF:") != 17))
                return silo_error_msg(err, EINVAL, "VM: network MAC %s or MTU %u invalid", cfg->mac, cfg->mtu);

        int host_fds[N_PORTS], guest_fds[N_PORTS];
        for (int i = 0; i < N_PORTS; i++)
                host_fds[i] = guest_fds[i] = -1;
        int r = 0;
        for (int i = 0; i < N_PORTS; i++) {
                int sp[2];
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
                        r = silo_error_set(err, errno, "socketpair for the guest channel");
                        goto fail;
                }
                host_fds[i] = sp[0];
                guest_fds[i] = sp[1];
        }
        struct argv_builder b = { .n = 0 };
        r = build_argv(cfg, guest_fds, &b, err);
        if (r < 0)
                goto fail;

        /* Reports exec failure: CLOEXEC, so success closes it empty. */
        int errpipe[2];
        if (pipe2(errpipe, O_CLOEXEC) < 0) {
                r = silo_error_set(err, errno, "pipe");
                goto fail;
        }
        pid_t parent = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                r = silo_error_set(err, errno, "fork qemu");
                close(errpipe[0]);
                close(errpipe[1]);
                goto fail;
        }
        if (pid == 0) {
                /* QEMU dies with us, whatever kills us. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                /* Terminal signals are ours to forward to the guest process. */
                setpgid(0, 0);
                sigset_t all;
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                for (int i = 0; i < (cfg->fs_port ? N_PORTS : N_PORTS - 1); i++)
                        fcntl(guest_fds[i], F_SETFD, 0);
                if (cfg->rootfs_fd >= 0)
                        fcntl(cfg->rootfs_fd, F_SETFD, 0);
                for (unsigned i = 0; i < cfg->n_disks; i++)
                        fcntl(cfg->disks[i].fd, F_SETFD, 0);
                if (cfg->tap_fd >= 0)
                        fcntl(cfg->tap_fd, F_SETFD, 0);
                int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (devnull >= 0) {
                        dup2(devnull, 0);
                        /* The debug console (-serial stdio) goes to our stderr. */
                        if (cfg->debug_console)
                                dup2(2, 1);
                        else
                                dup2(devnull, 1);
                }
                execvp(b.argv[0], b.argv);
                int e = errno;
                ssize_t w = write(errpipe[1], &e, sizeof(e));
                (void) w;
                _exit(127);
        }
        close(errpipe[1]);
        int child_errno = 0;
        ssize_t n;
        do
                n = read(errpipe[0], &child_errno, sizeof(child_errno));
        while (n < 0 && errno == EINTR);
        close(errpipe[0]);
        if (n == sizeof(child_errno)) {
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                r = silo_error_set(err, child_errno, "exec %s", b.argv[0]);
                goto fail;
        }

        *ret = (struct silo_vm) SILO_VM_INIT;
        ret->pid = pid;
        ret->accel = cfg->accel;
        ret->pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        for (int i = 0; i < N_PORTS; i++) {
                close(guest_fds[i]);
                fcntl(host_fds[i], F_SETFL, O_NONBLOCK);
        }
        ret->control_fd = host_fds[0];
        ret->stdout_fd = host_fds[1];
        ret->stderr_fd = host_fds[2];
        ret->stdio_fd = host_fds[3];
        ret->data_fd = host_fds[4];
        ret->fs_fd = host_fds[5];
        if (!cfg->fs_port)
                silo_closep(&ret->fs_fd);
        if (ret->pidfd < 0) {
                r = silo_error_set(err, errno, "pidfd_open qemu");
                silo_vm_destroy(ret);
                return r;
        }
        return 0;
fail:
        for (int i = 0; i < N_PORTS; i++) {
                silo_closep(&host_fds[i]);
                silo_closep(&guest_fds[i]);
        }
        return r;
}
