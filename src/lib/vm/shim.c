/* The shim: one small host process per VM container (docs/VM.md).  It is
 * forked by create, owns QEMU and every channel to the guest, and lives as
 * long as the container's init: its pid is the container's pid in `state`
 * and its exit status the container's exit status.  Other commands reach it
 * through <state>/vm.sock (SOCK_SEQPACKET, one JSON object a message,
 * stdio fds passed with SCM_RIGHTS): start, signal, exec, stats, shutdown.
 *
 * The shim never execs: it runs in a fork of its creator, so it closes
 * every fd it did not ask for and leaves with _exit(). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "vm/share.h"
#include "vm/shim.h"

#define REQUEST_TIMEOUT_MS 30000
#define SHUTDOWN_TIMEOUT_MS 3000
#define STREAM_GRACE_MS 2000            /* output still owed after an exit */
#define WINSIZE_POLL_MS 250
#define OUTPUT_WRITE_TIMEOUT_MS 2000
#define API_MSG_MAX (256 * 1024)
#define MAX_CLIENTS 16
#define MAX_PROCS 32
#define MAX_HOSTED 16
#define MAX_API_FDS (3 + SILO_VM_MAX_DISKS + 1)
#define UPLOAD_STALL_MS 10000

struct shim_proc {
        uint32_t pid;                   /* the guest's ProcessId; 0: free slot */
        int in_fd;                      /* host side of its stdin, -1 */
        int out_fd, err_fd;             /* where its output goes, -1 */
        int client;                     /* the API connection waiting for its exit, -1 */
        bool tty, out_done, err_done, exited;
        bool held;                      /* a container's init: its stdin flows once started */
        bool abandoned;                 /* its client went away before it exited: kill it */
        int exit_code;
        int64_t exit_ms;
        struct winsize ws;
};

/* A container hosted in a utility VM.  Its host-side pid is a stand-in:
 * a child of ours that exits with the container's exit code (or 255 when
 * we die), so that create/state/wait/delete treat it like any container. */
struct hosted {
        char id[128];                   /* "" for a free slot */
        uint32_t init_pid;              /* the guest's ProcessId of its owner */
        pid_t standin;
        int standin_fd;                 /* write the exit code, then close */
        char layers[SILO_VM_MAX_DISKS + 1][SILO_VM_LAYER_NAME_MAX + 1];
        unsigned n_layers;
        char shares[SILO_VM_MAX_DISKS][SILO_VM_SHARE_NAME_MAX + 1];      /* its live mapped directories */
        unsigned n_shares;
};

struct shim {
        const struct silo_vm_shim_config *cfg;
        struct silo_vm vm;
        struct silo_vm_session s;
        int listen_fd;
        int clients[MAX_CLIENTS];
        struct shim_proc procs[MAX_PROCS];
        struct hosted hosted[MAX_HOSTED];
        struct silo_vm_share *share;    /* the live mapped directories: "silo.fs" */
        uint32_t init_pid;
        bool started, stopping, graceful;
        bool hosted_ever;               /* a hosted container has come and gone */
        int64_t next_winsize_ms;
        uint8_t in_buf[SILO_VM_STDIO_HEADER + SILO_VM_STDIO_CHUNK];
        size_t in_len;
        struct pollfd extra[SILO_VM_SESSION_EXTRA_MAX];
        /* what each extra slot is: */
        int extra_kind[SILO_VM_SESSION_EXTRA_MAX];
        int extra_index[SILO_VM_SESSION_EXTRA_MAX];
        uint8_t api_buf[API_MSG_MAX];
};

enum { X_STDIO, X_LISTEN, X_CLIENT, X_PROC_IN, X_PROC_CLIENT, X_FS };

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes everything or gives up after a while: a reader that stalls for
 * seconds loses output rather than stalling every other stream. */
static void write_all(int fd, const uint8_t *buf, size_t len)
{
        int64_t deadline = now_ms() + OUTPUT_WRITE_TIMEOUT_MS;
        while (fd >= 0 && len > 0) {
                ssize_t n = write(fd, buf, len);
                if (n > 0) {
                        buf += n;
                        len -= (size_t) n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN && now_ms() < deadline) {
                        struct pollfd p = { .fd = fd, .events = POLLOUT };
                        poll(&p, 1, 100);
                        continue;
                }
                return;
        }
}

static struct shim_proc *find_proc(struct shim *sh, uint32_t pid)
{
        for (int i = 0; i < MAX_PROCS; i++)
                if (sh->procs[i].pid == pid && pid)
                        return &sh->procs[i];
        return NULL;
}

static struct shim_proc *new_proc(struct shim *sh, uint32_t pid)
{
        for (int i = 0; i < MAX_PROCS; i++)
                if (!sh->procs[i].pid) {
                        sh->procs[i] = (struct shim_proc) { .pid = pid, .in_fd = -1, .out_fd = -1, .err_fd = -1,
                                                            .client = -1 };
                        return &sh->procs[i];
                }
        return NULL;
}

static void proc_free(struct shim_proc *p)
{
        /* The init's fds are our own stdio: never closed. */
        if (p->in_fd > 2)
                close(p->in_fd);
        if (p->out_fd > 2 && p->out_fd != p->in_fd)
                close(p->out_fd);
        if (p->err_fd > 2 && p->err_fd != p->out_fd && p->err_fd != p->in_fd)
                close(p->err_fd);
        silo_closep(&p->client);
        *p = (struct shim_proc) { .pid = 0, .in_fd = -1, .out_fd = -1, .err_fd = -1, .client = -1 };
}

static int send_stdio(struct shim *sh, uint32_t stream, const void *data, size_t len, silo_error *err)
{
        uint8_t frame[SILO_VM_STDIO_HEADER + SILO_VM_STDIO_CHUNK];
        silo_vm_stdio_header(frame, stream, (uint32_t) len);
        if (len)
                memcpy(frame + SILO_VM_STDIO_HEADER, data, len);
        size_t total = SILO_VM_STDIO_HEADER + len, off = 0;
        int64_t deadline = now_ms() + REQUEST_TIMEOUT_MS;
        while (off < total) {
                ssize_t n = write(sh->vm.stdio_fd, frame + off, total - off);
                if (n > 0) {
                        off += (size_t) n;
                        continue;
                }
                if (n < 0 && (errno == EINTR || errno == EAGAIN) && now_ms() < deadline) {
                        struct pollfd p = { .fd = sh->vm.stdio_fd, .events = POLLOUT };
                        poll(&p, 1, 100);
                        continue;
                }
                return silo_error_set(err, n < 0 ? errno : EPIPE, "writing to the guest's stdio port");
        }
        return 0;
}

/* Guest -> host stdio frames.  Frames for processes we do not know are
 * dropped; an oversized frame is a protocol violation. */
static int demux_output(struct shim *sh, silo_error *err)
{
        ssize_t n = read(sh->vm.stdio_fd, sh->in_buf + sh->in_len, sizeof(sh->in_buf) - sh->in_len);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0)
                return silo_error_msg(err, EPIPE, "the guest's stdio port closed");
        sh->in_len += (size_t) n;
        while (sh->in_len >= SILO_VM_STDIO_HEADER) {
                uint32_t stream, size;
                silo_vm_stdio_parse(sh->in_buf, &stream, &size);
                if (size > SILO_VM_STDIO_CHUNK || stream % 4 == 0)
                        return silo_error_msg(err, EPROTO, "guest stdio frame: stream %u, size %u out of bounds",
                                              stream, size);
                if (sh->in_len < SILO_VM_STDIO_HEADER + size)
                        break;
                struct shim_proc *p = find_proc(sh, stream / 4);
                if (p && stream % 4 <= 2) {
                        bool is_err = stream % 4 == 2 && !p->tty;
                        if (size == 0 && is_err)
                                p->err_done = true;
                        else if (size == 0)
                                p->out_done = true;
                        else
                                write_all(is_err ? p->err_fd : p->out_fd, sh->in_buf + SILO_VM_STDIO_HEADER, size);
                }
                memmove(sh->in_buf, sh->in_buf + SILO_VM_STDIO_HEADER + size, sh->in_len - SILO_VM_STDIO_HEADER - size);
                sh->in_len -= SILO_VM_STDIO_HEADER + size;
        }
        return 0;
}

/* Host -> guest: one read of a process's stdin (or terminal) source. */
static int forward_input(struct shim *sh, struct shim_proc *p, silo_error *err)
{
        uint8_t buf[SILO_VM_STDIO_CHUNK];
        ssize_t n = read(p->in_fd, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n <= 0) {
                /* EOF, or EIO from a terminal whose other side closed. */
                if (p->in_fd > 2 && p->in_fd != p->out_fd)
                        close(p->in_fd);
                p->in_fd = -1;
                return p->tty ? 0 : send_stdio(sh, SILO_VM_STREAM(p->pid, 0), NULL, 0, err);
        }
        return send_stdio(sh, SILO_VM_STREAM(p->pid, 0), buf, (size_t) n, err);
}

static void api_reply(int fd, json_t *body)
{
        _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        if (text)
                (void) !send(fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void api_error(int fd, const silo_error *e)
{
        _cleanup_json_ json_t *j = json_pack("{sisi}", "Result", -(e->code ? e->code : EIO), "Errno", e->code);
        if (j)
                json_object_set_new(j, "Error", json_string(e->message));
        api_reply(fd, j);
}

static int tty_size_changed(struct shim_proc *p)
{
        struct winsize ws;
        if (!p->tty || p->in_fd < 0 || ioctl(p->in_fd, TIOCGWINSZ, &ws) < 0)
                return 0;
        if (ws.ws_row == p->ws.ws_row && ws.ws_col == p->ws.ws_col)
                return 0;
        p->ws = ws;
        return 1;
}

static int resize(struct shim *sh, struct shim_proc *p, silo_error *err)
{
        _cleanup_json_ json_t *req = json_pack("{sIsisi}", "ProcessId", (json_int_t) p->pid, "Height",
                                               (int) p->ws.ws_row, "Width", (int) p->ws.ws_col);
        if (!req)
                return silo_error_set(err, ENOMEM, "ResizeConsole");
        silo_error e = SILO_ERROR_INIT;
        int r = silo_vm_session_request(&sh->s, SILO_VM_OP_RESIZE_CONSOLE, req, REQUEST_TIMEOUT_MS, NULL, &e);
        /* A guest that refuses is its business; a broken channel is ours. */
        if (r < 0 && r != -EIO) {
                *err = e;
                return r;
        }
        return 0;
}

static int signal_process(struct shim *sh, uint32_t pid, int sig, silo_error *err)
{
        _cleanup_json_ json_t *req = json_pack("{sIsi}", "ProcessId", (json_int_t) pid, "Signal", sig);
        if (!req)
                return silo_error_set(err, ENOMEM, "SignalProcess");
        return silo_vm_session_request(&sh->s, SILO_VM_OP_SIGNAL_PROCESS, req, REQUEST_TIMEOUT_MS, NULL, err);
}

/* Receives one API message with up to MAX_API_FDS fds. */
static ssize_t api_recv(struct shim *sh, int fd, int fds[MAX_API_FDS], size_t *ret_nfds)
{
        struct iovec iov = { sh->api_buf, sizeof(sh->api_buf) - 1 };
        union {
                char buf[CMSG_SPACE(MAX_API_FDS * sizeof(int))];
                struct cmsghdr align;
        } control;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf) };
        *ret_nfds = 0;
        ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0)
                return -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int f;
                        memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (*ret_nfds < MAX_API_FDS)
                                fds[(*ret_nfds)++] = f;
                        else
                                close(f);
                }
        }
        if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
                for (size_t i = 0; i < *ret_nfds; i++)
                        close(fds[i]);
                return -EMSGSIZE;
        }
        sh->api_buf[n] = 0;
        return n;
}

static int api_exec(struct shim *sh, int client, json_t *req, const char *cid, int *fds, size_t nfds,
                    silo_error *err)
{
        json_t *process = json_object_get(req, "Process");
        bool tty = json_is_true(json_object_get(process, "terminal"));
        if (!json_is_object(process) || nfds != (tty ? 1u : 3u))
                return silo_error_msg(err, EINVAL, "exec: expected a process and %d fds", tty ? 1 : 3);
        _cleanup_json_ json_t *body = json_pack("{sssO}", "ContainerId", cid, "Process", process);
        _cleanup_json_ json_t *resp = NULL;
        if (!body)
                return silo_error_set(err, ENOMEM, "exec");
        int r = silo_vm_session_request(&sh->s, SILO_VM_OP_EXECUTE_PROCESS, body, REQUEST_TIMEOUT_MS, &resp, err);
        if (r < 0)
                return r;
        json_t *jpid = json_object_get(resp, "ProcessId");
        if (!json_is_integer(jpid) || json_integer_value(jpid) < 1 || json_integer_value(jpid) > INT32_MAX / 4 ||
            find_proc(sh, (uint32_t) json_integer_value(jpid)))
                return silo_error_msg(err, EPROTO, "guest ExecuteProcess: ProcessId missing, out of range or in use");
        struct shim_proc *p = new_proc(sh, (uint32_t) json_integer_value(jpid));
        if (!p) {
                signal_process(sh, (uint32_t) json_integer_value(jpid), SIGKILL, NULL);
                return silo_error_msg(err, EAGAIN, "exec: too many processes in this VM");
        }
        p->tty = tty;
        p->in_fd = fds[0];
        p->out_fd = fds[tty ? 0 : 1];
        p->err_fd = fds[tty ? 0 : 2];
        p->client = client;
        for (size_t i = 0; i < nfds; i++) {
                fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
                fds[i] = -1;
        }
        if (tty && tty_size_changed(p) && (r = resize(sh, p, err)) < 0)
                return r;
        _cleanup_json_ json_t *reply = json_pack("{sisI}", "Result", 0, "ProcessId", (json_int_t) p->pid);
        api_reply(client, reply);
        return 1;       /* the connection now belongs to the process */
}

static void close_all_but(const int *keep, size_t n)
{
        long max = sysconf(_SC_OPEN_MAX);
        if (max < 0 || max > 65536)
                max = 65536;
        for (int fd = 3; fd < max; fd++) {
                bool k = false;
                for (size_t i = 0; i < n; i++)
                        k |= keep[i] == fd;
                if (!k)
                        close(fd);
        }
}

static struct hosted *find_hosted(struct shim *sh, const char *id)
{
        for (int i = 0; id && i < MAX_HOSTED; i++)
                if (sh->hosted[i].id[0] && !strcmp(sh->hosted[i].id, id))
                        return &sh->hosted[i];
        return NULL;
}

/* Copies an image to "silo.data" once the guest said it takes it. */
static int upload_layer(struct shim *sh, const char *name, int fd, silo_error *err)
{
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 1)
                return silo_error_msg(err, EINVAL, "layer %s: expected a non-empty image file", name);
        _cleanup_json_ json_t *body = json_pack("{ssss s{sssI}}", "ResourceType", "Layer", "RequestType", "Add",
                                                "Settings", "Name", name, "Size", (json_int_t) st.st_size);
        if (!body)
                return silo_error_set(err, ENOMEM, "ModifySettings");
        int r = silo_vm_session_request(&sh->s, SILO_VM_OP_MODIFY_SETTINGS, body, REQUEST_TIMEOUT_MS, NULL, err);
        if (r < 0)
                return r;
        /* From here the guest reads exactly st_size bytes: anything short
         * leaves the port out of step, so a failure ends the VM. */
        off_t off = 0;
        int64_t stall = now_ms() + UPLOAD_STALL_MS;
        while (off < st.st_size) {
                ssize_t n = sendfile(sh->vm.data_fd, fd, &off, (size_t) (st.st_size - off));
                if (n > 0) {
                        stall = now_ms() + UPLOAD_STALL_MS;
                        continue;
                }
                if (n < 0 && (errno == EAGAIN || errno == EINTR) && now_ms() < stall) {
                        struct pollfd p = { .fd = sh->vm.data_fd, .events = POLLOUT };
                        poll(&p, 1, 100);
                        continue;
                }
                return silo_error_set(err, n < 0 ? errno : EPIPE, "uploading layer %s to the guest", name);
        }
        return 0;
}

static void remove_layers(struct shim *sh, struct hosted *h)
{
        for (unsigned i = 0; i < h->n_shares; i++)
                silo_vm_share_remove(sh->share, h->shares[i]);
        h->n_shares = 0;
        for (unsigned i = 0; i < h->n_layers; i++) {
                _cleanup_json_ json_t *body = json_pack("{ssss s{ss}}", "ResourceType", "Layer", "RequestType",
                                                        "Remove", "Settings", "Name", h->layers[i]);
                if (body)
                        silo_vm_session_request(&sh->s, SILO_VM_OP_MODIFY_SETTINGS, body, REQUEST_TIMEOUT_MS, NULL,
                                                NULL);
        }
        h->n_layers = 0;
}

/* The stand-in: blocks every signal (what is meant for the container goes
 * through vm.sock) and exits with the byte it reads, 255 on EOF. */
static pid_t fork_standin(int *ret_fd, silo_error *err)
{
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return silo_error_set(err, errno, "pipe");
        pid_t pid = fork();
        if (pid < 0) {
                close(p[0]);
                close(p[1]);
                return silo_error_set(err, errno, "fork");
        }
        if (pid == 0) {
                sigset_t all;
                sigfillset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                close_all_but(&p[0], 1);
                unsigned char code = 255;
                ssize_t n;
                do
                        n = read(p[0], &code, 1);
                while (n < 0 && errno == EINTR);
                _exit(n == 1 ? code : 255);
        }
        close(p[0]);
        *ret_fd = p[1];
        return pid;
}

static void hosted_free(struct hosted *h, int exit_code)
{
        if (h->standin_fd >= 0) {
                unsigned char c = (unsigned char) exit_code;
                (void) !write(h->standin_fd, &c, 1);
                silo_closep(&h->standin_fd);
        }
        if (h->standin > 0)
                while (waitpid(h->standin, NULL, 0) < 0 && errno == EINTR)
                        ;
        *h = (struct hosted) { .standin_fd = -1 };
}

/* {"Op": "create", "ContainerId", "Spec", "HostName", "RootfsLayer",
 * "Layers": [names], "Shares": [names]} with the layers' image fds, the
 * shares' source fds, then the init's stdio (3 fds, or 1: a terminal).
 * Uploads the layers, adds the shares to the VM's share root, creates the
 * container in the guest, answers {"Pid": <stand-in>}. */
static int api_create_hosted(struct shim *sh, int client, json_t *req, const char *cid, int *fds, size_t nfds,
                             silo_error *err)
{
        json_t *spec = json_object_get(req, "Spec"), *layers = json_object_get(req, "Layers");
        json_t *shares = json_object_get(req, "Shares");
        const char *rootfs = json_string_value(json_object_get(req, "RootfsLayer"));
        bool tty = json_is_true(json_object_get(json_object_get(spec, "process"), "terminal"));
        size_t n_layers = json_array_size(layers), n_shares = json_array_size(shares), n_stdio = tty ? 1 : 3;
        if (!sh->cfg->utility)
                return silo_error_msg(err, EINVAL, "this VM is not a utility VM: it hosts its own container only");
        if (!cid || strlen(cid) >= sizeof(sh->hosted[0].id))
                return silo_error_msg(err, EINVAL, "create: ContainerId missing or longer than %zu bytes",
                                      sizeof(sh->hosted[0].id) - 1);
        if (find_hosted(sh, cid))
                return silo_error_msg(err, EEXIST, "container \"%s\" exists in this VM already", cid);
        if (!json_is_object(spec) || !rootfs || !json_is_array(layers) || n_layers < 1 ||
            n_layers > SILO_VM_MAX_DISKS + 1 || (shares && !json_is_array(shares)) || n_shares > SILO_VM_MAX_DISKS ||
            nfds != n_layers + n_shares + n_stdio)
                return silo_error_msg(err, EINVAL, "create: expected a Spec, a RootfsLayer, Layers, Shares and their fds");
        struct hosted *h = NULL;
        for (int i = 0; !h && i < MAX_HOSTED; i++)
                if (!sh->hosted[i].id[0])
                        h = &sh->hosted[i];
        if (!h)
                return silo_error_msg(err, EAGAIN, "this utility VM hosts %d containers already", MAX_HOSTED);
        *h = (struct hosted) { .standin_fd = -1 };
        int r = 0;
        for (size_t i = 0; i < n_layers && r == 0; i++) {
                const char *name = json_string_value(json_array_get(layers, i));
                if (!name || strlen(name) > SILO_VM_LAYER_NAME_MAX) {
                        r = silo_error_msg(err, EINVAL, "create: Layers[%zu]: expected a name", i);
                        break;
                }
                r = upload_layer(sh, name, fds[i], err);
                if (r == 0)
                        snprintf(h->layers[h->n_layers++], sizeof(h->layers[0]), "%s", name);
        }
        for (size_t i = 0; i < n_shares && r == 0; i++) {
                const char *name = json_string_value(json_array_get(shares, i));
                r = silo_vm_share_add(sh->share, name, fds[n_layers + i], err);
                if (r == 0)
                        snprintf(h->shares[h->n_shares++], sizeof(h->shares[0]), "%s", name);
        }
        _cleanup_json_ json_t *body = NULL, *resp = NULL;
        if (r == 0) {
                body = json_pack("{sssbsOsOsssb}", "ContainerId", cid, "Hosted", 1, "Spec", spec, "Process",
                                 json_object_get(spec, "process"), "RootfsLayer", rootfs, "Shares", n_shares > 0);
                r = body ? silo_vm_session_request(&sh->s, SILO_VM_OP_CREATE, body, REQUEST_TIMEOUT_MS, &resp, err)
                         : silo_error_set(err, ENOMEM, "Create");
        }
        json_t *jpid = json_object_get(resp, "ProcessId");
        if (r == 0 && (!json_is_integer(jpid) || json_integer_value(jpid) < 1 ||
                       json_integer_value(jpid) > INT32_MAX / 4 || find_proc(sh, (uint32_t) json_integer_value(jpid))))
                r = silo_error_msg(err, EPROTO, "guest Create: ProcessId missing, out of range or in use");
        struct shim_proc *p = r == 0 ? new_proc(sh, (uint32_t) json_integer_value(jpid)) : NULL;
        if (r == 0 && !p)
                r = silo_error_msg(err, EAGAIN, "too many processes in this VM");
        if (r == 0 && (h->standin = fork_standin(&h->standin_fd, err)) < 0)
                r = h->standin;
        if (r < 0) {
                silo_error keep = *err;
                if (p)
                        signal_process(sh, p->pid, SIGKILL, NULL);
                remove_layers(sh, h);
                *h = (struct hosted) { .standin_fd = -1 };
                *err = keep;
                return r;
        }
        snprintf(h->id, sizeof(h->id), "%s", cid);
        h->init_pid = p->pid;
        p->tty = tty;
        p->held = true;
        int *stdio = fds + n_layers + n_shares;
        p->in_fd = stdio[0];
        p->out_fd = stdio[tty ? 0 : 1];
        p->err_fd = stdio[tty ? 0 : 2];
        for (size_t i = 0; i < n_stdio; i++) {
                fcntl(stdio[i], F_SETFL, fcntl(stdio[i], F_GETFL) | O_NONBLOCK);
                stdio[i] = -1;
        }
        if (tty && tty_size_changed(p))
                resize(sh, p, NULL);
        _cleanup_json_ json_t *reply = json_pack("{sisI}", "Result", 0, "Pid", (json_int_t) h->standin);
        api_reply(client, reply);
        return 2;       /* answered */
}

/* One request from a client; returns 1 if the client's connection was
 * handed over, 0 when done with it, < 0 when the VM is unusable.  A request
 * naming a hosted container (ContainerId) acts on it; anything else on
 * this VM's own container, or on a utility VM itself. */
static int api_request(struct shim *sh, int client, silo_error *err)
{
        int fds[MAX_API_FDS];
        size_t nfds = 0;
        ssize_t n = api_recv(sh, client, fds, &nfds);
        if (n == -EAGAIN)
                return 2;
        if (n <= 0)
                return 0;
        silo_error e = SILO_ERROR_INIT;
        int r = 0;
        json_error_t jerr;
        _cleanup_json_ json_t *req = json_loadb((const char *) sh->api_buf, (size_t) n, 0, &jerr);
        const char *op = json_string_value(json_object_get(req, "Op"));
        const char *cid = json_string_value(json_object_get(req, "ContainerId"));
        struct hosted *h = find_hosted(sh, cid);
        bool answered = false;
        if (!op) {
                r = silo_error_msg(&e, EINVAL, "vm.sock: expected {\"Op\": ...}");
        } else if (!strcmp(op, "create")) {
                r = api_create_hosted(sh, client, req, cid, fds, nfds, &e);
                answered = r == 2;
        } else if (cid && !h && strcmp(cid, sh->cfg->id)) {
                r = silo_error_msg(&e, ESRCH, "no container \"%.128s\" in this VM", cid);
        } else if (!strcmp(op, "start")) {
                /* A terminal resized since create (a foreground run sizes its
                 * pty then) has its size before the process starts. */
                struct shim_proc *init = find_proc(sh, h ? h->init_pid : sh->init_pid);
                if (init && init->tty && tty_size_changed(init))
                        resize(sh, init, NULL);
                if (h) {
                        struct shim_proc *p = find_proc(sh, h->init_pid);
                        _cleanup_json_ json_t *body = json_pack("{ss}", "ContainerId", h->id);
                        r = !p || !p->held ? silo_error_msg(&e, EINVAL, "already started")
                            : silo_vm_session_request(&sh->s, SILO_VM_OP_START, body, REQUEST_TIMEOUT_MS, NULL, &e);
                        if (r == 0)
                                p->held = false;
                } else if (sh->cfg->utility) {
                        r = sh->started ? silo_error_msg(&e, EINVAL, "already started") : 0;
                        sh->started = true;     /* the VM runs since create */
                } else {
                        _cleanup_json_ json_t *body = json_pack("{ss}", "ContainerId", sh->cfg->id);
                        r = sh->started ? silo_error_msg(&e, EINVAL, "already started")
                            : silo_vm_session_request(&sh->s, SILO_VM_OP_START, body, REQUEST_TIMEOUT_MS, NULL, &e);
                        if (r == 0)
                                sh->started = true;
                }
        } else if (!strcmp(op, "signal")) {
                json_t *sig = json_object_get(req, "Signal"), *pid = json_object_get(req, "ProcessId");
                if (!json_is_integer(sig) || json_integer_value(sig) < 1 || json_integer_value(sig) > 64)
                        r = silo_error_msg(&e, EINVAL, "signal: expected a signal number");
                else if (!h && !json_is_integer(pid) && sh->cfg->utility)
                        sh->stopping = sh->graceful = true;     /* a utility VM: any signal shuts it down */
                else
                        r = signal_process(sh, json_is_integer(pid) ? (uint32_t) json_integer_value(pid)
                                               : h ? h->init_pid : sh->init_pid,
                                           (int) json_integer_value(sig), &e);
        } else if (!strcmp(op, "exec")) {
                struct shim_proc *init = h ? find_proc(sh, h->init_pid) : NULL;
                bool started = h ? init && !init->held : sh->started && !sh->cfg->utility;
                r = started ? api_exec(sh, client, req, h ? h->id : sh->cfg->id, fds, nfds, &e)
                            : silo_error_msg(&e, EINVAL, sh->cfg->utility && !h ? "a utility VM runs containers, "
                                             "not processes of its own" : "the container is not started");
                if (r == 1)
                        return 1;
        } else if (!strcmp(op, "stats")) {
                _cleanup_json_ json_t *body = h ? json_pack("{ss}", "ContainerId", h->id) : json_object(), *resp = NULL;
                r = silo_vm_session_request(&sh->s, SILO_VM_OP_GET_PROPERTIES, body, REQUEST_TIMEOUT_MS, &resp, &e);
                if (r == 0) {
                        json_object_set_new(resp, "Result", json_integer(0));
                        api_reply(client, resp);
                        answered = true;
                }
        } else if (!strcmp(op, "pause") || !strcmp(op, "resume")) {
                _cleanup_json_ json_t *body = h ? json_pack("{ssss s{ss}}", "ResourceType", "Container", "RequestType",
                                                            op[0] == 'p' ? "Pause" : "Resume", "Settings",
                                                            "ContainerId", h->id) : NULL;
                r = !h ? silo_error_msg(&e, EINVAL, "%s: only a hosted container is paused in its guest", op)
                    : body ? silo_vm_session_request(&sh->s, SILO_VM_OP_MODIFY_SETTINGS, body, REQUEST_TIMEOUT_MS,
                                                     NULL, &e)
                           : silo_error_set(&e, ENOMEM, "%s", op);
        } else if (!strcmp(op, "shutdown")) {
                if (h) {
                        /* The guest stops it; its exit ends the stand-in. */
                        _cleanup_json_ json_t *body = json_pack("{ss}", "ContainerId", h->id);
                        r = silo_vm_session_request(&sh->s, SILO_VM_OP_SHUTDOWN_FORCED, body, REQUEST_TIMEOUT_MS,
                                                    NULL, &e);
                } else {
                        sh->stopping = true;
                }
        } else {
                r = silo_error_msg(&e, EINVAL, "vm.sock: unknown Op \"%.64s\"", op);
        }
        for (size_t i = 0; i < nfds; i++)
                silo_closep(&fds[i]);
        if (r < 0)
                api_error(client, &e);
        else if (!answered) {
                _cleanup_json_ json_t *ok = json_pack("{si}", "Result", 0);
                api_reply(client, ok);
        }
        /* A broken channel ends the VM; the guest refusing is the client's problem. */
        if (r < 0 && r != -EIO && r != -EINVAL && r != -EAGAIN && r != -ESRCH && r != -EEXIST) {
                *err = e;
                return r;
        }
        return 0;
}

static void rebuild_extra(struct shim *sh)
{
        size_t n = 0;
        sh->extra[n] = (struct pollfd) { .fd = sh->vm.stdio_fd, .events = POLLIN };
        sh->extra_kind[n++] = X_STDIO;
        /* Served even while a request waits: the guest's Create mounts
         * the shares, and the container's create looks them up. */
        sh->extra[n] = (struct pollfd) { .fd = sh->vm.fs_fd, .events = silo_vm_share_events(sh->share) };
        sh->extra_kind[n++] = X_FS;
        sh->extra[n] = (struct pollfd) { .fd = sh->stopping ? -1 : sh->listen_fd, .events = POLLIN };
        sh->extra_kind[n++] = X_LISTEN;
        for (int i = 0; i < MAX_CLIENTS; i++) {
                if (sh->clients[i] < 0)
                        continue;
                sh->extra[n] = (struct pollfd) { .fd = sh->clients[i], .events = POLLIN };
                sh->extra_kind[n] = X_CLIENT;
                sh->extra_index[n++] = i;
        }
        /* An exec's client (silo-runtime exec, or the waiter of a detached
         * one) that goes away takes the process along: nobody could wait
         * for it or signal it any more. */
        for (int i = 0; i < MAX_PROCS && n < SILO_VM_SESSION_EXTRA_MAX; i++) {
                struct shim_proc *p = &sh->procs[i];
                if (!p->pid || p->client < 0 || p->exited || p->abandoned)
                        continue;
                sh->extra[n] = (struct pollfd) { .fd = p->client, .events = POLLIN };
                sh->extra_kind[n] = X_PROC_CLIENT;
                sh->extra_index[n++] = i;
        }
        for (int i = 0; i < MAX_PROCS && n < SILO_VM_SESSION_EXTRA_MAX; i++) {
                struct shim_proc *p = &sh->procs[i];
                /* The init's stdin only flows once it runs. */
                if (!p->pid || p->in_fd < 0 || p->exited || p->held || (p->pid == sh->init_pid && !sh->started))
                        continue;
                sh->extra[n] = (struct pollfd) { .fd = p->in_fd, .events = POLLIN };
                sh->extra_kind[n] = X_PROC_IN;
                sh->extra_index[n++] = i;
        }
        sh->s.extra = sh->extra;
        sh->s.n_extra = n;
}

static int on_extra(void *userdata, bool in_request, silo_error *err)
{
        struct shim *sh = userdata;
        int r;
        for (size_t i = 0; i < sh->s.n_extra; i++) {
                struct pollfd *p = &sh->extra[i];
                if (!p->revents || p->fd < 0)
                        continue;
                switch (sh->extra_kind[i]) {
                case X_STDIO:
                        if ((r = demux_output(sh, err)) < 0)
                                return r;
                        break;
                case X_FS:
                        if ((r = silo_vm_share_pump(sh->share, p->fd, err)) < 0)
                                return r;
                        break;
                case X_PROC_IN: {
                        struct shim_proc *pr = &sh->procs[sh->extra_index[i]];
                        if (pr->in_fd == p->fd && (r = forward_input(sh, pr, err)) < 0)
                                return r;
                        if (pr->in_fd < 0)
                                p->fd = -1;
                        break;
                }
                case X_PROC_CLIENT: {
                        struct shim_proc *pr = &sh->procs[sh->extra_index[i]];
                        /* Clients send nothing after their request: anything
                         * here is a hang-up (or a client breaking the rules). */
                        if (pr->client == p->fd)
                                pr->abandoned = true;
                        p->fd = -1;
                        break;
                }
                case X_LISTEN:
                        if (in_request)
                                break;  /* a new client waits for the request in flight */
                        int conn = accept4(sh->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                        for (int k = 0; conn >= 0 && k < MAX_CLIENTS; k++)
                                if (sh->clients[k] < 0) {
                                        sh->clients[k] = conn;
                                        conn = -1;
                                }
                        /* All slots busy: this client gets EOF rather than a shim spinning on it. */
                        silo_closep(&conn);
                        break;
                case X_CLIENT: {
                        if (in_request)
                                break;
                        int k = sh->extra_index[i];
                        if (sh->clients[k] != p->fd)
                                break;
                        r = api_request(sh, sh->clients[k], err);
                        if (r == 2)
                                break;
                        if (r == 1)
                                sh->clients[k] = -1;    /* now a process's */
                        else
                                silo_closep(&sh->clients[k]);
                        if (r < 0)
                                return r;
                        break;
                }
                }
        }
        return 0;
}

/* Exits the guest reported, and exec'd processes whose output ended (or
 * whose grace after the exit ran out) go back to their clients. */
static void collect_exits(struct shim *sh)
{
        for (size_t i = 0; i < sh->s.n_exits;) {
                struct shim_proc *p = find_proc(sh, sh->s.exits[i].process_id);
                if (p && !p->exited) {
                        p->exited = true;
                        p->exit_code = sh->s.exits[i].exit_code;
                        p->exit_ms = now_ms();
                }
                memmove(&sh->s.exits[i], &sh->s.exits[i + 1], (sh->s.n_exits - i - 1) * sizeof(sh->s.exits[0]));
                sh->s.n_exits--;
        }
        for (int i = 0; i < MAX_PROCS; i++) {
                struct shim_proc *p = &sh->procs[i];
                if (!p->pid || p->pid == sh->init_pid || !p->exited)
                        continue;
                bool done = p->out_done && (p->tty || p->err_done);
                if (!done && now_ms() - p->exit_ms < STREAM_GRACE_MS)
                        continue;
                _cleanup_json_ json_t *j = json_pack("{sisi}", "Result", 0, "ExitCode", p->exit_code);
                if (p->client >= 0)
                        api_reply(p->client, j);
                /* A hosted container's init: the container is gone in the
                 * guest, so are its layers; its stand-in reports the exit. */
                for (int k = 0; k < MAX_HOSTED; k++) {
                        struct hosted *h = &sh->hosted[k];
                        if (!h->id[0] || h->init_pid != p->pid)
                                continue;
                        remove_layers(sh, h);
                        hosted_free(h, p->exit_code);
                        sh->hosted_ever = true;
                }
                proc_free(p);
        }
}

static bool hosting(const struct shim *sh)
{
        for (int i = 0; i < MAX_HOSTED; i++)
                if (sh->hosted[i].id[0])
                        return true;
        return false;
}

static void kill_abandoned(struct shim *sh)
{
        for (int i = 0; i < MAX_PROCS; i++) {
                struct shim_proc *p = &sh->procs[i];
                if (p->pid && p->abandoned && !p->exited && p->client >= 0) {
                        silo_closep(&p->client);
                        signal_process(sh, p->pid, SIGKILL, NULL);
                }
        }
}

static void check_winsizes(struct shim *sh, silo_error *err)
{
        if (now_ms() < sh->next_winsize_ms)
                return;
        sh->next_winsize_ms = now_ms() + WINSIZE_POLL_MS;
        for (int i = 0; i < MAX_PROCS; i++) {
                struct shim_proc *p = &sh->procs[i];
                if (p->pid && !p->exited && tty_size_changed(p))
                        resize(sh, p, err);
        }
}

/* The FUSE server of the live mapped directories, with the container's
 * read-write binds as its first shares (a utility VM adds its hosted
 * containers' later).  Each node is an fd: the soft fd limit goes up to
 * the hard one. */
static int start_share(struct shim *sh, silo_error *err)
{
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
        int r = silo_vm_share_new(0, &sh->share, err);
        struct silo_vm_mappings *maps = sh->cfg->mappings;
        for (unsigned i = 0; r == 0 && maps && i < maps->n; i++) {
                struct silo_vm_mapping *mp = &maps->m[i];
                if (!mp->shared)
                        continue;
                r = silo_vm_share_add(sh->share, mp->share, mp->fd, err);
                silo_closep(&mp->fd);
        }
        return r;
}

static void ready(struct silo_vm_shim_config *cfg, const silo_error *e)
{
        char buf[SILO_ERROR_MAX + 2];
        int n = e ? snprintf(buf, sizeof(buf), "E%s", e->message) : snprintf(buf, sizeof(buf), "O");
        (void) !write(cfg->ready_fd, buf, n > 0 && (size_t) n < sizeof(buf) ? (size_t) n : sizeof(buf) - 1);
        silo_closep(&cfg->ready_fd);
}

/* Boots the VM and creates the container in it (KVM falls back to TCG
 * once, as in run). */
static int boot(struct shim *sh, silo_error *err)
{
        struct silo_vm_shim_config *cfg = (struct silo_vm_shim_config *) sh->cfg;
        for (int attempt = 0;; attempt++) {
                int r = silo_vm_launch(&cfg->vm, &sh->vm, err);
                if (r < 0)
                        return r;
                sh->s.fd = sh->vm.control_fd;
                sh->s.vm_pidfd = sh->vm.pidfd;
                sh->s.stdout_in = sh->vm.stdout_fd;
                sh->s.stderr_in = sh->vm.stderr_fd;
                rebuild_extra(sh);
                r = silo_vm_session_negotiate(&sh->s, cfg->params.boot_timeout_ms, err);
                if (r == 0)
                        break;
                if (attempt == 0 && cfg->params.accel_auto && cfg->vm.accel == SILO_VM_ACCEL_KVM &&
                    (r == -ESRCH || r == -EPIPE)) {
                        silo_vm_destroy(&sh->vm);
                        sh->s.reader.len = 0;
                        sh->s.reader.broken = false;
                        cfg->vm.accel = SILO_VM_ACCEL_TCG;
                        continue;
                }
                return silo_error_prefix(err, "VM boot (%s)", silo_vm_accel_to_string(cfg->vm.accel));
        }
        /* QEMU has them now; the tap must not outlive it in us. */
        silo_closep(&cfg->vm.rootfs_fd);
        silo_closep(&cfg->vm.tap_fd);
        if (cfg->utility && cfg->utility_networking) {
                /* Its NIC, before any container: they all share it. */
                _cleanup_json_ json_t *body = json_pack("{sssssO}", "ResourceType", "Network", "RequestType", "Add",
                                                        "Settings", cfg->utility_networking);
                int r = body ? silo_vm_session_request(&sh->s, SILO_VM_OP_MODIFY_SETTINGS, body, REQUEST_TIMEOUT_MS,
                                                       NULL, err)
                             : silo_error_set(err, ENOMEM, "ModifySettings");
                if (r < 0)
                        return r;
        }
        if (cfg->utility)
                return 0;       /* containers come later, through vm.sock */
        _cleanup_json_ json_t *resp = NULL;
        int r = silo_vm_session_request(&sh->s, SILO_VM_OP_CREATE, cfg->create_body, REQUEST_TIMEOUT_MS, &resp, err);
        if (r < 0)
                return r;
        json_t *jpid = json_object_get(resp, "ProcessId");
        if (!json_is_integer(jpid) || json_integer_value(jpid) < 1 || json_integer_value(jpid) > INT32_MAX / 4)
                return silo_error_msg(err, EPROTO, "guest Create: ProcessId missing or out of range");
        sh->init_pid = (uint32_t) json_integer_value(jpid);
        struct shim_proc *p = new_proc(sh, sh->init_pid);
        p->tty = cfg->tty_fd >= 0;
        p->in_fd = p->tty ? cfg->tty_fd : STDIN_FILENO;
        p->out_fd = p->tty ? cfg->tty_fd : STDOUT_FILENO;
        p->err_fd = p->tty ? cfg->tty_fd : STDERR_FILENO;
        fcntl(p->in_fd, F_SETFL, fcntl(p->in_fd, F_GETFL) | O_NONBLOCK);
        if (p->tty && tty_size_changed(p))
                return resize(sh, p, err);
        return 0;
}

static void forward_pending_signals(struct shim *sh, silo_error *err)
{
        uint64_t pending = sh->s.pending_signals;
        sh->s.pending_signals = 0;
        /* A utility VM has no process of its own: a signal shuts it down. */
        if (sh->cfg->utility) {
                sh->stopping = sh->graceful = pending != 0;
                return;
        }
        for (int sig = 1; sig <= 64; sig++)
                if (pending & (1ull << (sig - 1)))
                        signal_process(sh, sh->init_pid, sig, err);
}

__attribute__((noreturn)) void silo_vm_shim_main(struct silo_vm_shim_config *cfg)
{
        static struct shim shim;
        struct shim *sh = &shim;
        *sh = (struct shim) { .cfg = cfg, .vm = SILO_VM_INIT, .listen_fd = cfg->listen_fd };
        for (int i = 0; i < MAX_CLIENTS; i++)
                sh->clients[i] = -1;
        silo_error e = SILO_ERROR_INIT;

        /* Every signal a user may send is the container's (but SIGKILL). */
        sigset_t fwd;
        sigemptyset(&fwd);
        static const int forwarded[] = { SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGCONT,
                                         SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF,
                                         SIGWINCH, SIGPOLL, SIGPWR, SIGSYS };
        for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
                sigaddset(&fwd, forwarded[i]);
        for (int sig = SIGRTMIN; sig <= SIGRTMAX; sig++)
                sigaddset(&fwd, sig);
        sigprocmask(SIG_SETMASK, &fwd, NULL);
        signal(SIGPIPE, SIG_IGN);
        int sigfd = signalfd(-1, &fwd, SFD_CLOEXEC | SFD_NONBLOCK);

        int code = 255;
        int r = silo_vm_session_init(&sh->s, -1, &e);
        if (r == 0)
                r = start_share(sh, &e);
        if (r == 0) {
                sh->s.stdout_out = STDOUT_FILENO;
                sh->s.stderr_out = cfg->tty_fd >= 0 ? -1 : STDERR_FILENO;
                sh->s.sigfd = sigfd;
                sh->s.on_extra = on_extra;
                sh->s.userdata = sh;
                r = boot(sh, &e);
        }
        if (r < 0) {
                ready(cfg, &e);
                silo_vm_destroy(&sh->vm);
                _exit(255);
        }
        ready(cfg, NULL);

        bool vm_failed = false;
        for (;;) {
                rebuild_extra(sh);
                r = silo_vm_session_pump(&sh->s, WINSIZE_POLL_MS, &e);
                if (r < 0) {
                        vm_failed = true;
                        break;
                }
                if (sh->s.pending_signals)
                        forward_pending_signals(sh, NULL);
                if (silo_vm_session_take_exit(&sh->s, sh->init_pid, &code))
                        break;
                collect_exits(sh);
                kill_abandoned(sh);
                if (sh->cfg->stop_when_empty && sh->hosted_ever && !hosting(sh))
                        sh->stopping = sh->graceful = true;
                check_winsizes(sh, NULL);
                if (sh->stopping) {
                        code = sh->cfg->utility && sh->graceful ? 0 : 128 + SIGKILL;
                        break;
                }
        }
        if (!vm_failed) {
                /* The init's last output: the raw ports, then its stdio frames. */
                silo_vm_session_drain(&sh->s, 50);
                struct shim_proc *init = find_proc(sh, sh->init_pid);
                for (int i = 0; i < 40 && init && init->tty && !init->out_done; i++) {
                        sh->s.n_extra = 1;      /* only the stdio port */
                        if (silo_vm_session_pump(&sh->s, 50, NULL) < 0)
                                break;
                }
                _cleanup_json_ json_t *stop = cfg->utility ? json_object() : json_pack("{ss}", "ContainerId", cfg->id);
                /* Only the shares from here: a process the guest kills may be waiting for one. */
                sh->extra[0] = (struct pollfd) { .fd = sh->vm.fs_fd, .events = silo_vm_share_events(sh->share) };
                sh->extra_kind[0] = X_FS;
                sh->s.n_extra = 1;
                if (stop)
                        silo_vm_session_request(&sh->s, sh->graceful ? SILO_VM_OP_SHUTDOWN_GRACEFUL
                                                                     : SILO_VM_OP_SHUTDOWN_FORCED,
                                                stop, SHUTDOWN_TIMEOUT_MS, NULL, NULL);
                sh->s.n_extra = 0;
                silo_vm_stop(&sh->vm, SHUTDOWN_TIMEOUT_MS);
        } else {
                silo_vm_destroy(&sh->vm);
                if (cfg->tty_fd < 0)
                        dprintf(STDERR_FILENO, "silo: the VM stopped before the container's process exited: %s\n",
                                e.message);
        }
        _exit(vm_failed ? 255 : code);
}

int silo_vm_shim_keep_fds(const struct silo_vm_shim_config *cfg, int *keep, size_t max)
{
        size_t n = 0;
        int want[5 + 2 * SILO_VM_MAX_DISKS] = { cfg->listen_fd, cfg->ready_fd, cfg->tty_fd, cfg->vm.rootfs_fd,
                                                cfg->vm.tap_fd };
        size_t k = 5;
        for (unsigned i = 0; i < cfg->vm.n_disks; i++)
                want[k++] = cfg->vm.disks[i].fd;
        for (unsigned i = 0; cfg->mappings && i < cfg->mappings->n; i++)
                if (cfg->mappings->m[i].shared)
                        want[k++] = cfg->mappings->m[i].fd;
        for (size_t i = 0; i < k && n < max; i++)
                if (want[i] >= 0)
                        keep[n++] = want[i];
        return (int) n;
}

void silo_vm_shim_close_others(const struct silo_vm_shim_config *cfg)
{
        int keep[5 + 2 * SILO_VM_MAX_DISKS];
        int n = silo_vm_shim_keep_fds(cfg, keep, sizeof(keep) / sizeof(keep[0]));
        close_all_but(keep, (size_t) n);
}
