/* Docker networking for silod: /networks/..., and the network of every
 * container run (docs/NETWORK.md, "silod").
 *
 * silod makes a container's network namespace itself before the monitor
 * creates the container (a bind mount at STATE/net/<id>/netns, as podman
 * with netavark does), connects it through libsilo's network library and
 * points config.json's network namespace at it; /etc/hosts, /etc/hostname
 * and /etc/resolv.conf are bind mounts of files in STATE/net/<id>/.  All of
 * it goes once the container stops (the poller sees the exit) or is
 * removed; at startup whatever belongs to containers that no longer run is
 * reconciled away.
 *
 * Mode none is cheaper: no namespace file (the runtime makes a fresh
 * namespace from config.json and brings its loopback up) and no lease in
 * the library's state (silo_net_write_files() only writes the files), so
 * start and release never touch the host-wide state file; releasing it
 * removes STATE/net/<id>.
 *
 * Docker's predefined network "bridge" is the library's silo0; "host" and
 * "none" are modes, not networks.  Locks: the library handle is used by one
 * thread at a time (nw->lock); nw->lock may be taken before d->lock, never
 * the other way round. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "image/image.h"
#include "net/net.h"
#include "silod.h"
#include "storage/digest.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#include "networks-internal.h"


/* Docker's names for the library's networks and back. */
const char *nw_api_name(const char *lib)
{
        return strcmp(lib, SILO_NET_DEFAULT_NETWORK) == 0 ? "bridge" : lib;
}

const char *nw_lib_name(const char *api)
{
        return strcmp(api, "bridge") == 0 || strcmp(api, "default") == 0 ? SILO_NET_DEFAULT_NETWORK : api;
}

void nw_network_id(const char *api, char ret[65])
{
        char digest[SILO_DIGEST_SIZE];
        _cleanup_free_ char *key = NULL;
        if (asprintf(&key, "silo-network:%s", api) < 0 || silo_digest_buffer(key, strlen(key), digest) < 0) {
                snprintf(ret, 65, "%064x", 0);
                return;
        }
        snprintf(ret, 65, "%s", silo_digest_hex(digest));
}

void nw_endpoint_id(const char *ctr_id, const char *network, char ret[65])
{
        char digest[SILO_DIGEST_SIZE];
        _cleanup_free_ char *key = NULL;
        if (asprintf(&key, "silo-endpoint:%s/%s", ctr_id, network) < 0 ||
            silo_digest_buffer(key, strlen(key), digest) < 0) {
                snprintf(ret, 65, "%064x", 0);
                return;
        }
        snprintf(ret, 65, "%s", silo_digest_hex(digest));
}

void nw_lock(struct networks *nw)
{
        pthread_mutex_lock(&nw->lock);
}

void nw_unlock(struct networks *nw)
{
        pthread_mutex_unlock(&nw->lock);
}

/* ---- a container's settings (HostConfig, NetworkingConfig) ---- */

struct net_settings {
        const char *mode;               /* "bridge", "none", "host", "container:<id>", or a network */
        json_t *port_bindings;
        bool publish_all;
        const char **dns, **dns_search, **dns_options, **extra_hosts;
};

static void net_settings_done(struct net_settings *s)
{
        free(s->dns);
        free(s->dns_search);
        free(s->dns_options);
        free(s->extra_hosts);
}

static const struct silo_json_field net_fields[] = {
        { "NetworkMode", SILO_JSON_STRING, offsetof(struct net_settings, mode), SILO_JSON_NULLABLE },
        { "PortBindings", SILO_JSON_OBJECT, offsetof(struct net_settings, port_bindings), SILO_JSON_NULLABLE },
        { "PublishAllPorts", SILO_JSON_BOOL, offsetof(struct net_settings, publish_all), SILO_JSON_NULLABLE },
        { "Dns", SILO_JSON_STRV, offsetof(struct net_settings, dns), SILO_JSON_NULLABLE },
        { "DnsSearch", SILO_JSON_STRV, offsetof(struct net_settings, dns_search), SILO_JSON_NULLABLE },
        { "DnsOptions", SILO_JSON_STRV, offsetof(struct net_settings, dns_options), SILO_JSON_NULLABLE },
        { "ExtraHosts", SILO_JSON_STRV, offsetof(struct net_settings, extra_hosts), SILO_JSON_NULLABLE },
        {}
};

static int net_settings_parse(json_t *host_config, struct net_settings *ret, silo_error *err)
{
        *ret = (struct net_settings) {};
        if (!host_config)
                return 0;
        int r = silo_json_dispatch(host_config, "HostConfig", net_fields, ret, err);
        if (r < 0)
                net_settings_done(ret);
        return r;
}

/* "80/tcp" -> port and protocol. */
static int parse_port_key(const char *key, uint16_t *ret_port, uint8_t *ret_proto, silo_error *err)
{
        char *end;
        errno = 0;
        unsigned long p = strtoul(key, &end, 10);
        if (errno || end == key || p < 1 || p > 65535 || (*end && *end != '/'))
                return silo_error_msg(err, EINVAL, "port '%s': expected PORT[/tcp|udp]", key);
        uint8_t proto = IPPROTO_TCP;
        if (*end == '/') {
                if (strcmp(end + 1, "udp") == 0)
                        proto = IPPROTO_UDP;
                else if (strcmp(end + 1, "tcp") != 0)
                        return silo_error_msg(err, EINVAL, "port '%s': protocol '%s' is not tcp or udp", key, end + 1);
        }
        *ret_port = (uint16_t) p;
        *ret_proto = proto;
        return 0;
}

static int add_port(silo_net_port **v, size_t *n, const silo_net_port *p, silo_error *err)
{
        if (*n >= MAX_PORT_BINDINGS)
                return silo_error_msg(err, E2BIG, "HostConfig.PortBindings: more than %d bindings",
                                      MAX_PORT_BINDINGS);
        silo_net_port *nv = realloc(*v, (*n + 1) * sizeof(**v));
        if (!nv)
                return silo_error_set(err, ENOMEM, "ports");
        nv[(*n)++] = *p;
        *v = nv;
        return 0;
}

/* HostConfig.PortBindings ({"80/tcp": [{"HostIp", "HostPort"}]}) and, with
 * PublishAllPorts, Config.ExposedPorts not bound explicitly (random ports). */
static int collect_ports(const struct net_settings *s, json_t *config, silo_net_port **ret, size_t *ret_n,
                         silo_error *err)
{
        _cleanup_free_ silo_net_port *v = NULL;
        size_t n = 0;
        const char *key;
        json_t *bindings;
        json_object_foreach(s->port_bindings, key, bindings) {
                silo_net_port base = { .count = 1 };
                int r = parse_port_key(key, &base.container_port, &base.proto, err);
                if (r < 0)
                        return silo_error_prefix(err, "HostConfig.PortBindings");
                if (json_is_null(bindings) || json_array_size(bindings) == 0) {
                        r = add_port(&v, &n, &base, err);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (!json_is_array(bindings))
                        return silo_error_msg(err, EINVAL, "HostConfig.PortBindings.%s: expected an array", key);
                size_t i;
                json_t *b;
                json_array_foreach(bindings, i, b) {
                        silo_net_port p = base;
                        const char *ip = jstr(b, "HostIp"), *hp = jstr(b, "HostPort");
                        if (!json_is_object(b))
                                return silo_error_msg(err, EINVAL,
                                                      "HostConfig.PortBindings.%s[%zu]: expected an object", key, i);
                        if (ip && *ip && strcmp(ip, "0.0.0.0") != 0 && strcmp(ip, "::") != 0) {
                                struct in_addr a;
                                if (inet_pton(AF_INET, ip, &a) != 1)
                                        return silo_error_msg(err, EINVAL,
                                                              "HostConfig.PortBindings.%s[%zu].HostIp: '%s' is not an "
                                                              "IPv4 address", key, i, ip);
                                p.host_ip = a.s_addr;
                        }
                        if (hp && *hp) {
                                /* "8000" or "8000-8010" (the CLI's -p 8000-8010:80: any free one). */
                                char *end;
                                errno = 0;
                                unsigned long hport = strtoul(hp, &end, 10), last = 0;
                                if (!errno && end != hp && *end == '-') {
                                        const char *second = end + 1;
                                        last = strtoul(second, &end, 10);
                                        if (end == second || last < hport || last > 65535)
                                                errno = EINVAL;
                                }
                                if (errno || end == hp || hport < 1 || hport > 65535 || *end)
                                        return silo_error_msg(err, EINVAL,
                                                              "HostConfig.PortBindings.%s[%zu].HostPort: '%s' is not a "
                                                              "port (1-65535) or a range of ports", key, i, hp);
                                p.host_port = (uint16_t) hport;
                                if (last > hport)
                                        p.host_port_last = (uint16_t) last;
                        }
                        r = add_port(&v, &n, &p, err);
                        if (r < 0)
                                return r;
                }
        }
        json_t *exposed = json_object_get(config, "ExposedPorts");
        if (s->publish_all && json_is_object(exposed)) {
                json_t *unused;
                json_object_foreach(exposed, key, unused) {
                        if (json_object_get(s->port_bindings, key))
                                continue;
                        silo_net_port p = { .count = 1 };
                        int r = parse_port_key(key, &p.container_port, &p.proto, err);
                        if (r < 0)
                                return silo_error_prefix(err, "Config.ExposedPorts");
                        r = add_port(&v, &n, &p, err);
                        if (r < 0)
                                return r;
                }
        }
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

static bool is_user_network(const char *mode)
{
        return strcmp(mode, "bridge") != 0 && strcmp(mode, "default") != 0 && strcmp(mode, "none") != 0 &&
               strcmp(mode, "host") != 0 && strncmp(mode, "container:", 10) != 0;
}

/* The library network a container's mode means (NULL: not a bridge mode). */
const char *nw_mode_network(const char *mode)
{
        if (!mode || !*mode || strcmp(mode, "default") == 0 || strcmp(mode, "bridge") == 0)
                return SILO_NET_DEFAULT_NETWORK;
        return is_user_network(mode) ? mode : NULL;
}

bool nw_network_exists(struct networks *nw, const char *lib, silo_error *err, int *ret_r)
{
        if (strcmp(lib, SILO_NET_DEFAULT_NETWORK) == 0)
                return true;
        _cleanup_json_ json_t *info = NULL;
        nw_lock(nw);
        int r = silo_net_network_inspect(nw->net, lib, &info, err);
        nw_unlock(nw);
        *ret_r = r == -ENOENT ? 0 : r;
        return r == 0;
}

/* ---- create: validate and record ---- */

/* -P publishes the image's ExposedPorts too: merged into the record's
 * Config.ExposedPorts (as Docker's container config shows them), which is
 * what start publishes. */
static int merge_image_ports(struct silod *d, json_t *record, silo_error *err)
{
        const char *image_id = jstr(record, "ImageID");
        if (!image_id)
                return 0;
        silo_store *s = NULL;
        int r = open_store(d, &s, err);
        if (r < 0)
                return r;
        _cleanup_image_ silo_image *img = NULL;
        r = silo_image_lookup(s, image_id, &img, err);
        silo_store_free(s);
        if (r < 0)
                return r;
        json_t *image_ports = img->config ? img->config->exposed_ports : NULL;
        if (!json_is_object(image_ports) || json_object_size(image_ports) == 0)
                return 0;
        json_t *config = json_object_get(record, "Config");
        if (!json_is_object(config))
                return 0;
        json_t *exposed = json_object_get(config, "ExposedPorts");
        if (!json_is_object(exposed)) {
                exposed = json_object();
                if (json_object_set_new(config, "ExposedPorts", exposed) < 0)
                        return silo_error_set(err, ENOMEM, "ExposedPorts");
        }
        const char *key;
        json_t *v;
        json_object_foreach(image_ports, key, v)
                if (!json_object_get(exposed, key))
                        json_object_set_new(exposed, key, json_object());
        return 0;
}

int networks_container_create(struct silod *d, json_t *body, json_t *record, silo_error *err)
{
        struct networks *nw = d->networks;
        json_t *hc = json_object_get(record, "HostConfig");
        struct net_settings s;
        int r = net_settings_parse(hc, &s, err);
        if (r < 0)
                return r;
        if (s.publish_all && (r = merge_image_ports(d, record, err)) < 0) {
                net_settings_done(&s);
                return r;
        }
        _cleanup_free_ silo_net_port *ports = NULL;
        size_t n_ports = 0;
        r = collect_ports(&s, json_object_get(record, "Config"), &ports, &n_ports, err);
        const char *mode = s.mode && *s.mode ? s.mode : "bridge";
        char resolved[80] = "";
        if (r >= 0 && strncmp(mode, "container:", 10) == 0) {
                struct ctr *other = ctr_lookup(d, mode + 10);
                /* Not 404: the docker CLI takes a 404 from create for a
                 * missing image and would try to pull it. */
                if (!other)
                        r = silo_error_msg(err, EINVAL, "HostConfig.NetworkMode: no such container: %s", mode + 10);
                else {
                        snprintf(resolved, sizeof(resolved), "container:%s", other->id);
                        ctr_unref(d, other);
                }
                if (r >= 0 && n_ports > 0)
                        r = silo_error_msg(err, EINVAL, "conflicting options: port publishing and the container type "
                                                        "network mode");
        } else if (r >= 0 && is_user_network(mode)) {
                int nr = 0;
                if (!nw)
                        r = silo_error_msg(err, EOPNOTSUPP, "networking is not available");
                else if (!nw_network_exists(nw, nw_lib_name(mode), err, &nr))
                        r = nr < 0 ? nr : silo_error_msg(err, EINVAL, "network %s not found", mode);
        } else if (r >= 0 && strcmp(mode, "default") == 0)
                snprintf(resolved, sizeof(resolved), "bridge");
        net_settings_done(&s);
        if (r < 0)
                return r;
        if (!json_is_object(hc)) {
                hc = json_object();
                json_object_set_new(record, "HostConfig", hc);
        }
        json_object_set_new(hc, "NetworkMode", json_string(resolved[0] ? resolved : mode));
        json_t *nc = json_object_get(body, "NetworkingConfig");
        if (json_is_object(nc))
                json_object_set(record, "NetworkingConfig", nc);
        return 0;
}

/* ---- start: namespace, endpoint, config.json ---- */

static int ctr_net_dir(struct networks *nw, const char *id, char **ret)
{
        return asprintf(ret, "%s/%s", nw->dir, id) < 0 ? -ENOMEM : 0;
}

/* Tears down what a container holds: endpoint, namespace, files.  Its
 * processes are gone, so unmounting the namespace destroys it and the
 * kernel deletes the veths with it, asynchronously (silo_net_release).
 * files_only (mode none): there is no endpoint or namespace file. */
static int release(struct networks *nw, const char *id, bool files_only, silo_error *err)
{
        _cleanup_free_ char *dir = NULL, *ns = NULL;
        if (ctr_net_dir(nw, id, &dir) < 0 || asprintf(&ns, "%s/netns", dir) < 0)
                return silo_error_set(err, ENOMEM, "network");
        int r = 0;
        if (!files_only) {
                nw_lock(nw);
                r = silo_net_release(nw->net, id, err);
                nw_unlock(nw);
                if (r == -ENOENT) {
                        silo_error_clear(err);
                        r = 0;
                }
                int r2 = silo_net_netns_remove(ns, r < 0 ? NULL : err);
                if (r >= 0)
                        r = r2;
        }
        int r3 = silo_rm_rf_at(AT_FDCWD, dir, r < 0 ? NULL : err);
        if (r >= 0 && r3 != -ENOENT)
                r = r3;
        return r < 0 ? r : 0;
}

static struct net_held *held_find_locked(struct networks *nw, const char *id)
{
        for (struct net_held *h = nw->held; h; h = h->next)
                if (strcmp(h->id, id) == 0)
                        return h;
        return NULL;
}

static void held_remove_locked(struct networks *nw, struct net_held *h)
{
        for (struct net_held **p = &nw->held; *p; p = &(*p)->next)
                if (*p == h) {
                        *p = h->next;
                        free(h);
                        return;
                }
}

/* Points config.json at the namespace (NULL: a fresh one, mode none; host
 * mode: none at all) and bind-mounts the files. */
static int adjust_config(struct ctr *ct, const char *netns, bool host, const char *files_dir, silo_error *err)
{
        _cleanup_free_ char *bundle = NULL;
        if (asprintf(&bundle, "%s/" SILO_ENGINE_BUNDLE, ct->dir) < 0)
                return silo_error_set(err, ENOMEM, "network");
        _cleanup_close_ int bfd = open(bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (bfd < 0)
                return silo_error_set(err, errno, "open %s", bundle);
        _cleanup_json_ json_t *spec = NULL;
        int r = silo_json_load_file_at(bfd, "config.json", 4u << 20, &spec, err);
        if (r < 0)
                return r;
        json_t *nss = json_object_get(json_object_get(spec, "linux"), "namespaces");
        if (!json_is_array(nss))
                return silo_error_msg(err, EBADMSG, "%s/config.json: no linux.namespaces", bundle);
        for (size_t i = 0; i < json_array_size(nss); i++) {
                json_t *ns = json_array_get(nss, i);
                if (strcmp(jstr(ns, "type") ?: "", "network") != 0)
                        continue;
                json_array_remove(nss, i);
                break;
        }
        if (!host && netns)
                json_array_append_new(nss, json_pack("{s:s, s:s}", "type", "network", "path", netns));
        else if (!host)
                json_array_append_new(nss, json_pack("{s:s}", "type", "network"));
        json_t *mounts = json_object_get(spec, "mounts");
        if (!json_is_array(mounts)) {
                mounts = json_array();
                json_object_set_new(spec, "mounts", mounts);
        }
        static const char *const files[] = { "hosts", "hostname", "resolv.conf" };
        for (size_t f = 0; f < ARRAY_SIZE(files); f++) {
                char dest[64];
                snprintf(dest, sizeof(dest), "/etc/%s", files[f]);
                for (size_t i = json_array_size(mounts); i-- > 0;)
                        if (strcmp(jstr(json_array_get(mounts, i), "destination") ?: "", dest) == 0)
                                json_array_remove(mounts, i);
                if (!files_dir)
                        continue;
                _cleanup_free_ char *src = NULL;
                if (asprintf(&src, "%s/%s", files_dir, files[f]) < 0)
                        return silo_error_set(err, ENOMEM, "network");
                json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:[s, s]}", "destination", dest, "type",
                                                        "bind", "source", src, "options", "rbind", "rprivate"));
        }
        return silo_engine_write_json_at(bfd, "config.json", spec, err);
}

static const char **network_aliases(json_t *record, const char *api)
{
        json_t *ec = json_object_get(json_object_get(json_object_get(record, "NetworkingConfig"), "EndpointsConfig"),
                                     api);
        const char **v = NULL;
        if (silo_json_strv(json_object_get(ec, "Aliases"), "Aliases", &v, NULL) < 0)
                return NULL;
        return v;
}

/* What networking needs of a container's record, copied under d->lock
 * (other threads update the record: rename, restart counts): HostConfig,
 * Config (Hostname, ExposedPorts), NetworkingConfig, and Name. */
static json_t *record_copy(struct silod *d, struct ctr *ct)
{
        pthread_mutex_lock(&d->lock);
        json_t *copy = json_pack("{s:o*, s:o*, s:o*, s:s}", "HostConfig",
                                 json_deep_copy(json_object_get(ct->record, "HostConfig")), "Config",
                                 json_deep_copy(json_object_get(ct->record, "Config")), "NetworkingConfig",
                                 json_deep_copy(json_object_get(ct->record, "NetworkingConfig")), "Name", ct->name);
        pthread_mutex_unlock(&d->lock);
        return copy ? copy : json_object();
}

/* A recorded EndpointsConfig key that names a further bridge network (not
 * the first one, not host/none/container:): its library name, else NULL. */
static const char *further_network(const char *api, const char *first)
{
        if (strcmp(api, "host") == 0 || strcmp(api, "none") == 0 || strncmp(api, "container:", 10) == 0)
                return NULL;
        const char *lib = nw_lib_name(api);
        return strcmp(lib, first) == 0 ? NULL : lib;
}

/* The further networks recorded for it (network connect, also while it was
 * stopped; API >= 1.44 create) join at every start, as with Docker. */
static int connect_recorded(struct networks *nw, const char *id, json_t *record, const char *first, silo_error *err)
{
        json_t *ecs = json_object_get(json_object_get(record, "NetworkingConfig"), "EndpointsConfig");
        const char *api;
        json_t *ec;
        json_object_foreach(ecs, api, ec) {
                const char *lib = further_network(api, first);
                if (!lib)
                        continue;
                _cleanup_free_ const char **aliases = NULL;
                int r = silo_json_strv(json_object_get(ec, "Aliases"), "Aliases", &aliases, err);
                if (r < 0)
                        return silo_error_prefix(err, "NetworkingConfig.EndpointsConfig.%s", api);
                nw_lock(nw);
                r = silo_net_connect_aliases(nw->net, id, lib, aliases, NULL, err);
                nw_unlock(nw);
                if (r < 0)
                        return silo_error_prefix(err, "connecting to network %s", api);
        }
        return 0;
}

static bool mode_is_none_locked(struct ctr *ct)
{
        const char *mode = jstr(json_object_get(ct->record, "HostConfig"), "NetworkMode");
        return mode && strcmp(mode, "none") == 0;
}

/* Its name in its hosts file and DNSNames: the container name when it is
 * a valid length, else the short id. */
static const char *endpoint_name(json_t *record, const char *id, char short_id[13])
{
        const char *name = jstr(record, "Name") ?: id;
        snprintf(short_id, 13, "%.12s", id);
        return strlen(name) <= 63 ? name : short_id;
}

/* The files of a container in mode none (no namespace file, no lease) and
 * config.json: a fresh namespace of its own. */
static int setup_none(struct silod *d, struct ctr *ct, json_t *record, const struct net_settings *s,
                      silo_error *err)
{
        struct networks *nw = d->networks;
        _cleanup_free_ char *dir = NULL;
        if (ctr_net_dir(nw, ct->id, &dir) < 0)
                return silo_error_set(err, ENOMEM, "network");
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return silo_error_set(err, errno, "mkdir %s", dir);
        char short_id[13];
        const char *hostname = jstr(json_object_get(record, "Config"), "Hostname");
        const char *name = endpoint_name(record, ct->id, short_id);
        silo_net_attach_options o = {
                .container_id = ct->id,
                .name = name,
                .hostname = hostname && *hostname ? hostname : short_id,
                .mode = "none",
                .files_dir = dir,
                .extra_hosts = s->extra_hosts,
                .dns = s->dns,
                .dns_search = s->dns_search,
                .dns_options = s->dns_options,
        };
        /* No lib_lock: it reads only the handle's options. */
        int r = silo_net_write_files(nw->net, &o, err);
        if (r >= 0)
                r = adjust_config(ct, NULL, false, dir, err);
        return r;
}

/* A container joining the namespace of one in mode none (which has no
 * endpoint to join): its namespace through its process, and its files. */
static int setup_join_none(struct silod *d, struct ctr *ct, const char *target, bool *ret_done, silo_error *err)
{
        struct networks *nw = d->networks;
        *ret_done = false;
        struct ctr *other = ctr_lookup(d, target);
        if (!other)
                return 0;
        pthread_mutex_lock(&d->lock);
        bool none = mode_is_none_locked(other), running = other->status == CTR_RUNNING;
        pid_t pid = other->pid;
        char id[65];
        snprintf(id, sizeof(id), "%s", other->id);
        pthread_mutex_unlock(&d->lock);
        ctr_unref(d, other);
        if (!none)
                return 0;
        *ret_done = true;
        if (!running || pid <= 0)
                return silo_error_msg(err, EINVAL, "cannot join the network of container %s: it is not running",
                                      target);
        _cleanup_free_ char *ns = NULL, *dir = NULL;
        if (asprintf(&ns, "/proc/%d/ns/net", (int) pid) < 0 || ctr_net_dir(nw, id, &dir) < 0)
                return silo_error_set(err, ENOMEM, "network");
        return adjust_config(ct, ns, false, dir, err);
}

static int setup(struct silod *d, struct ctr *ct, bool files_only, silo_error *err)
{
        struct networks *nw = d->networks;
        _cleanup_json_ json_t *record = record_copy(d, ct);
        json_t *config = json_object_get(record, "Config");
        const char *ctr_name = jstr(record, "Name") ?: ct->id;
        struct net_settings s;
        int r = net_settings_parse(json_object_get(record, "HostConfig"), &s, err);
        if (r < 0)
                return r;
        if (files_only) {
                r = setup_none(d, ct, record, &s, err);
                net_settings_done(&s);
                return r;
        }
        _cleanup_free_ silo_net_port *ports = NULL;
        _cleanup_free_ const char **aliases = NULL;
        _cleanup_free_ char *dir = NULL, *ns = NULL;
        _cleanup_json_ json_t *info = NULL;
        size_t n_ports = 0;
        const char *mode = s.mode && *s.mode ? s.mode : "bridge";
        const char *network = nw_mode_network(mode);
        bool host = strcmp(mode, "host") == 0, joins = strncmp(mode, "container:", 10) == 0;
        r = collect_ports(&s, config, &ports, &n_ports, err);
        if (r < 0)
                goto out;
        if (!network)
                n_ports = 0;    /* Docker discards them with host and none */
        if (ctr_net_dir(nw, ct->id, &dir) < 0 || asprintf(&ns, "%s/netns", dir) < 0) {
                r = silo_error_set(err, ENOMEM, "network");
                goto out;
        }
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                r = silo_error_set(err, errno, "mkdir %s", dir);
                goto out;
        }
        if (joins) {
                bool done;
                r = setup_join_none(d, ct, mode + 10, &done, err);
                if (r < 0 || done)
                        goto out;
        }
        if (!host && !joins) {
                r = silo_net_netns_create(ns, err);
                if (r < 0)
                        goto out;
        }
        char short_id[13], lib_mode[80];
        snprintf(short_id, sizeof(short_id), "%.12s", ct->id);
        const char *hostname = jstr(config, "Hostname");
        if (!hostname || !*hostname)
                hostname = short_id;
        if (joins)
                snprintf(lib_mode, sizeof(lib_mode), "%s", mode);
        else
                snprintf(lib_mode, sizeof(lib_mode), "%s", network ? "bridge" : mode);
        aliases = network ? network_aliases(record, network == mode ? mode : "bridge") : NULL;
        silo_net_attach_options o = {
                .container_id = ct->id,
                .name = strlen(ctr_name) <= 63 ? ctr_name : short_id,
                .hostname = hostname,
                .mode = lib_mode,
                .network = network,
                .netns_path = host || joins ? NULL : ns,
                .ports = ports,
                .n_ports = n_ports,
                .files_dir = dir,
                .aliases = aliases,
                .extra_hosts = s.extra_hosts,
                .dns = s.dns,
                .dns_search = s.dns_search,
                .dns_options = s.dns_options,
        };
        nw_lock(nw);
        r = silo_net_attach(nw->net, &o, &info, err);
        nw_unlock(nw);
        if (r < 0) {
                if (joins && r == -ENOENT)
                        r = silo_error_msg(err, EINVAL, "cannot join the network of container %s: it is not running",
                                           mode + 10);
                goto out;
        }
        if (network && !joins)
                r = connect_recorded(nw, ct->id, record, network, err);
        if (r >= 0)
                r = adjust_config(ct, joins ? jstr(info, "netns") : ns, host, dir, err);
out:
        net_settings_done(&s);
        return r;
}

int networks_container_start(struct silod *d, struct ctr *ct, silo_error *err)
{
        struct networks *nw = d->networks;
        if (!nw)
                return 0;
        pthread_mutex_lock(&d->lock);
        for (;;) {
                /* What a previous run of it still holds goes first. */
                struct net_held *h = held_find_locked(nw, ct->id);
                if (!h)
                        break;
                if (h->releasing) {
                        pthread_cond_wait(&d->changed, &d->lock);
                        continue;
                }
                h->releasing = true;
                bool files_only = h->files_only;
                pthread_mutex_unlock(&d->lock);
                release(nw, ct->id, files_only, NULL);
                pthread_mutex_lock(&d->lock);
                held_remove_locked(nw, h);
                pthread_cond_broadcast(&d->changed);
        }
        struct net_held *h = calloc(1, sizeof(*h));
        if (!h) {
                pthread_mutex_unlock(&d->lock);
                return silo_error_set(err, ENOMEM, "network");
        }
        snprintf(h->id, sizeof(h->id), "%s", ct->id);
        /* Decided once: the poller releases what this start made. */
        bool files_only = h->files_only = mode_is_none_locked(ct);
        h->next = nw->held;
        nw->held = h;
        pthread_mutex_unlock(&d->lock);
        /* The poller leaves it alone while ct->starting; if the start fails
         * the container is exited and the poller releases it. */
        int r = setup(d, ct, files_only, err);
        if (r < 0)
                release(nw, ct->id, files_only, NULL);
        return r < 0 ? silo_error_prefix(err, "network") : 0;
}

static struct ctr *find_exact_locked(struct silod *d, const char *id)
{
        for (struct ctr *ct = d->containers; ct; ct = ct->next)
                if (strcmp(ct->id, id) == 0)
                        return ct;
        return NULL;
}

void networks_poll_locked(struct silod *d)
{
        struct networks *nw = d->networks;
        if (!nw)
                return;
        for (;;) {
                struct net_held *h;
                for (h = nw->held; h; h = h->next) {
                        if (h->releasing)
                                continue;
                        struct ctr *ct = find_exact_locked(d, h->id);
                        if (!ct || (!ct->starting && ct->status != CTR_RUNNING))
                                break;
                }
                if (!h)
                        return;
                h->releasing = true;
                char id[65];
                snprintf(id, sizeof(id), "%s", h->id);
                bool files_only = h->files_only;
                pthread_mutex_unlock(&d->lock);
                silo_error err = SILO_ERROR_INIT;
                if (release(nw, id, files_only, &err) < 0)
                        fprintf(stderr, "silod: releasing the network of %s: %s\n", id, err.message);
                pthread_mutex_lock(&d->lock);
                held_remove_locked(nw, h);
                pthread_cond_broadcast(&d->changed);
        }
}

/* ---- startup and shutdown ---- */

struct alive_ctx {
        struct silod *d;
        const char *dir;
};

static bool under(const char *path, const char *dir)
{
        size_t n = strlen(dir);
        return path && strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* Endpoints of this daemon's containers live while the container runs;
 * anyone else's (the CLI, a daemon on another state directory) are theirs
 * to reconcile. */
static bool endpoint_alive(const char *id, json_t *ep, void *userdata)
{
        struct alive_ctx *a = userdata;
        bool mine = under(jstr(ep, "files"), a->dir) || under(jstr(ep, "netns"), a->dir);
        pthread_mutex_lock(&a->d->lock);
        struct ctr *ct = find_exact_locked(a->d, id);
        bool running = ct && ct->status == CTR_RUNNING;
        pthread_mutex_unlock(&a->d->lock);
        if (running)
                return true;
        if (mine || ct)
                return false;
        /* Someone else's (the CLI, a daemon on another state directory,
         * perhaps one that is gone with its directory): alive while what
         * it points at is.  A namespace file that vanished, or a bridge
         * veth the kernel deleted with its namespace, means nobody will
         * ever release the lease. */
        const char *netns = jstr(ep, "netns"), *mode = jstr(ep, "mode") ?: "bridge";
        if (netns && access(netns, F_OK) < 0 && errno == ENOENT)
                return false;
        if (strcmp(mode, "bridge") == 0 && jstr(ep, "veth") && if_nametoindex(jstr(ep, "veth")) == 0 &&
            errno == ENODEV)
                return false;
        if (strcmp(mode, "host") == 0 && jstr(ep, "files") && access(jstr(ep, "files"), F_OK) < 0 &&
            errno == ENOENT)
                return false;
        return true;
}

int networks_init(struct silod *d, silo_error *err)
{
        struct networks *nw = calloc(1, sizeof(*nw));
        if (!nw)
                return silo_error_set(err, ENOMEM, "network");
        pthread_mutex_init(&nw->lock, NULL);
        const char *state_dir = getenv("SILO_NETWORK_DIR");
        silo_net_options o = {
                .state_dir = state_dir && *state_dir ? state_dir : DEFAULT_NETWORK_DIR,
                .default_subnet = getenv("SILO_NETWORK_SUBNET"),
                .host_resolv_conf = getenv("SILO_RESOLV_CONF"),
                .default_network_private = true,        /* Docker: names on user networks only */
        };
        int r = asprintf(&nw->dir, "%s/" NET_DIR, d->state) < 0 ? silo_error_set(err, ENOMEM, "network") : 0;
        if (r >= 0)
                r = silo_mkdir_p_at(AT_FDCWD, nw->dir, 0755, err);
        if (r >= 0)
                r = silo_net_open(&o, &nw->net, err);
        if (r < 0) {
                d->networks = nw;
                networks_free(d);
                return silo_error_prefix(err, "network");
        }
        d->networks = nw;
        struct alive_ctx a = { d, nw->dir };
        unsigned removed = 0;
        r = silo_net_reconcile(nw->net, endpoint_alive, &a, &removed, err);
        if (r < 0)
                return silo_error_prefix(err, "network reconcile");
        /* Namespaces and files: kept for running containers, else removed. */
        _cleanup_closedir_ DIR *dir = opendir(nw->dir);
        if (!dir)
                return silo_error_set(err, errno, "opendir %s", nw->dir);
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (de->d_name[0] == '.' || strlen(de->d_name) != 64)
                        continue;
                pthread_mutex_lock(&d->lock);
                struct ctr *ct = find_exact_locked(d, de->d_name);
                bool running = ct && ct->status == CTR_RUNNING;
                struct net_held *h = running ? calloc(1, sizeof(*h)) : NULL;
                if (h) {
                        memcpy(h->id, de->d_name, 64);
                        /* Mode none started by an older silod has a namespace file and a lease. */
                        char ns[PATH_MAX];
                        snprintf(ns, sizeof(ns), "%s/%s/netns", nw->dir, de->d_name);
                        h->files_only = mode_is_none_locked(ct) && access(ns, F_OK) < 0 && errno == ENOENT;
                        h->next = nw->held;
                        nw->held = h;
                }
                pthread_mutex_unlock(&d->lock);
                if (!running) {
                        silo_error e = SILO_ERROR_INIT;
                        if (release(nw, de->d_name, false, &e) < 0)
                                fprintf(stderr, "silod: network leftovers of %s: %s\n", de->d_name, e.message);
                }
        }
        return 0;
}

void networks_shutdown(struct silod *d)
{
        struct networks *nw = d->networks;
        if (!nw)
                return;
        /* What the poller has not released yet (containers removed or
         * exited just before the signal) goes now: left alone, its lease
         * waits for this daemon's next start, or forever if the next start
         * uses another state directory.  Running containers keep theirs. */
        pthread_mutex_lock(&d->lock);
        for (struct net_held *h = nw->held; h; h = h->next) {
                struct ctr *ct = find_exact_locked(d, h->id);
                if (ct && ct->status == CTR_RUNNING)
                        ctr_refresh_locked(d, ct);
        }
        networks_poll_locked(d);
        pthread_mutex_unlock(&d->lock);
}

void networks_free(struct silod *d)
{
        struct networks *nw = d->networks;
        if (!nw)
                return;
        while (nw->held) {
                struct net_held *h = nw->held;
                nw->held = h->next;
                free(h);
        }
        silo_net_free(nw->net);
        pthread_mutex_destroy(&nw->lock);
        free(nw->dir);
        free(nw);
        d->networks = NULL;
}

/* ---- inspect and list ---- */

static void ports_add(json_t *out, const char *spec)
{
        silo_net_port p;
        if (silo_net_port_parse(spec, &p, NULL) < 0)
                return;
        char ip[INET_ADDRSTRLEN] = "0.0.0.0";
        if (p.host_ip) {
                struct in_addr a = { .s_addr = p.host_ip };
                inet_ntop(AF_INET, &a, ip, sizeof(ip));
        }
        for (unsigned k = 0; k < p.count; k++) {
                char key[32], hp[8];
                snprintf(key, sizeof(key), "%u/%s", p.container_port + k, p.proto == IPPROTO_UDP ? "udp" : "tcp");
                snprintf(hp, sizeof(hp), "%u", p.host_port + k);
                json_t *list = json_object_get(out, key);
                if (!json_is_array(list)) {
                        list = json_array();
                        json_object_set_new(out, key, list);
                }
                json_array_append_new(list, json_pack("{s:s, s:s}", "HostIp", ip, "HostPort", hp));
        }
}

static json_t *endpoint_settings(const char *ctr_id, const char *api, json_t *link, json_t *ep, json_t *aliases)
{
        char nid[65], eid[65];
        nw_network_id(api, nid);
        nw_endpoint_id(ctr_id, api, eid);
        bool up = link != NULL;
        return json_pack("{s:n, s:n, s:O, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:s, s:n, s:[s]}",
                         "IPAMConfig", "Links", "Aliases", aliases ? aliases : json_null(), "NetworkID", nid,
                         "EndpointID", up ? eid : "", "Gateway", up ? jstr(link, "gateway") ?: "" : "", "IPAddress",
                         up ? jstr(link, "ip") ?: "" : "", "IPPrefixLen",
                         up ? (int) json_integer_value(json_object_get(link, "prefix")) : 0, "IPv6Gateway", "",
                         "GlobalIPv6Address", "", "GlobalIPv6PrefixLen", 0, "MacAddress",
                         up ? jstr(link, "mac") ?: "" : "", "DriverOpts", "DNSNames",
                         jstr(ep, "name") ? jstr(ep, "name") : ctr_id);
}

/* NetworkSettings of a container from its recorded mode and (if running)
 * its endpoint; ep may be NULL. */
static json_t *settings_of(struct silod *d, const char *ctr_id, json_t *record, json_t *ep)
{
        const char *mode = jstr(json_object_get(record, "HostConfig"), "NetworkMode");
        if (!mode || !*mode)
                mode = "bridge";
        json_t *ports = json_object();
        json_t *exposed = json_object_get(json_object_get(record, "Config"), "ExposedPorts");
        const char *key;
        json_t *v;
        json_object_foreach(exposed, key, v)
                json_object_set_new(ports, key, json_null());
        size_t i;
        json_array_foreach(json_object_get(ep, "ports"), i, v)
                ports_add(ports, json_string_value(v));
        json_t *networks = json_object();
        const char *lib = nw_mode_network(mode);
        json_t *nc = json_object_get(json_object_get(record, "NetworkingConfig"), "EndpointsConfig");
        if (lib) {
                const char *api = nw_api_name(lib);
                json_t *aliases = json_object_get(json_object_get(nc, api), "Aliases");
                json_object_set_new(networks, api, endpoint_settings(ctr_id, api, ep, ep, aliases));
                json_array_foreach(json_object_get(ep, "extra"), i, v) {
                        const char *net = jstr(v, "network");
                        if (net)
                                json_object_set_new(networks, nw_api_name(net),
                                                    endpoint_settings(ctr_id, nw_api_name(net), v, ep,
                                                                      json_object_get(v, "aliases")));
                }
                /* Further networks recorded for its next start. */
                const char *ec_api;
                json_t *ec;
                json_object_foreach(nc, ec_api, ec) {
                        const char *further = further_network(ec_api, lib);
                        if (further && !json_object_get(networks, nw_api_name(further)))
                                json_object_set_new(networks, nw_api_name(further),
                                                    endpoint_settings(ctr_id, nw_api_name(further), NULL, ep,
                                                                      json_object_get(ec, "Aliases")));
                }
        } else if (strcmp(mode, "host") == 0 || strcmp(mode, "none") == 0)
                json_object_set_new(networks, mode, endpoint_settings(ctr_id, mode, NULL, ep, NULL));
        char sandbox[512] = "";
        if (ep && jstr(ep, "netns"))
                snprintf(sandbox, sizeof(sandbox), "%s", jstr(ep, "netns"));
        (void) d;
        json_t *primary = lib && ep ? ep : NULL;
        char eid[65] = "";
        if (primary)
                nw_endpoint_id(ctr_id, nw_api_name(lib), eid);
        return json_pack("{s:s, s:s, s:b, s:s, s:i, s:o, s:s, s:n, s:n, s:s, s:s, s:s, s:i, s:s, s:i, s:s, s:s, s:o}",
                         "Bridge", "", "SandboxID", ep ? ctr_id : "", "HairpinMode", 0, "LinkLocalIPv6Address", "",
                         "LinkLocalIPv6PrefixLen", 0, "Ports", ports, "SandboxKey", sandbox, "SecondaryIPAddresses",
                         "SecondaryIPv6Addresses", "EndpointID", eid, "Gateway",
                         primary ? jstr(primary, "gateway") ?: "" : "", "GlobalIPv6Address", "",
                         "GlobalIPv6PrefixLen", 0, "IPAddress", primary ? jstr(primary, "ip") ?: "" : "",
                         "IPPrefixLen", primary ? (int) json_integer_value(json_object_get(primary, "prefix")) : 0,
                         "IPv6Gateway", "", "MacAddress", primary ? jstr(primary, "mac") ?: "" : "", "Networks",
                         networks);
}

/* What inspect shows of a running container in mode none, which has no
 * endpoint in the library: its name, files, and namespace (of its process). */
static json_t *none_endpoint(struct networks *nw, const char *id, json_t *record, pid_t pid)
{
        char short_id[13];
        _cleanup_free_ char *dir = NULL, *ns = NULL;
        if (ctr_net_dir(nw, id, &dir) < 0 || (pid > 0 && asprintf(&ns, "/proc/%d/ns/net", (int) pid) < 0))
                return NULL;
        return json_pack("{s:s, s:s, s:s, s:s*}", "name", endpoint_name(record, id, short_id), "mode", "none",
                         "files", dir, "netns", ns);
}

void networks_inspect_fill(struct silod *d, struct ctr *ct, json_t *doc)
{
        struct networks *nw = d->networks;
        _cleanup_json_ json_t *ep = NULL;
        _cleanup_json_ json_t *record = record_copy(d, ct);
        if (nw && json_is_true(json_object_get(json_object_get(doc, "State"), "Running"))) {
                pthread_mutex_lock(&d->lock);
                bool none = mode_is_none_locked(ct);
                pid_t pid = ct->pid;
                pthread_mutex_unlock(&d->lock);
                if (none)
                        ep = none_endpoint(nw, ct->id, record, pid);
                else {
                        nw_lock(nw);
                        if (silo_net_endpoint(nw->net, ct->id, &ep, NULL) < 0)
                                ep = NULL;
                        nw_unlock(nw);
                }
        }
        json_t *settings = settings_of(d, ct->id, record, ep);
        if (settings)
                json_object_set_new(doc, "NetworkSettings", settings);
        if (ep && jstr(ep, "files")) {
                char path[600];
                snprintf(path, sizeof(path), "%s/resolv.conf", jstr(ep, "files"));
                json_object_set_new(doc, "ResolvConfPath", json_string(path));
                snprintf(path, sizeof(path), "%s/hosts", jstr(ep, "files"));
                json_object_set_new(doc, "HostsPath", json_string(path));
                snprintf(path, sizeof(path), "%s/hostname", jstr(ep, "files"));
                json_object_set_new(doc, "HostnamePath", json_string(path));
        }
}

void networks_list_fill(struct silod *d, json_t *list)
{
        struct networks *nw = d->networks;
        _cleanup_json_ json_t *eps = NULL;
        if (nw) {
                nw_lock(nw);
                if (silo_net_endpoint_list(nw->net, &eps, NULL) < 0)
                        eps = NULL;
                nw_unlock(nw);
        }
        size_t i;
        json_t *entry;
        json_array_foreach(list, i, entry) {
                const char *id = jstr(entry, "Id");
                if (!id)
                        continue;
                struct ctr *ct = ctr_lookup(d, id);
                if (!ct)
                        continue;
                bool running = strcmp(jstr(entry, "State") ?: "", "running") == 0 ||
                               strcmp(jstr(entry, "State") ?: "", "paused") == 0;
                _cleanup_json_ json_t *record = record_copy(d, ct);
                _cleanup_json_ json_t *none_ep = NULL;
                pthread_mutex_lock(&d->lock);
                if (nw && running && mode_is_none_locked(ct))
                        none_ep = none_endpoint(nw, id, record, ct->pid);
                pthread_mutex_unlock(&d->lock);
                json_t *ep = none_ep ? none_ep : running ? json_object_get(eps, id) : NULL;
                json_t *ports = json_array();
                size_t k;
                json_t *v;
                json_array_foreach(json_object_get(ep, "ports"), k, v) {
                        silo_net_port p;
                        if (silo_net_port_parse(json_string_value(v), &p, NULL) < 0)
                                continue;
                        char ip[INET_ADDRSTRLEN] = "0.0.0.0";
                        if (p.host_ip) {
                                struct in_addr a = { .s_addr = p.host_ip };
                                inet_ntop(AF_INET, &a, ip, sizeof(ip));
                        }
                        for (unsigned n = 0; n < p.count; n++)
                                json_array_append_new(ports, json_pack("{s:s, s:i, s:i, s:s}", "IP", ip, "PrivatePort",
                                                                       p.container_port + n, "PublicPort",
                                                                       p.host_port + n, "Type",
                                                                       p.proto == IPPROTO_UDP ? "udp" : "tcp"));
                }
                json_object_set_new(entry, "Ports", ports);
                json_t *settings = settings_of(d, id, record, ep);
                json_object_set_new(entry, "NetworkSettings",
                                    json_pack("{s:O}", "Networks", json_object_get(settings, "Networks")));
                json_decref(settings);
                const char *mode = jstr(json_object_get(record, "HostConfig"), "NetworkMode");
                json_object_set_new(entry, "HostConfig",
                                    json_pack("{s:s}", "NetworkMode", mode && *mode ? mode : "bridge"));
                ctr_unref(d, ct);
        }
}
