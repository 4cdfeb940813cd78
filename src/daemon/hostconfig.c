/* HostConfig -> config.json: what `docker run` options mean for the OCI spec
 * silo_bundle_create() wrote from the image.  hostconfig_check() validates
 * everything that needs no rootfs before anything is created (a bad value
 * is a 400 naming the field); hostconfig_apply() then edits the spec. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "hostconfig.h"
#include "process/caps.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define MIN_MEMORY (6 * 1024 * 1024)
#define DEVICE_WALK_MAX 4096
#define INIT_PATH "/sbin/docker-init"

struct hc {
        int64_t memory, memory_swap, memory_reservation, nano_cpus, cpu_shares, cpu_quota, cpu_period, shm_size;
        silo_opt_i64 pids_limit, oom_score_adj;
        bool auto_remove, readonly_rootfs, privileged;
        silo_opt_bool init;
        const char *isolation, *cpuset_cpus, *cpuset_mems;
        const char **binds, **cap_add, **cap_drop, **security_opt, **group_add;
        json_t *mounts, *tmpfs, *ulimits, *sysctls, *restart_policy;
};

static void hc_done(struct hc *h)
{
        free(h->binds);
        free(h->cap_add);
        free(h->cap_drop);
        free(h->security_opt);
        free(h->group_add);
}

#define F(name, kind, field) { name, kind, offsetof(struct hc, field), SILO_JSON_NULLABLE }
static const struct silo_json_field hc_fields[] = {
        F("Memory", SILO_JSON_INT64, memory),
        F("MemorySwap", SILO_JSON_INT64, memory_swap),
        F("MemoryReservation", SILO_JSON_INT64, memory_reservation),
        F("NanoCpus", SILO_JSON_INT64, nano_cpus),
        F("CpuShares", SILO_JSON_INT64, cpu_shares),
        F("CpuQuota", SILO_JSON_INT64, cpu_quota),
        F("CpuPeriod", SILO_JSON_INT64, cpu_period),
        F("ShmSize", SILO_JSON_INT64, shm_size),
        F("PidsLimit", SILO_JSON_OPT_INT64, pids_limit),
        F("OomScoreAdj", SILO_JSON_OPT_INT64, oom_score_adj),
        F("AutoRemove", SILO_JSON_BOOL, auto_remove),
        F("ReadonlyRootfs", SILO_JSON_BOOL, readonly_rootfs),
        F("Privileged", SILO_JSON_BOOL, privileged),
        F("Init", SILO_JSON_OPT_BOOL, init),
        F("Isolation", SILO_JSON_STRING, isolation),
        F("CpusetCpus", SILO_JSON_STRING, cpuset_cpus),
        F("CpusetMems", SILO_JSON_STRING, cpuset_mems),
        F("Binds", SILO_JSON_STRV, binds),
        F("CapAdd", SILO_JSON_STRV, cap_add),
        F("CapDrop", SILO_JSON_STRV, cap_drop),
        F("SecurityOpt", SILO_JSON_STRV, security_opt),
        F("GroupAdd", SILO_JSON_STRV, group_add),
        F("Mounts", SILO_JSON_ARRAY, mounts),
        F("Tmpfs", SILO_JSON_OBJECT, tmpfs),
        F("Ulimits", SILO_JSON_ARRAY, ulimits),
        F("Sysctls", SILO_JSON_OBJECT, sysctls),
        F("RestartPolicy", SILO_JSON_OBJECT, restart_policy),
        {}
};
#undef F

/* ---- resources and security ---- */

static long online_cpus(void)
{
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? n : 1;
}

/* "0-2,4": every listed id must be below max. */
static bool cpuset_valid(const char *s, long max)
{
        if (!*s)
                return true;
        for (const char *p = s; *p; ) {
                char *end;
                if (!isdigit((unsigned char) *p))
                        return false;
                long a = strtol(p, &end, 10), b = a;
                if (*end == '-') {
                        if (!isdigit((unsigned char) end[1]))
                                return false;
                        b = strtol(end + 1, &end, 10);
                }
                if (a > b || b >= max)
                        return false;
                if (*end == ',')
                        end++;
                else if (*end)
                        return false;
                p = end;
        }
        return true;
}

static long online_mems(void)
{
        long n = 0;
        _cleanup_closedir_ DIR *dir = opendir("/sys/devices/system/node");
        struct dirent *de;
        while (dir && (de = readdir(dir)))
                if (strncmp(de->d_name, "node", 4) == 0 && isdigit((unsigned char) de->d_name[4]))
                        n++;
        return n ? n : 1;
}

static const struct { const char *name; int res; } rlimit_names[] = {
        { "as", RLIMIT_AS }, { "core", RLIMIT_CORE }, { "cpu", RLIMIT_CPU }, { "data", RLIMIT_DATA },
        { "fsize", RLIMIT_FSIZE }, { "locks", RLIMIT_LOCKS }, { "memlock", RLIMIT_MEMLOCK },
        { "msgqueue", RLIMIT_MSGQUEUE }, { "nice", RLIMIT_NICE }, { "nofile", RLIMIT_NOFILE },
        { "nproc", RLIMIT_NPROC }, { "rss", RLIMIT_RSS }, { "rtprio", RLIMIT_RTPRIO }, { "rttime", RLIMIT_RTTIME },
        { "sigpending", RLIMIT_SIGPENDING }, { "stack", RLIMIT_STACK },
};

struct ulimit_json {
        const char *name;
        int64_t soft, hard;
};

static const struct silo_json_field ulimit_fields[] = {
        { "Name", SILO_JSON_STRING, offsetof(struct ulimit_json, name), SILO_JSON_REQUIRED },
        { "Soft", SILO_JSON_INT64, offsetof(struct ulimit_json, soft), SILO_JSON_REQUIRED },
        { "Hard", SILO_JSON_INT64, offsetof(struct ulimit_json, hard), SILO_JSON_REQUIRED },
        {}
};

/* silod's own permitted capabilities: a container cannot get more (no
 * CAP_SYS_RESOURCE on this host, for one). */
static uint64_t own_caps(void)
{
        _cleanup_free_ char *status = NULL;
        if (silo_read_file_at(AT_FDCWD, "/proc/self/status", 1u << 16, &status, NULL, NULL) < 0)
                return 0;
        const char *e = strstr(status, "CapPrm:");
        return e ? strtoull(e + 7, NULL, 16) : 0;
}

static bool have_cap_sys_resource(void)
{
        return own_caps() & (1ull << 24);
}

static int check_ulimits(json_t *ulimits, json_t *ret_rlimits, silo_error *err)
{
        size_t i;
        json_t *u;
        bool can_raise = have_cap_sys_resource();
        json_array_foreach(ulimits, i, u) {
                char p[SILO_JSON_PATH_MAX];
                silo_json_path_index(p, "HostConfig.Ulimits", i);
                struct ulimit_json j = {};
                if (!json_is_object(u))
                        return silo_error_msg(err, EINVAL, "%s: expected an object, got %s", p, silo_json_type_name(u));
                int r = silo_json_dispatch(u, p, ulimit_fields, &j, err);
                if (r < 0)
                        return r;
                size_t k = 0;
                while (k < ARRAY_SIZE(rlimit_names) && strcmp(rlimit_names[k].name, j.name) != 0)
                        k++;
                if (k == ARRAY_SIZE(rlimit_names))
                        return silo_error_msg(err, EINVAL, "%s: invalid ulimit type: %s", p, j.name);
                /* -1 is "unlimited" in docker's ulimit syntax. */
                uint64_t soft = j.soft < 0 ? RLIM_INFINITY : (uint64_t) j.soft;
                uint64_t hard = j.hard < 0 ? RLIM_INFINITY : (uint64_t) j.hard;
                if (soft > hard)
                        return silo_error_msg(err, EINVAL, "%s: ulimit soft limit must be less than or equal to hard "
                                                           "limit: %lld > %lld", p, (long long) j.soft, (long long) j.hard);
                struct rlimit host;
                if (!can_raise && getrlimit(rlimit_names[k].res, &host) == 0 && hard > host.rlim_max)
                        return silo_error_msg(err, EINVAL, "%s: %s hard limit %lld exceeds this host's hard limit %llu "
                                                           "(silod lacks CAP_SYS_RESOURCE, so it cannot raise it)",
                                              p, j.name, (long long) j.hard, (unsigned long long) host.rlim_max);
                if (ret_rlimits) {
                        char type[32];
                        snprintf(type, sizeof(type), "RLIMIT_%s", j.name);
                        for (char *c = type; *c; c++)
                                *c = (char) toupper((unsigned char) *c);
                        json_array_append_new(ret_rlimits, json_pack("{s:s, s:I, s:I}", "type", type, "soft",
                                                                     (json_int_t) soft, "hard", (json_int_t) hard));
                }
        }
        return 0;
}

/* Only sysctls the container's own namespaces isolate (docker's rule). */
static bool sysctl_namespaced(const char *k)
{
        static const char *const ipc[] = { "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                                           "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced" };
        for (size_t i = 0; i < ARRAY_SIZE(ipc); i++)
                if (strcmp(k, ipc[i]) == 0)
                        return true;
        return strncmp(k, "fs.mqueue.", 10) == 0 || strncmp(k, "net.", 4) == 0;
}

struct security {
        bool no_new_privs, seccomp_unconfined, systempaths_unconfined;
        const char *seccomp_profile;    /* JSON text */
};

static int parse_security_opt(const char **opts, struct security *s, json_t *warnings, silo_error *err)
{
        *s = (struct security) {};
        for (size_t i = 0; opts && opts[i]; i++) {
                char p[SILO_JSON_PATH_MAX];
                silo_json_path_index(p, "HostConfig.SecurityOpt", i);
                const char *o = opts[i];
                size_t klen = strcspn(o, "=:");
                const char *val = o[klen] ? o + klen + 1 : NULL;
                if (strncmp(o, "no-new-privileges", klen) == 0 && klen == 17) {
                        if (val && strcmp(val, "true") != 0 && strcmp(val, "false") != 0)
                                return silo_error_msg(err, EINVAL, "%s: invalid no-new-privileges value \"%s\"", p, val);
                        s->no_new_privs = !val || strcmp(val, "true") == 0;
                } else if (klen == 7 && strncmp(o, "seccomp", 7) == 0 && val) {
                        if (strcmp(val, "unconfined") == 0) {
                                s->seccomp_unconfined = true;
                        } else if (val[strspn(val, " \t\r\n")] == '{') {
                                s->seccomp_profile = val;
                        } else if (strcmp(val, "builtin") != 0) {
                                return silo_error_msg(err, EINVAL, "%s: seccomp takes \"unconfined\" or the profile's "
                                                                   "JSON content (the docker CLI reads the file)", p);
                        }
                } else if (klen == 11 && strncmp(o, "systempaths", 11) == 0 && val && strcmp(val, "unconfined") == 0) {
                        s->systempaths_unconfined = true;
                } else if ((klen == 5 && strncmp(o, "label", 5) == 0) || (klen == 8 && strncmp(o, "apparmor", 8) == 0)) {
                        /* Like docker on a host without SELinux/AppArmor: accepted, no effect. */
                        char w[256];
                        snprintf(w, sizeof(w), "%.*s is not available on this host: security option \"%.100s\" ignored",
                                 (int) klen, o, o);
                        json_array_append_new(warnings, json_string(w));
                } else {
                        return silo_error_msg(err, EINVAL, "%s: Invalid --security-opt: \"%s\"", p, o);
                }
        }
        return 0;
}

static int norm_cap(const char *in, const char *path, char out[64], silo_error *err)
{
        if (strlen(in) >= 56)
                return silo_error_msg(err, EINVAL, "%s: unknown capability: \"%.60s\"", path, in);
        if (strcasecmp(in, "ALL") == 0) {
                strcpy(out, "ALL");
                return 0;
        }
        snprintf(out, 64, "%s%s", strncasecmp(in, "CAP_", 4) == 0 ? "" : "CAP_", in);
        for (char *c = out; *c; c++)
                *c = (char) toupper((unsigned char) *c);
        if (silo_cap_from_name(out) < 0)
                return silo_error_msg(err, EINVAL, "%s: unknown capability: \"%s\"", path, in);
        return 0;
}

static bool strv_has_all(const char **v)
{
        for (; v && *v; v++)
                if (strcasecmp(*v, "ALL") == 0)
                        return true;
        return false;
}

/* Docker's rule: --cap-add ALL starts from every capability, --cap-drop ALL
 * from none; then drops go, then adds come back (an add wins). */
static int compute_caps(const struct hc *h, json_t *defaults, json_t **ret, silo_error *err)
{
        bool set[64] = {};
        int last = silo_cap_last();
        if (last > 63)
                last = 63;
        uint64_t own = own_caps();
        size_t i;
        json_t *v;
        char name[64], p[SILO_JSON_PATH_MAX];
        if (h->privileged || strv_has_all(h->cap_add)) {
                for (int c = 0; c <= last; c++)
                        set[c] = own & (1ull << c);
        } else {
                json_array_foreach(defaults, i, v) {
                        int c = silo_cap_from_name(json_string_value(v) ?: "");
                        if (c >= 0 && c <= last)
                                set[c] = true;
                }
        }
        for (i = 0; h->cap_drop && h->cap_drop[i]; i++) {
                int r = norm_cap(h->cap_drop[i], silo_json_path_index(p, "HostConfig.CapDrop", i), name, err);
                if (r < 0)
                        return r;
                if (h->privileged)
                        continue;
                if (strcmp(name, "ALL") == 0)
                        memset(set, 0, sizeof(set));
                else if (silo_cap_from_name(name) <= last)
                        set[silo_cap_from_name(name)] = false;
        }
        for (i = 0; h->cap_add && h->cap_add[i]; i++) {
                int r = norm_cap(h->cap_add[i], silo_json_path_index(p, "HostConfig.CapAdd", i), name, err);
                if (r < 0)
                        return r;
                if (strcmp(name, "ALL") == 0 || silo_cap_from_name(name) > last)
                        continue;
                if (!(own & (1ull << silo_cap_from_name(name))))
                        return silo_error_msg(err, EINVAL, "%s: %s is not available: silod itself does not hold it "
                                                           "on this host", p, name);
                set[silo_cap_from_name(name)] = true;
        }
        json_t *caps = json_array();
        for (int c = 0; caps && c <= last; c++)
                if (set[c] && silo_cap_name(c))
                        json_array_append_new(caps, json_string(silo_cap_name(c)));
        if (!caps)
                return silo_error_set(err, ENOMEM, "capabilities");
        *ret = caps;
        return 0;
}

static int check_resources(const struct hc *h, silo_error *err)
{
        if (h->memory < 0 || (h->memory > 0 && h->memory < MIN_MEMORY))
                return silo_error_msg(err, EINVAL, "HostConfig.Memory: Minimum memory limit allowed is 6MB");
        if (h->memory_swap > 0 && (h->memory == 0 || h->memory_swap < h->memory))
                return silo_error_msg(err, EINVAL, "HostConfig.MemorySwap: %s", h->memory == 0 ?
                                      "You should always set the Memory limit when using Memoryswap limit" :
                                      "Minimum memoryswap limit should be larger than memory limit");
        if (h->memory_swap < -1)
                return silo_error_msg(err, EINVAL, "HostConfig.MemorySwap: must be -1 (unlimited) or a byte count");
        if (h->memory_reservation < 0 || (h->memory > 0 && h->memory_reservation > h->memory))
                return silo_error_msg(err, EINVAL, "HostConfig.MemoryReservation: Minimum memory limit can not be "
                                                   "less than memory reservation limit");
        long ncpu = online_cpus();
        if (h->nano_cpus && (h->cpu_quota > 0 || h->cpu_period > 0))
                return silo_error_msg(err, EINVAL, "HostConfig.NanoCpus: Conflicting options: Nano CPUs and CPU "
                                                   "Period/Quota cannot both be set");
        if (h->nano_cpus < 0 || (h->nano_cpus > 0 && (h->nano_cpus < 10000000 || h->nano_cpus > ncpu * 1000000000LL)))
                return silo_error_msg(err, EINVAL, "HostConfig.NanoCpus: Range of CPUs is from 0.01 to %ld.00, as "
                                                   "there are only %ld CPUs available", ncpu, ncpu);
        if (h->cpu_period && (h->cpu_period < 1000 || h->cpu_period > 1000000))
                return silo_error_msg(err, EINVAL, "HostConfig.CpuPeriod: CPU cfs period can not be less than 1ms "
                                                   "(i.e. 1000) or larger than 1s (i.e. 1000000)");
        if (h->cpu_quota > 0 && h->cpu_quota < 1000)
                return silo_error_msg(err, EINVAL, "HostConfig.CpuQuota: CPU cfs quota can not be less than 1ms "
                                                   "(i.e. 1000)");
        if (h->cpu_shares < 0)
                return silo_error_msg(err, EINVAL, "HostConfig.CpuShares: must not be negative");
        if (h->cpuset_cpus && !cpuset_valid(h->cpuset_cpus, ncpu))
                return silo_error_msg(err, EINVAL, "HostConfig.CpusetCpus: Requested CPUs are not available - "
                                                   "requested %s, available: 0-%ld", h->cpuset_cpus, ncpu - 1);
        if (h->cpuset_mems && !cpuset_valid(h->cpuset_mems, online_mems()))
                return silo_error_msg(err, EINVAL, "HostConfig.CpusetMems: Requested memory nodes are not "
                                                   "available - requested %s, available: 0-%ld", h->cpuset_mems,
                                      online_mems() - 1);
        if (h->shm_size < 0)
                return silo_error_msg(err, EINVAL, "HostConfig.ShmSize: SHM size can not be less than 0");
        if (h->oom_score_adj.set && (h->oom_score_adj.value < -1000 || h->oom_score_adj.value > 1000))
                return silo_error_msg(err, EINVAL, "HostConfig.OomScoreAdj: Invalid value %lld, range for oom "
                                                   "score adj is [-1000, 1000]", (long long) h->oom_score_adj.value);
        return 0;
}

static int check_restart_policy(const struct hc *h, silo_error *err)
{
        if (!h->restart_policy)
                return 0;
        json_t *name = json_object_get(h->restart_policy, "Name"), *max = json_object_get(h->restart_policy,
                                                                                           "MaximumRetryCount");
        if ((name && !json_is_string(name) && !json_is_null(name)) || (max && !json_is_integer(max) && !json_is_null(max)))
                return silo_error_msg(err, EINVAL, "HostConfig.RestartPolicy: Name must be a string and "
                                                   "MaximumRetryCount an integer");
        const char *n = json_string_value(name) ?: "";
        if (*n && strcmp(n, "no") && strcmp(n, "always") && strcmp(n, "on-failure") && strcmp(n, "unless-stopped"))
                return silo_error_msg(err, EINVAL, "HostConfig.RestartPolicy.Name: invalid restart policy \"%s\"", n);
        if (json_integer_value(max) < 0)
                return silo_error_msg(err, EINVAL, "HostConfig.RestartPolicy.MaximumRetryCount: maximum retry count "
                                                   "cannot be negative");
        if (json_integer_value(max) > 0 && strcmp(n, "on-failure") != 0)
                return silo_error_msg(err, EINVAL, "HostConfig.RestartPolicy.MaximumRetryCount: maximum retry count "
                                                   "cannot be used with restart policy '%s'", n);
        if (*n && strcmp(n, "no") != 0 && h->auto_remove)
                return silo_error_msg(err, EINVAL, "HostConfig.RestartPolicy: can't create 'autoremove' containers "
                                                   "with restart policy '%s'", n);
        return 0;
}

static int hc_parse(json_t *host_config, struct hc *h, struct security *sec, json_t *warnings, silo_error *err)
{
        *h = (struct hc) {};
        *sec = (struct security) {};
        if (!host_config)
                return 0;
        int r = silo_json_dispatch(host_config, "HostConfig", hc_fields, h, err);
        if (r < 0)
                return r;
        if ((r = check_resources(h, err)) < 0 || (r = check_restart_policy(h, err)) < 0 ||
            (r = check_ulimits(h->ulimits, NULL, err)) < 0 ||
            (r = parse_security_opt(h->security_opt, sec, warnings, err)) < 0)
                return r;
        const char *k;
        json_t *v;
        json_object_foreach(h->sysctls, k, v) {
                char p[SILO_JSON_PATH_MAX];
                silo_json_path_key(p, "HostConfig.Sysctls", k);
                if (!json_is_string(v))
                        return silo_error_msg(err, EINVAL, "%s: expected a string, got %s", p, silo_json_type_name(v));
                if (!sysctl_namespaced(k))
                        return silo_error_msg(err, EINVAL, "%s: sysctl '%s' is not allowed: only namespaced sysctls "
                                                           "(net.*, fs.mqueue.*, kernel.msg*/sem/shm*) can be set", p, k);
        }
        return 0;
}

int hostconfig_check(json_t *host_config, json_t *warnings, silo_error *err)
{
        struct hc h;
        struct security sec;
        int r = hc_parse(host_config, &h, &sec, warnings, err);
        struct hc_mounts hm = { h.binds, h.mounts, h.tmpfs };
        if (r == 0)
                r = hc_mounts_check(&hm, err);
        _cleanup_json_ json_t *caps = NULL;
        if (r == 0)
                r = compute_caps(&h, NULL, &caps, err);
        hc_done(&h);
        return r;
}

const char *hostconfig_restart_policy(json_t *host_config, int64_t *ret_max)
{
        json_t *rp = json_object_get(host_config, "RestartPolicy");
        const char *n = json_string_value(json_object_get(rp, "Name"));
        if (ret_max)
                *ret_max = json_integer_value(json_object_get(rp, "MaximumRetryCount"));
        return n && *n ? n : "no";
}

/* ---- applying ---- */

static json_t *obj_child(json_t *parent, const char *key)
{
        json_t *o = json_object_get(parent, key);
        if (!json_is_object(o)) {
                o = json_object();
                json_object_set_new(parent, key, o);
        }
        return o;
}

/* Host devices for --privileged (docker walks /dev the same way). */
static void add_host_devices(json_t *devices, const char *dir, int depth, unsigned *budget)
{
        static const char *const skip[] = { "pts", "shm", "mqueue", "fd", "console", "ptmx", "null", "zero", "full",
                                            "random", "urandom", "tty", "core", "stdin", "stdout", "stderr" };
        _cleanup_closedir_ DIR *d = opendir(dir);
        struct dirent *de;
        while (d && depth < 4 && (de = readdir(d)) && *budget > 0) {
                (*budget)--;
                bool skipped = de->d_name[0] == '.';
                for (size_t i = 0; !skipped && depth == 0 && i < ARRAY_SIZE(skip); i++)
                        skipped = strcmp(de->d_name, skip[i]) == 0;
                if (skipped)
                        continue;
                char path[PATH_MAX];
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                struct stat st;
                if (lstat(path, &st) < 0)
                        continue;
                if (S_ISDIR(st.st_mode))
                        add_host_devices(devices, path, depth + 1, budget);
                else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
                        json_array_append_new(devices, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "path", path,
                                                                 "type", S_ISCHR(st.st_mode) ? "c" : "b", "major",
                                                                 (json_int_t) major(st.st_rdev), "minor",
                                                                 (json_int_t) minor(st.st_rdev), "fileMode",
                                                                 (json_int_t) (st.st_mode & 07777), "uid",
                                                                 (json_int_t) st.st_uid, "gid", (json_int_t) st.st_gid));
        }
}

static int apply_privileged(json_t *spec, json_t *linux_, json_t *res)
{
        json_object_del(linux_, "maskedPaths");
        json_object_del(linux_, "readonlyPaths");
        json_object_set_new(res, "devices", json_pack("[{s:b, s:s}]", "allow", 1, "access", "rwm"));
        json_t *devices = json_array();
        unsigned budget = DEVICE_WALK_MAX;
        add_host_devices(devices, "/dev", 0, &budget);
        json_object_set_new(linux_, "devices", devices);
        /* A writable /sys, as docker gives privileged containers. */
        json_t *sys = hc_find_mount(json_object_get(spec, "mounts"), "/sys");
        json_t *opts = json_object_get(sys, "options");
        for (size_t i = json_array_size(opts); i-- > 0; )
                if (strcmp(json_string_value(json_array_get(opts, i)) ?: "", "ro") == 0)
                        json_array_set_new(opts, i, json_string("rw"));
        return 0;
}

static int resolve_group(int rootfd, const char *name, const char *path, json_int_t *ret, silo_error *err)
{
        char *end;
        long long v = strtoll(name, &end, 10);
        if (*name && !*end && v >= 0 && v < UINT32_MAX) {
                *ret = v;
                return 0;
        }
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = rootfd >= 0 ? silo_open_in_root(rootfd, "/etc/group", O_RDONLY, 0, NULL) : -1;
        char p[64];
        if (fd >= 0)
                silo_read_file_at(AT_FDCWD, silo_fd_path(p, fd), 4u << 20, &text, NULL, NULL);
        size_t nlen = strlen(name);
        for (char *line = text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (c2 && (size_t) (c1 - line) == nlen && strncmp(line, name, nlen) == 0) {
                        *ret = strtoll(c2 + 1, NULL, 10);
                        return 0;
                }
        }
        return silo_error_msg(err, EINVAL, "%s: Unable to find group %s", path, name);
}

static int apply_process(struct silod *d, const struct hc *h, const struct security *sec, json_t *spec,
                         json_t *process, int rootfd, silo_error *err)
{
        json_t *caps_obj = obj_child(process, "capabilities");
        _cleanup_json_ json_t *caps = NULL;
        int r = compute_caps(h, json_object_get(caps_obj, "bounding"), &caps, err);
        if (r < 0)
                return r;
        json_object_set(caps_obj, "bounding", caps);
        json_object_set(caps_obj, "effective", caps);
        json_object_set(caps_obj, "permitted", caps);
        if (sec->no_new_privs)
                json_object_set_new(process, "noNewPrivileges", json_true());
        if (h->oom_score_adj.set)
                json_object_set_new(process, "oomScoreAdj", json_integer(h->oom_score_adj.value));
        if (json_array_size(h->ulimits)) {
                json_t *rl = json_array();
                r = check_ulimits(h->ulimits, rl, err);
                if (r < 0) {
                        json_decref(rl);
                        return r;
                }
                /* The bundle's defaults stay for what the user did not set. */
                json_t *old = json_object_get(process, "rlimits");
                size_t i;
                json_t *o;
                json_array_foreach(old, i, o) {
                        bool overridden = false;
                        size_t k;
                        json_t *n;
                        json_array_foreach(rl, k, n)
                                overridden |= json_equal(json_object_get(n, "type"), json_object_get(o, "type"));
                        if (!overridden)
                                json_array_append(rl, o);
                }
                json_object_set_new(process, "rlimits", rl);
        }
        json_t *user = obj_child(process, "user");
        for (size_t i = 0; h->group_add && h->group_add[i]; i++) {
                char p[SILO_JSON_PATH_MAX];
                json_int_t gid = 0;
                r = resolve_group(rootfd, h->group_add[i], silo_json_path_index(p, "HostConfig.GroupAdd", i), &gid, err);
                if (r < 0)
                        return r;
                json_t *gids = json_object_get(user, "additionalGids");
                if (!json_is_array(gids)) {
                        gids = json_array();
                        json_object_set_new(user, "additionalGids", gids);
                }
                json_array_append_new(gids, json_integer(gid));
        }
        if (h->init.set && h->init.value) {
                _cleanup_free_ char *dir = strdup(d->monitor_path), *init = NULL;
                if (!dir || asprintf(&init, "%s/silo-init", dirname(dir)) < 0)
                        return silo_error_set(err, ENOMEM, "HostConfig.Init");
                if (access(init, X_OK) < 0)
                        return silo_error_set(err, EOPNOTSUPP, "HostConfig.Init: %s", init);
                json_t *args = json_pack("[s, s]", INIT_PATH, "--");
                json_array_extend(args, json_object_get(process, "args"));
                json_object_set_new(process, "args", args);
                json_array_append_new(json_object_get(spec, "mounts"),
                                      json_pack("{s:s, s:s, s:s, s:[s, s, s]}", "destination", INIT_PATH, "type",
                                                "bind", "source", init, "options", "bind", "ro", "nosuid"));
        }
        return 0;
}

static void apply_resources(const struct hc *h, json_t *res, json_t *warnings)
{
        if (h->memory > 0 || h->memory_reservation > 0 || h->memory_swap) {
                json_t *mem = obj_child(res, "memory");
                if (h->memory > 0)
                        json_object_set_new(mem, "limit", json_integer(h->memory));
                if (h->memory_reservation > 0)
                        json_object_set_new(mem, "reservation", json_integer(h->memory_reservation));
                bool swap_accounting = access("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", F_OK) == 0 ||
                                       access("/sys/fs/cgroup/memory.swap.max", F_OK) == 0;
                /* MemorySwap is memory+swap; 0 with a memory limit means twice the limit. */
                int64_t swap = h->memory_swap ? h->memory_swap : (h->memory > 0 ? 2 * h->memory : 0);
                if (swap && swap_accounting)
                        json_object_set_new(mem, "swap", json_integer(swap));
                else if (h->memory_swap > 0)
                        json_array_append_new(warnings, json_string("Your kernel does not support swap limit "
                                                                    "capabilities or the cgroup is not mounted. "
                                                                    "Memory limited without swap."));
        }
        if (h->nano_cpus || h->cpu_shares || h->cpu_quota || h->cpu_period || h->cpuset_cpus || h->cpuset_mems) {
                json_t *cpu = obj_child(res, "cpu");
                if (h->nano_cpus) {
                        json_object_set_new(cpu, "period", json_integer(100000));
                        json_object_set_new(cpu, "quota", json_integer(h->nano_cpus * 100000 / 1000000000));
                }
                if (h->cpu_period)
                        json_object_set_new(cpu, "period", json_integer(h->cpu_period));
                if (h->cpu_quota > 0)
                        json_object_set_new(cpu, "quota", json_integer(h->cpu_quota));
                if (h->cpu_shares)
                        json_object_set_new(cpu, "shares", json_integer(h->cpu_shares < 2 ? 2 : h->cpu_shares));
                if (h->cpuset_cpus && *h->cpuset_cpus)
                        json_object_set_new(cpu, "cpus", json_string(h->cpuset_cpus));
                if (h->cpuset_mems && *h->cpuset_mems)
                        json_object_set_new(cpu, "mems", json_string(h->cpuset_mems));
        }
        if (h->pids_limit.set && h->pids_limit.value > 0)
                json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t) h->pids_limit.value));
}

static void apply_shm_size(json_t *spec, int64_t size)
{
        json_t *shm = hc_find_mount(json_object_get(spec, "mounts"), "/dev/shm");
        json_t *opts = json_object_get(shm, "options");
        if (!shm || size <= 0 || !json_is_array(opts))
                return;
        for (size_t i = json_array_size(opts); i-- > 0; )
                if (strncmp(json_string_value(json_array_get(opts, i)) ?: "", "size=", 5) == 0)
                        json_array_remove(opts, i);
        char s[64];
        snprintf(s, sizeof(s), "size=%lld", (long long) size);
        json_array_append_new(opts, json_string(s));
}

int hostconfig_apply(struct silod *d, const char *id, json_t *body, json_t *image_volumes, int rootfd, json_t *spec,
                     json_t *warnings, json_t **ret_mount_points, silo_error *err)
{
        json_t *host_config = json_object_get(body, "HostConfig");
        struct hc h;
        struct security sec;
        /* hostconfig_check() gave the parser's warnings already. */
        _cleanup_json_ json_t *again = json_array();
        int r = hc_parse(json_is_object(host_config) ? host_config : NULL, &h, &sec, again, err);
        if (r < 0) {
                hc_done(&h);
                return r;
        }
        json_t *process = obj_child(spec, "process"), *linux_ = obj_child(spec, "linux");
        json_t *res = obj_child(linux_, "resources");
        if (!json_is_array(json_object_get(spec, "mounts")))
                json_object_set_new(spec, "mounts", json_array());
        _cleanup_json_ json_t *wanted = json_object();
        if (json_is_object(image_volumes))
                json_object_update(wanted, image_volumes);
        if (json_is_object(json_object_get(body, "Volumes")))
                json_object_update(wanted, json_object_get(body, "Volumes"));
        _cleanup_json_ json_t *points = NULL;
        (void) id;
        struct hc_mounts hm = { h.binds, h.mounts, h.tmpfs };
        r = hc_mounts_apply(d, &hm, wanted, rootfd, spec, &points, err);
        if (r == 0)
                r = apply_process(d, &h, &sec, spec, process, rootfd, err);
        if (r == 0) {
                apply_resources(&h, res, warnings);
                apply_shm_size(spec, h.shm_size);
                if (json_object_size(h.sysctls))
                        json_object_set(linux_, "sysctl", h.sysctls);
                if (h.privileged)
                        apply_privileged(spec, linux_, res);
                if (sec.systempaths_unconfined) {
                        json_object_del(linux_, "maskedPaths");
                        json_object_del(linux_, "readonlyPaths");
                }
                json_t *caps = json_object_get(json_object_get(process, "capabilities"), "bounding");
                json_t *seccomp = NULL;
                if (sec.seccomp_profile && !h.privileged) {
                        _cleanup_json_ json_t *profile = NULL;
                        r = silo_json_load_buffer(sec.seccomp_profile, strlen(sec.seccomp_profile),
                                                  "HostConfig.SecurityOpt seccomp profile", &profile, err);
                        if (r == 0)
                                r = seccomp_from_docker(profile, caps, &seccomp, err);
                } else if (!h.privileged && !sec.seccomp_unconfined) {
                        seccomp = seccomp_default_profile(caps);
                        if (!seccomp)
                                r = silo_error_set(err, ENOMEM, "seccomp");
                }
                if (seccomp)
                        json_object_set_new(linux_, "seccomp", seccomp);
        }
        hc_done(&h);
        if (r < 0) {
                volumes_remove_anonymous(d, points);
                return r;
        }
        *ret_mount_points = TAKE_PTR(points);
        return 0;
}
