/* Networks, endpoints and their persisted state.
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
#include "net/net.h"
#include "net/netlink.h"
#include "net/nft.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define STATE_FILE "state.json"
#define STATE_MAX_BYTES (16u * 1024 * 1024)
#define MAX_ENDPOINTS 65536
#define MAX_NETWORKS 1024
#define AUTO_SUBNET_BASE 0x0ad30000u    /* 10.211.0.0: 10.211.N.0/24 */

struct silo_net {
        int dirfd;
        char *resolv_path;
        char **fallback_dns;
        uint32_t default_subnet;
        unsigned default_prefix;
        silo_nl *nl;                    /* host namespace, opened on first use */
        silo_nft *nft;
        /* Valid while locked: */
        int lock_fd;
        json_t *state;
};

static void unlock_state(silo_net *n)
{
        if (n->state) {
                json_decref(n->state);
                n->state = NULL;
        }
        if (n->lock_fd >= 0) {
                close(n->lock_fd);      /* drops the flock */
                n->lock_fd = -1;
        }
}

static int lock_state(silo_net *n, silo_error *err)
{
        n->lock_fd = openat(n->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (n->lock_fd < 0)
                return silo_error_set(err, errno, "open network state lock");
        while (flock(n->lock_fd, LOCK_EX) < 0)
                if (errno != EINTR) {
                        int e = errno;
                        unlock_state(n);
                        return silo_error_set(err, e, "lock network state");
                }
        json_t *doc = NULL;
        int r = silo_json_load_file_at(n->dirfd, STATE_FILE, STATE_MAX_BYTES, &doc, err);
        if (r == -ENOENT) {
                silo_error_clear(err);
                doc = json_object();
        } else if (r < 0) {
                unlock_state(n);
                return silo_error_prefix(err, "network state");
        }
        if (!json_is_object(doc)) {
                json_decref(doc);
                unlock_state(n);
                return silo_error_msg(err, EINVAL, "network state: not a JSON object");
        }
        static const char *const sections[] = { "networks", "endpoints" };
        for (size_t i = 0; i < ARRAY_SIZE(sections); i++) {
                json_t *s = json_object_get(doc, sections[i]);
                if (!s)
                        json_object_set_new(doc, sections[i], json_object());
                else if (!json_is_object(s)) {
                        json_decref(doc);
                        unlock_state(n);
                        return silo_error_msg(err, EINVAL, "network state: %s: expected an object", sections[i]);
                }
        }
        /* The file may have been edited: check what the code relies on once. */
        static const char *const net_keys[] = { "name", "bridge", "subnet", "gateway" };
        static const char *const ep_keys[] = { "id", "name", "mode" };
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(doc, "networks"), key, v)
                for (size_t i = 0; i < ARRAY_SIZE(net_keys); i++)
                        if (!json_is_object(v) || !json_is_string(json_object_get(v, net_keys[i]))) {
                                /* key belongs to doc: the message first. */
                                silo_error_msg(err, EINVAL, "network state: networks.%s.%s: expected a string",
                                               key, net_keys[i]);
                                json_decref(doc);
                                unlock_state(n);
                                return -EINVAL;
                        }
        json_object_foreach(json_object_get(doc, "endpoints"), key, v)
                for (size_t i = 0; i < ARRAY_SIZE(ep_keys); i++)
                        if (!json_is_object(v) || !json_is_string(json_object_get(v, ep_keys[i]))) {
                                /* key belongs to doc: the message first. */
                                silo_error_msg(err, EINVAL, "network state: endpoints.%s.%s: expected a string",
                                               key, ep_keys[i]);
                                json_decref(doc);
                                unlock_state(n);
                                return -EINVAL;
                        }
        n->state = doc;
        return 0;
}

static int save_state(silo_net *n, silo_error *err)
{
        _cleanup_free_ char *text = json_dumps(n->state, JSON_INDENT(1) | JSON_SORT_KEYS);
        if (!text)
                return silo_error_set(err, ENOMEM, "network state");
        return silo_write_file_replace_at(n->dirfd, STATE_FILE, text, strlen(text), 0600, err);
}

static json_t *networks(silo_net *n)
{
        return json_object_get(n->state, "networks");
}

static json_t *endpoints(silo_net *n)
{
        return json_object_get(n->state, "endpoints");
}

static const char *jstr(json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

/* The endpoint's link on a network: the endpoint itself for its primary
 * network, an element of "extra" for networks connected later, else NULL. */
static json_t *endpoint_link_on(json_t *ep, const char *network)
{
        if (!network)
                return NULL;
        if (jstr(ep, "network") && !strcmp(jstr(ep, "network"), network))
                return ep;
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(ep, "extra"), i, x)
                if (jstr(x, "network") && !strcmp(jstr(x, "network"), network))
                        return x;
        return NULL;
}

static bool endpoint_owns_veth(json_t *ep, const char *veth)
{
        if (jstr(ep, "veth") && !strcmp(jstr(ep, "veth"), veth))
                return true;
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(ep, "extra"), i, x)
                if (jstr(x, "veth") && !strcmp(jstr(x, "veth"), veth))
                        return true;
        return false;
}

static int host_nl(silo_net *n, silo_nl **ret, silo_error *err)
{
        if (!n->nl) {
                int r = silo_nl_open(-1, &n->nl, err);
                if (r < 0)
                        return r;
        }
        *ret = n->nl;
        return 0;
}

static int host_nft(silo_net *n, silo_nft **ret, silo_error *err)
{
        if (!n->nft) {
                int r = silo_nft_open(&n->nft, err);
                if (r < 0)
                        return r;
        }
        *ret = n->nft;
        return 0;
}

int silo_net_open(const silo_net_options *o, silo_net **ret, silo_error *err)
{
        if (!o || !o->state_dir || !*o->state_dir)
                return silo_error_msg(err, EINVAL, "network: no state directory");
        _cleanup_(silo_freep) silo_net *n = calloc(1, sizeof(*n));
        if (!n)
                return silo_error_set(err, ENOMEM, "network");
        n->dirfd = -1;
        n->lock_fd = -1;
        if (o->default_subnet) {
                int r = silo_net_parse_subnet(o->default_subnet, &n->default_subnet, &n->default_prefix, err);
                if (r < 0)
                        return r;
        }
        int r = silo_mkdir_p_at(AT_FDCWD, o->state_dir, 0700, err);
        if (r < 0)
                return r;
        n->dirfd = open(o->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (n->dirfd < 0)
                return silo_error_set(err, errno, "open %s", o->state_dir);
        n->resolv_path = strdup(o->host_resolv_conf ? o->host_resolv_conf : "/etc/resolv.conf");
        if (!n->resolv_path) {
                silo_net_free(TAKE_PTR(n));
                return silo_error_set(err, ENOMEM, "network");
        }
        if (o->fallback_dns) {
                size_t count = 0;
                while (o->fallback_dns[count] && count < 16)
                        count++;
                n->fallback_dns = calloc(count + 1, sizeof(char *));
                for (size_t i = 0; n->fallback_dns && i < count; i++)
                        if (!(n->fallback_dns[i] = strdup(o->fallback_dns[i]))) {
                                silo_net_free(TAKE_PTR(n));
                                return silo_error_set(err, ENOMEM, "network");
                        }
                if (!n->fallback_dns) {
                        silo_net_free(TAKE_PTR(n));
                        return silo_error_set(err, ENOMEM, "network");
                }
        }
        *ret = TAKE_PTR(n);
        return 0;
}

silo_net *silo_net_free(silo_net *n)
{
        if (!n)
                return NULL;
        unlock_state(n);
        if (n->dirfd >= 0)
                close(n->dirfd);
        free(n->resolv_path);
        silo_strv_free(n->fallback_dns);
        silo_nl_free(n->nl);
        silo_nft_free(n->nft);
        free(n);
        return NULL;
}

/* ---- names and addresses ---- */

static bool valid_name(const char *s, size_t max)
{
        size_t len = s ? strlen(s) : 0;
        if (len == 0 || len > max)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                          (i > 0 && (c == '_' || c == '.' || c == '-'));
                if (!ok)
                        return false;
        }
        return true;
}

static uint64_t fnv1a(const char *s)
{
        uint64_t h = 0xcbf29ce484222325ull;
        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= 0x100000001b3ull;
        }
        return h;
}

/* "sv" + 10 hex digits: recognisable, and within IFNAMSIZ. */
static void veth_name(const char *container_id, char buf[IFNAMSIZ])
{
        snprintf(buf, IFNAMSIZ, "sv%010llx", (unsigned long long) (fnv1a(container_id) & 0xffffffffffull));
}

static bool is_silo_veth(const char *name)
{
        if (strlen(name) != 12 || strncmp(name, "sv", 2) != 0)
                return false;
        return strspn(name + 2, "0123456789abcdef") == 10;
}

static const char *ip_text(uint32_t host_order, char buf[INET_ADDRSTRLEN])
{
        uint32_t a = htonl(host_order);
        return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

static int parse_ip(const char *text, uint32_t *ret)
{
        struct in_addr a;
        if (!text || inet_pton(AF_INET, text, &a) != 1)
                return -EINVAL;
        *ret = ntohl(a.s_addr);
        return 0;
}

/* A network's subnet from the state (validated: the file may be edited). */
static int network_subnet(json_t *net, uint32_t *ret_addr, unsigned *ret_prefix, silo_error *err)
{
        int r = silo_net_parse_subnet(jstr(net, "subnet"), ret_addr, ret_prefix, err);
        if (r < 0)
                return silo_error_prefix(err, "network state: network %s", jstr(net, "name"));
        return 0;
}

static bool subnets_overlap(uint32_t a, unsigned ap, uint32_t b, unsigned bp)
{
        unsigned p = ap < bp ? ap : bp;
        uint32_t mask = p == 0 ? 0 : 0xffffffffu << (32 - p);
        return (a & mask) == (b & mask);
}

static int subnet_free(silo_net *n, uint32_t addr, unsigned prefix, const char **ret_user, bool *ret, silo_error *err)
{
        const char *name;
        json_t *net;
        json_object_foreach(networks(n), name, net) {
                uint32_t a;
                unsigned p;
                if (network_subnet(net, &a, &p, err) < 0)
                        return -err->code;
                if (subnets_overlap(a, p, addr, prefix)) {
                        *ret_user = name;
                        *ret = false;
                        return 0;
                }
        }
        silo_nl *nl;
        int r = host_nl(n, &nl, err);
        if (r < 0)
                return r;
        bool overlaps;
        r = silo_nl_route_overlaps(nl, addr, prefix, &overlaps, err);
        if (r < 0)
                return r;
        *ret_user = overlaps ? "a host route" : NULL;
        *ret = !overlaps;
        return 0;
}

static int pick_subnet(silo_net *n, uint32_t *ret_addr, unsigned *ret_prefix, silo_error *err)
{
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t addr = AUTO_SUBNET_BASE | (i << 8);
                const char *user;
                bool ok;
                int r = subnet_free(n, addr, 24, &user, &ok, err);
                if (r < 0)
                        return r;
                if (ok) {
                        *ret_addr = addr;
                        *ret_prefix = 24;
                        return 0;
                }
        }
        return silo_error_msg(err, ENOSPC, "network: no free subnet in 10.211.0.0/16; give one with --subnet");
}

static int add_network(silo_net *n, const char *name, const silo_net_network_options *o, json_t **ret_net,
                       silo_error *err)
{
        const char *subnet = o ? o->subnet : NULL, *bridge = o ? o->bridge : NULL;
        unsigned mtu = o ? o->mtu : 0;
        if (mtu && (mtu < 68 || mtu > 65535))
                return silo_error_msg(err, EINVAL, "network MTU %u: must be 68-65535", mtu);
        if (!valid_name(name, 64))
                return silo_error_msg(err, EINVAL, "network name '%s': use letters, digits, '_', '.', '-' (at most 64)",
                                      name ? name : "");
        if (json_object_get(networks(n), name))
                return silo_error_msg(err, EEXIST, "network %s already exists", name);
        if (json_object_size(networks(n)) >= MAX_NETWORKS)
                return silo_error_msg(err, ENOSPC, "network: at most %d networks", MAX_NETWORKS);

        char br[IFNAMSIZ];
        if (bridge) {
                /* A recognisable prefix: reconcile and people can tell silo's bridges. */
                if (strlen(bridge) >= IFNAMSIZ || strncmp(bridge, "silo", 4) != 0 || !valid_name(bridge, 15))
                        return silo_error_msg(err, EINVAL, "bridge name '%s': must start with 'silo', at most 15 characters",
                                              bridge);
                snprintf(br, sizeof(br), "%s", bridge);
        } else if (!strcmp(name, SILO_NET_DEFAULT_NETWORK))
                snprintf(br, sizeof(br), "%s", SILO_NET_DEFAULT_NETWORK);
        else if (strlen(name) <= 10)
                snprintf(br, sizeof(br), "silo-%s", name);
        else
                snprintf(br, sizeof(br), "silo-%010llx", (unsigned long long) (fnv1a(name) & 0xffffffffffull));
        const char *other;
        json_t *net;
        json_object_foreach(networks(n), other, net)
                if (!strcmp(jstr(net, "bridge") ? jstr(net, "bridge") : "", br))
                        return silo_error_msg(err, EEXIST, "bridge %s is already used by network %s", br, other);
        silo_nl *nl;
        int r = host_nl(n, &nl, err);
        if (r < 0)
                return r;
        silo_nl_link link;
        r = silo_nl_link_get(nl, br, &link, err);
        if (r == 0)
                return silo_error_msg(err, EEXIST, "interface %s already exists and is not a silo network", br);
        if (r != -ENODEV)
                return r;

        uint32_t addr;
        unsigned prefix;
        if (subnet) {
                r = silo_net_parse_subnet(subnet, &addr, &prefix, err);
                if (r < 0)
                        return r;
                const char *user;
                bool ok;
                r = subnet_free(n, addr, prefix, &user, &ok, err);
                if (r < 0)
                        return r;
                if (!ok)
                        return silo_error_msg(err, EADDRINUSE, "subnet %s overlaps %s%s", subnet,
                                              strcmp(user, "a host route") ? "network " : "", user);
        } else if (!strcmp(name, SILO_NET_DEFAULT_NETWORK) && n->default_prefix) {
                addr = n->default_subnet;
                prefix = n->default_prefix;
        } else {
                r = pick_subnet(n, &addr, &prefix, err);
                if (r < 0)
                        return r;
        }
        char net_text[INET_ADDRSTRLEN], gw_text[INET_ADDRSTRLEN], cidr[32];
        snprintf(cidr, sizeof(cidr), "%s/%u", ip_text(addr, net_text), prefix);
        ip_text(addr + 1, gw_text);
        json_t *net_o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", name, "bridge", br, "subnet", cidr,
                              "gateway", gw_text, "last", gw_text);
        if (!net_o || (mtu && json_object_set_new(net_o, "mtu", json_integer(mtu)) < 0) ||
            json_object_set_new(networks(n), name, net_o) < 0)
                return silo_error_set(err, ENOMEM, "network %s", name);
        *ret_net = net_o;
        return 0;
}

static int write_proc(const char *path, const char *value, silo_error *err)
{
        return silo_write_string_at(AT_FDCWD, path, value, err);
}

/* The bridge exists, has the gateway address, is up, and its rules are in
 * place.  After a reboot (or a manual delete) it is recreated here. */
static int ensure_bridge(silo_net *n, json_t *net, silo_nl_link *ret_link, silo_error *err)
{
        const char *name = jstr(net, "name"), *br = jstr(net, "bridge");
        if (!name || !br || strlen(br) >= IFNAMSIZ)
                return silo_error_msg(err, EINVAL, "network state: network %s has no valid bridge", name ? name : "?");
        silo_nl *nl;
        int r = host_nl(n, &nl, err);
        if (r < 0)
                return r;
        r = silo_nl_link_get(nl, br, ret_link, err);
        if (r == 0)
                return 0;
        if (r != -ENODEV)
                return r;

        uint32_t addr, gw;
        unsigned prefix;
        r = network_subnet(net, &addr, &prefix, err);
        if (r < 0)
                return r;
        if (parse_ip(jstr(net, "gateway"), &gw) < 0)
                return silo_error_msg(err, EINVAL, "network state: network %s: bad gateway", name);
        json_int_t mtu = json_integer_value(json_object_get(net, "mtu"));
        r = silo_nl_bridge_create(nl, br, mtu > 0 && mtu <= 65535 ? (unsigned) mtu : 0, err);
        if (r < 0)
                return r;
        r = silo_nl_link_get(nl, br, ret_link, err);
        if (r == -ENODEV)
                r = silo_error_msg(err, ENODEV, "bridge %s vanished after creation", br);
        if (r >= 0)
                r = silo_nl_addr_add(nl, ret_link->index, gw, prefix, err);
        char path[128];
        snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/route_localnet", br);
        /* Hairpin from 127.0.0.1: DNAT'ed loopback traffic may leave through the bridge. */
        if (r >= 0)
                r = write_proc(path, "1", err);
        /* Published ports reached from outside are forwarded (per namespace). */
        if (r >= 0)
                r = write_proc("/proc/sys/net/ipv4/ip_forward", "1", err);
        silo_nft *nft = NULL;
        if (r >= 0)
                r = host_nft(n, &nft, err);
        if (r >= 0)
                r = silo_nft_delete_tagged(nft, SILO_NFT_NETWORK_TAG, NULL, NULL, NULL, err);
        if (r >= 0) {
                silo_nft_buf b = {};
                silo_nft_skeleton(&b);
                silo_nft_network_rules(&b, name, br, addr, prefix);
                /* Other networks' rules were deleted with the tag above. */
                const char *other;
                json_t *o;
                json_object_foreach(networks(n), other, o) {
                        uint32_t oa;
                        unsigned op;
                        silo_nl_link ol;
                        if (o == net || !jstr(o, "bridge") || network_subnet(o, &oa, &op, NULL) < 0 ||
                            silo_nl_link_get(nl, jstr(o, "bridge"), &ol, NULL) < 0)
                                continue;
                        silo_nft_network_rules(&b, other, jstr(o, "bridge"), oa, op);
                }
                r = b.oom ? silo_error_set(err, ENOMEM, "nftables rules") : silo_nft_run(nft, b.data, err);
                free(b.data);
        }
        if (r < 0) {
                silo_nl_link_delete(nl, br, NULL);
                return silo_error_prefix(err, "network %s", name);
        }
        return 0;
}

/* ---- networks ---- */

/* With a full tag as the prefix: "silo:ab" must not take "silo:abc". */
static bool exact_tag(const char *rest, void *userdata)
{
        (void) userdata;
        return rest[0] != 0;
}

static json_t *network_info(silo_net *n, json_t *net, bool with_endpoints)
{
        json_t *info = json_deep_copy(net);
        if (!info)
                return NULL;
        json_object_del(info, "last");
        if (with_endpoints) {
                json_t *list = json_array();
                const char *id;
                json_t *ep;
                json_object_foreach(endpoints(n), id, ep) {
                        json_t *l = endpoint_link_on(ep, jstr(net, "name"));
                        if (!l)
                                continue;
                        json_array_append_new(list, json_pack("{s:s, s:s?, s:s?, s:s?, s:O?}", "id", id,
                                                              "name", jstr(ep, "name"), "ip", jstr(l, "ip"),
                                                              "mac", jstr(l, "mac"),
                                                              "ports", l == ep ? json_object_get(ep, "ports") : NULL));
                }
                json_object_set_new(info, "endpoints", list);
        }
        return info;
}

int silo_net_network_create(silo_net *n, const char *name, const silo_net_network_options *o,
                            json_t **ret_info, silo_error *err)
{
        int r = lock_state(n, err);
        if (r < 0)
                return r;
        json_t *net;
        silo_nl_link link;
        r = add_network(n, name, o, &net, err);
        if (r >= 0)
                r = ensure_bridge(n, net, &link, err);
        if (r >= 0)
                r = save_state(n, err);
        if (r >= 0 && ret_info)
                *ret_info = network_info(n, net, false);
        unlock_state(n);
        return r < 0 ? r : 0;
}

static int count_on_network(silo_net *n, const char *name)
{
        int count = 0;
        const char *id;
        json_t *ep;
        json_object_foreach(endpoints(n), id, ep)
                if (endpoint_link_on(ep, name))
                        count++;
        return count;
}

int silo_net_network_remove(silo_net *n, const char *name, silo_error *err)
{
        int r = lock_state(n, err);
        if (r < 0)
                return r;
        json_t *net = json_object_get(networks(n), name ? name : "");
        if (!net) {
                unlock_state(n);
                return silo_error_msg(err, ENOENT, "network %s not found", name ? name : "");
        }
        int users = count_on_network(n, name);
        if (users > 0) {
                unlock_state(n);
                return silo_error_msg(err, EBUSY, "network %s has %d connected container%s", name, users,
                                      users == 1 ? "" : "s");
        }
        silo_nl *nl;
        silo_nft *nft;
        r = host_nl(n, &nl, err);
        if (r >= 0 && jstr(net, "bridge")) {
                r = silo_nl_link_delete(nl, jstr(net, "bridge"), err);
                if (r == -ENODEV)
                        r = 0;
        }
        if (r >= 0)
                r = host_nft(n, &nft, err);
        if (r >= 0) {
                char tag[128];
                snprintf(tag, sizeof(tag), SILO_NFT_NETWORK_TAG "%s", name);
                /* The exact tag: the prefix match would also take "name2". */
                r = silo_nft_delete_tagged(nft, tag, exact_tag, NULL, NULL, err);
        }
        if (r >= 0 && jstr(net, "bridge"))
                r = silo_nft_forget_bridge(nft, jstr(net, "bridge"), err);
        if (r >= 0) {
                json_object_del(networks(n), name);
                if (json_object_size(networks(n)) == 0)
                        r = silo_nft_delete_table(nft, err);
        }
        if (r >= 0)
                r = save_state(n, err);
        unlock_state(n);
        return r < 0 ? r : 0;
}

int silo_net_network_list(silo_net *n, json_t **ret, silo_error *err)
{
        int r = lock_state(n, err);
        if (r < 0)
                return r;
        json_t *list = json_array();
        const char *name;
        json_t *net;
        json_object_foreach(networks(n), name, net) {
                json_t *info = network_info(n, net, false);
                if (info) {
                        json_object_set_new(info, "containers", json_integer(count_on_network(n, name)));
                        json_array_append_new(list, info);
                }
        }
        unlock_state(n);
        *ret = list;
        return 0;
}

int silo_net_network_inspect(silo_net *n, const char *name, json_t **ret, silo_error *err)
{
        int r = lock_state(n, err);
        if (r < 0)
                return r;
        json_t *net = json_object_get(networks(n), name ? name : "");
        if (!net) {
                unlock_state(n);
                return silo_error_msg(err, ENOENT, "network %s not found", name ? name : "");
        }
        *ret = network_info(n, net, true);
        unlock_state(n);
        return *ret ? 0 : silo_error_set(err, ENOMEM, "network %s", name);
}

/* ---- endpoints ---- */

/* Continues after the last address handed out, so that a just-released
 * address is not reused at once (stale ARP caches in the peers). */
static int allocate_ip(silo_net *n, json_t *net, uint32_t *ret, silo_error *err)
{
        uint32_t base, gw, last;
        unsigned prefix;
        int r = network_subnet(net, &base, &prefix, err);
        if (r < 0)
                return r;
        if (parse_ip(jstr(net, "gateway"), &gw) < 0)
                gw = base + 1;
        if (parse_ip(jstr(net, "last"), &last) < 0)
                last = gw;
        uint32_t size = 1u << (32 - prefix);
        const char *name = jstr(net, "name");
        for (uint32_t i = 1; i <= size; i++) {
                uint32_t off = ((last - base) + i) % size;
                uint32_t cand = base + off;
                if (off == 0 || off == size - 1 || cand == gw)
                        continue;
                char text[INET_ADDRSTRLEN];
                ip_text(cand, text);
                bool used = false;
                const char *id;
                json_t *ep;
                json_object_foreach(endpoints(n), id, ep) {
                        json_t *l = endpoint_link_on(ep, name);
                        if (l && jstr(l, "ip") && !strcmp(jstr(l, "ip"), text)) {
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
        return silo_error_msg(err, ENOSPC, "network %s: no free address in %s", name, jstr(net, "subnet"));
}

static int endpoint_ports(json_t *ep, silo_net_port **ret, size_t *ret_n, silo_error *err)
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
                        return silo_error_prefix(err, "network state: endpoint %s", jstr(ep, "id"));
        }
        *ret = TAKE_PTR(v);
        *ret_n = count;
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
        json_object_foreach(endpoints(n), id, ep) {
                _cleanup_free_ silo_net_port *held = NULL;
                size_t n_held;
                int r = endpoint_ports(ep, &held, &n_held, err);
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

/* The /etc/hosts of an endpoint: itself first, then its network's others. */
static char *hosts_content(silo_net *n, json_t *self)
{
        silo_nft_buf b = {};
        silo_nft_buf_printf(&b, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        const char *self_name = jstr(self, "name"), *self_ip = jstr(self, "ip");
        if (self_ip)
                silo_nft_buf_printf(&b, "%s\t%s\n", self_ip, self_name);
        else
                silo_nft_buf_printf(&b, "127.0.1.1\t%s\n", self_name);
        /* Everyone sharing a network with it, under the address on that network. */
        json_t *extra = json_object_get(self, "extra");
        for (size_t k = 0; k <= json_array_size(extra); k++) {
                const char *net = jstr(k == 0 ? self : json_array_get(extra, k - 1), "network");
                const char *id;
                json_t *ep;
                json_object_foreach(endpoints(n), id, ep) {
                        json_t *l = ep == self ? NULL : endpoint_link_on(ep, net);
                        if (l && jstr(l, "ip"))
                                silo_nft_buf_printf(&b, "%s\t%s\n", jstr(l, "ip"), jstr(ep, "name"));
                }
        }
        if (b.oom) {
                free(b.data);
                return NULL;
        }
        return b.data;
}

static int write_endpoint_files(silo_net *n, json_t *ep, json_t *owner, silo_error *err)
{
        const char *dir = jstr(ep, "files");
        if (!dir)
                return 0;
        const char *mode = jstr(ep, "mode");
        _cleanup_free_ char *hosts = NULL, *resolv = NULL, *hostname = NULL;
        if (!strcmp(mode, "host")) {
                size_t len;
                int r = silo_read_file_at(AT_FDCWD, "/etc/hosts", 1 << 20, &hosts, &len, err);
                if (r < 0)
                        return r;
                r = silo_read_file_at(AT_FDCWD, n->resolv_path, 1 << 20, &resolv, &len, err);
                if (r < 0)
                        return r;
                char h[HOST_NAME_MAX + 2] = "";
                gethostname(h, sizeof(h) - 1);
                if (asprintf(&hostname, "%s\n", h) < 0)
                        hostname = NULL;
        } else {
                /* container: mode shows the owner's identity, like its namespace. */
                json_t *who = owner ? owner : ep;
                hosts = hosts_content(n, who);
                int r = silo_net_resolv_conf(n->resolv_path, (const char *const *) n->fallback_dns, &resolv, err);
                if (r < 0)
                        return r;
                if (asprintf(&hostname, "%s\n", jstr(who, "name")) < 0)
                        hostname = NULL;
        }
        if (!hosts || !hostname || !resolv)
                return silo_error_set(err, ENOMEM, "network files");
        int r = silo_net_write_file(dir, "hosts", hosts, err);
        if (r >= 0)
                r = silo_net_write_file(dir, "hostname", hostname, err);
        if (r >= 0)
                r = silo_net_write_file(dir, "resolv.conf", resolv, err);
        return r;
}

/* Keeps everyone's /etc/hosts current as containers come and go; a missing
 * directory (container gone without detach) is not an error here. */
static void refresh_network_hosts(silo_net *n, const char *network, const char *skip_id)
{
        if (!network)
                return;
        const char *id;
        json_t *ep;
        json_object_foreach(endpoints(n), id, ep) {
                if (!jstr(ep, "files") || !endpoint_link_on(ep, network) || (skip_id && !strcmp(id, skip_id)))
                        continue;
                _cleanup_free_ char *hosts = hosts_content(n, ep);
                if (hosts)
                        (void) silo_net_write_file(jstr(ep, "files"), "hosts", hosts, NULL);
        }
}

/* Undoes a bridge endpoint's kernel objects (not its record). */
static int teardown_endpoint(silo_net *n, const char *id, json_t *ep, silo_error *err)
{
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(ep, "extra"), i, x) {
                silo_nl *nl;
                int r = host_nl(n, &nl, err);
                if (r < 0)
                        return r;
                r = jstr(x, "veth") ? silo_nl_link_delete(nl, jstr(x, "veth"), err) : 0;
                if (r < 0 && r != -ENODEV)
                        return r;
        }
        const char *veth = jstr(ep, "veth");
        if (veth) {
                silo_nl *nl;
                int r = host_nl(n, &nl, err);
                if (r < 0)
                        return r;
                r = silo_nl_link_delete(nl, veth, err);
                if (r < 0 && r != -ENODEV)
                        return r;
        }
        if (json_array_size(json_object_get(ep, "ports")) > 0) {
                silo_nft *nft;
                int r = host_nft(n, &nft, err);
                if (r < 0)
                        return r;
                char tag[128];
                snprintf(tag, sizeof(tag), SILO_NFT_CONTAINER_TAG "%s", id);
                r = silo_nft_delete_tagged(nft, tag, exact_tag, NULL, NULL, err);
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
        json_t *net = json_object_get(networks(n), network);
        int r;
        if (!net) {
                if (strcmp(network, SILO_NET_DEFAULT_NETWORK) != 0)
                        return silo_error_msg(err, ENOENT, "network %s not found", network);
                r = add_network(n, network, NULL, &net, err);
                if (r < 0)
                        return r;
        }
        silo_nl_link bridge;
        r = ensure_bridge(n, net, &bridge, err);
        if (r < 0)
                return r;
        /* The bridge now exists: its network must be on record. */
        r = save_state(n, err);
        if (r < 0)
                return r;
        r = check_ports(n, o->ports, o->n_ports, err);
        if (r < 0)
                return r;
        uint32_t base = 0, gw = 0, ip = 0;
        unsigned prefix;
        r = network_subnet(net, &base, &prefix, err);
        if (r < 0)
                return r;
        if (parse_ip(jstr(net, "gateway"), &gw) < 0)
                return silo_error_msg(err, EINVAL, "network state: network %s: bad gateway", network);
        r = allocate_ip(n, net, &ip, err);
        if (r < 0)
                return r;

        char veth[IFNAMSIZ], ip_s[INET_ADDRSTRLEN], mac_s[18];
        veth_name(o->container_id, veth);
        const char *id;
        json_t *other;
        json_object_foreach(endpoints(n), id, other)
                if (endpoint_owns_veth(other, veth))
                        return silo_error_msg(err, EEXIST, "veth name %s of %s collides with container %s",
                                              veth, o->container_id, id);
        /* A MAC derived from the address, as Docker does: stable per lease. */
        uint8_t mac[6] = { 0x02, 0x42, (uint8_t) (ip >> 24), (uint8_t) (ip >> 16), (uint8_t) (ip >> 8), (uint8_t) ip };
        snprintf(mac_s, sizeof(mac_s), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
        json_t *ports = json_array();
        for (size_t i = 0; i < o->n_ports; i++) {
                char buf[64];
                json_array_append_new(ports, json_string(silo_net_port_format(&o->ports[i], buf)));
        }
        json_object_set_new(ep, "network", json_string(network));
        json_object_set_new(ep, "ip", json_string(ip_text(ip, ip_s)));
        json_object_set_new(ep, "prefix", json_integer(prefix));
        json_object_set_new(ep, "gateway", json_string(jstr(net, "gateway")));
        json_object_set_new(ep, "mac", json_string(mac_s));
        json_object_set_new(ep, "veth", json_string(veth));
        json_object_set_new(ep, "ifname", json_string(o->ifname ? o->ifname : "eth0"));
        json_object_set_new(ep, "ports", ports);
        json_object_set_new(ep, "mtu", json_integer(bridge.mtu));
        /* Recorded before the kernel objects exist: a crash in between
         * leaves a lease whose veth is missing, which reconcile removes. */
        json_object_set(endpoints(n), o->container_id, ep);
        r = save_state(n, err);
        if (r < 0)
                goto fail;

        silo_nl *nl;
        r = host_nl(n, &nl, err);
        if (r < 0)
                goto fail;
        const char *ifname = o->ifname ? o->ifname : "eth0";
        r = silo_nl_veth_create(nl, veth, bridge.index, bridge.mtu, ifname, nsfd, mac, err);
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
                r = host_nft(n, &nft, err);
                if (r < 0)
                        goto fail;
                silo_nft_buf b = {};
                silo_nft_skeleton(&b);
                silo_nft_port_rules(&b, o->container_id, ip, o->ports, o->n_ports);
                r = b.oom ? silo_error_set(err, ENOMEM, "nftables rules") : silo_nft_run(nft, b.data, err);
                free(b.data);
                if (r < 0)
                        goto fail;
        }
        return 0;
fail:
        (void) teardown_endpoint(n, o->container_id, ep, NULL);
        json_object_del(endpoints(n), o->container_id);
        (void) save_state(n, NULL);
        return r;
}

int silo_net_attach(silo_net *n, const silo_net_attach_options *o, json_t **ret_info, silo_error *err)
{
        if (!o || !valid_name(o->container_id, 64))
                return silo_error_msg(err, EINVAL, "container id '%s': use letters, digits, '_', '.', '-' (at most 64)",
                                      o && o->container_id ? o->container_id : "");
        char short_id[13];
        snprintf(short_id, sizeof(short_id), "%s", o->container_id);
        const char *name = o->name ? o->name : short_id;
        if (!valid_name(name, 63))
                return silo_error_msg(err, EINVAL, "container name '%s' is not a valid host name", name);
        const char *mode = o->mode ? o->mode : "bridge";
        bool bridge = !strcmp(mode, "bridge"), none = !strcmp(mode, "none"), host = !strcmp(mode, "host");
        const char *target = !strncmp(mode, "container:", 10) ? mode + 10 : NULL;
        if (!bridge && !none && !host && !target)
                return silo_error_msg(err, EINVAL, "network mode '%s': expected bridge, none, host or container:<id>",
                                      mode);
        if (!bridge && (o->n_ports > 0 || o->network))
                return silo_error_msg(err, EINVAL, "network mode %s: ports and networks need bridge mode", mode);
        if (o->ifname && (strlen(o->ifname) >= IFNAMSIZ || !valid_name(o->ifname, IFNAMSIZ - 1)))
                return silo_error_msg(err, EINVAL, "interface name '%s' is not valid", o->ifname);

        int r = lock_state(n, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *ep = NULL;
        _cleanup_free_ char *netns = NULL;
        _cleanup_close_ int nsfd = -1;
        json_t *owner = NULL;
        if (json_object_get(endpoints(n), o->container_id)) {
                r = silo_error_msg(err, EEXIST, "container %s is already connected", o->container_id);
                goto out;
        }
        if (json_object_size(endpoints(n)) >= MAX_ENDPOINTS) {
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
        if (target) {
                owner = json_object_get(endpoints(n), target);
                if (!owner || !jstr(owner, "netns")) {
                        r = silo_error_msg(err, ENOENT, "network mode %s: container %s has no network namespace here",
                                           mode, target);
                        goto out;
                }
                json_object_set_new(ep, "container", json_string(target));
                json_object_set_new(ep, "netns", json_string(jstr(owner, "netns")));
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
        json_object_set(endpoints(n), o->container_id, ep);
        r = write_endpoint_files(n, ep, owner, err);
        if (r >= 0)
                r = save_state(n, err);
        if (r < 0) {
                (void) teardown_endpoint(n, o->container_id, ep, NULL);
                json_object_del(endpoints(n), o->container_id);
                (void) save_state(n, NULL);
                goto out;
        }
        refresh_network_hosts(n, jstr(ep, "network"), o->container_id);
        if (ret_info)
                *ret_info = json_deep_copy(ep);
out:
        unlock_state(n);
        return r < 0 ? r : 0;
}

static int detach_locked(silo_net *n, const char *id, silo_error *err)
{
        json_t *ep = json_object_get(endpoints(n), id);
        if (!ep)
                return silo_error_msg(err, ENOENT, "container %s is not connected", id);
        int r = teardown_endpoint(n, id, ep, err);
        if (r < 0)
                return r;
        /* Keep the record alive until its networks' hosts files are redone. */
        _cleanup_json_ json_t *gone = json_incref(ep);
        json_object_del(endpoints(n), id);
        r = save_state(n, err);
        if (r < 0)
                return r;
        json_t *extra = json_object_get(gone, "extra");
        for (size_t k = 0; k <= json_array_size(extra); k++)
                refresh_network_hosts(n, jstr(k == 0 ? gone : json_array_get(extra, k - 1), "network"), NULL);
        return 0;
}

int silo_net_detach(silo_net *n, const char *container_id, silo_error *err)
{
        int r = lock_state(n, err);
        if (r < 0)
                return r;
        r = detach_locked(n, container_id ? container_id : "", err);
        unlock_state(n);
        return r;
}

int silo_net_endpoint(silo_net *n, const char *container_id, json_t **ret, silo_error *err)
{
        int r = lock_state(n, err);
        if (r < 0)
                return r;
        json_t *ep = json_object_get(endpoints(n), container_id ? container_id : "");
        if (ep)
                *ret = json_deep_copy(ep);
        else
                r = silo_error_msg(err, ENOENT, "container %s is not connected", container_id ? container_id : "");
        unlock_state(n);
        return r;
}

/* ---- further networks of a connected container ---- */

#define MAX_EXTRA_NETWORKS 15

static int extra_attach(silo_net *n, const char *id, json_t *ep, const char *network, json_t **ret_info,
                        silo_error *err)
{
        if (strcmp(jstr(ep, "mode"), "bridge") != 0 || !jstr(ep, "netns"))
                return silo_error_msg(err, EINVAL, "container %s is not in bridge mode", id);
        if (endpoint_link_on(ep, network))
                return silo_error_msg(err, EEXIST, "container %s is already connected to network %s", id, network);
        json_t *net = json_object_get(networks(n), network);
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
        int r = ensure_bridge(n, net, &bridge, err);
        if (r < 0)
                return r;
        r = save_state(n, err);
        if (r < 0)
                return r;
        /* The lowest ethN (N >= 1) nobody in the namespace uses yet. */
        char ifname[IFNAMSIZ];
        for (unsigned k = 1;; k++) {
                snprintf(ifname, sizeof(ifname), "eth%u", k);
                bool used = jstr(ep, "ifname") && !strcmp(jstr(ep, "ifname"), ifname);
                size_t i;
                json_t *x;
                json_array_foreach(extra, i, x)
                        if (jstr(x, "ifname") && !strcmp(jstr(x, "ifname"), ifname))
                                used = true;
                if (!used)
                        break;
        }
        uint32_t base = 0, ip = 0;
        unsigned prefix = 0;
        r = network_subnet(net, &base, &prefix, err);
        if (r >= 0)
                r = allocate_ip(n, net, &ip, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *key = NULL;
        if (asprintf(&key, "%s/%s", id, network) < 0)
                return silo_error_set(err, ENOMEM, "network");
        char veth[IFNAMSIZ], ip_s[INET_ADDRSTRLEN], mac_s[18];
        veth_name(key, veth);
        const char *other_id;
        json_t *other;
        json_object_foreach(endpoints(n), other_id, other)
                if (endpoint_owns_veth(other, veth))
                        return silo_error_msg(err, EEXIST, "veth name %s collides with container %s", veth, other_id);
        uint8_t mac[6] = { 0x02, 0x42, (uint8_t) (ip >> 24), (uint8_t) (ip >> 16), (uint8_t) (ip >> 8), (uint8_t) ip };
        snprintf(mac_s, sizeof(mac_s), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
        json_t *link = json_pack("{s:s, s:s, s:i, s:s?, s:s, s:s, s:s, s:i}", "network", network,
                                 "ip", ip_text(ip, ip_s), "prefix", (int) prefix, "gateway", jstr(net, "gateway"),
                                 "mac", mac_s, "veth", veth, "ifname", ifname, "mtu", (int) bridge.mtu);
        if (!link || json_array_append_new(extra, link) < 0)
                return silo_error_set(err, ENOMEM, "network");
        size_t slot = json_array_size(extra) - 1;
        r = save_state(n, err);

        _cleanup_free_ char *netns = NULL;
        _cleanup_close_ int nsfd = -1;
        silo_nl *nl = NULL;
        if (r >= 0)
                r = open_netns(jstr(ep, "netns"), 0, &netns, &nsfd, err);
        if (r >= 0)
                r = host_nl(n, &nl, err);
        if (r >= 0)
                r = silo_nl_veth_create(nl, veth, bridge.index, bridge.mtu, ifname, nsfd, mac, err);
        if (r >= 0)
                /* No default route: the first network keeps it, as with Docker. */
                r = configure_inside(nsfd, ifname, ip, prefix, false, 0, err);
        if (r < 0) {
                if (nl)
                        (void) silo_nl_link_delete(nl, veth, NULL);
                json_array_remove(extra, slot);
                (void) save_state(n, NULL);
                return r;
        }
        refresh_network_hosts(n, network, NULL);
        if (ret_info)
                *ret_info = json_deep_copy(link);
        return 0;
}

int silo_net_connect(silo_net *n, const char *container_id, const char *network, json_t **ret_info,
                     silo_error *err)
{
        int r = lock_state(n, err);
        if (r < 0)
                return r;
        json_t *ep = json_object_get(endpoints(n), container_id ? container_id : "");
        if (!ep)
                r = silo_error_msg(err, ENOENT, "container %s is not connected", container_id ? container_id : "");
        else
                r = extra_attach(n, container_id, ep, network ? network : "", ret_info, err);
        unlock_state(n);
        return r;
}

int silo_net_disconnect(silo_net *n, const char *container_id, const char *network, silo_error *err)
{
        int r = lock_state(n, err);
        if (r < 0)
                return r;
        const char *id = container_id ? container_id : "";
        json_t *ep = json_object_get(endpoints(n), id);
        json_t *link = ep ? endpoint_link_on(ep, network) : NULL;
        if (!link)
                r = silo_error_msg(err, ENOENT, "container %s is not connected to network %s", id, network ? network : "");
        else if (link == ep)
                r = silo_error_msg(err, EINVAL, "network %s is container %s's first network: detach the container",
                                   network, id);
        else {
                silo_nl *nl;
                r = host_nl(n, &nl, err);
                if (r >= 0 && jstr(link, "veth")) {
                        r = silo_nl_link_delete(nl, jstr(link, "veth"), err);
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
                        r = save_state(n, err);
                }
                if (r >= 0) {
                        refresh_network_hosts(n, network, NULL);
                        /* The container itself no longer sees that network's peers. */
                        _cleanup_free_ char *hosts = jstr(ep, "files") ? hosts_content(n, ep) : NULL;
                        if (hosts)
                                (void) silo_net_write_file(jstr(ep, "files"), "hosts", hosts, NULL);
                }
        }
        unlock_state(n);
        return r;
}

/* ---- reconcile ---- */

static bool link_listed(const silo_nl_link *links, size_t n_links, const char *name)
{
        for (size_t i = 0; i < n_links; i++)
                if (!strcmp(links[i].name, name))
                        return true;
        return false;
}

static bool endpoint_known(const char *tag, void *userdata)
{
        silo_net *n = userdata;
        return json_object_get(endpoints(n), tag) != NULL;
}

int silo_net_reconcile(silo_net *n, silo_net_alive_fn alive, void *userdata, unsigned *ret_removed,
                       silo_error *err)
{
        int r = lock_state(n, err);
        if (r < 0)
                return r;
        unsigned removed = 0;
        silo_nl *nl;
        silo_nft *nft;
        _cleanup_free_ silo_nl_link *links = NULL;
        size_t n_links = 0;
        r = host_nl(n, &nl, err);
        if (r >= 0)
                r = host_nft(n, &nft, err);
        if (r >= 0)
                r = silo_nl_link_list(nl, &links, &n_links, err);
        if (r < 0)
                goto out;

        /* Dead endpoints: everything of theirs goes. */
        for (bool again = true; again;) {
                again = false;
                const char *id;
                json_t *ep;
                json_object_foreach(endpoints(n), id, ep) {
                        bool live;
                        const char *mode = jstr(ep, "mode") ? jstr(ep, "mode") : "";
                        if (alive)
                                live = alive(id, userdata);
                        else if (!strcmp(mode, "bridge"))
                                live = jstr(ep, "veth") && link_listed(links, n_links, jstr(ep, "veth"));
                        else if (!strcmp(mode, "host"))
                                live = true;
                        else
                                live = jstr(ep, "netns") && access(jstr(ep, "netns"), F_OK) == 0;
                        if (live)
                                continue;
                        r = detach_locked(n, id, err);
                        if (r < 0)
                                goto out;
                        removed++;
                        again = true;   /* the object changed under the iterator */
                        break;
                }
        }
        /* silo veths nobody owns (a crash between veth and record removal). */
        for (size_t i = 0; i < n_links; i++) {
                if (!is_silo_veth(links[i].name) || strcmp(links[i].kind, "veth") != 0)
                        continue;
                bool owned = false;
                const char *id;
                json_t *ep;
                json_object_foreach(endpoints(n), id, ep)
                        if (endpoint_owns_veth(ep, links[i].name))
                                owned = true;
                if (owned)
                        continue;
                r = silo_nl_link_delete(nl, links[i].name, err);
                if (r < 0 && r != -ENODEV)
                        goto out;
                removed++;
        }
        /* Port rules nobody owns. */
        unsigned stray = 0;
        r = silo_nft_delete_tagged(nft, SILO_NFT_CONTAINER_TAG, endpoint_known, n, &stray, err);
        if (r < 0)
                goto out;
        removed += stray;
        /* Networks whose bridge survived get their rules back (e.g. after a
         * flushed ruleset); live endpoints their ports. */
        {
                silo_nft_buf b = {};
                silo_nft_skeleton(&b);
                const char *name;
                json_t *net;
                bool any = false;
                json_object_foreach(networks(n), name, net) {
                        uint32_t a;
                        unsigned p;
                        const char *br = jstr(net, "bridge");
                        if (!br || network_subnet(net, &a, &p, NULL) < 0 || !link_listed(links, n_links, br))
                                continue;
                        silo_nft_network_rules(&b, name, br, a, p);
                        any = true;
                }
                const char *id;
                json_t *ep;
                json_object_foreach(endpoints(n), id, ep) {
                        _cleanup_free_ silo_net_port *ports = NULL;
                        size_t np = 0;
                        uint32_t ip = 0;
                        if (endpoint_ports(ep, &ports, &np, NULL) < 0 || np == 0 || parse_ip(jstr(ep, "ip"), &ip) < 0)
                                continue;
                        silo_nft_port_rules(&b, id, ip, ports, np);
                        any = true;
                }
                if (b.oom)
                        r = silo_error_set(err, ENOMEM, "nftables rules");
                else if (any) {
                        /* One transaction: no moment without the rules. */
                        _cleanup_free_ char *batch = NULL;
                        if (asprintf(&batch, "add table ip %s\ndelete table ip %s\n%s", SILO_NFT_TABLE,
                                     SILO_NFT_TABLE, b.data) < 0)
                                r = silo_error_set(err, ENOMEM, "nftables rules");
                        else
                                r = silo_nft_run(nft, batch, err);
                } else if (json_object_size(networks(n)) == 0)
                        r = silo_nft_delete_table(nft, err);
                free(b.data);
                if (r < 0)
                        goto out;
        }
        r = save_state(n, err);
out:
        unlock_state(n);
        if (r >= 0 && ret_removed)
                *ret_removed = removed;
        return r < 0 ? r : 0;
}
