/* /containers/...: records, lifecycle through the monitor, wait, list,
 * inspect.  The table is guarded by d->lock; slow work (bundles, removal,
 * spawning monitors) happens with the lock released and a reference held. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "image/bundle.h"
#include "image/image.h"
#include "process/container.h"
#include "silod.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

extern char **environ;

void spawnattr_init_clean_signals(posix_spawnattr_t *attr)
{
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_init(attr);
        posix_spawnattr_setsigmask(attr, &none);
        posix_spawnattr_setsigdefault(attr, &all);
        posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

/* ---- the table ---- */

static void ctr_free(struct ctr *ct)
{
        if (!ct)
                return;
        free(ct->name);
        free(ct->dir);
        json_decref(ct->record);
        free(ct);
}

void ctr_unref(struct silod *d, struct ctr *ct)
{
        if (!ct)
                return;
        pthread_mutex_lock(&d->lock);
        bool last = --ct->refs == 0;
        pthread_mutex_unlock(&d->lock);
        if (last)
                ctr_free(ct);
}

static struct ctr *lookup_locked(struct silod *d, const char *ref)
{
        if (!ref || !*ref)
                return NULL;
        const char *name = ref[0] == '/' ? ref + 1 : ref;
        struct ctr *prefix = NULL;
        unsigned n_prefix = 0;
        size_t len = strlen(ref);
        for (struct ctr *ct = d->containers; ct; ct = ct->next) {
                if (strcmp(ct->id, ref) == 0 || strcmp(ct->name, name) == 0)
                        return ct;
                if (len < 64 && strncmp(ct->id, ref, len) == 0) {
                        prefix = ct;
                        n_prefix++;
                }
        }
        return n_prefix == 1 ? prefix : NULL;
}

struct ctr *ctr_lookup(struct silod *d, const char *ref)
{
        pthread_mutex_lock(&d->lock);
        struct ctr *ct = lookup_locked(d, ref);
        if (ct)
                ct->refs++;
        pthread_mutex_unlock(&d->lock);
        return ct;
}

bool ctr_tty(const struct ctr *ct)
{
        return json_is_true(json_object_get(json_object_get(ct->record, "Config"), "Tty"));
}

static bool auto_remove(const struct ctr *ct)
{
        return json_is_true(json_object_get(json_object_get(ct->record, "HostConfig"), "AutoRemove"));
}

/* A monitor that exited may linger as a zombie until its new parent reaps
 * it: that counts as dead. */
static bool pid_alive(pid_t pid)
{
        if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM))
                return false;
        char path[64], buf[256];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return false;
        buf[n] = 0;
        const char *end = strrchr(buf, ')');
        return !(end && end[1] == ' ' && (end[2] == 'Z' || end[2] == 'X'));
}

/* Applies exit.json if present; true if it was, or if it could not be read
 * (a transient error must not turn into a made-up exit: look again later). */
static bool apply_exit_locked(struct silod *d, struct ctr *ct, int dirfd)
{
        struct silo_engine_exit ex;
        int r = silo_engine_exit_load(dirfd, &ex, NULL);
        if (r == -ENOENT)
                return false;
        if (r < 0)
                return true;
        ct->paused = false;
        if (ct->status != CTR_EXITED || ct->finished_at != ex.finished_at) {
                ct->status = CTR_EXITED;
                ct->exit_code = ex.exit_code;
                ct->finished_at = ex.finished_at;
                snprintf(ct->error, sizeof(ct->error), "%s", ex.error);
                ct->exits++;
                pthread_cond_broadcast(&d->changed);
        }
        struct silo_engine_started st;
        if (silo_engine_started_load(dirfd, &st, NULL) == 0)
                ct->started_at = st.started_at;
        ct->pid = 0;
        return true;
}

void ctr_refresh_locked(struct silod *d, struct ctr *ct)
{
        /* While removing, the files disappear one by one: the state is final. */
        if (ct->starting || ct->removed || ct->removing)
                return;
        _cleanup_close_ int dirfd = open(ct->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return;
        if (apply_exit_locked(d, ct, dirfd))
                return;
        struct silo_engine_started st;
        int r = silo_engine_started_load(dirfd, &st, NULL);
        if (r < 0 && r != -ENOENT)
                return;
        if (r == 0) {
                ct->started_at = st.started_at;
                ct->monitor_pid = st.monitor_pid;
                if (pid_alive(st.monitor_pid)) {
                        ct->status = CTR_RUNNING;
                        ct->pid = st.pid;
                        return;
                }
                /* The monitor writes exit.json just before it exits: look again. */
                if (apply_exit_locked(d, ct, dirfd))
                        return;
                /* The monitor died without recording an exit (killed). */
                if (ct->status != CTR_EXITED) {
                        ct->status = CTR_EXITED;
                        ct->exit_code = 255;
                        ct->finished_at = silo_engine_now_ns();
                        snprintf(ct->error, sizeof(ct->error), "the container's monitor process died");
                        ct->exits++;
                        ct->pid = 0;
                        ct->paused = false;
                        pthread_cond_broadcast(&d->changed);
                }
                return;
        }
        if (ct->status == CTR_RUNNING) {
                if (apply_exit_locked(d, ct, dirfd))
                        return;
                ct->status = CTR_EXITED;
                ct->exit_code = 255;
                snprintf(ct->error, sizeof(ct->error), "the container's state files are gone");
                ct->exits++;
                pthread_cond_broadcast(&d->changed);
        }
}

static int record_save(struct ctr *ct, silo_error *err)
{
        _cleanup_close_ int dirfd = open(ct->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return silo_error_set(err, errno, "open %s", ct->dir);
        return silo_engine_write_json_at(dirfd, SILO_ENGINE_RECORD, ct->record, err);
}

static struct ctr *ctr_from_record(struct silod *d, const char *id, json_t *record)
{
        struct ctr *ct = calloc(1, sizeof(*ct));
        if (!ct)
                return NULL;
        snprintf(ct->id, sizeof(ct->id), "%s", id);
        const char *name = json_string_value(json_object_get(record, "Name"));
        ct->name = strdup(name ? name : id);
        json_t *created = json_object_get(record, "Created");
        ct->created = json_is_integer(created) ? json_integer_value(created) : 0;
        if (asprintf(&ct->dir, "%s/containers/%s", d->state, id) < 0)
                ct->dir = NULL;
        ct->record = json_incref(record);
        ct->refs = 1;
        if (!ct->name || !ct->dir) {
                ctr_free(ct);
                return NULL;
        }
        return ct;
}

int containers_load(struct silod *d, silo_error *err)
{
        int fd = openat(d->containers_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return silo_error_set(err, errno, "open %s/containers", d->state);
        _cleanup_closedir_ DIR *dir = fdopendir(fd);
        if (!dir) {
                close(fd);
                return silo_error_set(err, errno, "opendir %s/containers", d->state);
        }
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (de->d_name[0] == '.' || strlen(de->d_name) != 64)
                        continue;
                _cleanup_close_ int cfd = openat(d->containers_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                _cleanup_json_ json_t *record = NULL;
                /* A container whose create never finished has no record: skip it. */
                if (cfd < 0 || silo_engine_read_json_at(cfd, SILO_ENGINE_RECORD, &record, NULL) < 0)
                        continue;
                struct ctr *ct = ctr_from_record(d, de->d_name, record);
                if (!ct)
                        return silo_error_set(err, ENOMEM, "load containers");
                ctr_refresh_locked(d, ct);
                if (ct->status == CTR_RUNNING) {
                        /* Paused while silod was down (or before it restarted). */
                        struct silo_runtime rt = { .state_root = d->runtime_root };
                        _cleanup_json_ json_t *state = NULL;
                        if (silo_container_state(&rt, ct->id, &state, NULL) == 0)
                                ct->paused = strcmp(json_string_value(json_object_get(state, "status")) ?: "",
                                                    "paused") == 0;
                }
                ct->next = d->containers;
                d->containers = ct;
        }
        return 0;
}

void containers_free(struct silod *d)
{
        while (d->containers) {
                struct ctr *ct = d->containers;
                d->containers = ct->next;
                ctr_unref(d, ct);
        }
}

/* ---- removal ---- */

/* Called with a reference and ct->removing set, lock not held. */
static int ctr_remove_files(struct silod *d, struct ctr *ct, silo_error *err)
{
        silo_store *s = NULL;
        int r = open_store(d, &s, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *bundle = NULL;
        if (asprintf(&bundle, "%s/" SILO_ENGINE_BUNDLE, ct->dir) < 0) {
                silo_store_free(s);
                return silo_error_set(err, ENOMEM, "remove");
        }
        /* A runtime container left by a killed monitor. */
        struct silo_runtime rt = { .state_root = d->runtime_root };
        silo_container_delete(&rt, ct->id, true, NULL);
        r = silo_bundle_remove(s, ct->id, bundle, err);
        silo_store_free(s);
        if (r < 0 && r != -ENOENT)
                return r;
        return silo_rm_rf_at(d->containers_fd, ct->id, err);
}

static void unlink_locked(struct silod *d, struct ctr *ct)
{
        for (struct ctr **p = &d->containers; *p; p = &(*p)->next)
                if (*p == ct) {
                        *p = ct->next;
                        ct->removed = true;
                        ct->refs--;     /* the table's reference; the caller still holds one */
                        execs_prune_locked(d, ct->id);
                        break;
                }
        pthread_cond_broadcast(&d->changed);
}

static int ctr_remove(struct silod *d, struct ctr *ct, silo_error *err)
{
        pthread_mutex_lock(&d->lock);
        if (ct->removing || ct->removed) {
                pthread_mutex_unlock(&d->lock);
                return silo_error_msg(err, EBUSY, "removal of container %s is already in progress", ct->name);
        }
        ct->removing = true;
        pthread_mutex_unlock(&d->lock);
        int r = ctr_remove_files(d, ct, err);
        pthread_mutex_lock(&d->lock);
        if (r == 0)
                unlink_locked(d, ct);
        else
                ct->removing = false;
        pthread_mutex_unlock(&d->lock);
        return r;
}

void *containers_poll_thread(void *userdata)
{
        struct silod *d = userdata;
        pthread_mutex_lock(&d->lock);
        while (!d->stopping) {
                struct ctr *to_remove = NULL;
                for (struct ctr *ct = d->containers; ct; ct = ct->next) {
                        if (ct->status == CTR_RUNNING)
                                ctr_refresh_locked(d, ct);
                        if (!to_remove && ct->status == CTR_EXITED && !ct->removing && !ct->starting &&
                            auto_remove(ct))
                                to_remove = ct;
                }
                if (to_remove) {
                        to_remove->refs++;
                        pthread_mutex_unlock(&d->lock);
                        ctr_remove(d, to_remove, NULL);
                        ctr_unref(d, to_remove);
                        pthread_mutex_lock(&d->lock);
                        continue;
                }
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 50 * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&d->changed, &d->lock, &ts);
        }
        pthread_mutex_unlock(&d->lock);
        return NULL;
}

/* ---- create ---- */

struct create_body {
        bool open_stdin;
        const char *image;
        const char **cmd;
        const char **entrypoint;
        const char **env;
        const char *working_dir;
        const char *user;
        const char *hostname;
        bool tty;
        json_t *host_config;
};

struct host_config {
        int64_t memory;
        silo_opt_i64 pids_limit;
        bool auto_remove;
        bool readonly_rootfs;
        bool privileged;
        const char *isolation;
};

static int parse_cmd(json_t *v, const char *path, void *field, silo_error *err)
{
        /* Docker accepts a string for Cmd/Entrypoint as well as an array. */
        const char ***out = field;
        if (json_is_string(v)) {
                const char **a = calloc(2, sizeof(char *));
                if (!a)
                        return silo_error_set(err, ENOMEM, "%s", path);
                a[0] = json_string_value(v);
                *out = a;
                return 0;
        }
        return silo_json_strv(v, path, out, err);
}

static const struct silo_json_field create_fields[] = {
        { "Image", SILO_JSON_STRING, offsetof(struct create_body, image), SILO_JSON_REQUIRED },
        { "Cmd", SILO_JSON_CUSTOM, offsetof(struct create_body, cmd), SILO_JSON_NULLABLE, parse_cmd },
        { "Entrypoint", SILO_JSON_CUSTOM, offsetof(struct create_body, entrypoint), SILO_JSON_NULLABLE, parse_cmd },
        { "Env", SILO_JSON_STRV, offsetof(struct create_body, env), SILO_JSON_NULLABLE },
        { "WorkingDir", SILO_JSON_STRING, offsetof(struct create_body, working_dir), SILO_JSON_NULLABLE },
        { "User", SILO_JSON_STRING, offsetof(struct create_body, user), SILO_JSON_NULLABLE },
        { "Hostname", SILO_JSON_STRING, offsetof(struct create_body, hostname), SILO_JSON_NULLABLE },
        { "Tty", SILO_JSON_BOOL, offsetof(struct create_body, tty), SILO_JSON_NULLABLE },
        { "OpenStdin", SILO_JSON_BOOL, offsetof(struct create_body, open_stdin), SILO_JSON_NULLABLE },
        { "HostConfig", SILO_JSON_OBJECT, offsetof(struct create_body, host_config), SILO_JSON_NULLABLE },
        {}
};

static const struct silo_json_field host_config_fields[] = {
        { "Memory", SILO_JSON_INT64, offsetof(struct host_config, memory), SILO_JSON_NULLABLE },
        { "PidsLimit", SILO_JSON_OPT_INT64, offsetof(struct host_config, pids_limit), SILO_JSON_NULLABLE },
        { "AutoRemove", SILO_JSON_BOOL, offsetof(struct host_config, auto_remove), SILO_JSON_NULLABLE },
        { "ReadonlyRootfs", SILO_JSON_BOOL, offsetof(struct host_config, readonly_rootfs), SILO_JSON_NULLABLE },
        { "Privileged", SILO_JSON_BOOL, offsetof(struct host_config, privileged), SILO_JSON_NULLABLE },
        { "Isolation", SILO_JSON_STRING, offsetof(struct host_config, isolation), SILO_JSON_NULLABLE },
        {}
};

static bool name_valid(const char *name)
{
        if (!name[0] || strlen(name) > 128 || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
                                                 (name[0] >= '0' && name[0] <= '9')))
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
                      *p == '.' || *p == '-'))
                        return false;
        return true;
}

static json_t *strv_to_json(const char **v)
{
        json_t *a = json_array();
        for (; a && v && *v; v++)
                json_array_append_new(a, json_string(*v));
        return a;
}

/* Applies what silo_bundle_create does not know: Entrypoint, cgroup, limits. */
static int adjust_spec(struct silod *d, const char *id, const char *bundle, const struct create_body *b,
                       const struct host_config *hc, json_t **ret_args, silo_error *err)
{
        _cleanup_close_ int bfd = open(bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (bfd < 0)
                return silo_error_set(err, errno, "open %s", bundle);
        _cleanup_json_ json_t *spec = NULL;
        int r = silo_json_load_file_at(bfd, "config.json", 4u << 20, &spec, err);
        if (r < 0)
                return r;
        json_t *process = json_object_get(spec, "process");
        json_t *linux_ = json_object_get(spec, "linux");
        if (!json_is_object(process) || !json_is_object(linux_))
                return silo_error_msg(err, EBADMSG, "%s/config.json: no process or linux object", bundle);
        if (b->entrypoint) {
                /* An explicit Entrypoint drops the image's Cmd, as in docker. */
                json_t *args = strv_to_json(b->entrypoint);
                if (b->cmd) {
                        json_t *tail = strv_to_json(b->cmd);
                        json_array_extend(args, tail);
                        json_decref(tail);
                }
                if (json_array_size(args) == 0) {
                        json_decref(args);
                        return silo_error_msg(err, EINVAL, "no command specified");
                }
                json_object_set_new(process, "args", args);
        }
        char cg[512];
        snprintf(cg, sizeof(cg), "%s/%s", strcmp(d->cgroup_parent, "/") == 0 ? "" : d->cgroup_parent, id);
        json_object_set_new(linux_, "cgroupsPath", json_string(cg));
        json_t *res = json_object_get(linux_, "resources");
        if (!json_is_object(res)) {
                res = json_object();
                json_object_set_new(linux_, "resources", res);
        }
        if (hc->memory > 0)
                json_object_set_new(res, "memory", json_pack("{s:I}", "limit", (json_int_t) hc->memory));
        if (hc->pids_limit.set && hc->pids_limit.value > 0)
                json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t) hc->pids_limit.value));
        *ret_args = json_incref(json_object_get(process, "args"));
        return silo_engine_write_json_at(bfd, "config.json", spec, err);
}

static enum MHD_Result container_create(struct silod *d, struct MHD_Connection *c, struct request *req)
{
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *body = NULL;
        int r = request_json(req, &body, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        struct create_body b = {};
        struct host_config hc = {};
        r = silo_json_dispatch(body, "", create_fields, &b, &err);
        if (r == 0 && b.host_config)
                r = silo_json_dispatch(b.host_config, "HostConfig", host_config_fields, &hc, &err);
        _cleanup_free_ const char **cmd = b.cmd, **entrypoint = b.entrypoint, **env = b.env;
        if (r < 0)
                return reply_error(c, 400, "%s", err.message);
        if (hc.isolation && *hc.isolation && strcmp(hc.isolation, "process") != 0 &&
            strcmp(hc.isolation, "default") != 0)
                return reply_error(c, strcmp(hc.isolation, "hyperv") == 0 ? 501 : 400,
                                   "HostConfig.Isolation: \"%s\" is not available yet (process and default are)",
                                   hc.isolation);
        if (hc.privileged)
                return reply_error(c, 501, "HostConfig.Privileged: not supported by silod yet");

        char id[65];
        silo_random_hex(id, 64);
        id[64] = 0;
        const char *name = query(c, "name");
        char gen_name[32];
        if (name && *name) {
                if (name[0] == '/')
                        name++;
                if (!name_valid(name))
                        return reply_error(c, 400, "Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                                                   "allowed", name);
        } else {
                snprintf(gen_name, sizeof(gen_name), "silo_%.12s", id);
                name = gen_name;
        }

        silo_store *s = NULL;
        r = open_store(d, &s, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        _cleanup_image_ silo_image *img = NULL;
        r = silo_image_lookup(s, b.image, &img, &err);
        if (r < 0) {
                silo_store_free(s);
                if (r == -ENOENT)
                        return reply_error(c, 404, "No such image: %s", b.image);
                return reply_errno(c, r, &err);
        }

        /* Reserve the name with a placeholder record so two creates cannot race. */
        _cleanup_json_ json_t *config = json_deep_copy(body);
        json_object_del(config, "HostConfig");
        json_object_del(config, "NetworkingConfig");
        json_t *record = json_pack("{s:s, s:s, s:I, s:O, s:o, s:s, s:s}", "Id", id, "Name", name, "Created",
                                   (json_int_t) silo_engine_now_ns(), "Config", config, "HostConfig",
                                   b.host_config ? json_incref(b.host_config) : json_object(), "Image", b.image, "ImageID",
                                   img->id);
        struct ctr *ct = record ? ctr_from_record(d, id, record) : NULL;
        json_decref(record);
        if (!ct) {
                silo_store_free(s);
                return reply_error(c, 500, "out of memory");
        }
        ct->starting = true;            /* not visible as a real container yet */
        pthread_mutex_lock(&d->lock);
        struct ctr *other = lookup_locked(d, name);
        if (other && strcmp(other->name, name) == 0) {
                char other_id[65];
                snprintf(other_id, sizeof(other_id), "%s", other->id);
                pthread_mutex_unlock(&d->lock);
                silo_store_free(s);
                ctr_free(ct);
                return reply_error(c, 409, "Conflict. The container name \"/%s\" is already in use by container "
                                           "\"%s\". You have to remove (or rename) that container to be able to reuse "
                                           "that name.", name, other_id);
        }
        ct->refs++;
        ct->next = d->containers;
        d->containers = ct;
        pthread_mutex_unlock(&d->lock);

        _cleanup_free_ char *bundle = NULL;
        json_t *args = NULL;
        if (mkdirat(d->containers_fd, id, 0700) < 0)
                r = silo_error_set(&err, errno, "mkdir %s/containers/%s", d->state, id);
        else if (asprintf(&bundle, "%s/" SILO_ENGINE_BUNDLE, ct->dir) < 0)
                r = silo_error_set(&err, ENOMEM, "create");
        else {
                silo_bundle_options o = {
                        .id = id,
                        .args = b.cmd && b.cmd[0] && !b.entrypoint ? b.cmd : NULL,
                        .env = b.env,
                        .user = b.user && *b.user ? b.user : NULL,
                        .cwd = b.working_dir && *b.working_dir ? b.working_dir : NULL,
                        .hostname = b.hostname && *b.hostname ? b.hostname : id,
                        .terminal = b.tty,
                        .readonly = hc.readonly_rootfs,
                };
                char short_host[13];
                if (o.hostname == id) {
                        snprintf(short_host, sizeof(short_host), "%.12s", id);
                        o.hostname = short_host;
                }
                r = silo_bundle_create(s, img->digest, bundle, &o, &err);
                if (r == 0) {
                        r = adjust_spec(d, id, bundle, &b, &hc, &args, &err);
                        if (r < 0)
                                silo_bundle_remove(s, id, bundle, NULL);
                }
        }
        silo_store_free(s);
        if (r == 0) {
                json_object_set_new(ct->record, "Path", json_incref(json_array_get(args, 0)));
                json_t *rest = json_array();
                for (size_t i = 1; i < json_array_size(args); i++)
                        json_array_append(rest, json_array_get(args, i));
                json_object_set_new(ct->record, "Args", rest);
                r = record_save(ct, &err);
        }
        json_decref(args);
        pthread_mutex_lock(&d->lock);
        ct->starting = false;
        if (r < 0)
                unlink_locked(d, ct);
        pthread_mutex_unlock(&d->lock);
        if (r < 0) {
                silo_rm_rf_at(d->containers_fd, id, NULL);
                ctr_unref(d, ct);
                return reply_errno(c, r, &err);
        }
        ctr_unref(d, ct);
        return reply_json(c, 201, json_pack("{s:s, s:[]}", "Id", id, "Warnings"));
}

/* ---- start / stop / kill ---- */

static int spawn_monitor(struct silod *d, struct ctr *ct, pid_t *ret_pid, silo_error *err)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return silo_error_set(err, errno, "pipe");
        _cleanup_close_ int rd = p[0], wr = p[1];
        if (wr == 3) {
                /* dup2 onto itself would keep O_CLOEXEC. */
                int moved = fcntl(wr, F_DUPFD_CLOEXEC, 10);
                if (moved < 0)
                        return silo_error_set(err, errno, "fcntl");
                close(wr);
                wr = moved;
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_RDWR, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_RDWR, 0);
        posix_spawn_file_actions_adddup2(&fa, wr, 3);
        /* silod blocks SIGTERM & co. for sigwait(); the container must not
         * inherit that mask, nor any handler. */
        posix_spawnattr_t attr;
        spawnattr_init_clean_signals(&attr);
        json_t *config = json_object_get(ct->record, "Config");
        char *argv[7] = { d->monitor_path, ct->id, ct->dir, d->runtime_root };   /* NULL-terminated */
        size_t argc = 4;
        if (ctr_tty(ct))
                argv[argc++] = "--tty";
        if (json_is_true(json_object_get(config, "OpenStdin")))
                argv[argc++] = json_is_true(json_object_get(config, "StdinOnce")) ? "--stdin-once" : "--stdin";
        pid_t pid;
        int r = posix_spawn(&pid, d->monitor_path, &fa, &attr, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return silo_error_set(err, r, "spawn %s", d->monitor_path);
        silo_close_reset(&wr);
        /* The first child exits at once; the detached monitor reports. */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        char buf[SILO_ERROR_MAX + 64];
        size_t len = 0;
        while (len < sizeof(buf) - 1) {
                struct pollfd pf = { rd, POLLIN, 0 };
                if (poll(&pf, 1, 60000) <= 0)
                        return silo_error_msg(err, ETIMEDOUT, "the container monitor did not report within 60s");
                ssize_t n = read(rd, buf + len, sizeof(buf) - 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t) n;
        }
        buf[len] = 0;
        char *nl = strchr(buf, '\n');
        if (nl)
                *nl = 0;
        if (buf[0] == 'O') {
                *ret_pid = (pid_t) atoi(buf + 1);
                return 0;
        }
        if (buf[0] == 'E')
                return silo_error_msg(err, EINVAL, "%s", buf + 1);
        return silo_error_msg(err, EIO, "the container monitor exited without reporting (is %s runnable?)",
                              d->monitor_path);
}

static enum MHD_Result container_start(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        if (ct->status == CTR_RUNNING || ct->starting) {
                pthread_mutex_unlock(&d->lock);
                return reply_empty(c, 304);
        }
        if (ct->removing) {
                pthread_mutex_unlock(&d->lock);
                return reply_error(c, 409, "container %s is being removed", ct->name);
        }
        ct->starting = true;
        pthread_mutex_unlock(&d->lock);

        silo_error err = SILO_ERROR_INIT;
        _cleanup_close_ int dirfd = open(ct->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int r = dirfd < 0 ? silo_error_set(&err, errno, "open %s", ct->dir) : 0;
        if (r == 0) {
                unlinkat(dirfd, SILO_ENGINE_EXIT, 0);
                unlinkat(dirfd, SILO_ENGINE_STARTED, 0);
                unlinkat(dirfd, SILO_ENGINE_PIDFILE, 0);
        }
        pid_t pid = 0;
        if (r == 0)
                r = spawn_monitor(d, ct, &pid, &err);
        pthread_mutex_lock(&d->lock);
        ct->starting = false;
        if (r == 0) {
                ct->status = CTR_RUNNING;
                ct->pid = pid;
                ctr_refresh_locked(d, ct);
        } else {
                /* Docker records a failed start as exit code 128-ish; keep it visible. */
                ct->status = CTR_EXITED;
                ct->exit_code = 127;
                ct->finished_at = silo_engine_now_ns();
                snprintf(ct->error, sizeof(ct->error), "%s", err.message);
                ct->exits++;
                if (dirfd >= 0) {
                        json_t *ex = json_pack("{s:i, s:I, s:s}", "ExitCode", 127, "FinishedAt",
                                               (json_int_t) ct->finished_at, "Error", err.message);
                        if (ex)
                                silo_engine_write_json_at(dirfd, SILO_ENGINE_EXIT, ex, NULL);
                        json_decref(ex);
                }
        }
        pthread_cond_broadcast(&d->changed);
        pthread_mutex_unlock(&d->lock);
        if (r < 0)
                return reply_error(c, 400, "failed to start container %s: %s", ct->name, err.message);
        return reply_empty(c, 204);
}

static int parse_signal(const char *s)
{
        static const struct { const char *name; int sig; } sigs[] = {
                { "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "KILL", SIGKILL },
                { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "TERM", SIGTERM }, { "STOP", SIGSTOP },
                { "CONT", SIGCONT }, { "WINCH", SIGWINCH }, { "ALRM", SIGALRM },
        };
        if (!s || !*s)
                return SIGKILL;
        char *end;
        long n = strtol(s, &end, 10);
        if (*end == 0)
                return n > 0 && n < 65 ? (int) n : -1;
        if (strncasecmp(s, "SIG", 3) == 0)
                s += 3;
        for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
                if (strcasecmp(s, sigs[i].name) == 0)
                        return sigs[i].sig;
        return -1;
}

/* Waits (lock held) until the container is not running or ms passed. */
static bool wait_exit_locked(struct silod *d, struct ctr *ct, int ms)
{
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += ms / 1000;
        deadline.tv_nsec += (long) (ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000;
        }
        for (;;) {
                ctr_refresh_locked(d, ct);
                if (ct->status != CTR_RUNNING)
                        return true;
                if (d->stopping || pthread_cond_timedwait(&d->changed, &d->lock, &deadline) == ETIMEDOUT) {
                        ctr_refresh_locked(d, ct);
                        return ct->status != CTR_RUNNING;
                }
        }
}

static int signal_container(struct silod *d, struct ctr *ct, int sig, silo_error *err)
{
        struct silo_runtime rt = { .state_root = d->runtime_root };
        int r = silo_container_kill(&rt, ct->id, sig, sig == SIGKILL, err);
        /* A frozen container would never see the signal. */
        pthread_mutex_lock(&d->lock);
        bool paused = ct->paused;
        pthread_mutex_unlock(&d->lock);
        if (paused && (sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) &&
            silo_container_resume(&rt, ct->id, NULL) == 0) {
                pthread_mutex_lock(&d->lock);
                ct->paused = false;
                pthread_mutex_unlock(&d->lock);
        }
        return r;
}

static enum MHD_Result container_pause(struct silod *d, struct MHD_Connection *c, struct ctr *ct, bool pause)
{
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        bool running = ct->status == CTR_RUNNING, paused = ct->paused;
        pthread_mutex_unlock(&d->lock);
        if (!running)
                return reply_error(c, 409, "Container %s is not running", ct->id);
        if (pause && paused)
                return reply_error(c, 409, "Container %s is already paused", ct->id);
        if (!pause && !paused)
                return reply_error(c, 409, "Container %s is not paused", ct->id);
        struct silo_runtime rt = { .state_root = d->runtime_root };
        silo_error err = SILO_ERROR_INIT;
        int r = pause ? silo_container_pause(&rt, ct->id, &err) : silo_container_resume(&rt, ct->id, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        pthread_mutex_lock(&d->lock);
        ct->paused = pause;
        pthread_mutex_unlock(&d->lock);
        return reply_empty(c, 204);
}

/* 304 if not running, 204 once stopped, 400/500 with a message. */
static unsigned stop_container(struct silod *d, struct MHD_Connection *c, struct ctr *ct, char *msg, size_t msg_size)
{
        const char *t = query(c, "t");
        long timeout = t && *t ? strtol(t, NULL, 10) : 10;
        if (timeout < 0 || timeout > 3600)
                timeout = 10;
        int sig = SIGTERM;
        const char *qs = query(c, "signal");
        if (qs && *qs && (sig = parse_signal(qs)) < 0) {
                snprintf(msg, msg_size, "invalid signal: %s", qs);
                return 400;
        }
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        bool running = ct->status == CTR_RUNNING;
        pthread_mutex_unlock(&d->lock);
        if (!running)
                return 304;
        silo_error err = SILO_ERROR_INIT;
        signal_container(d, ct, sig, &err);
        pthread_mutex_lock(&d->lock);
        bool stopped = wait_exit_locked(d, ct, (int) timeout * 1000);
        pthread_mutex_unlock(&d->lock);
        if (!stopped) {
                signal_container(d, ct, SIGKILL, &err);
                pthread_mutex_lock(&d->lock);
                stopped = wait_exit_locked(d, ct, 10000);
                pthread_mutex_unlock(&d->lock);
        }
        if (!stopped) {
                snprintf(msg, msg_size, "container %s did not stop after SIGKILL", ct->name);
                return 500;
        }
        return 204;
}

static enum MHD_Result container_stop(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        char msg[512];
        unsigned status = stop_container(d, c, ct, msg, sizeof(msg));
        if (status >= 400)
                return reply_error(c, status, "%s", msg);
        return reply_empty(c, status);
}

static enum MHD_Result container_restart(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        char msg[512];
        unsigned status = stop_container(d, c, ct, msg, sizeof(msg));
        if (status >= 400)
                return reply_error(c, status, "%s", msg);
        return container_start(d, c, ct);
}

static enum MHD_Result container_kill(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        int sig = parse_signal(query(c, "signal"));
        if (sig < 0)
                return reply_error(c, 400, "invalid signal: %s", query(c, "signal"));
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        bool running = ct->status == CTR_RUNNING;
        pthread_mutex_unlock(&d->lock);
        if (!running)
                return reply_error(c, 409, "Container %s is not running", ct->id);
        silo_error err = SILO_ERROR_INIT;
        int r = signal_container(d, ct, sig, &err);
        if (r < 0 && r != -ESRCH && r != -ENOENT)
                return reply_errno(c, r, &err);
        return reply_empty(c, 204);
}

enum wait_mode { WAIT_NOT_RUNNING, WAIT_NEXT_EXIT, WAIT_REMOVED };

struct waiter {
        struct silod *d;
        struct ctr *ct;                 /* reference */
        struct MHD_Connection *conn;
        enum wait_mode mode;
        unsigned exits0;
        bool done;
};

static bool wait_done_locked(struct silod *d, struct waiter *w)
{
        ctr_refresh_locked(d, w->ct);
        switch (w->mode) {
        case WAIT_NOT_RUNNING: return w->ct->status != CTR_RUNNING && !w->ct->starting;
        case WAIT_NEXT_EXIT: return w->ct->exits > w->exits0 || w->ct->removed;
        case WAIT_REMOVED: return w->ct->removed;
        }
        return true;
}

/* The body of /wait: docker sends the headers at once and the status when
 * the condition is met (the CLI starts the container only after the
 * headers arrived). */
static ssize_t wait_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        (void) pos;
        struct waiter *w = cls;
        struct silod *d = w->d;
        if (w->done)
                return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&d->lock);
        while (!wait_done_locked(d, w)) {
                if (d->stopping) {
                        pthread_mutex_unlock(&d->lock);
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                }
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 200 * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&d->changed, &d->lock, &ts);
                pthread_mutex_unlock(&d->lock);
                bool gone = connection_gone(w->conn, 0);
                pthread_mutex_lock(&d->lock);
                if (gone) {
                        pthread_mutex_unlock(&d->lock);
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                }
        }
        json_t *doc = json_pack("{s:i}", "StatusCode", w->ct->exit_code);
        if (doc && w->ct->error[0])
                json_object_set_new(doc, "Error", json_pack("{s:s}", "Message", w->ct->error));
        pthread_mutex_unlock(&d->lock);
        char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        w->done = true;
        if (!text)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        int n = snprintf(buf, max, "%s\n", text);
        free(text);
        return n > 0 && (size_t) n < max ? n : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void wait_free(void *cls)
{
        struct waiter *w = cls;
        ctr_unref(w->d, w->ct);
        free(w);
}

static enum MHD_Result container_wait(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        const char *cond = query(c, "condition");
        enum wait_mode mode = WAIT_NOT_RUNNING;
        if (cond && strcmp(cond, "next-exit") == 0)
                mode = WAIT_NEXT_EXIT;
        else if (cond && strcmp(cond, "removed") == 0)
                mode = WAIT_REMOVED;
        else if (cond && *cond && strcmp(cond, "not-running") != 0)
                return reply_error(c, 400, "invalid condition: %s", cond);
        struct waiter *w = calloc(1, sizeof(*w));
        if (!w)
                return reply_error(c, 500, "out of memory");
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        ct->refs++;
        *w = (struct waiter) { .d = d, .ct = ct, .conn = c, .mode = mode, .exits0 = ct->exits };
        pthread_mutex_unlock(&d->lock);
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, wait_read, w, wait_free);
        if (!resp) {
                wait_free(w);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        add_common_headers(resp);
        enum MHD_Result r = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result container_delete(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        bool force = query_bool(c, "force");
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        bool running = ct->status == CTR_RUNNING || ct->starting;
        pthread_mutex_unlock(&d->lock);
        silo_error err = SILO_ERROR_INIT;
        if (running) {
                if (!force)
                        return reply_error(c, 409, "You cannot remove a running container %s. Stop the container "
                                                   "before attempting removal or force remove", ct->id);
                signal_container(d, ct, SIGKILL, &err);
                pthread_mutex_lock(&d->lock);
                bool stopped = wait_exit_locked(d, ct, 10000);
                pthread_mutex_unlock(&d->lock);
                if (!stopped)
                        return reply_error(c, 500, "could not kill container %s", ct->id);
        }
        int r = ctr_remove(d, ct, &err);
        if (r == -EBUSY)
                return reply_error(c, 409, "%s", err.message);
        if (r < 0)
                return reply_errno(c, r, &err);
        return reply_empty(c, 204);
}

/* ---- list / inspect ---- */

static const char *status_name(const struct ctr *ct)
{
        switch (ct->status) {
        case CTR_CREATED: return "created";
        case CTR_RUNNING: return ct->paused ? "paused" : "running";
        case CTR_EXITED: return "exited";
        }
        return "dead";
}

static void human_duration(int64_t secs, char *buf, size_t size)
{
        if (secs < 1)
                snprintf(buf, size, "Less than a second");
        else if (secs < 60)
                snprintf(buf, size, "%lld second%s", (long long) secs, secs == 1 ? "" : "s");
        else if (secs < 3600)
                snprintf(buf, size, "%lld minute%s", (long long) secs / 60, secs / 60 == 1 ? "" : "s");
        else if (secs < 48 * 3600)
                snprintf(buf, size, "%lld hours", (long long) secs / 3600);
        else
                snprintf(buf, size, "%lld days", (long long) secs / 86400);
}

static json_t *command_line(const struct ctr *ct)
{
        const char *path = json_string_value(json_object_get(ct->record, "Path"));
        size_t cap = 256, len = 0;
        char *s = calloc(1, cap);
        json_t *args = json_object_get(ct->record, "Args");
        for (size_t i = 0; s && i <= json_array_size(args); i++) {
                const char *a = i == 0 ? (path ? path : "") : json_string_value(json_array_get(args, i - 1));
                size_t n = a ? strlen(a) : 0;
                if (len + n + 2 > cap) {
                        cap = (len + n + 2) * 2;
                        char *ns = realloc(s, cap);
                        if (!ns) {
                                free(s);
                                return json_string("");
                        }
                        s = ns;
                }
                if (i)
                        s[len++] = ' ';
                memcpy(s + len, a ? a : "", n);
                len += n;
                s[len] = 0;
        }
        json_t *j = json_string(s ? s : "");
        free(s);
        return j;
}

static json_t *list_entry(const struct ctr *ct)
{
        char status[128], dur[64];
        int64_t now = silo_engine_now_ns();
        switch (ct->status) {
        case CTR_RUNNING:
                human_duration((now - ct->started_at) / 1000000000, dur, sizeof(dur));
                snprintf(status, sizeof(status), "Up %s%s", dur, ct->paused ? " (Paused)" : "");
                break;
        case CTR_EXITED:
                human_duration((now - ct->finished_at) / 1000000000, dur, sizeof(dur));
                snprintf(status, sizeof(status), "Exited (%d) %s ago", ct->exit_code, dur);
                break;
        case CTR_CREATED:
        default:
                snprintf(status, sizeof(status), "Created");
                break;
        }
        char name[160];
        snprintf(name, sizeof(name), "/%s", ct->name);
        json_t *labels = json_object_get(json_object_get(ct->record, "Config"), "Labels");
        return json_pack("{s:s, s:[s], s:O, s:O, s:o, s:I, s:s, s:s, s:[], s:O, s:{s:s}, s:{s:{}}, s:[]}", "Id",
                         ct->id, "Names", name, "Image", json_object_get(ct->record, "Image"), "ImageID",
                         json_object_get(ct->record, "ImageID"), "Command", command_line(ct), "Created",
                         (json_int_t) (ct->created / 1000000000), "State", status_name(ct), "Status", status,
                         "Ports", "Labels", json_is_object(labels) ? labels : json_object(), "HostConfig",
                         "NetworkMode", "none", "NetworkSettings", "Networks", "Mounts");
}

/* filters={"name":{"x":true}} (or {"name":["x"]}); true if ct passes key. */
static bool filter_match(json_t *filters, const char *key, const char *value, bool substring)
{
        json_t *f = json_object_get(filters, key);
        if (!f)
                return true;
        const char *want;
        json_t *v;
        size_t i;
        if (json_is_object(f)) {
                json_object_foreach(f, want, v)
                        if (substring ? strstr(value, want) != NULL : strcmp(value, want) == 0)
                                return true;
                return false;
        }
        json_array_foreach(f, i, v) {
                want = json_string_value(v);
                if (want && (substring ? strstr(value, want) != NULL : strcmp(value, want) == 0))
                        return true;
        }
        return false;
}

static bool filters_match(json_t *filters, const struct ctr *ct)
{
        if (!filters)
                return true;
        if (json_object_get(filters, "id")) {
                bool ok = false;
                const char *want;
                json_t *v;
                json_t *f = json_object_get(filters, "id");
                if (json_is_object(f)) {
                        json_object_foreach(f, want, v)
                                ok |= strncmp(ct->id, want, strlen(want)) == 0;
                }
                if (!ok)
                        return false;
        }
        return filter_match(filters, "name", ct->name, true) &&
               filter_match(filters, "status", status_name(ct), false);
}

static enum MHD_Result containers_list(struct silod *d, struct MHD_Connection *c)
{
        bool all = query_bool(c, "all");
        _cleanup_json_ json_t *filters = NULL;
        const char *ftext = query(c, "filters");
        if (ftext && *ftext) {
                silo_error err = SILO_ERROR_INIT;
                if (silo_json_load_buffer(ftext, strlen(ftext), "filters", &filters, &err) < 0 ||
                    !json_is_object(filters))
                        return reply_error(c, 400, "invalid filters: %s", err.message[0] ? err.message : ftext);
                if (json_object_get(filters, "status"))
                        all = true;
        }
        json_t *out = json_array();
        pthread_mutex_lock(&d->lock);
        for (struct ctr *ct = d->containers; ct; ct = ct->next) {
                if (ct->starting && ct->status == CTR_CREATED && !json_object_get(ct->record, "Path"))
                        continue;       /* still being created */
                ctr_refresh_locked(d, ct);
                if ((!all && ct->status != CTR_RUNNING) || !filters_match(filters, ct))
                        continue;
                json_array_append_new(out, list_entry(ct));
        }
        pthread_mutex_unlock(&d->lock);
        return reply_json(c, 200, out);
}

static enum MHD_Result container_inspect(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        char created[48], started[48], finished[48], name[160];
        silo_engine_format_time(ct->created, created);
        silo_engine_format_time(ct->started_at, started);
        silo_engine_format_time(ct->finished_at, finished);
        snprintf(name, sizeof(name), "/%s", ct->name);
        json_t *state = json_pack("{s:s, s:b, s:b, s:b, s:b, s:b, s:b, s:i, s:i, s:s, s:s, s:s}", "Status",
                                  status_name(ct), "Running", ct->status == CTR_RUNNING, "Paused", ct->paused, "Restarting", 0,
                                  "OOMKilled", 0, "Dead", 0, "Removing", ct->removing, "Pid", (int) ct->pid,
                                  "ExitCode", ct->exit_code, "Error", ct->error, "StartedAt", started, "FinishedAt",
                                  finished);
        json_t *doc = json_pack("{s:s, s:s, s:O, s:O, s:o, s:O, s:s, s:i, s:s, s:s, s:s, s:s, s:O, s:O, s:[],"
                                " s:{s:s, s:{}}, s:{s:{}}}",
                                "Id", ct->id, "Created", created, "Path", json_object_get(ct->record, "Path"), "Args",
                                json_object_get(ct->record, "Args"), "State", state, "Image",
                                json_object_get(ct->record, "ImageID"), "Name", name, "RestartCount", 0, "Driver",
                                "overlay", "Platform", "linux", "LogPath", "", "ResolvConfPath", "", "Config",
                                json_object_get(ct->record, "Config"), "HostConfig",
                                json_object_get(ct->record, "HostConfig"), "Mounts", "GraphDriver", "Name",
                                "overlay", "Data", "NetworkSettings", "Networks");
        pthread_mutex_unlock(&d->lock);
        if (!doc)
                return reply_error(c, 500, "inspect: out of memory");
        char log[512];
        snprintf(log, sizeof(log), "%s/" SILO_ENGINE_LOG, ct->dir);
        json_object_set_new(doc, "LogPath", json_string(log));
        return reply_json(c, 200, doc);
}

/* ---- routing ---- */

enum MHD_Result handle_containers(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                                  const char *path)
{
        bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
        if (post && strcmp(path, "create") == 0)
                return container_create(d, c, req);
        if (get && strcmp(path, "json") == 0)
                return containers_list(d, c);
        const char *slash = strchr(path, '/');
        _cleanup_free_ char *ref = slash ? strndup(path, (size_t) (slash - path)) : strdup(path);
        if (!ref)
                return MHD_NO;
        const char *action = slash ? slash + 1 : "";
        struct ctr *ct = ctr_lookup(d, ref);
        if (!ct)
                return reply_error(c, 404, "No such container: %s", ref);
        enum MHD_Result r;
        if (strcmp(method, "DELETE") == 0 && !*action)
                r = container_delete(d, c, ct);
        else if (get && strcmp(action, "json") == 0)
                r = container_inspect(d, c, ct);
        else if (post && strcmp(action, "start") == 0)
                r = container_start(d, c, ct);
        else if (post && strcmp(action, "stop") == 0)
                r = container_stop(d, c, ct);
        else if (post && (strcmp(action, "pause") == 0 || strcmp(action, "unpause") == 0))
                r = container_pause(d, c, ct, strcmp(action, "pause") == 0);
        else if (post && strcmp(action, "restart") == 0)
                r = container_restart(d, c, ct);
        else if (post && strcmp(action, "kill") == 0)
                r = container_kill(d, c, ct);
        else if (post && strcmp(action, "wait") == 0)
                r = container_wait(d, c, ct);
        else if (get && strcmp(action, "stats") == 0)
                r = handle_stats(d, c, ct);
        else if (get && strcmp(action, "logs") == 0)
                r = handle_logs(d, c, ct);
        else if (post && strcmp(action, "exec") == 0)
                r = handle_exec_create(d, c, req, ct);
        else if (post && strcmp(action, "attach") == 0)
                r = handle_attach(d, c, ct);
        else
                r = reply_error(c, 404, "page not found: %s /containers/%s", method, path);
        ctr_unref(d, ct);
        return r;
}
