/* Internal: one registry connection (scheme, auth state) and HTTP helpers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "image/reference.h"
#include "registry/registry.h"

typedef struct reg_client {
        silo_store *store;
        const silo_registry_options *o;
        char *domain;           /* as written in the reference */
        char *host;             /* where to connect (docker.io -> registry-1.docker.io) */
        char *base;             /* "https://host" or "http://host", after ping */
        char *repo;             /* repository path */
        char *scope;            /* token scope(s), space separated */
        char *basic;            /* base64 "user:password", NULL for anonymous */
        char *auth_header;      /* "Authorization: ..." currently in use, or NULL */
        bool plain_http_allowed;
        CURL *easy;
} reg_client;

typedef struct reg_response {
        long status;
        char *body;
        size_t len;
        size_t max;             /* body bigger than this is an error (0: discard body) */
        bool too_big;
        char content_type[256];
        char digest[128];       /* Docker-Content-Digest */
        char *location;
        char *www_authenticate;
        int64_t content_length;
} reg_response;

void reg_response_done(reg_response *r);

/* Sets up a client for ref's registry and pings /v2/ (choosing the scheme). */
int reg_client_open(silo_store *s, const silo_reference *ref, const silo_registry_options *o, const char *scope,
                    reg_client **ret, silo_error *err);
void reg_client_free(reg_client *c);

/* Common options on an easy handle: TLS, timeouts, protocols, auth header, accept. */
int reg_setup_easy(reg_client *c, CURL *h, struct curl_slist **headers, const char *accept, silo_error *err);

/* A request with the auth dance: on 401 the challenge is answered and the
 * request repeated once.  Transport errors are negative; HTTP errors are
 * returned in resp->status for the caller to judge. */
typedef struct reg_request {
        const char *method;             /* GET, HEAD, POST, PUT */
        const char *url;                /* absolute, or a path under base */
        const char *accept;
        const char *content_type;
        const void *body;
        size_t body_len;
        int upload_fd;                  /* PUT a file instead of body (-1: none) */
        uint64_t upload_size;
        size_t max_body;
        bool follow;                    /* follow redirects */
        void (*upload_progress)(void *userdata, uint64_t sent, uint64_t total);
        void *progress_userdata;
} reg_request;

int reg_do(reg_client *c, const reg_request *req, reg_response *resp, silo_error *err);

/* Absolute URL for a path under base (or a Location header, which may be relative). */
char *reg_url(reg_client *c, const char *path_or_url);

/* Handles a 401 by answering resp's challenge: fetches a token (Bearer) or
 * selects Basic credentials.  -EACCES if no way to authenticate. */
int reg_authenticate(reg_client *c, const reg_response *resp, silo_error *err);

/* "registry said: CODE: message" from an error body, for messages. */
void reg_error_text(const reg_response *resp, char *buf, size_t size);

/* Is this status / curl error worth retrying? */
bool reg_retryable_status(long status);
bool reg_retryable_curl(CURLcode rc);

/* Credentials for a registry domain from o->username/password or the auth
 * files; ret is base64 "user:password" or NULL. */
int reg_credentials(const silo_registry_options *o, const char *domain, char **ret, silo_error *err);

/* True if the caller asked to stop (silo_registry_options.cancelled). */
bool reg_cancelled(const silo_registry_options *o);
