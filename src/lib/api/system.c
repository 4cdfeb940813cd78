/* Compute systems: lifecycle over the runtime's containers.
 *
 *   STATE/systems/<id>/system.json   Id, Owner, document, times, ExitType
 *   STATE/systems/<id>/config.json   the generated OCI spec (the bundle)
 *   STATE/systems/<id>/rootfs        overlay of Storage.Layers + Storage.Path
 *   STATE/systems/<id>/processes/    one record per created process
 *   STATE/runtime/<id>               the runtime's own container state */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/compute-internal.h"
#include "api/system-internal.h"
#include "silo-config.h"
#include "image/rootfs.h"
#include "state/state.h"
#include "storage/store.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

int compute_runtime_init(const struct silo_compute_context *ctx, char **ret_state_root, char **ret_runtime_root,
                         struct silo_runtime *rt, silo_error *err)
{
        const char *root = ctx && ctx->state_root ? ctx->state_root : SILO_COMPUTE_DEFAULT_STATE_ROOT;
        if (root[0] != '/')
                return silo_error_msg(err, EINVAL, "compute state root %s: not an absolute path", root);
        char *s = strdup(root), *r = NULL;
        if (!s || asprintf(&r, "%s/runtime", root) < 0) {
                free(s);
                return silo_error_set(err, ENOMEM, "compute context");
        }
        *rt = (struct silo_runtime) { .state_root = r, .cgroup.root = ctx ? ctx->cgroup_root : NULL };
        *ret_state_root = s;
        *ret_runtime_root = r;
        return 0;
}

static silo_compute_system *system_new(const struct silo_compute_context *ctx, const char *id, silo_error *err)
{
        if (silo_id_validate(id, err) < 0)
                return NULL;
        silo_compute_system *sys = calloc(1, sizeof(*sys));
        if (!sys) {
                silo_error_set(err, ENOMEM, "compute system");
                return NULL;
        }
        if (ctx)
                sys->ctx = *ctx;
        sys->handle_lock = -1;
        sys->id = strdup(id);
        if (!sys->id || compute_runtime_init(ctx, &sys->state_root, &sys->runtime_root, &sys->rt, err) < 0) {
                if (!sys->id)
                        silo_error_set(err, ENOMEM, "compute system");
                silo_compute_system_close(sys);
                return NULL;
        }
        return sys;
}

/* Every handle, in any process, holds a shared flock on the system's
 * "handles" file: when a handle closes and an exclusive lock can be had,
 * it was the last one (ShouldTerminateOnLastHandleClosed). */
static int handle_lock_open(const silo_compute_system *sys, int op)
{
        char path[PATH_MAX];
        if (compute_system_dir(sys, path, "handles") < 0)
                return -ENAMETOOLONG;
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        while (flock(fd, op) < 0)
                if (errno != EINTR)
                        return -errno;
        return TAKE_FD(fd);
}

static bool terminate_on_last_close(const silo_compute_system *sys)
{
        _cleanup_json_ json_t *meta = NULL;
        if (compute_system_load(sys, &meta, NULL) < 0)
                return false;
        return json_is_true(json_object_get(json_object_get(meta, "Document"), "ShouldTerminateOnLastHandleClosed"));
}

void silo_compute_system_close(silo_compute_system *sys)
{
        if (!sys)
                return;
        if (sys->handle_lock >= 0) {
                close(sys->handle_lock);
                sys->handle_lock = -1;
                if (terminate_on_last_close(sys)) {
                        _cleanup_close_ int last = handle_lock_open(sys, LOCK_EX | LOCK_NB);
                        if (last >= 0)
                                silo_compute_system_terminate(sys, NULL);
                }
        }
        free(sys->state_root);
        free(sys->runtime_root);
        free(sys->id);
        free(sys);
}

const char *silo_compute_system_id(const silo_compute_system *sys)
{
        return sys->id;
}

int compute_system_dir(const silo_compute_system *sys, char buf[PATH_MAX], const char *sub)
{
        int n = snprintf(buf, PATH_MAX, "%s/systems/%s%s%s", sys->state_root, sys->id, sub ? "/" : "", sub ? sub : "");
        return n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

int compute_system_load(const silo_compute_system *sys, json_t **ret, silo_error *err)
{
        char dir[PATH_MAX];
        if (compute_system_dir(sys, dir, "system.json") < 0)
                return silo_error_msg(err, ENAMETOOLONG, "compute system %s: state path too long", sys->id);
        int r = silo_json_load_file_at(AT_FDCWD, dir, COMPUTE_DOC_MAX * 2, ret, err);
        if (r == -ENOENT)
                return silo_error_msg(err, ENOENT, "compute system \"%s\" does not exist", sys->id);
        return r;
}

int compute_system_save(const silo_compute_system *sys, json_t *meta, silo_error *err)
{
        char dir[PATH_MAX];
        if (compute_system_dir(sys, dir, NULL) < 0)
                return silo_error_msg(err, ENAMETOOLONG, "compute system %s: state path too long", sys->id);
        _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return silo_error_set(err, errno, "open %s", dir);
        _cleanup_free_ char *text = json_dumps(meta, JSON_COMPACT);
        if (!text)
                return silo_error_set(err, ENOMEM, "system.json");
        return silo_write_file_replace_at(dfd, "system.json", text, strlen(text), 0600, err);
}

int compute_system_lock(const silo_compute_system *sys, silo_error *err)
{
        char dir[PATH_MAX];
        if (compute_system_dir(sys, dir, NULL) < 0)
                return silo_error_msg(err, ENAMETOOLONG, "compute system %s: state path too long", sys->id);
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? silo_error_msg(err, ENOENT, "compute system \"%s\" does not exist", sys->id)
                                       : silo_error_set(err, errno, "open %s", dir);
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR)
                        return silo_error_set(err, errno, "lock %s", dir);
        return TAKE_FD(fd);
}

/* Sets one field of system.json (read-modify-write). */
static int system_record(const silo_compute_system *sys, const char *key, json_t *value, silo_error *err)
{
        _cleanup_json_ json_t *meta = NULL;
        _cleanup_close_ int lock = compute_system_lock(sys, err);
        if (lock < 0) {
                json_decref(value);
                return lock;
        }
        int r = compute_system_load(sys, &meta, err);
        if (r < 0) {
                json_decref(value);
                return r;
        }
        json_object_set_new(meta, key, value);
        return compute_system_save(sys, meta, err);
}

int compute_system_state(const silo_compute_system *sys, enum compute_state *ret_state, pid_t *ret_pid,
                         silo_error *err)
{
        _cleanup_json_ json_t *st = NULL;
        silo_error e = SILO_ERROR_INIT;
        int r = silo_container_state(&sys->rt, sys->id, &st, &e);
        if (r == -ENOENT) {
                /* The system's records exist but the container does not:
                 * it never got past create, or was deleted underneath. */
                *ret_state = COMPUTE_STATE_STOPPED;
                if (ret_pid)
                        *ret_pid = 0;
                return 0;
        }
        if (r < 0) {
                if (err)
                        *err = e;
                return r;
        }
        const char *s = json_string_value(json_object_get(st, "status"));
        if (!s || !strcmp(s, "stopped"))
                *ret_state = COMPUTE_STATE_STOPPED;
        else if (!strcmp(s, "created") || !strcmp(s, "creating"))
                *ret_state = COMPUTE_STATE_CREATED;
        else if (!strcmp(s, "paused") || !strcmp(s, "pausing"))
                *ret_state = COMPUTE_STATE_PAUSED;
        else
                *ret_state = COMPUTE_STATE_RUNNING;
        if (ret_pid)
                *ret_pid = (pid_t) json_integer_value(json_object_get(st, "pid"));
        return 0;
}

const char *compute_state_name(enum compute_state s)
{
        switch (s) {
        case COMPUTE_STATE_CREATED: return "Created";
        case COMPUTE_STATE_RUNNING: return "Running";
        case COMPUTE_STATE_PAUSED: return "Paused";
        case COMPUTE_STATE_STOPPED: return "Stopped";
        }
        return "Unknown";
}

static int mount_overlay(const struct compute_storage *st, const char *target, silo_error *err)
{
        char upper[PATH_MAX], work[PATH_MAX];
        if (snprintf(upper, sizeof(upper), "%s/upper", st->path) >= (int) sizeof(upper) ||
            snprintf(work, sizeof(work), "%s/work", st->path) >= (int) sizeof(work))
                return silo_error_msg(err, ENAMETOOLONG, "Container.Storage.Path: too long");
        int r;
        if ((r = silo_mkdir_p_at(AT_FDCWD, upper, 0755, err)) < 0 ||
            (r = silo_mkdir_p_at(AT_FDCWD, work, 0700, err)) < 0)
                return silo_error_prefix(err, "Container.Storage.Path");
        size_t len = 0;
        for (char **l = st->layers; *l; l++)
                len += strlen(*l) + 1;
        len += strlen(upper) + strlen(work) + 64;
        /* The options must fit one page (the kernel's limit for mount data). */
        if (len >= (size_t) sysconf(_SC_PAGESIZE))
                return silo_error_msg(err, E2BIG, "Container.Storage.Layers: overlay options exceed a page; use fewer "
                                      "layers or shorter paths");
        _cleanup_free_ char *opts = malloc(len);
        if (!opts)
                return silo_error_set(err, ENOMEM, "overlay");
        char *p = opts + sprintf(opts, "lowerdir=");
        for (char **l = st->layers; *l; l++)
                p += sprintf(p, "%s%s", l == st->layers ? "" : ":", *l);
        sprintf(p, ",upperdir=%s,workdir=%s", upper, work);
        if (mount("overlay", target, "overlay", 0, opts) < 0)
                return silo_error_set(err, errno, "mount overlay of Container.Storage at %s", target);
        return 0;
}

/* The runtime's init inherits the stdio of whoever creates it, and stays
 * its child: create from a short-lived child with stdio on /dev/null, so the
 * system holds none of the caller's pipes and is nobody's zombie. */
static int create_detached(silo_compute_system *sys, const char *bundle, silo_error *err)
{
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) < 0)
                return silo_error_set(err, errno, "pipe");
        _cleanup_close_ int rd = pfd[0];
        pid_t child = fork();
        if (child < 0) {
                close(pfd[1]);
                return silo_error_set(err, errno, "fork");
        }
        if (child == 0) {
                silo_error e = SILO_ERROR_INIT;
                /* Out of the way of the dup2s (a caller without stdio). */
                pfd[1] = fcntl(pfd[1], F_DUPFD_CLOEXEC, 10);
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) {
                        silo_error_set(&e, errno, "/dev/null");
                } else {
                        setsid();
                        for (int sig = 1; sig < NSIG; sig++)
                                if (sig != SIGKILL && sig != SIGSTOP)
                                        signal(sig, SIG_DFL);
                        sigset_t none;
                        sigemptyset(&none);
                        sigprocmask(SIG_SETMASK, &none, NULL);
                        struct silo_create_options co = { .bundle = bundle };
                        silo_container_create(&sys->rt, sys->id, &co, &e);
                }
                if (e.code && write(pfd[1], &e, sizeof(e)) < 0)
                        _exit(2);
                _exit(e.code ? 1 : 0);
        }
        close(pfd[1]);
        /* The init inherits the write end (it forks, it does not exec yet):
         * no EOF to wait for.  The child writes before it exits. */
        int status = 0;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
                ;
        silo_error e = SILO_ERROR_INIT;
        fcntl(rd, F_SETFL, O_NONBLOCK);
        ssize_t n = read(rd, &e, sizeof(e));
        if (n == (ssize_t) sizeof(e) && e.code) {
                e.message[sizeof(e.message) - 1] = '\0';
                return silo_error_msg(err, e.code, "%s", e.message);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return silo_error_msg(err, EIO, "create: helper process failed");
        return 0;
}

/* Storage.Image: a container rootfs of the store, named after the system. */
static void store_rootfs_id(const silo_compute_system *sys, char buf[SILO_CONTAINER_ID_MAX + 16])
{
        snprintf(buf, SILO_CONTAINER_ID_MAX + 16, "compute-%s", sys->id);
}

static void store_freep(silo_store **s)
{
        silo_store_free(*s);
}

static int store_rootfs_create(silo_compute_system *sys, const char *image, const char *target, silo_error *err)
{
        _cleanup_(store_freep) silo_store *store = NULL;
        char rid[SILO_CONTAINER_ID_MAX + 16];
        store_rootfs_id(sys, rid);
        int r = silo_store_open(sys->ctx.store_root, &store, err);
        if (r < 0)
                return silo_error_prefix(err, "Container.Storage.Image");
        r = silo_rootfs_create(store, rid, image, err);
        if (r < 0)
                return silo_error_prefix(err, "Container.Storage.Image");
        _cleanup_free_ char *path = NULL;
        r = silo_rootfs_mount(store, rid, target, &path, err);
        if (r < 0) {
                silo_rootfs_remove(store, rid, NULL);
                return silo_error_prefix(err, "Container.Storage.Image");
        }
        return 0;
}

static int store_rootfs_remove(silo_compute_system *sys, silo_error *err)
{
        _cleanup_(store_freep) silo_store *store = NULL;
        char rid[SILO_CONTAINER_ID_MAX + 16];
        store_rootfs_id(sys, rid);
        int r = silo_store_open(sys->ctx.store_root, &store, err);
        if (r < 0)
                return r;
        r = silo_rootfs_remove(store, rid, err);
        return r == -ENOENT ? 0 : r;
}

/* HostingSystemId must name a running VirtualMachine compute system. */
static int check_hosting_system(const struct silo_compute_context *ctx, const char *hosting_id, silo_error *err)
{
        _cleanup_(compute_system_closep) silo_compute_system *host = NULL;
        _cleanup_json_ json_t *meta = NULL;
        silo_error e = SILO_ERROR_INIT;
        if (silo_compute_system_open(ctx, hosting_id, &host, &e) < 0 || compute_system_load(host, &meta, &e) < 0)
                return silo_error_msg(err, ENOENT, "HostingSystemId: no compute system \"%s\"", hosting_id);
        const char *type = json_string_value(json_object_get(meta, "SystemType"));
        if (!type || strcmp(type, "VirtualMachine"))
                return silo_error_msg(err, EINVAL, "HostingSystemId: \"%s\" is a %s, not a VirtualMachine", hosting_id,
                                      type ? type : "system of unknown type");
        enum compute_state st;
        int r = compute_system_state(host, &st, NULL, err);
        if (r < 0)
                return r;
        if (st != COMPUTE_STATE_RUNNING)
                return silo_error_msg(err, EINVAL, "HostingSystemId: VirtualMachine \"%s\" is %s, not Running",
                                      hosting_id, compute_state_name(st));
        return 0;
}

int silo_compute_system_create(const struct silo_compute_context *ctx, const char *id, const char *document,
                               silo_compute_system **ret, silo_error *err)
{
        _cleanup_(compute_system_closep) silo_compute_system *sys = system_new(ctx, id, err);
        if (!sys)
                return -(err && err->code ? err->code : EINVAL);
        if (!document)
                return silo_error_msg(err, EINVAL, "ComputeSystem: no document");
        size_t dlen = strlen(document);
        if (dlen > COMPUTE_DOC_MAX)
                return silo_error_msg(err, E2BIG, "ComputeSystem: document larger than %d bytes", COMPUTE_DOC_MAX);
        _cleanup_json_ json_t *doc = NULL;
        int r = silo_json_load_buffer(document, dlen, "ComputeSystem", &doc, err);
        if (r < 0)
                return r;

        char dir[PATH_MAX], rootfs[PATH_MAX], procs[PATH_MAX];
        if (compute_system_dir(sys, dir, NULL) < 0 || compute_system_dir(sys, rootfs, "rootfs") < 0 ||
            compute_system_dir(sys, procs, "processes") < 0)
                return silo_error_msg(err, ENAMETOOLONG, "compute system %s: state path too long", id);
        const char *cg_parent = sys->ctx.cgroup_parent ? sys->ctx.cgroup_parent : SILO_COMPUTE_DEFAULT_CGROUP_PARENT;
        if (cg_parent[0] != '/')
                return silo_error_msg(err, EINVAL, "cgroup parent %s: must be absolute", cg_parent);
        const char *init = sys->ctx.init_path ? sys->ctx.init_path : SILO_LIBEXECDIR "/silo-compute-init";
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        struct compute_spec_options o = {
                .id = id, .cgroup_parent = cg_parent, .init_path = init, .rootfs = rootfs,
                .ncpu = ncpu > 0 ? (unsigned) ncpu : 1,
        };
        _cleanup_json_ json_t *spec = NULL;
        _cleanup_(compute_storage_done) struct compute_storage storage = {};
        r = compute_document_to_spec(doc, &o, &spec, &storage, err);
        if (r < 0)
                return r;
        const char *arg0 = json_string_value(json_array_get(json_object_get(json_object_get(spec, "process"), "args"), 0));
        if (arg0 && !strcmp(arg0, COMPUTE_INIT_TARGET) && access(init, X_OK) < 0)
                return silo_error_set(err, errno, "compute system init %s (set the context's init_path)", init);
        struct stat stt;
        if (storage.path && (stat(storage.path, &stt) < 0 || !S_ISDIR(stt.st_mode)))
                return silo_error_set(err, errno ? errno : ENOTDIR, "Container.Storage.Path %s", storage.path);
        for (char **l = storage.layers; l && *l; l++)
                if (stat(*l, &stt) < 0 || !S_ISDIR(stt.st_mode))
                        return silo_error_set(err, errno ? errno : ENOTDIR, "Container.Storage.Layers: %s", *l);

        const char *hosting_id = json_string_value(json_object_get(doc, "HostingSystemId"));
        if (hosting_id && (r = check_hosting_system(ctx, hosting_id, err)) < 0)
                return r;
        char systems[PATH_MAX];
        snprintf(systems, sizeof(systems), "%s/systems", sys->state_root);
        r = silo_mkdir_p_at(AT_FDCWD, systems, 0700, err);
        if (r < 0)
                return r;
        if (mkdir(dir, 0700) < 0) {
                if (errno == EEXIST)
                        return silo_error_msg(err, EEXIST, "compute system \"%s\" already exists", id);
                return silo_error_set(err, errno, "mkdir %s", dir);
        }
        bool mounted = false, from_store = false;
        _cleanup_close_ int dfd = -1;
        _cleanup_free_ char *spec_text = NULL;
        _cleanup_json_ json_t *meta = NULL;
        if (mkdir(procs, 0700) < 0 || mkdir(rootfs, 0755) < 0) {
                r = silo_error_set(err, errno, "mkdir in %s", dir);
                goto fail;
        }
        if (storage.image) {
                r = store_rootfs_create(sys, storage.image, rootfs, err);
                if (r < 0)
                        goto fail;
                from_store = true;
        } else if (storage.layers && storage.layers[0]) {
                r = mount_overlay(&storage, rootfs, err);
                if (r < 0)
                        goto fail;
                mounted = true;
        }
        dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        spec_text = json_dumps(spec, JSON_INDENT(2));
        if (dfd < 0 || !spec_text) {
                r = silo_error_set(err, dfd < 0 ? errno : ENOMEM, "open %s", dir);
                goto fail;
        }
        r = compute_network_attach(id, dir, doc, spec, err);
        if (r < 0)
                goto fail;
        free(spec_text);
        spec_text = json_dumps(spec, JSON_INDENT(2));
        if (!spec_text) {
                r = silo_error_set(err, ENOMEM, "config.json");
                goto fail;
        }
        r = silo_write_file_replace_at(dfd, "config.json", spec_text, strlen(spec_text), 0600, err);
        if (r < 0)
                goto fail;
        char now[64];
        silo_rfc3339_now(now);
        const char *owner = json_string_value(json_object_get(doc, "Owner"));
        const char *hosting = json_string_value(json_object_get(doc, "HostingSystemId"));
        meta = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:O}", "Id", id, "Owner", owner ? owner : "",
                         "SystemType", json_object_get(doc, "VirtualMachine") ? "VirtualMachine" : "Container",
                         "Created", now, "RootfsMounted", mounted,
                         "StoreRootfs", from_store, "Document", doc);
        if (!meta) {
                r = silo_error_set(err, ENOMEM, "system.json");
                goto fail;
        }
        if (hosting)
                json_object_set_new(meta, "HostingSystemId", json_string(hosting));
        r = compute_system_save(sys, meta, err);
        if (r < 0)
                goto fail;
        r = create_detached(sys, dir, err);
        if (r < 0) {
                silo_error_prefix(err, "create compute system %s", id);
                goto fail;
        }
        sys->handle_lock = handle_lock_open(sys, LOCK_SH);
        *ret = TAKE_PTR(sys);
        return 0;
fail:
        compute_network_release(id, dir, NULL);
        if (mounted)
                umount2(rootfs, MNT_DETACH);
        if (from_store)
                store_rootfs_remove(sys, NULL);
        silo_rm_rf_at(AT_FDCWD, dir, NULL);
        return r;
}

int silo_compute_system_open(const struct silo_compute_context *ctx, const char *id, silo_compute_system **ret,
                             silo_error *err)
{
        _cleanup_(compute_system_closep) silo_compute_system *sys = system_new(ctx, id, err);
        if (!sys)
                return -(err && err->code ? err->code : EINVAL);
        _cleanup_json_ json_t *meta = NULL;
        int r = compute_system_load(sys, &meta, err);
        if (r < 0)
                return r;
        sys->handle_lock = handle_lock_open(sys, LOCK_SH);
        *ret = TAKE_PTR(sys);
        return 0;
}

int silo_compute_system_start(silo_compute_system *sys, silo_error *err)
{
        enum compute_state st;
        int r = compute_system_state(sys, &st, NULL, err);
        if (r < 0)
                return r;
        if (st != COMPUTE_STATE_CREATED)
                return silo_error_msg(err, EINVAL, "compute system \"%s\" is %s, not Created", sys->id,
                                      compute_state_name(st));
        r = silo_container_start(&sys->rt, sys->id, err);
        if (r < 0)
                return r;
        char now[64];
        silo_rfc3339_now(now);
        return system_record(sys, "Started", json_string(now), err);
}

static int pidfd_open_pid(pid_t pid)
{
        return (int) syscall(SYS_pidfd_open, pid, 0);
}

/* A pidfd of the running init, or -ESRCH once the system has stopped. */
static int init_pidfd(silo_compute_system *sys, silo_error *err)
{
        enum compute_state st;
        pid_t pid;
        int r = compute_system_state(sys, &st, &pid, err);
        if (r < 0)
                return r;
        if (st == COMPUTE_STATE_STOPPED || pid <= 0)
                return -ESRCH;
        _cleanup_close_ int pidfd = pidfd_open_pid(pid);
        if (pidfd < 0)
                return errno == ESRCH ? -ESRCH : silo_error_set(err, errno, "pidfd_open %d", (int) pid);
        /* Between the state read and pidfd_open the init may have exited and
         * its pid been reused: ask again now that the pidfd pins it. */
        pid_t pid2;
        r = compute_system_state(sys, &st, &pid2, err);
        if (r < 0)
                return r;
        if (st == COMPUTE_STATE_STOPPED || pid2 != pid)
                return -ESRCH;
        return TAKE_FD(pidfd);
}

int silo_compute_system_exit_fd(silo_compute_system *sys, int *ret_fd, silo_error *err)
{
        int fd = init_pidfd(sys, err);
        if (fd == -ESRCH)
                return silo_error_msg(err, ESRCH, "compute system \"%s\" is Stopped", sys->id);
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        return 0;
}

int silo_compute_system_wait(silo_compute_system *sys, int timeout_ms, silo_error *err)
{
        _cleanup_close_ int pidfd = init_pidfd(sys, err);
        if (pidfd == -ESRCH)
                return 0;
        if (pidfd < 0)
                return pidfd;
        struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
                int left = timeout_ms;
                if (timeout_ms >= 0) {
                        struct timespec now;
                        clock_gettime(CLOCK_MONOTONIC, &now);
                        long el = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
                        left = el >= timeout_ms ? 0 : timeout_ms - (int) el;
                }
                int n = poll(&pfd, 1, left);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return silo_error_set(err, errno, "wait for compute system %s", sys->id);
                if (n == 0)
                        return silo_error_msg(err, ETIMEDOUT, "compute system \"%s\" still running after %d ms",
                                              sys->id, timeout_ms);
                break;
        }
        /* Reap it if it is our child (we created the system in-process). */
        siginfo_t si;
        waitid(P_PIDFD, (id_t) pidfd, &si, WEXITED | WNOHANG);
        return 0;
}

static int system_kill_wait(silo_compute_system *sys, int sig, bool all, int timeout_ms, silo_error *err)
{
        int r = silo_container_kill(&sys->rt, sys->id, sig, all, err);
        if (r < 0)
                return r;
        return silo_compute_system_wait(sys, timeout_ms, err);
}

int silo_compute_system_shutdown(silo_compute_system *sys, int timeout_ms, silo_error *err)
{
        enum compute_state st;
        int r = compute_system_state(sys, &st, NULL, err);
        if (r < 0)
                return r;
        if (st == COMPUTE_STATE_STOPPED)
                return 0;
        r = system_record(sys, "ExitType", json_string("GracefulExit"), err);
        if (r < 0)
                return r;
        /* An init that never started is parked in the runtime, with no program
         * to shut down gracefully: stopping it is all there is to do. */
        if (st == COMPUTE_STATE_CREATED)
                return system_kill_wait(sys, SIGKILL, true, timeout_ms, err);
        if (st == COMPUTE_STATE_PAUSED && (r = silo_container_resume(&sys->rt, sys->id, err)) < 0)
                return r;
        return system_kill_wait(sys, SIGTERM, false, timeout_ms, err);
}

int silo_compute_system_terminate(silo_compute_system *sys, silo_error *err)
{
        enum compute_state st;
        int r = compute_system_state(sys, &st, NULL, err);
        if (r < 0)
                return r;
        if (st == COMPUTE_STATE_STOPPED)
                return 0;
        r = system_record(sys, "ExitType", json_string("ForcedExit"), err);
        if (r < 0)
                return r;
        r = silo_container_kill(&sys->rt, sys->id, SIGKILL, true, err);
        if (r < 0)
                return r;
        /* Frozen tasks die only once thawed. */
        if (st == COMPUTE_STATE_PAUSED)
                silo_container_resume(&sys->rt, sys->id, NULL);
        return silo_compute_system_wait(sys, 10000, err);
}

int silo_compute_system_pause(silo_compute_system *sys, silo_error *err)
{
        enum compute_state st;
        int r = compute_system_state(sys, &st, NULL, err);
        if (r < 0)
                return r;
        if (st != COMPUTE_STATE_RUNNING)
                return silo_error_msg(err, EINVAL, "compute system \"%s\" is %s, not Running", sys->id,
                                      compute_state_name(st));
        return silo_container_pause(&sys->rt, sys->id, err);
}

int silo_compute_system_resume(silo_compute_system *sys, silo_error *err)
{
        enum compute_state st;
        int r = compute_system_state(sys, &st, NULL, err);
        if (r < 0)
                return r;
        if (st != COMPUTE_STATE_PAUSED)
                return silo_error_msg(err, EINVAL, "compute system \"%s\" is %s, not Paused", sys->id,
                                      compute_state_name(st));
        return silo_container_resume(&sys->rt, sys->id, err);
}

int silo_compute_system_modify(silo_compute_system *sys, const char *request, silo_error *err)
{
        if (!request)
                return silo_error_msg(err, EINVAL, "ModifySettingRequest: no request");
        _cleanup_json_ json_t *req = NULL;
        int r = silo_json_load_buffer(request, strlen(request), "ModifySettingRequest", &req, err);
        if (r < 0)
                return r;
        struct compute_modify m;
        r = compute_modify_parse(req, &m, err);
        if (r < 0)
                return r;
        enum compute_state st;
        r = compute_system_state(sys, &st, NULL, err);
        if (r < 0)
                return r;
        if (st == COMPUTE_STATE_STOPPED)
                return silo_error_msg(err, EINVAL, "compute system \"%s\" is Stopped", sys->id);
        _cleanup_json_ json_t *frag = NULL;
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        switch (m.resource) {
        case COMPUTE_MODIFY_MEMORY:
                r = compute_memory_resources(m.settings, "Settings", &frag, err);
                break;
        case COMPUTE_MODIFY_PROCESSOR:
                r = compute_processor_resources(m.settings, "Settings", ncpu > 0 ? (unsigned) ncpu : 1, &frag, err);
                break;
        case COMPUTE_MODIFY_MAPPED_DIRECTORY:
                return m.type == COMPUTE_REQUEST_ADD ? compute_add_mapped_directory(sys, m.settings, err)
                                                     : compute_remove_mapped_directory(sys, m.settings, err);
        }
        if (r < 0)
                return r;
        r = silo_container_update(&sys->rt, sys->id, frag, err);
        if (r < 0)
                return silo_error_prefix(err, "modify %s", json_string_value(json_object_get(req, "ResourcePath")));

        /* Keep the document in step, so properties and a reader of
         * system.json see the current limits. */
        _cleanup_json_ json_t *meta = NULL;
        _cleanup_close_ int lock = compute_system_lock(sys, NULL);
        if (lock >= 0 && compute_system_load(sys, &meta, NULL) == 0) {
                json_t *c = json_object_get(json_object_get(meta, "Document"), "Container");
                if (c && m.resource == COMPUTE_MODIFY_MEMORY)
                        json_object_set_new(c, "Memory", json_pack("{s:O}", "SizeInMB", m.settings));
                else if (c && m.resource == COMPUTE_MODIFY_PROCESSOR)
                        json_object_set(c, "Processor", m.settings);
                compute_system_save(sys, meta, NULL);
        }
        return 0;
}

int silo_compute_system_delete(const struct silo_compute_context *ctx, const char *id, bool force, silo_error *err)
{
        _cleanup_(compute_system_closep) silo_compute_system *sys = NULL;
        int r = silo_compute_system_open(ctx, id, &sys, err);
        if (r < 0)
                return r;
        enum compute_state st;
        r = compute_system_state(sys, &st, NULL, err);
        if (r < 0)
                return r;
        if (st != COMPUTE_STATE_STOPPED) {
                if (!force)
                        return silo_error_msg(err, EBUSY, "compute system \"%s\" is %s (shut it down or terminate it "
                                              "first)", id, compute_state_name(st));
                r = silo_compute_system_terminate(sys, err);
                if (r < 0)
                        return r;
        }
        silo_error e = SILO_ERROR_INIT;
        r = silo_container_delete(&sys->rt, id, true, &e);
        if (r < 0 && r != -ENOENT) {
                if (err)
                        *err = e;
                return r;
        }
        char dir[PATH_MAX], rootfs[PATH_MAX];
        compute_system_dir(sys, dir, NULL);
        compute_system_dir(sys, rootfs, "rootfs");
        _cleanup_json_ json_t *meta = NULL;
        if (compute_system_load(sys, &meta, NULL) == 0 && json_is_true(json_object_get(meta, "StoreRootfs")) &&
            (r = store_rootfs_remove(sys, err)) < 0)
                return silo_error_prefix(err, "remove the root filesystem of compute system %s", id);
        if (umount2(rootfs, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
                return silo_error_set(err, errno, "unmount %s", rootfs);
        r = compute_network_release(id, dir, err);
        if (r < 0)
                return r;
        return silo_rm_rf_at(AT_FDCWD, dir, err);
}

static bool query_match(json_t *list, const char *value)
{
        if (!list || json_array_size(list) == 0)
                return true;
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v)
                if (json_is_string(v) && value && !strcmp(json_string_value(v), value))
                        return true;
        return false;
}

int compute_system_basic(silo_compute_system *sys, json_t *meta, json_t **ret, silo_error *err)
{
        enum compute_state st;
        int r = compute_system_state(sys, &st, NULL, err);
        if (r < 0)
                return r;
        json_t *owner = json_object_get(meta, "Owner");
        _cleanup_json_ json_t *p = json_pack("{s:s, s:s, s:s, s:O, s:s, s:s, s:b, s:s}", "Id", sys->id, "Name", sys->id,
                                             "SystemType", json_is_string(json_object_get(meta, "SystemType"))
                                             ? json_string_value(json_object_get(meta, "SystemType")) : "Container",
                                             "Owner", owner ? owner : json_string(""),
                                             "RuntimeOsType", "linux", "State", compute_state_name(st),
                                             "Stopped", st == COMPUTE_STATE_STOPPED, "RuntimeId", sys->id);
        if (!p)
                return silo_error_set(err, ENOMEM, "properties");
        json_t *hosting = json_object_get(meta, "HostingSystemId");
        if (json_is_string(hosting))
                json_object_set(p, "HostingSystemId", hosting);
        if (st == COMPUTE_STATE_STOPPED) {
                json_t *et = json_object_get(meta, "ExitType");
                json_object_set_new(p, "ExitType", json_string(json_is_string(et) ? json_string_value(et)
                                                                                  : "UnexpectedExit"));
        }
        *ret = TAKE_PTR(p);
        return 0;
}

int silo_compute_system_enumerate(const struct silo_compute_context *ctx, const char *query, char **ret,
                                  silo_error *err)
{
        _cleanup_json_ json_t *q = NULL;
        json_t *ids = NULL, *names = NULL, *types = NULL, *owners = NULL;
        if (query && *query) {
                int r = silo_json_load_buffer(query, strlen(query), "SystemQuery", &q, err);
                if (r < 0)
                        return r;
                struct { json_t *ids, *names, *types, *owners; } f = {};
                const struct silo_json_field fields[] = {
                        { "Ids", SILO_JSON_ARRAY, offsetof(typeof(f), ids), SILO_JSON_NULLABLE },
                        { "Names", SILO_JSON_ARRAY, offsetof(typeof(f), names), SILO_JSON_NULLABLE },
                        { "Types", SILO_JSON_ARRAY, offsetof(typeof(f), types), SILO_JSON_NULLABLE },
                        { "Owners", SILO_JSON_ARRAY, offsetof(typeof(f), owners), SILO_JSON_NULLABLE },
                        { NULL },
                };
                if (!json_is_object(q))
                        return silo_error_msg(err, EINVAL, "SystemQuery: expected an object, got %s",
                                              silo_json_type_name(q));
                r = silo_json_dispatch(q, "", fields, &f, err);
                if (r < 0)
                        return r;
                ids = f.ids, names = f.names, types = f.types, owners = f.owners;
        }
        _cleanup_free_ char *state_root = NULL, *runtime_root = NULL;
        struct silo_runtime rt;
        int r = compute_runtime_init(ctx, &state_root, &runtime_root, &rt, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *out = json_array();
        char systems[PATH_MAX];
        snprintf(systems, sizeof(systems), "%s/systems", state_root);
        _cleanup_closedir_ DIR *d = opendir(systems);
        if (!d && errno != ENOENT)
                return silo_error_set(err, errno, "open %s", systems);
        struct dirent *de;
        size_t seen = 0;
        while (d && (de = readdir(d)) && seen++ < 100000) {
                if (de->d_name[0] == '.' || silo_id_validate(de->d_name, NULL) < 0)
                        continue;
                if (!query_match(ids, de->d_name) || !query_match(names, de->d_name))
                        continue;
                /* Not a handle (no handle lock): looking must not count as
                 * holding, nor end a ShouldTerminateOnLastHandleClosed system. */
                _cleanup_(compute_system_closep) silo_compute_system *sys = system_new(ctx, de->d_name, NULL);
                _cleanup_json_ json_t *meta = NULL, *p = NULL;
                if (!sys || compute_system_load(sys, &meta, NULL) < 0)
                        continue;
                const char *type = json_string_value(json_object_get(meta, "SystemType"));
                if (!query_match(owners, json_string_value(json_object_get(meta, "Owner"))) ||
                    !query_match(types, type ? type : "Container"))
                        continue;
                if (compute_system_basic(sys, meta, &p, NULL) == 0)
                        json_array_append(out, p);
        }
        *ret = json_dumps(out, JSON_COMPACT);
        return *ret ? 0 : silo_error_set(err, ENOMEM, "enumerate");
}
