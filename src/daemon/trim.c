/* Keeping silod's resident set small while it idles.
 *
 * silod maps a dozen shared libraries it needs only now and then: OpenSSL
 * and libarchive for image loads, libmicrohttpd and the TLS stack it
 * initialises whether or not TLS is used, NSS modules for one group lookup.
 * Start-up code and whatever a request used stay mapped afterwards: about
 * two thirds of an idle silod's resident set.  After start-up, and whenever
 * silod has been idle for a while, it gives back what it is not using: free
 * heap memory (malloc_trim) and the clean pages of read-only file mappings.
 * Those stay in the page cache; what a later request needs faults back in
 * (a minor fault, no I/O). */
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "trim.h"

static int64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void silod_idle_begin(struct silod_idle *idle)
{
        __atomic_add_fetch(&idle->active, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&idle->last_ns, now_ns(), __ATOMIC_RELAXED);
        __atomic_store_n(&idle->trimmed, false, __ATOMIC_RELAXED);
}

void silod_idle_end(struct silod_idle *idle)
{
        __atomic_sub_fetch(&idle->active, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&idle->last_ns, now_ns(), __ATOMIC_RELAXED);
}

void silod_idle_tick(struct silod_idle *idle, int64_t idle_ms)
{
        if (__atomic_load_n(&idle->trimmed, __ATOMIC_RELAXED) || __atomic_load_n(&idle->active, __ATOMIC_RELAXED) > 0)
                return;
        if (now_ns() - __atomic_load_n(&idle->last_ns, __ATOMIC_RELAXED) < idle_ms * 1000000)
                return;
        __atomic_store_n(&idle->trimmed, true, __ATOMIC_RELAXED);
        silod_trim();
}

/* A read-only private file mapping without anonymous (copy-on-write) pages
 * holds exactly the file's contents, so dropping its pages loses nothing.
 * RELRO segments (relocated, then made read-only) have such pages and are
 * kept, as is every writable mapping.  Only the executable's and shared
 * libraries' mappings are touched: they are never unmapped while silod runs
 * (nothing in silod maps files or unloads libraries), so the range read
 * from smaps is still the same mapping when madvise() runs. */
static bool droppable(const char *perms, unsigned long inode, const char *path, const char *exe)
{
        if (inode == 0 || strlen(perms) != 4 || perms[0] != 'r' || perms[1] == 'w' || perms[3] != 'p')
                return false;
        return path[0] == '/' && (strstr(path, ".so") || strcmp(path, exe) == 0);
}

static void drop_clean_file_pages(void)
{
        char exe[512];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        exe[n > 0 ? n : 0] = 0;
        FILE *f = fopen("/proc/self/smaps", "re");
        if (!f)
                return;
        char line[512];
        unsigned long start = 0, end = 0;
        bool candidate = false;
        while (fgets(line, sizeof(line), f)) {
                bool complete = strchr(line, '\n') != NULL;
                unsigned long s, e, off, inode, kb;
                unsigned maj, min;
                char perms[8];
                int pos = 0;
                if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu %n", &s, &e, perms, &off, &maj, &min, &inode, &pos) >= 7 &&
                    pos > 0) {
                        char *path = line + pos;
                        path[strcspn(path, "\n")] = 0;
                        start = s;
                        end = e;
                        /* A path too long for the buffer is not trusted (and skipped). */
                        candidate = complete && droppable(perms, inode, path, exe);
                } else if (candidate && sscanf(line, "Anonymous: %lu kB", &kb) == 1) {
                        if (kb == 0)
                                (void) madvise((void *) start, end - start, MADV_DONTNEED);
                        candidate = false;
                }
                while (!complete && fgets(line, sizeof(line), f))
                        complete = strchr(line, '\n') != NULL;
        }
        fclose(f);
}

void silod_trim(void)
{
        malloc_trim(0);
        drop_clean_file_pages();
}
