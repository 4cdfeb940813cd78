/* engine/: log frames (what the monitor appends and silod serves) and the
 * monitor's state files. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "util/cleanup.h"
#include "util/fs.h"

static int tmpfile_fd(void)
{
        char path[] = "/tmp/silo-test-engine-XXXXXX";
        int fd = mkostemp(path, O_CLOEXEC | O_APPEND);
        assert_true(fd >= 0);
        unlink(path);
        return fd;
}

static void test_log_round_trip(void **state)
{
        (void) state;
        _cleanup_close_ int fd = tmpfile_fd();
        assert_int_equal(silo_log_append(fd, 1, "hello\n", 6, NULL), 0);
        assert_int_equal(silo_log_append(fd, 2, "oops\n", 5, NULL), 0);
        uint64_t off = 0;
        int stream;
        char *data;
        size_t len;
        assert_int_equal(silo_log_read_frame(fd, &off, &stream, &data, &len, NULL), 1);
        assert_int_equal(stream, 1);
        assert_int_equal(len, 6);
        assert_memory_equal(data, "hello\n", 6);
        free(data);
        assert_int_equal(off, SILO_LOG_HEADER_TIMED + 6);
        assert_int_equal(silo_log_read_frame(fd, &off, &stream, &data, &len, NULL), 1);
        assert_int_equal(stream, 2);
        assert_memory_equal(data, "oops\n", 5);
        free(data);
        /* At the end: nothing, offset unchanged. */
        uint64_t end = off;
        assert_int_equal(silo_log_read_frame(fd, &off, &stream, &data, &len, NULL), 0);
        assert_int_equal(off, end);
}

static void test_log_times_and_old_frames(void **state)
{
        (void) state;
        _cleanup_close_ int fd = tmpfile_fd();
        /* A frame of an older log: plain stdcopy header, no time. */
        const unsigned char old[] = { 1, 0, 0, 0, 0, 0, 0, 3, 'o', 'l', 'd' };
        assert_int_equal(write(fd, old, sizeof(old)), (ssize_t) sizeof(old));
        int64_t before = silo_engine_now_ns();
        assert_int_equal(silo_log_append(fd, 2, "new", 3, NULL), 0);
        int64_t after = silo_engine_now_ns();
        uint64_t off = 0;
        int stream;
        char *data;
        size_t len;
        int64_t t = -1;
        assert_int_equal(silo_log_read_frame_timed(fd, &off, &stream, &data, &len, &t, NULL), 1);
        assert_int_equal(t, 0);
        assert_memory_equal(data, "old", 3);
        free(data);
        assert_int_equal(silo_log_read_frame_timed(fd, &off, &stream, &data, &len, &t, NULL), 1);
        assert_int_equal(stream, 2);
        assert_memory_equal(data, "new", 3);
        free(data);
        assert_true(t >= before && t <= after);
        assert_int_equal(off, sizeof(old) + SILO_LOG_HEADER_TIMED + 3);

        /* A timed header cut short is "not yet written". */
        _cleanup_close_ int cut = tmpfile_fd();
        const unsigned char partial[] = { 1, 'T', 0, 0, 0, 0, 0, 1, 0, 0, 0 };
        assert_int_equal(write(cut, partial, sizeof(partial)), (ssize_t) sizeof(partial));
        off = 0;
        assert_int_equal(silo_log_read_frame_timed(cut, &off, &stream, &data, &len, &t, NULL), 0);
        assert_int_equal(off, 0);
}

static void test_log_splits_large_writes(void **state)
{
        (void) state;
        _cleanup_close_ int fd = tmpfile_fd();
        size_t total = SILO_LOG_FRAME_MAX * 2 + 100;
        _cleanup_free_ char *big = malloc(total);
        assert_non_null(big);
        for (size_t i = 0; i < total; i++)
                big[i] = (char) ('a' + i % 26);
        assert_int_equal(silo_log_append(fd, 1, big, total, NULL), 0);
        uint64_t off = 0;
        size_t got = 0, frames = 0;
        int stream;
        char *data;
        size_t len;
        while (silo_log_read_frame(fd, &off, &stream, &data, &len, NULL) == 1) {
                assert_true(len <= SILO_LOG_FRAME_MAX);
                assert_memory_equal(data, big + got, len);
                got += len;
                frames++;
                free(data);
        }
        assert_int_equal(got, total);
        assert_int_equal(frames, 3);
}

static void test_log_partial_and_corrupt_frames(void **state)
{
        (void) state;
        _cleanup_close_ int fd = tmpfile_fd();
        /* A frame still being written is "not yet there", not an error. */
        const unsigned char partial[] = { 1, 0, 0, 0, 0, 0, 0, 10, 'a', 'b' };
        assert_int_equal(write(fd, partial, sizeof(partial)), (ssize_t) sizeof(partial));
        uint64_t off = 0;
        int stream;
        char *data = NULL;
        size_t len;
        assert_int_equal(silo_log_read_frame(fd, &off, &stream, &data, &len, NULL), 0);
        assert_int_equal(off, 0);
        assert_null(data);

        _cleanup_close_ int bad = tmpfile_fd();
        const unsigned char wrong_stream[] = { 7, 0, 0, 0, 0, 0, 0, 1, 'x' };
        assert_int_equal(write(bad, wrong_stream, sizeof(wrong_stream)), (ssize_t) sizeof(wrong_stream));
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(silo_log_read_frame(bad, &off, &stream, &data, &len, &err), -EBADMSG);
        assert_non_null(strstr(err.message, "corrupt frame header"));

        _cleanup_close_ int huge = tmpfile_fd();
        const unsigned char too_long[] = { 1, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff };
        assert_int_equal(write(huge, too_long, sizeof(too_long)), (ssize_t) sizeof(too_long));
        off = 0;
        assert_int_equal(silo_log_read_frame(huge, &off, &stream, &data, &len, &err), -EBADMSG);
}

static void test_state_files(void **state)
{
        (void) state;
        char dir[] = "/tmp/silo-test-engine-dir-XXXXXX";
        assert_non_null(mkdtemp(dir));
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        struct silo_engine_exit ex;
        struct silo_engine_started st;
        assert_int_equal(silo_engine_exit_load(dfd, &ex, NULL), -ENOENT);
        assert_int_equal(silo_engine_started_load(dfd, &st, NULL), -ENOENT);

        json_t *doc = json_pack("{s:i, s:I, s:s}", "ExitCode", 137, "FinishedAt", (json_int_t) 42, "Error", "");
        assert_int_equal(silo_engine_write_json_at(dfd, SILO_ENGINE_EXIT, doc, NULL), 0);
        json_decref(doc);
        assert_int_equal(silo_engine_exit_load(dfd, &ex, NULL), 0);
        assert_int_equal(ex.exit_code, 137);
        assert_int_equal(ex.finished_at, 42);

        /* A wrong type names the file and the field. */
        doc = json_pack("{s:s, s:i}", "Pid", "x", "MonitorPid", 1);
        assert_int_equal(silo_engine_write_json_at(dfd, SILO_ENGINE_STARTED, doc, NULL), 0);
        json_decref(doc);
        silo_error err = SILO_ERROR_INIT;
        assert_true(silo_engine_started_load(dfd, &st, &err) < 0);
        assert_non_null(strstr(err.message, "Pid"));

        char buf[48];
        silo_engine_format_time(0, buf);
        assert_string_equal(buf, "0001-01-01T00:00:00Z");
        silo_engine_format_time(1000000000LL * 86400 + 5, buf);
        assert_string_equal(buf, "1970-01-02T00:00:00.000000005Z");
        assert_int_equal(silo_rm_rf_at(AT_FDCWD, dir, NULL), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_log_round_trip),
                cmocka_unit_test(test_log_times_and_old_frames),
                cmocka_unit_test(test_log_splits_large_writes),
                cmocka_unit_test(test_log_partial_and_corrupt_frames),
                cmocka_unit_test(test_state_files),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
