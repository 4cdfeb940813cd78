/* OCI mount "options" -> mount(2) flags, propagation and fs data. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>

#include "spec/spec.h"
#include "util/cleanup.h"

struct mount_flag {
        const char *name;
        bool clear;
        unsigned long flag;
};

static const struct mount_flag mount_flags[] = {
        { "defaults",      false, 0 },
        { "ro",            false, MS_RDONLY },
        { "rw",            true,  MS_RDONLY },
        { "suid",          true,  MS_NOSUID },
        { "nosuid",        false, MS_NOSUID },
        { "dev",           true,  MS_NODEV },
        { "nodev",         false, MS_NODEV },
        { "exec",          true,  MS_NOEXEC },
        { "noexec",        false, MS_NOEXEC },
        { "sync",          false, MS_SYNCHRONOUS },
        { "async",         true,  MS_SYNCHRONOUS },
        { "dirsync",       false, MS_DIRSYNC },
        { "remount",       false, MS_REMOUNT },
        { "mand",          false, MS_MANDLOCK },
        { "nomand",        true,  MS_MANDLOCK },
        { "atime",         true,  MS_NOATIME },
        { "noatime",       false, MS_NOATIME },
        { "diratime",      true,  MS_NODIRATIME },
        { "nodiratime",    false, MS_NODIRATIME },
        { "relatime",      false, MS_RELATIME },
        { "norelatime",    true,  MS_RELATIME },
        { "strictatime",   false, MS_STRICTATIME },
        { "nostrictatime", true,  MS_STRICTATIME },
        { "silent",        false, MS_SILENT },
        { "loud",          true,  MS_SILENT },
};

static const struct mount_flag propagation_flags[] = {
        { "private",     false, MS_PRIVATE },
        { "rprivate",    false, MS_PRIVATE | MS_REC },
        { "shared",      false, MS_SHARED },
        { "rshared",     false, MS_SHARED | MS_REC },
        { "slave",       false, MS_SLAVE },
        { "rslave",      false, MS_SLAVE | MS_REC },
        { "unbindable",  false, MS_UNBINDABLE },
        { "runbindable", false, MS_UNBINDABLE | MS_REC },
};

/* Options that only make sense to other tools (or are recursive mount_setattr
 * variants we do not support) and are accepted without effect. */
static const char *const ignored_options[] = {
        "tmpcopyup", "notmpcopyup", "copy-symlink", "z", "Z", "U", NULL,
};

static int append_data(char **data, const char *opt)
{
        size_t old = *data ? strlen(*data) : 0;
        char *n = realloc(*data, old + strlen(opt) + 2);
        if (!n)
                return -ENOMEM;
        if (old)
                n[old++] = ',';
        strcpy(n + old, opt);
        *data = n;
        return 0;
}

int silo_mount_options_parse(const char **options, const char *path, struct silo_mount *m, silo_error *err)
{
        for (size_t i = 0; options && options[i]; i++) {
                const char *o = options[i];
                bool matched = false;

                if (!strcmp(o, "bind") || !strcmp(o, "rbind")) {
                        m->bind = true;
                        m->recursive = o[0] == 'r';
                        continue;
                }
                if (!strcmp(o, "rro")) {
                        m->recursive_ro = true;
                        m->flags |= MS_RDONLY;
                        continue;
                }
                if (!strcmp(o, "rrw")) {
                        m->recursive_ro = false;
                        m->flags &= ~MS_RDONLY;
                        continue;
                }
                for (size_t k = 0; k < ARRAY_SIZE(mount_flags); k++)
                        if (!strcmp(o, mount_flags[k].name)) {
                                if (mount_flags[k].clear)
                                        m->flags &= ~mount_flags[k].flag;
                                else
                                        m->flags |= mount_flags[k].flag;
                                matched = true;
                                break;
                        }
                for (size_t k = 0; !matched && k < ARRAY_SIZE(propagation_flags); k++)
                        if (!strcmp(o, propagation_flags[k].name)) {
                                m->propagation = propagation_flags[k].flag;
                                matched = true;
                        }
                for (size_t k = 0; !matched && ignored_options[k]; k++)
                        if (!strcmp(o, ignored_options[k]))
                                matched = true;
                if (matched)
                        continue;
                if (strchr(o, ',')) {
                        char p[SILO_JSON_PATH_MAX];
                        return silo_error_msg(err, EINVAL, "%s: option \"%s\" contains a comma",
                                              silo_json_path_index(p, path, i), o);
                }
                /* Anything else is filesystem data (size=, mode=, uid=, ...). */
                if (append_data(&m->data, o) < 0)
                        return silo_error_set(err, ENOMEM, "%s", path);
        }
        return 0;
}
