/* HTTP to silod over its unix socket: libcurl for ordinary and streamed
 * requests; a small bounded client for hijacked (upgraded) connections,
 * whose raw byte stream libcurl does not hand out; the stdcopy
 * demultiplexer; interactive sessions with a raw terminal. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "engine.h"
#include "util/cleanup.h"

#define HEADERS_MAX (64 * 1024)
#define HIJACK_TIMEOUT_MS 30000

int engine_resolve_host(const cli_ctx *ctx, char **ret_path, bool *ret_explicit, silo_error *err)
{
        const char *host = ctx->host;
        if (!host || !*host)
                host = getenv("SILO_HOST");
        if (!host || !*host)
                host = getenv("DOCKER_HOST");
        *ret_explicit = host && *host;
        if (!*ret_explicit)
                host = ENGINE_DEFAULT_HOST;
        const char *path = host;
        if (!strncmp(host, "unix://", 7))
                path = host + 7;
        else if (strstr(host, "://"))
                return silo_error_msg(err, EINVAL, "host %s: only unix:// sockets are supported", host);
        if (path[0] != '/')
                return silo_error_msg(err, EINVAL, "host %s: expected unix:///absolute/path", host);
        if (strlen(path) >= sizeof(((struct sockaddr_un *) 0)->sun_path))
                return silo_error_msg(err, ENAMETOOLONG, "host %s: socket path too long", host);
        *ret_path = strdup(path);
        return *ret_path ? 0 : silo_error_set(err, ENOMEM, "host");
}

int engine_open(const cli_ctx *ctx, engine *e)
{
        *e = (engine) {};
        silo_error err = SILO_ERROR_INIT;
        bool explicit_host;
        if (engine_resolve_host(ctx, &e->socket_path, &explicit_host, &err) < 0)
                return cli_fail(&err);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        e->curl = curl_easy_init();
        if (!e->curl) {
                engine_close(e);
                return cli_failf("cannot initialise libcurl");
        }
        return 0;
}

int engine_dup(const engine *e, engine *ret)
{
        *ret = (engine) { .socket_path = strdup(e->socket_path), .curl = curl_easy_init() };
        if (!ret->socket_path || !ret->curl) {
                engine_close(ret);
                return -ENOMEM;
        }
        return 0;
}

void engine_close(engine *e)
{
        if (e->curl)
                curl_easy_cleanup(e->curl);
        free(e->socket_path);
        *e = (engine) {};
}

static int unreachable(engine *e, int errnum, silo_error *err)
{
        return silo_error_msg(err, errnum ? errnum : ECONNREFUSED, "cannot reach silod at %s: %s (is silod running?)",
                              e->socket_path, strerror(errnum ? errnum : ECONNREFUSED));
}

static int status_errno(long status)
{
        switch (status) {
        case 404: return ENOENT;
        case 409: return EEXIST;
        case 400: return EINVAL;
        case 501: return EOPNOTSUPP;
        case 304: return EALREADY;
        default: return EIO;
        }
}

/* The daemon's {"message": ...} (or the raw text) as the error. */
static int http_error(long status, const char *body, size_t len, silo_error *err)
{
        json_error_t je;
        _cleanup_json_ json_t *doc = body && len ? json_loadb(body, len, 0, &je) : NULL;
        const char *msg = json_string_value(json_object_get(doc, "message"));
        if (msg)
                return silo_error_msg(err, status_errno(status), "%s", msg);
        if (body && len)
                return silo_error_msg(err, status_errno(status), "%.*s (HTTP %ld)", (int) (len > 512 ? 512 : len),
                                      body, status);
        return silo_error_msg(err, status_errno(status), "the daemon answered HTTP %ld", status);
}

struct transfer {
        CURL *curl;
        const engine_req *rq;
        char *buf;
        size_t len;
        bool too_big, sink_failed;
        int upload_fd;
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata)
{
        struct transfer *t = userdata;
        size_t n = size * nmemb;
        long status = 0;
        curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status < 400 && t->rq->sink) {
                if (t->rq->sink(t->rq->userdata, data, n) < 0) {
                        t->sink_failed = true;
                        return 0;
                }
                return n;
        }
        if (t->len + n > ENGINE_BODY_MAX) {
                t->too_big = true;
                return 0;
        }
        char *nb = realloc(t->buf, t->len + n + 1);
        if (!nb)
                return 0;
        memcpy(nb + t->len, data, n);
        t->len += n;
        nb[t->len] = 0;
        t->buf = nb;
        return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
        struct transfer *t = userdata;
        size_t n = size * nmemb;
        /* The empty line ends the headers (of the final answer, not a 100). */
        if (n <= 2 && (n == 0 || data[0] == '\r' || data[0] == '\n')) {
                long status = 0;
                curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
                if (status >= 200 && t->rq->on_headers)
                        t->rq->on_headers(t->rq->userdata);
        }
        return n;
}

static int on_progress(void *userdata, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
        (void) a, (void) b, (void) c, (void) d;
        struct transfer *t = userdata;
        return t->rq->cancel && *t->rq->cancel ? 1 : 0;
}

static size_t on_read(char *data, size_t size, size_t nmemb, void *userdata)
{
        struct transfer *t = userdata;
        for (;;) {
                ssize_t n = read(t->upload_fd, data, size * nmemb);
                if (n < 0 && errno == EINTR)
                        continue;
                return n < 0 ? CURL_READFUNC_ABORT : (size_t) n;
        }
}

int engine_call(engine *e, const engine_req *rq, long *ret_status, char **ret_body, silo_error *err)
{
        CURL *c = e->curl;
        curl_easy_reset(c);
        _cleanup_free_ char *url = NULL;
        if (asprintf(&url, "http://silod" ENGINE_API_PREFIX "%s", rq->path) < 0) {
                url = NULL;
                return silo_error_set(err, ENOMEM, "request");
        }
        struct transfer t = { .curl = c, .rq = rq, .upload_fd = rq->upload_fd };
        struct curl_slist *hdrs = NULL;
        char ctype[128];
        snprintf(ctype, sizeof(ctype), "Content-Type: %s", rq->content_type ? rq->content_type : "application/json");
        hdrs = curl_slist_append(hdrs, ctype);
        hdrs = curl_slist_append(hdrs, "Expect:");
        for (const char *const *h = rq->headers; h && *h; h++)
                hdrs = curl_slist_append(hdrs, *h);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, e->socket_path);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
        if (rq->on_headers) {
                curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
                curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
        }
        if (rq->cancel) {
                curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
                curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
                curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
        }
        if (!strcmp(rq->method, "HEAD"))
                curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        if (rq->upload_fd >= 0) {
                struct stat st;
                curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
                curl_easy_setopt(c, CURLOPT_READDATA, &t);
                if (fstat(rq->upload_fd, &st) == 0 && S_ISREG(st.st_mode))
                        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t) st.st_size);
                else
                        hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
                /* CURLOPT_UPLOAD means PUT unless told otherwise. */
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
        } else if (rq->body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(rq->body));
        } else if (!strcmp(rq->method, "POST")) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) 0);
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        CURLcode cr = curl_easy_perform(c);
        long status = 0, os_errno = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
        curl_slist_free_all(hdrs);
        _cleanup_free_ char *buf = t.buf;
        if (ret_status)
                *ret_status = status;
        if (cr == CURLE_COULDNT_CONNECT)
                return unreachable(e, (int) os_errno, err);
        if (cr == CURLE_ABORTED_BY_CALLBACK)
                return silo_error_msg(err, ECANCELED, "%s %s: cancelled", rq->method, rq->path);
        if (t.sink_failed)
                return silo_error_msg(err, EPIPE, "%s %s: output closed", rq->method, rq->path);
        if (t.too_big)
                return silo_error_msg(err, E2BIG, "%s %s: answer larger than %u bytes", rq->method, rq->path,
                                      ENGINE_BODY_MAX);
        if (status >= 400)
                return http_error(status, buf, t.len, err);
        if (cr != CURLE_OK)
                return silo_error_msg(err, EIO, "%s %s: %s", rq->method, rq->path, curl_easy_strerror(cr));
        if (ret_body)
                *ret_body = buf ? TAKE_PTR(buf) : strdup("");
        return 0;
}

int engine_json(engine *e, const char *method, const char *path, json_t *body, json_t **ret, silo_error *err)
{
        _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        if (body && !text)
                return silo_error_set(err, ENOMEM, "request");
        engine_req rq = { .method = method, .path = path, .body = text, .upload_fd = -1 };
        _cleanup_free_ char *answer = NULL;
        int r = engine_call(e, &rq, NULL, ret ? &answer : NULL, err);
        if (r < 0 || !ret)
                return r;
        json_error_t je;
        *ret = json_loads(answer, JSON_DECODE_ANY, &je);
        if (!*ret)
                return silo_error_msg(err, EBADMSG, "%s %s: the daemon's answer is not JSON: %s", method, path,
                                      je.text);
        return 0;
}

/* ---- hijacked connections ---- */

static int send_all(int fd, const char *p, size_t len)
{
        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        struct pollfd pf = { fd, POLLOUT, 0 };
                        if (poll(&pf, 1, HIJACK_TIMEOUT_MS) <= 0)
                                return -ETIMEDOUT;
                        continue;
                }
                if (n <= 0)
                        return -errno;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

static const char *header_value(const char *headers, const char *name)
{
        size_t nl = strlen(name);
        for (const char *l = strstr(headers, "\r\n"); l; l = strstr(l + 2, "\r\n"))
                if (!strncasecmp(l + 2, name, nl) && l[2 + nl] == ':')
                        return l + 3 + nl + strspn(l + 3 + nl, " \t");
        return NULL;
}

const char *engine_conn_header(const engine_conn *c, const char *name, size_t *ret_len)
{
        const char *v = c->headers ? header_value(c->headers, name) : NULL;
        if (v && ret_len)
                *ret_len = strcspn(v, "\r\n");
        return v;
}

void engine_conn_close(engine_conn *c)
{
        if (c->fd >= 0)
                close(c->fd);
        free(c->headers);
        free(c->pending);
        *c = (engine_conn) { .fd = -1 };
}

int engine_hijack(engine *e, const char *path, const char *body, engine_conn *ret, silo_error *err)
{
        *ret = (engine_conn) { .fd = -1 };
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e->socket_path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return silo_error_set(err, errno, "socket");
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return unreachable(e, errno, err);
        _cleanup_free_ char *req = NULL;
        size_t blen = body ? strlen(body) : 0;
        if (asprintf(&req, "POST " ENGINE_API_PREFIX "%s HTTP/1.1\r\nHost: silod\r\nUser-Agent: silo\r\n"
                           "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: Upgrade\r\n"
                           "Upgrade: tcp\r\n\r\n%s", path, blen, body ? body : "") < 0) {
                req = NULL;
                return silo_error_set(err, ENOMEM, "request");
        }
        int r = send_all(fd, req, strlen(req));
        if (r < 0)
                return silo_error_set(err, -r, "POST %s: send", path);

        /* Headers, bounded in size and time. */
        _cleanup_free_ char *buf = malloc(HEADERS_MAX + 1);
        if (!buf)
                return silo_error_set(err, ENOMEM, "response");
        size_t len = 0;
        char *end = NULL;
        while (!end) {
                if (len >= HEADERS_MAX)
                        return silo_error_msg(err, EBADMSG, "POST %s: response headers too long", path);
                struct pollfd pf = { fd, POLLIN, 0 };
                int n = poll(&pf, 1, HIJACK_TIMEOUT_MS);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return silo_error_msg(err, ETIMEDOUT, "POST %s: no answer from silod", path);
                ssize_t got = recv(fd, buf + len, HEADERS_MAX - len, 0);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got <= 0)
                        return silo_error_msg(err, EPIPE, "POST %s: silod closed the connection", path);
                len += (size_t) got;
                buf[len] = 0;
                end = strstr(buf, "\r\n\r\n");
        }
        size_t head_len = (size_t) (end - buf) + 4;
        end[2] = 0;             /* headers end with their last \r\n */
        int status = 0;
        if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
                return silo_error_msg(err, EBADMSG, "POST %s: not an HTTP answer", path);
        if (status >= 300 && status != 101) {
                /* An error body: Content-Length bytes (bounded), else what came. */
                const char *cl = header_value(buf, "Content-Length");
                size_t want = cl ? strtoul(cl, NULL, 10) : 0;
                if (want > HEADERS_MAX - head_len)
                        want = HEADERS_MAX - head_len;
                while (len - head_len < want) {
                        struct pollfd pf = { fd, POLLIN, 0 };
                        if (poll(&pf, 1, 5000) <= 0)
                                break;
                        ssize_t got = recv(fd, buf + len, HEADERS_MAX - len, 0);
                        if (got <= 0)
                                break;
                        len += (size_t) got;
                }
                return http_error(status, buf + head_len, len - head_len, err);
        }
        if (len > head_len) {
                ret->pending = malloc(len - head_len);
                if (!ret->pending)
                        return silo_error_set(err, ENOMEM, "response");
                memcpy(ret->pending, buf + head_len, len - head_len);
                ret->pending_len = len - head_len;
        }
        ret->headers = strdup(buf);
        if (!ret->headers) {
                engine_conn_close(ret);
                return silo_error_set(err, ENOMEM, "response");
        }
        ret->fd = TAKE_FD(fd);
        return 0;
}

/* ---- stdcopy ---- */

static int write_all(int fd, const char *p, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        struct pollfd pf = { fd, POLLOUT, 0 };
                        poll(&pf, 1, 1000);
                        continue;
                }
                if (n <= 0)
                        return -errno;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int stdcopy_feed(stdcopy *s, const char *data, size_t len)
{
        if (s->raw)
                return write_all(STDOUT_FILENO, data, len);
        while (len > 0) {
                if (s->left == 0) {
                        size_t take = sizeof(s->hdr) - s->hdr_len;
                        if (take > len)
                                take = len;
                        memcpy(s->hdr + s->hdr_len, data, take);
                        s->hdr_len += take;
                        data += take;
                        len -= take;
                        if (s->hdr_len < sizeof(s->hdr))
                                return 0;
                        s->hdr_len = 0;
                        s->stream = s->hdr[0];
                        s->left = (size_t) s->hdr[4] << 24 | (size_t) s->hdr[5] << 16 | (size_t) s->hdr[6] << 8 |
                                  s->hdr[7];
                        continue;
                }
                size_t take = s->left < len ? s->left : len;
                int fd = s->stream == 2 || s->stream == 3 ? STDERR_FILENO : STDOUT_FILENO;
                int r = write_all(fd, data, take);
                if (r < 0)
                        return r;
                s->left -= take;
                data += take;
                len -= take;
        }
        return 0;
}

int engine_sink_stdcopy(void *userdata, const char *data, size_t len)
{
        return stdcopy_feed(userdata, data, len);
}

/* ---- interactive sessions ---- */

static volatile sig_atomic_t pending_signal, pending_winch;

static void on_signal(int sig)
{
        if (sig == SIGWINCH)
                pending_winch = 1;
        else
                pending_signal = sig;
}

static void send_resize(engine *e, const engine_session *s)
{
        struct winsize ws;
        if (!s->resize_path || ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 || !ws.ws_row)
                return;
        char path[512];
        snprintf(path, sizeof(path), "%s?h=%u&w=%u", s->resize_path, ws.ws_row, ws.ws_col);
        engine_req rq = { .method = "POST", .path = path, .upload_fd = -1 };
        /* Best effort: a daemon without resize support leaves the size. */
        (void) engine_call(e, &rq, NULL, NULL, NULL);
}

static void send_kill(engine *e, const engine_session *s, int sig)
{
        if (!s->kill_path)
                return;
        char path[512];
        snprintf(path, sizeof(path), "%s?signal=%d", s->kill_path, sig);
        engine_req rq = { .method = "POST", .path = path, .upload_fd = -1 };
        (void) engine_call(e, &rq, NULL, NULL, NULL);
}

int engine_session_run(engine *e, engine_conn *conn, const engine_session *s, silo_error *err)
{
        stdcopy demux = { .raw = s->tty };
        int r = 0;
        if (conn->pending_len && (r = stdcopy_feed(&demux, conn->pending, conn->pending_len)) < 0)
                return silo_error_set(err, -r, "write output");

        static const int handled[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH };
        struct sigaction sa = { .sa_handler = on_signal }, old[5];
        sigset_t block, unblocked;
        sigemptyset(&block);
        for (size_t i = 0; i < 5; i++) {
                sigaction(handled[i], &sa, &old[i]);
                sigaddset(&block, handled[i]);
        }
        sigprocmask(SIG_BLOCK, &block, &unblocked);
        signal(SIGPIPE, SIG_IGN);

        struct termios saved;
        bool raw = s->tty && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
        if (raw) {
                struct termios t = saved;
                cfmakeraw(&t);
                tcsetattr(STDIN_FILENO, TCSANOW, &t);
                send_resize(e, s);
        }
        bool in_open = s->forward_stdin;
        for (;;) {
                struct pollfd p[2] = {
                        { .fd = conn->fd, .events = POLLIN },
                        { .fd = in_open ? STDIN_FILENO : -1, .events = POLLIN },
                };
                int n = ppoll(p, 2, NULL, &unblocked);
                int saved_errno = errno;
                if (pending_winch) {
                        pending_winch = 0;
                        if (raw)
                                send_resize(e, s);
                }
                if (pending_signal) {
                        int sig = pending_signal;
                        pending_signal = 0;
                        /* A terminal's own keys reach the container through the pty. */
                        send_kill(e, s, sig);
                }
                if (n < 0) {
                        if (saved_errno == EINTR)
                                continue;
                        r = silo_error_set(err, saved_errno, "poll");
                        break;
                }
                if (p[0].revents) {
                        char buf[32768];
                        ssize_t got = recv(conn->fd, buf, sizeof(buf), 0);
                        if (got < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (got <= 0)
                                break;
                        if ((r = stdcopy_feed(&demux, buf, (size_t) got)) < 0) {
                                r = silo_error_set(err, -r, "write output");
                                break;
                        }
                }
                if (p[1].revents) {
                        char buf[16384];
                        ssize_t got = read(STDIN_FILENO, buf, sizeof(buf));
                        if (got < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (got <= 0 || send_all(conn->fd, buf, (size_t) got) < 0) {
                                in_open = false;
                                /* The container sees EOF on its stdin. */
                                shutdown(conn->fd, SHUT_WR);
                        }
                }
        }
        if (raw)
                tcsetattr(STDIN_FILENO, TCSANOW, &saved);
        sigprocmask(SIG_SETMASK, &unblocked, NULL);
        for (size_t i = 0; i < 5; i++)
                sigaction(handled[i], &old[i], NULL);
        return r;
}
