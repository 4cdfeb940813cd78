/* spec and features. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cgroup/cgroup.h"
#include "process/caps.h"
#include "runtime.h"
#include "seccomp/seccomp.h"
#include "spec/spec.h"
#include "util/cleanup.h"
#include "util/fs.h"

int cmd_spec(struct cli *cli, int argc, char **argv)
{
        static const struct option opts[] = {
                { "bundle", required_argument, NULL, 'b' },
                { "rootless", no_argument, NULL, 'r' },
                { "help", no_argument, NULL, 'h' },
                { NULL },
        };
        const char *bundle = ".";
        bool rootless = false;
        int c;
        while ((c = getopt_long_only(argc, argv, "+b:h", opts, NULL)) != -1) {
                switch (c) {
                case 'b': bundle = optarg; break;
                case 'r': rootless = true; break;
                case 'h': printf("Usage: silo-runtime spec [--bundle DIR] [--rootless]\n"); return 0;
                default: return cli_usage_error(cli, "usage: silo-runtime spec [--bundle DIR] [--rootless]");
                }
        }
        _cleanup_close_ int dirfd = open(bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return cli_usage_error(cli, "spec: bundle %s: %s", bundle, strerror(errno));
        if (faccessat(dirfd, "config.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return cli_usage_error(cli, "spec: %s/config.json exists; remove it first", bundle);
        _cleanup_json_ json_t *spec = silo_spec_default(rootless);
        _cleanup_free_ char *s = spec ? json_dumps(spec, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (!s)
                return cli_usage_error(cli, "spec: out of memory");
        _cleanup_close_ int fd = openat(dirfd, "config.json", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0 || dprintf(fd, "%s\n", s) < 0)
                return cli_usage_error(cli, "spec: write %s/config.json: %s", bundle, strerror(errno));
        return 0;
}

static json_t *string_array(const char *const *v)
{
        json_t *a = json_array();
        for (; a && *v; v++)
                json_array_append_new(a, json_string(*v));
        return a;
}

int cmd_features(struct cli *cli, int argc, char **argv)
{
        (void) argc;
        (void) argv;
        static const char *const hooks[] = {
                "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop", NULL,
        };
        static const char *const mount_options[] = {
                "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand", "noatime",
                "nodev", "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "private",
                "rbind", "relatime", "remount", "ro", "rprivate", "rro", "rrw", "rshared", "rslave", "runbindable",
                "rw", "shared", "slave", "strictatime", "suid", "sync", "unbindable", NULL,
        };
        static const char *const namespaces[] = { "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts", NULL };

        enum silo_cgroup_version v = silo_cgroup_host_version(&cli->rt.cgroup);
        _cleanup_json_ json_t *f = json_pack("{ss ss so so}",
                                             "ociVersionMin", "1.0.0",
                                             "ociVersionMax", "1.2.0",
                                             "hooks", string_array(hooks),
                                             "mountOptions", string_array(mount_options));
        json_t *lx = json_pack("{so s{sbsbsbsbsb} so so s{sb} s{sb} s{s{sb}}}",
                               "namespaces", string_array(namespaces),
                               "cgroup", "v1", v == SILO_CGROUP_V1, "v2", v == SILO_CGROUP_V2,
                               "systemd", false, "systemdUser", false, "rdma", false,
                               "capabilities", silo_caps_features(),
                               "seccomp", silo_seccomp_features(),
                               "apparmor", "enabled", false,
                               "selinux", "enabled", false,
                               "mountExtensions", "idmap", "enabled", false);
        if (!f || !lx)
                return cli_usage_error(cli, "features: out of memory");
        json_object_set_new(f, "linux", lx);
        json_object_set_new(f, "annotations", json_pack("{ss ss}", "org.opencontainers.runtime-spec.features.name",
                                                        "silo-runtime", "io.silo.isolation", "process"));
        _cleanup_free_ char *s = json_dumps(f, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        return 0;
}
