/* Internal: what the parts of the network library share (state.c: the
 * locked state document and naming helpers; network.c: networks and their
 * bridges; net.c: endpoints; files.c: per-container files; reconcile.c). */
#pragma once

#include <arpa/inet.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "net/net.h"
#include "net/netlink.h"
#include "net/nft.h"
#include "util/error.h"

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
        bool default_private;           /* no names of others on silo0 */
        silo_nl *nl;                    /* host namespace, opened on first use */
        silo_nft *nft;
        /* Valid while locked: */
        int lock_fd;
        json_t *state;
        char *saved;                    /* the state file's text as read or last written */
};

/* ---- state.c ---- */
/* Takes the flock and loads (and checks) the state; unlock drops both. */
int net_lock_state(silo_net *n, silo_error *err);
void net_unlock_state(silo_net *n);
int net_save_state(silo_net *n, silo_error *err);
json_t *net_networks(silo_net *n);
json_t *net_endpoints(silo_net *n);
const char *net_jstr(json_t *o, const char *key);
/* The endpoint's link on a network: the endpoint itself for its primary
 * network, an element of "extra" for networks connected later, else NULL. */
json_t *net_endpoint_link_on(json_t *ep, const char *network);
bool net_endpoint_owns_veth(json_t *ep, const char *veth);
/* Netlink and nftables handles of the host namespace, opened on first use. */
int net_host_nl(silo_net *n, silo_nl **ret, silo_error *err);
int net_host_nft(silo_net *n, silo_nft **ret, silo_error *err);
bool net_valid_name(const char *s, size_t max);
uint64_t net_fnv1a(const char *s);
/* "sv" + 10 hex digits of the id's hash. */
void net_veth_name(const char *container_id, char buf[IFNAMSIZ]);
bool net_is_silo_veth(const char *name);
const char *net_ip_text(uint32_t host_order, char buf[INET_ADDRSTRLEN]);
int net_parse_ip(const char *text, uint32_t *ret);
int net_network_subnet(json_t *net, uint32_t *ret_addr, unsigned *ret_prefix, silo_error *err);

/* ---- network.c ---- */
int net_add_network(silo_net *n, const char *name, const silo_net_network_options *o, json_t **ret_net,
                    silo_error *err);
/* The bridge exists, has the gateway address, is up, and its rules are in place. */
int net_ensure_bridge(silo_net *n, json_t *net, silo_nl_link *ret_link, silo_error *err);
/* silo_nft_delete_tagged() keep function for an exact tag. */
bool net_exact_tag(const char *rest, void *userdata);

/* ---- net.c ---- */
int net_endpoint_ports(json_t *ep, silo_net_port **ret, size_t *ret_n, silo_error *err);
/* Undoes a bridge endpoint's kernel objects (not its record); keep_veths
 * leaves the veths to the kernel's namespace cleanup. */
int net_teardown_endpoint(silo_net *n, const char *id, json_t *ep, bool keep_veths, silo_error *err);
/* netns_going: the caller destroys the namespace next (silo_net_release). */
int net_detach_locked(silo_net *n, const char *id, bool netns_going, silo_error *err);

/* ---- files.c ---- */
char *net_hosts_content(silo_net *n, json_t *self);
int net_write_endpoint_files(silo_net *n, json_t *ep, json_t *owner, silo_error *err);
/* Rewrites (in place) the hosts files of everyone on network but skip_id. */
void net_refresh_network_hosts(silo_net *n, const char *network, const char *skip_id);
/* Records (validated) aliases on a link: an endpoint or an element of its "extra". */
int net_link_aliases(json_t *link, const char *const *aliases, silo_error *err);
/* Records hostname, aliases, extra hosts and DNS settings in ep (validated). */
int net_endpoint_names(json_t *ep, const silo_net_attach_options *o, silo_error *err);
