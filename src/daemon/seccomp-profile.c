/* Seccomp for `docker run`: the default profile and Docker-format profiles
 * (`--security-opt seccomp=FILE`, whose content the CLI sends) turned into
 * the OCI linux.seccomp object silo-runtime loads.
 *
 * The default profile is a deny list with the effect of Docker's allow list
 * on the syscalls that matter: what escapes the container's namespaces or
 * acts on the whole host is refused with EPERM unless the container holds
 * the capability the kernel would check anyway (then the kernel decides, as
 * in Docker).  Syscalls newer than this list are allowed; Docker's allow list
 * refuses them.  clone3 fails with ENOSYS without CAP_SYS_ADMIN so that libc
 * falls back to clone, whose namespace flags can be inspected. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

#include "seccomp/seccomp.h"
#include "silod.h"
#include "util/cleanup.h"
#include "util/json.h"

struct denied {
        const char *cap;                /* allowed with this capability; NULL: never */
        const char *const *names;
};

#define NAMES(...) ((const char *const[]) { __VA_ARGS__, NULL })

static const struct denied denied[] = {
        { "CAP_SYS_ADMIN", NAMES("mount", "umount", "umount2", "mount_setattr", "move_mount", "open_tree",
                                 "fsopen", "fsconfig", "fsmount", "fspick", "pivot_root", "setns", "unshare",
                                 "fanotify_init", "quotactl", "quotactl_fd", "name_to_handle_at",
                                 "lookup_dcookie", "setdomainname", "sethostname", "swapon", "swapoff") },
        { "CAP_SYS_ADMIN", NAMES("bpf", "perf_event_open") },  /* or CAP_BPF / CAP_PERFMON, below */
        { "CAP_BPF", NAMES("bpf") },
        { "CAP_PERFMON", NAMES("perf_event_open") },
        { "CAP_SYS_BOOT", NAMES("reboot") },
        { "CAP_SYS_MODULE", NAMES("init_module", "finit_module", "delete_module", "create_module",
                                  "query_module", "get_kernel_syms") },
        { "CAP_SYS_PACCT", NAMES("acct") },
        { "CAP_SYS_RAWIO", NAMES("iopl", "ioperm") },
        { "CAP_SYS_TIME", NAMES("settimeofday", "stime", "clock_settime", "clock_adjtime") },
        { "CAP_SYS_TTY_CONFIG", NAMES("vhangup") },
        { "CAP_SYS_NICE", NAMES("get_mempolicy", "set_mempolicy", "mbind", "move_pages",
                                "set_mempolicy_home_node") },
        { "CAP_SYSLOG", NAMES("syslog") },
        { "CAP_DAC_READ_SEARCH", NAMES("open_by_handle_at") },
        { "CAP_SYS_PTRACE", NAMES("userfaultfd") },
        /* Not namespaced, or long obsolete: refused even with capabilities. */
        { NULL, NAMES("kexec_load", "kexec_file_load", "keyctl", "add_key", "request_key", "nfsservctl",
                      "uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old", "io_uring_setup",
                      "io_uring_enter", "io_uring_register") },
};

/* CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET. */
static const unsigned long clone_ns_flags[] = {
        0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000,
};

static bool has_cap(json_t *caps, const char *cap)
{
        size_t i;
        json_t *v;
        json_array_foreach(caps, i, v)
                if (json_is_string(v) && strcasecmp(json_string_value(v), cap) == 0)
                        return true;
        return false;
}

/* A name allowed by one capability row stays denied if another row (with a
 * capability the container lacks, or none) still lists it: bpf needs
 * CAP_SYS_ADMIN or CAP_BPF, so it is denied only if both are missing. */
static bool allowed_by_some_row(json_t *caps, const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(denied); i++)
                for (const char *const *n = denied[i].names; *n; n++)
                        if (strcmp(*n, name) == 0 && denied[i].cap && has_cap(caps, denied[i].cap))
                                return true;
        return false;
}

static json_t *native_arches(void)
{
        return json_pack("[s, s, s]", "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32");
}

json_t *seccomp_default_profile(json_t *caps)
{
        json_t *names = json_array(), *rules = json_array();
        if (!names || !rules)
                goto oom;
        for (size_t i = 0; i < ARRAY_SIZE(denied); i++) {
                if (denied[i].cap && has_cap(caps, denied[i].cap))
                        continue;
                for (const char *const *n = denied[i].names; *n; n++) {
                        bool dup = false;
                        size_t k;
                        json_t *v;
                        json_array_foreach(names, k, v)
                                dup |= strcmp(json_string_value(v), *n) == 0;
                        if (!dup && !allowed_by_some_row(caps, *n))
                                json_array_append_new(names, json_string(*n));
                }
        }
        if (json_array_size(names))
                json_array_append_new(rules, json_pack("{s:o, s:s, s:i}", "names", names, "action", "SCMP_ACT_ERRNO",
                                                       "errnoRet", EPERM));
        else
                json_decref(names);
        if (!has_cap(caps, "CAP_SYS_ADMIN")) {
                json_array_append_new(rules, json_pack("{s:[s], s:s, s:i}", "names", "clone3", "action",
                                                       "SCMP_ACT_ERRNO", "errnoRet", ENOSYS));
                for (size_t i = 0; i < ARRAY_SIZE(clone_ns_flags); i++)
                        json_array_append_new(rules, json_pack("{s:[s], s:s, s:i, s:[{s:i, s:I, s:I, s:s}]}", "names",
                                                               "clone", "action", "SCMP_ACT_ERRNO", "errnoRet", EPERM,
                                                               "args", "index", 0, "value",
                                                               (json_int_t) clone_ns_flags[i], "valueTwo",
                                                               (json_int_t) clone_ns_flags[i], "op",
                                                               "SCMP_CMP_MASKED_EQ"));
        }
        return json_pack("{s:s, s:o, s:o}", "defaultAction", "SCMP_ACT_ALLOW", "architectures", native_arches(),
                         "syscalls", rules);
oom:
        json_decref(names);
        json_decref(rules);
        return NULL;
}

/* ---- Docker's profile format ---- */

static bool kernel_at_least(const char *min)
{
        struct utsname u;
        unsigned have_major = 0, have_minor = 0, want_major = 0, want_minor = 0;
        if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &have_major, &have_minor) < 1 ||
            sscanf(min, "%u.%u", &want_major, &want_minor) < 1)
                return false;
        return have_major > want_major || (have_major == want_major && have_minor >= want_minor);
}

static bool arch_native(const char *a)
{
        return strcmp(a, "amd64") == 0 || strcmp(a, "x86_64") == 0 || strcmp(a, "x86") == 0 ||
               strcmp(a, "x32") == 0 || strcmp(a, "386") == 0;
}

/* includes/excludes of a rule: caps (all needed), arches (one of), minKernel. */
static int filter_matches(json_t *f, const char *path, json_t *caps, bool include, bool *ret, silo_error *err)
{
        *ret = include;
        if (!f || json_is_null(f))
                return 0;
        if (!json_is_object(f))
                return silo_error_msg(err, EINVAL, "%s: expected an object, got %s", path, silo_json_type_name(f));
        json_t *fcaps = json_object_get(f, "caps"), *arches = json_object_get(f, "arches");
        json_t *min_kernel = json_object_get(f, "minKernel");
        if ((fcaps && !json_is_array(fcaps)) || (arches && !json_is_array(arches)) ||
            (min_kernel && !json_is_string(min_kernel)))
                return silo_error_msg(err, EINVAL, "%s: caps and arches must be arrays, minKernel a string", path);
        size_t i;
        json_t *v;
        if (include) {
                json_array_foreach(fcaps, i, v)
                        if (!json_is_string(v) || !has_cap(caps, json_string_value(v)))
                                *ret = false;
                if (json_array_size(arches)) {
                        bool any = false;
                        json_array_foreach(arches, i, v)
                                any |= json_is_string(v) && arch_native(json_string_value(v));
                        *ret &= any;
                }
                if (min_kernel && !kernel_at_least(json_string_value(min_kernel)))
                        *ret = false;
                return 0;
        }
        json_array_foreach(fcaps, i, v)
                if (json_is_string(v) && has_cap(caps, json_string_value(v)))
                        *ret = true;
        json_array_foreach(arches, i, v)
                if (json_is_string(v) && arch_native(json_string_value(v)))
                        *ret = true;
        return 0;
}

int seccomp_from_docker(json_t *profile, json_t *caps, json_t **ret, silo_error *err)
{
        static const char P[] = "HostConfig.SecurityOpt seccomp";
        if (!json_is_object(profile))
                return silo_error_msg(err, EINVAL, "%s: the profile is not a JSON object", P);
        _cleanup_json_ json_t *out = json_object();
        if (!out)
                return silo_error_set(err, ENOMEM, "%s", P);
        const char *keep[] = { "defaultAction", "defaultErrnoRet", "flags", "listenerPath", "listenerMetadata" };
        for (size_t i = 0; i < ARRAY_SIZE(keep); i++)
                if (json_object_get(profile, keep[i]))
                        json_object_set(out, keep[i], json_object_get(profile, keep[i]));
        json_t *arches = json_object_get(profile, "architectures"), *arch_map = json_object_get(profile, "archMap");
        if (json_array_size(arches)) {
                json_object_set(out, "architectures", arches);
        } else if (json_is_array(arch_map)) {
                /* Only the native entry and its sub-architectures apply. */
                size_t i;
                json_t *m;
                json_array_foreach(arch_map, i, m) {
                        const char *a = json_string_value(json_object_get(m, "architecture"));
                        if (!a || strcmp(a, "SCMP_ARCH_X86_64") != 0)
                                continue;
                        json_t *list = json_pack("[s]", a);
                        json_t *sub = json_object_get(m, "subArchitectures");
                        if (json_is_array(sub))
                                json_array_extend(list, sub);
                        json_object_set_new(out, "architectures", list);
                }
        }
        json_t *syscalls = json_object_get(profile, "syscalls");
        if (syscalls && !json_is_array(syscalls) && !json_is_null(syscalls))
                return silo_error_msg(err, EINVAL, "%s.syscalls: expected an array, got %s", P,
                                      silo_json_type_name(syscalls));
        json_t *rules = json_array();
        json_object_set_new(out, "syscalls", rules);
        size_t i;
        json_t *s;
        json_array_foreach(syscalls, i, s) {
                char path[SILO_JSON_PATH_MAX];
                snprintf(path, sizeof(path), "%s.syscalls[%zu]", P, i);
                if (!json_is_object(s))
                        return silo_error_msg(err, EINVAL, "%s: expected an object, got %s", path,
                                              silo_json_type_name(s));
                bool inc, exc;
                char fpath[SILO_JSON_PATH_MAX + 16];
                snprintf(fpath, sizeof(fpath), "%s.includes", path);
                int r = filter_matches(json_object_get(s, "includes"), fpath, caps, true, &inc, err);
                if (r < 0)
                        return r;
                snprintf(fpath, sizeof(fpath), "%s.excludes", path);
                r = filter_matches(json_object_get(s, "excludes"), fpath, caps, false, &exc, err);
                if (r < 0)
                        return r;
                if (!inc || exc)
                        continue;
                json_t *rule = json_object();
                json_t *names = json_object_get(s, "names"), *name = json_object_get(s, "name");
                if (names)
                        json_object_set(rule, "names", names);
                else if (json_is_string(name))
                        json_object_set_new(rule, "names", json_pack("[O]", name));
                const char *fields[] = { "action", "errnoRet", "args" };
                for (size_t k = 0; k < ARRAY_SIZE(fields); k++)
                        if (json_object_get(s, fields[k]) && !json_is_null(json_object_get(s, fields[k])))
                                json_object_set(rule, fields[k], json_object_get(s, fields[k]));
                json_array_append_new(rules, rule);
        }
        /* Validated here so a bad profile is a 400 at create, not a failed start. */
        silo_seccomp *check = NULL;
        int r = silo_seccomp_parse(out, "HostConfig.SecurityOpt seccomp profile", &check, err);
        silo_seccomp_free(check);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(out);
        return 0;
}
