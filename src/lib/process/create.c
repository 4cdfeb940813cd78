/* `create` on the runtime side: validate everything that can be validated
 * before touching the host, then clone the init and drive it through setup.
 * Any failure rolls back what was made: init, cgroup, state directory. */
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "process/creds.h"
#include "process/hooks.h"
#include "process/internal.h"
#include "process/sync.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "vm/vm.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

char *silo_hook_state_json(const char *id, const char *status, pid_t pid, const char *bundle, json_t *annotations)
{
        _cleanup_json_ json_t *j = json_pack("{ss ss ss sI ss}", "ociVersion", "1.2.0", "id", id, "status", status,
                                             "pid", (json_int_t) pid, "bundle", bundle);
        if (!j)
                return NULL;
        if (annotations)
                json_object_set(j, "annotations", annotations);
        return json_dumps(j, JSON_COMPACT);
}

int silo_write_pid_file(const char *path, pid_t pid, silo_error *err)
{
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%d", (int) pid);
        /* Clients poll for the file: it must appear whole. */
        char dir[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", path);
        char *slash = strrchr(dir, '/');
        const char *name = path;
        _cleanup_close_ int dirfd = -1;
        if (slash) {
                *slash = '\0';
                name = slash + 1;
                dirfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        } else {
                dirfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        }
        if (dirfd < 0)
                return silo_error_set(err, errno, "--pid-file %s: open directory", path);
        int r = silo_write_file_replace_at(dirfd, name, buf, n, 0644, err);
        return r < 0 ? silo_error_prefix(err, "--pid-file") : 0;
}

static int connect_console_socket(const char *path, silo_error *err)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return silo_error_msg(err, ENAMETOOLONG, "--console-socket %s: path too long", path);
        strcpy(sa.sun_path, path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return silo_error_set(err, errno, "--console-socket %s: connect", path);
        return TAKE_FD(fd);
}

static int make_start_socket(int statefd, silo_error *err)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        /* Through the directory fd: the state path may be longer than sun_path. */
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/start.sock", statefd);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return silo_error_set(err, errno, "start socket");
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 1) < 0)
                return silo_error_set(err, errno, "start socket: bind");
        return TAKE_FD(fd);
}

static int open_joined_namespaces(struct create_ctx *c, silo_error *err)
{
        for (int t = 0; t < _SILO_NS_MAX; t++) {
                c->ns_fds[t] = -1;
                const char *path = c->spec->ns[t].path;
                if (!path)
                        continue;
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return silo_error_set(err, errno, "linux.namespaces: open %s namespace %s", silo_ns_name(t), path);
                c->ns_fds[t] = fd;
                int type = ioctl(fd, NS_GET_NSTYPE);
                if (type < 0 || type != silo_ns_clone_flag(t))
                        return silo_error_msg(err, EINVAL, "linux.namespaces: %s is not a %s namespace", path,
                                              silo_ns_name(t));
        }
        return 0;
}

static int write_id_map(pid_t pid, const char *file, const struct silo_id_mapping *m, size_t n, silo_error *err)
{
        char buf[340 * 36 + 1];
        size_t len = 0;
        for (size_t i = 0; i < n; i++)
                len += snprintf(buf + len, sizeof(buf) - len, "%u %u %u\n", m[i].container_id, m[i].host_id, m[i].size);
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
        int r = silo_write_file_at(AT_FDCWD, path, buf, len, err);
        return r < 0 ? silo_error_prefix(err, "linux.%s", strcmp(file, "uid_map") ? "gidMappings" : "uidMappings") : 0;
}

/* cgroup_fd >= 0 (cgroup v2): the child is born in its cgroup, which
 * skips the migration (and its RCU grace period) of a later move. */
static pid_t clone3_into(uint64_t flags, int exit_signal, int cgroup_fd)
{
        struct clone_args args = {
                .flags = flags | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0),
                .exit_signal = (uint64_t) exit_signal,
                .cgroup = cgroup_fd >= 0 ? (uint64_t) cgroup_fd : 0,
        };
        return (pid_t) syscall(SYS_clone3, &args, sizeof(args));
}

/* Namespaces made at clone time.  cgroup and time are unshared by the init
 * itself: cgroup after its cgroup move, time after writing offsets. */
static uint64_t new_ns_flags(const struct silo_spec *spec)
{
        uint64_t flags = 0;
        for (int t = 0; t < _SILO_NS_MAX; t++)
                if (spec->ns[t].wanted && !spec->ns[t].path && t != SILO_NS_CGROUP && t != SILO_NS_TIME)
                        flags |= (uint64_t) silo_ns_clone_flag(t);
        return flags;
}

static bool joins_any(const struct create_ctx *c)
{
        for (int t = 0; t < _SILO_NS_MAX; t++)
                if (c->ns_fds[t] >= 0)
                        return true;
        return false;
}

/* The init must wait for the runtime only if the runtime still has work
 * for it: a cgroup move, id maps, or hooks (which also need the init's pid). */
static bool init_needs_go(const struct create_ctx *c, bool born_in_cgroup)
{
        const struct silo_hooks *h = &c->spec->hooks;
        return !born_in_cgroup || c->new_userns || h->n[SILO_HOOK_PRESTART] || h->n[SILO_HOOK_CREATE_RUNTIME] ||
               h->n[SILO_HOOK_CREATE_CONTAINER] || h->n[SILO_HOOK_START_CONTAINER];
}

static int spawn_init(struct create_ctx *c, silo_error *err)
{
        uint64_t flags = new_ns_flags(c->spec);
        _cleanup_close_ int cgroup_fd = silo_cgroup_clone_fd(c->cg, NULL);
        c->wait_for_go = init_needs_go(c, cgroup_fd >= 0 && !joins_any(c));

        if (!joins_any(c)) {
                pid_t pid = clone3_into(flags, SIGCHLD, cgroup_fd);
                if (pid < 0 && cgroup_fd >= 0 && errno != ENOMEM) {
                        /* Not in this kernel or this cgroup: the moved-later path. */
                        close(TAKE_FD(cgroup_fd));
                        c->wait_for_go = true;
                        pid = clone3_into(flags, SIGCHLD, -1);
                }
                if (pid < 0)
                        return silo_error_set(err, errno, "clone container init");
                if (pid == 0)
                        silo_init_main(c);
                c->pid = pid;
                c->born_in_cgroup = cgroup_fd >= 0;
                return 0;
        }

        /* Joining: an intermediate process enters the given namespaces (user
         * first, so the others are reachable with its privileges), then
         * clones the init as our sibling-turned-child (CLONE_PARENT). */
        pid_t mid = fork();
        if (mid < 0)
                return silo_error_set(err, errno, "fork");
        if (mid == 0) {
                silo_error e = SILO_ERROR_INIT;
                static const int order[] = { SILO_NS_USER, SILO_NS_MOUNT, SILO_NS_PID, SILO_NS_UTS, SILO_NS_IPC,
                                             SILO_NS_NET, SILO_NS_CGROUP, SILO_NS_TIME };
                for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
                        int t = order[i];
                        if (c->ns_fds[t] >= 0 && setns(c->ns_fds[t], silo_ns_clone_flag(t)) < 0) {
                                silo_error_set(&e, errno, "linux.namespaces: join %s namespace %s", silo_ns_name(t),
                                               c->spec->ns[t].path);
                                silo_sync_fail(c->sync_child, &e);
                        }
                }
                pid_t pid = clone3_into(flags | CLONE_PARENT, 0, -1);
                if (pid < 0) {
                        silo_error_set(&e, errno, "clone container init");
                        silo_sync_fail(c->sync_child, &e);
                }
                if (pid == 0)
                        silo_init_main(c);
                silo_sync_send(c->sync_child, SILO_SYNC_PID, pid, NULL, 0, -1);
                _exit(0);
        }
        struct silo_sync_msg *msg = malloc(sizeof(*msg));
        if (!msg) {
                kill(mid, SIGKILL);
                waitpid(mid, NULL, 0);
                return silo_error_set(err, ENOMEM, "spawn");
        }
        int r = silo_sync_expect(c->sync_parent, SILO_SYNC_PID, msg, "join namespaces", err);
        waitpid(mid, NULL, 0);
        if (r == 0)
                c->pid = msg->value;
        free(msg);
        return r;
}

static void ctx_release(struct create_ctx *c)
{
        silo_closep(&c->bundlefd);
        silo_closep(&c->state_rootfd);
        silo_closep(&c->statefd);
        silo_closep(&c->listen_fd);
        silo_closep(&c->sync_parent);
        silo_closep(&c->sync_child);
        silo_closep(&c->console_fd);
        silo_closep(&c->console_local);
        silo_closep(&c->pidfd);
        for (int t = 0; t < _SILO_NS_MAX; t++)
                silo_closep(&c->ns_fds[t]);
        silo_rootfs_done(&c->rootfs);
        silo_cgroup_free(c->cg);
        silo_spec_free(c->spec);
}

/* Undo what create made on the host, in reverse. */
static void rollback(struct create_ctx *c)
{
        if (c->pid > 0) {
                kill(c->pid, SIGKILL);
                waitpid(c->pid, NULL, 0);
                c->pid = 0;
        }
        if (c->cg) {
                silo_cgroup_kill_all(c->cg, SIGKILL, NULL);
                silo_cgroup_destroy(c->cg, NULL);
        }
        if (c->state_created)
                silo_state_dir_remove(c->state_rootfd, c->id, NULL);
}

/* The device rules a container always gets after its own (as runc): the
 * default nodes, and mknod of anything (the nodes that exist are what
 * matters).  Nodes from linux.devices need their own resources.devices rule. */
static int append_default_device_rules(struct silo_spec *spec, silo_error *err)
{
        static const struct silo_device_rule defaults[] = {
                { true, 'c', -1, -1, "m" }, { true, 'b', -1, -1, "m" },
                { true, 'c', 1, 3, "rwm" }, { true, 'c', 1, 5, "rwm" }, { true, 'c', 1, 7, "rwm" },
                { true, 'c', 1, 8, "rwm" }, { true, 'c', 1, 9, "rwm" }, { true, 'c', 5, 0, "rwm" },
                { true, 'c', 5, 1, "rwm" }, { true, 'c', 5, 2, "rwm" }, { true, 'c', 136, -1, "rwm" },
        };
        struct silo_resources *res = &spec->resources;
        if (!spec->has_resources || !res->n_devices)
                return 0;       /* no device policy asked for: nothing to open up */
        size_t n = res->n_devices + ARRAY_SIZE(defaults);
        struct silo_device_rule *rules = reallocarray(res->devices, n, sizeof(*rules));
        if (!rules)
                return silo_error_set(err, ENOMEM, "device rules");
        res->devices = rules;
        memcpy(rules + res->n_devices, defaults, sizeof(defaults));
        res->n_devices = n;
        return 0;
}

/* systemd socket activation passes through, as with runc: the fds after the
 * preserved ones, and LISTEN_FDS/LISTEN_PID=1 for the container's init. */
static int add_socket_activation(struct create_ctx *c, silo_error *err)
{
        const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
        c->preserve_fds = c->opts->preserve_fds;
        if (!fds || !pid || strtol(pid, NULL, 10) != getpid())
                return 0;
        long n = strtol(fds, NULL, 10);
        if (n <= 0 || n > 4096)
                return 0;
        c->preserve_fds += (int) n;
        struct silo_process *p = &c->spec->process;
        size_t count = 0;
        while (p->env && p->env[count])
                count++;
        const char **env = reallocarray(p->env, count + 3, sizeof(char *));
        if (!env)
                return silo_error_set(err, ENOMEM, "process.env");
        p->env = env;
        snprintf(c->listen_fds_env, sizeof(c->listen_fds_env), "LISTEN_FDS=%ld", n);
        env[count++] = c->listen_fds_env;
        env[count++] = "LISTEN_PID=1";
        env[count] = NULL;
        return 0;
}

static int check_spec(struct create_ctx *c, silo_error *err)
{
        struct silo_spec *spec = c->spec;
        if (!spec->has_process)
                return silo_error_msg(err, EINVAL, "process: required to create a container");
        if (!spec->root_path)
                return silo_error_msg(err, EINVAL, "root: required to create a container");
        if (!spec->process.args || !spec->process.args[0] || !*spec->process.args[0])
                return silo_error_msg(err, EINVAL, "process.args: must name at least the program to run");
        if (!spec->ns[SILO_NS_MOUNT].wanted || spec->ns[SILO_NS_MOUNT].path)
                return silo_error_msg(err, EINVAL, "linux.namespaces: silo-runtime needs a new mount namespace");
        if (spec->process.terminal && !c->opts->console_socket && c->console_local < 0)
                return silo_error_msg(err, EINVAL, "process.terminal is true: --console-socket is required");
        if (!spec->process.terminal && c->opts->console_socket)
                return silo_error_msg(err, EINVAL, "--console-socket given but process.terminal is false");
        const char *iso = spec->annotations ? json_string_value(json_object_get(spec->annotations, "io.silo.isolation")) : NULL;
        /* vm and hyperv never get here (src/lib/vm). */
        if (iso && strcmp(iso, "process"))
                return silo_error_msg(err, EINVAL, "annotations.io.silo.isolation: \"%s\": expected process, vm "
                                      "or hyperv", iso);
        return silo_rlimits_check(&spec->process, err);
}

static int record_state(struct create_ctx *c, enum silo_state_write_mode mode, silo_error *err)
{
        struct silo_state st = {
                .id = (char *) c->id,
                .pid = c->pid,
                .bundle = c->bundle_abs,
                .rootfs = c->rootfs_abs,
                .annotations = c->spec->annotations,
                .config = c->spec->json,
                .own_pid_ns = c->spec->ns[SILO_NS_PID].wanted && !c->spec->ns[SILO_NS_PID].path,
        };
        if (!c->created[0])
                silo_rfc3339_now(c->created);
        st.created = c->created;
        if (c->pid > 0)
                silo_pid_start_time(c->pid, &st.pid_start);
        _cleanup_json_ json_t *cg = silo_cgroup_save(c->cg);
        st.cgroup = cg;
        return silo_state_write(c->statefd, &st, mode, err);
}

/* Everything up to a READY init; on success the caller owns c->pid. */
static int create_init(struct create_ctx *c, silo_error *err)
{
        int r;
        const char *bundle = c->opts->bundle ? c->opts->bundle : ".";

        /* Relative to where we were called, not the bundle we move into. */
        if (c->opts->pid_file) {
                char cwd[PATH_MAX];
                int n = c->opts->pid_file[0] == '/' ? snprintf(c->pid_file, sizeof(c->pid_file), "%s", c->opts->pid_file)
                        : getcwd(cwd, sizeof(cwd)) ? snprintf(c->pid_file, sizeof(c->pid_file), "%.2048s/%.2000s", cwd, c->opts->pid_file)
                        : -1;
                if (n < 0 || (size_t) n >= sizeof(c->pid_file))
                        return silo_error_msg(err, ENAMETOOLONG, "--pid-file %s: path too long", c->opts->pid_file);
        }

        if (!realpath(bundle, c->bundle_abs))
                return silo_error_set(err, errno, "bundle %s", bundle);
        c->bundlefd = open(c->bundle_abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (c->bundlefd < 0)
                return silo_error_set(err, errno, "bundle %s", c->bundle_abs);
        if (c->preloaded_config) {
                r = silo_spec_from_json(c->preloaded_config, &c->spec, err);
                if (r < 0)
                        return silo_error_prefix(err, "config.json");
        } else {
                r = silo_spec_load_at(c->bundlefd, "config.json", &c->spec, err);
                if (r < 0)
                        return r;
        }
        r = check_spec(c, err);
        if (r < 0)
                return r;
        silo_runtime_debug(c->rt, "%s: config %s/config.json loaded", c->id, c->bundle_abs);
        if (c->rt->warn) {
                _cleanup_json_ json_t *unknown = silo_spec_unknown_fields(c->spec->json);
                size_t i;
                json_t *f;
                json_array_foreach(unknown, i, f) {
                        char msg[SILO_JSON_PATH_MAX + 64];
                        snprintf(msg, sizeof(msg), "config.json: ignoring unknown field \"%s\"", json_string_value(f));
                        c->rt->warn(c->rt->userdata, msg);
                }
        }
        r = add_socket_activation(c, err);
        if (r < 0)
                return r;

        const char *root = c->spec->root_path ? c->spec->root_path : "rootfs";
        int n = root[0] == '/' ? snprintf(c->rootfs_abs, sizeof(c->rootfs_abs), "%s", root)
                               : snprintf(c->rootfs_abs, sizeof(c->rootfs_abs), "%.2048s/%.2000s", c->bundle_abs, root);
        if (n < 0 || (size_t) n >= sizeof(c->rootfs_abs))
                return silo_error_msg(err, ENAMETOOLONG, "root.path: path too long");
        /* The init reopens it by path in its own namespace: make it canonical. */
        char canonical[PATH_MAX];
        if (!realpath(c->rootfs_abs, canonical))
                return silo_error_set(err, errno, "root.path: rootfs %s", c->rootfs_abs);
        memcpy(c->rootfs_abs, canonical, sizeof(canonical));
        c->rootfs.spec = c->spec;
        c->rootfs.rootfs_path = c->rootfs_abs;
        c->rootfs.no_pivot = c->opts->no_pivot;
        c->new_userns = c->spec->ns[SILO_NS_USER].wanted && !c->spec->ns[SILO_NS_USER].path;
        c->rootfs.in_userns = c->spec->ns[SILO_NS_USER].wanted;
        c->rootfs.cgroup_ns = c->spec->ns[SILO_NS_CGROUP].wanted;
        r = silo_rootfs_open(&c->rootfs, c->bundlefd, err);
        if (r < 0)
                return r;
        r = open_joined_namespaces(c, err);
        if (r < 0)
                return r;
        if (c->opts->console_socket) {
                c->console_fd = connect_console_socket(c->opts->console_socket, err);
                if (c->console_fd < 0)
                        return c->console_fd;
        }

        /* From here on we change the host: state dir, cgroup, processes. */
        r = silo_state_root_open(c->rt->state_root, true, &c->state_rootfd, err);
        if (r < 0)
                return r;
        r = silo_state_dir_create(c->state_rootfd, c->id, &c->statefd, err);
        if (r < 0)
                return r;
        c->state_created = true;

        r = silo_cgroup_create(&c->rt->cgroup, c->spec->cgroups_path, c->id, &c->cg, err);
        if (r < 0)
                return silo_error_prefix(err, "linux.cgroupsPath");
        c->rootfs.cgroup = c->cg;
        silo_runtime_debug(c->rt, "%s: cgroup v%d ready", c->id, (int) silo_cgroup_version(c->cg));
        /* Recorded at once (status "creating", no pid yet): if we die from
         * here on, `delete --force` still finds the cgroup to remove. */
        r = record_state(c, SILO_STATE_CREATE, err);
        if (r < 0)
                return r;
        if (c->spec->has_resources) {
                r = append_default_device_rules(c->spec, err);
                if (r < 0)
                        return r;
                r = silo_cgroup_set_resources(c->cg, &c->spec->resources, err);
                if (r < 0)
                        return silo_error_prefix(err, "linux.resources");
        }

        if (!c->autostart) {
                c->listen_fd = make_start_socket(c->statefd, err);
                if (c->listen_fd < 0)
                        return c->listen_fd;
        }
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
                return silo_error_set(err, errno, "socketpair");
        c->sync_parent = sp[0];
        c->sync_child = sp[1];

        /* Relative bind-mount sources are relative to the bundle. */
        if (fchdir(c->bundlefd) < 0)
                return silo_error_set(err, errno, "chdir to bundle");
        r = spawn_init(c, err);
        if (r < 0)
                return r;
        silo_closep(&c->sync_child);
        silo_closep(&c->listen_fd);
        c->sync_child = c->listen_fd = -1;

        silo_runtime_debug(c->rt, "%s: init is pid %d%s%s", c->id, (int) c->pid,
                           c->born_in_cgroup ? ", born in its cgroup" : "", c->wait_for_go ? ", waits for GO" : "");
        if (!c->born_in_cgroup) {
                r = silo_cgroup_add_pid(c->cg, c->pid, err);
                if (r < 0)
                        return r;
        }
        if (c->new_userns) {
                r = write_id_map(c->pid, "uid_map", c->spec->uid_mappings, c->spec->n_uid_mappings, err);
                if (r < 0)
                        return r;
                r = write_id_map(c->pid, "gid_map", c->spec->gid_mappings, c->spec->n_gid_mappings, err);
                if (r < 0)
                        return r;
        }

        if (c->wait_for_go) {
                _cleanup_free_ char *hook_state = silo_hook_state_json(c->id, "creating", c->pid, c->bundle_abs,
                                                                       c->spec->annotations);
                if (!hook_state)
                        return silo_error_set(err, ENOMEM, "hook state");
                r = silo_hooks_run(c->spec, SILO_HOOK_PRESTART, hook_state, err);
                if (r == 0)
                        r = silo_hooks_run(c->spec, SILO_HOOK_CREATE_RUNTIME, hook_state, err);
                if (r < 0)
                        return r;
                r = silo_sync_send(c->sync_parent, SILO_SYNC_GO, 0, hook_state, strlen(hook_state), -1);
                if (r < 0)
                        return silo_error_set(err, -r, "signal container init");
        }

        /* Completed while the init builds its rootfs: the two overlap.  The
         * directory is locked until we exit, so nobody reads it half-written. */
        r = record_state(c, SILO_STATE_IN_PLACE, err);
        if (r < 0)
                return r;

        struct silo_sync_msg *msg = malloc(sizeof(*msg));
        if (!msg)
                return silo_error_set(err, ENOMEM, "sync");
        r = silo_sync_expect(c->sync_parent, SILO_SYNC_READY, msg, "container init", err);
        free(msg);
        if (r < 0)
                return r;
        silo_runtime_debug(c->rt, "%s: init ready (rootfs %s)", c->id, c->rootfs_abs);
        if (c->pid_file[0]) {
                r = silo_write_pid_file(c->pid_file, c->pid, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void ctx_init(struct create_ctx *c, const struct silo_runtime *rt, const char *id,
                     const struct silo_create_options *opts)
{
        memset(c, 0, sizeof(*c));
        c->rt = rt;
        c->id = id;
        c->opts = opts;
        c->bundlefd = c->state_rootfd = c->statefd = c->listen_fd = -1;
        c->sync_parent = c->sync_child = c->console_fd = c->console_local = c->pidfd = -1;
        c->rootfs.rootfd = c->rootfs.devnull_fd = c->rootfs.console_slave_fd = -1;
        for (int t = 0; t < _SILO_NS_MAX; t++)
                c->ns_fds[t] = -1;
}

int silo_container_create(const struct silo_runtime *rt, const char *id, const struct silo_create_options *opts,
                          silo_error *err)
{
        int r = silo_id_validate(id, err);
        if (r < 0)
                return r;
        /* VM isolation (src/lib/vm): a shim owning a utility VM. */
        bool vm = false;
        r = silo_vm_container_dispatch_create(rt, id, opts, &vm, err);
        if (vm)
                return r;

        struct create_ctx c;
        ctx_init(&c, rt, id, opts);
        r = create_init(&c, err);
        if (r < 0)
                rollback(&c);
        ctx_release(&c);
        return r;
}

int silo_container_run(const struct silo_runtime *rt, const char *id, const struct silo_create_options *opts,
                       bool detach, int *ret_status, silo_error *err)
{
        int r = silo_id_validate(id, err);
        if (r < 0)
                return r;
        *ret_status = 0;

        /* Read once for the decisions below and for create itself; if it does
         * not load, create loads it again and reports why. */
        _cleanup_json_ json_t *config = NULL;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/config.json", opts->bundle ? opts->bundle : ".");
        (void) silo_json_load_file_at(AT_FDCWD, path, SILO_CONFIG_MAX_BYTES, &config, NULL);

        /* VM isolation takes the whole run (src/lib/vm). */
        if (config && silo_vm_wanted(config))
                return silo_vm_container_run(rt, id, opts, detach, ret_status, err);

        struct create_ctx c;
        ctx_init(&c, rt, id, opts);
        c.preloaded_config = config;

        /* A foreground run with a terminal and no console socket proxies the
         * pty itself, like runc. */
        if (!detach && !opts->console_socket && config &&
            json_is_true(json_object_get(json_object_get(config, "process"), "terminal"))) {
                int sp[2];
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                        return silo_error_set(err, errno, "socketpair");
                c.console_local = sp[0];
                c.console_fd = sp[1];
        }

        /* Blocked from before the container exists, so a signal arriving at
         * any point is forwarded to it rather than killing us and leaving it
         * unsupervised. */
        sigset_t fwd_set, old_mask;
        silo_forwarded_signals(&fwd_set);
        if (!detach)
                sigprocmask(SIG_BLOCK, &fwd_set, &old_mask);

        c.autostart = true;
        r = create_init(&c, err);
        if (r < 0) {
                rollback(&c);
                ctx_release(&c);
                if (!detach)
                        sigprocmask(SIG_SETMASK, &old_mask, NULL);
                return r;
        }

        int master = -1;
        if (c.console_local >= 0)
                master = silo_recv_fd(c.console_local);
        pid_t pid = c.pid;
        c.pid = 0;      /* from here the state directory tracks it */
        r = silo_wait_exec(c.sync_parent, c.spec->json, id, pid, err);
        if (r == 0 && c.spec->hooks.n[SILO_HOOK_POSTSTART]) {
                _cleanup_free_ char *hs = silo_hook_state_json(id, "running", pid, c.bundle_abs, c.spec->annotations);
                silo_error e = SILO_ERROR_INIT;
                if (hs && silo_hooks_run(c.spec, SILO_HOOK_POSTSTART, hs, &e) < 0 && rt->warn)
                        rt->warn(rt->userdata, e.message);
        }
        /* Let other commands (state, exec, kill) at it while it runs. */
        silo_closep(&c.statefd);
        c.statefd = -1;
        if (r < 0 || detach) {
                silo_closep(&master);
                ctx_release(&c);
                if (r < 0) {
                        silo_error keep = *err;
                        silo_container_delete(rt, id, true, NULL);
                        *err = keep;
                }
                if (!detach)
                        sigprocmask(SIG_SETMASK, &old_mask, NULL);
                return r;
        }

        int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (master >= 0) {
                silo_console_proxy(master, pid, pidfd, NULL);
                close(master);
        }
        /* Forward the usual termination signals to the container while we wait. */
        *ret_status = silo_wait_forwarding(pid, &fwd_set);
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        silo_closep(&pidfd);
        if (opts->keep) {
                ctx_release(&c);
                return 0;
        }

        /* Tear down from what we hold instead of re-reading the state, under
         * the directory's lock (a concurrent `delete` may have won). */
        _cleanup_close_ int statefd = -1;
        r = silo_state_dir_open(c.state_rootfd, id, &statefd, NULL);
        if (r == 0) {
                struct silo_state st = {
                        /* pid 0: already reaped, its number may be someone else's now. */
                        .id = (char *) id, .pid = 0, .bundle = c.bundle_abs, .rootfs = c.rootfs_abs,
                        .annotations = c.spec->annotations,
                        .own_pid_ns = c.spec->ns[SILO_NS_PID].wanted && !c.spec->ns[SILO_NS_PID].path,
                };
                r = silo_container_teardown(rt, id, &st, c.cg, c.spec, err);
        } else {
                r = 0;
        }
        ctx_release(&c);
        return r;
}
