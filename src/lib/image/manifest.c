#include "image/manifest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "util/cleanup.h"
#include "util/json.h"

#define MAX_INDEX_ENTRIES 1024
#define MAX_DIFF_IDS SILO_MAX_LAYERS
/* Far beyond any real layer; keeps size arithmetic sane on hostile input. */
#define MAX_BLOB_SIZE (1ll << 40)

static const struct {
        const char *media_type;
        silo_compression compression;
} layer_types[] = {
        { SILO_MT_OCI_LAYER, SILO_COMPRESSION_NONE },
        { SILO_MT_OCI_LAYER_GZIP, SILO_COMPRESSION_GZIP },
        { SILO_MT_OCI_LAYER_ZSTD, SILO_COMPRESSION_ZSTD },
        { "application/vnd.oci.image.layer.nondistributable.v1.tar", SILO_COMPRESSION_NONE },
        { "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", SILO_COMPRESSION_GZIP },
        { "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", SILO_COMPRESSION_ZSTD },
        { SILO_MT_DOCKER_LAYER_GZIP, SILO_COMPRESSION_GZIP },
        { "application/vnd.docker.image.rootfs.diff.tar", SILO_COMPRESSION_NONE },
        { "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", SILO_COMPRESSION_GZIP },
        { "application/vnd.docker.image.rootfs.diff.tar.zstd", SILO_COMPRESSION_ZSTD },
};

int silo_layer_media_type_compression(const char *media_type, silo_compression *ret, silo_error *err)
{
        for (size_t i = 0; i < ARRAY_SIZE(layer_types); i++)
                if (media_type && !strcmp(media_type, layer_types[i].media_type)) {
                        *ret = layer_types[i].compression;
                        return 0;
                }
        return silo_error_msg(err, EPROTONOSUPPORT, "unsupported layer media type '%.100s'",
                              media_type ? media_type : "(none)");
}

const char *silo_layer_media_type_for(silo_compression c)
{
        switch (c) {
        case SILO_COMPRESSION_GZIP: return SILO_MT_OCI_LAYER_GZIP;
        case SILO_COMPRESSION_ZSTD: return SILO_MT_OCI_LAYER_ZSTD;
        case SILO_COMPRESSION_NONE:
        case SILO_COMPRESSION_AUTO:
        case _SILO_COMPRESSION_MAX:
        case _SILO_COMPRESSION_INVALID:
        default:
                return SILO_MT_OCI_LAYER;
        }
}

bool silo_config_media_type_supported(const char *media_type)
{
        return media_type && (!strcmp(media_type, SILO_MT_OCI_CONFIG) || !strcmp(media_type, SILO_MT_DOCKER_CONFIG));
}

/* ---- descriptors ---- */

static void descriptor_done(silo_descriptor *d)
{
        free(d->media_type);
        free(d->ref_name);
        free(d->image_name);
        silo_strv_free(d->urls);
        silo_platform_done(&d->platform);
        memset(d, 0, sizeof(*d));
}

static char *dup_or_null(const char *s)
{
        return s ? strdup(s) : NULL;
}

struct descriptor_json {
        const char *media_type;
        const char *digest;
        int64_t size;
        json_t *platform;
        json_t *annotations;
        const char **urls;
};

static const struct silo_json_field descriptor_fields[] = {
        { "mediaType", SILO_JSON_STRING, offsetof(struct descriptor_json, media_type), SILO_JSON_REQUIRED, NULL },
        { "digest", SILO_JSON_STRING, offsetof(struct descriptor_json, digest), SILO_JSON_REQUIRED, NULL },
        { "size", SILO_JSON_INT64, offsetof(struct descriptor_json, size), SILO_JSON_REQUIRED, NULL },
        { "platform", SILO_JSON_OBJECT, offsetof(struct descriptor_json, platform), SILO_JSON_NULLABLE, NULL },
        { "annotations", SILO_JSON_OBJECT, offsetof(struct descriptor_json, annotations), SILO_JSON_NULLABLE, NULL },
        { "urls", SILO_JSON_STRV, offsetof(struct descriptor_json, urls), SILO_JSON_NULLABLE, NULL },
        {}
};

struct platform_json {
        const char *os;
        const char *architecture;
        const char *variant;
};

static const struct silo_json_field platform_fields[] = {
        { "os", SILO_JSON_STRING, offsetof(struct platform_json, os), SILO_JSON_REQUIRED, NULL },
        { "architecture", SILO_JSON_STRING, offsetof(struct platform_json, architecture), SILO_JSON_REQUIRED, NULL },
        { "variant", SILO_JSON_STRING, offsetof(struct platform_json, variant), 0, NULL },
        {}
};

static int descriptor_parse(json_t *v, const char *path, silo_descriptor *d, silo_error *err)
{
        struct descriptor_json dj = {};
        int r = silo_json_dispatch(v, path, descriptor_fields, &dj, err);
        _cleanup_free_ const char **urls = dj.urls;
        if (r < 0)
                return r;

        char p[SILO_JSON_PATH_MAX];
        r = silo_digest_check(dj.digest, silo_json_path_key(p, path, "digest"), err);
        if (r < 0)
                return r;
        if (dj.size < 0 || dj.size > MAX_BLOB_SIZE)
                return silo_error_msg(err, ERANGE, "%s: invalid size %lld", silo_json_path_key(p, path, "size"),
                                      (long long) dj.size);
        d->media_type = strdup(dj.media_type);
        if (!d->media_type)
                return silo_error_set(err, ENOMEM, "%s", path);
        memcpy(d->digest, dj.digest, SILO_DIGEST_SIZE);
        d->size = dj.size;

        if (dj.platform) {
                struct platform_json pj = {};
                r = silo_json_dispatch(dj.platform, silo_json_path_key(p, path, "platform"), platform_fields, &pj, err);
                if (r < 0)
                        return r;
                d->has_platform = true;
                d->platform.os = dup_or_null(pj.os);
                d->platform.architecture = dup_or_null(pj.architecture);
                d->platform.variant = dup_or_null(pj.variant);
        }
        if (dj.annotations) {
                json_t *a = json_object_get(dj.annotations, "org.opencontainers.image.ref.name");
                if (json_is_string(a))
                        d->ref_name = strdup(json_string_value(a));
                a = json_object_get(dj.annotations, "io.containerd.image.name");
                if (json_is_string(a))
                        d->image_name = strdup(json_string_value(a));
        }
        if (urls && urls[0]) {
                size_t n = 0;
                while (urls[n])
                        n++;
                d->urls = calloc(n + 1, sizeof(char *));
                if (!d->urls)
                        return silo_error_set(err, ENOMEM, "%s", path);
                for (size_t i = 0; i < n; i++)
                        d->urls[i] = strdup(urls[i]);
        }
        return 0;
}

json_t *silo_descriptor_to_json(const silo_descriptor *d)
{
        json_t *o = json_pack("{s:s, s:s, s:I}", "mediaType", d->media_type, "digest", d->digest,
                              "size", (json_int_t) d->size);
        if (!o)
                return NULL;
        if (d->has_platform) {
                json_t *p = json_pack("{s:s, s:s}", "os", d->platform.os ? d->platform.os : "",
                                      "architecture", d->platform.architecture ? d->platform.architecture : "");
                if (p && d->platform.variant)
                        json_object_set_new(p, "variant", json_string(d->platform.variant));
                json_object_set_new(o, "platform", p);
        }
        if (d->ref_name || d->image_name) {
                json_t *a = json_object();
                if (d->ref_name)
                        json_object_set_new(a, "org.opencontainers.image.ref.name", json_string(d->ref_name));
                if (d->image_name)
                        json_object_set_new(a, "io.containerd.image.name", json_string(d->image_name));
                json_object_set_new(o, "annotations", a);
        }
        return o;
}

/* ---- kind detection ---- */

static bool is_manifest_type(const char *mt)
{
        return !strcmp(mt, SILO_MT_OCI_MANIFEST) || !strcmp(mt, SILO_MT_DOCKER_MANIFEST);
}

static bool is_index_type(const char *mt)
{
        return !strcmp(mt, SILO_MT_OCI_INDEX) || !strcmp(mt, SILO_MT_DOCKER_LIST);
}

static int load_doc(const char *buf, size_t len, const char *what, json_t **ret, silo_error *err)
{
        if (len > SILO_MANIFEST_MAX)
                return silo_error_msg(err, EFBIG, "%s is larger than %u bytes", what, SILO_MANIFEST_MAX);
        int r = silo_json_load_buffer(buf, len, what, ret, err);
        if (r < 0)
                return r;
        if (!json_is_object(*ret)) {
                json_decref(*ret);
                *ret = NULL;
                return silo_error_msg(err, EINVAL, "%s: expected a JSON object", what);
        }
        return 0;
}

static int check_schema(json_t *root, const char *what, silo_error *err)
{
        json_t *v = json_object_get(root, "schemaVersion");
        if (!json_is_integer(v))
                return silo_error_msg(err, EINVAL, "%s: schemaVersion: expected an integer", what);
        if (json_integer_value(v) == 1)
                return silo_error_msg(err, EPROTONOSUPPORT, "%s: Docker schema 1 manifests are not supported", what);
        if (json_integer_value(v) != 2)
                return silo_error_msg(err, EPROTONOSUPPORT, "%s: unsupported schemaVersion %lld", what,
                                      (long long) json_integer_value(v));
        return 0;
}

static int kind_from_doc(json_t *root, const char *content_type, silo_manifest_kind *ret, silo_error *err)
{
        int r = check_schema(root, "manifest", err);
        if (r < 0)
                return r;
        json_t *mt = json_object_get(root, "mediaType");
        const char *type = json_is_string(mt) ? json_string_value(mt) : NULL;
        if (!type && content_type && *content_type && strcmp(content_type, "application/json") != 0 &&
            strcmp(content_type, "application/octet-stream") != 0)
                type = content_type;
        if (type) {
                if (is_manifest_type(type)) {
                        *ret = SILO_MANIFEST_IMAGE;
                        return 0;
                }
                if (is_index_type(type)) {
                        *ret = SILO_MANIFEST_INDEX;
                        return 0;
                }
                if (strstr(type, "manifest.v1"))
                        return silo_error_msg(err, EPROTONOSUPPORT, "Docker schema 1 manifests are not supported");
                return silo_error_msg(err, EPROTONOSUPPORT, "unsupported manifest media type '%.100s'", type);
        }
        /* OCI allows omitting mediaType; go by shape. */
        if (json_is_array(json_object_get(root, "manifests"))) {
                *ret = SILO_MANIFEST_INDEX;
                return 0;
        }
        if (json_is_object(json_object_get(root, "config"))) {
                *ret = SILO_MANIFEST_IMAGE;
                return 0;
        }
        return silo_error_msg(err, EPROTONOSUPPORT, "manifest has no mediaType and is neither an image nor an index");
}

int silo_manifest_kind_of(const char *buf, size_t len, const char *content_type, silo_manifest_kind *ret, silo_error *err)
{
        _cleanup_json_ json_t *root = NULL;
        int r = load_doc(buf, len, "manifest", &root, err);
        if (r < 0)
                return r;
        return kind_from_doc(root, content_type, ret, err);
}

/* ---- manifests ---- */

silo_manifest *silo_manifest_free(silo_manifest *m)
{
        if (!m)
                return NULL;
        free(m->media_type);
        descriptor_done(&m->config);
        for (size_t i = 0; i < m->n_layers; i++)
                descriptor_done(&m->layers[i]);
        free(m->layers);
        free(m);
        return NULL;
}

int silo_manifest_parse(const char *buf, size_t len, silo_manifest **ret, silo_error *err)
{
        _cleanup_json_ json_t *root = NULL;
        int r = load_doc(buf, len, "manifest", &root, err);
        if (r < 0)
                return r;
        silo_manifest_kind kind;
        r = kind_from_doc(root, NULL, &kind, err);
        if (r < 0)
                return r;
        if (kind != SILO_MANIFEST_IMAGE)
                return silo_error_msg(err, EINVAL, "manifest: expected an image manifest, got an index");

        _cleanup_manifest_ silo_manifest *m = calloc(1, sizeof(*m));
        if (!m)
                return silo_error_set(err, ENOMEM, "manifest");
        json_t *mt = json_object_get(root, "mediaType");
        m->media_type = strdup(json_is_string(mt) ? json_string_value(mt) : SILO_MT_OCI_MANIFEST);

        json_t *config = json_object_get(root, "config");
        if (!config)
                return silo_error_msg(err, EINVAL, "manifest: config: required field is missing");
        r = descriptor_parse(config, "config", &m->config, err);
        if (r < 0)
                return silo_error_prefix(err, "manifest");
        if (!silo_config_media_type_supported(m->config.media_type))
                return silo_error_msg(err, EPROTONOSUPPORT, "manifest: config: unsupported media type '%.100s' "
                                      "(not a container image)", m->config.media_type);
        if (m->config.size > SILO_CONFIG_MAX)
                return silo_error_msg(err, EFBIG, "manifest: config: size %lld is larger than %u bytes",
                                      (long long) m->config.size, SILO_CONFIG_MAX);

        json_t *layers = json_object_get(root, "layers");
        if (!json_is_array(layers))
                return silo_error_msg(err, EINVAL, "manifest: layers: expected an array");
        size_t n = json_array_size(layers);
        if (n > SILO_MAX_LAYERS)
                return silo_error_msg(err, E2BIG, "manifest: %zu layers, more than the limit of %d", n, SILO_MAX_LAYERS);
        m->layers = calloc(n ? n : 1, sizeof(silo_descriptor));
        if (!m->layers)
                return silo_error_set(err, ENOMEM, "manifest");
        for (size_t i = 0; i < n; i++) {
                char p[SILO_JSON_PATH_MAX];
                silo_json_path_index(p, "layers", i);
                m->n_layers = i + 1;
                r = descriptor_parse(json_array_get(layers, i), p, &m->layers[i], err);
                if (r < 0)
                        return silo_error_prefix(err, "manifest");
                silo_compression c;
                r = silo_layer_media_type_compression(m->layers[i].media_type, &c, err);
                if (r < 0)
                        return silo_error_prefix(err, "manifest: %s", p);
        }
        *ret = TAKE_PTR(m);
        return 0;
}

int silo_manifest_to_json(const silo_manifest *m, char **ret, size_t *ret_len, silo_error *err)
{
        _cleanup_json_ json_t *root = json_pack("{s:i, s:s}", "schemaVersion", 2, "mediaType", m->media_type);
        json_t *layers = json_array();
        json_t *config = silo_descriptor_to_json(&m->config);
        if (!root || !layers || !config) {
                json_decref(layers);
                json_decref(config);
                return silo_error_set(err, ENOMEM, "manifest");
        }
        json_object_set_new(root, "config", config);
        json_object_set_new(root, "layers", layers);
        for (size_t i = 0; i < m->n_layers; i++) {
                json_t *l = silo_descriptor_to_json(&m->layers[i]);
                if (!l || json_array_append_new(layers, l) < 0)
                        return silo_error_set(err, ENOMEM, "manifest");
        }
        char *s = json_dumps(root, JSON_COMPACT);
        if (!s)
                return silo_error_set(err, ENOMEM, "manifest");
        *ret = s;
        if (ret_len)
                *ret_len = strlen(s);
        return 0;
}

/* ---- indexes ---- */

silo_image_index *silo_image_index_free(silo_image_index *idx)
{
        if (!idx)
                return NULL;
        free(idx->media_type);
        for (size_t i = 0; i < idx->n_manifests; i++)
                descriptor_done(&idx->manifests[i]);
        free(idx->manifests);
        free(idx);
        return NULL;
}

int silo_image_index_parse(const char *buf, size_t len, silo_image_index **ret, silo_error *err)
{
        _cleanup_json_ json_t *root = NULL;
        int r = load_doc(buf, len, "index", &root, err);
        if (r < 0)
                return r;
        r = check_schema(root, "index", err);
        if (r < 0)
                return r;
        json_t *mt = json_object_get(root, "mediaType");
        if (json_is_string(mt) && !is_index_type(json_string_value(mt)))
                return silo_error_msg(err, EINVAL, "index: mediaType: '%.100s' is not an index", json_string_value(mt));

        _cleanup_image_index_ silo_image_index *idx = calloc(1, sizeof(*idx));
        if (!idx)
                return silo_error_set(err, ENOMEM, "index");
        idx->media_type = strdup(json_is_string(mt) ? json_string_value(mt) : SILO_MT_OCI_INDEX);
        json_t *manifests = json_object_get(root, "manifests");
        if (!json_is_array(manifests))
                return silo_error_msg(err, EINVAL, "index: manifests: expected an array");
        size_t n = json_array_size(manifests);
        if (n > MAX_INDEX_ENTRIES)
                return silo_error_msg(err, E2BIG, "index: %zu manifests, more than the limit of %d", n, MAX_INDEX_ENTRIES);
        idx->manifests = calloc(n ? n : 1, sizeof(silo_descriptor));
        if (!idx->manifests)
                return silo_error_set(err, ENOMEM, "index");
        for (size_t i = 0; i < n; i++) {
                char p[SILO_JSON_PATH_MAX];
                silo_json_path_index(p, "manifests", i);
                idx->n_manifests = i + 1;
                r = descriptor_parse(json_array_get(manifests, i), p, &idx->manifests[i], err);
                if (r < 0)
                        return silo_error_prefix(err, "index");
        }
        *ret = TAKE_PTR(idx);
        return 0;
}

/* ---- platforms ---- */

void silo_platform_done(silo_platform *p)
{
        free(p->os);
        free(p->architecture);
        free(p->variant);
        p->os = p->architecture = p->variant = NULL;
}

static const char *go_arch(const char *machine, const char **ret_variant)
{
        static const struct { const char *uname, *arch, *variant; } map[] = {
                { "x86_64", "amd64", NULL },
                { "aarch64", "arm64", "v8" },
                { "armv7l", "arm", "v7" },
                { "armv6l", "arm", "v6" },
                { "i686", "386", NULL },
                { "i386", "386", NULL },
                { "ppc64le", "ppc64le", NULL },
                { "s390x", "s390x", NULL },
                { "riscv64", "riscv64", NULL },
        };
        *ret_variant = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(map); i++)
                if (!strcmp(machine, map[i].uname)) {
                        *ret_variant = map[i].variant;
                        return map[i].arch;
                }
        return machine;
}

void silo_platform_host(silo_platform *ret)
{
        struct utsname u;
        const char *variant = NULL, *arch = "amd64";
        if (uname(&u) == 0)
                arch = go_arch(u.machine, &variant);
        ret->os = strdup("linux");
        ret->architecture = strdup(arch);
        ret->variant = NULL;
        (void) variant;         /* only match a variant when the user asks for one */
}

int silo_platform_parse(const char *s, silo_platform *ret, silo_error *err)
{
        memset(ret, 0, sizeof(*ret));
        if (!s || !*s) {
                silo_platform_host(ret);
                return 0;
        }
        _cleanup_free_ char *buf = strdup(s);
        if (!buf)
                return silo_error_set(err, ENOMEM, "platform");
        char *arch = strchr(buf, '/');
        if (!arch || arch == buf || !arch[1])
                return silo_error_msg(err, EINVAL, "invalid platform '%s' (expected os/arch[/variant])", s);
        *arch++ = '\0';
        char *variant = strchr(arch, '/');
        if (variant) {
                *variant++ = '\0';
                if (!*variant || strchr(variant, '/'))
                        return silo_error_msg(err, EINVAL, "invalid platform '%s' (expected os/arch[/variant])", s);
        }
        ret->os = strdup(buf);
        ret->architecture = strdup(arch);
        ret->variant = variant ? strdup(variant) : NULL;
        return 0;
}

int silo_image_index_select(const silo_image_index *idx, const silo_platform *want,
                            const silo_descriptor **ret, silo_error *err)
{
        const silo_descriptor *fallback = NULL;
        for (size_t i = 0; i < idx->n_manifests; i++) {
                const silo_descriptor *d = &idx->manifests[i];
                if (!is_manifest_type(d->media_type))
                        continue;       /* nested indexes, attestations, ... */
                if (!d->has_platform) {
                        /* OCI layouts often omit the platform for a single image. */
                        if (!fallback && idx->n_manifests == 1)
                                fallback = d;
                        continue;
                }
                if (!d->platform.os || !d->platform.architecture ||
                    strcmp(d->platform.os, want->os) != 0 || strcmp(d->platform.architecture, want->architecture) != 0)
                        continue;
                if (want->variant && d->platform.variant && strcmp(want->variant, d->platform.variant) != 0)
                        continue;
                if (want->variant && !d->platform.variant && strcmp(want->architecture, "arm") == 0)
                        continue;
                *ret = d;
                return 0;
        }
        if (fallback) {
                *ret = fallback;
                return 0;
        }
        return silo_error_msg(err, ENOENT, "no image for platform %s/%s%s%s in the manifest list (%zu entries)",
                              want->os, want->architecture, want->variant ? "/" : "",
                              want->variant ? want->variant : "", idx->n_manifests);
}

/* ---- image config ---- */

silo_image_config *silo_image_config_free(silo_image_config *c)
{
        if (!c)
                return NULL;
        free(c->diff_ids);
        free(c->entrypoint);
        free(c->cmd);
        free(c->env);
        json_decref(c->json);
        free(c);
        return NULL;
}

static const struct silo_json_field config_top_fields[] = {
        { "architecture", SILO_JSON_STRING, offsetof(silo_image_config, architecture), 0, NULL },
        { "os", SILO_JSON_STRING, offsetof(silo_image_config, os), 0, NULL },
        { "variant", SILO_JSON_STRING, offsetof(silo_image_config, variant), 0, NULL },
        { "created", SILO_JSON_STRING, offsetof(silo_image_config, created), SILO_JSON_NULLABLE, NULL },
        { "author", SILO_JSON_STRING, offsetof(silo_image_config, author), SILO_JSON_NULLABLE, NULL },
        { "history", SILO_JSON_ARRAY, offsetof(silo_image_config, history), SILO_JSON_NULLABLE, NULL },
        {}
};

static const struct silo_json_field config_inner_fields[] = {
        { "User", SILO_JSON_STRING, offsetof(silo_image_config, user), SILO_JSON_NULLABLE, NULL },
        { "WorkingDir", SILO_JSON_STRING, offsetof(silo_image_config, working_dir), SILO_JSON_NULLABLE, NULL },
        { "StopSignal", SILO_JSON_STRING, offsetof(silo_image_config, stop_signal), SILO_JSON_NULLABLE, NULL },
        { "Entrypoint", SILO_JSON_STRV, offsetof(silo_image_config, entrypoint), SILO_JSON_NULLABLE, NULL },
        { "Cmd", SILO_JSON_STRV, offsetof(silo_image_config, cmd), SILO_JSON_NULLABLE, NULL },
        { "Env", SILO_JSON_STRV, offsetof(silo_image_config, env), SILO_JSON_NULLABLE, NULL },
        { "Volumes", SILO_JSON_OBJECT, offsetof(silo_image_config, volumes), SILO_JSON_NULLABLE, NULL },
        { "ExposedPorts", SILO_JSON_OBJECT, offsetof(silo_image_config, exposed_ports), SILO_JSON_NULLABLE, NULL },
        { "Labels", SILO_JSON_OBJECT, offsetof(silo_image_config, labels), SILO_JSON_NULLABLE, NULL },
        {}
};

int silo_image_config_parse(const char *buf, size_t len, silo_image_config **ret, silo_error *err)
{
        if (len > SILO_CONFIG_MAX)
                return silo_error_msg(err, EFBIG, "image config is larger than %u bytes", SILO_CONFIG_MAX);
        _cleanup_image_config_ silo_image_config *c = calloc(1, sizeof(*c));
        if (!c)
                return silo_error_set(err, ENOMEM, "image config");
        int r = silo_json_load_buffer(buf, len, "image config", &c->json, err);
        if (r < 0)
                return r;
        r = silo_json_dispatch(c->json, "", config_top_fields, c, err);
        if (r < 0)
                return silo_error_prefix(err, "image config");

        json_t *inner = json_object_get(c->json, "config");
        if (inner && !json_is_null(inner)) {
                r = silo_json_dispatch(inner, "config", config_inner_fields, c, err);
                if (r < 0)
                        return silo_error_prefix(err, "image config");
        }

        json_t *rootfs = json_object_get(c->json, "rootfs");
        if (!json_is_object(rootfs))
                return silo_error_msg(err, EINVAL, "image config: rootfs: expected an object");
        json_t *type = json_object_get(rootfs, "type");
        if (!json_is_string(type) || strcmp(json_string_value(type), "layers") != 0)
                return silo_error_msg(err, EINVAL, "image config: rootfs.type: expected \"layers\"");
        r = silo_json_strv(json_object_get(rootfs, "diff_ids"), "rootfs.diff_ids", &c->diff_ids, err);
        if (r < 0)
                return silo_error_prefix(err, "image config");
        while (c->diff_ids && c->diff_ids[c->n_diff_ids])
                c->n_diff_ids++;
        if (c->n_diff_ids > MAX_DIFF_IDS)
                return silo_error_msg(err, E2BIG, "image config: %zu layers, more than the limit of %d",
                                      c->n_diff_ids, MAX_DIFF_IDS);
        for (size_t i = 0; i < c->n_diff_ids; i++) {
                char p[SILO_JSON_PATH_MAX];
                silo_json_path_index(p, "rootfs.diff_ids", i);
                r = silo_digest_check(c->diff_ids[i], p, err);
                if (r < 0)
                        return silo_error_prefix(err, "image config");
        }
        *ret = TAKE_PTR(c);
        return 0;
}
