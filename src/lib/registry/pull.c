/* Pull: manifest (and manifest list) by tag or digest, config, then layer
 * blobs downloaded in parallel (curl multi) and unpacked by worker threads
 * as each download completes.  Every byte is verified against its digest;
 * the image becomes visible only when everything is in place. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "image/image.h"
#include "image/manifest.h"
#include "image/reference.h"
#include "registry/client.h"
#include "util/cleanup.h"

#define ERRBODY_MAX 4096
#define PROGRESS_STEP (1u << 20)

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
        struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* ---- small fetches (manifests, configs) with retries ---- */

static int fetch_small(reg_client *c, const char *what, const char *path, const char *accept, size_t max,
                       reg_response *resp, silo_error *err)
{
        const silo_registry_options *o = c->o;
        unsigned delay = o->retry_delay_ms;
        for (unsigned attempt = 1; ; attempt++) {
                reg_request req = { .method = "GET", .url = path, .accept = accept, .upload_fd = -1,
                                    .max_body = max, .follow = true };
                silo_error e = SILO_ERROR_INIT;
                int r = reg_do(c, &req, resp, &e);
                bool retry = false;
                if (r < 0) {
                        if (r == -EFBIG || r == -EACCES || r == -EPROTO) {
                                if (err)
                                        *err = e;
                                return r;
                        }
                        retry = true;
                } else if (resp->status == 200) {
                        return 0;
                } else if (reg_retryable_status(resp->status)) {
                        char text[200];
                        reg_error_text(resp, text, sizeof(text));
                        silo_error_msg(&e, EIO, "%s: HTTP %ld%s%s", what, resp->status, *text ? ": " : "", text);
                        retry = true;
                } else {
                        char text[200];
                        reg_error_text(resp, text, sizeof(text));
                        int code = resp->status == 404 ? ENOENT : resp->status == 401 || resp->status == 403 ? EACCES : EPROTO;
                        return silo_error_msg(err, code, "%s: %s answered HTTP %ld%s%s", what, c->domain, resp->status,
                                              *text ? ": " : "", text);
                }
                if (!retry || attempt >= o->retries || reg_cancelled(o)) {
                        if (err)
                                *err = e;
                        return silo_error_prefix(err, "%s (after %u attempts)", what, attempt);
                }
                silo_progress_emit(o->progress, SILO_PROGRESS_RETRYING, what, what, 0, 0, e.message);
                sleep_ms(delay);
                delay *= 2;
        }
}

/* ---- layer downloads ---- */

enum job_state {
        JOB_QUEUED,
        JOB_RUNNING,
        JOB_DONE,
        JOB_FAILED,
};

struct job {
        size_t index;                   /* layer index */
        const silo_descriptor *desc;
        enum job_state state;
        CURL *h;
        struct curl_slist *headers;
        silo_blob_writer *w;
        int lock_fd;
        unsigned attempts;
        double not_before;
        long status;
        bool range_requested;
        bool checked_status;
        bool auth_retried;
        char *www_authenticate;
        char errbody[ERRBODY_MAX];
        size_t errlen;
        char curl_err[CURL_ERROR_SIZE];
        uint64_t last_progress;
        silo_error err;
        struct pull *p;
};

struct unpack_queue {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        size_t *items;
        size_t head, tail;
        bool closed;
        int failed;
        silo_error err;
};

struct pull {
        silo_store *store;
        reg_client *c;
        const silo_registry_options *o;
        silo_image *img;
        struct job *jobs;
        size_t n_jobs;
        struct unpack_queue q;
};

static void job_reset_transfer(struct job *j)
{
        if (j->h) {
                curl_easy_cleanup(j->h);
                j->h = NULL;
        }
        curl_slist_free_all(j->headers);
        j->headers = NULL;
        free(j->www_authenticate);
        j->www_authenticate = NULL;
        j->status = 0;
        j->checked_status = false;
        j->errlen = 0;
        j->curl_err[0] = '\0';
}

static void job_done(struct job *j)
{
        job_reset_transfer(j);
        silo_blob_writer_free(j->w);
        j->w = NULL;
        if (j->lock_fd >= 0)
                close(j->lock_fd);
        j->lock_fd = -1;
}

static size_t job_header(char *buf, size_t size, size_t n, void *userdata)
{
        struct job *j = userdata;
        size_t len = size * n;
        if (len > 17 && !strncasecmp(buf, "www-authenticate:", 17)) {
                free(j->www_authenticate);
                const char *v = buf + 17;
                size_t vl = len - 17;
                while (vl && (*v == ' '))
                        v++, vl--;
                while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
                        vl--;
                j->www_authenticate = strndup(v, vl);
        }
        return len;
}

static size_t job_write(char *buf, size_t size, size_t n, void *userdata)
{
        struct job *j = userdata;
        size_t len = size * n;
        if (!j->checked_status) {
                curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &j->status);
                j->checked_status = true;
                if (j->status == 200 && silo_blob_writer_size(j->w) > 0) {
                        /* Asked for a range, got the whole blob: start over. */
                        if (silo_blob_writer_reset(j->w, &j->err) < 0)
                                return 0;
                }
        }
        if (j->status != 200 && j->status != 206) {
                size_t room = ERRBODY_MAX - 1 - j->errlen;
                size_t take = len < room ? len : room;
                memcpy(j->errbody + j->errlen, buf, take);
                j->errlen += take;
                j->errbody[j->errlen] = '\0';
                return len;
        }
        if (silo_blob_writer_size(j->w) + len > (uint64_t) j->desc->size) {
                silo_error_msg(&j->err, EBADMSG, "layer %s: the registry sent more than the %lld bytes the manifest says",
                               j->desc->digest, (long long) j->desc->size);
                return 0;
        }
        if (reg_cancelled(j->p->o)) {
                silo_error_msg(&j->err, ECANCELED, "layer %s: cancelled", j->desc->digest);
                return 0;
        }
        if (silo_blob_writer_write(j->w, buf, len, &j->err) < 0)
                return 0;
        uint64_t done = silo_blob_writer_size(j->w);
        if (done - j->last_progress >= PROGRESS_STEP || done == (uint64_t) j->desc->size) {
                j->last_progress = done;
                silo_progress_emit(j->p->o->progress, SILO_PROGRESS_DOWNLOADING, "layer", j->desc->digest, done,
                                   (uint64_t) j->desc->size, NULL);
        }
        return len;
}

static int job_start(struct pull *p, CURLM *multi, struct job *j, silo_error *err)
{
        job_reset_transfer(j);
        if (!j->w) {
                int r = silo_blob_writer_new(p->store, &j->w, err);
                if (r < 0)
                        return r;
        }
        j->h = curl_easy_init();
        if (!j->h)
                return silo_error_set(err, ENOMEM, "curl");
        int r = reg_setup_easy(p->c, j->h, &j->headers, NULL, err);
        if (r < 0)
                return r;
        char path[512];
        snprintf(path, sizeof(path), "/v2/%s/blobs/%s", p->c->repo, j->desc->digest);
        _cleanup_free_ char *url = reg_url(p->c, path);
        if (!url)
                return silo_error_set(err, ENOMEM, "curl");
        curl_easy_setopt(j->h, CURLOPT_URL, url);
        curl_easy_setopt(j->h, CURLOPT_HTTPHEADER, j->headers);
        curl_easy_setopt(j->h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(j->h, CURLOPT_WRITEFUNCTION, job_write);
        curl_easy_setopt(j->h, CURLOPT_WRITEDATA, j);
        curl_easy_setopt(j->h, CURLOPT_HEADERFUNCTION, job_header);
        curl_easy_setopt(j->h, CURLOPT_HEADERDATA, j);
        curl_easy_setopt(j->h, CURLOPT_ERRORBUFFER, j->curl_err);
        curl_easy_setopt(j->h, CURLOPT_PRIVATE, j);
        curl_easy_setopt(j->h, CURLOPT_BUFFERSIZE, 128L * 1024);
        uint64_t have = silo_blob_writer_size(j->w);
        j->range_requested = have > 0;
        if (have > 0) {
                char range[64];
                snprintf(range, sizeof(range), "%llu-", (unsigned long long) have);
                curl_easy_setopt(j->h, CURLOPT_RANGE, range);
        }
        j->state = JOB_RUNNING;
        j->attempts++;
        silo_progress_emit(p->o->progress, SILO_PROGRESS_DOWNLOADING, "layer", j->desc->digest, have,
                           (uint64_t) j->desc->size, NULL);
        if (curl_multi_add_handle(multi, j->h) != CURLM_OK)
                return silo_error_msg(err, EIO, "curl_multi_add_handle failed");
        return 0;
}

static void queue_push(struct unpack_queue *q, size_t index)
{
        pthread_mutex_lock(&q->lock);
        q->items[q->tail++] = index;
        pthread_cond_signal(&q->cond);
        pthread_mutex_unlock(&q->lock);
}

static void queue_fail(struct unpack_queue *q, int r, const silo_error *err)
{
        pthread_mutex_lock(&q->lock);
        if (!q->failed) {
                q->failed = r;
                if (err)
                        q->err = *err;
        }
        pthread_cond_broadcast(&q->cond);
        pthread_mutex_unlock(&q->lock);
}

static bool queue_failed(struct unpack_queue *q)
{
        pthread_mutex_lock(&q->lock);
        bool f = q->failed != 0;
        pthread_mutex_unlock(&q->lock);
        return f;
}

static void *unpack_worker(void *userdata)
{
        struct pull *p = userdata;
        struct unpack_queue *q = &p->q;
        for (;;) {
                pthread_mutex_lock(&q->lock);
                while (q->head == q->tail && !q->closed && !q->failed)
                        pthread_cond_wait(&q->cond, &q->lock);
                if (q->failed || q->head == q->tail) {
                        pthread_mutex_unlock(&q->lock);
                        return NULL;
                }
                size_t i = q->items[q->head++];
                pthread_mutex_unlock(&q->lock);

                silo_error e = SILO_ERROR_INIT;
                int r = silo_layer_ensure(p->store, &p->img->manifest->layers[i], p->img->config->diff_ids[i],
                                          &p->o->reg, &e);
                if (r < 0) {
                        queue_fail(q, r, &e);
                        return NULL;
                }
        }
}

/* Decides what to do with a finished transfer. */
static int job_finished(struct pull *p, struct job *j, CURLcode rc, silo_error *err)
{
        char msg[512];
        bool retry = false;
        uint64_t have = silo_blob_writer_size(j->w);

        if (j->err.code) {
                /* Our own write callback refused (oversized body, disk error). */
                *err = j->err;
                return -err->code;
        }
        if (rc == CURLE_OK && j->status == 401 && !j->auth_retried) {
                reg_response fake = { .www_authenticate = j->www_authenticate };
                int r = reg_authenticate(p->c, &fake, err);
                if (r < 0)
                        return r;
                j->auth_retried = true;
                j->attempts--;
                j->state = JOB_QUEUED;
                return 0;
        }
        if (rc != CURLE_OK) {
                snprintf(msg, sizeof(msg), "%s%s%s", curl_easy_strerror(rc), *j->curl_err ? ": " : "", j->curl_err);
                retry = reg_retryable_curl(rc);
        } else if (j->status == 416) {
                /* Our resume offset is no good: start from zero. */
                snprintf(msg, sizeof(msg), "range not satisfiable");
                if (silo_blob_writer_reset(j->w, err) < 0)
                        return -err->code;
                retry = true;
        } else if (j->status != 200 && j->status != 206) {
                reg_response fake = { .status = j->status, .body = j->errbody, .len = j->errlen };
                char text[256];
                reg_error_text(&fake, text, sizeof(text));
                snprintf(msg, sizeof(msg), "HTTP %ld%s%s", j->status, *text ? ": " : "", text);
                retry = reg_retryable_status(j->status);
                if (!retry) {
                        int code = j->status == 404 ? ENOENT : j->status == 401 || j->status == 403 ? EACCES : EPROTO;
                        return silo_error_msg(err, code, "layer %s: %s", j->desc->digest, msg);
                }
        } else if (have < (uint64_t) j->desc->size) {
                snprintf(msg, sizeof(msg), "connection closed after %llu of %lld bytes",
                         (unsigned long long) have, (long long) j->desc->size);
                retry = true;
        } else {
                silo_error e = SILO_ERROR_INIT;
                int r = silo_blob_writer_commit(j->w, j->desc->digest, j->desc->size, NULL, &e);
                if (r == 0) {
                        job_done(j);
                        j->state = JOB_DONE;
                        silo_progress_emit(p->o->progress, SILO_PROGRESS_DONE, "layer", j->desc->digest,
                                           (uint64_t) j->desc->size, (uint64_t) j->desc->size, "downloaded");
                        queue_push(&p->q, j->index);
                        return 0;
                }
                if (r != -EBADMSG) {
                        *err = e;
                        return r;
                }
                /* Corrupt in transit (or a lying registry): fetch again from zero. */
                snprintf(msg, sizeof(msg), "%.400s", e.message);
                if (silo_blob_writer_reset(j->w, err) < 0)
                        return -err->code;
                retry = true;
        }

        if (!retry || j->attempts >= p->o->retries)
                return silo_error_msg(err, retry ? EIO : EPROTO, "layer %s: %s%s", j->desc->digest, msg,
                                      retry ? " (giving up after retries)" : "");
        unsigned delay = p->o->retry_delay_ms << (j->attempts - 1 < 6 ? j->attempts - 1 : 6);
        j->not_before = now_s() + delay / 1000.0;
        j->state = JOB_QUEUED;
        silo_progress_emit(p->o->progress, SILO_PROGRESS_RETRYING, "layer", j->desc->digest, have,
                           (uint64_t) j->desc->size, msg);
        return 0;
}

static int download_all(struct pull *p, silo_error *err)
{
        CURLM *multi = curl_multi_init();
        if (!multi)
                return silo_error_set(err, ENOMEM, "curl");
        unsigned parallel = p->o->parallel ? p->o->parallel : 3;
        int r = 0;
        size_t remaining = p->n_jobs;
        while (remaining > 0 && r == 0) {
                if (queue_failed(&p->q))
                        break;
                if (reg_cancelled(p->o)) {
                        r = silo_error_msg(err, ECANCELED, "cancelled");
                        break;
                }
                size_t running = 0;
                for (size_t i = 0; i < p->n_jobs; i++)
                        running += p->jobs[i].state == JOB_RUNNING;
                double t = now_s();
                for (size_t i = 0; i < p->n_jobs && running < parallel && r == 0; i++) {
                        struct job *j = &p->jobs[i];
                        if (j->state != JOB_QUEUED || j->not_before > t)
                                continue;
                        if (j->lock_fd < 0) {
                                /* One download per blob across concurrent pulls. */
                                int lr = silo_store_trylock_digest(p->store, j->desc->digest, &j->lock_fd, err);
                                if (lr == -EAGAIN) {
                                        j->not_before = t + 0.1;
                                        continue;
                                }
                                if (lr < 0) {
                                        r = lr;
                                        break;
                                }
                                if (silo_store_blob_exists(p->store, j->desc->digest)) {
                                        job_done(j);
                                        j->state = JOB_DONE;
                                        remaining--;
                                        silo_progress_emit(p->o->progress, SILO_PROGRESS_EXISTS, "layer", j->desc->digest,
                                                           0, (uint64_t) j->desc->size, NULL);
                                        queue_push(&p->q, j->index);
                                        continue;
                                }
                        }
                        r = job_start(p, multi, j, err);
                        running++;
                }
                if (r < 0)
                        break;

                int still;
                curl_multi_perform(multi, &still);
                CURLMsg *msg;
                int left;
                while ((msg = curl_multi_info_read(multi, &left)) && r == 0) {
                        if (msg->msg != CURLMSG_DONE)
                                continue;
                        struct job *j = NULL;
                        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &j);
                        CURLcode rc = msg->data.result;
                        curl_multi_remove_handle(multi, msg->easy_handle);
                        r = job_finished(p, j, rc, err);
                        if (j->state == JOB_DONE)
                                remaining--;
                }
                if (r == 0 && remaining > 0)
                        curl_multi_poll(multi, NULL, 0, 100, NULL);
        }
        for (size_t i = 0; i < p->n_jobs; i++) {
                struct job *j = &p->jobs[i];
                if (j->h)
                        curl_multi_remove_handle(multi, j->h);
                job_done(j);
        }
        curl_multi_cleanup(multi);
        return r;
}

/* ---- the pull ---- */

static int verify_manifest_digest(const reg_response *resp, const char *expected, char ret[SILO_DIGEST_SIZE],
                                  silo_error *err)
{
        silo_digest_buffer(resp->body, resp->len, ret);
        if (expected && strcmp(expected, ret) != 0)
                return silo_error_msg(err, EBADMSG, "manifest digest mismatch: requested %s, the registry sent content "
                                      "hashing to %s", expected, ret);
        if (!expected && resp->digest[0] && silo_digest_valid(resp->digest) && strcmp(resp->digest, ret) != 0)
                return silo_error_msg(err, EBADMSG, "manifest digest mismatch: the registry says %s, the content hashes to %s",
                                      resp->digest, ret);
        return 0;
}

static int pull_locked(silo_store *s, const silo_reference *ref, const silo_registry_options *o,
                       char ret_digest[SILO_DIGEST_SIZE], silo_error *err)
{
        _cleanup_free_ char *scope = NULL;
        if (asprintf(&scope, "repository:%s:pull", ref->path) < 0)
                return silo_error_set(err, ENOMEM, "pull");
        reg_client *c = NULL;
        int r = reg_client_open(s, ref, o, scope, &c, err);
        if (r < 0)
                return r;

        struct pull p = { .store = s, .c = c, .o = o };
        reg_response resp = {};
        char digest[SILO_DIGEST_SIZE];
        pthread_t threads[16];
        unsigned n_threads = 0;
        _cleanup_free_ char *name = NULL;
        _cleanup_manifest_ silo_manifest *m = NULL;

        name = silo_reference_name(ref);
        silo_progress_emit(o->progress, SILO_PROGRESS_RESOLVING, "manifest", name ? name : ref->path, 0, 0, NULL);
        char path[512];
        snprintf(path, sizeof(path), "/v2/%s/manifests/%s", ref->path, ref->digest ? ref->digest : ref->tag);
        r = fetch_small(c, "manifest", path, SILO_MANIFEST_ACCEPT, SILO_MANIFEST_MAX, &resp, err);
        if (r < 0)
                goto out;
        r = verify_manifest_digest(&resp, ref->digest, digest, err);
        if (r < 0)
                goto out;

        silo_manifest_kind kind;
        r = silo_manifest_kind_of(resp.body, resp.len, resp.content_type, &kind, err);
        if (r < 0)
                goto out;
        if (kind == SILO_MANIFEST_INDEX) {
                _cleanup_image_index_ silo_image_index *idx = NULL;
                silo_platform want = {};
                const silo_descriptor *d;
                r = silo_image_index_parse(resp.body, resp.len, &idx, err);
                if (r == 0)
                        r = silo_platform_parse(o->platform, &want, err);
                if (r == 0)
                        r = silo_image_index_select(idx, &want, &d, err);
                silo_platform_done(&want);
                if (r < 0)
                        goto out;
                char child[SILO_DIGEST_SIZE];
                memcpy(child, d->digest, SILO_DIGEST_SIZE);
                snprintf(path, sizeof(path), "/v2/%s/manifests/%s", ref->path, child);
                r = fetch_small(c, "manifest", path, SILO_MANIFEST_ACCEPT, SILO_MANIFEST_MAX, &resp, err);
                if (r == 0)
                        r = verify_manifest_digest(&resp, child, digest, err);
                if (r == 0)
                        r = silo_manifest_kind_of(resp.body, resp.len, resp.content_type, &kind, err);
                if (r == 0 && kind != SILO_MANIFEST_IMAGE)
                        r = silo_error_msg(err, EPROTONOSUPPORT, "manifest list entry %s is not an image manifest", child);
                if (r < 0)
                        goto out;
        }

        /* Validate before storing anything. */
        r = silo_manifest_parse(resp.body, resp.len, &m, err);
        if (r < 0)
                goto out;
        r = silo_store_blob_put(s, resp.body, resp.len, digest, NULL, err);
        if (r < 0)
                goto out;

        if (!silo_store_blob_exists(s, m->config.digest)) {
                silo_progress_emit(o->progress, SILO_PROGRESS_DOWNLOADING, "config", m->config.digest, 0,
                                   (uint64_t) m->config.size, NULL);
                snprintf(path, sizeof(path), "/v2/%s/blobs/%s", ref->path, m->config.digest);
                r = fetch_small(c, "config", path, NULL, SILO_CONFIG_MAX, &resp, err);
                if (r < 0)
                        goto out;
                if ((int64_t) resp.len != m->config.size) {
                        r = silo_error_msg(err, EBADMSG, "config %s: the manifest says %lld bytes, the registry sent %zu",
                                           m->config.digest, (long long) m->config.size, resp.len);
                        goto out;
                }
                r = silo_store_blob_put(s, resp.body, resp.len, m->config.digest, NULL, err);
                if (r < 0) {
                        silo_error_prefix(err, "config");
                        goto out;
                }
                silo_progress_emit(o->progress, SILO_PROGRESS_DONE, "config", m->config.digest, resp.len, resp.len, NULL);
        }
        r = silo_image_load_manifest(s, digest, &p.img, err);
        if (r < 0)
                goto out;

        /* Layers: which need a download, which only an unpack. */
        size_t n = p.img->manifest->n_layers;
        p.jobs = calloc(n ? n : 1, sizeof(struct job));
        p.q.items = calloc(n ? n : 1, sizeof(size_t));
        pthread_mutex_init(&p.q.lock, NULL);
        pthread_cond_init(&p.q.cond, NULL);
        if (!p.jobs || !p.q.items) {
                r = silo_error_set(err, ENOMEM, "pull");
                goto out_threads;
        }
        unsigned workers = o->reg.jobs ? o->reg.jobs : 2;
        if (workers > 16)
                workers = 16;
        for (unsigned i = 0; i < workers; i++)
                if (pthread_create(&threads[n_threads], NULL, unpack_worker, &p) == 0)
                        n_threads++;
        for (size_t i = 0; i < n; i++) {
                const silo_descriptor *l = &p.img->manifest->layers[i];
                bool unpacked = silo_store_layer_exists(s, p.img->config->diff_ids[i]);
                if (unpacked || silo_store_blob_exists(s, l->digest)) {
                        silo_progress_emit(o->progress, SILO_PROGRESS_EXISTS, "layer", l->digest, 0, (uint64_t) l->size, NULL);
                        if (!unpacked)
                                queue_push(&p.q, i);
                        continue;
                }
                p.jobs[p.n_jobs++] = (struct job) { .index = i, .desc = l, .state = JOB_QUEUED, .lock_fd = -1, .p = &p };
                silo_progress_emit(o->progress, SILO_PROGRESS_WAITING, "layer", l->digest, 0, (uint64_t) l->size, NULL);
        }
        r = download_all(&p, err);
        if (r < 0)
                queue_fail(&p.q, r, NULL);
        /* Unpacks are not interruptible; do not register after a cancel. */
        if (r == 0 && reg_cancelled(o))
                r = silo_error_msg(err, ECANCELED, "cancelled");

out_threads:
        pthread_mutex_lock(&p.q.lock);
        p.q.closed = true;
        pthread_cond_broadcast(&p.q.cond);
        pthread_mutex_unlock(&p.q.lock);
        for (unsigned i = 0; i < n_threads; i++)
                pthread_join(threads[i], NULL);
        if (r == 0 && p.q.failed) {
                r = p.q.failed;
                if (err)
                        *err = p.q.err;
        }
        if (r == 0) {
                const char *names[] = { name, NULL };
                r = silo_image_register(s, digest, names, &o->reg, NULL, err);
        }
        if (r == 0 && ret_digest)
                memcpy(ret_digest, digest, SILO_DIGEST_SIZE);
        pthread_mutex_destroy(&p.q.lock);
        pthread_cond_destroy(&p.q.cond);
out:
        free(p.jobs);
        free(p.q.items);
        silo_image_free(p.img);
        reg_response_done(&resp);
        reg_client_free(c);
        return r;
}

int silo_registry_pull(silo_store *s, const char *refstr, const silo_registry_options *o,
                       char ret_digest[SILO_DIGEST_SIZE], silo_error *err)
{
        silo_registry_options defaults;
        if (!o) {
                silo_registry_options_init(&defaults);
                o = &defaults;
        }
        _cleanup_reference_ silo_reference *ref = NULL;
        int r = silo_reference_parse(refstr, &ref, err);
        if (r < 0)
                return r;
        r = silo_store_begin(s, false, err);
        if (r < 0)
                return r;
        r = pull_locked(s, ref, o, ret_digest, err);
        silo_store_end(s);
        if (r < 0) {
                /* Nothing partial stays: unreferenced blobs go (if no one else is busy). */
                (void) silo_store_gc(s, false, NULL, NULL);
                return silo_error_prefix(err, "pull %s", refstr);
        }
        return 0;
}
