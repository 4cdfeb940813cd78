/* Container.Networking.Network: a compute system on a silo network.
 *
 * At create, before the runtime makes the container: a network namespace
 * bound at STATE/systems/<id>/netns, attached to the named network through
 * the network library (address, route, Ports published), hosts/hostname/
 * resolv.conf in STATE/systems/<id>/net/ bind-mounted over /etc; the spec's
 * network namespace points at it.  At delete: the endpoint released and the
 * namespace unmounted (the kernel deletes the veth with it). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/compute-internal.h"
#include "net/net.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define COMPUTE_NETWORK_DIR "/var/lib/silo/network"
#define COMPUTE_MAX_PORTS 64

static int open_net(silo_net **ret, silo_error *err)
{
        const char *dir = getenv("SILO_NETWORK_DIR");
        silo_net_options o = { .state_dir = dir && *dir ? dir : COMPUTE_NETWORK_DIR };
        return silo_net_open(&o, ret, err);
}

int compute_network_ports(json_t *ports, const char *path, silo_net_port **ret, size_t *ret_n, silo_error *err)
{
        *ret = NULL;
        *ret_n = 0;
        if (!ports || json_is_null(ports))
                return 0;
        if (!json_is_array(ports))
                return silo_error_msg(err, EINVAL, "%s: expected an array, got %s", path, silo_json_type_name(ports));
        size_t n = json_array_size(ports);
        if (n > COMPUTE_MAX_PORTS)
                return silo_error_msg(err, E2BIG, "%s: at most %d ports", path, COMPUTE_MAX_PORTS);
        _cleanup_free_ silo_net_port *v = calloc(n ? n : 1, sizeof(*v));
        if (!v)
                return silo_error_set(err, ENOMEM, "%s", path);
        for (size_t i = 0; i < n; i++) {
                json_t *p = json_array_get(ports, i);
                if (!json_is_string(p))
                        return silo_error_msg(err, EINVAL, "%s[%zu]: expected a string, got %s", path, i,
                                              silo_json_type_name(p));
                int r = silo_net_port_parse(json_string_value(p), &v[i], err);
                if (r < 0)
                        return silo_error_prefix(err, "%s[%zu]", path, i);
        }
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

static int spec_join(json_t *spec, const char *netns, const char *files, silo_error *err)
{
        json_t *nss = json_object_get(json_object_get(spec, "linux"), "namespaces");
        if (!json_is_array(nss))
                return silo_error_msg(err, EINVAL, "compute system spec: no linux.namespaces");
        for (size_t i = 0; i < json_array_size(nss); i++)
                if (!strcmp(json_string_value(json_object_get(json_array_get(nss, i), "type")) ?: "", "network")) {
                        json_array_remove(nss, i);
                        break;
                }
        json_array_append_new(nss, json_pack("{s:s, s:s}", "type", "network", "path", netns));
        json_t *mounts = json_object_get(spec, "mounts");
        if (!json_is_array(mounts)) {
                mounts = json_array();
                json_object_set_new(spec, "mounts", mounts);
        }
        static const char *const names[] = { "hosts", "hostname", "resolv.conf" };
        for (size_t k = 0; k < ARRAY_SIZE(names); k++) {
                char src[PATH_MAX + 16], dst[64];
                snprintf(src, sizeof(src), "%s/%s", files, names[k]);
                snprintf(dst, sizeof(dst), "/etc/%s", names[k]);
                json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:[s, s]}", "destination", dst, "type", "bind",
                                                        "source", src, "options", "rbind", "rprivate"));
        }
        return 0;
}

int compute_network_attach(const char *id, const char *dir, json_t *doc, json_t *spec, silo_error *err)
{
        /* A VirtualMachine's network is its containers' (a pod's sandbox). */
        bool vm = json_object_get(doc, "VirtualMachine") != NULL;
        const char *kind = vm ? "VirtualMachine" : "Container";
        json_t *cfg = json_object_get(json_object_get(doc, kind), "Networking");
        const char *network = json_string_value(json_object_get(cfg, "Network"));
        if (!network)
                return 0;
        _cleanup_free_ silo_net_port *ports = NULL;
        size_t n_ports = 0;
        char field[64];
        snprintf(field, sizeof(field), "%s.Networking.Ports", kind);
        int r = compute_network_ports(json_object_get(cfg, "Ports"), field, &ports, &n_ports, err);
        if (r < 0)
                return r;
        char netns[PATH_MAX], files[PATH_MAX];
        if (snprintf(netns, sizeof(netns), "%s/netns", dir) >= (int) sizeof(netns) ||
            snprintf(files, sizeof(files), "%s/net", dir) >= (int) sizeof(files))
                return silo_error_msg(err, ENAMETOOLONG, "compute system %s: state path too long", id);
        if (mkdir(files, 0755) < 0 && errno != EEXIST)
                return silo_error_set(err, errno, "mkdir %s", files);
        _cleanup_(silo_net_freep) silo_net *n = NULL;
        r = open_net(&n, err);
        if (r < 0)
                return silo_error_prefix(err, "%s.Networking.Network", kind);
        r = silo_net_netns_create(netns, err);
        if (r < 0)
                return r;
        char short_id[13];
        snprintf(short_id, sizeof(short_id), "%s", id);
        const char *host = json_string_value(json_object_get(spec, "hostname"));
        silo_net_attach_options o = {
                .container_id = id,
                .name = strlen(id) <= 63 ? id : short_id,
                .hostname = host && *host ? host : NULL,
                .network = !strcmp(network, "bridge") ? SILO_NET_DEFAULT_NETWORK : network,
                .netns_path = netns,
                .ports = ports,
                .n_ports = n_ports,
                .files_dir = files,
        };
        r = silo_net_attach(n, &o, NULL, err);
        if (r >= 0)
                r = spec_join(spec, netns, files, err);
        if (r < 0) {
                silo_net_release(n, id, NULL);
                silo_net_netns_remove(netns, NULL);
                return silo_error_prefix(err, "%s.Networking.Network %s", kind, network);
        }
        return 0;
}

int compute_network_release(const char *id, const char *dir, silo_error *err)
{
        char netns[PATH_MAX];
        if (snprintf(netns, sizeof(netns), "%s/netns", dir) >= (int) sizeof(netns))
                return silo_error_msg(err, ENAMETOOLONG, "compute system %s: state path too long", id);
        if (access(netns, F_OK) < 0)
                return 0;       /* not on a network */
        _cleanup_(silo_net_freep) silo_net *n = NULL;
        int r = open_net(&n, err);
        if (r >= 0)
                r = silo_net_release(n, id, err);
        if (r == -ENOENT) {
                silo_error_clear(err);
                r = 0;
        }
        if (r < 0)
                return silo_error_prefix(err, "release the network of compute system %s", id);
        return silo_net_netns_remove(netns, err);
}
