/* The host side of the guest protocol.  Everything the guest sends is
 * untrusted: frames are bounded by the reader, and each message is checked
 * here against what we asked for (responses must answer the one request in
 * flight, notifications must carry sane fields).  Any violation ends the
 * session with -EPROTO; every wait has a deadline. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/json.h"
#include "vm/vm.h"

#define OUTPUT_CHUNK 65536
#define GUEST_MESSAGE_MAX 200

int silo_vm_session_init(struct silo_vm_session *s, int fd, silo_error *err)
{
        *s = (struct silo_vm_session) {
                .fd = fd, .vm_pidfd = -1, .stdout_in = -1, .stderr_in = -1, .stdout_out = -1, .stderr_out = -1,
                .sigfd = -1,
        };
        return silo_vm_reader_init(&s->reader, err);
}

void silo_vm_session_done(struct silo_vm_session *s)
{
        silo_vm_reader_done(&s->reader);
}

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A guest's text may end up on a terminal: printable ASCII only, bounded. */
static void sanitize(const char *in, char out[GUEST_MESSAGE_MAX + 1])
{
        size_t i = 0;
        for (; in && in[i] && i < GUEST_MESSAGE_MAX; i++)
                out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
        out[i] = 0;
}

static int get_int_field(json_t *body, const char *name, int64_t min, int64_t max, bool required, int64_t *ret,
                         const char *what, silo_error *err)
{
        json_t *v = json_object_get(body, name);
        if (!v) {
                if (required)
                        return silo_error_msg(err, EPROTO, "guest %s: %s missing", what, name);
                return 0;
        }
        if (!json_is_integer(v))
                return silo_error_msg(err, EPROTO, "guest %s: %s: expected an integer, got %s", what, name,
                                      silo_json_type_name(v));
        int64_t x = json_integer_value(v);
        if (x < min || x > max)
                return silo_error_msg(err, EPROTO, "guest %s: %s: %lld out of range", what, name, (long long) x);
        *ret = x;
        return 1;
}

static int handle_notify(struct silo_vm_session *s, struct silo_vm_msg *m, silo_error *err)
{
        /* The reader only lets known notification types through. */
        int64_t pid = 0, code = 0;
        int r = get_int_field(m->body, "ProcessId", 1, INT32_MAX, true, &pid, "ProcessExited", err);
        if (r < 0)
                return r;
        r = get_int_field(m->body, "ExitCode", 0, 255, true, &code, "ProcessExited", err);
        if (r < 0)
                return r;
        if (s->n_exits >= SILO_VM_MAX_EXITS)
                return silo_error_msg(err, EPROTO, "guest sent more than %d exit notifications", SILO_VM_MAX_EXITS);
        s->exits[s->n_exits++] = (struct silo_vm_exit) { .process_id = (uint32_t) pid, .exit_code = (int) code };
        return 0;
}

/* Copies one chunk of guest output; returns false once the port is done. */
static bool copy_output(int in, int out)
{
        char buf[OUTPUT_CHUNK];
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return true;
        if (n <= 0)
                return false;
        for (ssize_t off = 0; out >= 0 && off < n;) {
                ssize_t w = write(out, buf + off, (size_t) (n - off));
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && errno == EAGAIN) {
                        struct pollfd p = { .fd = out, .events = POLLOUT };
                        poll(&p, 1, 1000);
                        continue;
                }
                if (w <= 0)
                        break;  /* our reader went away: keep draining the guest */
                off += w;
        }
        return true;
}

/* Reads what the control channel has and dispatches complete messages.
 * waiting_id/ret_response: the one request in flight (0: none). */
static int pump_control(struct silo_vm_session *s, uint64_t waiting_id, uint32_t waiting_op, json_t **ret_response,
                        silo_error *err)
{
        ssize_t n = silo_vm_reader_fill(&s->reader, s->fd, err);
        if (n == -EAGAIN)
                return 0;
        if (n < 0)
                return (int) n;
        if (n == 0 && s->reader.len == 0)
                return silo_error_msg(err, EPIPE, "guest closed the control channel");
        for (;;) {
                struct silo_vm_msg m = { 0 };
                int r = silo_vm_reader_next(&s->reader, &m, err);
                if (r <= 0) {
                        if (r == 0 && n == 0)
                                return silo_error_msg(err, EPIPE, "guest closed the control channel%s",
                                                      s->reader.len ? " mid-message" : "");
                        return r;
                }
                uint32_t kind = m.type & SILO_VM_KIND_MASK;
                if (kind == SILO_VM_KIND_NOTIFY) {
                        r = handle_notify(s, &m, err);
                } else if (kind == SILO_VM_KIND_RESPONSE && waiting_id && m.id == waiting_id &&
                           (m.type & SILO_VM_OP_MASK) == waiting_op && !*ret_response) {
                        *ret_response = m.body;
                        m.body = NULL;
                } else if (kind == SILO_VM_KIND_RESPONSE) {
                        r = silo_error_msg(err, EPROTO, "guest sent an unsolicited %s response (id %llu)",
                                           silo_vm_op_name(m.type), (unsigned long long) m.id);
                } else {
                        r = silo_error_msg(err, EPROTO, "guest sent a %s request: the host does not serve requests",
                                           silo_vm_op_name(m.type));
                }
                silo_vm_msg_done(&m);
                if (r < 0) {
                        s->reader.broken = true;
                        return r;
                }
        }
}

/* One poll round over every channel, up to timeout_ms. */
static int pump(struct silo_vm_session *s, int timeout_ms, uint64_t waiting_id, uint32_t waiting_op,
                json_t **ret_response, silo_error *err)
{
        enum { P_CONTROL, P_STDOUT, P_STDERR, P_SIGNAL, P_VM, P_MAX };
        struct pollfd p[P_MAX + SILO_VM_SESSION_EXTRA_MAX] = {
                [P_CONTROL] = { .fd = s->fd, .events = POLLIN },
                [P_STDOUT] = { .fd = s->stdout_in, .events = POLLIN },
                [P_STDERR] = { .fd = s->stderr_in, .events = POLLIN },
                [P_SIGNAL] = { .fd = s->sigfd, .events = POLLIN },
                [P_VM] = { .fd = s->vm_pidfd, .events = POLLIN },
        };
        size_t n_extra = s->n_extra < SILO_VM_SESSION_EXTRA_MAX ? s->n_extra : SILO_VM_SESSION_EXTRA_MAX;
        for (size_t i = 0; i < n_extra; i++)
                p[P_MAX + i] = (struct pollfd) { .fd = s->extra[i].fd, .events = s->extra[i].events };
        int n = poll(p, P_MAX + n_extra, timeout_ms);
        if (n < 0)
                return errno == EINTR ? 0 : silo_error_set(err, errno, "poll guest channels");
        bool extra_ready = false;
        for (size_t i = 0; i < n_extra; i++) {
                s->extra[i].revents = p[P_MAX + i].revents;
                extra_ready |= p[P_MAX + i].revents != 0;
        }
        if (extra_ready && s->on_extra) {
                int r = s->on_extra(s->userdata, s->in_request, err);
                if (r < 0)
                        return r;
        }
        if (p[P_STDOUT].revents && !copy_output(s->stdout_in, s->stdout_out))
                s->stdout_in = -1;
        if (p[P_STDERR].revents && !copy_output(s->stderr_in, s->stderr_out))
                s->stderr_in = -1;
        if (p[P_SIGNAL].revents) {
                struct signalfd_siginfo si;
                if (read(s->sigfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo >= 1 && si.ssi_signo <= 64)
                        s->pending_signals |= 1ull << (si.ssi_signo - 1);
        }
        if (p[P_CONTROL].revents) {
                int r = pump_control(s, waiting_id, waiting_op, ret_response, err);
                if (r < 0)
                        return r;
        }
        if (p[P_VM].revents && !(p[P_CONTROL].revents & POLLIN))
                return silo_error_msg(err, ESRCH, "the VM stopped");
        return 0;
}

static int check_result(json_t *resp, enum silo_vm_op op, silo_error *err)
{
        int64_t result = 0;
        const char *what = silo_vm_op_name(SILO_VM_TYPE(SILO_VM_KIND_RESPONSE, op));
        int r = get_int_field(resp, "Result", INT32_MIN, INT32_MAX, true, &result, what, err);
        if (r < 0)
                return r;
        json_t *msg = json_object_get(resp, "ErrorMessage");
        if (msg && !json_is_string(msg))
                return silo_error_msg(err, EPROTO, "guest %s: ErrorMessage: expected a string", what);
        if (result != 0) {
                char text[GUEST_MESSAGE_MAX + 1];
                sanitize(json_string_value(msg), text);
                return silo_error_msg(err, EIO, "guest: %s failed: %s (result %lld)", what,
                                      *text ? text : "no message", (long long) result);
        }
        return 0;
}

int silo_vm_session_request(struct silo_vm_session *s, enum silo_vm_op op, json_t *body, int timeout_ms,
                            json_t **ret_response, silo_error *err)
{
        if (s->in_request)
                return silo_error_msg(err, EBUSY, "a guest request is already in flight");
        uint64_t id = ++s->next_id;
        int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
        int r = silo_vm_msg_send(s->fd, SILO_VM_TYPE(SILO_VM_KIND_REQUEST, op), id, body, timeout_ms, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *resp = NULL;
        s->in_request = true;
        while (!resp) {
                int wait = -1;
                if (deadline >= 0) {
                        int64_t left = deadline - now_ms();
                        if (left <= 0) {
                                s->in_request = false;
                                return silo_error_msg(err, ETIMEDOUT, "guest did not answer %s in %d ms",
                                                      silo_vm_op_name(SILO_VM_TYPE(SILO_VM_KIND_REQUEST, op)),
                                                      timeout_ms);
                        }
                        wait = (int) left;
                }
                r = pump(s, wait, id, (uint32_t) op, &resp, err);
                if (r < 0) {
                        s->in_request = false;
                        return r;
                }
        }
        s->in_request = false;
        r = check_result(resp, op, err);
        if (r < 0)
                return r;
        if (ret_response)
                *ret_response = TAKE_PTR(resp);
        return 0;
}

int silo_vm_session_negotiate(struct silo_vm_session *s, int timeout_ms, silo_error *err)
{
        _cleanup_json_ json_t *req = json_pack("{sisi}", "MinimumVersion", SILO_VM_PROTOCOL_VERSION,
                                               "MaximumVersion", SILO_VM_PROTOCOL_VERSION);
        _cleanup_json_ json_t *resp = NULL;
        if (!req)
                return silo_error_set(err, ENOMEM, "NegotiateProtocol");
        int r = silo_vm_session_request(s, SILO_VM_OP_NEGOTIATE_PROTOCOL, req, timeout_ms, &resp, err);
        if (r < 0)
                return r;
        int64_t v = 0;
        r = get_int_field(resp, "Version", SILO_VM_PROTOCOL_VERSION, SILO_VM_PROTOCOL_VERSION, true, &v,
                          "NegotiateProtocol", err);
        if (r < 0)
                return r;
        s->guest_version = (uint32_t) v;
        return 0;
}

int silo_vm_session_pump(struct silo_vm_session *s, int timeout_ms, silo_error *err)
{
        return pump(s, timeout_ms, 0, 0, NULL, err);
}

bool silo_vm_session_take_exit(struct silo_vm_session *s, uint32_t process_id, int *ret_code)
{
        for (size_t i = 0; i < s->n_exits; i++) {
                if (s->exits[i].process_id != process_id)
                        continue;
                *ret_code = s->exits[i].exit_code;
                memmove(&s->exits[i], &s->exits[i + 1], (s->n_exits - i - 1) * sizeof(s->exits[0]));
                s->n_exits--;
                return true;
        }
        return false;
}

int silo_vm_session_wait_exit(struct silo_vm_session *s, uint32_t process_id, int timeout_ms, int *ret_code,
                              silo_error *err)
{
        int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
        while (!silo_vm_session_take_exit(s, process_id, ret_code)) {
                int wait = -1;
                if (deadline >= 0) {
                        int64_t left = deadline - now_ms();
                        if (left <= 0)
                                return silo_error_msg(err, ETIMEDOUT, "guest process %u did not exit in %d ms",
                                                      process_id, timeout_ms);
                        wait = (int) left;
                }
                int r = pump(s, wait, 0, 0, NULL, err);
                if (r < 0)
                        return r;
                if (s->pending_signals && !silo_vm_session_take_exit(s, process_id, ret_code))
                        return -EINTR;
                else if (s->pending_signals)
                        return 0;
        }
        return 0;
}

void silo_vm_session_drain(struct silo_vm_session *s, int idle_ms)
{
        /* Bounded: a guest streaming forever cannot keep us here. */
        for (int rounds = 0; rounds < 256 && (s->stdout_in >= 0 || s->stderr_in >= 0); rounds++) {
                struct pollfd p[2] = { { .fd = s->stdout_in, .events = POLLIN }, { .fd = s->stderr_in, .events = POLLIN } };
                if (poll(p, 2, idle_ms) <= 0)
                        return;
                if (p[0].revents && !copy_output(s->stdout_in, s->stdout_out))
                        s->stdout_in = -1;
                if (p[1].revents && !copy_output(s->stderr_in, s->stderr_out))
                        s->stderr_in = -1;
        }
}
