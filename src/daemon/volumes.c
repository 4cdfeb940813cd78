/* Named and anonymous volumes (the "local" driver) and /volumes/...
 *
 *   STATE/volumes/<name>/volume.json   {Name, Driver, Mountpoint, CreatedAt, Labels, Options, Scope, Anonymous}
 *   STATE/volumes/<name>/_data/        what containers mount
 *
 * A volume is created in a ".new-*" directory and renamed into place, and
 * removed by renaming it to ".old-*" first, so a crash never leaves a
 * half-made volume under its name; leftovers are swept when volumes are
 * listed.  A volume is in use while any container's record (running or not)
 * lists it in MountPoints. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "engine/engine.h"
#include "silod.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define VOLUME_META "volume.json"
#define COPY_DEPTH_MAX 64
#define COPY_ENTRIES_MAX 200000
#define VOLUMES_MAX 100000

bool volume_name_valid(const char *name)
{
        size_t n = strlen(name);
        if (n < 2 || n > 255)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
                if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
                        return false;
        }
        return true;
}

static int volumes_dir(struct silod *d, silo_error *err)
{
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/volumes", d->state) < 0)
                return silo_error_set(err, ENOMEM, "volumes");
        int r = silo_mkdir_p_at(AT_FDCWD, path, 0700, err);
        if (r < 0)
                return r;
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? silo_error_set(err, errno, "open %s", path) : fd;
}

static int volume_load(struct silod *d, int vfd, const char *name, json_t **ret, silo_error *err)
{
        if (!volume_name_valid(name))
                return silo_error_msg(err, ENOENT, "get %s: no such volume", name);
        _cleanup_close_ int fd = openat(vfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? silo_error_msg(err, ENOENT, "get %s: no such volume", name)
                                       : silo_error_set(err, errno, "open %s/volumes/%s", d->state, name);
        return silo_engine_read_json_at(fd, VOLUME_META, ret, err);
}

int volume_ensure(struct silod *d, const char *name, bool anonymous, char **ret_data, bool *ret_created,
                  silo_error *err)
{
        return volume_create(d, name, anonymous, NULL, ret_data, ret_created, err);
}

int volume_create(struct silod *d, const char *name, bool anonymous, json_t *labels, char **ret_data,
                  bool *ret_created, silo_error *err)
{
        if (!volume_name_valid(name))
                return silo_error_msg(err, EINVAL, "invalid volume name \"%s\"", name);
        _cleanup_close_ int vfd = volumes_dir(d, err);
        if (vfd < 0)
                return vfd;
        _cleanup_free_ char *data = NULL;
        if (asprintf(&data, "%s/volumes/%s/_data", d->state, name) < 0)
                return silo_error_set(err, ENOMEM, "volume");
        *ret_created = false;
        if (faccessat(vfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                *ret_data = TAKE_PTR(data);
                return 0;
        }
        char tmp[32] = ".new-";
        silo_random_hex(tmp + 5, 16);
        tmp[21] = 0;
        if (mkdirat(vfd, tmp, 0700) < 0)
                return silo_error_set(err, errno, "mkdir %s/volumes/%s", d->state, tmp);
        _cleanup_close_ int fd = openat(vfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        char created[48];
        silo_engine_format_time(silo_engine_now_ns(), created);
        json_t *meta = json_pack("{s:s, s:s, s:s, s:s, s:O, s:{}, s:s, s:b}", "Name", name, "Driver", "local",
                                 "Mountpoint", data, "CreatedAt", created, "Labels",
                                 json_is_object(labels) ? labels : json_null(), "Options", "Scope", "local",
                                 "Anonymous", anonymous);
        int r = fd < 0 ? silo_error_set(err, errno, "open %s", tmp) : 0;
        if (r == 0 && mkdirat(fd, "_data", 0755) < 0)
                r = silo_error_set(err, errno, "mkdir %s/_data", tmp);
        if (r == 0)
                r = meta ? silo_engine_write_json_at(fd, VOLUME_META, meta, err) : silo_error_set(err, ENOMEM, "volume");
        json_decref(meta);
        if (r == 0 && renameat2(vfd, tmp, vfd, name, RENAME_NOREPLACE) < 0) {
                /* Someone created it first: use theirs. */
                r = errno == EEXIST ? 1 : silo_error_set(err, errno, "rename %s/volumes/%s", d->state, name);
        }
        if (r != 0)
                silo_rm_rf_at(vfd, tmp, NULL);
        if (r < 0)
                return r;
        fsync(vfd);
        if (r == 0)
                events_emit(d, "volume", "create", name, json_pack("{s:s}", "driver", "local"));
        *ret_created = r == 0;
        *ret_data = TAKE_PTR(data);
        return 0;
}

/* ---- copying the image's content into a new volume ---- */

static int copy_tree(int src, int dst, int depth, unsigned *budget, silo_error *err);

static int copy_entry(int src, int dst, const char *name, int depth, unsigned *budget, silo_error *err)
{
        struct stat st;
        if (fstatat(src, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return silo_error_set(err, errno, "volume copy: stat %s", name);
        if (S_ISDIR(st.st_mode)) {
                if (mkdirat(dst, name, 0700) < 0 && errno != EEXIST)
                        return silo_error_set(err, errno, "volume copy: mkdir %s", name);
                _cleanup_close_ int s = openat(src, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                _cleanup_close_ int d = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (s < 0 || d < 0)
                        return silo_error_set(err, errno, "volume copy: open %s", name);
                int r = copy_tree(s, d, depth + 1, budget, err);
                if (r < 0)
                        return r;
                if (fchown(d, st.st_uid, st.st_gid) < 0 || fchmod(d, st.st_mode & 07777) < 0)
                        return silo_error_set(err, errno, "volume copy: chown %s", name);
                return 0;
        }
        if (S_ISREG(st.st_mode)) {
                _cleanup_close_ int s = openat(src, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                _cleanup_close_ int d = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (s < 0 || d < 0)
                        return silo_error_set(err, errno, "volume copy: open %s", name);
                char buf[65536];
                for (;;) {
                        ssize_t n = read(s, buf, sizeof(buf));
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                return silo_error_set(err, errno, "volume copy: read %s", name);
                        if (n == 0)
                                break;
                        for (ssize_t off = 0; off < n; ) {
                                ssize_t w = write(d, buf + off, (size_t) (n - off));
                                if (w < 0 && errno == EINTR)
                                        continue;
                                if (w < 0)
                                        return silo_error_set(err, errno, "volume copy: write %s", name);
                                off += w;
                        }
                }
                if (fchown(d, st.st_uid, st.st_gid) < 0 || fchmod(d, st.st_mode & 07777) < 0)
                        return silo_error_set(err, errno, "volume copy: chown %s", name);
                return 0;
        }
        if (S_ISLNK(st.st_mode)) {
                char target[PATH_MAX];
                ssize_t n = readlinkat(src, name, target, sizeof(target) - 1);
                if (n < 0)
                        return silo_error_set(err, errno, "volume copy: readlink %s", name);
                target[n] = 0;
                if (symlinkat(target, dst, name) < 0 ||
                    fchownat(dst, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
                        return silo_error_set(err, errno, "volume copy: symlink %s", name);
                return 0;
        }
        /* Device nodes, fifos, sockets: recreated as they are. */
        if (mknodat(dst, name, st.st_mode, st.st_rdev) < 0 && errno != EPERM)
                return silo_error_set(err, errno, "volume copy: mknod %s", name);
        return 0;
}

static int copy_tree(int src, int dst, int depth, unsigned *budget, silo_error *err)
{
        if (depth > COPY_DEPTH_MAX)
                return silo_error_msg(err, ELOOP, "volume copy: deeper than %d directories", COPY_DEPTH_MAX);
        int fd = dup(src);
        if (fd < 0)
                return silo_error_set(err, errno, "dup");
        _cleanup_closedir_ DIR *dir = fdopendir(fd);
        if (!dir) {
                close(fd);
                return silo_error_set(err, errno, "volume copy: opendir");
        }
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if ((*budget)-- == 0)
                        return silo_error_msg(err, E2BIG, "volume copy: more than %d entries", COPY_ENTRIES_MAX);
                int r = copy_entry(src, dst, de->d_name, depth, budget, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool dir_empty(int fd)
{
        int dup_fd = dup(fd);
        if (dup_fd < 0)
                return false;
        _cleanup_closedir_ DIR *dir = fdopendir(dup_fd);
        if (!dir) {
                close(dup_fd);
                return false;
        }
        struct dirent *de;
        while ((de = readdir(dir)))
                if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                        return false;
        return true;
}

int volume_copy_up(const char *data, int rootfd, const char *path, silo_error *err)
{
        _cleanup_close_ int dst = open(data, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dst < 0)
                return silo_error_set(err, errno, "open %s", data);
        if (!dir_empty(dst))
                return 0;
        silo_error e = SILO_ERROR_INIT;
        _cleanup_close_ int src = silo_open_in_root(rootfd, path, O_RDONLY | O_DIRECTORY, 0, &e);
        if (src < 0)
                return 0;       /* nothing in the image there */
        struct stat st;
        if (fstat(src, &st) < 0)
                return silo_error_set(err, errno, "stat %s", path);
        unsigned budget = COPY_ENTRIES_MAX;
        int r = copy_tree(src, dst, 0, &budget, err);
        if (r < 0)
                return silo_error_prefix(err, "volume at %s", path);
        /* The volume's root takes the image directory's owner and mode. */
        if (fchown(dst, st.st_uid, st.st_gid) < 0 || fchmod(dst, st.st_mode & 07777) < 0)
                return silo_error_set(err, errno, "chown %s", data);
        return 0;
}

/* ---- use and removal ---- */

/* Container ids (comma-separated) whose record mounts the volume; lock held. */
static bool volume_users_locked(struct silod *d, const char *name, char *ret_ids, size_t size)
{
        bool used = false;
        ret_ids[0] = 0;
        for (struct ctr *ct = d->containers; ct; ct = ct->next) {
                size_t i;
                json_t *mp;
                json_array_foreach(json_object_get(ct->record, "MountPoints"), i, mp) {
                        const char *n = json_string_value(json_object_get(mp, "Name"));
                        if (n && strcmp(n, name) == 0) {
                                size_t len = strlen(ret_ids);
                                snprintf(ret_ids + len, size - len, "%s%.64s", used ? ", " : "", ct->id);
                                used = true;
                                break;
                        }
                }
        }
        return used;
}

/* A volume some container lists cannot go, with or without force (force
 * only makes a missing volume no error, as in docker). */
static int volume_remove(struct silod *d, int vfd, const char *name, silo_error *err)
{
        _cleanup_json_ json_t *meta = NULL;
        int r = volume_load(d, vfd, name, &meta, err);
        if (r < 0)
                return r;
        char users[512];
        pthread_mutex_lock(&d->lock);
        bool used = volume_users_locked(d, name, users, sizeof(users));
        char tmp[32] = ".old-";
        if (!used) {
                silo_random_hex(tmp + 5, 16);
                tmp[21] = 0;
                r = renameat(vfd, name, vfd, tmp) < 0 ? silo_error_set(err, errno, "remove %s", name) : 0;
        }
        pthread_mutex_unlock(&d->lock);
        if (used)
                return silo_error_msg(err, EBUSY, "remove %s: volume is in use - [%s]", name, users);
        if (r < 0)
                return r;
        events_emit(d, "volume", "destroy", name, json_pack("{s:s}", "driver", "local"));
        return silo_rm_rf_at(vfd, tmp, err);
}

void volumes_remove_anonymous(struct silod *d, json_t *mount_points)
{
        _cleanup_close_ int vfd = -1;
        size_t i;
        json_t *mp;
        json_array_foreach(mount_points, i, mp) {
                const char *n = json_string_value(json_object_get(mp, "Name"));
                if (!n || !json_is_true(json_object_get(mp, "Anonymous")))
                        continue;
                if (vfd < 0 && (vfd = volumes_dir(d, NULL)) < 0)
                        return;
                volume_remove(d, vfd, n, NULL);
        }
}

/* ---- the API ---- */

static json_t *volume_doc(json_t *meta)
{
        json_t *doc = json_deep_copy(meta);
        json_object_del(doc, "Anonymous");
        return doc;
}

static bool label_filter_match(json_t *filters, json_t *meta)
{
        json_t *f = json_object_get(filters, "label");
        if (!f)
                return true;
        json_t *labels = json_object_get(meta, "Labels");
        const char *want;
        json_t *v;
        size_t i;
        json_t *list = json_is_object(f) ? NULL : f;
        if (json_is_object(f)) {
                list = json_array();
                json_object_foreach(f, want, v)
                        json_array_append_new(list, json_string(want));
        }
        bool ok = true;
        json_array_foreach(list, i, v) {
                const char *spec = json_string_value(v) ?: "";
                const char *eq = strchr(spec, '=');
                _cleanup_free_ char *key = eq ? strndup(spec, (size_t) (eq - spec)) : strdup(spec);
                json_t *have = key ? json_object_get(labels, key) : NULL;
                if (!have || (eq && strcmp(json_string_value(have) ?: "", eq + 1) != 0))
                        ok = false;
        }
        if (json_is_object(f))
                json_decref(list);
        return ok;
}

static bool filter_has(json_t *filters, const char *key, const char *value)
{
        json_t *f = json_object_get(filters, key);
        if (json_is_object(f))
                return json_object_get(f, value) != NULL;
        size_t i;
        json_t *v;
        json_array_foreach(f, i, v)
                if (strcmp(json_string_value(v) ?: "", value) == 0)
                        return true;
        return false;
}

/* Every volume that passes the filters; `prune` limits it to unused ones
 * (anonymous only unless all=true, as API 1.42+ does). */
static int volumes_scan(struct silod *d, int vfd, json_t *filters, bool prune, json_t **ret, silo_error *err)
{
        int fd = dup(vfd);
        _cleanup_closedir_ DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
        if (!dir) {
                if (fd >= 0)
                        close(fd);
                return silo_error_set(err, errno, "open %s/volumes", d->state);
        }
        _cleanup_json_ json_t *out = json_array();
        struct dirent *de;
        unsigned n = 0;
        while ((de = readdir(dir)) && n++ < VOLUMES_MAX) {
                if (de->d_name[0] == '.') {
                        /* Leftovers of a create or removal that crashed. */
                        if (strncmp(de->d_name, ".old-", 5) == 0)
                                silo_rm_rf_at(vfd, de->d_name, NULL);
                        continue;
                }
                _cleanup_json_ json_t *meta = NULL;
                if (volume_load(d, vfd, de->d_name, &meta, NULL) < 0)
                        continue;
                char users[80];
                pthread_mutex_lock(&d->lock);
                bool used = volume_users_locked(d, de->d_name, users, sizeof(users));
                pthread_mutex_unlock(&d->lock);
                json_t *name_f = json_object_get(filters, "name");
                if (name_f) {
                        bool hit = false;
                        const char *k;
                        json_t *v;
                        size_t i;
                        if (json_is_object(name_f))
                                json_object_foreach(name_f, k, v) hit |= strstr(de->d_name, k) != NULL;
                        else
                                json_array_foreach(name_f, i, v) hit |= strstr(de->d_name, json_string_value(v) ?: "") != NULL;
                        if (!hit)
                                continue;
                }
                if ((filter_has(filters, "dangling", "true") || filter_has(filters, "dangling", "1")) && used)
                        continue;
                if ((filter_has(filters, "dangling", "false") || filter_has(filters, "dangling", "0")) && !used)
                        continue;
                if (!label_filter_match(filters, meta))
                        continue;
                if (prune && (used || (!json_is_true(json_object_get(meta, "Anonymous")) &&
                                       !filter_has(filters, "all", "true") && !filter_has(filters, "all", "1"))))
                        continue;
                json_array_append_new(out, volume_doc(meta));
        }
        *ret = TAKE_PTR(out);
        return 0;
}

static int parse_filters(struct MHD_Connection *c, json_t **ret, silo_error *err)
{
        *ret = NULL;
        const char *text = query(c, "filters");
        if (!text || !*text)
                return 0;
        int r = silo_json_load_buffer(text, strlen(text), "filters", ret, err);
        if (r == 0 && !json_is_object(*ret)) {
                json_decref(*ret);
                *ret = NULL;
                return silo_error_msg(err, EINVAL, "filters: expected an object");
        }
        return r;
}

struct create_json {
        const char *name, *driver;
        json_t *driver_opts, *labels;
};

static const struct silo_json_field create_fields[] = {
        { "Name", SILO_JSON_STRING, offsetof(struct create_json, name), SILO_JSON_NULLABLE },
        { "Driver", SILO_JSON_STRING, offsetof(struct create_json, driver), SILO_JSON_NULLABLE },
        { "DriverOpts", SILO_JSON_OBJECT, offsetof(struct create_json, driver_opts), SILO_JSON_NULLABLE },
        { "Labels", SILO_JSON_OBJECT, offsetof(struct create_json, labels), SILO_JSON_NULLABLE },
        {}
};

static enum MHD_Result api_create(struct silod *d, struct MHD_Connection *c, struct request *req)
{
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *body = NULL;
        struct create_json j = {};
        int r = request_json(req, &body, &err);
        if (r == 0)
                r = silo_json_dispatch(body, "", create_fields, &j, &err);
        if (r < 0)
                return reply_error(c, 400, "%s", err.message);
        if (j.driver && *j.driver && strcmp(j.driver, "local") != 0)
                return reply_error(c, 400, "Driver: volume driver \"%s\" is not available (only \"local\" is)",
                                   j.driver);
        if (json_object_size(j.driver_opts))
                return reply_error(c, 400, "DriverOpts: options of the local driver (type, device, o) are not "
                                           "supported by silod");
        const char *k;
        json_t *v;
        json_object_foreach(j.labels, k, v)
                if (!json_is_string(v))
                        return reply_error(c, 400, "Labels.%s: expected a string, got %s", k, silo_json_type_name(v));
        char anon[65];
        if (!j.name || !*j.name) {
                silo_random_hex(anon, 64);
                anon[64] = 0;
                j.name = anon;
        }
        if (!volume_name_valid(j.name))
                return reply_error(c, 400, "create %s: \"%s\" includes invalid characters for a local volume name, "
                                           "only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed", j.name, j.name);
        _cleanup_free_ char *data = NULL;
        bool created;
        r = volume_create(d, j.name, j.name == anon, j.labels, &data, &created, &err);
        _cleanup_close_ int vfd = r == 0 ? volumes_dir(d, &err) : -1;
        _cleanup_json_ json_t *meta = NULL;
        if (r == 0)
                r = vfd < 0 ? vfd : volume_load(d, vfd, j.name, &meta, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        return reply_json(c, 201, volume_doc(meta));
}

enum MHD_Result handle_volumes(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                               const char *path)
{
        bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
        silo_error err = SILO_ERROR_INIT;
        if (post && strcmp(path, "/create") == 0)
                return api_create(d, c, req);
        _cleanup_close_ int vfd = volumes_dir(d, &err);
        if (vfd < 0)
                return reply_errno(c, vfd, &err);
        _cleanup_json_ json_t *filters = NULL;
        if ((get && !*path) || (post && strcmp(path, "/prune") == 0)) {
                int r = parse_filters(c, &filters, &err);
                if (r < 0)
                        return reply_error(c, 400, "invalid filters: %s", err.message);
                _cleanup_json_ json_t *list = NULL;
                r = volumes_scan(d, vfd, filters, post, &list, &err);
                if (r < 0)
                        return reply_errno(c, r, &err);
                if (get)
                        return reply_json(c, 200, json_pack("{s:O, s:[]}", "Volumes", list, "Warnings"));
                json_t *deleted = json_array();
                size_t i;
                json_t *v;
                json_array_foreach(list, i, v) {
                        const char *name = json_string_value(json_object_get(v, "Name"));
                        if (volume_remove(d, vfd, name, NULL) == 0)
                                json_array_append_new(deleted, json_string(name));
                }
                return reply_json(c, 200, json_pack("{s:o, s:i}", "VolumesDeleted", deleted, "SpaceReclaimed", 0));
        }
        if (path[0] != '/' || !path[1] || strchr(path + 1, '/'))
                return reply_no_route(c, method, "/volumes%s", path);
        const char *name = path + 1;
        if (get) {
                _cleanup_json_ json_t *meta = NULL;
                int r = volume_load(d, vfd, name, &meta, &err);
                if (r < 0)
                        return reply_errno(c, r, &err);
                return reply_json(c, 200, volume_doc(meta));
        }
        if (strcmp(method, "DELETE") == 0) {
                int r = volume_remove(d, vfd, name, &err);
                if (r == -ENOENT && query_bool(c, "force"))
                        return reply_empty(c, 204);
                if (r < 0)
                        return reply_errno(c, r, &err);
                return reply_empty(c, 204);
        }
        return reply_no_route(c, method, "/volumes%s", path);
}
