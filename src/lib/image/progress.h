/* Progress reporting from long operations (load, pull, push, unpack).
 * The library never prints; it calls the front end's callback, serialised
 * by a mutex (events may come from worker threads). */
#pragma once

#include <pthread.h>
#include <stdint.h>

typedef enum silo_progress_phase {
        SILO_PROGRESS_RESOLVING,        /* manifest lookup */
        SILO_PROGRESS_WAITING,          /* queued */
        SILO_PROGRESS_EXISTS,           /* already in the store / registry */
        SILO_PROGRESS_DOWNLOADING,
        SILO_PROGRESS_UPLOADING,
        SILO_PROGRESS_COPYING,          /* reading from an archive */
        SILO_PROGRESS_UNPACKING,
        SILO_PROGRESS_RETRYING,         /* message says why */
        SILO_PROGRESS_MOUNTED,          /* cross-repository blob mount */
        SILO_PROGRESS_DONE,
        _SILO_PROGRESS_PHASE_MAX,
        _SILO_PROGRESS_PHASE_INVALID = -1,
} silo_progress_phase;

typedef struct silo_progress_event {
        silo_progress_phase phase;
        const char *id;         /* blob digest (or a name for non-blob steps) */
        const char *kind;       /* "layer", "config", "manifest", "image" */
        uint64_t current;
        uint64_t total;         /* 0 if unknown */
        const char *message;
} silo_progress_event;

typedef void (*silo_progress_fn)(void *userdata, const silo_progress_event *ev);

typedef struct silo_progress {
        silo_progress_fn fn;
        void *userdata;
        pthread_mutex_t lock;
} silo_progress;

#define SILO_PROGRESS_INIT(f, u) { (f), (u), PTHREAD_MUTEX_INITIALIZER }

const char *silo_progress_phase_name(silo_progress_phase p);

/* NULL-safe. */
void silo_progress_emit(silo_progress *p, silo_progress_phase phase, const char *kind, const char *id,
                        uint64_t current, uint64_t total, const char *message);
