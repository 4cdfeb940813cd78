/* Per-container resolv.conf, hosts and hostname files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "net/files.h"
#include "net/internal.h"
#include "net/nft.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define RESOLV_MAX_BYTES (64 * 1024)

static bool is_loopback_resolver(const char *addr, size_t len)
{
        return (len >= 4 && !strncmp(addr, "127.", 4)) || (len == 3 && !strncmp(addr, "::1", 3)) ||
               (len == 7 && !strncmp(addr, "0.0.0.0", 7));
}

int silo_net_resolv_conf(const char *host_path, const char *const *fallback, char **ret, silo_error *err)
{
        static const char *const default_fallback[] = { "8.8.8.8", "8.8.4.4", NULL };
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = silo_read_file_at(AT_FDCWD, host_path, RESOLV_MAX_BYTES, &text, &len, err);
        if (r == -ENOENT) {
                silo_error_clear(err);
                text = strdup("");
                if (!text)
                        return silo_error_set(err, ENOMEM, "resolv.conf");
        } else if (r < 0)
                return r;

        silo_nft_buf out = {};
        bool have_server = false;
        for (char *line = text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                size_t llen = next ? (size_t) (next - line) : strlen(line);
                if (next)
                        next++;
                const char *p = line;
                if (llen > 10 && !strncmp(p, "nameserver", 10) && (p[10] == ' ' || p[10] == '\t')) {
                        const char *a = p + 10;
                        while (*a == ' ' || *a == '\t')
                                a++;
                        size_t alen = strcspn(a, " \t\n#");
                        if (is_loopback_resolver(a, alen))
                                continue;
                        have_server = true;
                }
                silo_nft_buf_printf(&out, "%.*s\n", (int) llen, line);
        }
        if (!have_server) {
                silo_nft_buf_printf(&out, "# no usable resolver on the host; defaults added by silo\n");
                for (const char *const *s = fallback ? fallback : default_fallback; *s; s++)
                        silo_nft_buf_printf(&out, "nameserver %s\n", *s);
        }
        if (out.oom) {
                free(out.data);
                return silo_error_set(err, ENOMEM, "resolv.conf");
        }
        *ret = out.data;
        return 0;
}

int silo_net_write_file(const char *dir, const char *name, const char *content, silo_error *err)
{
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return silo_error_set(err, errno, "open %s", dir);
        /* In place, not rename: a bind mount of the old inode must see it. */
        _cleanup_close_ int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
                                        0644);
        if (fd < 0)
                return silo_error_set(err, errno, "open %s/%s", dir, name);
        size_t len = strlen(content);
        for (size_t off = 0; off < len;) {
                ssize_t w = write(fd, content + off, len - off);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return silo_error_set(err, errno, "write %s/%s", dir, name);
                }
                off += (size_t) w;
        }
        return 0;
}

/* ---- hosts and resolv.conf of an endpoint ---- */

/* The names of an endpoint on one hosts line: its own line has its host
 * name first; everyone else's has the name, then the aliases it has on
 * that network (link: the endpoint for its first network, else the
 * element of "extra"). */
static void host_names(silo_nft_buf *b, json_t *ep, json_t *link, bool self)
{
        const char *name = net_jstr(ep, "name"), *host = net_jstr(ep, "hostname");
        if (self && host && strcmp(host, name) != 0)
                silo_nft_buf_printf(b, "%s ", host);
        silo_nft_buf_printf(b, "%s", name);
        size_t i;
        json_t *a;
        json_array_foreach(json_object_get(link, "aliases"), i, a)
                if (json_string_value(a) && strcmp(json_string_value(a), name) != 0)
                        silo_nft_buf_printf(b, " %s", json_string_value(a));
        silo_nft_buf_printf(b, "\n");
}

/* Whether the containers on network know each other by name. */
static bool network_names(silo_net *n, const char *network)
{
        return !n->default_private || !network || strcmp(network, SILO_NET_DEFAULT_NETWORK) != 0;
}

/* The /etc/hosts of an endpoint: itself first, then its network's others. */
char *net_hosts_content(silo_net *n, json_t *self)
{
        silo_nft_buf b = {};
        silo_nft_buf_printf(&b, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        const char *self_ip = net_jstr(self, "ip");
        silo_nft_buf_printf(&b, "%s\t", self_ip ? self_ip : "127.0.1.1");
        host_names(&b, self, self, true);
        /* Everyone sharing a network with it, under the address on that network. */
        json_t *extra = json_object_get(self, "extra");
        for (size_t k = 0; k <= json_array_size(extra); k++) {
                const char *net = net_jstr(k == 0 ? self : json_array_get(extra, k - 1), "network");
                /* No network (none, host, silo_net_write_files()): nobody
                 * else, and the state need not be loaded. */
                if (!net || !network_names(n, net))
                        continue;
                const char *id;
                json_t *ep;
                json_object_foreach(net_endpoints(n), id, ep) {
                        json_t *l = ep == self ? NULL : net_endpoint_link_on(ep, net);
                        if (l && net_jstr(l, "ip")) {
                                silo_nft_buf_printf(&b, "%s\t", net_jstr(l, "ip"));
                                host_names(&b, ep, l, false);
                        }
                }
        }
        /* --add-host entries: "name:address" or "name=address". */
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(self, "extra_hosts"), i, x) {
                const char *e = json_string_value(x);
                size_t nlen = e ? strcspn(e, ":=") : 0;
                if (e && e[nlen])
                        silo_nft_buf_printf(&b, "%s\t%.*s\n", e + nlen + 1, (int) nlen, e);
        }
        if (b.oom) {
                free(b.data);
                return NULL;
        }
        return b.data;
}

/* --dns, --dns-search, --dns-option replace the host's lines of that kind. */
static int resolv_override(json_t *ep, char **text)
{
        static const struct { const char *key, *directive; } kinds[] = {
                { "dns", "nameserver" }, { "dns_search", "search" }, { "dns_options", "options" },
        };
        bool any = false;
        for (size_t k = 0; k < ARRAY_SIZE(kinds); k++)
                any |= json_array_size(json_object_get(ep, kinds[k].key)) > 0;
        if (!any)
                return 0;
        silo_nft_buf b = {};
        for (char *line = *text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                size_t llen = next ? (size_t) (next - line) : strlen(line);
                if (next)
                        next++;
                bool drop = false;
                for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
                        size_t dl = strlen(kinds[k].directive);
                        if (json_array_size(json_object_get(ep, kinds[k].key)) > 0 && llen > dl &&
                            !strncmp(line, kinds[k].directive, dl) && (line[dl] == ' ' || line[dl] == '\t'))
                                drop = true;
                }
                /* The fallback comment goes with the fallback servers. */
                if (json_array_size(json_object_get(ep, "dns")) > 0 && !strncmp(line, "# no usable resolver", 20))
                        drop = true;
                if (!drop)
                        silo_nft_buf_printf(&b, "%.*s\n", (int) llen, line);
        }
        for (size_t k = 0; k < ARRAY_SIZE(kinds); k++) {
                json_t *list = json_object_get(ep, kinds[k].key);
                if (json_array_size(list) == 0)
                        continue;
                bool one_line = k > 0;
                size_t i;
                json_t *v;
                if (one_line)
                        silo_nft_buf_printf(&b, "%s", kinds[k].directive);
                json_array_foreach(list, i, v) {
                        if (one_line)
                                silo_nft_buf_printf(&b, " %s", json_string_value(v));
                        else
                                silo_nft_buf_printf(&b, "%s %s\n", kinds[k].directive, json_string_value(v));
                }
                if (one_line)
                        silo_nft_buf_printf(&b, "\n");
        }
        if (b.oom) {
                free(b.data);
                return -ENOMEM;
        }
        free(*text);
        *text = b.data ? b.data : strdup("");
        return *text ? 0 : -ENOMEM;
}

int net_write_endpoint_files(silo_net *n, json_t *ep, json_t *owner, silo_error *err)
{
        const char *dir = net_jstr(ep, "files");
        if (!dir)
                return 0;
        const char *mode = net_jstr(ep, "mode");
        _cleanup_free_ char *hosts = NULL, *resolv = NULL, *hostname = NULL;
        if (!strcmp(mode, "host")) {
                size_t len;
                int r = silo_read_file_at(AT_FDCWD, "/etc/hosts", 1 << 20, &hosts, &len, err);
                if (r < 0)
                        return r;
                r = silo_read_file_at(AT_FDCWD, n->resolv_path, 1 << 20, &resolv, &len, err);
                if (r < 0)
                        return r;
                char h[HOST_NAME_MAX + 2] = "";
                gethostname(h, sizeof(h) - 1);
                if (asprintf(&hostname, "%s\n", h) < 0)
                        hostname = NULL;
        } else {
                /* container: mode shows the owner's identity, like its namespace. */
                json_t *who = owner ? owner : ep;
                hosts = net_hosts_content(n, who);
                int r = silo_net_resolv_conf(n->resolv_path, (const char *const *) n->fallback_dns, &resolv, err);
                if (r < 0)
                        return r;
                r = resolv_override(ep, &resolv);
                if (r < 0)
                        return silo_error_set(err, -r, "resolv.conf");
                const char *host = net_jstr(who, "hostname") ? net_jstr(who, "hostname") : net_jstr(who, "name");
                if (asprintf(&hostname, "%s\n", host) < 0)
                        hostname = NULL;
        }
        if (!hosts || !hostname || !resolv)
                return silo_error_set(err, ENOMEM, "network files");
        int r = silo_net_write_file(dir, "hosts", hosts, err);
        if (r >= 0)
                r = silo_net_write_file(dir, "hostname", hostname, err);
        if (r >= 0)
                r = silo_net_write_file(dir, "resolv.conf", resolv, err);
        return r;
}

/* Keeps everyone's /etc/hosts current as containers come and go; a missing
 * directory (container gone without detach) is not an error here. */
void net_refresh_network_hosts(silo_net *n, const char *network, const char *skip_id)
{
        if (!network || !network_names(n, network))
                return;
        const char *id;
        json_t *ep;
        json_object_foreach(net_endpoints(n), id, ep) {
                if (!net_jstr(ep, "files") || !net_endpoint_link_on(ep, network) || (skip_id && !strcmp(id, skip_id)))
                        continue;
                _cleanup_free_ char *hosts = net_hosts_content(n, ep);
                if (hosts)
                        (void) silo_net_write_file(net_jstr(ep, "files"), "hosts", hosts, NULL);
        }
}


static int strv_member(json_t *ep, const char *key, const char *const *v, bool (*ok)(const char *), silo_error *err)
{
        if (!v || !v[0])
                return 0;
        json_t *a = json_array();
        if (!a || json_object_set_new(ep, key, a) < 0)
                return silo_error_set(err, ENOMEM, "network");
        for (size_t i = 0; v[i]; i++) {
                if (i >= 64)
                        return silo_error_msg(err, E2BIG, "network %s: at most 64 entries", key);
                if (!ok(v[i]))
                        return silo_error_msg(err, EINVAL, "network %s: '%s' is not valid", key, v[i]);
                json_array_append_new(a, json_string(v[i]));
        }
        return 0;
}

static bool host_name_ok(const char *s)
{
        return net_valid_name(s, 63);
}

int net_link_aliases(json_t *link, const char *const *aliases, silo_error *err)
{
        return strv_member(link, "aliases", aliases, host_name_ok, err);
}

/* A resolv.conf or hosts word: printable, no blanks, bounded. */
static bool word_ok(const char *s)
{
        size_t len = strlen(s);
        if (len == 0 || len > 255)
                return false;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] <= ' ' || s[i] == 0x7f || s[i] == '#')
                        return false;
        return true;
}

static bool extra_host_ok(const char *s)
{
        size_t nlen = strcspn(s, ":=");
        if (!word_ok(s) || nlen == 0 || !s[nlen])
                return false;
        struct in_addr a4;
        struct in6_addr a6;
        const char *addr = s + nlen + 1;
        return inet_pton(AF_INET, addr, &a4) == 1 || inet_pton(AF_INET6, addr, &a6) == 1;
}

static bool nameserver_ok(const char *s)
{
        struct in_addr a4;
        struct in6_addr a6;
        return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1;
}

int net_endpoint_names(json_t *ep, const silo_net_attach_options *o, silo_error *err)
{
        if (o->hostname) {
                if (!net_valid_name(o->hostname, 63))
                        return silo_error_msg(err, EINVAL, "host name '%s' is not valid", o->hostname);
                json_object_set_new(ep, "hostname", json_string(o->hostname));
        }
        int r = net_link_aliases(ep, o->aliases, err);
        if (r >= 0)
                r = strv_member(ep, "extra_hosts", o->extra_hosts, extra_host_ok, err);
        if (r >= 0)
                r = strv_member(ep, "dns", o->dns, nameserver_ok, err);
        if (r >= 0)
                r = strv_member(ep, "dns_search", o->dns_search, word_ok, err);
        if (r >= 0)
                r = strv_member(ep, "dns_options", o->dns_options, word_ok, err);
        return r;
}
