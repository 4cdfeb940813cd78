/* cgroups: linux.resources parsing with exact messages, path handling from
 * procfs text, the v1 backend on this machine's real hierarchy, the v2 core
 * files in a private cgroup2 mount, and the v2 value mapping on a fake tree
 * of plain files.  Every cgroup lives under a parent named /silo-test-* that
 * the test creates and removes. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cgroup/cgroup-internal.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define MB (1024 * 1024)

static json_t *load(const char *text)
{
        json_error_t jerr;
        json_t *j = json_loads(text, 0, &jerr);
        if (!j)
                fail_msg("bad test JSON: %s: %s", jerr.text, text);
        return j;
}

static void expect_parse_error(const char *text, const char *message)
{
        _cleanup_json_ json_t *j = load(text);
        silo_error err = SILO_ERROR_INIT;
        struct silo_resources res;
        assert_true(silo_resources_parse(j, "linux.resources", &res, &err) < 0);
        if (strcmp(err.message, message))
                fail_msg("for %s\n  expected: %s\n  got:      %s", text, message, err.message);
        silo_resources_done(&res);
}

static void expect_error_contains(int r, const silo_error *err, int code, const char *needle)
{
        if (r != -code || !strstr(err->message, needle))
                fail_msg("expected -%d with '%s', got %d: %s", code, needle, r, err->message);
}

/* Whole file, trailing newline dropped; NULL if it cannot be read. */
static char *slurp(const char *fmt, ...)
{
        char path[PATH_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(path, sizeof(path), fmt, ap);
        va_end(ap);
        char *s = NULL;
        if (silo_read_file_at(AT_FDCWD, path, 1 << 20, &s, NULL, NULL) < 0)
                return NULL;
        s[strcspn(s, "\n")] = '\0';
        return s;
}

#define assert_file(expected, ...)                                      \
        do {                                                            \
                _cleanup_free_ char *_got = slurp(__VA_ARGS__);         \
                assert_non_null(_got);                                  \
                assert_string_equal(_got, (expected));                  \
        } while (0)

static bool exists(const char *fmt, ...)
{
        char path[PATH_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(path, sizeof(path), fmt, ap);
        va_end(ap);
        return access(path, F_OK) == 0;
}

static void test_name(char buf[64])
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        snprintf(buf, 64, "silo-test-%d-%ld", (int) getpid(), ts.tv_nsec % 1000000);
}

/* ---- resources parsing ---- */

static void test_parse_full(void **state)
{
        (void) state;
        _cleanup_json_ json_t *j = load(
                "{\"devices\": [{\"allow\": false, \"access\": \"rwm\"},"
                "               {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 3, \"access\": \"rw\"},"
                "               {\"allow\": true, \"type\": \"b\", \"major\": 8, \"access\": \"m\"}],"
                " \"memory\": {\"limit\": 67108864, \"reservation\": 33554432, \"swap\": 134217728,"
                "              \"kernel\": -1, \"kernelTCP\": 1000000, \"swappiness\": 10,"
                "              \"disableOOMKiller\": true, \"useHierarchy\": null, \"checkBeforeUpdate\": false},"
                " \"cpu\": {\"shares\": 512, \"quota\": 50000, \"burst\": 1000, \"period\": 100000,"
                "           \"realtimeRuntime\": 950000, \"realtimePeriod\": 1000000, \"cpus\": \"0-1,3\","
                "           \"mems\": \"0\", \"idle\": 1},"
                " \"pids\": {\"limit\": 100},"
                " \"blockIO\": {\"weight\": 500, \"leafWeight\": 300,"
                "               \"weightDevice\": [{\"major\": 8, \"minor\": 0, \"weight\": 600}],"
                "               \"throttleReadBpsDevice\": [{\"major\": 8, \"minor\": 0, \"rate\": 1048576}],"
                "               \"throttleWriteIOPSDevice\": [{\"major\": 8, \"minor\": 16, \"rate\": 100}]},"
                " \"hugepageLimits\": [{\"pageSize\": \"2MB\", \"limit\": 4194304}],"
                " \"network\": {\"classID\": 1048577, \"priorities\": [{\"name\": \"eth0\", \"priority\": 5}]},"
                " \"unified\": {\"memory.high\": \"90M\", \"io.latency\": \"8:0 target=10\"},"
                " \"rdma\": {\"ignored\": \"unknown keys are fine\"}}");
        silo_error err = SILO_ERROR_INIT;
        struct silo_resources r;

        assert_int_equal(silo_resources_parse(j, "linux.resources", &r, &err), 0);
        assert_int_equal(r.n_devices, 3);
        assert_false(r.devices[0].allow);
        assert_int_equal(r.devices[0].type, 'a');
        assert_int_equal(r.devices[0].major, -1);
        assert_int_equal(r.devices[0].minor, -1);
        assert_string_equal(r.devices[0].access, "rwm");
        assert_true(r.devices[1].allow);
        assert_int_equal(r.devices[1].type, 'c');
        assert_int_equal(r.devices[1].major, 1);
        assert_int_equal(r.devices[1].minor, 3);
        assert_string_equal(r.devices[1].access, "rw");
        assert_int_equal(r.devices[2].minor, -1);

        assert_true(r.memory.limit.set);
        assert_int_equal(r.memory.limit.value, 64 * MB);
        assert_int_equal(r.memory.reservation.value, 32 * MB);
        assert_int_equal(r.memory.swap.value, 128 * MB);
        assert_int_equal(r.memory.kernel.value, -1);
        assert_int_equal(r.memory.kernel_tcp.value, 1000000);
        assert_int_equal(r.memory.swappiness.value, 10);
        assert_true(r.memory.disable_oom_killer.set && r.memory.disable_oom_killer.value);
        assert_false(r.memory.use_hierarchy.set);
        assert_true(r.memory.check_before_update.set && !r.memory.check_before_update.value);

        assert_int_equal(r.cpu.shares.value, 512);
        assert_int_equal(r.cpu.quota.value, 50000);
        assert_int_equal(r.cpu.burst.value, 1000);
        assert_int_equal(r.cpu.period.value, 100000);
        assert_int_equal(r.cpu.realtime_runtime.value, 950000);
        assert_int_equal(r.cpu.realtime_period.value, 1000000);
        assert_string_equal(r.cpu.cpus, "0-1,3");
        assert_string_equal(r.cpu.mems, "0");
        assert_int_equal(r.cpu.idle.value, 1);
        assert_int_equal(r.pids.limit.value, 100);

        assert_int_equal(r.block_io.weight.value, 500);
        assert_int_equal(r.block_io.leaf_weight.value, 300);
        assert_int_equal(r.block_io.n_weight_devices, 1);
        assert_int_equal(r.block_io.weight_devices[0].weight.value, 600);
        assert_false(r.block_io.weight_devices[0].leaf_weight.set);
        assert_int_equal(r.block_io.n_throttle_read_bps, 1);
        assert_int_equal(r.block_io.throttle_read_bps[0].rate, 1048576);
        assert_int_equal(r.block_io.n_throttle_write_bps, 0);
        assert_int_equal(r.block_io.n_throttle_write_iops, 1);
        assert_int_equal(r.block_io.throttle_write_iops[0].minor, 16);

        assert_int_equal(r.n_hugepage_limits, 1);
        assert_string_equal(r.hugepage_limits[0].page_size, "2MB");
        assert_int_equal(r.hugepage_limits[0].limit, 4 * MB);
        assert_int_equal(r.network.class_id.value, 1048577);
        assert_string_equal(r.network.priorities[0].name, "eth0");
        assert_int_equal(r.network.priorities[0].priority, 5);
        assert_string_equal(json_string_value(json_object_get(r.unified, "memory.high")), "90M");

        silo_resources_done(&r);
        assert_null(r.devices);
        silo_resources_done(&r);        /* idempotent */
}

static void test_parse_empty(void **state)
{
        (void) state;
        _cleanup_json_ json_t *j = load("{\"memory\": null, \"devices\": [], \"unified\": {}}");
        struct silo_resources r;
        assert_int_equal(silo_resources_parse(j, "linux.resources", &r, NULL), 0);
        assert_int_equal(r.n_devices, 0);
        assert_false(r.memory.limit.set);
        assert_null(r.unified);
        silo_resources_done(&r);
}

static void test_parse_errors(void **state)
{
        (void) state;
        expect_parse_error("[]", "linux.resources: expected an object, got array");
        expect_parse_error("{\"memory\": {\"limit\": \"1G\"}}",
                           "linux.resources.memory.limit: expected an integer, got string");
        expect_parse_error("{\"memory\": []}", "linux.resources.memory: expected an object, got array");
        expect_parse_error("{\"cpu\": {\"shares\": -5}}", "linux.resources.cpu.shares: must not be negative (-5)");
        expect_parse_error("{\"cpu\": {\"cpus\": \"0-1\\n2\"}}",
                           "linux.resources.cpu.cpus: expected a list like \"0-3,7\", got \"0-1\n2\"");
        expect_parse_error("{\"devices\": [{\"type\": \"c\"}]}", "linux.resources.devices[0].allow: required field is missing");
        expect_parse_error("{\"devices\": [{\"allow\": true}, {\"allow\": true, \"type\": \"x\"}]}",
                           "linux.resources.devices[1].type: expected \"a\", \"c\" or \"b\", got \"x\"");
        expect_parse_error("{\"devices\": [{\"allow\": true, \"access\": \"rwx\"}]}",
                           "linux.resources.devices[0].access: expected a combination of r, w and m, got \"rwx\"");
        expect_parse_error("{\"devices\": [{\"allow\": true, \"access\": \"rr\"}]}",
                           "linux.resources.devices[0].access: expected a combination of r, w and m, got \"rr\"");
        expect_parse_error("{\"devices\": [{\"allow\": true, \"access\": \"\"}]}",
                           "linux.resources.devices[0].access: expected a combination of r, w and m, got \"\"");
        expect_parse_error("{\"devices\": [{\"allow\": true, \"major\": -2}]}",
                           "linux.resources.devices[0].major: -2 is not a device number or -1");
        expect_parse_error("{\"devices\": {}}", "linux.resources.devices: expected an array, got object");
        expect_parse_error("{\"blockIO\": {\"weight\": 70000}}", "linux.resources.blockIO.weight: 70000 is out of range");
        expect_parse_error("{\"blockIO\": {\"throttleReadBpsDevice\": [{\"major\": 8, \"minor\": 0}]}}",
                           "linux.resources.blockIO.throttleReadBpsDevice[0].rate: required field is missing");
        expect_parse_error("{\"blockIO\": {\"weightDevice\": [{\"major\": -1, \"minor\": 0}]}}",
                           "linux.resources.blockIO.weightDevice[0]: -1:0 is not a device number");
        expect_parse_error("{\"hugepageLimits\": [{\"pageSize\": \"../x\", \"limit\": 1}]}",
                           "linux.resources.hugepageLimits[0].pageSize: expected a size like \"2MB\" or \"1GB\", got \"../x\"");
        expect_parse_error("{\"hugepageLimits\": [{\"pageSize\": \"2MB\"}]}",
                           "linux.resources.hugepageLimits[0].limit: required field is missing");
        expect_parse_error("{\"network\": {\"priorities\": [{\"name\": \"a b\", \"priority\": 1}]}}",
                           "linux.resources.network.priorities[0].name: \"a b\" is not an interface name");
        expect_parse_error("{\"unified\": {\"memory.high\": 5}}",
                           "linux.resources.unified.memory.high: expected a string, got integer");
        expect_parse_error("{\"unified\": {\"../memory.max\": \"1\"}}",
                           "linux.resources.unified: invalid cgroup file name '../memory.max'");
        expect_parse_error("{\"unified\": {\"a/b\": \"1\"}}", "linux.resources.unified: invalid cgroup file name 'a/b'");
        expect_parse_error("{\"unified\": {\"cgroup.procs\": \"1\"}}",
                           "linux.resources.unified: 'cgroup.procs' is managed by the runtime and cannot be set");
}

/* ---- paths from procfs text ---- */

static void expect_resolve(const char *cgroups_path, const char *id, const char *own, const char *expected)
{
        _cleanup_free_ char *p = NULL;
        silo_error err = SILO_ERROR_INIT;
        if (cgroup_resolve_path(cgroups_path, id, own, &p, &err) < 0)
                fail_msg("resolve %s: %s", cgroups_path, err.message);
        assert_string_equal(p, expected);
}

static void test_resolve_path(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        char *p = NULL;

        expect_resolve("/a/b", "id", "/own", "/a/b");
        expect_resolve("//a///b/", "id", NULL, "/a/b");
        expect_resolve("a/b", "id", "/user.slice/x", "/user.slice/x/a/b");
        expect_resolve("a", "id", "/", "/a");
        expect_resolve(NULL, "c1", "/own", "/silo/c1");
        expect_resolve("", "c1", "/own", "/silo/c1");

        assert_int_equal(cgroup_resolve_path("system.slice:silo:c1", "c1", "/", &p, &err), -EOPNOTSUPP);
        assert_string_equal(err.message, "cgroupsPath 'system.slice:silo:c1': systemd cgroup paths are not "
                                         "supported; use cgroupfs");
        assert_int_equal(cgroup_resolve_path("/a/../../etc", "c1", "/", &p, &err), -EINVAL);
        assert_string_equal(err.message, "cgroup path '/a/../../etc': '.' and '..' components are not allowed");
        assert_int_equal(cgroup_resolve_path("../x", "c1", "/own", &p, &err), -EINVAL);
        assert_int_equal(cgroup_resolve_path("/", "c1", "/", &p, &err), -EINVAL);
        assert_string_equal(err.message, "cgroupsPath '/' resolves to the root of the hierarchy");
        assert_int_equal(cgroup_resolve_path(NULL, "../x", "/", &p, &err), -EINVAL);
        assert_int_equal(cgroup_resolve_path("/a\nb", "c1", "/", &p, &err), -EINVAL);
        assert_null(p);
}

static void test_parse_own(void **state)
{
        (void) state;
        const char *text = "12:pids:/p\n"
                           "4:cpu,cpuacct:/user.slice\n"
                           "3:name=systemd:/init.scope\n"
                           "1:net_cls,net_prio:/\n"
                           "0::/user.slice/session-1.scope\n";
        silo_error err = SILO_ERROR_INIT;
        char *own;

        assert_int_equal(cgroup_parse_own(text, "cpuacct", &own, &err), 0);
        assert_string_equal(own, "/user.slice");
        free(own);
        assert_int_equal(cgroup_parse_own(text, "net_prio", &own, &err), 0);
        assert_string_equal(own, "/");
        free(own);
        assert_int_equal(cgroup_parse_own(text, NULL, &own, &err), 0);
        assert_string_equal(own, "/user.slice/session-1.scope");
        free(own);
        assert_int_equal(cgroup_parse_own(text, "memory", &own, &err), -ENOENT);
        assert_string_equal(err.message, "/proc/self/cgroup has no entry for memory");
        assert_int_equal(cgroup_parse_own("4:cpu:/x\n", NULL, &own, &err), -ENOENT);

        assert_int_equal(cgroup_strip_mount_root("/a/b", "/a", &own, &err), 0);
        assert_string_equal(own, "/b");
        free(own);
        assert_int_equal(cgroup_strip_mount_root("/a", "/a", &own, &err), 0);
        assert_string_equal(own, "/");
        free(own);
        assert_int_equal(cgroup_strip_mount_root("/ab", "/a", &own, &err), -ENOENT);
}

static void test_parse_mounts(void **state)
{
        (void) state;
        const char *text =
                "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
                "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
                "35 31 0:32 /lxc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory,clone_children\n"
                "36 31 0:33 / /sys/fs/cgroup/with\\040space rw - cgroup cgroup rw,pids\n"
                "37 31 0:32 / /mnt/memory rw - cgroup cgroup rw,memory\n"
                "38 31 0:34 / /sys/fs/cgroup/memory2 rw - cgroup cgroup rw,memory\n"
                "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
                "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
                "garbage line\n";
        struct cgroup_mount *m = NULL;
        size_t n = 0;

        assert_int_equal(cgroup_parse_mounts(text, "/sys/fs/cgroup/", true, &m, &n, NULL), 0);
        assert_int_equal(n, 3);
        assert_string_equal(m[0].controllers, "cpu,cpuacct");
        assert_string_equal(m[0].mount_point, "/sys/fs/cgroup/cpu,cpuacct");
        assert_string_equal(m[1].controllers, "memory");
        assert_string_equal(m[1].root, "/lxc");
        assert_string_equal(m[2].mount_point, "/sys/fs/cgroup/with space");
        cgroup_mounts_free(m, n);

        assert_int_equal(cgroup_parse_mounts(text, "/sys/fs/cgroup/unified", false, &m, &n, NULL), 0);
        assert_int_equal(n, 1);
        assert_string_equal(m[0].mount_point, "/sys/fs/cgroup/unified");
        assert_string_equal(m[0].root, "/");
        cgroup_mounts_free(m, n);
}

static void test_mappings(void **state)
{
        (void) state;
        assert_int_equal(cgroup_v2_cpu_weight(0), 0);
        assert_int_equal(cgroup_v2_cpu_weight(2), 1);
        assert_int_equal(cgroup_v2_cpu_weight(512), 59);
        assert_int_equal(cgroup_v2_cpu_weight(1024), 100);
        assert_int_equal(cgroup_v2_cpu_weight(262144), 10000);
        assert_int_equal(cgroup_v2_cpu_weight(1u << 30), 10000);
        assert_int_equal(cgroup_v2_io_weight(10), 1);
        assert_int_equal(cgroup_v2_io_weight(500), 4950);
        assert_int_equal(cgroup_v2_io_weight(1000), 10000);
}

static void test_bpf_build(void **state)
{
        (void) state;
        struct silo_device_rule rules[] = {
                { .allow = false, .type = 'a', .major = -1, .minor = -1, .access = "rwm" },
                { .allow = true, .type = 'c', .major = 1, .minor = 3, .access = "rwm" },
                { .allow = true, .type = 'c', .major = 136, .minor = -1, .access = "rw" },
        };
        _cleanup_free_ struct bpf_insn *prog = NULL;
        size_t n = 0;

        assert_int_equal(cgroup_bpf_devices_build(rules, 3, &prog, &n, NULL), 0);
        /* prologue 6; last rule 2+1+3+1; middle 2+1+1+1; the first ('a')
         * 2 and it always decides, so no final deny. */
        assert_int_equal(n, 6 + 7 + 5 + 2);
        /* The last rule is checked first; a failed test skips its block. */
        assert_int_equal(prog[6].code, BPF_JMP32 | BPF_JNE | BPF_K);
        assert_int_equal(prog[6].imm, BPF_DEVCG_DEV_CHAR);
        assert_int_equal(prog[6].off, 6);
        assert_int_equal(prog[8].imm, BPF_DEVCG_ACC_MKNOD);     /* not in "rw" */
        assert_int_equal(prog[10].imm, 136);
        assert_int_equal(prog[10].off, 2);
        assert_int_equal(prog[11].imm, 1);
        assert_int_equal(prog[12].code, BPF_JMP | BPF_EXIT);
        assert_int_equal(prog[n - 2].imm, 0);
        assert_int_equal(prog[n - 1].code, BPF_JMP | BPF_EXIT);
        free(TAKE_PTR(prog));

        /* Without an 'a' rule, no match falls through to deny. */
        assert_int_equal(cgroup_bpf_devices_build(rules + 1, 1, &prog, &n, NULL), 0);
        assert_int_equal(n, 6 + 5 + 2);
        assert_int_equal(prog[n - 3].code, BPF_JMP | BPF_EXIT);
        assert_int_equal(prog[n - 2].imm, 0);
}

/* ---- v1 on the real hierarchy ---- */

static const char *const v1_ctrls[] = { "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids" };

static int v1_setup(void **state)
{
        (void) state;
        /* This machine is v1 hybrid (see COMMON.md); elsewhere these do not apply. */
        return silo_cgroup_host_version(NULL) == SILO_CGROUP_V1 ? 0 : -1;
}

static pid_t spawn_sleeper(void)
{
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                for (;;)
                        pause();
        }
        return pid;
}

static bool pid_listed(const pid_t *pids, size_t n, pid_t pid)
{
        for (size_t i = 0; i < n; i++)
                if (pids[i] == pid)
                        return true;
        return false;
}

static silo_cgroup *create(const struct silo_cgroup_options *opts, const char *path)
{
        silo_error err = SILO_ERROR_INIT;
        silo_cgroup *cg = NULL;
        if (silo_cgroup_create(opts, path, "unused", &cg, &err) < 0)
                fail_msg("create %s: %s", path, err.message);
        return cg;
}

static void set_resources(silo_cgroup *cg, const char *json)
{
        _cleanup_json_ json_t *j = load(json);
        silo_error err = SILO_ERROR_INIT;
        struct silo_resources res;
        if (silo_resources_parse(j, "linux.resources", &res, &err) < 0)
                fail_msg("parse: %s", err.message);
        if (silo_cgroup_set_resources(cg, &res, &err) < 0)
                fail_msg("set %s: %s", json, err.message);
        silo_resources_done(&res);
}

static int try_set_resources(silo_cgroup *cg, const char *json, silo_error *err)
{
        _cleanup_json_ json_t *j = load(json);
        struct silo_resources res;
        int r = silo_resources_parse(j, "linux.resources", &res, err);
        if (r == 0)
                r = silo_cgroup_set_resources(cg, &res, err);
        silo_resources_done(&res);
        return r;
}

static void destroy(silo_cgroup *cg)
{
        silo_error err = SILO_ERROR_INIT;
        if (silo_cgroup_destroy(cg, &err) < 0)
                fail_msg("destroy: %s", err.message);
        silo_cgroup_free(cg);
}

static void reap(pid_t pid, int expect_signal)
{
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), expect_signal);
}

static void test_v1_lifecycle(void **state)
{
        (void) state;
        char name[64], path[128];
        silo_error err = SILO_ERROR_INIT;
        test_name(name);
        snprintf(path, sizeof(path), "/%s/c1", name);

        silo_cgroup *cg = create(NULL, path);
        assert_int_equal(silo_cgroup_version(cg), SILO_CGROUP_V1);
        for (size_t i = 0; i < ARRAY_SIZE(v1_ctrls); i++)
                assert_true(exists("/sys/fs/cgroup/%s%s", v1_ctrls[i], path));
        /* cpuset was seeded from the parent so a task can join. */
        _cleanup_free_ char *cpus = slurp("/sys/fs/cgroup/cpuset%s/cpuset.cpus", path);
        assert_non_null(cpus);
        assert_true(*cpus);

        set_resources(cg, "{\"memory\": {\"limit\": 67108864, \"reservation\": 33554432, \"swap\": 134217728},"
                          " \"pids\": {\"limit\": 50},"
                          " \"cpu\": {\"shares\": 512, \"quota\": 50000, \"period\": 100000, \"cpus\": \"0\"}}");
        assert_file("67108864", "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", path);
        assert_file("134217728", "/sys/fs/cgroup/memory%s/memory.memsw.limit_in_bytes", path);
        assert_file("33554432", "/sys/fs/cgroup/memory%s/memory.soft_limit_in_bytes", path);
        assert_file("50", "/sys/fs/cgroup/pids%s/pids.max", path);
        assert_file("512", "/sys/fs/cgroup/cpu%s/cpu.shares", path);
        assert_file("50000", "/sys/fs/cgroup/cpu%s/cpu.cfs_quota_us", path);
        assert_file("100000", "/sys/fs/cgroup/cpu%s/cpu.cfs_period_us", path);
        assert_file("0", "/sys/fs/cgroup/cpuset%s/cpuset.cpus", path);

        pid_t child = spawn_sleeper();
        assert_int_equal(silo_cgroup_add_pid(cg, child, &err), 0);
        for (size_t i = 0; i < ARRAY_SIZE(v1_ctrls); i++) {
                char want[16];
                snprintf(want, sizeof(want), "%d", (int) child);
                assert_file(want, "/sys/fs/cgroup/%s%s/cgroup.procs", v1_ctrls[i], path);
        }
        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0;
        assert_int_equal(silo_cgroup_pids(cg, &pids, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_int_equal(pids[0], child);

        bool frozen = true;
        assert_int_equal(silo_cgroup_is_frozen(cg, &frozen, &err), 0);
        assert_false(frozen);
        assert_int_equal(silo_cgroup_freeze(cg, true, &err), 0);
        assert_file("FROZEN", "/sys/fs/cgroup/freezer%s/freezer.state", path);
        assert_int_equal(silo_cgroup_is_frozen(cg, &frozen, &err), 0);
        assert_true(frozen);
        assert_int_equal(silo_cgroup_freeze(cg, false, &err), 0);
        assert_file("THAWED", "/sys/fs/cgroup/freezer%s/freezer.state", path);

        json_t *stats = NULL;
        assert_int_equal(silo_cgroup_stats(cg, &stats, &err), 0);
        assert_non_null(json_object_get(json_object_get(json_object_get(stats, "cpu"), "usage"), "kernel"));
        assert_non_null(json_object_get(json_object_get(stats, "cpu"), "throttling"));
        json_t *mem = json_object_get(stats, "memory");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(mem, "usage"), "limit")), 64 * MB);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(mem, "swap"), "limit")), 128 * MB);
        assert_true(json_is_object(json_object_get(mem, "raw")));
        assert_non_null(json_object_get(json_object_get(mem, "raw"), "rss"));
        assert_int_equal(json_integer_value(json_object_get(json_object_get(stats, "pids"), "current")), 1);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(stats, "pids"), "limit")), 50);
        assert_true(json_is_array(json_object_get(json_object_get(stats, "cpuset"), "cpus")));
        assert_true(json_is_object(json_object_get(stats, "blkio")));
        assert_true(json_is_object(json_object_get(stats, "hugetlb")));
        json_decref(stats);

        uint64_t ooms = 99;
        assert_int_equal(silo_cgroup_oom_count(cg, &ooms, &err), 0);
        assert_int_equal(ooms, 0);
        assert_int_equal(silo_cgroup_clone_fd(cg, &err), -EOPNOTSUPP);

        assert_int_equal(silo_cgroup_kill_all(cg, SIGTERM, &err), 0);
        reap(child, SIGTERM);
        assert_file("THAWED", "/sys/fs/cgroup/freezer%s/freezer.state", path);

        destroy(cg);
        for (size_t i = 0; i < ARRAY_SIZE(v1_ctrls); i++)
                assert_false(exists("/sys/fs/cgroup/%s/%s", v1_ctrls[i], name));
}

static void test_v1_memory_ordering(void **state)
{
        (void) state;
        char name[64], path[128];
        test_name(name);
        snprintf(path, sizeof(path), "/%s/mem", name);
        silo_cgroup *cg = create(NULL, path);

        /* Up (memsw must grow first), down (limit must shrink first), unlimited. */
        set_resources(cg, "{\"memory\": {\"limit\": 67108864, \"swap\": 134217728}}");
        set_resources(cg, "{\"memory\": {\"limit\": 268435456, \"swap\": 536870912}}");
        assert_file("268435456", "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", path);
        assert_file("536870912", "/sys/fs/cgroup/memory%s/memory.memsw.limit_in_bytes", path);
        set_resources(cg, "{\"memory\": {\"limit\": 33554432, \"swap\": 67108864}}");
        assert_file("33554432", "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", path);
        assert_file("67108864", "/sys/fs/cgroup/memory%s/memory.memsw.limit_in_bytes", path);
        set_resources(cg, "{\"memory\": {\"limit\": -1}}");
        _cleanup_free_ char *unlimited = slurp("/sys/fs/cgroup/memory%s/memory.memsw.limit_in_bytes", path);
        assert_true(strtoull(unlimited, NULL, 10) > (1ull << 60));

        silo_error err = SILO_ERROR_INIT;
        expect_error_contains(try_set_resources(cg, "{\"memory\": {\"limit\": 67108864, \"swap\": 1048576}}", &err),
                              &err, EINVAL, "linux.resources.memory.swap (1048576) is memory+swap and must not be "
                                            "below linux.resources.memory.limit (67108864)");
        expect_error_contains(try_set_resources(cg, "{\"unified\": {\"memory.high\": \"1M\"}}", &err), &err,
                              EOPNOTSUPP, "linux.resources.unified: cgroup v2 settings cannot be applied on a cgroup v1 host");
        expect_error_contains(try_set_resources(cg, "{\"hugepageLimits\": [{\"pageSize\": \"2MB\", \"limit\": 0}]}", &err),
                              &err, EOPNOTSUPP,
                              "cgroup v1 controller 'hugetlb' is not mounted (needed for linux.resources.hugepageLimits)");
        expect_error_contains(try_set_resources(cg, "{\"cpu\": {\"shares\": 1}}", &err), &err, ERANGE,
                              "linux.resources.cpu.shares: 1 is out of the kernel's range (it became 2)");
        expect_error_contains(try_set_resources(cg, "{\"pids\": {\"limit\": 10}, \"cpu\": {\"cpus\": \"999\"}}", &err),
                              &err, ERANGE, "linux.resources.cpu.cpus: write '999' to /sys/fs/cgroup/cpuset/");
        destroy(cg);
        assert_false(exists("/sys/fs/cgroup/memory/%s", name));
}

/* A child joins the cgroup, then reports whether it could open each device. */
static void check_device_access(silo_cgroup *cg, bool null_ok, bool zero_ok)
{
        int go[2], result[2];
        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
        assert_int_equal(pipe2(result, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char c, out[2];
                if (read(go[0], &c, 1) != 1)
                        _exit(1);
                int a = open("/dev/null", O_RDWR), b = open("/dev/zero", O_RDONLY);
                out[0] = a >= 0 ? 'y' : errno == EPERM ? 'n' : '?';
                out[1] = b >= 0 ? 'y' : errno == EPERM ? 'n' : '?';
                _exit(write(result[1], out, 2) == 2 ? 0 : 1);
        }
        close(go[0]);
        close(result[1]);
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(silo_cgroup_add_pid(cg, pid, &err), 0);
        assert_int_equal(write(go[1], "x", 1), 1);
        char out[2] = "";
        assert_int_equal(read(result[0], out, 2), 2);
        assert_int_equal(out[0], null_ok ? 'y' : 'n');
        assert_int_equal(out[1], zero_ok ? 'y' : 'n');
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(go[1]);
        close(result[0]);
}

static const char deny_all_but_null[] =
        "{\"devices\": [{\"allow\": true, \"access\": \"rwm\"}, {\"allow\": false, \"access\": \"rwm\"},"
        " {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 3, \"access\": \"rw\"}]}";

static void test_v1_devices(void **state)
{
        (void) state;
        char name[64], path[128];
        test_name(name);
        snprintf(path, sizeof(path), "/%s/dev", name);
        silo_cgroup *cg = create(NULL, path);

        set_resources(cg, deny_all_but_null);
        assert_file("c 1:3 rw", "/sys/fs/cgroup/devices%s/devices.list", path);
        check_device_access(cg, true, false);
        set_resources(cg, "{\"devices\": [{\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 5, \"access\": \"r\"},"
                          " {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 3, \"access\": \"rw\"}]}");
        check_device_access(cg, true, true);
        destroy(cg);
        assert_false(exists("/sys/fs/cgroup/devices/%s", name));
}

static void test_v1_shared_parent_and_save(void **state)
{
        (void) state;
        char name[64], a[128], b[128], parent[160];
        silo_error err = SILO_ERROR_INIT;
        test_name(name);
        snprintf(a, sizeof(a), "/%s/a", name);
        snprintf(b, sizeof(b), "/%s/b", name);

        silo_cgroup *cga = create(NULL, a), *cgb = create(NULL, b);

        /* b's manager did not make the parent; a's did.  Round-trip b. */
        json_t *saved = silo_cgroup_save(cgb);
        assert_non_null(saved);
        assert_int_equal(json_integer_value(json_object_get(saved, "version")), 1);
        json_t *first = json_array_get(json_object_get(saved, "hierarchies"), 0);
        assert_string_equal(json_string_value(json_object_get(first, "path")), b);
        assert_int_equal(json_integer_value(json_object_get(first, "created")), 1);
        silo_cgroup *loaded = NULL;
        assert_int_equal(silo_cgroup_load(saved, &loaded, &err), 0);
        json_decref(saved);
        assert_int_equal(silo_cgroup_version(loaded), SILO_CGROUP_V1);
        silo_cgroup_free(cgb);

        /* a goes first: its parent is still in use by b and must stay. */
        destroy(cga);
        assert_false(exists("/sys/fs/cgroup/memory%s", a));
        assert_true(exists("/sys/fs/cgroup/memory%s", b));
        destroy(loaded);
        assert_false(exists("/sys/fs/cgroup/pids%s", b));
        for (size_t i = 0; i < ARRAY_SIZE(v1_ctrls); i++) {
                /* Nobody owns it any more: the test removes it. */
                snprintf(parent, sizeof(parent), "/sys/fs/cgroup/%s/%s", v1_ctrls[i], name);
                assert_true(exists("%s", parent));
                assert_int_equal(rmdir(parent), 0);
        }
}

static void test_v1_kill_all_sigkill(void **state)
{
        (void) state;
        char name[64], path[128];
        silo_error err = SILO_ERROR_INIT;
        test_name(name);
        snprintf(path, sizeof(path), "/%s/k", name);
        silo_cgroup *cg = create(NULL, path);

        pid_t kids[3];
        for (size_t i = 0; i < ARRAY_SIZE(kids); i++) {
                kids[i] = spawn_sleeper();
                assert_int_equal(silo_cgroup_add_pid(cg, kids[i], &err), 0);
        }
        /* Paused containers can still be killed: SIGKILL thaws afterwards. */
        assert_int_equal(silo_cgroup_freeze(cg, true, &err), 0);
        assert_int_equal(silo_cgroup_kill_all(cg, SIGKILL, &err), 0);
        for (size_t i = 0; i < ARRAY_SIZE(kids); i++)
                reap(kids[i], SIGKILL);
        destroy(cg);
        assert_false(exists("/sys/fs/cgroup/freezer/%s", name));
}

static void test_v1_create_rollback(void **state)
{
        (void) state;
        char name[64], dir[160], path[128];
        silo_error err = SILO_ERROR_INIT;
        silo_cgroup *cg = NULL;
        test_name(name);

        /* A cpuset parent with no cpus (made by hand, so nothing was copied
         * down): the new child cannot be initialized, and create must undo
         * everything it made in every hierarchy. */
        snprintf(dir, sizeof(dir), "/sys/fs/cgroup/cpuset/%s", name);
        assert_int_equal(mkdir(dir, 0755), 0);
        snprintf(path, sizeof(path), "/%s/x/y", name);
        int r = silo_cgroup_create(NULL, path, "unused", &cg, &err);
        char want[256];
        snprintf(want, sizeof(want), "initialize /sys/fs/cgroup/cpuset/%s/x: the parent cgroup has an empty cpuset.cpus",
                 name);
        expect_error_contains(r, &err, EINVAL, want);
        assert_null(cg);
        for (size_t i = 0; i < ARRAY_SIZE(v1_ctrls); i++)
                if (strcmp(v1_ctrls[i], "cpuset"))
                        assert_false(exists("/sys/fs/cgroup/%s/%s", v1_ctrls[i], name));
        assert_false(exists("%s/x", dir));
        assert_int_equal(rmdir(dir), 0);
}

static void test_v1_destroy_busy(void **state)
{
        (void) state;
        char name[64], path[128];
        silo_error err = SILO_ERROR_INIT;
        test_name(name);
        snprintf(path, sizeof(path), "/%s/busy", name);
        silo_cgroup *cg = create(NULL, path);

        /* A cgroup the container made itself goes too. */
        char nested[256];
        snprintf(nested, sizeof(nested), "/sys/fs/cgroup/memory%s/inner", path);
        assert_int_equal(mkdir(nested, 0755), 0);

        /* Still populated: destroy gives up after about a second. */
        pid_t pid = spawn_sleeper();
        assert_int_equal(silo_cgroup_add_pid(cg, pid, &err), 0);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        expect_error_contains(silo_cgroup_destroy(cg, &err), &err, EBUSY, "rmdir /sys/fs/cgroup/");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
        assert_true(secs >= 0.9 && secs < 5);

        assert_int_equal(silo_cgroup_kill_all(cg, SIGKILL, &err), 0);
        reap(pid, SIGKILL);
        destroy(cg);
        for (size_t i = 0; i < ARRAY_SIZE(v1_ctrls); i++)
                assert_false(exists("/sys/fs/cgroup/%s/%s", v1_ctrls[i], name));
}

/* ---- v2 in a private cgroup2 mount ---- */

static char v2_root[64];

static int v2_setup(void **state)
{
        (void) state;
        /* Only this process sees the mount; it goes away with it. */
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return -1;
        snprintf(v2_root, sizeof(v2_root), "/tmp/silo-cgroup2-XXXXXX");
        if (!mkdtemp(v2_root))
                return -1;
        if (mount("none", v2_root, "cgroup2", 0, NULL) < 0) {
                rmdir(v2_root);
                return -1;
        }
        return 0;
}

static int v2_teardown(void **state)
{
        (void) state;
        umount2(v2_root, MNT_DETACH);
        return rmdir(v2_root);
}

static void test_v2_lifecycle(void **state)
{
        (void) state;
        struct silo_cgroup_options opts = { .root = v2_root };
        char name[64], path[128];
        silo_error err = SILO_ERROR_INIT;
        test_name(name);
        snprintf(path, sizeof(path), "/%s/c1", name);

        assert_int_equal(silo_cgroup_host_version(&opts), SILO_CGROUP_V2);
        silo_cgroup *cg = create(&opts, path);
        assert_int_equal(silo_cgroup_version(cg), SILO_CGROUP_V2);
        assert_true(exists("%s%s/cgroup.procs", v2_root, path));

        pid_t a = spawn_sleeper();
        assert_int_equal(silo_cgroup_add_pid(cg, a, &err), 0);

        /* A second child starts inside, through clone3(CLONE_INTO_CGROUP). */
        int cfd = silo_cgroup_clone_fd(cg, &err);
        assert_true(cfd >= 0);
        struct clone_args args = { .flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t) cfd };
        pid_t b = (pid_t) syscall(SYS_clone3, &args, sizeof(args));
        assert_true(b >= 0);
        if (b == 0) {
                for (;;)
                        pause();
        }
        close(cfd);

        _cleanup_free_ pid_t *pids = NULL;
        size_t n = 0;
        assert_int_equal(silo_cgroup_pids(cg, &pids, &n, &err), 0);
        assert_int_equal(n, 2);
        assert_true(pid_listed(pids, n, a) && pid_listed(pids, n, b));

        bool frozen = true;
        assert_int_equal(silo_cgroup_is_frozen(cg, &frozen, &err), 0);
        assert_false(frozen);
        assert_int_equal(silo_cgroup_freeze(cg, true, &err), 0);
        assert_file("1", "%s%s/cgroup.freeze", v2_root, path);
        assert_int_equal(silo_cgroup_is_frozen(cg, &frozen, &err), 0);
        assert_true(frozen);
        assert_int_equal(silo_cgroup_freeze(cg, false, &err), 0);
        assert_int_equal(silo_cgroup_is_frozen(cg, &frozen, &err), 0);
        assert_false(frozen);

        json_t *stats = NULL;
        assert_int_equal(silo_cgroup_stats(cg, &stats, &err), 0);
        assert_true(json_is_integer(json_object_get(json_object_get(json_object_get(stats, "cpu"), "usage"), "user")));
        assert_true(json_is_object(json_object_get(stats, "memory")));
        json_decref(stats);
        assert_int_equal(silo_cgroup_oom_count(cg, &(uint64_t) { 0 }, &err), -EOPNOTSUPP);

        /* SIGTERM: freeze, signal each, thaw. */
        assert_int_equal(silo_cgroup_kill_all(cg, SIGTERM, &err), 0);
        reap(a, SIGTERM);
        reap(b, SIGTERM);
        assert_file("0", "%s%s/cgroup.freeze", v2_root, path);

        /* SIGKILL: cgroup.kill. */
        pid_t c = spawn_sleeper();
        assert_int_equal(silo_cgroup_add_pid(cg, c, &err), 0);
        assert_int_equal(silo_cgroup_kill_all(cg, SIGKILL, &err), 0);
        reap(c, SIGKILL);

        destroy(cg);
        assert_false(exists("%s/%s", v2_root, name));
}

static void test_v2_missing_controller(void **state)
{
        (void) state;
        struct silo_cgroup_options opts = { .root = v2_root };
        char name[64], path[128];
        silo_error err = SILO_ERROR_INIT;
        test_name(name);
        snprintf(path, sizeof(path), "/%s/c", name);
        silo_cgroup *cg = create(&opts, path);

        /* All controllers but hugetlb are bound to v1 on this machine. */
        expect_error_contains(try_set_resources(cg, "{\"memory\": {\"limit\": 67108864}}", &err), &err, EOPNOTSUPP,
                              "cgroup v2 controller 'memory' is not available (needed for linux.resources.memory.limit;");
        expect_error_contains(try_set_resources(cg, "{\"unified\": {\"pids.max\": \"10\"}}", &err), &err, EOPNOTSUPP,
                              "cgroup v2 controller 'pids' is not available (needed for linux.resources.unified.pids.max;");
        expect_error_contains(try_set_resources(cg, "{\"cpu\": {\"realtimeRuntime\": 1000}}", &err), &err, EOPNOTSUPP,
                              "linux.resources.cpu.realtimeRuntime: real-time CPU limits are not supported on cgroup v2");
        expect_error_contains(try_set_resources(cg, "{\"network\": {\"classID\": 1}}", &err), &err, EOPNOTSUPP,
                              "linux.resources.network: the net_cls and net_prio controllers do not exist on cgroup v2");
        /* Nothing was enabled on the way. */
        assert_file("", "%s/%s/cgroup.subtree_control", v2_root, name);
        destroy(cg);
        assert_false(exists("%s/%s", v2_root, name));
}

static uint32_t attached_programs(const char *dir)
{
        _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        uint32_t ids[8];
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.query.target_fd = (uint32_t) fd;
        attr.query.attach_type = BPF_CGROUP_DEVICE;
        attr.query.prog_ids = (uint64_t) (uintptr_t) ids;
        attr.query.prog_cnt = 8;
        assert_int_equal(syscall(SYS_bpf, BPF_PROG_QUERY, &attr, sizeof(attr)), 0);
        return attr.query.prog_cnt;
}

static void test_v2_devices(void **state)
{
        (void) state;
        struct silo_cgroup_options opts = { .root = v2_root };
        char name[64], path[128], dir[256];
        test_name(name);
        snprintf(path, sizeof(path), "/%s/dev", name);
        snprintf(dir, sizeof(dir), "%s%s", v2_root, path);
        silo_cgroup *cg = create(&opts, path);

        set_resources(cg, deny_all_but_null);
        assert_int_equal(attached_programs(dir), 1);
        check_device_access(cg, true, false);
        /* An update replaces the program rather than stacking another. */
        set_resources(cg, "{\"devices\": [{\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 5, \"access\": \"r\"},"
                          " {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 3, \"access\": \"rw\"}]}");
        assert_int_equal(attached_programs(dir), 1);
        check_device_access(cg, true, true);
        /* Access bits: read-only /dev/null refuses O_RDWR. */
        set_resources(cg, "{\"devices\": [{\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 3, \"access\": \"r\"}]}");
        check_device_access(cg, false, false);
        destroy(cg);
        assert_false(exists("%s/%s", v2_root, name));
}

/* ---- v2 value mapping on a tree of plain files ---- */

static void put(int dfd, const char *file, const char *content)
{
        assert_int_equal(silo_write_file_atomic_at(dfd, file, content, strlen(content), 0644, NULL), 0);
}

static const char *const leaf_files[] = {
        "memory.max", "memory.low", "memory.swap.max", "cpu.weight", "cpu.max", "cpu.max.burst", "cpu.idle",
        "cpuset.cpus", "cpuset.mems", "pids.max", "io.weight", "io.max", "hugetlb.2MB.max", "memory.high",
        "cgroup.procs", "memory.current",
};

static void test_v2_fake_mapping(void **state)
{
        (void) state;
        char root[64] = "/tmp/silo-fakecg-XXXXXX";
        silo_error err = SILO_ERROR_INIT;
        silo_cgroup *cg = NULL;
        assert_non_null(mkdtemp(root));
        struct silo_cgroup_options opts = { .root = root };
        _cleanup_close_ int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        const char *all = "cpuset cpu io memory hugetlb pids\n";
        put(rfd, "cgroup.controllers", all);
        put(rfd, "cgroup.subtree_control", "");

        assert_int_equal(cgroup_create_as(&opts, SILO_CGROUP_V2, "/parent/leaf", "x", &cg, &err), 0);
        _cleanup_close_ int pfd = openat(rfd, "parent", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        _cleanup_close_ int lfd = openat(rfd, "parent/leaf", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(pfd >= 0 && lfd >= 0);
        put(pfd, "cgroup.controllers", all);
        put(pfd, "cgroup.subtree_control", "memory\n");
        for (size_t i = 0; i < ARRAY_SIZE(leaf_files); i++)
                put(lfd, leaf_files[i], "");
        put(lfd, "cpu.max", "max 100000\n");
        put(lfd, "memory.current", "1000000\n");

        set_resources(cg, "{\"memory\": {\"limit\": 104857600, \"reservation\": 52428800, \"swap\": 157286400},"
                          " \"cpu\": {\"shares\": 1024, \"quota\": 50000, \"period\": 100000, \"burst\": 1000,"
                          "           \"idle\": 0, \"cpus\": \"0-1\", \"mems\": \"0\"},"
                          " \"pids\": {\"limit\": 100},"
                          " \"blockIO\": {\"weight\": 500, \"leafWeight\": 100,"
                          "   \"throttleReadBpsDevice\": [{\"major\": 8, \"minor\": 0, \"rate\": 1048576}],"
                          "   \"throttleWriteIOPSDevice\": [{\"major\": 8, \"minor\": 0, \"rate\": 100}]},"
                          " \"hugepageLimits\": [{\"pageSize\": \"2MB\", \"limit\": 4194304}],"
                          " \"unified\": {\"memory.high\": \"90M\"}}");
        assert_file("+cpuset +memory +cpu +pids +io +hugetlb", "%s/cgroup.subtree_control", root);
        assert_file("+cpuset +cpu +pids +io +hugetlb", "%s/parent/cgroup.subtree_control", root);
        assert_file("104857600", "%s/parent/leaf/memory.max", root);
        assert_file("52428800", "%s/parent/leaf/memory.low", root);
        assert_file("52428800", "%s/parent/leaf/memory.swap.max", root);
        assert_file("100", "%s/parent/leaf/cpu.weight", root);
        assert_file("50000 100000", "%s/parent/leaf/cpu.max", root);
        assert_file("1000", "%s/parent/leaf/cpu.max.burst", root);
        assert_file("0", "%s/parent/leaf/cpu.idle", root);
        assert_file("0-1", "%s/parent/leaf/cpuset.cpus", root);
        assert_file("100", "%s/parent/leaf/pids.max", root);
        assert_file("4950", "%s/parent/leaf/io.weight", root);
        assert_file("8:0 rbps=1048576 wiops=100", "%s/parent/leaf/io.max", root);
        assert_file("4194304", "%s/parent/leaf/hugetlb.2MB.max", root);
        assert_file("90M", "%s/parent/leaf/memory.high", root);

        /* Only the period: the current quota is kept.  Unlimited values. */
        put(lfd, "cpu.max", "50000 100000\n");
        set_resources(cg, "{\"cpu\": {\"period\": 200000}, \"memory\": {\"limit\": -1}, \"pids\": {\"limit\": 0}}");
        assert_file("50000 200000", "%s/parent/leaf/cpu.max", root);
        assert_file("max", "%s/parent/leaf/memory.max", root);
        assert_file("max", "%s/parent/leaf/memory.swap.max", root);
        assert_file("max", "%s/parent/leaf/pids.max", root);
        set_resources(cg, "{\"memory\": {\"limit\": 1048576, \"swap\": -1}, \"cpu\": {\"quota\": -1}}");
        assert_file("max", "%s/parent/leaf/memory.swap.max", root);
        assert_file("max", "%s/parent/leaf/cpu.max", root);

        expect_error_contains(try_set_resources(cg, "{\"memory\": {\"limit\": 10, \"checkBeforeUpdate\": true}}", &err),
                              &err, EBUSY, "linux.resources.memory.limit: 10 is below the current usage of 1000000 bytes");
        expect_error_contains(try_set_resources(cg, "{\"memory\": {\"swap\": 1048576}}", &err), &err, EINVAL,
                              "linux.resources.memory.swap: cannot limit swap without a memory limit on cgroup v2");
        expect_error_contains(try_set_resources(cg, "{\"blockIO\": {\"weight\": 5}}", &err), &err, ERANGE,
                              "linux.resources.blockIO.weight: 5 is outside the blkio range 10-1000");
        put(pfd, "cgroup.controllers", "cpu memory\n");
        expect_error_contains(try_set_resources(cg, "{\"pids\": {\"limit\": 5}}", &err), &err, EOPNOTSUPP,
                              "cgroup v2 controller 'pids' is not available (needed for linux.resources.pids.limit; ");

        /* The test's files out of the way, destroy removes both directories. */
        for (size_t i = 0; i < ARRAY_SIZE(leaf_files); i++)
                assert_int_equal(unlinkat(lfd, leaf_files[i], 0), 0);
        assert_int_equal(unlinkat(pfd, "cgroup.controllers", 0), 0);
        assert_int_equal(unlinkat(pfd, "cgroup.subtree_control", 0), 0);
        destroy(cg);
        assert_false(exists("%s/parent", root));
        assert_int_equal(silo_rm_rf_at(AT_FDCWD, root, NULL), 0);
}

static void test_load_errors(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        silo_cgroup *cg = NULL;
        const struct { const char *json, *message; } cases[] = {
                { "{\"version\": 3, \"hierarchies\": []}", "cgroup.version: unknown version 3" },
                { "{\"version\": 2}", "cgroup.hierarchies: required field is missing" },
                { "{\"version\": 2, \"hierarchies\": [{\"controllers\": \"\", \"mount\": \"/sys/fs/cgroup\","
                  " \"path\": \"/a/../b\", \"created\": 1}]}",
                  "cgroup.hierarchies[0].path: cgroup path '/a/../b': '.' and '..' components are not allowed" },
                { "{\"version\": 2, \"hierarchies\": [{\"controllers\": \"\", \"mount\": \"/sys/fs/cgroup\","
                  " \"path\": \"/a/b\", \"created\": 3}]}",
                  "cgroup.hierarchies[0].created: 3 is more than the path has" },
                { "{\"version\": 2, \"hierarchies\": [{\"controllers\": \"\", \"mount\": \"rel\","
                  " \"path\": \"/a\", \"created\": 0}]}",
                  "cgroup.hierarchies[0].mount: 'rel' is not absolute" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                _cleanup_json_ json_t *j = load(cases[i].json);
                assert_true(silo_cgroup_load(j, &cg, &err) < 0);
                assert_string_equal(err.message, cases[i].message);
        }
        assert_int_equal(silo_cgroup_create(NULL, "system.slice:silo:x", "x", &cg, &err), -EOPNOTSUPP);
        assert_string_equal(err.message, "cgroupsPath 'system.slice:silo:x': systemd cgroup paths are not supported; "
                                         "use cgroupfs");
        struct silo_cgroup_options bad = { .root = "/proc" };
        assert_int_equal(silo_cgroup_host_version(&bad), SILO_CGROUP_NONE);
        assert_int_equal(silo_cgroup_create(&bad, "/x", "x", &cg, &err), -ENODEV);
        assert_string_equal(err.message, "/proc is neither a cgroup2 mount nor a tmpfs holding cgroup v1 controllers");
}

int main(void)
{
        const struct CMUnitTest pure[] = {
                cmocka_unit_test(test_parse_full),
                cmocka_unit_test(test_parse_empty),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_resolve_path),
                cmocka_unit_test(test_parse_own),
                cmocka_unit_test(test_parse_mounts),
                cmocka_unit_test(test_mappings),
                cmocka_unit_test(test_bpf_build),
                cmocka_unit_test(test_load_errors),
                cmocka_unit_test(test_v2_fake_mapping),
        };
        const struct CMUnitTest v1[] = {
                cmocka_unit_test(test_v1_lifecycle),
                cmocka_unit_test(test_v1_memory_ordering),
                cmocka_unit_test(test_v1_devices),
                cmocka_unit_test(test_v1_shared_parent_and_save),
                cmocka_unit_test(test_v1_kill_all_sigkill),
                cmocka_unit_test(test_v1_create_rollback),
                cmocka_unit_test(test_v1_destroy_busy),
        };
        const struct CMUnitTest v2[] = {
                cmocka_unit_test(test_v2_lifecycle),
                cmocka_unit_test(test_v2_missing_controller),
                cmocka_unit_test(test_v2_devices),
        };
        int failed = cmocka_run_group_tests_name("cgroup", pure, NULL, NULL);
        failed += cmocka_run_group_tests_name("cgroup-v1", v1, v1_setup, NULL);
        /* Last: it moves this process into a private mount namespace. */
        failed += cmocka_run_group_tests_name("cgroup-v2", v2, v2_setup, v2_teardown);
        return failed;
}
