/* Internal: the rtnetlink requests silo's networking needs, over libmnl.
 * Addresses are IPv4 in host byte order. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

typedef struct silo_nl silo_nl;

/* A socket in the calling thread's namespace (netns_fd < 0) or in another
 * one: the socket stays bound to the namespace it was created in. */
int silo_nl_open(int netns_fd, silo_nl **ret, silo_error *err);
silo_nl *silo_nl_free(silo_nl *nl);

typedef struct silo_nl_link {
        int index;
        int master;
        unsigned mtu;
        unsigned flags;
        char name[16];
        char kind[16];
} silo_nl_link;

/* -ENODEV when there is no such link. */
int silo_nl_link_get(silo_nl *nl, const char *name, silo_nl_link *ret, silo_error *err);
/* Every link; *ret is malloc'd. */
int silo_nl_link_list(silo_nl *nl, silo_nl_link **ret, size_t *ret_n, silo_error *err);

/* mtu 0: the kernel's default. */
int silo_nl_bridge_create(silo_nl *nl, const char *name, unsigned mtu, silo_error *err);
/* Creates host_name here and peer_name in peer_netns_fd, both with the given
 * MTU, the host end enslaved to master_index and up. */
int silo_nl_veth_create(silo_nl *nl, const char *host_name, int master_index, unsigned mtu,
                        const char *peer_name, int peer_netns_fd, const uint8_t peer_mac[6],
                        silo_error *err);
/* Lets the bridge send a frame back out of the port it came in on: a
 * container reaching its own published port (br_netfilter DNATs at the
 * bridge and forwards back to the same port). */
int silo_nl_bridge_port_hairpin(silo_nl *nl, int index, silo_error *err);
/* -ENODEV when absent. */
int silo_nl_link_delete(silo_nl *nl, const char *name, silo_error *err);
int silo_nl_link_up(silo_nl *nl, int index, silo_error *err);
/* EEXIST is not an error. */
int silo_nl_addr_add(silo_nl *nl, int index, uint32_t addr, unsigned prefix, silo_error *err);
int silo_nl_route_default(silo_nl *nl, uint32_t gateway, silo_error *err);

/* True when an IPv4 route of the main table overlaps addr/prefix (default
 * routes do not count). */
int silo_nl_route_overlaps(silo_nl *nl, uint32_t addr, unsigned prefix, bool *ret, silo_error *err);
