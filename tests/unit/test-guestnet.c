/* The guest's validation of the Create request's Networking
 * (src/guest/net.c) and the host's side of it (silo_vm_net_to_json): what
 * the host sends parses, and every out-of-bounds field is refused with the
 * field named, before anything is configured. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/cleanup.h"
#include "vm/vm.h"

/* The guest's file itself: it is not part of any library. */
#include "../../src/guest/net.c"

static void test_host_json_parses(void **state)
{
        (void) state;
        struct silo_vm_net n = { .tap_fd = -1, .ifname = "eth0", .mac = "02:42:0a:d3:00:05", .address = "10.211.0.5",
                                 .prefix = 24, .gateway = "10.211.0.1", .mtu = 1500 };
        _cleanup_json_ json_t *j = silo_vm_net_to_json(&n);
        assert_non_null(j);
        struct guest_net_iface i;
        int count = -1;
        char err[256] = "";
        assert_int_equal(guest_net_parse(j, &i, &count, err, sizeof(err)), 0);
        assert_int_equal(count, 1);
        assert_string_equal(i.name, "eth0");
        assert_string_equal(i.address, "10.211.0.5");
        assert_string_equal(i.gateway, "10.211.0.1");
        assert_int_equal(i.prefix, 24);
        assert_int_equal(i.mtu, 1500);
        assert_int_equal(i.mac[0], 0x02);
        assert_int_equal(i.mac[5], 0x05);
        /* No gateway: no Gateway key, still valid. */
        n.gateway[0] = 0;
        _cleanup_json_ json_t *k = silo_vm_net_to_json(&n);
        assert_null(json_object_get(json_array_get(json_object_get(k, "Interfaces"), 0), "Gateway"));
        assert_int_equal(guest_net_parse(k, &i, &count, err, sizeof(err)), 0);
        assert_string_equal(i.gateway, "");
}

static void test_absent_means_nothing(void **state)
{
        (void) state;
        struct guest_net_iface i;
        int count = -1;
        char err[256] = "";
        assert_int_equal(guest_net_parse(NULL, &i, &count, err, sizeof(err)), 0);
        assert_int_equal(count, 0);
        _cleanup_json_ json_t *empty = json_pack("{s[]}", "Interfaces");
        assert_int_equal(guest_net_parse(empty, &i, &count, err, sizeof(err)), 0);
        assert_int_equal(count, 0);
        /* Nothing to configure: configure returns at once, without looking for a NIC. */
        assert_int_equal(guest_net_configure(empty, err, sizeof(err)), 0);
}

static void expect_refused(const char *json, const char *field)
{
        json_error_t jerr;
        _cleanup_json_ json_t *j = json_loads(json, 0, &jerr);
        assert_non_null(j);
        struct guest_net_iface i;
        int count = -1;
        char err[256] = "";
        int r = guest_net_parse(j, &i, &count, err, sizeof(err));
        if (r >= 0 || !strstr(err, field))
                fail_msg("%s: got %d \"%s\", want an error naming %s", json, r, err, field);
        assert_int_equal(count, 0);
        /* configure refuses it the same way, before touching any interface. */
        char err2[256] = "";
        assert_int_equal(guest_net_configure(j, err2, sizeof(err2)), r);
        assert_string_equal(err, err2);
}

#define IFACE(fields) "{\"Interfaces\":[{" fields "}]}"
#define GOOD_NAME "\"Name\":\"eth0\","
#define GOOD_MAC "\"MacAddress\":\"02:42:0a:d3:00:05\","
#define GOOD_ADDR "\"IPAddress\":\"10.0.0.2\",\"PrefixLength\":24,"
#define GOOD_MTU "\"Mtu\":1500"

static void test_bad_input_is_refused(void **state)
{
        (void) state;
        expect_refused("[]", "Networking");
        expect_refused("{\"Interfaces\":{}}", "Networking.Interfaces");
        expect_refused("{\"Interfaces\":[{},{}]}", "at most one interface");
        expect_refused("{\"Interfaces\":[7]}", "Networking.Interfaces[0]");
        expect_refused(IFACE(GOOD_MAC GOOD_ADDR GOOD_MTU), ".Name");
        expect_refused(IFACE("\"Name\":\"\"," GOOD_MAC GOOD_ADDR GOOD_MTU), ".Name");
        expect_refused(IFACE("\"Name\":\"a-very-long-name0\"," GOOD_MAC GOOD_ADDR GOOD_MTU), ".Name");
        expect_refused(IFACE("\"Name\":\"../x\"," GOOD_MAC GOOD_ADDR GOOD_MTU), ".Name");
        expect_refused(IFACE("\"Name\":\"..\"," GOOD_MAC GOOD_ADDR GOOD_MTU), ".Name");
        expect_refused(IFACE("\"Name\":\"eth 0\"," GOOD_MAC GOOD_ADDR GOOD_MTU), ".Name");
        expect_refused(IFACE(GOOD_NAME "\"MacAddress\":\"02:42:0a:d3:00\"," GOOD_ADDR GOOD_MTU), ".MacAddress");
        expect_refused(IFACE(GOOD_NAME "\"MacAddress\":\"02:42:0a:d3:00:05:06\"," GOOD_ADDR GOOD_MTU), ".MacAddress");
        expect_refused(IFACE(GOOD_NAME "\"MacAddress\":\"02-42-0a-d3-00-05\"," GOOD_ADDR GOOD_MTU), ".MacAddress");
        expect_refused(IFACE(GOOD_NAME "\"MacAddress\":\"01:00:5e:00:00:01\"," GOOD_ADDR GOOD_MTU), ".MacAddress");
        expect_refused(IFACE(GOOD_NAME "\"MacAddress\":\"00:00:00:00:00:00\"," GOOD_ADDR GOOD_MTU), ".MacAddress");
        expect_refused(IFACE(GOOD_NAME "\"MacAddress\":5," GOOD_ADDR GOOD_MTU), ".MacAddress");
        expect_refused(IFACE(GOOD_NAME "\"MacAddress\":\"0x:42:0a:d3:00:05\"," GOOD_ADDR GOOD_MTU), ".MacAddress");
        expect_refused(IFACE(GOOD_NAME "\"MacAddress\":\" 2:42:0a:d3:00:05\"," GOOD_ADDR GOOD_MTU), ".MacAddress");
        expect_refused(IFACE(GOOD_NAME GOOD_MAC "\"IPAddress\":\"10.0.0.256\",\"PrefixLength\":24," GOOD_MTU),
                       ".IPAddress");
        expect_refused(IFACE(GOOD_NAME GOOD_MAC "\"IPAddress\":\"fe80::1\",\"PrefixLength\":24," GOOD_MTU),
                       ".IPAddress");
        expect_refused(IFACE(GOOD_NAME GOOD_MAC "\"IPAddress\":\"10.0.0.2\",\"PrefixLength\":33," GOOD_MTU),
                       ".PrefixLength");
        expect_refused(IFACE(GOOD_NAME GOOD_MAC "\"IPAddress\":\"10.0.0.2\",\"PrefixLength\":-1," GOOD_MTU),
                       ".PrefixLength");
        expect_refused(IFACE(GOOD_NAME GOOD_MAC "\"IPAddress\":\"10.0.0.2\",\"PrefixLength\":\"24\"," GOOD_MTU),
                       ".PrefixLength");
        expect_refused(IFACE(GOOD_NAME GOOD_MAC GOOD_ADDR "\"Gateway\":\"10.0.0\"," GOOD_MTU), ".Gateway");
        expect_refused(IFACE(GOOD_NAME GOOD_MAC GOOD_ADDR "\"Gateway\":1," GOOD_MTU), ".Gateway");
        expect_refused(IFACE(GOOD_NAME GOOD_MAC GOOD_ADDR "\"Mtu\":67"), ".Mtu");
        expect_refused(IFACE(GOOD_NAME GOOD_MAC GOOD_ADDR "\"Mtu\":65536"), ".Mtu");
        expect_refused(IFACE(GOOD_NAME GOOD_MAC GOOD_ADDR "\"Mtu\":1500.5"), ".Mtu");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_host_json_parses),
                cmocka_unit_test(test_absent_means_nothing),
                cmocka_unit_test(test_bad_input_is_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
