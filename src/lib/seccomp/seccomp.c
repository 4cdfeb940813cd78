/* Seccomp from linux.seccomp of the OCI runtime spec.
 *
 * Three stages, so that the expensive work happens before the container is
 * started and the moment of loading is a single system call:
 *   parse    validates the profile and resolves every name;
 *   prepare  builds the libseccomp filter and exports it as classic BPF;
 *   load     hands that BPF to seccomp(2) with the profile's flags.
 * Loading through seccomp(2) ourselves (as runc does) rather than through
 * seccomp_load() lets us pass flags libseccomp 2.5 does not know
 * (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) and allocates nothing late. */
#include "seccomp/seccomp.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/json.h"

/* Older kernel headers lack the newer flags; the values are ABI. */
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_FILTER_FLAG_TSYNC_ESRCH
#define SECCOMP_FILTER_FLAG_TSYNC_ESRCH (1UL << 4)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

#define SYSCALL_MAX_ARGS 6
#define ERRNO_RET_MAX 0xffff            /* SECCOMP_RET_DATA is 16 bits wide */
#define OPTIMIZE_THRESHOLD 32           /* runc's cut-off for binary-tree filters */
#define LISTENER_PATH_MAX (sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1)

struct seccomp_action_def {
        const char *name;
        uint32_t action;
        bool takes_data;                /* errnoRet allowed (ERRNO, TRACE) */
};

static const struct seccomp_action_def seccomp_actions[] = {
        { "SCMP_ACT_KILL",          SCMP_ACT_KILL_THREAD,  false },
        { "SCMP_ACT_KILL_PROCESS",  SCMP_ACT_KILL_PROCESS, false },
        { "SCMP_ACT_KILL_THREAD",   SCMP_ACT_KILL_THREAD,  false },
        { "SCMP_ACT_TRAP",          SCMP_ACT_TRAP,         false },
        { "SCMP_ACT_ERRNO",         SCMP_ACT_ERRNO(0),     true  },
        { "SCMP_ACT_TRACE",         SCMP_ACT_TRACE(0),     true  },
        { "SCMP_ACT_ALLOW",         SCMP_ACT_ALLOW,        false },
        { "SCMP_ACT_LOG",           SCMP_ACT_LOG,          false },
        { "SCMP_ACT_NOTIFY",        SCMP_ACT_NOTIFY,       false },
};

static const struct { const char *name; enum scmp_compare op; } seccomp_operators[] = {
        { "SCMP_CMP_NE",        SCMP_CMP_NE },
        { "SCMP_CMP_LT",        SCMP_CMP_LT },
        { "SCMP_CMP_LE",        SCMP_CMP_LE },
        { "SCMP_CMP_EQ",        SCMP_CMP_EQ },
        { "SCMP_CMP_GE",        SCMP_CMP_GE },
        { "SCMP_CMP_GT",        SCMP_CMP_GT },
        { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
};

/* Every architecture token the libseccomp we build against defines. */
static const struct { const char *name; uint32_t token; } seccomp_archs[] = {
        { "SCMP_ARCH_X86",         SCMP_ARCH_X86 },
        { "SCMP_ARCH_X86_64",      SCMP_ARCH_X86_64 },
        { "SCMP_ARCH_X32",         SCMP_ARCH_X32 },
        { "SCMP_ARCH_ARM",         SCMP_ARCH_ARM },
        { "SCMP_ARCH_AARCH64",     SCMP_ARCH_AARCH64 },
        { "SCMP_ARCH_MIPS",        SCMP_ARCH_MIPS },
        { "SCMP_ARCH_MIPS64",      SCMP_ARCH_MIPS64 },
        { "SCMP_ARCH_MIPS64N32",   SCMP_ARCH_MIPS64N32 },
        { "SCMP_ARCH_MIPSEL",      SCMP_ARCH_MIPSEL },
        { "SCMP_ARCH_MIPSEL64",    SCMP_ARCH_MIPSEL64 },
        { "SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32 },
        { "SCMP_ARCH_PPC",         SCMP_ARCH_PPC },
        { "SCMP_ARCH_PPC64",       SCMP_ARCH_PPC64 },
        { "SCMP_ARCH_PPC64LE",     SCMP_ARCH_PPC64LE },
        { "SCMP_ARCH_S390",        SCMP_ARCH_S390 },
        { "SCMP_ARCH_S390X",       SCMP_ARCH_S390X },
        { "SCMP_ARCH_PARISC",      SCMP_ARCH_PARISC },
        { "SCMP_ARCH_PARISC64",    SCMP_ARCH_PARISC64 },
        { "SCMP_ARCH_RISCV64",     SCMP_ARCH_RISCV64 },
#ifdef SCMP_ARCH_LOONGARCH64
        { "SCMP_ARCH_LOONGARCH64", SCMP_ARCH_LOONGARCH64 },
#endif
#ifdef SCMP_ARCH_M68K
        { "SCMP_ARCH_M68K",        SCMP_ARCH_M68K },
#endif
#ifdef SCMP_ARCH_SH
        { "SCMP_ARCH_SH",          SCMP_ARCH_SH },
        { "SCMP_ARCH_SHEB",        SCMP_ARCH_SHEB },
#endif
};

static const struct { const char *name; uint32_t flag; } seccomp_flags[] = {
        { "SECCOMP_FILTER_FLAG_TSYNC",              SECCOMP_FILTER_FLAG_TSYNC },
        { "SECCOMP_FILTER_FLAG_LOG",                SECCOMP_FILTER_FLAG_LOG },
        { "SECCOMP_FILTER_FLAG_SPEC_ALLOW",         SECCOMP_FILTER_FLAG_SPEC_ALLOW },
        { "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV },
};

struct seccomp_rule {
        size_t index;                   /* position in syscalls[], for messages */
        uint32_t action;
        bool split_args;                /* an arg index repeats: one rule per condition */
        size_t n_args;
        struct scmp_arg_cmp *args;
        size_t n_syscalls;
        int *syscalls;                  /* resolved numbers (libseccomp pseudo numbers included) */
        const char **names;             /* borrowed from the profile, parallel to syscalls */
};

struct silo_seccomp {
        json_t *profile;                /* reference that keeps the borrowed strings alive */
        char *path;                     /* "linux.seccomp", prefixes late errors */
        uint32_t default_action;
        const char *default_action_name;
        uint32_t flags;                 /* SECCOMP_FILTER_FLAG_* the profile asked for */
        bool uses_notify;
        const char *listener_path;
        const char *listener_metadata;
        size_t n_archs;
        size_t *archs;                  /* indexes into seccomp_archs[] */
        size_t n_rules;
        struct seccomp_rule *rules;

        /* Built by silo_seccomp_prepare(). */
        struct sock_filter *bpf;
        unsigned short bpf_len;
};

static void seccomp_releasep(scmp_filter_ctx *ctx)
{
        if (*ctx)
                seccomp_release(*ctx);
}

static const struct seccomp_action_def *action_by_name(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(seccomp_actions); i++)
                if (strcmp(seccomp_actions[i].name, name) == 0)
                        return &seccomp_actions[i];
        return NULL;
}

/* Turns an action name plus optional errnoRet into the libseccomp action
 * value; `errno_path` names the errnoRet field for messages. */
static int parse_action(const char *name, const char *path, const silo_opt_u64 *errno_ret,
                        const char *errno_path, uint32_t *ret, silo_error *err)
{
        const struct seccomp_action_def *def = action_by_name(name);
        if (!def)
                return silo_error_msg(err, EINVAL, "%s: unknown action \"%s\"", path, name);

        if (!def->takes_data) {
                /* The spec requires an error here rather than ignoring errnoRet. */
                if (errno_ret->set)
                        return silo_error_msg(err, EINVAL, "%s: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not %s",
                                              errno_path, name);
                *ret = def->action;
                return 0;
        }

        uint64_t data = EPERM;
        if (errno_ret->set) {
                if (errno_ret->value > ERRNO_RET_MAX)
                        return silo_error_msg(err, ERANGE, "%s: %llu is out of range (0-%d)",
                                              errno_path, (unsigned long long) errno_ret->value, ERRNO_RET_MAX);
                data = errno_ret->value;
        }
        *ret = def->action | (uint32_t) data;
        return 0;
}

struct arg_json {
        uint32_t index;
        uint64_t value;
        silo_opt_u64 value_two;
        const char *op;
};

static const struct silo_json_field arg_fields[] = {
        { "index",    SILO_JSON_UINT32,     offsetof(struct arg_json, index),     SILO_JSON_REQUIRED },
        { "value",    SILO_JSON_UINT64,     offsetof(struct arg_json, value),     SILO_JSON_REQUIRED },
        { "valueTwo", SILO_JSON_OPT_UINT64, offsetof(struct arg_json, value_two), SILO_JSON_NULLABLE },
        { "op",       SILO_JSON_STRING,     offsetof(struct arg_json, op),        SILO_JSON_REQUIRED },
        {}
};

static int parse_args(json_t *args, const char *path, struct seccomp_rule *rule, silo_error *err)
{
        size_t n = json_array_size(args);
        unsigned per_index[SYSCALL_MAX_ARGS] = {};

        if (n == 0)
                return 0;
        rule->args = calloc(n, sizeof(struct scmp_arg_cmp));
        if (!rule->args)
                return silo_error_set(err, ENOMEM, "%s", path);

        for (size_t i = 0; i < n; i++) {
                char p[SILO_JSON_PATH_MAX], fp[SILO_JSON_PATH_MAX];
                struct arg_json a = {};
                silo_json_path_index(p, path, i);

                int r = silo_json_dispatch(json_array_get(args, i), p, arg_fields, &a, err);
                if (r < 0)
                        return r;
                if (a.index >= SYSCALL_MAX_ARGS)
                        return silo_error_msg(err, EINVAL, "%s: must be below %d, got %u",
                                              silo_json_path_key(fp, p, "index"), SYSCALL_MAX_ARGS, a.index);

                size_t k;
                for (k = 0; k < ARRAY_SIZE(seccomp_operators); k++)
                        if (strcmp(seccomp_operators[k].name, a.op) == 0)
                                break;
                if (k == ARRAY_SIZE(seccomp_operators))
                        return silo_error_msg(err, EINVAL, "%s: unknown operator \"%s\"",
                                              silo_json_path_key(fp, p, "op"), a.op);

                /* For MASKED_EQ, value is the mask and valueTwo the
                 * expected result, which is libseccomp's datum order. */
                rule->args[i] = (struct scmp_arg_cmp) {
                        .arg = a.index,
                        .op = seccomp_operators[k].op,
                        .datum_a = a.value,
                        .datum_b = a.value_two.set ? a.value_two.value : 0,
                };
                rule->n_args++;
                per_index[a.index]++;
        }

        /* libseccomp refuses two comparisons of one argument in a rule.  Like
         * runc, a profile that does so gets one rule per condition (so the
         * conditions are ORed rather than ANDed). */
        for (size_t k = 0; k < SYSCALL_MAX_ARGS; k++)
                if (per_index[k] > 1)
                        rule->split_args = true;
        return 0;
}

struct syscall_json {
        json_t *names;
        const char *action;
        silo_opt_u64 errno_ret;
        json_t *args;
};

static const struct silo_json_field syscall_fields[] = {
        { "names",    SILO_JSON_ARRAY,      offsetof(struct syscall_json, names),     SILO_JSON_REQUIRED },
        { "action",   SILO_JSON_STRING,     offsetof(struct syscall_json, action),    SILO_JSON_REQUIRED },
        { "errnoRet", SILO_JSON_OPT_UINT64, offsetof(struct syscall_json, errno_ret), SILO_JSON_NULLABLE },
        { "args",     SILO_JSON_ARRAY,      offsetof(struct syscall_json, args),      SILO_JSON_NULLABLE },
        {}
};

static int parse_names(json_t *names, const char *path, const char *action_name,
                       struct seccomp_rule *rule, silo_error *err)
{
        size_t n = json_array_size(names);
        if (n == 0)
                return silo_error_msg(err, EINVAL, "%s: must contain at least one entry", path);

        rule->syscalls = calloc(n, sizeof(int));
        rule->names = calloc(n, sizeof(char *));
        if (!rule->syscalls || !rule->names)
                return silo_error_set(err, ENOMEM, "%s", path);

        for (size_t i = 0; i < n; i++) {
                char p[SILO_JSON_PATH_MAX];
                json_t *v = json_array_get(names, i);
                silo_json_path_index(p, path, i);

                if (!json_is_string(v))
                        return silo_error_msg(err, EINVAL, "%s: expected a string, got %s", p, silo_json_type_name(v));
                const char *name = json_string_value(v);
                if (!*name)
                        return silo_error_msg(err, EINVAL, "%s: empty syscall name", p);

                /* The runtime writes the listener fd number to its parent
                 * after loading the filter; notifying write would deadlock
                 * (runc has the same rule). */
                if (rule->action == SCMP_ACT_NOTIFY && strcmp(name, "write") == 0)
                        return silo_error_msg(err, EINVAL, "%s: %s cannot be used for \"write\"", p, action_name);

                /* A name libseccomp does not know is a syscall newer than
                 * the library or foreign to every arch: skip it, as runc does,
                 * so one profile serves many hosts. */
                int nr = seccomp_syscall_resolve_name(name);
                if (nr == __NR_SCMP_ERROR)
                        continue;
                rule->syscalls[rule->n_syscalls] = nr;
                rule->names[rule->n_syscalls] = name;
                rule->n_syscalls++;
        }
        return 0;
}

static int parse_rule(json_t *obj, const char *path, size_t index, struct seccomp_rule *rule, silo_error *err)
{
        char p[SILO_JSON_PATH_MAX], ep[SILO_JSON_PATH_MAX];
        struct syscall_json sj = {};
        int r;

        r = silo_json_dispatch(obj, path, syscall_fields, &sj, err);
        if (r < 0)
                return r;

        rule->index = index;
        r = parse_action(sj.action, silo_json_path_key(p, path, "action"), &sj.errno_ret,
                         silo_json_path_key(ep, path, "errnoRet"), &rule->action, err);
        if (r < 0)
                return r;

        r = parse_names(sj.names, silo_json_path_key(p, path, "names"), sj.action, rule, err);
        if (r < 0)
                return r;

        if (sj.args)
                return parse_args(sj.args, silo_json_path_key(p, path, "args"), rule, err);
        return 0;
}

static int parse_archs(silo_seccomp *s, json_t *archs, const char *path, silo_error *err)
{
        size_t n = json_array_size(archs);
        if (n == 0)
                return 0;
        s->archs = calloc(n, sizeof(size_t));
        if (!s->archs)
                return silo_error_set(err, ENOMEM, "%s", path);

        for (size_t i = 0; i < n; i++) {
                char p[SILO_JSON_PATH_MAX];
                json_t *v = json_array_get(archs, i);
                silo_json_path_index(p, path, i);
                if (!json_is_string(v))
                        return silo_error_msg(err, EINVAL, "%s: expected a string, got %s", p, silo_json_type_name(v));

                size_t k;
                for (k = 0; k < ARRAY_SIZE(seccomp_archs); k++)
                        if (strcmp(seccomp_archs[k].name, json_string_value(v)) == 0)
                                break;
                if (k == ARRAY_SIZE(seccomp_archs))
                        return silo_error_msg(err, EINVAL, "%s: unknown architecture \"%s\"", p, json_string_value(v));
                s->archs[s->n_archs++] = k;
        }
        return 0;
}

static int parse_flags(silo_seccomp *s, json_t *flags, const char *path, silo_error *err)
{
        for (size_t i = 0; i < json_array_size(flags); i++) {
                char p[SILO_JSON_PATH_MAX];
                json_t *v = json_array_get(flags, i);
                silo_json_path_index(p, path, i);
                if (!json_is_string(v))
                        return silo_error_msg(err, EINVAL, "%s: expected a string, got %s", p, silo_json_type_name(v));

                size_t k;
                for (k = 0; k < ARRAY_SIZE(seccomp_flags); k++)
                        if (strcmp(seccomp_flags[k].name, json_string_value(v)) == 0)
                                break;
                if (k == ARRAY_SIZE(seccomp_flags))
                        return silo_error_msg(err, EINVAL, "%s: unknown flag \"%s\"", p, json_string_value(v));
                s->flags |= seccomp_flags[k].flag;
        }
        return 0;
}

struct seccomp_json {
        const char *default_action;
        silo_opt_u64 default_errno_ret;
        json_t *architectures;
        json_t *flags;
        const char *listener_path;
        const char *listener_metadata;
        json_t *syscalls;
};

static const struct silo_json_field seccomp_fields[] = {
        { "defaultAction",    SILO_JSON_STRING,     offsetof(struct seccomp_json, default_action),    SILO_JSON_REQUIRED },
        { "defaultErrnoRet",  SILO_JSON_OPT_UINT64, offsetof(struct seccomp_json, default_errno_ret), SILO_JSON_NULLABLE },
        { "architectures",    SILO_JSON_ARRAY,      offsetof(struct seccomp_json, architectures),     SILO_JSON_NULLABLE },
        { "flags",            SILO_JSON_ARRAY,      offsetof(struct seccomp_json, flags),             SILO_JSON_NULLABLE },
        { "listenerPath",     SILO_JSON_STRING,     offsetof(struct seccomp_json, listener_path),     SILO_JSON_NULLABLE },
        { "listenerMetadata", SILO_JSON_STRING,     offsetof(struct seccomp_json, listener_metadata), SILO_JSON_NULLABLE },
        { "syscalls",         SILO_JSON_ARRAY,      offsetof(struct seccomp_json, syscalls),          SILO_JSON_NULLABLE },
        {}
};

static int parse_listener(silo_seccomp *s, const struct seccomp_json *sj, silo_error *err)
{
        char p[SILO_JSON_PATH_MAX];

        if (sj->listener_path) {
                if (!*sj->listener_path)
                        return silo_error_msg(err, EINVAL, "%s: must not be empty",
                                              silo_json_path_key(p, s->path, "listenerPath"));
                if (strlen(sj->listener_path) > LISTENER_PATH_MAX)
                        return silo_error_msg(err, ENAMETOOLONG, "%s: longer than a unix socket path may be (%zu bytes)",
                                              silo_json_path_key(p, s->path, "listenerPath"), LISTENER_PATH_MAX);
        }
        if (sj->listener_metadata && !sj->listener_path)
                return silo_error_msg(err, EINVAL, "%s: must not be set without listenerPath",
                                      silo_json_path_key(p, s->path, "listenerMetadata"));

        /* Nobody could ever answer the notifications: the container would
         * hang on its first notified syscall. */
        if (s->uses_notify && !sj->listener_path)
                return silo_error_msg(err, EINVAL, "%s: required when SCMP_ACT_NOTIFY is used",
                                      silo_json_path_key(p, s->path, "listenerPath"));

        s->listener_path = sj->listener_path;
        s->listener_metadata = sj->listener_metadata;
        return 0;
}

int silo_seccomp_parse(json_t *obj, const char *path, silo_seccomp **ret, silo_error *err)
{
        char p[SILO_JSON_PATH_MAX], ep[SILO_JSON_PATH_MAX];
        struct seccomp_json sj = {};
        int r;

        *ret = NULL;
        if (!path)
                path = "linux.seccomp";
        if (!obj)
                return silo_error_msg(err, EINVAL, "%s: missing", path);
        r = silo_json_dispatch(obj, path, seccomp_fields, &sj, err);
        if (r < 0)
                return r;

        _cleanup_(silo_seccomp_freep) silo_seccomp *s = calloc(1, sizeof(*s));
        if (!s)
                return silo_error_set(err, ENOMEM, "%s", path);
        s->profile = json_incref(obj);
        s->path = strdup(path);
        if (!s->path)
                return silo_error_set(err, ENOMEM, "%s", path);

        s->default_action_name = sj.default_action;
        r = parse_action(sj.default_action, silo_json_path_key(p, path, "defaultAction"), &sj.default_errno_ret,
                         silo_json_path_key(ep, path, "defaultErrnoRet"), &s->default_action, err);
        if (r < 0)
                return r;
        /* A default of NOTIFY would notify write too; see parse_names(). */
        if (s->default_action == SCMP_ACT_NOTIFY)
                return silo_error_msg(err, EINVAL, "%s: SCMP_ACT_NOTIFY cannot be the default action", p);

        if (sj.architectures) {
                r = parse_archs(s, sj.architectures, silo_json_path_key(p, path, "architectures"), err);
                if (r < 0)
                        return r;
        }
        if (sj.flags) {
                r = parse_flags(s, sj.flags, silo_json_path_key(p, path, "flags"), err);
                if (r < 0)
                        return r;
        }

        size_t n = sj.syscalls ? json_array_size(sj.syscalls) : 0;
        if (n > 0) {
                s->rules = calloc(n, sizeof(struct seccomp_rule));
                if (!s->rules)
                        return silo_error_set(err, ENOMEM, "%s", path);
        }
        for (size_t i = 0; i < n; i++) {
                char sp[SILO_JSON_PATH_MAX];
                silo_json_path_index(sp, silo_json_path_key(p, path, "syscalls"), i);
                r = parse_rule(json_array_get(sj.syscalls, i), sp, i, &s->rules[i], err);
                s->n_rules++;           /* counted even on failure so free() sees it */
                if (r < 0)
                        return r;
                if (s->rules[i].action == SCMP_ACT_NOTIFY)
                        s->uses_notify = true;
        }

        r = parse_listener(s, &sj, err);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

silo_seccomp *silo_seccomp_free(silo_seccomp *s)
{
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_rules; i++) {
                free(s->rules[i].args);
                free(s->rules[i].syscalls);
                free(s->rules[i].names);
        }
        free(s->rules);
        free(s->archs);
        free(s->bpf);
        free(s->path);
        json_decref(s->profile);
        free(s);
        return NULL;
}

void silo_seccomp_freep(silo_seccomp **s)
{
        *s = silo_seccomp_free(*s);
}

const char *silo_seccomp_listener_path(const silo_seccomp *s)
{
        return s ? s->listener_path : NULL;
}

const char *silo_seccomp_listener_metadata(const silo_seccomp *s)
{
        return s ? s->listener_metadata : NULL;
}

bool silo_seccomp_uses_notify(const silo_seccomp *s)
{
        return s && s->uses_notify;
}

/* The flags seccomp(2) gets for this profile. */
static unsigned long load_flags(const silo_seccomp *s)
{
        unsigned long flags = s->flags;

        if (s->uses_notify) {
                flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
                /* With a listener the return value is the fd, so TSYNC must
                 * report a thread it cannot synchronize as ESRCH instead. */
                if (flags & SECCOMP_FILTER_FLAG_TSYNC)
                        flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        } else {
                /* It only concerns listeners; the kernel rejects it without one. */
                flags &= ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        }
        return flags;
}

/* The kernel checks the flags before it reads the (here NULL) program, so
 * EFAULT means "these flags would be accepted".  libseccomp probes likewise. */
static bool kernel_accepts_flags(unsigned long flags)
{
        return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, NULL) < 0 && errno == EFAULT;
}

static bool kernel_supports_flag(uint32_t flag)
{
        if (flag == SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
                return kernel_accepts_flags(flag | SECCOMP_FILTER_FLAG_NEW_LISTENER);
        return kernel_accepts_flags(flag);
}

static int check_flags(const silo_seccomp *s, silo_error *err)
{
        unsigned long flags = load_flags(s);

        if (flags == 0 || kernel_accepts_flags(flags))
                return 0;
        for (size_t i = 0; i < ARRAY_SIZE(seccomp_flags); i++)
                if ((s->flags & seccomp_flags[i].flag) && !kernel_supports_flag(seccomp_flags[i].flag))
                        return silo_error_msg(err, EOPNOTSUPP, "%s.flags: %s is not supported by the running kernel",
                                              s->path, seccomp_flags[i].name);
        return silo_error_msg(err, EOPNOTSUPP, "%s: the running kernel does not accept seccomp filter flags 0x%lx%s",
                              s->path, flags, s->uses_notify ? " (SCMP_ACT_NOTIFY needs Linux 5.0, with TSYNC 5.7)" : "");
}

static int add_rule(scmp_filter_ctx ctx, const silo_seccomp *s, const struct seccomp_rule *rule, silo_error *err)
{
        /* libseccomp refuses rules that repeat the default action; they
         * change nothing, so skip them as runc does. */
        if (rule->action == s->default_action)
                return 0;

        for (size_t i = 0; i < rule->n_syscalls; i++) {
                int r;

                if (!rule->split_args)
                        r = seccomp_rule_add_array(ctx, rule->action, rule->syscalls[i], rule->n_args, rule->args);
                else {
                        r = 0;
                        for (size_t k = 0; k < rule->n_args && r >= 0; k++)
                                r = seccomp_rule_add_array(ctx, rule->action, rule->syscalls[i], 1, &rule->args[k]);
                }
                if (r < 0)
                        return silo_error_set(err, r, "%s.syscalls[%zu]: adding rule for \"%s\"",
                                              s->path, rule->index, rule->names[i]);
        }
        return 0;
}

/* libseccomp 2.5 can only export to an fd; a memfd avoids pipe-size limits. */
static int export_bpf(silo_seccomp *s, scmp_filter_ctx ctx, silo_error *err)
{
        _cleanup_close_ int fd = memfd_create("silo-seccomp-bpf", MFD_CLOEXEC);
        if (fd < 0)
                return silo_error_set(err, errno, "%s: memfd_create", s->path);

        int r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return silo_error_set(err, r, "%s: generating the filter", s->path);

        struct stat st;
        if (fstat(fd, &st) < 0)
                return silo_error_set(err, errno, "%s: fstat on the exported filter", s->path);
        size_t n_insns = (size_t) st.st_size / sizeof(struct sock_filter);
        if (st.st_size <= 0 || (size_t) st.st_size % sizeof(struct sock_filter) != 0)
                return silo_error_msg(err, EIO, "%s: libseccomp exported a malformed filter (%lld bytes)",
                                      s->path, (long long) st.st_size);
        /* Fail here with a clear message instead of EINVAL at load time. */
        if (n_insns > BPF_MAXINSNS)
                return silo_error_msg(err, E2BIG, "%s: the filter has %zu instructions, the kernel allows %d",
                                      s->path, n_insns, BPF_MAXINSNS);

        _cleanup_free_ struct sock_filter *bpf = malloc(st.st_size);
        if (!bpf)
                return silo_error_set(err, ENOMEM, "%s", s->path);
        for (size_t done = 0; done < (size_t) st.st_size;) {
                ssize_t k = pread(fd, (char *) bpf + done, st.st_size - done, done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return silo_error_set(err, k < 0 ? errno : EIO, "%s: reading the exported filter", s->path);
                done += k;
        }

        s->bpf = TAKE_PTR(bpf);
        s->bpf_len = (unsigned short) n_insns;
        return 0;
}

int silo_seccomp_prepare(silo_seccomp *s, silo_error *err)
{
        size_t n_syscalls = 0;
        int r;

        if (s->bpf)
                return 0;

        r = check_flags(s, err);
        if (r < 0)
                return r;

        _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = seccomp_init(s->default_action);
        if (!ctx)
                return silo_error_msg(err, EINVAL, "%s.defaultAction: %s is not supported by libseccomp or the running kernel",
                                      s->path, s->default_action_name);

        /* Real system errnos instead of libseccomp's blanket ECANCELED. */
        (void) seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
        /* no_new_privs belongs to process.noNewPrivileges, which the
         * runtime applies itself (our own loader never sets it either). */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
        if (r < 0)
                return silo_error_set(err, r, "%s: clearing SCMP_FLTATR_CTL_NNP", s->path);

        for (size_t i = 0; i < s->n_archs; i++) {
                r = seccomp_arch_add(ctx, seccomp_archs[s->archs[i]].token);
                if (r < 0 && r != -EEXIST)      /* the native arch is always there */
                        return silo_error_set(err, r, "%s.architectures: adding %s", s->path,
                                              seccomp_archs[s->archs[i]].name);
        }

        for (size_t i = 0; i < s->n_rules; i++) {
                r = add_rule(ctx, s, &s->rules[i], err);
                if (r < 0)
                        return r;
                n_syscalls += s->rules[i].n_syscalls;
        }

        /* Long profiles (Docker's has ~350 syscalls) run much faster as a
         * binary tree.  libseccomp <= 2.5.4 mishandles it with few rules,
         * hence the threshold; failure only costs speed. */
        if (n_syscalls > OPTIMIZE_THRESHOLD)
                (void) seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);

        return export_bpf(s, ctx, err);
}

int silo_seccomp_load(silo_seccomp *s, int *ret_notify_fd, silo_error *err)
{
        int r;

        if (ret_notify_fd)
                *ret_notify_fd = -1;
        if (s->uses_notify && !ret_notify_fd)
                return silo_error_msg(err, EINVAL, "%s: SCMP_ACT_NOTIFY is used but the caller takes no listener fd", s->path);

        r = silo_seccomp_prepare(s, err);
        if (r < 0)
                return r;

        unsigned long flags = load_flags(s);
        struct sock_fprog prog = { .len = s->bpf_len, .filter = s->bpf };
        long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
        if (fd < 0) {
                if (errno == EACCES)
                        return silo_error_msg(err, EACCES, "%s: loading the filter needs no_new_privs or CAP_SYS_ADMIN",
                                              s->path);
                return silo_error_set(err, errno, "%s: seccomp(SECCOMP_SET_MODE_FILTER, 0x%lx)", s->path, flags);
        }

        if (s->uses_notify)
                *ret_notify_fd = (int) fd;
        else if (fd > 0)        /* TSYNC without a listener: fd is the thread that failed */
                return silo_error_msg(err, ESRCH, "%s: thread %ld could not be synchronized to the filter",
                                      s->path, fd);
        return 0;
}

static bool kernel_supports_action(uint32_t action)
{
        /* Only ERRNO/TRACE data bits differ; the kernel wants the bare action. */
        uint32_t bare = action & SECCOMP_RET_ACTION_FULL;
        return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &bare) == 0;
}

json_t *silo_seccomp_features(void)
{
        _cleanup_json_ json_t *actions = json_array(), *operators = json_array(), *archs = json_array();
        _cleanup_json_ json_t *known = json_array(), *supported = json_array();
        bool ok = actions && operators && archs && known && supported;

        for (size_t i = 0; ok && i < ARRAY_SIZE(seccomp_actions); i++)
                if (kernel_supports_action(seccomp_actions[i].action))
                        ok = json_array_append_new(actions, json_string(seccomp_actions[i].name)) == 0;
        for (size_t i = 0; ok && i < ARRAY_SIZE(seccomp_operators); i++)
                ok = json_array_append_new(operators, json_string(seccomp_operators[i].name)) == 0;
        for (size_t i = 0; ok && i < ARRAY_SIZE(seccomp_archs); i++)
                ok = json_array_append_new(archs, json_string(seccomp_archs[i].name)) == 0;
        for (size_t i = 0; ok && i < ARRAY_SIZE(seccomp_flags); i++) {
                ok = json_array_append_new(known, json_string(seccomp_flags[i].name)) == 0;
                if (ok && kernel_supports_flag(seccomp_flags[i].flag))
                        ok = json_array_append_new(supported, json_string(seccomp_flags[i].name)) == 0;
        }
        if (!ok)
                return NULL;

        return json_pack("{s:b, s:O, s:O, s:O, s:O, s:O}",
                         "enabled", 1,
                         "actions", actions,
                         "operators", operators,
                         "archs", archs,
                         "knownFlags", known,
                         "supportedFlags", supported);
}
