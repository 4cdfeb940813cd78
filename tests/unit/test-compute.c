/* The compute API's documents: ComputeSystem -> OCI spec mapping (storage,
 * mapped directories, the CPU and memory formulas, networking, an embedded
 * OCI spec), ProcessParameters, PropertyQuery and ModifySettingRequest, and
 * the exact message for each kind of bad input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/compute-internal.h"
#include "util/cleanup.h"
#include "util/json.h"

static const struct compute_spec_options opts = {
        .id = "sys1", .cgroup_parent = "/test-parent", .init_path = "/usr/libexec/silo-compute-init",
        .rootfs = "/run/state/systems/sys1/rootfs", .ncpu = 4,
};

static json_t *load(const char *text)
{
        silo_error err = SILO_ERROR_INIT;
        json_t *j = NULL;
        if (silo_json_load_buffer(text, strlen(text), "test", &j, &err) < 0)
                fail_msg("bad test JSON: %s", err.message);
        return j;
}

static json_t *spec_ok(const char *text, struct compute_storage *st)
{
        _cleanup_json_ json_t *doc = load(text);
        silo_error err = SILO_ERROR_INIT;
        json_t *spec = NULL;
        if (compute_document_to_spec(doc, &opts, &spec, st, &err) < 0)
                fail_msg("unexpected error: %s", err.message);
        return spec;
}

static void spec_fails(const char *text, int code, const char *message)
{
        _cleanup_json_ json_t *doc = load(text);
        silo_error err = SILO_ERROR_INIT;
        json_t *spec = NULL;
        struct compute_storage st = {};
        int r = compute_document_to_spec(doc, &opts, &spec, &st, &err);
        if (r >= 0)
                fail_msg("accepted: %s", text);
        assert_int_equal(r, -code);
        assert_string_equal(err.message, message);
        assert_null(spec);
        assert_null(st.path);
}

static json_int_t jint(json_t *root, const char *path)
{
        json_t *v = root;
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", path);
        for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
                v = json_object_get(v, k);
        if (!json_is_integer(v))
                fail_msg("%s: not an integer", path);
        return json_integer_value(v);
}

static const char *jstr(json_t *root, const char *path)
{
        json_t *v = root;
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", path);
        for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
                v = json_object_get(v, k);
        if (!json_is_string(v))
                fail_msg("%s: not a string", path);
        return json_string_value(v);
}

static json_t *find_mount(json_t *spec, const char *dest)
{
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(spec, "mounts"), i, m)
                if (!strcmp(json_string_value(json_object_get(m, "destination")), dest))
                        return m;
        return NULL;
}

static void test_full_document(void **state)
{
        (void) state;
        struct compute_storage st = {};
        _cleanup_json_ json_t *spec = spec_ok(
                "{\"Owner\": \"sample\", \"SchemaVersion\": {\"Major\": 2, \"Minor\": 1},"
                " \"Container\": {\"GuestOs\": {\"HostName\": \"web1\"},"
                "  \"Storage\": {\"Layers\": [{\"Id\": \"a\", \"Path\": \"/layers/top\"}, {\"Id\": \"b\", \"Path\": \"/layers/base\"}],"
                "               \"Path\": \"/scratch\"},"
                "  \"MappedDirectories\": [{\"HostPath\": \"/srv/data\", \"ContainerPath\": \"/data\", \"ReadOnly\": true},"
                "                         {\"HostPath\": \"/srv/rw\", \"ContainerPath\": \"/rw\"}],"
                "  \"Memory\": {\"SizeInMB\": 256},"
                "  \"Processor\": {\"Count\": 2, \"Maximum\": 5000, \"Weight\": 100},"
                "  \"Networking\": {\"Namespace\": \"blue\"}},"
                " \"ShouldTerminateOnLastHandleClosed\": true}", &st);
        assert_string_equal(jstr(spec, "hostname"), "web1");
        assert_string_equal(jstr(spec, "root.path"), opts.rootfs);
        assert_string_equal(st.path, "/scratch");
        assert_string_equal(st.layers[0], "/layers/top");
        assert_string_equal(st.layers[1], "/layers/base");
        assert_null(st.layers[2]);
        compute_storage_done(&st);

        json_t *m = find_mount(spec, "/data");
        assert_non_null(m);
        assert_string_equal(jstr(m, "source"), "/srv/data");
        assert_string_equal(json_string_value(json_array_get(json_object_get(m, "options"), 1)), "ro");
        m = find_mount(spec, "/rw");
        assert_string_equal(json_string_value(json_array_get(json_object_get(m, "options"), 1)), "rw");
        m = find_mount(spec, COMPUTE_INIT_TARGET);
        assert_string_equal(jstr(m, "source"), opts.init_path);
        assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(spec, "process"), "args"), 0)),
                            COMPUTE_INIT_TARGET);

        assert_int_equal(jint(spec, "linux.resources.memory.limit"), 256 << 20);
        /* Maximum 5000 of 4 CPUs = 2 CPUs = Count 2: 200 ms per 100 ms. */
        assert_int_equal(jint(spec, "linux.resources.cpu.quota"), 200000);
        assert_int_equal(jint(spec, "linux.resources.cpu.period"), 100000);
        assert_int_equal(jint(spec, "linux.resources.cpu.shares"), 2 + 99 * 262142 / 9999);
        assert_string_equal(jstr(spec, "linux.cgroupsPath"), "/test-parent/sys1");

        size_t i;
        json_t *ns;
        bool found = false;
        json_array_foreach(json_object_get(json_object_get(spec, "linux"), "namespaces"), i, ns)
                if (!strcmp(jstr(ns, "type"), "network")) {
                        assert_string_equal(jstr(ns, "path"), "/var/run/netns/blue");
                        found = true;
                }
        assert_true(found);
}

static void test_plain_root_and_defaults(void **state)
{
        (void) state;
        struct compute_storage st = {};
        _cleanup_json_ json_t *spec = spec_ok("{\"Container\": {\"Storage\": {\"Path\": \"/srv/root\"},"
                                              " \"Networking\": {\"Namespace\": \"/proc/1/ns/net\"}}}", &st);
        /* No layers: Storage.Path is the root itself. */
        assert_string_equal(jstr(spec, "root.path"), "/srv/root");
        assert_null(st.layers[0]);
        assert_string_equal(jstr(spec, "hostname"), "sys1");
        assert_null(json_object_get(json_object_get(json_object_get(spec, "linux"), "resources"), "memory"));
        assert_null(json_object_get(json_object_get(json_object_get(spec, "linux"), "resources"), "cpu"));
        compute_storage_done(&st);
}

static void test_store_image(void **state)
{
        (void) state;
        struct compute_storage st = {};
        _cleanup_json_ json_t *spec = spec_ok("{\"Container\": {\"Storage\": {\"Image\": \"busybox:1\"}}}", &st);
        assert_string_equal(st.image, "busybox:1");
        assert_null(st.path);
        assert_string_equal(jstr(spec, "root.path"), opts.rootfs);
        compute_storage_done(&st);
        spec_fails("{\"Container\": {\"Storage\": {\"Image\": \"b\", \"Path\": \"/s\"}}}", EINVAL,
                   "Container.Storage.Image: excludes Layers and Path (the store keeps the scratch layer)");
        spec_fails("{\"Container\": {\"Storage\": {\"Image\": \"\"}}}", EINVAL,
                   "Container.Storage.Image: empty image reference");
        spec_fails("{\"Container\": {\"Storage\": {\"Image\": 1}}}", EINVAL,
                   "Container.Storage.Image: expected a string, got integer");
}

static void test_embedded_oci(void **state)
{
        (void) state;
        struct compute_storage st = {};
        _cleanup_json_ json_t *spec = spec_ok(
                "{\"Container\": {\"GuestOs\": {\"HostName\": \"h\"}, \"Memory\": {\"SizeInMB\": 64},"
                " \"OciSpecification\": {\"ociVersion\": \"1.0.2\", \"hostname\": \"oci\","
                "   \"process\": {\"args\": [\"/bin/app\"], \"cwd\": \"/\"}, \"root\": {\"path\": \"/srv/app\"},"
                "   \"linux\": {\"resources\": {\"pids\": {\"limit\": 10}}}}}}", &st);
        /* Its process is the init; HCS fields override and merge. */
        assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(spec, "process"), "args"), 0)),
                            "/bin/app");
        assert_string_equal(jstr(spec, "hostname"), "h");
        assert_string_equal(jstr(spec, "root.path"), "/srv/app");
        assert_int_equal(jint(spec, "linux.resources.memory.limit"), 64 << 20);
        assert_int_equal(jint(spec, "linux.resources.pids.limit"), 10);
        assert_null(find_mount(spec, COMPUTE_INIT_TARGET));
        compute_storage_done(&st);

        /* Without a process the silo init is added. */
        spec_fails("{\"Container\": {\"OciSpecification\": {\"root\": {\"path\": \"rel\"}}}}", EINVAL,
                   "Container.Storage: missing (and no absolute OciSpecification root.path to use instead)");
        json_t *s2 = spec_ok("{\"Container\": {\"OciSpecification\": {\"root\": {\"path\": \"/r\"}}}}", &st);
        assert_non_null(find_mount(s2, COMPUTE_INIT_TARGET));
        json_decref(s2);
        compute_storage_done(&st);
}

/* A VirtualMachine document: a utility VM's config, its settings as annotations. */
static void test_virtual_machine_document(void **state)
{
        (void) state;
        struct compute_storage st = {};
        _cleanup_json_ json_t *spec = spec_ok("{\"VirtualMachine\": {\"Chipset\": {\"LinuxKernelDirect\": "
                                              "{\"KernelFilePath\": \"/k\", \"InitRdPath\": \"/i\", \"KernelCmdLine\": \"quiet\"}}, "
                                              "\"ComputeTopology\": {\"Memory\": {\"SizeInMB\": 512}, \"Processor\": {\"Count\": 2}}}}",
                                              &st);
        json_t *ann = json_object_get(spec, "annotations");
        assert_string_equal(json_string_value(json_object_get(ann, "io.silo.isolation")), "vm");
        assert_string_equal(json_string_value(json_object_get(ann, "io.silo.vm.utility")), "true");
        assert_string_equal(json_string_value(json_object_get(ann, "io.silo.vm.kernel")), "/k");
        assert_string_equal(json_string_value(json_object_get(ann, "io.silo.vm.initrd")), "/i");
        assert_string_equal(json_string_value(json_object_get(ann, "io.silo.vm.kernel-cmdline")), "quiet");
        assert_string_equal(json_string_value(json_object_get(ann, "io.silo.vm.memory-mb")), "512");
        assert_string_equal(json_string_value(json_object_get(ann, "io.silo.vm.cpus")), "2");
        assert_null(json_object_get(spec, "process"));
        assert_null(json_object_get(spec, "root"));
        assert_null(st.path);
        /* A hosted container: the annotations that send it into its VM. */
        _cleanup_json_ json_t *hosted = spec_ok("{\"HostingSystemId\": \"uvm1\", \"Container\": {\"Storage\": {\"Path\": \"/s\"}}}",
                                                &st);
        ann = json_object_get(hosted, "annotations");
        assert_string_equal(json_string_value(json_object_get(ann, "io.silo.isolation")), "vm");
        assert_string_equal(json_string_value(json_object_get(ann, "io.silo.vm.host")), "uvm1");
        compute_storage_done(&st);
}

static void test_bad_documents(void **state)
{
        (void) state;
        static const struct { const char *doc; int code; const char *message; } cases[] = {
                { "[]", EINVAL, "ComputeSystem: expected an object, got array" },
                { "{}", EINVAL, "Container: missing (the system kind)" },
                { "{\"Owner\": 1, \"Container\": {}}", EINVAL, "Owner: expected a string, got integer" },
                { "{\"SchemaVersion\": {\"Major\": 1}, \"Container\": {}}", ENOTSUP,
                  "SchemaVersion.Major: 1 is not supported (only 2)" },
                { "{\"SchemaVersion\": {\"Minor\": 1}, \"Container\": {}}", EINVAL, "SchemaVersion.Major: required field is missing" },
                { "{\"Container\": {}, \"VirtualMachine\": {}}", EINVAL, "Container and VirtualMachine are mutually exclusive" },
                { "{\"VirtualMachine\": {}, \"HostingSystemId\": \"u\"}", EINVAL,
                  "HostingSystemId: a VirtualMachine is not hosted in another" },
                { "{\"VirtualMachine\": {\"Chipset\": {\"Uefi\": {}}}}", ENOTSUP,
                  "VirtualMachine.Chipset: only LinuxKernelDirect boots are supported (no firmware, no UEFI)" },
                { "{\"VirtualMachine\": {\"Chipset\": {\"LinuxKernelDirect\": {\"KernelFilePath\": \"vmlinux\"}}}}",
                  EINVAL, "VirtualMachine.Chipset.LinuxKernelDirect.KernelFilePath: must be an absolute path" },
                { "{\"VirtualMachine\": {\"Chipset\": {\"LinuxKernelDirect\": {\"InitRdPath\": 7}}}}", EINVAL,
                  "VirtualMachine.Chipset.LinuxKernelDirect.InitRdPath: expected a string, got integer" },
                { "{\"VirtualMachine\": {\"ComputeTopology\": {\"Memory\": {\"SizeInMB\": 32}}}}", EINVAL,
                  "VirtualMachine.ComputeTopology.Memory.SizeInMB: expected 64 .. 65536" },
                { "{\"VirtualMachine\": {\"ComputeTopology\": {\"Processor\": {\"Count\": 5}}}}", EINVAL,
                  "VirtualMachine.ComputeTopology.Processor.Count: expected 1 .. 4 (the online processors)" },
                { "{\"HostingSystemId\": \"a/b\", \"Container\": {}}", EINVAL,
                  "HostingSystemId: invalid container ID \"a/b\": only [A-Za-z0-9_+.-] are allowed" },
                { "{\"HostingSystemId\": \"uvm\", \"Container\": {\"Networking\": {}}}", ENOTSUP,
                  "Container.Networking: a container in a utility VM (HostingSystemId) shares its VM's network "
                  "(VirtualMachine.Networking)" },
                { "{\"Container\": []}", EINVAL, "Container: expected an object, got array" },
                { "{\"Container\": {}}", EINVAL,
                  "Container.Storage: missing (and no absolute OciSpecification root.path to use instead)" },
                { "{\"Container\": {\"Storage\": {}}}", EINVAL, "Container.Storage.Path: required field is missing" },
                { "{\"Container\": {\"Storage\": {\"Path\": \"rel\"}}}", EINVAL,
                  "Container.Storage.Path: expected an absolute path, got \"rel\"" },
                { "{\"Container\": {\"Storage\": {\"Path\": \"/s\", \"Layers\": {}}}}", EINVAL,
                  "Container.Storage.Layers: expected an array, got object" },
                { "{\"Container\": {\"Storage\": {\"Path\": \"/s\", \"Layers\": [{\"Id\": \"x\"}]}}}", EINVAL,
                  "Container.Storage.Layers[0].Path: required field is missing" },
                { "{\"Container\": {\"Storage\": {\"Path\": \"/s\", \"Layers\": [{\"Path\": \"/a,b\"}]}}}", EINVAL,
                  "Container.Storage.Layers[0].Path: \"/a,b\" contains ',', ':' or '\\', which overlay paths cannot" },
                { "{\"Container\": {\"Storage\": {\"Path\": \"/s:x\", \"Layers\": [{\"Path\": \"/a\"}]}}}", EINVAL,
                  "Container.Storage.Path: \"/s:x\" contains ',', ':' or '\\', which overlay paths cannot" },
                { "{\"Container\": {\"Storage\": {\"Path\": \"/s\"}, \"Memory\": {\"SizeInMB\": \"1G\"}}}", EINVAL,
                  "Container.Memory.SizeInMB: expected an integer, got string" },
                { "{\"Container\": {\"Storage\": {\"Path\": \"/s\"}, \"Memory\": {\"SizeInMB\": 2}}}", ERANGE,
                  "Container.Memory.SizeInMB: 2 MB is out of range (at least 4)" },
                { "{\"Container\": {\"Storage\": {\"Path\": \"/s\"}, \"Processor\": {\"Count\": 5}}}", ERANGE,
                  "Container.Processor.Count: 5 exceeds the 4 processors of this machine" },
                { "{\"Container\": {\"Storage\": {\"Path\": \"/s\"}, \"Processor\": {\"Maximum\": 10001}}}", ERANGE,
                  "Container.Processor.Maximum: 10001 is out of range (0-10000)" },
                { "{\"Container\": {\"Storage\": {\"Path\": \"/s\"}, \"Processor\": {\"Weight\": true}}}", EINVAL,
                  "Container.Processor.Weight: expected a non-negative integer, got boolean" },
                { "{\"Container\": {\"Storage\": {\"Path\": \"/s\"}, \"MappedDirectories\": [1]}}", EINVAL,
                  "Container.MappedDirectories[0]: expected an object, got integer" },
                { "{\"Container\": {\"Storage\": {\"Path\": \"/s\"}, \"MappedDirectories\": "
                  "[{\"HostPath\": \"/h\", \"ContainerPath\": \"c\"}]}}", EINVAL,
                  "Container.MappedDirectories[0].ContainerPath: expected an absolute path, got \"c\"" },
                { "{\"Container\": {\"Storage\": {\"Path\": \"/s\"}, \"GuestOs\": {\"HostName\": \"\"}}}", EINVAL,
                  "Container.GuestOs.HostName: must be 1-64 characters" },
                { "{\"Container\": {\"Storage\": {\"Path\": \"/s\"}, \"Networking\": {\"Namespace\": \"a/b\"}}}", EINVAL,
                  "Container.Networking.Namespace: \"a/b\" is neither a name in /var/run/netns nor an absolute path" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
                spec_fails(cases[i].doc, cases[i].code, cases[i].message);
}

static void test_processor_formulas(void **state)
{
        (void) state;
        static const struct { const char *doc; unsigned ncpu; long long quota, shares; } cases[] = {
                { "{\"Maximum\": 10000}", 2, 200000, -1 },      /* the whole machine */
                { "{\"Maximum\": 2500}", 4, 100000, -1 },       /* a quarter of 4 = 1 CPU */
                { "{\"Maximum\": 1}", 1, 1000, -1 },            /* clamped to the kernel's minimum */
                { "{\"Count\": 1, \"Maximum\": 10000}", 4, 100000, -1 },  /* the smaller wins */
                { "{\"Count\": 3}", 4, 300000, -1 },
                { "{\"Weight\": 1}", 4, -1, 2 },
                { "{\"Weight\": 10000}", 4, -1, 262144 },
                { "{\"Weight\": 0, \"Maximum\": 0, \"Count\": 0}", 4, -1, -1 },  /* 0: unset */
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                _cleanup_json_ json_t *p = load(cases[i].doc), *res = NULL;
                silo_error err = SILO_ERROR_INIT;
                assert_int_equal(compute_processor_resources(p, "P", cases[i].ncpu, &res, &err), 0);
                json_t *cpu = json_object_get(res, "cpu");
                json_t *q = json_object_get(cpu, "quota"), *s = json_object_get(cpu, "shares");
                assert_int_equal(q ? json_integer_value(q) : -1, cases[i].quota);
                assert_int_equal(s ? json_integer_value(s) : -1, cases[i].shares);
        }
}

static void test_command_line(void **state)
{
        (void) state;
        static const struct { const char *line; const char *words[6]; } ok[] = {
                { "sh -c 'echo hi'", { "sh", "-c", "echo hi" } },
                { "  a\tb  ", { "a", "b" } },
                { "echo \"a \\\"q\\\" $x\" c\\ d", { "echo", "a \"q\" $x", "c d" } },
                { "x'y'\"z\" ''", { "xyz", "" } },
        };
        for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
                _cleanup_strv_ char **w = NULL;
                silo_error err = SILO_ERROR_INIT;
                if (compute_split_command_line(ok[i].line, "CommandLine", &w, &err) < 0)
                        fail_msg("%s: %s", ok[i].line, err.message);
                size_t n = 0;
                for (; ok[i].words[n]; n++)
                        assert_string_equal(w[n], ok[i].words[n]);
                assert_null(w[n]);
        }
        static const struct { const char *line, *message; } bad[] = {
                { "", "CommandLine: empty command line" },
                { "   ", "CommandLine: empty command line" },
                { "sh 'x", "CommandLine: unterminated ' quote" },
                { "sh \"x", "CommandLine: unterminated \" quote" },
                { "sh \\", "CommandLine: trailing backslash" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                char **w = NULL;
                silo_error err = SILO_ERROR_INIT;
                assert_int_equal(compute_split_command_line(bad[i].line, "CommandLine", &w, &err), -EINVAL);
                assert_string_equal(err.message, bad[i].message);
                assert_null(w);
        }
}

static void test_process_parameters(void **state)
{
        (void) state;
        _cleanup_json_ json_t *params = load(
                "{\"CommandLine\": \"ignored\", \"CommandArgs\": [\"sh\", \"-c\", \"echo hi\"],"
                " \"WorkingDirectory\": \"/tmp\", \"Environment\": {\"A\": \"1\", \"PATH\": \"/bin\"},"
                " \"User\": \"1000:1001\", \"CreateStdInPipe\": true, \"CreateStdOutPipe\": true,"
                " \"EmulateConsole\": true, \"ConsoleSize\": [24, 80]}");
        _cleanup_json_ json_t *base = load("{\"capabilities\": {\"bounding\": [\"CAP_KILL\"]}, \"noNewPrivileges\": true}");
        _cleanup_json_ json_t *proc = NULL;
        struct compute_process_params pp;
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(compute_process_to_oci(params, base, -1, &proc, &pp, &err), 0);
        assert_true(pp.stdin_pipe && pp.stdout_pipe && !pp.stderr_pipe && pp.console);
        assert_string_equal(json_string_value(json_array_get(json_object_get(proc, "args"), 2)), "echo hi");
        assert_string_equal(jstr(proc, "cwd"), "/tmp");
        assert_int_equal(jint(proc, "user.uid"), 1000);
        assert_int_equal(jint(proc, "user.gid"), 1001);
        assert_int_equal(jint(proc, "consoleSize.height"), 24);
        assert_int_equal(jint(proc, "consoleSize.width"), 80);
        assert_true(json_is_true(json_object_get(proc, "terminal")));
        assert_true(json_is_true(json_object_get(proc, "noNewPrivileges")));
        assert_non_null(json_object_get(proc, "capabilities"));
        json_t *env = json_object_get(proc, "env");
        assert_int_equal(json_array_size(env), 2);      /* PATH given: no default added */

        static const struct { const char *params; int code; const char *message; } bad[] = {
                { "[]", EINVAL, "ProcessParameters: expected an object, got array" },
                { "{}", EINVAL, "ProcessParameters: needs CommandLine or CommandArgs" },
                { "{\"CommandLine\": 5}", EINVAL, "CommandLine: expected a string, got integer" },
                { "{\"CommandArgs\": [\"a\", null]}", EINVAL, "CommandArgs[1]: expected a string, got null" },
                { "{\"CommandArgs\": [\"a\"], \"Environment\": {\"X\": 1}}", EINVAL, "Environment.X: expected a string, got integer" },
                { "{\"CommandArgs\": [\"a\"], \"Environment\": {\"A=B\": \"1\"}}", EINVAL, "Environment: invalid variable name \"A=B\"" },
                { "{\"CommandArgs\": [\"a\"], \"User\": \"root\"}", ENOENT,
                  "User: no user \"root\" in the system's /etc/passwd" },
                { "{\"CommandArgs\": [\"a\"], \"User\": \"1:wheel\"}", ENOENT,
                  "User: no group \"wheel\" in the system's /etc/group" },
                { "{\"CommandArgs\": [\"a\"], \"User\": \"1:\"}", EINVAL,
                  "User: expected \"user[:group]\", got \"1:\"" },
                { "{\"CommandArgs\": [\"a\"], \"WorkingDirectory\": \"x\"}", EINVAL,
                  "WorkingDirectory: expected an absolute path, got \"x\"" },
                { "{\"CommandArgs\": [\"a\"], \"ConsoleSize\": [1, \"x\"]}", EINVAL,
                  "ConsoleSize: expected [height, width] (0-65535)" },
                { "{\"CommandArgs\": [\"a\"], \"CreateStdInPipe\": 1}", EINVAL, "CreateStdInPipe: expected a boolean, got integer" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                _cleanup_json_ json_t *p = load(bad[i].params), *out = NULL;
                silo_error e = SILO_ERROR_INIT;
                assert_int_equal(compute_process_to_oci(p, NULL, -1, &out, &pp, &e), -bad[i].code);
                assert_string_equal(e.message, bad[i].message);
                assert_null(out);
        }
}

static void test_property_query(void **state)
{
        (void) state;
        unsigned t;
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(compute_property_query_parse(NULL, &t, &err), 0);
        assert_int_equal(t, 0);
        _cleanup_json_ json_t *q = load("{\"PropertyTypes\": [\"Statistics\", \"ProcessList\", \"Memory\"]}");
        assert_int_equal(compute_property_query_parse(q, &t, &err), 0);
        assert_int_equal(t, COMPUTE_PROP_STATISTICS | COMPUTE_PROP_PROCESS_LIST | COMPUTE_PROP_MEMORY);
        _cleanup_json_ json_t *bad = load("{\"PropertyTypes\": [\"Memory\", \"Gpu\"]}");
        assert_int_equal(compute_property_query_parse(bad, &t, &err), -EINVAL);
        assert_string_equal(err.message,
                            "PropertyTypes[1]: unknown property type \"Gpu\" (expected Statistics, ProcessList or Memory)");
        _cleanup_json_ json_t *bad2 = load("{\"PropertyTypes\": \"Memory\"}");
        assert_int_equal(compute_property_query_parse(bad2, &t, &err), -EINVAL);
        assert_string_equal(err.message, "PropertyTypes: expected an array, got string");
}

static void test_modify_request(void **state)
{
        (void) state;
        struct compute_modify m;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *r1 = load("{\"ResourcePath\": \"Container/Memory/SizeInMB\", \"RequestType\": \"Update\","
                                         " \"Settings\": 512}");
        assert_int_equal(compute_modify_parse(r1, &m, &err), 0);
        assert_int_equal(m.resource, COMPUTE_MODIFY_MEMORY);
        assert_int_equal(m.type, COMPUTE_REQUEST_UPDATE);
        _cleanup_json_ json_t *frag = NULL;
        assert_int_equal(compute_memory_resources(m.settings, "Settings", &frag, &err), 0);
        assert_int_equal(jint(frag, "memory.limit"), 512LL << 20);

        _cleanup_json_ json_t *r2 = load("{\"ResourcePath\": \"Container/MappedDirectories\", \"RequestType\": \"Add\","
                                         " \"Settings\": {\"HostPath\": \"/h\", \"ContainerPath\": \"/c\"}}");
        assert_int_equal(compute_modify_parse(r2, &m, &err), 0);
        assert_int_equal(m.resource, COMPUTE_MODIFY_MAPPED_DIRECTORY);

        static const struct { const char *req; int code; const char *message; } bad[] = {
                { "[]", EINVAL, "ModifySettingRequest: expected an object, got array" },
                { "{}", EINVAL, "ResourcePath: required field is missing" },
                { "{\"ResourcePath\": \"Container/Memory/SizeInMB\", \"RequestType\": \"Patch\", \"Settings\": 1}", EINVAL,
                  "RequestType: unknown request type \"Patch\" (expected Add, Remove or Update)" },
                { "{\"ResourcePath\": \"Container/Memory/SizeInMB\", \"RequestType\": 3}", EINVAL,
                  "RequestType: expected a string, got integer" },
                { "{\"ResourcePath\": \"Container/Memory/SizeInMB\", \"RequestType\": \"Remove\", \"Settings\": 1}", ENOTSUP,
                  "RequestType: Remove is not supported for Container/Memory/SizeInMB" },
                { "{\"ResourcePath\": \"Container/Processor\"}", EINVAL,
                  "Settings: missing (required for Container/Processor)" },
                { "{\"ResourcePath\": \"Container/Network\", \"Settings\": 1}", ENOTSUP,
                  "ResourcePath: unknown resource \"Container/Network\" (expected Container/Memory/SizeInMB, "
                  "Container/Processor or Container/MappedDirectories)" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                _cleanup_json_ json_t *r = load(bad[i].req);
                silo_error e = SILO_ERROR_INIT;
                assert_int_equal(compute_modify_parse(r, &m, &e), -bad[i].code);
                assert_string_equal(e.message, bad[i].message);
        }
        _cleanup_json_ json_t *s = json_string("x");
        json_t *out = NULL;
        assert_int_equal(compute_memory_resources(s, "Settings", &out, &err), -EINVAL);
        assert_string_equal(err.message, "Settings: expected an integer, got string");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full_document),
                cmocka_unit_test(test_plain_root_and_defaults),
                cmocka_unit_test(test_embedded_oci),
                cmocka_unit_test(test_store_image),
                cmocka_unit_test(test_bad_documents),
                cmocka_unit_test(test_virtual_machine_document),
                cmocka_unit_test(test_processor_formulas),
                cmocka_unit_test(test_command_line),
                cmocka_unit_test(test_process_parameters),
                cmocka_unit_test(test_property_query),
                cmocka_unit_test(test_modify_request),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
