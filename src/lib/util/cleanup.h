/* Scope-bound cleanup for every resource type, plus explicit ownership
 * transfer: TAKE_PTR / TAKE_FD hand a resource to the caller and disarm the
 * cleanup.  Every destructor is NULL/-1 safe. */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void silo_freep(void *p)
{
        free(*(void **) p);
}

/* Closes and disarms: calling it early and then letting the cleanup run
 * (or calling it twice) never closes a number that may belong to someone
 * else by then. */
static inline void silo_closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
                *fd = -1;
        }
}

static inline void silo_fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}

static inline void silo_closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

static inline void silo_json_decrefp(json_t **j)
{
        if (*j)
                json_decref(*j);
}

/* Kills and reaps a child we still own when the scope ends (error paths). */
static inline void silo_killpidp(pid_t *pid)
{
        if (*pid > 0) {
                int saved = errno;
                kill(*pid, SIGKILL);
                while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                errno = saved;
        }
}

/* NULL-terminated array of owned strings. */
static inline void silo_strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

static inline void silo_strv_freep(char ***v)
{
        silo_strv_free(*v);
}

#define _cleanup_free_ _cleanup_(silo_freep)
#define _cleanup_close_ _cleanup_(silo_closep)
#define _cleanup_fclose_ _cleanup_(silo_fclosep)
#define _cleanup_closedir_ _cleanup_(silo_closedirp)
#define _cleanup_json_ _cleanup_(silo_json_decrefp)
#define _cleanup_pid_ _cleanup_(silo_killpidp)
#define _cleanup_strv_ _cleanup_(silo_strv_freep)

#define TAKE_PTR(p)                             \
        ({                                      \
                __typeof__(p) _taken_ = (p);    \
                (p) = NULL;                     \
                _taken_;                        \
        })

#define TAKE_FD(fd)                             \
        ({                                      \
                int _taken_fd_ = (fd);          \
                (fd) = -1;                      \
                _taken_fd_;                     \
        })

#define TAKE_PID(pid)                           \
        ({                                      \
                pid_t _taken_pid_ = (pid);      \
                (pid) = 0;                      \
                _taken_pid_;                    \
        })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define RET_NERRNO(expr)                        \
        ({                                      \
                long _r_ = (expr);              \
                _r_ < 0 ? -errno : (int) _r_;   \
        })
