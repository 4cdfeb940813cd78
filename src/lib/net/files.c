/* Per-container resolv.conf, hosts and hostname files. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/files.h"
#include "net/nft.h"
#include "util/cleanup.h"
#include "util/fs.h"

#define RESOLV_MAX_BYTES (64 * 1024)

static bool is_loopback_resolver(const char *addr, size_t len)
{
        return (len >= 4 && !strncmp(addr, "127.", 4)) || (len == 3 && !strncmp(addr, "::1", 3)) ||
               (len == 7 && !strncmp(addr, "0.0.0.0", 7));
}

int silo_net_resolv_conf(const char *host_path, const char *const *fallback, char **ret, silo_error *err)
{
        static const char *const default_fallback[] = { "8.8.8.8", "8.8.4.4", NULL };
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int r = silo_read_file_at(AT_FDCWD, host_path, RESOLV_MAX_BYTES, &text, &len, err);
        if (r == -ENOENT) {
                silo_error_clear(err);
                text = strdup("");
                if (!text)
                        return silo_error_set(err, ENOMEM, "resolv.conf");
        } else if (r < 0)
                return r;

        silo_nft_buf out = {};
        bool have_server = false;
        for (char *line = text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                size_t llen = next ? (size_t) (next - line) : strlen(line);
                if (next)
                        next++;
                const char *p = line;
                if (llen > 10 && !strncmp(p, "nameserver", 10) && (p[10] == ' ' || p[10] == '\t')) {
                        const char *a = p + 10;
                        while (*a == ' ' || *a == '\t')
                                a++;
                        size_t alen = strcspn(a, " \t\n#");
                        if (is_loopback_resolver(a, alen))
                                continue;
                        have_server = true;
                }
                silo_nft_buf_printf(&out, "%.*s\n", (int) llen, line);
        }
        if (!have_server) {
                silo_nft_buf_printf(&out, "# no usable resolver on the host; defaults added by silo\n");
                for (const char *const *s = fallback ? fallback : default_fallback; *s; s++)
                        silo_nft_buf_printf(&out, "nameserver %s\n", *s);
        }
        if (out.oom) {
                free(out.data);
                return silo_error_set(err, ENOMEM, "resolv.conf");
        }
        *ret = out.data;
        return 0;
}

int silo_net_write_file(const char *dir, const char *name, const char *content, silo_error *err)
{
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return silo_error_set(err, errno, "open %s", dir);
        /* In place, not rename: a bind mount of the old inode must see it. */
        _cleanup_close_ int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
                                        0644);
        if (fd < 0)
                return silo_error_set(err, errno, "open %s/%s", dir, name);
        size_t len = strlen(content);
        for (size_t off = 0; off < len;) {
                ssize_t w = write(fd, content + off, len - off);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return silo_error_set(err, errno, "write %s/%s", dir, name);
                }
                off += (size_t) w;
        }
        return 0;
}
