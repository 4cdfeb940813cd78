/* Container output streams: GET /logs (follow or not) and the hijacked
 * POST /attach, both fed from the monitor's log file. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "engine/engine.h"
#include "silod.h"
#include "util/cleanup.h"

struct stream {
        struct silod *d;
        struct ctr *ct;                 /* reference */
        struct MHD_Connection *conn;    /* logs: to notice a client that left */
        int fd;                         /* the log file */
        uint64_t offset;
        bool follow, want_out, want_err, want_stdin, tty, attach;
        bool timestamps;                /* logs: each line prefixed with its time */
        bool past_until;                /* logs: a frame after `until` was seen */
        int64_t since_ns, until_ns;     /* logs: frame time window (0: open) */
        unsigned exits0;
        char *pend;
        size_t pend_len, pend_off;
};

static void stream_free(struct stream *st)
{
        if (!st)
                return;
        if (st->fd >= 0)
                close(st->fd);
        ctr_unref(st->d, st->ct);
        free(st->pend);
        free(st);
}

static bool stream_finished(struct stream *st)
{
        struct silod *d = st->d;
        pthread_mutex_lock(&d->lock);
        bool done;
        if (d->stopping)
                done = true;
        else if (st->attach)
                done = st->ct->exits > st->exits0 || st->ct->removed;
        else
                done = st->ct->status != CTR_RUNNING && !st->ct->starting;
        pthread_mutex_unlock(&d->lock);
        return done;
}

/* Prefixes every line of a frame with the frame's time, as docker logs
 * --timestamps shows it (RFC 3339 with nanoseconds, then a space). */
static char *stamp_lines(const char *data, size_t len, int64_t time_ns, size_t *ret_len)
{
        char stamp[48];
        silo_engine_format_time(time_ns, stamp);
        size_t stamp_len = strlen(stamp) + 1, lines = 1;
        for (size_t i = 0; i + 1 < len; i++)
                lines += data[i] == '\n';
        char *out = malloc(len + lines * stamp_len);
        if (!out)
                return NULL;
        size_t o = 0;
        bool line_start = true;
        for (size_t i = 0; i < len; i++) {
                if (line_start) {
                        memcpy(out + o, stamp, stamp_len - 1);
                        o += stamp_len - 1;
                        out[o++] = ' ';
                }
                out[o++] = data[i];
                line_start = data[i] == '\n';
        }
        *ret_len = o;
        return out;
}

/* Parses docker's time filter: unix seconds with an optional fraction
 * ("1700000000.5", as the CLI sends --since/--until).  0 if empty. */
static int parse_log_time(const char *text, int64_t *ret_ns)
{
        *ret_ns = 0;
        if (!text || !*text)
                return 0;
        char *end;
        errno = 0;
        long long secs = strtoll(text, &end, 10);
        if (errno || end == text || secs < 0 || secs > INT64_MAX / 1000000000 - 1)
                return -EINVAL;
        int64_t ns = 0;
        if (*end == '.') {
                const char *f = end + 1;
                int digits = 0;
                for (; *f >= '0' && *f <= '9'; f++)
                        if (digits++ < 9)
                                ns = ns * 10 + (*f - '0');
                if (f == end + 1 || *f)
                        return -EINVAL;
                for (; digits < 9; digits++)
                        ns *= 10;
        } else if (*end) {
                return -EINVAL;
        }
        *ret_ns = (int64_t) secs * 1000000000 + ns;
        return 0;
}

/* Fills st->pend with the next wanted frame.  1: pending data, 0: nothing
 * more for now, <0: error. */
static int stream_next(struct stream *st)
{
        for (unsigned guard = 0; guard < 4096; guard++) {
                int stream_no;
                char *data = NULL;
                size_t len = 0;
                int64_t time_ns = 0;
                uint64_t at = st->offset;
                int r = silo_log_read_frame_timed(st->fd, &st->offset, &stream_no, &data, &len, &time_ns, NULL);
                if (r <= 0)
                        return r;
                if (st->until_ns && time_ns > st->until_ns) {
                        st->offset = at;        /* later output stays unread */
                        st->past_until = true;
                        free(data);
                        return 0;
                }
                if ((stream_no == 1 && !st->want_out) || (stream_no == 2 && !st->want_err) || len == 0 ||
                    (st->since_ns && time_ns < st->since_ns)) {
                        free(data);
                        continue;
                }
                if (st->timestamps) {
                        char *stamped = stamp_lines(data, len, time_ns, &len);
                        free(data);
                        if (!stamped)
                                return -ENOMEM;
                        data = stamped;
                }
                free(st->pend);
                st->pend_off = 0;
                if (st->tty) {
                        st->pend = data;
                        st->pend_len = len;
                        return 1;
                }
                st->pend = malloc(SILO_LOG_HEADER + len);
                if (!st->pend) {
                        free(data);
                        return -ENOMEM;
                }
                silo_log_header((unsigned char *) st->pend, stream_no, 0, len);
                memcpy(st->pend + SILO_LOG_HEADER, data, len);
                st->pend_len = SILO_LOG_HEADER + len;
                free(data);
                return 1;
        }
        return 0;
}

static ssize_t logs_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        (void) pos;
        struct stream *st = cls;
        for (;;) {
                if (st->pend && st->pend_off < st->pend_len) {
                        size_t n = st->pend_len - st->pend_off;
                        if (n > max)
                                n = max;
                        memcpy(buf, st->pend + st->pend_off, n);
                        st->pend_off += n;
                        return (ssize_t) n;
                }
                /* Check "finished" before reading: the monitor writes all
                 * output before it records the exit. */
                bool finished = !st->follow || stream_finished(st);
                int r = stream_next(st);
                if (r < 0)
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                if (r > 0)
                        continue;
                if (finished || st->past_until ||
                    (st->until_ns && st->follow && silo_engine_now_ns() > st->until_ns))
                        return MHD_CONTENT_READER_END_OF_STREAM;
                if (connection_gone(st->conn, 100))
                        return MHD_CONTENT_READER_END_WITH_ERROR;
        }
}

static void logs_free(void *cls)
{
        stream_free(cls);
}

static struct stream *stream_new(struct silod *d, struct ctr *ct, silo_error *err)
{
        struct stream *st = calloc(1, sizeof(*st));
        if (!st) {
                silo_error_set(err, ENOMEM, "stream");
                return NULL;
        }
        st->d = d;
        st->fd = -1;
        pthread_mutex_lock(&d->lock);
        ct->refs++;
        st->exits0 = ct->exits;
        pthread_mutex_unlock(&d->lock);
        st->ct = ct;
        st->tty = ctr_tty(ct);
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/" SILO_ENGINE_LOG, ct->dir) < 0) {
                stream_free(st);
                silo_error_set(err, ENOMEM, "stream");
                return NULL;
        }
        st->fd = open(path, O_RDONLY | O_CLOEXEC | O_CREAT | O_NOFOLLOW, 0600);
        if (st->fd < 0) {
                silo_error_set(err, errno, "open %s", path);
                stream_free(st);
                return NULL;
        }
        return st;
}

/* Offset after the last `lines` lines of the wanted streams (frame-granular:
 * a frame holding the cut is sent whole). */
static uint64_t tail_offset(struct stream *st, long lines)
{
        uint64_t off = 0, *starts = NULL;
        size_t *counts = NULL, n = 0, cap = 0;
        for (;;) {
                uint64_t at = off;
                int s;
                char *data = NULL;
                size_t len;
                if (silo_log_read_frame(st->fd, &off, &s, &data, &len, NULL) <= 0)
                        break;
                if ((s == 1 && st->want_out) || (s == 2 && st->want_err)) {
                        if (n == cap) {
                                cap = cap ? cap * 2 : 64;
                                uint64_t *ns = realloc(starts, cap * sizeof(*ns));
                                size_t *nc = ns ? realloc(counts, cap * sizeof(*nc)) : NULL;
                                if (ns)
                                        starts = ns;
                                if (!ns || !nc) {
                                        free(data);
                                        break;
                                }
                                counts = nc;
                        }
                        size_t nl = 0;
                        for (size_t i = 0; i < len; i++)
                                nl += data[i] == '\n';
                        starts[n] = at;
                        counts[n++] = nl;
                }
                free(data);
        }
        uint64_t result = off;
        long seen = 0;
        for (size_t i = n; i-- > 0;) {
                seen += (long) counts[i];
                if (seen > lines)
                        break;
                result = starts[i];
        }
        free(starts);
        free(counts);
        return result;
}

enum MHD_Result handle_logs(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        silo_error err = SILO_ERROR_INIT;
        bool want_out = query_bool(c, "stdout"), want_err = query_bool(c, "stderr");
        if (!want_out && !want_err)
                return reply_error(c, 400, "Bad parameters: you must choose at least one stream");
        struct stream *st = stream_new(d, ct, &err);
        if (!st)
                return reply_errno(c, -err.code, &err);
        st->conn = c;
        st->follow = query_bool(c, "follow");
        st->want_out = want_out;
        st->want_err = want_err;
        st->timestamps = query_bool(c, "timestamps");
        if (parse_log_time(query(c, "since"), &st->since_ns) < 0 ||
            parse_log_time(query(c, "until"), &st->until_ns) < 0) {
                stream_free(st);
                return reply_error(c, 400, "invalid value for \"since\" or \"until\": expected unix seconds "
                                           "with an optional fraction");
        }
        const char *tail = query(c, "tail");
        if (tail && *tail && strcmp(tail, "all") != 0) {
                char *end;
                long n = strtol(tail, &end, 10);
                if (*end || n < 0) {
                        stream_free(st);
                        return reply_error(c, 400, "invalid value for \"tail\": %s", tail);
                }
                st->offset = tail_offset(st, n);
        }
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, logs_read, st,
                                                                      logs_free);
        if (!resp) {
                stream_free(st);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                st->tty ? "application/vnd.docker.raw-stream"
                                        : "application/vnd.docker.multiplexed-stream");
        add_common_headers(resp);
        enum MHD_Result r = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return r;
}

/* ---- attach ---- */

struct attach {
        struct stream *st;
        int stdin_dirfd;                /* container dir when stdin is attached, else -1 */
        MHD_socket sock;
        struct MHD_UpgradeResponseHandle *urh;
};

/* Connects to the monitor's stdin socket; -1 while the container has not
 * started (the socket appears with the monitor). */
static int stdin_connect(int dirfd)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/" SILO_ENGINE_STDIN_SOCKET, dirfd);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

/* What wakes an attach thread: the container directory (log appends,
 * started.json, attach.sock, exit.json appear) through inotify, and the
 * monitor's exit through a pidfd.  A bounded poll timeout covers what
 * neither reports (removal, silod stopping, inotify unavailable). */
struct attach_wake {
        int inotify;                    /* -1 without inotify */
        int monitor;                    /* pidfd of the monitor once it runs, else -1 */
        bool monitor_exited;
};

#define ATTACH_FALLBACK_MS 250

static void attach_wake_init(struct attach_wake *w, const char *dir)
{
        w->monitor = -1;
        w->monitor_exited = false;
        w->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->inotify >= 0 &&
            inotify_add_watch(w->inotify, dir, IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF) < 0)
                silo_close_reset(&w->inotify);
}

static void attach_wake_done(struct attach_wake *w)
{
        silo_close_reset(&w->inotify);
        silo_close_reset(&w->monitor);
}

/* Under the lock: the container's current state, and a pidfd of its monitor
 * once it runs (the exit is recorded when the monitor exits). */
static void attach_wake_refresh(struct attach_wake *w, struct stream *st)
{
        struct silod *d = st->d;
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, st->ct);
        if (w->monitor < 0 && !w->monitor_exited && st->ct->status == CTR_RUNNING && st->ct->monitor_pid > 0)
                w->monitor = (int) syscall(SYS_pidfd_open, st->ct->monitor_pid, 0);
        pthread_mutex_unlock(&d->lock);
}

/* Waits for the next event on the container or on sock (events: POLLIN |
 * POLLRDHUP, or 0 for hangups only; sock -1: none).  Returns the socket's revents. */
static short attach_wait(struct attach_wake *w, struct stream *st, int sock, short events, int timeout_ms)
{
        struct pollfd p[3] = {
                { w->inotify, POLLIN, 0 },
                { w->monitor, POLLIN, 0 },
                { sock, events, 0 },
        };
        int n = poll(p, 3, w->inotify >= 0 ? timeout_ms : 50);
        if (n <= 0) {
                attach_wake_refresh(w, st);
                return 0;
        }
        if (p[0].revents) {
                char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
                while (read(w->inotify, buf, sizeof(buf)) > 0)
                        ;
        }
        if (p[1].revents) {
                w->monitor_exited = true;
                silo_close_reset(&w->monitor);
        }
        if (p[0].revents || p[1].revents)
                attach_wake_refresh(w, st);
        return p[2].revents;
}

static void *attach_thread(void *userdata)
{
        struct attach *a = userdata;
        struct stream *st = a->st;
        bool client_eof = false;
        int stdin_fd = -1;
        struct attach_wake w;
        attach_wake_init(&w, st->ct->dir);
        attach_wake_refresh(&w, st);
        for (;;) {
                int r = stream_next(st);
                if (r < 0)
                        break;
                if (r > 0) {
                        if (!socket_send_all(a->sock, st->pend, st->pend_len))
                                break;
                        continue;
                }
                if (stream_finished(st)) {
                        /* Output written just before the exit was recorded. */
                        while (stream_next(st) > 0)
                                if (!socket_send_all(a->sock, st->pend, st->pend_len))
                                        break;
                        break;
                }
                if (a->stdin_dirfd >= 0 && stdin_fd < 0 && !client_eof)
                        /* Input waits in the socket until the container runs
                         * (the monitor creates attach.sock: an inotify event). */
                        stdin_fd = stdin_connect(a->stdin_dirfd);
                bool want_input = !client_eof && (a->stdin_dirfd < 0 || stdin_fd >= 0);
                short rev = attach_wait(&w, st, client_eof ? -1 : a->sock, want_input ? POLLIN | POLLRDHUP : 0,
                                        ATTACH_FALLBACK_MS);
                if (!rev)
                        continue;
                if ((rev & (POLLHUP | POLLERR)) && !(rev & POLLIN))
                        break;
                if (!want_input)
                        continue;
                char buf[16384];
                ssize_t n = recv(a->sock, buf, sizeof(buf), MSG_DONTWAIT);
                if (n == 0) {
                        /* Half-close: no more stdin, output keeps flowing. */
                        client_eof = true;
                        if (stdin_fd >= 0)
                                shutdown(stdin_fd, SHUT_WR);
                } else if (n < 0 && errno != EAGAIN && errno != EINTR)
                        break;
                else if (n > 0 && stdin_fd >= 0 && !socket_send_all(stdin_fd, buf, (size_t) n))
                        silo_close_reset(&stdin_fd);
        }
        attach_wake_done(&w);
        silo_close_reset(&stdin_fd);
        struct silod *d = st->d;
        MHD_upgrade_action(a->urh, MHD_UPGRADE_ACTION_CLOSE);
        silo_close_reset(&a->stdin_dirfd);
        stream_free(st);
        free(a);
        attach_thread_done(d);
        return NULL;
}

static void upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in, size_t extra_in_size,
                     MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
        (void) c;
        (void) extra_in;
        (void) extra_in_size;
        struct request *req = con_cls;
        if (req)
                req->abandoned = NULL;
        struct stream *st = cls;
        struct attach *a = calloc(1, sizeof(*a));
        int flags = fcntl(sock, F_GETFL);
        if (flags >= 0)
                fcntl(sock, F_SETFL, flags & ~O_NONBLOCK);
        pthread_t t;
        if (a) {
                a->st = st;
                a->stdin_dirfd = -1;
                if (st->want_stdin)
                        a->stdin_dirfd = open(st->ct->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                a->sock = sock;
                a->urh = urh;
                pthread_mutex_lock(&st->d->lock);
                st->d->attach_threads++;
                pthread_mutex_unlock(&st->d->lock);
                if (pthread_create(&t, NULL, attach_thread, a) == 0) {
                        pthread_detach(t);
                        return;
                }
                attach_thread_done(st->d);
        }
        free(a);
        stream_free(st);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

/* The client left before the upgrade. */
static void attach_abandoned(void *cls)
{
        stream_free(cls);
}

enum MHD_Result handle_attach(struct silod *d, struct MHD_Connection *c, struct request *req, struct ctr *ct)
{
        silo_error err = SILO_ERROR_INIT;
        const char *upgrade = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_UPGRADE);
        if (!upgrade)
                return reply_error(c, 400, "attach needs a hijacked connection (Upgrade: tcp)");
        struct stream *st = stream_new(d, ct, &err);
        if (!st)
                return reply_errno(c, -err.code, &err);
        st->attach = true;
        st->follow = true;
        st->want_out = query_bool(c, "stdout");
        st->want_err = query_bool(c, "stderr");
        st->want_stdin = query_bool(c, "stdin") &&
                         json_is_true(json_object_get(json_object_get(ct->record, "Config"), "OpenStdin"));
        /* Output from now on (logs=1 would replay the past). */
        if (!query_bool(c, "logs")) {
                off_t end = lseek(st->fd, 0, SEEK_END);
                st->offset = end > 0 ? (uint64_t) end : 0;
        }
        struct MHD_Response *resp = MHD_create_response_for_upgrade(upgraded, st);
        if (!resp) {
                stream_free(st);
                return MHD_NO;
        }
        add_hijack_headers(resp, st->tty);
        events_container_lock(d, ct, "attach", NULL);
        req->abandoned = attach_abandoned;
        req->abandoned_cls = st;
        enum MHD_Result r = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
        MHD_destroy_response(resp);
        return r;
}
