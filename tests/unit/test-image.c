/* Image formats: references, manifests, indexes and platform selection,
 * image configs, and the image config -> runtime spec conversion. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "image/bundle.h"
#include "image/manifest.h"
#include "image/reference.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static void check_ref(const char *in, const char *name)
{
        silo_reference *r = NULL;
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(silo_reference_parse(in, &r, &err), 0);
        char *n = silo_reference_name(r);
        assert_string_equal(n, name);
        free(n);
        silo_reference_free(r);
}

static void check_bad_ref(const char *in, const char *msg)
{
        silo_reference *r = NULL;
        silo_error err = SILO_ERROR_INIT;
        assert_true(silo_reference_parse(in, &r, &err) < 0);
        assert_non_null(strstr(err.message, msg));
        assert_null(r);
}

static void test_references(void **state)
{
        (void) state;
        check_ref("busybox", "docker.io/library/busybox:latest");
        check_ref("busybox:1.36", "docker.io/library/busybox:1.36");
        check_ref("user/app", "docker.io/user/app:latest");
        check_ref("localhost/app", "localhost/app:latest");
        check_ref("localhost:5000/a/b/c:v1.2-rc_3", "localhost:5000/a/b/c:v1.2-rc_3");
        check_ref("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest");
        check_ref("quay.io/org/img@" D1, "quay.io/org/img@" D1);
        check_ref("a__b/c-d.e:t", "docker.io/a__b/c-d.e:t");

        silo_reference *r = NULL;
        assert_int_equal(silo_reference_parse("reg.io:443/ns/img:tag@" D2, &r, NULL), 0);
        assert_string_equal(r->domain, "reg.io:443");
        assert_string_equal(r->path, "ns/img");
        assert_string_equal(r->tag, "tag");
        assert_string_equal(r->digest, D2);
        char *repo = silo_reference_repository(r);
        assert_string_equal(repo, "reg.io:443/ns/img");
        free(repo);
        silo_reference_free(r);

        check_bad_ref("", "empty image reference");
        check_bad_ref("Upper/case", "invalid repository name");
        check_bad_ref("a//b", "invalid repository name");
        check_bad_ref("a/-b", "invalid repository name");
        check_bad_ref("img:", "invalid tag");
        check_bad_ref("img:-x", "invalid tag");
        check_bad_ref("img@sha256:abc", "malformed digest");
        check_bad_ref("img@sha512:abc", "unsupported digest algorithm");
        assert_false(silo_reference_valid("../etc"));
}

static const char *manifest_json =
        "{\"schemaVersion\":2,\"mediaType\":\"" SILO_MT_OCI_MANIFEST "\","
        "\"config\":{\"mediaType\":\"" SILO_MT_OCI_CONFIG "\",\"digest\":\"" D1 "\",\"size\":10},"
        "\"layers\":[{\"mediaType\":\"" SILO_MT_OCI_LAYER_GZIP "\",\"digest\":\"" D2 "\",\"size\":20,\"x-unknown\":1},"
        "{\"mediaType\":\"" SILO_MT_DOCKER_LAYER_GZIP "\",\"digest\":\"" D3 "\",\"size\":30}]}";

static void test_manifest(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        silo_manifest *m = NULL;
        assert_int_equal(silo_manifest_parse(manifest_json, strlen(manifest_json), &m, &err), 0);
        assert_int_equal(m->n_layers, 2);
        assert_string_equal(m->config.digest, D1);
        assert_int_equal(m->layers[1].size, 30);

        /* Round trip. */
        char *text = NULL;
        size_t len;
        assert_int_equal(silo_manifest_to_json(m, &text, &len, &err), 0);
        silo_manifest *m2 = NULL;
        assert_int_equal(silo_manifest_parse(text, len, &m2, &err), 0);
        assert_string_equal(m2->layers[0].digest, D2);
        free(text);
        silo_manifest_free(m2);
        silo_manifest_free(m);

        silo_manifest_kind kind;
        assert_int_equal(silo_manifest_kind_of(manifest_json, strlen(manifest_json), NULL, &kind, &err), 0);
        assert_int_equal(kind, SILO_MANIFEST_IMAGE);

        struct { const char *doc, *msg; } bad[] = {
                { "{\"schemaVersion\":1,\"fsLayers\":[]}", "schema 1" },
                { "{\"schemaVersion\":2,\"mediaType\":\"application/x-evil\"}", "unsupported manifest media type" },
                { "{\"schemaVersion\":\"2\"}", "schemaVersion: expected an integer" },
                { "[1]", "expected a JSON object" },
                { "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" SILO_MT_OCI_CONFIG "\",\"digest\":\"sha256:12\",\"size\":1},\"layers\":[]}",
                  "config.digest: malformed digest" },
                { "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" SILO_MT_OCI_CONFIG "\",\"digest\":\"" D1 "\",\"size\":-1},\"layers\":[]}",
                  "config.size: invalid size" },
                { "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" SILO_MT_OCI_CONFIG "\",\"digest\":\"" D1 "\",\"size\":1},"
                  "\"layers\":[{\"mediaType\":\"text/plain\",\"digest\":\"" D2 "\",\"size\":1}]}",
                  "layers[0]: unsupported layer media type 'text/plain'" },
                { "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.cncf.helm.config.v1+json\",\"digest\":\"" D1 "\",\"size\":1},\"layers\":[]}",
                  "not a container image" },
                { "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" SILO_MT_OCI_CONFIG "\",\"digest\":\"" D1 "\",\"size\":1},\"layers\":{}}",
                  "layers: expected an array" },
                { "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" SILO_MT_OCI_CONFIG "\",\"digest\":\"" D1 "\"},\"layers\":[]}",
                  "config.size: required field is missing" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                silo_error_clear(&err);
                assert_true(silo_manifest_parse(bad[i].doc, strlen(bad[i].doc), &m, &err) < 0);
                if (!strstr(err.message, bad[i].msg))
                        fail_msg("case %zu: '%s' does not contain '%s'", i, err.message, bad[i].msg);
        }

        /* Huge documents are refused before parsing. */
        size_t huge = SILO_MANIFEST_MAX + 10;
        char *big = malloc(huge);
        memset(big, ' ', huge);
        big[0] = '{';
        big[huge - 1] = '}';
        assert_int_equal(silo_manifest_parse(big, huge, &m, &err), -EFBIG);
        free(big);
}

static const char *index_json =
        "{\"schemaVersion\":2,\"mediaType\":\"" SILO_MT_DOCKER_LIST "\",\"manifests\":["
        "{\"mediaType\":\"application/vnd.in-toto+json\",\"digest\":\"" D3 "\",\"size\":1,"
        "  \"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
        "{\"mediaType\":\"" SILO_MT_DOCKER_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,"
        "  \"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}},"
        "{\"mediaType\":\"" SILO_MT_DOCKER_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":1,"
        "  \"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";

static void test_index_select(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        silo_image_index *idx = NULL;
        assert_int_equal(silo_image_index_parse(index_json, strlen(index_json), &idx, &err), 0);
        assert_int_equal(idx->n_manifests, 3);

        const silo_descriptor *d;
        silo_platform p;
        assert_int_equal(silo_platform_parse("linux/amd64", &p, &err), 0);
        assert_int_equal(silo_image_index_select(idx, &p, &d, &err), 0);
        assert_string_equal(d->digest, D2);    /* the attestation entry is skipped */
        silo_platform_done(&p);

        assert_int_equal(silo_platform_parse("linux/arm/v7", &p, &err), 0);
        assert_int_equal(silo_image_index_select(idx, &p, &d, &err), 0);
        assert_string_equal(d->digest, D1);
        silo_platform_done(&p);

        assert_int_equal(silo_platform_parse("linux/arm/v6", &p, &err), 0);
        assert_int_equal(silo_image_index_select(idx, &p, &d, &err), -ENOENT);
        assert_non_null(strstr(err.message, "no image for platform linux/arm/v6"));
        silo_platform_done(&p);

        assert_true(silo_platform_parse("linux", &p, &err) < 0);
        assert_true(silo_platform_parse("linux/", &p, &err) < 0);
        assert_true(silo_platform_parse("a/b/c/d", &p, &err) < 0);

        silo_manifest_kind kind;
        assert_int_equal(silo_manifest_kind_of(index_json, strlen(index_json), NULL, &kind, &err), 0);
        assert_int_equal(kind, SILO_MANIFEST_INDEX);
        /* No mediaType: the shape decides. */
        const char *bare = "{\"schemaVersion\":2,\"manifests\":[]}";
        assert_int_equal(silo_manifest_kind_of(bare, strlen(bare), NULL, &kind, &err), 0);
        assert_int_equal(kind, SILO_MANIFEST_INDEX);
        silo_image_index_free(idx);
}

static const char *config_json =
        "{\"architecture\":\"amd64\",\"os\":\"linux\","
        "\"config\":{\"User\":\"alice:wheel\",\"Env\":[\"A=1\",\"PATH=/bin\"],\"Entrypoint\":[\"/bin/sh\",\"-c\"],"
        "\"Cmd\":[\"echo hi\"],\"WorkingDir\":\"/srv\",\"Volumes\":{\"/data\":{}},"
        "\"ExposedPorts\":{\"80/tcp\":{}},\"Labels\":{\"k\":\"v\"},\"StopSignal\":\"SIGINT\"},"
        "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\",\"" D2 "\"]}}";

static void test_config(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        silo_image_config *c = NULL;
        assert_int_equal(silo_image_config_parse(config_json, strlen(config_json), &c, &err), 0);
        assert_int_equal(c->n_diff_ids, 2);
        assert_string_equal(c->user, "alice:wheel");
        assert_string_equal(c->entrypoint[0], "/bin/sh");
        assert_string_equal(c->cmd[0], "echo hi");
        assert_string_equal(c->working_dir, "/srv");
        silo_image_config_free(c);

        struct { const char *doc, *msg; } bad[] = {
                { "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"nope\"]}}", "rootfs.diff_ids[0]: malformed digest" },
                { "{\"rootfs\":{\"type\":\"other\",\"diff_ids\":[]}}", "rootfs.type" },
                { "{}", "rootfs: expected an object" },
                { "{\"config\":{\"Cmd\":\"ls\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", "config.Cmd: expected an array" },
                { "{\"config\":{\"Env\":[1]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", "config.Env[0]: expected a string" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                silo_error_clear(&err);
                assert_true(silo_image_config_parse(bad[i].doc, strlen(bad[i].doc), &c, &err) < 0);
                if (!strstr(err.message, bad[i].msg))
                        fail_msg("case %zu: '%s' does not contain '%s'", i, err.message, bad[i].msg);
        }
}

static int fake_volume(void *userdata, const char *path, char **ret, silo_error *err)
{
        (void) userdata;
        (void) err;
        return asprintf(ret, "/vol%s", path) < 0 ? -ENOMEM : 0;
}

static void test_bundle_spec(void **state)
{
        (void) state;
        char dir[] = "/tmp/silo-test-image-XXXXXX";
        assert_non_null(mkdtemp(dir));
        int root = open(dir, O_RDONLY | O_DIRECTORY);
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(silo_mkdir_p_at(root, "etc", 0755, &err), 0);
        /* /etc/passwd is an absolute symlink: it must resolve inside the root
         * (the host has no /etc/silo-test-passwd). */
        const char *passwd = "root:x:0:0::/:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        const char *group = "root:x:0:\nwheel:x:10:alice\nusers:x:100:bob,alice\nalice:x:1000:\n";
        assert_int_equal(symlinkat("/etc/silo-test-passwd", root, "etc/passwd"), 0);
        int fd = openat(root, "etc/silo-test-passwd", O_CREAT | O_WRONLY, 0644);
        assert_int_equal(write(fd, passwd, strlen(passwd)), (ssize_t) strlen(passwd));
        close(fd);
        fd = openat(root, "etc/group", O_CREAT | O_WRONLY, 0644);
        assert_int_equal(write(fd, group, strlen(group)), (ssize_t) strlen(group));
        close(fd);

        silo_image_config *c = NULL;
        assert_int_equal(silo_image_config_parse(config_json, strlen(config_json), &c, &err), 0);
        silo_bundle_options o = { .id = "c1" };
        json_t *spec = NULL;
        assert_int_equal(silo_bundle_spec(c, root, NULL, &o, fake_volume, NULL, &spec, &err), 0);
        json_t *proc = json_object_get(spec, "process");
        json_t *args = json_object_get(proc, "args");
        assert_int_equal(json_array_size(args), 3);
        assert_string_equal(json_string_value(json_array_get(args, 2)), "echo hi");
        json_t *user = json_object_get(proc, "user");
        assert_int_equal(json_integer_value(json_object_get(user, "uid")), 1000);
        assert_int_equal(json_integer_value(json_object_get(user, "gid")), 10);
        assert_null(json_object_get(user, "additionalGids"));  /* a group was forced */
        assert_string_equal(json_string_value(json_object_get(proc, "cwd")), "/srv");
        json_t *ann = json_object_get(spec, "annotations");
        assert_string_equal(json_string_value(json_object_get(ann, "org.opencontainers.image.stopSignal")), "SIGINT");
        assert_string_equal(json_string_value(json_object_get(ann, "org.opencontainers.image.exposedPorts")), "80/tcp");
        assert_string_equal(json_string_value(json_object_get(ann, "k")), "v");
        bool found = false;
        json_t *m;
        size_t i;
        json_array_foreach(json_object_get(spec, "mounts"), i, m)
                if (!strcmp(json_string_value(json_object_get(m, "destination")), "/data")) {
                        assert_string_equal(json_string_value(json_object_get(m, "source")), "/vol/data");
                        found = true;
                }
        assert_true(found);
        json_decref(spec);

        /* Overrides: args replace Cmd, env overrides, user by name gets supplementary groups. */
        const char *args2[] = { "ls", NULL };
        const char *env2[] = { "A=2", "NEW=x", NULL };
        o = (silo_bundle_options) { .id = "c1", .args = args2, .env = env2, .user = "alice", .terminal = true };
        assert_int_equal(silo_bundle_spec(c, root, NULL, &o, NULL, NULL, &spec, &err), 0);
        proc = json_object_get(spec, "process");
        args = json_object_get(proc, "args");
        assert_int_equal(json_array_size(args), 3);
        assert_string_equal(json_string_value(json_array_get(args, 2)), "ls");
        json_t *env = json_object_get(proc, "env");
        char *text = json_dumps(env, JSON_COMPACT);
        assert_string_equal(text, "[\"A=2\",\"PATH=/bin\",\"TERM=xterm\",\"NEW=x\"]");
        free(text);
        user = json_object_get(proc, "user");
        assert_int_equal(json_integer_value(json_object_get(user, "gid")), 1000);
        text = json_dumps(json_object_get(user, "additionalGids"), JSON_COMPACT);
        assert_string_equal(text, "[10,100]");
        free(text);
        json_decref(spec);

        /* Errors. */
        o = (silo_bundle_options) { .id = "c1", .user = "mallory" };
        assert_true(silo_bundle_spec(c, root, NULL, &o, NULL, NULL, &spec, &err) < 0);
        assert_non_null(strstr(err.message, "'mallory' not found"));
        o = (silo_bundle_options) { .id = "c1", .user = "1000:nogroup" };
        assert_true(silo_bundle_spec(c, root, NULL, &o, NULL, NULL, &spec, &err) < 0);
        assert_non_null(strstr(err.message, "group 'nogroup' not found"));
        const char *badenv[] = { "NOEQUALS", NULL };
        o = (silo_bundle_options) { .id = "c1", .env = badenv };
        assert_true(silo_bundle_spec(c, root, NULL, &o, NULL, NULL, &spec, &err) < 0);
        assert_non_null(strstr(err.message, "not NAME=VALUE"));
        silo_image_config_free(c);

        const char *vols[] = { "/a/../b", "relative", "/", "//" };
        const char *msgs[] = { "contains '..'", "not an absolute path", "root directory", "root directory" };
        for (size_t k = 0; k < ARRAY_SIZE(vols); k++) {
                char doc[512];
                snprintf(doc, sizeof(doc), "{\"config\":{\"Cmd\":[\"x\"],\"Volumes\":{\"%s\":{}}},"
                         "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}", vols[k]);
                assert_int_equal(silo_image_config_parse(doc, strlen(doc), &c, &err), 0);
                o = (silo_bundle_options) { .id = "c1" };
                silo_error_clear(&err);
                assert_true(silo_bundle_spec(c, -1, NULL, &o, NULL, NULL, &spec, &err) < 0);
                if (!strstr(err.message, msgs[k]))
                        fail_msg("volume '%s': '%s'", vols[k], err.message);
                silo_image_config_free(c);
        }

        /* Numeric users need no /etc/passwd; no command at all is an error. */
        const char *nocmd = "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
        assert_int_equal(silo_image_config_parse(nocmd, strlen(nocmd), &c, &err), 0);
        o = (silo_bundle_options) { .id = "c1", .user = "42:43", .args = args2 };
        assert_int_equal(silo_bundle_spec(c, -1, NULL, &o, NULL, NULL, &spec, &err), 0);
        user = json_object_get(json_object_get(spec, "process"), "user");
        assert_int_equal(json_integer_value(json_object_get(user, "uid")), 42);
        assert_int_equal(json_integer_value(json_object_get(user, "gid")), 43);
        json_decref(spec);
        o = (silo_bundle_options) { .id = "c1" };
        assert_true(silo_bundle_spec(c, -1, NULL, &o, NULL, NULL, &spec, &err) < 0);
        assert_non_null(strstr(err.message, "no Entrypoint or Cmd"));
        silo_image_config_free(c);

        close(root);
        silo_rm_rf_at(AT_FDCWD, dir, NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_references),
                cmocka_unit_test(test_manifest),
                cmocka_unit_test(test_index_select),
                cmocka_unit_test(test_config),
                cmocka_unit_test(test_bundle_spec),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
