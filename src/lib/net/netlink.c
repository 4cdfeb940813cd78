/* rtnetlink over libmnl: one request, one acknowledgement (or one dump). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include "net/netlink.h"
#include "util/cleanup.h"

/* Bounds a dump against a misbehaving kernel or namespace full of links. */
#define NL_MAX_LINKS 65536

struct silo_nl {
        struct mnl_socket *sock;
        unsigned portid;
        unsigned seq;
        char buf[32768];
};

int silo_nl_open(int netns_fd, silo_nl **ret, silo_error *err)
{
        _cleanup_close_ int self_ns = -1;
        if (netns_fd >= 0) {
                /* setns() affects only this thread, and we switch right back:
                 * the socket remembers the namespace it was created in. */
                self_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
                if (self_ns < 0)
                        return silo_error_set(err, errno, "open /proc/thread-self/ns/net");
                if (setns(netns_fd, CLONE_NEWNET) < 0)
                        return silo_error_set(err, errno, "setns into the container's network namespace");
        }
        struct mnl_socket *sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
        int saved = errno;
        if (self_ns >= 0 && setns(self_ns, CLONE_NEWNET) < 0) {
                /* Cannot continue safely in the wrong namespace. */
                int e = errno;
                if (sock)
                        mnl_socket_close(sock);
                return silo_error_set(err, e, "setns back to the host network namespace");
        }
        if (!sock)
                return silo_error_set(err, saved, "netlink socket");
        if (mnl_socket_bind(sock, 0, MNL_SOCKET_AUTOPID) < 0) {
                saved = errno;
                mnl_socket_close(sock);
                return silo_error_set(err, saved, "bind netlink socket");
        }
        silo_nl *nl = calloc(1, sizeof(*nl));
        if (!nl) {
                mnl_socket_close(sock);
                return silo_error_set(err, ENOMEM, "netlink socket");
        }
        nl->sock = sock;
        nl->portid = mnl_socket_get_portid(sock);
        nl->seq = (unsigned) time(NULL);
        *ret = nl;
        return 0;
}

silo_nl *silo_nl_free(silo_nl *nl)
{
        if (nl) {
                mnl_socket_close(nl->sock);
                free(nl);
        }
        return NULL;
}

static struct nlmsghdr *nl_msg(silo_nl *nl, uint16_t type, uint16_t flags)
{
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(nl->buf);
        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = NLM_F_REQUEST | flags;
        nlh->nlmsg_seq = ++nl->seq;
        return nlh;
}

/* Sends nlh and runs cb over the answer until the ACK or NLMSG_DONE;
 * returns -errno from the kernel's error message. */
static int nl_talk(silo_nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
        unsigned seq = nlh->nlmsg_seq;
        if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
                return -errno;
        for (;;) {
                ssize_t n = mnl_socket_recvfrom(nl->sock, nl->buf, sizeof(nl->buf));
                if (n < 0)
                        return -errno;
                int r = mnl_cb_run(nl->buf, (size_t) n, seq, nl->portid, cb, data);
                if (r < 0)
                        return errno ? -errno : -EIO;
                if (r == MNL_CB_STOP)
                        return 0;
        }
}

static int link_attr_cb(const struct nlattr *attr, void *data)
{
        const struct nlattr **tb = data;
        int type = mnl_attr_get_type(attr);
        if (mnl_attr_type_valid(attr, IFLA_MAX) < 0)
                return MNL_CB_OK;
        tb[type] = attr;
        return MNL_CB_OK;
}

static int linkinfo_attr_cb(const struct nlattr *attr, void *data)
{
        const struct nlattr **tb = data;
        if (mnl_attr_type_valid(attr, IFLA_INFO_MAX) < 0)
                return MNL_CB_OK;
        tb[mnl_attr_get_type(attr)] = attr;
        return MNL_CB_OK;
}

static void parse_link(const struct nlmsghdr *nlh, silo_nl_link *l)
{
        const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
        const struct nlattr *tb[IFLA_MAX + 1] = {};
        memset(l, 0, sizeof(*l));
        l->index = ifm->ifi_index;
        l->flags = ifm->ifi_flags;
        mnl_attr_parse(nlh, sizeof(*ifm), link_attr_cb, tb);
        if (tb[IFLA_IFNAME] && mnl_attr_validate(tb[IFLA_IFNAME], MNL_TYPE_STRING) >= 0)
                snprintf(l->name, sizeof(l->name), "%s", mnl_attr_get_str(tb[IFLA_IFNAME]));
        if (tb[IFLA_MTU] && mnl_attr_validate(tb[IFLA_MTU], MNL_TYPE_U32) >= 0)
                l->mtu = mnl_attr_get_u32(tb[IFLA_MTU]);
        if (tb[IFLA_MASTER] && mnl_attr_validate(tb[IFLA_MASTER], MNL_TYPE_U32) >= 0)
                l->master = (int) mnl_attr_get_u32(tb[IFLA_MASTER]);
        if (tb[IFLA_LINKINFO]) {
                const struct nlattr *info[IFLA_INFO_MAX + 1] = {};
                mnl_attr_parse_nested(tb[IFLA_LINKINFO], linkinfo_attr_cb, info);
                if (info[IFLA_INFO_KIND] && mnl_attr_validate(info[IFLA_INFO_KIND], MNL_TYPE_STRING) >= 0)
                        snprintf(l->kind, sizeof(l->kind), "%s", mnl_attr_get_str(info[IFLA_INFO_KIND]));
        }
}

static int link_one_cb(const struct nlmsghdr *nlh, void *data)
{
        parse_link(nlh, data);
        return MNL_CB_OK;
}

int silo_nl_link_get(silo_nl *nl, const char *name, silo_nl_link *ret, silo_error *err)
{
        if (strlen(name) >= IFNAMSIZ)
                return silo_error_msg(err, EINVAL, "interface name '%s' is too long", name);
        struct nlmsghdr *nlh = nl_msg(nl, RTM_GETLINK, NLM_F_ACK);
        struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
        ifm->ifi_family = AF_UNSPEC;
        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
        mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        silo_nl_link l = {};
        int r = nl_talk(nl, nlh, link_one_cb, &l);
        if (r == -ENODEV)
                return r;
        if (r < 0)
                return silo_error_set(err, -r, "netlink: get link %s", name);
        *ret = l;
        return 0;
}

typedef struct link_list {
        silo_nl_link *v;
        size_t n, cap;
        bool overflow;
} link_list;

static int link_list_cb(const struct nlmsghdr *nlh, void *data)
{
        link_list *ll = data;
        if (ll->n >= NL_MAX_LINKS) {
                ll->overflow = true;
                return MNL_CB_OK;
        }
        if (ll->n == ll->cap) {
                size_t cap = ll->cap ? ll->cap * 2 : 16;
                silo_nl_link *v = realloc(ll->v, cap * sizeof(*v));
                if (!v) {
                        errno = ENOMEM;
                        return MNL_CB_ERROR;
                }
                ll->v = v;
                ll->cap = cap;
        }
        parse_link(nlh, &ll->v[ll->n++]);
        return MNL_CB_OK;
}

int silo_nl_link_list(silo_nl *nl, silo_nl_link **ret, size_t *ret_n, silo_error *err)
{
        struct nlmsghdr *nlh = nl_msg(nl, RTM_GETLINK, NLM_F_DUMP);
        struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
        ifm->ifi_family = AF_UNSPEC;
        mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        link_list ll = {};
        int r = nl_talk(nl, nlh, link_list_cb, &ll);
        if (r < 0) {
                free(ll.v);
                return silo_error_set(err, -r, "netlink: list links");
        }
        if (ll.overflow) {
                free(ll.v);
                return silo_error_msg(err, E2BIG, "netlink: more than %d links", NL_MAX_LINKS);
        }
        *ret = ll.v;
        *ret_n = ll.n;
        return 0;
}

int silo_nl_bridge_create(silo_nl *nl, const char *name, unsigned mtu, silo_error *err)
{
        struct nlmsghdr *nlh = nl_msg(nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
        struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
        ifm->ifi_family = AF_UNSPEC;
        ifm->ifi_flags = IFF_UP;
        ifm->ifi_change = IFF_UP;
        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
        if (mtu)
                mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
        struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
        mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
        mnl_attr_nest_end(nlh, info);
        int r = nl_talk(nl, nlh, NULL, NULL);
        if (r < 0)
                return silo_error_set(err, -r, "netlink: create bridge %s", name);
        return 0;
}

int silo_nl_veth_create(silo_nl *nl, const char *host_name, int master_index, unsigned mtu,
                        const char *peer_name, int peer_netns_fd, const uint8_t peer_mac[6],
                        silo_error *err)
{
        struct nlmsghdr *nlh = nl_msg(nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
        struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
        ifm->ifi_family = AF_UNSPEC;
        ifm->ifi_flags = IFF_UP;
        ifm->ifi_change = IFF_UP;
        mnl_attr_put_strz(nlh, IFLA_IFNAME, host_name);
        if (mtu)
                mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
        if (master_index > 0)
                mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t) master_index);
        struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
        mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
        struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
        struct nlattr *peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
        /* The peer's attributes follow its own ifinfomsg; the kernel moves
         * it in the same request.  (Asking for IFF_UP here fails with
         * ENOTCONN: the caller brings it up inside the namespace.) */
        struct ifinfomsg *pifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*pifm));
        pifm->ifi_family = AF_UNSPEC;
        mnl_attr_put_strz(nlh, IFLA_IFNAME, peer_name);
        if (mtu)
                mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
        if (peer_mac)
                mnl_attr_put(nlh, IFLA_ADDRESS, 6, peer_mac);
        if (peer_netns_fd >= 0)
                mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t) peer_netns_fd);
        mnl_attr_nest_end(nlh, peer);
        mnl_attr_nest_end(nlh, data);
        mnl_attr_nest_end(nlh, info);
        int r = nl_talk(nl, nlh, NULL, NULL);
        if (r == -EEXIST)
                return silo_error_msg(err, EEXIST, "netlink: create veth %s: %s or %s already exists (in the host "
                                      "or the container's namespace)", host_name, host_name, peer_name);
        if (r < 0)
                return silo_error_set(err, -r, "netlink: create veth %s (peer %s)", host_name, peer_name);
        return 0;
}

int silo_nl_bridge_port_hairpin(silo_nl *nl, int index, silo_error *err)
{
        struct nlmsghdr *nlh = nl_msg(nl, RTM_SETLINK, NLM_F_ACK);
        struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
        ifm->ifi_family = AF_BRIDGE;
        ifm->ifi_index = index;
        struct nlattr *proto = mnl_attr_nest_start(nlh, IFLA_PROTINFO);
        mnl_attr_put_u8(nlh, IFLA_BRPORT_MODE, 1);
        mnl_attr_nest_end(nlh, proto);
        int r = nl_talk(nl, nlh, NULL, NULL);
        if (r < 0)
                return silo_error_set(err, -r, "netlink: hairpin mode on bridge port %d", index);
        return 0;
}

int silo_nl_link_delete(silo_nl *nl, const char *name, silo_error *err)
{
        struct nlmsghdr *nlh = nl_msg(nl, RTM_DELLINK, NLM_F_ACK);
        struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
        ifm->ifi_family = AF_UNSPEC;
        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
        int r = nl_talk(nl, nlh, NULL, NULL);
        if (r == -ENODEV)
                return r;
        if (r < 0)
                return silo_error_set(err, -r, "netlink: delete link %s", name);
        return 0;
}

int silo_nl_link_up(silo_nl *nl, int index, silo_error *err)
{
        struct nlmsghdr *nlh = nl_msg(nl, RTM_NEWLINK, NLM_F_ACK);
        struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
        ifm->ifi_family = AF_UNSPEC;
        ifm->ifi_index = index;
        ifm->ifi_flags = IFF_UP;
        ifm->ifi_change = IFF_UP;
        int r = nl_talk(nl, nlh, NULL, NULL);
        if (r < 0)
                return silo_error_set(err, -r, "netlink: set link %d up", index);
        return 0;
}

int silo_nl_addr_add(silo_nl *nl, int index, uint32_t addr, unsigned prefix, silo_error *err)
{
        struct nlmsghdr *nlh = nl_msg(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
        struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
        ifa->ifa_family = AF_INET;
        ifa->ifa_prefixlen = (unsigned char) prefix;
        ifa->ifa_scope = RT_SCOPE_UNIVERSE;
        ifa->ifa_index = (unsigned) index;
        uint32_t a = htonl(addr);
        mnl_attr_put_u32(nlh, IFA_LOCAL, a);
        mnl_attr_put_u32(nlh, IFA_ADDRESS, a);
        if (prefix < 31)
                mnl_attr_put_u32(nlh, IFA_BROADCAST, htonl(addr | (0xffffffffu >> prefix)));
        int r = nl_talk(nl, nlh, NULL, NULL);
        if (r < 0 && r != -EEXIST) {
                char text[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &a, text, sizeof(text));
                return silo_error_set(err, -r, "netlink: add address %s/%u to link %d", text, prefix, index);
        }
        return 0;
}

int silo_nl_route_default(silo_nl *nl, uint32_t gateway, silo_error *err)
{
        struct nlmsghdr *nlh = nl_msg(nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
        struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
        rtm->rtm_family = AF_INET;
        rtm->rtm_table = RT_TABLE_MAIN;
        rtm->rtm_protocol = RTPROT_BOOT;
        rtm->rtm_scope = RT_SCOPE_UNIVERSE;
        rtm->rtm_type = RTN_UNICAST;
        mnl_attr_put_u32(nlh, RTA_GATEWAY, htonl(gateway));
        int r = nl_talk(nl, nlh, NULL, NULL);
        if (r < 0)
                return silo_error_set(err, -r, "netlink: add default route");
        return 0;
}

typedef struct route_query {
        uint32_t addr;
        unsigned prefix;
        bool overlaps;
} route_query;

static int route_attr_cb(const struct nlattr *attr, void *data)
{
        const struct nlattr **tb = data;
        if (mnl_attr_type_valid(attr, RTA_MAX) < 0)
                return MNL_CB_OK;
        tb[mnl_attr_get_type(attr)] = attr;
        return MNL_CB_OK;
}

static uint32_t prefix_mask(unsigned prefix)
{
        return prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
        route_query *q = data;
        const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
        if (rtm->rtm_family != AF_INET || rtm->rtm_dst_len == 0 || rtm->rtm_type != RTN_UNICAST)
                return MNL_CB_OK;
        const struct nlattr *tb[RTA_MAX + 1] = {};
        mnl_attr_parse(nlh, sizeof(*rtm), route_attr_cb, tb);
        if (!tb[RTA_DST] || mnl_attr_validate(tb[RTA_DST], MNL_TYPE_U32) < 0)
                return MNL_CB_OK;
        uint32_t dst = ntohl(mnl_attr_get_u32(tb[RTA_DST]));
        unsigned p = rtm->rtm_dst_len < q->prefix ? rtm->rtm_dst_len : q->prefix;
        if ((dst & prefix_mask(p)) == (q->addr & prefix_mask(p)))
                q->overlaps = true;
        return MNL_CB_OK;
}

int silo_nl_route_overlaps(silo_nl *nl, uint32_t addr, unsigned prefix, bool *ret, silo_error *err)
{
        struct nlmsghdr *nlh = nl_msg(nl, RTM_GETROUTE, NLM_F_DUMP);
        struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
        rtm->rtm_family = AF_INET;
        route_query q = { .addr = addr, .prefix = prefix };
        int r = nl_talk(nl, nlh, route_cb, &q);
        if (r < 0)
                return silo_error_set(err, -r, "netlink: list routes");
        *ret = q.overlaps;
        return 0;
}
