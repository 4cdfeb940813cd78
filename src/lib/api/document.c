/* HCS documents -> OCI: the pure half of the compute API (no system calls
 * beyond reading the template), so every mapping and every error message is
 * unit-tested. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/compute-internal.h"
#include "spec/spec.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"
#include "state/state.h"
#include "vm/vm.h"

void compute_storage_done(struct compute_storage *s)
{
        silo_strv_free(s->layers);
        free(s->path);
        free(s->image);
        *s = (struct compute_storage) {};
}

static int want_abs_path(const char *v, const char *path, silo_error *err)
{
        if (!v || v[0] != '/')
                return silo_error_msg(err, EINVAL, "%s: expected an absolute path, got \"%s\"", path, v ? v : "");
        if (strlen(v) >= PATH_MAX)
                return silo_error_msg(err, ENAMETOOLONG, "%s: path too long", path);
        return 0;
}

int compute_memory_resources(json_t *size_mb, const char *path, json_t **ret, silo_error *err)
{
        if (!json_is_integer(size_mb))
                return silo_error_msg(err, EINVAL, "%s: expected an integer, got %s", path,
                                      silo_json_type_name(size_mb));
        json_int_t mb = json_integer_value(size_mb);
        /* 4 MiB: below that the container cannot even start its init. */
        if (mb < 4 || mb > (json_int_t) (INT64_MAX >> 20))
                return silo_error_msg(err, ERANGE, "%s: %lld MB is out of range (at least 4)", path, (long long) mb);
        *ret = json_pack("{s:{s:I}}", "memory", "limit", (json_int_t) (mb << 20));
        return *ret ? 0 : silo_error_set(err, ENOMEM, "%s", path);
}

/* Processor.Maximum is a share of the whole machine in 1/10000:
 *     quota = Maximum * period * ncpu / 10000   (period 100 ms)
 * Processor.Count caps at that many processors' worth of time:
 *     quota = Count * period                     (the smaller quota wins)
 * Processor.Weight 1..10000 maps onto cgroup v2's cpu.weight range, written
 * as v1 shares by the inverse of the conversion runc and silo apply on v2:
 *     shares = 2 + (Weight - 1) * 262142 / 9999  (100 -> 2623, 10000 -> 262144)
 * 0 leaves a value unset (HCS: default). */
int compute_processor_resources(json_t *processor, const char *path, unsigned ncpu, json_t **ret, silo_error *err)
{
        if (!json_is_object(processor))
                return silo_error_msg(err, EINVAL, "%s: expected an object, got %s", path,
                                      silo_json_type_name(processor));
        struct { silo_opt_u64 count, maximum, weight; } p = {};
        const struct silo_json_field f[] = {
                { "Count", SILO_JSON_OPT_UINT64, offsetof(typeof(p), count), 0 },
                { "Maximum", SILO_JSON_OPT_UINT64, offsetof(typeof(p), maximum), 0 },
                { "Weight", SILO_JSON_OPT_UINT64, offsetof(typeof(p), weight), 0 },
                { NULL },
        };
        int r = silo_json_dispatch(processor, path, f, &p, err);
        if (r < 0)
                return r;
        if (ncpu == 0)
                ncpu = 1;
        if (p.count.set && p.count.value > ncpu)
                return silo_error_msg(err, ERANGE, "%s.Count: %llu exceeds the %u processors of this machine",
                                      path, (unsigned long long) p.count.value, ncpu);
        if (p.maximum.set && p.maximum.value > 10000)
                return silo_error_msg(err, ERANGE, "%s.Maximum: %llu is out of range (0-10000)", path,
                                      (unsigned long long) p.maximum.value);
        if (p.weight.set && p.weight.value > 10000)
                return silo_error_msg(err, ERANGE, "%s.Weight: %llu is out of range (0-10000)", path,
                                      (unsigned long long) p.weight.value);
        _cleanup_json_ json_t *cpu = json_object();
        if (!cpu)
                return silo_error_set(err, ENOMEM, "%s", path);
        uint64_t quota = 0;
        if (p.maximum.set && p.maximum.value > 0)
                quota = p.maximum.value * COMPUTE_CPU_PERIOD * ncpu / 10000;
        if (p.count.set && p.count.value > 0) {
                uint64_t q = p.count.value * COMPUTE_CPU_PERIOD;
                if (quota == 0 || q < quota)
                        quota = q;
        }
        if (quota > 0) {
                if (quota < 1000)
                        quota = 1000;   /* the kernel's minimum cfs quota */
                json_object_set_new(cpu, "quota", json_integer((json_int_t) quota));
                json_object_set_new(cpu, "period", json_integer(COMPUTE_CPU_PERIOD));
        }
        if (p.weight.set && p.weight.value > 0)
                json_object_set_new(cpu, "shares", json_integer((json_int_t) (2 + (p.weight.value - 1) * 262142 / 9999)));
        *ret = json_pack("{s:O}", "cpu", cpu);
        return *ret ? 0 : silo_error_set(err, ENOMEM, "%s", path);
}

/* Overlay options are comma separated and lowerdirs colon separated: such
 * characters in a path cannot be expressed. */
static int overlay_safe(const char *v, const char *path, silo_error *err)
{
        if (strpbrk(v, ",:\\"))
                return silo_error_msg(err, EINVAL, "%s: \"%s\" contains ',', ':' or '\\', which overlay paths cannot",
                                      path, v);
        return 0;
}

static int parse_storage(json_t *storage, const char *path, struct compute_storage *ret, silo_error *err)
{
        struct { json_t *layers; const char *path, *image; } s = {};
        const struct silo_json_field f[] = {
                { "Layers", SILO_JSON_ARRAY, offsetof(typeof(s), layers), SILO_JSON_NULLABLE },
                { "Path", SILO_JSON_STRING, offsetof(typeof(s), path), SILO_JSON_NULLABLE },
                { "Image", SILO_JSON_STRING, offsetof(typeof(s), image), SILO_JSON_NULLABLE },
                { NULL },
        };
        int r = silo_json_dispatch(storage, path, f, &s, err);
        if (r < 0)
                return r;
        char p[SILO_JSON_PATH_MAX], q[SILO_JSON_PATH_MAX];
        /* silo's addition: an image of the store, its layers and a scratch
         * layer managed there (a container rootfs of the store). */
        if (s.image) {
                if (s.layers || s.path)
                        return silo_error_msg(err, EINVAL, "%s.Image: excludes Layers and Path (the store keeps "
                                              "the scratch layer)", path);
                if (!*s.image)
                        return silo_error_msg(err, EINVAL, "%s.Image: empty image reference", path);
                ret->layers = calloc(1, sizeof(char *));
                ret->image = strdup(s.image);
                if (!ret->layers || !ret->image) {
                        compute_storage_done(ret);
                        return silo_error_set(err, ENOMEM, "%s", path);
                }
                return 0;
        }
        if (!s.path)
                return silo_error_msg(err, EINVAL, "%s.Path: required field is missing", path);
        r = want_abs_path(s.path, silo_json_path_key(p, path, "Path"), err);
        if (r < 0)
                return r;
        size_t n = s.layers ? json_array_size(s.layers) : 0;
        if (n > COMPUTE_MAX_LAYERS)
                return silo_error_msg(err, E2BIG, "%s: %zu layers, at most %d", silo_json_path_key(p, path, "Layers"),
                                      n, COMPUTE_MAX_LAYERS);
        _cleanup_strv_ char **layers = calloc(n + 1, sizeof(char *));
        if (!layers)
                return silo_error_set(err, ENOMEM, "%s", path);
        for (size_t i = 0; i < n; i++) {
                char lp[SILO_JSON_PATH_MAX];
                silo_json_path_index(lp, silo_json_path_key(q, path, "Layers"), i);
                struct { const char *id, *path; } l = {};
                const struct silo_json_field lf[] = {
                        { "Id", SILO_JSON_STRING, offsetof(typeof(l), id), 0 },
                        { "Path", SILO_JSON_STRING, offsetof(typeof(l), path), SILO_JSON_REQUIRED },
                        { NULL },
                };
                r = silo_json_dispatch(json_array_get(s.layers, i), lp, lf, &l, err);
                if (r < 0)
                        return r;
                silo_json_path_key(q, lp, "Path");
                if ((r = want_abs_path(l.path, q, err)) < 0 || (r = overlay_safe(l.path, q, err)) < 0)
                        return r;
                layers[i] = strdup(l.path);
                if (!layers[i])
                        return silo_error_set(err, ENOMEM, "%s", lp);
        }
        if (n > 0 && (r = overlay_safe(s.path, p, err)) < 0)
                return r;
        ret->path = strdup(s.path);
        if (!ret->path)
                return silo_error_set(err, ENOMEM, "%s", path);
        ret->layers = TAKE_PTR(layers);
        return 0;
}

int compute_mapped_directory(json_t *md, const char *path, json_t **ret_mount, silo_error *err)
{
        struct { const char *host, *container; bool ro; } m = {};
        const struct silo_json_field f[] = {
                { "HostPath", SILO_JSON_STRING, offsetof(typeof(m), host), SILO_JSON_REQUIRED },
                { "ContainerPath", SILO_JSON_STRING, offsetof(typeof(m), container), SILO_JSON_REQUIRED },
                { "ReadOnly", SILO_JSON_BOOL, offsetof(typeof(m), ro), 0 },
                { NULL },
        };
        if (!json_is_object(md))
                return silo_error_msg(err, EINVAL, "%s: expected an object, got %s", path, silo_json_type_name(md));
        int r = silo_json_dispatch(md, path, f, &m, err);
        if (r < 0)
                return r;
        char p[SILO_JSON_PATH_MAX];
        if ((r = want_abs_path(m.host, silo_json_path_key(p, path, "HostPath"), err)) < 0 ||
            (r = want_abs_path(m.container, silo_json_path_key(p, path, "ContainerPath"), err)) < 0)
                return r;
        *ret_mount = json_pack("{s:s, s:s, s:s, s:[s, s, s]}", "destination", m.container, "type", "bind",
                               "source", m.host, "options", "rbind", m.ro ? "ro" : "rw", "nosuid");
        return *ret_mount ? 0 : silo_error_set(err, ENOMEM, "%s", path);
}

static int merge_resources(json_t *spec, json_t *fragment)
{
        json_t *lx = json_object_get(spec, "linux");
        if (!lx) {
                lx = json_object();
                if (!lx || json_object_set_new(spec, "linux", lx) < 0)
                        return -ENOMEM;
        }
        json_t *res = json_object_get(lx, "resources");
        if (!res) {
                res = json_object();
                if (!res || json_object_set_new(lx, "resources", res) < 0)
                        return -ENOMEM;
        }
        return json_object_update_recursive(res, fragment) < 0 ? -ENOMEM : 0;
}

static int set_netns(json_t *spec, const char *ns, const char *path, silo_error *err)
{
        char nspath[PATH_MAX];
        if (ns[0] == '/')
                snprintf(nspath, sizeof(nspath), "%s", ns);
        else if (!*ns || strchr(ns, '/') || !strcmp(ns, ".") || !strcmp(ns, ".."))
                return silo_error_msg(err, EINVAL, "%s.Namespace: \"%s\" is neither a name in "
                                      "/var/run/netns nor an absolute path", path, ns);
        else
                snprintf(nspath, sizeof(nspath), "/var/run/netns/%s", ns);
        json_t *nss = json_object_get(json_object_get(spec, "linux"), "namespaces");
        size_t i;
        json_t *e;
        json_array_foreach(nss, i, e) {
                if (!strcmp(json_string_value(json_object_get(e, "type")) ?: "", "network")) {
                        json_object_set_new(e, "path", json_string(nspath));
                        return 0;
                }
        }
        if (nss)
                json_array_append_new(nss, json_pack("{s:s, s:s}", "type", "network", "path", nspath));
        return 0;
}

/* The template: runc's defaults, with the silo init as the process. */
static json_t *default_spec(const struct compute_spec_options *o)
{
        json_t *spec = silo_spec_default(false);
        if (!spec)
                return NULL;
        json_t *proc = json_object_get(spec, "process");
        json_object_set_new(proc, "terminal", json_false());
        json_object_set_new(proc, "args", json_pack("[s]", COMPUTE_INIT_TARGET));
        json_object_set_new(json_object_get(spec, "root"), "readonly", json_false());
        json_array_append_new(json_object_get(spec, "mounts"),
                              json_pack("{s:s, s:s, s:s, s:[s, s, s]}", "destination", COMPUTE_INIT_TARGET,
                                        "type", "bind", "source", o->init_path, "options", "bind", "ro", "nosuid"));
        return spec;
}

/* {Namespace | Network [, Ports]}: a namespace to join goes into the spec;
 * a network is checked here and attached at create (network.c). */
static int parse_networking(json_t *net, const char *path, json_t *spec, silo_error *err)
{
        struct { const char *ns, *network; json_t *ports; } nets = {};
        const struct silo_json_field nf[] = {
                { "Namespace", SILO_JSON_STRING, offsetof(typeof(nets), ns), SILO_JSON_NULLABLE },
                { "Network", SILO_JSON_STRING, offsetof(typeof(nets), network), SILO_JSON_NULLABLE },
                { "Ports", SILO_JSON_ARRAY, offsetof(typeof(nets), ports), SILO_JSON_NULLABLE },
                { NULL },
        };
        int r = silo_json_dispatch(net, path, nf, &nets, err);
        if (r < 0)
                return r;
        if (nets.ns && nets.network)
                return silo_error_msg(err, EINVAL, "%s: Namespace and Network exclude each other", path);
        if (nets.ports && !nets.network)
                return silo_error_msg(err, EINVAL, "%s.Ports: needs a Network", path);
        if (nets.ports) {
                struct silo_net_port *ports = NULL;
                size_t n_ports = 0;
                char p[SILO_JSON_PATH_MAX];
                snprintf(p, sizeof(p), "%s.Ports", path);
                r = compute_network_ports(nets.ports, p, &ports, &n_ports, err);
                free(ports);
                if (r < 0)
                        return r;
        }
        return nets.ns ? set_netns(spec, nets.ns, path, err) : 0;
}

/* A VirtualMachine document -> the config of a utility VM: no process and
 * no root of its own, its settings as annotations (src/lib/vm). */
static int vm_document_to_spec(json_t *vm, const struct compute_spec_options *o, json_t **ret_spec, silo_error *err)
{
        struct {
                json_t *chipset, *topology, *net;
        } v = {};
        const struct silo_json_field vf[] = {
                { "Chipset", SILO_JSON_OBJECT, offsetof(typeof(v), chipset), SILO_JSON_NULLABLE },
                { "ComputeTopology", SILO_JSON_OBJECT, offsetof(typeof(v), topology), SILO_JSON_NULLABLE },
                { "Networking", SILO_JSON_OBJECT, offsetof(typeof(v), net), SILO_JSON_NULLABLE },
                { NULL },
        };
        int r = silo_json_dispatch(vm, "VirtualMachine", vf, &v, err);
        if (r < 0)
                return r;
        struct {
                const char *kernel, *initrd, *cmdline;
        } k = {};
        json_t *direct = json_object_get(v.chipset, "LinuxKernelDirect");
        if (direct && !json_is_object(direct))
                return silo_error_msg(err, EINVAL, "VirtualMachine.Chipset.LinuxKernelDirect: expected an object, got %s",
                                      silo_json_type_name(direct));
        if (v.chipset && !direct)
                return silo_error_msg(err, ENOTSUP, "VirtualMachine.Chipset: only LinuxKernelDirect boots are supported "
                                      "(no firmware, no UEFI)");
        const struct silo_json_field kf[] = {
                { "KernelFilePath", SILO_JSON_STRING, offsetof(typeof(k), kernel), SILO_JSON_NULLABLE },
                { "InitRdPath", SILO_JSON_STRING, offsetof(typeof(k), initrd), SILO_JSON_NULLABLE },
                { "KernelCmdLine", SILO_JSON_STRING, offsetof(typeof(k), cmdline), SILO_JSON_NULLABLE },
                { NULL },
        };
        if (direct && (r = silo_json_dispatch(direct, "VirtualMachine.Chipset.LinuxKernelDirect", kf, &k, err)) < 0)
                return r;
        if ((k.kernel && k.kernel[0] != '/') || (k.initrd && k.initrd[0] != '/'))
                return silo_error_msg(err, EINVAL, "VirtualMachine.Chipset.LinuxKernelDirect.%s: must be an absolute path",
                                      k.kernel && k.kernel[0] != '/' ? "KernelFilePath" : "InitRdPath");
        if (k.cmdline && strlen(k.cmdline) > 512)
                return silo_error_msg(err, E2BIG, "VirtualMachine.Chipset.LinuxKernelDirect.KernelCmdLine: longer "
                                      "than 512 bytes");
        json_int_t mem = 0, cpus = 0;
        json_t *jmem = json_object_get(json_object_get(v.topology, "Memory"), "SizeInMB");
        json_t *jcpu = json_object_get(json_object_get(v.topology, "Processor"), "Count");
        if (jmem && !json_is_null(jmem) && (!json_is_integer(jmem) || json_integer_value(jmem) < 0 ||
                                            (json_integer_value(jmem) && (json_integer_value(jmem) < SILO_VM_MIN_MEM_MB ||
                                             json_integer_value(jmem) > SILO_VM_MAX_MEM_MB))))
                return silo_error_msg(err, EINVAL, "VirtualMachine.ComputeTopology.Memory.SizeInMB: expected %d .. %d",
                                      SILO_VM_MIN_MEM_MB, SILO_VM_MAX_MEM_MB);
        if (jcpu && !json_is_null(jcpu) && (!json_is_integer(jcpu) || json_integer_value(jcpu) < 0 ||
                                            json_integer_value(jcpu) > SILO_VM_MAX_CPUS ||
                                            json_integer_value(jcpu) > (json_int_t) o->ncpu))
                return silo_error_msg(err, EINVAL, "VirtualMachine.ComputeTopology.Processor.Count: expected 1 .. %u "
                                      "(the online processors)", o->ncpu < SILO_VM_MAX_CPUS ? o->ncpu : SILO_VM_MAX_CPUS);
        mem = json_integer_value(jmem);
        cpus = json_integer_value(jcpu);
        char cg[PATH_MAX], mem_s[32], cpus_s[32];
        snprintf(cg, sizeof(cg), "%s/%s", o->cgroup_parent, o->id);
        snprintf(mem_s, sizeof(mem_s), "%lld", (long long) mem);
        snprintf(cpus_s, sizeof(cpus_s), "%lld", (long long) cpus);
        _cleanup_json_ json_t *spec = json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:[]}}", "ociVersion", "1.2.0",
                                                "annotations", SILO_VM_ANNOTATION, "vm", SILO_VM_UTILITY_ANNOTATION,
                                                "true", "linux", "cgroupsPath", cg, "namespaces");
        if (!spec)
                return silo_error_set(err, ENOMEM, "VirtualMachine");
        /* The VM's NIC is its containers' network (a pod's sandbox). */
        if (v.net && (r = parse_networking(v.net, "VirtualMachine.Networking", spec, err)) < 0)
                return r;
        json_t *ann = json_object_get(spec, "annotations");
        if (k.kernel)
                json_object_set_new(ann, SILO_VM_KERNEL_ANNOTATION, json_string(k.kernel));
        if (k.initrd)
                json_object_set_new(ann, SILO_VM_INITRD_ANNOTATION, json_string(k.initrd));
        if (k.cmdline && *k.cmdline)
                json_object_set_new(ann, SILO_VM_CMDLINE_ANNOTATION, json_string(k.cmdline));
        if (mem)
                json_object_set_new(ann, SILO_VM_MEMORY_ANNOTATION, json_string(mem_s));
        if (cpus)
                json_object_set_new(ann, SILO_VM_CPUS_ANNOTATION, json_string(cpus_s));
        *ret_spec = TAKE_PTR(spec);
        return 0;
}

int compute_document_to_spec(json_t *doc, const struct compute_spec_options *o, json_t **ret_spec,
                             struct compute_storage *ret_storage, silo_error *err)
{
        if (!json_is_object(doc))
                return silo_error_msg(err, EINVAL, "ComputeSystem: expected an object, got %s", silo_json_type_name(doc));
        struct {
                const char *owner, *hosting;
                json_t *schema, *container, *vm;
                bool terminate_on_close;
        } d = {};
        const struct silo_json_field f[] = {
                { "Owner", SILO_JSON_STRING, offsetof(typeof(d), owner), SILO_JSON_NULLABLE },
                { "SchemaVersion", SILO_JSON_OBJECT, offsetof(typeof(d), schema), 0 },
                { "Container", SILO_JSON_OBJECT, offsetof(typeof(d), container), SILO_JSON_NULLABLE },
                { "VirtualMachine", SILO_JSON_OBJECT, offsetof(typeof(d), vm), SILO_JSON_NULLABLE },
                { "HostingSystemId", SILO_JSON_STRING, offsetof(typeof(d), hosting), SILO_JSON_NULLABLE },
                { "ShouldTerminateOnLastHandleClosed", SILO_JSON_BOOL, offsetof(typeof(d), terminate_on_close), 0 },
                { NULL },
        };
        int r = silo_json_dispatch(doc, "", f, &d, err);
        if (r < 0)
                return r;
        if (d.schema) {
                struct { int major, minor; } v = {};
                const struct silo_json_field vf[] = {
                        { "Major", SILO_JSON_INT, offsetof(typeof(v), major), SILO_JSON_REQUIRED },
                        { "Minor", SILO_JSON_INT, offsetof(typeof(v), minor), 0 },
                        { NULL },
                };
                r = silo_json_dispatch(d.schema, "SchemaVersion", vf, &v, err);
                if (r < 0)
                        return r;
                if (v.major != 2)
                        return silo_error_msg(err, ENOTSUP, "SchemaVersion.Major: %d is not supported (only 2)", v.major);
        }
        if (d.container && d.vm)
                return silo_error_msg(err, EINVAL, "Container and VirtualMachine are mutually exclusive");
        if (d.vm && d.hosting)
                return silo_error_msg(err, EINVAL, "HostingSystemId: a VirtualMachine is not hosted in another");
        if (d.vm) {
                *ret_storage = (struct compute_storage) {};
                return vm_document_to_spec(d.vm, o, ret_spec, err);
        }
        if (d.hosting && (r = silo_id_validate(d.hosting, err)) < 0)
                return silo_error_prefix(err, "HostingSystemId");
        if (!d.container)
                return silo_error_msg(err, EINVAL, "Container: missing (the system kind)");

        struct {
                json_t *guest, *storage, *mapped, *memory, *processor, *net, *oci;
        } c = {};
        const struct silo_json_field cf[] = {
                { "GuestOs", SILO_JSON_OBJECT, offsetof(typeof(c), guest), SILO_JSON_NULLABLE },
                { "Storage", SILO_JSON_OBJECT, offsetof(typeof(c), storage), SILO_JSON_NULLABLE },
                { "MappedDirectories", SILO_JSON_ARRAY, offsetof(typeof(c), mapped), SILO_JSON_NULLABLE },
                { "Memory", SILO_JSON_OBJECT, offsetof(typeof(c), memory), SILO_JSON_NULLABLE },
                { "Processor", SILO_JSON_OBJECT, offsetof(typeof(c), processor), SILO_JSON_NULLABLE },
                { "Networking", SILO_JSON_OBJECT, offsetof(typeof(c), net), SILO_JSON_NULLABLE },
                { "OciSpecification", SILO_JSON_OBJECT, offsetof(typeof(c), oci), SILO_JSON_NULLABLE },
                { NULL },
        };
        r = silo_json_dispatch(d.container, "Container", cf, &c, err);
        if (r < 0)
                return r;
        if (d.hosting && c.net)
                return silo_error_msg(err, ENOTSUP, "Container.Networking: a container in a utility VM (HostingSystemId) "
                                      "shares its VM's network (VirtualMachine.Networking)");

        /* An embedded OCI spec is the base; the HCS fields override it.  Its
         * process, if any, is the init: the system ends when it does. */
        _cleanup_json_ json_t *spec = NULL;
        if (c.oci) {
                spec = json_deep_copy(c.oci);
                if (spec && !json_object_get(spec, "process")) {
                        _cleanup_json_ json_t *def = default_spec(o);
                        if (def) {
                                json_object_set(spec, "process", json_object_get(def, "process"));
                                json_t *mounts = json_object_get(spec, "mounts");
                                if (!mounts)
                                        json_object_set(spec, "mounts", json_object_get(def, "mounts"));
                                else
                                        json_array_append(mounts, json_array_get(json_object_get(def, "mounts"),
                                                          json_array_size(json_object_get(def, "mounts")) - 1));
                        }
                }
        } else {
                spec = default_spec(o);
        }
        if (!spec)
                return silo_error_set(err, ENOMEM, "ComputeSystem");

        const char *hostname = NULL;
        if (c.guest) {
                const struct silo_json_field gf[] = {
                        { "HostName", SILO_JSON_STRING, 0, SILO_JSON_NULLABLE },
                        { NULL },
                };
                r = silo_json_dispatch(c.guest, "Container.GuestOs", gf, &hostname, err);
                if (r < 0)
                        return r;
                if (hostname && (strlen(hostname) == 0 || strlen(hostname) > 64))
                        return silo_error_msg(err, EINVAL, "Container.GuestOs.HostName: must be 1-64 characters");
        }
        if (hostname || !c.oci || !json_object_get(spec, "hostname")) {
                char h[65];
                snprintf(h, sizeof(h), "%s", hostname ? hostname : o->id);
                json_object_set_new(spec, "hostname", json_string(h));
        }

        struct compute_storage storage = {};
        if (c.storage) {
                r = parse_storage(c.storage, "Container.Storage", &storage, err);
                if (r < 0)
                        return r;
        } else {
                const char *root = json_string_value(json_object_get(json_object_get(spec, "root"), "path"));
                if (!root || root[0] != '/') {
                        return silo_error_msg(err, EINVAL, "Container.Storage: missing (and no absolute "
                                              "OciSpecification root.path to use instead)");
                }
                storage.path = strdup(root);
                if (!storage.path)
                        return silo_error_set(err, ENOMEM, "Container.Storage");
        }
        const char *root_path = storage.image || (storage.layers && storage.layers[0]) ? o->rootfs : storage.path;
        json_t *root = json_object_get(spec, "root");
        if (!root) {
                root = json_object();
                json_object_set_new(spec, "root", root);
        }
        json_object_set_new(root, "path", json_string(root_path));

        if (c.mapped) {
                size_t n = json_array_size(c.mapped);
                if (n > COMPUTE_MAX_MAPPED) {
                        compute_storage_done(&storage);
                        return silo_error_msg(err, E2BIG, "Container.MappedDirectories: %zu entries, at most %d", n,
                                              COMPUTE_MAX_MAPPED);
                }
                json_t *mounts = json_object_get(spec, "mounts");
                if (!mounts) {
                        mounts = json_array();
                        json_object_set_new(spec, "mounts", mounts);
                }
                for (size_t i = 0; i < n; i++) {
                        char p[SILO_JSON_PATH_MAX];
                        json_t *m = NULL;
                        r = compute_mapped_directory(json_array_get(c.mapped, i),
                                                     silo_json_path_index(p, "Container.MappedDirectories", i), &m, err);
                        if (r < 0) {
                                compute_storage_done(&storage);
                                return r;
                        }
                        json_array_append_new(mounts, m);
                }
        }
        if (c.memory) {
                json_t *frag = NULL;
                json_t *mb = json_object_get(c.memory, "SizeInMB");
                if (mb && !json_is_null(mb)) {
                        r = compute_memory_resources(mb, "Container.Memory.SizeInMB", &frag, err);
                        if (r < 0) {
                                compute_storage_done(&storage);
                                return r;
                        }
                        merge_resources(spec, frag);
                        json_decref(frag);
                }
        }
        if (c.processor) {
                json_t *frag = NULL;
                r = compute_processor_resources(c.processor, "Container.Processor", o->ncpu, &frag, err);
                if (r < 0) {
                        compute_storage_done(&storage);
                        return r;
                }
                merge_resources(spec, frag);
                json_decref(frag);
        }
        if (c.net && (r = parse_networking(c.net, "Container.Networking", spec, err)) < 0) {
                compute_storage_done(&storage);
                return r;
        }
        json_t *lx = json_object_get(spec, "linux");
        if (!lx) {
                lx = json_object();
                json_object_set_new(spec, "linux", lx);
        }
        char cg[PATH_MAX];
        snprintf(cg, sizeof(cg), "%s/%s", o->cgroup_parent, o->id);
        json_object_set_new(lx, "cgroupsPath", json_string(cg));
        if (d.hosting) {
                /* Runs inside the utility VM (src/lib/vm: hosted containers). */
                json_t *ann = json_object_get(spec, "annotations");
                if (!json_is_object(ann)) {
                        ann = json_object();
                        json_object_set_new(spec, "annotations", ann);
                }
                json_object_set_new(ann, SILO_VM_ANNOTATION, json_string("vm"));
                json_object_set_new(ann, SILO_VM_HOST_ANNOTATION, json_string(d.hosting));
        }

        *ret_spec = TAKE_PTR(spec);
        *ret_storage = storage;
        return 0;
}

int compute_split_command_line(const char *line, const char *path, char ***ret, silo_error *err)
{
        size_t len = strlen(line);
        if (len > 128 * 1024)
                return silo_error_msg(err, E2BIG, "%s: longer than 128 KiB", path);
        _cleanup_strv_ char **words = calloc(1, sizeof(char *));
        _cleanup_free_ char *cur = malloc(len + 1);
        if (!words || !cur)
                return silo_error_set(err, ENOMEM, "%s", path);
        size_t n = 0, w = 0;
        bool in_word = false;
        char quote = 0;
        for (const char *s = line;; s++) {
                char ch = *s;
                if (!ch) {
                        if (quote)
                                return silo_error_msg(err, EINVAL, "%s: unterminated %c quote", path, quote);
                } else if (quote == '\'') {
                        if (ch == '\'')
                                quote = 0;
                        else
                                cur[w++] = ch;
                        continue;
                } else if (quote == '"') {
                        if (ch == '"')
                                quote = 0;
                        else if (ch == '\\' && (s[1] == '"' || s[1] == '\\' || s[1] == '$' || s[1] == '`'))
                                cur[w++] = *++s;
                        else
                                cur[w++] = ch;
                        continue;
                } else if (ch == '\'' || ch == '"') {
                        quote = ch;
                        in_word = true;
                        continue;
                } else if (ch == '\\') {
                        if (!s[1])
                                return silo_error_msg(err, EINVAL, "%s: trailing backslash", path);
                        cur[w++] = *++s;
                        in_word = true;
                        continue;
                } else if (ch != ' ' && ch != '\t' && ch != '\n') {
                        cur[w++] = ch;
                        in_word = true;
                        continue;
                }
                /* A separator or the end: finish the word. */
                if (in_word) {
                        if (n >= COMPUTE_MAX_ARGS)
                                return silo_error_msg(err, E2BIG, "%s: more than %d words", path, COMPUTE_MAX_ARGS);
                        char **nw = realloc(words, (n + 2) * sizeof(char *));
                        if (!nw)
                                return silo_error_set(err, ENOMEM, "%s", path);
                        words = nw;
                        words[n] = strndup(cur, w);
                        words[n + 1] = NULL;
                        if (!words[n])
                                return silo_error_set(err, ENOMEM, "%s", path);
                        n++;
                        w = 0;
                        in_word = false;
                }
                if (!ch)
                        break;
        }
        if (n == 0)
                return silo_error_msg(err, EINVAL, "%s: empty command line", path);
        *ret = TAKE_PTR(words);
        return 0;
}

/* One "name:x:id:..." line of /etc/passwd or /etc/group inside the system's
 * root: by name (want_name) or by id; fields 2 and 3 (id, primary gid). */
static int db_lookup(int rootfd, const char *file, const char *name, uint32_t id, uint32_t *ret_id,
                     uint32_t *ret_gid)
{
        if (rootfd < 0)
                return -ENOENT;
        _cleanup_close_ int fd = silo_open_in_root(rootfd, file, O_RDONLY | O_CLOEXEC, 0, NULL);
        if (fd < 0)
                return -ENOENT;
        _cleanup_free_ char *text = NULL;
        char fdpath[64];
        if (silo_read_file_at(AT_FDCWD, silo_fd_path(fdpath, fd), 1 << 20, &text, NULL, NULL) < 0)
                return -ENOENT;
        for (char *line = text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                char *f[4] = {};
                char *cur = line;
                for (int i = 0; i < 4; i++) {
                        f[i] = cur;
                        cur = cur ? strchr(cur, ':') : NULL;
                        if (cur)
                                *cur++ = '\0';
                }
                if (!f[2])
                        continue;
                char *end;
                errno = 0;
                unsigned long v = strtoul(f[2], &end, 10);
                if (errno || *end || end == f[2] || v > UINT32_MAX - 1)
                        continue;
                if (name ? strcmp(f[0], name) != 0 : v != id)
                        continue;
                *ret_id = (uint32_t) v;
                if (ret_gid) {
                        unsigned long g = f[3] ? strtoul(f[3], &end, 10) : 0;
                        *ret_gid = f[3] && *f[3] && !*end && g <= UINT32_MAX - 1 ? (uint32_t) g : 0;
                }
                return 0;
        }
        return -ENOENT;
}

static bool parse_id(const char *s, uint32_t *ret)
{
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end || s[0] == '-' || v > UINT32_MAX - 1)
                return false;
        *ret = (uint32_t) v;
        return true;
}

/* User "uid", "name", "uid:gid", "name:group" (any mix), as Docker reads
 * it: names through the system's /etc/passwd and /etc/group (rootfd, -1 if
 * there is none); a user alone gets its passwd group, or 0. */
static int parse_user(const char *user, int rootfd, json_t *proc, silo_error *err)
{
        char buf[256];
        if (!*user || strlen(user) >= sizeof(buf))
                return silo_error_msg(err, EINVAL, "User: expected \"user[:group]\", got \"%s\"", user);
        snprintf(buf, sizeof(buf), "%s", user);
        char *group = strchr(buf, ':');
        if (group)
                *group++ = '\0';
        if (!*buf || (group && (!*group || strchr(group, ':'))))
                return silo_error_msg(err, EINVAL, "User: expected \"user[:group]\", got \"%s\"", user);
        uint32_t uid, gid = 0, pw_gid = 0;
        if (parse_id(buf, &uid)) {
                if (db_lookup(rootfd, "/etc/passwd", NULL, uid, &uid, &pw_gid) < 0)
                        pw_gid = 0;
        } else if (db_lookup(rootfd, "/etc/passwd", buf, 0, &uid, &pw_gid) < 0) {
                return silo_error_msg(err, ENOENT, "User: no user \"%s\" in the system's /etc/passwd", buf);
        }
        if (!group)
                gid = pw_gid;
        else if (!parse_id(group, &gid) && db_lookup(rootfd, "/etc/group", group, 0, &gid, NULL) < 0)
                return silo_error_msg(err, ENOENT, "User: no group \"%s\" in the system's /etc/group", group);
        json_object_set_new(proc, "user", json_pack("{s:I, s:I}", "uid", (json_int_t) uid, "gid", (json_int_t) gid));
        return 0;
}

int compute_process_to_oci(json_t *params, json_t *base, int rootfd, json_t **ret,
                           struct compute_process_params *ret_params, silo_error *err)
{
        if (!json_is_object(params))
                return silo_error_msg(err, EINVAL, "ProcessParameters: expected an object, got %s",
                                      silo_json_type_name(params));
        struct {
                const char *command_line, *cwd, *user;
                json_t *args, *env, *console_size;
                bool in, out, errp, console;
        } p = {};
        const struct silo_json_field f[] = {
                { "CommandLine", SILO_JSON_STRING, offsetof(typeof(p), command_line), SILO_JSON_NULLABLE },
                { "CommandArgs", SILO_JSON_ARRAY, offsetof(typeof(p), args), SILO_JSON_NULLABLE },
                { "WorkingDirectory", SILO_JSON_STRING, offsetof(typeof(p), cwd), SILO_JSON_NULLABLE },
                { "Environment", SILO_JSON_OBJECT, offsetof(typeof(p), env), SILO_JSON_NULLABLE },
                { "User", SILO_JSON_STRING, offsetof(typeof(p), user), SILO_JSON_NULLABLE },
                { "CreateStdInPipe", SILO_JSON_BOOL, offsetof(typeof(p), in), 0 },
                { "CreateStdOutPipe", SILO_JSON_BOOL, offsetof(typeof(p), out), 0 },
                { "CreateStdErrPipe", SILO_JSON_BOOL, offsetof(typeof(p), errp), 0 },
                { "EmulateConsole", SILO_JSON_BOOL, offsetof(typeof(p), console), 0 },
                { "ConsoleSize", SILO_JSON_ARRAY, offsetof(typeof(p), console_size), SILO_JSON_NULLABLE },
                { NULL },
        };
        int r = silo_json_dispatch(params, "", f, &p, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *proc = json_object();
        _cleanup_json_ json_t *args = json_array();
        _cleanup_json_ json_t *env = json_array();
        if (!proc || !args || !env)
                return silo_error_set(err, ENOMEM, "ProcessParameters");
        /* CommandArgs wins: it needs no splitting (hcsshim does the same on Linux). */
        if (p.args && json_array_size(p.args) > 0) {
                if (json_array_size(p.args) > COMPUTE_MAX_ARGS)
                        return silo_error_msg(err, E2BIG, "CommandArgs: more than %d arguments", COMPUTE_MAX_ARGS);
                size_t i;
                json_t *a;
                json_array_foreach(p.args, i, a) {
                        if (!json_is_string(a))
                                return silo_error_msg(err, EINVAL, "CommandArgs[%zu]: expected a string, got %s", i,
                                                      silo_json_type_name(a));
                        json_array_append(args, a);
                }
        } else if (p.command_line) {
                _cleanup_strv_ char **words = NULL;
                r = compute_split_command_line(p.command_line, "CommandLine", &words, err);
                if (r < 0)
                        return r;
                for (char **w = words; *w; w++)
                        json_array_append_new(args, json_string(*w));
        } else {
                return silo_error_msg(err, EINVAL, "ProcessParameters: needs CommandLine or CommandArgs");
        }
        json_object_set(proc, "args", args);

        bool have_path = false;
        if (p.env) {
                if (json_object_size(p.env) > COMPUTE_MAX_ARGS)
                        return silo_error_msg(err, E2BIG, "Environment: more than %d variables", COMPUTE_MAX_ARGS);
                const char *k;
                json_t *v;
                json_object_foreach(p.env, k, v) {
                        if (!json_is_string(v))
                                return silo_error_msg(err, EINVAL, "Environment.%s: expected a string, got %s", k,
                                                      silo_json_type_name(v));
                        if (!*k || strchr(k, '='))
                                return silo_error_msg(err, EINVAL, "Environment: invalid variable name \"%s\"", k);
                        json_t *e = json_sprintf("%s=%s", k, json_string_value(v));
                        if (!e)
                                return silo_error_set(err, ENOMEM, "Environment");
                        json_array_append_new(env, e);
                        if (!strcmp(k, "PATH"))
                                have_path = true;
                }
        }
        if (!have_path)
                json_array_append_new(env, json_string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
        json_object_set(proc, "env", env);
        if (p.cwd && p.cwd[0] != '/')
                return silo_error_msg(err, EINVAL, "WorkingDirectory: expected an absolute path, got \"%s\"", p.cwd);
        json_object_set_new(proc, "cwd", json_string(p.cwd ? p.cwd : "/"));
        if (p.user) {
                r = parse_user(p.user, rootfd, proc, err);
                if (r < 0)
                        return r;
        } else {
                json_object_set_new(proc, "user", json_pack("{s:i, s:i}", "uid", 0, "gid", 0));
        }
        if (p.console_size) {
                json_t *h = json_array_get(p.console_size, 0), *w = json_array_get(p.console_size, 1);
                if (json_array_size(p.console_size) != 2 || !json_is_integer(h) || !json_is_integer(w) ||
                    json_integer_value(h) < 0 || json_integer_value(h) > 65535 ||
                    json_integer_value(w) < 0 || json_integer_value(w) > 65535)
                        return silo_error_msg(err, EINVAL, "ConsoleSize: expected [height, width] (0-65535)");
                if (p.console)
                        json_object_set_new(proc, "consoleSize", json_pack("{s:O, s:O}", "height", h, "width", w));
        }
        json_object_set_new(proc, "terminal", json_boolean(p.console));
        /* Processes get the system's privileges, as the HCS gives them. */
        static const char *const inherited[] = { "capabilities", "rlimits", "noNewPrivileges", "apparmorProfile",
                                                 "selinuxLabel" };
        for (size_t i = 0; base && i < ARRAY_SIZE(inherited); i++) {
                json_t *v = json_object_get(base, inherited[i]);
                if (v)
                        json_object_set(proc, inherited[i], v);
        }
        *ret_params = (struct compute_process_params) { .stdin_pipe = p.in, .stdout_pipe = p.out,
                                                        .stderr_pipe = p.errp, .console = p.console };
        *ret = TAKE_PTR(proc);
        return 0;
}

int compute_property_query_parse(json_t *query, unsigned *ret, silo_error *err)
{
        *ret = 0;
        if (!query || json_is_null(query))
                return 0;
        json_t *types = NULL;
        const struct silo_json_field f[] = {
                { "PropertyTypes", SILO_JSON_ARRAY, 0, SILO_JSON_NULLABLE },
                { NULL },
        };
        if (!json_is_object(query))
                return silo_error_msg(err, EINVAL, "PropertyQuery: expected an object, got %s",
                                      silo_json_type_name(query));
        int r = silo_json_dispatch(query, "", f, &types, err);
        if (r < 0)
                return r;
        size_t i;
        json_t *t;
        json_array_foreach(types, i, t) {
                const char *s = json_string_value(t);
                if (!s)
                        return silo_error_msg(err, EINVAL, "PropertyTypes[%zu]: expected a string, got %s", i,
                                              silo_json_type_name(t));
                if (!strcmp(s, "Statistics"))
                        *ret |= COMPUTE_PROP_STATISTICS;
                else if (!strcmp(s, "ProcessList"))
                        *ret |= COMPUTE_PROP_PROCESS_LIST;
                else if (!strcmp(s, "Memory"))
                        *ret |= COMPUTE_PROP_MEMORY;
                else
                        return silo_error_msg(err, EINVAL, "PropertyTypes[%zu]: unknown property type \"%s\" "
                                              "(expected Statistics, ProcessList or Memory)", i, s);
        }
        return 0;
}

int compute_modify_parse(json_t *request, struct compute_modify *ret, silo_error *err)
{
        if (!json_is_object(request))
                return silo_error_msg(err, EINVAL, "ModifySettingRequest: expected an object, got %s",
                                      silo_json_type_name(request));
        struct { const char *path, *type; json_t *settings; } m = {};
        const struct silo_json_field f[] = {
                { "ResourcePath", SILO_JSON_STRING, offsetof(typeof(m), path), SILO_JSON_REQUIRED },
                { "RequestType", SILO_JSON_STRING, offsetof(typeof(m), type), 0 },
                { NULL },
        };
        int r = silo_json_dispatch(request, "", f, &m, err);
        if (r < 0)
                return r;
        m.settings = json_object_get(request, "Settings");
        if (!m.type || !strcmp(m.type, "Update"))
                ret->type = COMPUTE_REQUEST_UPDATE;
        else if (!strcmp(m.type, "Add"))
                ret->type = COMPUTE_REQUEST_ADD;
        else if (!strcmp(m.type, "Remove"))
                ret->type = COMPUTE_REQUEST_REMOVE;
        else
                return silo_error_msg(err, EINVAL, "RequestType: unknown request type \"%s\" (expected Add, Remove "
                                      "or Update)", m.type);
        static const struct { const char *path; enum compute_modify_resource res; unsigned types; } table[] = {
                { "Container/Memory/SizeInMB", COMPUTE_MODIFY_MEMORY, 1u << COMPUTE_REQUEST_UPDATE },
                { "Container/Processor", COMPUTE_MODIFY_PROCESSOR, 1u << COMPUTE_REQUEST_UPDATE },
                { "Container/MappedDirectories", COMPUTE_MODIFY_MAPPED_DIRECTORY,
                  1u << COMPUTE_REQUEST_ADD | 1u << COMPUTE_REQUEST_REMOVE },
        };
        for (size_t i = 0; i < ARRAY_SIZE(table); i++) {
                if (strcmp(table[i].path, m.path))
                        continue;
                if (!(table[i].types & (1u << ret->type)))
                        return silo_error_msg(err, ENOTSUP, "RequestType: %s is not supported for %s",
                                              m.type ? m.type : "Update", m.path);
                if (!m.settings || json_is_null(m.settings))
                        return silo_error_msg(err, EINVAL, "Settings: missing (required for %s)", m.path);
                ret->resource = table[i].res;
                ret->settings = m.settings;
                return 0;
        }
        return silo_error_msg(err, ENOTSUP, "ResourcePath: unknown resource \"%s\" (expected "
                              "Container/Memory/SizeInMB, Container/Processor or Container/MappedDirectories)", m.path);
}
