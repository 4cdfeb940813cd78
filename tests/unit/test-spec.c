/* The config.json parser: good documents decode to the expected model, and
 * every kind of bad input gets the exact one-line message naming the field. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "spec/spec.h"
#include "util/cleanup.h"

static void spec_freep(struct silo_spec **s) { silo_spec_free(*s); }

static struct silo_spec *parse_ok(const char *text)
{
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *j = NULL;
        if (silo_json_load_buffer(text, strlen(text), "config.json", &j, &err) < 0)
                fail_msg("unexpected error: %s", err.message);
        struct silo_spec *s = NULL;
        int r = silo_spec_from_json(j, &s, &err);
        if (r < 0)
                fail_msg("unexpected error: %s", err.message);
        return s;
}

static void expect_error(const char *text, const char *message)
{
        json_error_t jerr;
        _cleanup_json_ json_t *j = json_loads(text, 0, &jerr);
        assert_non_null(j);
        silo_error err = SILO_ERROR_INIT;
        struct silo_spec *s = NULL;
        assert_true(silo_spec_from_json(j, &s, &err) < 0);
        assert_null(s);
        assert_string_equal(err.message, message);
}

#define PROCESS "\"process\": {\"cwd\": \"/\", \"args\": [\"sh\"]}"

static void test_default_spec_parses(void **state)
{
        (void) state;
        _cleanup_json_ json_t *def = silo_spec_default(false);
        assert_non_null(def);
        silo_error err = SILO_ERROR_INIT;
        _cleanup_(spec_freep) struct silo_spec *s = NULL;
        assert_int_equal(silo_spec_from_json(def, &s, &err), 0);
        assert_string_equal(s->root_path, "rootfs");
        assert_true(s->root_readonly);
        assert_true(s->process.terminal);
        assert_string_equal(s->process.args[0], "sh");
        assert_int_equal(s->n_mounts, 7);
        assert_true(s->ns[SILO_NS_PID].wanted);
        assert_true(s->ns[SILO_NS_MOUNT].wanted);
        assert_false(s->ns[SILO_NS_USER].wanted);
        assert_true(s->process.no_new_privileges);
        assert_int_equal(s->process.n_rlimits, 1);
        assert_int_equal(s->process.rlimits[0].resource, RLIMIT_NOFILE);
        assert_string_equal(s->masked_paths[0], "/proc/acpi");
        assert_true(s->has_resources);

        _cleanup_json_ json_t *rootless = silo_spec_default(true);
        _cleanup_(spec_freep) struct silo_spec *r = NULL;
        assert_int_equal(silo_spec_from_json(rootless, &r, &err), 0);
        assert_true(r->ns[SILO_NS_USER].wanted);
        assert_int_equal(r->n_uid_mappings, 1);
}

static void test_full_document(void **state)
{
        (void) state;
        _cleanup_(spec_freep) struct silo_spec *s = parse_ok(
                "{\"ociVersion\": \"1.0.2\", \"hostname\": \"h\", \"domainname\": \"d\","
                " \"root\": {\"path\": \"/abs/root\"},"
                " \"process\": {\"terminal\": false, \"cwd\": \"/tmp\", \"args\": [\"a\", \"b\"], \"env\": [\"X=1\"],"
                "   \"consoleSize\": {\"height\": 24, \"width\": 80},"
                "   \"user\": {\"uid\": 1000, \"gid\": 100, \"umask\": 18, \"additionalGids\": [5, 6]},"
                "   \"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"soft\": 0, \"hard\": 18446744073709551615}],"
                "   \"oomScoreAdj\": 100, \"capabilities\": {\"bounding\": [\"CAP_KILL\"]}},"
                " \"mounts\": [{\"destination\": \"/data\", \"source\": \"/srv\", \"options\": [\"rbind\", \"ro\", \"rprivate\", \"nosuid\"]},"
                "              {\"destination\": \"/tmp\", \"type\": \"tmpfs\", \"options\": [\"size=1m\", \"mode=1777\", \"noexec\"]}],"
                " \"hooks\": {\"prestart\": [{\"path\": \"/bin/true\", \"args\": [\"true\"], \"timeout\": 5}]},"
                " \"annotations\": {\"k\": \"v\"},"
                " \"linux\": {\"namespaces\": [{\"type\": \"mount\"}, {\"type\": \"uts\"}, {\"type\": \"network\", \"path\": \"/run/netns/x\"},"
                "                              {\"type\": \"user\"}, {\"type\": \"time\"}],"
                "   \"uidMappings\": [{\"containerID\": 0, \"hostID\": 1000, \"size\": 1}],"
                "   \"gidMappings\": [{\"containerID\": 0, \"hostID\": 1000, \"size\": 1}],"
                "   \"timeOffsets\": {\"monotonic\": {\"secs\": 10, \"nanosecs\": 5}},"
                "   \"devices\": [{\"path\": \"/dev/fuse\", \"type\": \"c\", \"major\": 10, \"minor\": 229, \"fileMode\": 438}],"
                "   \"sysctl\": {\"net.ipv4.ip_forward\": \"1\"},"
                "   \"rootfsPropagation\": \"rshared\", \"cgroupsPath\": \"/a/b\","
                "   \"maskedPaths\": [\"/proc/kcore\"], \"readonlyPaths\": [\"/proc/sys\"]}}");
        assert_string_equal(s->hostname, "h");
        assert_string_equal(s->process.cwd, "/tmp");
        assert_int_equal(s->process.user.uid, 1000);
        assert_int_equal(s->process.user.umask.value, 18);
        assert_int_equal(s->process.user.n_additional_gids, 2);
        assert_int_equal(s->process.user.additional_gids[1], 6);
        assert_true(s->process.rlimits[0].hard == UINT64_MAX);
        assert_int_equal(s->process.oom_score_adj.value, 100);
        assert_int_equal(s->process.console_height.value, 24);
        assert_true(s->process.caps.set);
        assert_int_equal(s->n_mounts, 2);
        assert_true(s->mounts[0].bind && s->mounts[0].recursive);
        assert_true(s->mounts[0].flags & MS_RDONLY);
        assert_true(s->mounts[0].flags & MS_NOSUID);
        assert_int_equal(s->mounts[0].propagation, MS_PRIVATE | MS_REC);
        assert_string_equal(s->mounts[1].data, "size=1m,mode=1777");
        assert_true(s->mounts[1].flags & MS_NOEXEC);
        assert_int_equal(s->hooks.n[SILO_HOOK_PRESTART], 1);
        assert_int_equal(s->hooks.list[SILO_HOOK_PRESTART][0].timeout.value, 5);
        assert_string_equal(s->ns[SILO_NS_NET].path, "/run/netns/x");
        assert_true(s->time_monotonic.set);
        assert_int_equal(s->time_monotonic.secs, 10);
        assert_int_equal(s->devices[0].type, 'c');
        assert_int_equal(s->devices[0].file_mode.value, 438);
        assert_int_equal(s->n_sysctl, 1);
        assert_int_equal(s->rootfs_propagation, MS_SHARED | MS_REC);
        assert_string_equal(s->cgroups_path, "/a/b");
}

static void test_bad_documents(void **state)
{
        (void) state;
        expect_error("{}", "ociVersion: required field is missing");
        expect_error("{\"ociVersion\": 1}", "ociVersion: expected a string, got integer");
        expect_error("{\"ociVersion\": \"2.0.0\"}", "ociVersion: unsupported version \"2.0.0\" (want 1.x)");
        expect_error("{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [\"a\"]}}", "process.cwd: required field is missing");
        expect_error("{\"ociVersion\": \"1.0.0\", \"process\": {\"cwd\": \"rel\"}}",
                     "process.cwd: \"rel\" is not an absolute path");
        expect_error("{\"ociVersion\": \"1.0.0\", \"process\": {\"cwd\": \"/\", \"args\": [\"a\", 3]}}",
                     "process.args[1]: expected a string, got integer");
        expect_error("{\"ociVersion\": \"1.0.0\", \"process\": {\"cwd\": \"/\", \"user\": {\"uid\": -1}}}",
                     "process.user.uid: must not be negative (-1)");
        expect_error("{\"ociVersion\": \"1.0.0\", \"process\": {\"cwd\": \"/\", \"rlimits\": [{\"type\": \"RLIMIT_X\", \"soft\": 1, \"hard\": 1}]}}",
                     "process.rlimits[0].type: unknown rlimit \"RLIMIT_X\"");
        expect_error("{\"ociVersion\": \"1.0.0\", \"process\": {\"cwd\": \"/\", \"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"soft\": 2, \"hard\": 1}]}}",
                     "process.rlimits[0]: RLIMIT_NOFILE soft limit 2 exceeds hard limit 1");
        expect_error("{\"ociVersion\": \"1.0.0\", \"process\": {\"cwd\": \"/\", \"oomScoreAdj\": 5000}}",
                     "process.oomScoreAdj: 5000 is outside -1000..1000");
        expect_error("{\"ociVersion\": \"1.0.0\", \"linux\": {\"namespaces\": [{\"type\": \"bogus\"}]}}",
                     "linux.namespaces[0].type: unknown namespace type \"bogus\"");
        expect_error("{\"ociVersion\": \"1.0.0\", \"linux\": {\"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"pid\"}]}}",
                     "linux.namespaces[1].type: namespace \"pid\" listed twice");
        expect_error("{\"ociVersion\": \"1.0.0\", \"linux\": {\"namespaces\": [{\"type\": \"user\"}]}}",
                     "linux.uidMappings/gidMappings: a new user namespace needs both mappings");
        expect_error("{\"ociVersion\": \"1.0.0\", \"mounts\": [{\"destination\": \"x\", \"type\": \"tmpfs\"}]}",
                     "mounts[0].destination: \"x\" is not an absolute path");
        expect_error("{\"ociVersion\": \"1.0.0\", \"mounts\": [{\"destination\": \"/x\", \"options\": [\"bind\"]}]}",
                     "mounts[0].source: a bind mount needs a source");
        expect_error("{\"ociVersion\": \"1.0.0\", \"mounts\": [{\"destination\": \"/x\"}]}",
                     "mounts[0].type: required for a non-bind mount");
        expect_error("{\"ociVersion\": \"1.0.0\", \"mounts\": [{\"destination\": \"/x\", \"type\": \"tmpfs\", \"options\": [\"a,b\"]}]}",
                     "mounts[0].options[0]: option \"a,b\" contains a comma");
        expect_error("{\"ociVersion\": \"1.0.0\", \"hooks\": {\"poststop\": [{\"path\": \"rel\"}]}}",
                     "hooks.poststop[0].path: \"rel\" is not an absolute path");
        expect_error("{\"ociVersion\": \"1.0.0\", \"hooks\": {\"prestart\": [{\"path\": \"/x\", \"timeout\": 0}]}}",
                     "hooks.prestart[0].timeout: must be greater than zero");
        expect_error("{\"ociVersion\": \"1.0.0\", \"linux\": {\"devices\": [{\"path\": \"/dev/x\", \"type\": \"q\"}]}}",
                     "linux.devices[0].type: unknown device type \"q\" (want c, b, u or p)");
        expect_error("{\"ociVersion\": \"1.0.0\", \"linux\": {\"sysctl\": {\"../x\": \"1\"}}}",
                     "linux.sysctl: invalid sysctl name \"../x\"");
        expect_error("{\"ociVersion\": \"1.0.0\", \"linux\": {\"rootfsPropagation\": \"sideways\"}}",
                     "linux.rootfsPropagation: unknown propagation \"sideways\"");
        expect_error("{\"ociVersion\": \"1.0.0\", \"linux\": {\"timeOffsets\": {\"monotonic\": {\"secs\": 1}}}}",
                     "linux.timeOffsets: needs a new time namespace");
        expect_error("{\"ociVersion\": \"1.0.0\", \"hostname\": \"x\"}",
                     "hostname: setting it needs a new uts namespace");
        expect_error("{\"ociVersion\": \"1.0.0\", \"annotations\": {\"a\": 1}}",
                     "annotations.a: expected a string, got integer");
        expect_error("{\"ociVersion\": \"1.0.0\", \"linux\": []}", "linux: expected an object, got array");
}

static void test_unknown_fields_ignored(void **state)
{
        (void) state;
        /* The runtime spec requires unknown properties to be ignored. */
        _cleanup_(spec_freep) struct silo_spec *s = parse_ok(
                "{\"ociVersion\": \"1.0.0\", \"future\": {\"x\": 1}, " PROCESS ", \"linux\": {\"intelRdt\": {}}}");
        assert_true(s->has_process);
}

static void test_unknown_fields_listed(void **state)
{
        (void) state;
        json_error_t jerr;
        _cleanup_json_ json_t *j = json_loads(
                "{\"ociVersion\": \"1.0.0\", \"hostnme\": \"x\", \"process\": {\"cwd\": \"/\", \"usr\": {},"
                " \"user\": {\"uid\": 0, \"gids\": []}}, \"mounts\": [{\"destination\": \"/x\", \"optons\": []}],"
                " \"linux\": {\"namespaces\": [], \"seccompp\": {}}}", 0, &jerr);
        assert_non_null(j);
        _cleanup_json_ json_t *unknown = silo_spec_unknown_fields(j);
        _cleanup_free_ char *s = json_dumps(unknown, JSON_COMPACT);
        assert_string_equal(s, "[\"hostnme\",\"process.usr\",\"process.user.gids\",\"linux.seccompp\",\"mounts[0].optons\"]");

        /* The configs runc spec, podman and containerd write have none. */
        _cleanup_json_ json_t *def = silo_spec_default(true);
        _cleanup_json_ json_t *none = silo_spec_unknown_fields(def);
        assert_int_equal(json_array_size(none), 0);
}

static void test_mount_options(void **state)
{
        (void) state;
        struct silo_mount m = { 0 };
        const char *opts[] = { "nosuid", "nodev", "ro", "rw", "relatime", "strictatime", "rslave", "size=1k", "tmpcopyup", NULL };
        assert_int_equal(silo_mount_options_parse(opts, "o", &m, NULL), 0);
        assert_int_equal(m.flags, MS_NOSUID | MS_NODEV | MS_RELATIME | MS_STRICTATIME);
        assert_int_equal(m.propagation, MS_SLAVE | MS_REC);
        assert_string_equal(m.data, "size=1k");
        free(m.data);

        struct silo_mount r = { 0 };
        const char *ropts[] = { "rbind", "rro", NULL };
        assert_int_equal(silo_mount_options_parse(ropts, "o", &r, NULL), 0);
        assert_true(r.bind && r.recursive && r.recursive_ro);
        assert_true(r.flags & MS_RDONLY);
}

static void test_process_alone(void **state)
{
        (void) state;
        json_error_t jerr;
        _cleanup_json_ json_t *j = json_loads("{\"cwd\": \"/\", \"args\": [\"ls\", \"-l\"], \"terminal\": true}", 0, &jerr);
        struct silo_process p;
        assert_int_equal(silo_process_parse(j, "process", &p, NULL), 0);
        assert_true(p.terminal);
        assert_string_equal(p.args[1], "-l");
        assert_null(p.args[2]);
        silo_process_done(&p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_default_spec_parses),
                cmocka_unit_test(test_full_document),
                cmocka_unit_test(test_bad_documents),
                cmocka_unit_test(test_unknown_fields_ignored),
                cmocka_unit_test(test_unknown_fields_listed),
                cmocka_unit_test(test_mount_options),
                cmocka_unit_test(test_process_alone),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
