/* HTTP helpers: JSON replies with Docker's error shape, query parameters,
 * request bodies. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "silo-config.h"
#include "silod.h"
#include "util/cleanup.h"
#include "util/json.h"

void add_common_headers(struct MHD_Response *resp)
{
        MHD_add_response_header(resp, "Api-Version", SILOD_API_VERSION);
        MHD_add_response_header(resp, "Server", "silod/" SILO_VERSION);
        MHD_add_response_header(resp, "Docker-Experimental", "false");
        MHD_add_response_header(resp, "Ostype", "linux");
}

void add_hijack_headers(struct MHD_Response *resp, bool tty)
{
        MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "tcp");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "Upgrade");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                tty ? "application/vnd.docker.raw-stream"
                                    : "application/vnd.docker.multiplexed-stream");
        add_common_headers(resp);
}

enum MHD_Result reply_buffer(struct MHD_Connection *c, unsigned status, char *data, size_t len, const char *type)
{
        struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(data);
                return MHD_NO;
        }
        if (type)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        add_common_headers(resp);
        enum MHD_Result r = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return r;
}

void attach_thread_done(struct silod *d)
{
        pthread_mutex_lock(&d->lock);
        d->attach_threads--;
        pthread_cond_broadcast(&d->changed);
        pthread_mutex_unlock(&d->lock);
}

enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *doc)
{
        if (!doc)
                return reply_error(c, 500, "out of memory");
        char *text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        if (!text)
                return MHD_NO;
        size_t len = strlen(text);
        /* Docker ends JSON bodies with a newline. */
        char *nl = realloc(text, len + 2);
        if (!nl) {
                free(text);
                return MHD_NO;
        }
        nl[len] = '\n';
        nl[len + 1] = 0;
        return reply_buffer(c, status, nl, len + 1, "application/json");
}

enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
        char msg[SILO_ERROR_MAX + 128];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return reply_json(c, status, json_pack("{s:s}", "message", msg));
}

enum MHD_Result reply_errno(struct MHD_Connection *c, int r, const silo_error *err)
{
        unsigned status;
        switch (-r) {
        case ENOENT: case ESRCH: status = 404; break;
        case EEXIST: case EBUSY: case ENOTEMPTY: status = 409; break;
        case EINVAL: case EBADMSG: case E2BIG: case ENAMETOOLONG: status = 400; break;
        case EOPNOTSUPP: status = 501; break;
        default: status = 500; break;
        }
        return reply_error(c, status, "%s", err && err->message[0] ? err->message : strerror(-r));
}

enum MHD_Result reply_empty(struct MHD_Connection *c, unsigned status)
{
        return reply_buffer(c, status, NULL, 0, NULL);
}

enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
        char *copy = strdup(text);
        if (!copy)
                return MHD_NO;
        return reply_buffer(c, status, copy, strlen(copy), "text/plain; charset=utf-8");
}

/* Every path silod serves, whatever the method. "*" is one non-empty segment,
 * "**" one or more (image names hold slashes). A request no handler took whose
 * path is listed here used the wrong method: 405, as the Docker API answers. */
static const char *const known_routes[] = {
        "/_ping", "/version", "/info", "/events", "/system/df", "/auth",
        "/containers/create", "/containers/json", "/containers/prune", "/containers/*",
        "/containers/*/json", "/containers/*/start", "/containers/*/stop", "/containers/*/pause",
        "/containers/*/unpause", "/containers/*/restart", "/containers/*/kill", "/containers/*/wait",
        "/containers/*/stats", "/containers/*/logs", "/containers/*/exec", "/containers/*/attach",
        "/containers/*/resize", "/containers/*/top", "/containers/*/rename",
        "/exec/*/start", "/exec/*/json", "/exec/*/resize",
        "/images/json", "/images/load", "/images/create", "/images/prune", "/images/get",
        "/images/**/json", "/images/**/tag", "/images/**/get", "/images/**/history", "/images/**/push",
        "/images/**",
        "/networks", "/networks/create", "/networks/prune", "/networks/*", "/networks/*/connect",
        "/networks/*/disconnect",
        "/volumes", "/volumes/create", "/volumes/prune", "/volumes/*",
        "/compute/systems", "/compute/systems/*", "/compute/systems/*/properties", "/compute/systems/*/wait",
        "/compute/systems/*/start", "/compute/systems/*/pause", "/compute/systems/*/resume",
        "/compute/systems/*/terminate", "/compute/systems/*/modify", "/compute/systems/*/shutdown",
        "/compute/systems/*/processes", "/compute/systems/*/processes/*",
        "/compute/systems/*/processes/*/*",
};

/* Matches segment by segment; both strings point just past a '/'. Only "**"
 * recurses, and a pattern holds one at most, so the work stays bounded. */
static bool route_matches(const char *pattern, const char *path)
{
        for (;;) {
                size_t pn = strcspn(pattern, "/"), n = strcspn(path, "/");
                if (pn == 2 && strncmp(pattern, "**", 2) == 0) {
                        /* Let "**" take one segment, then two, ... */
                        for (const char *p = path;;) {
                                size_t m = strcspn(p, "/");
                                if (m == 0)
                                        return false;
                                p += m;
                                if (pattern[2] == 0 ? *p == 0 : *p == '/' && route_matches(pattern + 3, p + 1))
                                        return true;
                                if (*p == 0)
                                        return false;
                                p++;
                        }
                }
                if (pn == 1 && pattern[0] == '*' ? n == 0 : pn != n || strncmp(pattern, path, n) != 0)
                        return false;
                pattern += pn;
                path += n;
                if (*pattern == 0 || *path == 0)
                        return *pattern == 0 && *path == 0;
                pattern++;
                path++;
        }
}

bool route_known(const char *path)
{
        if (path[0] != '/')
                return false;
        for (size_t i = 0; i < sizeof(known_routes) / sizeof(known_routes[0]); i++)
                if (route_matches(known_routes[i] + 1, path + 1))
                        return true;
        return false;
}

enum MHD_Result reply_no_route(struct MHD_Connection *c, const char *method, const char *path_fmt, ...)
{
        _cleanup_free_ char *path = NULL;
        va_list ap;
        va_start(ap, path_fmt);
        int n = vasprintf(&path, path_fmt, ap);
        va_end(ap);
        if (n < 0)
                return MHD_NO;
        if (route_known(path))
                return reply_error(c, 405, "method %s not allowed on %s", method, path);
        return reply_error(c, 404, "page not found: %s %s", method, path);
}

const char *query(struct MHD_Connection *c, const char *key)
{
        return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
}

bool query_bool(struct MHD_Connection *c, const char *key)
{
        const char *v = query(c, key);
        return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0);
}

int request_json(struct request *req, json_t **ret, silo_error *err)
{
        if (req->body_too_big)
                return silo_error_msg(err, E2BIG, "request body larger than %u bytes", SILOD_BODY_MAX);
        if (req->body_len == 0) {
                *ret = json_object();
                return *ret ? 0 : silo_error_set(err, ENOMEM, "body");
        }
        json_t *doc = NULL;
        int r = silo_json_load_buffer(req->body, req->body_len, "request body", &doc, err);
        if (r < 0)
                return -EINVAL;
        if (!json_is_object(doc)) {
                json_decref(doc);
                return silo_error_msg(err, EINVAL, "request body: expected a JSON object");
        }
        *ret = doc;
        return 0;
}

static bool filter_value_matches(const char *value, const char *want, enum filter_match how)
{
        if (!want)
                return false;
        switch (how) {
        case FILTER_EXACT: return strcmp(value, want) == 0;
        case FILTER_SUBSTRING: return strstr(value, want) != NULL;
        case FILTER_PREFIX: return strncmp(value, want, strlen(want)) == 0;
        }
        return false;
}

bool filter_passes(json_t *filters, const char *key, const char *value, enum filter_match how)
{
        json_t *f = json_object_get(filters, key);
        if (!f)
                return true;
        const char *want;
        json_t *v;
        size_t i;
        if (json_is_object(f)) {
                json_object_foreach(f, want, v)
                        if (filter_value_matches(value, want, how))
                                return true;
                return false;
        }
        json_array_foreach(f, i, v)
                if (filter_value_matches(value, json_string_value(v), how))
                        return true;
        return false;
}

bool socket_send_all(int sock, const void *data, size_t len)
{
        const char *p = data;
        while (len > 0) {
                ssize_t n = send(sock, p, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        /* A hijacked, non-blocking socket: wait for the client, not forever. */
                        struct pollfd pf = { sock, POLLOUT, 0 };
                        if (poll(&pf, 1, 30000) <= 0)
                                return false;
                        continue;
                }
                if (n <= 0)
                        return false;
                p += n;
                len -= (size_t) n;
        }
        return true;
}

bool connection_gone(struct MHD_Connection *c, int timeout_ms)
{
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!info)
                return true;
        struct pollfd p = { info->connect_fd, POLLRDHUP, 0 };
        int n = poll(&p, 1, timeout_ms);
        return n > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

int open_store(struct silod *d, silo_store **ret, silo_error *err)
{
        return silo_store_open(d->root, ret, err);
}
