/* The /networks endpoints of the Docker API: list, inspect, create,
 * remove, connect, disconnect, prune (docs/NETWORK.md, "silod"). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "net/net.h"
#include "networks-internal.h"
#include "silod.h"
#include "util/cleanup.h"
#include "util/json.h"

/* ---- /networks ---- */

static const char *const predefined[] = { "bridge", "host", "none" };

static bool is_predefined(const char *api)
{
        for (size_t i = 0; i < ARRAY_SIZE(predefined); i++)
                if (strcmp(api, predefined[i]) == 0)
                        return true;
        return false;
}

/* Docker's network document; info is the library's (NULL for host/none and
 * a silo0 not created yet). */
static json_t *network_doc(const char *api, json_t *info)
{
        char nid[65], created[48];
        nw_network_id(api, nid);
        json_t *when = json_object_get(info, "created");
        silo_engine_format_time(json_is_integer(when) ? json_integer_value(when) * 1000000000 : 0, created);
        const char *driver = strcmp(api, "host") == 0 ? "host" : strcmp(api, "none") == 0 ? "null" : "bridge";
        json_t *ipam_config = json_array();
        if (jstr(info, "subnet"))
                json_array_append_new(ipam_config, json_pack("{s:s, s:s}", "Subnet", jstr(info, "subnet"), "Gateway",
                                                             jstr(info, "gateway") ?: ""));
        json_t *options = json_object();
        if (jstr(info, "bridge"))
                json_object_set_new(options, "com.docker.network.bridge.name", json_string(jstr(info, "bridge")));
        json_t *mtu = json_object_get(info, "mtu");
        if (json_is_integer(mtu)) {
                char buf[16];
                snprintf(buf, sizeof(buf), "%lld", (long long) json_integer_value(mtu));
                json_object_set_new(options, "com.docker.network.driver.mtu", json_string(buf));
        }
        json_t *containers = json_object();
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(info, "endpoints"), i, e) {
                const char *cid = jstr(e, "id");
                if (!cid)
                        continue;
                char eid[65], addr[64] = "";
                nw_endpoint_id(cid, api, eid);
                const char *subnet = jstr(info, "subnet");
                const char *slash = subnet ? strchr(subnet, '/') : NULL;
                if (jstr(e, "ip"))
                        snprintf(addr, sizeof(addr), "%s%s", jstr(e, "ip"), slash ? slash : "");
                json_object_set_new(containers, cid,
                                    json_pack("{s:s, s:s, s:s, s:s, s:s}", "Name", jstr(e, "name") ?: "", "EndpointID",
                                              eid, "MacAddress", jstr(e, "mac") ?: "", "IPv4Address", addr,
                                              "IPv6Address", ""));
        }
        json_t *labels = json_object_get(info, "labels");
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:{s:s, s:n, s:o}, s:b, s:b, s:b, s:{s:s}, s:b, s:o, s:o,"
                         " s:o}",
                         "Name", api, "Id", nid, "Created", created, "Scope", "local", "Driver", driver,
                         "EnableIPv6", 0,
                         "IPAM", "Driver", "default", "Options", "Config", ipam_config, "Internal",
                         json_is_true(json_object_get(info, "internal")), "Attachable", 0, "Ingress", 0, "ConfigFrom",
                         "Network", "", "ConfigOnly", 0, "Containers", containers, "Options", options, "Labels",
                         json_is_object(labels) ? json_deep_copy(labels) : json_object());
}

/* Every network as (api name, library info): predefined ones first. */
static int all_networks(struct networks *nw, json_t **ret, silo_error *err)
{
        _cleanup_json_ json_t *list = NULL;
        nw_lock(nw);
        int r = silo_net_network_list(nw->net, &list, err);
        nw_unlock(nw);
        if (r < 0)
                return r;
        json_t *out = json_object();
        for (size_t i = 0; i < ARRAY_SIZE(predefined); i++)
                json_object_set_new(out, predefined[i], json_null());
        size_t i;
        json_t *info;
        json_array_foreach(list, i, info)
                if (jstr(info, "name"))
                        json_object_set(out, nw_api_name(jstr(info, "name")), info);
        *ret = out;
        return 0;
}

/* A network by name, id or unique id prefix: its api name (static or in
 * the returned list). */
static int find_network(struct networks *nw, const char *ref, const char **ret_api, json_t **ret_all, silo_error *err)
{
        _cleanup_json_ json_t *all = NULL;
        int r = all_networks(nw, &all, err);
        if (r < 0)
                return r;
        const char *api, *match = NULL;
        json_t *v;
        unsigned prefix_matches = 0;
        size_t len = strlen(ref);
        json_object_foreach(all, api, v) {
                char nid[65];
                nw_network_id(api, nid);
                if (strcmp(api, ref) == 0 || strcmp(nid, ref) == 0) {
                        match = api;
                        prefix_matches = 1;
                        break;
                }
                if (len > 0 && len < 64 && strncmp(nid, ref, len) == 0) {
                        match = api;
                        prefix_matches++;
                }
        }
        if (!match || prefix_matches != 1)
                return silo_error_msg(err, ENOENT, "network %s not found", ref);
        *ret_api = match;
        *ret_all = TAKE_PTR(all);
        return 0;
}

static int inspect_info(struct networks *nw, const char *api, json_t **ret, silo_error *err)
{
        *ret = NULL;
        if (strcmp(api, "host") == 0 || strcmp(api, "none") == 0)
                return 0;
        nw_lock(nw);
        int r = silo_net_network_inspect(nw->net, nw_lib_name(api), ret, err);
        nw_unlock(nw);
        if (r == -ENOENT && strcmp(api, "bridge") == 0) {
                silo_error_clear(err);
                return 0;       /* silo0 is made on first use */
        }
        return r;
}

static enum MHD_Result networks_list(struct silod *d, struct MHD_Connection *c)
{
        struct networks *nw = d->networks;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *filters = NULL;
        const char *ftext = query(c, "filters");
        if (ftext && *ftext && (silo_json_load_buffer(ftext, strlen(ftext), "filters", &filters, &err) < 0 ||
                                !json_is_object(filters)))
                return reply_error(c, 400, "invalid filters: %s", err.message[0] ? err.message : ftext);
        _cleanup_json_ json_t *all = NULL;
        int r = all_networks(nw, &all, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        json_t *out = json_array();
        const char *api;
        json_t *v;
        json_object_foreach(all, api, v) {
                char nid[65];
                nw_network_id(api, nid);
                json_t *doc = network_doc(api, json_is_null(v) ? NULL : v);
                const char *type = is_predefined(api) ? "builtin" : "custom";
                if (!filter_passes(filters, "name", api, FILTER_SUBSTRING) ||
                    !filter_passes(filters, "id", nid, FILTER_PREFIX) ||
                    !filter_passes(filters, "driver", jstr(doc, "Driver") ?: "", FILTER_SUBSTRING) ||
                    !filter_passes(filters, "type", type, FILTER_SUBSTRING)) {
                        json_decref(doc);
                        continue;
                }
                json_array_append_new(out, doc);
        }
        return reply_json(c, 200, out);
}

static enum MHD_Result network_inspect(struct silod *d, struct MHD_Connection *c, const char *ref)
{
        struct networks *nw = d->networks;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *all = NULL, *info = NULL;
        const char *api;
        int r = find_network(nw, ref, &api, &all, &err);
        if (r >= 0)
                r = inspect_info(nw, api, &info, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        return reply_json(c, 200, network_doc(api, info));
}

struct create_net_body {
        const char *name, *driver;
        bool internal, enable_ipv6, check_duplicate;
        json_t *ipam, *options, *labels;
};

static const struct silo_json_field create_net_fields[] = {
        { "Name", SILO_JSON_STRING, offsetof(struct create_net_body, name), SILO_JSON_REQUIRED },
        { "Driver", SILO_JSON_STRING, offsetof(struct create_net_body, driver), SILO_JSON_NULLABLE },
        { "Internal", SILO_JSON_BOOL, offsetof(struct create_net_body, internal), SILO_JSON_NULLABLE },
        { "EnableIPv6", SILO_JSON_BOOL, offsetof(struct create_net_body, enable_ipv6), SILO_JSON_NULLABLE },
        { "CheckDuplicate", SILO_JSON_BOOL, offsetof(struct create_net_body, check_duplicate), SILO_JSON_NULLABLE },
        { "IPAM", SILO_JSON_OBJECT, offsetof(struct create_net_body, ipam), SILO_JSON_NULLABLE },
        { "Options", SILO_JSON_OBJECT, offsetof(struct create_net_body, options), SILO_JSON_NULLABLE },
        { "Labels", SILO_JSON_OBJECT, offsetof(struct create_net_body, labels), SILO_JSON_NULLABLE },
        {}
};

static enum MHD_Result network_create(struct silod *d, struct MHD_Connection *c, struct request *req)
{
        struct networks *nw = d->networks;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *body = NULL;
        int r = request_json(req, &body, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        struct create_net_body b = {};
        r = silo_json_dispatch(body, "", create_net_fields, &b, &err);
        if (r < 0)
                return reply_error(c, 400, "%s", err.message);
        if (is_predefined(b.name) || strcmp(b.name, "default") == 0 || strcmp(b.name, SILO_NET_DEFAULT_NETWORK) == 0)
                return reply_error(c, 403, "operation is not permitted on predefined %s network", b.name);
        if (b.driver && *b.driver && strcmp(b.driver, "bridge") != 0)
                return reply_error(c, 501, "Driver: only the bridge driver is available, not %s", b.driver);
        if (b.enable_ipv6)
                return reply_error(c, 501, "EnableIPv6: IPv6 networks are not available yet");
        silo_net_network_options o = { .internal = b.internal, .labels = b.labels };
        json_t *ipam_config = json_object_get(b.ipam, "Config");
        if (ipam_config && !json_is_array(ipam_config) && !json_is_null(ipam_config))
                return reply_error(c, 400, "IPAM.Config: expected an array, got %s", silo_json_type_name(ipam_config));
        if (json_array_size(ipam_config) > 1)
                return reply_error(c, 501, "IPAM.Config: one subnet per network");
        json_t *cfg = json_array_get(ipam_config, 0);
        const char *gateway = NULL;
        if (cfg) {
                json_t *sub = json_object_get(cfg, "Subnet"), *gw = json_object_get(cfg, "Gateway");
                if ((sub && !json_is_string(sub)) || (gw && !json_is_string(gw)))
                        return reply_error(c, 400, "IPAM.Config[0]: Subnet and Gateway must be strings");
                o.subnet = json_string_value(sub) && *json_string_value(sub) ? json_string_value(sub) : NULL;
                gateway = json_string_value(gw) && *json_string_value(gw) ? json_string_value(gw) : NULL;
                if (gateway && !o.subnet)
                        return reply_error(c, 400, "IPAM.Config[0].Gateway: needs a Subnet");
                if (json_object_get(cfg, "IPRange") && *(jstr(cfg, "IPRange") ?: ""))
                        return reply_error(c, 501, "IPAM.Config[0].IPRange: not supported");
        }
        if (gateway) {
                /* The library's gateway is the subnet's first address. */
                uint32_t addr;
                unsigned prefix;
                struct in_addr g;
                if (silo_net_parse_subnet(o.subnet, &addr, &prefix, &err) < 0)
                        return reply_error(c, 400, "IPAM.Config[0].Subnet: %s", err.message);
                if (inet_pton(AF_INET, gateway, &g) != 1 || ntohl(g.s_addr) != addr + 1)
                        return reply_error(c, 501, "IPAM.Config[0].Gateway: only the subnet's first address can be "
                                                   "the gateway");
        }
        const char *opt;
        json_t *v;
        json_object_foreach(b.options, opt, v) {
                if (!json_is_string(v))
                        return reply_error(c, 400, "Options.%s: expected a string", opt);
                if (strcmp(opt, "com.docker.network.bridge.name") == 0)
                        o.bridge = json_string_value(v);
                else if (strcmp(opt, "com.docker.network.driver.mtu") == 0)
                        o.mtu = (unsigned) strtoul(json_string_value(v), NULL, 10);
        }
        _cleanup_json_ json_t *info = NULL;
        nw_lock(nw);
        r = silo_net_network_create(nw->net, b.name, &o, &info, &err);
        nw_unlock(nw);
        if (r == -EEXIST && strstr(err.message, "already exists") && !strstr(err.message, "interface"))
                return reply_error(c, 409, "network with name %s already exists", b.name);
        if (r == -EADDRINUSE)
                return reply_error(c, 400, "%s", err.message);
        if (r < 0)
                return reply_errno(c, r, &err);
        char nid[65];
        nw_network_id(b.name, nid);
        return reply_json(c, 201, json_pack("{s:s, s:s}", "Id", nid, "Warning", ""));
}

static enum MHD_Result network_remove(struct silod *d, struct MHD_Connection *c, const char *ref)
{
        struct networks *nw = d->networks;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *all = NULL;
        const char *api;
        int r = find_network(nw, ref, &api, &all, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        if (is_predefined(api))
                return reply_error(c, 403, "%s is a pre-defined network and cannot be removed", api);
        nw_lock(nw);
        r = silo_net_network_remove(nw->net, nw_lib_name(api), &err);
        nw_unlock(nw);
        if (r == -EBUSY)
                return reply_error(c, 403, "error while removing network: %s", err.message);
        if (r < 0)
                return reply_errno(c, r, &err);
        return reply_empty(c, 204);
}

static bool alias_ok(const char *s)
{
        size_t len = strlen(s);
        if (len == 0 || len > 63)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                      (i > 0 && (s[i] == '-' || s[i] == '_' || s[i] == '.'))))
                        return false;
        return true;
}

static enum MHD_Result network_connect(struct silod *d, struct MHD_Connection *c, struct request *req,
                                       const char *ref, bool connect)
{
        struct networks *nw = d->networks;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *body = NULL, *all = NULL;
        int r = request_json(req, &body, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        const char *cref = jstr(body, "Container");
        if (!cref || !*cref)
                return reply_error(c, 400, "Container: required");
        const char *api;
        r = find_network(nw, ref, &api, &all, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        if (strcmp(api, "host") == 0 || strcmp(api, "none") == 0)
                return reply_error(c, 400, "container cannot be %sconnected %s network %s", connect ? "" : "dis",
                                   connect ? "to" : "from", api);
        json_t *ec = json_object_get(body, "EndpointConfig");
        if (ec && !json_is_object(ec) && !json_is_null(ec))
                return reply_error(c, 400, "EndpointConfig: expected an object, got %s", silo_json_type_name(ec));
        _cleanup_free_ const char **aliases = NULL;
        if (connect && silo_json_strv(json_object_get(ec, "Aliases"), "EndpointConfig.Aliases", &aliases, &err) < 0)
                return reply_error(c, 400, "%s", err.message);
        struct ctr *ct = ctr_lookup(d, cref);
        if (!ct)
                return reply_error(c, 404, "No such container: %s", cref);
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        bool running = ct->status == CTR_RUNNING;
        const char *mode = jstr(json_object_get(ct->record, "HostConfig"), "NetworkMode");
        const char *first = nw_mode_network(mode);
        bool recorded = json_object_get(json_object_get(json_object_get(ct->record, "NetworkingConfig"),
                                                        "EndpointsConfig"), api) != NULL;
        _cleanup_free_ char *first_copy = first ? strdup(first) : NULL;
        pthread_mutex_unlock(&d->lock);
        const char *lib = nw_lib_name(api);
        if (!first_copy) {
                ctr_unref(d, ct);
                return reply_error(c, 400, "container %s uses network mode %s: it cannot be %sconnected %s other "
                                           "networks", cref, mode, connect ? "" : "dis", connect ? "to" : "from");
        }
        if (strcmp(lib, first_copy) == 0) {
                ctr_unref(d, ct);
                if (connect)
                        return reply_error(c, 403, "endpoint with name %s already exists in network %s", cref, api);
                return reply_error(c, 400, "network %s is container %s's first network: it goes with the container",
                                   api, cref);
        }
        if (running) {
                nw_lock(nw);
                if (connect)
                        r = silo_net_connect_aliases(nw->net, ct->id, lib, aliases, NULL, &err);
                else
                        r = silo_net_disconnect(nw->net, ct->id, lib, &err);
                nw_unlock(nw);
        } else if (connect && recorded)
                r = silo_error_msg(&err, EEXIST, "container %s is already connected to network %s", cref, api);
        else if (!connect && !recorded)
                r = silo_error_msg(&err, ENOENT, "container %s is not connected to network %s", cref, api);
        else if (connect) {
                /* Recorded now, joined at its next start: what the
                 * library would refuse then is refused now. */
                for (size_t i = 0; aliases && aliases[i] && r >= 0; i++)
                        if (!alias_ok(aliases[i]))
                                r = silo_error_msg(&err, EINVAL, "EndpointConfig.Aliases: '%s' is not a valid name",
                                                   aliases[i]);
                if (r >= 0 && !nw_network_exists(nw, lib, &err, &r))
                        r = r < 0 ? r : silo_error_msg(&err, ENOENT, "network %s not found", api);
        }
        if (r >= 0) {
                /* Recorded either way: a restart joins the same networks. */
                pthread_mutex_lock(&d->lock);
                json_t *nc = json_object_get(ct->record, "NetworkingConfig");
                if (!json_is_object(nc)) {
                        nc = json_object();
                        json_object_set_new(ct->record, "NetworkingConfig", nc);
                }
                json_t *ecs = json_object_get(nc, "EndpointsConfig");
                if (!json_is_object(ecs)) {
                        ecs = json_object();
                        json_object_set_new(nc, "EndpointsConfig", ecs);
                }
                if (connect)
                        json_object_set_new(ecs, api, json_is_object(ec) ? json_deep_copy(ec) : json_object());
                else
                        json_object_del(ecs, api);
                silo_error serr = SILO_ERROR_INIT;
                if (record_save(ct, &serr) < 0)
                        fprintf(stderr, "silod: network %s: %s\n", api, serr.message);
                pthread_mutex_unlock(&d->lock);
        }
        ctr_unref(d, ct);
        if (r == -EEXIST)
                return reply_error(c, 403, "%s", err.message);
        if (r < 0)
                return reply_errno(c, r, &err);
        return reply_empty(c, 200);
}

static enum MHD_Result networks_prune(struct silod *d, struct MHD_Connection *c)
{
        struct networks *nw = d->networks;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *list = NULL;
        nw_lock(nw);
        int r = silo_net_network_list(nw->net, &list, &err);
        nw_unlock(nw);
        if (r < 0)
                return reply_errno(c, r, &err);
        json_t *deleted = json_array();
        size_t i;
        json_t *info;
        json_array_foreach(list, i, info) {
                const char *name = jstr(info, "name");
                if (!name || strcmp(name, SILO_NET_DEFAULT_NETWORK) == 0 ||
                    json_integer_value(json_object_get(info, "containers")) > 0)
                        continue;
                nw_lock(nw);
                r = silo_net_network_remove(nw->net, name, NULL);
                nw_unlock(nw);
                if (r == 0)
                        json_array_append_new(deleted, json_string(name));
        }
        return reply_json(c, 200, json_pack("{s:o}", "NetworksDeleted", deleted));
}

enum MHD_Result handle_networks(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                                const char *path)
{
        if (!d->networks)
                return reply_error(c, 501, "networking is not available on this daemon");
        bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
        if (*path == '/')
                path++;
        if (!*path && get)
                return networks_list(d, c);
        if (post && strcmp(path, "create") == 0)
                return network_create(d, c, req);
        if (post && strcmp(path, "prune") == 0)
                return networks_prune(d, c);
        const char *slash = strchr(path, '/');
        _cleanup_free_ char *ref = slash ? strndup(path, (size_t) (slash - path)) : strdup(path);
        if (!ref)
                return MHD_NO;
        const char *action = slash ? slash + 1 : "";
        if (get && !*action && *ref)
                return network_inspect(d, c, ref);
        if (strcmp(method, "DELETE") == 0 && !*action && *ref)
                return network_remove(d, c, ref);
        if (post && (strcmp(action, "connect") == 0 || strcmp(action, "disconnect") == 0))
                return network_connect(d, c, req, ref, strcmp(action, "connect") == 0);
        return reply_no_route(c, method, "/networks%s%s", *path ? "/" : "", path);
}
