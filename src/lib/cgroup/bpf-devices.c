/* Device access control on cgroup v2: there is no devices.allow file, the
 * kernel instead runs a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the
 * cgroup on every open/mknod of a device node.  We compile the OCI rules
 * into such a program directly (no libbpf, no clang at run time).
 *
 * The program checks the rules last to first and returns the verdict of the
 * first match, which gives the OCI/v1 meaning "later rules override earlier
 * ones"; no match denies.  Rules of type 'a' match everything, as writing
 * "a" to devices.allow/deny does on v1. */
#include "cgroup/cgroup-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_RULES 4096
#define MAX_ATTACHED 64

/* Registers once the prologue has run; r1 holds struct bpf_cgroup_dev_ctx. */
enum { R0, R1, R_TYPE, R_ACCESS, R_MAJOR, R_MINOR };

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
        return (struct bpf_insn) { .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
}

static unsigned access_mask(const char *access)
{
        unsigned mask = 0;
        for (const char *p = access; *p; p++)
                mask |= *p == 'r' ? BPF_DEVCG_ACC_READ : *p == 'w' ? BPF_DEVCG_ACC_WRITE : *p == 'm' ? BPF_DEVCG_ACC_MKNOD : 0;
        return mask;
}

#define FULL_ACCESS (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)

/* Instructions a rule compiles to, so its jumps know where the block ends. */
static size_t rule_length(const struct silo_device_rule *rule)
{
        size_t n = 2;   /* r0 = verdict; exit */
        if (rule->type == 'a')
                return n;
        n += 1;         /* type */
        if (access_mask(rule->access) != FULL_ACCESS)
                n += 3; /* r0 = access & ~allowed; if r0 != 0 skip */
        if (rule->major >= 0)
                n += 1;
        if (rule->minor >= 0)
                n += 1;
        return n;
}

int cgroup_bpf_devices_build(const struct silo_device_rule *rules, size_t n, struct bpf_insn **ret, size_t *ret_n,
                             silo_error *err)
{
        if (n > MAX_RULES)
                return silo_error_msg(err, E2BIG, "linux.resources.devices: more than %d rules", MAX_RULES);

        size_t total = 6 + 2;   /* prologue + final deny */
        for (size_t i = 0; i < n; i++)
                total += rule_length(&rules[i]);
        _cleanup_free_ struct bpf_insn *prog = calloc(total, sizeof(*prog));
        if (!prog)
                return silo_error_set(err, ENOMEM, "device eBPF program");

        size_t pos = 0;
        /* access_type is (access << 16) | type; then major, minor. */
        prog[pos++] = insn(BPF_LDX | BPF_MEM | BPF_W, R_TYPE, R1, 0, 0);
        prog[pos++] = insn(BPF_ALU | BPF_AND | BPF_K, R_TYPE, 0, 0, 0xffff);
        prog[pos++] = insn(BPF_LDX | BPF_MEM | BPF_W, R_ACCESS, R1, 0, 0);
        prog[pos++] = insn(BPF_ALU | BPF_RSH | BPF_K, R_ACCESS, 0, 0, 16);
        prog[pos++] = insn(BPF_LDX | BPF_MEM | BPF_W, R_MAJOR, R1, 4, 0);
        prog[pos++] = insn(BPF_LDX | BPF_MEM | BPF_W, R_MINOR, R1, 8, 0);

        bool catch_all = false;
        for (size_t k = n; k-- > 0 && !catch_all;) {
                const struct silo_device_rule *rule = &rules[k];
                size_t end = pos + rule_length(rule);
                /* A failed test jumps to the next rule's block. */
#define SKIP ((int16_t) (end - pos - 1))
                if (rule->type != 'a') {
                        int32_t type = rule->type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK;
                        unsigned mask = access_mask(rule->access);
                        prog[pos] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R_TYPE, 0, SKIP, type);
                        pos++;
                        if (mask != FULL_ACCESS) {
                                /* Every requested access must be among the rule's. */
                                prog[pos++] = insn(BPF_ALU | BPF_MOV | BPF_X, R0, R_ACCESS, 0, 0);
                                prog[pos++] = insn(BPF_ALU | BPF_AND | BPF_K, R0, 0, 0, (int32_t) (~mask & FULL_ACCESS));
                                prog[pos] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R0, 0, SKIP, 0);
                                pos++;
                        }
                        if (rule->major >= 0) {
                                prog[pos] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R_MAJOR, 0, SKIP,
                                                 (int32_t) (uint32_t) rule->major);
                                pos++;
                        }
                        if (rule->minor >= 0) {
                                prog[pos] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R_MINOR, 0, SKIP,
                                                 (int32_t) (uint32_t) rule->minor);
                                pos++;
                        }
                }
#undef SKIP
                prog[pos++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, R0, 0, 0, rule->allow ? 1 : 0);
                prog[pos++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
                /* An 'a' rule always decides: the verifier rejects the
                 * unreachable code that earlier rules would compile to. */
                catch_all = rule->type == 'a';
        }
        if (!catch_all) {
                prog[pos++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, R0, 0, 0, 0);
                prog[pos++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
        }

        *ret = TAKE_PTR(prog);
        *ret_n = pos;
        return 0;
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
        return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

static int prog_load(const struct bpf_insn *prog, size_t n, silo_error *err)
{
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
        attr.insns = (uint64_t) (uintptr_t) prog;
        attr.insn_cnt = (uint32_t) n;
        attr.license = (uint64_t) (uintptr_t) "Apache";  /* no GPL-only helpers are used */

        long fd = sys_bpf(BPF_PROG_LOAD, &attr);
        if (fd >= 0)
                return (int) fd;
        int saved = errno;
        if (saved == EPERM)
                return silo_error_set(err, saved, "load the device eBPF program (CAP_BPF/CAP_SYS_ADMIN needed)");

        /* Again with the verifier log, for a message worth reading. */
        char log[1024] = "";
        attr.log_buf = (uint64_t) (uintptr_t) log;
        attr.log_size = sizeof(log);
        attr.log_level = 1;
        fd = sys_bpf(BPF_PROG_LOAD, &attr);
        if (fd >= 0)
                return (int) fd;
        for (char *p = log; *p; p++)
                if (*p == '\n')
                        *p = ' ';
        return silo_error_msg(err, saved, "load the device eBPF program: %s (verifier: %.200s)", strerror(saved), log);
}

/* The programs attached to this cgroup itself (not inherited ones). */
static int query_attached(int cgroup_fd, uint32_t ids[MAX_ATTACHED], uint32_t *ret_n, silo_error *err)
{
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.query.target_fd = (uint32_t) cgroup_fd;
        attr.query.attach_type = BPF_CGROUP_DEVICE;
        attr.query.prog_ids = (uint64_t) (uintptr_t) ids;
        attr.query.prog_cnt = MAX_ATTACHED;
        if (sys_bpf(BPF_PROG_QUERY, &attr) < 0)
                return silo_error_set(err, errno, "query the device eBPF programs of the cgroup");
        *ret_n = attr.query.prog_cnt;
        return 0;
}

static int detach_by_id(int cgroup_fd, uint32_t id, silo_error *err)
{
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.prog_id = id;
        _cleanup_close_ int fd = (int) sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
        if (fd < 0)
                return errno == ENOENT ? 0 : silo_error_set(err, errno, "open eBPF program %u", id);

        memset(&attr, 0, sizeof(attr));
        attr.target_fd = (uint32_t) cgroup_fd;
        attr.attach_bpf_fd = (uint32_t) fd;
        attr.attach_type = BPF_CGROUP_DEVICE;
        if (sys_bpf(BPF_PROG_DETACH, &attr) < 0 && errno != ENOENT)
                return silo_error_set(err, errno, "detach eBPF program %u", id);
        return 0;
}

int cgroup_bpf_devices_apply(const struct cgroup_dir *d, const struct silo_device_rule *rules, size_t n,
                             silo_error *err)
{
        _cleanup_free_ struct bpf_insn *prog = NULL;
        uint32_t old[MAX_ATTACHED];
        uint32_t n_old = 0;
        size_t len = 0;
        int r;

        r = cgroup_bpf_devices_build(rules, n, &prog, &len, err);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = prog_load(prog, len, err);
        if (fd < 0)
                return silo_error_prefix(err, "linux.resources.devices");
        r = query_attached(d->fd, old, &n_old, err);
        if (r < 0)
                return silo_error_prefix(err, "linux.resources.devices");

        /* Attach the new program before detaching the old ones: in between
         * both apply (a device must pass all), never neither. */
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.target_fd = (uint32_t) d->fd;
        attr.attach_bpf_fd = (uint32_t) fd;
        attr.attach_type = BPF_CGROUP_DEVICE;
        attr.attach_flags = BPF_F_ALLOW_MULTI;
        if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0)
                return silo_error_set(err, errno, "linux.resources.devices: attach the device eBPF program to %s",
                                      d->path);

        for (uint32_t i = 0; i < n_old && i < MAX_ATTACHED; i++) {
                r = detach_by_id(d->fd, old[i], err);
                if (r < 0)
                        return silo_error_prefix(err, "linux.resources.devices");
        }
        return 0;
}
