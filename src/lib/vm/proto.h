/* The framed guest protocol (docs/VM.md): a 16-byte little-endian header
 * {Type u32, Size u32, Id u64} followed by Size bytes of JSON.  Size counts
 * the body only and is bounded on both ends; the host treats every byte the
 * guest sends as untrusted.  Shared by the host (libsilo) and the guest agent. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/error.h"

#define SILO_VM_HEADER_SIZE 16
#define SILO_VM_BODY_MAX (256u * 1024u)    /* a whole OCI config with a seccomp profile fits */
#define SILO_VM_PROTOCOL_VERSION 1

/* Type = kind | category | operation, the HCS guest protocol's shape. */
#define SILO_VM_KIND_MASK       0xf0000000u
#define SILO_VM_KIND_REQUEST    0x10000000u
#define SILO_VM_KIND_RESPONSE   0x20000000u
#define SILO_VM_KIND_NOTIFY     0x30000000u
#define SILO_VM_CATEGORY_MASK   0x0ff00000u
#define SILO_VM_CATEGORY_SYSTEM 0x00100000u
#define SILO_VM_OP_MASK         0x000fffffu

enum silo_vm_op {
        SILO_VM_OP_NEGOTIATE_PROTOCOL = 1,
        SILO_VM_OP_CREATE,
        SILO_VM_OP_START,
        SILO_VM_OP_SHUTDOWN_GRACEFUL,
        SILO_VM_OP_SHUTDOWN_FORCED,
        SILO_VM_OP_EXECUTE_PROCESS,
        SILO_VM_OP_WAIT_FOR_PROCESS,
        SILO_VM_OP_SIGNAL_PROCESS,
        SILO_VM_OP_RESIZE_CONSOLE,
        SILO_VM_OP_GET_PROPERTIES,
        SILO_VM_OP_MODIFY_SETTINGS,     /* a utility VM: receive a layer on "silo.data" */
        _SILO_VM_OP_MAX,
        _SILO_VM_OP_INVALID = -1,
};

/* Notification operations (kind NOTIFY). */
enum silo_vm_notify {
        SILO_VM_NOTIFY_PROCESS_EXITED = 1,
        _SILO_VM_NOTIFY_MAX,
};

/* The "silo.stdio" port multiplexes the stdio of every process but the
 * container's non-terminal init (whose stdout/stderr are ports of their
 * own): frames of {Stream u32, Size u32} then Size bytes, little-endian.
 * Stream = ProcessId * 4 + fd (0 stdin, host -> guest; 1 stdout and
 * 2 stderr, guest -> host); Size 0 marks the end of that stream. */
#define SILO_VM_STDIO_HEADER 8
#define SILO_VM_STDIO_CHUNK 32768u
#define SILO_VM_STREAM(pid, fd) ((uint32_t) (pid) * 4u + (uint32_t) (fd))

#define SILO_VM_TYPE(kind, op) ((kind) | SILO_VM_CATEGORY_SYSTEM | (uint32_t) (op))

struct silo_vm_msg {
        uint32_t type;
        uint64_t id;
        json_t *body;           /* owned; always a JSON object */
};

void silo_vm_msg_done(struct silo_vm_msg *m);

/* Whether `type` is one this protocol version defines. */
bool silo_vm_type_valid(uint32_t type);
const char *silo_vm_op_name(uint32_t type);

/* Serializes header + compact JSON into a malloc'd buffer. */
int silo_vm_msg_encode(uint32_t type, uint64_t id, json_t *body, uint8_t **ret_buf, size_t *ret_len, silo_error *err);

/* Writes a whole message to fd (blocking or not: waits with poll up to
 * timeout_ms for a full pipe; -1 waits forever). */
int silo_vm_msg_send(int fd, uint32_t type, uint64_t id, json_t *body, int timeout_ms, silo_error *err);

/* Incremental decoder: feed bytes as they arrive, take messages out. */
struct silo_vm_reader {
        uint8_t *buf;           /* SILO_VM_HEADER_SIZE + SILO_VM_BODY_MAX */
        size_t len;
        bool broken;            /* a protocol error happened: the stream is unusable */
};

int silo_vm_reader_init(struct silo_vm_reader *r, silo_error *err);
void silo_vm_reader_done(struct silo_vm_reader *r);

/* One read() from fd into the buffer.  Returns bytes read (> 0), 0 on EOF,
 * -EAGAIN when a non-blocking fd has nothing, other negative errno on error. */
ssize_t silo_vm_reader_fill(struct silo_vm_reader *r, int fd, silo_error *err);

/* Copies bytes into the buffer (tests, or a caller with its own I/O). */
int silo_vm_reader_push(struct silo_vm_reader *r, const void *data, size_t len, silo_error *err);

/* Returns 1 and a message when one is complete, 0 when more bytes are needed,
 * -EPROTO (and marks the reader broken) on a malformed frame. */
int silo_vm_reader_next(struct silo_vm_reader *r, struct silo_vm_msg *ret, silo_error *err);

/* The 8-byte header of a "silo.stdio" frame. */
void silo_vm_stdio_header(uint8_t hdr[SILO_VM_STDIO_HEADER], uint32_t stream, uint32_t size);
void silo_vm_stdio_parse(const uint8_t hdr[SILO_VM_STDIO_HEADER], uint32_t *ret_stream, uint32_t *ret_size);
