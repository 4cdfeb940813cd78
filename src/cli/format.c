/* --format: a subset of Go's text/template as docker uses it, evaluated on
 * JSON documents, and aligned tables.
 *
 *   literal text (\t and \n are escapes)
 *   {{.}} {{.Field}} {{.A.B}}             values; objects print as map[k:v],
 *                                         arrays as [a b], a missing key as <no value>
 *   {{json .X}} {{upper .X}} {{lower .X}} {{title .X}}
 *   {{index .Map "key"}} {{index .List 0}} {{join .List ", "}}
 *   "table " in front: a header row, columns aligned at tabs */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "util/cleanup.h"

#define TEMPLATE_MAX_NODES 256
#define TEMPLATE_MAX_DEPTH 16
#define TEMPLATE_MAX_ARGS 8

enum func { FN_NONE, FN_JSON, FN_UPPER, FN_LOWER, FN_TITLE, FN_INDEX, FN_JOIN };

static const char *const func_names[] = {
        [FN_JSON] = "json", [FN_UPPER] = "upper", [FN_LOWER] = "lower", [FN_TITLE] = "title",
        [FN_INDEX] = "index", [FN_JOIN] = "join",
};

struct node {
        char *text;                     /* literal text, or NULL for an action */
        enum func fn;
        char *path[TEMPLATE_MAX_DEPTH]; /* field names; none for "." */
        size_t depth;
        char *args[TEMPLATE_MAX_ARGS];  /* string arguments (index, join) */
        size_t n_args;
};

struct cli_template {
        bool table;
        struct node nodes[TEMPLATE_MAX_NODES];
        size_t n;
};

void cli_template_free(cli_template *t)
{
        if (!t)
                return;
        for (size_t i = 0; i < t->n; i++) {
                free(t->nodes[i].text);
                for (size_t k = 0; k < t->nodes[i].depth; k++)
                        free(t->nodes[i].path[k]);
                for (size_t k = 0; k < t->nodes[i].n_args; k++)
                        free(t->nodes[i].args[k]);
        }
        free(t);
}

static void template_freep(cli_template **t)
{
        cli_template_free(*t);
}

bool cli_template_is_table(const cli_template *t)
{
        return t->table;
}

/* Literal text with \t, \n and \\ escapes. */
static char *unescape(const char *s, size_t len)
{
        char *out = malloc(len + 1);
        if (!out)
                return NULL;
        size_t o = 0;
        for (size_t i = 0; i < len; i++) {
                if (s[i] == '\\' && i + 1 < len && (s[i + 1] == 't' || s[i + 1] == 'n' || s[i + 1] == '\\')) {
                        i++;
                        out[o++] = s[i] == 't' ? '\t' : s[i] == 'n' ? '\n' : '\\';
                } else
                        out[o++] = s[i];
        }
        out[o] = 0;
        return out;
}

/* One action's words: FUNC? .PATH ("STRING")*. */
static int parse_action(const char *s, size_t len, struct node *n, silo_error *err)
{
        _cleanup_free_ char *a = strndup(s, len);
        if (!a)
                return silo_error_set(err, ENOMEM, "template");
        char *p = a;
        while (isspace((unsigned char) *p))
                p++;
        /* Whitespace trim markers {{- and -}} */
        if (*p == '-' && isspace((unsigned char) p[1]))
                p++;
        size_t l = strlen(p);
        while (l && isspace((unsigned char) p[l - 1]))
                p[--l] = 0;
        if (l >= 2 && p[l - 1] == '-' && isspace((unsigned char) p[l - 2]))
                p[--l] = 0;
        bool have_path = false;
        while (*p) {
                while (isspace((unsigned char) *p))
                        p++;
                if (!*p)
                        break;
                if (*p == '.') {
                        if (have_path)
                                return silo_error_msg(err, EINVAL, "template: {{%s}}: more than one value", a);
                        have_path = true;
                        p++;
                        while (*p && !isspace((unsigned char) *p)) {
                                size_t w = strcspn(p, ". \t");
                                if (w == 0 || n->depth >= TEMPLATE_MAX_DEPTH)
                                        return silo_error_msg(err, EINVAL, "template: {{%s}}: bad field name", a);
                                if (!(n->path[n->depth++] = strndup(p, w)))
                                        return silo_error_set(err, ENOMEM, "template");
                                p += w;
                                if (*p == '.')
                                        p++;
                        }
                } else if (*p == '"') {
                        char *q = strchr(p + 1, '"');
                        if (!q)
                                return silo_error_msg(err, EINVAL, "template: {{%s}}: unterminated string", a);
                        if (n->n_args >= TEMPLATE_MAX_ARGS)
                                return silo_error_msg(err, EINVAL, "template: {{%s}}: too many arguments", a);
                        if (!(n->args[n->n_args++] = unescape(p + 1, (size_t) (q - p - 1))))
                                return silo_error_set(err, ENOMEM, "template");
                        p = q + 1;
                } else if (isdigit((unsigned char) *p) && n->fn == FN_INDEX) {
                        /* {{index .List 0}} */
                        size_t w = strspn(p, "0123456789");
                        if (n->n_args >= TEMPLATE_MAX_ARGS)
                                return silo_error_msg(err, EINVAL, "template: {{%s}}: too many arguments", a);
                        if (!(n->args[n->n_args++] = strndup(p, w)))
                                return silo_error_set(err, ENOMEM, "template");
                        p += w;
                } else {
                        size_t w = strcspn(p, " \t");
                        if (n->fn != FN_NONE || have_path)
                                return silo_error_msg(err, EINVAL, "template: {{%s}}: unexpected '%.*s'", a, (int) w,
                                                      p);
                        for (size_t f = 1; f < sizeof(func_names) / sizeof(func_names[0]); f++)
                                if (strlen(func_names[f]) == w && !strncmp(p, func_names[f], w))
                                        n->fn = (enum func) f;
                        if (n->fn == FN_NONE)
                                return silo_error_msg(err, EINVAL, "template: {{%s}}: function \"%.*s\" not defined",
                                                      a, (int) w, p);
                        p += w;
                }
        }
        if (!have_path)
                return silo_error_msg(err, EINVAL, "template: {{%s}}: expected a value such as .Field", a);
        if ((n->fn == FN_INDEX || n->fn == FN_JOIN) && n->n_args != 1)
                return silo_error_msg(err, EINVAL, "template: {{%s}}: %s takes a value and one string", a,
                                      func_names[n->fn]);
        if (n->fn != FN_INDEX && n->fn != FN_JOIN && n->n_args)
                return silo_error_msg(err, EINVAL, "template: {{%s}}: unexpected string argument", a);
        return 0;
}

int cli_template_parse(const char *text, cli_template **ret, silo_error *err)
{
        _cleanup_(template_freep) cli_template *t = calloc(1, sizeof(*t));
        if (!t)
                return silo_error_set(err, ENOMEM, "template");
        if (!strncmp(text, "table", 5) && (text[5] == 0 || isspace((unsigned char) text[5]))) {
                t->table = true;
                text += 5;
                while (*text == ' ')
                        text++;
        }
        const char *p = text;
        while (*p) {
                if (t->n >= TEMPLATE_MAX_NODES)
                        return silo_error_msg(err, E2BIG, "template: too long");
                struct node *n = &t->nodes[t->n];
                const char *open = strstr(p, "{{");
                if (open != p) {
                        size_t len = open ? (size_t) (open - p) : strlen(p);
                        if (!(n->text = unescape(p, len)))
                                return silo_error_set(err, ENOMEM, "template");
                        t->n++;
                        p += len;
                        continue;
                }
                const char *close = strstr(p + 2, "}}");
                if (!close)
                        return silo_error_msg(err, EINVAL, "template: unclosed action at \"%.20s\"", p);
                t->n++;
                int r = parse_action(p + 2, (size_t) (close - p - 2), n, err);
                if (r < 0)
                        return r;
                p = close + 2;
        }
        *ret = TAKE_PTR(t);
        return 0;
}

/* ---- evaluation ---- */

struct buf {
        char *s;
        size_t len, cap;
        bool oom;
};

static void put(struct buf *b, const char *s, size_t len)
{
        if (b->oom)
                return;
        if (b->len + len + 1 > b->cap) {
                size_t cap = (b->len + len + 1) * 2;
                char *ns = realloc(b->s, cap);
                if (!ns) {
                        b->oom = true;
                        return;
                }
                b->s = ns;
                b->cap = cap;
        }
        memcpy(b->s + b->len, s, len);
        b->len += len;
        b->s[b->len] = 0;
}

static void puts_buf(struct buf *b, const char *s)
{
        put(b, s, strlen(s));
}

static int key_cmp(const void *a, const void *b)
{
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* As Go's fmt prints a decoded JSON value (%v). */
static void print_value(struct buf *b, json_t *v, unsigned depth)
{
        char num[64];
        if (depth > 32) {
                puts_buf(b, "...");
                return;
        }
        switch (json_typeof(v)) {
        case JSON_STRING:
                put(b, json_string_value(v), json_string_length(v));
                break;
        case JSON_INTEGER:
                snprintf(num, sizeof(num), "%lld", (long long) json_integer_value(v));
                puts_buf(b, num);
                break;
        case JSON_REAL:
                snprintf(num, sizeof(num), "%g", json_real_value(v));
                puts_buf(b, num);
                break;
        case JSON_TRUE: puts_buf(b, "true"); break;
        case JSON_FALSE: puts_buf(b, "false"); break;
        case JSON_NULL: puts_buf(b, "<nil>"); break;
        case JSON_ARRAY: {
                puts_buf(b, "[");
                for (size_t i = 0; i < json_array_size(v); i++) {
                        if (i)
                                puts_buf(b, " ");
                        print_value(b, json_array_get(v, i), depth + 1);
                }
                puts_buf(b, "]");
                break;
        }
        case JSON_OBJECT: {
                /* Go prints maps with sorted keys. */
                size_t n = json_object_size(v), i = 0;
                const char **keys = calloc(n ? n : 1, sizeof(*keys));
                if (!keys) {
                        b->oom = true;
                        return;
                }
                const char *k;
                json_t *x;
                json_object_foreach(v, k, x)
                        keys[i++] = k;
                qsort(keys, n, sizeof(*keys), key_cmp);
                puts_buf(b, "map[");
                for (i = 0; i < n; i++) {
                        if (i)
                                puts_buf(b, " ");
                        puts_buf(b, keys[i]);
                        puts_buf(b, ":");
                        print_value(b, json_object_get(v, keys[i]), depth + 1);
                }
                puts_buf(b, "]");
                free(keys);
                break;
        }
        }
}

static int eval(const struct node *n, json_t *obj, struct buf *b, silo_error *err)
{
        json_t *v = obj;
        for (size_t i = 0; i < n->depth && v; i++) {
                if (!json_is_object(v))
                        return silo_error_msg(err, EINVAL, "template: can't evaluate field %s in type %s",
                                              n->path[i], json_is_array(v) ? "array" : "value");
                v = json_object_get(v, n->path[i]);
        }
        if (n->fn == FN_INDEX && v) {
                if (json_is_array(v))
                        v = json_array_get(v, strtoul(n->args[0], NULL, 10));
                else if (json_is_object(v))
                        v = json_object_get(v, n->args[0]);
                else
                        return silo_error_msg(err, EINVAL, "template: index of a value that is not a map or list");
        }
        if (n->fn == FN_JSON) {
                char *text = json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
                if (!text)
                        return silo_error_set(err, ENOMEM, "template");
                puts_buf(b, text);
                free(text);
                return 0;
        }
        if (!v) {
                puts_buf(b, n->fn == FN_INDEX ? "" : "<no value>");
                return 0;
        }
        if (n->fn == FN_JOIN) {
                if (!json_is_array(v))
                        return silo_error_msg(err, EINVAL, "template: join of a value that is not a list");
                for (size_t i = 0; i < json_array_size(v); i++) {
                        if (i)
                                puts_buf(b, n->args[0]);
                        print_value(b, json_array_get(v, i), 0);
                }
                return 0;
        }
        size_t start = b->len;
        print_value(b, v, 0);
        if (b->oom)
                return silo_error_set(err, ENOMEM, "template");
        bool word_start = true;
        for (size_t i = start; i < b->len; i++) {
                unsigned char c = (unsigned char) b->s[i];
                if (n->fn == FN_UPPER || (n->fn == FN_TITLE && word_start))
                        b->s[i] = (char) toupper(c);
                else if (n->fn == FN_LOWER)
                        b->s[i] = (char) tolower(c);
                word_start = isspace(c);
        }
        return 0;
}

int cli_template_render(const cli_template *t, json_t *obj, char **ret, silo_error *err)
{
        struct buf b = {};
        puts_buf(&b, "");
        for (size_t i = 0; i < t->n; i++) {
                if (t->nodes[i].text) {
                        puts_buf(&b, t->nodes[i].text);
                        continue;
                }
                int r = eval(&t->nodes[i], obj, &b, err);
                if (r < 0) {
                        free(b.s);
                        return r;
                }
        }
        if (b.oom) {
                free(b.s);
                return silo_error_set(err, ENOMEM, "template");
        }
        *ret = b.s;
        return 0;
}

int cli_template_header(const cli_template *t, json_t *headers, char **ret, silo_error *err)
{
        struct buf b = {};
        puts_buf(&b, "");
        for (size_t i = 0; i < t->n; i++) {
                const struct node *n = &t->nodes[i];
                if (n->text) {
                        puts_buf(&b, n->text);
                        continue;
                }
                if (!n->depth)
                        continue;
                const char *field = n->path[n->depth - 1];
                const char *h = json_string_value(json_object_get(headers, field));
                if (h) {
                        puts_buf(&b, h);
                        continue;
                }
                size_t start = b.len;
                puts_buf(&b, field);
                for (size_t k = start; k < b.len; k++)
                        b.s[k] = (char) toupper((unsigned char) b.s[k]);
        }
        if (b.oom) {
                free(b.s);
                return silo_error_set(err, ENOMEM, "template");
        }
        *ret = b.s;
        return 0;
}

/* ---- tables ---- */

struct cli_table {
        char **rows;
        size_t n, cap;
};

cli_table *cli_table_new(void)
{
        return calloc(1, sizeof(cli_table));
}

int cli_table_add(cli_table *t, const char *row)
{
        if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 16;
                char **nr = realloc(t->rows, cap * sizeof(*nr));
                if (!nr)
                        return -ENOMEM;
                t->rows = nr;
                t->cap = cap;
        }
        if (!(t->rows[t->n] = strdup(row)))
                return -ENOMEM;
        t->n++;
        return 0;
}

#define TABLE_MAX_COLUMNS 64

void cli_table_print(cli_table *t, FILE *f)
{
        size_t width[TABLE_MAX_COLUMNS] = {};
        for (size_t i = 0; i < t->n; i++) {
                size_t col = 0;
                for (const char *c = t->rows[i]; col < TABLE_MAX_COLUMNS; col++) {
                        size_t w = strcspn(c, "\t\n");
                        if (c[w] != '\t')
                                break;  /* the last cell is not padded */
                        if (w > width[col])
                                width[col] = w;
                        c += w + 1;
                }
        }
        for (size_t i = 0; i < t->n; i++) {
                size_t col = 0;
                for (const char *c = t->rows[i];; col++) {
                        size_t w = strcspn(c, "\t");
                        if (!c[w] || col >= TABLE_MAX_COLUMNS) {
                                fprintf(f, "%s\n", c);
                                break;
                        }
                        fprintf(f, "%.*s%*s", (int) w, c, (int) (width[col] - w + 3), "");
                        c += w + 1;
                }
        }
}

void cli_table_free(cli_table *t)
{
        if (!t)
                return;
        for (size_t i = 0; i < t->n; i++)
                free(t->rows[i]);
        free(t->rows);
        free(t);
}

int cli_print_objects(json_t *objects, const char *format, const char *deflt, json_t *headers)
{
        silo_error err = SILO_ERROR_INIT;
        size_t i;
        json_t *o;
        if (format && !strcmp(format, "json")) {
                json_array_foreach(objects, i, o) {
                        char *text = json_dumps(o, JSON_COMPACT);
                        if (text)
                                printf("%s\n", text);
                        free(text);
                }
                return 0;
        }
        _cleanup_(template_freep) cli_template *t = NULL;
        if (cli_template_parse(format && *format ? format : deflt, &t, &err) < 0)
                return cli_fail(&err);
        cli_table *table = t->table ? cli_table_new() : NULL;
        if (t->table && !table)
                return cli_failf("out of memory");
        int ret = 0;
        if (table) {
                _cleanup_free_ char *h = NULL;
                if (cli_template_header(t, headers, &h, &err) < 0 || cli_table_add(table, h) < 0)
                        ret = cli_fail(&err);
        }
        json_array_foreach(objects, i, o) {
                if (ret)
                        break;
                _cleanup_free_ char *line = NULL;
                if (cli_template_render(t, o, &line, &err) < 0) {
                        ret = cli_fail(&err);
                        break;
                }
                if (table)
                        cli_table_add(table, line);
                else
                        printf("%s\n", line);
        }
        if (table && !ret)
                cli_table_print(table, stdout);
        cli_table_free(table);
        return ret;
}
