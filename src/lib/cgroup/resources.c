/* linux.resources of the OCI runtime spec (1.2) into struct silo_resources.
 * Shape and type errors are reported here with the full field path; values
 * the kernel judges (a weight of 5, a cpu list naming a missing cpu) are
 * left to the write, which names the field too. */
#include "cgroup/cgroup-internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_MAX 65536         /* no cgroup setting has more entries than this */
#define FIELD(name, kind, type, member, flags) { name, kind, offsetof(type, member), flags, NULL }

typedef int (*elem_parse_fn)(json_t *v, const char *path, void *elem, silo_error *err);

/* Decodes a JSON array into a calloc'd array of elem_size entries. */
static int parse_array(json_t *arr, const char *path, size_t elem_size, elem_parse_fn parse,
                       void **ret, size_t *ret_n, silo_error *err)
{
        *ret = NULL;
        *ret_n = 0;
        if (!arr)
                return 0;
        size_t n = json_array_size(arr);
        if (n == 0)
                return 0;
        if (n > ARRAY_MAX)
                return silo_error_msg(err, E2BIG, "%s: more than %d entries", path, ARRAY_MAX);

        _cleanup_free_ char *items = calloc(n, elem_size);
        if (!items)
                return silo_error_set(err, ENOMEM, "%s", path);
        for (size_t i = 0; i < n; i++) {
                char p[SILO_JSON_PATH_MAX];
                silo_json_path_index(p, path, i);
                int r = parse(json_array_get(arr, i), p, items + i * elem_size, err);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(items);
        *ret_n = n;
        return 0;
}

/* ---- devices ---- */

struct raw_device {
        bool allow;
        const char *type, *access;
        silo_opt_i64 major, minor;
};

static const struct silo_json_field device_fields[] = {
        FIELD("allow", SILO_JSON_BOOL, struct raw_device, allow, SILO_JSON_REQUIRED),
        FIELD("type", SILO_JSON_STRING, struct raw_device, type, SILO_JSON_NULLABLE),
        FIELD("major", SILO_JSON_OPT_INT64, struct raw_device, major, SILO_JSON_NULLABLE),
        FIELD("minor", SILO_JSON_OPT_INT64, struct raw_device, minor, SILO_JSON_NULLABLE),
        FIELD("access", SILO_JSON_STRING, struct raw_device, access, SILO_JSON_NULLABLE),
        {}
};

/* -1 is the wildcard; real numbers fit the 32 bits the kernel compares. */
static int check_dev_number(const silo_opt_i64 *v, const char *path, const char *name, int64_t *ret, silo_error *err)
{
        if (!v->set) {
                *ret = -1;
                return 0;
        }
        if (v->value < -1 || v->value > UINT32_MAX)
                return silo_error_msg(err, ERANGE, "%s.%s: %lld is not a device number or -1", path, name,
                                      (long long) v->value);
        *ret = v->value;
        return 0;
}

static int parse_device(json_t *v, const char *path, void *elem, silo_error *err)
{
        struct silo_device_rule *d = elem;
        struct raw_device raw = {};
        int r = silo_json_dispatch(v, path, device_fields, &raw, err);
        if (r < 0)
                return r;

        d->allow = raw.allow;
        /* Unset type, numbers and access all mean "everything". */
        const char *type = raw.type ? raw.type : "a";
        if (strlen(type) != 1 || !strchr("acb", type[0]))
                return silo_error_msg(err, EINVAL, "%s.type: expected \"a\", \"c\" or \"b\", got \"%s\"", path, type);
        d->type = type[0];
        r = check_dev_number(&raw.major, path, "major", &d->major, err);
        if (r < 0)
                return r;
        r = check_dev_number(&raw.minor, path, "minor", &d->minor, err);
        if (r < 0)
                return r;

        const char *access = raw.access ? raw.access : "rwm";
        size_t len = strlen(access);
        bool dup = len >= 2 && (access[0] == access[1] || (len == 3 && (access[2] == access[0] || access[2] == access[1])));
        if (len == 0 || len > 3 || strspn(access, "rwm") != len || dup)
                return silo_error_msg(err, EINVAL, "%s.access: expected a combination of r, w and m, got \"%s\"",
                                      path, access);
        memcpy(d->access, access, len + 1);
        return 0;
}

/* ---- memory, cpu, pids: scalars straight into the result ---- */

static const struct silo_json_field memory_fields[] = {
        FIELD("limit", SILO_JSON_OPT_INT64, struct silo_resources, memory.limit, SILO_JSON_NULLABLE),
        FIELD("reservation", SILO_JSON_OPT_INT64, struct silo_resources, memory.reservation, SILO_JSON_NULLABLE),
        FIELD("swap", SILO_JSON_OPT_INT64, struct silo_resources, memory.swap, SILO_JSON_NULLABLE),
        FIELD("kernel", SILO_JSON_OPT_INT64, struct silo_resources, memory.kernel, SILO_JSON_NULLABLE),
        FIELD("kernelTCP", SILO_JSON_OPT_INT64, struct silo_resources, memory.kernel_tcp, SILO_JSON_NULLABLE),
        FIELD("swappiness", SILO_JSON_OPT_UINT64, struct silo_resources, memory.swappiness, SILO_JSON_NULLABLE),
        FIELD("disableOOMKiller", SILO_JSON_OPT_BOOL, struct silo_resources, memory.disable_oom_killer,
              SILO_JSON_NULLABLE),
        FIELD("useHierarchy", SILO_JSON_OPT_BOOL, struct silo_resources, memory.use_hierarchy, SILO_JSON_NULLABLE),
        FIELD("checkBeforeUpdate", SILO_JSON_OPT_BOOL, struct silo_resources, memory.check_before_update,
              SILO_JSON_NULLABLE),
        {}
};

static const struct silo_json_field cpu_fields[] = {
        FIELD("shares", SILO_JSON_OPT_UINT64, struct silo_resources, cpu.shares, SILO_JSON_NULLABLE),
        FIELD("quota", SILO_JSON_OPT_INT64, struct silo_resources, cpu.quota, SILO_JSON_NULLABLE),
        FIELD("burst", SILO_JSON_OPT_UINT64, struct silo_resources, cpu.burst, SILO_JSON_NULLABLE),
        FIELD("period", SILO_JSON_OPT_UINT64, struct silo_resources, cpu.period, SILO_JSON_NULLABLE),
        FIELD("realtimeRuntime", SILO_JSON_OPT_INT64, struct silo_resources, cpu.realtime_runtime, SILO_JSON_NULLABLE),
        FIELD("realtimePeriod", SILO_JSON_OPT_UINT64, struct silo_resources, cpu.realtime_period, SILO_JSON_NULLABLE),
        FIELD("cpus", SILO_JSON_STRING, struct silo_resources, cpu.cpus, SILO_JSON_NULLABLE),
        FIELD("mems", SILO_JSON_STRING, struct silo_resources, cpu.mems, SILO_JSON_NULLABLE),
        FIELD("idle", SILO_JSON_OPT_INT64, struct silo_resources, cpu.idle, SILO_JSON_NULLABLE),
        {}
};

static const struct silo_json_field pids_fields[] = {
        FIELD("limit", SILO_JSON_OPT_INT64, struct silo_resources, pids.limit, SILO_JSON_NULLABLE),
        {}
};

/* cpuset lists ("0-3,7") go verbatim into cgroupfs: allow only their syntax. */
static int check_cpu_list(const char *s, const char *path, const char *name, silo_error *err)
{
        if (s && strspn(s, "0123456789,-") != strlen(s))
                return silo_error_msg(err, EINVAL, "%s.%s: expected a list like \"0-3,7\", got \"%.64s\"", path, name, s);
        return 0;
}

static int parse_cpu(json_t *obj, const char *path, struct silo_resources *res, silo_error *err)
{
        int r = silo_json_dispatch(obj, path, cpu_fields, res, err);
        if (r < 0)
                return r;
        r = check_cpu_list(res->cpu.cpus, path, "cpus", err);
        if (r < 0)
                return r;
        return check_cpu_list(res->cpu.mems, path, "mems", err);
}

/* ---- blockIO ---- */

struct raw_block_io {
        json_t *weight_device, *read_bps, *write_bps, *read_iops, *write_iops;
};

static const struct silo_json_field block_io_fields[] = {
        FIELD("weight", SILO_JSON_OPT_UINT64, struct silo_resources, block_io.weight, SILO_JSON_NULLABLE),
        FIELD("leafWeight", SILO_JSON_OPT_UINT64, struct silo_resources, block_io.leaf_weight, SILO_JSON_NULLABLE),
        {}
};

static const struct silo_json_field block_io_array_fields[] = {
        FIELD("weightDevice", SILO_JSON_ARRAY, struct raw_block_io, weight_device, SILO_JSON_NULLABLE),
        FIELD("throttleReadBpsDevice", SILO_JSON_ARRAY, struct raw_block_io, read_bps, SILO_JSON_NULLABLE),
        FIELD("throttleWriteBpsDevice", SILO_JSON_ARRAY, struct raw_block_io, write_bps, SILO_JSON_NULLABLE),
        FIELD("throttleReadIOPSDevice", SILO_JSON_ARRAY, struct raw_block_io, read_iops, SILO_JSON_NULLABLE),
        FIELD("throttleWriteIOPSDevice", SILO_JSON_ARRAY, struct raw_block_io, write_iops, SILO_JSON_NULLABLE),
        {}
};

static const struct silo_json_field weight_device_fields[] = {
        FIELD("major", SILO_JSON_INT64, struct silo_weight_device, major, SILO_JSON_REQUIRED),
        FIELD("minor", SILO_JSON_INT64, struct silo_weight_device, minor, SILO_JSON_REQUIRED),
        FIELD("weight", SILO_JSON_OPT_UINT64, struct silo_weight_device, weight, SILO_JSON_NULLABLE),
        FIELD("leafWeight", SILO_JSON_OPT_UINT64, struct silo_weight_device, leaf_weight, SILO_JSON_NULLABLE),
        {}
};

static const struct silo_json_field throttle_device_fields[] = {
        FIELD("major", SILO_JSON_INT64, struct silo_throttle_device, major, SILO_JSON_REQUIRED),
        FIELD("minor", SILO_JSON_INT64, struct silo_throttle_device, minor, SILO_JSON_REQUIRED),
        FIELD("rate", SILO_JSON_UINT64, struct silo_throttle_device, rate, SILO_JSON_REQUIRED),
        {}
};

static int check_weight(const silo_opt_u64 *w, const char *path, const char *name, silo_error *err)
{
        if (w->set && w->value > UINT16_MAX)
                return silo_error_msg(err, ERANGE, "%s.%s: %llu is out of range", path, name,
                                      (unsigned long long) w->value);
        return 0;
}

static int check_major_minor(int64_t major, int64_t minor, const char *path, silo_error *err)
{
        if (major < 0 || major > UINT32_MAX || minor < 0 || minor > UINT32_MAX)
                return silo_error_msg(err, ERANGE, "%s: %lld:%lld is not a device number", path,
                                      (long long) major, (long long) minor);
        return 0;
}

static int parse_weight_device(json_t *v, const char *path, void *elem, silo_error *err)
{
        struct silo_weight_device *d = elem;
        int r = silo_json_dispatch(v, path, weight_device_fields, d, err);
        if (r < 0)
                return r;
        r = check_major_minor(d->major, d->minor, path, err);
        if (r < 0)
                return r;
        r = check_weight(&d->weight, path, "weight", err);
        if (r < 0)
                return r;
        return check_weight(&d->leaf_weight, path, "leafWeight", err);
}

static int parse_throttle_device(json_t *v, const char *path, void *elem, silo_error *err)
{
        struct silo_throttle_device *d = elem;
        int r = silo_json_dispatch(v, path, throttle_device_fields, d, err);
        if (r < 0)
                return r;
        return check_major_minor(d->major, d->minor, path, err);
}

static int parse_block_io(json_t *obj, const char *path, struct silo_resources *res, silo_error *err)
{
        struct raw_block_io raw = {};
        char p[SILO_JSON_PATH_MAX];
        int r;

        r = silo_json_dispatch(obj, path, block_io_fields, res, err);
        if (r < 0)
                return r;
        r = check_weight(&res->block_io.weight, path, "weight", err);
        if (r < 0)
                return r;
        r = check_weight(&res->block_io.leaf_weight, path, "leafWeight", err);
        if (r < 0)
                return r;
        r = silo_json_dispatch(obj, path, block_io_array_fields, &raw, err);
        if (r < 0)
                return r;

        r = parse_array(raw.weight_device, silo_json_path_key(p, path, "weightDevice"),
                        sizeof(struct silo_weight_device), parse_weight_device,
                        (void **) &res->block_io.weight_devices, &res->block_io.n_weight_devices, err);
        if (r < 0)
                return r;

        const struct {
                json_t *json;
                const char *name;
                struct silo_throttle_device **list;
                size_t *n;
        } throttles[] = {
                { raw.read_bps, "throttleReadBpsDevice", &res->block_io.throttle_read_bps, &res->block_io.n_throttle_read_bps },
                { raw.write_bps, "throttleWriteBpsDevice", &res->block_io.throttle_write_bps, &res->block_io.n_throttle_write_bps },
                { raw.read_iops, "throttleReadIOPSDevice", &res->block_io.throttle_read_iops, &res->block_io.n_throttle_read_iops },
                { raw.write_iops, "throttleWriteIOPSDevice", &res->block_io.throttle_write_iops, &res->block_io.n_throttle_write_iops },
        };
        for (size_t i = 0; i < ARRAY_SIZE(throttles); i++) {
                r = parse_array(throttles[i].json, silo_json_path_key(p, path, throttles[i].name),
                                sizeof(struct silo_throttle_device), parse_throttle_device,
                                (void **) throttles[i].list, throttles[i].n, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- hugepageLimits ---- */

static const struct silo_json_field hugepage_fields[] = {
        FIELD("pageSize", SILO_JSON_STRING, struct silo_hugepage_limit, page_size, SILO_JSON_REQUIRED),
        FIELD("limit", SILO_JSON_UINT64, struct silo_hugepage_limit, limit, SILO_JSON_REQUIRED),
        {}
};

static int parse_hugepage_limit(json_t *v, const char *path, void *elem, silo_error *err)
{
        struct silo_hugepage_limit *h = elem;
        int r = silo_json_dispatch(v, path, hugepage_fields, h, err);
        if (r < 0)
                return r;

        /* It becomes part of a file name: "2MB" in hugetlb.2MB.max. */
        const char *s = h->page_size;
        size_t digits = strspn(s, "0123456789");
        const char *unit = s + digits;
        bool ok = digits > 0 && digits <= 8 &&
                  (!strcmp(unit, "B") || (strlen(unit) == 2 && strchr("KMGTP", unit[0]) && unit[1] == 'B'));
        if (!ok)
                return silo_error_msg(err, EINVAL, "%s.pageSize: expected a size like \"2MB\" or \"1GB\", got \"%.32s\"",
                                      path, s);
        return 0;
}

/* ---- network (v1 net_cls / net_prio) ---- */

struct raw_network { json_t *priorities; };

static const struct silo_json_field network_fields[] = {
        FIELD("classID", SILO_JSON_OPT_UINT64, struct silo_resources, network.class_id, SILO_JSON_NULLABLE),
        {}
};

static const struct silo_json_field network_array_fields[] = {
        FIELD("priorities", SILO_JSON_ARRAY, struct raw_network, priorities, SILO_JSON_NULLABLE),
        {}
};

static const struct silo_json_field net_priority_fields[] = {
        FIELD("name", SILO_JSON_STRING, struct silo_net_priority, name, SILO_JSON_REQUIRED),
        FIELD("priority", SILO_JSON_UINT32, struct silo_net_priority, priority, SILO_JSON_REQUIRED),
        {}
};

static int parse_net_priority(json_t *v, const char *path, void *elem, silo_error *err)
{
        struct silo_net_priority *p = elem;
        int r = silo_json_dispatch(v, path, net_priority_fields, p, err);
        if (r < 0)
                return r;
        /* An interface name: written as "name prio" to net_prio.ifpriomap. */
        size_t len = strlen(p->name);
        if (len == 0 || len >= 16 || strpbrk(p->name, " \t\n/"))
                return silo_error_msg(err, EINVAL, "%s.name: \"%.32s\" is not an interface name", path, p->name);
        return 0;
}

static int parse_network(json_t *obj, const char *path, struct silo_resources *res, silo_error *err)
{
        struct raw_network raw = {};
        char p[SILO_JSON_PATH_MAX];

        int r = silo_json_dispatch(obj, path, network_fields, res, err);
        if (r < 0)
                return r;
        if (res->network.class_id.set && res->network.class_id.value > UINT32_MAX)
                return silo_error_msg(err, ERANGE, "%s.classID: %llu is out of range", path,
                                      (unsigned long long) res->network.class_id.value);
        r = silo_json_dispatch(obj, path, network_array_fields, &raw, err);
        if (r < 0)
                return r;
        return parse_array(raw.priorities, silo_json_path_key(p, path, "priorities"), sizeof(struct silo_net_priority),
                           parse_net_priority, (void **) &res->network.priorities, &res->network.n_priorities, err);
}

/* ---- unified ---- */

static int parse_unified(json_t *obj, const char *path, struct silo_resources *res, silo_error *err)
{
        const char *key;
        json_t *v;

        json_object_foreach(obj, key, v) {
                char p[SILO_JSON_PATH_MAX];
                if (!json_is_string(v))
                        return silo_error_msg(err, EINVAL, "%s: expected a string, got %s",
                                              silo_json_path_key(p, path, key), silo_json_type_name(v));
                int r = cgroup_check_unified_key(key, path, err);
                if (r < 0)
                        return r;
        }
        res->unified = json_object_size(obj) ? obj : NULL;
        return 0;
}

/* ---- top level ---- */

struct raw_resources {
        json_t *devices, *memory, *cpu, *pids, *block_io, *hugepage_limits, *network, *unified;
};

static const struct silo_json_field resources_fields[] = {
        FIELD("devices", SILO_JSON_ARRAY, struct raw_resources, devices, SILO_JSON_NULLABLE),
        FIELD("memory", SILO_JSON_OBJECT, struct raw_resources, memory, SILO_JSON_NULLABLE),
        FIELD("cpu", SILO_JSON_OBJECT, struct raw_resources, cpu, SILO_JSON_NULLABLE),
        FIELD("pids", SILO_JSON_OBJECT, struct raw_resources, pids, SILO_JSON_NULLABLE),
        FIELD("blockIO", SILO_JSON_OBJECT, struct raw_resources, block_io, SILO_JSON_NULLABLE),
        FIELD("hugepageLimits", SILO_JSON_ARRAY, struct raw_resources, hugepage_limits, SILO_JSON_NULLABLE),
        FIELD("network", SILO_JSON_OBJECT, struct raw_resources, network, SILO_JSON_NULLABLE),
        FIELD("unified", SILO_JSON_OBJECT, struct raw_resources, unified, SILO_JSON_NULLABLE),
        {}
};

static int resources_parse(json_t *obj, const char *path, struct silo_resources *res, silo_error *err)
{
        struct raw_resources raw = {};
        char p[SILO_JSON_PATH_MAX];
        int r;

        r = silo_json_dispatch(obj, path, resources_fields, &raw, err);
        if (r < 0)
                return r;

        r = parse_array(raw.devices, silo_json_path_key(p, path, "devices"), sizeof(struct silo_device_rule),
                        parse_device, (void **) &res->devices, &res->n_devices, err);
        if (r < 0)
                return r;
        if (raw.memory) {
                r = silo_json_dispatch(raw.memory, silo_json_path_key(p, path, "memory"), memory_fields, res, err);
                if (r < 0)
                        return r;
        }
        if (raw.cpu) {
                r = parse_cpu(raw.cpu, silo_json_path_key(p, path, "cpu"), res, err);
                if (r < 0)
                        return r;
        }
        if (raw.pids) {
                r = silo_json_dispatch(raw.pids, silo_json_path_key(p, path, "pids"), pids_fields, res, err);
                if (r < 0)
                        return r;
        }
        if (raw.block_io) {
                r = parse_block_io(raw.block_io, silo_json_path_key(p, path, "blockIO"), res, err);
                if (r < 0)
                        return r;
        }
        r = parse_array(raw.hugepage_limits, silo_json_path_key(p, path, "hugepageLimits"),
                        sizeof(struct silo_hugepage_limit), parse_hugepage_limit,
                        (void **) &res->hugepage_limits, &res->n_hugepage_limits, err);
        if (r < 0)
                return r;
        if (raw.network) {
                r = parse_network(raw.network, silo_json_path_key(p, path, "network"), res, err);
                if (r < 0)
                        return r;
        }
        if (raw.unified) {
                r = parse_unified(raw.unified, silo_json_path_key(p, path, "unified"), res, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int silo_resources_parse(json_t *obj, const char *path, struct silo_resources *ret, silo_error *err)
{
        memset(ret, 0, sizeof(*ret));
        int r = resources_parse(obj, path ? path : "", ret, err);
        if (r < 0)
                silo_resources_done(ret);
        return r;
}

void silo_resources_done(struct silo_resources *res)
{
        if (!res)
                return;
        free(res->devices);
        free(res->block_io.weight_devices);
        free(res->block_io.throttle_read_bps);
        free(res->block_io.throttle_write_bps);
        free(res->block_io.throttle_read_iops);
        free(res->block_io.throttle_write_iops);
        free(res->hugepage_limits);
        free(res->network.priorities);
        memset(res, 0, sizeof(*res));
}
