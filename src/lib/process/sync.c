#include "process/sync.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

struct wire_header {
        uint32_t type;
        int32_t value;
};

int silo_sync_send(int sock, uint32_t type, int32_t value, const void *payload, size_t len, int fd)
{
        if (len > SILO_SYNC_MAX_PAYLOAD)
                len = SILO_SYNC_MAX_PAYLOAD;
        struct wire_header h = { type, value };
        struct iovec iov[2] = {
                { &h, sizeof(h) },
                { (void *) payload, len },
        };
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } control;
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = payload && len ? 2 : 1 };
        if (fd >= 0) {
                memset(&control, 0, sizeof(control));
                mh.msg_control = control.buf;
                mh.msg_controllen = sizeof(control.buf);
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &fd, sizeof(int));
        }
        ssize_t n;
        do
                n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : 0;
}

int silo_sync_recv(int sock, struct silo_sync_msg *msg)
{
        struct wire_header h;
        struct iovec iov[2] = {
                { &h, sizeof(h) },
                { msg->payload, SILO_SYNC_MAX_PAYLOAD },
        };
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } control;
        struct msghdr mh = {
                .msg_iov = iov, .msg_iovlen = 2,
                .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
        };
        ssize_t n;
        do
                n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (n == 0)
                return -EPIPE;

        msg->fd = -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
                        memcpy(&msg->fd, CMSG_DATA(c), sizeof(int));
        if ((size_t) n < sizeof(h) || (mh.msg_flags & MSG_TRUNC)) {
                if (msg->fd >= 0)
                        close(msg->fd);
                return -EBADMSG;
        }
        msg->type = h.type;
        msg->value = h.value;
        msg->len = (size_t) n - sizeof(h);
        msg->payload[msg->len] = '\0';
        return 0;
}

void silo_sync_fail(int sock, const silo_error *err)
{
        const char *m = err && err->message[0] ? err->message : "container setup failed";
        silo_sync_send(sock, SILO_SYNC_ERROR, err && err->code ? err->code : EINVAL, m, strlen(m), -1);
        _exit(1);
}

int silo_sync_expect(int sock, uint32_t want, struct silo_sync_msg *msg, const char *stage, silo_error *err)
{
        int r = silo_sync_recv(sock, msg);
        if (r == -EPIPE)
                return silo_error_msg(err, ECHILD, "%s: container process exited unexpectedly", stage);
        if (r < 0)
                return silo_error_set(err, -r, "%s: read from container process", stage);
        if (msg->type == SILO_SYNC_ERROR) {
                if (msg->fd >= 0)
                        close(msg->fd);
                return silo_error_msg(err, msg->value > 0 ? msg->value : EINVAL, "%s", msg->payload);
        }
        if (msg->type != want) {
                if (msg->fd >= 0)
                        close(msg->fd);
                return silo_error_msg(err, EPROTO, "%s: unexpected message %u from container process", stage, msg->type);
        }
        return 0;
}

int silo_recv_fd(int sock)
{
        char data[256];
        struct iovec iov = { data, sizeof(data) };
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } control;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = control.buf, .msg_controllen = sizeof(control.buf) };
        ssize_t n;
        do
                n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        int fd = -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
                        memcpy(&fd, CMSG_DATA(c), sizeof(int));
        return fd >= 0 ? fd : -EBADMSG;
}
