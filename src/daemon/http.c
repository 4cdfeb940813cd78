/* HTTP helpers: JSON replies with Docker's error shape, query parameters,
 * request bodies. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static enum MHD_Result reply_buffer(struct MHD_Connection *c, unsigned status, char *data, size_t len,
                                    const char *type)
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
