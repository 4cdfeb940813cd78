/* Table-driven JSON decoding on top of jansson.  One row per field, a kind
 * per row; every error names the full field path, e.g.
 *   "linux.resources.memory.limit: expected an integer, got string". */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/error.h"

#define SILO_JSON_PATH_MAX 256

typedef struct { bool set; int64_t value; } silo_opt_i64;
typedef struct { bool set; uint64_t value; } silo_opt_u64;
typedef struct { bool set; bool value; } silo_opt_bool;

enum silo_json_kind {
        SILO_JSON_STRING,       /* const char * borrowed from the json tree */
        SILO_JSON_BOOL,         /* bool */
        SILO_JSON_INT,          /* int (range-checked) */
        SILO_JSON_UINT32,       /* uint32_t */
        SILO_JSON_INT64,        /* int64_t */
        SILO_JSON_UINT64,       /* uint64_t */
        SILO_JSON_OPT_BOOL,     /* silo_opt_bool */
        SILO_JSON_OPT_INT64,    /* silo_opt_i64 */
        SILO_JSON_OPT_UINT64,   /* silo_opt_u64 */
        SILO_JSON_STRV,         /* const char ** (malloc'd, NULL-terminated, strings borrowed) */
        SILO_JSON_OBJECT,       /* json_t * borrowed, must be an object */
        SILO_JSON_ARRAY,        /* json_t * borrowed, must be an array */
        SILO_JSON_CUSTOM,       /* parse(value, path, field_ptr, err) */
};

typedef int (*silo_json_parse_fn)(json_t *value, const char *path, void *field, silo_error *err);

#define SILO_JSON_REQUIRED  (1u << 0)
#define SILO_JSON_NULLABLE  (1u << 1)   /* JSON null is treated as absent */

struct silo_json_field {
        const char *name;
        enum silo_json_kind kind;
        size_t offset;
        unsigned flags;
        silo_json_parse_fn parse;       /* SILO_JSON_CUSTOM only */
};

/* Decodes the known fields of `obj` into `base`.  Unknown keys are ignored, as
 * the OCI runtime spec requires (callers may warn through `unknown`).  `path`
 * names obj for messages ("" for the document root). */
int silo_json_dispatch(json_t *obj, const char *path, const struct silo_json_field *fields,
                       void *base, silo_error *err);

/* Joins "path" and "key" ("a.b" / "a[3]") into buf. */
const char *silo_json_path_key(char buf[SILO_JSON_PATH_MAX], const char *path, const char *key);
const char *silo_json_path_index(char buf[SILO_JSON_PATH_MAX], const char *path, size_t index);

const char *silo_json_type_name(const json_t *v);

/* Decodes a JSON array of strings into a malloc'd NULL-terminated vector of
 * borrowed strings.  A null/absent value gives NULL. */
int silo_json_strv(json_t *value, const char *path, const char ***ret, silo_error *err);

/* Loads a JSON document from a file (bounded by max_bytes) or a buffer with a
 * message that names the file, line and column on syntax errors. */
int silo_json_load_file_at(int dirfd, const char *path, size_t max_bytes, json_t **ret, silo_error *err);
int silo_json_load_buffer(const char *buf, size_t len, const char *what, json_t **ret, silo_error *err);
