/* Image references in the Docker/OCI grammar:
 *   [domain[:port]/]path[:tag][@sha256:hex]
 * Normalised like docker: "busybox" is "docker.io/library/busybox:latest". */
#pragma once

#include <stdbool.h>

#include "util/error.h"

#define SILO_DEFAULT_DOMAIN "docker.io"
#define SILO_DEFAULT_TAG "latest"

typedef struct silo_reference {
        char *domain;   /* "docker.io", "localhost:5000", "127.0.0.1:5000" */
        char *path;     /* "library/busybox" */
        char *tag;      /* NULL if only a digest was given */
        char *digest;   /* NULL unless "@sha256:..." was given */
} silo_reference;

/* Parses and normalises; a missing tag becomes "latest" unless a digest is
 * given. */
int silo_reference_parse(const char *s, silo_reference **ret, silo_error *err);
silo_reference *silo_reference_free(silo_reference *r);

/* "domain/path" */
char *silo_reference_repository(const silo_reference *r);
/* "domain/path:tag" (or "domain/path@digest" if no tag): the key in the image index. */
char *silo_reference_name(const silo_reference *r);

/* True if the string looks like a reference rather than an ID. */
bool silo_reference_valid(const char *s);

static inline void silo_reference_freep(silo_reference **r)
{
        silo_reference_free(*r);
}
#define _cleanup_reference_ __attribute__((cleanup(silo_reference_freep)))
