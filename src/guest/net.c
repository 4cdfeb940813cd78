/* The VM's NIC becomes the container's network interface: the host bridged
 * the container's network namespace to a tap whose other side is this
 * virtio NIC (src/lib/vm/net.c), and sends the interface's name, MAC,
 * address, prefix, gateway and MTU in Create.  The container shares the
 * VM's only network stack.  Plain ioctls: nothing more is needed for one
 * IPv4 interface and a default route. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

#define NIC_WAIT_MS 5000
#define MAX_INTERFACES 1

static int refuse(char *errbuf, size_t errlen, int r, const char *field, const char *detail)
{
        snprintf(errbuf, errlen, "%s: %s", field, detail);
        return r;
}

static int parse_mac(const char *s, unsigned char mac[6])
{
        unsigned v[6];
        char end;
        if (strlen(s) != 17 || strspn(s, "0123456789abcdefABCDEF:") != 17 ||
            sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6)
                return -EINVAL;
        for (int i = 0; i < 6; i++) {
                if (s[i * 3 + 2] != (i < 5 ? ':' : 0))
                        return -EINVAL;
                mac[i] = (unsigned char) v[i];
        }
        /* A unicast address that is not all zeros. */
        if ((mac[0] & 1) || !(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
                return -EINVAL;
        return 0;
}

static bool name_valid(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n >= IFNAMSIZ || !strcmp(s, ".") || !strcmp(s, ".."))
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

int guest_net_parse(json_t *networking, struct guest_net_iface *ret, int *ret_count, char *errbuf, size_t errlen)
{
        *ret_count = 0;
        if (!networking || json_is_null(networking))
                return 0;
        if (!json_is_object(networking))
                return refuse(errbuf, errlen, -EINVAL, "Networking", "expected an object");
        json_t *ifaces = json_object_get(networking, "Interfaces");
        if (!ifaces || json_is_null(ifaces))
                return 0;
        if (!json_is_array(ifaces))
                return refuse(errbuf, errlen, -EINVAL, "Networking.Interfaces", "expected an array");
        if (json_array_size(ifaces) > MAX_INTERFACES)
                return refuse(errbuf, errlen, -E2BIG, "Networking.Interfaces", "at most one interface");
        if (json_array_size(ifaces) == 0)
                return 0;
        json_t *i = json_array_get(ifaces, 0);
        if (!json_is_object(i))
                return refuse(errbuf, errlen, -EINVAL, "Networking.Interfaces[0]", "expected an object");
        const char *name = json_string_value(json_object_get(i, "Name"));
        const char *mac = json_string_value(json_object_get(i, "MacAddress"));
        const char *addr = json_string_value(json_object_get(i, "IPAddress"));
        json_t *gw = json_object_get(i, "Gateway");
        json_t *prefix = json_object_get(i, "PrefixLength"), *mtu = json_object_get(i, "Mtu");
        if (!name || !name_valid(name))
                return refuse(errbuf, errlen, -EINVAL, "Networking.Interfaces[0].Name",
                            "expected an interface name of 1 to 15 characters [A-Za-z0-9_.-]");
        snprintf(ret->name, sizeof(ret->name), "%s", name);
        if (!mac || parse_mac(mac, ret->mac) < 0)
                return refuse(errbuf, errlen, -EINVAL, "Networking.Interfaces[0].MacAddress",
                            "expected a unicast MAC address xx:xx:xx:xx:xx:xx");
        struct in_addr a;
        if (!addr || strlen(addr) >= sizeof(ret->address) || inet_pton(AF_INET, addr, &a) != 1)
                return refuse(errbuf, errlen, -EINVAL, "Networking.Interfaces[0].IPAddress",
                            "expected an IPv4 address");
        snprintf(ret->address, sizeof(ret->address), "%s", addr);
        if (!json_is_integer(prefix) || json_integer_value(prefix) < 0 || json_integer_value(prefix) > 32)
                return refuse(errbuf, errlen, -EINVAL, "Networking.Interfaces[0].PrefixLength",
                            "expected an integer 0..32");
        ret->prefix = (unsigned) json_integer_value(prefix);
        ret->gateway[0] = 0;
        if (gw && !json_is_null(gw)) {
                const char *g = json_string_value(gw);
                if (!g || (*g && (strlen(g) >= sizeof(ret->gateway) || inet_pton(AF_INET, g, &a) != 1)))
                        return refuse(errbuf, errlen, -EINVAL, "Networking.Interfaces[0].Gateway",
                                    "expected an IPv4 address");
                snprintf(ret->gateway, sizeof(ret->gateway), "%s", g);
        }
        if (!json_is_integer(mtu) || json_integer_value(mtu) < 68 || json_integer_value(mtu) > 65535)
                return refuse(errbuf, errlen, -EINVAL, "Networking.Interfaces[0].Mtu",
                            "expected an integer 68..65535");
        ret->mtu = (unsigned) json_integer_value(mtu);
        *ret_count = 1;
        return 0;
}

static int64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The virtio NIC: the only interface but lo (it may still be probing). */
static int find_nic(char ret[IFNAMSIZ])
{
        int64_t deadline = mono_ms() + NIC_WAIT_MS;
        for (;;) {
                DIR *d = opendir("/sys/class/net");
                struct dirent *de;
                int found = 0;
                for (int n = 0; d && n < 64 && (de = readdir(d)); n++) {
                        if (de->d_name[0] == '.' || !strcmp(de->d_name, "lo") || strlen(de->d_name) >= IFNAMSIZ)
                                continue;
                        snprintf(ret, IFNAMSIZ, "%s", de->d_name);
                        found = 1;
                        break;
                }
                if (d)
                        closedir(d);
                if (found)
                        return 0;
                if (mono_ms() >= deadline)
                        return -ENODEV;
                usleep(10000);
        }
}

static int ifr_call(int sock, unsigned long req, const char *name, struct ifreq *ifr)
{
        snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", name);
        return ioctl(sock, req, ifr) < 0 ? -errno : 0;
}

static int set_up(int sock, const char *name)
{
        struct ifreq ifr = {};
        int r = ifr_call(sock, SIOCGIFFLAGS, name, &ifr);
        if (r < 0)
                return r;
        ifr.ifr_flags |= IFF_UP;
        return ifr_call(sock, SIOCSIFFLAGS, name, &ifr);
}

static void sockaddr_v4(struct sockaddr *sa, const char *text)
{
        struct sockaddr_in *in = (struct sockaddr_in *) sa;
        memset(in, 0, sizeof(*in));
        in->sin_family = AF_INET;
        inet_pton(AF_INET, text, &in->sin_addr);
}

int guest_net_configure(json_t *networking, char *errbuf, size_t errlen)
{
        struct guest_net_iface nic;
        int count;
        int r = guest_net_parse(networking, &nic, &count, errbuf, errlen);
        if (r < 0 || count == 0)
                return r;
        char cur[IFNAMSIZ];
        if (find_nic(cur) < 0) {
                snprintf(errbuf, errlen, "no network device appeared in the VM within %d ms", NIC_WAIT_MS);
                return -ENODEV;
        }
        int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (sock < 0) {
                snprintf(errbuf, errlen, "socket: %s", strerror(errno));
                return -errno;
        }
        struct ifreq ifr = {};
        if (strcmp(cur, nic.name) != 0) {
                snprintf(ifr.ifr_newname, sizeof(ifr.ifr_newname), "%s", nic.name);
                r = ifr_call(sock, SIOCSIFNAME, cur, &ifr);
                if (r < 0) {
                        close(sock);
                        snprintf(errbuf, errlen, "rename %s to %s: %s", cur, nic.name, strerror(-r));
                        return r;
                }
        }
        memset(&ifr, 0, sizeof(ifr));
        ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
        memcpy(ifr.ifr_hwaddr.sa_data, nic.mac, 6);
        r = ifr_call(sock, SIOCSIFHWADDR, nic.name, &ifr);
        if (r == 0) {
                memset(&ifr, 0, sizeof(ifr));
                ifr.ifr_mtu = (int) nic.mtu;
                r = ifr_call(sock, SIOCSIFMTU, nic.name, &ifr);
        }
        if (r == 0) {
                memset(&ifr, 0, sizeof(ifr));
                sockaddr_v4(&ifr.ifr_addr, nic.address);
                r = ifr_call(sock, SIOCSIFADDR, nic.name, &ifr);
        }
        if (r == 0) {
                memset(&ifr, 0, sizeof(ifr));
                struct sockaddr_in *m = (struct sockaddr_in *) &ifr.ifr_netmask;
                m->sin_family = AF_INET;
                m->sin_addr.s_addr = htonl(nic.prefix ? 0xffffffffu << (32 - nic.prefix) : 0);
                r = ifr_call(sock, SIOCSIFNETMASK, nic.name, &ifr);
        }
        if (r == 0)
                r = set_up(sock, nic.name);
        if (r == 0)
                r = set_up(sock, "lo");
        if (r == 0 && nic.gateway[0]) {
                struct rtentry rt = {};
                sockaddr_v4(&rt.rt_dst, "0.0.0.0");
                sockaddr_v4(&rt.rt_genmask, "0.0.0.0");
                sockaddr_v4(&rt.rt_gateway, nic.gateway);
                rt.rt_flags = RTF_UP | RTF_GATEWAY;
                rt.rt_dev = nic.name;
                r = ioctl(sock, SIOCADDRT, &rt) < 0 ? -errno : 0;
        }
        close(sock);
        if (r < 0)
                snprintf(errbuf, errlen, "network interface %s (%s/%u gateway %s mtu %u): %s", nic.name, nic.address,
                         nic.prefix, nic.gateway[0] ? nic.gateway : "none", nic.mtu, strerror(-r));
        return r;
}
