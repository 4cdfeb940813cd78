/* Reconcile: after a crash, removes what dead containers left behind. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "net/files.h"
#include "net/internal.h"
#include "net/net.h"
#include "net/netlink.h"
#include "net/nft.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

/* ---- reconcile ---- */

static bool link_listed(const silo_nl_link *links, size_t n_links, const char *name)
{
        for (size_t i = 0; i < n_links; i++)
                if (!strcmp(links[i].name, name))
                        return true;
        return false;
}

static bool endpoint_known(const char *tag, void *userdata)
{
        silo_net *n = userdata;
        return json_object_get(net_endpoints(n), tag) != NULL;
}

int silo_net_reconcile(silo_net *n, silo_net_alive_fn alive, void *userdata, unsigned *ret_removed,
                       silo_error *err)
{
        int r = net_lock_state(n, err);
        if (r < 0)
                return r;
        unsigned removed = 0;
        silo_nl *nl;
        silo_nft *nft;
        _cleanup_free_ silo_nl_link *links = NULL;
        size_t n_links = 0;
        r = net_host_nl(n, &nl, err);
        if (r >= 0)
                r = net_host_nft(n, &nft, err);
        if (r >= 0)
                r = silo_nl_link_list(nl, &links, &n_links, err);
        if (r < 0)
                goto out;

        /* Dead endpoints: everything of theirs goes. */
        for (bool again = true; again;) {
                again = false;
                const char *id;
                json_t *ep;
                json_object_foreach(net_endpoints(n), id, ep) {
                        bool live;
                        const char *mode = net_jstr(ep, "mode") ? net_jstr(ep, "mode") : "";
                        if (alive)
                                live = alive(id, ep, userdata);
                        else if (!strcmp(mode, "bridge"))
                                live = net_jstr(ep, "veth") && link_listed(links, n_links, net_jstr(ep, "veth"));
                        else if (!strcmp(mode, "host"))
                                live = true;
                        else
                                live = net_jstr(ep, "netns") && access(net_jstr(ep, "netns"), F_OK) == 0;
                        if (live)
                                continue;
                        r = net_detach_locked(n, id, false, err);
                        if (r < 0)
                                goto out;
                        removed++;
                        again = true;   /* the object changed under the iterator */
                        break;
                }
        }
        /* silo veths nobody owns (a crash between veth and record removal). */
        for (size_t i = 0; i < n_links; i++) {
                if (!net_is_silo_veth(links[i].name) || strcmp(links[i].kind, "veth") != 0)
                        continue;
                bool owned = false;
                const char *id;
                json_t *ep;
                json_object_foreach(net_endpoints(n), id, ep)
                        if (net_endpoint_owns_veth(ep, links[i].name))
                                owned = true;
                if (owned)
                        continue;
                r = silo_nl_link_delete(nl, links[i].name, err);
                if (r < 0 && r != -ENODEV)
                        goto out;
                removed++;
        }
        /* Port rules nobody owns. */
        unsigned stray = 0;
        r = silo_nft_delete_tagged(nft, SILO_NFT_CONTAINER_TAG, endpoint_known, n, &stray, err);
        if (r < 0)
                goto out;
        removed += stray;
        /* Networks whose bridge survived get their rules back (e.g. after a
         * flushed ruleset); live endpoints their ports. */
        {
                silo_nft_buf b = {};
                silo_nft_skeleton(&b);
                const char *name;
                json_t *net;
                bool any = false;
                json_object_foreach(net_networks(n), name, net) {
                        uint32_t a;
                        unsigned p;
                        const char *br = net_jstr(net, "bridge");
                        if (!br || net_network_subnet(net, &a, &p, NULL) < 0 || !link_listed(links, n_links, br))
                                continue;
                        silo_nft_network_rules(&b, name, br, a, p, json_is_true(json_object_get(net, "internal")));
                        any = true;
                }
                const char *id;
                json_t *ep;
                json_object_foreach(net_endpoints(n), id, ep) {
                        _cleanup_free_ silo_net_port *ports = NULL;
                        size_t np = 0;
                        uint32_t ip = 0;
                        if (net_endpoint_ports(ep, &ports, &np, NULL) < 0 || np == 0 ||
                            net_parse_ip(net_jstr(ep, "ip"), &ip) < 0)
                                continue;
                        silo_nft_port_rules(&b, id, ip, ports, np);
                        any = true;
                }
                if (b.oom)
                        r = silo_error_set(err, ENOMEM, "nftables rules");
                else if (any) {
                        /* One transaction: no moment without the rules. */
                        _cleanup_free_ char *batch = NULL;
                        if (asprintf(&batch, "add table ip %s\ndelete table ip %s\n%s", SILO_NFT_TABLE,
                                     SILO_NFT_TABLE, b.data) < 0)
                                r = silo_error_set(err, ENOMEM, "nftables rules");
                        else
                                r = silo_nft_run(nft, batch, err);
                } else if (json_object_size(net_networks(n)) == 0)
                        r = silo_nft_delete_table(nft, err);
                free(b.data);
                if (r < 0)
                        goto out;
        }
        r = net_save_state(n, err);
out:
        net_unlock_state(n);
        if (r >= 0 && ret_removed)
                *ret_removed = removed;
        return r < 0 ? r : 0;
}
