/* vm/: the framed guest protocol and the host session against a fake guest
 * that lies (wrong ids, huge sizes, bad JSON, bad field types, floods,
 * silence, hang-ups).  Every case must end in a bounded error, never a
 * crash or a hang; ASan/UBSan watch the random-bytes case. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/cleanup.h"
#include "vm/proto.h"
#include "vm/vm.h"

static void put_header(uint8_t *h, uint32_t type, uint32_t size, uint64_t id)
{
        for (int i = 0; i < 4; i++) {
                h[i] = (uint8_t) (type >> (8 * i));
                h[4 + i] = (uint8_t) (size >> (8 * i));
        }
        for (int i = 0; i < 8; i++)
                h[8 + i] = (uint8_t) (id >> (8 * i));
}

/* A raw frame with any header the test wants, whatever the body. */
static void write_frame(int fd, uint32_t type, uint32_t size, uint64_t id, const char *body)
{
        uint8_t h[SILO_VM_HEADER_SIZE];
        put_header(h, type, size, id);
        assert_int_equal(write(fd, h, sizeof(h)), sizeof(h));
        if (body && *body)
                assert_int_equal(write(fd, body, strlen(body)), (ssize_t) strlen(body));
}

static void write_json(int fd, uint32_t type, uint64_t id, const char *body)
{
        write_frame(fd, type, (uint32_t) strlen(body), id, body);
}

#define RESPONSE(op) SILO_VM_TYPE(SILO_VM_KIND_RESPONSE, op)
#define EXITED SILO_VM_TYPE(SILO_VM_KIND_NOTIFY, SILO_VM_NOTIFY_PROCESS_EXITED)

static void test_round_trip(void **state)
{
        (void) state;
        _cleanup_json_ json_t *body = json_pack("{sssi}", "ContainerId", "c1", "Signal", 15);
        uint8_t *buf = NULL;
        size_t len = 0;
        assert_int_equal(silo_vm_msg_encode(SILO_VM_TYPE(SILO_VM_KIND_REQUEST, SILO_VM_OP_SIGNAL_PROCESS), 42, body,
                                            &buf, &len, NULL), 0);
        assert_true(len > SILO_VM_HEADER_SIZE);
        /* Little-endian header: type, body size, id. */
        assert_int_equal(buf[0], SILO_VM_OP_SIGNAL_PROCESS);
        assert_int_equal(buf[3], 0x10);
        assert_int_equal(buf[4], len - SILO_VM_HEADER_SIZE);
        assert_int_equal(buf[8], 42);

        struct silo_vm_reader r;
        assert_int_equal(silo_vm_reader_init(&r, NULL), 0);
        struct silo_vm_msg m = { 0 };
        /* Byte by byte: no message until the last byte. */
        for (size_t i = 0; i < len; i++) {
                assert_int_equal(silo_vm_reader_next(&r, &m, NULL), 0);
                assert_int_equal(silo_vm_reader_push(&r, buf + i, 1, NULL), 0);
        }
        assert_int_equal(silo_vm_reader_next(&r, &m, NULL), 1);
        assert_int_equal(m.id, 42);
        assert_int_equal(m.type, SILO_VM_TYPE(SILO_VM_KIND_REQUEST, SILO_VM_OP_SIGNAL_PROCESS));
        assert_string_equal(json_string_value(json_object_get(m.body, "ContainerId")), "c1");
        silo_vm_msg_done(&m);
        assert_int_equal(silo_vm_reader_next(&r, &m, NULL), 0);
        silo_vm_reader_done(&r);
        free(buf);

        /* Bodies must be objects and fit the bound. */
        _cleanup_json_ json_t *arr = json_array();
        assert_int_equal(silo_vm_msg_encode(RESPONSE(SILO_VM_OP_START), 1, arr, &buf, &len, NULL), -EINVAL);
        _cleanup_json_ json_t *big = json_object();
        char *s = malloc(SILO_VM_BODY_MAX + 1);
        memset(s, 'x', SILO_VM_BODY_MAX);
        s[SILO_VM_BODY_MAX] = 0;
        json_object_set_new(big, "x", json_string(s));
        free(s);
        assert_int_equal(silo_vm_msg_encode(RESPONSE(SILO_VM_OP_START), 1, big, &buf, &len, NULL), -E2BIG);
}

static int reader_verdict(uint32_t type, uint32_t size, const char *body)
{
        struct silo_vm_reader r;
        silo_vm_reader_init(&r, NULL);
        uint8_t h[SILO_VM_HEADER_SIZE];
        put_header(h, type, size, 1);
        silo_vm_reader_push(&r, h, sizeof(h), NULL);
        silo_vm_reader_push(&r, body, strlen(body), NULL);
        struct silo_vm_msg m = { 0 };
        silo_error err = SILO_ERROR_INIT;
        int v = silo_vm_reader_next(&r, &m, &err);
        silo_vm_msg_done(&m);
        if (v < 0) {
                assert_true(r.broken);
                assert_non_null(strstr(err.message, "guest channel"));
                /* Broken stays broken: no resynchronisation on a lying stream. */
                assert_int_equal(silo_vm_reader_next(&r, &m, NULL), -EPROTO);
        }
        silo_vm_reader_done(&r);
        return v;
}

static void test_reader_rejects_malformed(void **state)
{
        (void) state;
        uint32_t ok = RESPONSE(SILO_VM_OP_START);
        assert_int_equal(reader_verdict(ok, 2, "{}"), 1);
        assert_int_equal(reader_verdict(0xdeadbeef, 2, "{}"), -EPROTO);                    /* unknown type */
        assert_int_equal(reader_verdict(SILO_VM_TYPE(SILO_VM_KIND_RESPONSE, 99), 2, "{}"), -EPROTO);
        assert_int_equal(reader_verdict(SILO_VM_TYPE(SILO_VM_KIND_NOTIFY, 7), 2, "{}"), -EPROTO);
        assert_int_equal(reader_verdict(ok, 0, ""), -EPROTO);                               /* too small */
        assert_int_equal(reader_verdict(ok, SILO_VM_BODY_MAX + 1, "{}"), -EPROTO);          /* too big */
        assert_int_equal(reader_verdict(ok, UINT32_MAX, "{}"), -EPROTO);
        assert_int_equal(reader_verdict(ok, 5, "{\"a\":"), -EPROTO);                        /* bad JSON */
        assert_int_equal(reader_verdict(ok, 2, "[]"), -EPROTO);                             /* not an object */
        assert_int_equal(reader_verdict(ok, 4, "\"x\"}"), -EPROTO);
        assert_int_equal(reader_verdict(ok, 14, "{\"a\":1,\"a\":2}x"), -EPROTO);            /* duplicate key + junk */
        assert_int_equal(reader_verdict(ok, 4, "{}  "), 1);                                /* whitespace is fine */
        assert_int_equal(reader_verdict(ok, 3, "{}\0"), 0);                                 /* incomplete */
}

static void test_reader_random_bytes(void **state)
{
        (void) state;
        srand(12345);
        uint8_t buf[512];
        for (int round = 0; round < 2000; round++) {
                struct silo_vm_reader r;
                silo_vm_reader_init(&r, NULL);
                size_t n = (size_t) (rand() % (int) sizeof(buf));
                for (size_t i = 0; i < n; i++)
                        buf[i] = (uint8_t) rand();
                /* Sometimes a plausible header, so bodies get parsed too. */
                if (n >= SILO_VM_HEADER_SIZE && round % 2)
                        put_header(buf, RESPONSE(1 + round % (_SILO_VM_OP_MAX - 1)),
                                   (uint32_t) (n - SILO_VM_HEADER_SIZE), (uint64_t) round);
                silo_vm_reader_push(&r, buf, n, NULL);
                struct silo_vm_msg m = { 0 };
                int v;
                for (int k = 0; k < 64 && (v = silo_vm_reader_next(&r, &m, NULL)) == 1; k++)
                        silo_vm_msg_done(&m);
                silo_vm_reader_done(&r);
        }
}

struct fake {
        int host, guest;
        struct silo_vm_session s;
};

static int fake_setup(void **state)
{
        struct fake *f = calloc(1, sizeof(*f));
        int sp[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        f->host = sp[0];
        f->guest = sp[1];
        fcntl(f->host, F_SETFL, O_NONBLOCK);
        assert_int_equal(silo_vm_session_init(&f->s, f->host, NULL), 0);
        *state = f;
        return 0;
}

static int fake_teardown(void **state)
{
        struct fake *f = *state;
        silo_vm_session_done(&f->s);
        close(f->host);
        close(f->guest);
        free(f);
        return 0;
}

static int64_t ms_now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_session_negotiates(void **state)
{
        struct fake *f = *state;
        /* Ids are predictable: the first request is 1. */
        write_json(f->guest, RESPONSE(SILO_VM_OP_NEGOTIATE_PROTOCOL), 1, "{\"Result\":0,\"Version\":1}");
        assert_int_equal(silo_vm_session_negotiate(&f->s, 1000, NULL), 0);
        assert_int_equal(f->s.guest_version, 1);

        /* An exit notification arriving with a response is kept for the wait. */
        write_json(f->guest, EXITED, 0, "{\"ProcessId\":7,\"ExitCode\":3}");
        write_json(f->guest, RESPONSE(SILO_VM_OP_START), 2, "{\"Result\":0,\"ProcessId\":7}");
        _cleanup_json_ json_t *req = json_object();
        json_t *resp = NULL;
        assert_int_equal(silo_vm_session_request(&f->s, SILO_VM_OP_START, req, 1000, &resp, NULL), 0);
        json_decref(resp);
        int code = -1;
        assert_int_equal(silo_vm_session_wait_exit(&f->s, 7, 1000, &code, NULL), 0);
        assert_int_equal(code, 3);
}

static void test_session_wrong_version(void **state)
{
        struct fake *f = *state;
        silo_error err = SILO_ERROR_INIT;
        write_json(f->guest, RESPONSE(SILO_VM_OP_NEGOTIATE_PROTOCOL), 1, "{\"Result\":0,\"Version\":99}");
        assert_int_equal(silo_vm_session_negotiate(&f->s, 1000, &err), -EPROTO);
        assert_non_null(strstr(err.message, "Version"));
}

static void test_session_silent_guest_times_out(void **state)
{
        struct fake *f = *state;
        silo_error err = SILO_ERROR_INIT;
        int64_t t0 = ms_now();
        assert_int_equal(silo_vm_session_negotiate(&f->s, 200, &err), -ETIMEDOUT);
        assert_true(ms_now() - t0 < 2000);
        assert_non_null(strstr(err.message, "NegotiateProtocol"));

        /* Waiting for an exit is bounded the same way. */
        int code;
        t0 = ms_now();
        assert_int_equal(silo_vm_session_wait_exit(&f->s, 1, 200, &code, &err), -ETIMEDOUT);
        assert_true(ms_now() - t0 < 2000);
}

static void test_session_guest_hangs_up(void **state)
{
        struct fake *f = *state;
        silo_error err = SILO_ERROR_INIT;
        /* Half a header, then gone. */
        assert_int_equal(write(f->guest, "\x02\x00\x10", 3), 3);
        shutdown(f->guest, SHUT_WR);
        assert_int_equal(silo_vm_session_negotiate(&f->s, 1000, &err), -EPIPE);
        assert_non_null(strstr(err.message, "closed"));
}

struct lie {
        uint32_t type;
        uint64_t id;
        const char *body;
        int want;
        const char *want_text;
};

static void test_session_rejects_lies(void **state)
{
        (void) state;
        static const struct lie lies[] = {
                /* A response to a request never sent. */
                { RESPONSE(SILO_VM_OP_NEGOTIATE_PROTOCOL), 77, "{\"Result\":0,\"Version\":1}", -EPROTO, "unsolicited" },
                /* The right id for the wrong operation. */
                { RESPONSE(SILO_VM_OP_CREATE), 1, "{\"Result\":0,\"Version\":1}", -EPROTO, "unsolicited" },
                /* The guest has no business sending requests. */
                { SILO_VM_TYPE(SILO_VM_KIND_REQUEST, SILO_VM_OP_SHUTDOWN_FORCED), 1, "{}", -EPROTO, "request" },
                { RESPONSE(SILO_VM_OP_NEGOTIATE_PROTOCOL), 1, "{\"Version\":1}", -EPROTO, "Result missing" },
                { RESPONSE(SILO_VM_OP_NEGOTIATE_PROTOCOL), 1, "{\"Result\":\"0\",\"Version\":1}", -EPROTO, "Result" },
                { RESPONSE(SILO_VM_OP_NEGOTIATE_PROTOCOL), 1, "{\"Result\":0,\"Version\":1.5}", -EPROTO, "Version" },
                { RESPONSE(SILO_VM_OP_NEGOTIATE_PROTOCOL), 1, "{\"Result\":0,\"ErrorMessage\":5,\"Version\":1}", -EPROTO,
                  "ErrorMessage" },
                /* A failure message is passed on, made printable. */
                { RESPONSE(SILO_VM_OP_NEGOTIATE_PROTOCOL), 1, "{\"Result\":-2,\"ErrorMessage\":\"no\\u001b[2Jway\"}", -EIO,
                  "no?[2Jway" },
                { EXITED, 0, "{\"ProcessId\":1,\"ExitCode\":999}", -EPROTO, "ExitCode" },
                { EXITED, 0, "{\"ProcessId\":-1,\"ExitCode\":0}", -EPROTO, "ProcessId" },
                { EXITED, 0, "{\"ProcessId\":{},\"ExitCode\":0}", -EPROTO, "ProcessId" },
                { RESPONSE(SILO_VM_OP_NEGOTIATE_PROTOCOL), 1, "{\"Result\":0,\"Version\":1", -EPROTO, "JSON" },
        };
        for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
                void *st = NULL;
                fake_setup(&st);
                struct fake *f = st;
                write_json(f->guest, lies[i].type, lies[i].id, lies[i].body);
                silo_error err = SILO_ERROR_INIT;
                int r = silo_vm_session_negotiate(&f->s, 1000, &err);
                if (r != lies[i].want || !strstr(err.message, lies[i].want_text))
                        fail_msg("lie %zu: got %d \"%s\"", i, r, err.message);
                fake_teardown(&st);
        }
}

static void test_session_huge_size_is_not_awaited(void **state)
{
        struct fake *f = *state;
        silo_error err = SILO_ERROR_INIT;
        /* A header promising 4 GiB must fail at once, not wait for the bytes. */
        write_frame(f->guest, RESPONSE(SILO_VM_OP_NEGOTIATE_PROTOCOL), 0xffffffffu, 1, "{");
        int64_t t0 = ms_now();
        assert_int_equal(silo_vm_session_negotiate(&f->s, 5000, &err), -EPROTO);
        assert_true(ms_now() - t0 < 1000);
        assert_non_null(strstr(err.message, "size"));
}

static void test_session_exit_flood(void **state)
{
        struct fake *f = *state;
        silo_error err = SILO_ERROR_INIT;
        for (int i = 0; i < SILO_VM_MAX_EXITS + 1; i++)
                write_json(f->guest, EXITED, 0, "{\"ProcessId\":5,\"ExitCode\":0}");
        int code;
        /* Process 6 never exits; the flood must be refused, not buffered. */
        assert_int_equal(silo_vm_session_wait_exit(&f->s, 6, 1000, &code, &err), -EPROTO);
        assert_non_null(strstr(err.message, "exit notifications"));
}

static void test_session_copies_output(void **state)
{
        struct fake *f = *state;
        int out[2], pipe_out[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out), 0);
        assert_int_equal(pipe2(pipe_out, O_CLOEXEC), 0);
        f->s.stdout_in = out[0];
        f->s.stdout_out = pipe_out[1];
        assert_int_equal(write(out[1], "hello\n", 6), 6);
        write_json(f->guest, EXITED, 0, "{\"ProcessId\":9,\"ExitCode\":0}");
        int code = -1;
        assert_int_equal(silo_vm_session_wait_exit(&f->s, 9, 1000, &code, NULL), 0);
        silo_vm_session_drain(&f->s, 50);
        char buf[16] = "";
        assert_int_equal(read(pipe_out[0], buf, sizeof(buf)), 6);
        assert_memory_equal(buf, "hello\n", 6);
        close(out[0]);
        close(out[1]);
        close(pipe_out[0]);
        close(pipe_out[1]);
}

static void test_accel_names(void **state)
{
        (void) state;
        assert_int_equal(silo_vm_accel_from_string(NULL), SILO_VM_ACCEL_AUTO);
        assert_int_equal(silo_vm_accel_from_string("kvm"), SILO_VM_ACCEL_KVM);
        assert_int_equal(silo_vm_accel_from_string("tcg"), SILO_VM_ACCEL_TCG);
        assert_int_equal(silo_vm_accel_from_string("xen"), _SILO_VM_ACCEL_INVALID);
        assert_int_equal(silo_vm_accel_resolve(SILO_VM_ACCEL_TCG), SILO_VM_ACCEL_TCG);
        /* The probe never crashes and always decides. */
        enum silo_vm_accel a = silo_vm_accel_resolve(SILO_VM_ACCEL_AUTO);
        assert_true(a == SILO_VM_ACCEL_KVM || a == SILO_VM_ACCEL_TCG);

        _cleanup_json_ json_t *vm = json_pack("{s{ss}}", "annotations", "io.silo.isolation", "vm");
        _cleanup_json_ json_t *hv = json_pack("{s{ss}}", "annotations", "io.silo.isolation", "hyperv");
        _cleanup_json_ json_t *proc = json_pack("{s{ss}}", "annotations", "io.silo.isolation", "process");
        _cleanup_json_ json_t *bad = json_pack("{s{si}}", "annotations", "io.silo.isolation", 1);
        assert_true(silo_vm_wanted(vm));
        assert_true(silo_vm_wanted(hv));
        assert_false(silo_vm_wanted(proc));
        assert_false(silo_vm_wanted(bad));
        assert_true(silo_vm_annotated(json_object_get(vm, "annotations")));
        assert_false(silo_vm_annotated(json_object_get(proc, "annotations")));
        assert_false(silo_vm_annotated(NULL));
}

static void test_stdio_frames_and_new_ops(void **state)
{
        (void) state;
        uint8_t hdr[SILO_VM_STDIO_HEADER];
        uint32_t stream = 0, size = 0;
        silo_vm_stdio_header(hdr, SILO_VM_STREAM(1234, 2), 77);
        assert_int_equal(hdr[0], (1234 * 4 + 2) & 0xff);        /* little-endian on the wire */
        silo_vm_stdio_parse(hdr, &stream, &size);
        assert_int_equal(stream, 1234 * 4 + 2);
        assert_int_equal(size, 77);
        assert_string_equal(silo_vm_op_name(SILO_VM_TYPE(SILO_VM_KIND_REQUEST, SILO_VM_OP_RESIZE_CONSOLE)),
                            "ResizeConsole");
        assert_string_equal(silo_vm_op_name(SILO_VM_TYPE(SILO_VM_KIND_RESPONSE, SILO_VM_OP_GET_PROPERTIES)),
                            "GetProperties");
        assert_true(silo_vm_type_valid(SILO_VM_TYPE(SILO_VM_KIND_RESPONSE, SILO_VM_OP_GET_PROPERTIES)));
        assert_false(silo_vm_type_valid(SILO_VM_TYPE(SILO_VM_KIND_RESPONSE, _SILO_VM_OP_MAX)));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_reader_rejects_malformed),
                cmocka_unit_test(test_reader_random_bytes),
                cmocka_unit_test_setup_teardown(test_session_negotiates, fake_setup, fake_teardown),
                cmocka_unit_test_setup_teardown(test_session_wrong_version, fake_setup, fake_teardown),
                cmocka_unit_test_setup_teardown(test_session_silent_guest_times_out, fake_setup, fake_teardown),
                cmocka_unit_test_setup_teardown(test_session_guest_hangs_up, fake_setup, fake_teardown),
                cmocka_unit_test(test_session_rejects_lies),
                cmocka_unit_test_setup_teardown(test_session_huge_size_is_not_awaited, fake_setup, fake_teardown),
                cmocka_unit_test_setup_teardown(test_session_exit_flood, fake_setup, fake_teardown),
                cmocka_unit_test_setup_teardown(test_session_copies_output, fake_setup, fake_teardown),
                cmocka_unit_test(test_accel_names),
                cmocka_unit_test(test_stdio_frames_and_new_ops),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
