/* Long image operations that stream to the client: pull and import
 * (POST /images/create), push (POST /images/{name}/push) with docker's JSON
 * progress messages, and save (GET /images/get, /images/{name}/get) as a
 * docker-archive tarball.
 *
 * Each runs in a worker thread; the connection thread relays its output
 * (MHD content reader) and notices a client that goes away.  Then the
 * worker is cancelled (the registry client polls a cancel hook; a save
 * fails on the closed pipe) and joined, and the library's failure cleanup
 * (GC of unreferenced blobs) leaves no partial image. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "image/archive.h"
#include "image/image.h"
#include "image/reference.h"
#include "registry/registry.h"
#include "silod.h"
#include "util/cleanup.h"
#include "util/json.h"

#define JOB_OUTPUT_MAX (4u << 20)       /* queued progress beyond this is dropped */
#define AUTH_HEADER_MAX 16384

/* ---- registry credentials ---- */

static int b64url_value(char ch)
{
        if (ch >= 'A' && ch <= 'Z')
                return ch - 'A';
        if (ch >= 'a' && ch <= 'z')
                return ch - 'a' + 26;
        if (ch >= '0' && ch <= '9')
                return ch - '0' + 52;
        if (ch == '-' || ch == '+')
                return 62;
        if (ch == '_' || ch == '/')
                return 63;
        return -1;
}

/* base64url (padding optional; the standard alphabet is accepted too). */
static int b64_decode(const char *in, char **ret, size_t *ret_len)
{
        size_t n = strlen(in);
        _cleanup_free_ char *out = malloc(n / 4 * 3 + 4);
        if (!out)
                return -ENOMEM;
        size_t len = 0;
        unsigned acc = 0, bits = 0;
        for (size_t i = 0; i < n; i++) {
                if (in[i] == '=')
                        break;
                int v = b64url_value(in[i]);
                if (v < 0)
                        return -EINVAL;
                acc = (acc << 6) | (unsigned) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[len++] = (char) ((acc >> bits) & 0xff);
                }
        }
        out[len] = 0;
        *ret = TAKE_PTR(out);
        *ret_len = len;
        return 0;
}

void registry_auth_done(struct registry_auth *a)
{
        if (a->password)
                explicit_bzero(a->password, strlen(a->password));
        free(a->username);
        free(a->password);
        free(a->server);
        *a = (struct registry_auth) {};
}

int registry_auth_from_json(json_t *doc, struct registry_auth *ret, silo_error *err)
{
        *ret = (struct registry_auth) {};
        if (!json_is_object(doc))
                return silo_error_msg(err, EINVAL, "registry auth: expected a JSON object");
        static const char *const keys[] = { "username", "password", "serveraddress" };
        char **dst[] = { &ret->username, &ret->password, &ret->server };
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
                json_t *v = json_object_get(doc, keys[i]);
                if (!v || json_is_null(v))
                        continue;
                if (!json_is_string(v)) {
                        registry_auth_done(ret);
                        return silo_error_msg(err, EINVAL, "registry auth: %s: expected a string", keys[i]);
                }
                if (!*json_string_value(v))
                        continue;
                *dst[i] = strdup(json_string_value(v));
                if (!*dst[i]) {
                        registry_auth_done(ret);
                        return silo_error_set(err, ENOMEM, "registry auth");
                }
        }
        /* An identity token (OAuth refresh token) is not supported; without a
         * user the pull is anonymous. */
        if (!ret->username && ret->password) {
                free(ret->password);
                ret->password = NULL;
        }
        return 0;
}

int registry_auth_from_header(const char *header, struct registry_auth *ret, silo_error *err)
{
        *ret = (struct registry_auth) {};
        if (!header || !*header)
                return 0;
        if (strlen(header) > AUTH_HEADER_MAX)
                return silo_error_msg(err, EINVAL, "X-Registry-Auth: longer than %u bytes", AUTH_HEADER_MAX);
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = b64_decode(header, &text, &len);
        if (r < 0)
                return silo_error_msg(err, -r, "X-Registry-Auth: invalid base64url");
        /* The CLI sends "{}" (or nothing useful) for anonymous access. */
        _cleanup_json_ json_t *doc = NULL;
        if (silo_json_load_buffer(text, len, "X-Registry-Auth", &doc, err) < 0) {
                explicit_bzero(text, len);
                return -EINVAL;
        }
        explicit_bzero(text, len);
        r = registry_auth_from_json(doc, ret, err);
        if (r < 0)
                return silo_error_prefix(err, "X-Registry-Auth");
        /* The parsed document holds the password too. */
        json_t *pw = json_object_get(doc, "password");
        if (json_is_string(pw))
                explicit_bzero((char *) json_string_value(pw), strlen(json_string_value(pw)));
        return 0;
}

/* ---- the worker and its output queue ---- */

struct job;
typedef int (*job_fn)(struct job *j, silo_error *err);

struct job {
        struct silod *d;
        struct MHD_Connection *conn;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        char *out;                      /* queued output, out_off already sent */
        size_t out_len, out_off;
        bool done, cancelled, started;
        bool pipe_out;                  /* save: output goes through the pipe fd/write_fd */
        int result;
        silo_error err;
        pthread_t thread;
        job_fn run;

        /* parameters */
        char *ref;                      /* pull/push: the reference; import: the name (may be NULL) */
        char *shown;                    /* the name as docker shows it */
        const char *platform;
        char *message;                  /* import: commit message */
        struct registry_auth auth;
        int fd;                         /* import: the uploaded tarball; save: the pipe's read end */
        int write_fd;                   /* save: the pipe's write end (the worker's) */
        char **names;                   /* save */

        /* progress state */
        silo_progress progress;
        bool said_hello;
        json_t *extracting;             /* pull: layers that reported unpack progress */
        char manifest_digest[SILO_DIGEST_SIZE];
        uint64_t manifest_size;
};

static bool job_cancelled(void *userdata)
{
        struct job *j = userdata;
        pthread_mutex_lock(&j->lock);
        bool c = j->cancelled;
        pthread_mutex_unlock(&j->lock);
        return c;
}

/* Queues raw bytes (save) or a JSON line (progress); progress is dropped
 * when the client does not keep up, never the final messages. */
static void job_output(struct job *j, const char *data, size_t len, bool droppable)
{
        pthread_mutex_lock(&j->lock);
        if (j->cancelled || (droppable && j->out_len - j->out_off > JOB_OUTPUT_MAX)) {
                pthread_mutex_unlock(&j->lock);
                return;
        }
        if (j->out_off > 0 && j->out_off == j->out_len) {
                j->out_len = j->out_off = 0;
        }
        char *nb = realloc(j->out, j->out_len + len);
        if (nb) {
                memcpy(nb + j->out_len, data, len);
                j->out = nb;
                j->out_len += len;
                pthread_cond_broadcast(&j->cond);
        }
        pthread_mutex_unlock(&j->lock);
}

static void job_message(struct job *j, json_t *msg, bool droppable)
{
        if (!msg)
                return;
        _cleanup_free_ char *line = json_dumps(msg, JSON_COMPACT);
        json_decref(msg);
        if (!line)
                return;
        size_t n = strlen(line);
        char *withnl = realloc(line, n + 1);    /* room for the newline instead of the NUL */
        if (!withnl)
                return;
        line = withnl;
        line[n] = '\n';
        job_output(j, line, n + 1, droppable);
}

static void job_status(struct job *j, const char *status, const char *id)
{
        json_t *m = json_pack("{s:s}", "status", status);
        if (m && id)
                json_object_set_new(m, "id", json_string(id));
        job_message(j, m, false);
}

static void *job_thread(void *userdata)
{
        struct job *j = userdata;
        silo_error err = SILO_ERROR_INIT;
        int r = j->run(j, &err);
        pthread_mutex_lock(&j->lock);
        j->result = r;
        j->err = err;
        j->done = true;
        pthread_cond_broadcast(&j->cond);
        pthread_mutex_unlock(&j->lock);
        return NULL;
}

static void job_free(struct job *j)
{
        if (!j)
                return;
        if (j->started) {
                pthread_mutex_lock(&j->lock);
                j->cancelled = true;
                pthread_mutex_unlock(&j->lock);
                /* A save blocked on a full pipe gets EPIPE. */
                if (j->pipe_out && j->fd >= 0) {
                        close(j->fd);
                        j->fd = -1;
                }
                pthread_join(j->thread, NULL);
        }
        if (j->fd >= 0)
                close(j->fd);
        if (j->write_fd >= 0)
                close(j->write_fd);
        pthread_mutex_destroy(&j->lock);
        pthread_cond_destroy(&j->cond);
        pthread_mutex_destroy(&j->progress.lock);
        free(j->out);
        free(j->ref);
        free(j->shown);
        free(j->message);
        silo_strv_free(j->names);
        json_decref(j->extracting);
        registry_auth_done(&j->auth);
        free(j);
}

static struct job *job_new(struct silod *d, struct MHD_Connection *c, job_fn run, silo_progress_fn progress)
{
        struct job *j = calloc(1, sizeof(*j));
        if (!j)
                return NULL;
        j->d = d;
        j->conn = c;
        j->run = run;
        j->fd = j->write_fd = -1;
        pthread_mutex_init(&j->lock, NULL);
        pthread_cond_init(&j->cond, NULL);
        pthread_mutex_init(&j->progress.lock, NULL);
        j->progress.fn = progress;
        j->progress.userdata = j;
        return j;
}

/* j->ref = NAME[:TAG] (a "sha256:" tag becomes @digest when digest_tag),
 * checked as a reference, and j->shown its display name.  -ENOMEM, or
 * -EINVAL with err set for a malformed reference. */
static int job_set_ref(struct job *j, const char *name, const char *tag, bool digest_tag, silo_error *err)
{
        const char *sep = digest_tag && tag && strncmp(tag, "sha256:", 7) == 0 ? "@" : ":";
        int r = tag && *tag ? asprintf(&j->ref, "%s%s%s", name, sep, tag) : asprintf(&j->ref, "%s", name);
        if (r < 0) {
                j->ref = NULL;
                return -ENOMEM;
        }
        _cleanup_reference_ silo_reference *ref = NULL;
        if (silo_reference_parse(j->ref, &ref, err) < 0)
                return -EINVAL;
        _cleanup_free_ char *full = silo_reference_name(ref);
        j->shown = full ? image_display_name(full) : NULL;
        return j->shown ? 0 : -ENOMEM;
}

/* Answers a job_set_ref() failure and frees the job. */
static enum MHD_Result job_ref_error(struct MHD_Connection *c, struct job *j, int r, const silo_error *err)
{
        enum MHD_Result ret = r == -ENOMEM ? reply_error(c, 500, "out of memory")
                                           : reply_error(c, 400, "invalid reference format: %s", err->message);
        job_free(j);
        return ret;
}

static void deadline_in(struct timespec *ts, long ms)
{
        clock_gettime(CLOCK_REALTIME, ts);
        ts->tv_sec += ms / 1000;
        ts->tv_nsec += (ms % 1000) * 1000000;
        if (ts->tv_nsec >= 1000000000) {
                ts->tv_sec++;
                ts->tv_nsec -= 1000000000;
        }
}

/* JSON progress streams end with an error line when the worker failed. */
static ssize_t job_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        (void) pos;
        struct job *j = cls;
        pthread_mutex_lock(&j->lock);
        for (;;) {
                if (j->out_off < j->out_len) {
                        size_t n = j->out_len - j->out_off;
                        if (n > max)
                                n = max;
                        memcpy(buf, j->out + j->out_off, n);
                        j->out_off += n;
                        pthread_mutex_unlock(&j->lock);
                        return (ssize_t) n;
                }
                if (j->done) {
                        pthread_mutex_unlock(&j->lock);
                        return MHD_CONTENT_READER_END_OF_STREAM;
                }
                struct timespec ts;
                deadline_in(&ts, 200);
                pthread_cond_timedwait(&j->cond, &j->lock, &ts);
                if (j->out_off < j->out_len || j->done)
                        continue;
                pthread_mutex_unlock(&j->lock);
                bool gone = connection_gone(j->conn, 0);
                pthread_mutex_lock(&j->d->lock);
                gone |= j->d->stopping;
                pthread_mutex_unlock(&j->d->lock);
                pthread_mutex_lock(&j->lock);
                if (gone) {
                        j->cancelled = true;
                        pthread_mutex_unlock(&j->lock);
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                }
        }
}

static void job_read_free(void *cls)
{
        job_free(cls);
}

/* Starts the worker, waits for its first output (an error before any output
 * becomes a plain HTTP error, as dockerd answers a pull of a missing image),
 * then streams the rest. */
static enum MHD_Result job_respond(struct job *j, const char *content_type)
{
        if (pthread_create(&j->thread, NULL, job_thread, j) != 0) {
                job_free(j);
                return reply_error(j->conn, 500, "cannot start a worker thread");
        }
        j->started = true;
        struct MHD_Connection *c = j->conn;
        pthread_mutex_lock(&j->lock);
        while (j->out_len == 0 && !j->done) {
                struct timespec ts;
                deadline_in(&ts, 200);
                pthread_cond_timedwait(&j->cond, &j->lock, &ts);
                if (j->out_len || j->done)
                        break;
                pthread_mutex_unlock(&j->lock);
                bool gone = connection_gone(c, 0);
                pthread_mutex_lock(&j->d->lock);
                gone |= j->d->stopping;
                pthread_mutex_unlock(&j->d->lock);
                pthread_mutex_lock(&j->lock);
                if (gone) {
                        pthread_mutex_unlock(&j->lock);
                        job_free(j);
                        return MHD_NO;
                }
        }
        bool failed_early = j->done && j->out_len == 0 && j->result < 0;
        int r = j->result;
        silo_error err = j->err;
        pthread_mutex_unlock(&j->lock);
        if (failed_early) {
                job_free(j);
                return reply_errno(c, r, &err);
        }
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, job_read, j,
                                                                      job_read_free);
        if (!resp) {
                job_free(j);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        add_common_headers(resp);
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* The error line the CLI prints (and exits 1 for) after a stream began. */
static void job_error_line(struct job *j, const silo_error *err)
{
        const char *msg = err->message[0] ? err->message : strerror(err->code ? err->code : EIO);
        job_message(j, json_pack("{s:{s:s}, s:s}", "errorDetail", "message", msg, "error", msg), false);
}

/* ---- progress as docker renders it ---- */

/* "sha256:0123456789abcdef..." -> "0123456789ab" */
static void short_id(const char *digest, char buf[13])
{
        const char *colon = digest ? strchr(digest, ':') : NULL;
        snprintf(buf, 13, "%s", colon ? colon + 1 : digest ? digest : "");
}

static void human_size(uint64_t n, char *buf, size_t size)
{
        static const char *const units[] = { "B", "kB", "MB", "GB", "TB" };
        double v = (double) n;
        size_t u = 0;
        while (v >= 1000 && u + 1 < ARRAY_SIZE(units)) {
                v /= 1000;
                u++;
        }
        snprintf(buf, size, u ? "%.3g%s" : "%.0f%s", v, units[u]);
}

static void progress_line(struct job *j, const char *status, const char *digest, uint64_t current, uint64_t total)
{
        char id[13];
        short_id(digest, id);
        json_t *m;
        if (total > 0) {
                char bar[51], cur[32], tot[32], text[128];
                unsigned width = 50, fill = current >= total ? width : (unsigned) (current * width / total);
                for (unsigned i = 0; i < width; i++)
                        bar[i] = i < fill ? '=' : ' ';
                if (fill > 0 && fill < width)
                        bar[fill - 1] = '>';
                bar[width] = 0;
                human_size(current, cur, sizeof(cur));
                human_size(total, tot, sizeof(tot));
                snprintf(text, sizeof(text), "[%s] %8s/%s", bar, cur, tot);
                m = json_pack("{s:s, s:{s:I, s:I}, s:s, s:s}", "status", status, "progressDetail", "current",
                              (json_int_t) current, "total", (json_int_t) total, "progress", text, "id", id);
        } else
                m = json_pack("{s:s, s:{}, s:s}", "status", status, "progressDetail", "id", id);
        job_message(j, m, current > 0 && current < total);
}

/* "Pulling from library/busybox" (id: the tag), once. */
static void pull_hello(struct job *j)
{
        if (j->said_hello)
                return;
        _cleanup_reference_ silo_reference *ref = NULL;
        if (silo_reference_parse(j->ref, &ref, NULL) == 0) {
                char status[600];
                snprintf(status, sizeof(status), "Pulling from %s", ref->path);
                job_status(j, status, ref->tag ? ref->tag : ref->digest);
        }
        j->said_hello = true;
}

static void pull_progress(void *userdata, const silo_progress_event *ev)
{
        struct job *j = userdata;
        if (!ev->kind || strcmp(ev->kind, "layer") != 0)
                return;
        /* Only once the manifest resolved: an unknown image is a plain HTTP error. */
        pull_hello(j);
        switch (ev->phase) {
        case SILO_PROGRESS_WAITING:
                progress_line(j, "Pulling fs layer", ev->id, 0, 0);
                break;
        case SILO_PROGRESS_EXISTS:
                progress_line(j, "Already exists", ev->id, 0, 0);
                break;
        case SILO_PROGRESS_DOWNLOADING:
                progress_line(j, "Downloading", ev->id, ev->current, ev->total);
                break;
        case SILO_PROGRESS_UNPACKING:
                progress_line(j, "Extracting", ev->id, ev->current, ev->total);
                if (j->extracting && ev->id)
                        json_object_set_new(j->extracting, ev->id, json_true());
                break;
        case SILO_PROGRESS_RETRYING:
                progress_line(j, "Retrying", ev->id, 0, 0);
                break;
        case SILO_PROGRESS_DONE:
                if (ev->message && strcmp(ev->message, "downloaded") == 0) {
                        progress_line(j, "Verifying Checksum", ev->id, 0, 0);
                        progress_line(j, "Download complete", ev->id, 0, 0);
                } else {
                        /* Small layers unpack before any progress report: docker always shows one. */
                        if (ev->id && !json_object_get(j->extracting, ev->id))
                                progress_line(j, "Extracting", ev->id, ev->total, ev->total);
                        progress_line(j, "Pull complete", ev->id, 0, 0);
                }
                break;
        default:
                break;
        }
}

static int open_store_job(struct job *j, silo_store **ret, silo_error *err)
{
        return open_store(j->d, ret, err);
}

static void options_for(struct job *j, silo_registry_options *o)
{
        silo_registry_options_init(o);
        o->authfile = "";               /* credentials come from the client only */
        o->username = j->auth.username;
        o->password = j->auth.password;
        o->platform = j->platform;
        o->progress = &j->progress;
        o->reg.progress = &j->progress;
        o->cancelled = job_cancelled;
        o->cancel_userdata = j;
}

static int run_pull(struct job *j, silo_error *err)
{
        silo_store *s = NULL;
        int r = open_store_job(j, &s, err);
        if (r < 0)
                return r;
        /* Was the name already there, and pointing where? ("up to date") */
        char before[SILO_DIGEST_SIZE] = "";
        _cleanup_image_ silo_image *old = NULL;
        if (silo_image_lookup(s, j->ref, &old, NULL) == 0)
                memcpy(before, old->digest, SILO_DIGEST_SIZE);
        silo_registry_options o;
        options_for(j, &o);
        char digest[SILO_DIGEST_SIZE];
        r = silo_registry_pull(s, j->ref, &o, digest, err);
        silo_store_free(s);
        if (r < 0) {
                if (r == -ENOENT && !j->said_hello)
                        silo_error_prefix(err, "manifest for %s not found", j->shown);
                if (j->said_hello)
                        job_error_line(j, err);
                return r;
        }
        pull_hello(j);          /* an image without layers */
        char line[600];
        snprintf(line, sizeof(line), "Digest: %s", digest);
        job_status(j, line, NULL);
        snprintf(line, sizeof(line), "Status: %s for %s",
                 strcmp(before, digest) == 0 ? "Image is up to date" : "Downloaded newer image", j->shown);
        job_status(j, line, NULL);
        _cleanup_reference_ silo_reference *ref = NULL;
        json_t *attrs = NULL;
        if (silo_reference_parse(j->ref, &ref, NULL) == 0) {
                _cleanup_free_ char *repo = silo_reference_repository(ref);
                _cleanup_free_ char *shown_repo = repo ? image_display_name(repo) : NULL;
                attrs = json_pack("{s:s}", "name", shown_repo ? shown_repo : j->shown);
        }
        events_emit(j->d, "image", "pull", j->shown, attrs);
        return 0;
}

static int run_import(struct job *j, silo_error *err)
{
        silo_store *s = NULL;
        int r = open_store_job(j, &s, err);
        if (r < 0)
                return r;
        silo_import_options o;
        silo_import_options_init(&o);
        o.name = j->ref;
        o.info.comment = j->message;
        o.info.created_by = "docker import (silod)";
        char digest[SILO_DIGEST_SIZE];
        r = silo_image_import_fd(s, j->fd, &o, digest, err);
        _cleanup_image_ silo_image *img = NULL;
        if (r == 0)
                r = silo_image_lookup(s, digest, &img, err);
        silo_store_free(s);
        if (r < 0)
                return r;
        job_status(j, img->id, NULL);
        events_emit(j->d, "image", "import", img->id, j->shown ? json_pack("{s:s}", "name", j->shown) : NULL);
        return 0;
}

/* POST /images/create: fromImage (+ tag, platform) pulls; fromSrc=- imports
 * the request body (repo + tag name it). */
enum MHD_Result image_create(struct silod *d, struct MHD_Connection *c, struct request *req)
{
        const char *from_image = query(c, "fromImage"), *from_src = query(c, "fromSrc");
        const char *tag = query(c, "tag"), *repo = query(c, "repo");
        silo_error err = SILO_ERROR_INIT;
        if (from_src && *from_src) {
                if (strcmp(from_src, "-") != 0)
                        return reply_error(c, 501, "fromSrc: importing from a URL is not supported (only '-', the "
                                                   "request body)");
                if (query(c, "changes"))
                        return reply_error(c, 501, "changes: not supported by silod's import yet (use `silo import -c`)");
                if (req->upload_fd < 0)
                        return reply_error(c, 400, "fromSrc=-: empty request body (expected a root filesystem tarball)");
                if (lseek(req->upload_fd, 0, SEEK_SET) < 0)
                        return reply_error(c, 500, "import: seek: %s", strerror(errno));
                struct job *j = job_new(d, c, run_import, NULL);
                if (!j)
                        return reply_error(c, 500, "out of memory");
                j->fd = fcntl(req->upload_fd, F_DUPFD_CLOEXEC, 3);
                const char *msg = query(c, "message");
                if (msg && *msg && !(j->message = strdup(msg))) {
                        job_free(j);
                        return reply_error(c, 500, "out of memory");
                }
                if (repo && *repo) {
                        if (asprintf(&j->ref, "%s%s%s", repo, tag && *tag ? ":" : "", tag && *tag ? tag : "") < 0)
                                j->ref = NULL;
                        if (!j->ref || !silo_reference_valid(j->ref)) {
                                job_free(j);
                                return reply_error(c, 400, "invalid reference format: %s", repo);
                        }
                        j->shown = image_display_name(j->ref);
                }
                if (j->fd < 0) {
                        job_free(j);
                        return reply_error(c, 500, "import: %s", strerror(errno));
                }
                return job_respond(j, "application/json");
        }
        if (!from_image || !*from_image)
                return reply_error(c, 400, "fromImage or fromSrc is required");
        struct job *j = job_new(d, c, run_pull, pull_progress);
        if (!j || !(j->extracting = json_object())) {
                job_free(j);
                return reply_error(c, 500, "out of memory");
        }
        int r = job_set_ref(j, from_image, tag, true, &err);
        if (r < 0)
                return job_ref_error(c, j, r, &err);
        j->platform = query(c, "platform");
        if (j->platform && !*j->platform)
                j->platform = NULL;
        if (registry_auth_from_header(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Registry-Auth"), &j->auth,
                                      &err) < 0) {
                job_free(j);
                return reply_error(c, 400, "%s", err.message);
        }
        return job_respond(j, "application/json");
}

/* ---- push ---- */

static void push_progress(void *userdata, const silo_progress_event *ev)
{
        struct job *j = userdata;
        if (ev->kind && strcmp(ev->kind, "manifest") == 0 && ev->phase == SILO_PROGRESS_DONE) {
                snprintf(j->manifest_digest, sizeof(j->manifest_digest), "%s", ev->id ? ev->id : "");
                j->manifest_size = ev->total;
                return;
        }
        if (!ev->kind || strcmp(ev->kind, "layer") != 0)
                return;
        switch (ev->phase) {
        case SILO_PROGRESS_EXISTS:
                progress_line(j, "Layer already exists", ev->id, 0, 0);
                break;
        case SILO_PROGRESS_MOUNTED: {
                char status[600];
                snprintf(status, sizeof(status), "Mounted from %s", ev->message ? ev->message : "");
                progress_line(j, status, ev->id, 0, 0);
                break;
        }
        case SILO_PROGRESS_UPLOADING:
                if (ev->current == 0)
                        progress_line(j, "Preparing", ev->id, 0, 0);
                progress_line(j, "Pushing", ev->id, ev->current, ev->total);
                break;
        case SILO_PROGRESS_RETRYING:
                progress_line(j, "Retrying", ev->id, 0, 0);
                break;
        case SILO_PROGRESS_DONE:
                progress_line(j, "Pushed", ev->id, 0, 0);
                break;
        default:
                break;
        }
}

static int run_push(struct job *j, silo_error *err)
{
        silo_store *s = NULL;
        int r = open_store_job(j, &s, err);
        if (r < 0)
                return r;
        _cleanup_reference_ silo_reference *ref = NULL;
        r = silo_reference_parse(j->ref, &ref, err);
        if (r < 0) {
                silo_store_free(s);
                return r;
        }
        _cleanup_free_ char *repo = silo_reference_repository(ref);
        _cleanup_free_ char *shown_repo = repo ? image_display_name(repo) : NULL;
        char line[700];
        snprintf(line, sizeof(line), "The push refers to repository [%s]", repo ? repo : j->ref);
        job_status(j, line, NULL);
        silo_registry_options o;
        options_for(j, &o);
        char digest[SILO_DIGEST_SIZE];
        r = silo_registry_push(s, j->ref, NULL, &o, digest, err);
        silo_store_free(s);
        if (r < 0) {
                job_error_line(j, err);
                return r;
        }
        const char *tag = ref->tag ? ref->tag : "latest";
        snprintf(line, sizeof(line), "%s: digest: %s size: %llu", tag, digest, (unsigned long long) j->manifest_size);
        job_status(j, line, NULL);
        job_message(j, json_pack("{s:{}, s:{s:s, s:s, s:I}}", "progressDetail", "aux", "Tag", tag, "Digest", digest,
                                 "Size", (json_int_t) j->manifest_size), false);
        events_emit(j->d, "image", "push", j->shown, json_pack("{s:s}", "name", shown_repo ? shown_repo : j->shown));
        return 0;
}

enum MHD_Result image_push(struct silod *d, struct MHD_Connection *c, const char *name)
{
        const char *tag = query(c, "tag");
        silo_error err = SILO_ERROR_INIT;
        struct job *j = job_new(d, c, run_push, push_progress);
        if (!j)
                return reply_error(c, 500, "out of memory");
        /* The CLI sends the tag separately; a name with its own tag is taken as is. */
        int r = job_set_ref(j, name, tag, false, &err);
        if (r < 0)
                return job_ref_error(c, j, r, &err);
        silo_store *s = NULL;
        if (open_store(d, &s, &err) < 0) {
                job_free(j);
                return reply_errno(c, -(err.code ? err.code : EIO), &err);
        }
        _cleanup_image_ silo_image *img = NULL;
        r = silo_image_lookup(s, j->ref, &img, NULL);
        silo_store_free(s);
        if (r < 0 || !j->shown) {
                enum MHD_Result ret = reply_error(c, 404, "An image does not exist locally with the tag: %s",
                                                  j->shown ? j->shown : name);
                job_free(j);
                return ret;
        }
        if (registry_auth_from_header(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Registry-Auth"), &j->auth,
                                      &err) < 0) {
                job_free(j);
                return reply_error(c, 400, "%s", err.message);
        }
        return job_respond(j, "application/json");
}

/* ---- save ---- */

static int run_save(struct job *j, silo_error *err)
{
        silo_store *s = NULL;
        int r = open_store_job(j, &s, err);
        if (r == 0) {
                r = silo_archive_save(s, (const char *const *) j->names, SILO_ARCHIVE_DOCKER, j->write_fd, NULL, err);
                silo_store_free(s);
        }
        /* EOF for the reader; a failure shows as a truncated archive (the
         * headers went out long ago), which the CLI reports. */
        close(j->write_fd);
        j->write_fd = -1;
        if (r == 0)
                for (char **n = j->names; *n; n++)
                        events_emit(j->d, "image", "save", *n, NULL);
        return r;
}

static ssize_t save_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        (void) pos;
        struct job *j = cls;
        for (;;) {
                ssize_t n = read(j->fd, buf, max);
                if (n > 0)
                        return n;
                if (n == 0) {
                        /* Writer done: a failed save must not look complete. */
                        pthread_join(j->thread, NULL);
                        j->started = false;
                        return j->result < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
                }
                if (errno != EINTR)
                        return MHD_CONTENT_READER_END_WITH_ERROR;
        }
}

enum MHD_Result image_save(struct silod *d, struct MHD_Connection *c, char **names)
{
        _cleanup_strv_ char **v = names;
        if (!v || !v[0])
                return reply_error(c, 400, "names: at least one image is required");
        silo_error err = SILO_ERROR_INIT;
        silo_store *s = NULL;
        int r = open_store(d, &s, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        for (char **n = v; *n; n++) {
                _cleanup_image_ silo_image *img = NULL;
                if (silo_image_lookup(s, *n, &img, NULL) < 0) {
                        silo_store_free(s);
                        return reply_error(c, 404, "No such image: %s", *n);
                }
        }
        silo_store_free(s);
        struct job *j = job_new(d, c, run_save, NULL);
        if (!j)
                return reply_error(c, 500, "out of memory");
        j->names = TAKE_PTR(v);
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
                job_free(j);
                return reply_error(c, 500, "pipe: %s", strerror(errno));
        }
        j->fd = p[0];
        j->write_fd = p[1];
        j->pipe_out = true;
        if (pthread_create(&j->thread, NULL, job_thread, j) != 0) {
                job_free(j);
                return reply_error(c, 500, "cannot start a worker thread");
        }
        j->started = true;
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, save_read, j,
                                                                      job_read_free);
        if (!resp) {
                job_free(j);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-tar");
        add_common_headers(resp);
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
}
