/* /images/...: list, inspect, remove, tag, load, backed by the image store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "image/archive.h"
#include "image/image.h"
#include "image/reference.h"
#include "silod.h"
#include "util/cleanup.h"

/* "docker.io/library/busybox:latest" -> "busybox:latest", as docker shows it. */
char *image_display_name(const char *name)
{
        if (strncmp(name, "docker.io/library/", 18) == 0)
                return strdup(name + 18);
        if (strncmp(name, "docker.io/", 10) == 0)
                return strdup(name + 10);
        return strdup(name);
}

static int64_t parse_created(const char *s)
{
        if (!s)
                return 0;
        struct tm tm = {};
        if (!strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
                return 0;
        return (int64_t) timegm(&tm);
}

static json_t *repo_tags(const silo_image *img)
{
        json_t *a = json_array();
        for (char **n = img->names; a && n && *n; n++) {
                if (strchr(*n, '@'))
                        continue;
                _cleanup_free_ char *shown = image_display_name(*n);
                if (shown)
                        json_array_append_new(a, json_string(shown));
        }
        return a;
}

static json_t *repo_digests(const silo_image *img)
{
        json_t *a = json_array();
        for (char **n = img->names; a && n && *n; n++) {
                _cleanup_free_ char *shown = image_display_name(*n);
                if (!shown)
                        continue;
                char *at = strrchr(shown, '@'), *colon = strrchr(shown, ':');
                if (at)
                        json_array_append_new(a, json_string(shown));
                else if (colon && !strchr(colon, '/')) {
                        *colon = 0;
                        char buf[512];
                        snprintf(buf, sizeof(buf), "%s@%s", shown, img->digest);
                        json_array_append_new(a, json_string(buf));
                }
        }
        return a;
}

static json_t *labels_of(const silo_image *img)
{
        return img->config->labels ? json_deep_copy(img->config->labels) : json_object();
}

json_t *images_summary(silo_store *s, silo_error *err)
{
        silo_image **v = NULL;
        size_t n = 0;
        if (silo_image_list(s, &v, &n, err) < 0)
                return NULL;
        json_t *out = json_array();
        for (size_t i = 0; i < n; i++) {
                json_int_t size = (json_int_t) silo_image_size(s, v[i]);
                json_array_append_new(out, json_pack("{s:s, s:s, s:o, s:o, s:I, s:I, s:I, s:I, s:o, s:i}", "Id",
                                                     v[i]->id, "ParentId", "", "RepoTags", repo_tags(v[i]),
                                                     "RepoDigests", repo_digests(v[i]), "Created",
                                                     (json_int_t) parse_created(v[i]->config->created), "Size", size,
                                                     "VirtualSize", size, "SharedSize", (json_int_t) -1, "Labels",
                                                     labels_of(v[i]), "Containers", -1));
        }
        silo_image_list_free(v, n);
        if (!out)
                silo_error_set(err, ENOMEM, "images");
        return out;
}

static enum MHD_Result images_list(struct silod *d, struct MHD_Connection *c)
{
        silo_error err = SILO_ERROR_INIT;
        silo_store *s = NULL;
        int r = open_store(d, &s, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        json_t *out = images_summary(s, &err);
        silo_store_free(s);
        if (!out)
                return reply_errno(c, -(err.code ? err.code : EIO), &err);
        return reply_json(c, 200, out);
}

/* Opens the store and looks name up in it. On failure the answer (404 for an
 * unknown image) is already queued: the caller returns *ret_reply. */
static int find_image(struct silod *d, struct MHD_Connection *c, const char *name, silo_store **ret_store,
                      silo_image **ret_img, enum MHD_Result *ret_reply)
{
        silo_error err = SILO_ERROR_INIT;
        silo_store *s = NULL;
        int r = open_store(d, &s, &err);
        if (r < 0) {
                *ret_reply = reply_errno(c, r, &err);
                return r;
        }
        r = silo_image_lookup(s, name, ret_img, &err);
        if (r < 0) {
                silo_store_free(s);
                *ret_reply = r == -ENOENT ? reply_error(c, 404, "No such image: %s", name) : reply_errno(c, r, &err);
                return r;
        }
        *ret_store = s;
        return 0;
}

static enum MHD_Result image_inspect(struct silod *d, struct MHD_Connection *c, const char *name)
{
        silo_error err = SILO_ERROR_INIT;
        silo_store *s = NULL;
        _cleanup_image_ silo_image *img = NULL;
        enum MHD_Result reply;
        int r = find_image(d, c, name, &s, &img, &reply);
        if (r < 0)
                return reply;
        json_t *doc = NULL;
        r = silo_image_inspect_json(s, img, &doc, &err);
        silo_store_free(s);
        if (r < 0)
                return reply_errno(c, r, &err);
        /* Docker's shape on top of the store's document. */
        json_object_set_new(doc, "RepoTags", repo_tags(img));
        json_object_set_new(doc, "RepoDigests", repo_digests(img));
        json_object_set_new(doc, "Parent", json_string(""));
        json_object_set_new(doc, "Comment", json_string(""));
        json_object_set_new(doc, "DockerVersion", json_string(""));
        json_object_set_new(doc, "VirtualSize", json_incref(json_object_get(doc, "Size")));
        json_object_set_new(doc, "GraphDriver", json_pack("{s:s, s:{}}", "Name", "overlay", "Data"));
        json_object_set_new(doc, "Metadata", json_pack("{s:s}", "LastTagTime", "0001-01-01T00:00:00Z"));
        if (!json_object_get(doc, "Config") || json_is_null(json_object_get(doc, "Config")))
                json_object_set_new(doc, "Config", json_object());
        return reply_json(c, 200, doc);
}

static enum MHD_Result image_remove(struct silod *d, struct MHD_Connection *c, const char *name)
{
        silo_error err = SILO_ERROR_INIT;
        silo_store *s = NULL;
        _cleanup_image_ silo_image *img = NULL;
        enum MHD_Result reply;
        int r = find_image(d, c, name, &s, &img, &reply);
        if (r < 0)
                return reply;
        r = silo_image_remove(s, name, query_bool(c, "force"), NULL, &err);
        if (r < 0) {
                silo_store_free(s);
                if (r == -EBUSY || r == -EEXIST)
                        return reply_error(c, 409, "conflict: unable to remove %s: %s", name, err.message);
                return reply_errno(c, r, &err);
        }
        json_t *out = json_array();
        if (silo_reference_valid(name) && strncmp(name, "sha256:", 7) != 0) {
                _cleanup_free_ char *shown = NULL;
                _cleanup_reference_ silo_reference *ref = NULL;
                if (silo_reference_parse(name, &ref, NULL) == 0) {
                        _cleanup_free_ char *full = silo_reference_name(ref);
                        shown = full ? image_display_name(full) : NULL;
                }
                json_array_append_new(out, json_pack("{s:s}", "Untagged", shown ? shown : name));
                events_emit(d, "image", "untag", img->id, json_pack("{s:s}", "name", shown ? shown : name));
        }
        _cleanup_image_ silo_image *still = NULL;
        if (silo_image_lookup(s, img->id, &still, NULL) < 0) {
                json_array_append_new(out, json_pack("{s:s}", "Deleted", img->id));
                events_emit(d, "image", "delete", img->id, json_pack("{s:s}", "name", img->id));
        }
        silo_store_free(s);
        return reply_json(c, 200, out);
}

static enum MHD_Result image_tag(struct silod *d, struct MHD_Connection *c, const char *name)
{
        const char *repo = query(c, "repo"), *tag = query(c, "tag");
        if (!repo || !*repo)
                return reply_error(c, 400, "repo: required");
        /* A tag names a repository, never a digest (docker refuses it too). */
        if (strchr(repo, '@') || (tag && strchr(tag, '@')))
                return reply_error(c, 400, "invalid reference format: refusing to create a tag with a digest: %s%s%s",
                                   repo, tag && *tag ? ":" : "", tag ? tag : "");
        _cleanup_free_ char *target = NULL;
        if (asprintf(&target, "%s:%s", repo, tag && *tag ? tag : "latest") < 0)
                return MHD_NO;
        silo_error err = SILO_ERROR_INIT;
        silo_store *s = NULL;
        int r = open_store(d, &s, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        r = silo_image_tag(s, name, target, &err);
        _cleanup_image_ silo_image *img = NULL;
        if (r == 0)
                (void) silo_image_lookup(s, target, &img, NULL);
        silo_store_free(s);
        if (r == -ENOENT)
                return reply_error(c, 404, "No such image: %s", name);
        if (r < 0)
                return reply_errno(c, r, &err);
        _cleanup_free_ char *shown = image_display_name(target);
        events_emit(d, "image", "tag", img ? img->id : name, json_pack("{s:s}", "name", shown ? shown : target));
        return reply_empty(c, 201);
}

static enum MHD_Result image_load(struct silod *d, struct MHD_Connection *c, struct request *req)
{
        if (req->upload_fd < 0)
                return reply_error(c, 400, "images/load: empty request body (expected an image archive)");
        if (lseek(req->upload_fd, 0, SEEK_SET) < 0)
                return reply_error(c, 500, "images/load: seek: %s", strerror(errno));
        silo_error err = SILO_ERROR_INIT;
        silo_store *s = NULL;
        int r = open_store(d, &s, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        silo_load_options o;
        silo_load_options_init(&o);
        char **loaded = NULL;
        r = silo_archive_load(s, req->upload_fd, &o, &loaded, &err);
        silo_store_free(s);
        if (r < 0)
                return reply_error(c, r == -ENOMEM ? 500 : 400, "%s", err.message);
        /* The JSON message stream `docker load` renders. */
        size_t cap = 256, len = 0;
        char *text = malloc(cap);
        for (char **l = loaded; text && l && *l; l++) {
                _cleanup_free_ char *shown = image_display_name(*l);
                const char *what = strncmp(*l, "sha256:", 7) == 0 ? "Loaded image ID: " : "Loaded image: ";
                events_emit(d, "image", "load", shown ? shown : *l, NULL);
                _cleanup_json_ json_t *msg = json_pack("{s:s++}", "stream", what, shown ? shown : *l, "\n");
                _cleanup_free_ char *line = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
                if (!line)
                        continue;
                size_t n = strlen(line);
                if (len + n + 2 > cap) {
                        cap = (len + n + 2) * 2;
                        char *nt = realloc(text, cap);
                        if (!nt) {
                                free(text);
                                text = NULL;
                                break;
                        }
                        text = nt;
                }
                memcpy(text + len, line, n);
                len += n;
                text[len++] = '\n';
        }
        silo_strv_free(loaded);
        if (!text)
                return MHD_NO;
        return reply_buffer(c, 200, text, len, "application/json");
}

/* GET /images/{name}/history: the config's history, newest first; entries
 * that made a layer carry its size, the newest one the image ID. */
static enum MHD_Result image_history(struct silod *d, struct MHD_Connection *c, const char *name)
{
        silo_store *s = NULL;
        _cleanup_image_ silo_image *img = NULL;
        enum MHD_Result reply;
        int r = find_image(d, c, name, &s, &img, &reply);
        if (r < 0)
                return reply;
        json_t *out = json_array();
        json_t *hist = img->config->history;
        size_t n_hist = json_is_array(hist) ? json_array_size(hist) : 0;
        size_t layer = 0;
        /* Oldest first here; reversed below. */
        json_t *rows = json_array();
        for (size_t i = 0; rows && i < n_hist; i++) {
                json_t *h = json_array_get(hist, i);
                bool empty = json_is_true(json_object_get(h, "empty_layer"));
                json_int_t size = 0;
                if (!empty && layer < img->config->n_diff_ids) {
                        uint64_t sz = 0;
                        if (silo_store_layer_size(s, img->config->diff_ids[layer], &sz, NULL) < 0 || sz == 0)
                                sz = layer < img->manifest->n_layers ? (uint64_t) img->manifest->layers[layer].size : 0;
                        size = (json_int_t) sz;
                        layer++;
                }
                const char *by = json_string_value(json_object_get(h, "created_by"));
                const char *comment = json_string_value(json_object_get(h, "comment"));
                json_array_append_new(rows, json_pack("{s:s, s:I, s:s, s:n, s:I, s:s}", "Id", "<missing>", "Created",
                                                      (json_int_t) parse_created(json_string_value(
                                                              json_object_get(h, "created"))),
                                                      "CreatedBy", by ? by : "", "Tags", "Size", size, "Comment",
                                                      comment ? comment : ""));
        }
        /* Layers the history does not describe (images built by other tools). */
        for (; rows && layer < img->config->n_diff_ids; layer++) {
                uint64_t sz = 0;
                silo_store_layer_size(s, img->config->diff_ids[layer], &sz, NULL);
                json_array_append_new(rows, json_pack("{s:s, s:I, s:s, s:n, s:I, s:s}", "Id", "<missing>", "Created",
                                                      (json_int_t) parse_created(img->config->created), "CreatedBy",
                                                      "", "Tags", "Size", (json_int_t) sz, "Comment", ""));
        }
        silo_store_free(s);
        for (size_t i = json_array_size(rows); out && i > 0; i--)
                json_array_append(out, json_array_get(rows, i - 1));
        json_decref(rows);
        json_t *top = json_array_get(out, 0);
        if (top) {
                json_object_set_new(top, "Id", json_string(img->id));
                json_object_set_new(top, "Tags", repo_tags(img));
        }
        return reply_json(c, 200, out);
}

/* POST /images/prune: dangling (unnamed) images, or with the filter
 * dangling=false every image no container uses; then GC. */
static enum MHD_Result images_prune(struct silod *d, struct MHD_Connection *c)
{
        bool all = false;
        const char *f = query(c, "filters");
        if (f && *f) {
                _cleanup_json_ json_t *filters = json_loads(f, 0, NULL);
                if (!json_is_object(filters))
                        return reply_error(c, 400, "filters: invalid JSON");
                const char *key;
                json_t *v;
                json_object_foreach(filters, key, v) {
                        if (strcmp(key, "dangling") != 0)
                                return reply_error(c, 501, "filters: '%s' is not supported by image prune", key);
                        /* ["false"] or {"false": true} */
                        json_t *x = json_is_array(v) ? json_array_get(v, 0) : NULL;
                        const char *val = x ? json_string_value(x) : NULL;
                        if (!val && json_is_object(v))
                                val = json_object_iter_key(json_object_iter(v));
                        if (val && (strcmp(val, "false") == 0 || strcmp(val, "0") == 0))
                                all = true;
                }
        }
        silo_error err = SILO_ERROR_INIT;
        silo_store *s = NULL;
        int r = open_store(d, &s, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        silo_image **before = NULL;
        size_t n_before = 0;
        r = silo_image_list(s, &before, &n_before, &err);
        silo_gc_stats st = {};
        if (r == 0)
                r = silo_image_prune(s, all, &st, &err);
        json_t *deleted = json_array();
        for (size_t i = 0; r == 0 && i < n_before; i++) {
                _cleanup_image_ silo_image *still = NULL;
                if (silo_image_lookup(s, before[i]->digest, &still, NULL) == 0)
                        continue;
                for (char **name = before[i]->names; name && *name; name++) {
                        _cleanup_free_ char *shown = image_display_name(*name);
                        json_array_append_new(deleted, json_pack("{s:s}", "Untagged", shown ? shown : *name));
                        events_emit(d, "image", "untag", before[i]->id, json_pack("{s:s}", "name", shown ? shown : *name));
                }
                json_array_append_new(deleted, json_pack("{s:s}", "Deleted", before[i]->id));
                events_emit(d, "image", "delete", before[i]->id, json_pack("{s:s}", "name", before[i]->id));
        }
        silo_image_list_free(before, n_before);
        silo_store_free(s);
        if (r < 0) {
                json_decref(deleted);
                return reply_errno(c, r, &err);
        }
        char reclaimed[32];
        snprintf(reclaimed, sizeof(reclaimed), "%llu", (unsigned long long) st.bytes);
        events_emit(d, "image", "prune", "", json_pack("{s:s}", "reclaimed", reclaimed));
        return reply_json(c, 200, json_pack("{s:o, s:I}", "ImagesDeleted", deleted, "SpaceReclaimed",
                                            (json_int_t) st.bytes));
}

struct values {
        const char *key;
        char **v;
        size_t n;
        bool failed;
};

static enum MHD_Result collect_value(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
        (void) kind;
        struct values *x = cls;
        if (!key || strcmp(key, x->key) != 0 || !value || !*value)
                return MHD_YES;
        if (x->n >= 1024) {
                x->failed = true;
                return MHD_NO;
        }
        char **nv = realloc(x->v, (x->n + 2) * sizeof(char *));
        if (!nv) {
                x->failed = true;
                return MHD_NO;
        }
        x->v = nv;
        x->v[x->n] = strdup(value);
        x->v[x->n + 1] = NULL;
        if (!x->v[x->n]) {
                x->failed = true;
                return MHD_NO;
        }
        x->n++;
        return MHD_YES;
}

/* Every value of a repeated query parameter (?names=a&names=b). */
static char **query_all(struct MHD_Connection *c, const char *key)
{
        struct values x = { .key = key };
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_value, &x);
        if (x.failed) {
                silo_strv_free(x.v);
                return NULL;
        }
        return x.v;
}

static bool ends_with(const char *s, const char *suffix, size_t *ret_prefix)
{
        size_t n = strlen(s), m = strlen(suffix);
        if (n <= m || strcmp(s + n - m, suffix) != 0)
                return false;
        *ret_prefix = n - m;
        return true;
}

enum MHD_Result handle_images(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                              const char *path)
{
        bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
        if (get && strcmp(path, "json") == 0)
                return images_list(d, c);
        if (post && strcmp(path, "load") == 0)
                return image_load(d, c, req);
        size_t n;
        if (get && ends_with(path, "/json", &n)) {
                _cleanup_free_ char *name = strndup(path, n);
                return name ? image_inspect(d, c, name) : MHD_NO;
        }
        if (post && ends_with(path, "/tag", &n)) {
                _cleanup_free_ char *name = strndup(path, n);
                return name ? image_tag(d, c, name) : MHD_NO;
        }
        if (post && strcmp(path, "create") == 0)
                return image_create(d, c, req);
        if (post && strcmp(path, "prune") == 0)
                return images_prune(d, c);
        if (get && strcmp(path, "get") == 0)
                return image_save(d, c, query_all(c, "names"));
        if (get && ends_with(path, "/get", &n)) {
                char **names = calloc(2, sizeof(char *));
                if (names && !(names[0] = strndup(path, n))) {
                        free(names);
                        names = NULL;
                }
                return names ? image_save(d, c, names) : MHD_NO;
        }
        if (get && ends_with(path, "/history", &n)) {
                _cleanup_free_ char *name = strndup(path, n);
                return name ? image_history(d, c, name) : MHD_NO;
        }
        if (post && ends_with(path, "/push", &n)) {
                _cleanup_free_ char *name = strndup(path, n);
                return name ? image_push(d, c, name) : MHD_NO;
        }
        if (strcmp(method, "DELETE") == 0 && *path)
                return image_remove(d, c, path);
        return reply_no_route(c, method, "/images/%s", path);
}
