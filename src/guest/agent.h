/* silo-guest's shared definitions: the agent's state (containers and
 * processes) and what guest.c (the protocol, the guest's boot) and
 * containers.c (containers and processes through libsilo) call of each
 * other. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "vm/proto.h"

#define MODULES_DIR "/lib/modules"
#define ROOT_SERIAL "silo-rootfs"
#define LOWER_DIR "/run/lower"
#define SCRATCH_DIR "/run/scratch"
#define ROOT_DIR "/run/root"
#define MAPPED_DIR "/run/mapped"
#define BUNDLE_DIR "/run/bundle"
#define STATE_DIR "/run/silo"
#define CONSOLE_DIR "/run/console"
#define HOSTED_DIR "/run/c"             /* a hosted container's own lower, scratch, root, bundle */
#define DEVICE_WAIT_MS 10000
#define SETUP_TIMEOUT_MS 30000
#define MAX_PROCS 64
#define MAX_MAPPED 16
#define MAX_CONTAINERS 16

enum { PORT_CONTROL, PORT_STDOUT, PORT_STDERR, PORT_STDIO, PORT_DATA, _PORT_MAX };

struct proc {
        pid_t pid;
        bool exited;
        int exit_code;
        uint64_t wait_id;       /* a WaitForProcess waiting for this exit, 0 if none */
        int in_fd;              /* our end of its stdin pipe, -1 */
        int out_fd, err_fd;     /* our ends of its stdout/stderr pipes, -1 */
        int master;             /* its terminal's master: stdin and stdout, -1 */
        unsigned exec_seq;      /* an exec'd process: CONSOLE_DIR/exec-<seq>.pid names the process itself */
};

/* A container in this VM: the only one of a VM container's VM, or one of
 * the containers a utility VM hosts ("Hosted": its root is an uploaded
 * layer, its init's stdio goes through "silo.stdio", and shutting it down
 * leaves the VM running). */
struct ctr {
        char id[128];           /* "" for a free slot */
        json_t *spec;           /* the whole OCI config (Create), run through libsilo */
        bool started, hosted;
        pid_t init;             /* the process that owns the container (create .. delete) */
        int go_fd;              /* init: write a byte to start, close to abandon */
        int status_fd;          /* init: "O" or "E<message>" after create and after start */
        unsigned seq;           /* hosted: its directory HOSTED_DIR/<seq> */
};

struct agent {
        int ports[_PORT_MAX];
        struct ctr ctrs[MAX_CONTAINERS];
        unsigned ctr_seq;
        char layer_error[256];  /* why the last layer upload failed */
        unsigned exec_seq;
        struct proc procs[MAX_PROCS];
        size_t n_procs;
        uint8_t in_buf[SILO_VM_STDIO_HEADER + SILO_VM_STDIO_CHUNK];
        size_t in_len;
};

/* guest.c */
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int64_t now_ms(void);
/* The first line of a small sysfs attribute, without its newline; -errno. */
int read_sysfs_line(const char *path, char *buf, size_t len);

/* containers.c */
void closep(int *fd);
void set_nonblock(int fd);
bool procs_full(const struct agent *a);
int create_container(struct agent *a, struct ctr *c, json_t *b, char *errbuf, size_t errlen);
int start_container(struct ctr *c, char *errbuf, size_t errlen);
/* After a hosted container is gone: its root, scratch and directory. */
void unmount_rootfs(const struct ctr *c);
int exec_process(struct agent *a, const struct ctr *c, json_t *process, pid_t *ret_pid, char *errbuf, size_t errlen);
void kill_exec_process(struct proc *p);
struct ctr *find_ctr(struct agent *a, json_t *body);
struct ctr *ctr_of_init(struct agent *a, pid_t pid);
void stop_container(struct ctr *c, int sig);
