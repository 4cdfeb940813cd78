/* Internal: silo's nftables table ("ip silo") through libnftables.
 *
 *   prerouting/output (nat): DNAT per published port (traffic to a local
 *       address), comment "silo:<container>"
 *   postrouting (nat): per network masquerade, comment "silo-net:<network>"
 *   forward (filter): per network isolation, comment "silo-net:<network>":
 *       from its bridge to any other bridge in the set "bridges" is dropped
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "net/net.h"
#include "util/error.h"

#define SILO_NFT_TABLE "silo"
#define SILO_NFT_CONTAINER_TAG "silo:"
#define SILO_NFT_NETWORK_TAG "silo-net:"

typedef struct silo_nft silo_nft;

int silo_nft_open(silo_nft **ret, silo_error *err);
silo_nft *silo_nft_free(silo_nft *n);

/* Runs a batch of nft commands atomically. */
int silo_nft_run(silo_nft *n, const char *cmds, silo_error *err);

/* Removes a bridge from the "bridges" set (its network is going). */
int silo_nft_forget_bridge(silo_nft *n, const char *bridge, silo_error *err);
/* Deletes the whole table (when the last network goes). */
int silo_nft_delete_table(silo_nft *n, silo_error *err);

/* Deletes every rule whose comment starts with prefix and for which keep
 * (if given) returns false for the rest of the comment. */
typedef bool (*silo_nft_keep_fn)(const char *tag, void *userdata);
int silo_nft_delete_tagged(silo_nft *n, const char *prefix, silo_nft_keep_fn keep, void *userdata,
                           unsigned *ret_deleted, silo_error *err);

/* Commands (appended to a malloc'd buffer) for a network's rules and for a
 * container's published ports. */
typedef struct silo_nft_buf {
        char *data;
        size_t len, cap;
        bool oom;
} silo_nft_buf;

/* The table and chains as idempotent "add" commands: every batch starts
 * with them, so a flushed ruleset heals on the next change. */
void silo_nft_skeleton(silo_nft_buf *b);
void silo_nft_buf_printf(silo_nft_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void silo_nft_network_rules(silo_nft_buf *b, const char *network, const char *bridge,
                            uint32_t subnet, unsigned prefix, bool internal);
void silo_nft_port_rules(silo_nft_buf *b, const char *container_id, uint32_t container_ip,
                         const silo_net_port *ports, size_t n_ports);
