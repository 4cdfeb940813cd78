/* Capabilities: the OCI process.capabilities sets, by name, applied with
 * raw prctl()/capset() so nothing allocates between fork and exec.
 *
 * Security notes:
 *  - every set is written exactly as configured, so a set the config leaves
 *    out ends up empty (in particular inheritable is never filled in);
 *  - capabilities the config does not know about are dropped from the
 *    bounding set, including ones newer than this file. */
#include "process/caps.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/json.h"

/* Older kernel headers lack the newest capabilities; the numbers are ABI. */
#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif
#ifndef CAP_CHECKPOINT_RESTORE
#define CAP_CHECKPOINT_RESTORE 40
#endif

/* Masks are 64-bit; the kernel's cap data has two 32-bit words. */
#define CAP_MASK_BITS 64

static const char *const cap_names[] = {
        [CAP_CHOWN]              = "CAP_CHOWN",
        [CAP_DAC_OVERRIDE]       = "CAP_DAC_OVERRIDE",
        [CAP_DAC_READ_SEARCH]    = "CAP_DAC_READ_SEARCH",
        [CAP_FOWNER]             = "CAP_FOWNER",
        [CAP_FSETID]             = "CAP_FSETID",
        [CAP_KILL]               = "CAP_KILL",
        [CAP_SETGID]             = "CAP_SETGID",
        [CAP_SETUID]             = "CAP_SETUID",
        [CAP_SETPCAP]            = "CAP_SETPCAP",
        [CAP_LINUX_IMMUTABLE]    = "CAP_LINUX_IMMUTABLE",
        [CAP_NET_BIND_SERVICE]   = "CAP_NET_BIND_SERVICE",
        [CAP_NET_BROADCAST]      = "CAP_NET_BROADCAST",
        [CAP_NET_ADMIN]          = "CAP_NET_ADMIN",
        [CAP_NET_RAW]            = "CAP_NET_RAW",
        [CAP_IPC_LOCK]           = "CAP_IPC_LOCK",
        [CAP_IPC_OWNER]          = "CAP_IPC_OWNER",
        [CAP_SYS_MODULE]         = "CAP_SYS_MODULE",
        [CAP_SYS_RAWIO]          = "CAP_SYS_RAWIO",
        [CAP_SYS_CHROOT]         = "CAP_SYS_CHROOT",
        [CAP_SYS_PTRACE]         = "CAP_SYS_PTRACE",
        [CAP_SYS_PACCT]          = "CAP_SYS_PACCT",
        [CAP_SYS_ADMIN]          = "CAP_SYS_ADMIN",
        [CAP_SYS_BOOT]           = "CAP_SYS_BOOT",
        [CAP_SYS_NICE]           = "CAP_SYS_NICE",
        [CAP_SYS_RESOURCE]       = "CAP_SYS_RESOURCE",
        [CAP_SYS_TIME]           = "CAP_SYS_TIME",
        [CAP_SYS_TTY_CONFIG]     = "CAP_SYS_TTY_CONFIG",
        [CAP_MKNOD]              = "CAP_MKNOD",
        [CAP_LEASE]              = "CAP_LEASE",
        [CAP_AUDIT_WRITE]        = "CAP_AUDIT_WRITE",
        [CAP_AUDIT_CONTROL]      = "CAP_AUDIT_CONTROL",
        [CAP_SETFCAP]            = "CAP_SETFCAP",
        [CAP_MAC_OVERRIDE]       = "CAP_MAC_OVERRIDE",
        [CAP_MAC_ADMIN]          = "CAP_MAC_ADMIN",
        [CAP_SYSLOG]             = "CAP_SYSLOG",
        [CAP_WAKE_ALARM]         = "CAP_WAKE_ALARM",
        [CAP_BLOCK_SUSPEND]      = "CAP_BLOCK_SUSPEND",
        [CAP_AUDIT_READ]         = "CAP_AUDIT_READ",
        [CAP_PERFMON]            = "CAP_PERFMON",
        [CAP_BPF]                = "CAP_BPF",
        [CAP_CHECKPOINT_RESTORE] = "CAP_CHECKPOINT_RESTORE",
};

static uint64_t cap_bit(int cap)
{
        return UINT64_C(1) << cap;
}

/* Every bit from 0 to last. */
static uint64_t cap_mask_upto(int last)
{
        return last >= CAP_MASK_BITS - 1 ? UINT64_MAX : cap_bit(last + 1) - 1;
}

/* A printable name even for capabilities newer than the table. */
static const char *cap_label(int cap, char buf[32])
{
        const char *name = silo_cap_name(cap);
        if (name)
                return name;
        snprintf(buf, 32, "capability %d", cap);
        return buf;
}

int silo_cap_last(void)
{
        /* A stack buffer, not silo_read_file_at(): this runs in the
         * container's init between fork and exec. */
        char buf[16];
        _cleanup_close_ int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC | O_NOCTTY);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        if (n > 0) {
                char *end;
                buf[n] = '\0';
                errno = 0;
                long v = strtol(buf, &end, 10);
                if (errno == 0 && end != buf && (*end == '\n' || *end == '\0') && v >= 0 && v < CAP_MASK_BITS)
                        return (int) v;
        }

        /* No /proc (e.g. mid-way through building the container): the
         * bounding set answers EINVAL for capabilities past the last. */
        int last = 0;
        while (last + 1 < CAP_MASK_BITS && prctl(PR_CAPBSET_READ, last + 1, 0, 0, 0) >= 0)
                last++;
        return last;
}

const char *silo_cap_name(int cap)
{
        if (cap < 0 || (size_t) cap >= ARRAY_SIZE(cap_names))
                return NULL;
        return cap_names[cap];
}

int silo_cap_from_name(const char *name)
{
        if (!name)
                return -1;
        /* Case-insensitive like libcap's cap_from_name(), but names only:
         * a bare number is not a capability name in a config. */
        for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
                if (cap_names[i] && strcasecmp(cap_names[i], name) == 0)
                        return (int) i;
        return -1;
}

static int parse_list(json_t *arr, const char *path, int last, uint64_t *ret_mask, silo_error *err)
{
        uint64_t mask = 0;

        *ret_mask = 0;
        if (!arr || json_is_null(arr))
                return 0;
        if (!json_is_array(arr))
                return silo_error_msg(err, EINVAL, "%s: expected an array of strings, got %s",
                                      path, silo_json_type_name(arr));

        for (size_t i = 0; i < json_array_size(arr); i++) {
                char p[SILO_JSON_PATH_MAX];
                json_t *v = json_array_get(arr, i);
                silo_json_path_index(p, path, i);

                if (!json_is_string(v))
                        return silo_error_msg(err, EINVAL, "%s: expected a string, got %s", p, silo_json_type_name(v));
                int cap = silo_cap_from_name(json_string_value(v));
                if (cap < 0)
                        return silo_error_msg(err, EINVAL, "%s: unknown capability \"%s\"", p, json_string_value(v));
                /* Known by name but not by this kernel: it cannot be granted
                 * and nothing can use it, so drop it (one config, many hosts). */
                if (cap > last)
                        continue;
                mask |= cap_bit(cap);
        }

        *ret_mask = mask;
        return 0;
}

int silo_caps_parse_list(json_t *arr, const char *path, uint64_t *ret_mask, silo_error *err)
{
        return parse_list(arr, path, silo_cap_last(), ret_mask, err);
}

/* The kernel's rules for a capset() that can succeed, checked up front so
 * the error names the capability instead of a bare EPERM. */
static int caps_validate(const struct silo_caps *caps, const char *path, silo_error *err)
{
        char buf[32];

        for (int cap = 0; cap < CAP_MASK_BITS; cap++) {
                if ((caps->effective & cap_bit(cap)) && !(caps->permitted & cap_bit(cap)))
                        return silo_error_msg(err, EINVAL, "%s.effective: %s is not in the permitted set "
                                              "(effective must be a subset of permitted)", path, cap_label(cap, buf));
        }
        return 0;
}

int silo_caps_parse(json_t *obj, const char *path, struct silo_caps *ret, silo_error *err)
{
        static const struct { const char *key; size_t offset; } sets[] = {
                { "bounding",    offsetof(struct silo_caps, bounding) },
                { "effective",   offsetof(struct silo_caps, effective) },
                { "inheritable", offsetof(struct silo_caps, inheritable) },
                { "permitted",   offsetof(struct silo_caps, permitted) },
                { "ambient",     offsetof(struct silo_caps, ambient) },
        };
        struct silo_caps caps = {};

        if (!path)
                path = "process.capabilities";
        *ret = caps;
        if (!obj || json_is_null(obj))
                return 0;
        if (!json_is_object(obj))
                return silo_error_msg(err, EINVAL, "%s: expected an object, got %s", path, silo_json_type_name(obj));

        int last = silo_cap_last();
        for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
                char p[SILO_JSON_PATH_MAX];
                int r = parse_list(json_object_get(obj, sets[i].key), silo_json_path_key(p, path, sets[i].key), last,
                                   (uint64_t *) ((char *) &caps + sets[i].offset), err);
                if (r < 0)
                        return r;
        }

        int r = caps_validate(&caps, path, err);
        if (r < 0)
                return r;

        caps.set = true;
        *ret = caps;
        return 0;
}

int silo_caps_apply_bounding(const struct silo_caps *caps, silo_error *err)
{
        int last = silo_cap_last();
        char buf[32];

        for (int cap = 0; cap <= last; cap++) {
                if (caps->bounding & cap_bit(cap))
                        continue;
                /* Skip what is already gone, so a runtime that was itself
                 * started with a reduced bounding set does not need
                 * CAP_SETPCAP just to confirm it. */
                int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
                if (r < 0)
                        return silo_error_set(err, errno, "prctl(PR_CAPBSET_READ, %s)", cap_label(cap, buf));
                if (r == 0)
                        continue;
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
                        return silo_error_set(err, errno, "dropping %s from the bounding set", cap_label(cap, buf));
        }
        return 0;
}

static int get_caps(struct __user_cap_data_struct data[2])
{
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        return RET_NERRNO(syscall(SYS_capget, &hdr, data));
}

/* capset() only says EPERM; name the first capability we cannot have. */
static int explain_capset_failure(int r, uint64_t permitted, uint64_t inheritable, silo_error *err)
{
        struct __user_cap_data_struct cur[2] = {};
        char buf[32];

        if (r == -EPERM && get_caps(cur) >= 0) {
                uint64_t cur_permitted = cur[0].permitted | ((uint64_t) cur[1].permitted << 32);
                uint64_t cur_inheritable = cur[0].inheritable | ((uint64_t) cur[1].inheritable << 32);
                uint64_t missing = permitted & ~cur_permitted;
                for (int cap = 0; cap < CAP_MASK_BITS; cap++) {
                        if (missing & cap_bit(cap))
                                return silo_error_msg(err, EPERM, "capset: %s is not in the runtime's permitted set, "
                                                      "so it cannot be granted", cap_label(cap, buf));
                        /* Inheritable may only grow within the bounding set. */
                        if ((inheritable & ~cur_inheritable & cap_bit(cap)) && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 0)
                                return silo_error_msg(err, EPERM, "capset: %s is inheritable but not in the bounding set",
                                                      cap_label(cap, buf));
                }
        }
        return silo_error_set(err, r, "capset");
}

int silo_caps_apply(const struct silo_caps *caps, silo_error *err)
{
        uint64_t valid = cap_mask_upto(silo_cap_last());
        uint64_t effective = caps->effective & valid, permitted = caps->permitted & valid;
        uint64_t inheritable = caps->inheritable & valid;
        /* The kernel raises an ambient capability only if it is permitted and
         * inheritable; like runc, others are skipped rather than failing. */
        uint64_t ambient = caps->ambient & valid & permitted & inheritable;
        char buf[32];
        int r;

        r = caps_validate(caps, "process.capabilities", err);
        if (r < 0)
                return r;

        /* Ambient first: whatever the runtime inherited must not survive,
         * and EINVAL only means a kernel without ambient sets (< 4.3). */
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && !(errno == EINVAL && ambient == 0))
                return silo_error_set(err, errno, "clearing the ambient capability set");

        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[2] = {
                { (uint32_t) effective, (uint32_t) permitted, (uint32_t) inheritable },
                { (uint32_t) (effective >> 32), (uint32_t) (permitted >> 32), (uint32_t) (inheritable >> 32) },
        };
        if (syscall(SYS_capset, &hdr, data) < 0)
                return explain_capset_failure(-errno, permitted, inheritable, err);

        /* Raising needs the capability in permitted and inheritable, which
         * the capset above has just established. */
        for (int cap = 0; cap < CAP_MASK_BITS; cap++)
                if ((ambient & cap_bit(cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
                        return silo_error_set(err, errno, "raising %s in the ambient set", cap_label(cap, buf));
        return 0;
}

json_t *silo_caps_features(void)
{
        _cleanup_json_ json_t *arr = json_array();
        if (!arr)
                return NULL;
        for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
                if (cap_names[i] && json_array_append_new(arr, json_string(cap_names[i])) < 0)
                        return NULL;
        return TAKE_PTR(arr);
}
