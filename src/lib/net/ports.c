/* Parsing of published ports and subnets (pure functions, unit tested). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"

static int parse_port_number(const char *text, size_t len, const char *spec, uint16_t *ret, silo_error *err)
{
        if (len == 0 || len > 5)
                return silo_error_msg(err, EINVAL, "port '%s': '%.*s' is not a port number", spec, (int) len, text);
        unsigned v = 0;
        for (size_t i = 0; i < len; i++) {
                if (text[i] < '0' || text[i] > '9')
                        return silo_error_msg(err, EINVAL, "port '%s': '%.*s' is not a port number",
                                              spec, (int) len, text);
                v = v * 10 + (unsigned) (text[i] - '0');
        }
        if (v < 1 || v > 65535)
                return silo_error_msg(err, ERANGE, "port '%s': %u is outside 1-65535", spec, v);
        *ret = (uint16_t) v;
        return 0;
}

/* "80" or "8000-8010" into start and count. */
static int parse_range(const char *text, size_t len, const char *spec, uint16_t *ret_start,
                       unsigned *ret_count, silo_error *err)
{
        const char *dash = memchr(text, '-', len);
        uint16_t a, b;
        int r = parse_port_number(text, dash ? (size_t) (dash - text) : len, spec, &a, err);
        if (r < 0)
                return r;
        b = a;
        if (dash) {
                r = parse_port_number(dash + 1, len - (size_t) (dash + 1 - text), spec, &b, err);
                if (r < 0)
                        return r;
                if (b < a)
                        return silo_error_msg(err, EINVAL, "port '%s': range %u-%u is reversed", spec, a, b);
        }
        *ret_start = a;
        *ret_count = (unsigned) (b - a) + 1;
        return 0;
}

int silo_net_port_parse(const char *spec, silo_net_port *ret, silo_error *err)
{
        if (!spec || !*spec)
                return silo_error_msg(err, EINVAL, "port: empty specification");
        if (strlen(spec) > 128)
                return silo_error_msg(err, EINVAL, "port: specification too long");
        silo_net_port p = { .proto = IPPROTO_TCP };
        size_t len = strlen(spec);
        const char *slash = strchr(spec, '/');
        if (slash) {
                const char *proto = slash + 1;
                if (!strcmp(proto, "tcp"))
                        p.proto = IPPROTO_TCP;
                else if (!strcmp(proto, "udp"))
                        p.proto = IPPROTO_UDP;
                else
                        return silo_error_msg(err, EINVAL, "port '%s': protocol '%s' is not tcp or udp", spec, proto);
                len = (size_t) (slash - spec);
        }
        /* Split from the right: container, host, then an optional address.
         * No host port ("80", "ip::80"): attach picks a free one. */
        const char *c1 = memrchr(spec, ':', len);
        if (!c1) {
                unsigned count;
                int r = parse_range(spec, len, spec, &p.container_port, &count, err);
                if (r < 0)
                        return r;
                if (count != 1)
                        return silo_error_msg(err, EINVAL, "port '%s': a random host port needs one container port",
                                              spec);
                p.count = 1;
                *ret = p;
                return 0;
        }
        const char *c0 = memrchr(spec, ':', (size_t) (c1 - spec));
        const char *host = c0 ? c0 + 1 : spec;
        if (c0) {
                char ip[INET_ADDRSTRLEN];
                size_t iplen = (size_t) (c0 - spec);
                if (iplen == 0 || iplen >= sizeof(ip) || memchr(spec, ':', iplen))
                        return silo_error_msg(err, EINVAL, "port '%s': '%.*s' is not an IPv4 address",
                                              spec, (int) iplen, spec);
                memcpy(ip, spec, iplen);
                ip[iplen] = 0;
                struct in_addr a;
                if (inet_pton(AF_INET, ip, &a) != 1)
                        return silo_error_msg(err, EINVAL, "port '%s': '%s' is not an IPv4 address", spec, ip);
                p.host_ip = a.s_addr;
        }
        unsigned hcount, ccount;
        int r;
        if (c0 && host == c1) {
                r = parse_range(c1 + 1, len - (size_t) (c1 + 1 - spec), spec, &p.container_port, &ccount, err);
                if (r < 0)
                        return r;
                if (ccount != 1)
                        return silo_error_msg(err, EINVAL, "port '%s': a random host port needs one container port",
                                              spec);
                p.count = 1;
                *ret = p;
                return 0;
        }
        r = parse_range(host, (size_t) (c1 - host), spec, &p.host_port, &hcount, err);
        if (r < 0)
                return r;
        r = parse_range(c1 + 1, len - (size_t) (c1 + 1 - spec), spec, &p.container_port, &ccount, err);
        if (r < 0)
                return r;
        if (ccount == 1 && hcount > 1) {
                /* One container port, a host range: attach takes a free one. */
                p.host_port_last = (uint16_t) (p.host_port + hcount - 1);
                p.count = 1;
                *ret = p;
                return 0;
        }
        if (hcount != ccount)
                return silo_error_msg(err, EINVAL, "port '%s': host range has %u ports, container range %u",
                                      spec, hcount, ccount);
        if (hcount > SILO_NET_MAX_PORTS_PER_SPEC)
                return silo_error_msg(err, E2BIG, "port '%s': more than %d ports in one range",
                                      spec, SILO_NET_MAX_PORTS_PER_SPEC);
        p.count = (uint16_t) hcount;
        *ret = p;
        return 0;
}

const char *silo_net_port_format(const silo_net_port *p, char buf[64])
{
        char ip[INET_ADDRSTRLEN] = "0.0.0.0";
        if (p->host_ip) {
                struct in_addr a = { .s_addr = p->host_ip };
                inet_ntop(AF_INET, &a, ip, sizeof(ip));
        }
        const char *proto = p->proto == IPPROTO_UDP ? "udp" : "tcp";
        if (p->host_port_last)
                snprintf(buf, 64, "%s:%u-%u:%u/%s", ip, p->host_port, p->host_port_last, p->container_port, proto);
        else if (p->count > 1)
                snprintf(buf, 64, "%s:%u-%u:%u-%u/%s", ip, p->host_port, p->host_port + p->count - 1,
                         p->container_port, p->container_port + p->count - 1, proto);
        else
                snprintf(buf, 64, "%s:%u:%u/%s", ip, p->host_port, p->container_port, proto);
        return buf;
}

bool silo_net_port_overlaps(const silo_net_port *a, const silo_net_port *b)
{
        if (a->proto != b->proto)
                return false;
        if (a->host_ip && b->host_ip && a->host_ip != b->host_ip)
                return false;
        unsigned a_end = a->host_port + a->count - 1u, b_end = b->host_port + b->count - 1u;
        return a->host_port <= b_end && b->host_port <= a_end;
}

int silo_net_parse_subnet(const char *text, uint32_t *ret_addr, unsigned *ret_prefix, silo_error *err)
{
        char ip[INET_ADDRSTRLEN];
        const char *slash = text ? strchr(text, '/') : NULL;
        if (!slash || (size_t) (slash - text) >= sizeof(ip))
                return silo_error_msg(err, EINVAL, "subnet '%s': expected A.B.C.D/PREFIX", text ? text : "");
        memcpy(ip, text, (size_t) (slash - text));
        ip[slash - text] = 0;
        struct in_addr a;
        if (inet_pton(AF_INET, ip, &a) != 1)
                return silo_error_msg(err, EINVAL, "subnet '%s': '%s' is not an IPv4 address", text, ip);
        char *end;
        errno = 0;
        long prefix = strtol(slash + 1, &end, 10);
        if (errno || end == slash + 1 || *end || prefix < 8 || prefix > 30)
                return silo_error_msg(err, EINVAL, "subnet '%s': prefix must be 8-30", text);
        uint32_t addr = ntohl(a.s_addr);
        uint32_t mask = 0xffffffffu << (32 - prefix);
        if (addr & ~mask)
                return silo_error_msg(err, EINVAL, "subnet '%s': host bits are set", text);
        *ret_addr = addr;
        *ret_prefix = (unsigned) prefix;
        return 0;
}
