/* POST /containers/create and /containers/{id}/start: the record, the
 * bundle with HostConfig applied, and the monitor that runs the container. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/engine.h"
#include "image/bundle.h"
#include "image/image.h"
#include "silod.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

extern char **environ;

#ifndef SILOD_VM_ISOLATION
#define SILOD_VM_ISOLATION 1
#endif

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
        json_t *volumes;                /* Config.Volumes: anonymous volumes (-v /path) */
        json_t *labels;                 /* only type-checked: kept in the record as sent */
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
        { "Volumes", SILO_JSON_OBJECT, offsetof(struct create_body, volumes), SILO_JSON_NULLABLE },
        { "Labels", SILO_JSON_OBJECT, offsetof(struct create_body, labels), SILO_JSON_NULLABLE },
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

/* Applies what silo_bundle_create does not know: Entrypoint, the cgroup, and
 * HostConfig (hostconfig.c). */
static int adjust_spec(struct silod *d, const char *id, const char *bundle, json_t *body, const struct create_body *b,
                       bool vm, json_t *image_volumes, json_t *warnings, json_t **ret_args, json_t **ret_mount_points,
                       silo_error *err)
{
        _cleanup_close_ int bfd = open(bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (bfd < 0)
                return silo_error_set(err, errno, "open %s", bundle);
        _cleanup_close_ int rootfd = openat(bfd, "rootfs", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return silo_error_set(err, errno, "open %s/rootfs", bundle);
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
        /* The CLI sends the terminal's size as [height, width]: a program that
         * reads it before the first resize call must not see 0x0. */
        json_t *console = json_object_get(json_object_get(body, "HostConfig"), "ConsoleSize");
        if (json_is_true(json_object_get(process, "terminal")) && json_array_size(console) == 2) {
                json_int_t h = json_integer_value(json_array_get(console, 0));
                json_int_t w = json_integer_value(json_array_get(console, 1));
                if (h > 0 && w > 0 && h <= 0xffff && w <= 0xffff)
                        json_object_set_new(process, "consoleSize", json_pack("{s:I, s:I}", "height", h, "width", w));
        }
        /* Path and Args are the command, without the init --init puts first. */
        _cleanup_json_ json_t *args = json_incref(json_object_get(process, "args"));
        char cg[512];
        snprintf(cg, sizeof(cg), "%s/%s", strcmp(d->cgroup_parent, "/") == 0 ? "" : d->cgroup_parent, id);
        json_object_set_new(linux_, "cgroupsPath", json_string(cg));
        if (vm) {
                json_t *ann = json_object_get(spec, "annotations");
                if (!json_is_object(ann)) {
                        ann = json_object();
                        json_object_set_new(spec, "annotations", ann);
                }
                json_object_set_new(ann, "io.silo.isolation", json_string("vm"));
        }
        _cleanup_json_ json_t *points = NULL;
        r = hostconfig_apply(d, id, body, image_volumes, rootfd, spec, warnings, &points, err);
        if (r < 0)
                return r;
        r = silo_engine_write_json_at(bfd, "config.json", spec, err);
        if (r < 0) {
                volumes_remove_anonymous(d, points);
                return r;
        }
        *ret_args = TAKE_PTR(args);
        *ret_mount_points = TAKE_PTR(points);
        return 0;
}

enum MHD_Result container_create(struct silod *d, struct MHD_Connection *c, struct request *req)
{
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *body = NULL;
        int r = request_json(req, &body, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        struct create_body b = {};
        r = silo_json_dispatch(body, "", create_fields, &b, &err);
        _cleanup_free_ const char **cmd = b.cmd, **entrypoint = b.entrypoint, **env = b.env;
        _cleanup_json_ json_t *warnings = json_array();
        if (r == 0)
                r = hostconfig_check(b.host_config, warnings, &err);
        if (r < 0)
                return reply_error(c, 400, "%s", err.message);
        const char *isolation = json_string_value(json_object_get(b.host_config, "Isolation"));
        /* THE isolation switch: `hyperv`/`vm` become the bundle annotation
         * io.silo.isolation=vm (set in adjust_spec), which the library's
         * silo_container_create/start run in a utility VM (docs/VM.md).
         * Building with SILOD_VM_ISOLATION=0 turns it off (501). */
        bool vm = isolation && (strcasecmp(isolation, "hyperv") == 0 || strcasecmp(isolation, "vm") == 0);
        if (vm && !SILOD_VM_ISOLATION)
                return reply_error(c, 501, "HostConfig.Isolation: \"%s\" is not available yet (process and default "
                                           "are)", isolation);
        if (isolation && *isolation && !vm && strcasecmp(isolation, "process") != 0 &&
            strcasecmp(isolation, "default") != 0)
                return reply_error(c, 400, "HostConfig.Isolation: invalid isolation \"%s\" (process, default, "
                                           "hyperv and vm are known)", isolation);
        if (vm) {
                /* The VM gets the container's network namespace as its NIC
                 * (docs/VM.md, "Networking"): bridge and user networks,
                 * published ports and none work as for a process container.
                 * Sharing the host's stack or another container's namespace
                 * cannot: the VM has its own kernel. */
                const char *mode = json_string_value(json_object_get(b.host_config, "NetworkMode"));
                if (mode && (strcmp(mode, "host") == 0 || strncmp(mode, "container:", 10) == 0))
                        return reply_error(c, 400, "HostConfig.NetworkMode: \"%s\" is not available with "
                                                   "Isolation \"%s\": a VM has its own network stack and cannot "
                                                   "share %s", mode, isolation,
                                           mode[0] == 'h' ? "the host's" : "another container's");
        }
        const char *net_mode = json_string_value(json_object_get(b.host_config, "NetworkMode"));
        if (net_mode && strncmp(net_mode, "container:", 10) == 0) {
                /* A VM container's pid is its shim's, in the host's namespace:
                 * joining "its" namespace would mean joining the host's. */
                struct ctr *other = ctr_lookup(d, net_mode + 10);
                bool other_vm = other && ctr_vm_isolated(other);
                if (other)
                        ctr_unref(d, other);
                if (other_vm)
                        return reply_error(c, 400, "HostConfig.NetworkMode: \"%s\" is VM-isolated: its network "
                                                   "is inside its VM and cannot be joined", net_mode);
        }

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
        if (record && (r = networks_container_create(d, body, record, &err)) < 0) {
                json_decref(record);
                silo_store_free(s);
                return reply_errno(c, r, &err);
        }
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
        json_t *args = NULL, *points = NULL;
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
                        .readonly = json_is_true(json_object_get(b.host_config, "ReadonlyRootfs")),
                        /* adjust_spec() rewrites it durably right after. */
                        .no_sync = true,
                        /* As podman does for --rm: no syncfs of the host's
                         * filesystem when its overlay is unmounted. */
                        .volatile_rootfs = json_is_true(json_object_get(b.host_config, "AutoRemove")),
                };
                char short_host[13];
                if (o.hostname == id) {
                        snprintf(short_host, sizeof(short_host), "%.12s", id);
                        o.hostname = short_host;
                }
                r = silo_bundle_create(s, img->digest, bundle, &o, &err);
                if (r == 0) {
                        r = adjust_spec(d, id, bundle, body, &b, vm, img->config ? img->config->volumes : NULL,
                                        warnings, &args, &points, &err);
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
                json_object_set_new(ct->record, "MountPoints", json_incref(points));
                r = record_save(ct, &err);
                if (r < 0)
                        volumes_remove_anonymous(d, points);
        }
        json_decref(args);
        json_decref(points);
        pthread_mutex_lock(&d->lock);
        ct->starting = false;
        if (r < 0)
                unlink_locked(d, ct);
        pthread_cond_broadcast(&d->changed);    /* a stop may wait for "starting" to end */
        pthread_mutex_unlock(&d->lock);
        if (r < 0) {
                silo_rm_rf_at(d->containers_fd, id, NULL);
                ctr_unref(d, ct);
                return reply_errno(c, r, &err);
        }
        events_container_lock(d, ct, "create", NULL);
        ctr_unref(d, ct);
        return reply_json(c, 201, json_pack("{s:s, s:O}", "Id", id, "Warnings", warnings));
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

int ctr_start(struct silod *d, struct ctr *ct, silo_error *err)
{
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        if (ct->status == CTR_RUNNING || ct->starting) {
                pthread_mutex_unlock(&d->lock);
                return 1;
        }
        if (ct->removing || ct->removed) {
                pthread_mutex_unlock(&d->lock);
                return silo_error_msg(err, EBUSY, "container %s is being removed", ct->name);
        }
        ct->starting = true;
        ct->restart_at = 0;
        pthread_mutex_unlock(&d->lock);

        _cleanup_close_ int dirfd = open(ct->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int r = dirfd < 0 ? silo_error_set(err, errno, "open %s", ct->dir) : 0;
        if (r == 0) {
                unlinkat(dirfd, SILO_ENGINE_EXIT, 0);
                unlinkat(dirfd, SILO_ENGINE_STARTED, 0);
                unlinkat(dirfd, SILO_ENGINE_PIDFILE, 0);
        }
        if (r == 0)
                r = networks_container_start(d, ct, err);
        pid_t pid = 0;
        if (r == 0)
                r = spawn_monitor(d, ct, &pid, err);
        pthread_mutex_lock(&d->lock);
        ct->starting = false;
        if (r == 0) {
                ct->status = CTR_RUNNING;
                ct->pid = pid;
                events_container(d, ct, "start", NULL);
                ctr_refresh_locked(d, ct);
        } else {
                /* Docker records a failed start as exit code 128-ish; keep it visible. */
                ct->status = CTR_EXITED;
                ct->exit_code = 127;
                ct->finished_at = silo_engine_now_ns();
                snprintf(ct->error, sizeof(ct->error), "%s", err->message);
                ct->exits++;
                if (dirfd >= 0) {
                        json_t *ex = json_pack("{s:i, s:I, s:s}", "ExitCode", 127, "FinishedAt",
                                               (json_int_t) ct->finished_at, "Error", err->message);
                        if (ex)
                                silo_engine_write_json_at(dirfd, SILO_ENGINE_EXIT, ex, NULL);
                        json_decref(ex);
                }
        }
        pthread_cond_broadcast(&d->changed);
        pthread_mutex_unlock(&d->lock);
        return r;
}

enum MHD_Result container_start(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        silo_error err = SILO_ERROR_INIT;
        /* A start by the user re-arms the restart policy, as in docker. */
        ctr_set_manually_stopped(d, ct, false);
        int r = ctr_start(d, ct, &err);
        if (r == 1)
                return reply_empty(c, 304);
        if (r == -EBUSY)
                return reply_error(c, 409, "%s", err.message);
        if (r < 0)
                return reply_error(c, 400, "failed to start container %s: %s", ct->name, err.message);
        return reply_empty(c, 204);
}
