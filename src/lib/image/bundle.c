#include "image/bundle.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image.h"
#include "image/rootfs.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define ETC_FILE_MAX (4u << 20)
#define MAX_ADDITIONAL_GIDS 256

/* ---- users ---- */

static bool parse_id(const char *s, uint32_t *ret)
{
        if (!*s)
                return false;
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || *end || v >= UINT32_MAX || !isdigit((unsigned char) s[0]))
                return false;
        *ret = (uint32_t) v;
        return true;
}

static int read_etc(int rootfd, const char *path, char **ret, silo_error *err)
{
        *ret = NULL;
        if (rootfd < 0)
                return 0;
        silo_error e = SILO_ERROR_INIT;
        _cleanup_close_ int fd = silo_open_in_root(rootfd, path, O_RDONLY | O_NOCTTY, 0, &e);
        if (fd < 0)
                return fd == -ENOENT ? 0 : silo_error_msg(err, -fd, "%s", e.message);
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return silo_error_msg(err, EINVAL, "the image's %s is not a regular file", path);
        char p[64];
        return silo_read_file_at(AT_FDCWD, silo_fd_path(p, fd), ETC_FILE_MAX, ret, NULL, err);
}

/* Field k (0-based) of a colon-separated line, copied into buf. */
static bool field(const char *line, size_t len, unsigned k, char *buf, size_t size)
{
        const char *p = line, *end = line + len;
        for (unsigned i = 0; i < k; i++) {
                p = memchr(p, ':', (size_t) (end - p));
                if (!p)
                        return false;
                p++;
        }
        const char *q = memchr(p, ':', (size_t) (end - p));
        size_t n = (size_t) ((q ? q : end) - p);
        if (n >= size)
                return false;
        memcpy(buf, p, n);
        buf[n] = '\0';
        return true;
}

/* Finds the line whose field `key_field` equals key; returns it. */
static bool find_line(const char *text, unsigned key_field, const char *key, const char **ret, size_t *ret_len)
{
        for (const char *line = text; line && *line; ) {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t) (nl - line) : strlen(line);
                char f[256];
                if (line[0] != '#' && field(line, len, key_field, f, sizeof(f)) && !strcmp(f, key)) {
                        *ret = line;
                        *ret_len = len;
                        return true;
                }
                line = nl ? nl + 1 : NULL;
        }
        return false;
}

static int resolve_user(const char *spec, int rootfd, json_t **ret, silo_error *err)
{
        _cleanup_free_ char *passwd = NULL, *group = NULL;
        int r = read_etc(rootfd, "/etc/passwd", &passwd, err);
        if (r < 0)
                return r;
        r = read_etc(rootfd, "/etc/group", &group, err);
        if (r < 0)
                return r;

        char user[256] = "", grp[256] = "";
        const char *colon = spec ? strchr(spec, ':') : NULL;
        if (spec && strlen(spec) >= sizeof(user))
                return silo_error_msg(err, EINVAL, "User '%.60s...' is too long", spec);
        if (spec) {
                snprintf(user, sizeof(user), "%.*s", colon ? (int) (colon - spec) : (int) strlen(spec), spec);
                if (colon)
                        snprintf(grp, sizeof(grp), "%s", colon + 1);
        }

        uint32_t uid = 0, gid = 0;
        bool have_gid = false;
        char name[256] = "";
        const char *line;
        size_t len;
        char f[256];
        if (!*user) {
                uid = 0;
        } else if (parse_id(user, &uid)) {
                snprintf(f, sizeof(f), "%u", uid);
                if (passwd && find_line(passwd, 2, f, &line, &len)) {
                        field(line, len, 0, name, sizeof(name));
                        if (field(line, len, 3, f, sizeof(f)) && parse_id(f, &gid))
                                have_gid = true;
                }
        } else {
                if (!passwd || !find_line(passwd, 0, user, &line, &len))
                        return silo_error_msg(err, ENOENT, "User: '%s' not found in the image's /etc/passwd", user);
                if (!field(line, len, 2, f, sizeof(f)) || !parse_id(f, &uid) ||
                    !field(line, len, 3, f, sizeof(f)) || !parse_id(f, &gid))
                        return silo_error_msg(err, EINVAL, "User: malformed /etc/passwd entry for '%s'", user);
                snprintf(name, sizeof(name), "%s", user);
                have_gid = true;
        }
        if (*grp) {
                if (!parse_id(grp, &gid)) {
                        if (!group || !find_line(group, 0, grp, &line, &len))
                                return silo_error_msg(err, ENOENT, "User: group '%s' not found in the image's /etc/group", grp);
                        if (!field(line, len, 2, f, sizeof(f)) || !parse_id(f, &gid))
                                return silo_error_msg(err, EINVAL, "User: malformed /etc/group entry for '%s'", grp);
                }
                have_gid = true;
        }
        if (!have_gid)
                gid = 0;

        json_t *u = json_pack("{s:I, s:I}", "uid", (json_int_t) uid, "gid", (json_int_t) gid);
        if (!u)
                return silo_error_set(err, ENOMEM, "user");
        /* Supplementary groups: groups listing the user by name (not when a group was forced). */
        if (*name && group && !*grp) {
                json_t *gids = json_array();
                size_t n = 0;
                for (const char *l = group; l && *l && n < MAX_ADDITIONAL_GIDS; ) {
                        const char *nl = strchr(l, '\n');
                        size_t ll = nl ? (size_t) (nl - l) : strlen(l);
                        char members[4096], gidf[32];
                        uint32_t g;
                        if (l[0] != '#' && field(l, ll, 3, members, sizeof(members)) && field(l, ll, 2, gidf, sizeof(gidf)) &&
                            parse_id(gidf, &g) && g != gid) {
                                for (char *save = NULL, *m = strtok_r(members, ",", &save); m; m = strtok_r(NULL, ",", &save))
                                        if (!strcmp(m, name)) {
                                                json_array_append_new(gids, json_integer(g));
                                                n++;
                                                break;
                                        }
                        }
                        l = nl ? nl + 1 : NULL;
                }
                if (n)
                        json_object_set_new(u, "additionalGids", gids);
                else
                        json_decref(gids);
        }
        *ret = u;
        return 0;
}

/* ---- env ---- */

static void env_set(json_t *env, const char *kv)
{
        const char *eq = strchr(kv, '=');
        size_t klen = eq ? (size_t) (eq - kv) : strlen(kv);
        for (size_t i = 0; i < json_array_size(env); i++) {
                const char *e = json_string_value(json_array_get(env, i));
                if (e && !strncmp(e, kv, klen) && (e[klen] == '=' || e[klen] == '\0')) {
                        json_array_set_new(env, i, json_string(kv));
                        return;
                }
        }
        json_array_append_new(env, json_string(kv));
}

static bool env_has(json_t *env, const char *key)
{
        size_t klen = strlen(key);
        for (size_t i = 0; i < json_array_size(env); i++) {
                const char *e = json_string_value(json_array_get(env, i));
                if (e && !strncmp(e, key, klen) && e[klen] == '=')
                        return true;
        }
        return false;
}

/* ---- volumes ---- */

static int check_volume(const char *path, silo_error *err)
{
        if (path[0] != '/')
                return silo_error_msg(err, EINVAL, "config.Volumes: '%.200s' is not an absolute path", path);
        if (strlen(path) >= PATH_MAX)
                return silo_error_msg(err, ENAMETOOLONG, "config.Volumes: path too long");
        for (const char *p = path; *p; ) {
                while (*p == '/')
                        p++;
                const char *end = strchrnul(p, '/');
                if (end - p == 2 && p[0] == '.' && p[1] == '.')
                        return silo_error_msg(err, EINVAL, "config.Volumes: '%.200s' contains '..'", path);
                p = end;
        }
        if (!strcmp(path, "/") || strspn(path, "/") == strlen(path))
                return silo_error_msg(err, EINVAL, "config.Volumes: the root directory cannot be a volume");
        return 0;
}

/* ---- the spec ---- */

static json_t *default_mounts(void)
{
        return json_pack("[{s:s, s:s, s:s},"
                         " {s:s, s:s, s:s, s:[s,s,s,s]},"
                         " {s:s, s:s, s:s, s:[s,s,s,s,s,s]},"
                         " {s:s, s:s, s:s, s:[s,s,s,s,s]},"
                         " {s:s, s:s, s:s, s:[s,s,s]},"
                         " {s:s, s:s, s:s, s:[s,s,s,s]}]",
                         "destination", "/proc", "type", "proc", "source", "proc",
                         "destination", "/dev", "type", "tmpfs", "source", "tmpfs",
                         "options", "nosuid", "strictatime", "mode=755", "size=65536k",
                         "destination", "/dev/pts", "type", "devpts", "source", "devpts",
                         "options", "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5",
                         "destination", "/dev/shm", "type", "tmpfs", "source", "shm",
                         "options", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k",
                         "destination", "/dev/mqueue", "type", "mqueue", "source", "mqueue",
                         "options", "nosuid", "noexec", "nodev",
                         "destination", "/sys", "type", "sysfs", "source", "sysfs",
                         "options", "nosuid", "noexec", "nodev", "ro");
}

static json_t *default_caps(void)
{
        static const char *const caps[] = {
                "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
        };
        json_t *set = json_array();
        for (size_t i = 0; i < ARRAY_SIZE(caps); i++)
                json_array_append_new(set, json_string(caps[i]));
        return json_pack("{s:O, s:O, s:o}", "bounding", set, "effective", set, "permitted", set);
}

static json_t *strv_json(const char *const *v)
{
        json_t *a = json_array();
        for (; v && *v; v++)
                json_array_append_new(a, json_string(*v));
        return a;
}

int silo_bundle_spec(const silo_image_config *cfg, int rootfs_fd, const char *rootfs_path,
                     const silo_bundle_options *o, silo_volume_source_fn volume_source, void *userdata,
                     json_t **ret, silo_error *err)
{
        /* args: Entrypoint + (given args, else Cmd) */
        _cleanup_json_ json_t *args = strv_json(cfg->entrypoint);
        json_t *tail = strv_json(o->args && o->args[0] ? o->args : cfg->cmd);
        json_array_extend(args, tail);
        json_decref(tail);
        if (json_array_size(args) == 0)
                return silo_error_msg(err, EINVAL, "the image has no Entrypoint or Cmd and no command was given");

        _cleanup_json_ json_t *env = json_array();
        for (const char **e = cfg->env; e && *e; e++)
                env_set(env, *e);
        if (!env_has(env, "PATH"))
                env_set(env, DEFAULT_PATH);
        if (o->terminal && !env_has(env, "TERM"))
                env_set(env, "TERM=xterm");
        for (const char **e = o->env; e && *e; e++) {
                if (!strchr(*e, '=') || **e == '=')
                        return silo_error_msg(err, EINVAL, "environment '%s' is not NAME=VALUE", *e);
                env_set(env, *e);
        }

        const char *cwd = o->cwd ? o->cwd : (cfg->working_dir && *cfg->working_dir ? cfg->working_dir : "/");
        if (cwd[0] != '/')
                return silo_error_msg(err, EINVAL, "WorkingDir '%s' is not an absolute path", cwd);

        _cleanup_json_ json_t *user = NULL;
        int r = resolve_user(o->user ? o->user : cfg->user, rootfs_fd, &user, err);
        if (r < 0)
                return r;

        _cleanup_json_ json_t *mounts = default_mounts();
        if (!mounts)
                return silo_error_set(err, ENOMEM, "spec");
        if (cfg->volumes) {
                const char *path;
                json_t *v;
                json_object_foreach(cfg->volumes, path, v) {
                        r = check_volume(path, err);
                        if (r < 0)
                                return r;
                        if (!volume_source)
                                continue;
                        _cleanup_free_ char *src = NULL;
                        r = volume_source(userdata, path, &src, err);
                        if (r < 0)
                                return r;
                        json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:[s, s]}", "destination", path,
                                                                "type", "bind", "source", src, "options", "rbind", "rw"));
                }
        }

        _cleanup_json_ json_t *annotations = json_object();
        if (cfg->labels) {
                const char *k;
                json_t *v;
                json_object_foreach(cfg->labels, k, v)
                        if (json_is_string(v))
                                json_object_set(annotations, k, v);
        }
        if (cfg->stop_signal)
                json_object_set_new(annotations, "org.opencontainers.image.stopSignal", json_string(cfg->stop_signal));
        if (cfg->exposed_ports && json_object_size(cfg->exposed_ports)) {
                /* Sorted: jansson iterates in insertion order, keep it stable. */
                size_t len = 0;
                const char *k;
                json_t *v;
                json_object_foreach(cfg->exposed_ports, k, v)
                        len += strlen(k) + 1;
                _cleanup_free_ char *ports = calloc(1, len + 1);
                if (!ports)
                        return silo_error_set(err, ENOMEM, "spec");
                json_object_foreach(cfg->exposed_ports, k, v) {
                        if (*ports)
                                strcat(ports, ",");
                        strcat(ports, k);
                }
                json_object_set_new(annotations, "org.opencontainers.image.exposedPorts", json_string(ports));
        }
        if (cfg->os)
                json_object_set_new(annotations, "org.opencontainers.image.os", json_string(cfg->os));
        if (cfg->architecture)
                json_object_set_new(annotations, "org.opencontainers.image.architecture", json_string(cfg->architecture));

        json_t *spec = json_pack(
                "{s:s,"
                " s:{s:b, s:O, s:O, s:O, s:s, s:o, s:[{s:s, s:i, s:i}], s:b},"
                " s:{s:s, s:b},"
                " s:s,"
                " s:O,"
                " s:O,"
                " s:{s:[{s:s},{s:s},{s:s},{s:s},{s:s}],"
                "    s:[s,s,s,s,s,s,s,s,s,s],"
                "    s:[s,s,s,s,s,s],"
                "    s:{s:[{s:b, s:s}]}}}",
                "ociVersion", "1.1.0",
                "process", "terminal", o->terminal, "user", user, "args", args, "env", env, "cwd", cwd,
                "capabilities", default_caps(),
                "rlimits", "type", "RLIMIT_NOFILE", "hard", 1024, "soft", 1024,
                "noNewPrivileges", 0,
                "root", "path", rootfs_path ? rootfs_path : "rootfs", "readonly", o->readonly,
                "hostname", o->hostname ? o->hostname : (o->id ? o->id : "silo"),
                "mounts", mounts,
                "annotations", annotations,
                "linux", "namespaces", "type", "pid", "type", "network", "type", "ipc", "type", "uts", "type", "mount",
                "maskedPaths", "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
                "readonlyPaths", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", "/proc/sys/kernel",
                "resources", "devices", "allow", 0, "access", "rwm");
        if (!spec)
                return silo_error_set(err, ENOMEM, "spec");
        *ret = spec;
        return 0;
}

/* ---- bundles ---- */

struct volume_ctx {
        silo_store *store;
        const char *id;
};

static int volume_source(void *userdata, const char *path, char **ret, silo_error *err)
{
        struct volume_ctx *v = userdata;
        char digest[SILO_DIGEST_SIZE];
        silo_digest_buffer(path, strlen(path), digest);
        _cleanup_free_ char *rel = NULL;
        if (asprintf(&rel, "%s/volumes/%.16s", v->id, silo_digest_hex(digest)) < 0)
                return silo_error_set(err, ENOMEM, "volume");
        int r = silo_mkdir_p_at(silo_store_dir_fd(v->store, "containers"), rel, 0755, err);
        if (r < 0)
                return silo_error_prefix(err, "volume %s", path);
        if (asprintf(ret, "%s/containers/%s", silo_store_root(v->store), rel) < 0)
                return silo_error_set(err, ENOMEM, "volume");
        return 0;
}

int silo_bundle_create(silo_store *s, const char *image_ref, const char *bundle_dir,
                       const silo_bundle_options *o, silo_error *err)
{
        if (!o || !o->id)
                return silo_error_msg(err, EINVAL, "bundle: a container id is required");
        int r = silo_mkdir_p_at(AT_FDCWD, bundle_dir, 0711, err);
        if (r < 0)
                return silo_error_prefix(err, "bundle %s", bundle_dir);
        _cleanup_close_ int bfd = open(bundle_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (bfd < 0)
                return silo_error_set(err, errno, "open bundle %s", bundle_dir);
        bool made_rootfs_dir = mkdirat(bfd, "rootfs", 0755) == 0;
        if (!made_rootfs_dir && errno != EEXIST)
                return silo_error_set(err, errno, "mkdir %s/rootfs", bundle_dir);

        _cleanup_free_ char *target = NULL;
        _cleanup_free_ char *mounted = NULL;
        _cleanup_close_ int rootfd = -1;
        _cleanup_json_ json_t *spec = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_rootfs_info_ silo_rootfs_info *info = NULL;
        _cleanup_image_ silo_image *img = NULL;
        bool created = false;

        r = silo_rootfs_create(s, o->id, image_ref, err);
        if (r < 0)
                goto fail;
        created = true;
        if (asprintf(&target, "%s/rootfs", bundle_dir) < 0) {
                r = silo_error_set(err, ENOMEM, "bundle");
                goto fail;
        }
        r = o->volatile_rootfs ? silo_rootfs_mount_volatile(s, o->id, target, &mounted, err)
                               : silo_rootfs_mount(s, o->id, target, &mounted, err);
        if (r < 0)
                goto fail;
        rootfd = open(mounted, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0) {
                r = silo_error_set(err, errno, "open %s", mounted);
                goto fail;
        }
        r = silo_rootfs_info_load(s, o->id, &info, err);
        if (r < 0)
                goto fail;
        r = silo_image_load_manifest(s, info->image, &img, err);
        if (r < 0)
                goto fail;
        struct volume_ctx vc = { s, o->id };
        r = silo_bundle_spec(img->config, rootfd, "rootfs", o, volume_source, &vc, &spec, err);
        if (r < 0)
                goto fail;
        text = json_dumps(spec, JSON_INDENT(2));
        if (!text) {
                r = silo_error_set(err, ENOMEM, "config.json");
                goto fail;
        }
        r = o->no_sync ? silo_write_file_replace_at(bfd, "config.json", text, strlen(text), 0644, err)
                       : silo_write_file_atomic_at(bfd, "config.json", text, strlen(text), 0644, err);
        if (r < 0)
                goto fail;
        return 0;

fail:
        if (rootfd >= 0) {
                close(rootfd);
                rootfd = -1;
        }
        if (created)
                (void) silo_rootfs_remove(s, o->id, NULL);
        if (made_rootfs_dir)
                (void) unlinkat(bfd, "rootfs", AT_REMOVEDIR);
        return silo_error_prefix(err, "bundle %s", bundle_dir);
}

int silo_bundle_remove(silo_store *s, const char *id, const char *bundle_dir, silo_error *err)
{
        int r = silo_rootfs_remove(s, id, err);
        if (r < 0 && r != -ENOENT)
                return r;
        _cleanup_close_ int bfd = open(bundle_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (bfd >= 0) {
                (void) unlinkat(bfd, "config.json", 0);
                (void) unlinkat(bfd, "rootfs", AT_REMOVEDIR);
        }
        return 0;
}
