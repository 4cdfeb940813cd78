/* Where a container's cgroup lives: normalizing cgroupsPath, and reading the
 * caller's own cgroup and the cgroup mounts from procfs text.  Pure string
 * code (no I/O) so the unit tests can feed it any input. */
#include "cgroup/cgroup-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The v1 controllers we manage; "name=" hierarchies (name=systemd) belong to
 * the init system and are left alone. */
static const char *const v1_controllers[] = {
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio",
        "pids", "hugetlb", "net_cls", "net_prio", "perf_event",
};

bool cgroup_list_contains(const char *list, const char *word, const char *seps)
{
        size_t wlen = strlen(word);
        const char *p = list;

        while (*p) {
                size_t n = strcspn(p, seps);
                if (n == wlen && !strncmp(p, word, n))
                        return true;
                p += n;
                p += strspn(p, seps);
        }
        return false;
}

static bool is_bad_name_char(char c)
{
        /* Control characters would corrupt the line-based /proc/self/cgroup. */
        return (unsigned char) c < 0x20 || c == 0x7f;
}

int cgroup_normalize_path(const char *in, char **ret, silo_error *err)
{
        size_t len = strlen(in);
        if (len >= PATH_MAX)
                return silo_error_msg(err, ENAMETOOLONG, "cgroup path '%.64s...' is too long", in);

        _cleanup_free_ char *out = malloc(len + 2);
        if (!out)
                return silo_error_set(err, ENOMEM, "cgroup path");

        size_t o = 0;
        for (const char *p = in; *p;) {
                p += strspn(p, "/");
                if (!*p)
                        break;
                size_t n = strcspn(p, "/");
                if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
                        return silo_error_msg(err, EINVAL, "cgroup path '%s': '.' and '..' components are not allowed", in);
                if (n > NAME_MAX)
                        return silo_error_msg(err, ENAMETOOLONG, "cgroup path '%s': component longer than %d bytes", in, NAME_MAX);
                for (size_t i = 0; i < n; i++)
                        if (is_bad_name_char(p[i]))
                                return silo_error_msg(err, EINVAL, "cgroup path '%s': control characters are not allowed", in);
                out[o++] = '/';
                memcpy(out + o, p, n);
                o += n;
                p += n;
        }
        if (o == 0)
                out[o++] = '/';
        out[o] = '\0';
        *ret = TAKE_PTR(out);
        return 0;
}

int cgroup_resolve_path(const char *cgroups_path, const char *id, const char *own, char **ret, silo_error *err)
{
        _cleanup_free_ char *joined = NULL, *path = NULL;
        int r;

        if (cgroups_path && strchr(cgroups_path, ':'))
                return silo_error_msg(err, EOPNOTSUPP,
                                      "cgroupsPath '%s': systemd cgroup paths are not supported; use cgroupfs",
                                      cgroups_path);

        if (!cgroups_path || !*cgroups_path) {
                if (!id || !*id || strchr(id, '/') || !strcmp(id, ".") || !strcmp(id, ".."))
                        return silo_error_msg(err, EINVAL, "container id '%s' cannot name a cgroup", id ? id : "");
                if (asprintf(&joined, "/silo/%s", id) < 0)
                        return silo_error_set(err, ENOMEM, "cgroup path");
        } else if (cgroups_path[0] == '/') {
                joined = strdup(cgroups_path);
                if (!joined)
                        return silo_error_set(err, ENOMEM, "cgroup path");
        } else {
                if (!own)
                        return silo_error_msg(err, EINVAL, "cgroupsPath '%s': relative, but our own cgroup is unknown",
                                              cgroups_path);
                if (asprintf(&joined, "%s/%s", own, cgroups_path) < 0)
                        return silo_error_set(err, ENOMEM, "cgroup path");
        }

        r = cgroup_normalize_path(joined, &path, err);
        if (r < 0)
                return r;
        /* Managing the root cgroup would mean removing or limiting everything. */
        if (!strcmp(path, "/"))
                return silo_error_msg(err, EINVAL, "cgroupsPath '%s' resolves to the root of the hierarchy",
                                      cgroups_path ? cgroups_path : "");
        *ret = TAKE_PTR(path);
        return 0;
}

int cgroup_parse_own(const char *proc_cgroup, const char *controller, char **ret, silo_error *err)
{
        for (const char *line = proc_cgroup; line && *line;) {
                const char *end = strchrnul(line, '\n');
                const char *c1 = memchr(line, ':', end - line);
                const char *c2 = c1 ? memchr(c1 + 1, ':', end - c1 - 1) : NULL;

                if (c2) {
                        _cleanup_free_ char *ctrls = strndup(c1 + 1, c2 - c1 - 1);
                        if (!ctrls)
                                return silo_error_set(err, ENOMEM, "/proc/self/cgroup");
                        bool match = controller ? cgroup_list_contains(ctrls, controller, ",")
                                                : (c1 - line == 1 && line[0] == '0' && !*ctrls);
                        if (match) {
                                char *p = strndup(c2 + 1, end - c2 - 1);
                                if (!p)
                                        return silo_error_set(err, ENOMEM, "/proc/self/cgroup");
                                *ret = p;
                                return 0;
                        }
                }
                line = *end ? end + 1 : NULL;
        }
        return silo_error_msg(err, ENOENT, "/proc/self/cgroup has no entry for %s",
                              controller ? controller : "the unified hierarchy (0::)");
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static char *unescape_octal(const char *s, size_t n)
{
        char *out = malloc(n + 1), *o = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '\\' && i + 3 < n &&
                    s[i + 1] >= '0' && s[i + 1] <= '3' &&
                    s[i + 2] >= '0' && s[i + 2] <= '7' &&
                    s[i + 3] >= '0' && s[i + 3] <= '7') {
                        *o++ = (char) ((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
                        i += 3;
                } else {
                        *o++ = s[i];
                }
        }
        *o = '\0';
        return out;
}

void cgroup_mounts_free(struct cgroup_mount *m, size_t n)
{
        for (size_t i = 0; m && i < n; i++) {
                free(m[i].controllers);
                free(m[i].mount_point);
                free(m[i].root);
        }
        free(m);
}

/* Keeps the known controllers of a super-options string, in order. */
static char *known_controllers(const char *super_opts)
{
        size_t cap = strlen(super_opts) + 1, o = 0;
        char *out = calloc(1, cap);
        if (!out)
                return NULL;
        for (const char *p = super_opts; *p;) {
                size_t n = strcspn(p, ",");
                for (size_t i = 0; i < ARRAY_SIZE(v1_controllers); i++) {
                        if (strlen(v1_controllers[i]) == n && !strncmp(p, v1_controllers[i], n)) {
                                if (o)
                                        out[o++] = ',';
                                memcpy(out + o, p, n);
                                o += n;
                                break;
                        }
                }
                p += n;
                p += strspn(p, ",");
        }
        return out;
}

/* Splits one mountinfo line: root, mount point, fstype, super options. */
static bool split_mountinfo(const char *line, size_t len, const char *f[4], size_t flen[4])
{
        const char *fields[64];
        size_t lens[64], n = 0;

        for (size_t i = 0; i < len && n < ARRAY_SIZE(fields);) {
                while (i < len && line[i] == ' ')
                        i++;
                if (i >= len)
                        break;
                size_t s = i;
                while (i < len && line[i] != ' ')
                        i++;
                fields[n] = line + s;
                lens[n++] = i - s;
        }
        /* id parent maj:min root mount-point options [optional...] - fstype source super-options */
        for (size_t sep = 6; sep + 3 < n; sep++) {
                if (lens[sep] == 1 && fields[sep][0] == '-') {
                        f[0] = fields[3], flen[0] = lens[3];
                        f[1] = fields[4], flen[1] = lens[4];
                        f[2] = fields[sep + 1], flen[2] = lens[sep + 1];
                        f[3] = fields[sep + 3], flen[3] = lens[sep + 3];
                        return true;
                }
        }
        return false;
}

/* "/sys/fs/cgroup/cpu" is directly below "/sys/fs/cgroup". */
static bool directly_below(const char *path, const char *root)
{
        size_t rl = strlen(root);
        if (rl == 1 && root[0] == '/')
                rl = 0;
        return !strncmp(path, root, rl) && path[rl] == '/' && path[rl + 1] && !strchr(path + rl + 1, '/');
}

int cgroup_parse_mounts(const char *mountinfo, const char *root, bool all_v1,
                        struct cgroup_mount **ret, size_t *ret_n, silo_error *err)
{
        struct cgroup_mount *list = NULL;
        _cleanup_free_ char *norm = NULL;
        size_t n = 0;
        int r;

        /* "/sys/fs/cgroup/" and "/sys/fs/cgroup" are the same root. */
        r = cgroup_normalize_path(root, &norm, err);
        if (r < 0)
                return r;
        root = norm;
        for (const char *line = mountinfo; line && *line;) {
                const char *end = strchrnul(line, '\n');
                const char *f[4];
                size_t flen[4];
                _cleanup_free_ char *mroot = NULL, *mpoint = NULL, *fstype = NULL, *opts = NULL, *ctrls = NULL;

                if (!split_mountinfo(line, end - line, f, flen))
                        goto next;
                fstype = strndup(f[2], flen[2]);
                mpoint = unescape_octal(f[1], flen[1]);
                mroot = unescape_octal(f[0], flen[0]);
                opts = strndup(f[3], flen[3]);
                if (!fstype || !mpoint || !mroot || !opts) {
                        r = silo_error_set(err, ENOMEM, "/proc/self/mountinfo");
                        goto fail;
                }
                if (all_v1) {
                        if (strcmp(fstype, "cgroup") || !directly_below(mpoint, root))
                                goto next;
                        ctrls = known_controllers(opts);
                        if (!ctrls) {
                                r = silo_error_set(err, ENOMEM, "/proc/self/mountinfo");
                                goto fail;
                        }
                        if (!*ctrls)
                                goto next;
                        /* The same hierarchy mounted twice: the first mount serves. */
                        _cleanup_free_ char *first = strndup(ctrls, strcspn(ctrls, ","));
                        if (!first) {
                                r = silo_error_set(err, ENOMEM, "/proc/self/mountinfo");
                                goto fail;
                        }
                        bool seen = false;
                        for (size_t i = 0; i < n && !seen; i++)
                                seen = cgroup_list_contains(list[i].controllers, first, ",");
                        if (seen)
                                goto next;
                } else {
                        if (strcmp(fstype, "cgroup2") || strcmp(mpoint, root))
                                goto next;
                        ctrls = strdup("");
                        if (!ctrls) {
                                r = silo_error_set(err, ENOMEM, "/proc/self/mountinfo");
                                goto fail;
                        }
                        /* A later mount on the same point hides the earlier one. */
                        if (n > 0) {
                                cgroup_mounts_free(list, n);
                                list = NULL;
                                n = 0;
                        }
                }
                if (n >= CGROUP_MAX_HIERARCHIES) {
                        r = silo_error_msg(err, E2BIG, "more than %d cgroup hierarchies below %s",
                                           CGROUP_MAX_HIERARCHIES, root);
                        goto fail;
                }
                struct cgroup_mount *grown = realloc(list, (n + 1) * sizeof(*list));
                if (!grown) {
                        r = silo_error_set(err, ENOMEM, "/proc/self/mountinfo");
                        goto fail;
                }
                list = grown;
                list[n++] = (struct cgroup_mount) {
                        .controllers = TAKE_PTR(ctrls),
                        .mount_point = TAKE_PTR(mpoint),
                        .root = TAKE_PTR(mroot),
                };
        next:
                line = *end ? end + 1 : NULL;
        }
        *ret = list;
        *ret_n = n;
        return 0;

fail:
        cgroup_mounts_free(list, n);
        return r;
}

int cgroup_strip_mount_root(const char *own, const char *mount_root, char **ret, silo_error *err)
{
        size_t rl = strlen(mount_root);
        const char *rest;

        if (!strcmp(mount_root, "/"))
                rest = own;
        else if (!strncmp(own, mount_root, rl) && (own[rl] == '/' || own[rl] == '\0'))
                rest = own + rl;
        else
                return silo_error_msg(err, ENOENT, "our cgroup %s is outside the mounted part %s of its hierarchy",
                                      own, mount_root);
        return cgroup_normalize_path(rest, ret, err);
}
