/* silod: listens on a unix socket, routes Docker Engine API requests.
 * All state lives in one `struct silod`; a request or container failure
 * becomes an HTTP error, never a daemon exit. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <libgen.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "silo-config.h"
#include "cgroup/cgroup.h"
#include "silod.h"
#include "trim.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define DEFAULT_HOST "unix:///run/silo/silod.sock"
#define DEFAULT_STATE "/var/lib/silo/engine"
#define DEFAULT_CGROUP_PARENT "/silo"

static void *request_begin(void *cls, const char *uri, struct MHD_Connection *c)
{
        silod_idle_begin(cls);
        (void) uri;
        (void) c;
        struct request *req = calloc(1, sizeof(*req));
        if (req)
                req->upload_fd = -1;
        return req;
}

static void request_end(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
        silod_idle_end(cls);
        (void) c;
        (void) toe;
        struct request *req = *con_cls;
        if (!req)
                return;
        if (req->abandoned)
                req->abandoned(req->abandoned_cls);
        free(req->body);
        if (req->upload_fd >= 0)
                close(req->upload_fd);
        if (req->upload_path) {
                unlink(req->upload_path);
                free(req->upload_path);
        }
        free(req);
        *con_cls = NULL;
}

/* "/v1.43/containers/json" -> "/containers/json"; checks the version. */
static const char *strip_version(const char *url, bool *ret_too_new, char ver[16])
{
        *ret_too_new = false;
        ver[0] = 0;
        if (url[0] != '/' || url[1] != 'v')
                return url;
        const char *p = url + 2;
        unsigned major, minor;
        int n = 0;
        if (sscanf(p, "%u.%u%n", &major, &minor, &n) != 2 || (p[n] != '/' && p[n] != 0))
                return url;
        snprintf(ver, 16, "%u.%u", major, minor);
        unsigned max_major, max_minor;
        sscanf(SILOD_API_VERSION, "%u.%u", &max_major, &max_minor);
        if (major > max_major || (major == max_major && minor > max_minor))
                *ret_too_new = true;
        return p[n] ? p + n : "/";
}

static int upload_chunk(struct silod *d, struct request *req, const char *data, size_t len)
{
        if (req->streaming) {
                if (req->upload_fd < 0) {
                        if (asprintf(&req->upload_path, "%s/tmp/upload-XXXXXX", d->state) < 0) {
                                req->upload_path = NULL;
                                return -ENOMEM;
                        }
                        req->upload_fd = mkostemp(req->upload_path, O_CLOEXEC);
                        if (req->upload_fd < 0) {
                                free(req->upload_path);
                                req->upload_path = NULL;
                                return -errno;
                        }
                }
                while (len > 0) {
                        ssize_t w = write(req->upload_fd, data, len);
                        if (w < 0) {
                                if (errno == EINTR)
                                        continue;
                                return -errno;
                        }
                        data += w;
                        len -= (size_t) w;
                }
                return 0;
        }
        if (req->body_too_big || req->body_len + len > SILOD_BODY_MAX) {
                req->body_too_big = true;
                return 0;
        }
        char *nb = realloc(req->body, req->body_len + len + 1);
        if (!nb)
                return -ENOMEM;
        memcpy(nb + req->body_len, data, len);
        req->body_len += len;
        nb[req->body_len] = 0;
        req->body = nb;
        return 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
        (void) version;
        struct silod *d = cls;
        struct request *req = *con_cls;
        if (!req)
                return MHD_NO;
        bool too_new;
        char ver[16];
        const char *path = strip_version(url, &too_new, ver);

        if (!req->seen) {
                /* The first call comes before the body: decide where it goes. */
                req->seen = true;
                char why[256];
                if (!tls_peer_verified(c, why, sizeof(why)))
                        return reply_error(c, 403, "%s", why);
                req->streaming = strcmp(method, "POST") == 0 && strcmp(path, "/images/load") == 0;
                req->streaming |= strcmp(method, "POST") == 0 && strcmp(path, "/images/create") == 0;
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                if (upload_chunk(d, req, upload_data, *upload_data_size) < 0)
                        return MHD_NO;
                *upload_data_size = 0;
                return MHD_YES;
        }

        if (too_new)
                return reply_error(c, 400, "client version %s is too new. Maximum supported API version is %s", ver,
                                   SILOD_API_VERSION);
        /* Whatever the route: a body past the limit was cut short, so no handler may see it. */
        if (req->body_too_big)
                return reply_error(c, 413, "request body larger than %u bytes", SILOD_BODY_MAX);
        if (strcmp(path, "/_ping") == 0)
                return handle_ping(d, c, strcmp(method, "HEAD") == 0);
        if (strcmp(path, "/version") == 0 && strcmp(method, "GET") == 0)
                return handle_version(d, c);
        if (strcmp(path, "/info") == 0 && strcmp(method, "GET") == 0)
                return handle_info(d, c);
        if (strcmp(path, "/events") == 0 && strcmp(method, "GET") == 0)
                return handle_events(d, c);
        if (strcmp(path, "/system/df") == 0 && strcmp(method, "GET") == 0)
                return handle_system_df(d, c);
        if (strcmp(path, "/auth") == 0 && strcmp(method, "POST") == 0)
                return handle_auth(d, c, req);
        if (strncmp(path, "/images/", 8) == 0)
                return handle_images(d, c, req, method, path + 8);
        if (strncmp(path, "/exec/", 6) == 0)
                return handle_exec(d, c, req, method, path + 6);
        if (strncmp(path, "/containers/", 12) == 0)
                return handle_containers(d, c, req, method, path + 12);
        if (strncmp(path, "/compute/", 9) == 0)
                return handle_compute(d, c, req, method, path + 9);
        if (strncmp(path, "/networks", 9) == 0 && (path[9] == 0 || path[9] == '/'))
                return handle_networks(d, c, req, method, path + 9);
        if (strncmp(path, "/volumes", 8) == 0 && (path[8] == 0 || path[8] == '/'))
                return handle_volumes(d, c, req, method, path + 8);
        return reply_no_route(c, method, "%s", path);
}

static int listen_unix(const char *path, silo_error *err)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof(sa.sun_path))
                return silo_error_msg(err, ENAMETOOLONG, "--host: socket path too long: %s", path);
        strcpy(sa.sun_path, path);
        _cleanup_free_ char *dir = strdup(path);
        if (!dir)
                return silo_error_set(err, ENOMEM, "socket");
        int r = silo_mkdir_p_at(AT_FDCWD, dirname(dir), 0755, err);
        if (r < 0)
                return r;
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return silo_error_set(err, errno, "socket");
        /* A socket left by a crashed silod: nothing listens there any more. */
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
                if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0)
                        return silo_error_msg(err, EADDRINUSE, "%s: another daemon is listening", path);
                unlink(path);
                close(fd);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return silo_error_set(err, errno, "socket");
        }
        mode_t old = umask(0117);
        r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        umask(old);
        if (r < 0)
                return silo_error_set(err, errno, "bind %s", path);
        if (chmod(path, 0660) < 0)
                return silo_error_set(err, errno, "chmod %s", path);
        struct group *g = getgrnam("silo");
        if (g && chown(path, 0, g->gr_gid) < 0)
                return silo_error_set(err, errno, "chown %s", path);
        if (listen(fd, 128) < 0)
                return silo_error_set(err, errno, "listen %s", path);
        return TAKE_FD(fd);
}

static char *find_monitor(void)
{
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0) {
                self[n] = 0;
                char *m = NULL;
                if (asprintf(&m, "%s/silo-monitor", dirname(self)) >= 0) {
                        if (access(m, X_OK) == 0)
                                return m;
                        free(m);
                }
        }
        return strdup("/usr/local/sbin/silo-monitor");
}

static void usage(FILE *f)
{
        fprintf(f, "usage: silod [--host unix:///PATH] [--host tcp://HOST:PORT --tlscacert F --tlscert F --tlskey F]\n"
                   "             [--root DIR] [--state DIR] [--cgroup-parent /PATH] [--monitor PATH]\n"
                   "  --host           listening socket (default " DEFAULT_HOST "); one unix and one\n"
                   "                   tcp host at most; tcp requires mutual TLS (the three --tls files)\n"
                   "  --tlscacert      CA that client certificates must be signed by\n"
                   "  --tlscert/--tlskey  the server's certificate and key (PEM)\n"
                   "  --root           image store (default " SILO_DEFAULT_ROOT ")\n"
                   "  --state          container state (default " DEFAULT_STATE ")\n"
                   "  --cgroup-parent  absolute cgroup parent of containers (default " DEFAULT_CGROUP_PARENT ")\n"
                   "  --monitor        the silo-monitor binary (default: next to silod)\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "host", required_argument, NULL, 'H' },
                { "root", required_argument, NULL, 'r' },
                { "state", required_argument, NULL, 's' },
                { "cgroup-parent", required_argument, NULL, 'c' },
                { "monitor", required_argument, NULL, 'm' },
                { "tlscacert", required_argument, NULL, 'A' },
                { "tlscert", required_argument, NULL, 'C' },
                { "tlskey", required_argument, NULL, 'K' },
                { "tlsverify", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'v' },
                {}
        };
        const char *unix_host = NULL, *tcp_host = NULL, *tls_ca = NULL, *tls_cert = NULL, *tls_key = NULL;
        /* Thread-per-connection: without a cap every connection thread may
         * get a malloc arena of its own, whose free memory stays resident. */
        mallopt(M_ARENA_MAX, 2);
        struct silod_idle idle = {};
        struct silod d = {
                .root = SILO_DEFAULT_ROOT,
                .state = DEFAULT_STATE,
                .cgroup_parent = DEFAULT_CGROUP_PARENT,
                .containers_fd = -1,
        };
        int c;
        while ((c = getopt_long(argc, argv, "H:h", opts, NULL)) != -1)
                switch (c) {
                case 'H':
                        if (strncmp(optarg, "unix://", 7) == 0 && optarg[7] == '/' && !unix_host)
                                unix_host = optarg;
                        else if (strncmp(optarg, "tcp://", 6) == 0 && !tcp_host)
                                tcp_host = optarg;
                        else {
                                fprintf(stderr, "silod: --host %s: expected unix:///absolute/path or "
                                                "tcp://HOST:PORT (one of each at most)\n", optarg);
                                return 2;
                        }
                        break;
                case 'A': tls_ca = optarg; break;
                case 'C': tls_cert = optarg; break;
                case 'K': tls_key = optarg; break;
                case 'V': break;        /* always: a TCP listener verifies clients */
                case 'r': d.root = optarg; break;
                case 's': d.state = optarg; break;
                case 'c': d.cgroup_parent = optarg; break;
                case 'm': d.monitor_path = strdup(optarg); break;
                case 'h': usage(stdout); return 0;
                case 'v': printf("silod %s\n", SILO_VERSION); return 0;
                default: usage(stderr); return 2;
                }
        if (optind != argc) {
                usage(stderr);
                return 2;
        }
        if (!unix_host && !tcp_host)
                unix_host = DEFAULT_HOST;
        struct silod_tls tls = {};
        silo_error tls_err = SILO_ERROR_INIT;
        if (!tcp_host && (tls_ca || tls_cert || tls_key)) {
                fprintf(stderr, "silod: --tlscacert/--tlscert/--tlskey need a --host tcp://HOST:PORT\n");
                return 2;
        }
        if (tcp_host && tls_load(&tls, tls_ca, tls_cert, tls_key, &tls_err) < 0) {
                fprintf(stderr, "silod: --host %s: refusing a TCP listener without mutual TLS: %s\n", tcp_host,
                        tls_err.message);
                tls_free(&tls);
                return 2;
        }
        if (d.cgroup_parent[0] != '/' || d.state[0] != '/') {
                fprintf(stderr, "silod: --cgroup-parent and --state must be absolute paths\n");
                return 2;
        }
        const char *sock_path = unix_host ? unix_host + 7 : NULL;
        silo_error err = SILO_ERROR_INIT;
        if (!d.monitor_path)
                d.monitor_path = find_monitor();
        if (asprintf(&d.runtime_root, "%s/runtime", d.state) < 0) {
                fprintf(stderr, "silod: out of memory\n");
                return 1;
        }
        _cleanup_close_ int statefd = -1;
        if (silo_mkdir_p_at(AT_FDCWD, d.state, 0700, &err) < 0 ||
            (statefd = open(d.state, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
            silo_mkdir_p_at(statefd, "containers", 0700, &err) < 0 || silo_mkdir_p_at(statefd, "tmp", 0700, &err) < 0 ||
            silo_mkdir_p_at(statefd, "runtime", 0700, &err) < 0) {
                fprintf(stderr, "silod: %s\n", err.message[0] ? err.message : strerror(errno));
                return 1;
        }
        d.containers_fd = openat(statefd, "containers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        silo_store *s = NULL;
        if (d.containers_fd < 0 || silo_store_open(d.root, &s, &err) < 0) {
                fprintf(stderr, "silod: %s\n", err.message[0] ? err.message : strerror(errno));
                return 1;
        }
        silo_store_free(s);
        /* The daemon's cgroup parent exists (with cpuset initialised)
         * before containers race to create their cgroups under it. */
        struct silo_cgroup_options cgo = {};
        silo_cgroup *parent_cg = NULL;
        if (silo_cgroup_create(&cgo, d.cgroup_parent, "silod", &parent_cg, &err) < 0) {
                fprintf(stderr, "silod: --cgroup-parent %s: %s\n", d.cgroup_parent, err.message);
                return 1;
        }
        silo_cgroup_free(parent_cg);
        pthread_mutex_init(&d.lock, NULL);
        pthread_cond_init(&d.changed, NULL);
        events_init(&d);
        d.started = (int64_t) time(NULL);
        if (containers_load(&d, &err) < 0) {
                fprintf(stderr, "silod: %s\n", err.message);
                return 1;
        }
        if (networks_init(&d, &err) < 0)
                fprintf(stderr, "silod: %s%s\n", err.message, d.networks ? "" : " (containers get no network)");

        signal(SIGPIPE, SIG_IGN);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        /* Threads inherit the mask: only the main thread takes these. */
        pthread_sigmask(SIG_BLOCK, &mask, NULL);

        int lfd = -1, tcp_fd = -1;
        if (sock_path && (lfd = listen_unix(sock_path, &err)) < 0) {
                fprintf(stderr, "silod: %s\n", err.message);
                return 1;
        }
        if (tcp_host && (tcp_fd = listen_tcp(tcp_host + 6, &err)) < 0) {
                fprintf(stderr, "silod: %s\n", err.message);
                return 1;
        }
        if (pthread_create(&d.poller, NULL, containers_poll_thread, &d) != 0) {
                fprintf(stderr, "silod: cannot start the container poller\n");
                return 1;
        }
        const unsigned mhd_flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                   MHD_ALLOW_UPGRADE | MHD_USE_ITC | MHD_USE_ERROR_LOG;
        struct MHD_Daemon *mhd = NULL, *mhd_tls = NULL;
        if (lfd >= 0) {
                mhd = MHD_start_daemon(mhd_flags, 0, NULL, NULL, handle, &d,
                                       MHD_OPTION_LISTEN_SOCKET, lfd,
                                       MHD_OPTION_URI_LOG_CALLBACK, request_begin, &idle,
                                       MHD_OPTION_NOTIFY_COMPLETED, request_end, &idle,
                                       MHD_OPTION_THREAD_STACK_SIZE, SILOD_THREAD_STACK,
                                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 0,
                                       MHD_OPTION_END);
                if (!mhd) {
                        fprintf(stderr, "silod: cannot start the HTTP server on %s\n", sock_path);
                        return 1;
                }
                fprintf(stderr, "silod: listening on %s\n", unix_host);
        }
        if (tcp_fd >= 0) {
                /* The trust list makes GnuTLS ask for a client certificate;
                 * every request checks that one came and verified. */
                mhd_tls = MHD_start_daemon(mhd_flags | MHD_USE_TLS, 0, NULL, NULL, handle, &d,
                                           MHD_OPTION_LISTEN_SOCKET, tcp_fd,
                                           MHD_OPTION_HTTPS_MEM_KEY, tls.key,
                                           MHD_OPTION_HTTPS_MEM_CERT, tls.cert,
                                           MHD_OPTION_HTTPS_MEM_TRUST, tls.ca,
                                           MHD_OPTION_URI_LOG_CALLBACK, request_begin, &idle,
                                           MHD_OPTION_NOTIFY_COMPLETED, request_end, &idle,
                                           MHD_OPTION_THREAD_STACK_SIZE, SILOD_THREAD_STACK,
                                           MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 0,
                                           MHD_OPTION_END);
                if (!mhd_tls) {
                        fprintf(stderr, "silod: cannot start the HTTPS server on %s (bad certificate or key?)\n",
                                tcp_host);
                        if (mhd)
                                MHD_stop_daemon(mhd);
                        if (sock_path)
                                unlink(sock_path);
                        return 1;
                }
                fprintf(stderr, "silod: listening on %s (mutual TLS)\n", tcp_host);
        }

        /* What start-up needed is not needed again; after that, trim
         * whenever silod has been idle for a few seconds. */
        silod_trim();
        int sig;
        for (;;) {
                struct timespec tick = { .tv_sec = 1 };
                sig = sigtimedwait(&mask, NULL, &tick);
                if (sig < 0)
                        silod_idle_tick(&idle, SILOD_IDLE_TRIM_MS);
                else if (sig != SIGHUP)
                        break;
        }
        fprintf(stderr, "silod: signal %d, shutting down (containers keep running)\n", sig);
        /* Upgraded (attach) connections must be closed before MHD stops. */
        pthread_mutex_lock(&d.lock);
        d.stopping = true;
        pthread_cond_broadcast(&d.changed);
        for (int i = 0; i < 50 && d.attach_threads > 0; i++) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 100 * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&d.changed, &d.lock, &ts);
        }
        pthread_mutex_unlock(&d.lock);
        if (mhd)
                MHD_stop_daemon(mhd);
        if (mhd_tls)
                MHD_stop_daemon(mhd_tls);
        pthread_join(d.poller, NULL);
        if (sock_path)
                unlink(sock_path);
        if (lfd >= 0)
                close(lfd);
        if (tcp_fd >= 0)
                close(tcp_fd);
        tls_free(&tls);
        networks_shutdown(&d);
        containers_free(&d);
        networks_free(&d);
        execs_free(&d);
        close(d.containers_fd);
        free(d.monitor_path);
        free(d.runtime_root);
        pthread_mutex_destroy(&d.lock);
        pthread_cond_destroy(&d.changed);
        events_free(&d);
        return 0;
}
