/* /compute/...: the HCS-shaped compute API of libsilo (src/lib/api) over
 * HTTP.  URLs follow the HCS operation names (docs/API.md, "silod"):
 *
 *   GET    /compute/systems[?query=SystemQuery]            enumerate
 *   POST   /compute/systems?id=ID    body: ComputeSystem    create
 *   GET    /compute/systems/ID[/properties][?query=PQ]      properties (POST: body = PropertyQuery)
 *   DELETE /compute/systems/ID[?force=1]                    delete
 *   POST   /compute/systems/ID/{start,pause,resume,terminate}
 *   POST   /compute/systems/ID/shutdown[?timeout=MS]
 *   POST   /compute/systems/ID/modify   body: ModifySettingRequest
 *   POST   /compute/systems/ID/wait[?timeout=MS]            exit notification (long poll)
 *   POST   /compute/systems/ID/processes  body: ProcessParameters
 *            Upgrade: tcp  -> 101, stdio over the connection (stdcopy; raw with a console)
 *            pipes, no upgrade -> a streamed answer with the output (no stdin)
 *            no pipes      -> {"ProcessId": N}
 *   GET    /compute/systems/ID/processes/PID               ProcessStatus
 *   POST   /compute/systems/ID/processes/PID/{signal,terminate,modify,resize,wait}
 *
 * No state of its own: every request opens the system (and process) by id
 * and closes it when done.  Process monitors are silod's children: whoever
 * holds the handle last (a stream, or a reaper thread for a detached
 * process) waits for the process, which reaps its monitor. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/compute.h"
#include "engine/engine.h"
#include "silo-config.h"
#include "silod.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define WAIT_SLICE_MS 250

struct compute_ctx {
        struct silo_compute_context ctx;
        char state[PATH_MAX];
        char init[PATH_MAX];
};

/* State under STATE/compute, system cgroups under the daemon's parent
 * (cgroup-parent/ID; ids that look like container ids are refused), the
 * image store is the daemon's. */
static int compute_context(struct silod *d, struct compute_ctx *cc, silo_error *err)
{
        memset(cc, 0, sizeof(*cc));
        snprintf(cc->state, sizeof(cc->state), "%s/compute", d->state);
        int r = silo_mkdir_p_at(AT_FDCWD, cc->state, 0700, err);
        if (r < 0)
                return r;
        cc->ctx = (struct silo_compute_context) { .state_root = cc->state, .cgroup_parent = d->cgroup_parent,
                                                  .store_root = d->root };
        const char *env = getenv("SILO_COMPUTE_INIT");
        if (env && *env) {
                cc->ctx.init_path = env;
                return 0;
        }
        if (access(SILO_LIBEXECDIR "/silo-compute-init", X_OK) == 0)
                return 0;
        /* Uninstalled: the build tree has it at src/lib/api beside src/daemon. */
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0)
                return 0;
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
                *slash = 0;
                if (snprintf(cc->init, sizeof(cc->init), "%s/../lib/api/silo-compute-init", self) < (int) sizeof(cc->init) &&
                    access(cc->init, X_OK) == 0)
                        cc->ctx.init_path = cc->init;
        }
        return 0;
}

static enum MHD_Result reply_compute_error(struct MHD_Connection *c, int r, const silo_error *err)
{
        if (r == -ETIMEDOUT)
                return reply_error(c, 504, "%s", err->message[0] ? err->message : "timed out");
        return reply_errno(c, r, err);
}

/* The request body as text (JSON documents are passed to the library as is). */
static int body_text(struct request *req, const char **ret, silo_error *err)
{
        if (req->body_too_big)
                return silo_error_msg(err, E2BIG, "request body larger than %u bytes", SILOD_BODY_MAX);
        *ret = req->body_len ? req->body : NULL;
        return 0;
}

static enum MHD_Result reply_json_text(struct MHD_Connection *c, unsigned status, const char *text)
{
        json_error_t je;
        json_t *doc = json_loads(text, JSON_DECODE_ANY, &je);
        if (!doc)
                return reply_error(c, 500, "compute API answered invalid JSON: %s", je.text);
        return reply_json(c, status, doc);
}

static int parse_timeout(struct MHD_Connection *c, int deflt, int *ret, silo_error *err)
{
        const char *v = query(c, "timeout");
        *ret = deflt;
        if (!v)
                return 0;
        char *end;
        long t = strtol(v, &end, 10);
        if (*end || end == v || t < -1 || t > 24L * 3600 * 1000)
                return silo_error_msg(err, EINVAL, "timeout: expected milliseconds (-1 for none), got \"%s\"", v);
        *ret = (int) t;
        return 0;
}

static bool stopping(struct silod *d)
{
        pthread_mutex_lock(&d->lock);
        bool s = d->stopping;
        pthread_mutex_unlock(&d->lock);
        return s;
}

/* Elapsed-time budget for waits done in slices (so a client that leaves
 * or a stopping daemon ends them). */
static int slice(int timeout_ms, int waited)
{
        if (timeout_ms < 0)
                return WAIT_SLICE_MS;
        int left = timeout_ms - waited;
        return left < WAIT_SLICE_MS ? (left > 0 ? left : 0) : WAIT_SLICE_MS;
}

/* ---- systems ---- */

static enum MHD_Result system_wait(struct silod *d, struct MHD_Connection *c, silo_compute_system *sys)
{
        silo_error err = SILO_ERROR_INIT;
        int timeout, r;
        if ((r = parse_timeout(c, -1, &timeout, &err)) < 0)
                return reply_errno(c, r, &err);
        int waited = 0;
        for (;;) {
                silo_error_clear(&err);
                int s = slice(timeout, waited);
                r = silo_compute_system_wait(sys, s, &err);
                if (r != -ETIMEDOUT)
                        break;
                waited += s;
                if ((timeout >= 0 && waited >= timeout) || stopping(d) || connection_gone(c, 0))
                        break;
        }
        if (r < 0 && r != -ETIMEDOUT)
                return reply_errno(c, r, &err);
        bool timed_out = r == -ETIMEDOUT;
        _cleanup_free_ char *props = NULL;
        silo_error_clear(&err);
        if ((r = silo_compute_system_get_properties(sys, NULL, &props, &err)) < 0)
                return reply_errno(c, r, &err);
        json_error_t je;
        json_t *doc = json_loads(props, 0, &je);
        if (doc)
                json_object_set_new(doc, "TimedOut", json_boolean(timed_out));
        return reply_json(c, 200, doc);
}

static enum MHD_Result system_op(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                                 silo_compute_system *sys, const char *op)
{
        silo_error err = SILO_ERROR_INIT;
        int r;
        const char *body = NULL;
        if ((r = body_text(req, &body, &err)) < 0)
                return reply_errno(c, r, &err);
        bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
        if ((get || post) && (!*op || !strcmp(op, "properties"))) {
                const char *q = get ? query(c, "query") : body;
                _cleanup_free_ char *props = NULL;
                if ((r = silo_compute_system_get_properties(sys, q, &props, &err)) < 0)
                        return reply_errno(c, r, &err);
                return reply_json_text(c, 200, props);
        }
        if (!post)
                return reply_no_route(c, method, "/compute/systems/%s/%s", silo_compute_system_id(sys), op);
        if (!strcmp(op, "wait"))
                return system_wait(d, c, sys);
        if (!strcmp(op, "start"))
                r = silo_compute_system_start(sys, &err);
        else if (!strcmp(op, "pause"))
                r = silo_compute_system_pause(sys, &err);
        else if (!strcmp(op, "resume"))
                r = silo_compute_system_resume(sys, &err);
        else if (!strcmp(op, "terminate"))
                r = silo_compute_system_terminate(sys, &err);
        else if (!strcmp(op, "modify"))
                r = body ? silo_compute_system_modify(sys, body, &err)
                         : silo_error_msg(&err, EINVAL, "modify: a ModifySettingRequest body is required");
        else if (!strcmp(op, "shutdown")) {
                int timeout;
                r = parse_timeout(c, 10000, &timeout, &err);
                if (r == 0)
                        r = silo_compute_system_shutdown(sys, timeout, &err);
        } else
                return reply_no_route(c, method, "/compute/systems/%s/%s", silo_compute_system_id(sys), op);
        if (r < 0)
                return reply_compute_error(c, r, &err);
        return reply_empty(c, 204);
}

/* ---- processes ---- */

/* A process handle and its system, owned by whoever serves its stdio or
 * reaps it. */
struct proc {
        struct silod *d;
        silo_compute_system *sys;
        silo_compute_process *proc;
        struct silo_compute_process_info info;
        bool console, stdin_open, out_open, err_open;
        /* streamed answer */
        char *pend;
        size_t pend_len, pend_off;
        /* hijacked */
        MHD_socket sock;
        struct MHD_UpgradeResponseHandle *urh;
};

static void proc_free(struct proc *p)
{
        if (!p)
                return;
        silo_compute_process_close(p->proc);
        silo_compute_system_close(p->sys);
        free(p->pend);
        free(p);
}

/* Waits for the process in slices (reaping its monitor) until it exits or
 * silod stops. */
static void proc_reap(struct proc *p)
{
        int code;
        while (!stopping(p->d))
                if (silo_compute_process_wait(p->proc, WAIT_SLICE_MS, &code, NULL) != -ETIMEDOUT)
                        break;
}

static void *reaper_thread(void *userdata)
{
        struct proc *p = userdata;
        proc_reap(p);
        proc_free(p);
        return NULL;
}

static void reap_in_background(struct proc *p)
{
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, reaper_thread, p) != 0)
                proc_free(p);   /* the monitor stays a zombie until silod exits */
        pthread_attr_destroy(&a);
}

static void close_stdin(struct proc *p)
{
        if (!p->stdin_open)
                return;
        p->stdin_open = false;
        silo_compute_process_modify(p->proc, "{\"Operation\": \"CloseHandle\", \"CloseHandle\": {\"Handle\": \"StdIn\"}}",
                                    NULL);
}

/* Reads what one of the process's outputs has into buf (after an 8-byte
 * frame header unless console).  0 at EOF, <0 if nothing now. */
static ssize_t read_output(struct proc *p, int which, char *buf, size_t size)
{
        int fd = which == 1 ? p->info.std_output : p->info.std_error;
        size_t hdr = p->console ? 0 : SILO_LOG_HEADER;
        ssize_t n = read(fd, buf + hdr, size - hdr);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return -1;
        if (n <= 0) {
                /* EOF, or EIO from a console whose last user is gone. */
                if (which == 1)
                        p->out_open = false;
                else
                        p->err_open = false;
                return 0;
        }
        if (hdr)
                silo_log_header((unsigned char *) buf, which, 0, (size_t) n);
        return n + (ssize_t) hdr;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
        (void) pos;
        struct proc *p = cls;
        while (p->out_open || p->err_open) {
                if (stopping(p->d))
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                struct pollfd pf[2] = {
                        { p->out_open ? p->info.std_output : -1, POLLIN, 0 },
                        { p->err_open ? p->info.std_error : -1, POLLIN, 0 },
                };
                if (poll(pf, 2, 1000) < 0 && errno != EINTR)
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                for (int i = 0; i < 2; i++) {
                        if (!pf[i].revents)
                                continue;
                        ssize_t n = read_output(p, i + 1, buf, max);
                        if (n > 0)
                                return n;
                }
        }
        proc_reap(p);
        return MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_free(void *cls)
{
        struct proc *p = cls;
        /* A client that left early: the process goes on (its writes to the
         * closed pipes fail rather than block) and is reaped later. */
        silo_compute_process_modify(p->proc, "{\"Operation\": \"CloseHandle\", \"CloseHandle\": {\"Handle\": \"All\"}}",
                                    NULL);
        reap_in_background(p);
}

static void *hijack_thread(void *userdata)
{
        struct proc *p = userdata;
        struct silod *d = p->d;
        bool client = true, client_read = true;
        char *buf = malloc(32768 + SILO_LOG_HEADER);
        while (buf && (p->out_open || p->err_open) && !stopping(d)) {
                struct pollfd pf[3] = {
                        { p->out_open ? p->info.std_output : -1, POLLIN, 0 },
                        { p->err_open ? p->info.std_error : -1, POLLIN, 0 },
                        { client && client_read ? p->sock : -1, POLLIN, 0 },
                };
                if (poll(pf, 3, 1000) < 0 && errno != EINTR)
                        break;
                for (int i = 0; i < 2; i++) {
                        if (!pf[i].revents)
                                continue;
                        ssize_t n = read_output(p, i + 1, buf, 32768 + SILO_LOG_HEADER);
                        /* A client that left: the output is drained and dropped. */
                        if (n > 0 && client && !socket_send_all(p->sock, buf, (size_t) n))
                                client = false;
                }
                if (!pf[2].revents)
                        continue;
                ssize_t n = recv(p->sock, buf, 32768, 0);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0) {
                        /* Half-close: the process's stdin ends, its output still flows. */
                        close_stdin(p);
                        client_read = false;
                        if (n < 0)
                                client = false;
                        continue;
                }
                /* Blocking: a process that does not read stalls only its own client. */
                for (ssize_t off = 0; p->stdin_open && off < n;) {
                        ssize_t w = write(p->info.std_input, buf + off, (size_t) (n - off));
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0) {
                                close_stdin(p);
                                break;
                        }
                        off += w;
                }
        }
        free(buf);
        close_stdin(p);
        proc_reap(p);
        MHD_upgrade_action(p->urh, MHD_UPGRADE_ACTION_CLOSE);
        proc_free(p);
        attach_thread_done(d);
        return NULL;
}

static void upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in, size_t extra_in_size,
                     MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
        (void) c;
        (void) con_cls;
        struct proc *p = cls;
        p->sock = sock;
        p->urh = urh;
        int flags = fcntl(sock, F_GETFL);
        if (flags >= 0)
                fcntl(sock, F_SETFL, flags & ~O_NONBLOCK);
        /* Bytes the client sent right behind its request are stdin. */
        if (extra_in_size && p->stdin_open && write(p->info.std_input, extra_in, extra_in_size) < 0)
                close_stdin(p);
        pthread_t t;
        if (pthread_create(&t, NULL, hijack_thread, p) == 0) {
                pthread_detach(t);
                return;
        }
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        struct silod *d = p->d;
        reap_in_background(p);
        attach_thread_done(d);
}

/* Takes over sys: the process's owner (its stream, or a reaper thread)
 * closes it, with the process handle. */
static enum MHD_Result process_create(struct silod *d, struct MHD_Connection *c, struct request *req,
                                      silo_compute_system *sys)
{
        silo_error err = SILO_ERROR_INIT;
        struct proc *p = calloc(1, sizeof(*p));
        if (!p) {
                silo_compute_system_close(sys);
                return reply_error(c, 500, "out of memory");
        }
        p->d = d;
        p->sys = sys;
        const char *body = NULL;
        int r = body_text(req, &body, &err);
        if (r < 0 || !body) {
                proc_free(p);
                return r < 0 ? reply_errno(c, r, &err)
                             : reply_error(c, 400, "ProcessParameters: a request body is required");
        }
        bool upgrade = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_UPGRADE) != NULL;
        /* Stdin needs a connection both ways. */
        json_error_t je;
        _cleanup_json_ json_t *params = json_loads(body, 0, &je);
        if (!upgrade && json_is_object(params) &&
            (json_is_true(json_object_get(params, "CreateStdInPipe")) ||
             json_is_true(json_object_get(params, "EmulateConsole")))) {
                proc_free(p);
                return reply_error(c, 400, "CreateStdInPipe and EmulateConsole need an upgraded connection "
                                           "(Upgrade: tcp)");
        }
        if ((r = silo_compute_process_create(sys, body, &p->proc, &p->info, &err)) < 0) {
                proc_free(p);
                return reply_errno(c, r, &err);
        }
        p->console = p->info.std_input >= 0 && p->info.std_input == p->info.std_output;
        p->stdin_open = p->info.std_input >= 0;
        p->out_open = p->info.std_output >= 0;
        p->err_open = p->info.std_error >= 0 && !p->console;
        char pid[32];
        snprintf(pid, sizeof(pid), "%d", (int) p->info.process_id);
        const char *ctype = p->console ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream";
        struct MHD_Response *resp = NULL;
        unsigned status = 200;
        if (upgrade) {
                pthread_mutex_lock(&d->lock);
                d->attach_threads++;
                pthread_mutex_unlock(&d->lock);
                resp = MHD_create_response_for_upgrade(upgraded, p);
                if (resp) {
                        MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "tcp");
                        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "Upgrade");
                }
                status = MHD_HTTP_SWITCHING_PROTOCOLS;
        } else if (p->out_open || p->err_open) {
                resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32768 + SILO_LOG_HEADER, stream_reader, p,
                                                         stream_free);
        } else {
                json_t *doc = json_pack("{s:i}", "ProcessId", (int) p->info.process_id);
                reap_in_background(p);
                return reply_json(c, 200, doc);
        }
        if (!resp) {
                if (upgrade) {
                        attach_thread_done(d);
                }
                reap_in_background(p);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
        MHD_add_response_header(resp, "X-Silo-Process-Id", pid);
        add_common_headers(resp);
        enum MHD_Result ret = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

static enum MHD_Result process_op(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                                  silo_compute_system *sys, const char *rest)
{
        silo_error err = SILO_ERROR_INIT;
        char *end;
        long pid = strtol(rest, &end, 10);
        if (end == rest || pid <= 0 || pid > INT_MAX || (*end && *end != '/'))
                return reply_error(c, 400, "\"%.64s\" is not a process id", rest);
        const char *op = *end ? end + 1 : "";
        silo_compute_process *proc = NULL;
        int r = silo_compute_process_open(sys, (pid_t) pid, &proc, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        _cleanup_free_ char *out = NULL;
        const char *body = NULL;
        bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
        if ((r = body_text(req, &body, &err)) < 0) {
        } else if (get && !*op) {
                r = silo_compute_process_get_properties(proc, &out, &err);
        } else if (post && !strcmp(op, "signal")) {
                const char *q = query(c, "signal");
                long sig = q ? strtol(q, &end, 10) : SIGTERM;
                json_error_t je;
                _cleanup_json_ json_t *opts = body ? json_loads(body, 0, &je) : NULL;
                if (!q && json_is_integer(json_object_get(opts, "Signal")))
                        sig = (long) json_integer_value(json_object_get(opts, "Signal"));
                else if (q && (*end || end == q))
                        sig = -1;
                r = sig <= 0 || sig >= NSIG ? silo_error_msg(&err, EINVAL, "signal: not a signal number")
                                            : silo_compute_process_signal(proc, (int) sig, &err);
        } else if (post && !strcmp(op, "terminate")) {
                r = silo_compute_process_terminate(proc, &err);
        } else if (post && !strcmp(op, "modify")) {
                r = body ? silo_compute_process_modify(proc, body, &err)
                         : silo_error_msg(&err, EINVAL, "modify: a request body is required");
        } else if (post && !strcmp(op, "resize")) {
                char req_text[160];
                const char *h = query(c, "h"), *w = query(c, "w");
                snprintf(req_text, sizeof(req_text),
                         "{\"Operation\": \"ConsoleSize\", \"ConsoleSize\": {\"Height\": %ld, \"Width\": %ld}}",
                         h ? strtol(h, NULL, 10) : 0, w ? strtol(w, NULL, 10) : 0);
                r = silo_compute_process_modify(proc, req_text, &err);
        } else if ((post || get) && !strcmp(op, "wait")) {
                int timeout, code = 0, waited = 0;
                r = parse_timeout(c, -1, &timeout, &err);
                while (r == 0) {
                        int s = slice(timeout, waited);
                        silo_error_clear(&err);
                        r = silo_compute_process_wait(proc, s, &code, &err);
                        if (r != -ETIMEDOUT)
                                break;
                        waited += s;
                        if ((timeout >= 0 && waited >= timeout) || stopping(d) || connection_gone(c, 0))
                                break;
                }
                if (r == 0 || r == -ETIMEDOUT) {
                        json_t *doc = json_pack("{s:i, s:b, s:o, s:b}", "ProcessId", (int) pid, "Exited", r == 0,
                                                "ExitCode", r == 0 ? json_integer(code) : json_null(), "TimedOut",
                                                r == -ETIMEDOUT);
                        silo_compute_process_close(proc);
                        return reply_json(c, 200, doc);
                }
        } else {
                silo_compute_process_close(proc);
                return reply_no_route(c, method, "/compute/systems/%s/processes/%s", silo_compute_system_id(sys),
                                      rest);
        }
        silo_compute_process_close(proc);
        if (r < 0)
                return reply_compute_error(c, r, &err);
        if (out)
                return reply_json_text(c, 200, out);
        return reply_empty(c, 204);
}

/* ---- routing ---- */

static bool looks_like_container_id(const char *id)
{
        if (strlen(id) != 64)
                return false;
        return strspn(id, "0123456789abcdef") == 64;
}

enum MHD_Result handle_compute(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                               const char *path)
{
        silo_error err = SILO_ERROR_INIT;
        struct compute_ctx cc;
        int r;
        if (strncmp(path, "systems", 7) != 0 || (path[7] && path[7] != '/'))
                return reply_no_route(c, method, "/compute/%s", path);
        if ((r = compute_context(d, &cc, &err)) < 0)
                return reply_errno(c, r, &err);
        const char *rest = path[7] ? path + 8 : "";
        if (!*rest) {
                if (!strcmp(method, "GET")) {
                        _cleanup_free_ char *out = NULL;
                        if ((r = silo_compute_system_enumerate(&cc.ctx, query(c, "query"), &out, &err)) < 0)
                                return reply_errno(c, r, &err);
                        return reply_json_text(c, 200, out);
                }
                if (strcmp(method, "POST"))
                        return reply_no_route(c, method, "/compute/systems");
                const char *id = query(c, "id"), *body = NULL;
                if (!id || !*id)
                        return reply_error(c, 400, "create: the id query parameter is required");
                if (looks_like_container_id(id))
                        return reply_error(c, 400, "create: \"%s\" looks like a container id; choose another", id);
                if ((r = body_text(req, &body, &err)) < 0)
                        return reply_errno(c, r, &err);
                if (!body)
                        return reply_error(c, 400, "create: a ComputeSystem document is required");
                silo_compute_system *sys = NULL;
                if ((r = silo_compute_system_create(&cc.ctx, id, body, &sys, &err)) < 0)
                        return reply_errno(c, r, &err);
                json_t *doc = json_pack("{s:s}", "Id", silo_compute_system_id(sys));
                silo_compute_system_close(sys);
                return reply_json(c, 201, doc);
        }
        const char *slash = strchr(rest, '/');
        _cleanup_free_ char *id = slash ? strndup(rest, (size_t) (slash - rest)) : strdup(rest);
        if (!id)
                return reply_error(c, 500, "out of memory");
        const char *op = slash ? slash + 1 : "";
        if (!strcmp(method, "DELETE") && !*op) {
                if ((r = silo_compute_system_delete(&cc.ctx, id, query_bool(c, "force"), &err)) < 0)
                        return reply_errno(c, r, &err);
                return reply_empty(c, 204);
        }
        silo_compute_system *sys = NULL;
        if ((r = silo_compute_system_open(&cc.ctx, id, &sys, &err)) < 0)
                return reply_errno(c, r, &err);
        enum MHD_Result ret;
        if (!strcmp(op, "processes") && !strcmp(method, "POST"))
                return process_create(d, c, req, sys);          /* takes sys */
        if (!strncmp(op, "processes/", 10))
                ret = process_op(d, c, req, method, sys, op + 10);
        else
                ret = system_op(d, c, req, method, sys, op);
        silo_compute_system_close(sys);
        return ret;
}
