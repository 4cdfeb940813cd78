/* Is KVM usable?  /dev/kvm existing proves little: nested or paravirtual
 * KVMs exist on which real guests fail early.  The probe runs a tiny guest
 * that exercises what a Linux boot needs first (protected mode entry with
 * paging off, CPUID, an I/O exit) and checks the results, in well under a
 * millisecond when KVM works. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "vm/vm.h"

#define PROBE_MEM_SIZE 0x4000
#define PROBE_PORT 0x3f0
#define PROBE_STEPS 16

/* Real mode at 0x1000:  cpuid(0) (vendor into ebx), out ebx's low byte,
 * then a second out of a constant, then hlt.  The host checks that the
 * vendor byte matches its own CPUID view of the virtual CPU and that the
 * constant arrives: a KVM that cannot run guest code faithfully fails. */
static const uint8_t probe_code[] = {
        0x66, 0x31, 0xc0,               /* xor eax, eax */
        0x0f, 0xa2,                     /* cpuid */
        0xba, 0xf0, 0x03,               /* mov dx, PROBE_PORT */
        0x88, 0xd8,                     /* mov al, bl */
        0xee,                           /* out dx, al */
        0xb0, 0x5a,                     /* mov al, 0x5a */
        0xee,                           /* out dx, al */
        0xf4,                           /* hlt */
};

#define PROBE_MSRS_MAX 512

struct msr_list {
        struct kvm_msr_list h;
        uint32_t indices[PROBE_MSRS_MAX];
};

struct msr_values {
        struct kvm_msrs h;
        struct kvm_msr_entry e[PROBE_MSRS_MAX];
};

/* QEMU writes every MSR KVM lists (and the feature MSRs it reads from the
 * system fd) into each vCPU at start; a KVM that rejects its own values
 * aborts QEMU (seen: MSR 0x10a on a nested paravirtual KVM). */
static int probe_msrs(int kvm, int vcpu, silo_error *err)
{
        static const unsigned long lists[2] = { KVM_GET_MSR_INDEX_LIST, KVM_GET_MSR_FEATURE_INDEX_LIST };
        for (int which = 0; which < 2; which++) {
                if (which == 1 && ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GET_MSR_FEATURES) <= 0)
                        continue;
                struct msr_list list = { .h.nmsrs = PROBE_MSRS_MAX };
                if (ioctl(kvm, lists[which], &list) < 0)
                        return silo_error_set(err, errno, "KVM MSR index list");
                struct msr_values v = { .h.nmsrs = list.h.nmsrs };
                for (uint32_t i = 0; i < list.h.nmsrs && i < PROBE_MSRS_MAX; i++)
                        v.e[i].index = list.indices[i];
                /* Feature MSRs are read from the system fd, the others from the vCPU. */
                int got = ioctl(which ? kvm : vcpu, KVM_GET_MSRS, &v);
                if (got < 0)
                        return silo_error_set(err, errno, "KVM_GET_MSRS");
                v.h.nmsrs = (uint32_t) got;
                int set = ioctl(vcpu, KVM_SET_MSRS, &v);
                if (set != got)
                        return silo_error_msg(err, ENOTSUP, "/dev/kvm rejects MSR 0x%x",
                                              set >= 0 && set < got ? v.e[set].index : 0);
        }
        return 0;
}

static int probe_run(int kvm, silo_error *err)
{
        _cleanup_close_ int vm = ioctl(kvm, KVM_CREATE_VM, 0);
        if (vm < 0)
                return silo_error_set(err, errno, "KVM_CREATE_VM");

        void *mem = mmap(NULL, PROBE_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED)
                return silo_error_set(err, errno, "mmap probe memory");
        memcpy((uint8_t *) mem + 0x1000, probe_code, sizeof(probe_code));

        int r = 0;
        int vcpu = -1;
        struct kvm_run *run = MAP_FAILED;
        long run_size = 0;
        struct kvm_userspace_memory_region region = {
                .slot = 0, .guest_phys_addr = 0, .memory_size = PROBE_MEM_SIZE, .userspace_addr = (uintptr_t) mem,
        };
        if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
                r = silo_error_set(err, errno, "KVM_SET_USER_MEMORY_REGION");
                goto out;
        }
        vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
        if (vcpu < 0) {
                r = silo_error_set(err, errno, "KVM_CREATE_VCPU");
                goto out;
        }
        run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
        if (run_size < (long) sizeof(struct kvm_run)) {
                r = silo_error_set(err, errno ? errno : EIO, "KVM_GET_VCPU_MMAP_SIZE");
                goto out;
        }
        run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
        if (run == MAP_FAILED) {
                r = silo_error_set(err, errno, "mmap kvm_run");
                goto out;
        }

        /* CPUID must be set for the guest to see a vendor at all. */
        struct {
                struct kvm_cpuid2 h;
                struct kvm_cpuid_entry2 e[128];
        } cpuid = { .h.nent = 128 };
        if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cpuid) < 0) {
                r = silo_error_set(err, errno, "KVM_GET_SUPPORTED_CPUID");
                goto out;
        }
        uint8_t want_vendor = 0;
        for (unsigned i = 0; i < cpuid.h.nent && i < 128; i++)
                if (cpuid.e[i].function == 0)
                        want_vendor = (uint8_t) cpuid.e[i].ebx;
        if (ioctl(vcpu, KVM_SET_CPUID2, &cpuid) < 0) {
                r = silo_error_set(err, errno, "KVM_SET_CPUID2");
                goto out;
        }

        r = probe_msrs(kvm, vcpu, err);
        if (r < 0)
                goto out;

        struct kvm_sregs sregs;
        if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) {
                r = silo_error_set(err, errno, "KVM_GET_SREGS");
                goto out;
        }
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) {
                r = silo_error_set(err, errno, "KVM_SET_SREGS");
                goto out;
        }
        struct kvm_regs regs = { .rip = 0x1000, .rflags = 0x2 };
        if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) {
                r = silo_error_set(err, errno, "KVM_SET_REGS");
                goto out;
        }

        int outs = 0;
        bool vendor_ok = false, const_ok = false;
        for (int step = 0; step < PROBE_STEPS; step++) {
                if (ioctl(vcpu, KVM_RUN, 0) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = silo_error_set(err, errno, "KVM_RUN");
                        goto out;
                }
                if (run->exit_reason == KVM_EXIT_IO && run->io.direction == KVM_EXIT_IO_OUT &&
                    run->io.port == PROBE_PORT && run->io.size == 1 && run->io.count == 1 &&
                    run->io.data_offset < (uint64_t) run_size) {
                        uint8_t v = *((uint8_t *) run + run->io.data_offset);
                        if (outs == 0)
                                vendor_ok = v == want_vendor;
                        else if (outs == 1)
                                const_ok = v == 0x5a;
                        outs++;
                        continue;
                }
                if (run->exit_reason == KVM_EXIT_HLT)
                        break;
                r = silo_error_msg(err, EIO, "KVM probe guest: unexpected exit reason %u", run->exit_reason);
                goto out;
        }
        if (outs != 2 || !vendor_ok || !const_ok)
                r = silo_error_msg(err, EIO, "KVM probe guest ran incorrectly (%d outputs, cpuid %s)", outs,
                                   vendor_ok ? "ok" : "wrong");
out:
        if (run != MAP_FAILED)
                munmap(run, run_size);
        if (vcpu >= 0)
                close(vcpu);
        munmap(mem, PROBE_MEM_SIZE);
        return r;
}

int silo_vm_probe_kvm(silo_error *err)
{
        _cleanup_close_ int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm < 0)
                return silo_error_set(err, errno, "open /dev/kvm");
        int v = ioctl(kvm, KVM_GET_API_VERSION, 0);
        if (v != KVM_API_VERSION)
                return silo_error_msg(err, ENOTSUP, "/dev/kvm: API version %d, expected %d", v, KVM_API_VERSION);
        /* What QEMU's microvm needs of KVM for a Linux guest. */
        static const int caps[] = { KVM_CAP_USER_MEMORY, KVM_CAP_IRQCHIP, KVM_CAP_HLT, KVM_CAP_EXT_CPUID,
                                    KVM_CAP_SET_TSS_ADDR, KVM_CAP_PIT2, KVM_CAP_IRQ_ROUTING };
        for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
                if (ioctl(kvm, KVM_CHECK_EXTENSION, caps[i]) <= 0)
                        return silo_error_msg(err, ENOTSUP, "/dev/kvm: lacks capability %d", caps[i]);
        return probe_run(kvm, err);
}
