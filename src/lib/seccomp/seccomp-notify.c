/* The seccomp agent protocol of the OCI runtime spec (config-linux.md,
 * "The Container Process State"): the runtime connects to listenerPath, a
 * SOCK_STREAM unix socket, and sends one JSON ContainerProcessState with the
 * listener fd attached (SCM_RIGHTS) to the first sendmsg, then closes. */
#include "seccomp/seccomp.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/cleanup.h"

/* The runtime-spec version this code follows, for a state that names none. */
#define OCI_VERSION_FALLBACK "1.2.0"

int silo_seccomp_process_state(const silo_seccomp *s, json_t *state, pid_t pid, json_t **ret, silo_error *err)
{
        json_t *version = json_object_get(state, "ociVersion");
        const char *metadata = silo_seccomp_listener_metadata(s);

        if (!json_is_object(state))
                return silo_error_msg(err, EINVAL, "seccomp process state: container state is not an object");

        _cleanup_json_ json_t *ps = json_pack("{s:s, s:[s], s:I, s:O}",
                                              "ociVersion", json_is_string(version) ? json_string_value(version) : OCI_VERSION_FALLBACK,
                                              "fds", "seccompFd",
                                              "pid", (json_int_t) pid,
                                              "state", state);
        if (!ps || (metadata && json_object_set_new(ps, "metadata", json_string(metadata)) < 0))
                return silo_error_set(err, ENOMEM, "building the seccomp process state");
        *ret = TAKE_PTR(ps);
        return 0;
}

static int send_all(int sock, const char *buf, size_t len, int fd)
{
        bool fd_sent = false;

        while (len > 0) {
                struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(sizeof(int))];
                } control = {};
                struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

                /* The spec wants the fds in the first sendmsg only. */
                if (!fd_sent) {
                        msg.msg_control = control.buf;
                        msg.msg_controllen = sizeof(control.buf);
                        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
                        c->cmsg_level = SOL_SOCKET;
                        c->cmsg_type = SCM_RIGHTS;
                        c->cmsg_len = CMSG_LEN(sizeof(int));
                        memcpy(CMSG_DATA(c), &fd, sizeof(int));
                }

                ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                fd_sent = true;
                buf += n;
                len -= n;
        }
        return 0;
}

int silo_seccomp_send_notify_fd(const char *listener_path, json_t *process_state, int notify_fd, silo_error *err)
{
        struct sockaddr_un addr = { .sun_family = AF_UNIX };

        if (!listener_path || !*listener_path)
                return silo_error_msg(err, EINVAL, "seccomp listener: no listenerPath");
        if (strlen(listener_path) >= sizeof(addr.sun_path))
                return silo_error_msg(err, ENAMETOOLONG, "seccomp listener %s: path too long for a unix socket", listener_path);
        if (notify_fd < 0)
                return silo_error_msg(err, EBADF, "seccomp listener %s: no notify fd to send", listener_path);
        /* Catch a bare container state passed by mistake: the agent finds
         * the fd through "fds". */
        if (!json_is_object(process_state) || !json_is_array(json_object_get(process_state, "fds")) ||
            !json_is_object(json_object_get(process_state, "state")))
                return silo_error_msg(err, EINVAL, "seccomp listener %s: process state lacks \"fds\" or \"state\"",
                                      listener_path);

        _cleanup_free_ char *payload = json_dumps(process_state, JSON_COMPACT);
        if (!payload)
                return silo_error_set(err, ENOMEM, "seccomp listener %s: encoding the process state", listener_path);

        _cleanup_close_ int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sock < 0)
                return silo_error_set(err, errno, "seccomp listener %s: socket", listener_path);
        memcpy(addr.sun_path, listener_path, strlen(listener_path));
        if (connect(sock, (struct sockaddr *) &addr, sizeof(addr)) < 0)
                return silo_error_set(err, errno, "seccomp listener %s: connect", listener_path);

        int r = send_all(sock, payload, strlen(payload), notify_fd);
        if (r < 0)
                return silo_error_set(err, r, "seccomp listener %s: sending the process state", listener_path);
        /* One state per connection: closing it ends the message. */
        return 0;
}
