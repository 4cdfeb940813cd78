/* Messages between the runtime and the process it is setting up, over a
 * SOCK_SEQPACKET pair: a fixed header plus a bounded payload, optionally
 * carrying one fd.  The peer is not trusted to be well-formed. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define SILO_SYNC_MAX_PAYLOAD (64u * 1024)

enum silo_sync_type {
        SILO_SYNC_GO = 1,       /* parent -> child: continue (payload: state JSON for hooks) */
        SILO_SYNC_READY,        /* child -> parent: set up, waiting for start */
        SILO_SYNC_ERROR,        /* child -> parent: value = errno, payload = message */
        SILO_SYNC_PID,          /* child -> parent: value = pid */
        SILO_SYNC_FD,           /* either way: carries an fd (value says which) */
};

struct silo_sync_msg {
        uint32_t type;
        int32_t value;
        size_t len;
        char payload[SILO_SYNC_MAX_PAYLOAD + 1];        /* NUL-terminated */
        int fd;                                         /* -1 if none */
};

int silo_sync_send(int sock, uint32_t type, int32_t value, const void *payload, size_t len, int fd);
/* Returns 0 on a message, -EPIPE on EOF (peer closed), other -errno on failure. */
int silo_sync_recv(int sock, struct silo_sync_msg *msg);

/* Receives one fd sent with any payload (the console-socket protocol); -errno on failure. */
int silo_recv_fd(int sock);

/* Child side: report an error to the parent and _exit(). */
__attribute__((noreturn)) void silo_sync_fail(int sock, const silo_error *err);

/* Parent side: wait for `want`; an ERROR message becomes *err. */
int silo_sync_expect(int sock, uint32_t want, struct silo_sync_msg *msg, const char *stage, silo_error *err);
