/* create/start/kill/delete/exec of a VM container: what libsilo's
 * silo_container_* functions dispatch to when the container's annotations
 * ask for VM isolation (docs/VM.md).  create forks the shim (shim.c); every
 * later command talks to it through <state>/vm.sock. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "process/internal.h"
#include "spec/spec.h"
#include "util/cleanup.h"
#include "util/json.h"
#include "vm/shim.h"

#define API_TIMEOUT_MS 60000
#define API_REPLY_MAX (256 * 1024)

bool silo_vm_annotated(json_t *annotations)
{
        const char *iso = json_string_value(json_object_get(annotations, SILO_VM_ANNOTATION));
        return iso && (!strcmp(iso, "vm") || !strcmp(iso, "hyperv"));
}

static bool is_utility(json_t *annotations)
{
        const char *v = json_string_value(json_object_get(annotations, SILO_VM_UTILITY_ANNOTATION));
        return v && !strcmp(v, "true");
}

static const char *hosted_by(json_t *annotations)
{
        return json_string_value(json_object_get(annotations, SILO_VM_HOST_ANNOTATION));
}

/* A request to the shim about this container (a hosted one is one of
 * several in its VM; the shim of a VM container ignores the id). */
static json_t *api_req(const struct silo_state *st, const char *op)
{
        return json_pack("{ssss}", "Op", op, "ContainerId", st->id);
}

int silo_vm_status(int statefd, const struct silo_state *st)
{
        int s = silo_state_status(statefd, st);
        if (s == SILO_STATUS_RUNNING && faccessat(statefd, SILO_VM_CREATED_MARK, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return SILO_STATUS_CREATED;
        if (s == SILO_STATUS_RUNNING && faccessat(statefd, SILO_VM_PAUSED_MARK, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return SILO_STATUS_PAUSED;
        return s;
}


static int api_connect(int statefd, silo_error *err)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/" SILO_VM_SOCKET, statefd);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return silo_error_set(err, errno, "socket");
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return silo_error_set(err, errno, "connect to the VM shim");
        return TAKE_FD(fd);
}

static int api_send(int fd, json_t *req, const int *fds, size_t nfds, silo_error *err)
{
        _cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
        if (!text)
                return silo_error_set(err, ENOMEM, "VM shim request");
        struct iovec iov = { text, strlen(text) };
        union {
                char buf[CMSG_SPACE((3 + SILO_VM_MAX_DISKS + 1) * sizeof(int))];
                struct cmsghdr align;
        } control;
        memset(&control, 0, sizeof(control));
        if (nfds > 3 + SILO_VM_MAX_DISKS + 1)
                return silo_error_msg(err, E2BIG, "too many fds for the VM shim");
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (nfds) {
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
                memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
        }
        if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
                return silo_error_set(err, errno, "send to the VM shim");
        return 0;
}

/* One reply; Result != 0 becomes an error with the shim's message. */
static int api_wait(int fd, int timeout_ms, json_t **ret, silo_error *err)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int n;
        do
                n = poll(&p, 1, timeout_ms);
        while (n < 0 && errno == EINTR);
        if (n == 0)
                return silo_error_msg(err, ETIMEDOUT, "the VM shim did not answer in %d ms", timeout_ms);
        _cleanup_free_ char *buf = malloc(API_REPLY_MAX);
        if (!buf)
                return silo_error_set(err, ENOMEM, "VM shim reply");
        ssize_t k = recv(fd, buf, API_REPLY_MAX - 1, 0);
        if (k <= 0)
                return silo_error_msg(err, ESRCH, "the VM shim went away (the container stopped)");
        json_error_t jerr;
        _cleanup_json_ json_t *j = json_loadb(buf, (size_t) k, 0, &jerr);
        json_t *res = json_object_get(j, "Result");
        if (!json_is_integer(res))
                return silo_error_msg(err, EPROTO, "VM shim: malformed reply");
        if (json_integer_value(res) != 0) {
                const char *msg = json_string_value(json_object_get(j, "Error"));
                json_int_t e = json_integer_value(json_object_get(j, "Errno"));
                return silo_error_msg(err, e > 0 && e < 4096 ? (int) e : EIO, "%s", msg ? msg : "VM shim: failed");
        }
        if (ret)
                *ret = TAKE_PTR(j);
        return 0;
}

static int api_call(int statefd, json_t *req, int timeout_ms, json_t **ret, silo_error *err)
{
        _cleanup_close_ int fd = api_connect(statefd, err);
        if (fd < 0)
                return fd;
        int r = api_send(fd, req, NULL, 0, err);
        return r < 0 ? r : api_wait(fd, timeout_ms, ret, err);
}

int silo_vm_hosted_freeze(int statefd, const struct silo_state *st, bool frozen, silo_error *err)
{
        enum silo_status status = silo_vm_status(statefd, st);
        enum silo_status want = frozen ? SILO_STATUS_RUNNING : SILO_STATUS_PAUSED;
        if (status != want)
                return silo_error_msg(err, EINVAL, "cannot %s container \"%s\": it is %s, not %s",
                                      frozen ? "pause" : "resume", st->id, silo_status_name(status),
                                      silo_status_name(want));
        _cleanup_json_ json_t *req = api_req(st, frozen ? "pause" : "resume");
        int r = req ? api_call(statefd, req, API_TIMEOUT_MS, NULL, err) : silo_error_set(err, ENOMEM, "pause");
        if (r < 0)
                return r;
        if (!frozen) {
                unlinkat(statefd, SILO_VM_PAUSED_MARK, 0);
                return 0;
        }
        int mark = openat(statefd, SILO_VM_PAUSED_MARK, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (mark < 0)
                return silo_error_set(err, errno, "create %s", SILO_VM_PAUSED_MARK);
        close(mark);
        return 0;
}

/* A pty on the host whose master goes to the console socket; the shim
 * copies between the slave and the guest's terminal. */
static int open_pty(json_t *process, int *ret_master, int *ret_slave, silo_error *err)
{
        _cleanup_close_ int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0 || unlockpt(master) < 0)
                return silo_error_set(err, errno, "open a pty");
        _cleanup_close_ int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
                return silo_error_set(err, errno, "open pty peer");
        /* Raw: the guest's pty does the line discipline. */
        struct termios t;
        if (tcgetattr(slave, &t) == 0) {
                cfmakeraw(&t);
                tcsetattr(slave, TCSANOW, &t);
        }
        /* process.consoleSize; the shim passes on this and every later size. */
        json_t *size = json_object_get(process, "consoleSize");
        json_int_t rows = json_integer_value(json_object_get(size, "height"));
        json_int_t cols = json_integer_value(json_object_get(size, "width"));
        if (rows > 0 && rows <= 65535 && cols > 0 && cols <= 65535) {
                struct winsize ws = { .ws_row = (unsigned short) rows, .ws_col = (unsigned short) cols };
                ioctl(slave, TIOCSWINSZ, &ws);
        }
        *ret_master = TAKE_FD(master);
        *ret_slave = TAKE_FD(slave);
        return 0;
}

static int host_pty(const char *console_socket, json_t *process, int *ret_slave, silo_error *err)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(console_socket) >= sizeof(sa.sun_path))
                return silo_error_msg(err, ENAMETOOLONG, "--console-socket %s: path too long", console_socket);
        strcpy(sa.sun_path, console_socket);
        _cleanup_close_ int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sock < 0 || connect(sock, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return silo_error_set(err, errno, "--console-socket %s: connect", console_socket);
        _cleanup_close_ int master = -1, slave = -1;
        int r = open_pty(process, &master, &slave, err);
        if (r == 0)
                r = silo_console_send(sock, master, err);
        if (r < 0)
                return r;
        *ret_slave = TAKE_FD(slave);
        return 0;
}

struct vm_create {
        const struct silo_runtime *rt;
        const char *id;
        struct silo_spec *spec;
        char bundle[PATH_MAX], rootfs[PATH_MAX], created[64];
        int rootfd, statefd;
        bool state_created;
        silo_cgroup *cg;
        struct silo_vm_shim_config shim;
        struct silo_vm_mappings *mappings;
        struct silo_vm_net net;         /* owns the tap fd; shim.vm.tap_fd borrows it */
        json_t *guest_config;
        pid_t pid;
};

static int record(struct vm_create *c, enum silo_state_write_mode mode, silo_error *err)
{
        struct silo_state st = {
                .id = (char *) c->id, .pid = c->pid, .bundle = c->bundle, .rootfs = c->rootfs, .created = c->created,
                .annotations = c->spec->annotations, .config = c->spec->json, .own_pid_ns = false,
        };
        if (c->pid > 0)
                silo_pid_start_time(c->pid, &st.pid_start);
        _cleanup_json_ json_t *cg = c->cg ? silo_cgroup_save(c->cg) : NULL;
        st.cgroup = cg;
        return silo_state_write(c->statefd, &st, mode, err);
}

/* The container's fresh state directory (removed again by a failed create). */
static int state_begin(struct vm_create *c, silo_error *err)
{
        int r = silo_state_dir_create(c->rootfd, c->id, &c->statefd, err);
        if (r < 0)
                return r;
        c->state_created = true;
        silo_rfc3339_now(c->created);
        return 0;
}

static int prepare(struct vm_create *c, const struct silo_create_options *opts, silo_error *err)
{
        const char *bundle = opts->bundle ? opts->bundle : ".";
        if (!realpath(bundle, c->bundle))
                return silo_error_set(err, errno, "bundle %s", bundle);
        _cleanup_close_ int bundlefd = open(c->bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (bundlefd < 0)
                return silo_error_set(err, errno, "bundle %s", c->bundle);
        int r = silo_spec_load_at(bundlefd, "config.json", &c->spec, err);
        if (r < 0)
                return r;
        struct silo_spec *spec = c->spec;
        c->shim.utility = is_utility(spec->annotations);
        const char *empty = json_string_value(json_object_get(spec->annotations, SILO_VM_STOP_WHEN_EMPTY_ANNOTATION));
        c->shim.stop_when_empty = empty && !strcmp(empty, "true");
        if (c->shim.utility) {
                /* A utility VM: no process and no root of its own. */
                if (opts->console_socket)
                        return silo_error_msg(err, EINVAL, "--console-socket: a utility VM has no terminal");
                return silo_vm_params_get(spec, &c->shim.params, err);
        }
        if (!spec->has_process || !spec->process.args || !spec->process.args[0] || !*spec->process.args[0])
                return silo_error_msg(err, EINVAL, "process.args: must name at least the program to run");
        if (!spec->root_path)
                return silo_error_msg(err, EINVAL, "root: required to create a container");
        if (spec->process.terminal && !opts->console_socket)
                return silo_error_msg(err, EINVAL, "process.terminal is true: --console-socket is required");
        if (!spec->process.terminal && opts->console_socket)
                return silo_error_msg(err, EINVAL, "--console-socket given but process.terminal is false");
        r = silo_vm_params_get(spec, &c->shim.params, err);
        if (r < 0)
                return r;
        char joined[PATH_MAX];
        if (snprintf(joined, sizeof(joined), "%s/%s", spec->root_path[0] == '/' ? "" : c->bundle, spec->root_path) >=
            (int) sizeof(joined))
                return silo_error_msg(err, ENAMETOOLONG, "root.path: too long");
        if (!realpath(joined, c->rootfs))
                return silo_error_set(err, errno, "root.path: rootfs %s", spec->root_path);
        return 0;
}

/* The network namespace the host would join by path: its interface goes
 * to the VM (net.c), and the container shares the VM's only network stack,
 * which is then the container's network: no network namespace in the
 * guest.  Other namespaces joined by path, and a network namespace with
 * nothing but loopback, become fresh ones in the guest. */
static int take_network(struct vm_create *c, json_t **ret_networking, silo_error *err)
{
        json_t *nss = json_object_get(json_object_get(c->guest_config, "linux"), "namespaces");
        ssize_t net_index = -1;
        const char *net_path = NULL;
        for (size_t i = 0; json_is_array(nss) && i < json_array_size(nss); i++) {
                json_t *ns = json_array_get(nss, i);
                const char *path = json_string_value(json_object_get(ns, "path"));
                if (path && *path && !strcmp(json_string_value(json_object_get(ns, "type")) ?: "", "network")) {
                        net_index = (ssize_t) i;
                        net_path = path;
                }
        }
        struct silo_vm_net *net = &c->net;
        if (net_path) {
                int r = silo_vm_net_prepare(net_path, net, err);
                if (r < 0)
                        return r;
                silo_runtime_debug(c->rt, "%s: network %s: %s %s/%u gateway %s mac %s mtu %u", c->id, net_path,
                                   net->tap_fd >= 0 ? net->ifname : "(loopback only)", net->address, net->prefix,
                                   net->gateway, net->mac, net->mtu);
        }
        if (net->tap_fd >= 0) {
                *ret_networking = silo_vm_net_to_json(net);
                if (!*ret_networking)
                        return silo_error_set(err, ENOMEM, "VM Networking");
                json_array_remove(nss, (size_t) net_index);
                c->shim.vm.tap_fd = net->tap_fd;
                memcpy(c->shim.vm.mac, net->mac, sizeof(c->shim.vm.mac));
                c->shim.vm.mtu = net->mtu;
        }
        for (size_t i = 0; json_is_array(nss) && i < json_array_size(nss); i++)
                json_object_del(json_array_get(nss, i), "path");
        return 0;
}

static int build_container(struct vm_create *c, const struct silo_create_options *opts, silo_error *err);

static int utility_network(struct vm_create *c, silo_error *err)
{
        c->guest_config = json_deep_copy(c->spec->json);
        if (!c->guest_config)
                return silo_error_set(err, ENOMEM, "VM config");
        return take_network(c, &c->shim.utility_networking, err);
}

/* Everything but the shim itself: images, Create request, terminal, socket. */
static int build_shim_config(struct vm_create *c, const struct silo_create_options *opts, silo_error *err)
{
        struct silo_vm_shim_config *s = &c->shim;
        s->rt = c->rt;
        s->id = c->id;
        s->cg = c->cg;
        s->vm = (struct silo_vm_config) {
                .qemu = s->params.qemu, .kernel = s->params.kernel, .initrd = s->params.initrd, .rootfs_fd = -1,
                .mem_mb = s->params.mem_mb, .cpus = s->params.cpus, .accel = s->params.accel,
                .debug_console = s->params.debug, .extra_cmdline = s->params.extra_cmdline, .tap_fd = -1,
        };
        /* A utility VM has no container of its own: its network (if its
         * config joins a namespace), the socket, and the share port for its
         * containers' read-write binds. */
        s->vm.fs_port = s->utility;
        int r = s->utility ? utility_network(c, err) : build_container(c, opts, err);
        if (r < 0)
                return r;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/" SILO_VM_SOCKET, c->statefd);
        s->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ||
            listen(s->listen_fd, 16) < 0)
                return silo_error_set(err, errno, "VM shim socket");
        return 0;
}

/* The container of a VM container's VM: images, Create request, terminal. */
static int build_container(struct vm_create *c, const struct silo_create_options *opts, silo_error *err)
{
        struct silo_vm_shim_config *s = &c->shim;
        int r = silo_vm_rootfs_image(c->rootfs, &s->vm.rootfs_fd, err);
        if (r < 0)
                return r;
        c->guest_config = json_deep_copy(c->spec->json);
        c->mappings = calloc(1, sizeof(*c->mappings));
        if (!c->guest_config || !c->mappings)
                return silo_error_set(err, ENOMEM, "VM config");
        _cleanup_json_ json_t *mapped = NULL;
        r = silo_vm_map_binds(c->rt, c->guest_config, c->bundle, NULL, c->mappings, &mapped, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *networking = NULL;
        r = take_network(c, &networking, err);
        if (r < 0)
                return r;
        s->mappings = c->mappings;
        for (unsigned i = 0; i < c->mappings->n; i++)
                if (!c->mappings->m[i].shared)
                        s->vm.disks[s->vm.n_disks++] = (struct silo_vm_disk) { .fd = c->mappings->m[i].fd,
                                                                               .readonly = true };
        s->vm.fs_port = c->mappings->n_shares > 0;
        s->create_body = json_pack("{ss sO sO sO sb}", "ContainerId", c->id, "Process",
                                   json_object_get(c->guest_config, "process"), "Spec", c->guest_config,
                                   "MappedDirectories", mapped, "Shares", c->mappings->n_shares > 0);
        if (!s->create_body || (c->spec->hostname &&
                                json_object_set_new(s->create_body, "HostName", json_string(c->spec->hostname)) < 0) ||
            (networking && json_object_set(s->create_body, "Networking", networking) < 0))
                return silo_error_set(err, ENOMEM, "VM Create request");
        if (c->spec->process.terminal) {
                r = host_pty(opts->console_socket, json_object_get(c->spec->json, "process"), &s->tty_fd, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void create_done(struct vm_create *c)
{
        struct silo_vm_shim_config *s = &c->shim;
        silo_closep(&s->listen_fd);
        silo_closep(&s->ready_fd);
        silo_closep(&s->tty_fd);
        silo_closep(&s->vm.rootfs_fd);
        silo_vm_net_done(&c->net);
        s->vm.tap_fd = -1;
        if (c->mappings)
                silo_vm_mappings_done(c->mappings);
        free(c->mappings);
        json_decref(s->create_body);
        json_decref(s->utility_networking);
        json_decref(c->guest_config);
        silo_closep(&c->statefd);
        silo_closep(&c->rootfd);
        silo_cgroup_free(c->cg);
        silo_spec_free(c->spec);
}

/* Waits for the shim's "O" (VM up, container created) or its error. */
static int wait_ready(struct vm_create *c, int fd, silo_error *err)
{
        char buf[SILO_ERROR_MAX + 2];
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int n;
        do
                n = poll(&p, 1, c->shim.params.boot_timeout_ms + API_TIMEOUT_MS);
        while (n < 0 && errno == EINTR);
        if (n == 0)
                return silo_error_msg(err, ETIMEDOUT, "the VM shim did not report");
        ssize_t k = read(fd, buf, sizeof(buf) - 1);
        if (k <= 0)
                return silo_error_msg(err, EIO, "the VM shim died while creating the container");
        buf[k] = 0;
        if (buf[0] == 'O')
                return 0;
        return silo_error_msg(err, EIO, "%s", buf + 1);
}

int silo_vm_container_create(const struct silo_runtime *rt, const char *id, const struct silo_create_options *opts,
                             silo_error *err)
{
        return silo_vm_container_create_shim(rt, id, opts, false, NULL, err);
}

int silo_vm_container_create_shim(const struct silo_runtime *rt, const char *id,
                                  const struct silo_create_options *opts, bool die_with_parent, pid_t *ret_pid,
                                  silo_error *err)
{
        struct vm_create c = { .rt = rt, .id = id, .rootfd = -1, .statefd = -1 };
        c.shim.listen_fd = c.shim.ready_fd = c.shim.tty_fd = -1;
        c.shim.vm.rootfs_fd = c.shim.vm.tap_fd = c.net.tap_fd = -1;
        int ready[2] = { -1, -1 };
        int r = prepare(&c, opts, err);
        if (r < 0)
                goto fail;
        r = silo_state_root_open(rt->state_root, true, &c.rootfd, err);
        if (r < 0)
                goto fail;
        r = state_begin(&c, err);
        if (r < 0)
                goto fail;
        /* The host cgroup holds the shim and QEMU: stats, pause, and a
         * delete that provably leaves no QEMU behind. */
        r = silo_cgroup_create(&rt->cgroup, c.spec->cgroups_path, id, &c.cg, err);
        if (r < 0) {
                silo_error_prefix(err, "linux.cgroupsPath");
                goto fail;
        }
        r = record(&c, SILO_STATE_CREATE, err);
        if (r < 0)
                goto fail;
        int mark = openat(c.statefd, SILO_VM_CREATED_MARK, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (mark < 0) {
                r = silo_error_set(err, errno, "create %s", SILO_VM_CREATED_MARK);
                goto fail;
        }
        close(mark);
        r = build_shim_config(&c, opts, err);
        if (r < 0)
                goto fail;
        if (pipe2(ready, O_CLOEXEC) < 0) {
                r = silo_error_set(err, errno, "pipe");
                goto fail;
        }
        c.shim.ready_fd = ready[1];
        silo_runtime_debug(rt, "%s: starting the VM shim (%s, %u MiB, %u vCPU)", id,
                           silo_vm_accel_to_string(c.shim.params.accel), c.shim.params.mem_mb, c.shim.params.cpus);
        c.pid = fork();
        if (c.pid < 0) {
                r = silo_error_set(err, errno, "fork the VM shim");
                goto fail;
        }
        if (c.pid == 0) {
                /* A foreground run takes its VM along however it dies. */
                if (die_with_parent)
                        prctl(PR_SET_PDEATHSIG, SIGKILL);
                silo_cgroup_add_pid(c.cg, getpid(), NULL);
                setsid();
                silo_vm_shim_close_others(&c.shim);
                silo_vm_shim_main(&c.shim);
        }
        silo_closep(&ready[1]);
        c.shim.ready_fd = -1;
        silo_closep(&c.shim.listen_fd);
        r = wait_ready(&c, ready[0], err);
        silo_closep(&ready[0]);
        if (r < 0)
                goto fail;
        r = record(&c, SILO_STATE_IN_PLACE, err);
        if (r == 0 && opts->pid_file)
                r = silo_write_pid_file(opts->pid_file, c.pid, err);
        if (r < 0)
                goto fail;
        silo_runtime_debug(rt, "%s: VM up, container created; shim pid %d", id, (int) c.pid);
        if (ret_pid)
                *ret_pid = c.pid;
        create_done(&c);
        return 0;
fail:
        silo_closep(&ready[0]);
        silo_closep(&ready[1]);
        if (c.pid > 0) {
                kill(c.pid, SIGKILL);
                while (waitpid(c.pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        if (c.cg) {
                silo_cgroup_kill_all(c.cg, SIGKILL, NULL);
                for (int i = 0; i < 1000; i++) {
                        _cleanup_free_ pid_t *pids = NULL;
                        size_t n = 0;
                        if (silo_cgroup_pids(c.cg, &pids, &n, NULL) < 0 || n == 0)
                                break;
                        usleep(2000);
                }
                silo_cgroup_destroy(c.cg, NULL);
        }
        if (c.state_created)
                silo_state_dir_remove(c.rootfd, id, NULL);
        create_done(&c);
        return r;
}

int silo_vm_container_start(int statefd, const struct silo_state *st, silo_error *err)
{
        enum silo_status status = silo_vm_status(statefd, st);
        if (status != SILO_STATUS_CREATED)
                return silo_error_msg(err, EINVAL, "cannot start container \"%s\": it is %s, not created", st->id,
                                      silo_status_name(status));
        _cleanup_json_ json_t *req = api_req(st, "start");
        int r = req ? api_call(statefd, req, API_TIMEOUT_MS, NULL, err) : silo_error_set(err, ENOMEM, "start");
        if (r < 0)
                return silo_error_prefix(err, "start container \"%s\"", st->id);
        unlinkat(statefd, SILO_VM_CREATED_MARK, 0);
        return 0;
}

int silo_vm_container_kill(int statefd, const struct silo_state *st, int sig, bool all, silo_error *err)
{
        enum silo_status status = silo_vm_status(statefd, st);
        if (status == SILO_STATUS_STOPPED || status == SILO_STATUS_CREATING)
                return silo_error_msg(err, ESRCH, "container \"%s\" is not running", st->id);
        if (sig == SIGKILL && !hosted_by(st->annotations)) {
                /* The VM ends with its shim (QEMU has PDEATHSIG); the
                 * container's exit status reads "killed by SIGKILL".  (A
                 * hosted container's pid is a stand-in: the guest kills it.) */
                _cleanup_close_ int pidfd = silo_pidfd_open_checked(st->pid, st->pid_start, err);
                if (pidfd < 0)
                        return silo_error_msg(err, ESRCH, "container \"%s\" is not running", st->id);
                if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) < 0)
                        return silo_error_set(err, errno, "kill the VM shim of %s", st->id);
                return 0;
        }
        (void) all;     /* the guest runs nothing but the container: the init's signal is enough */
        _cleanup_json_ json_t *req = api_req(st, "signal");
        if (req)
                json_object_set_new(req, "Signal", json_integer(sig));
        return req ? api_call(statefd, req, API_TIMEOUT_MS, NULL, err) : silo_error_set(err, ENOMEM, "kill");
}

void silo_vm_container_before_delete(int statefd, const struct silo_state *st)
{
        enum silo_status status = silo_vm_status(statefd, st);
        /* A paused hosted container is thawed first: it dies in its guest. */
        if (status == SILO_STATUS_PAUSED && hosted_by(st->annotations) &&
            silo_vm_hosted_freeze(statefd, st, false, NULL) == 0)
                status = SILO_STATUS_RUNNING;
        /* A paused VM cannot power off: the teardown kills it. */
        if (status != SILO_STATUS_RUNNING && status != SILO_STATUS_CREATED)
                return;
        /* Let the shim power the guest off cleanly. */
        _cleanup_close_ int pidfd = silo_pidfd_open_checked(st->pid, st->pid_start, NULL);
        _cleanup_json_ json_t *req = api_req(st, "shutdown");
        if (pidfd >= 0 && req && api_call(statefd, req, 5000, NULL, NULL) == 0)
                silo_pidfd_wait_exit(pidfd, 10000);
}

int silo_vm_container_stats(int statefd, const struct silo_state *st, json_t **ret, silo_error *err)
{
        _cleanup_json_ json_t *req = api_req(st, "stats");
        if (!req)
                return silo_error_set(err, ENOMEM, "stats");
        int r = api_call(statefd, req, API_TIMEOUT_MS, ret, err);
        if (r == 0)
                json_object_del(*ret, "Result");
        return r;
}

bool silo_vm_hosted(json_t *annotations)
{
        return silo_vm_annotated(annotations) && hosted_by(annotations);
}

int silo_vm_hosted_stats(int statefd, const struct silo_state *st, json_t **ret, silo_error *err)
{
        _cleanup_json_ json_t *guest = NULL;
        int r = silo_vm_container_stats(statefd, st, &guest, err);
        if (r < 0)
                return r;
        json_int_t mem = json_integer_value(json_object_get(guest, "ContainerMemoryBytes"));
        json_int_t pids = json_integer_value(json_object_get(guest, "ContainerPids"));
        json_int_t cpu = json_integer_value(json_object_get(guest, "ContainerCpuUsec"));
        *ret = json_pack("{s{s{sI}} s{s{sI}} s{sI} s{sO}}", "cpu", "usage", "total",
                         (json_int_t) (cpu > 0 ? cpu * 1000 : 0), "memory", "usage", "usage",
                         (json_int_t) (mem > 0 ? mem : 0), "pids", "current", (json_int_t) (pids > 0 ? pids : 0),
                         "vm", "guest", guest);
        return *ret ? 0 : silo_error_set(err, ENOMEM, "stats");
}

void silo_vm_stats_merge(int statefd, const struct silo_state *st, json_t *stats)
{
        _cleanup_json_ json_t *guest = NULL;
        if (silo_vm_container_stats(statefd, st, &guest, NULL) < 0)
                return;
        json_t *memory = json_object_get(stats, "memory"), *usage = json_object_get(memory, "usage");
        json_t *host_usage = json_object_get(usage, "usage");
        json_t *vm = json_pack("{sO}", "guest", guest);
        if (vm && host_usage)
                json_object_set(vm, "hostMemoryBytes", host_usage);
        if (vm)
                json_object_set_new(stats, "vm", vm);
        json_t *mem = json_object_get(guest, "ContainerMemoryBytes"), *pids = json_object_get(guest, "ContainerPids");
        /* Without a memory controller on its cgroup, the guest's used memory
         * stands for the container's: the VM runs nothing else. */
        json_int_t total = json_integer_value(json_object_get(guest, "MemTotalKiB"));
        json_int_t avail = json_integer_value(json_object_get(guest, "MemAvailableKiB"));
        json_int_t bytes = json_is_integer(mem) && json_integer_value(mem) >= 0 ? json_integer_value(mem)
                           : total > avail && avail >= 0 ? (total - avail) * 1024 : -1;
        if (bytes >= 0 && json_is_object(usage))
                json_object_set_new(usage, "usage", json_integer(bytes));
        json_t *jpids = json_object_get(stats, "pids");
        if (json_is_integer(pids) && json_integer_value(pids) >= 0 && json_is_object(jpids))
                json_object_set(jpids, "current", pids);
}

/* Waits on an exec's connection for its exit, forwarding our signals
 * (statefd >= 0) to the process over new connections. */
static int exec_wait(int statefd, int conn, uint32_t pid, const sigset_t *fwd, int *ret_status, silo_error *err)
{
        _cleanup_close_ int sigfd = fwd ? signalfd(-1, fwd, SFD_CLOEXEC | SFD_NONBLOCK) : -1;
        for (;;) {
                struct pollfd p[2] = { { .fd = conn, .events = POLLIN }, { .fd = sigfd, .events = POLLIN } };
                if (poll(p, 2, -1) < 0 && errno != EINTR)
                        return silo_error_set(err, errno, "poll");
                if (p[1].revents) {
                        struct signalfd_siginfo si;
                        if (read(sigfd, &si, sizeof(si)) == sizeof(si) && statefd >= 0) {
                                _cleanup_json_ json_t *req = json_pack("{sssisI}", "Op", "signal", "Signal",
                                                                       (int) si.ssi_signo, "ProcessId",
                                                                       (json_int_t) pid);
                                /* The shim checks the container it names; the pid is enough. */
                                if (req)
                                        api_call(statefd, req, API_TIMEOUT_MS, NULL, NULL);
                        }
                }
                if (!p[0].revents)
                        continue;
                _cleanup_json_ json_t *reply = NULL;
                int r = api_wait(conn, 0, &reply, err);
                if (r < 0)
                        return r;
                json_t *code = json_object_get(reply, "ExitCode");
                if (!json_is_integer(code))
                        return silo_error_msg(err, EPROTO, "VM shim: exec reply without ExitCode");
                *ret_status = (int) json_integer_value(code);
                return 0;
        }
}

int silo_vm_container_exec(int locked_statefd, const struct silo_state *st, json_t *process,
                           const struct silo_exec_options *opts, int *ret_status, silo_error *err)
{
        *ret_status = 0;
        /* Not holding the directory's lock while the process runs: other
         * commands (state, kill, another exec) must get at the container. */
        _cleanup_close_ int lockfd = locked_statefd;
        _cleanup_close_ int statefd = openat(lockfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (statefd < 0)
                return silo_error_set(err, errno, "open state directory");
        enum silo_status status = silo_vm_status(lockfd, st);
        if (status != SILO_STATUS_RUNNING)
                return silo_error_msg(err, EINVAL, "cannot exec in container \"%s\": it is %s", st->id,
                                      silo_status_name(status));
        if (!json_is_object(process) || !json_is_array(json_object_get(process, "args")) ||
            !json_array_size(json_object_get(process, "args")))
                return silo_error_msg(err, EINVAL, "process.args: must name at least the program to run");
        bool tty = json_is_true(json_object_get(process, "terminal"));
        if (tty && !opts->console_socket && opts->detach)
                return silo_error_msg(err, EINVAL, "exec --tty --detach needs --console-socket");
        /* Without a console socket, our own terminal is the process's: we
         * proxy it as for a process container. */
        _cleanup_close_ int slave = -1, master = -1;
        if (tty) {
                int r = opts->console_socket ? host_pty(opts->console_socket, process, &slave, err)
                                             : open_pty(process, &master, &slave, err);
                if (r < 0)
                        return r;
                struct winsize ws;
                if (master >= 0 && ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
                        ioctl(master, TIOCSWINSZ, &ws);
        }
        _cleanup_close_ int conn = api_connect(statefd, err);
        if (conn < 0)
                return conn;
        _cleanup_json_ json_t *req = api_req(st, "exec");
        if (req)
                json_object_set(req, "Process", process);
        int fds[3] = { STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO };
        if (tty)
                fds[0] = slave;
        int r = req ? api_send(conn, req, fds, tty ? 1 : 3, err) : silo_error_set(err, ENOMEM, "exec");
        silo_closep(&slave);
        slave = -1;
        _cleanup_json_ json_t *reply = NULL;
        if (r == 0)
                r = api_wait(conn, API_TIMEOUT_MS, &reply, err);
        if (r < 0)
                return silo_error_prefix(err, "exec in container \"%s\"", st->id);
        uint32_t pid = (uint32_t) json_integer_value(json_object_get(reply, "ProcessId"));
        silo_closep(&lockfd);
        lockfd = -1;

        if (opts->detach) {
                /* A small waiter stands for the process on the host: its pid
                 * goes to --pid-file and its exit status is the process's. */
                pid_t w = fork();
                if (w < 0)
                        return silo_error_set(err, errno, "fork");
                if (w == 0) {
                        long max = sysconf(_SC_OPEN_MAX);
                        for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
                                if (fd != conn && fd != statefd)
                                        close(fd);
                        /* Signals sent to the waiter are the process's
                         * (all but SIGKILL, which ends the waiter alone). */
                        sigset_t fwd;
                        silo_forwarded_signals(&fwd);
                        sigdelset(&fwd, SIGCHLD);
                        sigprocmask(SIG_BLOCK, &fwd, NULL);
                        int code = 255;
                        exec_wait(statefd, conn, pid, &fwd, &code, NULL);
                        _exit(code);
                }
                return opts->pid_file ? silo_write_pid_file(opts->pid_file, w, err) : 0;
        }
        if (opts->pid_file) {
                r = silo_write_pid_file(opts->pid_file, getpid(), err);
                if (r < 0)
                        return r;
        }
        sigset_t fwd, old;
        silo_forwarded_signals(&fwd);
        sigdelset(&fwd, SIGCHLD);
        sigprocmask(SIG_BLOCK, &fwd, &old);
        /* Ends when the shim lets go of the terminal, as the process ended. */
        if (master >= 0)
                silo_console_proxy(master, 0, -1, NULL);
        r = exec_wait(statefd, conn, pid, &fwd, ret_status, err);
        struct timespec zero = { 0, 0 };
        while (sigtimedwait(&fwd, NULL, &zero) > 0)
                ;
        sigprocmask(SIG_SETMASK, &old, NULL);
        return r;
}

/* The utility VM a hosted container joins must be one, and running. */
static int check_host(const struct silo_runtime *rt, const char *host_id, silo_error *err)
{
        _cleanup_json_ json_t *hst = NULL;
        silo_error e = SILO_ERROR_INIT;
        if (silo_id_validate(host_id, err) < 0)
                return silo_error_prefix(err, "annotation " SILO_VM_HOST_ANNOTATION);
        if (silo_container_state(rt, host_id, &hst, &e) < 0)
                return silo_error_msg(err, ENOENT, "annotation " SILO_VM_HOST_ANNOTATION ": no utility VM \"%s\"",
                                      host_id);
        const char *status = json_string_value(json_object_get(hst, "status"));
        if (!is_utility(json_object_get(hst, "annotations")))
                return silo_error_msg(err, EINVAL, "annotation " SILO_VM_HOST_ANNOTATION ": \"%s\" is not a utility VM",
                                      host_id);
        if (!status || (strcmp(status, "running") && strcmp(status, "created")))
                return silo_error_msg(err, ESRCH, "annotation " SILO_VM_HOST_ANNOTATION ": utility VM \"%s\" is %s",
                                      host_id, status ? status : "gone");
        return 0;
}

/* A utility VM on a network (its config joins a network namespace, whose
 * interface became its NIC) is its containers' network, as a pod's sandbox
 * is: they use the VM's network stack (no network namespace of their own)
 * and get its /etc/hosts and /etc/resolv.conf, read-only. */
static int share_host_network(const struct silo_runtime *rt, const char *host_id, json_t *guest_config,
                              silo_error *err)
{
        _cleanup_json_ json_t *host = NULL;
        int r = silo_container_config(rt, host_id, &host, err);
        if (r < 0)
                return r;
        bool networked = false;
        json_t *hns = json_object_get(json_object_get(host, "linux"), "namespaces");
        for (size_t i = 0; json_is_array(hns) && i < json_array_size(hns); i++) {
                json_t *ns = json_array_get(hns, i);
                networked |= !strcmp(json_string_value(json_object_get(ns, "type")) ?: "", "network") &&
                             json_is_string(json_object_get(ns, "path"));
        }
        if (!networked)
                return 0;
        json_t *nss = json_object_get(json_object_get(guest_config, "linux"), "namespaces");
        for (size_t i = 0; json_is_array(nss) && i < json_array_size(nss); i++)
                if (!strcmp(json_string_value(json_object_get(json_array_get(nss, i), "type")) ?: "", "network")) {
                        json_array_remove(nss, i);
                        break;
                }
        json_t *mounts = json_object_get(guest_config, "mounts"), *hm = json_object_get(host, "mounts");
        if (!json_is_array(mounts)) {
                mounts = json_array();
                json_object_set_new(guest_config, "mounts", mounts);
        }
        for (size_t i = 0; json_is_array(hm) && i < json_array_size(hm); i++) {
                json_t *m = json_array_get(hm, i);
                const char *dst = json_string_value(json_object_get(m, "destination"));
                const char *src = json_string_value(json_object_get(m, "source"));
                if (dst && src && src[0] == '/' && (!strcmp(dst, "/etc/hosts") || !strcmp(dst, "/etc/resolv.conf")))
                        json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:[s, s]}", "destination", dst,
                                                                "type", "bind", "source", src, "options", "rbind",
                                                                "ro"));
        }
        return 0;
}

/* A container in a running utility VM (annotation io.silo.vm.host): no VM
 * of its own.  Its root (and its read-only mapped directories) become
 * erofs images that the VM's shim uploads as layers; the shim creates the
 * container in the guest and answers with the pid of a stand-in process
 * that lives as long as the container.  Later commands reach the same shim
 * through a vm.sock symlink in this container's state directory. */
static int hosted_create(const struct silo_runtime *rt, const char *id, const struct silo_create_options *opts,
                         silo_error *err)
{
        struct vm_create c = { .rt = rt, .id = id, .rootfd = -1, .statefd = -1 };
        c.shim.listen_fd = c.shim.ready_fd = c.shim.tty_fd = -1;
        c.shim.vm.rootfs_fd = -1;
        _cleanup_close_ int hostfd = -1, conn = -1, image = -1;
        _cleanup_json_ json_t *req = NULL, *reply = NULL, *layers = NULL, *shares = NULL;
        int r = prepare(&c, opts, err);
        if (r < 0)
                goto fail;
        const char *host_id = hosted_by(c.spec->annotations);
        if (c.shim.utility) {
                r = silo_error_msg(err, EINVAL, "a utility VM cannot be hosted in another");
                goto fail;
        }
        if (strlen(id) > 127) {
                r = silo_error_msg(err, ENAMETOOLONG, "container ID: at most 127 bytes in a utility VM");
                goto fail;
        }
        if ((r = check_host(rt, host_id, err)) < 0 || (r = silo_state_root_open(rt->state_root, true, &c.rootfd, err)) < 0)
                goto fail;
        hostfd = openat(c.rootfd, host_id, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (hostfd < 0) {
                r = silo_error_set(err, errno, "utility VM %s", host_id);
                goto fail;
        }
        r = state_begin(&c, err);
        if (r < 0)
                goto fail;
        r = record(&c, SILO_STATE_CREATE, err);
        if (r < 0)
                goto fail;

        /* The guest's copy of the config: fresh namespaces there, binds
         * pointing at their layers. */
        uint64_t rnd = 0;
        if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd)) {
                r = silo_error_set(err, errno, "getrandom");
                goto fail;
        }
        char prefix[32], rootfs_layer[48];
        snprintf(prefix, sizeof(prefix), "h%016llx", (unsigned long long) rnd);
        snprintf(rootfs_layer, sizeof(rootfs_layer), "%s.rootfs", prefix);
        c.guest_config = json_deep_copy(c.spec->json);
        c.mappings = calloc(1, sizeof(*c.mappings));
        layers = json_pack("[s]", rootfs_layer);
        shares = json_array();
        if (!c.guest_config || !c.mappings || !layers || !shares) {
                r = silo_error_set(err, ENOMEM, "VM config");
                goto fail;
        }
        json_t *nss = json_object_get(json_object_get(c.guest_config, "linux"), "namespaces");
        for (size_t i = 0; json_is_array(nss) && i < json_array_size(nss); i++)
                json_object_del(json_array_get(nss, i), "path");
        r = share_host_network(rt, host_id, c.guest_config, err);
        if (r < 0)
                goto fail;
        _cleanup_json_ json_t *mapped = NULL;
        r = silo_vm_map_binds(rt, c.guest_config, c.bundle, prefix, c.mappings, &mapped, err);
        if (r < 0)
                goto fail;
        r = silo_vm_rootfs_image(c.rootfs, &image, err);
        if (r < 0)
                goto fail;
        int fds[3 + SILO_VM_MAX_DISKS + 1];
        size_t nfds = 0;
        fds[nfds++] = image;
        /* The layers' images, then the shares' sources (the VM's shim serves them live). */
        for (unsigned i = 0; i < c.mappings->n; i++) {
                if (c.mappings->m[i].shared)
                        continue;
                json_array_append_new(layers, json_string(c.mappings->m[i].layer));
                fds[nfds++] = c.mappings->m[i].fd;
        }
        for (unsigned i = 0; i < c.mappings->n; i++) {
                if (!c.mappings->m[i].shared)
                        continue;
                json_array_append_new(shares, json_string(c.mappings->m[i].share));
                fds[nfds++] = c.mappings->m[i].fd;
        }
        if (c.spec->process.terminal) {
                r = host_pty(opts->console_socket, json_object_get(c.spec->json, "process"), &c.shim.tty_fd, err);
                if (r < 0)
                        goto fail;
                fds[nfds++] = c.shim.tty_fd;
        } else {
                fds[nfds++] = STDIN_FILENO;
                fds[nfds++] = STDOUT_FILENO;
                fds[nfds++] = STDERR_FILENO;
        }
        req = json_pack("{sssssssOsOsO}", "Op", "create", "ContainerId", id, "RootfsLayer", rootfs_layer, "Spec",
                        c.guest_config, "Layers", layers, "Shares", shares);
        if (!req) {
                r = silo_error_set(err, ENOMEM, "create");
                goto fail;
        }
        silo_runtime_debug(rt, "%s: creating it in utility VM %s", id, host_id);
        conn = api_connect(hostfd, err);
        if (conn < 0 || (r = api_send(conn, req, fds, nfds, err)) < 0 ||
            (r = api_wait(conn, API_TIMEOUT_MS * 2, &reply, err)) < 0) {
                r = conn < 0 ? conn : r;
                silo_error_prefix(err, "utility VM %s", host_id);
                goto fail;
        }
        json_t *jpid = json_object_get(reply, "Pid");
        c.pid = json_is_integer(jpid) ? (pid_t) json_integer_value(jpid) : 0;
        char link_target[PATH_MAX];
        snprintf(link_target, sizeof(link_target), "../%s/" SILO_VM_SOCKET, host_id);
        int mark = openat(c.statefd, SILO_VM_CREATED_MARK, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (c.pid <= 0 || mark < 0 || symlinkat(link_target, c.statefd, SILO_VM_SOCKET) < 0) {
                r = c.pid <= 0 ? silo_error_msg(err, EPROTO, "utility VM %s: no Pid in its answer", host_id)
                               : silo_error_set(err, errno, "state of %s", id);
                if (mark >= 0)
                        close(mark);
                goto fail_created;
        }
        close(mark);
        r = record(&c, SILO_STATE_IN_PLACE, err);
        if (r == 0 && opts->pid_file)
                r = silo_write_pid_file(opts->pid_file, c.pid, err);
        if (r < 0)
                goto fail_created;
        create_done(&c);
        return 0;
fail_created:
        /* The guest has it: take it out again (its exit ends the stand-in). */
        json_decref(req);
        req = json_pack("{ssss}", "Op", "shutdown", "ContainerId", id);
        silo_closep(&conn);
        conn = api_connect(hostfd, NULL);
        if (req && conn >= 0 && api_send(conn, req, NULL, 0, NULL) == 0)
                api_wait(conn, API_TIMEOUT_MS, NULL, NULL);
fail:
        if (c.state_created)
                silo_state_dir_remove(c.rootfd, id, NULL);
        create_done(&c);
        return r;
}

int silo_vm_container_dispatch_create(const struct silo_runtime *rt, const char *id,
                                      const struct silo_create_options *opts, bool *ret_handled, silo_error *err)
{
        *ret_handled = false;
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/config.json", opts->bundle ? opts->bundle : ".") >= (int) sizeof(path))
                return 0;       /* create reports it */
        _cleanup_json_ json_t *config = NULL;
        if (silo_json_load_file_at(AT_FDCWD, path, SILO_CONFIG_MAX_BYTES, &config, NULL) < 0 ||
            !silo_vm_wanted(config))
                return 0;
        *ret_handled = true;
        if (hosted_by(json_object_get(config, "annotations")))
                return hosted_create(rt, id, opts, err);
        return silo_vm_container_create(rt, id, opts, err);
}
