/* Registry client (OCI distribution spec, Docker Registry HTTP API v2) on
 * libcurl: pull by tag or digest, push, anonymous/Basic/Bearer auth through
 * the WWW-Authenticate challenge flow, credentials from a docker-style
 * config.json, cross-repository blob mounts on push, parallel blob
 * downloads with retries and Range resume, digest verification of every
 * manifest and blob, and layer unpacking pipelined with the downloads. */
#pragma once

#include <stdbool.h>

#include "image/image.h"
#include "image/progress.h"
#include "storage/store.h"
#include "util/error.h"

typedef struct silo_registry_options {
        const char *authfile;           /* docker config.json / containers auth.json; NULL: the usual places;
                                         * "": none (only username/password) */
        const char *username;           /* explicit credentials, override the authfile */
        const char *password;
        const char *ca_file;            /* PEM bundle to trust instead of the system's */
        bool tls_verify;                /* default true */
        bool insecure;                  /* allow plain HTTP for any registry (always allowed for loopback) */
        unsigned parallel;              /* concurrent blob transfers, default 3 */
        unsigned retries;               /* attempts per blob, default 5 */
        unsigned retry_delay_ms;        /* first backoff, doubles each time; default 500 */
        const char *platform;           /* "os/arch[/variant]" for manifest lists; NULL: host */
        silo_progress *progress;
        silo_register_options reg;      /* unpack limits and jobs */
        /* Polled during transfers (at least every 100 ms); returning true
         * aborts the operation with -ECANCELED (a pull then cleans up as on
         * any failure).  NULL: never cancelled. */
        bool (*cancelled)(void *userdata);
        void *cancel_userdata;
} silo_registry_options;

void silo_registry_options_init(silo_registry_options *o);

/* Pulls ref into the store and names it; the manifest digest goes to ret_digest. */
int silo_registry_pull(silo_store *s, const char *ref, const silo_registry_options *o,
                       char ret_digest[SILO_DIGEST_SIZE], silo_error *err);

/* Pushes the local image src to dest (a reference with a tag; NULL: src's
 * own name).  ret_digest gets the manifest digest. */
int silo_registry_push(silo_store *s, const char *src, const char *dest, const silo_registry_options *o,
                       char ret_digest[SILO_DIGEST_SIZE], silo_error *err);

/* Checks credentials (o->username/password, else the auth files) against
 * the registry at `server` ("host[:port]", optionally with a scheme and a
 * path such as "https://index.docker.io/v1/"): pings /v2/ and answers its
 * authentication challenge.  -EACCES if the registry rejects them; 0 also
 * when the registry needs no authentication. */
int silo_registry_login(const char *server, const silo_registry_options *o, silo_error *err);
