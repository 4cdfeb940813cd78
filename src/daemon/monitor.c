/* silo-monitor ID DIR RUNTIME_ROOT: the per-container monitor silod spawns
 * with a sync pipe on fd 3.  It detaches (fork, setsid) so it outlives
 * silod, then runs the container through silo_monitor_run(). */
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "process/container.h"

/* --exec ID RUNTIME_ROOT PROCESS_JSON [--pid-file PATH] [--console-socket PATH]:
 * runs one exec with our stdio (or a pty sent to the console socket) and
 * exits with its status (126 if it could not be started, message on stderr). */
static int exec_main(int argc, char **argv)
{
        struct silo_exec_options o = {};
        for (int i = 5; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--pid-file") == 0)
                        o.pid_file = argv[i + 1];
                else if (strcmp(argv[i], "--console-socket") == 0)
                        o.console_socket = argv[i + 1];
                else {
                        fprintf(stderr, "silo-monitor: --exec: unknown option %s\n", argv[i]);
                        return 126;
                }
        }
        if (argc % 2 == 0) {
                fprintf(stderr, "silo-monitor: --exec: option without a value\n");
                return 126;
        }
        silo_error err = SILO_ERROR_INIT;
        json_error_t jerr;
        json_t *process = json_loads(argv[4], 0, &jerr);
        if (!process) {
                fprintf(stderr, "silo-monitor: exec process JSON: %s\n", jerr.text);
                return 126;
        }
        struct silo_runtime rt = { .state_root = argv[3] };
        int status = 0;
        int r = silo_container_exec(&rt, argv[2], process, &o, &status, &err);
        json_decref(process);
        if (r < 0) {
                fprintf(stderr, "exec failed: %s\n", err.message);
                return 126;
        }
        return status;
}

/* One monitor runs per container for as long as the container does, but
 * most of our code ran only to create and start it: once the container
 * runs, unmap the pages of our image (they stay in the page cache; what the
 * supervision loop needs faults back in), so the resident set is that of
 * the loop, not that of the start-up. */
static int drop_segment(struct dl_phdr_info *info, size_t size, void *userdata)
{
        (void) size;
        (void) userdata;
        uintptr_t page = (uintptr_t) sysconf(_SC_PAGESIZE);
        /* The first object is the executable; its read-only segments (code,
         * constants) are file pages: dropping them loses nothing.  Writable
         * ones (data, the relocated RELRO part) must stay. */
        for (size_t i = 0; i < info->dlpi_phnum; i++) {
                const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
                if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W))
                        continue;
                uintptr_t start = (info->dlpi_addr + ph->p_vaddr) & ~(page - 1);
                uintptr_t stop = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz) & ~(page - 1);
                if (stop > start)
                        (void) madvise((void *) start, stop - start, MADV_DONTNEED);
        }
        return 1;
}

static void drop_startup_pages(void)
{
        dl_iterate_phdr(drop_segment, NULL);
}

int main(int argc, char **argv)
{
        if (argc >= 5 && strcmp(argv[1], "--exec") == 0)
                return exec_main(argc, argv);
        bool tty = false, open_stdin = false, stdin_once = false;
        for (int i = 4; i < argc; i++) {
                if (strcmp(argv[i], "--tty") == 0)
                        tty = true;
                else if (strcmp(argv[i], "--stdin") == 0)
                        open_stdin = true;
                else if (strcmp(argv[i], "--stdin-once") == 0)
                        open_stdin = stdin_once = true;
                else
                        argc = 0;
        }
        if (argc < 4) {
                fprintf(stderr, "usage: silo-monitor ID DIR RUNTIME_ROOT [--tty] [--stdin|--stdin-once] "
                                "(started by silod)\n");
                return 2;
        }
        const int sync_fd = 3;
        /* Whatever mask the spawner had must not reach the container. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* Nothing of silod's but the sync pipe. */
        close_range(sync_fd + 1, ~0U, 0);
        pid_t pid = fork();
        if (pid < 0) {
                dprintf(sync_fd, "Efork monitor: %m\n");
                return 1;
        }
        if (pid > 0)
                _exit(0);
        setsid();
        umask(022);
        if (chdir("/") < 0)
                return 1;
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
                dup2(devnull, 0);
                dup2(devnull, 1);
                dup2(devnull, 2);
                if (devnull > 2)
                        close(devnull);
        }
        struct silo_monitor_options o = { .id = argv[1], .dir = argv[2], .runtime_root = argv[3], .sync_fd = sync_fd,
                                         .tty = tty, .open_stdin = open_stdin, .stdin_once = stdin_once,
                                         .on_running = drop_startup_pages };
        silo_error err = SILO_ERROR_INIT;
        return silo_monitor_run(&o, &err) < 0 ? 1 : 0;
}
