#include "storage/index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define INDEX_FILE "images.json"
#define INDEX_MAX (64u << 20)
#define NAME_MAX_LEN 512

static void entry_clear(silo_index_entry *e)
{
        silo_strv_free(e->names);
        e->names = NULL;
}

silo_index *silo_index_free(silo_index *idx)
{
        if (!idx)
                return NULL;
        for (size_t i = 0; i < idx->n; i++)
                entry_clear(&idx->entries[i]);
        free(idx->entries);
        free(idx);
        return NULL;
}

size_t silo_index_entry_n_names(const silo_index_entry *e)
{
        size_t n = 0;
        while (e->names && e->names[n])
                n++;
        return n;
}

silo_index_entry *silo_index_find_name(silo_index *idx, const char *name)
{
        for (size_t i = 0; i < idx->n; i++)
                for (char **p = idx->entries[i].names; p && *p; p++)
                        if (!strcmp(*p, name))
                                return &idx->entries[i];
        return NULL;
}

silo_index_entry *silo_index_find_digest(silo_index *idx, const char *digest)
{
        for (size_t i = 0; i < idx->n; i++)
                if (!strcmp(idx->entries[i].digest, digest))
                        return &idx->entries[i];
        return NULL;
}

bool silo_index_remove_name(silo_index *idx, const char *name)
{
        bool found = false;
        for (size_t i = 0; i < idx->n; i++) {
                char **names = idx->entries[i].names;
                for (size_t j = 0; names && names[j]; ) {
                        if (!strcmp(names[j], name)) {
                                free(names[j]);
                                memmove(&names[j], &names[j + 1], (silo_index_entry_n_names(&idx->entries[i]) - j) * sizeof(char *));
                                found = true;
                        } else
                                j++;
                }
        }
        return found;
}

void silo_index_remove_entry(silo_index *idx, silo_index_entry *e)
{
        size_t i = (size_t) (e - idx->entries);
        if (i >= idx->n)
                return;
        entry_clear(e);
        memmove(&idx->entries[i], &idx->entries[i + 1], (idx->n - i - 1) * sizeof(*e));
        idx->n--;
}

int silo_index_add_name(silo_index *idx, silo_index_entry *e, const char *name, silo_error *err)
{
        if (strlen(name) > NAME_MAX_LEN)
                return silo_error_msg(err, ENAMETOOLONG, "image name too long (%zu bytes)", strlen(name));
        for (char **p = e->names; p && *p; p++)
                if (!strcmp(*p, name))
                        return 0;
        silo_index_remove_name(idx, name);
        size_t n = silo_index_entry_n_names(e);
        char **v = realloc(e->names, (n + 2) * sizeof(char *));
        if (!v)
                return silo_error_set(err, ENOMEM, "index");
        e->names = v;
        v[n] = strdup(name);
        v[n + 1] = NULL;
        if (!v[n])
                return silo_error_set(err, ENOMEM, "index");
        return 0;
}

static silo_index_entry *index_append(silo_index *idx, const char *digest, const char *config)
{
        if (idx->n == idx->cap) {
                size_t cap = idx->cap ? idx->cap * 2 : 16;
                silo_index_entry *v = realloc(idx->entries, cap * sizeof(*v));
                if (!v)
                        return NULL;
                idx->entries = v;
                idx->cap = cap;
        }
        silo_index_entry e = { .added = (int64_t) time(NULL) };
        e.names = calloc(1, sizeof(char *));
        if (!e.names)
                return NULL;
        /* Both validated by the caller: exactly SILO_DIGEST_STRLEN bytes. */
        snprintf(e.digest, sizeof(e.digest), "%s", digest);
        snprintf(e.config, sizeof(e.config), "%s", config);
        idx->entries[idx->n] = e;
        return &idx->entries[idx->n++];
}

int silo_index_add(silo_index *idx, const char *digest, const char *config, const char *name,
                   silo_index_entry **ret, silo_error *err)
{
        int r = silo_digest_check(digest, "image manifest", err);
        if (r < 0)
                return r;
        if ((r = silo_digest_check(config, "image config", err)) < 0)
                return r;

        silo_index_entry *e = silo_index_find_digest(idx, digest);
        if (!e) {
                e = index_append(idx, digest, config);
                if (!e)
                        return silo_error_set(err, ENOMEM, "index");
        }
        if (name) {
                r = silo_index_add_name(idx, e, name, err);
                if (r < 0)
                        return r;
        }
        if (ret)
                *ret = e;
        return 0;
}

struct entry_json {
        const char *digest;
        const char *config;
        int64_t added;
        json_t *names;
};

static const struct silo_json_field entry_fields[] = {
        { "digest", SILO_JSON_STRING, offsetof(struct entry_json, digest), SILO_JSON_REQUIRED, NULL },
        { "config", SILO_JSON_STRING, offsetof(struct entry_json, config), SILO_JSON_REQUIRED, NULL },
        { "added", SILO_JSON_INT64, offsetof(struct entry_json, added), 0, NULL },
        { "names", SILO_JSON_ARRAY, offsetof(struct entry_json, names), 0, NULL },
        {}
};

static int index_parse(json_t *root, silo_index *idx, silo_error *err)
{
        json_t *images = json_object_get(root, "images");
        if (!json_is_array(images))
                return silo_error_msg(err, EINVAL, "images: expected an array");
        for (size_t i = 0; i < json_array_size(images); i++) {
                char path[SILO_JSON_PATH_MAX];
                silo_json_path_index(path, "images", i);
                struct entry_json ej = {};
                int r = silo_json_dispatch(json_array_get(images, i), path, entry_fields, &ej, err);
                if (r < 0)
                        return r;
                silo_index_entry *e;
                r = silo_index_add(idx, ej.digest, ej.config, NULL, &e, err);
                if (r < 0)
                        return silo_error_prefix(err, "%s", path);
                e->added = ej.added;
                for (size_t k = 0; k < json_array_size(ej.names); k++) {
                        json_t *n = json_array_get(ej.names, k);
                        if (!json_is_string(n))
                                return silo_error_msg(err, EINVAL, "%s.names[%zu]: expected a string", path, k);
                        r = silo_index_add_name(idx, e, json_string_value(n), err);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int silo_index_load(silo_store *s, silo_index **ret, silo_error *err)
{
        _cleanup_index_ silo_index *idx = calloc(1, sizeof(*idx));
        if (!idx)
                return silo_error_set(err, ENOMEM, "index");

        _cleanup_json_ json_t *root = NULL;
        int r = silo_json_load_file_at(silo_store_root_fd(s), INDEX_FILE, INDEX_MAX, &root, err);
        if (r == -ENOENT) {
                silo_error_clear(err);
                *ret = TAKE_PTR(idx);
                return 0;
        }
        if (r < 0)
                return silo_error_prefix(err, "%s/" INDEX_FILE, silo_store_root(s));
        r = index_parse(root, idx, err);
        if (r < 0)
                return silo_error_prefix(err, "%s/" INDEX_FILE, silo_store_root(s));
        *ret = TAKE_PTR(idx);
        return 0;
}

static int index_save(silo_store *s, silo_index *idx, silo_error *err)
{
        _cleanup_json_ json_t *root = json_object();
        json_t *images = json_array();
        if (!root || !images || json_object_set_new(root, "version", json_integer(1)) < 0 ||
            json_object_set_new(root, "images", images) < 0)
                return silo_error_set(err, ENOMEM, "index");
        for (size_t i = 0; i < idx->n; i++) {
                silo_index_entry *e = &idx->entries[i];
                json_t *names = json_array();
                for (char **p = e->names; p && *p; p++)
                        json_array_append_new(names, json_string(*p));
                json_t *o = json_pack("{s:s, s:s, s:I, s:o}", "digest", e->digest, "config", e->config,
                                      "added", (json_int_t) e->added, "names", names);
                if (!o || json_array_append_new(images, o) < 0)
                        return silo_error_set(err, ENOMEM, "index");
        }
        _cleanup_free_ char *text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
        if (!text)
                return silo_error_set(err, ENOMEM, "index");
        return silo_write_file_atomic_at(silo_store_root_fd(s), INDEX_FILE, text, strlen(text), 0600, err);
}

int silo_index_update(silo_store *s, silo_index_update_fn fn, void *userdata, silo_error *err)
{
        _cleanup_close_ int lock = openat(silo_store_root_fd(s), "index.lock",
                                          O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lock < 0)
                return silo_error_set(err, errno, "open %s/index.lock", silo_store_root(s));
        while (flock(lock, LOCK_EX) < 0)
                if (errno != EINTR)
                        return silo_error_set(err, errno, "lock %s/index.lock", silo_store_root(s));

        _cleanup_index_ silo_index *idx = NULL;
        int r = silo_index_load(s, &idx, err);
        if (r < 0)
                return r;
        r = fn(idx, userdata, err);
        if (r != 0)
                return r < 0 ? r : 0;
        return index_save(s, idx, err);
}
