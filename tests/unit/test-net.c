/* net/: published-port and subnet parsing, and the IPAM.  The IPAM tests run
 * in a private network namespace of their own (the "host" the library sees),
 * with child processes in further namespaces as containers: nothing touches
 * the machine's networking. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/files.h"
#include "net/net.h"
#include "util/cleanup.h"
#include "util/fs.h"

static void test_port_parse_valid(void **state)
{
        (void) state;
        silo_error err = SILO_ERROR_INIT;
        silo_net_port p;
        char buf[64];
        assert_int_equal(silo_net_port_parse("8080:80", &p, &err), 0);
        assert_int_equal(p.host_ip, 0);
        assert_int_equal(p.host_port, 8080);
        assert_int_equal(p.container_port, 80);
        assert_int_equal(p.count, 1);
        assert_int_equal(p.proto, IPPROTO_TCP);
        assert_string_equal(silo_net_port_format(&p, buf), "0.0.0.0:8080:80/tcp");

        assert_int_equal(silo_net_port_parse("127.0.0.1:53:5353/udp", &p, &err), 0);
        assert_int_equal(p.host_ip, htonl(0x7f000001));
        assert_int_equal(p.proto, IPPROTO_UDP);
        assert_string_equal(silo_net_port_format(&p, buf), "127.0.0.1:53:5353/udp");

        assert_int_equal(silo_net_port_parse("9000-9009:10000-10009/tcp", &p, &err), 0);
        assert_int_equal(p.host_port, 9000);
        assert_int_equal(p.container_port, 10000);
        assert_int_equal(p.count, 10);
        assert_string_equal(silo_net_port_format(&p, buf), "0.0.0.0:9000-9009:10000-10009/tcp");

        /* The canonical form parses back to the same port. */
        silo_net_port q;
        assert_int_equal(silo_net_port_parse(buf, &q, &err), 0);
        assert_memory_equal(&p, &q, sizeof(p));
        assert_int_equal(silo_net_port_parse("65535:1", &p, &err), 0);

        /* No host port: attach picks one (host_port 0). */
        assert_int_equal(silo_net_port_parse("80", &p, &err), 0);
        assert_int_equal(p.host_port, 0);
        assert_int_equal(p.container_port, 80);
        assert_int_equal(p.count, 1);
        assert_int_equal(silo_net_port_parse("127.0.0.1::53/udp", &p, &err), 0);
        assert_int_equal(p.host_port, 0);
        assert_int_equal(p.host_ip, htonl(0x7f000001));
        assert_int_equal(p.proto, IPPROTO_UDP);

        /* A host range for one container port: attach picks a free one of it. */
        assert_int_equal(silo_net_port_parse("8000-8010:80", &p, &err), 0);
        assert_int_equal(p.host_port, 8000);
        assert_int_equal(p.host_port_last, 8010);
        assert_int_equal(p.container_port, 80);
        assert_int_equal(p.count, 1);
        assert_string_equal(silo_net_port_format(&p, buf), "0.0.0.0:8000-8010:80/tcp");
        assert_int_equal(silo_net_port_parse(buf, &q, &err), 0);
        assert_int_equal(q.host_port_last, 8010);
        assert_int_equal(silo_net_port_parse("8080:80", &p, &err), 0);
        assert_int_equal(p.host_port_last, 0);
}

static void test_port_parse_invalid(void **state)
{
        (void) state;
        static const struct {
                const char *spec;
                const char *message_part;
        } bad[] = {
                { "", "empty" },
                { "80-81", "a random host port needs one container port" },
                { "abc:80", "'abc' is not a port number" },
                { "0:80", "outside 1-65535" },
                { "70000:80", "outside 1-65535" },
                { "8080:80/sctp", "protocol 'sctp'" },
                { "8080:80/", "protocol ''" },
                { "1.2.3:8080:80", "not an IPv4 address" },
                { "::1:8080:80", "not an IPv4 address" },
                { "9010-9000:80-90", "reversed" },
                { "9000-9001:80-82", "host range has 2 ports, container range 3" },
                { "1-2000:1-2000", "more than 1024 ports" },
                { "8080:", "is not a port number" },
                { ":80", "is not a port number" },
                { "+80:80", "is not a port number" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                silo_error err = SILO_ERROR_INIT;
                silo_net_port p;
                int r = silo_net_port_parse(bad[i].spec, &p, &err);
                if (r >= 0 || !strstr(err.message, bad[i].message_part))
                        fail_msg("'%s': r=%d message '%s', expected '%s'", bad[i].spec, r, err.message,
                                 bad[i].message_part);
        }
}

static void test_port_overlaps(void **state)
{
        (void) state;
        silo_net_port a, b;
        assert_int_equal(silo_net_port_parse("8080:80", &a, NULL), 0);
        assert_int_equal(silo_net_port_parse("127.0.0.1:8080:81", &b, NULL), 0);
        assert_true(silo_net_port_overlaps(&a, &b));      /* any address covers 127.0.0.1 */
        assert_int_equal(silo_net_port_parse("8080:80/udp", &b, NULL), 0);
        assert_false(silo_net_port_overlaps(&a, &b));     /* other protocol */
        assert_int_equal(silo_net_port_parse("8000-8080:8000-8080", &b, NULL), 0);
        assert_true(silo_net_port_overlaps(&a, &b));      /* range end */
        assert_int_equal(silo_net_port_parse("8081-8090:1-10", &b, NULL), 0);
        assert_false(silo_net_port_overlaps(&a, &b));
        assert_int_equal(silo_net_port_parse("127.0.0.1:8080:80", &a, NULL), 0);
        assert_int_equal(silo_net_port_parse("127.0.0.2:8080:80", &b, NULL), 0);
        assert_false(silo_net_port_overlaps(&a, &b));     /* different addresses */
}

static void test_subnet_parse(void **state)
{
        (void) state;
        uint32_t a;
        unsigned p;
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(silo_net_parse_subnet("10.1.2.0/24", &a, &p, &err), 0);
        assert_int_equal(a, 0x0a010200);
        assert_int_equal(p, 24);
        assert_true(silo_net_parse_subnet("10.1.2.1/24", &a, &p, &err) < 0);
        assert_non_null(strstr(err.message, "host bits"));
        assert_true(silo_net_parse_subnet("10.1.2.0", &a, &p, &err) < 0);
        assert_true(silo_net_parse_subnet("10.1.2.0/31", &a, &p, &err) < 0);
        assert_true(silo_net_parse_subnet("10.1.2.0/x", &a, &p, &err) < 0);
        assert_true(silo_net_parse_subnet("300.1.2.0/24", &a, &p, &err) < 0);
        assert_true(silo_net_parse_subnet(NULL, &a, &p, &err) < 0);
}

/* ---- IPAM, in private namespaces ---- */

typedef struct lab {
        char dir[64];
        pid_t kids[4];
} lab;

/* A child in a fresh network namespace, waiting to be killed. */
static pid_t spawn_netns(void)
{
        int pipefd[2];
        if (pipe(pipefd) < 0)
                return -1;
        pid_t pid = fork();
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                char ok = unshare(CLONE_NEWNET) == 0 ? 1 : 0;
                (void) !write(pipefd[1], &ok, 1);
                for (;;)
                        pause();
        }
        close(pipefd[1]);
        char ok = 0;
        if (pid < 0 || read(pipefd[0], &ok, 1) != 1 || !ok) {
                close(pipefd[0]);
                return -1;
        }
        close(pipefd[0]);
        return pid;
}

static int lab_setup(void **state)
{
        lab *l = calloc(1, sizeof(*l));
        snprintf(l->dir, sizeof(l->dir), "/tmp/silo-test-net-XXXXXX");
        if (!mkdtemp(l->dir))
                return -1;
        for (size_t i = 0; i < ARRAY_SIZE(l->kids); i++)
                if ((l->kids[i] = spawn_netns()) < 0)
                        return -1;
        *state = l;
        return 0;
}

static int lab_teardown(void **state)
{
        lab *l = *state;
        for (size_t i = 0; i < ARRAY_SIZE(l->kids); i++)
                if (l->kids[i] > 0) {
                        kill(l->kids[i], SIGKILL);
                        waitpid(l->kids[i], NULL, 0);
                }
        silo_rm_rf_at(AT_FDCWD, l->dir, NULL);
        free(l);
        return 0;
}

static silo_net *lab_open(lab *l, const char *subnet)
{
        silo_net_options o = { .state_dir = l->dir, .default_subnet = subnet };
        silo_net *n = NULL;
        silo_error err = SILO_ERROR_INIT;
        if (silo_net_open(&o, &n, &err) < 0)
                fail_msg("open: %s", err.message);
        return n;
}

static char *attach_ip(silo_net *n, const char *id, pid_t pid, silo_error *err)
{
        silo_net_attach_options o = { .container_id = id, .pid = pid };
        _cleanup_json_ json_t *info = NULL;
        if (silo_net_attach(n, &o, &info, err) < 0)
                return NULL;
        return strdup(json_string_value(json_object_get(info, "ip")));
}

static void test_ipam_leases(void **state)
{
        lab *l = *state;
        silo_error err = SILO_ERROR_INIT;
        silo_net *n = lab_open(l, "10.77.0.0/24");
        _cleanup_free_ char *a = attach_ip(n, "a", l->kids[0], &err);
        _cleanup_free_ char *b = attach_ip(n, "b", l->kids[1], &err);
        assert_non_null(a);
        assert_non_null(b);
        assert_string_equal(a, "10.77.0.2");
        assert_string_equal(b, "10.77.0.3");

        /* The same container twice is refused; so is the same namespace's id. */
        assert_null(attach_ip(n, "a", l->kids[2], &err));
        assert_int_equal(err.code, EEXIST);

        /* A released address is not handed out again at once. */
        assert_int_equal(silo_net_detach(n, "a", &err), 0);
        assert_int_equal(silo_net_detach(n, "a", &err), -ENOENT);
        _cleanup_free_ char *c = attach_ip(n, "c", l->kids[2], &err);
        assert_non_null(c);
        assert_string_equal(c, "10.77.0.4");

        /* The leases survive the process: a new handle continues from them. */
        silo_net_free(n);
        n = lab_open(l, NULL);
        _cleanup_free_ char *d = attach_ip(n, "d", l->kids[0], &err);
        assert_non_null(d);
        assert_string_equal(d, "10.77.0.5");
        json_t *info = NULL;
        assert_int_equal(silo_net_network_inspect(n, "silo0", &info, &err), 0);
        assert_int_equal(json_array_size(json_object_get(info, "endpoints")), 3);
        json_decref(info);

        /* A further network: its own address pool, eth1, counted as a user. */
        silo_net_network_options second = { .subnet = "10.79.0.0/24" };
        assert_int_equal(silo_net_network_create(n, "second", &second, NULL, &err), 0);
        json_t *x = NULL;
        const char *bad_alias[] = { "-bad", NULL }, *alias[] = { "dee", NULL };
        assert_int_equal(silo_net_connect_aliases(n, "d", "second", bad_alias, NULL, &err), -EINVAL);
        assert_int_equal(silo_net_connect_aliases(n, "d", "second", alias, &x, &err), 0);
        assert_string_equal(json_string_value(json_array_get(json_object_get(x, "aliases"), 0)), "dee");
        assert_string_equal(json_string_value(json_object_get(x, "ip")), "10.79.0.2");
        assert_string_equal(json_string_value(json_object_get(x, "ifname")), "eth1");
        json_decref(x);
        _cleanup_free_ char *e = NULL;
        {
                silo_net_attach_options eo = { .container_id = "e", .pid = l->kids[3], .network = "second" };
                _cleanup_json_ json_t *einfo = NULL;
                assert_int_equal(silo_net_attach(n, &eo, &einfo, &err), 0);
                e = strdup(json_string_value(json_object_get(einfo, "ip")));
        }
        assert_string_equal(e, "10.79.0.3");
        assert_int_equal(silo_net_connect(n, "d", "second", NULL, &err), -EEXIST);
        assert_int_equal(silo_net_connect(n, "nobody", "second", NULL, &err), -ENOENT);
        assert_int_equal(silo_net_connect(n, "d", "missing", NULL, &err), -ENOENT);
        assert_int_equal(silo_net_disconnect(n, "e", "second", &err), -EINVAL);
        assert_int_equal(silo_net_detach(n, "e", &err), 0);
        assert_int_equal(silo_net_network_remove(n, "second", &err), -EBUSY);

        /* Busy network cannot go; after the last detach it can. */
        assert_int_equal(silo_net_network_remove(n, "silo0", &err), -EBUSY);
        assert_int_equal(silo_net_detach(n, "b", &err), 0);
        assert_int_equal(silo_net_detach(n, "c", &err), 0);
        assert_int_equal(silo_net_detach(n, "d", &err), 0);
        assert_int_equal(silo_net_network_remove(n, "silo0", &err), 0);
        assert_int_equal(silo_net_network_remove(n, "silo0", &err), -ENOENT);
        assert_int_equal(silo_net_network_remove(n, "second", &err), 0);   /* d's detach took eth1 too */
        silo_net_free(n);
}

static void test_ipam_exhaustion_and_rollback(void **state)
{
        lab *l = *state;
        silo_error err = SILO_ERROR_INIT;
        silo_net *n = lab_open(l, NULL);
        /* A /30 has one address besides the gateway. */
        assert_int_equal(silo_net_network_create(n, "tiny", &(silo_net_network_options) { .subnet = "10.78.0.0/30" }, NULL, &err), 0);
        silo_net_attach_options o = { .container_id = "x", .pid = l->kids[0], .network = "tiny" };
        assert_int_equal(silo_net_attach(n, &o, NULL, &err), 0);
        o.container_id = "y";
        o.pid = l->kids[1];
        assert_int_equal(silo_net_attach(n, &o, NULL, &err), -ENOSPC);
        assert_non_null(strstr(err.message, "no free address"));

        /* A failing attach (bad namespace) leaves no lease behind. */
        o.network = NULL;
        o.pid = 0;
        o.netns_path = "/proc/self/ns/net";
        assert_int_equal(silo_net_attach(n, &o, NULL, &err), -EINVAL);
        o.netns_path = "/nonexistent/netns";
        assert_int_equal(silo_net_attach(n, &o, NULL, &err), -ENOENT);
        json_t *ep = NULL;
        assert_int_equal(silo_net_endpoint(n, "y", &ep, &err), -ENOENT);

        /* Overlapping subnets and duplicate names are refused. */
        assert_int_equal(silo_net_network_create(n, "dup", &(silo_net_network_options) { .subnet = "10.78.0.0/16" }, NULL, &err), -EADDRINUSE);
        assert_int_equal(silo_net_network_create(n, "tiny", NULL, NULL, &err), -EEXIST);
        assert_int_equal(silo_net_network_create(n, "bad name", NULL, NULL, &err), -EINVAL);
        assert_int_equal(silo_net_network_create(n, "b", &(silo_net_network_options) { .bridge = "eth0" }, NULL, &err),
                         -EINVAL);
        assert_int_equal(silo_net_network_create(n, "b", &(silo_net_network_options) { .mtu = 67 }, NULL, &err),
                         -EINVAL);

        /* The dead container's leftovers go with reconcile. */
        kill(l->kids[0], SIGKILL);
        waitpid(l->kids[0], NULL, 0);
        l->kids[0] = 0;
        /* The kernel tears a namespace down asynchronously: give it a moment. */
        unsigned removed = 0;
        for (int i = 0; i < 200 && removed == 0; i++) {
                assert_int_equal(silo_net_reconcile(n, NULL, NULL, &removed, &err), 0);
                if (removed == 0)
                        usleep(10000);
        }
        assert_int_equal(removed, 1);
        assert_int_equal(silo_net_endpoint(n, "x", &ep, &err), -ENOENT);
        assert_int_equal(silo_net_network_remove(n, "tiny", &err), 0);
        silo_net_free(n);
}

static char *read_text(const char *dir, const char *name)
{
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        char *text = NULL;
        size_t len;
        if (silo_read_file_at(AT_FDCWD, path, 1 << 16, &text, &len, NULL) < 0)
                fail_msg("read %s", path);
        return text;
}

/* Random host ports, the names in hosts files, resolv.conf overrides. */
static void test_random_ports_and_files(void **state)
{
        lab *l = *state;
        silo_error err = SILO_ERROR_INIT;
        char resolv[96], fa[96], fb[96];
        snprintf(resolv, sizeof(resolv), "%s/host-resolv.conf", l->dir);
        snprintf(fa, sizeof(fa), "%s/a", l->dir);
        snprintf(fb, sizeof(fb), "%s/b", l->dir);
        assert_int_equal(mkdir(fa, 0755), 0);
        assert_int_equal(silo_net_write_file(l->dir, "host-resolv.conf", "nameserver 10.0.0.53\nsearch host.example\n",
                                             &err), 0);
        assert_int_equal(mkdir(fb, 0755), 0);
        silo_net_options no = { .state_dir = l->dir, .default_subnet = "10.78.0.0/24", .host_resolv_conf = resolv };
        silo_net *n = NULL;
        assert_int_equal(silo_net_open(&no, &n, &err), 0);

        silo_net_port ports[2];
        assert_int_equal(silo_net_port_parse("80", &ports[0], &err), 0);
        assert_int_equal(silo_net_port_parse("81/udp", &ports[1], &err), 0);
        const char *aliases[] = { "web", "www", NULL }, *hosts[] = { "db.example:10.1.2.3", NULL };
        silo_net_attach_options o = { .container_id = "a", .name = "alpha", .hostname = "host-a", .pid = l->kids[0],
                                      .ports = ports, .n_ports = 2, .files_dir = fa, .aliases = aliases,
                                      .extra_hosts = hosts };
        _cleanup_json_ json_t *info = NULL;
        assert_int_equal(silo_net_attach(n, &o, &info, &err), 0);
        json_t *got = json_object_get(info, "ports");
        assert_int_equal(json_array_size(got), 2);
        silo_net_port p0, p1;
        assert_int_equal(silo_net_port_parse(json_string_value(json_array_get(got, 0)), &p0, &err), 0);
        assert_int_equal(silo_net_port_parse(json_string_value(json_array_get(got, 1)), &p1, &err), 0);
        assert_true(p0.host_port >= 1024 && p0.container_port == 80 && p0.proto == IPPROTO_TCP);
        assert_true(p1.host_port >= 1024 && p1.container_port == 81 && p1.proto == IPPROTO_UDP);

        const char *dns[] = { "10.9.9.9", NULL }, *search[] = { "corp.example", NULL };
        silo_net_attach_options ob = { .container_id = "b", .name = "beta", .pid = l->kids[1], .files_dir = fb,
                                       .dns = dns, .dns_search = search };
        assert_int_equal(silo_net_attach(n, &ob, NULL, &err), 0);
        _cleanup_free_ char *ha = read_text(fa, "hosts"), *hb = read_text(fb, "hosts");
        _cleanup_free_ char *hn = read_text(fa, "hostname"), *ra = read_text(fa, "resolv.conf");
        _cleanup_free_ char *rb = read_text(fb, "resolv.conf");
        assert_non_null(strstr(ha, "10.78.0.2\thost-a alpha web www\n"));
        assert_non_null(strstr(ha, "10.1.2.3\tdb.example\n"));
        assert_non_null(strstr(ha, "10.78.0.3\tbeta\n"));      /* rewritten in place when b came */
        assert_non_null(strstr(hb, "10.78.0.2\talpha web www\n"));
        assert_null(strstr(hb, "db.example"));
        assert_string_equal(hn, "host-a\n");
        assert_string_equal(ra, "nameserver 10.0.0.53\nsearch host.example\n");
        assert_string_equal(rb, "nameserver 10.9.9.9\nsearch corp.example\n");

        /* Bad names and addresses are refused before anything exists. */
        const char *bad_alias[] = { "-x", NULL }, *bad_host[] = { "nocolon", NULL }, *bad_dns[] = { "x.y", NULL };
        silo_net_attach_options bad = { .container_id = "c", .pid = l->kids[2], .aliases = bad_alias };
        assert_int_equal(silo_net_attach(n, &bad, NULL, &err), -EINVAL);
        assert_non_null(strstr(err.message, "aliases"));
        bad.aliases = NULL;
        bad.extra_hosts = bad_host;
        assert_int_equal(silo_net_attach(n, &bad, NULL, &err), -EINVAL);
        bad.extra_hosts = NULL;
        bad.dns = bad_dns;
        assert_int_equal(silo_net_attach(n, &bad, NULL, &err), -EINVAL);
        bad.dns = NULL;
        bad.hostname = "bad host";
        assert_int_equal(silo_net_attach(n, &bad, NULL, &err), -EINVAL);

        /* The random ports are held: the same ports given explicitly are refused. */
        silo_net_port again = p0;
        silo_net_attach_options oc = { .container_id = "c", .pid = l->kids[2], .ports = &again, .n_ports = 1 };
        assert_int_equal(silo_net_attach(n, &oc, NULL, &err), -EADDRINUSE);

        json_t *eps = NULL;
        assert_int_equal(silo_net_endpoint_list(n, &eps, &err), 0);
        assert_int_equal(json_object_size(eps), 2);
        json_decref(eps);
        assert_int_equal(silo_net_detach(n, "a", &err), 0);
        assert_int_equal(silo_net_detach(n, "b", &err), 0);
        assert_int_equal(silo_net_network_remove(n, "silo0", &err), 0);
        silo_net_free(n);
}

/* A namespace bound to a file, and its removal (idempotent). */
static void test_netns_files(void **state)
{
        lab *l = *state;
        silo_error err = SILO_ERROR_INIT;
        char path[96];
        snprintf(path, sizeof(path), "%s/ns", l->dir);
        assert_int_equal(silo_net_netns_create(path, &err), 0);
        assert_int_equal(silo_net_netns_create(path, &err), -EEXIST);
        silo_net *n = lab_open(l, "10.76.0.0/24");
        silo_net_attach_options o = { .container_id = "x", .mode = "none", .netns_path = path };
        assert_int_equal(silo_net_attach(n, &o, NULL, &err), 0);
        assert_int_equal(silo_net_detach(n, "x", &err), 0);
        silo_net_free(n);
        assert_int_equal(silo_net_netns_remove(path, &err), 0);
        assert_int_equal(access(path, F_OK), -1);
        assert_int_equal(silo_net_netns_remove(path, &err), 0);
}

/* Mode none's files without a lease: the state file is never touched. */
static void test_files_without_state(void **state)
{
        lab *l = *state;
        silo_error err = SILO_ERROR_INIT;
        char resolv[96], dir[96], st[96];
        snprintf(resolv, sizeof(resolv), "%s/host-resolv.conf", l->dir);
        snprintf(dir, sizeof(dir), "%s/files", l->dir);
        snprintf(st, sizeof(st), "%s/state/state.json", l->dir);
        assert_int_equal(mkdir(dir, 0755), 0);
        assert_int_equal(silo_net_write_file(l->dir, "host-resolv.conf",
                                             "nameserver 127.0.0.53\nsearch host.example\noptions edns0\n", &err), 0);
        char state_dir[96];
        snprintf(state_dir, sizeof(state_dir), "%s/state", l->dir);
        silo_net_options no = { .state_dir = state_dir, .host_resolv_conf = resolv };
        silo_net *n = NULL;
        assert_int_equal(silo_net_open(&no, &n, &err), 0);

        const char *hosts[] = { "db.example:10.1.2.3", "v6.example=::1", NULL }, *opts[] = { "ndots:2", NULL };
        silo_net_attach_options o = { .container_id = "none1", .name = "quiet", .hostname = "host-q",
                                      .mode = "none", .files_dir = dir, .extra_hosts = hosts, .dns_options = opts };
        assert_int_equal(silo_net_write_files(n, &o, &err), 0);
        _cleanup_free_ char *h = read_text(dir, "hosts"), *hn = read_text(dir, "hostname");
        _cleanup_free_ char *r = read_text(dir, "resolv.conf");
        assert_string_equal(h, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                               "127.0.1.1\thost-q quiet\n10.1.2.3\tdb.example\n::1\tv6.example\n");
        assert_string_equal(hn, "host-q\n");
        /* The loopback resolver is replaced by the fallbacks; options overridden. */
        assert_null(strstr(r, "127.0.0.53"));
        assert_non_null(strstr(r, "nameserver 8.8.8.8\n"));
        assert_non_null(strstr(r, "search host.example\n"));
        assert_non_null(strstr(r, "options ndots:2\n"));
        assert_null(strstr(r, "edns0"));

        /* --dns replaces the fallbacks; a rewrite is in place. */
        struct stat before, after;
        char path[128];
        snprintf(path, sizeof(path), "%s/resolv.conf", dir);
        assert_int_equal(stat(path, &before), 0);
        const char *dns[] = { "10.9.9.9", NULL };
        silo_net_attach_options od = { .container_id = "none1", .files_dir = dir, .dns = dns };
        assert_int_equal(silo_net_write_files(n, &od, &err), 0);
        _cleanup_free_ char *r2 = read_text(dir, "resolv.conf"), *h2 = read_text(dir, "hosts");
        assert_string_equal(r2, "search host.example\noptions edns0\nnameserver 10.9.9.9\n");
        assert_non_null(strstr(h2, "127.0.1.1\tnone1\n"));      /* name: the id's first 12 */
        assert_int_equal(stat(path, &after), 0);
        assert_int_equal(before.st_ino, after.st_ino);

        /* Nothing recorded: no state file, no endpoint. */
        assert_int_equal(access(st, F_OK), -1);
        json_t *eps = NULL;
        assert_int_equal(silo_net_endpoint(n, "none1", &eps, &err), -ENOENT);

        /* Bad input. */
        silo_net_attach_options bad = o;
        bad.mode = "bridge";
        assert_int_equal(silo_net_write_files(n, &bad, &err), -EINVAL);
        assert_non_null(strstr(err.message, "mode none"));
        bad = o;
        silo_net_port p;
        assert_int_equal(silo_net_port_parse("80", &p, &err), 0);
        bad.ports = &p;
        bad.n_ports = 1;
        assert_int_equal(silo_net_write_files(n, &bad, &err), -EINVAL);
        bad = o;
        bad.files_dir = NULL;
        assert_int_equal(silo_net_write_files(n, &bad, &err), -EINVAL);
        bad = o;
        const char *bad_host[] = { "nocolon", NULL };
        bad.extra_hosts = bad_host;
        assert_int_equal(silo_net_write_files(n, &bad, &err), -EINVAL);
        assert_non_null(strstr(err.message, "extra_hosts"));
        bad = o;
        bad.container_id = "../x";
        assert_int_equal(silo_net_write_files(n, &bad, &err), -EINVAL);
        bad = o;
        bad.hostname = "bad host";
        assert_int_equal(silo_net_write_files(n, &bad, &err), -EINVAL);
        bad = o;
        bad.files_dir = "/nonexistent-silo-dir";
        assert_int_equal(silo_net_write_files(n, &bad, &err), -ENOENT);
        silo_net_free(n);
}

static void test_state_file_is_validated(void **state)
{
        lab *l = *state;
        silo_error err = SILO_ERROR_INIT;
        silo_net *n = lab_open(l, NULL);
        _cleanup_close_ int dfd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        json_t *list = NULL;
        assert_int_equal(silo_write_file_replace_at(dfd, "state.json", "{\"networks\": {\"x\": {\"name\": \"x\", "
                                                    "\"bridge\": \"silo-x\", \"gateway\": \"10.1.0.1\"}}}",
                                                    strlen("{\"networks\": {\"x\": {\"name\": \"x\", "
                                                           "\"bridge\": \"silo-x\", \"gateway\": \"10.1.0.1\"}}}"),
                                                    0600, &err), 0);
        assert_int_equal(silo_net_network_list(n, &list, &err), -EINVAL);
        assert_non_null(strstr(err.message, "networks.x.subnet: expected a string"));
        const char *broken = "{\"endpoints\": [";
        assert_int_equal(silo_write_file_replace_at(dfd, "state.json", broken, strlen(broken), 0600, &err), 0);
        assert_true(silo_net_network_list(n, &list, &err) < 0);
        assert_non_null(strstr(err.message, "state.json"));
        silo_net_free(n);
}

int main(void)
{
        /* The library's "host" is a namespace of our own. */
        if (unshare(CLONE_NEWNET) < 0) {
                fprintf(stderr, "test-net: unshare(CLONE_NEWNET): %m (needs root)\n");
                return 1;
        }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_port_parse_valid),
                cmocka_unit_test(test_port_parse_invalid),
                cmocka_unit_test(test_port_overlaps),
                cmocka_unit_test(test_subnet_parse),
                cmocka_unit_test_setup_teardown(test_ipam_leases, lab_setup, lab_teardown),
                cmocka_unit_test_setup_teardown(test_ipam_exhaustion_and_rollback, lab_setup, lab_teardown),
                cmocka_unit_test_setup_teardown(test_state_file_is_validated, lab_setup, lab_teardown),
                cmocka_unit_test_setup_teardown(test_random_ports_and_files, lab_setup, lab_teardown),
                cmocka_unit_test_setup_teardown(test_netns_files, lab_setup, lab_teardown),
                cmocka_unit_test_setup_teardown(test_files_without_state, lab_setup, lab_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
