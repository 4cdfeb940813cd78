/* Networks: subnet choice, the bridge and its rules, create/remove/list. */
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
        json_object_foreach(net_networks(n), name, net) {
                uint32_t a;
                unsigned p;
                if (net_network_subnet(net, &a, &p, err) < 0)
                        return -err->code;
                if (subnets_overlap(a, p, addr, prefix)) {
                        *ret_user = name;
                        *ret = false;
                        return 0;
                }
        }
        silo_nl *nl;
        int r = net_host_nl(n, &nl, err);
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

int net_add_network(silo_net *n, const char *name, const silo_net_network_options *o, json_t **ret_net,
                       silo_error *err)
{
        const char *subnet = o ? o->subnet : NULL, *bridge = o ? o->bridge : NULL;
        unsigned mtu = o ? o->mtu : 0;
        if (mtu && (mtu < 68 || mtu > 65535))
                return silo_error_msg(err, EINVAL, "network MTU %u: must be 68-65535", mtu);
        if (!net_valid_name(name, 64))
                return silo_error_msg(err, EINVAL, "network name '%s': use letters, digits, '_', '.', '-' (at most 64)",
                                      name ? name : "");
        if (json_object_get(net_networks(n), name))
                return silo_error_msg(err, EEXIST, "network %s already exists", name);
        if (json_object_size(net_networks(n)) >= MAX_NETWORKS)
                return silo_error_msg(err, ENOSPC, "network: at most %d networks", MAX_NETWORKS);

        char br[IFNAMSIZ];
        if (bridge) {
                /* A recognisable prefix: reconcile and people can tell silo's bridges. */
                if (strlen(bridge) >= IFNAMSIZ || strncmp(bridge, "silo", 4) != 0 || !net_valid_name(bridge, 15))
                        return silo_error_msg(err, EINVAL, "bridge name '%s': must start with 'silo', at most 15 "
                                                           "characters", bridge);
                snprintf(br, sizeof(br), "%s", bridge);
        } else if (!strcmp(name, SILO_NET_DEFAULT_NETWORK))
                snprintf(br, sizeof(br), "%s", SILO_NET_DEFAULT_NETWORK);
        else if (strlen(name) <= 10)
                snprintf(br, sizeof(br), "silo-%s", name);
        else
                snprintf(br, sizeof(br), "silo-%010llx", (unsigned long long) (net_fnv1a(name) & 0xffffffffffull));
        const char *other;
        json_t *net;
        json_object_foreach(net_networks(n), other, net)
                if (!strcmp(net_jstr(net, "bridge") ? net_jstr(net, "bridge") : "", br))
                        return silo_error_msg(err, EEXIST, "bridge %s is already used by network %s", br, other);
        silo_nl *nl;
        int r = net_host_nl(n, &nl, err);
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
        snprintf(cidr, sizeof(cidr), "%s/%u", net_ip_text(addr, net_text), prefix);
        net_ip_text(addr + 1, gw_text);
        json_t *net_o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", name, "bridge", br, "subnet", cidr,
                              "gateway", gw_text, "last", gw_text);
        if (net_o && o && o->internal)
                json_object_set_new(net_o, "internal", json_true());
        if (net_o && o && json_is_object(o->labels))
                json_object_set_new(net_o, "labels", json_deep_copy(o->labels));
        if (net_o)
                json_object_set_new(net_o, "created", json_integer((json_int_t) time(NULL)));
        if (!net_o || (mtu && json_object_set_new(net_o, "mtu", json_integer(mtu)) < 0) ||
            json_object_set_new(net_networks(n), name, net_o) < 0)
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
int net_ensure_bridge(silo_net *n, json_t *net, silo_nl_link *ret_link, silo_error *err)
{
        const char *name = net_jstr(net, "name"), *br = net_jstr(net, "bridge");
        if (!name || !br || strlen(br) >= IFNAMSIZ)
                return silo_error_msg(err, EINVAL, "network state: network %s has no valid bridge", name ? name : "?");
        silo_nl *nl;
        int r = net_host_nl(n, &nl, err);
        if (r < 0)
                return r;
        r = silo_nl_link_get(nl, br, ret_link, err);
        if (r == 0)
                return 0;
        if (r != -ENODEV)
                return r;

        uint32_t addr, gw;
        unsigned prefix;
        r = net_network_subnet(net, &addr, &prefix, err);
        if (r < 0)
                return r;
        if (net_parse_ip(net_jstr(net, "gateway"), &gw) < 0)
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
                r = net_host_nft(n, &nft, err);
        if (r >= 0)
                r = silo_nft_delete_tagged(nft, SILO_NFT_NETWORK_TAG, NULL, NULL, NULL, err);
        if (r >= 0) {
                silo_nft_buf b = {};
                silo_nft_skeleton(&b);
                silo_nft_network_rules(&b, name, br, addr, prefix, json_is_true(json_object_get(net, "internal")));
                /* Other networks' rules were deleted with the tag above. */
                const char *other;
                json_t *o;
                json_object_foreach(net_networks(n), other, o) {
                        uint32_t oa;
                        unsigned op;
                        silo_nl_link ol;
                        if (o == net || !net_jstr(o, "bridge") || net_network_subnet(o, &oa, &op, NULL) < 0 ||
                            silo_nl_link_get(nl, net_jstr(o, "bridge"), &ol, NULL) < 0)
                                continue;
                        silo_nft_network_rules(&b, other, net_jstr(o, "bridge"), oa, op,
                                               json_is_true(json_object_get(o, "internal")));
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
bool net_exact_tag(const char *rest, void *userdata)
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
                json_object_foreach(net_endpoints(n), id, ep) {
                        json_t *l = net_endpoint_link_on(ep, net_jstr(net, "name"));
                        if (!l)
                                continue;
                        json_array_append_new(list, json_pack("{s:s, s:s?, s:s?, s:s?, s:O?}", "id", id,
                                                              "name", net_jstr(ep, "name"), "ip", net_jstr(l, "ip"),
                                                              "mac", net_jstr(l, "mac"),
                                                              "ports", l == ep ? json_object_get(ep, "ports") : NULL));
                }
                json_object_set_new(info, "endpoints", list);
        }
        return info;
}

int silo_net_network_create(silo_net *n, const char *name, const silo_net_network_options *o,
                            json_t **ret_info, silo_error *err)
{
        int r = net_lock_state(n, err);
        if (r < 0)
                return r;
        json_t *net;
        silo_nl_link link;
        r = net_add_network(n, name, o, &net, err);
        if (r >= 0)
                r = net_ensure_bridge(n, net, &link, err);
        if (r >= 0)
                r = net_save_state(n, err);
        if (r >= 0 && ret_info)
                *ret_info = network_info(n, net, false);
        net_unlock_state(n);
        return r < 0 ? r : 0;
}

static int count_on_network(silo_net *n, const char *name)
{
        int count = 0;
        const char *id;
        json_t *ep;
        json_object_foreach(net_endpoints(n), id, ep)
                if (net_endpoint_link_on(ep, name))
                        count++;
        return count;
}

int silo_net_network_remove(silo_net *n, const char *name, silo_error *err)
{
        int r = net_lock_state(n, err);
        if (r < 0)
                return r;
        json_t *net = json_object_get(net_networks(n), name ? name : "");
        if (!net) {
                net_unlock_state(n);
                return silo_error_msg(err, ENOENT, "network %s not found", name ? name : "");
        }
        int users = count_on_network(n, name);
        if (users > 0) {
                net_unlock_state(n);
                return silo_error_msg(err, EBUSY, "network %s has %d connected container%s", name, users,
                                      users == 1 ? "" : "s");
        }
        silo_nl *nl;
        silo_nft *nft;
        r = net_host_nl(n, &nl, err);
        if (r >= 0 && net_jstr(net, "bridge")) {
                r = silo_nl_link_delete(nl, net_jstr(net, "bridge"), err);
                if (r == -ENODEV)
                        r = 0;
        }
        if (r >= 0)
                r = net_host_nft(n, &nft, err);
        if (r >= 0) {
                char tag[128];
                snprintf(tag, sizeof(tag), SILO_NFT_NETWORK_TAG "%s", name);
                /* The exact tag: the prefix match would also take "name2". */
                r = silo_nft_delete_tagged(nft, tag, net_exact_tag, NULL, NULL, err);
        }
        if (r >= 0 && net_jstr(net, "bridge"))
                r = silo_nft_forget_bridge(nft, net_jstr(net, "bridge"), err);
        if (r >= 0) {
                json_object_del(net_networks(n), name);
                if (json_object_size(net_networks(n)) == 0)
                        r = silo_nft_delete_table(nft, err);
        }
        if (r >= 0)
                r = net_save_state(n, err);
        net_unlock_state(n);
        return r < 0 ? r : 0;
}

int silo_net_network_list(silo_net *n, json_t **ret, silo_error *err)
{
        int r = net_lock_state(n, err);
        if (r < 0)
                return r;
        json_t *list = json_array();
        const char *name;
        json_t *net;
        json_object_foreach(net_networks(n), name, net) {
                json_t *info = network_info(n, net, false);
                if (info) {
                        json_object_set_new(info, "containers", json_integer(count_on_network(n, name)));
                        json_array_append_new(list, info);
                }
        }
        net_unlock_state(n);
        *ret = list;
        return 0;
}

int silo_net_network_inspect(silo_net *n, const char *name, json_t **ret, silo_error *err)
{
        int r = net_lock_state(n, err);
        if (r < 0)
                return r;
        json_t *net = json_object_get(net_networks(n), name ? name : "");
        if (!net) {
                net_unlock_state(n);
                return silo_error_msg(err, ENOENT, "network %s not found", name ? name : "");
        }
        *ret = network_info(n, net, true);
        net_unlock_state(n);
        return *ret ? 0 : silo_error_set(err, ENOMEM, "network %s", name);
}
