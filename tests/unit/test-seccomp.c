/* Seccomp: parsing with exact messages, and real filters loaded in forked
 * children (a filter can never be removed, so never in the test process). */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "seccomp/seccomp.h"
#include "util/cleanup.h"
#include "util/fs.h"

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1   /* si_code of a seccomp SIGSYS */
#endif

/* Child exit codes that are not test results. */
#define CHILD_LOAD_FAILED 200

/* A scratch directory and a child that teardown removes/kills even when an
 * assertion jumped out of the test. */
struct fixture {
        char dir[64];
        pid_t pid;
};

static int fixture_setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        if (!f)
                return -1;
        strcpy(f->dir, "/tmp/silo-test-seccomp-XXXXXX");
        if (!mkdtemp(f->dir)) {
                free(f);
                return -1;
        }
        *state = f;
        return 0;
}

static int fixture_teardown(void **state)
{
        struct fixture *f = *state;
        silo_killpidp(&f->pid);
        int r = silo_rm_rf_at(AT_FDCWD, f->dir, NULL);
        free(f);
        return r;
}

static int parse(const char *text, silo_seccomp **ret, silo_error *err)
{
        json_error_t jerr;
        _cleanup_json_ json_t *j = json_loads(text, 0, &jerr);
        assert_non_null(j);
        return silo_seccomp_parse(j, "linux.seccomp", ret, err);
}

static void expect_parse_error(const char *text, const char *message)
{
        silo_error err = SILO_ERROR_INIT;
        silo_seccomp *s = NULL;

        int r = parse(text, &s, &err);
        assert_true(r < 0);
        assert_null(s);
        assert_int_equal(-r, err.code);
        assert_string_equal(err.message, message);
}

/* A seccomp SIGSYS would otherwise leave a "core" file in the cwd. */
static void no_core_dumps(void)
{
        struct rlimit rl = { 0, 0 };
        (void) setrlimit(RLIMIT_CORE, &rl);
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* Parses and prepares in the test process (so errors are cmocka failures),
 * loads in a child that then runs fn; returns the child's wait status. */
static int run_filtered(const char *profile, int (*fn)(void *), void *arg)
{
        silo_error err = SILO_ERROR_INIT;
        _cleanup_(silo_seccomp_freep) silo_seccomp *s = NULL;

        assert_int_equal(parse(profile, &s, &err), 0);
        if (silo_seccomp_prepare(s, &err) < 0)
                fail_msg("prepare: %s", err.message);

        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int notify_fd = -1;
                no_core_dumps();
                if (silo_seccomp_load(s, &notify_fd, &err) < 0) {
                        fprintf(stderr, "load: %s\n", err.message);
                        _exit(CHILD_LOAD_FAILED);
                }
                /* A raw exit: sanitizer builds intercept _exit() with
                 * syscalls the profile under test may forbid. */
                syscall(SYS_exit_group, fn(arg));
        }

        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

static bool array_has(json_t *arr, const char *s)
{
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v)
                if (strcmp(json_string_value(v), s) == 0)
                        return true;
        return false;
}

static void assert_exited_zero(int status)
{
        if (!WIFEXITED(status))
                fail_msg("child died by signal %d", WTERMSIG(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* Returns 0 if the raw syscall failed with `expected` errno, else a code
 * that says what happened instead. */
static int expect_errno(long r, int expected)
{
        if (r != -1)
                return 100;
        return errno == expected ? 0 : 101;
}

static void test_parse_minimal(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_(silo_seccomp_freep) silo_seccomp *s = NULL;

        assert_int_equal(parse("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":null,\"syscalls\":null}", &s, &err), 0);
        assert_null(silo_seccomp_listener_path(s));
        assert_null(silo_seccomp_listener_metadata(s));
        assert_false(silo_seccomp_uses_notify(s));
        assert_int_equal(silo_seccomp_prepare(s, &err), 0);
        assert_int_equal(silo_seccomp_prepare(s, &err), 0);     /* idempotent */
}

static void test_parse_errors(void **state)
{
        (void) state;
        static const struct { const char *json, *message; } cases[] = {
                { "[]", "linux.seccomp: expected an object, got array" },
                { "{}", "linux.seccomp.defaultAction: required field is missing" },
                { "{\"defaultAction\":\"SCMP_ACT_FOO\"}",
                  "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_FOO\"" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_KILL\"},"
                  "{\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_FOO\"}]}",
                  "linux.seccomp.syscalls[1].action: unknown action \"SCMP_ACT_FOO\"" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\","
                  "\"args\":[{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_EQ\"},{\"index\":1,\"value\":1,\"op\":\"SCMP_CMP_FOO\"}]}]}",
                  "linux.seccomp.syscalls[0].args[1].op: unknown operator \"SCMP_CMP_FOO\"" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86\",\"SCMP_ARCH_FOO\"]}",
                  "linux.seccomp.architectures[1]: unknown architecture \"SCMP_ARCH_FOO\"" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[3]}",
                  "linux.seccomp.architectures[0]: expected a string, got integer" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[\"SECCOMP_FILTER_FLAG_FOO\"]}",
                  "linux.seccomp.flags[0]: unknown flag \"SECCOMP_FILTER_FLAG_FOO\"" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\","
                  "\"args\":[{\"index\":6,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
                  "linux.seccomp.syscalls[0].args[0].index: must be below 6, got 6" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\","
                  "\"args\":[{\"index\":0,\"op\":\"SCMP_CMP_EQ\"}]}]}",
                  "linux.seccomp.syscalls[0].args[0].value: required field is missing" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\","
                  "\"args\":[{\"index\":0,\"value\":-1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
                  "linux.seccomp.syscalls[0].args[0].value: must not be negative (-1)" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_ALLOW\",\"errnoRet\":1}]}",
                  "linux.seccomp.syscalls[0].errnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_ALLOW" },
                { "{\"defaultAction\":\"SCMP_ACT_KILL\",\"defaultErrnoRet\":1}",
                  "linux.seccomp.defaultErrnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_KILL" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":65536}]}",
                  "linux.seccomp.syscalls[0].errnoRet: 65536 is out of range (0-65535)" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[],\"action\":\"SCMP_ACT_ERRNO\"}]}",
                  "linux.seccomp.syscalls[0].names: must contain at least one entry" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"\"],\"action\":\"SCMP_ACT_ERRNO\"}]}",
                  "linux.seccomp.syscalls[0].names[0]: empty syscall name" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[1],\"action\":\"SCMP_ACT_ERRNO\"}]}",
                  "linux.seccomp.syscalls[0].names[0]: expected a string, got integer" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"action\":\"SCMP_ACT_ERRNO\"}]}",
                  "linux.seccomp.syscalls[0].names: required field is missing" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[\"getcwd\"]}",
                  "linux.seccomp.syscalls[0]: expected an object, got string" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":\"getcwd\"}",
                  "linux.seccomp.syscalls: expected an array, got string" },
                { "{\"defaultAction\":\"SCMP_ACT_NOTIFY\",\"listenerPath\":\"/run/agent.sock\"}",
                  "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"listenerPath\":\"/run/agent.sock\","
                  "\"syscalls\":[{\"names\":[\"read\",\"write\"],\"action\":\"SCMP_ACT_NOTIFY\"}]}",
                  "linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for \"write\"" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_NOTIFY\"}]}",
                  "linux.seccomp.listenerPath: required when SCMP_ACT_NOTIFY is used" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"listenerMetadata\":\"foo\"}",
                  "linux.seccomp.listenerMetadata: must not be set without listenerPath" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"listenerPath\":\"\"}",
                  "linux.seccomp.listenerPath: must not be empty" },
                { "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"listenerPath\":\"/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.sock\"}",
                  "linux.seccomp.listenerPath: longer than a unix socket path may be (107 bytes)" },
        };

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
                expect_parse_error(cases[i].json, cases[i].message);
}

static void test_parse_listener(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_(silo_seccomp_freep) silo_seccomp *s = NULL;

        assert_int_equal(parse("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"listenerPath\":\"/run/agent.sock\","
                               "\"listenerMetadata\":\"MKNOD=/dev/null\","
                               "\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_NOTIFY\"}]}", &s, &err), 0);
        assert_string_equal(silo_seccomp_listener_path(s), "/run/agent.sock");
        assert_string_equal(silo_seccomp_listener_metadata(s), "MKNOD=/dev/null");
        assert_true(silo_seccomp_uses_notify(s));

        /* Refused before anything is loaded, so safe in the test process. */
        assert_int_equal(silo_seccomp_load(s, NULL, &err), -EINVAL);
        assert_string_equal(err.message, "linux.seccomp: SCMP_ACT_NOTIFY is used but the caller takes no listener fd");
}

static int child_errno_rules(void *arg)
{
        const char *dir = arg;
        char buf[4096], path[PATH_MAX];

        int r = expect_errno(syscall(SYS_getcwd, buf, sizeof(buf)), EOPNOTSUPP);
        if (r)
                return r;
        snprintf(path, sizeof(path), "%s/sub", dir);
        if (expect_errno(syscall(SYS_mkdir, path, 0755), EPERM))
                return 2;
        if (expect_errno(syscall(SYS_mkdirat, AT_FDCWD, path, 0755), EPERM))
                return 3;
        /* Unrelated syscalls still work. */
        return syscall(SYS_getppid) > 0 ? 0 : 4;
}

static void test_errno_ret(void **state)
{
        struct fixture *f = *state;
        char sub[PATH_MAX];
        snprintf(sub, sizeof(sub), "%s/sub", f->dir);

        /* A name no libseccomp knows is skipped, not an error. */
        int status = run_filtered(
                "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                "{\"names\":[\"silo_no_such_syscall\",\"getcwd\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":95},"
                "{\"names\":[\"only_unknown_names\"],\"action\":\"SCMP_ACT_KILL\"},"
                "{\"names\":[\"mkdir\",\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\"}]}",
                child_errno_rules, f->dir);

        struct stat st;
        assert_int_equal(stat(sub, &st), -1);
        assert_exited_zero(status);
}

static int child_default_errno(void *arg)
{
        (void) arg;
        if (expect_errno(syscall(SYS_getppid), EXDEV))
                return 1;
        /* A rule whose errno differs from the default one is kept. */
        return expect_errno(syscall(SYS_getpid), ENOTTY) ? 2 : 0;
}

static void test_default_errno(void **state)
{
        (void) state;
        /* The ERRNO(EXDEV) rule equals the default and must be skipped
         * (libseccomp would refuse it); ALLOW for exit is what lets the
         * child report back at all. */
        int status = run_filtered(
                "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":18,\"syscalls\":["
                "{\"names\":[\"exit_group\",\"exit\"],\"action\":\"SCMP_ACT_ALLOW\"},"
                "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":18},"
                "{\"names\":[\"getpid\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":25}]}",
                child_default_errno, NULL);
        assert_exited_zero(status);
}

static int child_getcwd(void *arg)
{
        (void) arg;
        char buf[4096];
        return syscall(SYS_getcwd, buf, sizeof(buf)) > 0 ? 0 : 1;
}

static void test_kill_actions(void **state)
{
        (void) state;
        static const char *const actions[] = { "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS" };

        for (size_t i = 0; i < ARRAY_SIZE(actions); i++) {
                char profile[512];
                snprintf(profile, sizeof(profile),
                         "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],\"action\":\"%s\"}]}",
                         actions[i]);
                int status = run_filtered(profile, child_getcwd, NULL);
                if (!WIFSIGNALED(status))
                        fail_msg("%s: child exited with %d instead of dying", actions[i], WEXITSTATUS(status));
                assert_int_equal(WTERMSIG(status), SIGSYS);
        }
}

static void on_sigsys(int sig, siginfo_t *info, void *ucontext)
{
        (void) sig;
        (void) ucontext;
        _exit(info->si_code == SYS_SECCOMP && info->si_syscall == SYS_getcwd ? 42 : 43);
}

static int child_trap(void *arg)
{
        (void) arg;
        struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
        if (sigaction(SIGSYS, &sa, NULL) < 0)
                return 2;
        child_getcwd(NULL);
        return 1;       /* getcwd returned: no trap */
}

static void test_trap(void **state)
{
        (void) state;
        int status = run_filtered(
                "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_TRAP\"}]}",
                child_trap, NULL);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 42);
}

static int child_trace_and_log(void *arg)
{
        (void) arg;
        char buf[4096];
        /* TRACE with no tracer attached fails the syscall with ENOSYS. */
        if (expect_errno(syscall(SYS_getcwd, buf, sizeof(buf)), ENOSYS))
                return 1;
        /* LOG allows. */
        return syscall(SYS_getppid) > 0 ? 0 : 2;
}

static void test_trace_and_log(void **state)
{
        (void) state;
        int status = run_filtered(
                "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                "{\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_TRACE\",\"errnoRet\":7},"
                "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_LOG\"}]}",
                child_trace_and_log, NULL);
        assert_exited_zero(status);
}

/* arg: bit i set if personality(7 + i) must be blocked, for i = 0..2;
 * bit 3 if the 0xffffffff query must be blocked. */
static int child_personality(void *arg)
{
        unsigned expect_blocked = *(unsigned *) arg;

        for (unsigned i = 0; i < 4; i++) {
                unsigned long persona = i < 3 ? 7UL + i : 0xffffffffUL;
                long r = syscall(SYS_personality, persona);
                bool blocked = r == -1 && errno == EXDEV;
                if (blocked != !!(expect_blocked & (1u << i)))
                        return 10 + i;
        }
        return 0;
}

static void test_arg_operators(void **state)
{
        (void) state;
        /* Probes 7, 8, 9 and 0xffffffff against value 8. */
        static const struct { const char *op; unsigned blocked; } cases[] = {
                { "SCMP_CMP_NE", 0xd },
                { "SCMP_CMP_LT", 0x1 },
                { "SCMP_CMP_LE", 0x3 },
                { "SCMP_CMP_EQ", 0x2 },
                { "SCMP_CMP_GE", 0xe },
                { "SCMP_CMP_GT", 0xc },
        };

        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char profile[512];
                unsigned blocked = cases[i].blocked;
                snprintf(profile, sizeof(profile),
                         "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                         "{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":18,"
                         "\"args\":[{\"index\":0,\"value\":8,\"op\":\"%s\"}]}]}", cases[i].op);
                int status = run_filtered(profile, child_personality, &blocked);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        fail_msg("%s: child status 0x%x", cases[i].op, status);
        }

        /* MASKED_EQ: value is the mask, valueTwo the expected result;
         * (x & 0xe) == 8 matches 8 and 9, not 7 or 0xffffffff. */
        unsigned blocked = 0x6;
        int status = run_filtered(
                "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                "{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":18,"
                "\"args\":[{\"index\":0,\"value\":14,\"valueTwo\":8,\"op\":\"SCMP_CMP_MASKED_EQ\"}]}]}",
                child_personality, &blocked);
        assert_exited_zero(status);
}

static int child_and_or(void *arg)
{
        (void) arg;
        /* Different indexes: both conditions must hold (AND). */
        if (syscall(SYS_getpriority, PRIO_PROCESS, 0) < 0 && errno == EXDEV)
                return 1;
        if (syscall(SYS_getpriority, PRIO_PGRP, 424242) < 0 && errno == EXDEV)
                return 2;
        if (expect_errno(syscall(SYS_getpriority, PRIO_PROCESS, 424242), EXDEV))
                return 3;
        /* The same index twice: separate rules, either one matches (OR). */
        if (expect_errno(syscall(SYS_personality, (unsigned long) PER_LINUX32), ENOTTY))
                return 4;
        if (expect_errno(syscall(SYS_personality, (unsigned long) PER_BSD), ENOTTY))
                return 5;
        if (syscall(SYS_personality, 0xffffffffUL) < 0)
                return 6;
        return 0;
}

static void test_same_index_splits_rules(void **state)
{
        (void) state;
        int status = run_filtered(
                "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                "{\"names\":[\"getpriority\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":18,"
                "\"args\":[{\"index\":0,\"value\":0,\"op\":\"SCMP_CMP_EQ\"},{\"index\":1,\"value\":424242,\"op\":\"SCMP_CMP_EQ\"}]},"
                "{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":25,"
                "\"args\":[{\"index\":0,\"value\":8,\"op\":\"SCMP_CMP_EQ\"},{\"index\":0,\"value\":6,\"op\":\"SCMP_CMP_EQ\"}]}]}",
                child_and_or, NULL);
        assert_exited_zero(status);
}

static int child_allowlist(void *arg)
{
        (void) arg;
        char buf[4096];
        if (syscall(SYS_getcwd, buf, sizeof(buf)) <= 0)
                return 1;
        if (expect_errno(syscall(SYS_personality, 0xffffffffUL), EPERM))
                return 2;
        return expect_errno(syscall(SYS_mkdir, "/nonexistent-silo/x", 0755), EPERM) ? 3 : 0;
}

/* More than 32 syscalls switches libseccomp to its binary-tree layout. */
static void test_long_allowlist(void **state)
{
        (void) state;
        static const char *const allowed[] = {
                "read", "write", "open", "openat", "close", "stat", "fstat", "lstat", "poll", "lseek",
                "mmap", "mprotect", "munmap", "brk", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
                "ioctl", "pread64", "pwrite64", "readv", "writev", "access", "pipe", "select",
                "sched_yield", "mremap", "msync", "mincore", "madvise", "dup", "dup2", "pause",
                "nanosleep", "getitimer", "alarm", "setitimer", "getpid", "getppid", "getcwd",
                "exit", "exit_group", "futex", "clock_gettime", "clock_nanosleep",
        };
        char profile[4096] = "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":"
                             "[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\",\"SCMP_ARCH_X32\"],"
                             "\"syscalls\":[{\"action\":\"SCMP_ACT_ALLOW\",\"names\":[";
        for (size_t i = 0; i < ARRAY_SIZE(allowed); i++) {
                strcat(profile, i ? ",\"" : "\"");
                strcat(profile, allowed[i]);
                strcat(profile, "\"");
        }
        strcat(profile, "]}]}");

        assert_exited_zero(run_filtered(profile, child_allowlist, NULL));
}

static int child_getcwd_blocked(void *arg)
{
        (void) arg;
        char buf[4096];
        return expect_errno(syscall(SYS_getcwd, buf, sizeof(buf)), EOPNOTSUPP);
}

static void test_flags_load(void **state)
{
        (void) state;
        _cleanup_json_ json_t *features = silo_seccomp_features();
        assert_non_null(features);
        json_t *supported = json_object_get(features, "supportedFlags");
        size_t i;
        json_t *flag;

        json_array_foreach(supported, i, flag) {
                char profile[512];
                /* WAIT_KILLABLE_RECV only matters with a listener; without
                 * one it must simply be left out, not break the load. */
                snprintf(profile, sizeof(profile),
                         "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[\"%s\"],"
                         "\"syscalls\":[{\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":95}]}",
                         json_string_value(flag));
                int status = run_filtered(profile, child_getcwd_blocked, NULL);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        fail_msg("flag %s: status 0x%x", json_string_value(flag), status);
        }
}

static void test_load_needs_privilege(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_(silo_seccomp_freep) silo_seccomp *s = NULL;

        assert_int_equal(parse("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":"
                               "[{\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_KILL\"}]}", &s, &err), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* Drop CAP_SYS_ADMIN from the effective set; no_new_privs is off. */
                struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
                struct __user_cap_data_struct data[2];
                if (syscall(SYS_capget, &hdr, data) < 0)
                        _exit(1);
                data[0].effective &= ~(1u << CAP_SYS_ADMIN);
                if (syscall(SYS_capset, &hdr, data) < 0)
                        _exit(2);
                int fd;
                if (silo_seccomp_load(s, &fd, &err) != -EACCES)
                        _exit(3);
                _exit(strcmp(err.message, "linux.seccomp: loading the filter needs no_new_privs or CAP_SYS_ADMIN") ? 4 : 0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_exited_zero(status);
}

struct notify_child {
        silo_seccomp *seccomp;
        const char *socket_path;
};

static int child_notify(struct notify_child *c)
{
        silo_error err = SILO_ERROR_INIT;
        int fd = -1;
        char buf[4096];

        no_core_dumps();
        if (silo_seccomp_load(c->seccomp, &fd, &err) < 0 || fd < 0)
                return 10;
        if (fcntl(fd, F_GETFD) != FD_CLOEXEC)
                return 11;

        _cleanup_json_ json_t *state = json_pack("{s:s, s:s, s:s, s:i, s:s}", "ociVersion", "1.2.0", "id", "c1",
                                                 "status", "creating", "pid", (int) getpid(), "bundle", "/b");
        _cleanup_json_ json_t *ps = NULL;
        if (silo_seccomp_process_state(c->seccomp, state, getpid(), &ps, &err) < 0)
                return 12;
        if (silo_seccomp_send_notify_fd(c->socket_path, ps, fd, &err) < 0)
                return 13;
        close(fd);

        /* Blocks until the agent (our parent) answers EXDEV. */
        return expect_errno(syscall(SYS_getcwd, buf, sizeof(buf)), EXDEV) ? 14 : 0;
}

static void agent_answer(int listen_fd, pid_t child)
{
        struct pollfd pfd = { .fd = listen_fd, .events = POLLIN };
        assert_int_equal(poll(&pfd, 1, 10000), 1);
        _cleanup_close_ int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(conn >= 0);

        char payload[8192] = {};
        union { struct cmsghdr align; char buf[CMSG_SPACE(sizeof(int))]; } control;
        struct iovec iov = { .iov_base = payload, .iov_len = sizeof(payload) - 1 };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
                              .msg_controllen = sizeof(control.buf) };
        assert_true(recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) > 0);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        assert_non_null(c);
        assert_int_equal(c->cmsg_type, SCM_RIGHTS);
        _cleanup_close_ int notify_fd = -1;
        memcpy(&notify_fd, CMSG_DATA(c), sizeof(int));

        /* The ContainerProcessState of the runtime spec. */
        json_error_t jerr;
        _cleanup_json_ json_t *ps = json_loads(payload, 0, &jerr);
        assert_non_null(ps);
        assert_string_equal(json_string_value(json_object_get(ps, "ociVersion")), "1.2.0");
        assert_string_equal(json_string_value(json_array_get(json_object_get(ps, "fds"), 0)), "seccompFd");
        assert_int_equal(json_array_size(json_object_get(ps, "fds")), 1);
        assert_int_equal(json_integer_value(json_object_get(ps, "pid")), child);
        assert_string_equal(json_string_value(json_object_get(ps, "metadata")), "foo=bar");
        assert_string_equal(json_string_value(json_object_get(json_object_get(ps, "state"), "id")), "c1");

        struct pollfd npfd = { .fd = notify_fd, .events = POLLIN };
        assert_int_equal(poll(&npfd, 1, 10000), 1);
        struct seccomp_notif req = {};
        assert_int_equal(ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &req), 0);
        assert_int_equal(req.data.nr, SYS_getcwd);
        assert_int_equal((pid_t) req.pid, child);
        struct seccomp_notif_resp resp = { .id = req.id, .error = -EXDEV };
        assert_int_equal(ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp), 0);
}

static void test_notify_roundtrip(void **state)
{
        struct fixture *f = *state;
        silo_error err = SILO_ERROR_INIT;
        char sock_path[128], profile[1024];
        snprintf(sock_path, sizeof(sock_path), "%s/agent.sock", f->dir);

        _cleanup_close_ int listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        strcpy(addr.sun_path, sock_path);
        assert_int_equal(bind(listen_fd, (struct sockaddr *) &addr, sizeof(addr)), 0);
        assert_int_equal(listen(listen_fd, 1), 0);

        /* TSYNC with a listener exercises the TSYNC_ESRCH pairing; add
         * WAIT_KILLABLE_RECV where the kernel has it (Linux 5.19). */
        _cleanup_json_ json_t *features = silo_seccomp_features();
        assert_non_null(features);
        bool killable = array_has(json_object_get(features, "supportedFlags"), "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV");
        snprintf(profile, sizeof(profile),
                 "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"listenerPath\":\"%s\",\"listenerMetadata\":\"foo=bar\","
                 "\"flags\":[\"SECCOMP_FILTER_FLAG_TSYNC\"%s],"
                 "\"syscalls\":[{\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_NOTIFY\"}]}", sock_path,
                 killable ? ",\"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV\"" : "");
        _cleanup_(silo_seccomp_freep) silo_seccomp *s = NULL;
        assert_int_equal(parse(profile, &s, &err), 0);
        assert_int_equal(silo_seccomp_prepare(s, &err), 0);

        f->pid = fork();
        assert_true(f->pid >= 0);
        if (f->pid == 0)
                _exit(child_notify(&(struct notify_child) { s, sock_path }));

        agent_answer(listen_fd, f->pid);
        int status;
        assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
        f->pid = 0;
        assert_exited_zero(status);
}

static void test_send_notify_fd_errors(void **state)
{
        struct fixture *f = *state;
        silo_error err = SILO_ERROR_INIT;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/nope.sock", f->dir);

        _cleanup_json_ json_t *bare = json_pack("{s:s}", "id", "c1");
        _cleanup_json_ json_t *ps = json_pack("{s:[s], s:{s:s}}", "fds", "seccompFd", "state", "id", "c1");
        assert_int_equal(silo_seccomp_send_notify_fd(path, bare, 0, &err), -EINVAL);
        char expected[PATH_MAX + 128];
        snprintf(expected, sizeof(expected), "seccomp listener %s: process state lacks \"fds\" or \"state\"", path);
        assert_string_equal(err.message, expected);

        assert_int_equal(silo_seccomp_send_notify_fd(path, ps, 0, &err), -ENOENT);
        snprintf(expected, sizeof(expected), "seccomp listener %s: connect: No such file or directory", path);
        assert_string_equal(err.message, expected);

        assert_int_equal(silo_seccomp_send_notify_fd(path, ps, -1, &err), -EBADF);
        assert_int_equal(silo_seccomp_send_notify_fd(NULL, ps, 0, &err), -EINVAL);
}

static void test_process_state(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_(silo_seccomp_freep) silo_seccomp *s = NULL;
        assert_int_equal(parse("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"listenerPath\":\"/a\"}", &s, &err), 0);

        _cleanup_json_ json_t *st = json_pack("{s:s, s:s}", "ociVersion", "1.0.2", "id", "c1");
        _cleanup_json_ json_t *ps = NULL;
        assert_int_equal(silo_seccomp_process_state(s, st, 77, &ps, &err), 0);
        assert_string_equal(json_string_value(json_object_get(ps, "ociVersion")), "1.0.2");
        assert_int_equal(json_integer_value(json_object_get(ps, "pid")), 77);
        assert_null(json_object_get(ps, "metadata"));   /* omitted when unset */
        assert_ptr_equal(json_object_get(ps, "state"), st);

        _cleanup_json_ json_t *bad = json_string("x");
        assert_int_equal(silo_seccomp_process_state(s, bad, 77, &ps, &err), -EINVAL);
}

static void test_features(void **state)
{
        (void) state;
        _cleanup_json_ json_t *f = silo_seccomp_features();
        assert_non_null(f);
        assert_true(json_is_true(json_object_get(f, "enabled")));
        assert_int_equal(json_array_size(json_object_get(f, "actions")), 9);     /* Linux >= 5.0 has them all */
        assert_true(array_has(json_object_get(f, "actions"), "SCMP_ACT_NOTIFY"));
        assert_int_equal(json_array_size(json_object_get(f, "operators")), 7);
        assert_true(array_has(json_object_get(f, "operators"), "SCMP_CMP_MASKED_EQ"));
        assert_true(array_has(json_object_get(f, "archs"), "SCMP_ARCH_X86_64"));
        assert_true(array_has(json_object_get(f, "archs"), "SCMP_ARCH_RISCV64"));
        assert_int_equal(json_array_size(json_object_get(f, "knownFlags")), 4);
        assert_true(array_has(json_object_get(f, "supportedFlags"), "SECCOMP_FILTER_FLAG_LOG"));

        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(f, "supportedFlags"), i, v)
                assert_true(array_has(json_object_get(f, "knownFlags"), json_string_value(v)));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_minimal),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_parse_listener),
                cmocka_unit_test_setup_teardown(test_errno_ret, fixture_setup, fixture_teardown),
                cmocka_unit_test(test_default_errno),
                cmocka_unit_test(test_kill_actions),
                cmocka_unit_test(test_trap),
                cmocka_unit_test(test_trace_and_log),
                cmocka_unit_test(test_arg_operators),
                cmocka_unit_test(test_same_index_splits_rules),
                cmocka_unit_test(test_long_allowlist),
                cmocka_unit_test(test_flags_load),
                cmocka_unit_test(test_load_needs_privilege),
                cmocka_unit_test_setup_teardown(test_notify_roundtrip, fixture_setup, fixture_teardown),
                cmocka_unit_test_setup_teardown(test_send_notify_fd_errors, fixture_setup, fixture_teardown),
                cmocka_unit_test(test_process_state),
                cmocka_unit_test(test_features),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
