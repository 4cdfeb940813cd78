/* Endpoints: attach (bridge, none, host, container:), detach, and further
 * networks of a connected container (connect/disconnect).
 *
 * state.json under the state directory:
 *   { "networks": { NAME: { "name", "bridge", "subnet", "gateway", "last" } },
 *     "endpoints": { ID: { "id", "name", "mode", "network", "ip", "mac", "veth",
 *                          "netns", "ports": ["ip:h:c/proto"...], "files" } } }
 * Every public call holds an flock on "lock" while it reads, changes and
 * rewrites the state, so the lease table is the single source of truth for
 * addresses and published ports.  The state is replaced atomically but not
 * fsync'd: after a power loss the kernel objects are gone too, and
 * reconcile drops the leases. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "net/files.h"
#include "net/internal.h"
#include "net/net.h"
#include "net/netlink.h"
#include "net/nft.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

/* ---- endpoints ---- */

/* A veth of the same name may still be on its way out with a namespace
 * whose destruction the kernel has not finished (silo_net_release): the
 * callers have checked that no endpoint owns the name, so it is stale. */
static int veth_create(silo_nl *nl, const char *veth, int bridge, unsigned mtu, const char *ifname, int nsfd,
                       const uint8_t mac[6], silo_error *err)
{
        int r = silo_nl_veth_create(nl, veth, bridge, mtu, ifname, nsfd, mac, err);
        if (r != -EEXIST)
                return r;
        silo_error_clear(err);
        r = silo_nl_link_delete(nl, veth, err);
        if (r < 0 && r != -ENODEV)
                return r;
        return silo_nl_veth_create(nl, veth, bridge, mtu, ifname, nsfd, mac, err);
}

/* Continues after the last address handed out, so that a just-released
 * address is not reused at once (stale ARP caches in the peers). */
static int allocate_ip(silo_net *n, json_t *net, uint32_t *ret, silo_error *err)
{
        uint32_t base, gw, last;
        unsigned prefix;
        int r = net_network_subnet(net, &base, &prefix, err);
        if (r < 0)
                return r;
        if (net_parse_ip(net_jstr(net, "gateway"), &gw) < 0)
                gw = base + 1;
        if (net_parse_ip(net_jstr(net, "last"), &last) < 0)
                last = gw;
        uint32_t size = 1u << (32 - prefix);
        const char *name = net_jstr(net, "name");
        for (uint32_t i = 1; i <= size; i++) {
                uint32_t off = ((last - base) + i) % size;
                uint32_t cand = base + off;
                if (off == 0 || off == size - 1 || cand == gw)
                        continue;
                char text[INET_ADDRSTRLEN];
                net_ip_text(cand, text);
                bool used = false;
                const char *id;
                json_t *ep;
                json_object_foreach(net_endpoints(n), id, ep) {
                        json_t *l = net_endpoint_link_on(ep, name);
                        if (l && net_jstr(l, "ip") && !strcmp(net_jstr(l, "ip"), text)) {
                                used = true;
                                break;
                        }
                }
                if (used)
                        continue;
                json_object_set_new(net, "last", json_string(text));
                *ret = cand;
                return 0;
        }
        return silo_error_msg(err, ENOSPC, "network %s: no free address in %s", name, net_jstr(net, "subnet"));
}

int net_endpoint_ports(json_t *ep, silo_net_port **ret, size_t *ret_n, silo_error *err)
{
        json_t *ports = json_object_get(ep, "ports");
        size_t count = json_array_size(ports);
        *ret = NULL;
        *ret_n = 0;
        if (count == 0)
                return 0;
        _cleanup_free_ silo_net_port *v = calloc(count, sizeof(*v));
        if (!v)
                return silo_error_set(err, ENOMEM, "ports");
        for (size_t i = 0; i < count; i++) {
                int r = silo_net_port_parse(json_string_value(json_array_get(ports, i)), &v[i], err);
                if (r < 0)
                        return silo_error_prefix(err, "network state: endpoint %s", net_jstr(ep, "id"));
        }
        *ret = TAKE_PTR(v);
        *ret_n = count;
        return 0;
}

static bool host_port_bindable(const silo_net_port *p, uint16_t port)
{
        bool tcp = p->proto == IPPROTO_TCP;
        _cleanup_close_ int fd = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        int one = 1;
        if (tcp)
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = p->host_ip, .sin_port = htons(port) };
        return bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
}

static bool port_held(silo_net *n, const silo_net_port *cand, const silo_net_port *mine, size_t n_mine)
{
        for (size_t i = 0; i < n_mine; i++)
                if (mine[i].host_port && !mine[i].host_port_last && silo_net_port_overlaps(cand, &mine[i]))
                        return true;
        const char *id;
        json_t *ep;
        json_object_foreach(net_endpoints(n), id, ep) {
                _cleanup_free_ silo_net_port *held = NULL;
                size_t n_held = 0;
                if (net_endpoint_ports(ep, &held, &n_held, NULL) < 0)
                        continue;
                for (size_t j = 0; j < n_held; j++)
                        if (silo_net_port_overlaps(cand, &held[j]))
                                return true;
        }
        return false;
}

/* A copy of ports with every host port 0 replaced by a free port of the
 * kernel's ephemeral range (as Docker does for -P and -p 80), starting at
 * a random point so that a just-released port is not handed out again. */
static int assign_ports(silo_net *n, const silo_net_port *ports, size_t n_ports, silo_net_port **ret,
                        silo_error *err)
{
        silo_net_port *v = calloc(n_ports ? n_ports : 1, sizeof(*v));
        if (!v)
                return silo_error_set(err, ENOMEM, "ports");
        if (n_ports)
                memcpy(v, ports, n_ports * sizeof(*v));
        unsigned lo = 32768, hi = 60999;
        _cleanup_free_ char *range = NULL;
        size_t len;
        if (silo_read_file_at(AT_FDCWD, "/proc/sys/net/ipv4/ip_local_port_range", 64, &range, &len, NULL) == 0 &&
            (sscanf(range, "%u %u", &lo, &hi) != 2 || lo < 1 || hi > 65535 || lo > hi)) {
                lo = 32768;
                hi = 60999;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned span = hi - lo + 1, start = (unsigned) (ts.tv_nsec ^ ts.tv_sec) % span;
        for (size_t i = 0; i < n_ports; i++) {
                if (v[i].host_port && v[i].host_port_last) {
                        /* A host range for one port: the first free one. */
                        unsigned first = v[i].host_port, last = v[i].host_port_last;
                        v[i].host_port = 0;
                        for (unsigned port = first; port <= last && !v[i].host_port; port++) {
                                silo_net_port cand = v[i];
                                cand.host_port = (uint16_t) port;
                                cand.host_port_last = 0;
                                if (!port_held(n, &cand, v, n_ports) && host_port_bindable(&cand, cand.host_port))
                                        v[i].host_port = cand.host_port;
                        }
                        if (!v[i].host_port) {
                                char buf[64];
                                silo_net_port want = v[i];
                                want.host_port = (uint16_t) first;
                                free(v);
                                return silo_error_msg(err, EADDRINUSE, "port %s: no free host port in %u-%u",
                                                      silo_net_port_format(&want, buf), first, last);
                        }
                        v[i].host_port_last = 0;
                        continue;
                }
                if (v[i].host_port)
                        continue;
                v[i].count = 1;
                for (unsigned k = 0; k < span && !v[i].host_port; k++) {
                        silo_net_port cand = v[i];
                        cand.host_port = (uint16_t) (lo + (start + k) % span);
                        if (!port_held(n, &cand, v, n_ports) && host_port_bindable(&cand, cand.host_port))
                                v[i].host_port = cand.host_port;
                }
                if (!v[i].host_port) {
                        free(v);
                        return silo_error_msg(err, EADDRINUSE, "no free host port in %u-%u", lo, hi);
                }
                start += 1;
        }
        *ret = v;
        return 0;
}

/* A published port is refused if another container holds it, or if a host
 * process listens there (DNAT would silently steal its traffic). */
static int check_ports(silo_net *n, const silo_net_port *ports, size_t n_ports, silo_error *err)
{
        for (size_t i = 0; i < n_ports; i++)
                for (size_t j = 0; j < i; j++)
                        if (silo_net_port_overlaps(&ports[i], &ports[j])) {
                                char a[64], b[64];
                                return silo_error_msg(err, EADDRINUSE, "port %s overlaps port %s of the same container",
                                                      silo_net_port_format(&ports[i], a),
                                                      silo_net_port_format(&ports[j], b));
                        }
        const char *id;
        json_t *ep;
        json_object_foreach(net_endpoints(n), id, ep) {
                _cleanup_free_ silo_net_port *held = NULL;
                size_t n_held;
                int r = net_endpoint_ports(ep, &held, &n_held, err);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < n_ports; i++)
                        for (size_t j = 0; j < n_held; j++)
                                if (silo_net_port_overlaps(&ports[i], &held[j])) {
                                        char a[64], b[64];
                                        return silo_error_msg(err, EADDRINUSE,
                                                              "port %s is already published: %s by container %s",
                                                              silo_net_port_format(&ports[i], a),
                                                              silo_net_port_format(&held[j], b), id);
                                }
        }
        for (size_t i = 0; i < n_ports; i++)
                for (unsigned k = 0; k < ports[i].count; k++) {
                        bool tcp = ports[i].proto == IPPROTO_TCP;
                        _cleanup_close_ int fd = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
                        if (fd < 0)
                                return silo_error_set(err, errno, "socket");
                        int one = 1;
                        /* TIME_WAIT leftovers are not listeners. */
                        if (tcp)
                                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = ports[i].host_ip,
                                                  .sin_port = htons((uint16_t) (ports[i].host_port + k)) };
                        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0)
                                continue;
                        char a[64];
                        if (errno == EADDRINUSE)
                                return silo_error_msg(err, EADDRINUSE, "port %s: host port %u/%s is in use on the host",
                                                      silo_net_port_format(&ports[i], a), ports[i].host_port + k,
                                                      tcp ? "tcp" : "udp");
                        if (errno == EADDRNOTAVAIL)
                                return silo_error_msg(err, EADDRNOTAVAIL,
                                                      "port %s: the address is not one of this host's",
                                                      silo_net_port_format(&ports[i], a));
                }
        return 0;
}

static int open_netns(const char *path, pid_t pid, char **ret_path, int *ret_fd, silo_error *err)
{
        char buf[64];
        if (!path) {
                if (pid <= 0)
                        return silo_error_msg(err, EINVAL, "network: no network namespace (path or pid) given");
                snprintf(buf, sizeof(buf), "/proc/%d/ns/net", (int) pid);
                path = buf;
        }
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return silo_error_set(err, errno, "open network namespace %s", path);
        int type = ioctl(fd, NS_GET_NSTYPE);
        if (type != CLONE_NEWNET)
                return silo_error_msg(err, EINVAL, "%s is not a network namespace", path);
        /* Moving "eth0" into our own namespace would be a mess: refuse. */
        struct stat a, b;
        if (fstat(fd, &a) < 0 || stat("/proc/thread-self/ns/net", &b) < 0)
                return silo_error_set(err, errno, "stat network namespace");
        if (a.st_dev == b.st_dev && a.st_ino == b.st_ino)
                return silo_error_msg(err, EINVAL, "%s is the host's own network namespace", path);
        char *p = strdup(path);
        if (!p)
                return silo_error_set(err, ENOMEM, "network");
        *ret_path = p;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int loopback_up(silo_nl *nsnl, silo_error *err)
{
        silo_nl_link lo;
        int r = silo_nl_link_get(nsnl, "lo", &lo, err);
        if (r == -ENODEV)
                return silo_error_msg(err, ENODEV, "the namespace has no loopback device");
        if (r < 0)
                return r;
        return silo_nl_link_up(nsnl, lo.index, err);
}

/* Undoes a bridge endpoint's kernel objects (not its record). */
int net_teardown_endpoint(silo_net *n, const char *id, json_t *ep, bool keep_veths, silo_error *err)
{
        size_t i;
        json_t *x;
        json_array_foreach(keep_veths ? NULL : json_object_get(ep, "extra"), i, x) {
                silo_nl *nl;
                int r = net_host_nl(n, &nl, err);
                if (r < 0)
                        return r;
                r = net_jstr(x, "veth") ? silo_nl_link_delete(nl, net_jstr(x, "veth"), err) : 0;
                if (r < 0 && r != -ENODEV)
                        return r;
        }
        const char *veth = keep_veths ? NULL : net_jstr(ep, "veth");
        if (veth) {
                silo_nl *nl;
                int r = net_host_nl(n, &nl, err);
                if (r < 0)
                        return r;
                r = silo_nl_link_delete(nl, veth, err);
                if (r < 0 && r != -ENODEV)
                        return r;
        }
        if (json_array_size(json_object_get(ep, "ports")) > 0) {
                silo_nft *nft;
                int r = net_host_nft(n, &nft, err);
                if (r < 0)
                        return r;
                char tag[128];
                snprintf(tag, sizeof(tag), SILO_NFT_CONTAINER_TAG "%s", id);
                r = silo_nft_delete_tagged(nft, tag, net_exact_tag, NULL, NULL, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Inside the container's namespace: address and bring up its end of the
 * veth; for its first network also loopback and the default route. */
static int configure_inside(int nsfd, const char *ifname, uint32_t ip, unsigned prefix, bool first_network,
                            uint32_t gw, silo_error *err)
{
        silo_nl *nsnl = NULL;
        silo_nl_link eth;
        int r = silo_nl_open(nsfd, &nsnl, err);
        if (r >= 0) {
                r = silo_nl_link_get(nsnl, ifname, &eth, err);
                if (r == -ENODEV)
                        r = silo_error_msg(err, ENODEV, "%s missing in the namespace", ifname);
        }
        if (r >= 0)
                r = silo_nl_addr_add(nsnl, eth.index, ip, prefix, err);
        if (r >= 0)
                r = silo_nl_link_up(nsnl, eth.index, err);
        if (r >= 0 && first_network)
                r = loopback_up(nsnl, err);
        if (r >= 0 && first_network)
                r = silo_nl_route_default(nsnl, gw, err);
        silo_nl_free(nsnl);
        return r;
}

static int attach_bridge(silo_net *n, const silo_net_attach_options *o, json_t *ep, int nsfd, silo_error *err)
{
        const char *network = o->network ? o->network : SILO_NET_DEFAULT_NETWORK;
        json_t *net = json_object_get(net_networks(n), network);
        int r;
        if (!net) {
                if (strcmp(network, SILO_NET_DEFAULT_NETWORK) != 0)
                        return silo_error_msg(err, ENOENT, "network %s not found", network);
                r = net_add_network(n, network, NULL, &net, err);
                if (r < 0)
                        return r;
        }
        silo_nl_link bridge;
        r = net_ensure_bridge(n, net, &bridge, err);
        if (r < 0)
                return r;
        /* The bridge now exists: its network must be on record. */
        r = net_save_state(n, err);
        if (r < 0)
                return r;
        _cleanup_free_ silo_net_port *ports = NULL;
        r = assign_ports(n, o->ports, o->n_ports, &ports, err);
        if (r < 0)
                return r;
        r = check_ports(n, ports, o->n_ports, err);
        if (r < 0)
                return r;
        uint32_t base = 0, gw = 0, ip = 0;
        unsigned prefix;
        r = net_network_subnet(net, &base, &prefix, err);
        if (r < 0)
                return r;
        if (net_parse_ip(net_jstr(net, "gateway"), &gw) < 0)
                return silo_error_msg(err, EINVAL, "network state: network %s: bad gateway", network);
        r = allocate_ip(n, net, &ip, err);
        if (r < 0)
                return r;

        char veth[IFNAMSIZ], ip_s[INET_ADDRSTRLEN], mac_s[18];
        net_veth_name(o->container_id, veth);
        const char *id;
        json_t *other;
        json_object_foreach(net_endpoints(n), id, other)
                if (net_endpoint_owns_veth(other, veth))
                        return silo_error_msg(err, EEXIST, "veth name %s of %s collides with container %s",
                                              veth, o->container_id, id);
        /* A MAC derived from the address, as Docker does: stable per lease. */
        uint8_t mac[6] = { 0x02, 0x42, (uint8_t) (ip >> 24), (uint8_t) (ip >> 16), (uint8_t) (ip >> 8), (uint8_t) ip };
        snprintf(mac_s, sizeof(mac_s), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
        json_t *ports_j = json_array();
        for (size_t i = 0; i < o->n_ports; i++) {
                char buf[64];
                json_array_append_new(ports_j, json_string(silo_net_port_format(&ports[i], buf)));
        }
        json_object_set_new(ep, "network", json_string(network));
        json_object_set_new(ep, "ip", json_string(net_ip_text(ip, ip_s)));
        json_object_set_new(ep, "prefix", json_integer(prefix));
        json_object_set_new(ep, "gateway", json_string(net_jstr(net, "gateway")));
        json_object_set_new(ep, "mac", json_string(mac_s));
        json_object_set_new(ep, "veth", json_string(veth));
        json_object_set_new(ep, "ifname", json_string(o->ifname ? o->ifname : "eth0"));
        json_object_set_new(ep, "ports", ports_j);
        json_object_set_new(ep, "mtu", json_integer(bridge.mtu));
        /* Recorded before the kernel objects exist: a crash in between
         * leaves a lease whose veth is missing, which reconcile removes. */
        json_object_set(net_endpoints(n), o->container_id, ep);
        r = net_save_state(n, err);
        if (r < 0)
                goto fail;

        silo_nl *nl;
        r = net_host_nl(n, &nl, err);
        if (r < 0)
                goto fail;
        const char *ifname = o->ifname ? o->ifname : "eth0";
        r = veth_create(nl, veth, bridge.index, bridge.mtu, ifname, nsfd, mac, err);
        if (r < 0)
                goto fail;
        if (o->n_ports > 0) {
                silo_nl_link port;
                r = silo_nl_link_get(nl, veth, &port, err);
                if (r == -ENODEV)
                        r = silo_error_msg(err, ENODEV, "veth %s vanished after creation", veth);
                if (r >= 0)
                        r = silo_nl_bridge_port_hairpin(nl, port.index, err);
                if (r < 0)
                        goto fail;
        }
        r = configure_inside(nsfd, ifname, ip, prefix, true, gw, err);
        if (r < 0)
                goto fail;
        if (o->n_ports > 0) {
                silo_nft *nft;
                r = net_host_nft(n, &nft, err);
                if (r < 0)
                        goto fail;
                silo_nft_buf b = {};
                silo_nft_skeleton(&b);
                silo_nft_port_rules(&b, o->container_id, ip, ports, o->n_ports);
                r = b.oom ? silo_error_set(err, ENOMEM, "nftables rules") : silo_nft_run(nft, b.data, err);
                free(b.data);
                if (r < 0)
                        goto fail;
        }
        return 0;
fail:
        (void) net_teardown_endpoint(n, o->container_id, ep, false, NULL);
        json_object_del(net_endpoints(n), o->container_id);
        (void) net_save_state(n, NULL);
        return r;
}

/* The container id and its name (o->name, else the first 12 of the id,
 * put in short_id), both checked. */
static int endpoint_identity(const silo_net_attach_options *o, char short_id[13], const char **ret_name,
                             silo_error *err)
{
        if (!o || !net_valid_name(o->container_id, 64))
                return silo_error_msg(err, EINVAL, "container id '%s': use letters, digits, '_', '.', '-' (at most 64)",
                                      o && o->container_id ? o->container_id : "");
        snprintf(short_id, 13, "%s", o->container_id);
        const char *name = o->name ? o->name : short_id;
        if (!net_valid_name(name, 63))
                return silo_error_msg(err, EINVAL, "container name '%s' is not a valid host name", name);
        *ret_name = name;
        return 0;
}

int silo_net_write_files(silo_net *n, const silo_net_attach_options *o, silo_error *err)
{
        char short_id[13];
        const char *name;
        int r = endpoint_identity(o, short_id, &name, err);
        if (r < 0)
                return r;
        if (o->mode && strcmp(o->mode, "none") != 0)
                return silo_error_msg(err, EINVAL, "network mode %s: files without a lease are for mode none",
                                      o->mode);
        if (o->n_ports > 0 || o->network || o->aliases)
                return silo_error_msg(err, EINVAL, "network mode none: ports, networks and aliases need bridge mode");
        if (!o->files_dir)
                return silo_error_msg(err, EINVAL, "network files of %s: no directory given", o->container_id);
        /* The record attach would keep, here only to render the files from:
         * it never reaches the state. */
        _cleanup_json_ json_t *ep = json_pack("{s:s, s:s, s:s, s:s}", "id", o->container_id, "name", name, "mode",
                                              "none", "files", o->files_dir);
        if (!ep)
                return silo_error_set(err, ENOMEM, "network");
        r = net_endpoint_names(ep, o, err);
        if (r < 0)
                return r;
        return net_write_endpoint_files(n, ep, NULL, err);
}

int silo_net_attach(silo_net *n, const silo_net_attach_options *o, json_t **ret_info, silo_error *err)
{
        char short_id[13];
        const char *name;
        int r = endpoint_identity(o, short_id, &name, err);
        if (r < 0)
                return r;
        const char *mode = o->mode ? o->mode : "bridge";
        bool bridge = !strcmp(mode, "bridge"), none = !strcmp(mode, "none"), host = !strcmp(mode, "host");
        const char *target = !strncmp(mode, "container:", 10) ? mode + 10 : NULL;
        if (!bridge && !none && !host && !target)
                return silo_error_msg(err, EINVAL, "network mode '%s': expected bridge, none, host or container:<id>",
                                      mode);
        if (!bridge && (o->n_ports > 0 || o->network))
                return silo_error_msg(err, EINVAL, "network mode %s: ports and networks need bridge mode", mode);
        if (o->ifname && (strlen(o->ifname) >= IFNAMSIZ || !net_valid_name(o->ifname, IFNAMSIZ - 1)))
                return silo_error_msg(err, EINVAL, "interface name '%s' is not valid", o->ifname);

        r = net_lock_state(n, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *ep = NULL;
        _cleanup_free_ char *netns = NULL;
        _cleanup_close_ int nsfd = -1;
        json_t *owner = NULL;
        if (json_object_get(net_endpoints(n), o->container_id)) {
                r = silo_error_msg(err, EEXIST, "container %s is already connected", o->container_id);
                goto out;
        }
        if (json_object_size(net_endpoints(n)) >= MAX_ENDPOINTS) {
                r = silo_error_msg(err, ENOSPC, "network: at most %d endpoints", MAX_ENDPOINTS);
                goto out;
        }
        ep = json_pack("{s:s, s:s, s:s}", "id", o->container_id, "name", name, "mode", target ? "container" : mode);
        if (!ep) {
                r = silo_error_set(err, ENOMEM, "network");
                goto out;
        }
        if (o->files_dir)
                json_object_set_new(ep, "files", json_string(o->files_dir));
        r = net_endpoint_names(ep, o, err);
        if (r < 0)
                goto out;
        if (target) {
                owner = json_object_get(net_endpoints(n), target);
                if (!owner || !net_jstr(owner, "netns")) {
                        r = silo_error_msg(err, ENOENT, "network mode %s: container %s has no network namespace here",
                                           mode, target);
                        goto out;
                }
                json_object_set_new(ep, "container", json_string(target));
                json_object_set_new(ep, "netns", json_string(net_jstr(owner, "netns")));
        } else if (!host) {
                r = open_netns(o->netns_path, o->pid, &netns, &nsfd, err);
                if (r < 0)
                        goto out;
                json_object_set_new(ep, "netns", json_string(netns));
        }
        if (bridge)
                r = attach_bridge(n, o, ep, nsfd, err);
        else if (none) {
                silo_nl *nsnl = NULL;
                r = silo_nl_open(nsfd, &nsnl, err);
                if (r >= 0)
                        r = loopback_up(nsnl, err);
                silo_nl_free(nsnl);
        }
        if (r < 0)
                goto out;
        json_object_set(net_endpoints(n), o->container_id, ep);
        r = net_write_endpoint_files(n, ep, owner, err);
        if (r >= 0)
                r = net_save_state(n, err);
        if (r < 0) {
                (void) net_teardown_endpoint(n, o->container_id, ep, false, NULL);
                json_object_del(net_endpoints(n), o->container_id);
                (void) net_save_state(n, NULL);
                goto out;
        }
        net_refresh_network_hosts(n, net_jstr(ep, "network"), o->container_id);
        if (ret_info)
                *ret_info = json_deep_copy(ep);
out:
        net_unlock_state(n);
        return r < 0 ? r : 0;
}

int net_detach_locked(silo_net *n, const char *id, bool netns_going, silo_error *err)
{
        json_t *ep = json_object_get(net_endpoints(n), id);
        if (!ep)
                return silo_error_msg(err, ENOENT, "container %s is not connected", id);
        /* The kernel deletes the veths with the namespace, unless another
         * container joined it (container:<id>) and keeps it alive. */
        bool joined = false;
        const char *other;
        json_t *oep;
        json_object_foreach(net_endpoints(n), other, oep)
                if (net_jstr(oep, "container") && !strcmp(net_jstr(oep, "container"), id))
                        joined = true;
        int r = net_teardown_endpoint(n, id, ep, netns_going && !joined, err);
        if (r < 0)
                return r;
        /* Keep the record alive until its networks' hosts files are redone. */
        _cleanup_json_ json_t *gone = json_incref(ep);
        json_object_del(net_endpoints(n), id);
        r = net_save_state(n, err);
        if (r < 0)
                return r;
        json_t *extra = json_object_get(gone, "extra");
        for (size_t k = 0; k <= json_array_size(extra); k++)
                net_refresh_network_hosts(n, net_jstr(k == 0 ? gone : json_array_get(extra, k - 1), "network"), NULL);
        return 0;
}

int silo_net_detach(silo_net *n, const char *container_id, silo_error *err)
{
        int r = net_lock_state(n, err);
        if (r < 0)
                return r;
        r = net_detach_locked(n, container_id ? container_id : "", false, err);
        net_unlock_state(n);
        return r;
}

int silo_net_release(silo_net *n, const char *container_id, silo_error *err)
{
        int r = net_lock_state(n, err);
        if (r < 0)
                return r;
        r = net_detach_locked(n, container_id ? container_id : "", true, err);
        net_unlock_state(n);
        return r;
}

int silo_net_endpoint(silo_net *n, const char *container_id, json_t **ret, silo_error *err)
{
        int r = net_lock_state(n, err);
        if (r < 0)
                return r;
        json_t *ep = json_object_get(net_endpoints(n), container_id ? container_id : "");
        if (ep)
                *ret = json_deep_copy(ep);
        else
                r = silo_error_msg(err, ENOENT, "container %s is not connected", container_id ? container_id : "");
        net_unlock_state(n);
        return r;
}

int silo_net_endpoint_list(silo_net *n, json_t **ret, silo_error *err)
{
        int r = net_lock_state(n, err);
        if (r < 0)
                return r;
        *ret = json_deep_copy(net_endpoints(n));
        net_unlock_state(n);
        return *ret ? 0 : silo_error_set(err, ENOMEM, "network endpoints");
}

/* ---- further networks of a connected container ---- */

#define MAX_EXTRA_NETWORKS 15

static int extra_attach(silo_net *n, const char *id, json_t *ep, const char *network, const char *const *aliases,
                        json_t **ret_info, silo_error *err)
{
        if (strcmp(net_jstr(ep, "mode"), "bridge") != 0 || !net_jstr(ep, "netns"))
                return silo_error_msg(err, EINVAL, "container %s is not in bridge mode", id);
        if (net_endpoint_link_on(ep, network))
                return silo_error_msg(err, EEXIST, "container %s is already connected to network %s", id, network);
        /* Checked before anything is allocated. */
        _cleanup_json_ json_t *names = json_object();
        if (!names)
                return silo_error_set(err, ENOMEM, "network");
        int r = net_link_aliases(names, aliases, err);
        if (r < 0)
                return r;
        json_t *net = json_object_get(net_networks(n), network);
        if (!net)
                return silo_error_msg(err, ENOENT, "network %s not found", network);
        json_t *extra = json_object_get(ep, "extra");
        if (!extra) {
                extra = json_array();
                json_object_set_new(ep, "extra", extra);
        }
        if (!json_is_array(extra) || json_array_size(extra) >= MAX_EXTRA_NETWORKS)
                return silo_error_msg(err, ENOSPC, "container %s: at most %d further networks", id,
                                      MAX_EXTRA_NETWORKS);
        silo_nl_link bridge;
        r = net_ensure_bridge(n, net, &bridge, err);
        if (r < 0)
                return r;
        r = net_save_state(n, err);
        if (r < 0)
                return r;
        /* The lowest ethN (N >= 1) nobody in the namespace uses yet. */
        char ifname[IFNAMSIZ];
        for (unsigned k = 1;; k++) {
                snprintf(ifname, sizeof(ifname), "eth%u", k);
                bool used = net_jstr(ep, "ifname") && !strcmp(net_jstr(ep, "ifname"), ifname);
                size_t i;
                json_t *x;
                json_array_foreach(extra, i, x)
                        if (net_jstr(x, "ifname") && !strcmp(net_jstr(x, "ifname"), ifname))
                                used = true;
                if (!used)
                        break;
        }
        uint32_t base = 0, ip = 0;
        unsigned prefix = 0;
        r = net_network_subnet(net, &base, &prefix, err);
        if (r >= 0)
                r = allocate_ip(n, net, &ip, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *key = NULL;
        if (asprintf(&key, "%s/%s", id, network) < 0)
                return silo_error_set(err, ENOMEM, "network");
        char veth[IFNAMSIZ], ip_s[INET_ADDRSTRLEN], mac_s[18];
        net_veth_name(key, veth);
        const char *other_id;
        json_t *other;
        json_object_foreach(net_endpoints(n), other_id, other)
                if (net_endpoint_owns_veth(other, veth))
                        return silo_error_msg(err, EEXIST, "veth name %s collides with container %s", veth, other_id);
        uint8_t mac[6] = { 0x02, 0x42, (uint8_t) (ip >> 24), (uint8_t) (ip >> 16), (uint8_t) (ip >> 8), (uint8_t) ip };
        snprintf(mac_s, sizeof(mac_s), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
        json_t *link = json_pack("{s:s, s:s, s:i, s:s?, s:s, s:s, s:s, s:i}", "network", network,
                                 "ip", net_ip_text(ip, ip_s), "prefix", (int) prefix, "gateway",
                                 net_jstr(net, "gateway"), "mac", mac_s, "veth", veth, "ifname", ifname, "mtu",
                                 (int) bridge.mtu);
        if (!link || (json_object_get(names, "aliases") &&
                      json_object_set(link, "aliases", json_object_get(names, "aliases")) < 0) ||
            json_array_append_new(extra, link) < 0)
                return silo_error_set(err, ENOMEM, "network");
        size_t slot = json_array_size(extra) - 1;
        r = net_save_state(n, err);

        _cleanup_free_ char *netns = NULL;
        _cleanup_close_ int nsfd = -1;
        silo_nl *nl = NULL;
        if (r >= 0)
                r = open_netns(net_jstr(ep, "netns"), 0, &netns, &nsfd, err);
        if (r >= 0)
                r = net_host_nl(n, &nl, err);
        if (r >= 0)
                r = veth_create(nl, veth, bridge.index, bridge.mtu, ifname, nsfd, mac, err);
        if (r >= 0)
                /* No default route: the first network keeps it, as with Docker. */
                r = configure_inside(nsfd, ifname, ip, prefix, false, 0, err);
        if (r < 0) {
                if (nl)
                        (void) silo_nl_link_delete(nl, veth, NULL);
                json_array_remove(extra, slot);
                (void) net_save_state(n, NULL);
                return r;
        }
        net_refresh_network_hosts(n, network, NULL);
        if (ret_info)
                *ret_info = json_deep_copy(link);
        return 0;
}

int silo_net_connect(silo_net *n, const char *container_id, const char *network, json_t **ret_info,
                     silo_error *err)
{
        return silo_net_connect_aliases(n, container_id, network, NULL, ret_info, err);
}

int silo_net_connect_aliases(silo_net *n, const char *container_id, const char *network,
                             const char *const *aliases, json_t **ret_info, silo_error *err)
{
        int r = net_lock_state(n, err);
        if (r < 0)
                return r;
        json_t *ep = json_object_get(net_endpoints(n), container_id ? container_id : "");
        if (!ep)
                r = silo_error_msg(err, ENOENT, "container %s is not connected", container_id ? container_id : "");
        else
                r = extra_attach(n, container_id, ep, network ? network : "", aliases, ret_info, err);
        net_unlock_state(n);
        return r;
}

int silo_net_disconnect(silo_net *n, const char *container_id, const char *network, silo_error *err)
{
        int r = net_lock_state(n, err);
        if (r < 0)
                return r;
        const char *id = container_id ? container_id : "";
        json_t *ep = json_object_get(net_endpoints(n), id);
        json_t *link = ep ? net_endpoint_link_on(ep, network) : NULL;
        if (!link)
                r = silo_error_msg(err, ENOENT, "container %s is not connected to network %s", id,
                                   network ? network : "");
        else if (link == ep)
                r = silo_error_msg(err, EINVAL, "network %s is container %s's first network: detach the container",
                                   network, id);
        else {
                silo_nl *nl;
                r = net_host_nl(n, &nl, err);
                if (r >= 0 && net_jstr(link, "veth")) {
                        r = silo_nl_link_delete(nl, net_jstr(link, "veth"), err);
                        if (r == -ENODEV)
                                r = 0;
                }
                if (r >= 0) {
                        json_t *extra = json_object_get(ep, "extra");
                        size_t i;
                        json_t *x;
                        json_array_foreach(extra, i, x)
                                if (x == link) {
                                        json_array_remove(extra, i);
                                        break;
                                }
                        r = net_save_state(n, err);
                }
                if (r >= 0) {
                        net_refresh_network_hosts(n, network, NULL);
                        /* The container itself no longer sees that network's peers. */
                        _cleanup_free_ char *hosts = net_jstr(ep, "files") ? net_hosts_content(n, ep) : NULL;
                        if (hosts)
                                (void) silo_net_write_file(net_jstr(ep, "files"), "hosts", hosts, NULL);
                }
        }
        net_unlock_state(n);
        return r;
}
