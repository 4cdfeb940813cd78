/* util/: the error contract, JSON dispatch, fd-relative file helpers (the
 * in-root resolution must not escape through symlinks or ".."), and state. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "state/state.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

static void test_error_contract(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(silo_error_set(&err, ENOENT, "open %s", "x"), -ENOENT);
        assert_string_equal(err.message, "open x: No such file or directory");
        assert_int_equal(silo_error_prefix(&err, "mount %d", 3), -ENOENT);
        assert_string_equal(err.message, "mount 3: open x: No such file or directory");
        assert_int_equal(silo_error_msg(&err, -EINVAL, "bad"), -EINVAL);
        assert_string_equal(err.message, "bad");
        assert_int_equal(silo_error_set(NULL, EPERM, "ignored"), -EPERM);
        /* Overlong context is truncated, never overflows. */
        char big[3000];
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        silo_error_prefix(&err, "%s", big);
        assert_int_equal(strlen(err.message), SILO_ERROR_MAX - 1);
}

struct sample { const char *name; int64_t n; silo_opt_u64 u; bool b; const char **list; };

static void test_json_dispatch(void **state)
{
        (void) state;
        const struct silo_json_field fields[] = {
                { "name", SILO_JSON_STRING, offsetof(struct sample, name), SILO_JSON_REQUIRED },
                { "n", SILO_JSON_INT64, offsetof(struct sample, n), 0 },
                { "u", SILO_JSON_OPT_UINT64, offsetof(struct sample, u), SILO_JSON_NULLABLE },
                { "b", SILO_JSON_BOOL, offsetof(struct sample, b), 0 },
                { "list", SILO_JSON_STRV, offsetof(struct sample, list), 0 },
                { NULL },
        };
        json_error_t jerr;
        _cleanup_json_ json_t *ok = json_loads("{\"name\": \"x\", \"n\": -5, \"u\": 1e3, \"b\": true, \"list\": [\"a\"], \"extra\": 1}", 0, &jerr);
        struct sample s = { 0 };
        assert_int_equal(silo_json_dispatch(ok, "top", fields, &s, NULL), 0);
        assert_string_equal(s.name, "x");
        assert_int_equal(s.n, -5);
        assert_true(s.u.set);
        assert_int_equal(s.u.value, 1000);
        assert_true(s.b);
        assert_string_equal(s.list[0], "a");
        free(s.list);

        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *bad = json_loads("{\"name\": \"x\", \"u\": -1}", 0, &jerr);
        struct sample t = { 0 };
        assert_int_equal(silo_json_dispatch(bad, "top", fields, &t, &err), -EINVAL);
        assert_string_equal(err.message, "top.u: must not be negative (-1)");
        _cleanup_json_ json_t *missing = json_loads("{}", 0, &jerr);
        assert_int_equal(silo_json_dispatch(missing, "top", fields, &t, &err), -EINVAL);
        assert_string_equal(err.message, "top.name: required field is missing");
        _cleanup_json_ json_t *frac = json_loads("{\"name\": \"x\", \"n\": 1.5}", 0, &jerr);
        assert_int_equal(silo_json_dispatch(frac, "top", fields, &t, &err), -EINVAL);
        assert_string_equal(err.message, "top.n: expected an integer, got number");

        json_t *j = NULL;
        assert_int_equal(silo_json_load_buffer("{\"a\": 1, \"a\": 2}", 16, "doc", &j, &err), -EINVAL);
        assert_non_null(strstr(err.message, "doc: invalid JSON"));
        assert_int_equal(silo_json_load_buffer("", 0, "doc", &j, &err), -EINVAL);
        assert_string_equal(err.message, "doc: empty document");
}

static char tmp[64];

static int setup_tmp(void **state)
{
        (void) state;
        strcpy(tmp, "/tmp/silo-unit-XXXXXX");
        return mkdtemp(tmp) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
        (void) state;
        return silo_rm_rf_at(AT_FDCWD, tmp, NULL);
}

static void test_open_in_root_cannot_escape(void **state)
{
        (void) state;
        char p[128];
        snprintf(p, sizeof(p), "%s/root", tmp);
        assert_int_equal(mkdir(p, 0755), 0);
        _cleanup_close_ int root = open(p, O_PATH | O_DIRECTORY);
        /* Hostile rootfs: absolute and relative symlinks pointing out. */
        assert_int_equal(symlinkat("/etc", root, "abs"), 0);
        assert_int_equal(symlinkat("../../../../etc", root, "rel"), 0);
        assert_int_equal(mkdirat(root, "etc", 0755), 0);

        _cleanup_close_ int a = silo_open_in_root(root, "/abs/passwd", O_RDONLY, 0, NULL);
        assert_int_equal(a, -ENOENT);  /* resolves to <root>/etc/passwd, which does not exist */
        _cleanup_close_ int b = silo_open_in_root(root, "rel", O_PATH, 0, NULL);
        assert_true(b >= 0);
        struct stat in_root, got;
        assert_int_equal(fstatat(root, "etc", &in_root, 0), 0);
        assert_int_equal(fstat(b, &got), 0);
        assert_true(in_root.st_ino == got.st_ino);
        _cleanup_close_ int c = silo_open_in_root(root, "/../../etc", O_PATH, 0, NULL);
        assert_true(c >= 0);
        assert_int_equal(fstat(c, &got), 0);
        assert_true(in_root.st_ino == got.st_ino);

        /* mkpath creates through a symlink inside the root, never outside. */
        _cleanup_close_ int d = silo_mkpath_in_root(root, "/abs/new/dir", false, NULL);
        assert_true(d >= 0);
        assert_int_equal(fstatat(root, "etc/new/dir", &got, 0), 0);
        assert_int_equal(access("/etc/new", F_OK), -1);
        _cleanup_close_ int f = silo_mkpath_in_root(root, "/rel/file", true, NULL);
        assert_true(f >= 0);
        assert_int_equal(fstatat(root, "etc/file", &got, 0), 0);
        assert_true(S_ISREG(got.st_mode));
}

static void test_atomic_write_and_read(void **state)
{
        (void) state;
        _cleanup_close_ int dir = open(tmp, O_RDONLY | O_DIRECTORY);
        assert_int_equal(silo_write_file_atomic_at(dir, "f", "hello", 5, 0600, NULL), 0);
        _cleanup_free_ char *buf = NULL;
        size_t len;
        assert_int_equal(silo_read_file_at(dir, "f", 100, &buf, &len, NULL), 0);
        assert_int_equal(len, 5);
        assert_string_equal(buf, "hello");
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *buf2 = NULL;
        assert_int_equal(silo_read_file_at(dir, "f", 3, &buf2, &len, &err), -EFBIG);
}

static void test_rm_rf_deep_tree(void **state)
{
        (void) state;
        /* Deeper than any fixed recursion limit, with files and a symlink
         * out of the tree at every level: all removed, nothing followed. */
        _cleanup_close_ int top = open(tmp, O_RDONLY | O_DIRECTORY);
        assert_int_equal(mkdirat(top, "tree", 0755), 0);
        assert_int_equal(mkdirat(top, "outside", 0755), 0);
        assert_int_equal(close(openat(top, "outside/keep", O_CREAT | O_WRONLY, 0644)), 0);
        int fd = openat(top, "tree", O_RDONLY | O_DIRECTORY);
        for (int i = 0; i < 1000; i++) {
                assert_int_equal(close(openat(fd, "f", O_CREAT | O_WRONLY, 0644)), 0);
                char target[128];
                snprintf(target, sizeof(target), "%s/outside", tmp);
                assert_int_equal(symlinkat(target, fd, "link"), 0);
                assert_int_equal(mkdirat(fd, "d", 0755), 0);
                int next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
                close(fd);
                fd = next;
        }
        close(fd);
        assert_int_equal(silo_rm_rf_at(top, "tree", NULL), 0);
        assert_int_equal(faccessat(top, "tree", F_OK, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(faccessat(top, "outside/keep", F_OK, 0), 0);
}

static void test_container_ids(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(silo_id_validate("abc-1.2_3+x", &err), 0);
        assert_int_equal(silo_id_validate("", &err), -EINVAL);
        assert_int_equal(silo_id_validate(".", &err), -EINVAL);
        assert_int_equal(silo_id_validate("..", &err), -EINVAL);
        assert_int_equal(silo_id_validate("a/b", &err), -EINVAL);
        assert_int_equal(silo_id_validate("a\nb", &err), -EINVAL);
        char long_id[1100];
        memset(long_id, 'a', sizeof(long_id) - 1);
        long_id[sizeof(long_id) - 1] = '\0';
        assert_int_equal(silo_id_validate(long_id, &err), -EINVAL);
        assert_string_equal(err.message, "container ID is longer than 1024 bytes");
        long_id[1024] = '\0';
        assert_int_equal(silo_id_validate(long_id, &err), 0);
}

static void test_state_round_trip(void **state)
{
        (void) state;
        _cleanup_close_ int root = -1, dir = -1, dup_dir = -1;
        char p[128];
        snprintf(p, sizeof(p), "%s/state", tmp);
        assert_int_equal(silo_state_root_open(p, true, &root, NULL), 0);
        assert_int_equal(silo_state_dir_create(root, "c1", &dir, NULL), 0);
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(silo_state_dir_create(root, "c1", &dup_dir, &err), -EEXIST);
        assert_string_equal(err.message, "container with ID \"c1\" already exists");

        struct silo_state st = { .id = "c1", .pid = getpid(), .bundle = "/b", .rootfs = "/b/rootfs",
                                 .created = "2026-01-01T00:00:00Z" };
        silo_pid_start_time(getpid(), &st.pid_start);
        assert_int_equal(silo_state_write(dir, &st, SILO_STATE_CREATE, NULL), 0);
        /* The first write is exclusive; later ones rewrite or replace. */
        assert_int_equal(silo_state_write(dir, &st, SILO_STATE_CREATE, NULL), -EEXIST);
        st.bundle = "/b1";
        assert_int_equal(silo_state_write(dir, &st, SILO_STATE_IN_PLACE, NULL), 0);
        st.bundle = "/b2";
        assert_int_equal(silo_state_write(dir, &st, SILO_STATE_REPLACE, NULL), 0);
        struct silo_state *back = NULL;
        assert_int_equal(silo_state_read(dir, &back, NULL), 0);
        assert_string_equal(back->bundle, "/b2");
        assert_int_equal(back->pid, getpid());
        /* Alive, no start.sock: running. */
        assert_int_equal(silo_state_status(dir, back), SILO_STATUS_RUNNING);
        back->pid_start += 1;   /* a reused pid is a stopped container */
        assert_int_equal(silo_state_status(dir, back), SILO_STATUS_STOPPED);
        silo_state_free(back);
        assert_int_equal(silo_state_dir_remove(root, "c1", NULL), 0);
        assert_int_equal(faccessat(root, "c1", F_OK, 0), -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_error_contract),
                cmocka_unit_test(test_json_dispatch),
                cmocka_unit_test_setup_teardown(test_open_in_root_cannot_escape, setup_tmp, teardown_tmp),
                cmocka_unit_test_setup_teardown(test_atomic_write_and_read, setup_tmp, teardown_tmp),
                cmocka_unit_test_setup_teardown(test_rm_rf_deep_tree, setup_tmp, teardown_tmp),
                cmocka_unit_test(test_container_ids),
                cmocka_unit_test_setup_teardown(test_state_round_trip, setup_tmp, teardown_tmp),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
