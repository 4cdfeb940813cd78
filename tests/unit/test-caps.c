/* Capabilities: names, parsing with exact messages, and the five sets
 * applied in forked children, checked through /proc/self/status. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "process/caps.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define BIT(cap) (UINT64_C(1) << (cap))

static json_t *load(const char *text)
{
        json_error_t jerr;
        json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
        assert_non_null(j);
        return j;
}

static void expect_parse_error(const char *text, const char *message)
{
        silo_error err = SILO_ERROR_INIT;
        struct silo_caps caps;
        _cleanup_json_ json_t *j = load(text);

        assert_int_equal(silo_caps_parse(j, "process.capabilities", &caps, &err), -EINVAL);
        assert_string_equal(err.message, message);
        assert_false(caps.set);
}

/* Runs fn in a child whose stdout-like output goes through a pipe into
 * `out`; returns the wait status. */
static int run_child(int (*fn)(void *arg, int out_fd), void *arg, char *out, size_t out_size)
{
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);

        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(p[0]);
                _exit(fn(arg, p[1]));
        }
        close(p[1]);

        size_t len = 0;
        for (;;) {
                ssize_t n = read(p[0], out + len, out_size - 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += n;
        }
        out[len] = '\0';
        close(p[0]);

        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

static void assert_child_ok(int status, const char *out)
{
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("child status 0x%x, output: %s", status, out);
}

/* Copies the Cap* lines of /proc/self/status to fd. */
static int dump_cap_status(int fd)
{
        _cleanup_free_ char *status = NULL;
        if (silo_read_file_at(AT_FDCWD, "/proc/self/status", 1 << 16, &status, NULL, NULL) < 0)
                return 90;
        for (char *line = strtok(status, "\n"); line; line = strtok(NULL, "\n"))
                if (strncmp(line, "Cap", 3) == 0)
                        dprintf(fd, "%s\n", line);
        return 0;
}

static uint64_t status_mask(const char *out, const char *key)
{
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "%s:\t", key);
        const char *p = strstr(out, prefix);
        if (!p)
                fail_msg("%s missing from: %s", key, out);
        return strtoull(p + strlen(prefix), NULL, 16);
}

static void test_names(void **state)
{
        (void) state;
        int last = silo_cap_last();
        _cleanup_free_ char *proc = NULL;

        assert_int_equal(silo_read_file_at(AT_FDCWD, "/proc/sys/kernel/cap_last_cap", 64, &proc, NULL, NULL), 0);
        assert_int_equal(last, atoi(proc));

        for (int cap = 0; cap <= last; cap++) {
                const char *name = silo_cap_name(cap);
                cap_value_t v;
                assert_non_null(name);
                assert_int_equal(silo_cap_from_name(name), cap);
                /* Our table agrees with libcap's. */
                assert_int_equal(cap_from_name(name, &v), 0);
                assert_int_equal(v, cap);
        }

        assert_int_equal(silo_cap_from_name("CAP_CHOWN"), CAP_CHOWN);
        assert_int_equal(silo_cap_from_name("cap_net_raw"), CAP_NET_RAW);
        assert_int_equal(silo_cap_from_name("CAP_CHECKPOINT_RESTORE"), 40);
        assert_int_equal(silo_cap_from_name("CAP_FOO"), -1);
        assert_int_equal(silo_cap_from_name("CHOWN"), -1);
        assert_int_equal(silo_cap_from_name("0"), -1);
        assert_int_equal(silo_cap_from_name(""), -1);
        assert_int_equal(silo_cap_from_name(NULL), -1);
        assert_null(silo_cap_name(-1));
        assert_null(silo_cap_name(64));
}

static void test_parse_list(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        uint64_t mask = 1;

        _cleanup_json_ json_t *good = load("[\"CAP_CHOWN\", \"CAP_KILL\", \"CAP_CHOWN\"]");
        assert_int_equal(silo_caps_parse_list(good, "process.capabilities.bounding", &mask, &err), 0);
        assert_int_equal(mask, BIT(CAP_CHOWN) | BIT(CAP_KILL));

        assert_int_equal(silo_caps_parse_list(NULL, "x", &mask, &err), 0);
        assert_int_equal(mask, 0);

        _cleanup_json_ json_t *unknown = load("[\"CAP_CHOWN\", \"CAP_FOO\"]");
        assert_int_equal(silo_caps_parse_list(unknown, "process.capabilities.bounding", &mask, &err), -EINVAL);
        assert_string_equal(err.message, "process.capabilities.bounding[1]: unknown capability \"CAP_FOO\"");

        _cleanup_json_ json_t *number = load("[21]");
        assert_int_equal(silo_caps_parse_list(number, "process.capabilities.effective", &mask, &err), -EINVAL);
        assert_string_equal(err.message, "process.capabilities.effective[0]: expected a string, got integer");

        _cleanup_json_ json_t *object = load("{}");
        assert_int_equal(silo_caps_parse_list(object, "process.capabilities.ambient", &mask, &err), -EINVAL);
        assert_string_equal(err.message, "process.capabilities.ambient: expected an array of strings, got object");
}

static void test_parse_object(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        struct silo_caps caps;

        _cleanup_json_ json_t *j = load(
                "{\"bounding\":[\"CAP_CHOWN\",\"CAP_NET_RAW\",\"CAP_KILL\"],"
                "\"effective\":[\"CAP_CHOWN\"],\"permitted\":[\"CAP_CHOWN\",\"CAP_NET_RAW\"],"
                "\"inheritable\":[\"CAP_NET_RAW\"],\"ambient\":[\"CAP_NET_RAW\"],\"unknownKey\":1}");
        assert_int_equal(silo_caps_parse(j, "process.capabilities", &caps, &err), 0);
        assert_true(caps.set);
        assert_int_equal(caps.bounding, BIT(CAP_CHOWN) | BIT(CAP_NET_RAW) | BIT(CAP_KILL));
        assert_int_equal(caps.effective, BIT(CAP_CHOWN));
        assert_int_equal(caps.permitted, BIT(CAP_CHOWN) | BIT(CAP_NET_RAW));
        assert_int_equal(caps.inheritable, BIT(CAP_NET_RAW));
        assert_int_equal(caps.ambient, BIT(CAP_NET_RAW));

        /* Absent sets are empty: nothing is granted by default. */
        _cleanup_json_ json_t *partial = load("{\"bounding\":[\"CAP_KILL\"],\"ambient\":null}");
        assert_int_equal(silo_caps_parse(partial, "process.capabilities", &caps, &err), 0);
        assert_true(caps.set);
        assert_int_equal(caps.bounding, BIT(CAP_KILL));
        assert_int_equal(caps.effective | caps.permitted | caps.inheritable | caps.ambient, 0);

        assert_int_equal(silo_caps_parse(NULL, "process.capabilities", &caps, &err), 0);
        assert_false(caps.set);

        expect_parse_error("\"CAP_CHOWN\"", "process.capabilities: expected an object, got string");
        expect_parse_error("{\"permitted\":[\"CAP_CHOWN\",\"CAP_BOGUS\"]}",
                           "process.capabilities.permitted[1]: unknown capability \"CAP_BOGUS\"");
        /* An ambient capability the kernel could not raise (not permitted
         * and inheritable) parses; applying skips it, as runc does. */
        _cleanup_json_ json_t *loose = load("{\"permitted\":[\"CAP_NET_RAW\"],\"ambient\":[\"CAP_NET_RAW\"]}");
        assert_int_equal(silo_caps_parse(loose, "process.capabilities", &caps, &err), 0);
        assert_int_equal(caps.ambient, BIT(CAP_NET_RAW));
        expect_parse_error("{\"effective\":[\"CAP_KILL\"],\"permitted\":[\"CAP_CHOWN\"]}",
                           "process.capabilities.effective: CAP_KILL is not in the permitted set "
                           "(effective must be a subset of permitted)");
}

/* Replaces /proc/sys/kernel/cap_last_cap, in a private mount namespace,
 * with a file holding `content`. */
static int fake_cap_last_cap(const char *file, const char *content)
{
        silo_error err = SILO_ERROR_INIT;

        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return 1;
        if (silo_write_string_at(AT_FDCWD, file, content, &err) < 0)
                return 2;
        if (mount(file, "/proc/sys/kernel/cap_last_cap", NULL, MS_BIND, NULL) < 0)
                return 3;
        return 0;
}

static int child_old_kernel(void *arg, int out_fd)
{
        silo_error err = SILO_ERROR_INIT;
        uint64_t mask;

        /* Pretend the kernel stops at CAP_PERFMON (38), as 5.8 did. */
        int r = fake_cap_last_cap(arg, "38\n");
        if (r)
                return r;
        if (silo_cap_last() != 38)
                return 4;

        _cleanup_json_ json_t *j = json_loads("[\"CAP_CHOWN\",\"CAP_BPF\",\"CAP_CHECKPOINT_RESTORE\",\"CAP_PERFMON\"]", 0, NULL);
        if (silo_caps_parse_list(j, "process.capabilities.bounding", &mask, &err) < 0) {
                dprintf(out_fd, "%s", err.message);
                return 5;
        }
        return mask == (BIT(CAP_CHOWN) | BIT(CAP_PERFMON)) ? 0 : 6;
}

/* An unreadable cap_last_cap (no /proc yet) falls back to probing. */
static int child_no_proc(void *arg, int out_fd)
{
        int real = silo_cap_last();
        int r = fake_cap_last_cap(arg, "");
        if (r)
                return r;
        int probed = silo_cap_last();
        dprintf(out_fd, "real %d probed %d", real, probed);
        return probed == real ? 0 : 4;
}

static void test_cap_last_cap_source(void **state)
{
        (void) state;
        char dir[] = "/tmp/silo-test-caps-XXXXXX", file[64], out[1024];
        assert_non_null(mkdtemp(dir));
        snprintf(file, sizeof(file), "%s/cap_last_cap", dir);
        /* The file must exist before the child writes it (no O_CREAT). */
        int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);

        int old_status = run_child(child_old_kernel, file, out, sizeof(out));
        char old_out[1024];
        strcpy(old_out, out);
        int probe_status = run_child(child_no_proc, file, out, sizeof(out));
        assert_int_equal(silo_rm_rf_at(AT_FDCWD, dir, NULL), 0);
        assert_child_ok(old_status, old_out);
        assert_child_ok(probe_status, out);
}

static int child_apply(void *arg, int out_fd)
{
        const struct silo_caps *caps = arg;
        silo_error err = SILO_ERROR_INIT;

        if (silo_caps_apply_bounding(caps, &err) < 0 || silo_caps_apply(caps, &err) < 0) {
                dprintf(out_fd, "%s", err.message);
                return 1;
        }
        return dump_cap_status(out_fd);
}

static void test_apply(void **state)
{
        (void) state;
        char out[4096];
        const struct silo_caps caps = {
                .set = true,
                .bounding = BIT(CAP_CHOWN) | BIT(CAP_KILL) | BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_SETPCAP),
                .permitted = BIT(CAP_CHOWN) | BIT(CAP_KILL) | BIT(CAP_NET_BIND_SERVICE),
                .effective = BIT(CAP_CHOWN) | BIT(CAP_NET_BIND_SERVICE),
                .inheritable = BIT(CAP_NET_BIND_SERVICE),
                .ambient = BIT(CAP_NET_BIND_SERVICE),
        };

        int status = run_child(child_apply, (void *) &caps, out, sizeof(out));
        assert_child_ok(status, out);
        assert_int_equal(status_mask(out, "CapBnd"), caps.bounding);
        assert_int_equal(status_mask(out, "CapPrm"), caps.permitted);
        assert_int_equal(status_mask(out, "CapEff"), caps.effective);
        assert_int_equal(status_mask(out, "CapInh"), caps.inheritable);
        assert_int_equal(status_mask(out, "CapAmb"), caps.ambient);
}

static void test_apply_empty(void **state)
{
        (void) state;
        char out[4096];
        const struct silo_caps none = {};

        int status = run_child(child_apply, (void *) &none, out, sizeof(out));
        assert_child_ok(status, out);
        assert_int_equal(status_mask(out, "CapBnd"), 0);
        assert_int_equal(status_mask(out, "CapPrm"), 0);
        assert_int_equal(status_mask(out, "CapEff"), 0);
        assert_int_equal(status_mask(out, "CapInh"), 0);
        assert_int_equal(status_mask(out, "CapAmb"), 0);
}

static int set_caps(uint64_t effective, uint64_t permitted, uint64_t inheritable)
{
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[2] = {
                { (uint32_t) effective, (uint32_t) permitted, (uint32_t) inheritable },
                { (uint32_t) (effective >> 32), (uint32_t) (permitted >> 32), (uint32_t) (inheritable >> 32) },
        };
        return RET_NERRNO(syscall(SYS_capset, &hdr, data));
}

static uint64_t current_permitted(void)
{
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[2] = {};
        if (syscall(SYS_capget, &hdr, data) < 0)
                return 0;
        return data[0].permitted | ((uint64_t) data[1].permitted << 32);
}

/* The runtime itself carries inheritable and ambient capabilities; a
 * config that asks for none must not pass them on. */
static int child_inherited_sets(void *arg, int out_fd)
{
        uint64_t prm = current_permitted();
        uint64_t leak = BIT(CAP_CHOWN) | BIT(CAP_KILL);

        if (set_caps(prm, prm, leak) < 0)
                return 80;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_KILL, 0, 0) < 0)
                return 81;
        return child_apply(arg, out_fd);
}

static void test_inheritable_only_when_asked(void **state)
{
        (void) state;
        char out[4096];
        const struct silo_caps caps = {
                .set = true,
                .bounding = BIT(CAP_CHOWN) | BIT(CAP_KILL),
                .permitted = BIT(CAP_CHOWN) | BIT(CAP_KILL),
                .effective = BIT(CAP_CHOWN) | BIT(CAP_KILL),
        };

        int status = run_child(child_inherited_sets, (void *) &caps, out, sizeof(out));
        assert_child_ok(status, out);
        assert_int_equal(status_mask(out, "CapInh"), 0);
        assert_int_equal(status_mask(out, "CapAmb"), 0);
        assert_int_equal(status_mask(out, "CapEff"), caps.effective);
}

static int child_ungrantable(void *arg, int out_fd)
{
        (void) arg;
        silo_error err = SILO_ERROR_INIT;
        uint64_t prm = current_permitted() & ~BIT(CAP_SYS_NICE);
        const struct silo_caps caps = {
                .set = true,
                .permitted = BIT(CAP_CHOWN) | BIT(CAP_SYS_NICE),
        };

        /* Make CAP_SYS_NICE something this process cannot have. */
        if (set_caps(prm, prm, 0) < 0)
                return 80;
        if (silo_caps_apply(&caps, &err) != -EPERM)
                return 81;
        dprintf(out_fd, "%s", err.message);
        return 0;
}

static void test_apply_errors(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        char out[4096];

        (void) err;
        int status = run_child(child_ungrantable, NULL, out, sizeof(out));
        assert_child_ok(status, out);
        assert_string_equal(out, "capset: CAP_SYS_NICE is not in the runtime's permitted set, so it cannot be granted");
}

static void test_features(void **state)
{
        (void) state;
        _cleanup_json_ json_t *f = silo_caps_features();
        assert_non_null(f);
        assert_true(json_array_size(f) >= 41);
        assert_string_equal(json_string_value(json_array_get(f, 0)), "CAP_CHOWN");
        assert_string_equal(json_string_value(json_array_get(f, 40)), "CAP_CHECKPOINT_RESTORE");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_parse_list),
                cmocka_unit_test(test_parse_object),
                cmocka_unit_test(test_cap_last_cap_source),
                cmocka_unit_test(test_apply),
                cmocka_unit_test(test_apply_empty),
                cmocka_unit_test(test_inheritable_only_when_asked),
                cmocka_unit_test(test_apply_errors),
                cmocka_unit_test(test_features),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
