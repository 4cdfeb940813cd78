/* Container networking (issue 5): bridge networks with a persisted IPAM, veth
 * pairs configured over netlink (libmnl), NAT and published ports as nftables
 * rules in silo's own table (libnftables), and per-container resolv.conf,
 * hosts and hostname files.
 *
 * All state lives in one JSON document under the state directory, guarded by
 * an flock: every public call takes the lock for its whole duration, so two
 * processes (CLI, daemon) never hand out the same address or port.
 *
 * What belongs to a container is named after its id: nftables rules carry the
 * comment "silo:<id>", the host end of its veth is "sv<hash of id>", its lease
 * is endpoints.<id> in the state.  Detach and reconcile remove exactly those. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "util/error.h"

#define SILO_NET_DEFAULT_NETWORK "silo0"
#define SILO_NET_MAX_PORTS_PER_SPEC 1024        /* a range publishes at most this many ports */

typedef struct silo_net silo_net;

typedef struct silo_net_options {
        const char *state_dir;          /* required; created 0700 if missing */
        const char *default_subnet;     /* silo0's subnet when first created; NULL = first free 10.211.N.0/24 */
        const char *host_resolv_conf;   /* NULL = /etc/resolv.conf */
        const char *const *fallback_dns;/* when every host resolver is loopback; NULL = 8.8.8.8, 8.8.4.4 */
        bool default_network_private;   /* silo0's containers do not know each other by name (Docker's
                                           default bridge; names only on user networks) */
} silo_net_options;

int silo_net_open(const silo_net_options *o, silo_net **ret, silo_error *err);
silo_net *silo_net_free(silo_net *n);
static inline void silo_net_freep(silo_net **n)
{
        silo_net_free(*n);
}

/* A published port: [ip:]host[-end]:container[-end][/tcp|udp].  A host port
 * of 0 (the forms "80", "ip::80") asks attach for a free one from the
 * ephemeral range; the endpoint records the port it got. */
typedef struct silo_net_port {
        uint32_t host_ip;               /* network byte order; 0 = every local address */
        uint16_t host_port;
        uint16_t container_port;
        uint16_t count;                 /* ports in the range, >= 1 */
        uint8_t proto;                  /* IPPROTO_TCP or IPPROTO_UDP */
        uint16_t host_port_last;        /* non-zero (count 1): attach picks a free host port in
                                           host_port..host_port_last ("8000-8010:80") */
} silo_net_port;

int silo_net_port_parse(const char *spec, silo_net_port *ret, silo_error *err);
/* "0.0.0.0:8080-8081:80-81/tcp"-style canonical text (buf >= 64 bytes). */
const char *silo_net_port_format(const silo_net_port *p, char buf[64]);
/* True when both would claim the same host address, port and protocol. */
bool silo_net_port_overlaps(const silo_net_port *a, const silo_net_port *b);

/* "10.1.2.0/24" -> address (host order) and prefix; rejects host bits set. */
int silo_net_parse_subnet(const char *text, uint32_t *ret_addr, unsigned *ret_prefix, silo_error *err);

typedef struct silo_net_network_options {
        const char *subnet;             /* NULL: first free 10.211.N.0/24 */
        const char *bridge;             /* NULL: "silo-<name>", or a hash when that is too long */
        unsigned mtu;                   /* 0: the kernel's default (1500); 68-65535 */
        bool internal;                  /* no outbound NAT, nothing forwarded out of the bridge */
        json_t *labels;                 /* NULL or an object kept with the network ("labels") */
} silo_net_network_options;

/* User-defined bridge networks (o may be NULL). */
int silo_net_network_create(silo_net *n, const char *name, const silo_net_network_options *o,
                            json_t **ret_info, silo_error *err);
/* Fails with EBUSY while containers are attached. */
int silo_net_network_remove(silo_net *n, const char *name, silo_error *err);
int silo_net_network_list(silo_net *n, json_t **ret, silo_error *err);
/* The network with its endpoints (id, name, address). */
int silo_net_network_inspect(silo_net *n, const char *name, json_t **ret, silo_error *err);

typedef struct silo_net_attach_options {
        const char *container_id;       /* required: [A-Za-z0-9_.-], at most 64 characters */
        const char *name;               /* host name and DNS name on the network; NULL = first 12 of id */
        const char *mode;               /* "bridge" (default), "none", "host", "container:<id>" */
        const char *network;            /* bridge mode: NULL = silo0 */
        const char *netns_path;         /* the container's network namespace ... */
        pid_t pid;                      /* ... or a process in it (used when netns_path is NULL) */
        const char *ifname;             /* inside the namespace; NULL = eth0 */
        const silo_net_port *ports;
        size_t n_ports;
        const char *files_dir;          /* NULL or a directory for hosts, hostname, resolv.conf */
        const char *hostname;           /* /etc/hostname and its own hosts line; NULL = name */
        const char *const *aliases;     /* further names of it in its networks' hosts files */
        const char *const *extra_hosts; /* "name:address" (or "name=address") lines for its hosts */
        const char *const *dns;         /* resolv.conf nameservers instead of the host's */
        const char *const *dns_search;  /* resolv.conf search domains instead of the host's */
        const char *const *dns_options; /* resolv.conf options instead of the host's */
} silo_net_attach_options;

/* Connects the namespace and records the endpoint.  On failure nothing is
 * left behind.  ret_info (optional) describes the endpoint, including
 * "netns" to join for container:<id> mode. */
int silo_net_attach(silo_net *n, const silo_net_attach_options *o, json_t **ret_info, silo_error *err);

/* The files of a container in mode none, without attach: hosts (its host
 * name on 127.0.1.1, o->extra_hosts), hostname, and resolv.conf (the host's
 * resolvers with loopback ones replaced, o->dns, dns_search, dns_options)
 * written to o->files_dir.  Nothing is recorded (no lock, no lease, no
 * state file read or written), so there is nothing to detach: removing the
 * directory undoes it.  The container's namespace is the caller's business
 * (a runtime creating a fresh one brings its loopback up).  Uses only the
 * handle's options: safe to call alongside other calls on the handle.
 * o->mode must be NULL or "none"; ports, network and aliases are refused. */
int silo_net_write_files(silo_net *n, const silo_net_attach_options *o, silo_error *err);

/* Removes the container's veth, rules and lease.  -ENOENT when unknown. */
int silo_net_detach(silo_net *n, const char *container_id, silo_error *err);

/* silo_net_detach() for a container whose network namespace the caller
 * destroys right after (silod unmounts its bind mount once the container
 * has exited): the veths are left to the kernel, which deletes them with
 * the namespace, asynchronously and off the caller's path (deleting a veth
 * synchronously waits for RCU grace periods, ~16 ms).  Rules, lease and
 * hosts entries go at once.  If another container joined the namespace
 * (container:<id>), the veths are deleted as by detach. */
int silo_net_release(silo_net *n, const char *container_id, silo_error *err);

/* Connects an already connected (bridge mode) container to a further network:
 * a veth named eth1, eth2, ... in its namespace, an address, no default
 * route.  Docker's `network connect`.  silo_net_detach() removes these too. */
int silo_net_connect(silo_net *n, const char *container_id, const char *network, json_t **ret_info,
                     silo_error *err);
/* silo_net_connect() with further names of the container on that network
 * only (Docker's `network connect --alias`). */
int silo_net_connect_aliases(silo_net *n, const char *container_id, const char *network,
                             const char *const *aliases, json_t **ret_info, silo_error *err);
/* Undoes one silo_net_connect(); the first network goes only with detach. */
int silo_net_disconnect(silo_net *n, const char *container_id, const char *network, silo_error *err);

/* The recorded endpoint of a container. */
int silo_net_endpoint(silo_net *n, const char *container_id, json_t **ret, silo_error *err);

/* Every recorded endpoint, keyed by container id (as silo_net_endpoint). */
int silo_net_endpoint_list(silo_net *n, json_t **ret, silo_error *err);

/* Decides whether a recorded container still exists (daemon: ask the
 * runtime); endpoint is its record (netns, files, ...).  Without one, a
 * bridge endpoint is alive while its host veth exists (the kernel deletes
 * the pair with the namespace), others while their namespace path exists. */
typedef bool (*silo_net_alive_fn)(const char *container_id, json_t *endpoint, void *userdata);

/* After a crash: detaches dead endpoints, deletes silo veths and silo:<id>
 * rules nobody owns, restores the table for networks whose bridge exists. */
int silo_net_reconcile(silo_net *n, silo_net_alive_fn alive, void *userdata,
                       unsigned *ret_removed, silo_error *err);

/* A new network namespace kept alive by a bind mount on path (created as an
 * empty file), the way `ip netns add` does; made on a short-lived thread so
 * the caller's own namespace never changes. */
int silo_net_netns_create(const char *path, silo_error *err);
/* Unmounts and unlinks it; the kernel destroys the namespace (and the veth
 * ends in it) once its last process is gone.  Missing path: 0. */
int silo_net_netns_remove(const char *path, silo_error *err);
