#include "registry/client.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define TOKEN_MAX (1u << 20)
#define ERROR_BODY_MAX (64u << 10)
#define AUTHFILE_MAX (4u << 20)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* libcurl demands one global init before any thread uses it. */
static void curl_init_once(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
}

void silo_registry_options_init(silo_registry_options *o)
{
        *o = (silo_registry_options) {
                .tls_verify = true,
                .parallel = 3,
                .retries = 5,
                .retry_delay_ms = 500,
        };
        silo_register_options_init(&o->reg);
}

void reg_response_done(reg_response *r)
{
        free(r->body);
        free(r->location);
        free(r->www_authenticate);
        *r = (reg_response) {};
}

void reg_client_free(reg_client *c)
{
        if (!c)
                return;
        if (c->easy)
                curl_easy_cleanup(c->easy);
        free(c->domain);
        free(c->host);
        free(c->base);
        free(c->repo);
        free(c->scope);
        if (c->basic)
                explicit_bzero(c->basic, strlen(c->basic));
        free(c->basic);
        if (c->auth_header)
                explicit_bzero(c->auth_header, strlen(c->auth_header));
        free(c->auth_header);
        free(c);
}

bool reg_retryable_status(long status)
{
        return status == 408 || status == 429 || status >= 500;
}

bool reg_retryable_curl(CURLcode rc)
{
        switch (rc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                return true;
        default:
                return false;
        }
}

char *reg_url(reg_client *c, const char *p)
{
        char *s = NULL;
        if (!strncmp(p, "http://", 7) || !strncmp(p, "https://", 8))
                return strdup(p);
        if (asprintf(&s, "%s%s%s", c->base, p[0] == '/' ? "" : "/", p) < 0)
                return NULL;
        return s;
}

/* Only our registry gets our credentials, not a redirect target elsewhere. */
static bool same_origin(reg_client *c, const char *url)
{
        size_t n = strlen(c->base);
        return !strncmp(url, c->base, n) && (url[n] == '/' || url[n] == '\0' || url[n] == '?');
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
        reg_response *r = userdata;
        size_t len = size * nitems;
        if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {
                /* A new response (after a redirect or 100-continue): start over. */
                r->content_type[0] = r->digest[0] = '\0';
                free(r->location);
                free(r->www_authenticate);
                r->location = r->www_authenticate = NULL;
                r->content_length = -1;
                return len;
        }
        const char *colon = memchr(buf, ':', len);
        if (!colon)
                return len;
        size_t nlen = (size_t) (colon - buf);
        const char *v = colon + 1;
        const char *end = buf + len;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
                end--;
        size_t vlen = (size_t) (end - v);
#define IS(name) (nlen == strlen(name) && !strncasecmp(buf, name, nlen))
        if (IS("content-type"))
                snprintf(r->content_type, sizeof(r->content_type), "%.*s", (int) vlen, v);
        else if (IS("docker-content-digest"))
                snprintf(r->digest, sizeof(r->digest), "%.*s", (int) vlen, v);
        else if (IS("location")) {
                free(r->location);
                r->location = strndup(v, vlen);
        } else if (IS("www-authenticate")) {
                free(r->www_authenticate);
                r->www_authenticate = strndup(v, vlen);
        } else if (IS("content-length"))
                r->content_length = strtoll(v, NULL, 10);
#undef IS
        /* Strip parameters from the content type ("; charset=utf-8"). */
        char *semi = strchr(r->content_type, ';');
        if (semi)
                *semi = '\0';
        return len;
}

static size_t body_cb(char *buf, size_t size, size_t nmemb, void *userdata)
{
        reg_response *r = userdata;
        size_t len = size * nmemb;
        if (r->max == 0)
                return len;
        if (r->len + len > r->max) {
                r->too_big = true;
                return 0;
        }
        char *nb = realloc(r->body, r->len + len + 1);
        if (!nb)
                return 0;
        r->body = nb;
        memcpy(r->body + r->len, buf, len);
        r->len += len;
        r->body[r->len] = '\0';
        return len;
}

struct upload {
        int fd;
        const reg_request *req;
};

static int xfer_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
        struct upload *u = userdata;
        (void) dltotal;
        (void) dlnow;
        if (ulnow > 0)
                u->req->upload_progress(u->req->progress_userdata, (uint64_t) ulnow, (uint64_t) ultotal);
        return 0;
}

static size_t read_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
        struct upload *u = userdata;
        for (;;) {
                ssize_t n = read(u->fd, buf, size * nitems);
                if (n >= 0)
                        return (size_t) n;
                if (errno != EINTR)
                        return CURL_READFUNC_ABORT;
        }
}

int reg_setup_easy(reg_client *c, CURL *h, struct curl_slist **headers, const char *accept, silo_error *err)
{
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
        /* A stalled transfer (under 1 byte/s for 60 s) is a failure to retry. */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "silo/0.1");
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
        if (c->o->ca_file)
                curl_easy_setopt(h, CURLOPT_CAINFO, c->o->ca_file);
        if (!c->o->tls_verify) {
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        if (accept) {
                char *a = NULL;
                if (asprintf(&a, "Accept: %s", accept) < 0)
                        return silo_error_set(err, ENOMEM, "http");
                *headers = curl_slist_append(*headers, a);
                free(a);
        }
        if (c->auth_header)
                *headers = curl_slist_append(*headers, c->auth_header);
        return 0;
}

static int perform(reg_client *c, const reg_request *req, reg_response *resp, silo_error *err)
{
        _cleanup_free_ char *url = reg_url(c, req->url);
        if (!url)
                return silo_error_set(err, ENOMEM, "http");
        CURL *h = c->easy;
        curl_easy_reset(h);
        struct curl_slist *headers = NULL;
        int r = reg_setup_easy(c, h, &headers, req->accept, err);
        if (r < 0)
                return r;
        if (!same_origin(c, url) && c->auth_header) {
                /* Rebuild without credentials. */
                curl_slist_free_all(headers);
                headers = NULL;
                char *saved = c->auth_header;
                c->auth_header = NULL;
                r = reg_setup_easy(c, h, &headers, req->accept, err);
                c->auth_header = saved;
                if (r < 0)
                        return r;
        }
        if (req->content_type) {
                char *ct = NULL;
                if (asprintf(&ct, "Content-Type: %s", req->content_type) < 0) {
                        curl_slist_free_all(headers);
                        return silo_error_set(err, ENOMEM, "http");
                }
                headers = curl_slist_append(headers, ct);
                free(ct);
        }
        /* No "Expect: 100-continue" round trip for uploads. */
        headers = curl_slist_append(headers, "Expect:");

        reg_response_done(resp);
        resp->max = req->max_body;
        resp->content_length = -1;
        char errbuf[CURL_ERROR_SIZE] = "";
        struct upload up = { req->upload_fd, req };

        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, req->follow ? 1L : 0L);
        if (!strcmp(req->method, "HEAD"))
                curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        else if (!strcmp(req->method, "POST")) {
                curl_easy_setopt(h, CURLOPT_POST, 1L);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        } else if (!strcmp(req->method, "PUT") && req->upload_fd >= 0) {
                curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
                curl_easy_setopt(h, CURLOPT_READDATA, &up);
                curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t) req->upload_size);
                if (req->upload_progress) {
                        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
                        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xfer_cb);
                        curl_easy_setopt(h, CURLOPT_XFERINFODATA, &up);
                }
        } else if (!strcmp(req->method, "PUT")) {
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        } else if (strcmp(req->method, "GET") != 0)
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);

        CURLcode rc = curl_easy_perform(h);
        curl_slist_free_all(headers);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
        if (rc == CURLE_WRITE_ERROR && resp->too_big)
                return silo_error_msg(err, EFBIG, "%s %s: response larger than %zu bytes", req->method, url, req->max_body);
        if (rc != CURLE_OK) {
                int e = rc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : rc == CURLE_COULDNT_CONNECT ? ECONNREFUSED :
                        rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR ? EPROTO : EIO;
                return silo_error_msg(err, e, "%s %s: %s%s%s", req->method, url, curl_easy_strerror(rc),
                                      *errbuf ? ": " : "", errbuf);
        }
        return 0;
}

int reg_do(reg_client *c, const reg_request *req, reg_response *resp, silo_error *err)
{
        for (int attempt = 0; ; attempt++) {
                int r = perform(c, req, resp, err);
                if (r < 0)
                        return r;
                if (resp->status != 401 || attempt > 0)
                        return 0;
                r = reg_authenticate(c, resp, err);
                if (r < 0)
                        return r;
                if (req->upload_fd >= 0 && lseek(req->upload_fd, 0, SEEK_SET) < 0)
                        return silo_error_set(err, errno, "rewind upload");
        }
}

void reg_error_text(const reg_response *resp, char *buf, size_t size)
{
        buf[0] = '\0';
        if (!resp->body || !resp->len)
                return;
        json_t *j = json_loadb(resp->body, resp->len, 0, NULL);
        json_t *errors = json_object_get(j, "errors");
        json_t *e0 = json_array_get(errors, 0);
        const char *code = json_string_value(json_object_get(e0, "code"));
        const char *msg = json_string_value(json_object_get(e0, "message"));
        if (code || msg)
                snprintf(buf, size, "%s%s%s", code ? code : "", code && msg ? ": " : "", msg ? msg : "");
        else if (!j) {
                /* Not JSON: the first line, printable characters only. */
                size_t n = 0;
                for (size_t i = 0; i < resp->len && n + 1 < size && n < 160; i++) {
                        char ch = resp->body[i];
                        if (ch == '\n')
                                break;
                        buf[n++] = isprint((unsigned char) ch) ? ch : '?';
                }
                buf[n] = '\0';
        }
        json_decref(j);
}

/* ---- credentials ---- */

static char *b64_encode(const char *s)
{
        size_t n = strlen(s);
        char *out = malloc(4 * ((n + 2) / 3) + 1);
        if (!out)
                return NULL;
        EVP_EncodeBlock((unsigned char *) out, (const unsigned char *) s, (int) n);
        return out;
}

static bool b64_valid_auth(const char *b64)
{
        size_t n = strlen(b64);
        if (n == 0 || n % 4 || n > 8192)
                return false;
        _cleanup_free_ unsigned char *out = malloc(n);
        if (!out)
                return false;
        int len = EVP_DecodeBlock(out, (const unsigned char *) b64, (int) n);
        if (len <= 0)
                return false;
        return memchr(out, ':', (size_t) len) != NULL;
}

/* "https://index.docker.io/v1/" -> "index.docker.io" */
static void normalise_key(const char *key, char *buf, size_t size)
{
        const char *p = key;
        if (!strncmp(p, "https://", 8))
                p += 8;
        else if (!strncmp(p, "http://", 7))
                p += 7;
        snprintf(buf, size, "%.*s", (int) strcspn(p, "/"), p);
}

static bool domain_matches(const char *key, const char *domain)
{
        char k[512];
        normalise_key(key, k, sizeof(k));
        if (!strcmp(k, domain))
                return true;
        static const char *const hub[] = { "docker.io", "index.docker.io", "registry-1.docker.io" };
        bool k_hub = false, d_hub = false;
        for (size_t i = 0; i < 3; i++) {
                k_hub |= !strcmp(k, hub[i]);
                d_hub |= !strcmp(domain, hub[i]);
        }
        return k_hub && d_hub;
}

static int lookup_file(const char *path, const char *domain, bool must_exist, char **ret, silo_error *err)
{
        _cleanup_json_ json_t *j = NULL;
        int r = silo_json_load_file_at(AT_FDCWD, path, AUTHFILE_MAX, &j, err);
        if (r == -ENOENT && !must_exist) {
                silo_error_clear(err);
                return 0;
        }
        if (r < 0)
                return silo_error_prefix(err, "auth file");
        json_t *auths = json_object_get(j, "auths");
        if (!auths)
                return 0;
        if (!json_is_object(auths))
                return silo_error_msg(err, EINVAL, "auth file %s: auths: expected an object", path);
        const char *key;
        json_t *v;
        json_object_foreach(auths, key, v) {
                if (!domain_matches(key, domain))
                        continue;
                const char *auth = json_string_value(json_object_get(v, "auth"));
                if (!auth || !*auth)
                        continue;
                if (!b64_valid_auth(auth))
                        return silo_error_msg(err, EINVAL, "auth file %s: auths.%s.auth is not base64 'user:password'", path, key);
                *ret = strdup(auth);
                return *ret ? 1 : silo_error_set(err, ENOMEM, "auth");
        }
        return 0;
}

int reg_credentials(const silo_registry_options *o, const char *domain, char **ret, silo_error *err)
{
        *ret = NULL;
        if (o->username) {
                _cleanup_free_ char *up = NULL;
                if (asprintf(&up, "%s:%s", o->username, o->password ? o->password : "") < 0)
                        return silo_error_set(err, ENOMEM, "credentials");
                *ret = b64_encode(up);
                explicit_bzero(up, strlen(up));
                return *ret ? 0 : silo_error_set(err, ENOMEM, "credentials");
        }
        if (o->authfile && !*o->authfile)
                return 0;
        if (o->authfile)
                return lookup_file(o->authfile, domain, true, ret, err) < 0 ? -err->code : 0;

        char paths[4][4096];
        size_t n = 0;
        const char *e;
        if ((e = getenv("REGISTRY_AUTH_FILE")) && *e)
                snprintf(paths[n++], sizeof(paths[0]), "%s", e);
        if ((e = getenv("XDG_RUNTIME_DIR")) && *e)
                snprintf(paths[n++], sizeof(paths[0]), "%s/containers/auth.json", e);
        if ((e = getenv("DOCKER_CONFIG")) && *e)
                snprintf(paths[n++], sizeof(paths[0]), "%s/config.json", e);
        else if ((e = getenv("HOME")) && *e)
                snprintf(paths[n++], sizeof(paths[0]), "%s/.docker/config.json", e);
        for (size_t i = 0; i < n; i++) {
                int r = lookup_file(paths[i], domain, false, ret, err);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        return 0;
}

/* ---- challenges and tokens ---- */

struct challenge {
        char scheme[16];
        char realm[1024];
        char service[1024];
        char scope[1024];
};

/* WWW-Authenticate: Bearer realm="...",service="...",scope="..." */
static int parse_challenge(const char *h, struct challenge *c, silo_error *err)
{
        memset(c, 0, sizeof(*c));
        if (!h)
                return silo_error_msg(err, EACCES, "registry answered 401 without a WWW-Authenticate challenge");
        size_t n = strcspn(h, " ");
        snprintf(c->scheme, sizeof(c->scheme), "%.*s", (int) n, h);
        const char *p = h + n;
        while (*p) {
                while (*p == ' ' || *p == ',')
                        p++;
                const char *eq = strchr(p, '=');
                if (!eq)
                        break;
                char key[32];
                snprintf(key, sizeof(key), "%.*s", (int) (eq - p), p);
                p = eq + 1;
                char val[1024];
                size_t vn = 0;
                if (*p == '"') {
                        p++;
                        while (*p && *p != '"') {
                                if (*p == '\\' && p[1])
                                        p++;
                                if (vn + 1 < sizeof(val))
                                        val[vn++] = *p;
                                p++;
                        }
                        if (*p == '"')
                                p++;
                } else {
                        while (*p && *p != ',' && vn + 1 < sizeof(val))
                                val[vn++] = *p++;
                }
                val[vn] = '\0';
                if (!strcasecmp(key, "realm"))
                        snprintf(c->realm, sizeof(c->realm), "%s", val);
                else if (!strcasecmp(key, "service"))
                        snprintf(c->service, sizeof(c->service), "%s", val);
                else if (!strcasecmp(key, "scope"))
                        snprintf(c->scope, sizeof(c->scope), "%s", val);
        }
        return 0;
}

static int append_param(char **url, const char *key, const char *value, CURL *h)
{
        char *esc = curl_easy_escape(h, value, 0);
        if (!esc)
                return -ENOMEM;
        char *n = NULL;
        int r = asprintf(&n, "%s%c%s=%s", *url, strchr(*url, '?') ? '&' : '?', key, esc);
        curl_free(esc);
        if (r < 0)
                return -ENOMEM;
        free(*url);
        *url = n;
        return 0;
}

/* "https://host:port/path?q" -> "https://host:port" */
static char *url_origin(const char *url)
{
        const char *p = strstr(url, "://");
        if (!p)
                return NULL;
        p += 3;
        return strndup(url, (size_t) (p - url) + strcspn(p, "/?#"));
}

static int fetch_token(reg_client *c, const struct challenge *ch, silo_error *err)
{
        if (strncmp(ch->realm, "https://", 8) != 0 && strncmp(ch->realm, "http://", 7) != 0)
                return silo_error_msg(err, EACCES, "token realm '%.200s' is not an http(s) URL", ch->realm);
        /* Credentials travel over plain HTTP only to a plain-HTTP registry's own realm. */
        if (!strncmp(ch->realm, "http://", 7) && c->basic && strncmp(c->base, "http://", 7) != 0)
                return silo_error_msg(err, EACCES, "refusing to send credentials to plain-HTTP token realm %s", ch->realm);

        _cleanup_free_ char *url = strdup(ch->realm);
        if (!url)
                return silo_error_set(err, ENOMEM, "token");
        if (*ch->service && append_param(&url, "service", ch->service, c->easy) < 0)
                return silo_error_set(err, ENOMEM, "token");
        /* Our scopes (they may include push and mount sources), plus the challenge's own. */
        _cleanup_free_ char *scopes = strdup(c->scope ? c->scope : "");
        for (char *save = NULL, *s = strtok_r(scopes, " ", &save); s; s = strtok_r(NULL, " ", &save))
                if (append_param(&url, "scope", s, c->easy) < 0)
                        return silo_error_set(err, ENOMEM, "token");
        if (*ch->scope && (!c->scope || !strstr(c->scope, ch->scope)) && append_param(&url, "scope", ch->scope, c->easy) < 0)
                return silo_error_set(err, ENOMEM, "token");

        char *saved = c->auth_header;
        _cleanup_free_ char *basic = NULL;
        if (c->basic && asprintf(&basic, "Authorization: Basic %s", c->basic) < 0)
                return silo_error_set(err, ENOMEM, "token");
        c->auth_header = basic;
        _cleanup_free_ char *origin_base = c->base;
        /* The realm is usually another host: send Basic credentials there on purpose. */
        c->base = url_origin(url);
        if (!c->base) {
                c->base = TAKE_PTR(origin_base);
                c->auth_header = saved;
                return silo_error_msg(err, EINVAL, "token realm '%.200s' is not a URL", url);
        }
        reg_response resp = {};
        reg_request req = { .method = "GET", .url = url, .upload_fd = -1, .max_body = TOKEN_MAX, .follow = true };
        int r = perform(c, &req, &resp, err);
        free(c->base);
        c->base = TAKE_PTR(origin_base);
        c->auth_header = saved;
        if (basic)
                explicit_bzero(basic, strlen(basic));
        if (r < 0) {
                reg_response_done(&resp);
                return silo_error_prefix(err, "token request");
        }
        if (resp.status != 200) {
                char text[256];
                reg_error_text(&resp, text, sizeof(text));
                long status = resp.status;
                reg_response_done(&resp);
                return silo_error_msg(err, EACCES, "authentication failed for %s: token server %s answered %ld%s%s",
                                      c->domain, ch->realm, status, *text ? ": " : "", text);
        }
        json_t *j = json_loadb(resp.body, resp.len, 0, NULL);
        reg_response_done(&resp);
        const char *tok = json_string_value(json_object_get(j, "token"));
        if (!tok || !*tok)
                tok = json_string_value(json_object_get(j, "access_token"));
        if (!tok || !*tok) {
                json_decref(j);
                return silo_error_msg(err, EACCES, "token server %s returned no token", ch->realm);
        }
        char *h = NULL;
        r = asprintf(&h, "Authorization: Bearer %s", tok);
        json_decref(j);
        if (r < 0)
                return silo_error_set(err, ENOMEM, "token");
        free(c->auth_header);
        c->auth_header = h;
        return 0;
}

int reg_authenticate(reg_client *c, const reg_response *resp, silo_error *err)
{
        struct challenge ch;
        int r = parse_challenge(resp->www_authenticate, &ch, err);
        if (r < 0)
                return r;
        if (!strcasecmp(ch.scheme, "Bearer")) {
                if (!*ch.realm)
                        return silo_error_msg(err, EACCES, "Bearer challenge from %s has no realm", c->domain);
                return fetch_token(c, &ch, err);
        }
        if (!strcasecmp(ch.scheme, "Basic")) {
                if (!c->basic)
                        return silo_error_msg(err, EACCES, "registry %s requires authentication and no credentials "
                                              "were found (use --creds or an auth file)", c->domain);
                if (c->auth_header && !strncmp(c->auth_header, "Authorization: Basic ", 21))
                        return silo_error_msg(err, EACCES, "authentication failed for %s: credentials rejected", c->domain);
                char *h = NULL;
                if (asprintf(&h, "Authorization: Basic %s", c->basic) < 0)
                        return silo_error_set(err, ENOMEM, "auth");
                free(c->auth_header);
                c->auth_header = h;
                return 0;
        }
        return silo_error_msg(err, EACCES, "unsupported authentication scheme '%s' from %s", ch.scheme, c->domain);
}

/* ---- opening ---- */

static bool is_loopback(const char *host)
{
        char h[256];
        snprintf(h, sizeof(h), "%s", host);
        /* strip the port */
        if (h[0] == '[') {
                char *end = strchr(h, ']');
                if (end)
                        end[1] = '\0';
        } else {
                char *colon = strrchr(h, ':');
                if (colon)
                        *colon = '\0';
        }
        return !strcmp(h, "localhost") || !strncmp(h, "127.", 4) || !strcmp(h, "[::1]");
}

int reg_client_open(silo_store *s, const silo_reference *ref, const silo_registry_options *o, const char *scope,
                    reg_client **ret, silo_error *err)
{
        pthread_once(&curl_once, curl_init_once);
        reg_client *c = calloc(1, sizeof(*c));
        if (!c)
                return silo_error_set(err, ENOMEM, "registry");
        c->store = s;
        c->o = o;
        c->domain = strdup(ref->domain);
        c->host = strdup(!strcmp(ref->domain, "docker.io") ? "registry-1.docker.io" : ref->domain);
        c->repo = strdup(ref->path);
        c->scope = scope ? strdup(scope) : NULL;
        c->easy = curl_easy_init();
        c->plain_http_allowed = o->insecure || is_loopback(c->host);
        if (!c->domain || !c->host || !c->repo || (scope && !c->scope) || !c->easy) {
                reg_client_free(c);
                return silo_error_set(err, ENOMEM, "registry");
        }
        int r = reg_credentials(o, c->domain, &c->basic, err);
        if (r < 0) {
                reg_client_free(c);
                return r;
        }

        /* Ping /v2/: picks the scheme and learns the auth challenge up front. */
        reg_response resp = {};
        reg_request req = { .method = "GET", .url = "/v2/", .upload_fd = -1, .max_body = ERROR_BODY_MAX };
        silo_error https_err = SILO_ERROR_INIT;
        if (asprintf(&c->base, "https://%s", c->host) < 0) {
                reg_client_free(c);
                return silo_error_set(err, ENOMEM, "registry");
        }
        r = perform(c, &req, &resp, &https_err);
        if (r < 0 && c->plain_http_allowed && r == -EPROTO && !strstr(https_err.message, "certificate")) {
                /* A plain-HTTP registry answering a TLS hello: fall back (loopback or --insecure only). */
                free(c->base);
                if (asprintf(&c->base, "http://%s", c->host) < 0) {
                        reg_client_free(c);
                        return silo_error_set(err, ENOMEM, "registry");
                }
                r = perform(c, &req, &resp, err);
        } else if (r < 0) {
                if (err)
                        *err = https_err;
                if (r == -EPROTO && strstr(https_err.message, "certificate"))
                        silo_error_msg(err, EPROTO, "%s (trust its CA with --ca-file, or use --tls-verify=false)",
                                       https_err.message);
        }
        if (r == 0 && resp.status == 401)
                r = reg_authenticate(c, &resp, err);
        else if (r == 0 && resp.status != 200 && resp.status != 404) {
                char text[256];
                reg_error_text(&resp, text, sizeof(text));
                r = silo_error_msg(err, EPROTO, "%s/v2/: HTTP %ld%s%s (not a registry?)", c->base, resp.status,
                                   *text ? ": " : "", text);
        }
        reg_response_done(&resp);
        if (r < 0) {
                silo_error_prefix(err, "registry %s", c->domain);
                reg_client_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

bool reg_cancelled(const silo_registry_options *o)
{
        return o->cancelled && o->cancelled(o->cancel_userdata);
}

int silo_registry_login(const char *server, const silo_registry_options *o, silo_error *err)
{
        silo_registry_options defaults;
        if (!o) {
                silo_registry_options_init(&defaults);
                o = &defaults;
        }
        if (!server || !*server)
                return silo_error_msg(err, EINVAL, "login: no registry given");
        const char *host = server;
        if (!strncmp(host, "https://", 8))
                host += 8;
        else if (!strncmp(host, "http://", 7))
                host += 7;
        size_t n = strcspn(host, "/");
        if (n == 0 || n > 255)
                return silo_error_msg(err, EINVAL, "login: invalid registry address '%s'", server);
        _cleanup_free_ char *probe = NULL;
        /* Docker Hub's legacy address names docker.io. */
        if ((n == 15 && !strncmp(host, "index.docker.io", 15)) || (n == 9 && !strncmp(host, "docker.io", 9)))
                probe = strdup("docker.io/library/silo-login:latest");
        else if (asprintf(&probe, "%.*s/silo-login:latest", (int) n, host) < 0)
                probe = NULL;
        if (!probe)
                return silo_error_set(err, ENOMEM, "login");
        _cleanup_reference_ silo_reference *ref = NULL;
        int r = silo_reference_parse(probe, &ref, err);
        if (r < 0)
                return silo_error_prefix(err, "login: invalid registry address '%s'", server);
        reg_client *c = NULL;
        r = reg_client_open(NULL, ref, o, NULL, &c, err);
        if (r < 0)
                return r;
        /* The ping answered the challenge (a token, or Basic selected); the
         * second request proves the credentials. */
        reg_response resp = {};
        reg_request req = { .method = "GET", .url = "/v2/", .upload_fd = -1, .max_body = ERROR_BODY_MAX };
        r = reg_do(c, &req, &resp, err);
        if (r == 0 && (resp.status == 401 || resp.status == 403))
                r = silo_error_msg(err, EACCES, "authentication failed for %s: credentials rejected", c->domain);
        else if (r == 0 && resp.status != 200 && resp.status != 404)
                r = silo_error_msg(err, EPROTO, "%s/v2/: HTTP %ld", c->base, resp.status);
        reg_response_done(&resp);
        reg_client_free(c);
        return r;
}
