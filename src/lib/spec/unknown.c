/* Fields the runtime does not know.  The OCI spec requires ignoring them
 * (configs from newer tools must still run), but a silent typo ("hostnme")
 * helps nobody: create reports each one as a warning. */
#include <string.h>

#include "spec/spec.h"
#include "util/cleanup.h"

struct known {
        const char *path;               /* object path, "" for the document */
        const char *const *keys;
};

static const char *const root_keys[] = {
        "ociVersion", "root", "mounts", "process", "hostname", "domainname", "hooks", "annotations",
        "linux", "solaris", "windows", "vm", "zos", "uid", "gid", NULL,
};
static const char *const rootfs_keys[] = { "path", "readonly", NULL };
static const char *const process_keys[] = {
        "terminal", "consoleSize", "user", "args", "commandLine", "env", "cwd", "capabilities", "rlimits",
        "noNewPrivileges", "apparmorProfile", "oomScoreAdj", "selinuxLabel", "ioPriority", "scheduler",
        "execCPUAffinity", NULL,
};
static const char *const user_keys[] = { "uid", "gid", "umask", "additionalGids", "username", NULL };
static const char *const linux_keys[] = {
        "namespaces", "uidMappings", "gidMappings", "timeOffsets", "devices", "cgroupsPath", "resources",
        "unified", "sysctl", "seccomp", "rootfsPropagation", "maskedPaths", "readonlyPaths", "mountLabel",
        "intelRdt", "personality", "memoryPolicy", "netDevices", NULL,
};
static const char *const mount_keys[] = { "destination", "source", "type", "options", "uidMappings", "gidMappings", NULL };
static const char *const hooks_keys[] = {
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop", NULL,
};

static bool listed(const char *const *keys, const char *key)
{
        for (; *keys; keys++)
                if (!strcmp(*keys, key))
                        return true;
        return false;
}

static void check_object(json_t *obj, const char *path, const char *const *keys, json_t *out)
{
        if (!json_is_object(obj))
                return;
        const char *key;
        json_t *v;
        json_object_foreach(obj, key, v) {
                if (listed(keys, key))
                        continue;
                char p[SILO_JSON_PATH_MAX];
                json_array_append_new(out, json_string(silo_json_path_key(p, path, key)));
        }
}

json_t *silo_spec_unknown_fields(json_t *config)
{
        json_t *out = json_array();
        if (!out)
                return NULL;
        check_object(config, "", root_keys, out);
        check_object(json_object_get(config, "root"), "root", rootfs_keys, out);
        json_t *process = json_object_get(config, "process");
        check_object(process, "process", process_keys, out);
        check_object(json_object_get(process, "user"), "process.user", user_keys, out);
        check_object(json_object_get(config, "linux"), "linux", linux_keys, out);
        check_object(json_object_get(config, "hooks"), "hooks", hooks_keys, out);
        json_t *mounts = json_object_get(config, "mounts");
        size_t i;
        json_t *m;
        json_array_foreach(mounts, i, m) {
                char p[SILO_JSON_PATH_MAX];
                check_object(m, silo_json_path_index(p, "mounts", i), mount_keys, out);
        }
        return out;
}
