/* Content-addressed store: digests, blobs, the image index, layer
 * transactions, crash/concurrency behaviour. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/digest.h"
#include "storage/index.h"
#include "storage/store.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define EMPTY_SHA256 "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HELLO_SHA256 "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

struct fixture {
        char dir[64];
        silo_store *store;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        snprintf(f->dir, sizeof(f->dir), "/tmp/silo-test-store-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        silo_error err = SILO_ERROR_INIT;
        char root[128];
        snprintf(root, sizeof(root), "%s/root", f->dir);
        assert_int_equal(silo_store_open(root, &f->store, &err), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        silo_store_free(f->store);
        silo_rm_rf_at(AT_FDCWD, f->dir, NULL);
        free(f);
        return 0;
}

static size_t count_entries(int dirfd)
{
        int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fdopendir(fd);
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

static void test_digest_valid(void **state)
{
        (void) state;
        assert_true(silo_digest_valid(EMPTY_SHA256));
        assert_false(silo_digest_valid("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
        assert_false(silo_digest_valid("sha256:e3b0"));
        assert_false(silo_digest_valid(EMPTY_SHA256 "00"));
        assert_false(silo_digest_valid("sha256:../../../../etc/passwd0000000000000000000000000000000000000000"));
        assert_false(silo_digest_valid(NULL));

        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(silo_digest_check("sha512:abcd", "layer", &err), -ENOTSUP);
        assert_non_null(strstr(err.message, "unsupported digest algorithm 'sha512'"));
        assert_int_equal(silo_digest_check("sha256:xyz", "layer", &err), -EINVAL);
        assert_non_null(strstr(err.message, "layer: malformed digest"));
}

static void test_digest_hash(void **state)
{
        (void) state;
        char d[SILO_DIGEST_SIZE];
        assert_int_equal(silo_digest_buffer("", 0, d), 0);
        assert_string_equal(d, EMPTY_SHA256);
        assert_int_equal(silo_digest_buffer("hello", 5, d), 0);
        assert_string_equal(d, HELLO_SHA256);

        silo_sha256 *h = silo_sha256_new();
        silo_sha256_update(h, "he", 2);
        char peek[SILO_DIGEST_SIZE];
        silo_sha256_peek(h, peek);
        silo_sha256_update(h, "llo", 3);
        silo_sha256_final(h, d);
        assert_string_equal(d, HELLO_SHA256);
        char he[SILO_DIGEST_SIZE];
        silo_digest_buffer("he", 2, he);
        assert_string_equal(peek, he);
        silo_sha256_free(h);
}

static void test_blob_put_read(void **state)
{
        struct fixture *f = *state;
        silo_error err = SILO_ERROR_INIT;
        char d[SILO_DIGEST_SIZE];

        assert_int_equal(silo_store_blob_put(f->store, "hello", 5, NULL, d, &err), 0);
        assert_string_equal(d, HELLO_SHA256);
        assert_true(silo_store_blob_exists(f->store, HELLO_SHA256));

        _cleanup_free_ char *buf = NULL;
        size_t len;
        assert_int_equal(silo_store_blob_read(f->store, HELLO_SHA256, 100, &buf, &len, &err), 0);
        assert_int_equal(len, 5);
        assert_memory_equal(buf, "hello", 5);

        int64_t size;
        assert_int_equal(silo_store_blob_size(f->store, HELLO_SHA256, &size, &err), 0);
        assert_int_equal(size, 5);

        /* Bounded reads. */
        free(TAKE_PTR(buf));
        assert_int_equal(silo_store_blob_read(f->store, HELLO_SHA256, 2, &buf, &len, &err), -EFBIG);

        /* Idempotent. */
        assert_int_equal(silo_store_blob_put(f->store, "hello", 5, HELLO_SHA256, NULL, &err), 0);
        /* Nothing left in tmp/. */
        assert_int_equal(count_entries(silo_store_dir_fd(f->store, "tmp")), 0);

        /* Blob files are read-only. */
        struct stat st;
        assert_int_equal(fstatat(silo_store_dir_fd(f->store, "blobs"), silo_digest_hex(HELLO_SHA256), &st, 0), 0);
        assert_int_equal(st.st_mode & 0777, 0444);

        assert_int_equal(silo_store_blob_remove(f->store, HELLO_SHA256, &err), 0);
        assert_false(silo_store_blob_exists(f->store, HELLO_SHA256));
}

static void test_blob_put_mismatch(void **state)
{
        struct fixture *f = *state;
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(silo_store_blob_put(f->store, "hellO", 5, HELLO_SHA256, NULL, &err), -EBADMSG);
        assert_non_null(strstr(err.message, "digest mismatch"));
        assert_non_null(strstr(err.message, HELLO_SHA256));
        assert_false(silo_store_blob_exists(f->store, HELLO_SHA256));
        assert_int_equal(count_entries(silo_store_dir_fd(f->store, "blobs")), 0);
        assert_int_equal(count_entries(silo_store_dir_fd(f->store, "tmp")), 0);
}

static void test_blob_writer(void **state)
{
        struct fixture *f = *state;
        silo_error err = SILO_ERROR_INIT;
        silo_blob_writer *w = NULL;

        /* Size mismatch: refused, nothing visible. */
        assert_int_equal(silo_blob_writer_new(f->store, &w, &err), 0);
        assert_int_equal(silo_blob_writer_write(w, "hel", 3, &err), 0);
        assert_int_equal(silo_blob_writer_write(w, "lo", 2, &err), 0);
        assert_int_equal(silo_blob_writer_size(w), 5);
        char peek[SILO_DIGEST_SIZE];
        silo_blob_writer_digest(w, peek);
        assert_string_equal(peek, HELLO_SHA256);
        assert_int_equal(silo_blob_writer_commit(w, HELLO_SHA256, 6, NULL, &err), -EBADMSG);
        assert_non_null(strstr(err.message, "size mismatch"));
        w = silo_blob_writer_free(w);
        assert_false(silo_store_blob_exists(f->store, HELLO_SHA256));
        assert_int_equal(count_entries(silo_store_dir_fd(f->store, "tmp")), 0);

        /* Reset (a download restarting) then a good commit. */
        char d[SILO_DIGEST_SIZE];
        assert_int_equal(silo_blob_writer_new(f->store, &w, &err), 0);
        assert_int_equal(silo_blob_writer_write(w, "garbage", 7, &err), 0);
        assert_int_equal(silo_blob_writer_reset(w, &err), 0);
        assert_int_equal(silo_blob_writer_write(w, "hello", 5, &err), 0);
        assert_int_equal(silo_blob_writer_commit(w, HELLO_SHA256, 5, d, &err), 0);
        assert_string_equal(d, HELLO_SHA256);
        w = silo_blob_writer_free(w);
        assert_int_equal(silo_store_blob_verify(f->store, HELLO_SHA256, &err), 0);
}

static void test_blob_corrupt_on_read(void **state)
{
        struct fixture *f = *state;
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(silo_store_blob_put(f->store, "hello", 5, NULL, NULL, &err), 0);

        /* Flip the content behind the store's back (disk corruption). */
        int blobs = silo_store_dir_fd(f->store, "blobs");
        const char *hex = silo_digest_hex(HELLO_SHA256);
        assert_int_equal(fchmodat(blobs, hex, 0644, 0), 0);
        int fd = openat(blobs, hex, O_WRONLY | O_TRUNC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "HELLO", 5), 5);
        close(fd);

        _cleanup_free_ char *buf = NULL;
        assert_int_equal(silo_store_blob_read(f->store, HELLO_SHA256, 100, &buf, NULL, &err), -EBADMSG);
        assert_non_null(strstr(err.message, "is corrupt"));
        assert_null(buf);
        assert_int_equal(silo_store_blob_verify(f->store, HELLO_SHA256, &err), -EBADMSG);
}

static void test_blob_concurrent_writers(void **state)
{
        struct fixture *f = *state;
        enum { N = 6 };
        const size_t size = 4 << 20;
        char *data = malloc(size);
        for (size_t i = 0; i < size; i++)
                data[i] = (char) (i * 7 + i / 4096);
        char expect[SILO_DIGEST_SIZE];
        silo_digest_buffer(data, size, expect);

        pid_t pids[N];
        for (int i = 0; i < N; i++) {
                pids[i] = fork();
                assert_true(pids[i] >= 0);
                if (pids[i] == 0) {
                        silo_store *s = NULL;
                        silo_error err = SILO_ERROR_INIT;
                        if (silo_store_open(silo_store_root(f->store), &s, &err) < 0)
                                _exit(2);
                        silo_blob_writer *w = NULL;
                        if (silo_blob_writer_new(s, &w, &err) < 0)
                                _exit(3);
                        for (size_t off = 0; off < size; off += 65536)
                                if (silo_blob_writer_write(w, data + off, 65536, &err) < 0)
                                        _exit(4);
                        if (silo_blob_writer_commit(w, expect, (int64_t) size, NULL, &err) < 0)
                                _exit(5);
                        silo_blob_writer_free(w);
                        silo_store_free(s);
                        _exit(0);
                }
        }
        for (int i = 0; i < N; i++) {
                int status;
                assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
                assert_true(WIFEXITED(status));
                assert_int_equal(WEXITSTATUS(status), 0);
        }
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(silo_store_blob_verify(f->store, expect, &err), 0);
        assert_int_equal(count_entries(silo_store_dir_fd(f->store, "blobs")), 1);
        assert_int_equal(count_entries(silo_store_dir_fd(f->store, "tmp")), 0);
        free(data);
}

static int add_two(silo_index *idx, void *userdata, silo_error *err)
{
        (void) userdata;
        int r = silo_index_add(idx, HELLO_SHA256, EMPTY_SHA256, "docker.io/library/a:1", NULL, err);
        if (r < 0)
                return r;
        return silo_index_add(idx, EMPTY_SHA256, HELLO_SHA256, "docker.io/library/b:1", NULL, err);
}

static int move_name(silo_index *idx, void *userdata, silo_error *err)
{
        (void) userdata;
        /* Pointing a:1 at the other image takes it away from the first. */
        return silo_index_add(idx, EMPTY_SHA256, HELLO_SHA256, "docker.io/library/a:1", NULL, err);
}

static int bad_update(silo_index *idx, void *userdata, silo_error *err)
{
        (void) userdata;
        silo_index_remove_name(idx, "docker.io/library/b:1");
        return silo_error_msg(err, EIO, "simulated failure");
}

static void test_index(void **state)
{
        struct fixture *f = *state;
        silo_error err = SILO_ERROR_INIT;

        assert_int_equal(silo_index_update(f->store, add_two, NULL, &err), 0);
        silo_index *idx = NULL;
        assert_int_equal(silo_index_load(f->store, &idx, &err), 0);
        assert_int_equal(idx->n, 2);
        silo_index_entry *e = silo_index_find_name(idx, "docker.io/library/a:1");
        assert_non_null(e);
        assert_string_equal(e->digest, HELLO_SHA256);
        assert_string_equal(e->config, EMPTY_SHA256);
        idx = silo_index_free(idx);

        assert_int_equal(silo_index_update(f->store, move_name, NULL, &err), 0);
        assert_int_equal(silo_index_load(f->store, &idx, &err), 0);
        e = silo_index_find_name(idx, "docker.io/library/a:1");
        assert_string_equal(e->digest, EMPTY_SHA256);
        assert_int_equal(silo_index_entry_n_names(e), 2);
        assert_int_equal(silo_index_entry_n_names(silo_index_find_digest(idx, HELLO_SHA256)), 0);
        idx = silo_index_free(idx);

        /* A failed update leaves the file untouched. */
        assert_int_equal(silo_index_update(f->store, bad_update, NULL, &err), -EIO);
        assert_int_equal(silo_index_load(f->store, &idx, &err), 0);
        assert_non_null(silo_index_find_name(idx, "docker.io/library/b:1"));
        e = silo_index_find_digest(idx, HELLO_SHA256);
        silo_index_remove_entry(idx, e);
        assert_int_equal(idx->n, 1);
        assert_null(silo_index_find_digest(idx, HELLO_SHA256));
        idx = silo_index_free(idx);

        /* A corrupt index is reported with its path, not ignored. */
        int rootfd = silo_store_root_fd(f->store);
        assert_int_equal(silo_write_file_atomic_at(rootfd, "images.json", "{\"images\": 3}", 13, 0600, &err), 0);
        assert_true(silo_index_load(f->store, &idx, &err) < 0);
        assert_non_null(strstr(err.message, "images.json"));
        const char *bad = "{\"images\":[{\"digest\":\"sha256:1\",\"config\":\"x\"}]}";
        assert_int_equal(silo_write_file_atomic_at(rootfd, "images.json", bad, strlen(bad), 0600, &err), 0);
        assert_true(silo_index_load(f->store, &idx, &err) < 0);
        assert_non_null(strstr(err.message, "malformed digest"));
}

static void test_layer_tx(void **state)
{
        struct fixture *f = *state;
        silo_error err = SILO_ERROR_INIT;
        silo_layer_tx *tx = NULL;
        int layers = silo_store_dir_fd(f->store, "layers");

        /* Abandoned: nothing left behind. */
        assert_int_equal(silo_layer_tx_begin(f->store, HELLO_SHA256, &tx, &err), 0);
        int fd = openat(silo_layer_tx_diff_fd(tx), "file", O_CREAT | O_WRONLY, 0644);
        close(fd);
        tx = silo_layer_tx_free(tx);
        assert_false(silo_store_layer_exists(f->store, HELLO_SHA256));
        assert_int_equal(count_entries(layers), 0);

        /* Committed. */
        assert_int_equal(silo_layer_tx_begin(f->store, HELLO_SHA256, &tx, &err), 0);
        fd = openat(silo_layer_tx_diff_fd(tx), "file", O_CREAT | O_WRONLY, 0644);
        close(fd);
        assert_int_equal(silo_layer_tx_commit(tx, 123, 1, &err), 0);
        tx = silo_layer_tx_free(tx);
        assert_true(silo_store_layer_exists(f->store, HELLO_SHA256));
        uint64_t size;
        assert_int_equal(silo_store_layer_size(f->store, HELLO_SHA256, &size, &err), 0);
        assert_int_equal(size, 123);
        _cleanup_free_ char *path = NULL;
        assert_int_equal(silo_store_layer_path(f->store, HELLO_SHA256, &path, &err), 0);
        char want[512];
        snprintf(want, sizeof(want), "%s/layers/%s/diff/file", silo_store_root(f->store), silo_digest_hex(HELLO_SHA256));
        assert_int_equal(access(want, F_OK), 0);

        /* A second writer finds it done. */
        assert_int_equal(silo_layer_tx_begin(f->store, HELLO_SHA256, &tx, &err), 1);
        assert_null(tx);

        char **list = NULL;
        assert_int_equal(silo_store_list_layers(f->store, &list, &err), 0);
        assert_non_null(list[0]);
        assert_string_equal(list[0], HELLO_SHA256);
        assert_null(list[1]);
        silo_strv_free(list);

        assert_int_equal(silo_store_layer_remove(f->store, HELLO_SHA256, &err), 0);
        assert_false(silo_store_layer_exists(f->store, HELLO_SHA256));
        assert_int_equal(count_entries(layers), 0);
}

static void test_clean_tmp(void **state)
{
        struct fixture *f = *state;
        silo_error err = SILO_ERROR_INIT;
        /* Leftovers of a crashed process. */
        int tmp = silo_store_dir_fd(f->store, "tmp");
        close(openat(tmp, "blob-dead", O_CREAT | O_WRONLY, 0600));
        mkdirat(silo_store_dir_fd(f->store, "layers"), ".tmp-abc-def", 0700);
        assert_int_equal(silo_store_begin(f->store, true, &err), 0);
        assert_int_equal(silo_store_clean_tmp(f->store, &err), 0);
        silo_store_end(f->store);
        assert_int_equal(count_entries(tmp), 0);
        assert_int_equal(count_entries(silo_store_dir_fd(f->store, "layers")), 0);

        /* Nested shared locks are fine; exclusive inside shared is refused. */
        assert_int_equal(silo_store_begin(f->store, false, &err), 0);
        assert_int_equal(silo_store_begin(f->store, false, &err), 0);
        assert_int_equal(silo_store_begin(f->store, true, &err), -EDEADLK);
        silo_store_end(f->store);
        silo_store_end(f->store);
}

static void test_store_modes(void **state)
{
        struct fixture *f = *state;
        struct stat st;
        assert_int_equal(fstat(silo_store_dir_fd(f->store, "layers"), &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
        assert_int_equal(fstat(silo_store_root_fd(f->store), &st), 0);
        assert_int_equal(st.st_mode & 0077 & ~0011, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_digest_valid),
                cmocka_unit_test(test_digest_hash),
                cmocka_unit_test_setup_teardown(test_blob_put_read, setup, teardown),
                cmocka_unit_test_setup_teardown(test_blob_put_mismatch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_blob_writer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_blob_corrupt_on_read, setup, teardown),
                cmocka_unit_test_setup_teardown(test_blob_concurrent_writers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_index, setup, teardown),
                cmocka_unit_test_setup_teardown(test_layer_tx, setup, teardown),
                cmocka_unit_test_setup_teardown(test_clean_tmp, setup, teardown),
                cmocka_unit_test_setup_teardown(test_store_modes, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
