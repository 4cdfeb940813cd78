#include "image/progress.h"

#include <stddef.h>

const char *silo_progress_phase_name(silo_progress_phase p)
{
        static const char *const names[_SILO_PROGRESS_PHASE_MAX] = {
                [SILO_PROGRESS_RESOLVING] = "resolving",
                [SILO_PROGRESS_WAITING] = "waiting",
                [SILO_PROGRESS_EXISTS] = "exists",
                [SILO_PROGRESS_DOWNLOADING] = "downloading",
                [SILO_PROGRESS_UPLOADING] = "uploading",
                [SILO_PROGRESS_COPYING] = "copying",
                [SILO_PROGRESS_UNPACKING] = "unpacking",
                [SILO_PROGRESS_RETRYING] = "retrying",
                [SILO_PROGRESS_MOUNTED] = "mounted",
                [SILO_PROGRESS_DONE] = "done",
        };
        if (p < 0 || p >= _SILO_PROGRESS_PHASE_MAX)
                return "?";
        return names[p];
}

void silo_progress_emit(silo_progress *p, silo_progress_phase phase, const char *kind, const char *id,
                        uint64_t current, uint64_t total, const char *message)
{
        if (!p || !p->fn)
                return;
        silo_progress_event ev = {
                .phase = phase,
                .id = id,
                .kind = kind,
                .current = current,
                .total = total,
                .message = message,
        };
        pthread_mutex_lock(&p->lock);
        p->fn(p->userdata, &ev);
        pthread_mutex_unlock(&p->lock);
}
