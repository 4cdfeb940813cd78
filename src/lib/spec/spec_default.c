/* The config.json written by `silo-runtime spec`: the same defaults runc
 * gives, so bundles made for one run on the other. */
#include "spec/spec.h"

#include <string.h>
#include <unistd.h>

static const char default_spec[] =
"{"
" \"ociVersion\": \"1.2.0\","
" \"process\": {"
"  \"terminal\": true,"
"  \"user\": {\"uid\": 0, \"gid\": 0},"
"  \"args\": [\"sh\"],"
"  \"env\": [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\", \"TERM=xterm\"],"
"  \"cwd\": \"/\","
"  \"capabilities\": {"
"   \"bounding\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],"
"   \"effective\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],"
"   \"permitted\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"]"
"  },"
"  \"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"hard\": 1024, \"soft\": 1024}],"
"  \"noNewPrivileges\": true"
" },"
" \"root\": {\"path\": \"rootfs\", \"readonly\": true},"
" \"hostname\": \"silo\","
" \"mounts\": ["
"  {\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},"
"  {\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\","
"   \"options\": [\"nosuid\", \"strictatime\", \"mode=755\", \"size=65536k\"]},"
"  {\"destination\": \"/dev/pts\", \"type\": \"devpts\", \"source\": \"devpts\","
"   \"options\": [\"nosuid\", \"noexec\", \"newinstance\", \"ptmxmode=0666\", \"mode=0620\", \"gid=5\"]},"
"  {\"destination\": \"/dev/shm\", \"type\": \"tmpfs\", \"source\": \"shm\","
"   \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"mode=1777\", \"size=65536k\"]},"
"  {\"destination\": \"/dev/mqueue\", \"type\": \"mqueue\", \"source\": \"mqueue\","
"   \"options\": [\"nosuid\", \"noexec\", \"nodev\"]},"
"  {\"destination\": \"/sys\", \"type\": \"sysfs\", \"source\": \"sysfs\","
"   \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"ro\"]},"
"  {\"destination\": \"/sys/fs/cgroup\", \"type\": \"cgroup\", \"source\": \"cgroup\","
"   \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"relatime\", \"ro\"]}"
" ],"
" \"linux\": {"
"  \"resources\": {\"devices\": [{\"allow\": false, \"access\": \"rwm\"}]},"
"  \"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"network\"}, {\"type\": \"ipc\"},"
"                  {\"type\": \"uts\"}, {\"type\": \"mount\"}, {\"type\": \"cgroup\"}],"
"  \"maskedPaths\": [\"/proc/acpi\", \"/proc/asound\", \"/proc/kcore\", \"/proc/keys\","
"   \"/proc/latency_stats\", \"/proc/timer_list\", \"/proc/timer_stats\", \"/proc/sched_debug\","
"   \"/sys/firmware\", \"/sys/devices/virtual/powercap\", \"/proc/scsi\"],"
"  \"readonlyPaths\": [\"/proc/bus\", \"/proc/fs\", \"/proc/irq\", \"/proc/sys\", \"/proc/sysrq-trigger\"]"
" }"
"}";

json_t *silo_spec_default(bool rootless)
{
        json_t *spec = json_loads(default_spec, 0, NULL);
        if (!spec || !rootless)
                return spec;

        /* Rootless: a user namespace mapping the caller, no cgroup namespace
         * resources, and sysfs bind-mounted since it cannot be mounted. */
        json_t *lx = json_object_get(spec, "linux");
        json_t *ns = json_object_get(lx, "namespaces");
        json_array_append_new(ns, json_pack("{ss}", "type", "user"));
        json_object_set_new(lx, "uidMappings",
                            json_pack("[{sIsIsI}]", "containerID", (json_int_t) 0, "hostID", (json_int_t) getuid(), "size", (json_int_t) 1));
        json_object_set_new(lx, "gidMappings",
                            json_pack("[{sIsIsI}]", "containerID", (json_int_t) 0, "hostID", (json_int_t) getgid(), "size", (json_int_t) 1));
        json_object_del(lx, "resources");
        json_t *mounts = json_object_get(spec, "mounts");
        size_t i;
        json_t *m;
        json_array_foreach(mounts, i, m) {
                const char *dest = json_string_value(json_object_get(m, "destination"));
                if (dest && !strcmp(dest, "/sys")) {
                        json_object_set_new(m, "type", json_string("none"));
                        json_object_set_new(m, "source", json_string("/sys"));
                        json_object_set_new(m, "options", json_pack("[ssss]", "rbind", "nosuid", "noexec", "nodev"));
                }
        }
        return spec;
}
