/* Image archives: `docker save` / `podman save` tarballs (docker-archive,
 * including the docker 25+ variant that embeds an OCI layout), OCI archives
 * (a tarred OCI image layout), and importing a plain root filesystem.
 *
 * Loading stores every member as a blob verified by its content, checks every
 * digest the archive's manifests name, unpacks the layers, and only then makes
 * the images visible.  On failure nothing is registered and unreferenced blobs
 * are collected. */
#pragma once

#include "image/image.h"
#include "image/manifest.h"
#include "storage/store.h"
#include "util/error.h"

typedef struct silo_load_options {
        silo_register_options reg;
        const char *platform;           /* for multi-platform OCI archives; NULL = host */
        const char *name;               /* name for images the archive leaves unnamed */
} silo_load_options;

void silo_load_options_init(silo_load_options *o);

/* Reads an archive from fd (possibly gzip/zstd compressed).  ret_loaded gets
 * one line per image: its names, or its ID if it has none. */
int silo_archive_load(silo_store *s, int fd, const silo_load_options *o, char ***ret_loaded, silo_error *err);
/* The same from an OCI image layout directory (oci-layout, index.json, blobs/). */
int silo_archive_load_dir(silo_store *s, int dirfd, const silo_load_options *o, char ***ret_loaded, silo_error *err);

typedef enum silo_archive_format {
        SILO_ARCHIVE_DOCKER,            /* manifest.json + OCI layout: loads in docker and podman */
        SILO_ARCHIVE_OCI,               /* OCI image layout only */
        SILO_ARCHIVE_OCI_DIR,           /* OCI image layout as a directory: out_fd is that directory */
        _SILO_ARCHIVE_FORMAT_MAX,
        _SILO_ARCHIVE_FORMAT_INVALID = -1,
} silo_archive_format;

int silo_archive_format_from_string(const char *s, silo_archive_format *ret, silo_error *err);
int silo_archive_save(silo_store *s, const char *const *refs, silo_archive_format format, int out_fd,
                      silo_progress *progress, silo_error *err);

typedef struct silo_import_options {
        const char *name;               /* may be NULL: an unnamed image */
        silo_commit_info info;
        silo_register_options reg;
} silo_import_options;

void silo_import_options_init(silo_import_options *o);

/* A root filesystem tarball (plain, gzip or zstd) as a one-layer image. */
int silo_image_import_fd(silo_store *s, int fd, const silo_import_options *o, char ret_digest[SILO_DIGEST_SIZE],
                         silo_error *err);
/* A directory tree as a one-layer image. */
int silo_image_import_dir(silo_store *s, int dirfd, const silo_import_options *o, char ret_digest[SILO_DIGEST_SIZE],
                          silo_error *err);
