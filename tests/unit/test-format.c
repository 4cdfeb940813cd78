/* The CLI's --format templates and tables (src/cli/format.c, compiled in
 * here: it belongs to the silo front end, not to the library). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/cli/format.c"

/* format.c reports through the front end's helpers. */
int cli_fail(const silo_error *err)
{
        (void) err;
        return 1;
}

int cli_failf(const char *fmt, ...)
{
        (void) fmt;
        return 1;
}

static char *render(const char *tmpl, const char *doc)
{
        cli_template *t = NULL;
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(cli_template_parse(tmpl, &t, &err), 0);
        json_error_t je;
        json_t *obj = json_loads(doc, 0, &je);
        assert_non_null(obj);
        char *out = NULL;
        assert_int_equal(cli_template_render(t, obj, &out, &err), 0);
        json_decref(obj);
        cli_template_free(t);
        return out;
}

static void check(const char *tmpl, const char *doc, const char *want)
{
        char *out = render(tmpl, doc);
        assert_string_equal(out, want);
        free(out);
}

static void test_fields(void **state)
{
        (void) state;
        const char *doc = "{\"Name\": \"web\", \"State\": {\"Status\": \"running\", \"Pid\": 42, \"Paused\": false},"
                          " \"Env\": [\"A=1\", \"B=2\"], \"Labels\": {\"b\": \"2\", \"a\": \"1\"}, \"Nil\": null}";
        check("{{.Name}}", doc, "web");
        check("x {{ .State.Status }} {{.State.Pid}} {{.State.Paused}}\\t!", doc, "x running 42 false\t!");
        check("{{.Env}} {{.Labels}} {{.Nil}} {{.Missing}} {{.Missing.Deeper}}", doc,
              "[A=1 B=2] map[a:1 b:2] <nil> <no value> <no value>");
        check("{{json .State}}", doc, "{\"Status\":\"running\",\"Pid\":42,\"Paused\":false}");
        check("{{json .Missing}}", doc, "null");
        check("{{upper .Name}} {{lower .State.Status}} {{title .Name}}", doc, "WEB running Web");
        check("{{index .Labels \"a\"}} {{index .Env 1}} [{{index .Labels \"zz\"}}]", doc, "1 B=2 []");
        check("{{join .Env \", \"}}", doc, "A=1, B=2");
        check("{{- .Name -}}", doc, "web");
        check("no actions", doc, "no actions");
}

static void test_errors(void **state)
{
        (void) state;
        static const char *const bad[] = {
                "{{.Name", "{{}}", "{{frob .Name}}", "{{json}}", "{{index .A}}", "{{.A .B}}", "{{.A \"x\"}}",
                "{{index .A \"unterminated}}", "{{..}}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                cli_template *t = NULL;
                silo_error err = SILO_ERROR_INIT;
                assert_true(cli_template_parse(bad[i], &t, &err) < 0);
                assert_null(t);
                assert_true(strncmp(err.message, "template: ", 10) == 0);
        }
        /* A field of something that is not an object is an evaluation error. */
        cli_template *t = NULL;
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(cli_template_parse("{{.Name.X}}", &t, &err), 0);
        json_t *obj = json_pack("{s:s}", "Name", "web");
        char *out = NULL;
        assert_true(cli_template_render(t, obj, &out, &err) < 0);
        assert_null(out);
        json_decref(obj);
        cli_template_free(t);
}

static void test_table(void **state)
{
        (void) state;
        cli_template *t = NULL;
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(cli_template_parse("table {{.ID}}\\t{{.Names}}\\t{{json .Labels}}", &t, &err), 0);
        assert_true(cli_template_is_table(t));
        json_t *headers = json_pack("{s:s}", "ID", "CONTAINER ID");
        char *h = NULL;
        assert_int_equal(cli_template_header(t, headers, &h, &err), 0);
        assert_string_equal(h, "CONTAINER ID\tNAMES\tLABELS");
        cli_table *tab = cli_table_new();
        assert_int_equal(cli_table_add(tab, h), 0);
        assert_int_equal(cli_table_add(tab, "abc\tweb-server\t{}"), 0);
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        cli_table_print(tab, f);
        fclose(f);
        assert_string_equal(buf, "CONTAINER ID   NAMES        LABELS\n"
                                 "abc            web-server   {}\n");
        free(buf);
        free(h);
        cli_table_free(tab);
        json_decref(headers);
        cli_template_free(t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fields),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_table),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
