/* config.json -> struct silo_spec.  Every error names the field path. */
#include "spec/spec.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include "util/cleanup.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static const struct {
        const char *oci;
        const char *proc;
        int flag;
} ns_table[_SILO_NS_MAX] = {
        [SILO_NS_MOUNT]  = { "mount",   "mnt",    CLONE_NEWNS },
        [SILO_NS_PID]    = { "pid",     "pid",    CLONE_NEWPID },
        [SILO_NS_UTS]    = { "uts",     "uts",    CLONE_NEWUTS },
        [SILO_NS_IPC]    = { "ipc",     "ipc",    CLONE_NEWIPC },
        [SILO_NS_NET]    = { "network", "net",    CLONE_NEWNET },
        [SILO_NS_USER]   = { "user",    "user",   CLONE_NEWUSER },
        [SILO_NS_CGROUP] = { "cgroup",  "cgroup", CLONE_NEWCGROUP },
        [SILO_NS_TIME]   = { "time",    "time",   CLONE_NEWTIME },
};

const char *silo_ns_name(enum silo_ns_type t) { return ns_table[t].oci; }
const char *silo_ns_proc_name(enum silo_ns_type t) { return ns_table[t].proc; }
int silo_ns_clone_flag(enum silo_ns_type t) { return ns_table[t].flag; }

enum silo_ns_type silo_ns_from_name(const char *name)
{
        for (int t = 0; t < _SILO_NS_MAX; t++)
                if (!strcmp(name, ns_table[t].oci))
                        return t;
        return _SILO_NS_INVALID;
}

static const char *const hook_names[_SILO_HOOK_MAX] = {
        [SILO_HOOK_PRESTART] = "prestart",
        [SILO_HOOK_CREATE_RUNTIME] = "createRuntime",
        [SILO_HOOK_CREATE_CONTAINER] = "createContainer",
        [SILO_HOOK_START_CONTAINER] = "startContainer",
        [SILO_HOOK_POSTSTART] = "poststart",
        [SILO_HOOK_POSTSTOP] = "poststop",
};

const char *silo_hook_kind_name(enum silo_hook_kind k) { return hook_names[k]; }

static const struct { const char *name; int resource; } rlimit_table[] = {
        { "RLIMIT_AS", RLIMIT_AS }, { "RLIMIT_CORE", RLIMIT_CORE }, { "RLIMIT_CPU", RLIMIT_CPU },
        { "RLIMIT_DATA", RLIMIT_DATA }, { "RLIMIT_FSIZE", RLIMIT_FSIZE }, { "RLIMIT_LOCKS", RLIMIT_LOCKS },
        { "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK }, { "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
        { "RLIMIT_NICE", RLIMIT_NICE }, { "RLIMIT_NOFILE", RLIMIT_NOFILE }, { "RLIMIT_NPROC", RLIMIT_NPROC },
        { "RLIMIT_RSS", RLIMIT_RSS }, { "RLIMIT_RTPRIO", RLIMIT_RTPRIO }, { "RLIMIT_RTTIME", RLIMIT_RTTIME },
        { "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING }, { "RLIMIT_STACK", RLIMIT_STACK },
};

/* Generic helper: decode a JSON array of objects into a calloc'd array. */
typedef int (*element_fn)(json_t *elem, const char *path, void *out, silo_error *err);

static int parse_array(json_t *arr, const char *path, size_t elem_size, element_fn fn,
                       void **ret, size_t *ret_n, silo_error *err)
{
        *ret = NULL;
        *ret_n = 0;
        if (!arr || json_is_null(arr))
                return 0;
        if (!json_is_array(arr))
                return silo_error_msg(err, EINVAL, "%s: expected an array, got %s", path, silo_json_type_name(arr));
        size_t n = json_array_size(arr);
        if (n == 0)
                return 0;
        void *items = calloc(n, elem_size);
        if (!items)
                return silo_error_set(err, ENOMEM, "%s", path);
        /* Owned by the caller from here, zeroed, so that on a failure midway
         * the caller's destructor frees what the elements already hold. */
        *ret = items;
        *ret_n = n;
        for (size_t i = 0; i < n; i++) {
                char p[SILO_JSON_PATH_MAX];
                int r = fn(json_array_get(arr, i), silo_json_path_index(p, path, i), (char *) items + i * elem_size, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- process ---- */

static int parse_rlimit(json_t *elem, const char *path, void *out, silo_error *err)
{
        struct silo_rlimit *rl = out;
        const char *type = NULL;
        const struct silo_json_field fields[] = {
                { "type", SILO_JSON_STRING, 0, SILO_JSON_REQUIRED },
                { NULL },
        };
        struct { const char *type; } t = { NULL };
        int r = silo_json_dispatch(elem, path, fields, &t, err);
        if (r < 0)
                return r;
        type = t.type;
        const struct silo_json_field limits[] = {
                { "soft", SILO_JSON_UINT64, offsetof(struct silo_rlimit, soft), SILO_JSON_REQUIRED },
                { "hard", SILO_JSON_UINT64, offsetof(struct silo_rlimit, hard), SILO_JSON_REQUIRED },
                { NULL },
        };
        r = silo_json_dispatch(elem, path, limits, rl, err);
        if (r < 0)
                return r;
        rl->resource = -1;
        for (size_t i = 0; i < ARRAY_SIZE(rlimit_table); i++)
                if (!strcmp(type, rlimit_table[i].name)) {
                        rl->resource = rlimit_table[i].resource;
                        rl->name = rlimit_table[i].name;
                }
        if (rl->resource < 0)
                return silo_error_msg(err, EINVAL, "%s.type: unknown rlimit \"%s\"", path, type);
        if (rl->soft > rl->hard)
                return silo_error_msg(err, EINVAL, "%s: %s soft limit %llu exceeds hard limit %llu", path, type,
                                      (unsigned long long) rl->soft, (unsigned long long) rl->hard);
        return 0;
}

static int parse_gid(json_t *elem, const char *path, void *out, silo_error *err)
{
        json_t *wrap = json_pack("{sO}", "gid", elem);
        const struct silo_json_field f[] = { { "gid", SILO_JSON_UINT32, 0, 0 }, { NULL } };
        int r = silo_json_dispatch(wrap, "", f, out, NULL);
        json_decref(wrap);
        if (r < 0)
                return silo_error_msg(err, EINVAL, "%s: expected a gid (non-negative integer), got %s",
                                      path, silo_json_type_name(elem));
        return 0;
}

static int parse_caps_field(json_t *v, const char *path, void *field, silo_error *err)
{
        return silo_caps_parse(v, path, field, err);
}

static int parse_console_size(json_t *v, const char *path, void *field, silo_error *err)
{
        struct silo_process *p = field;
        const struct silo_json_field f[] = {
                { "height", SILO_JSON_OPT_UINT64, offsetof(struct silo_process, console_height), SILO_JSON_REQUIRED },
                { "width", SILO_JSON_OPT_UINT64, offsetof(struct silo_process, console_width), SILO_JSON_REQUIRED },
                { NULL },
        };
        return silo_json_dispatch(v, path, f, p, err);
}

void silo_process_done(struct silo_process *p)
{
        free(p->env);
        free(p->args);
        free(p->user.additional_gids);
        free(p->rlimits);
        memset(p, 0, sizeof(*p));
}

int silo_process_parse(json_t *obj, const char *path, struct silo_process *p, silo_error *err)
{
        char sub[SILO_JSON_PATH_MAX];
        json_t *user = NULL, *rlimits = NULL, *console = NULL;
        const struct silo_json_field fields[] = {
                { "terminal", SILO_JSON_BOOL, offsetof(struct silo_process, terminal), SILO_JSON_NULLABLE },
                { "cwd", SILO_JSON_STRING, offsetof(struct silo_process, cwd), 0 },
                { "env", SILO_JSON_STRV, offsetof(struct silo_process, env), SILO_JSON_NULLABLE },
                { "args", SILO_JSON_STRV, offsetof(struct silo_process, args), SILO_JSON_NULLABLE },
                { "capabilities", SILO_JSON_CUSTOM, offsetof(struct silo_process, caps), SILO_JSON_NULLABLE, parse_caps_field },
                { "noNewPrivileges", SILO_JSON_BOOL, offsetof(struct silo_process, no_new_privileges), SILO_JSON_NULLABLE },
                { "oomScoreAdj", SILO_JSON_OPT_INT64, offsetof(struct silo_process, oom_score_adj), SILO_JSON_NULLABLE },
                { "apparmorProfile", SILO_JSON_STRING, offsetof(struct silo_process, apparmor_profile), SILO_JSON_NULLABLE },
                { "selinuxLabel", SILO_JSON_STRING, offsetof(struct silo_process, selinux_label), SILO_JSON_NULLABLE },
                { NULL },
        };

        memset(p, 0, sizeof(*p));
        int r = silo_json_dispatch(obj, path, fields, p, err);
        if (r < 0)
                goto fail;

        user = json_object_get(obj, "user");
        if (user && !json_is_null(user)) {
                const struct silo_json_field uf[] = {
                        { "uid", SILO_JSON_UINT32, offsetof(struct silo_user, uid), 0 },
                        { "gid", SILO_JSON_UINT32, offsetof(struct silo_user, gid), 0 },
                        { "umask", SILO_JSON_OPT_UINT64, offsetof(struct silo_user, umask), SILO_JSON_NULLABLE },
                        { "username", SILO_JSON_STRING, offsetof(struct silo_user, username), SILO_JSON_NULLABLE },
                        { NULL },
                };
                silo_json_path_key(sub, path, "user");
                r = silo_json_dispatch(user, sub, uf, &p->user, err);
                if (r < 0)
                        goto fail;
                if (p->user.umask.set && p->user.umask.value > 0777) {
                        r = silo_error_msg(err, EINVAL, "%s.umask: %llu is not a valid umask", sub,
                                           (unsigned long long) p->user.umask.value);
                        goto fail;
                }
                char gpath[SILO_JSON_PATH_MAX];
                r = parse_array(json_object_get(user, "additionalGids"), silo_json_path_key(gpath, sub, "additionalGids"),
                                sizeof(uint32_t), parse_gid, (void **) &p->user.additional_gids,
                                &p->user.n_additional_gids, err);
                if (r < 0)
                        goto fail;
        }

        rlimits = json_object_get(obj, "rlimits");
        r = parse_array(rlimits, silo_json_path_key(sub, path, "rlimits"), sizeof(struct silo_rlimit),
                        parse_rlimit, (void **) &p->rlimits, &p->n_rlimits, err);
        if (r < 0)
                goto fail;

        console = json_object_get(obj, "consoleSize");
        if (console && !json_is_null(console)) {
                r = parse_console_size(console, silo_json_path_key(sub, path, "consoleSize"), p, err);
                if (r < 0)
                        goto fail;
        }

        if (!p->cwd)
        {
                r = silo_error_msg(err, EINVAL, "%s.cwd: required field is missing", path);
                goto fail;
        }
        if (p->cwd[0] != '/') {
                r = silo_error_msg(err, EINVAL, "%s.cwd: \"%s\" is not an absolute path", path, p->cwd);
                goto fail;
        }
        if (p->oom_score_adj.set && (p->oom_score_adj.value < -1000 || p->oom_score_adj.value > 1000)) {
                r = silo_error_msg(err, EINVAL, "%s.oomScoreAdj: %lld is outside -1000..1000", path,
                                   (long long) p->oom_score_adj.value);
                goto fail;
        }
        return 0;
fail:
        silo_process_done(p);
        return r;
}

/* ---- mounts ---- */

static int parse_mount(json_t *elem, const char *path, void *out, silo_error *err)
{
        struct silo_mount *m = out;
        struct { const char *dest, *src, *type; const char **options; } raw = { 0 };
        const struct silo_json_field fields[] = {
                { "destination", SILO_JSON_STRING, offsetof(__typeof__(raw), dest), SILO_JSON_REQUIRED },
                { "source", SILO_JSON_STRING, offsetof(__typeof__(raw), src), SILO_JSON_NULLABLE },
                { "type", SILO_JSON_STRING, offsetof(__typeof__(raw), type), SILO_JSON_NULLABLE },
                { "options", SILO_JSON_STRV, offsetof(__typeof__(raw), options), SILO_JSON_NULLABLE },
                { NULL },
        };
        int r = silo_json_dispatch(elem, path, fields, &raw, err);
        if (r < 0)
                return r;
        _cleanup_free_ const char **options = raw.options;
        m->destination = raw.dest;
        m->source = raw.src;
        m->type = raw.type;
        if (m->destination[0] != '/')
                return silo_error_msg(err, EINVAL, "%s.destination: \"%s\" is not an absolute path", path, m->destination);
        char p[SILO_JSON_PATH_MAX];
        r = silo_mount_options_parse(options, silo_json_path_key(p, path, "options"), m, err);
        if (r < 0)
                return r;
        if (m->type && (!strcmp(m->type, "bind") || !strcmp(m->type, "rbind")))
                m->bind = true;
        if (m->bind && !m->source)
                return silo_error_msg(err, EINVAL, "%s.source: a bind mount needs a source", path);
        if (!m->bind && !m->type)
                return silo_error_msg(err, EINVAL, "%s.type: required for a non-bind mount", path);
        return 0;
}

/* ---- linux ---- */

static int parse_id_mapping(json_t *elem, const char *path, void *out, silo_error *err)
{
        const struct silo_json_field fields[] = {
                { "containerID", SILO_JSON_UINT32, offsetof(struct silo_id_mapping, container_id), SILO_JSON_REQUIRED },
                { "hostID", SILO_JSON_UINT32, offsetof(struct silo_id_mapping, host_id), SILO_JSON_REQUIRED },
                { "size", SILO_JSON_UINT32, offsetof(struct silo_id_mapping, size), SILO_JSON_REQUIRED },
                { NULL },
        };
        return silo_json_dispatch(elem, path, fields, out, err);
}

static int parse_device(json_t *elem, const char *path, void *out, silo_error *err)
{
        struct silo_device *d = out;
        const char *type = NULL;
        struct { const char *type; } t = { 0 };
        const struct silo_json_field tf[] = { { "type", SILO_JSON_STRING, 0, SILO_JSON_REQUIRED }, { NULL } };
        const struct silo_json_field fields[] = {
                { "path", SILO_JSON_STRING, offsetof(struct silo_device, path), SILO_JSON_REQUIRED },
                { "major", SILO_JSON_INT64, offsetof(struct silo_device, major), 0 },
                { "minor", SILO_JSON_INT64, offsetof(struct silo_device, minor), 0 },
                { "fileMode", SILO_JSON_OPT_UINT64, offsetof(struct silo_device, file_mode), SILO_JSON_NULLABLE },
                { "uid", SILO_JSON_OPT_UINT64, offsetof(struct silo_device, uid), SILO_JSON_NULLABLE },
                { "gid", SILO_JSON_OPT_UINT64, offsetof(struct silo_device, gid), SILO_JSON_NULLABLE },
                { NULL },
        };
        int r = silo_json_dispatch(elem, path, tf, &t, err);
        if (r < 0)
                return r;
        type = t.type;
        r = silo_json_dispatch(elem, path, fields, d, err);
        if (r < 0)
                return r;
        if (strlen(type) != 1 || !strchr("cbup", type[0]))
                return silo_error_msg(err, EINVAL, "%s.type: unknown device type \"%s\" (want c, b, u or p)", path, type);
        d->type = type[0];
        if (d->path[0] != '/')
                return silo_error_msg(err, EINVAL, "%s.path: \"%s\" is not an absolute path", path, d->path);
        if (d->type != 'p' && (!json_object_get(elem, "major") || !json_object_get(elem, "minor")))
                return silo_error_msg(err, EINVAL, "%s: major and minor are required for device type %c", path, d->type);
        return 0;
}

static int parse_hook(json_t *elem, const char *path, void *out, silo_error *err)
{
        struct silo_hook *h = out;
        const struct silo_json_field fields[] = {
                { "path", SILO_JSON_STRING, offsetof(struct silo_hook, path), SILO_JSON_REQUIRED },
                { "args", SILO_JSON_STRV, offsetof(struct silo_hook, args), SILO_JSON_NULLABLE },
                { "env", SILO_JSON_STRV, offsetof(struct silo_hook, env), SILO_JSON_NULLABLE },
                { "timeout", SILO_JSON_OPT_INT64, offsetof(struct silo_hook, timeout), SILO_JSON_NULLABLE },
                { NULL },
        };
        int r = silo_json_dispatch(elem, path, fields, h, err);
        if (r < 0)
                return r;
        if (h->path[0] != '/')
                return silo_error_msg(err, EINVAL, "%s.path: \"%s\" is not an absolute path", path, h->path);
        if (h->timeout.set && h->timeout.value <= 0)
                return silo_error_msg(err, EINVAL, "%s.timeout: must be greater than zero", path);
        return 0;
}

static int parse_namespaces(json_t *arr, const char *path, struct silo_spec *s, silo_error *err)
{
        if (!arr || json_is_null(arr))
                return 0;
        if (!json_is_array(arr))
                return silo_error_msg(err, EINVAL, "%s: expected an array, got %s", path, silo_json_type_name(arr));
        size_t i;
        json_t *elem;
        json_array_foreach(arr, i, elem) {
                char p[SILO_JSON_PATH_MAX];
                struct { const char *type, *path; } ns = { 0 };
                const struct silo_json_field fields[] = {
                        { "type", SILO_JSON_STRING, offsetof(__typeof__(ns), type), SILO_JSON_REQUIRED },
                        { "path", SILO_JSON_STRING, offsetof(__typeof__(ns), path), SILO_JSON_NULLABLE },
                        { NULL },
                };
                silo_json_path_index(p, path, i);
                int r = silo_json_dispatch(elem, p, fields, &ns, err);
                if (r < 0)
                        return r;
                enum silo_ns_type t = silo_ns_from_name(ns.type);
                if (t == _SILO_NS_INVALID)
                        return silo_error_msg(err, EINVAL, "%s.type: unknown namespace type \"%s\"", p, ns.type);
                if (s->ns[t].wanted)
                        return silo_error_msg(err, EINVAL, "%s.type: namespace \"%s\" listed twice", p, ns.type);
                if (ns.path && *ns.path && ns.path[0] != '/')
                        return silo_error_msg(err, EINVAL, "%s.path: \"%s\" is not an absolute path", p, ns.path);
                s->ns[t].wanted = true;
                s->ns[t].path = ns.path && *ns.path ? ns.path : NULL;
        }
        return 0;
}

static int parse_time_offset(json_t *obj, const char *path, const char *key, struct silo_time_offset *ret, silo_error *err)
{
        json_t *v = json_object_get(obj, key);
        if (!v || json_is_null(v))
                return 0;
        char p[SILO_JSON_PATH_MAX];
        const struct silo_json_field fields[] = {
                { "secs", SILO_JSON_INT64, offsetof(struct silo_time_offset, secs), 0 },
                { "nanosecs", SILO_JSON_UINT32, offsetof(struct silo_time_offset, nanosecs), 0 },
                { NULL },
        };
        int r = silo_json_dispatch(v, silo_json_path_key(p, path, key), fields, ret, err);
        if (r < 0)
                return r;
        if (ret->nanosecs >= 1000000000u)
                return silo_error_msg(err, EINVAL, "%s.nanosecs: must be below 1000000000", p);
        ret->set = true;
        return 0;
}

static int parse_sysctl(json_t *obj, const char *path, struct silo_spec *s, silo_error *err)
{
        if (!obj || json_is_null(obj))
                return 0;
        if (!json_is_object(obj))
                return silo_error_msg(err, EINVAL, "%s: expected an object, got %s", path, silo_json_type_name(obj));
        size_t n = json_object_size(obj), i = 0;
        if (n == 0)
                return 0;
        s->sysctl = calloc(n, sizeof(*s->sysctl));
        if (!s->sysctl)
                return silo_error_set(err, ENOMEM, "%s", path);
        const char *key;
        json_t *v;
        json_object_foreach(obj, key, v) {
                if (!json_is_string(v))
                        return silo_error_msg(err, EINVAL, "%s.%s: expected a string, got %s", path, key, silo_json_type_name(v));
                /* Names become paths under /proc/sys: no traversal. */
                if (!*key || strstr(key, "..") || key[0] == '/' || key[0] == '.')
                        return silo_error_msg(err, EINVAL, "%s: invalid sysctl name \"%s\"", path, key);
                s->sysctl[i].key = key;
                s->sysctl[i].value = json_string_value(v);
                i++;
        }
        s->n_sysctl = n;
        return 0;
}

static int parse_propagation(const char *value, const char *path, unsigned long *ret, silo_error *err)
{
        static const struct { const char *name; unsigned long flag; } table[] = {
                { "private", MS_PRIVATE }, { "rprivate", MS_PRIVATE | MS_REC },
                { "shared", MS_SHARED }, { "rshared", MS_SHARED | MS_REC },
                { "slave", MS_SLAVE }, { "rslave", MS_SLAVE | MS_REC },
                { "unbindable", MS_UNBINDABLE }, { "runbindable", MS_UNBINDABLE | MS_REC },
        };
        if (!value || !*value)
                return 0;
        for (size_t i = 0; i < ARRAY_SIZE(table); i++)
                if (!strcmp(value, table[i].name)) {
                        *ret = table[i].flag;
                        return 0;
                }
        return silo_error_msg(err, EINVAL, "%s: unknown propagation \"%s\"", path, value);
}

static int parse_linux(json_t *lx, struct silo_spec *s, silo_error *err)
{
        const char *propagation = NULL;
        json_t *resources = NULL, *seccomp = NULL, *sysctl = NULL, *namespaces = NULL, *time_offsets = NULL;
        struct {
                const char *cgroups_path, *propagation, *mount_label;
                const char **masked, **readonly;
                json_t *resources, *seccomp, *sysctl, *namespaces, *time_offsets;
        } raw = { 0 };
        const struct silo_json_field fields[] = {
                { "cgroupsPath", SILO_JSON_STRING, offsetof(__typeof__(raw), cgroups_path), SILO_JSON_NULLABLE },
                { "rootfsPropagation", SILO_JSON_STRING, offsetof(__typeof__(raw), propagation), SILO_JSON_NULLABLE },
                { "mountLabel", SILO_JSON_STRING, offsetof(__typeof__(raw), mount_label), SILO_JSON_NULLABLE },
                { "maskedPaths", SILO_JSON_STRV, offsetof(__typeof__(raw), masked), SILO_JSON_NULLABLE },
                { "readonlyPaths", SILO_JSON_STRV, offsetof(__typeof__(raw), readonly), SILO_JSON_NULLABLE },
                { "resources", SILO_JSON_OBJECT, offsetof(__typeof__(raw), resources), SILO_JSON_NULLABLE },
                { "seccomp", SILO_JSON_OBJECT, offsetof(__typeof__(raw), seccomp), SILO_JSON_NULLABLE },
                { "sysctl", SILO_JSON_OBJECT, offsetof(__typeof__(raw), sysctl), SILO_JSON_NULLABLE },
                { "namespaces", SILO_JSON_ARRAY, offsetof(__typeof__(raw), namespaces), SILO_JSON_NULLABLE },
                { "timeOffsets", SILO_JSON_OBJECT, offsetof(__typeof__(raw), time_offsets), SILO_JSON_NULLABLE },
                { NULL },
        };
        int r = silo_json_dispatch(lx, "linux", fields, &raw, err);
        /* Arrays decoded so far belong to the spec even on failure. */
        s->masked_paths = raw.masked;
        s->readonly_paths = raw.readonly;
        if (r < 0)
                return r;
        s->cgroups_path = raw.cgroups_path;
        s->mount_label = raw.mount_label;
        propagation = raw.propagation;
        resources = raw.resources;
        seccomp = raw.seccomp;
        sysctl = raw.sysctl;
        namespaces = raw.namespaces;
        time_offsets = raw.time_offsets;

        r = parse_namespaces(namespaces, "linux.namespaces", s, err);
        if (r < 0)
                return r;
        r = parse_array(json_object_get(lx, "uidMappings"), "linux.uidMappings", sizeof(struct silo_id_mapping),
                        parse_id_mapping, (void **) &s->uid_mappings, &s->n_uid_mappings, err);
        if (r < 0)
                return r;
        r = parse_array(json_object_get(lx, "gidMappings"), "linux.gidMappings", sizeof(struct silo_id_mapping),
                        parse_id_mapping, (void **) &s->gid_mappings, &s->n_gid_mappings, err);
        if (r < 0)
                return r;
        if (s->n_uid_mappings > 340 || s->n_gid_mappings > 340)
                return silo_error_msg(err, EINVAL, "linux.uidMappings/gidMappings: at most 340 entries are supported");
        r = parse_array(json_object_get(lx, "devices"), "linux.devices", sizeof(struct silo_device),
                        parse_device, (void **) &s->devices, &s->n_devices, err);
        if (r < 0)
                return r;
        if (resources) {
                r = silo_resources_parse(resources, "linux.resources", &s->resources, err);
                if (r < 0)
                        return r;
                s->has_resources = true;
        }
        if (seccomp) {
                r = silo_seccomp_parse(seccomp, "linux.seccomp", &s->seccomp, err);
                if (r < 0)
                        return r;
        }
        r = parse_sysctl(sysctl, "linux.sysctl", s, err);
        if (r < 0)
                return r;
        r = parse_propagation(propagation, "linux.rootfsPropagation", &s->rootfs_propagation, err);
        if (r < 0)
                return r;
        if (time_offsets) {
                r = parse_time_offset(time_offsets, "linux.timeOffsets", "monotonic", &s->time_monotonic, err);
                if (r < 0)
                        return r;
                r = parse_time_offset(time_offsets, "linux.timeOffsets", "boottime", &s->time_boottime, err);
                if (r < 0)
                        return r;
        }

        bool has_mappings = s->n_uid_mappings || s->n_gid_mappings;
        if (s->ns[SILO_NS_USER].wanted && !s->ns[SILO_NS_USER].path && (!s->n_uid_mappings || !s->n_gid_mappings))
                return silo_error_msg(err, EINVAL, "linux.uidMappings/gidMappings: a new user namespace needs both mappings");
        if (has_mappings && !s->ns[SILO_NS_USER].wanted)
                return silo_error_msg(err, EINVAL, "linux.uidMappings: mappings given without a user namespace");
        if ((s->time_monotonic.set || s->time_boottime.set) && (!s->ns[SILO_NS_TIME].wanted || s->ns[SILO_NS_TIME].path))
                return silo_error_msg(err, EINVAL, "linux.timeOffsets: needs a new time namespace");
        return 0;
}

static int parse_hooks(json_t *hooks, struct silo_spec *s, silo_error *err)
{
        if (!hooks || json_is_null(hooks))
                return 0;
        if (!json_is_object(hooks))
                return silo_error_msg(err, EINVAL, "hooks: expected an object, got %s", silo_json_type_name(hooks));
        for (int k = 0; k < _SILO_HOOK_MAX; k++) {
                char p[SILO_JSON_PATH_MAX];
                int r = parse_array(json_object_get(hooks, hook_names[k]), silo_json_path_key(p, "hooks", hook_names[k]),
                                    sizeof(struct silo_hook), parse_hook, (void **) &s->hooks.list[k], &s->hooks.n[k], err);
                if (r < 0)
                        return r;
        }
        return 0;
}

struct silo_spec *silo_spec_free(struct silo_spec *s)
{
        if (!s)
                return NULL;
        if (s->has_process)
                silo_process_done(&s->process);
        for (size_t i = 0; i < s->n_mounts; i++)
                free(s->mounts[i].data);
        free(s->mounts);
        for (int k = 0; k < _SILO_HOOK_MAX; k++) {
                for (size_t i = 0; i < s->hooks.n[k]; i++) {
                        free(s->hooks.list[k][i].args);
                        free(s->hooks.list[k][i].env);
                }
                free(s->hooks.list[k]);
        }
        free(s->uid_mappings);
        free(s->gid_mappings);
        free(s->devices);
        silo_resources_done(&s->resources);
        free(s->sysctl);
        silo_seccomp_free(s->seccomp);
        free(s->masked_paths);
        free(s->readonly_paths);
        json_decref(s->json);
        free(s);
        return NULL;
}

static void spec_freep(struct silo_spec **s) { silo_spec_free(*s); }

int silo_spec_from_json(json_t *json, struct silo_spec **ret, silo_error *err)
{
        _cleanup_(spec_freep) struct silo_spec *s = calloc(1, sizeof(*s));
        if (!s)
                return silo_error_set(err, ENOMEM, "config");
        s->json = json_incref(json);

        struct {
                const char *oci_version, *hostname, *domainname;
                json_t *root, *process, *mounts, *hooks, *annotations, *linux_;
        } raw = { 0 };
        const struct silo_json_field fields[] = {
                { "ociVersion", SILO_JSON_STRING, offsetof(__typeof__(raw), oci_version), SILO_JSON_REQUIRED },
                { "hostname", SILO_JSON_STRING, offsetof(__typeof__(raw), hostname), SILO_JSON_NULLABLE },
                { "domainname", SILO_JSON_STRING, offsetof(__typeof__(raw), domainname), SILO_JSON_NULLABLE },
                { "root", SILO_JSON_OBJECT, offsetof(__typeof__(raw), root), SILO_JSON_NULLABLE },
                { "process", SILO_JSON_OBJECT, offsetof(__typeof__(raw), process), SILO_JSON_NULLABLE },
                { "mounts", SILO_JSON_ARRAY, offsetof(__typeof__(raw), mounts), SILO_JSON_NULLABLE },
                { "hooks", SILO_JSON_OBJECT, offsetof(__typeof__(raw), hooks), SILO_JSON_NULLABLE },
                { "annotations", SILO_JSON_OBJECT, offsetof(__typeof__(raw), annotations), SILO_JSON_NULLABLE },
                { "linux", SILO_JSON_OBJECT, offsetof(__typeof__(raw), linux_), SILO_JSON_NULLABLE },
                { NULL },
        };
        int r = silo_json_dispatch(json, "", fields, &raw, err);
        if (r < 0)
                return r;
        s->oci_version = raw.oci_version;
        if (strncmp(s->oci_version, "1.", 2) != 0)
                return silo_error_msg(err, EINVAL, "ociVersion: unsupported version \"%s\" (want 1.x)", s->oci_version);
        s->hostname = raw.hostname;
        s->domainname = raw.domainname;
        s->annotations = raw.annotations;
        if (raw.annotations) {
                const char *k;
                json_t *v;
                json_object_foreach(raw.annotations, k, v)
                        if (!json_is_string(v))
                                return silo_error_msg(err, EINVAL, "annotations.%s: expected a string, got %s", k, silo_json_type_name(v));
        }

        if (raw.root) {
                const struct silo_json_field rf[] = {
                        { "path", SILO_JSON_STRING, offsetof(struct silo_spec, root_path), SILO_JSON_REQUIRED },
                        { "readonly", SILO_JSON_BOOL, offsetof(struct silo_spec, root_readonly), SILO_JSON_NULLABLE },
                        { NULL },
                };
                r = silo_json_dispatch(raw.root, "root", rf, s, err);
                if (r < 0)
                        return r;
        }
        if (raw.process) {
                r = silo_process_parse(raw.process, "process", &s->process, err);
                if (r < 0)
                        return r;
                s->has_process = true;
        }
        r = parse_array(raw.mounts, "mounts", sizeof(struct silo_mount), parse_mount,
                        (void **) &s->mounts, &s->n_mounts, err);
        if (r < 0)
                return r;
        r = parse_hooks(raw.hooks, s, err);
        if (r < 0)
                return r;
        if (raw.linux_) {
                r = parse_linux(raw.linux_, s, err);
                if (r < 0)
                        return r;
        }
        if (s->hostname && *s->hostname && !s->ns[SILO_NS_UTS].wanted)
                return silo_error_msg(err, EINVAL, "hostname: setting it needs a new uts namespace");
        *ret = TAKE_PTR(s);
        return 0;
}

int silo_spec_load_at(int bundlefd, const char *name, struct silo_spec **ret, silo_error *err)
{
        _cleanup_json_ json_t *json = NULL;
        int r = silo_json_load_file_at(bundlefd, name, SILO_CONFIG_MAX_BYTES, &json, err);
        if (r < 0)
                return r;
        r = silo_spec_from_json(json, ret, err);
        if (r < 0)
                return silo_error_prefix(err, "%s", name);
        return 0;
}
