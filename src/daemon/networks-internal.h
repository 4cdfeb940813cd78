/* silod's networking, shared by networks.c (containers' networks) and
 * networks-api.c (the /networks endpoints).  Internal to src/daemon. */
#pragma once

#include <pthread.h>
#include <stdbool.h>

#include <jansson.h>

#include "net/net.h"
#include "util/error.h"

#define NET_DIR "net"
#define DEFAULT_NETWORK_DIR "/var/lib/silo/network"
#define MAX_PORT_BINDINGS 1024

struct net_held {
        struct net_held *next;
        char id[65];
        bool releasing;                 /* a thread is tearing it down */
        bool files_only;                /* mode none: only STATE/net/<id> to remove */
};

struct networks {
        pthread_mutex_t lock;           /* the library handle */
        silo_net *net;
        char *dir;                      /* STATE/net */
        struct net_held *held;          /* containers with network resources; d->lock */
};

static inline const char *jstr(json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

const char *nw_api_name(const char *lib);
const char *nw_lib_name(const char *api);
void nw_network_id(const char *api, char ret[65]);
void nw_endpoint_id(const char *ctr_id, const char *network, char ret[65]);
void nw_lock(struct networks *nw);
void nw_unlock(struct networks *nw);
const char *nw_mode_network(const char *mode);
bool nw_network_exists(struct networks *nw, const char *lib, silo_error *err, int *ret_r);
