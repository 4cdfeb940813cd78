/* OCI and Docker v2 schema 2 manifests, image indexes / manifest lists and
 * image configs.  Parsing is strict about what we act on (digests, sizes,
 * media types) and ignores unknown keys. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "image/compress.h"
#include "storage/digest.h"
#include "util/error.h"

#define SILO_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define SILO_MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define SILO_MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define SILO_MT_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define SILO_MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define SILO_MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define SILO_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define SILO_MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define SILO_MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define SILO_MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"

/* Accept header value for registries: every manifest type we understand. */
#define SILO_MANIFEST_ACCEPT \
        SILO_MT_OCI_MANIFEST ", " SILO_MT_OCI_INDEX ", " SILO_MT_DOCKER_MANIFEST ", " SILO_MT_DOCKER_LIST

/* More layers than overlayfs can stack are refused up front. */
#define SILO_MAX_LAYERS 500

typedef struct silo_platform {
        char *os;
        char *architecture;
        char *variant;
} silo_platform;

typedef struct silo_descriptor {
        char *media_type;
        char digest[SILO_DIGEST_SIZE];
        int64_t size;
        bool has_platform;
        silo_platform platform;
        char *ref_name;         /* annotation org.opencontainers.image.ref.name */
        char *image_name;       /* annotation io.containerd.image.name */
        char **urls;            /* foreign layers */
} silo_descriptor;

typedef struct silo_manifest {
        char *media_type;
        silo_descriptor config;
        silo_descriptor *layers;
        size_t n_layers;
} silo_manifest;

typedef struct silo_image_index {
        char *media_type;
        silo_descriptor *manifests;
        size_t n_manifests;
} silo_image_index;

typedef enum silo_manifest_kind {
        SILO_MANIFEST_IMAGE,
        SILO_MANIFEST_INDEX,
        _SILO_MANIFEST_KIND_MAX,
        _SILO_MANIFEST_KIND_INVALID = -1,
} silo_manifest_kind;

/* Classifies a manifest document by its mediaType (or the HTTP
 * Content-Type, or its shape); refuses schema 1 and unknown types. */
int silo_manifest_kind_of(const char *buf, size_t len, const char *content_type, silo_manifest_kind *ret, silo_error *err);

int silo_manifest_parse(const char *buf, size_t len, silo_manifest **ret, silo_error *err);
silo_manifest *silo_manifest_free(silo_manifest *m);
int silo_image_index_parse(const char *buf, size_t len, silo_image_index **ret, silo_error *err);
silo_image_index *silo_image_index_free(silo_image_index *idx);

/* Layer media type -> compression; -EPROTONOSUPPORT for unknown types. */
int silo_layer_media_type_compression(const char *media_type, silo_compression *ret, silo_error *err);
const char *silo_layer_media_type_for(silo_compression c);
bool silo_config_media_type_supported(const char *media_type);

/* "os/arch[/variant]"; NULL means the host platform. */
int silo_platform_parse(const char *s, silo_platform *ret, silo_error *err);
void silo_platform_done(silo_platform *p);
void silo_platform_host(silo_platform *ret);
/* Picks the manifest for want (os and architecture must match; a variant
 * must match if both sides name one). */
int silo_image_index_select(const silo_image_index *idx, const silo_platform *want,
                            const silo_descriptor **ret, silo_error *err);

/* Serialises a manifest back to JSON (OCI media types as given). */
int silo_manifest_to_json(const silo_manifest *m, char **ret, size_t *ret_len, silo_error *err);
json_t *silo_descriptor_to_json(const silo_descriptor *d);

typedef struct silo_image_config {
        json_t *json;                   /* whole document (owned); fields below borrow from it */
        const char *architecture;
        const char *os;
        const char *variant;
        const char *created;
        const char *author;
        const char **diff_ids;
        size_t n_diff_ids;
        /* the "config" object */
        const char *user;
        const char *working_dir;
        const char *stop_signal;
        const char **entrypoint;
        const char **cmd;
        const char **env;
        json_t *volumes;
        json_t *exposed_ports;
        json_t *labels;
        json_t *history;
} silo_image_config;

int silo_image_config_parse(const char *buf, size_t len, silo_image_config **ret, silo_error *err);
silo_image_config *silo_image_config_free(silo_image_config *c);

static inline void silo_manifest_freep(silo_manifest **m)
{
        silo_manifest_free(*m);
}
static inline void silo_image_index_freep(silo_image_index **i)
{
        silo_image_index_free(*i);
}
static inline void silo_image_config_freep(silo_image_config **c)
{
        silo_image_config_free(*c);
}
#define _cleanup_manifest_ __attribute__((cleanup(silo_manifest_freep)))
#define _cleanup_image_index_ __attribute__((cleanup(silo_image_index_freep)))
#define _cleanup_image_config_ __attribute__((cleanup(silo_image_config_freep)))
