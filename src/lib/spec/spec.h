/* The OCI runtime-spec (1.2) config.json as a C model.  Strings are borrowed
 * from the JSON tree, which the spec keeps alive; arrays are owned. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "cgroup/cgroup.h"
#include "process/caps.h"
#include "seccomp/seccomp.h"
#include "util/error.h"
#include "util/json.h"

#define SILO_CONFIG_MAX_BYTES (16u << 20)

struct silo_rlimit {
        int resource;           /* RLIMIT_* */
        const char *name;       /* "RLIMIT_NOFILE" */
        uint64_t soft, hard;
};

struct silo_user {
        uint32_t uid, gid;
        silo_opt_u64 umask;
        uint32_t *additional_gids;
        size_t n_additional_gids;
        const char *username;   /* ignored on Linux, kept for messages */
};

struct silo_process {
        bool terminal;
        silo_opt_u64 console_height, console_width;
        const char *cwd;
        const char **env;
        const char **args;
        struct silo_user user;
        struct silo_caps caps;
        struct silo_rlimit *rlimits;
        size_t n_rlimits;
        bool no_new_privileges;
        silo_opt_i64 oom_score_adj;
        const char *apparmor_profile;
        const char *selinux_label;
};

struct silo_mount {
        const char *destination;
        const char *source;
        const char *type;
        unsigned long flags;            /* MS_* to set */
        unsigned long propagation;      /* MS_SHARED/MS_SLAVE/... (| MS_REC) */
        bool bind, recursive;           /* bind / rbind */
        bool recursive_ro;              /* "rro": mount_setattr AT_RECURSIVE */
        char *data;                     /* leftover fs options, owned */
};

enum silo_ns_type {
        SILO_NS_MOUNT, SILO_NS_PID, SILO_NS_UTS, SILO_NS_IPC,
        SILO_NS_NET, SILO_NS_USER, SILO_NS_CGROUP, SILO_NS_TIME,
        _SILO_NS_MAX,
        _SILO_NS_INVALID = -1,
};

struct silo_namespace {
        bool wanted;            /* listed in linux.namespaces */
        const char *path;       /* join instead of create */
};

struct silo_id_mapping { uint32_t container_id, host_id, size; };

struct silo_device {
        const char *path;
        char type;              /* 'c', 'b', 'u', 'p' */
        int64_t major, minor;
        silo_opt_u64 file_mode, uid, gid;
};

struct silo_hook {
        const char *path;
        const char **args;
        const char **env;
        silo_opt_i64 timeout;
};

enum silo_hook_kind {
        SILO_HOOK_PRESTART, SILO_HOOK_CREATE_RUNTIME, SILO_HOOK_CREATE_CONTAINER,
        SILO_HOOK_START_CONTAINER, SILO_HOOK_POSTSTART, SILO_HOOK_POSTSTOP,
        _SILO_HOOK_MAX,
};

struct silo_hooks {
        struct silo_hook *list[_SILO_HOOK_MAX];
        size_t n[_SILO_HOOK_MAX];
};

struct silo_sysctl { const char *key, *value; };

struct silo_time_offset { bool set; int64_t secs; uint32_t nanosecs; };

struct silo_spec {
        json_t *json;                   /* owns every borrowed string */
        const char *oci_version;
        const char *root_path;
        bool root_readonly;
        const char *hostname;
        const char *domainname;
        bool has_process;
        struct silo_process process;
        struct silo_mount *mounts;
        size_t n_mounts;
        struct silo_hooks hooks;
        json_t *annotations;

        struct silo_namespace ns[_SILO_NS_MAX];
        struct silo_id_mapping *uid_mappings, *gid_mappings;
        size_t n_uid_mappings, n_gid_mappings;
        struct silo_device *devices;
        size_t n_devices;
        const char *cgroups_path;
        bool has_resources;
        struct silo_resources resources;
        struct silo_sysctl *sysctl;
        size_t n_sysctl;
        silo_seccomp *seccomp;
        unsigned long rootfs_propagation;       /* 0 = default (rslave) */
        const char **masked_paths;
        const char **readonly_paths;
        const char *mount_label;
        struct silo_time_offset time_monotonic, time_boottime;
};

/* Parses config.json from a bundle directory fd. */
int silo_spec_load_at(int bundlefd, const char *name, struct silo_spec **ret, silo_error *err);
/* Parses from a JSON tree (takes a reference). */
int silo_spec_from_json(json_t *json, struct silo_spec **ret, silo_error *err);
struct silo_spec *silo_spec_free(struct silo_spec *spec);

/* Parses a `process` object alone (exec --process). Borrowed strings point
 * into `obj`, which the caller keeps alive; free with silo_process_done(). */
int silo_process_parse(json_t *obj, const char *path, struct silo_process *ret, silo_error *err);
void silo_process_done(struct silo_process *p);

/* Parses mount options (the OCI "options" array) into flags/propagation/data. */
int silo_mount_options_parse(const char **options, const char *path, struct silo_mount *m, silo_error *err);

const char *silo_ns_name(enum silo_ns_type t);          /* "mount", "pid", ... */
enum silo_ns_type silo_ns_from_name(const char *name);
int silo_ns_clone_flag(enum silo_ns_type t);            /* CLONE_NEW* */
const char *silo_ns_proc_name(enum silo_ns_type t);     /* "mnt", "pid", ... (/proc/PID/ns/) */
const char *silo_hook_kind_name(enum silo_hook_kind k); /* "prestart", ... */

/* Field paths the runtime does not know (and ignores, as the spec requires),
 * for warnings: a JSON array of strings such as "hostnme" or "process.usr". */
json_t *silo_spec_unknown_fields(json_t *config);

/* The default config.json of `silo-runtime spec` (runc-compatible). */
json_t *silo_spec_default(bool rootless);
