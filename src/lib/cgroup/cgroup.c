/* The cgroup manager core: finds the hierarchies, creates and removes the
 * container's directories, persists them, and dispatches everything
 * version-specific to the v1 or v2 backend. */
#include "cgroup/cgroup-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "util/fs.h"

#define PROC_FILE_MAX (16u << 20)       /* mountinfo with thousands of mounts */
#define DESTROY_TIMEOUT_MS 1000

static int root_path(const struct silo_cgroup_options *opts, char **ret, silo_error *err)
{
        const char *root = opts && opts->root && *opts->root ? opts->root : CGROUP_DEFAULT_ROOT;
        if (root[0] != '/')
                return silo_error_msg(err, EINVAL, "cgroup root '%s' is not an absolute path", root);
        return cgroup_normalize_path(root, ret, err);
}

static int read_proc_self(const char *name, char **ret, silo_error *err)
{
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/%s", name);
        return silo_read_file_at(AT_FDCWD, path, PROC_FILE_MAX, ret, NULL, err);
}

static int find_mounts(const char *root, bool v1, struct cgroup_mount **ret, size_t *ret_n, silo_error *err)
{
        _cleanup_free_ char *mountinfo = NULL;
        int r = read_proc_self("mountinfo", &mountinfo, err);
        if (r < 0)
                return r;
        return cgroup_parse_mounts(mountinfo, root, v1, ret, ret_n, err);
}

static int detect_version(const char *root, enum silo_cgroup_version *ret, silo_error *err)
{
        struct statfs sfs;
        if (statfs(root, &sfs) < 0)
                return silo_error_set(err, errno, "statfs %s", root);
        if (sfs.f_type == CGROUP2_SUPER_MAGIC) {
                *ret = SILO_CGROUP_V2;
                return 0;
        }
        if (sfs.f_type == TMPFS_MAGIC) {
                struct cgroup_mount *mounts = NULL;
                size_t n = 0;
                int r = find_mounts(root, true, &mounts, &n, err);
                if (r < 0)
                        return r;
                cgroup_mounts_free(mounts, n);
                if (n > 0) {
                        *ret = SILO_CGROUP_V1;
                        return 0;
                }
        }
        return silo_error_msg(err, ENODEV, "%s is neither a cgroup2 mount nor a tmpfs holding cgroup v1 controllers",
                              root);
}

enum silo_cgroup_version silo_cgroup_host_version(const struct silo_cgroup_options *opts)
{
        _cleanup_free_ char *root = NULL;
        enum silo_cgroup_version v = SILO_CGROUP_NONE;
        if (root_path(opts, &root, NULL) < 0 || detect_version(root, &v, NULL) < 0)
                return SILO_CGROUP_NONE;
        return v;
}

static const struct cgroup_backend *backend_for(enum silo_cgroup_version v)
{
        switch (v) {
        case SILO_CGROUP_V1:
                return &cgroup_v1_backend;
        case SILO_CGROUP_V2:
                return &cgroup_v2_backend;
        case SILO_CGROUP_NONE:
                break;
        }
        return NULL;
}

static size_t count_components(const char *path)
{
        size_t n = 0;
        for (const char *p = path; *p; p++)
                if (*p == '/' && p[1])
                        n++;
        return n;
}

/* Removes the `n` deepest components of rel (below mfd), deepest first. */
static void undo_dirs(int mfd, char *rel, unsigned n)
{
        for (unsigned i = 0; i < n; i++) {
                (void) unlinkat(mfd, rel, AT_REMOVEDIR);
                char *slash = strrchr(rel, '/');
                if (!slash)
                        break;
                *slash = '\0';
        }
}

static int make_dirs_at(const struct cgroup_backend *backend, struct cgroup_hierarchy *h, int mfd, char *rel,
                        silo_error *err)
{
        _cleanup_close_ int fd = fcntl(mfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return silo_error_set(err, errno, "dup");

        for (const char *p = h->path; *p;) {
                p += strspn(p, "/");
                if (!*p)
                        break;
                size_t n = strcspn(p, "/"), len = strlen(rel);
                char name[NAME_MAX + 1];
                memcpy(name, p, n);
                name[n] = '\0';
                p += n;

                bool made = mkdirat(fd, name, 0755) == 0;
                if (!made && errno != EEXIST)
                        return silo_error_set(err, errno, "mkdir %s/%s%s%s", h->mount, rel, len ? "/" : "", name);
                snprintf(rel + len, PATH_MAX - len, "%s%s", len ? "/" : "", name);
                /* Everything below a directory we made is ours too. */
                if (made || h->created > 0)
                        h->created++;

                _cleanup_close_ int sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0)
                        return silo_error_set(err, errno, "open %s/%s", h->mount, rel);
                /* Directories we made, and the container's own cgroup if it
                 * was made for us beforehand (init_dir fills only what is
                 * still empty); never a pre-existing parent. */
                bool leaf = p[strspn(p, "/")] == '\0';
                if (backend->init_dir && (made || leaf)) {
                        int r = backend->init_dir(h, fd, sub, err);
                        if (r < 0)
                                return silo_error_prefix(err, "initialize %s/%s", h->mount, rel);
                }
                silo_closep(&fd);
                fd = TAKE_FD(sub);
        }
        return 0;
}

/* mkdir -p of h->path below the mount, one openat at a time so a component
 * is never looked up by a string we did not just check.  Counts what it
 * made in h->created, which destroy relies on; on failure it removes what
 * it made itself, since the path is only partly there. */
static int make_dirs(const struct cgroup_backend *backend, struct cgroup_hierarchy *h, silo_error *err)
{
        _cleanup_close_ int mfd = open(h->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (mfd < 0)
                return silo_error_set(err, errno, "open cgroup hierarchy %s", h->mount);

        char rel[PATH_MAX] = "";
        int r = make_dirs_at(backend, h, mfd, rel, err);
        if (r < 0) {
                undo_dirs(mfd, rel, h->created);
                h->created = 0;
        }
        return r;
}

/* rmdir that waits (until `deadline`) for exiting tasks to leave, after
 * removing the cgroups nested inside (created by the container itself). */
static int remove_tree(int parent_fd, const char *name, const char *display, unsigned depth, uint64_t deadline,
                       silo_error *err)
{
        if (depth > CGROUP_MAX_DEPTH)
                return silo_error_msg(err, ELOOP, "%s: cgroups nested deeper than %d", display, CGROUP_MAX_DEPTH);

        int dfd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return errno == ENOENT ? 0 : silo_error_set(err, errno, "open %s", display);
        _cleanup_closedir_ DIR *dir = fdopendir(dfd);
        if (!dir) {
                close(dfd);
                return silo_error_set(err, errno, "opendir %s", display);
        }
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                char sub[PATH_MAX];
                snprintf(sub, sizeof(sub), "%s/%s", display, de->d_name);
                int r = remove_tree(dirfd(dir), de->d_name, sub, depth + 1, deadline, err);
                if (r < 0)
                        return r;
        }

        for (;;) {
                if (unlinkat(parent_fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
                        return 0;
                /* EBUSY: tasks still leaving (zombies being reaped). */
                if (errno != EBUSY || cgroup_now_ms() >= deadline)
                        return silo_error_set(err, errno, "rmdir %s", display);
                cgroup_sleep_ms(10);
        }
}

static int remove_dirs(const struct cgroup_hierarchy *h, uint64_t deadline, silo_error *err)
{
        if (h->created == 0)
                return 0;

        _cleanup_close_ int mfd = open(h->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (mfd < 0)
                return silo_error_set(err, errno, "open cgroup hierarchy %s", h->mount);

        char rel[PATH_MAX], display[PATH_MAX];
        snprintf(rel, sizeof(rel), "%s", h->path + 1);
        snprintf(display, sizeof(display), "%s%s", h->mount, h->path);
        int r = remove_tree(mfd, rel, display, 0, deadline, err);
        if (r < 0)
                return r;

        /* Then the parents we made, while nobody else uses them. */
        for (unsigned i = 1; i < h->created; i++) {
                char *slash = strrchr(rel, '/');
                if (!slash)
                        break;
                *slash = '\0';
                if (unlinkat(mfd, rel, AT_REMOVEDIR) == 0 || errno == ENOENT)
                        continue;
                if (errno == EBUSY || errno == ENOTEMPTY || errno == EEXIST)
                        break;  /* another container lives there */
                return silo_error_set(err, errno, "rmdir %s/%s", h->mount, rel);
        }
        return 0;
}

static void hierarchies_free(struct cgroup_hierarchy *h, size_t n)
{
        for (size_t i = 0; h && i < n; i++) {
                free(h[i].controllers);
                free(h[i].mount);
                free(h[i].path);
        }
        free(h);
}

silo_cgroup *silo_cgroup_free(silo_cgroup *cg)
{
        if (!cg)
                return NULL;
        hierarchies_free(cg->hier, cg->n_hier);
        free(cg);
        return NULL;
}

/* The mounts to manage: every v1 controller mount, or the one v2 root
 * (whose mountinfo root matters only for relative paths). */
static int hierarchy_mounts(const char *root, enum silo_cgroup_version version,
                            struct cgroup_mount **ret, size_t *ret_n, silo_error *err)
{
        struct cgroup_mount *m = NULL;
        size_t n = 0;
        int r = find_mounts(root, version == SILO_CGROUP_V1, &m, &n, err);
        if (r < 0)
                return r;
        if (version == SILO_CGROUP_V1 && n == 0)
                return silo_error_msg(err, ENODEV, "no cgroup v1 controllers are mounted below %s", root);
        if (version == SILO_CGROUP_V2 && n == 0) {
                /* Not a mount (a test tree of plain files): the root is "/". */
                m = calloc(1, sizeof(*m));
                if (!m || !(m->controllers = strdup("")) || !(m->mount_point = strdup(root)) ||
                    !(m->root = strdup("/"))) {
                        cgroup_mounts_free(m, m ? 1 : 0);
                        return silo_error_set(err, ENOMEM, "cgroup mounts");
                }
                n = 1;
        }
        *ret = m;
        *ret_n = n;
        return 0;
}

int cgroup_create_as(const struct silo_cgroup_options *opts, enum silo_cgroup_version version,
                     const char *cgroups_path, const char *id, silo_cgroup **ret, silo_error *err)
{
        _cleanup_free_ char *root = NULL, *proc_cgroup = NULL;
        _cleanup_cgroup_ silo_cgroup *cg = NULL;
        struct cgroup_mount *mounts = NULL;
        size_t n_mounts = 0;
        int r;

        const struct cgroup_backend *backend = backend_for(version);
        if (!backend)
                return silo_error_msg(err, EINVAL, "unknown cgroup version %d", (int) version);

        /* Fail on a systemd-style or bad path before touching anything. */
        _cleanup_free_ char *check = NULL;
        r = cgroup_resolve_path(cgroups_path, id, "/", &check, err);
        if (r < 0)
                return r;

        r = root_path(opts, &root, err);
        if (r < 0)
                return r;
        bool relative = cgroups_path && *cgroups_path && cgroups_path[0] != '/';
        if (relative) {
                r = read_proc_self("cgroup", &proc_cgroup, err);
                if (r < 0)
                        return r;
        }
        r = hierarchy_mounts(root, version, &mounts, &n_mounts, err);
        if (r < 0)
                return r;

        cg = calloc(1, sizeof(*cg));
        if (cg)
                cg->hier = calloc(n_mounts, sizeof(*cg->hier));
        if (!cg || !cg->hier) {
                r = silo_error_set(err, ENOMEM, "cgroup");
                goto out;
        }
        cg->version = version;
        cg->backend = backend;

        for (size_t i = 0; i < n_mounts; i++) {
                struct cgroup_mount *m = &mounts[i];
                _cleanup_free_ char *own = NULL, *own_rel = NULL, *path = NULL;

                if (relative) {
                        /* On v1 each hierarchy has its own place for us. */
                        _cleanup_free_ char *first = strndup(m->controllers, strcspn(m->controllers, ","));
                        if (!first) {
                                r = silo_error_set(err, ENOMEM, "cgroup");
                                goto rollback;
                        }
                        r = cgroup_parse_own(proc_cgroup, version == SILO_CGROUP_V1 ? first : NULL, &own, err);
                        if (r >= 0)
                                r = cgroup_strip_mount_root(own, m->root, &own_rel, err);
                        if (r < 0)
                                goto rollback;
                }
                r = cgroup_resolve_path(cgroups_path, id, own_rel, &path, err);
                if (r < 0)
                        goto rollback;

                struct cgroup_hierarchy *h = &cg->hier[cg->n_hier++];
                h->controllers = TAKE_PTR(m->controllers);
                h->mount = TAKE_PTR(m->mount_point);
                h->path = TAKE_PTR(path);
                r = make_dirs(backend, h, err);
                if (r < 0)
                        goto rollback;
        }
        *ret = TAKE_PTR(cg);
        r = 0;
        goto out;

rollback:
        /* Nothing has joined yet, so no waiting: undo what we made. */
        for (size_t i = 0; i < cg->n_hier; i++)
                (void) remove_dirs(&cg->hier[i], 0, NULL);
out:
        cgroup_mounts_free(mounts, n_mounts);
        return r;
}

int silo_cgroup_create(const struct silo_cgroup_options *opts, const char *cgroups_path, const char *id,
                       silo_cgroup **ret, silo_error *err)
{
        _cleanup_free_ char *root = NULL;
        enum silo_cgroup_version v;

        int r = root_path(opts, &root, err);
        if (r < 0)
                return r;
        r = detect_version(root, &v, err);
        if (r < 0)
                return r;
        return cgroup_create_as(opts, v, cgroups_path, id, ret, err);
}

enum silo_cgroup_version silo_cgroup_version(const silo_cgroup *cg)
{
        return cg->version;
}

/* ---- persistence ---- */

json_t *silo_cgroup_save(const silo_cgroup *cg)
{
        json_t *list = json_array();
        if (!list)
                return NULL;
        for (size_t i = 0; i < cg->n_hier; i++) {
                const struct cgroup_hierarchy *h = &cg->hier[i];
                char dir[PATH_MAX * 2];
                /* "dir" is for people and tools reading the state; load()
                 * rebuilds it from mount and path. */
                snprintf(dir, sizeof(dir), "%s%s", h->mount, h->path);
                if (json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:I}",
                                                          "controllers", h->controllers,
                                                          "mount", h->mount,
                                                          "path", h->path,
                                                          "dir", dir,
                                                          "created", (json_int_t) h->created)) < 0) {
                        json_decref(list);
                        return NULL;
                }
        }
        return json_pack("{s:I, s:o}", "version", (json_int_t) cg->version, "hierarchies", list);
}

struct saved_hierarchy {
        const char *controllers, *mount, *path;
        uint32_t created;
};

static const struct silo_json_field saved_hierarchy_fields[] = {
        { "controllers", SILO_JSON_STRING, offsetof(struct saved_hierarchy, controllers), SILO_JSON_REQUIRED, NULL },
        { "mount", SILO_JSON_STRING, offsetof(struct saved_hierarchy, mount), SILO_JSON_REQUIRED, NULL },
        { "path", SILO_JSON_STRING, offsetof(struct saved_hierarchy, path), SILO_JSON_REQUIRED, NULL },
        { "created", SILO_JSON_UINT32, offsetof(struct saved_hierarchy, created), SILO_JSON_REQUIRED, NULL },
        {}
};

struct saved_cgroup {
        int version;
        json_t *hierarchies;
};

static const struct silo_json_field saved_cgroup_fields[] = {
        { "version", SILO_JSON_INT, offsetof(struct saved_cgroup, version), SILO_JSON_REQUIRED, NULL },
        { "hierarchies", SILO_JSON_ARRAY, offsetof(struct saved_cgroup, hierarchies), SILO_JSON_REQUIRED, NULL },
        {}
};

static int load_hierarchy(json_t *v, const char *path, struct cgroup_hierarchy *h, silo_error *err)
{
        struct saved_hierarchy s = {};
        _cleanup_free_ char *norm = NULL;

        int r = silo_json_dispatch(v, path, saved_hierarchy_fields, &s, err);
        if (r < 0)
                return r;
        /* The state file decides what destroy removes: accept only what
         * create could have produced. */
        if (s.mount[0] != '/')
                return silo_error_msg(err, EINVAL, "%s.mount: '%s' is not absolute", path, s.mount);
        r = cgroup_normalize_path(s.path, &norm, err);
        if (r < 0)
                return silo_error_prefix(err, "%s.path", path);
        if (strcmp(norm, s.path) || !strcmp(norm, "/"))
                return silo_error_msg(err, EINVAL, "%s.path: '%s' is not a normalized cgroup path", path, s.path);
        if (s.created > count_components(norm))
                return silo_error_msg(err, EINVAL, "%s.created: %u is more than the path has", path, s.created);

        h->controllers = strdup(s.controllers);
        h->mount = strdup(s.mount);
        h->path = TAKE_PTR(norm);
        h->created = s.created;
        if (!h->controllers || !h->mount)
                return silo_error_set(err, ENOMEM, "%s", path);
        return 0;
}

int silo_cgroup_load(json_t *saved, silo_cgroup **ret, silo_error *err)
{
        struct saved_cgroup s = {};
        _cleanup_cgroup_ silo_cgroup *cg = NULL;

        int r = silo_json_dispatch(saved, "cgroup", saved_cgroup_fields, &s, err);
        if (r < 0)
                return r;
        const struct cgroup_backend *backend = backend_for((enum silo_cgroup_version) s.version);
        if (!backend || (s.version != SILO_CGROUP_V1 && s.version != SILO_CGROUP_V2))
                return silo_error_msg(err, EINVAL, "cgroup.version: unknown version %d", s.version);
        size_t n = json_array_size(s.hierarchies);
        if (n == 0 || n > CGROUP_MAX_HIERARCHIES || (s.version == SILO_CGROUP_V2 && n != 1))
                return silo_error_msg(err, EINVAL, "cgroup.hierarchies: %zu entries is not valid for cgroup v%d",
                                      n, s.version);

        cg = calloc(1, sizeof(*cg));
        if (cg)
                cg->hier = calloc(n, sizeof(*cg->hier));
        if (!cg || !cg->hier)
                return silo_error_set(err, ENOMEM, "cgroup");
        cg->version = (enum silo_cgroup_version) s.version;
        cg->backend = backend;
        for (size_t i = 0; i < n; i++) {
                char p[SILO_JSON_PATH_MAX];
                cg->n_hier++;
                r = load_hierarchy(json_array_get(s.hierarchies, i), silo_json_path_index(p, "cgroup.hierarchies", i),
                                   &cg->hier[i], err);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(cg);
        return 0;
}

/* ---- operations ---- */

int silo_cgroup_set_resources(silo_cgroup *cg, const struct silo_resources *res, silo_error *err)
{
        int r = cgroup_check_memory(res, err);
        if (r < 0)
                return r;
        return cg->backend->set_resources(cg, res, err);
}

int silo_cgroup_add_pid(silo_cgroup *cg, pid_t pid, silo_error *err)
{
        if (pid <= 0)
                return silo_error_msg(err, EINVAL, "cannot add pid %d to a cgroup", (int) pid);
        return cg->backend->add_pid(cg, pid, err);
}

int silo_cgroup_clone_fd(silo_cgroup *cg, silo_error *err)
{
        return cg->backend->clone_fd(cg, err);
}

int silo_cgroup_freeze(silo_cgroup *cg, bool frozen, silo_error *err)
{
        return cg->backend->freeze(cg, frozen, err);
}

int silo_cgroup_is_frozen(silo_cgroup *cg, bool *ret, silo_error *err)
{
        return cg->backend->is_frozen(cg, ret, err);
}

int silo_cgroup_pids(silo_cgroup *cg, pid_t **ret, size_t *ret_n, silo_error *err)
{
        _cleanup_cgroup_dir_ struct cgroup_dir d = CGROUP_DIR_INIT;
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0;

        int r = cgroup_dir_open(&d, cg->backend->procs_hierarchy(cg), NULL, err);
        if (r < 0)
                return r;
        r = cgroup_collect_pids(&d, &pids, &n, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(pids);
        *ret_n = n;
        return 0;
}

int silo_cgroup_kill_all(silo_cgroup *cg, int sig, silo_error *err)
{
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0;
        bool was_frozen = false, froze = false;
        int r;

        r = cg->backend->kill_all(cg, sig, err);
        if (r != -EOPNOTSUPP)
                return r;

        /* Freeze first so nothing forks a child we would miss.  Without a
         * freezer (v1 not mounted) we still signal what we see. */
        if (cg->backend->is_frozen(cg, &was_frozen, NULL) < 0)
                was_frozen = false;
        if (!was_frozen)
                froze = cg->backend->freeze(cg, true, NULL) == 0;

        r = silo_cgroup_pids(cg, &pids, &n, err);
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (kill(pids[i], sig) < 0 && errno != ESRCH)
                        r = silo_error_set(err, errno, "kill pid %d with signal %d", (int) pids[i], sig);

        /* Thaw what we froze; a paused container is thawed only for
         * SIGKILL, which frozen tasks cannot act on. */
        if (froze || (was_frozen && sig == SIGKILL)) {
                silo_error thaw_err = SILO_ERROR_INIT;
                int t = cg->backend->freeze(cg, false, &thaw_err);
                if (t < 0 && r >= 0) {
                        if (err)
                                *err = thaw_err;
                        r = t;
                }
        }
        return r < 0 ? r : 0;
}

int silo_cgroup_stats(silo_cgroup *cg, json_t **ret, silo_error *err)
{
        return cg->backend->stats(cg, ret, err);
}

int silo_cgroup_oom_count(silo_cgroup *cg, uint64_t *ret, silo_error *err)
{
        return cg->backend->oom_count(cg, ret, err);
}

int silo_cgroup_destroy(silo_cgroup *cg, silo_error *err)
{
        uint64_t deadline = cgroup_now_ms() + DESTROY_TIMEOUT_MS;
        int ret = 0;

        /* Every hierarchy even after a failure, so one busy controller
         * does not leak the others; the first error is reported. */
        for (size_t i = 0; i < cg->n_hier; i++) {
                silo_error e = SILO_ERROR_INIT;
                int r = remove_dirs(&cg->hier[i], deadline, &e);
                if (r < 0 && ret == 0) {
                        ret = r;
                        if (err)
                                *err = e;
                }
        }
        return ret;
}

size_t silo_cgroup_n_hierarchies(const silo_cgroup *cg)
{
        return cg ? cg->n_hier : 0;
}

void silo_cgroup_hierarchy(const silo_cgroup *cg, size_t i, const char **ret_mount, const char **ret_controllers,
                           const char **ret_path)
{
        const struct cgroup_hierarchy *h = &cg->hier[i];
        *ret_mount = h->mount;
        *ret_controllers = h->controllers ? h->controllers : "";
        *ret_path = h->path;
}
