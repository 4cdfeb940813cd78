#include "image/reference.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/digest.h"
#include "util/cleanup.h"

#define NAME_TOTAL_MAX 255
#define TAG_MAX 128

silo_reference *silo_reference_free(silo_reference *r)
{
        if (!r)
                return NULL;
        free(r->domain);
        free(r->path);
        free(r->tag);
        free(r->digest);
        free(r);
        return NULL;
}

/* path-component: [a-z0-9]+ ((. | _ | __ | -+) [a-z0-9]+)* */
static bool valid_component(const char *s, size_t n)
{
        if (n == 0 || (!islower((unsigned char) s[0]) && !isdigit((unsigned char) s[0])))
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (islower(c) || isdigit(c))
                        continue;
                if (c != '.' && c != '_' && c != '-')
                        return false;
                /* A separator must be followed by an alphanumeric run. */
                size_t j = i;
                if (c == '-')
                        while (j < n && s[j] == '-')
                                j++;
                else if (c == '_' && j + 1 < n && s[j + 1] == '_')
                        j += 2;
                else
                        j++;
                if (j >= n || !(islower((unsigned char) s[j]) || isdigit((unsigned char) s[j])))
                        return false;
                i = j - 1;
        }
        return true;
}

static bool valid_domain(const char *s, size_t n)
{
        if (n == 0 || n > 253)
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];
                if (!isalnum(c) && c != '.' && c != '-' && c != ':' && c != '[' && c != ']')
                        return false;
        }
        return s[0] != '-' && s[0] != '.';
}

static bool valid_tag(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > TAG_MAX)
                return false;
        if (!isalnum((unsigned char) s[0]) && s[0] != '_')
                return false;
        for (size_t i = 1; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
                        return false;
        return true;
}

int silo_reference_parse(const char *s, silo_reference **ret, silo_error *err)
{
        if (!s || !*s)
                return silo_error_msg(err, EINVAL, "empty image reference");
        if (strlen(s) > NAME_TOTAL_MAX + TAG_MAX + SILO_DIGEST_STRLEN + 2)
                return silo_error_msg(err, EINVAL, "image reference too long");

        _cleanup_free_ char *buf = strdup(s);
        _cleanup_(silo_reference_freep) silo_reference *r = calloc(1, sizeof(*r));
        if (!buf || !r)
                return silo_error_set(err, ENOMEM, "parse reference");

        char *at = strchr(buf, '@');
        if (at) {
                *at = '\0';
                if (!silo_digest_valid(at + 1))
                        return silo_digest_check(at + 1, s, err);
                r->digest = strdup(at + 1);
        }

        /* A tag is a ':' after the last '/' (a ':' before it is a port). */
        char *slash = strrchr(buf, '/');
        char *colon = strrchr(slash ? slash : buf, ':');
        if (colon) {
                *colon = '\0';
                if (!valid_tag(colon + 1))
                        return silo_error_msg(err, EINVAL, "invalid tag '%s' in image reference '%s'", colon + 1, s);
                r->tag = strdup(colon + 1);
        }

        char *name = buf;
        char *first = strchr(name, '/');
        if (first && (memchr(name, '.', (size_t) (first - name)) || memchr(name, ':', (size_t) (first - name)) ||
                      ((size_t) (first - name) == strlen("localhost") && !strncmp(name, "localhost", 9)))) {
                if (!valid_domain(name, (size_t) (first - name)))
                        return silo_error_msg(err, EINVAL, "invalid registry '%.*s' in image reference '%s'",
                                              (int) (first - name), name, s);
                r->domain = strndup(name, (size_t) (first - name));
                name = first + 1;
        } else {
                r->domain = strdup(SILO_DEFAULT_DOMAIN);
        }

        if (!strcmp(r->domain, SILO_DEFAULT_DOMAIN) && !strchr(name, '/')) {
                if (asprintf(&r->path, "library/%s", name) < 0)
                        r->path = NULL;
        } else
                r->path = strdup(name);
        if (!r->domain || !r->path)
                return silo_error_set(err, ENOMEM, "parse reference");

        size_t total = strlen(r->domain) + 1 + strlen(r->path);
        if (total > NAME_TOTAL_MAX)
                return silo_error_msg(err, EINVAL, "repository name in '%s' is longer than %d bytes", s, NAME_TOTAL_MAX);
        for (const char *p = r->path; ; ) {
                const char *end = strchrnul(p, '/');
                if (!valid_component(p, (size_t) (end - p)))
                        return silo_error_msg(err, EINVAL, "invalid repository name '%s' in image reference '%s' "
                                              "(lowercase letters, digits and separators only)", r->path, s);
                if (!*end)
                        break;
                p = end + 1;
        }

        if (!r->tag && !r->digest && !(r->tag = strdup(SILO_DEFAULT_TAG)))
                return silo_error_set(err, ENOMEM, "parse reference");
        *ret = TAKE_PTR(r);
        return 0;
}

char *silo_reference_repository(const silo_reference *r)
{
        char *s = NULL;
        if (asprintf(&s, "%s/%s", r->domain, r->path) < 0)
                return NULL;
        return s;
}

char *silo_reference_name(const silo_reference *r)
{
        char *s = NULL;
        if (r->tag) {
                if (asprintf(&s, "%s/%s:%s", r->domain, r->path, r->tag) < 0)
                        return NULL;
        } else if (asprintf(&s, "%s/%s@%s", r->domain, r->path, r->digest) < 0)
                return NULL;
        return s;
}

bool silo_reference_valid(const char *s)
{
        silo_reference *r = NULL;
        int ret = silo_reference_parse(s, &r, NULL);
        silo_reference_free(r);
        return ret == 0;
}
