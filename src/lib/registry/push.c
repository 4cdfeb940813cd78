/* Push: each blob is skipped if the registry has it, mounted from another
 * repository of the same registry when a local image says it lives there,
 * or uploaded (POST a session, PUT the content with its digest); then the
 * manifest goes up byte for byte, so its digest is preserved. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "image/image.h"
#include "image/reference.h"
#include "registry/client.h"
#include "storage/index.h"
#include "util/cleanup.h"

#define SMALL_BODY (64u << 10)

struct push_blob {
        const char *digest;
        int64_t size;
        const char *kind;
        char **mount_from;      /* candidate source repositories (same registry) */
};

struct upload_progress {
        silo_progress *p;
        const char *digest;
        uint64_t last;
};

static void upload_progress_cb(void *userdata, uint64_t sent, uint64_t total)
{
        struct upload_progress *u = userdata;
        if (sent - u->last >= (1u << 20) || sent == total) {
                u->last = sent;
                silo_progress_emit(u->p, SILO_PROGRESS_UPLOADING, "layer", u->digest, sent, total, NULL);
        }
}

static void sleep_ms(unsigned ms)
{
        struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int http_error(reg_client *c, const char *what, const reg_response *resp, silo_error *err)
{
        char text[256];
        reg_error_text(resp, text, sizeof(text));
        int code = resp->status == 401 || resp->status == 403 ? EACCES : resp->status == 404 ? ENOENT : EPROTO;
        return silo_error_msg(err, code, "%s: %s answered HTTP %ld%s%s", what, c->domain, resp->status,
                              *text ? ": " : "", text);
}

/* One attempt; returns 1 if the error is worth retrying. */
static int push_blob_once(reg_client *c, const struct push_blob *b, bool *retryable, silo_error *err)
{
        silo_progress *prog = c->o->progress;
        reg_response resp = {};
        char path[512];
        int r;
        _cleanup_free_ char *location = NULL;
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *url = NULL;
        _cleanup_free_ char *abs = NULL;
        *retryable = false;

        snprintf(path, sizeof(path), "/v2/%s/blobs/%s", c->repo, b->digest);
        reg_request head = { .method = "HEAD", .url = path, .upload_fd = -1, .follow = true };
        r = reg_do(c, &head, &resp, err);
        if (r < 0) {
                *retryable = true;
                goto out;
        }
        if (resp.status == 200) {
                silo_progress_emit(prog, SILO_PROGRESS_EXISTS, b->kind, b->digest, 0, (uint64_t) b->size, NULL);
                goto out;
        }

        for (char **from = b->mount_from; from && *from && !location; from++) {
                snprintf(path, sizeof(path), "/v2/%s/blobs/uploads/?mount=%s&from=%s", c->repo, b->digest, *from);
                reg_request post = { .method = "POST", .url = path, .upload_fd = -1, .max_body = SMALL_BODY };
                r = reg_do(c, &post, &resp, err);
                if (r < 0) {
                        *retryable = true;
                        goto out;
                }
                if (resp.status == 201) {
                        silo_progress_emit(prog, SILO_PROGRESS_MOUNTED, b->kind, b->digest, 0, (uint64_t) b->size, *from);
                        goto out;
                }
                if (resp.status == 202 && resp.location)
                        location = TAKE_PTR(resp.location);     /* mount refused, but an upload session is open */
        }
        if (!location) {
                snprintf(path, sizeof(path), "/v2/%s/blobs/uploads/", c->repo);
                reg_request post = { .method = "POST", .url = path, .upload_fd = -1, .max_body = SMALL_BODY };
                r = reg_do(c, &post, &resp, err);
                if (r < 0) {
                        *retryable = true;
                        goto out;
                }
                if (resp.status != 202 || !resp.location) {
                        *retryable = reg_retryable_status(resp.status);
                        r = http_error(c, "start upload", &resp, err);
                        goto out;
                }
                location = TAKE_PTR(resp.location);
        }

        /* What leaves the store is verified first, like everything read back. */
        r = silo_store_blob_verify(c->store, b->digest, err);
        if (r < 0)
                goto out;
        r = silo_store_blob_open(c->store, b->digest, &fd, err);
        if (r < 0)
                goto out;
        abs = reg_url(c, location);
        if (!abs || asprintf(&url, "%s%cdigest=%s", abs, strchr(abs, '?') ? '&' : '?', b->digest) < 0) {
                r = silo_error_set(err, ENOMEM, "push");
                goto out;
        }
        struct upload_progress up = { prog, b->digest, 0 };
        silo_progress_emit(prog, SILO_PROGRESS_UPLOADING, b->kind, b->digest, 0, (uint64_t) b->size, NULL);
        reg_request put = { .method = "PUT", .url = url, .content_type = "application/octet-stream", .upload_fd = fd,
                            .upload_size = (uint64_t) b->size, .max_body = SMALL_BODY,
                            .upload_progress = upload_progress_cb, .progress_userdata = &up };
        r = reg_do(c, &put, &resp, err);
        if (r < 0) {
                *retryable = true;
                goto out;
        }
        if (resp.status != 201 && resp.status != 204) {
                *retryable = reg_retryable_status(resp.status);
                r = http_error(c, "upload", &resp, err);
                goto out;
        }
        silo_progress_emit(prog, SILO_PROGRESS_DONE, b->kind, b->digest, (uint64_t) b->size, (uint64_t) b->size, "pushed");
out:
        reg_response_done(&resp);
        return r;
}

static int push_blob(reg_client *c, const struct push_blob *b, silo_error *err)
{
        unsigned delay = c->o->retry_delay_ms;
        for (unsigned attempt = 1; ; attempt++) {
                bool retryable;
                silo_error e = SILO_ERROR_INIT;
                if (reg_cancelled(c->o))
                        return silo_error_msg(err, ECANCELED, "%s %s: cancelled", b->kind, b->digest);
                int r = push_blob_once(c, b, &retryable, &e);
                if (r == 0)
                        return 0;
                if (!retryable || attempt >= c->o->retries) {
                        if (err)
                                *err = e;
                        return silo_error_prefix(err, "%s %s", b->kind, b->digest);
                }
                silo_progress_emit(c->o->progress, SILO_PROGRESS_RETRYING, b->kind, b->digest, 0, (uint64_t) b->size, e.message);
                sleep_ms(delay);
                delay *= 2;
        }
}

/* Repositories on the same registry that local images say hold digest. */
static char **mount_candidates(silo_store *s, silo_index *idx, const silo_reference *dest, const char *digest)
{
        char **v = calloc(1, sizeof(char *));
        size_t n = 0;
        for (size_t i = 0; v && i < idx->n; i++) {
                silo_image *img = NULL;
                bool has = false;
                if (silo_image_load_manifest(s, idx->entries[i].digest, &img, NULL) < 0)
                        continue;
                for (size_t k = 0; k < img->manifest->n_layers; k++)
                        has |= !strcmp(img->manifest->layers[k].digest, digest);
                has |= !strcmp(img->manifest->config.digest, digest);
                silo_image_free(img);
                if (!has)
                        continue;
                for (char **name = idx->entries[i].names; name && *name; name++) {
                        silo_reference *r = NULL;
                        if (silo_reference_parse(*name, &r, NULL) == 0 && !strcmp(r->domain, dest->domain) &&
                            strcmp(r->path, dest->path) != 0) {
                                bool dup = false;
                                for (size_t k = 0; k < n; k++)
                                        dup |= !strcmp(v[k], r->path);
                                char **nv = dup ? v : realloc(v, (n + 2) * sizeof(char *));
                                if (nv && !dup) {
                                        v = nv;
                                        v[n++] = strdup(r->path);
                                        v[n] = NULL;
                                }
                        }
                        silo_reference_free(r);
                }
        }
        return v;
}

int silo_registry_push(silo_store *s, const char *src, const char *dest, const silo_registry_options *o,
                       char ret_digest[SILO_DIGEST_SIZE], silo_error *err)
{
        silo_registry_options defaults;
        if (!o) {
                silo_registry_options_init(&defaults);
                o = &defaults;
        }
        _cleanup_reference_ silo_reference *ref = NULL;
        int r = silo_reference_parse(dest ? dest : src, &ref, err);
        if (r < 0)
                return dest ? r : silo_error_prefix(err, "push: give a destination name");

        r = silo_store_begin(s, false, err);
        if (r < 0)
                return r;
        _cleanup_image_ silo_image *img = NULL;
        _cleanup_index_ silo_index *idx = NULL;
        _cleanup_free_ char *manifest = NULL;
        _cleanup_free_ char *scope = NULL;
        reg_client *c = NULL;
        struct push_blob *blobs = NULL;
        size_t n = 0;
        reg_response resp = {};

        r = silo_image_lookup(s, src, &img, err);
        if (r < 0)
                goto out;
        r = silo_index_load(s, &idx, err);
        if (r < 0)
                goto out;
        n = img->manifest->n_layers + 1;
        blobs = calloc(n, sizeof(*blobs));
        if (!blobs) {
                r = silo_error_set(err, ENOMEM, "push");
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                const silo_descriptor *d = i < n - 1 ? &img->manifest->layers[i] : &img->manifest->config;
                blobs[i] = (struct push_blob) { d->digest, d->size, i < n - 1 ? "layer" : "config",
                                                mount_candidates(s, idx, ref, d->digest) };
                if (!silo_store_blob_exists(s, d->digest)) {
                        r = silo_error_msg(err, ENOENT, "%s %s is not in the store (foreign layer?)", blobs[i].kind, d->digest);
                        goto out;
                }
        }

        /* Push and pull on the destination, pull on every mount source. */
        if (asprintf(&scope, "repository:%s:pull,push", ref->path) < 0) {
                r = silo_error_set(err, ENOMEM, "push");
                goto out;
        }
        for (size_t i = 0; i < n; i++)
                for (char **from = blobs[i].mount_from; from && *from; from++) {
                        char *ns = NULL;
                        if (strstr(scope, *from))
                                continue;
                        if (asprintf(&ns, "%s repository:%s:pull", scope, *from) < 0) {
                                r = silo_error_set(err, ENOMEM, "push");
                                goto out;
                        }
                        free(scope);
                        scope = ns;
                }
        r = reg_client_open(s, ref, o, scope, &c, err);
        if (r < 0)
                goto out;

        for (size_t i = 0; i < n; i++) {
                r = push_blob(c, &blobs[i], err);
                if (r < 0)
                        goto out;
        }

        size_t mlen;
        r = silo_store_blob_read(s, img->digest, SILO_MANIFEST_MAX, &manifest, &mlen, err);
        if (r < 0)
                goto out;
        char path[512];
        snprintf(path, sizeof(path), "/v2/%s/manifests/%s", ref->path, ref->tag ? ref->tag : ref->digest);
        unsigned delay = o->retry_delay_ms;
        for (unsigned attempt = 1; ; attempt++) {
                reg_request put = { .method = "PUT", .url = path, .content_type = img->manifest->media_type,
                                    .body = manifest, .body_len = mlen, .upload_fd = -1, .max_body = SMALL_BODY };
                silo_error e = SILO_ERROR_INIT;
                r = reg_do(c, &put, &resp, &e);
                bool retry = r < 0 || reg_retryable_status(resp.status);
                if (r == 0 && (resp.status == 201 || resp.status == 200))
                        break;
                if (r == 0)
                        r = http_error(c, "manifest", &resp, &e);
                if (!retry || attempt >= o->retries) {
                        if (err)
                                *err = e;
                        goto out;
                }
                silo_progress_emit(o->progress, SILO_PROGRESS_RETRYING, "manifest", img->digest, 0, 0, e.message);
                sleep_ms(delay);
                delay *= 2;
        }
        if (resp.digest[0] && strcmp(resp.digest, img->digest) != 0) {
                r = silo_error_msg(err, EBADMSG, "manifest: the registry stored it as %s, expected %s", resp.digest, img->digest);
                goto out;
        }
        silo_progress_emit(o->progress, SILO_PROGRESS_DONE, "manifest", img->digest, mlen, mlen, "pushed");
        if (ret_digest)
                memcpy(ret_digest, img->digest, SILO_DIGEST_SIZE);
        r = 0;
out:
        for (size_t i = 0; blobs && i < n; i++)
                silo_strv_free(blobs[i].mount_from);
        free(blobs);
        reg_response_done(&resp);
        reg_client_free(c);
        silo_store_end(s);
        if (r < 0)
                return silo_error_prefix(err, "push %s", dest ? dest : src);
        return 0;
}
