#include "util/error.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int error_vset(silo_error *err, int errnum, bool with_strerror, const char *fmt, va_list ap)
{
        if (errnum < 0)
                errnum = -errnum;
        if (errnum == 0)
                errnum = EINVAL;
        if (!err)
                return -errnum;

        err->code = errnum;
        int n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
        if (with_strerror && n >= 0 && (size_t) n < sizeof(err->message))
                snprintf(err->message + n, sizeof(err->message) - n, ": %s", strerror(errnum));
        return -errnum;
}

int silo_error_set(silo_error *err, int errnum, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = error_vset(err, errnum, true, fmt, ap);
        va_end(ap);
        return r;
}

int silo_error_msg(silo_error *err, int errnum, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int r = error_vset(err, errnum, false, fmt, ap);
        va_end(ap);
        return r;
}

int silo_error_prefix(silo_error *err, const char *fmt, ...)
{
        if (!err)
                return -EINVAL;
        if (err->code == 0)
                err->code = EINVAL;

        char prefix[SILO_ERROR_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);

        /* Truncation is fine: the message is bounded by design. */
        char joined[2 * SILO_ERROR_MAX + 2];
        snprintf(joined, sizeof(joined), "%s: %s", prefix, err->message);
        size_t n = strnlen(joined, sizeof(err->message) - 1);
        memcpy(err->message, joined, n);
        err->message[n] = '\0';
        return -err->code;
}

void silo_error_clear(silo_error *err)
{
        if (!err)
                return;
        err->code = 0;
        err->message[0] = '\0';
}
