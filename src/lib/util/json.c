#include "util/json.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/fs.h"

const char *silo_json_path_key(char buf[SILO_JSON_PATH_MAX], const char *path, const char *key)
{
        if (!path || !*path)
                snprintf(buf, SILO_JSON_PATH_MAX, "%s", key);
        else
                snprintf(buf, SILO_JSON_PATH_MAX, "%s.%s", path, key);
        return buf;
}

const char *silo_json_path_index(char buf[SILO_JSON_PATH_MAX], const char *path, size_t index)
{
        snprintf(buf, SILO_JSON_PATH_MAX, "%s[%zu]", path ? path : "", index);
        return buf;
}

const char *silo_json_type_name(const json_t *v)
{
        switch (json_typeof(v)) {
        case JSON_OBJECT: return "object";
        case JSON_ARRAY: return "array";
        case JSON_STRING: return "string";
        case JSON_INTEGER: return "integer";
        case JSON_REAL: return "number";
        case JSON_TRUE:
        case JSON_FALSE: return "boolean";
        case JSON_NULL: return "null";
        }
        return "unknown";
}

static int wrong_type(const char *path, const char *want, const json_t *v, silo_error *err)
{
        return silo_error_msg(err, EINVAL, "%s: expected %s, got %s", path, want, silo_json_type_name(v));
}

/* Accepts integers, and reals with no fractional part (some generators
 * write 1e9 for limits). */
static int get_integer(json_t *v, const char *path, long long *ret, silo_error *err)
{
        if (json_is_integer(v)) {
                *ret = json_integer_value(v);
                return 0;
        }
        if (json_is_real(v)) {
                double d = json_real_value(v);
                /* 2^63 and up (an "unlimited" sentinel read as a real) clamp. */
                if (d >= 9223372036854775807.0) {
                        *ret = INT64_MAX;
                        return 0;
                }
                if (d < -9223372036854775807.0) {
                        *ret = INT64_MIN;
                        return 0;
                }
                if (d == (double) (long long) d) {
                        *ret = (long long) d;
                        return 0;
                }
        }
        return wrong_type(path, "an integer", v, err);
}

/* jansson stores integers as long long; values above INT64_MAX (e.g. an
 * unlimited rlimit written as 18446744073709551615) arrive as reals. */
static int get_unsigned(json_t *v, const char *path, uint64_t *ret, silo_error *err)
{
        if (json_is_integer(v)) {
                long long x = json_integer_value(v);
                if (x < 0)
                        return silo_error_msg(err, EINVAL, "%s: must not be negative (%lld)", path, x);
                *ret = (uint64_t) x;
                return 0;
        }
        if (json_is_real(v)) {
                double d = json_real_value(v);
                if (d >= 0 && d <= 18446744073709551615.0) {
                        *ret = d >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t) d;
                        return 0;
                }
        }
        return wrong_type(path, "a non-negative integer", v, err);
}

int silo_json_strv(json_t *value, const char *path, const char ***ret, silo_error *err)
{
        *ret = NULL;
        if (!value || json_is_null(value))
                return 0;
        if (!json_is_array(value))
                return wrong_type(path, "an array of strings", value, err);

        size_t n = json_array_size(value);
        _cleanup_free_ const char **v = calloc(n + 1, sizeof(char *));
        if (!v)
                return silo_error_set(err, ENOMEM, "%s", path);
        for (size_t i = 0; i < n; i++) {
                json_t *s = json_array_get(value, i);
                if (!json_is_string(s)) {
                        char p[SILO_JSON_PATH_MAX];
                        return wrong_type(silo_json_path_index(p, path, i), "a string", s, err);
                }
                v[i] = json_string_value(s);
        }
        *ret = TAKE_PTR(v);
        return 0;
}

static int dispatch_one(json_t *v, const char *path, const struct silo_json_field *f, void *field, silo_error *err)
{
        long long ll;
        uint64_t u;
        int r;

        switch (f->kind) {
        case SILO_JSON_STRING:
                if (!json_is_string(v))
                        return wrong_type(path, "a string", v, err);
                *(const char **) field = json_string_value(v);
                return 0;
        case SILO_JSON_BOOL:
        case SILO_JSON_OPT_BOOL:
                if (!json_is_boolean(v))
                        return wrong_type(path, "a boolean", v, err);
                if (f->kind == SILO_JSON_BOOL)
                        *(bool *) field = json_is_true(v);
                else
                        *(silo_opt_bool *) field = (silo_opt_bool) { true, json_is_true(v) };
                return 0;
        case SILO_JSON_INT:
                r = get_integer(v, path, &ll, err);
                if (r < 0)
                        return r;
                if (ll < INT_MIN || ll > INT_MAX)
                        return silo_error_msg(err, ERANGE, "%s: %lld is out of range", path, ll);
                *(int *) field = (int) ll;
                return 0;
        case SILO_JSON_INT64:
        case SILO_JSON_OPT_INT64:
                r = get_integer(v, path, &ll, err);
                if (r < 0)
                        return r;
                if (f->kind == SILO_JSON_INT64)
                        *(int64_t *) field = ll;
                else
                        *(silo_opt_i64 *) field = (silo_opt_i64) { true, ll };
                return 0;
        case SILO_JSON_UINT32:
                r = get_unsigned(v, path, &u, err);
                if (r < 0)
                        return r;
                if (u > UINT32_MAX)
                        return silo_error_msg(err, ERANGE, "%s: %llu is out of range", path, (unsigned long long) u);
                *(uint32_t *) field = (uint32_t) u;
                return 0;
        case SILO_JSON_UINT64:
        case SILO_JSON_OPT_UINT64:
                r = get_unsigned(v, path, &u, err);
                if (r < 0)
                        return r;
                if (f->kind == SILO_JSON_UINT64)
                        *(uint64_t *) field = u;
                else
                        *(silo_opt_u64 *) field = (silo_opt_u64) { true, u };
                return 0;
        case SILO_JSON_STRV:
                return silo_json_strv(v, path, (const char ***) field, err);
        case SILO_JSON_OBJECT:
                if (!json_is_object(v))
                        return wrong_type(path, "an object", v, err);
                *(json_t **) field = v;
                return 0;
        case SILO_JSON_ARRAY:
                if (!json_is_array(v))
                        return wrong_type(path, "an array", v, err);
                *(json_t **) field = v;
                return 0;
        case SILO_JSON_CUSTOM:
                return f->parse(v, path, field, err);
        }
        return silo_error_msg(err, EINVAL, "%s: internal error: bad field kind", path);
}

int silo_json_dispatch(json_t *obj, const char *path, const struct silo_json_field *fields,
                       void *base, silo_error *err)
{
        if (!json_is_object(obj))
                return wrong_type(path && *path ? path : "document", "an object", obj, err);

        for (const struct silo_json_field *f = fields; f->name; f++) {
                char p[SILO_JSON_PATH_MAX];
                json_t *v = json_object_get(obj, f->name);
                silo_json_path_key(p, path, f->name);
                if (!v || (json_is_null(v) && (f->flags & SILO_JSON_NULLABLE))) {
                        if (f->flags & SILO_JSON_REQUIRED)
                                return silo_error_msg(err, EINVAL, "%s: required field is missing", p);
                        continue;
                }
                int r = dispatch_one(v, p, f, (char *) base + f->offset, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int silo_json_load_buffer(const char *buf, size_t len, const char *what, json_t **ret, silo_error *err)
{
        json_error_t jerr;
        json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j && json_error_code(&jerr) == json_error_numeric_overflow)
                /* Configs write 18446744073709551615 for "unlimited", beyond
                 * jansson's int64: read numbers as reals; the decoders clamp. */
                j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
        if (!j) {
                if (len == 0)
                        return silo_error_msg(err, EINVAL, "%s: empty document", what);
                return silo_error_msg(err, EINVAL, "%s: invalid JSON at line %d column %d: %s",
                                      what, jerr.line, jerr.column, jerr.text);
        }
        *ret = j;
        return 0;
}

int silo_json_load_file_at(int dirfd, const char *path, size_t max_bytes, json_t **ret, silo_error *err)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r = silo_read_file_at(dirfd, path, max_bytes, &buf, &len, err);
        if (r < 0)
                return r;
        return silo_json_load_buffer(buf, len, path, ret, err);
}
