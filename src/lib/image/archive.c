#include "image/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "image/reference.h"
#include "image/tarwrite.h"
#include "image/unpack.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define MAX_MEMBERS 100000
#define MAX_LINK_HOPS 16
#define MAX_META (8u << 20)

struct member {
        char *path;
        char *link;                     /* symlink/hardlink target, cleaned */
        char digest[SILO_DIGEST_SIZE];
        uint64_t size;
        bool is_file;
};

struct load {
        silo_store *store;
        const silo_load_options *o;
        struct member *members;
        size_t n_members, cap_members;
        char *manifest_json;            /* docker-archive manifest */
        size_t manifest_json_len;
        char *index_json;               /* OCI layout index */
        size_t index_json_len;
        bool oci_layout;
        uint64_t total_bytes;
        char **loaded;
        size_t n_loaded;
};

void silo_load_options_init(silo_load_options *o)
{
        *o = (silo_load_options) {};
        silo_register_options_init(&o->reg);
}

void silo_import_options_init(silo_import_options *o)
{
        *o = (silo_import_options) {};
        silo_register_options_init(&o->reg);
}

static void load_done(struct load *l)
{
        for (size_t i = 0; i < l->n_members; i++) {
                free(l->members[i].path);
                free(l->members[i].link);
        }
        free(l->members);
        free(l->manifest_json);
        free(l->index_json);
        for (size_t i = 0; i < l->n_loaded; i++)
                free(l->loaded[i]);
        free(l->loaded);
}

static struct member *add_member(struct load *l, const char *path, silo_error *err)
{
        if (l->n_members >= MAX_MEMBERS) {
                silo_error_msg(err, EFBIG, "archive has more than %d members", MAX_MEMBERS);
                return NULL;
        }
        if (l->n_members == l->cap_members) {
                size_t cap = l->cap_members ? l->cap_members * 2 : 64;
                struct member *v = realloc(l->members, cap * sizeof(*v));
                if (!v) {
                        silo_error_set(err, ENOMEM, "archive");
                        return NULL;
                }
                l->members = v;
                l->cap_members = cap;
        }
        struct member *m = &l->members[l->n_members];
        *m = (struct member) { .path = strdup(path) };
        if (!m->path) {
                silo_error_set(err, ENOMEM, "archive");
                return NULL;
        }
        l->n_members++;
        return m;
}

static struct member *find_member(struct load *l, const char *path)
{
        /* Later members replace earlier ones, as in tar. */
        for (size_t i = l->n_members; i-- > 0; )
                if (!strcmp(l->members[i].path, path))
                        return &l->members[i];
        return NULL;
}

/* Resolves a member path through symlinks/hardlinks to a stored file. */
static int resolve_member(struct load *l, const char *name, const struct member **ret, silo_error *err)
{
        char path[PATH_MAX];
        int r = silo_clean_member_path(name, path, sizeof(path), NULL);
        if (r < 0)
                return silo_error_msg(err, EINVAL, "archive: invalid member reference '%.200s'", name);
        for (int hop = 0; hop < MAX_LINK_HOPS; hop++) {
                struct member *m = find_member(l, path);
                if (!m)
                        return silo_error_msg(err, ENOENT, "archive: '%.200s' is referenced but not in the archive", name);
                if (m->is_file) {
                        *ret = m;
                        return 0;
                }
                snprintf(path, sizeof(path), "%s", m->link);
        }
        return silo_error_msg(err, ELOOP, "archive: too many levels of links resolving '%.200s'", name);
}

static int read_meta(struct archive *a, struct archive_entry *e, char **ret, size_t *ret_len, silo_error *err)
{
        la_int64_t size = archive_entry_size(e);
        if (size < 0 || (uint64_t) size > MAX_META)
                return silo_error_msg(err, EFBIG, "archive: %s is larger than %u bytes", archive_entry_pathname(e), MAX_META);
        _cleanup_free_ char *buf = malloc((size_t) size + 1);
        if (!buf)
                return silo_error_set(err, ENOMEM, "archive");
        la_ssize_t n = archive_read_data(a, buf, (size_t) size);
        if (n != size)
                return silo_error_msg(err, EBADMSG, "archive: short read of %s", archive_entry_pathname(e));
        buf[size] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = (size_t) size;
        return 0;
}

static int store_member(struct load *l, struct archive *a, struct archive_entry *e, struct member *m, silo_error *err)
{
        _cleanup_blob_writer_ silo_blob_writer *w = NULL;
        int r = silo_blob_writer_new(l->store, &w, err);
        if (r < 0)
                return r;
        uint64_t total = archive_entry_size_is_set(e) ? (uint64_t) archive_entry_size(e) : 0;
        /* Only big members (layers) are worth a progress line. */
        silo_progress *p = total >= (1u << 20) ? l->o->reg.progress : NULL;
        silo_progress_emit(p, SILO_PROGRESS_COPYING, "blob", m->path, 0, total, NULL);
        uint64_t last = 0;
        for (;;) {
                const void *buf;
                size_t size;
                la_int64_t off;
                int ar = archive_read_data_block(a, &buf, &size, &off);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN)
                        return silo_error_msg(err, EBADMSG, "archive: %s: %s", m->path, archive_error_string(a));
                if ((uint64_t) off != silo_blob_writer_size(w))
                        return silo_error_msg(err, EINVAL, "archive: %s: sparse members are not supported", m->path);
                r = silo_blob_writer_write(w, buf, size, err);
                if (r < 0)
                        return r;
                l->total_bytes += size;
                if (l->total_bytes > l->o->reg.unpack.limits.max_bytes)
                        return silo_error_msg(err, EFBIG, "archive is larger than %llu bytes",
                                              (unsigned long long) l->o->reg.unpack.limits.max_bytes);
                uint64_t done = silo_blob_writer_size(w);
                if (done - last >= (4u << 20)) {
                        silo_progress_emit(p, SILO_PROGRESS_COPYING, "blob", m->path, done, total, NULL);
                        last = done;
                }
        }
        r = silo_blob_writer_commit(w, NULL, -1, m->digest, err);
        if (r < 0)
                return r;
        m->size = silo_blob_writer_size(w);
        m->is_file = true;
        silo_progress_emit(p, SILO_PROGRESS_DONE, "blob", m->path, m->size, m->size, NULL);
        return 0;
}

static int read_archive(struct load *l, int fd, silo_error *err)
{
        struct archive *a = archive_read_new();
        if (!a)
                return silo_error_set(err, ENOMEM, "archive");
        archive_read_support_format_tar(a);
        archive_read_support_format_gnutar(a);
        archive_read_support_filter_gzip(a);
        archive_read_support_filter_zstd(a);
        int r = 0;
        if (archive_read_open_fd(a, fd, 256 * 1024) != ARCHIVE_OK) {
                r = silo_error_msg(err, EBADMSG, "archive: %s", archive_error_string(a));
                goto out;
        }
        for (;;) {
                struct archive_entry *e;
                int ar = archive_read_next_header(a, &e);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN) {
                        r = silo_error_msg(err, EBADMSG, "archive: %s", archive_error_string(a));
                        goto out;
                }
                const char *name = archive_entry_pathname(e);
                char path[PATH_MAX];
                if (!name || silo_clean_member_path(name, path, sizeof(path), NULL) < 0) {
                        r = silo_error_msg(err, EINVAL, "archive: member '%.200s' has an invalid path",
                                           name ? name : "");
                        goto out;
                }
                const char *hardlink = archive_entry_hardlink(e);
                mode_t type = archive_entry_filetype(e);

                if (!hardlink && type == AE_IFREG && (!strcmp(path, "manifest.json") || !strcmp(path, "index.json"))) {
                        char **dst = !strcmp(path, "manifest.json") ? &l->manifest_json : &l->index_json;
                        size_t *dlen = !strcmp(path, "manifest.json") ? &l->manifest_json_len : &l->index_json_len;
                        free(*dst);
                        *dst = NULL;
                        r = read_meta(a, e, dst, dlen, err);
                        if (r < 0)
                                goto out;
                        continue;
                }
                if (!strcmp(path, "oci-layout")) {
                        l->oci_layout = true;
                        continue;
                }
                if (!strcmp(path, "repositories"))
                        continue;

                if (hardlink || type == AE_IFLNK) {
                        struct member *m = add_member(l, path, err);
                        if (!m) {
                                r = -err->code;
                                goto out;
                        }
                        char joined[PATH_MAX * 2];
                        if (hardlink)
                                snprintf(joined, sizeof(joined), "%s", hardlink);
                        else {
                                /* Symlink targets are relative to the link's directory. */
                                const char *target = archive_entry_symlink(e);
                                const char *slash = strrchr(path, '/');
                                if (!target)
                                        target = "";
                                if (target[0] == '/' || !slash)
                                        snprintf(joined, sizeof(joined), "%s", target);
                                else
                                        snprintf(joined, sizeof(joined), "%.*s/%s", (int) (slash - path), path, target);
                        }
                        char clean[PATH_MAX];
                        if (silo_clean_member_path(joined, clean, sizeof(clean), NULL) < 0 ||
                            !(m->link = strdup(clean))) {
                                r = silo_error_msg(err, EINVAL, "archive: link '%.200s' points outside the archive", path);
                                goto out;
                        }
                        continue;
                }
                if (type != AE_IFREG)
                        continue;
                struct member *m = add_member(l, path, err);
                if (!m) {
                        r = -err->code;
                        goto out;
                }
                r = store_member(l, a, e, m, err);
                if (r < 0)
                        goto out;
        }
out:
        archive_read_free(a);
        return r;
}

/* ---- registering what the archive describes ---- */

static int add_loaded(struct load *l, const silo_image *img)
{
        char **v = realloc(l->loaded, (l->n_loaded + 2) * sizeof(char *));
        if (!v)
                return -ENOMEM;
        l->loaded = v;
        char *line = NULL;
        if (img->names && img->names[0]) {
                size_t len = 0;
                for (char **n = img->names; *n; n++)
                        len += strlen(*n) + 1;
                line = calloc(1, len + 1);
                for (char **n = img->names; line && *n; n++) {
                        if (n != img->names)
                                strcat(line, " ");
                        strcat(line, *n);
                }
        } else
                line = strdup(img->id);
        if (!line)
                return -ENOMEM;
        l->loaded[l->n_loaded++] = line;
        l->loaded[l->n_loaded] = NULL;
        return 0;
}

/* Every blob a descriptor names must be in the archive with that content. */
static int check_blob(struct load *l, const silo_descriptor *d, const char *what, silo_error *err)
{
        char path[128];
        snprintf(path, sizeof(path), "blobs/sha256/%s", silo_digest_hex(d->digest));
        const struct member *m;
        int r = resolve_member(l, path, &m, err);
        if (r < 0)
                return silo_error_prefix(err, "%s %s", what, d->digest);
        if (strcmp(m->digest, d->digest) != 0)
                return silo_error_msg(err, EBADMSG, "archive: %s %s: content hashes to %s", what, d->digest, m->digest);
        if ((int64_t) m->size != d->size)
                return silo_error_msg(err, EBADMSG, "archive: %s %s: size %llu, the descriptor says %lld",
                                      what, d->digest, (unsigned long long) m->size, (long long) d->size);
        return 0;
}

static int register_image(struct load *l, const char *manifest_digest, char **names, silo_error *err)
{
        _cleanup_image_ silo_image *img = NULL;
        const char *const *n = (const char *const *) names;
        const char *fallback[] = { l->o->name, NULL };
        if ((!n || !n[0]) && l->o->name)
                n = fallback;
        int r = silo_image_register(l->store, manifest_digest, n, &l->o->reg, &img, err);
        if (r < 0)
                return r;
        if (add_loaded(l, img) < 0)
                return silo_error_set(err, ENOMEM, "load");
        silo_progress_emit(l->o->reg.progress, SILO_PROGRESS_DONE, "image", img->digest, 0, 0, NULL);
        return 0;
}

/* Names for an OCI index entry: a full image name annotation, or a ref.name
 * that is a full reference (a bare tag alone names nothing). */
static char *descriptor_name(const silo_descriptor *d)
{
        const char *cands[] = { d->image_name, d->ref_name };
        for (size_t i = 0; i < 2; i++) {
                const char *c = cands[i];
                if (!c || (!strchr(c, '/') && !strchr(c, ':')))
                        continue;
                silo_reference *r = NULL;
                if (silo_reference_parse(c, &r, NULL) == 0 && r->tag) {
                        char *name = silo_reference_name(r);
                        silo_reference_free(r);
                        return name;
                }
                silo_reference_free(r);
        }
        return NULL;
}

static int strv_push(char ***v, size_t *n, char *s)
{
        if (!s)
                return -ENOMEM;
        char **nv = realloc(*v, (*n + 2) * sizeof(char *));
        if (!nv) {
                free(s);
                return -ENOMEM;
        }
        *v = nv;
        nv[(*n)++] = s;
        nv[*n] = NULL;
        return 0;
}

static int load_oci_manifest(struct load *l, const silo_descriptor *d, silo_error *err)
{
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r = silo_store_blob_read(l->store, d->digest, SILO_MANIFEST_MAX, &buf, &len, err);
        if (r < 0)
                return r;
        _cleanup_manifest_ silo_manifest *m = NULL;
        r = silo_manifest_parse(buf, len, &m, err);
        if (r < 0)
                return silo_error_prefix(err, "archive: %s", d->digest);
        r = check_blob(l, &m->config, "config", err);
        for (size_t i = 0; r == 0 && i < m->n_layers; i++)
                r = check_blob(l, &m->layers[i], "layer", err);
        return r;
}

static int load_oci(struct load *l, silo_error *err)
{
        _cleanup_image_index_ silo_image_index *idx = NULL;
        int r = silo_image_index_parse(l->index_json, l->index_json_len, &idx, err);
        if (r < 0)
                return silo_error_prefix(err, "archive: index.json");
        silo_platform want = {};
        r = silo_platform_parse(l->o->platform, &want, err);
        if (r < 0)
                return r;

        /* Group the entries by manifest: one image, several names. */
        for (size_t i = 0; r == 0 && i < idx->n_manifests; i++) {
                const silo_descriptor *d = &idx->manifests[i];
                bool seen = false;
                for (size_t k = 0; k < i; k++)
                        if (!strcmp(idx->manifests[k].digest, d->digest))
                                seen = true;
                if (seen)
                        continue;
                r = check_blob(l, d, "manifest", err);
                if (r < 0)
                        break;

                const silo_descriptor *md = d;
                _cleanup_image_index_ silo_image_index *nested = NULL;
                if (!strcmp(d->media_type, SILO_MT_OCI_INDEX) || !strcmp(d->media_type, SILO_MT_DOCKER_LIST)) {
                        _cleanup_free_ char *buf = NULL;
                        size_t len;
                        r = silo_store_blob_read(l->store, d->digest, SILO_MANIFEST_MAX, &buf, &len, err);
                        if (r == 0)
                                r = silo_image_index_parse(buf, len, &nested, err);
                        if (r == 0)
                                r = silo_image_index_select(nested, &want, &md, err);
                        if (r == 0)
                                r = check_blob(l, md, "manifest", err);
                        if (r < 0)
                                break;
                } else if (strcmp(d->media_type, SILO_MT_OCI_MANIFEST) != 0 && strcmp(d->media_type, SILO_MT_DOCKER_MANIFEST) != 0) {
                        r = silo_error_msg(err, EPROTONOSUPPORT, "archive: index.json: unsupported media type '%.100s'",
                                           d->media_type);
                        break;
                }
                r = load_oci_manifest(l, md, err);
                if (r < 0)
                        break;

                _cleanup_strv_ char **names = NULL;
                size_t n_names = 0;
                for (size_t k = i; k < idx->n_manifests; k++) {
                        if (strcmp(idx->manifests[k].digest, d->digest) != 0)
                                continue;
                        char *name = descriptor_name(&idx->manifests[k]);
                        if (name && strv_push(&names, &n_names, name) < 0) {
                                r = silo_error_set(err, ENOMEM, "load");
                                break;
                        }
                }
                if (r == 0)
                        r = register_image(l, md->digest, names, err);
        }
        silo_platform_done(&want);
        return r;
}

static int sniff_blob(silo_store *s, const char *digest, silo_compression *ret, silo_error *err)
{
        _cleanup_close_ int fd = -1;
        int r = silo_store_blob_open(s, digest, &fd, err);
        if (r < 0)
                return r;
        unsigned char head[4] = {};
        ssize_t n = read(fd, head, sizeof(head));
        *ret = silo_compression_sniff(head, n > 0 ? (size_t) n : 0);
        return 0;
}

static int load_docker_one(struct load *l, json_t *item, size_t index, silo_error *err)
{
        char path[SILO_JSON_PATH_MAX];
        silo_json_path_index(path, "manifest.json", index);
        json_t *config = json_object_get(item, "Config");
        json_t *layers = json_object_get(item, "Layers");
        json_t *tags = json_object_get(item, "RepoTags");
        if (!json_is_string(config))
                return silo_error_msg(err, EINVAL, "archive: %s.Config: expected a string", path);
        if (!json_is_array(layers))
                return silo_error_msg(err, EINVAL, "archive: %s.Layers: expected an array", path);
        if (json_array_size(layers) > SILO_MAX_LAYERS)
                return silo_error_msg(err, E2BIG, "archive: %s: more than %d layers", path, SILO_MAX_LAYERS);

        const struct member *cm;
        int r = resolve_member(l, json_string_value(config), &cm, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *cbuf = NULL;
        size_t clen;
        r = silo_store_blob_read(l->store, cm->digest, SILO_CONFIG_MAX, &cbuf, &clen, err);
        if (r < 0)
                return r;
        _cleanup_image_config_ silo_image_config *cfg = NULL;
        r = silo_image_config_parse(cbuf, clen, &cfg, err);
        if (r < 0)
                return silo_error_prefix(err, "archive: %s", json_string_value(config));
        if (cfg->n_diff_ids != json_array_size(layers))
                return silo_error_msg(err, EBADMSG, "archive: %s: the config lists %zu diff_ids but there are %zu layers",
                                      path, cfg->n_diff_ids, json_array_size(layers));

        size_t n = json_array_size(layers);
        _cleanup_free_ silo_descriptor *descs = calloc(n ? n : 1, sizeof(silo_descriptor));
        if (!descs)
                return silo_error_set(err, ENOMEM, "load");
        for (size_t i = 0; i < n; i++) {
                json_t *lp = json_array_get(layers, i);
                if (!json_is_string(lp))
                        return silo_error_msg(err, EINVAL, "archive: %s.Layers[%zu]: expected a string", path, i);
                const struct member *lm;
                r = resolve_member(l, json_string_value(lp), &lm, err);
                if (r < 0)
                        return r;
                silo_compression c;
                r = sniff_blob(l->store, lm->digest, &c, err);
                if (r < 0)
                        return r;
                if (c == SILO_COMPRESSION_NONE && strcmp(lm->digest, cfg->diff_ids[i]) != 0)
                        return silo_error_msg(err, EBADMSG, "archive: layer %s hashes to %s, but the config says %s",
                                              json_string_value(lp), lm->digest, cfg->diff_ids[i]);
                descs[i].media_type = (char *) silo_layer_media_type_for(c);
                memcpy(descs[i].digest, lm->digest, SILO_DIGEST_SIZE);
                descs[i].size = (int64_t) lm->size;
        }

        silo_manifest m = {
                .media_type = (char *) SILO_MT_OCI_MANIFEST,
                .config = { .media_type = (char *) SILO_MT_OCI_CONFIG, .size = (int64_t) cm->size },
                .layers = descs,
                .n_layers = n,
        };
        memcpy(m.config.digest, cm->digest, SILO_DIGEST_SIZE);
        _cleanup_free_ char *mjson = NULL;
        size_t mlen;
        r = silo_manifest_to_json(&m, &mjson, &mlen, err);
        if (r < 0)
                return r;
        char mdigest[SILO_DIGEST_SIZE];
        r = silo_store_blob_put(l->store, mjson, mlen, NULL, mdigest, err);
        if (r < 0)
                return r;

        _cleanup_strv_ char **names = NULL;
        size_t n_names = 0;
        for (size_t i = 0; json_is_array(tags) && i < json_array_size(tags); i++) {
                json_t *t = json_array_get(tags, i);
                if (!json_is_string(t))
                        return silo_error_msg(err, EINVAL, "archive: %s.RepoTags[%zu]: expected a string", path, i);
                _cleanup_reference_ silo_reference *ref = NULL;
                r = silo_reference_parse(json_string_value(t), &ref, err);
                if (r < 0)
                        return silo_error_prefix(err, "archive: %s.RepoTags[%zu]", path, i);
                if (strv_push(&names, &n_names, silo_reference_name(ref)) < 0)
                        return silo_error_set(err, ENOMEM, "load");
        }
        return register_image(l, mdigest, names, err);
}

static int load_docker(struct load *l, silo_error *err)
{
        _cleanup_json_ json_t *root = NULL;
        int r = silo_json_load_buffer(l->manifest_json, l->manifest_json_len, "archive: manifest.json", &root, err);
        if (r < 0)
                return r;
        if (!json_is_array(root))
                return silo_error_msg(err, EINVAL, "archive: manifest.json: expected an array");
        if (json_array_size(root) == 0)
                return silo_error_msg(err, EINVAL, "archive: manifest.json lists no images");
        for (size_t i = 0; i < json_array_size(root); i++) {
                r = load_docker_one(l, json_array_get(root, i), i, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int silo_archive_load(silo_store *s, int fd, const silo_load_options *o, char ***ret_loaded, silo_error *err)
{
        silo_load_options defaults;
        if (!o) {
                silo_load_options_init(&defaults);
                o = &defaults;
        }
        struct load l = { .store = s, .o = o };
        int r = silo_store_begin(s, false, err);
        if (r < 0)
                return r;
        r = read_archive(&l, fd, err);
        if (r == 0) {
                if (l.oci_layout && l.index_json)
                        r = load_oci(&l, err);
                else if (l.manifest_json)
                        r = load_docker(&l, err);
                else
                        r = silo_error_msg(err, EINVAL, "not an image archive: no manifest.json (docker-archive) "
                                           "or oci-layout and index.json (OCI archive)");
        }
        silo_store_end(s);
        /* Leftover members (legacy files, or everything after a failure):
         * collect them unless other operations are running right now. */
        (void) silo_store_gc(s, false, NULL, NULL);
        if (r == 0 && ret_loaded) {
                *ret_loaded = l.loaded ? l.loaded : calloc(1, sizeof(char *));
                l.loaded = NULL;
                l.n_loaded = 0;
        }
        load_done(&l);
        return r;
}

/* An OCI image layout directory: its blobs become members, then as an OCI archive. */
static int read_layout_dir(struct load *l, int dirfd, silo_error *err)
{
        struct stat st;
        if (fstatat(dirfd, "oci-layout", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                return silo_error_msg(err, EINVAL, "not an OCI image layout: no oci-layout file");
        l->oci_layout = true;
        int r = silo_read_file_at(dirfd, "index.json", MAX_META, &l->index_json, &l->index_json_len, err);
        if (r < 0)
                return silo_error_prefix(err, "OCI layout");
        int bfd = openat(dirfd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (bfd < 0)
                return silo_error_set(err, errno, "OCI layout: blobs/sha256");
        DIR *d = fdopendir(bfd);
        if (!d) {
                close(bfd);
                return silo_error_set(err, errno, "OCI layout: blobs/sha256");
        }
        _cleanup_closedir_ DIR *dir = d;
        struct dirent *de;
        while ((de = readdir(dir))) {
                char digest[SILO_DIGEST_SIZE + 8];
                snprintf(digest, sizeof(digest), SILO_DIGEST_PREFIX "%.70s", de->d_name);
                if (!silo_digest_valid(digest))
                        continue;
                /* Blobs are files in the layout, never symlinks we would follow out of it. */
                _cleanup_close_ int fd = openat(bfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return silo_error_set(err, errno, "OCI layout: blobs/sha256/%s", de->d_name);
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                        return silo_error_msg(err, EINVAL, "OCI layout: blobs/sha256/%s is not a regular file", de->d_name);
                char path[128];
                snprintf(path, sizeof(path), "blobs/sha256/%s", silo_digest_hex(digest));
                struct member *m = add_member(l, path, err);
                if (!m)
                        return -err->code;
                _cleanup_blob_writer_ silo_blob_writer *w = NULL;
                r = silo_blob_writer_new(l->store, &w, err);
                char buf[1 << 16];
                while (r == 0) {
                        ssize_t n = read(fd, buf, sizeof(buf));
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0)
                                r = silo_error_set(err, errno, "read %s", path);
                        if (n <= 0)
                                break;
                        r = silo_blob_writer_write(w, buf, (size_t) n, err);
                }
                if (r == 0)
                        r = silo_blob_writer_commit(w, NULL, -1, m->digest, err);
                if (r < 0)
                        return r;
                m->size = silo_blob_writer_size(w);
                m->is_file = true;
        }
        return 0;
}

int silo_archive_load_dir(silo_store *s, int dirfd, const silo_load_options *o, char ***ret_loaded, silo_error *err)
{
        silo_load_options defaults;
        if (!o) {
                silo_load_options_init(&defaults);
                o = &defaults;
        }
        struct load l = { .store = s, .o = o };
        int r = silo_store_begin(s, false, err);
        if (r < 0)
                return r;
        r = read_layout_dir(&l, dirfd, err);
        if (r == 0)
                r = load_oci(&l, err);
        silo_store_end(s);
        (void) silo_store_gc(s, false, NULL, NULL);
        if (r == 0 && ret_loaded) {
                *ret_loaded = l.loaded ? l.loaded : calloc(1, sizeof(char *));
                l.loaded = NULL;
                l.n_loaded = 0;
        }
        load_done(&l);
        return r;
}

/* ---- save ---- */

int silo_archive_format_from_string(const char *s, silo_archive_format *ret, silo_error *err)
{
        if (!s || !strcmp(s, "docker-archive") || !strcmp(s, "docker"))
                *ret = SILO_ARCHIVE_DOCKER;
        else if (!strcmp(s, "oci-archive") || !strcmp(s, "oci"))
                *ret = SILO_ARCHIVE_OCI;
        else if (!strcmp(s, "oci-dir"))
                *ret = SILO_ARCHIVE_OCI_DIR;
        else
                return silo_error_msg(err, EINVAL, "unknown archive format '%s' (docker-archive, oci-archive or oci-dir)", s);
        return 0;
}

struct save_image {
        silo_image *img;
        char **names;           /* names to record */
        size_t manifest_size;
        char *manifest_media_type;
};

/* Where save puts things: a tar stream, or an OCI layout directory. */
struct save_sink {
        silo_tar_writer *tw;
        int dirfd;
};

static int sink_file(struct save_sink *k, const char *name, const void *data, size_t len, silo_error *err)
{
        if (k->tw)
                return silo_tar_writer_add_buffer(k->tw, name, data, len, err);
        return silo_write_file_atomic_at(k->dirfd, name, data, len, 0644, err);
}

static int copy_to_dir(int dirfd, const char *hex, int fd, silo_error *err)
{
        char tmp[SILO_DIGEST_HEX_LEN + 16];
        snprintf(tmp, sizeof(tmp), ".%s.tmp", hex);
        _cleanup_close_ int out = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (out < 0)
                return silo_error_set(err, errno, "create blobs/sha256/%s", tmp);
        char buf[1 << 16];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return silo_error_set(err, errno, "read blob");
                if (n == 0)
                        break;
                for (ssize_t off = 0; off < n; ) {
                        ssize_t w = write(out, buf + off, (size_t) (n - off));
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0) {
                                int e = errno;
                                unlinkat(dirfd, tmp, 0);
                                return silo_error_set(err, e, "write blobs/sha256/%s", hex);
                        }
                        off += w;
                }
        }
        if (fsync(out) < 0 || renameat(dirfd, tmp, dirfd, hex) < 0) {
                int e = errno;
                unlinkat(dirfd, tmp, 0);
                return silo_error_set(err, e, "write blobs/sha256/%s", hex);
        }
        return 0;
}

static int save_blob(silo_store *s, struct save_sink *k, const char *digest, char ***written, size_t *n_written,
                     silo_progress *p, silo_error *err)
{
        for (size_t i = 0; i < *n_written; i++)
                if (!strcmp((*written)[i], digest))
                        return 0;
        int64_t size;
        int r = silo_store_blob_size(s, digest, &size, err);
        if (r < 0)
                return r;
        silo_progress_emit(p, SILO_PROGRESS_COPYING, "blob", digest, 0, (uint64_t) size, NULL);
        /* Verified before it leaves the store: never export a corrupt blob. */
        r = silo_store_blob_verify(s, digest, err);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = -1;
        r = silo_store_blob_open(s, digest, &fd, err);
        if (r < 0)
                return r;
        if (k->tw) {
                char path[128];
                snprintf(path, sizeof(path), "blobs/sha256/%s", silo_digest_hex(digest));
                r = silo_tar_writer_add_fd(k->tw, path, fd, (uint64_t) size, err);
        } else {
                _cleanup_close_ int bdir = openat(k->dirfd, "blobs/sha256", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                r = bdir < 0 ? silo_error_set(err, errno, "open blobs/sha256") : copy_to_dir(bdir, silo_digest_hex(digest), fd, err);
        }
        if (r < 0)
                return r;
        silo_progress_emit(p, SILO_PROGRESS_DONE, "blob", digest, (uint64_t) size, (uint64_t) size, NULL);
        if (strv_push(written, n_written, strdup(digest)) < 0)
                return silo_error_set(err, ENOMEM, "save");
        return 0;
}

static char *tag_of(const char *name)
{
        const char *slash = strrchr(name, '/');
        const char *colon = strrchr(slash ? slash : name, ':');
        return strdup(colon ? colon + 1 : "latest");
}

int silo_archive_save(silo_store *s, const char *const *refs, silo_archive_format format, int out_fd,
                      silo_progress *progress, silo_error *err)
{
        size_t n = 0;
        while (refs && refs[n])
                n++;
        if (n == 0)
                return silo_error_msg(err, EINVAL, "save: no images given");

        int r = silo_store_begin(s, false, err);
        if (r < 0)
                return r;
        struct save_image *imgs = calloc(n, sizeof(*imgs));
        _cleanup_tar_writer_ silo_tar_writer *tw = NULL;
        _cleanup_strv_ char **written = NULL;
        size_t n_written = 0;
        _cleanup_json_ json_t *index = json_pack("{s:i, s:s, s:[]}", "schemaVersion", 2, "mediaType", SILO_MT_OCI_INDEX,
                                                 "manifests");
        _cleanup_json_ json_t *docker = json_array();
        _cleanup_free_ char *index_text = NULL;
        if (!imgs || !index || !docker) {
                r = silo_error_set(err, ENOMEM, "save");
                goto out;
        }

        for (size_t i = 0; i < n; i++) {
                r = silo_image_lookup(s, refs[i], &imgs[i].img, err);
                if (r < 0)
                        goto out;
                /* By name: that name.  By ID or digest: all its names. */
                silo_reference *ref = NULL;
                size_t nn = 0;
                if (!silo_digest_valid(refs[i]) && silo_reference_parse(refs[i], &ref, NULL) == 0 && ref->tag) {
                        char *full = silo_reference_name(ref);
                        bool has = false;
                        for (char **x = imgs[i].img->names; full && x && *x; x++)
                                has |= !strcmp(*x, full);
                        if (has)
                                strv_push(&imgs[i].names, &nn, full);
                        else
                                free(full);
                }
                silo_reference_free(ref);
                if (nn == 0)
                        for (char **x = imgs[i].img->names; x && *x; x++)
                                strv_push(&imgs[i].names, &nn, strdup(*x));
        }

        struct save_sink sink = { .dirfd = -1 };
        const char *layout = "{\"imageLayoutVersion\":\"1.0.0\"}";
        if (format == SILO_ARCHIVE_OCI_DIR) {
                sink.dirfd = out_fd;
                if ((mkdirat(out_fd, "blobs", 0755) < 0 && errno != EEXIST) ||
                    (mkdirat(out_fd, "blobs/sha256", 0755) < 0 && errno != EEXIST)) {
                        r = silo_error_set(err, errno, "mkdir blobs/sha256");
                        goto out;
                }
        } else {
                r = silo_tar_writer_new_fd(out_fd, &tw, err);
                if (r < 0)
                        goto out;
                sink.tw = tw;
                if ((r = silo_tar_writer_add_dir(tw, "blobs/", err)) < 0 ||
                    (r = silo_tar_writer_add_dir(tw, "blobs/sha256/", err)) < 0)
                        goto out;
        }
        if ((r = sink_file(&sink, "oci-layout", layout, strlen(layout), err)) < 0)
                goto out;

        for (size_t i = 0; i < n; i++) {
                silo_image *img = imgs[i].img;
                r = save_blob(s, &sink, img->digest, &written, &n_written, progress, err);
                if (r == 0)
                        r = save_blob(s, &sink, img->manifest->config.digest, &written, &n_written, progress, err);
                for (size_t k = 0; r == 0 && k < img->manifest->n_layers; k++)
                        r = save_blob(s, &sink, img->manifest->layers[k].digest, &written, &n_written, progress, err);
                if (r < 0)
                        goto out;

                int64_t msize;
                r = silo_store_blob_size(s, img->digest, &msize, err);
                if (r < 0)
                        goto out;
                silo_descriptor d = { .media_type = img->manifest->media_type, .size = msize };
                memcpy(d.digest, img->digest, SILO_DIGEST_SIZE);
                if (!imgs[i].names || !imgs[i].names[0])
                        json_array_append_new(json_object_get(index, "manifests"), silo_descriptor_to_json(&d));
                json_t *tags = json_array();
                for (char **x = imgs[i].names; x && *x; x++) {
                        _cleanup_free_ char *tag = tag_of(*x);
                        d.image_name = *x;
                        d.ref_name = tag;
                        json_array_append_new(json_object_get(index, "manifests"), silo_descriptor_to_json(&d));
                        json_array_append_new(tags, json_string(*x));
                }
                json_t *layers = json_array();
                for (size_t k = 0; k < img->manifest->n_layers; k++) {
                        char p[128];
                        snprintf(p, sizeof(p), "blobs/sha256/%s", silo_digest_hex(img->manifest->layers[k].digest));
                        json_array_append_new(layers, json_string(p));
                }
                char cp[128];
                snprintf(cp, sizeof(cp), "blobs/sha256/%s", silo_digest_hex(img->manifest->config.digest));
                json_array_append_new(docker, json_pack("{s:s, s:o, s:o}", "Config", cp, "RepoTags", tags, "Layers", layers));
        }

        index_text = json_dumps(index, JSON_COMPACT);
        if (!index_text) {
                r = silo_error_set(err, ENOMEM, "save");
                goto out;
        }
        /* index.json last: a layout directory is complete once it appears. */
        r = sink_file(&sink, "index.json", index_text, strlen(index_text), err);
        if (r < 0)
                goto out;
        if (format == SILO_ARCHIVE_DOCKER) {
                _cleanup_free_ char *text = json_dumps(docker, JSON_COMPACT);
                if (!text) {
                        r = silo_error_set(err, ENOMEM, "save");
                        goto out;
                }
                r = silo_tar_writer_add_buffer(tw, "manifest.json", text, strlen(text), err);
                if (r < 0)
                        goto out;
        }
        if (tw)
                r = silo_tar_writer_finish(tw, err);
out:
        for (size_t i = 0; imgs && i < n; i++) {
                silo_image_free(imgs[i].img);
                silo_strv_free(imgs[i].names);
        }
        free(imgs);
        silo_store_end(s);
        if (r < 0)
                return silo_error_prefix(err, "save");
        return 0;
}

/* ---- import ---- */

static int import_finish(silo_store *s, silo_layer_writer *lw, const silo_import_options *o,
                         char ret_digest[SILO_DIGEST_SIZE], silo_error *err)
{
        silo_new_layer layer = { .compression = SILO_COMPRESSION_GZIP };
        int r = silo_layer_writer_finish(lw, layer.blob, layer.diff_id, &layer.size, err);
        if (r < 0)
                return r;
        silo_commit_info info = o->info;
        if (!info.created_by)
                info.created_by = "silo import";
        return silo_image_create(s, NULL, &layer, &info, o->name, &o->reg, ret_digest, err);
}

static int import_common_begin(silo_store *s, const silo_import_options *o, silo_layer_writer **lw, silo_error *err)
{
        if (o->name) {
                silo_reference *ref = NULL;
                int r = silo_reference_parse(o->name, &ref, err);
                silo_reference_free(ref);
                if (r < 0)
                        return r;
        }
        int r = silo_store_begin(s, false, err);
        if (r < 0)
                return r;
        r = silo_layer_writer_new(s, SILO_COMPRESSION_GZIP, lw, err);
        if (r < 0)
                silo_store_end(s);
        return r;
}

int silo_image_import_fd(silo_store *s, int fd, const silo_import_options *o, char ret_digest[SILO_DIGEST_SIZE],
                         silo_error *err)
{
        _cleanup_layer_writer_ silo_layer_writer *lw = NULL;
        int r = import_common_begin(s, o, &lw, err);
        if (r < 0)
                return r;
        _cleanup_decompressor_ silo_decompressor *dec = NULL;
        r = silo_decompressor_new(fd, SILO_COMPRESSION_AUTO, &o->reg.unpack.limits, &dec, err);
        while (r == 0) {
                const void *buf;
                ssize_t n = silo_decompressor_read(dec, &buf, err);
                if (n < 0)
                        r = (int) n;
                if (n <= 0)
                        break;
                r = silo_layer_writer_write(lw, buf, (size_t) n, err);
        }
        /* The layer is validated (hostile-safe) when register unpacks it. */
        if (r == 0)
                r = import_finish(s, lw, o, ret_digest, err);
        silo_store_end(s);
        if (r < 0) {
                (void) silo_store_gc(s, false, NULL, NULL);
                return silo_error_prefix(err, "import");
        }
        return 0;
}

static int lw_sink(void *userdata, const void *buf, size_t len, silo_error *err)
{
        return silo_layer_writer_write(userdata, buf, len, err);
}

int silo_image_import_dir(silo_store *s, int dirfd, const silo_import_options *o, char ret_digest[SILO_DIGEST_SIZE],
                          silo_error *err)
{
        _cleanup_layer_writer_ silo_layer_writer *lw = NULL;
        int r = import_common_begin(s, o, &lw, err);
        if (r < 0)
                return r;
        _cleanup_tar_writer_ silo_tar_writer *tw = NULL;
        r = silo_tar_writer_new(lw_sink, lw, &tw, err);
        if (r == 0)
                r = silo_tar_writer_add_tree(tw, dirfd, SILO_TAR_PLAIN, err);
        if (r == 0)
                r = silo_tar_writer_finish(tw, err);
        if (r == 0)
                r = import_finish(s, lw, o, ret_digest, err);
        silo_store_end(s);
        if (r < 0) {
                (void) silo_store_gc(s, false, NULL, NULL);
                return silo_error_prefix(err, "import");
        }
        return 0;
}
