/* The network state: one JSON document under the state directory (layout
 * in net.c), guarded by an flock for the whole of every public call; and
 * the naming and address helpers every part shares. */
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

void net_unlock_state(silo_net *n)
{
        if (n->state) {
                json_decref(n->state);
                n->state = NULL;
        }
        free(n->saved);
        n->saved = NULL;
        if (n->lock_fd >= 0) {
                close(n->lock_fd);      /* drops the flock */
                n->lock_fd = -1;
        }
}

int net_lock_state(silo_net *n, silo_error *err)
{
        n->lock_fd = openat(n->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (n->lock_fd < 0)
                return silo_error_set(err, errno, "open network state lock");
        while (flock(n->lock_fd, LOCK_EX) < 0)
                if (errno != EINTR) {
                        int e = errno;
                        net_unlock_state(n);
                        return silo_error_set(err, e, "lock network state");
                }
        json_t *doc = NULL;
        size_t len = 0;
        int r = silo_read_file_at(n->dirfd, STATE_FILE, STATE_MAX_BYTES, &n->saved, &len, err);
        if (r >= 0)
                r = silo_json_load_buffer(n->saved, len, STATE_FILE, &doc, err);
        if (r == -ENOENT) {
                silo_error_clear(err);
                doc = json_object();
        } else if (r < 0) {
                net_unlock_state(n);
                return silo_error_prefix(err, "network state");
        }
        if (!json_is_object(doc)) {
                json_decref(doc);
                net_unlock_state(n);
                return silo_error_msg(err, EINVAL, "network state: not a JSON object");
        }
        static const char *const sections[] = { "networks", "endpoints" };
        for (size_t i = 0; i < ARRAY_SIZE(sections); i++) {
                json_t *s = json_object_get(doc, sections[i]);
                if (!s)
                        json_object_set_new(doc, sections[i], json_object());
                else if (!json_is_object(s)) {
                        json_decref(doc);
                        net_unlock_state(n);
                        return silo_error_msg(err, EINVAL, "network state: %s: expected an object", sections[i]);
                }
        }
        /* The file may have been edited: check what the code relies on once. */
        static const char *const net_keys[] = { "name", "bridge", "subnet", "gateway" };
        static const char *const ep_keys[] = { "id", "name", "mode" };
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(doc, "networks"), key, v)
                for (size_t i = 0; i < ARRAY_SIZE(net_keys); i++)
                        if (!json_is_object(v) || !json_is_string(json_object_get(v, net_keys[i]))) {
                                /* key belongs to doc: the message first. */
                                silo_error_msg(err, EINVAL, "network state: networks.%s.%s: expected a string",
                                               key, net_keys[i]);
                                json_decref(doc);
                                net_unlock_state(n);
                                return -EINVAL;
                        }
        json_object_foreach(json_object_get(doc, "endpoints"), key, v)
                for (size_t i = 0; i < ARRAY_SIZE(ep_keys); i++)
                        if (!json_is_object(v) || !json_is_string(json_object_get(v, ep_keys[i]))) {
                                /* key belongs to doc: the message first. */
                                silo_error_msg(err, EINVAL, "network state: endpoints.%s.%s: expected a string",
                                               key, ep_keys[i]);
                                json_decref(doc);
                                net_unlock_state(n);
                                return -EINVAL;
                        }
        n->state = doc;
        return 0;
}

int net_save_state(silo_net *n, silo_error *err)
{
        _cleanup_free_ char *text = json_dumps(n->state, JSON_INDENT(1) | JSON_SORT_KEYS);
        if (!text)
                return silo_error_set(err, ENOMEM, "network state");
        /* Unchanged since read or written under this lock: no rewrite (an
         * attach would otherwise replace the file up to three times). */
        if (n->saved && strcmp(n->saved, text) == 0)
                return 0;
        int r = silo_write_file_replace_at(n->dirfd, STATE_FILE, text, strlen(text), 0600, err);
        if (r < 0)
                return r;
        free(n->saved);
        n->saved = TAKE_PTR(text);
        return 0;
}

json_t *net_networks(silo_net *n)
{
        return json_object_get(n->state, "networks");
}

json_t *net_endpoints(silo_net *n)
{
        return json_object_get(n->state, "endpoints");
}

const char *net_jstr(json_t *o, const char *key)
{
        return json_string_value(json_object_get(o, key));
}

/* The endpoint's link on a network: the endpoint itself for its primary
 * network, an element of "extra" for networks connected later, else NULL. */
json_t *net_endpoint_link_on(json_t *ep, const char *network)
{
        if (!network)
                return NULL;
        if (net_jstr(ep, "network") && !strcmp(net_jstr(ep, "network"), network))
                return ep;
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(ep, "extra"), i, x)
                if (net_jstr(x, "network") && !strcmp(net_jstr(x, "network"), network))
                        return x;
        return NULL;
}

bool net_endpoint_owns_veth(json_t *ep, const char *veth)
{
        if (net_jstr(ep, "veth") && !strcmp(net_jstr(ep, "veth"), veth))
                return true;
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(ep, "extra"), i, x)
                if (net_jstr(x, "veth") && !strcmp(net_jstr(x, "veth"), veth))
                        return true;
        return false;
}

int net_host_nl(silo_net *n, silo_nl **ret, silo_error *err)
{
        if (!n->nl) {
                int r = silo_nl_open(-1, &n->nl, err);
                if (r < 0)
                        return r;
        }
        *ret = n->nl;
        return 0;
}

int net_host_nft(silo_net *n, silo_nft **ret, silo_error *err)
{
        if (!n->nft) {
                int r = silo_nft_open(&n->nft, err);
                if (r < 0)
                        return r;
        }
        *ret = n->nft;
        return 0;
}

int silo_net_open(const silo_net_options *o, silo_net **ret, silo_error *err)
{
        if (!o || !o->state_dir || !*o->state_dir)
                return silo_error_msg(err, EINVAL, "network: no state directory");
        _cleanup_(silo_freep) silo_net *n = calloc(1, sizeof(*n));
        if (!n)
                return silo_error_set(err, ENOMEM, "network");
        n->dirfd = -1;
        n->lock_fd = -1;
        n->default_private = o->default_network_private;
        if (o->default_subnet) {
                int r = silo_net_parse_subnet(o->default_subnet, &n->default_subnet, &n->default_prefix, err);
                if (r < 0)
                        return r;
        }
        int r = silo_mkdir_p_at(AT_FDCWD, o->state_dir, 0700, err);
        if (r < 0)
                return r;
        n->dirfd = open(o->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (n->dirfd < 0)
                return silo_error_set(err, errno, "open %s", o->state_dir);
        n->resolv_path = strdup(o->host_resolv_conf ? o->host_resolv_conf : "/etc/resolv.conf");
        if (!n->resolv_path) {
                silo_net_free(TAKE_PTR(n));
                return silo_error_set(err, ENOMEM, "network");
        }
        if (o->fallback_dns) {
                size_t count = 0;
                while (o->fallback_dns[count] && count < 16)
                        count++;
                n->fallback_dns = calloc(count + 1, sizeof(char *));
                for (size_t i = 0; n->fallback_dns && i < count; i++)
                        if (!(n->fallback_dns[i] = strdup(o->fallback_dns[i]))) {
                                silo_net_free(TAKE_PTR(n));
                                return silo_error_set(err, ENOMEM, "network");
                        }
                if (!n->fallback_dns) {
                        silo_net_free(TAKE_PTR(n));
                        return silo_error_set(err, ENOMEM, "network");
                }
        }
        *ret = TAKE_PTR(n);
        return 0;
}

silo_net *silo_net_free(silo_net *n)
{
        if (!n)
                return NULL;
        net_unlock_state(n);
        if (n->dirfd >= 0)
                close(n->dirfd);
        free(n->resolv_path);
        silo_strv_free(n->fallback_dns);
        silo_nl_free(n->nl);
        silo_nft_free(n->nft);
        free(n);
        return NULL;
}

/* ---- names and addresses ---- */

bool net_valid_name(const char *s, size_t max)
{
        size_t len = s ? strlen(s) : 0;
        if (len == 0 || len > max)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                          (i > 0 && (c == '_' || c == '.' || c == '-'));
                if (!ok)
                        return false;
        }
        return true;
}

uint64_t net_fnv1a(const char *s)
{
        uint64_t h = 0xcbf29ce484222325ull;
        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= 0x100000001b3ull;
        }
        return h;
}

/* "sv" + 10 hex digits: recognisable, and within IFNAMSIZ. */
void net_veth_name(const char *container_id, char buf[IFNAMSIZ])
{
        snprintf(buf, IFNAMSIZ, "sv%010llx", (unsigned long long) (net_fnv1a(container_id) & 0xffffffffffull));
}

bool net_is_silo_veth(const char *name)
{
        if (strlen(name) != 12 || strncmp(name, "sv", 2) != 0)
                return false;
        return strspn(name + 2, "0123456789abcdef") == 10;
}

const char *net_ip_text(uint32_t host_order, char buf[INET_ADDRSTRLEN])
{
        uint32_t a = htonl(host_order);
        return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

int net_parse_ip(const char *text, uint32_t *ret)
{
        struct in_addr a;
        if (!text || inet_pton(AF_INET, text, &a) != 1)
                return -EINVAL;
        *ret = ntohl(a.s_addr);
        return 0;
}

/* A network's subnet from the state (validated: the file may be edited). */
int net_network_subnet(json_t *net, uint32_t *ret_addr, unsigned *ret_prefix, silo_error *err)
{
        int r = silo_net_parse_subnet(net_jstr(net, "subnet"), ret_addr, ret_prefix, err);
        if (r < 0)
                return silo_error_prefix(err, "network state: network %s", net_jstr(net, "name"));
        return 0;
}
