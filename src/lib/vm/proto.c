/* Framing of the guest protocol.  The decoder never trusts the header: the
 * type must be one we know, the size is bounded before any allocation, and
 * the body must be one JSON object and nothing else. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vm/proto.h"

static void put_le32(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
        uint32_t v = 0;
        for (int i = 3; i >= 0; i--)
                v = (v << 8) | p[i];
        return v;
}

static uint64_t get_le64(const uint8_t *p)
{
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = (v << 8) | p[i];
        return v;
}

void silo_vm_msg_done(struct silo_vm_msg *m)
{
        if (m->body)
                json_decref(m->body);
        m->body = NULL;
}

static const char *const op_names[_SILO_VM_OP_MAX] = {
        [SILO_VM_OP_NEGOTIATE_PROTOCOL] = "NegotiateProtocol",
        [SILO_VM_OP_CREATE] = "Create",
        [SILO_VM_OP_START] = "Start",
        [SILO_VM_OP_SHUTDOWN_GRACEFUL] = "ShutdownGraceful",
        [SILO_VM_OP_SHUTDOWN_FORCED] = "ShutdownForced",
        [SILO_VM_OP_EXECUTE_PROCESS] = "ExecuteProcess",
        [SILO_VM_OP_WAIT_FOR_PROCESS] = "WaitForProcess",
        [SILO_VM_OP_SIGNAL_PROCESS] = "SignalProcess",
        [SILO_VM_OP_RESIZE_CONSOLE] = "ResizeConsole",
        [SILO_VM_OP_GET_PROPERTIES] = "GetProperties",
        [SILO_VM_OP_MODIFY_SETTINGS] = "ModifySettings",
};

bool silo_vm_type_valid(uint32_t type)
{
        if ((type & SILO_VM_CATEGORY_MASK) != SILO_VM_CATEGORY_SYSTEM)
                return false;
        uint32_t op = type & SILO_VM_OP_MASK;
        switch (type & SILO_VM_KIND_MASK) {
        case SILO_VM_KIND_REQUEST:
        case SILO_VM_KIND_RESPONSE:
                return op >= 1 && op < _SILO_VM_OP_MAX;
        case SILO_VM_KIND_NOTIFY:
                return op >= 1 && op < _SILO_VM_NOTIFY_MAX;
        default:
                return false;
        }
}

const char *silo_vm_op_name(uint32_t type)
{
        uint32_t op = type & SILO_VM_OP_MASK;
        if ((type & SILO_VM_KIND_MASK) == SILO_VM_KIND_NOTIFY)
                return op == SILO_VM_NOTIFY_PROCESS_EXITED ? "ProcessExited" : "unknown notification";
        return op >= 1 && op < _SILO_VM_OP_MAX ? op_names[op] : "unknown";
}

int silo_vm_msg_encode(uint32_t type, uint64_t id, json_t *body, uint8_t **ret_buf, size_t *ret_len, silo_error *err)
{
        if (!json_is_object(body))
                return silo_error_msg(err, EINVAL, "guest message %s: body must be a JSON object", silo_vm_op_name(type));
        size_t n = json_dumpb(body, NULL, 0, JSON_COMPACT);
        if (n == 0 || n > SILO_VM_BODY_MAX)
                return silo_error_msg(err, E2BIG, "guest message %s: body of %zu bytes exceeds %u", silo_vm_op_name(type),
                                      n, SILO_VM_BODY_MAX);
        uint8_t *buf = malloc(SILO_VM_HEADER_SIZE + n);
        if (!buf)
                return silo_error_set(err, ENOMEM, "guest message");
        if (json_dumpb(body, (char *) buf + SILO_VM_HEADER_SIZE, n, JSON_COMPACT) != n) {
                free(buf);
                return silo_error_msg(err, EIO, "guest message %s: serialization changed size", silo_vm_op_name(type));
        }
        put_le32(buf, type);
        put_le32(buf + 4, (uint32_t) n);
        put_le64(buf + 8, id);
        *ret_buf = buf;
        *ret_len = SILO_VM_HEADER_SIZE + n;
        return 0;
}

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int silo_vm_msg_send(int fd, uint32_t type, uint64_t id, json_t *body, int timeout_ms, silo_error *err)
{
        uint8_t *buf = NULL;
        size_t len = 0;
        int r = silo_vm_msg_encode(type, id, body, &buf, &len, err);
        if (r < 0)
                return r;
        int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
        size_t off = 0;
        while (off < len) {
                ssize_t n = write(fd, buf + off, len - off);
                if (n > 0) {
                        off += (size_t) n;
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        int wait = -1;
                        if (deadline >= 0) {
                                int64_t left = deadline - now_ms();
                                if (left <= 0) {
                                        r = silo_error_msg(err, ETIMEDOUT, "sending %s to the guest: timed out",
                                                           silo_vm_op_name(type));
                                        break;
                                }
                                wait = (int) left;
                        }
                        struct pollfd p = { .fd = fd, .events = POLLOUT };
                        if (poll(&p, 1, wait) < 0 && errno != EINTR) {
                                r = silo_error_set(err, errno, "poll guest channel");
                                break;
                        }
                        continue;
                }
                r = silo_error_set(err, n < 0 ? errno : EPIPE, "sending %s to the guest", silo_vm_op_name(type));
                break;
        }
        free(buf);
        return r;
}

int silo_vm_reader_init(struct silo_vm_reader *r, silo_error *err)
{
        *r = (struct silo_vm_reader) { 0 };
        r->buf = malloc(SILO_VM_HEADER_SIZE + SILO_VM_BODY_MAX);
        if (!r->buf)
                return silo_error_set(err, ENOMEM, "guest channel buffer");
        return 0;
}

void silo_vm_reader_done(struct silo_vm_reader *r)
{
        free(r->buf);
        r->buf = NULL;
        r->len = 0;
}

ssize_t silo_vm_reader_fill(struct silo_vm_reader *r, int fd, silo_error *err)
{
        size_t cap = SILO_VM_HEADER_SIZE + SILO_VM_BODY_MAX;
        if (r->broken)
                return silo_error_msg(err, EPROTO, "guest channel: already failed");
        if (r->len >= cap)
                return silo_error_msg(err, ENOBUFS, "guest channel: buffer full");
        for (;;) {
                ssize_t n = read(fd, r->buf + r->len, cap - r->len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return -EAGAIN;
                /* A peer closing with our bytes unread resets: still a hang-up. */
                if (n < 0 && errno == ECONNRESET)
                        return 0;
                if (n < 0)
                        return silo_error_set(err, errno, "reading the guest channel");
                r->len += (size_t) n;
                return n;
        }
}

int silo_vm_reader_push(struct silo_vm_reader *r, const void *data, size_t len, silo_error *err)
{
        size_t cap = SILO_VM_HEADER_SIZE + SILO_VM_BODY_MAX;
        if (len > cap - r->len)
                return silo_error_msg(err, ENOBUFS, "guest channel: buffer full");
        memcpy(r->buf + r->len, data, len);
        r->len += len;
        return 0;
}

static int reader_fail(struct silo_vm_reader *r, silo_error *err, const char *what, uint32_t type, uint32_t size)
{
        r->broken = true;
        return silo_error_msg(err, EPROTO, "guest channel: %s (type 0x%08x, size %u)", what, type, size);
}

int silo_vm_reader_next(struct silo_vm_reader *r, struct silo_vm_msg *ret, silo_error *err)
{
        if (r->broken)
                return silo_error_msg(err, EPROTO, "guest channel: already failed");
        if (r->len < SILO_VM_HEADER_SIZE)
                return 0;
        uint32_t type = get_le32(r->buf);
        uint32_t size = get_le32(r->buf + 4);
        uint64_t id = get_le64(r->buf + 8);
        if (!silo_vm_type_valid(type))
                return reader_fail(r, err, "unknown message type", type, size);
        /* "{}" is the smallest valid body. */
        if (size < 2 || size > SILO_VM_BODY_MAX)
                return reader_fail(r, err, "body size out of bounds", type, size);
        if (r->len < SILO_VM_HEADER_SIZE + size)
                return 0;

        json_error_t jerr;
        json_t *body = json_loadb((const char *) r->buf + SILO_VM_HEADER_SIZE, size,
                                  JSON_REJECT_DUPLICATES, &jerr);
        if (!body)
                return reader_fail(r, err, "body is not valid JSON", type, size);
        if (!json_is_object(body)) {
                json_decref(body);
                return reader_fail(r, err, "body is not a JSON object", type, size);
        }
        memmove(r->buf, r->buf + SILO_VM_HEADER_SIZE + size, r->len - SILO_VM_HEADER_SIZE - size);
        r->len -= SILO_VM_HEADER_SIZE + size;
        *ret = (struct silo_vm_msg) { .type = type, .id = id, .body = body };
        return 1;
}

void silo_vm_stdio_header(uint8_t hdr[SILO_VM_STDIO_HEADER], uint32_t stream, uint32_t size)
{
        put_le32(hdr, stream);
        put_le32(hdr + 4, size);
}

void silo_vm_stdio_parse(const uint8_t hdr[SILO_VM_STDIO_HEADER], uint32_t *ret_stream, uint32_t *ret_size)
{
        *ret_stream = get_le32(hdr);
        *ret_size = get_le32(hdr + 4);
}
