/* The container's network, handed to its VM (docs/VM.md, "Networking").
 *
 * Whoever set up the container's network namespace (silod's bridge
 * networking, a CNI plugin, a test) left an Ethernet interface there with
 * the container's IPv4 address, MAC, MTU and default route.  The VM cannot
 * join a namespace, so, as Kata Containers does, the namespace becomes a
 * wire: a tap device and a bridge are made inside it, the interface and the
 * tap are enslaved to the bridge, the interface gives its address up (the
 * namespace's own stack must no longer answer for it) and takes a random
 * MAC (the bridge must not take the guest's MAC for a local one), and QEMU
 * gets the tap: the guest's virtio NIC carries the original MAC, address,
 * route and MTU.  Everything made lives in the container's namespace and
 * vanishes with it; the tap itself goes when QEMU closes it.
 *
 * The work runs in a short-lived forked child that setns()es into the
 * namespace (a tap is created in its opener's namespace), so the caller's
 * threads and namespaces are never touched; the tap fd comes back over a
 * socketpair. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/sockios.h>

#include "process/sync.h"
#include "util/cleanup.h"
#include "vm/vm.h"

#define NET_CHILD_TIMEOUT_MS 10000
#define MAX_IFCONF 64
#define MAX_ROUTE_LINES 1024
#define MAX_ADDR_REMOVALS 64

/* Names inside the container's namespace: nothing else of ours lives there. */
#define VM_BRIDGE "silo-vmbr0"
#define VM_TAP "silo-tap0"

void silo_vm_net_done(struct silo_vm_net *n)
{
        silo_closep(&n->tap_fd);
}

static int ifreq_ioctl(int sock, unsigned long req, const char *name, struct ifreq *ifr)
{
        memset(ifr->ifr_name, 0, sizeof(ifr->ifr_name));
        snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", name);
        return ioctl(sock, req, ifr) < 0 ? -errno : 0;
}

static int set_flags(int sock, const char *name, short set, short clear, silo_error *err)
{
        struct ifreq ifr = {};
        if (ifreq_ioctl(sock, SIOCGIFFLAGS, name, &ifr) < 0)
                return silo_error_set(err, errno, "SIOCGIFFLAGS %s", name);
        ifr.ifr_flags = (short) ((ifr.ifr_flags | set) & ~clear);
        if (ifreq_ioctl(sock, SIOCSIFFLAGS, name, &ifr) < 0)
                return silo_error_set(err, errno, "SIOCSIFFLAGS %s", name);
        return 0;
}

/* The first interface but loopback with an IPv4 address (SIOCGIFCONF lists
 * exactly the interfaces that have one, in device order).  0 and an empty
 * name when there is none. */
static int find_interface(int sock, char ret_name[IFNAMSIZ], struct in_addr *ret_addr, silo_error *err)
{
        struct ifreq reqs[MAX_IFCONF];
        struct ifconf ifc = { .ifc_len = sizeof(reqs), .ifc_req = reqs };
        if (ioctl(sock, SIOCGIFCONF, &ifc) < 0)
                return silo_error_set(err, errno, "SIOCGIFCONF");
        ret_name[0] = 0;
        size_t n = (size_t) ifc.ifc_len / sizeof(struct ifreq);
        for (size_t i = 0; i < n && i < MAX_IFCONF; i++) {
                char name[IFNAMSIZ];
                snprintf(name, sizeof(name), "%.*s", IFNAMSIZ - 1, reqs[i].ifr_name);
                name[strcspn(name, ":")] = 0;   /* an alias label "eth0:1" */
                struct ifreq ifr = {};
                if (reqs[i].ifr_addr.sa_family != AF_INET || ifreq_ioctl(sock, SIOCGIFFLAGS, name, &ifr) < 0 ||
                    (ifr.ifr_flags & IFF_LOOPBACK))
                        continue;
                memcpy(ret_name, name, IFNAMSIZ);
                *ret_addr = ((struct sockaddr_in *) &reqs[i].ifr_addr)->sin_addr;
                return 0;
        }
        return 0;
}

/* The default route's gateway through ifname from /proc/self/net/route
 * (this task's namespace); "" when there is none. */
static void find_gateway(const char *ifname, char ret[INET_ADDRSTRLEN])
{
        ret[0] = 0;
        _cleanup_fclose_ FILE *f = fopen("/proc/self/net/route", "re");
        char line[512];
        for (int i = 0; f && i < MAX_ROUTE_LINES && fgets(line, sizeof(line), f); i++) {
                char iface[64];
                unsigned long dest, gw, mask;
                unsigned flags;
                if (sscanf(line, "%63s %lx %lx %x %*d %*d %*d %lx", iface, &dest, &gw, &flags, &mask) != 5)
                        continue;
                if (strcmp(iface, ifname) != 0 || dest != 0 || mask != 0 || !(flags & 0x2 /* RTF_GATEWAY */))
                        continue;
                struct in_addr a = { .s_addr = (uint32_t) gw };       /* printed as the raw word */
                inet_ntop(AF_INET, &a, ret, INET_ADDRSTRLEN);
                return;
        }
}

static int netmask_prefix(uint32_t mask_be, unsigned *ret)
{
        uint32_t m = ntohl(mask_be);
        unsigned p = (unsigned) __builtin_popcount(m);
        if (p < 32 && (m & (0xffffffffu >> p)))
                return -EINVAL;
        *ret = p;
        return 0;
}

static int open_tap(unsigned mtu, int sock, silo_error *err)
{
        _cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return silo_error_set(err, errno, "open /dev/net/tun");
        struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), VM_TAP);
        if (ioctl(fd, TUNSETIFF, &ifr) < 0)
                return silo_error_set(err, errno, "TUNSETIFF %s", VM_TAP);
        struct ifreq m = { .ifr_mtu = (int) mtu };
        if (ifreq_ioctl(sock, SIOCSIFMTU, VM_TAP, &m) < 0)
                return silo_error_set(err, errno, "MTU %u on %s", mtu, VM_TAP);
        return TAKE_FD(fd);
}

static int enslave(int sock, const char *bridge, const char *name, silo_error *err)
{
        struct ifreq ifr = {};
        if (ifreq_ioctl(sock, SIOCGIFINDEX, name, &ifr) < 0)
                return silo_error_set(err, errno, "SIOCGIFINDEX %s", name);
        int index = ifr.ifr_ifindex;
        memset(&ifr, 0, sizeof(ifr));
        ifr.ifr_ifindex = index;
        if (ifreq_ioctl(sock, SIOCBRADDIF, bridge, &ifr) < 0)
                return silo_error_set(err, errno, "add %s to bridge %s", name, bridge);
        return 0;
}

/* In the child, inside the namespace: inspect, then rewire. *ret_tap = -1
 * (and 0) when there is no interface to hand over. */
static int rewire(struct silo_vm_net *n, int *ret_tap, silo_error *err)
{
        *ret_tap = -1;
        _cleanup_close_ int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (sock < 0)
                return silo_error_set(err, errno, "socket");
        struct ifreq ifr = {};
        /* A namespace handed to a VM before has given its address up: it
         * cannot be handed over again (silod makes one per start). */
        if (ifreq_ioctl(sock, SIOCGIFINDEX, VM_BRIDGE, &ifr) == 0)
                return silo_error_msg(err, EBUSY, "the network namespace was handed to a VM before (%s exists)",
                                      VM_BRIDGE);
        struct in_addr addr;
        int r = find_interface(sock, n->ifname, &addr, err);
        if (r < 0 || !n->ifname[0])
                return r;
        const char *name = n->ifname;
        inet_ntop(AF_INET, &addr, n->address, sizeof(n->address));
        if (ifreq_ioctl(sock, SIOCGIFNETMASK, name, &ifr) < 0)
                return silo_error_set(err, errno, "SIOCGIFNETMASK %s", name);
        if (netmask_prefix(((struct sockaddr_in *) &ifr.ifr_netmask)->sin_addr.s_addr, &n->prefix) < 0)
                return silo_error_msg(err, EINVAL, "%s: netmask is not a prefix", name);
        if (ifreq_ioctl(sock, SIOCGIFHWADDR, name, &ifr) < 0)
                return silo_error_set(err, errno, "SIOCGIFHWADDR %s", name);
        if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
                return silo_error_msg(err, EOPNOTSUPP, "network interface %s is not Ethernet: it cannot be bridged "
                                                       "to the VM", name);
        uint8_t mac[6];
        memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
        snprintf(n->mac, sizeof(n->mac), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                 mac[5]);
        if (ifreq_ioctl(sock, SIOCGIFMTU, name, &ifr) < 0)
                return silo_error_set(err, errno, "SIOCGIFMTU %s", name);
        n->mtu = (unsigned) ifr.ifr_mtu;
        find_gateway(name, n->gateway);

        _cleanup_close_ int tap = open_tap(n->mtu, sock, err);
        if (tap < 0)
                return tap;
        /* Down while its MAC changes; a random locally administered one. */
        r = set_flags(sock, name, 0, IFF_UP, err);
        if (r < 0)
                return r;
        uint8_t fresh[6];
        do {
                if (getrandom(fresh, sizeof(fresh), 0) != sizeof(fresh))
                        return silo_error_set(err, errno, "getrandom");
                fresh[0] = (uint8_t) ((fresh[0] & 0xfe) | 0x02);
        } while (memcmp(fresh, mac, 6) == 0);
        memset(&ifr, 0, sizeof(ifr));
        ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
        memcpy(ifr.ifr_hwaddr.sa_data, fresh, 6);
        if (ifreq_ioctl(sock, SIOCSIFHWADDR, name, &ifr) < 0)
                return silo_error_set(err, errno, "set the MAC address of %s", name);
        /* Address 0.0.0.0 deletes one IPv4 address of that label; routes
         * through it go with the last one. */
        for (int i = 0; i < MAX_ADDR_REMOVALS; i++) {
                struct ifreq a = {};
                if (ifreq_ioctl(sock, SIOCGIFADDR, name, &a) < 0)
                        break;
                memset(&a.ifr_addr, 0, sizeof(a.ifr_addr));
                a.ifr_addr.sa_family = AF_INET;
                if (ifreq_ioctl(sock, SIOCSIFADDR, name, &a) < 0)
                        return silo_error_set(err, errno, "remove the IPv4 address of %s", name);
        }
        if (ioctl(sock, SIOCBRADDBR, VM_BRIDGE) < 0)
                return silo_error_set(err, errno, "create bridge %s", VM_BRIDGE);
        r = enslave(sock, VM_BRIDGE, name, err);
        if (r == 0)
                r = enslave(sock, VM_BRIDGE, VM_TAP, err);
        if (r == 0)
                r = set_flags(sock, name, IFF_UP, 0, err);
        if (r == 0)
                r = set_flags(sock, VM_TAP, IFF_UP, 0, err);
        if (r == 0)
                r = set_flags(sock, VM_BRIDGE, IFF_UP, 0, err);
        if (r < 0)
                return r;
        *ret_tap = TAKE_FD(tap);
        return 0;
}

static __attribute__((noreturn)) void net_child(int nsfd, int sock)
{
        silo_error e = SILO_ERROR_INIT;
        struct silo_vm_net n = { .tap_fd = -1 };
        int tap = -1;
        if (setns(nsfd, CLONE_NEWNET) < 0)
                silo_error_set(&e, errno, "setns into the container's network namespace");
        else if (rewire(&n, &tap, &e) == 0) {
                silo_sync_send(sock, SILO_SYNC_FD, tap >= 0, &n, sizeof(n), tap);
                _exit(0);
        }
        silo_sync_fail(sock, &e);
}

/* The namespace must be a network namespace, and not ours: the host's own
 * interfaces are never rewired. */
static int check_netns(int fd, const char *path, silo_error *err)
{
        int type = ioctl(fd, NS_GET_NSTYPE);
        if (type < 0)
                return silo_error_set(err, errno, "linux.namespaces: network path %s", path);
        if (type != CLONE_NEWNET)
                return silo_error_msg(err, EINVAL, "linux.namespaces: %s is not a network namespace", path);
        struct stat a, b;
        if (fstat(fd, &a) < 0 || stat("/proc/self/ns/net", &b) < 0)
                return silo_error_set(err, errno, "stat network namespace %s", path);
        if (a.st_dev == b.st_dev && a.st_ino == b.st_ino)
                return silo_error_msg(err, EINVAL, "linux.namespaces: network path %s is the host's own network "
                                                   "namespace: a VM cannot share it", path);
        return 0;
}

int silo_vm_net_prepare(const char *netns_path, struct silo_vm_net *ret, silo_error *err)
{
        *ret = (struct silo_vm_net) { .tap_fd = -1 };
        _cleanup_close_ int nsfd = open(netns_path, O_RDONLY | O_CLOEXEC);
        if (nsfd < 0)
                return silo_error_set(err, errno, "linux.namespaces: network path %s", netns_path);
        int r = check_netns(nsfd, netns_path, err);
        if (r < 0)
                return r;
        int sp[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
                return silo_error_set(err, errno, "socketpair");
        _cleanup_close_ int mine = sp[0], theirs = sp[1];
        _cleanup_(silo_killpidp) pid_t pid = fork();
        if (pid < 0)
                return silo_error_set(err, errno, "fork");
        if (pid == 0) {
                silo_closep(&mine);
                net_child(nsfd, theirs);
        }
        silo_closep(&theirs);
        struct pollfd p = { .fd = mine, .events = POLLIN };
        int k;
        do
                k = poll(&p, 1, NET_CHILD_TIMEOUT_MS);
        while (k < 0 && errno == EINTR);
        if (k == 0)
                return silo_error_msg(err, ETIMEDOUT, "setting up the VM's network timed out");
        _cleanup_free_ struct silo_sync_msg *msg = malloc(sizeof(*msg));
        if (!msg)
                return silo_error_set(err, ENOMEM, "VM network");
        r = silo_sync_expect(mine, SILO_SYNC_FD, msg, "VM network", err);
        if (r < 0)
                return r;
        _cleanup_close_ int tap = msg->fd;
        if (msg->len != sizeof(*ret) || (msg->value && tap < 0))
                return silo_error_msg(err, EPROTO, "VM network: malformed answer from the helper");
        memcpy(ret, msg->payload, sizeof(*ret));
        ret->tap_fd = msg->value ? TAKE_FD(tap) : -1;
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        pid = 0;
        return 0;
}

json_t *silo_vm_net_to_json(const struct silo_vm_net *n)
{
        json_t *iface = json_pack("{ss ss ss si si}", "Name", n->ifname, "MacAddress", n->mac, "IPAddress", n->address,
                                  "PrefixLength", (int) n->prefix, "Mtu", (int) n->mtu);
        if (iface && n->gateway[0])
                json_object_set_new(iface, "Gateway", json_string(n->gateway));
        return iface ? json_pack("{s[o]}", "Interfaces", iface) : NULL;
}
