/* nftables through libnftables: rules are written in nft's own language and
 * committed as one atomic batch; deletions find rules by their comment in a
 * JSON listing of the table. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <nftables/libnftables.h>

#include "net/nft.h"
#include "util/cleanup.h"

/* A sane ceiling on the size of silo's own table listing. */
#define NFT_MAX_RULES 200000

struct silo_nft {
        struct nft_ctx *ctx;
};

int silo_nft_open(silo_nft **ret, silo_error *err)
{
        silo_nft *n = calloc(1, sizeof(*n));
        if (!n)
                return silo_error_set(err, ENOMEM, "nftables context");
        n->ctx = nft_ctx_new(NFT_CTX_DEFAULT);
        if (!n->ctx) {
                free(n);
                return silo_error_msg(err, ENOMEM, "nftables: cannot create a context");
        }
        /* The library never prints: keep nft's output and errors in memory. */
        if (nft_ctx_buffer_output(n->ctx) < 0 || nft_ctx_buffer_error(n->ctx) < 0) {
                nft_ctx_free(n->ctx);
                free(n);
                return silo_error_msg(err, ENOMEM, "nftables: cannot buffer output");
        }
        *ret = n;
        return 0;
}

silo_nft *silo_nft_free(silo_nft *n)
{
        if (n) {
                nft_ctx_free(n->ctx);
                free(n);
        }
        return NULL;
}

/* nft's first error line, without the echo of the command. */
static void first_line(const char *text, char *buf, size_t size)
{
        if (!text)
                text = "";
        size_t len = strcspn(text, "\n");
        if (len >= size)
                len = size - 1;
        memcpy(buf, text, len);
        buf[len] = 0;
}

int silo_nft_run(silo_nft *n, const char *cmds, silo_error *err)
{
        nft_ctx_output_set_flags(n->ctx, 0);
        if (nft_run_cmd_from_buffer(n->ctx, cmds) != 0) {
                char line[512];
                first_line(nft_ctx_get_error_buffer(n->ctx), line, sizeof(line));
                return silo_error_msg(err, EINVAL, "nftables: %s", line[0] ? line : "command failed");
        }
        /* Drain the buffers for the next command. */
        (void) nft_ctx_get_output_buffer(n->ctx);
        (void) nft_ctx_get_error_buffer(n->ctx);
        return 0;
}

void silo_nft_buf_printf(silo_nft_buf *b, const char *fmt, ...)
{
        if (b->oom)
                return;
        for (int attempt = 0; attempt < 2; attempt++) {
                va_list ap;
                va_start(ap, fmt);
                int w = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->cap - b->len : 0, fmt, ap);
                va_end(ap);
                if (w < 0) {
                        b->oom = true;
                        return;
                }
                if (b->data && b->len + (size_t) w < b->cap) {
                        b->len += (size_t) w;
                        return;
                }
                size_t cap = b->cap ? b->cap : 1024;
                while (cap < b->len + (size_t) w + 1)
                        cap *= 2;
                char *d = realloc(b->data, cap);
                if (!d) {
                        b->oom = true;
                        return;
                }
                b->data = d;
                b->cap = cap;
        }
}

void silo_nft_skeleton(silo_nft_buf *b)
{
        silo_nft_buf_printf(b,
                "add table ip " SILO_NFT_TABLE "\n"
                "add chain ip " SILO_NFT_TABLE " prerouting { type nat hook prerouting priority dstnat; policy accept; }\n"
                "add chain ip " SILO_NFT_TABLE " output { type nat hook output priority -100; policy accept; }\n"
                "add chain ip " SILO_NFT_TABLE " postrouting { type nat hook postrouting priority srcnat; policy accept; }\n"
                "add chain ip " SILO_NFT_TABLE " forward { type filter hook forward priority filter; policy accept; }\n"
                "add set ip " SILO_NFT_TABLE " bridges { type ifname; }\n");
}

static const char *ip_text(uint32_t host_order, char buf[INET_ADDRSTRLEN])
{
        uint32_t a = htonl(host_order);
        return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

void silo_nft_network_rules(silo_nft_buf *b, const char *network, const char *bridge,
                            uint32_t subnet, unsigned prefix, bool internal)
{
        char net[INET_ADDRSTRLEN];
        ip_text(subnet, net);
        const char *t = SILO_NFT_TABLE;
        /* Outbound NAT; loopback-sourced hairpin (route_localnet lets 127/8
         * leave through the bridge, masquerade gives it a real source);
         * container-to-published-port on the same network needs a masquerade
         * too, or the reply would bypass the DNAT (no interface match: with
         * br_netfilter the DNAT'ed frame is bridged straight back, and the
         * hooks see bridge ports rather than the bridge). */
        silo_nft_buf_printf(b,
                "add rule ip %s postrouting ip saddr %s/%u oifname != \"%s\" masquerade comment \"%s%s\"\n"
                "add rule ip %s postrouting oifname \"%s\" ip saddr 127.0.0.0/8 masquerade comment \"%s%s\"\n"
                "add rule ip %s postrouting ip saddr %s/%u ip daddr %s/%u ct status dnat masquerade comment \"%s%s\"\n"
                "add element ip %s bridges { \"%s\" }\n"
                "add rule ip %s forward iifname \"%s\" oifname @bridges oifname != \"%s\" drop comment \"%s%s\"\n",
                t, net, prefix, bridge, SILO_NFT_NETWORK_TAG, network,
                t, bridge, SILO_NFT_NETWORK_TAG, network,
                t, net, prefix, net, prefix, SILO_NFT_NETWORK_TAG, network,
                t, bridge,
                t, bridge, bridge, SILO_NFT_NETWORK_TAG, network);
        /* Internal: nothing leaves the bridge but towards its own members
         * (the masquerade above then never matches). */
        if (internal)
                silo_nft_buf_printf(b,
                        "add rule ip %s forward iifname \"%s\" oifname != \"%s\" drop comment \"%s%s\"\n"
                        "add rule ip %s forward oifname \"%s\" iifname != \"%s\" drop comment \"%s%s\"\n",
                                    t, bridge, bridge, SILO_NFT_NETWORK_TAG, network,
                                    t, bridge, bridge, SILO_NFT_NETWORK_TAG, network);
}

static void port_rule(silo_nft_buf *b, const char *chain, const char *container_id, const char *target,
                      const silo_net_port *p, uint16_t host_port, uint16_t host_end, int to_port)
{
        const char *proto = p->proto == IPPROTO_UDP ? "udp" : "tcp";
        char daddr[64] = "";
        if (p->host_ip) {
                char ip[INET_ADDRSTRLEN];
                snprintf(daddr, sizeof(daddr), "ip daddr %s ", ip_text(ntohl(p->host_ip), ip));
        }
        char dport[16];
        if (host_end != host_port)
                snprintf(dport, sizeof(dport), "%u-%u", host_port, host_end);
        else
                snprintf(dport, sizeof(dport), "%u", host_port);
        char to[40];
        if (to_port >= 0)
                snprintf(to, sizeof(to), "%s:%d", target, to_port);
        else
                snprintf(to, sizeof(to), "%s", target);
        silo_nft_buf_printf(b, "add rule ip %s %s fib daddr type local %s%s dport %s dnat to %s comment \"%s%s\"\n",
                            SILO_NFT_TABLE, chain, daddr, proto, dport, to, SILO_NFT_CONTAINER_TAG, container_id);
}

void silo_nft_port_rules(silo_nft_buf *b, const char *container_id, uint32_t container_ip,
                         const silo_net_port *ports, size_t n_ports)
{
        char target[INET_ADDRSTRLEN];
        ip_text(container_ip, target);
        static const char *const chains[] = { "prerouting", "output" };
        for (size_t c = 0; c < ARRAY_SIZE(chains); c++)
                for (size_t i = 0; i < n_ports; i++) {
                        const silo_net_port *p = &ports[i];
                        uint16_t end = (uint16_t) (p->host_port + p->count - 1);
                        if (p->host_port == p->container_port) {
                                /* Same numbers: one rule, the port is kept. */
                                port_rule(b, chains[c], container_id, target, p, p->host_port, end,
                                          p->count == 1 ? p->container_port : -1);
                                continue;
                        }
                        for (uint16_t k = 0; k < p->count; k++)
                                port_rule(b, chains[c], container_id, target, p,
                                          (uint16_t) (p->host_port + k), (uint16_t) (p->host_port + k),
                                          p->container_port + k);
                }
}

/* Lists the table as JSON; *ret = NULL when the table does not exist. */
static int list_table(silo_nft *n, json_t **ret, silo_error *err)
{
        nft_ctx_output_set_flags(n->ctx, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);
        int r = nft_run_cmd_from_buffer(n->ctx, "list table ip " SILO_NFT_TABLE);
        nft_ctx_output_set_flags(n->ctx, 0);
        const char *out = nft_ctx_get_output_buffer(n->ctx);
        const char *errtext = nft_ctx_get_error_buffer(n->ctx);
        if (r != 0) {
                if (errtext && strstr(errtext, "No such file or directory")) {
                        *ret = NULL;
                        return 0;
                }
                char line[512];
                first_line(errtext, line, sizeof(line));
                return silo_error_msg(err, EIO, "nftables: list table ip " SILO_NFT_TABLE ": %s", line);
        }
        json_error_t jerr;
        json_t *doc = json_loads(out ? out : "", 0, &jerr);
        if (!doc)
                return silo_error_msg(err, EIO, "nftables: unreadable JSON listing: %s", jerr.text);
        *ret = doc;
        return 0;
}

int silo_nft_delete_tagged(silo_nft *n, const char *prefix, silo_nft_keep_fn keep, void *userdata,
                           unsigned *ret_deleted, silo_error *err)
{
        _cleanup_json_ json_t *doc = NULL;
        int r = list_table(n, &doc, err);
        if (r < 0)
                return r;
        unsigned deleted = 0;
        if (doc) {
                json_t *items = json_object_get(doc, "nftables");
                size_t plen = strlen(prefix);
                silo_nft_buf b = {};
                size_t i;
                json_t *item;
                json_array_foreach(items, i, item) {
                        if (i >= NFT_MAX_RULES)
                                break;
                        json_t *rule = json_object_get(item, "rule");
                        if (!json_is_object(rule))
                                continue;
                        const char *comment = json_string_value(json_object_get(rule, "comment"));
                        const char *chain = json_string_value(json_object_get(rule, "chain"));
                        json_t *handle = json_object_get(rule, "handle");
                        if (!comment || !chain || !json_is_integer(handle) || strncmp(comment, prefix, plen) != 0)
                                continue;
                        if (keep && keep(comment + plen, userdata))
                                continue;
                        silo_nft_buf_printf(&b, "delete rule ip %s %s handle %lld\n", SILO_NFT_TABLE, chain,
                                            (long long) json_integer_value(handle));
                        deleted++;
                }
                if (b.oom) {
                        free(b.data);
                        return silo_error_set(err, ENOMEM, "nftables: delete rules");
                }
                if (b.data) {
                        r = silo_nft_run(n, b.data, err);
                        free(b.data);
                        if (r < 0)
                                return r;
                }
        }
        if (ret_deleted)
                *ret_deleted = deleted;
        return 0;
}

int silo_nft_forget_bridge(silo_nft *n, const char *bridge, silo_error *err)
{
        silo_nft_buf b = {};
        silo_nft_skeleton(&b);
        /* "add" first: deleting a missing element fails. */
        silo_nft_buf_printf(&b, "add element ip %s bridges { \"%s\" }\ndelete element ip %s bridges { \"%s\" }\n",
                            SILO_NFT_TABLE, bridge, SILO_NFT_TABLE, bridge);
        int r = b.oom ? silo_error_set(err, ENOMEM, "nftables") : silo_nft_run(n, b.data, err);
        free(b.data);
        return r;
}

int silo_nft_delete_table(silo_nft *n, silo_error *err)
{
        /* "delete" fails on a missing table, "destroy" is too new for 1.0.6. */
        return silo_nft_run(n, "add table ip " SILO_NFT_TABLE "\ndelete table ip " SILO_NFT_TABLE "\n", err);
}
