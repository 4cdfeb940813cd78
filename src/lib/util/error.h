/* The error contract of libsilo (see docs/DESIGN.md):
 *
 *   A function that can fail returns a negative errno value and fills the
 *   caller's `silo_error` with a one-line message that names what failed
 *   (the field, the path, the syscall).  Callers higher up may prefix context
 *   with silo_error_prefix().  The library never prints; front ends report the
 *   message once.  A NULL `err` is allowed and simply discards the message.
 */
#pragma once

#include <stdarg.h>
#include <stddef.h>

#define SILO_ERROR_MAX 1024

typedef struct silo_error {
        int code;                       /* positive errno, 0 if unset */
        char message[SILO_ERROR_MAX];
} silo_error;

#define SILO_ERROR_INIT { 0, { 0 } }

/* Sets the error and returns -errnum (so `return silo_error_set(...)` works).
 * When errnum is non-zero the text of strerror(errnum) is appended. */
int silo_error_set(silo_error *err, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Like silo_error_set() but does not append strerror(): for errors whose
 * message already says everything (validation errors). */
int silo_error_msg(silo_error *err, int errnum, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Prefixes "context: " to an existing message; returns -err->code. */
int silo_error_prefix(silo_error *err, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

void silo_error_clear(silo_error *err);
