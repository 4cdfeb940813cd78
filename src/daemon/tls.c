/* The optional TCP listener: HTTPS through libmicrohttpd (GnuTLS) with
 * mutual TLS.  The client must present a certificate signed by --tlscacert;
 * a TCP host without TLS is refused at startup (anyone who reaches the port
 * would own the host). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "silod.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define TLS_PEM_MAX (1u << 20)

int tls_load(struct silod_tls *t, const char *ca, const char *cert, const char *key, silo_error *err)
{
        const char *paths[3] = { ca, cert, key };
        char **dst[3] = { &t->ca, &t->cert, &t->key };
        static const char *const names[3] = { "--tlscacert", "--tlscert", "--tlskey" };
        for (int i = 0; i < 3; i++) {
                if (!paths[i])
                        return silo_error_msg(err, EINVAL, "%s is required for a TCP listener (mutual TLS)",
                                              names[i]);
                int r = silo_read_file_at(AT_FDCWD, paths[i], TLS_PEM_MAX, dst[i], NULL, err);
                if (r < 0)
                        return silo_error_prefix(err, "%s", names[i]);
                if (!strstr(*dst[i], "-----BEGIN "))
                        return silo_error_msg(err, EINVAL, "%s %s: not a PEM file", names[i], paths[i]);
        }
        return 0;
}

void tls_free(struct silod_tls *t)
{
        free(t->ca);
        free(t->cert);
        /* The key: no copy of it lingers in freed memory. */
        if (t->key)
                explicit_bzero(t->key, strlen(t->key));
        free(t->key);
        *t = (struct silod_tls) {};
}

int listen_tcp(const char *hostport, silo_error *err)
{
        /* HOST:PORT, [V6]:PORT */
        char host[256];
        const char *port;
        if (hostport[0] == '[') {
                const char *end = strchr(hostport, ']');
                if (!end || end[1] != ':' || (size_t) (end - hostport - 1) >= sizeof(host))
                        return silo_error_msg(err, EINVAL, "--host tcp://%s: expected [ADDRESS]:PORT", hostport);
                snprintf(host, sizeof(host), "%.*s", (int) (end - hostport - 1), hostport + 1);
                port = end + 2;
        } else {
                const char *colon = strrchr(hostport, ':');
                if (!colon || (size_t) (colon - hostport) >= sizeof(host))
                        return silo_error_msg(err, EINVAL, "--host tcp://%s: expected HOST:PORT", hostport);
                snprintf(host, sizeof(host), "%.*s", (int) (colon - hostport), hostport);
                port = colon + 1;
        }
        char *end;
        long pn = strtol(port, &end, 10);
        if (!*port || *end || pn <= 0 || pn > 65535)
                return silo_error_msg(err, EINVAL, "--host tcp://%s: bad port", hostport);
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
        struct addrinfo *ai = NULL;
        int g = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
        if (g != 0)
                return silo_error_msg(err, EINVAL, "--host tcp://%s: %s", hostport, gai_strerror(g));
        int r = -EADDRNOTAVAIL;
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
                _cleanup_close_ int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
                if (fd < 0) {
                        r = silo_error_set(err, errno, "socket");
                        continue;
                }
                int one = 1;
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 128) < 0) {
                        r = silo_error_set(err, errno, "bind tcp://%s", hostport);
                        continue;
                }
                r = TAKE_FD(fd);
                break;
        }
        freeaddrinfo(ai);
        return r;
}

bool tls_peer_verified(struct MHD_Connection *c, char *msg, size_t msg_size)
{
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        if (!info || !info->tls_session)
                return true;    /* not a TLS connection: the unix socket */
        gnutls_session_t session = (gnutls_session_t) info->tls_session;
        unsigned status = 0, n_peers = 0;
        int r = gnutls_certificate_verify_peers2(session, &status);
        if (r == GNUTLS_E_NO_CERTIFICATE_FOUND || (r == 0 && !gnutls_certificate_get_peers(session, &n_peers)) ||
            (r == 0 && n_peers == 0)) {
                snprintf(msg, msg_size, "a client certificate is required (mutual TLS)");
                return false;
        }
        if (r < 0) {
                snprintf(msg, msg_size, "client certificate: %s", gnutls_strerror(r));
                return false;
        }
        if (status != 0) {
                gnutls_datum_t text = {};
                if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) == 0) {
                        snprintf(msg, msg_size, "client certificate rejected: %s", text.data);
                        gnutls_free(text.data);
                } else
                        snprintf(msg, msg_size, "client certificate rejected");
                return false;
        }
        return true;
}
