/* Garbage collection: mark everything reachable from the image index and
 * from containers, sweep the rest.  Reachability instead of stored
 * reference counts: there is no count to get out of sync after a crash. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "image/image.h"
#include "image/rootfs.h"
#include "storage/index.h"
#include "util/cleanup.h"

struct digest_set {
        char **v;
        size_t n, cap;
        bool sorted;
};

static int set_add(struct digest_set *s, const char *d)
{
        if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 64;
                char **v = realloc(s->v, cap * sizeof(char *));
                if (!v)
                        return -ENOMEM;
                s->v = v;
                s->cap = cap;
        }
        if (!(s->v[s->n] = strdup(d)))
                return -ENOMEM;
        s->n++;
        s->sorted = false;
        return 0;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static bool set_has(struct digest_set *s, const char *d)
{
        if (s->n == 0)
                return false;
        if (!s->sorted) {
                qsort(s->v, s->n, sizeof(char *), cmp_str);
                s->sorted = true;
        }
        return s->n && bsearch(&d, s->v, s->n, sizeof(char *), cmp_str) != NULL;
}

static void set_free(struct digest_set *s)
{
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i]);
        free(s->v);
}

static int mark_image(silo_store *s, const char *digest, struct digest_set *blobs, struct digest_set *layers)
{
        int r = set_add(blobs, digest);
        if (r < 0)
                return r;
        /* Unreadable manifests keep only themselves: GC must not guess. */
        silo_image *img = NULL;
        if (silo_image_load_manifest(s, digest, &img, NULL) < 0) {
                _cleanup_free_ char *buf = NULL;
                size_t len;
                silo_manifest *m = NULL;
                if (silo_store_blob_read(s, digest, SILO_MANIFEST_MAX, &buf, &len, NULL) == 0 &&
                    silo_manifest_parse(buf, len, &m, NULL) == 0) {
                        r = set_add(blobs, m->config.digest);
                        for (size_t i = 0; r == 0 && i < m->n_layers; i++)
                                r = set_add(blobs, m->layers[i].digest);
                        silo_manifest_free(m);
                }
                return r;
        }
        r = set_add(blobs, img->manifest->config.digest);
        for (size_t i = 0; r == 0 && i < img->manifest->n_layers; i++) {
                r = set_add(blobs, img->manifest->layers[i].digest);
                if (r == 0)
                        r = set_add(layers, img->config->diff_ids[i]);
        }
        silo_image_free(img);
        return r;
}

static uint64_t blob_bytes(silo_store *s, const char *digest)
{
        int64_t size = 0;
        return silo_store_blob_size(s, digest, &size, NULL) == 0 ? (uint64_t) size : 0;
}

static int gc_locked(silo_store *s, silo_gc_stats *stats, silo_error *err)
{
        struct digest_set blobs = {}, layers = {};
        _cleanup_index_ silo_index *idx = NULL;
        silo_rootfs_info **containers = NULL;
        size_t n_containers = 0;
        _cleanup_strv_ char **all_blobs = NULL;
        _cleanup_strv_ char **all_layers = NULL;

        /* The index lock keeps tag/rmi out while we decide. */
        _cleanup_close_ int ilock = openat(silo_store_root_fd(s), "index.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (ilock < 0)
                return silo_error_set(err, errno, "open index.lock");
        while (flock(ilock, LOCK_EX) < 0)
                if (errno != EINTR)
                        return silo_error_set(err, errno, "lock index.lock");

        int r = silo_index_load(s, &idx, err);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < idx->n; i++)
                if ((r = mark_image(s, idx->entries[i].digest, &blobs, &layers)) < 0) {
                        silo_error_set(err, r, "gc");
                        goto out;
                }
        r = silo_rootfs_list(s, &containers, &n_containers, err);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < n_containers; i++)
                for (char **l = containers[i]->layers; l && *l; l++)
                        if ((r = set_add(&layers, *l)) < 0) {
                                silo_error_set(err, r, "gc");
                                goto out;
                        }

        r = silo_store_list_blobs(s, &all_blobs, err);
        if (r < 0)
                goto out;
        for (char **b = all_blobs; *b; b++) {
                if (set_has(&blobs, *b))
                        continue;
                uint64_t bytes = blob_bytes(s, *b);
                r = silo_store_blob_remove(s, *b, err);
                if (r < 0)
                        goto out;
                stats->blobs++;
                stats->bytes += bytes;
        }
        r = silo_store_list_layers(s, &all_layers, err);
        if (r < 0)
                goto out;
        for (char **l = all_layers; *l; l++) {
                if (set_has(&layers, *l))
                        continue;
                uint64_t size = 0;
                (void) silo_store_layer_size(s, *l, &size, NULL);
                r = silo_store_layer_remove(s, *l, err);
                if (r < 0)
                        goto out;
                stats->layers++;
                stats->bytes += size;
        }
        r = silo_store_clean_tmp(s, err);
out:
        silo_rootfs_list_free(containers, n_containers);
        set_free(&blobs);
        set_free(&layers);
        return r;
}

int silo_store_gc(silo_store *s, bool wait, silo_gc_stats *ret, silo_error *err)
{
        silo_gc_stats stats = {};
        int r;
        if (wait) {
                r = silo_store_begin(s, true, err);
        } else {
                r = silo_store_try_begin_exclusive(s, err);
        }
        if (r < 0)
                return r;
        r = gc_locked(s, &stats, err);
        silo_store_end(s);
        if (r < 0)
                return silo_error_prefix(err, "garbage collection");
        if (ret)
                *ret = stats;
        return 0;
}
