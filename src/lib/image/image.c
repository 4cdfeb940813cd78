#include "image/image.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/reference.h"
#include "image/rootfs.h"
#include "storage/index.h"
#include "util/cleanup.h"

silo_image *silo_image_free(silo_image *img)
{
        if (!img)
                return NULL;
        silo_strv_free(img->names);
        silo_manifest_free(img->manifest);
        silo_image_config_free(img->config);
        free(img);
        return NULL;
}

void silo_image_list_free(silo_image **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                silo_image_free(v[i]);
        free(v);
}

static char **strv_copy(char **v)
{
        size_t n = 0;
        while (v && v[n])
                n++;
        char **c = calloc(n + 1, sizeof(char *));
        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (!(c[i] = strdup(v[i]))) {
                        silo_strv_free(c);
                        return NULL;
                }
        return c;
}

int silo_image_load_manifest(silo_store *s, const char *digest, silo_image **ret, silo_error *err)
{
        _cleanup_image_ silo_image *img = calloc(1, sizeof(*img));
        if (!img)
                return silo_error_set(err, ENOMEM, "image");
        int r = silo_digest_check(digest, "manifest", err);
        if (r < 0)
                return r;
        memcpy(img->digest, digest, SILO_DIGEST_SIZE);

        _cleanup_free_ char *buf = NULL;
        size_t len;
        r = silo_store_blob_read(s, digest, SILO_MANIFEST_MAX, &buf, &len, err);
        if (r < 0)
                return silo_error_prefix(err, "manifest");
        r = silo_manifest_parse(buf, len, &img->manifest, err);
        if (r < 0)
                return silo_error_prefix(err, "%s", digest);

        _cleanup_free_ char *cbuf = NULL;
        size_t clen;
        const silo_descriptor *cd = &img->manifest->config;
        r = silo_store_blob_read(s, cd->digest, SILO_CONFIG_MAX, &cbuf, &clen, err);
        if (r < 0)
                return silo_error_prefix(err, "image config");
        if ((int64_t) clen != cd->size)
                return silo_error_msg(err, EBADMSG, "image config %s: the manifest says %lld bytes, the blob has %zu",
                                      cd->digest, (long long) cd->size, clen);
        r = silo_image_config_parse(cbuf, clen, &img->config, err);
        if (r < 0)
                return silo_error_prefix(err, "%s", cd->digest);
        if (img->config->n_diff_ids != img->manifest->n_layers)
                return silo_error_msg(err, EBADMSG, "image %s: the config lists %zu diff_ids but the manifest has %zu layers",
                                      digest, img->config->n_diff_ids, img->manifest->n_layers);
        memcpy(img->id, cd->digest, SILO_DIGEST_SIZE);
        img->names = calloc(1, sizeof(char *));
        if (!img->names)
                return silo_error_set(err, ENOMEM, "image");
        *ret = TAKE_PTR(img);
        return 0;
}

static int image_from_entry(silo_store *s, const silo_index_entry *e, silo_image **ret, silo_error *err)
{
        silo_image *img = NULL;
        int r = silo_image_load_manifest(s, e->digest, &img, err);
        if (r < 0)
                return r;
        silo_strv_free(img->names);
        img->names = strv_copy(e->names);
        img->added = e->added;
        if (!img->names) {
                silo_image_free(img);
                return silo_error_set(err, ENOMEM, "image");
        }
        *ret = img;
        return 0;
}

static bool is_hex(const char *s)
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (!isxdigit((unsigned char) *s) || isupper((unsigned char) *s))
                        return false;
        return true;
}

/* Finds the index entry for ref without loading blobs. */
static int find_entry(silo_index *idx, const char *ref, silo_index_entry **ret, silo_error *err)
{
        /* A full digest: manifest digest or ID. */
        if (silo_digest_valid(ref)) {
                silo_index_entry *e = silo_index_find_digest(idx, ref);
                for (size_t i = 0; !e && i < idx->n; i++)
                        if (!strcmp(idx->entries[i].config, ref))
                                e = &idx->entries[i];
                if (!e)
                        return silo_error_msg(err, ENOENT, "image %s not found", ref);
                *ret = e;
                return 0;
        }

        silo_reference *pr = NULL;
        if (silo_reference_parse(ref, &pr, NULL) == 0) {
                _cleanup_reference_ silo_reference *r = pr;
                silo_index_entry *e = NULL;
                if (r->digest) {
                        /* name@digest: the digest decides, the name must match one of the image's repositories. */
                        e = silo_index_find_digest(idx, r->digest);
                } else {
                        _cleanup_free_ char *name = silo_reference_name(r);
                        if (!name)
                                return silo_error_set(err, ENOMEM, "lookup");
                        e = silo_index_find_name(idx, name);
                }
                if (e) {
                        *ret = e;
                        return 0;
                }
        }

        /* A short ID. */
        const char *hex = ref;
        if (!strncmp(hex, SILO_DIGEST_PREFIX, strlen(SILO_DIGEST_PREFIX)))
                hex += strlen(SILO_DIGEST_PREFIX);
        if (strlen(hex) >= 4 && strlen(hex) <= SILO_DIGEST_HEX_LEN && is_hex(hex)) {
                silo_index_entry *found = NULL;
                for (size_t i = 0; i < idx->n; i++) {
                        if (strncmp(silo_digest_hex(idx->entries[i].config), hex, strlen(hex)) != 0)
                                continue;
                        if (found && strcmp(found->config, idx->entries[i].config) != 0)
                                return silo_error_msg(err, EINVAL, "image ID prefix '%s' is ambiguous", ref);
                        found = &idx->entries[i];
                }
                if (found) {
                        *ret = found;
                        return 0;
                }
        }
        return silo_error_msg(err, ENOENT, "image '%s' not found", ref);
}

int silo_image_lookup(silo_store *s, const char *ref, silo_image **ret, silo_error *err)
{
        _cleanup_index_ silo_index *idx = NULL;
        int r = silo_index_load(s, &idx, err);
        if (r < 0)
                return r;
        silo_index_entry *e;
        r = find_entry(idx, ref, &e, err);
        if (r < 0)
                return r;
        r = image_from_entry(s, e, ret, err);
        if (r < 0)
                return silo_error_prefix(err, "image '%s'", ref);
        return 0;
}

int silo_image_list(silo_store *s, silo_image ***ret, size_t *ret_n, silo_error *err)
{
        _cleanup_index_ silo_index *idx = NULL;
        int r = silo_index_load(s, &idx, err);
        if (r < 0)
                return r;
        silo_image **v = calloc(idx->n + 1, sizeof(silo_image *));
        if (!v)
                return silo_error_set(err, ENOMEM, "list images");
        size_t n = 0;
        for (size_t i = 0; i < idx->n; i++) {
                r = image_from_entry(s, &idx->entries[i], &v[n], err);
                if (r < 0) {
                        silo_image_list_free(v, n);
                        return r;
                }
                n++;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

uint64_t silo_image_size(silo_store *s, const silo_image *img)
{
        uint64_t total = 0;
        for (size_t i = 0; i < img->manifest->n_layers; i++) {
                uint64_t size = 0;
                if (silo_store_layer_size(s, img->config->diff_ids[i], &size, NULL) < 0 || size == 0)
                        size = (uint64_t) img->manifest->layers[i].size;
                total += size;
        }
        return total;
}

int silo_image_layer_paths(silo_store *s, const silo_image *img, char ***ret, silo_error *err)
{
        size_t n = img->config->n_diff_ids;
        _cleanup_strv_ char **v = calloc(n + 1, sizeof(char *));
        if (!v)
                return silo_error_set(err, ENOMEM, "layer paths");
        for (size_t i = 0; i < n; i++) {
                const char *d = img->config->diff_ids[n - 1 - i];
                if (!silo_store_layer_exists(s, d))
                        return silo_error_msg(err, ENOENT, "layer %s of image %s is not unpacked", d, img->digest);
                int r = silo_store_layer_path(s, d, &v[i], err);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(v);
        return 0;
}

/* ---- registration ---- */

void silo_register_options_init(silo_register_options *o)
{
        *o = (silo_register_options) { .jobs = 2 };
        silo_unpack_options_init(&o->unpack);
}

struct unpack_progress {
        silo_progress *p;
        const char *digest;
        uint64_t total;
};

static void unpack_progress_cb(void *userdata, uint64_t bytes)
{
        struct unpack_progress *up = userdata;
        silo_progress_emit(up->p, SILO_PROGRESS_UNPACKING, "layer", up->digest, bytes, up->total, NULL);
}

int silo_layer_ensure(silo_store *s, const silo_descriptor *blob, const char *diff_id,
                      const silo_register_options *o, silo_error *err)
{
        if (silo_store_layer_exists(s, diff_id))
                return 0;

        silo_compression c;
        int r = silo_layer_media_type_compression(blob->media_type, &c, err);
        if (r < 0)
                return r;

        _cleanup_layer_tx_ silo_layer_tx *tx = NULL;
        r = silo_layer_tx_begin(s, diff_id, &tx, err);
        if (r < 0)
                return r;
        if (r > 0)
                return 0;       /* someone else unpacked it while we waited */

        _cleanup_close_ int fd = -1;
        r = silo_store_blob_open(s, blob->digest, &fd, err);
        if (r < 0)
                return silo_error_prefix(err, "layer");

        struct unpack_progress up = { o->progress, blob->digest, (uint64_t) blob->size };
        silo_unpack_options uo = o->unpack;
        /* Trust the bytes, not the media type: some tools label gzip as tar. */
        uo.compression = SILO_COMPRESSION_AUTO;
        (void) c;
        uo.expected_blob = blob->digest;
        uo.expected_diff_id = diff_id;
        uo.progress = o->progress ? unpack_progress_cb : NULL;
        uo.progress_userdata = &up;

        silo_unpack_stats st;
        r = silo_unpack_layer_fd(fd, silo_layer_tx_diff_fd(tx), &uo, &st, err);
        if (r < 0)
                return silo_error_prefix(err, "layer %s", blob->digest);
        r = silo_layer_tx_commit(tx, st.file_bytes, st.entries, err);
        if (r < 0)
                return r;
        silo_progress_emit(o->progress, SILO_PROGRESS_DONE, "layer", blob->digest, (uint64_t) blob->size,
                           (uint64_t) blob->size, NULL);
        return 0;
}

struct pool {
        silo_store *store;
        const silo_image *img;
        const silo_register_options *o;
        pthread_mutex_t lock;
        size_t next;
        int failed;
        silo_error err;
};

static void *pool_worker(void *userdata)
{
        struct pool *p = userdata;
        for (;;) {
                pthread_mutex_lock(&p->lock);
                size_t i = p->next++;
                bool stop = p->failed || i >= p->img->manifest->n_layers;
                pthread_mutex_unlock(&p->lock);
                if (stop)
                        return NULL;
                silo_error e = SILO_ERROR_INIT;
                int r = silo_layer_ensure(p->store, &p->img->manifest->layers[i], p->img->config->diff_ids[i], p->o, &e);
                if (r < 0) {
                        pthread_mutex_lock(&p->lock);
                        if (!p->failed) {
                                p->failed = r;
                                p->err = e;
                        }
                        pthread_mutex_unlock(&p->lock);
                        return NULL;
                }
        }
}

static int ensure_layers(silo_store *s, const silo_image *img, const silo_register_options *o, silo_error *err)
{
        struct pool p = { .store = s, .img = img, .o = o, .lock = PTHREAD_MUTEX_INITIALIZER };
        unsigned jobs = o->jobs ? o->jobs : 2;
        if (jobs > 16)
                jobs = 16;
        if (jobs > img->manifest->n_layers)
                jobs = (unsigned) img->manifest->n_layers;
        pthread_t threads[16];
        unsigned started = 0;
        for (unsigned i = 1; i < jobs; i++) {
                if (pthread_create(&threads[started], NULL, pool_worker, &p) != 0)
                        break;
                started++;
        }
        pool_worker(&p);
        for (unsigned i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        pthread_mutex_destroy(&p.lock);
        if (p.failed) {
                if (err)
                        *err = p.err;
                return p.failed;
        }
        return 0;
}

struct add_names {
        const char *digest;
        const char *config;
        const char *const *names;
};

static int add_names_cb(silo_index *idx, void *userdata, silo_error *err)
{
        struct add_names *a = userdata;
        silo_index_entry *e;
        int r = silo_index_add(idx, a->digest, a->config, NULL, &e, err);
        if (r < 0)
                return r;
        for (const char *const *n = a->names; n && *n; n++) {
                r = silo_index_add_name(idx, e, *n, err);
                if (r < 0)
                        return r;
        }
        /* Another manifest of the same config (say, uncompressed layers from
         * a docker-archive) that just lost its last name is the same image:
         * drop it rather than leave a confusing unnamed twin. */
        for (size_t i = 0; a->names && a->names[0] && i < idx->n; ) {
                silo_index_entry *o = &idx->entries[i];
                if (strcmp(o->digest, a->digest) != 0 && !strcmp(o->config, a->config) &&
                    silo_index_entry_n_names(o) == 0)
                        silo_index_remove_entry(idx, o);
                else
                        i++;
        }
        return 0;
}

static int normalise_names(const char *const *names, char ***ret, silo_error *err)
{
        size_t n = 0;
        while (names && names[n])
                n++;
        _cleanup_strv_ char **v = calloc(n + 1, sizeof(char *));
        if (!v)
                return silo_error_set(err, ENOMEM, "names");
        for (size_t i = 0; i < n; i++) {
                _cleanup_reference_ silo_reference *r = NULL;
                int ret_code = silo_reference_parse(names[i], &r, err);
                if (ret_code < 0)
                        return ret_code;
                /* "repo:tag", or "repo@digest" for an image pulled by digest */
                v[i] = silo_reference_name(r);
                if (!v[i])
                        return silo_error_set(err, ENOMEM, "names");
        }
        *ret = TAKE_PTR(v);
        return 0;
}

int silo_image_register(silo_store *s, const char *manifest_digest, const char *const *names,
                        const silo_register_options *o, silo_image **ret, silo_error *err)
{
        silo_register_options defaults;
        if (!o) {
                silo_register_options_init(&defaults);
                o = &defaults;
        }
        _cleanup_strv_ char **norm = NULL;
        int r = normalise_names(names, &norm, err);
        if (r < 0)
                return r;

        r = silo_store_begin(s, false, err);
        if (r < 0)
                return r;
        _cleanup_image_ silo_image *img = NULL;
        r = silo_image_load_manifest(s, manifest_digest, &img, err);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < img->manifest->n_layers; i++) {
                const silo_descriptor *l = &img->manifest->layers[i];
                int64_t size;
                if (silo_store_layer_exists(s, img->config->diff_ids[i]) && !silo_store_blob_exists(s, l->digest))
                        continue;       /* foreign layer already unpacked: fine without the blob */
                r = silo_store_blob_size(s, l->digest, &size, err);
                if (r < 0) {
                        silo_error_prefix(err, "image %s: layer %zu", manifest_digest, i);
                        goto out;
                }
                if (size != l->size) {
                        r = silo_error_msg(err, EBADMSG, "image %s: layer %s: the manifest says %lld bytes, the blob has %lld",
                                           manifest_digest, l->digest, (long long) l->size, (long long) size);
                        goto out;
                }
        }
        r = ensure_layers(s, img, o, err);
        if (r < 0)
                goto out;

        /* Only now, with every piece in place, does the image get a name. */
        struct add_names a = { img->digest, img->id, (const char *const *) norm };
        r = silo_index_update(s, add_names_cb, &a, err);
        if (r < 0)
                goto out;
        if (ret) {
                silo_strv_free(img->names);
                img->names = TAKE_PTR(norm);
                *ret = TAKE_PTR(img);
        }
out:
        silo_store_end(s);
        return r;
}

/* ---- naming and removal ---- */

struct tag_args {
        const char *src;
        const char *name;
};

static int tag_cb(silo_index *idx, void *userdata, silo_error *err)
{
        struct tag_args *a = userdata;
        silo_index_entry *e;
        int r = find_entry(idx, a->src, &e, err);
        if (r < 0)
                return r;
        return silo_index_add_name(idx, e, a->name, err);
}

int silo_image_tag(silo_store *s, const char *src, const char *name, silo_error *err)
{
        _cleanup_reference_ silo_reference *ref = NULL;
        int r = silo_reference_parse(name, &ref, err);
        if (r < 0)
                return r;
        if (!ref->tag)
                return silo_error_msg(err, EINVAL, "'%s': a tag name cannot be a digest", name);
        _cleanup_free_ char *full = silo_reference_name(ref);
        if (!full)
                return silo_error_set(err, ENOMEM, "tag");
        struct tag_args a = { src, full };
        return silo_index_update(s, tag_cb, &a, err);
}

static bool image_in_use(silo_rootfs_info **containers, size_t n, const char *digest, const char **ret_id)
{
        for (size_t i = 0; i < n; i++)
                if (!strcmp(containers[i]->image, digest)) {
                        *ret_id = containers[i]->id;
                        return true;
                }
        return false;
}

struct remove_args {
        const char *ref;
        bool force;
        silo_rootfs_info **containers;
        size_t n_containers;
        silo_gc_stats *stats;
};

static int remove_cb(silo_index *idx, void *userdata, silo_error *err)
{
        struct remove_args *a = userdata;
        silo_index_entry *e;
        int r = find_entry(idx, a->ref, &e, err);
        if (r < 0)
                return r;

        /* By name: untag only that name. */
        bool by_name = false;
        _cleanup_free_ char *name = NULL;
        silo_reference *pr = NULL;
        if (!silo_digest_valid(a->ref) && silo_reference_parse(a->ref, &pr, NULL) == 0) {
                _cleanup_reference_ silo_reference *ref = pr;
                if (ref->tag) {
                        name = silo_reference_name(ref);
                        by_name = name && silo_index_find_name(idx, name) == e;
                }
        }

        size_t n_names = silo_index_entry_n_names(e);
        if (by_name && n_names > 1) {
                silo_index_remove_name(idx, name);
                a->stats->names++;
                return 0;
        }
        if (!by_name && n_names > 1 && !a->force)
                return silo_error_msg(err, EBUSY, "image %.19s has %zu names (%s, ...): remove them by name, or use force",
                                      e->config, n_names, e->names[0]);
        const char *cid;
        if (image_in_use(a->containers, a->n_containers, e->digest, &cid) && !a->force)
                return silo_error_msg(err, EBUSY, "image '%s' is used by container %s", a->ref, cid);
        a->stats->names += n_names;
        a->stats->images++;
        silo_index_remove_entry(idx, e);
        return 0;
}

int silo_image_remove(silo_store *s, const char *ref, bool force, silo_gc_stats *ret, silo_error *err)
{
        silo_gc_stats stats = {};
        silo_rootfs_info **containers = NULL;
        size_t n = 0;
        int r = silo_rootfs_list(s, &containers, &n, err);
        if (r < 0)
                return r;
        struct remove_args a = { ref, force, containers, n, &stats };
        r = silo_index_update(s, remove_cb, &a, err);
        silo_rootfs_list_free(containers, n);
        if (r < 0)
                return r;
        if (stats.images > 0) {
                silo_gc_stats gc = {};
                r = silo_store_gc(s, true, &gc, err);
                if (r < 0)
                        return r;
                stats.blobs = gc.blobs;
                stats.layers = gc.layers;
                stats.bytes = gc.bytes;
        }
        if (ret)
                *ret = stats;
        return 0;
}

struct prune_args {
        bool all;
        silo_rootfs_info **containers;
        size_t n_containers;
        silo_gc_stats *stats;
};

static int prune_cb(silo_index *idx, void *userdata, silo_error *err)
{
        struct prune_args *a = userdata;
        (void) err;
        for (size_t i = 0; i < idx->n; ) {
                silo_index_entry *e = &idx->entries[i];
                const char *cid;
                bool dangling = silo_index_entry_n_names(e) == 0;
                if ((dangling || a->all) && !image_in_use(a->containers, a->n_containers, e->digest, &cid)) {
                        a->stats->images++;
                        a->stats->names += silo_index_entry_n_names(e);
                        silo_index_remove_entry(idx, e);
                } else
                        i++;
        }
        return a->stats->images ? 0 : 1;
}

int silo_image_prune(silo_store *s, bool all, silo_gc_stats *ret, silo_error *err)
{
        silo_gc_stats stats = {};
        silo_rootfs_info **containers = NULL;
        size_t n = 0;
        int r = silo_rootfs_list(s, &containers, &n, err);
        if (r < 0)
                return r;
        struct prune_args a = { all, containers, n, &stats };
        r = silo_index_update(s, prune_cb, &a, err);
        silo_rootfs_list_free(containers, n);
        if (r < 0)
                return r;
        silo_gc_stats gc = {};
        r = silo_store_gc(s, true, &gc, err);
        if (r < 0)
                return r;
        stats.blobs = gc.blobs;
        stats.layers = gc.layers;
        stats.bytes = gc.bytes;
        if (ret)
                *ret = stats;
        return 0;
}

/* ---- inspect ---- */

int silo_image_inspect_json(silo_store *s, const silo_image *img, json_t **ret, silo_error *err)
{
        json_t *names = json_array();
        json_t *layers = json_array();
        json_t *diff_ids = json_array();
        for (char **n = img->names; n && *n; n++)
                json_array_append_new(names, json_string(*n));
        for (size_t i = 0; i < img->manifest->n_layers; i++) {
                json_array_append_new(layers, silo_descriptor_to_json(&img->manifest->layers[i]));
                json_array_append_new(diff_ids, json_string(img->config->diff_ids[i]));
        }
        json_t *cfg = json_object_get(img->config->json, "config");
        json_t *o = json_pack("{s:s, s:s, s:o, s:s, s:s?, s:s?, s:s?, s:s?, s:I, s:I, s:O?, s:{s:s, s:o}, s:o, s:s}",
                              "Id", img->id,
                              "Digest", img->digest,
                              "RepoTags", names,
                              "ManifestMediaType", img->manifest->media_type,
                              "Created", img->config->created,
                              "Author", img->config->author,
                              "Architecture", img->config->architecture,
                              "Os", img->config->os,
                              "Size", (json_int_t) silo_image_size(s, img),
                              "Added", (json_int_t) img->added,
                              "Config", cfg,
                              "RootFS", "Type", "layers", "Layers", diff_ids,
                              "ManifestLayers", layers,
                              "StoreRoot", silo_store_root(s));
        if (!o)
                return silo_error_set(err, ENOMEM, "inspect");
        if (img->config->variant)
                json_object_set_new(o, "Variant", json_string(img->config->variant));
        *ret = o;
        return 0;
}

/* ---- creating images ---- */

static void format_now(char buf[64])
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(buf, 64, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, 64 - n, ".%09ldZ", ts.tv_nsec);
}

static int build_config(const silo_image *base, const silo_new_layer *layer, const silo_commit_info *info,
                        char **ret, silo_error *err)
{
        char now[64];
        format_now(now);
        _cleanup_json_ json_t *c = NULL;
        if (base) {
                c = json_deep_copy(base->config->json);
        } else {
                silo_platform host;
                silo_platform_host(&host);
                c = json_pack("{s:s, s:s, s:{}, s:{s:s, s:[]}, s:[]}", "architecture", host.architecture,
                              "os", "linux", "config", "rootfs", "type", "layers", "diff_ids", "history");
                silo_platform_done(&host);
        }
        if (!c)
                return silo_error_set(err, ENOMEM, "image config");
        json_object_del(c, "container");
        json_object_set_new(c, "created", json_string(now));
        if (info && info->author)
                json_object_set_new(c, "author", json_string(info->author));

        json_t *rootfs = json_object_get(c, "rootfs");
        json_t *diff_ids = rootfs ? json_object_get(rootfs, "diff_ids") : NULL;
        if (!json_is_array(diff_ids)) {
                diff_ids = json_array();
                json_object_set_new(rootfs, "diff_ids", diff_ids);
        }
        json_array_append_new(diff_ids, json_string(layer->diff_id));

        json_t *history = json_object_get(c, "history");
        if (!json_is_array(history)) {
                history = json_array();
                json_object_set_new(c, "history", history);
        }
        json_t *h = json_pack("{s:s, s:s}", "created", now, "created_by",
                              info && info->created_by ? info->created_by : "silo commit");
        if (h && info && info->author)
                json_object_set_new(h, "author", json_string(info->author));
        if (h && info && info->comment)
                json_object_set_new(h, "comment", json_string(info->comment));
        json_array_append_new(history, h);

        if (info && info->config_changes) {
                json_t *cfg = json_object_get(c, "config");
                if (!json_is_object(cfg)) {
                        cfg = json_object();
                        json_object_set_new(c, "config", cfg);
                }
                json_object_update(cfg, info->config_changes);
        }
        char *s = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
        if (!s)
                return silo_error_set(err, ENOMEM, "image config");
        *ret = s;
        return 0;
}

int silo_image_create(silo_store *s, const silo_image *base, const silo_new_layer *layer,
                      const silo_commit_info *info, const char *name, const silo_register_options *o,
                      char ret_digest[SILO_DIGEST_SIZE], silo_error *err)
{
        _cleanup_free_ char *config = NULL;
        int r = build_config(base, layer, info, &config, err);
        if (r < 0)
                return r;
        char config_digest[SILO_DIGEST_SIZE];
        r = silo_store_blob_put(s, config, strlen(config), NULL, config_digest, err);
        if (r < 0)
                return r;

        size_t n_base = base ? base->manifest->n_layers : 0;
        silo_manifest m = {
                .media_type = (char *) SILO_MT_OCI_MANIFEST,
                .config = {
                        .media_type = (char *) SILO_MT_OCI_CONFIG,
                        .size = (int64_t) strlen(config),
                },
                .n_layers = n_base + 1,
        };
        memcpy(m.config.digest, config_digest, SILO_DIGEST_SIZE);
        _cleanup_free_ silo_descriptor *layers = calloc(n_base + 1, sizeof(silo_descriptor));
        if (!layers)
                return silo_error_set(err, ENOMEM, "manifest");
        for (size_t i = 0; i < n_base; i++) {
                const silo_descriptor *b = &base->manifest->layers[i];
                silo_compression c = SILO_COMPRESSION_GZIP;
                (void) silo_layer_media_type_compression(b->media_type, &c, NULL);
                /* OCI manifest: OCI media types for the inherited layers too. */
                layers[i].media_type = (char *) silo_layer_media_type_for(c);
                memcpy(layers[i].digest, b->digest, SILO_DIGEST_SIZE);
                layers[i].size = b->size;
        }
        layers[n_base].media_type = (char *) silo_layer_media_type_for(layer->compression);
        memcpy(layers[n_base].digest, layer->blob, SILO_DIGEST_SIZE);
        layers[n_base].size = (int64_t) layer->size;
        m.layers = layers;

        _cleanup_free_ char *manifest = NULL;
        size_t mlen;
        r = silo_manifest_to_json(&m, &manifest, &mlen, err);
        if (r < 0)
                return r;
        char digest[SILO_DIGEST_SIZE];
        r = silo_store_blob_put(s, manifest, mlen, NULL, digest, err);
        if (r < 0)
                return r;
        const char *names[] = { name, NULL };
        r = silo_image_register(s, digest, name ? names : NULL, o, NULL, err);
        if (r < 0)
                return r;
        if (ret_digest)
                memcpy(ret_digest, digest, SILO_DIGEST_SIZE);
        return 0;
}
