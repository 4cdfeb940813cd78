/* HostConfig's mounts: Binds (-v), Mounts (--mount), Tmpfs (--tmpfs) and
 * the anonymous volumes of image and Config VOLUMEs, as bind and tmpfs
 * entries of config.json's mounts (hostconfig.c applies the rest). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostconfig.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define MAX_USER_MOUNTS 256

/* ---- mounts: Binds, Mounts, Tmpfs and anonymous volumes in one list ---- */

enum mount_kind { MK_BIND, MK_VOLUME, MK_TMPFS };

struct user_mount {
        enum mount_kind kind;
        const char *source;             /* host path or volume name (NULL: anonymous) */
        const char *target;
        bool readonly, nocopy, create_source;
        const char *propagation;        /* NULL: rprivate */
        char tmpfs_opts[256];           /* size=...,mode=... */
};

static bool path_clean(const char *p)
{
        if (p[0] != '/' || strlen(p) >= PATH_MAX)
                return false;
        for (const char *s = p; *s; ) {
                while (*s == '/')
                        s++;
                const char *e = strchrnul(s, '/');
                if (e - s == 2 && s[0] == '.' && s[1] == '.')
                        return false;
                s = e;
        }
        return true;
}

static bool propagation_valid(const char *s)
{
        static const char *const ok[] = { "private", "rprivate", "shared", "rshared", "slave", "rslave" };
        for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
                if (strcmp(s, ok[i]) == 0)
                        return true;
        return false;
}

/* "src:dst[:opts]" of -v. */
static int parse_bind(const char *spec, const char *path, struct user_mount *m, char *buf, size_t bufsize,
                      silo_error *err)
{
        if (strlen(spec) >= bufsize)
                return silo_error_msg(err, EINVAL, "%s: too long", path);
        strcpy(buf, spec);
        char *dst = strchr(buf, ':');
        if (!dst || dst == buf)
                return silo_error_msg(err, EINVAL, "%s: invalid volume specification: '%s'", path, spec);
        *dst++ = 0;
        char *opts = strchr(dst, ':');
        if (opts)
                *opts++ = 0;
        *m = (struct user_mount) { .source = buf, .target = dst };
        m->kind = buf[0] == '/' ? MK_BIND : MK_VOLUME;
        m->create_source = true;
        if (!path_clean(dst) || strcmp(dst, "/") == 0)
                return silo_error_msg(err, EINVAL, "%s: invalid mount config: the destination '%s' must be an "
                                                   "absolute path other than /", path, dst);
        if (m->kind == MK_VOLUME && !volume_name_valid(buf))
                return silo_error_msg(err, EINVAL, "%s: \"%s\" includes invalid characters for a local volume "
                                                   "name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you "
                                                   "intended to pass a host directory, use absolute path", path, buf);
        if (m->kind == MK_BIND && !path_clean(buf))
                return silo_error_msg(err, EINVAL, "%s: invalid source path '%s'", path, buf);
        for (char *save = NULL, *o = opts ? strtok_r(opts, ",", &save) : NULL; o; o = strtok_r(NULL, ",", &save)) {
                if (strcmp(o, "ro") == 0)
                        m->readonly = true;
                else if (strcmp(o, "rw") == 0)
                        m->readonly = false;
                else if (strcmp(o, "z") == 0 || strcmp(o, "Z") == 0)
                        ;       /* SELinux relabelling: no SELinux here */
                else if (strcmp(o, "nocopy") == 0)
                        m->nocopy = true;
                else if (propagation_valid(o))
                        m->propagation = o;
                else
                        return silo_error_msg(err, EINVAL, "%s: invalid mode: %s", path, o);
        }
        return 0;
}

/* One entry of HostConfig.Mounts (--mount). */
struct mount_json {
        const char *type, *source, *target;
        bool readonly;
};

static const struct silo_json_field mount_fields[] = {
        { "Type", SILO_JSON_STRING, offsetof(struct mount_json, type), SILO_JSON_REQUIRED },
        { "Source", SILO_JSON_STRING, offsetof(struct mount_json, source), SILO_JSON_NULLABLE },
        { "Target", SILO_JSON_STRING, offsetof(struct mount_json, target), SILO_JSON_REQUIRED },
        { "ReadOnly", SILO_JSON_BOOL, offsetof(struct mount_json, readonly), SILO_JSON_NULLABLE },
        {}
};

/* One entry of HostConfig.Mounts (--mount). */
static int parse_mount(json_t *o, const char *path, struct user_mount *m, silo_error *err)
{
        struct mount_json j = {};
        int r = silo_json_dispatch(o, path, mount_fields, &j, err);
        if (r < 0)
                return r;
        *m = (struct user_mount) { .source = j.source && *j.source ? j.source : NULL, .target = j.target,
                                   .readonly = j.readonly };
        char p[SILO_JSON_PATH_MAX];
        if (!path_clean(j.target) || strcmp(j.target, "/") == 0)
                return silo_error_msg(err, EINVAL, "%s: invalid mount config: the target '%s' must be an absolute "
                                                   "path other than /", silo_json_path_key(p, path, "Target"), j.target);
        if (strcmp(j.type, "bind") == 0) {
                m->kind = MK_BIND;
                if (!m->source || !path_clean(m->source))
                        return silo_error_msg(err, EINVAL, "%s: a bind mount needs an absolute source path",
                                              silo_json_path_key(p, path, "Source"));
                json_t *bo = json_object_get(o, "BindOptions");
                const char *prop = json_string_value(json_object_get(bo, "Propagation"));
                if (prop && *prop && !propagation_valid(prop))
                        return silo_error_msg(err, EINVAL, "%s: invalid propagation mode: %s",
                                              silo_json_path_key(p, path, "BindOptions.Propagation"), prop);
                m->propagation = prop && *prop ? prop : NULL;
                m->create_source = json_is_true(json_object_get(bo, "CreateMountpoint"));
        } else if (strcmp(j.type, "volume") == 0) {
                m->kind = MK_VOLUME;
                if (m->source && !volume_name_valid(m->source))
                        return silo_error_msg(err, EINVAL, "%s: invalid volume name \"%s\"",
                                              silo_json_path_key(p, path, "Source"), m->source);
                m->nocopy = json_is_true(json_object_get(json_object_get(o, "VolumeOptions"), "NoCopy"));
        } else if (strcmp(j.type, "tmpfs") == 0) {
                m->kind = MK_TMPFS;
                if (m->source)
                        return silo_error_msg(err, EINVAL, "%s: a tmpfs mount takes no source",
                                              silo_json_path_key(p, path, "Source"));
                json_t *to = json_object_get(o, "TmpfsOptions");
                json_t *size = json_object_get(to, "SizeBytes"), *mode = json_object_get(to, "Mode");
                if ((size && !json_is_integer(size) && !json_is_null(size)) ||
                    (mode && !json_is_integer(mode) && !json_is_null(mode)))
                        return silo_error_msg(err, EINVAL, "%s: SizeBytes and Mode must be integers",
                                              silo_json_path_key(p, path, "TmpfsOptions"));
                if (json_integer_value(size) < 0 || json_integer_value(mode) < 0 || json_integer_value(mode) > 07777)
                        return silo_error_msg(err, EINVAL, "%s: SizeBytes or Mode out of range",
                                              silo_json_path_key(p, path, "TmpfsOptions"));
                int n = 0;
                if (json_integer_value(size) > 0)
                        n = snprintf(m->tmpfs_opts, sizeof(m->tmpfs_opts), "size=%lld",
                                     (long long) json_integer_value(size));
                if (json_is_integer(mode))
                        snprintf(m->tmpfs_opts + n, sizeof(m->tmpfs_opts) - (size_t) n, "%smode=%llo", n ? "," : "",
                                 (unsigned long long) json_integer_value(mode));
        } else {
                return silo_error_msg(err, EINVAL, "%s: mount type \"%s\" is not supported (bind, volume and "
                                                   "tmpfs are)", silo_json_path_key(p, path, "Type"), j.type);
        }
        return 0;
}

/* --tmpfs /dst:opts; options checked against what a tmpfs takes. */
static int parse_tmpfs(const char *target, json_t *v, const char *path, struct user_mount *m, silo_error *err)
{
        static const char *const flags[] = { "ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev",
                                             "atime", "noatime", "relatime", "strictatime", "nodiratime" };
        if (!json_is_string(v))
                return silo_error_msg(err, EINVAL, "%s: expected a string, got %s", path, silo_json_type_name(v));
        *m = (struct user_mount) { .kind = MK_TMPFS, .target = target };
        if (!path_clean(target) || strcmp(target, "/") == 0)
                return silo_error_msg(err, EINVAL, "%s: invalid tmpfs destination '%s'", path, target);
        const char *opts = json_string_value(v);
        if (strlen(opts) >= sizeof(m->tmpfs_opts))
                return silo_error_msg(err, EINVAL, "%s: options too long", path);
        char copy[sizeof(m->tmpfs_opts)];
        strcpy(copy, opts);
        for (char *save = NULL, *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
                bool ok = strncmp(o, "size=", 5) == 0 || strncmp(o, "mode=", 5) == 0 ||
                          strncmp(o, "uid=", 4) == 0 || strncmp(o, "gid=", 4) == 0 || strncmp(o, "nr_inodes=", 10) == 0;
                for (size_t i = 0; !ok && i < ARRAY_SIZE(flags); i++)
                        ok = strcmp(o, flags[i]) == 0;
                if (!ok)
                        return silo_error_msg(err, EINVAL, "%s: invalid tmpfs option \"%s\"", path, o);
                if (strcmp(o, "ro") == 0)
                        m->readonly = true;
        }
        strcpy(m->tmpfs_opts, opts);
        return 0;
}

struct mount_list {
        struct user_mount m[MAX_USER_MOUNTS];
        char bind_buf[MAX_USER_MOUNTS][PATH_MAX * 2 + 64];
        size_t n;
};

static int add_mount(struct mount_list *l, const struct user_mount *m, const char *path, silo_error *err)
{
        for (size_t i = 0; i < l->n; i++)
                if (strcmp(l->m[i].target, m->target) == 0)
                        return silo_error_msg(err, EINVAL, "%s: Duplicate mount point: %s", path, m->target);
        if (l->n == MAX_USER_MOUNTS)
                return silo_error_msg(err, E2BIG, "%s: more than %d mounts", path, MAX_USER_MOUNTS);
        l->m[l->n++] = *m;
        return 0;
}

static int collect_mounts(const struct hc_mounts *h, struct mount_list *l, silo_error *err)
{
        char p[SILO_JSON_PATH_MAX];
        int r;
        for (size_t i = 0; h->binds && h->binds[i]; i++) {
                struct user_mount m;
                silo_json_path_index(p, "HostConfig.Binds", i);
                if (l->n == MAX_USER_MOUNTS)
                        return silo_error_msg(err, E2BIG, "%s: more than %d mounts", p, MAX_USER_MOUNTS);
                r = parse_bind(h->binds[i], p, &m, l->bind_buf[l->n], sizeof(l->bind_buf[0]), err);
                if (r < 0 || (r = add_mount(l, &m, p, err)) < 0)
                        return r;
        }
        size_t i;
        json_t *v;
        json_array_foreach(h->mounts, i, v) {
                struct user_mount m;
                silo_json_path_index(p, "HostConfig.Mounts", i);
                if (!json_is_object(v))
                        return silo_error_msg(err, EINVAL, "%s: expected an object, got %s", p, silo_json_type_name(v));
                r = parse_mount(v, p, &m, err);
                if (r < 0 || (r = add_mount(l, &m, p, err)) < 0)
                        return r;
        }
        const char *k;
        json_object_foreach(h->tmpfs, k, v) {
                struct user_mount m;
                silo_json_path_key(p, "HostConfig.Tmpfs", k);
                r = parse_tmpfs(k, v, p, &m, err);
                if (r < 0 || (r = add_mount(l, &m, p, err)) < 0)
                        return r;
        }
        return 0;
}

static void remove_mount_at(json_t *mounts, const char *dest)
{
        for (size_t i = json_array_size(mounts); i-- > 0; ) {
                const char *d = json_string_value(json_object_get(json_array_get(mounts, i), "destination"));
                if (d && strcmp(d, dest) == 0)
                        json_array_remove(mounts, i);
        }
}

json_t *hc_find_mount(json_t *mounts, const char *dest)
{
        size_t i;
        json_t *m;
        json_array_foreach(mounts, i, m) {
                const char *d = json_string_value(json_object_get(m, "destination"));
                if (d && strcmp(d, dest) == 0)
                        return m;
        }
        return NULL;
}

static void add_tmpfs_option(json_t *opts, const char *csv)
{
        char copy[256];
        snprintf(copy, sizeof(copy), "%s", csv);
        for (char *save = NULL, *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
                const char *neg = strcmp(o, "exec") == 0 ? "noexec" : strcmp(o, "suid") == 0 ? "nosuid" :
                                  strcmp(o, "dev") == 0 ? "nodev" : NULL;
                for (size_t i = json_array_size(opts); neg && i-- > 0; )
                        if (strcmp(json_string_value(json_array_get(opts, i)), neg) == 0)
                                json_array_remove(opts, i);
                json_array_append_new(opts, json_string(o));
        }
}

static unsigned path_depth(const char *p)
{
        unsigned n = 0;
        for (; *p; p++)
                n += *p == '/' && p[1] && p[1] != '/';
        return n;
}

int hc_mounts_check(const struct hc_mounts *h, silo_error *err)
{
        _cleanup_free_ struct mount_list *l = calloc(1, sizeof(*l));
        if (!l)
                return silo_error_set(err, ENOMEM, "HostConfig");
        return collect_mounts(h, l, err);
}

/* Adds m to the spec's mounts and its MountPoints entry to points (first,
 * so that a failure later can find an anonymous volume it made). */
static int apply_one_mount(struct silod *d, struct user_mount *m, int rootfd, json_t *mounts, json_t *points,
                           silo_error *err)
{
        remove_mount_at(mounts, m->target);
        if (m->kind == MK_TMPFS) {
                json_t *opts = json_pack("[s, s, s]", "nosuid", "nodev", "noexec");
                add_tmpfs_option(opts, m->tmpfs_opts);
                if (m->readonly)
                        json_array_append_new(opts, json_string("ro"));
                json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:o}", "destination", m->target, "type",
                                                        "tmpfs", "source", "tmpfs", "options", opts));
                json_array_append_new(points, json_pack("{s:s, s:s, s:s, s:s, s:b, s:s}", "Type", "tmpfs", "Source",
                                                        "", "Destination", m->target, "Mode", m->tmpfs_opts, "RW",
                                                        !m->readonly, "Propagation", ""));
                return 0;
        }
        _cleanup_free_ char *source = NULL;
        const char *prop = m->propagation ? m->propagation : "rprivate";
        int r;
        if (m->kind == MK_VOLUME) {
                char anon[65] = "";
                if (!m->source) {
                        silo_random_hex(anon, 64);
                        anon[64] = 0;
                }
                const char *name = m->source ? m->source : anon;
                bool fresh = false;
                r = volume_ensure(d, name, !m->source, &source, &fresh, err);
                if (r < 0)
                        return r;
                json_t *pt = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s}", "Type", "volume", "Name", name,
                                       "Source", source, "Destination", m->target, "Driver", "local", "Mode",
                                       m->readonly ? "ro" : "z", "RW", !m->readonly, "Propagation", "");
                if (pt && !m->source)
                        json_object_set_new(pt, "Anonymous", json_true());
                json_array_append_new(points, pt);
                /* Docker fills an empty volume from the image on first use. */
                if (!m->nocopy && rootfd >= 0 && (r = volume_copy_up(source, rootfd, m->target, err)) < 0)
                        return r;
        } else {
                struct stat st;
                if (stat(m->source, &st) < 0) {
                        if (errno != ENOENT || !m->create_source)
                                return silo_error_set(err, errno == ENOENT ? EINVAL : errno,
                                                      "invalid mount config for type \"bind\": bind source path "
                                                      "does not exist: %s", m->source);
                        if ((r = silo_mkdir_p_at(AT_FDCWD, m->source, 0755, err)) < 0)
                                return r;
                }
                source = strdup(m->source);
                if (!source)
                        return silo_error_set(err, ENOMEM, "mount %s", m->target);
                json_array_append_new(points, json_pack("{s:s, s:s, s:s, s:s, s:b, s:s}", "Type", "bind", "Source",
                                                        source, "Destination", m->target, "Mode",
                                                        m->readonly ? "ro" : "", "RW", !m->readonly, "Propagation",
                                                        prop));
        }
        json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:[s, s, s]}", "destination", m->target, "type",
                                                "bind", "source", source, "options", "rbind",
                                                m->readonly ? "ro" : "rw", prop));
        return 0;
}

/* Binds, Mounts, Tmpfs, then anonymous volumes for image/Config volumes
 * nobody else covers; each replaces a mount at the same destination. */
int hc_mounts_apply(struct silod *d, const struct hc_mounts *h, json_t *volumes_wanted, int rootfd, json_t *spec,
                    json_t **ret_points, silo_error *err)
{
        _cleanup_free_ struct mount_list *l = calloc(1, sizeof(*l));
        if (!l)
                return silo_error_set(err, ENOMEM, "mounts");
        int r = collect_mounts(h, l, err);
        if (r < 0)
                return r;
        const char *vpath;
        json_t *v;
        json_object_foreach(volumes_wanted, vpath, v) {
                bool covered = false;
                for (size_t i = 0; i < l->n; i++)
                        covered |= strcmp(l->m[i].target, vpath) == 0;
                if (covered || !path_clean(vpath))
                        continue;
                struct user_mount m = { .kind = MK_VOLUME, .target = vpath };
                if ((r = add_mount(l, &m, "Config.Volumes", err)) < 0)
                        return r;
        }
        /* Parents before children: stable sort by depth. */
        for (size_t i = 1; i < l->n; i++)
                for (size_t k = i; k > 0 && path_depth(l->m[k - 1].target) > path_depth(l->m[k].target); k--) {
                        struct user_mount t = l->m[k];
                        l->m[k] = l->m[k - 1];
                        l->m[k - 1] = t;
                }
        json_t *mounts = json_object_get(spec, "mounts");
        _cleanup_json_ json_t *points = json_array();
        for (size_t i = 0; r == 0 && i < l->n; i++)
                r = apply_one_mount(d, &l->m[i], rootfd, mounts, points, err);
        if (r < 0) {
                /* Nothing refers to the anonymous volumes made so far. */
                volumes_remove_anonymous(d, points);
                return r;
        }
        *ret_points = TAKE_PTR(points);
        return 0;
}
