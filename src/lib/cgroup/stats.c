/* The `runc events --stats` "data" object (runc's types/events.go), built
 * the same way for both backends.  Go's encoding/json drops zero fields
 * tagged omitempty but never drops nested structs; we mirror that so
 * consumers written against runc see the same keys. */
#include "cgroup/cgroup-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int cgroup_json_u64(json_t *obj, const char *key, uint64_t v, bool omitempty)
{
        if (omitempty && v == 0)
                return 0;
        /* jansson integers are signed 64-bit: "unlimited" is clamped. */
        json_int_t i = v > (uint64_t) INT64_MAX ? INT64_MAX : (json_int_t) v;
        return json_object_set_new(obj, key, json_integer(i)) < 0 ? -ENOMEM : 0;
}

json_t *cgroup_stats_memory_entry(uint64_t limit, uint64_t usage, uint64_t max, uint64_t failcnt)
{
        json_t *o = json_object();
        if (!o)
                return NULL;
        if (cgroup_json_u64(o, "limit", limit, false) < 0 ||
            cgroup_json_u64(o, "usage", usage, true) < 0 ||
            cgroup_json_u64(o, "max", max, true) < 0 ||
            cgroup_json_u64(o, "failcnt", failcnt, false) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

int cgroup_stats_blkio_add(json_t *list, uint64_t major, uint64_t minor, const char *op, uint64_t value)
{
        json_t *e = json_object();
        if (!e)
                return -ENOMEM;
        if (cgroup_json_u64(e, "major", major, true) < 0 ||
            cgroup_json_u64(e, "minor", minor, true) < 0 ||
            (op && *op && json_object_set_new(e, "op", json_string(op)) < 0) ||
            cgroup_json_u64(e, "value", value, true) < 0 ||
            json_array_append_new(list, e) < 0) {
                json_decref(e);
                return -ENOMEM;
        }
        return 0;
}

json_t *cgroup_stats_kv_map(const char *text)
{
        json_t *map = json_object();
        if (!map)
                return NULL;
        for (const char *line = text; line && *line;) {
                const char *end = strchrnul(line, '\n');
                const char *sp = memchr(line, ' ', end - line);
                if (sp && sp > line && sp - line < 128) {
                        char key[128], *e;
                        memcpy(key, line, sp - line);
                        key[sp - line] = '\0';
                        unsigned long long v = strtoull(sp + 1, &e, 10);
                        if (e != sp + 1 && cgroup_json_u64(map, key, v, false) < 0) {
                                json_decref(map);
                                return NULL;
                        }
                }
                line = *end ? end + 1 : NULL;
        }
        return map;
}

json_t *cgroup_stats_cpu_list(const char *text)
{
        json_t *list = json_array();
        if (!list)
                return NULL;
        /* Bounded by the text: each item costs at least one character. */
        for (const char *p = text; *p && *p != '\n';) {
                char *end;
                unsigned long a = strtoul(p, &end, 10), b = a;
                if (end == p)
                        break;
                if (*end == '-') {
                        p = end + 1;
                        b = strtoul(p, &end, 10);
                        if (end == p)
                                break;
                }
                for (unsigned long i = a; i <= b && i <= UINT16_MAX; i++)
                        if (json_array_append_new(list, json_integer((json_int_t) i)) < 0)
                                goto fail;
                p = end;
                if (*p == ',')
                        p++;
        }
        return list;
fail:
        json_decref(list);
        return NULL;
}

json_t *cgroup_stats_new(void)
{
        /* Every nested struct of runc's Stats, so "cpu.usage" and friends
         * exist even when a controller is missing; zero non-omitempty
         * fields included. */
        static const char *const cpuset_fields[] = {
                "cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                "memory_spread_slab", "memory_pressure", "sched_load_balance", "sched_relax_domain_level",
        };
        static const char *const memory_entries[] = { "usage", "swap", "kernel", "kernelTCP" };

        json_t *stats = json_pack("{s:{s:{s:i, s:i}, s:{}}, s:{}, s:{}, s:{}, s:{}, s:{}, s:{}, s:n}",
                                  "cpu", "usage", "kernel", 0, "user", 0, "throttling",
                                  "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                                  "network_interfaces");
        if (!stats)
                return NULL;
        json_t *cpuset = json_object_get(stats, "cpuset"), *memory = json_object_get(stats, "memory");
        for (size_t i = 0; i < ARRAY_SIZE(cpuset_fields); i++)
                if (cgroup_json_u64(cpuset, cpuset_fields[i], 0, false) < 0)
                        goto fail;
        for (size_t i = 0; i < ARRAY_SIZE(memory_entries); i++)
                if (json_object_set_new(memory, memory_entries[i], cgroup_stats_memory_entry(0, 0, 0, 0)) < 0)
                        goto fail;
        return stats;
fail:
        json_decref(stats);
        return NULL;
}
