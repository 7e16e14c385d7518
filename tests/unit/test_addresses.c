/* A Gateway's spec.addresses against --bind and this host's addresses
 * (gateway/addresses.c), and --bind itself (event/loop.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "event/loop.h"
#include "gateway/addresses.h"

static bool have_ipv6(void)
{
	int fd = socket(AF_INET6, SOCK_DGRAM, 0);
	if (fd < 0)
		return false;
	close(fd);
	return ig_gw_address_usable("::", "::1");
}

/* A specific --bind receives only its own address; the IPv4 wildcard
 * every IPv4 address of the host (all of 127/8, which loopback routes),
 * but not one the host lacks (192.0.2.0/24 is documentation-only) nor an
 * IPv6 one; "::" takes IPv4 too. */
static void test_usable(void **state)
{
	assert_true(ig_gw_address_usable("127.0.0.2", "127.0.0.2"));
	assert_false(ig_gw_address_usable("127.0.0.2", "127.0.0.3"));
	assert_true(ig_gw_address_usable("0.0.0.0", "127.0.0.1"));
	assert_true(ig_gw_address_usable("0.0.0.0", "127.42.1.9"));
	assert_false(ig_gw_address_usable("0.0.0.0", "192.0.2.10"));
	assert_false(ig_gw_address_usable("0.0.0.0", "::1"));
	assert_false(ig_gw_address_usable("0.0.0.0", "not-an-ip"));
	assert_false(ig_gw_address_usable("0.0.0.0", NULL));
	if (have_ipv6()) {
		assert_true(ig_gw_address_usable("::", "127.0.0.1"));
		assert_true(ig_gw_address_usable("::", "::1"));
		assert_true(ig_gw_address_usable("::1", "0:0::1"));
		assert_false(ig_gw_address_usable("::", "2001:db8::1"));
	}
}

static void test_own_address(void **state)
{
	char buf[64];
	unsetenv("POD_IP");
	assert_string_equal(ig_gw_own_address("127.0.0.7", buf, sizeof buf), "127.0.0.7");
	/* The wildcard: the Pod's IP when the host has it, else an address
	 * of the host (not the loopback unless there is no other). */
	setenv("POD_IP", "127.0.0.9", 1);
	assert_string_equal(ig_gw_own_address("0.0.0.0", buf, sizeof buf), "127.0.0.9");
	setenv("POD_IP", "192.0.2.10", 1);
	const char *a = ig_gw_own_address("0.0.0.0", buf, sizeof buf);
	assert_string_not_equal(a, "192.0.2.10");
	assert_true(ig_gw_address_usable("0.0.0.0", a));
	unsetenv("POD_IP");
}

static struct ig_config *load(const char *addrs)
{
	char text[1024];
	snprintf(text, sizeof text,
		 "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
		 "metadata: {name: gw}\nspec:\n  gatewayClassName: c\n  addresses:\n%s"
		 "  listeners: [{name: a, port: 80, protocol: HTTP}]\n",
		 addrs);
	struct ig_config *cfg = NULL;
	struct ig_diags d = {0};
	assert_int_equal(ig_config_load_text("a.yaml", text, strlen(text), &cfg, &d), 0);
	ig_diags_free(&d);
	return cfg;
}

/* An unsupported type is found before an unusable IP, wherever it is; an
 * address without a value is always usable. */
static void test_check(void **state)
{
	static const struct {
		const char *addrs;
		enum ig_gateway_address_state st;
		size_t bad;
	} cases[] = {
	    {"  - {value: 127.0.0.5}\n  - {type: IPAddress}\n", IG_GWADDR_OK, 0},
	    {"  - {value: 192.0.2.10}\n  - {type: Hostname, value: a.com}\n", IG_GWADDR_UNSUPPORTED,
	     1},
	    {"  - {value: 127.0.0.5}\n  - {value: 192.0.2.10}\n", IG_GWADDR_NOT_USABLE, 1},
	    {"  - {type: example.com/x, value: z}\n", IG_GWADDR_UNSUPPORTED, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ig_config *cfg = load(cases[i].addrs);
		ig_gateway_addresses_check(cfg, "0.0.0.0");
		assert_int_equal(cfg->gateways[0].addr_state, cases[i].st);
		assert_int_equal(cfg->gateways[0].addr_bad, cases[i].bad);
		ig_config_free(cfg);
	}
	/* A specific --bind: only that address. */
	struct ig_config *cfg = load("  - {value: 127.0.0.5}\n");
	ig_gateway_addresses_check(cfg, "127.0.0.6");
	assert_int_equal(cfg->gateways[0].addr_state, IG_GWADDR_NOT_USABLE);
	ig_gateway_addresses_check(cfg, "127.0.0.5");
	assert_int_equal(cfg->gateways[0].addr_state, IG_GWADDR_OK);
	ig_config_free(cfg);
}

/* --bind as a listener takes it: an IP as it is, a name as the first
 * address it resolves to (localhost: a loopback one). */
static void test_listen_address(void **state)
{
	char buf[64];
	assert_int_equal(ig_listen_address("127.0.0.5", buf, sizeof buf), 0);
	assert_string_equal(buf, "127.0.0.5");
	assert_int_equal(ig_listen_address("0.0.0.0", buf, sizeof buf), 0);
	assert_string_equal(buf, "0.0.0.0");
	assert_int_equal(ig_listen_address("localhost", buf, sizeof buf), 0);
	assert_true(!strcmp(buf, "::1") || !strncmp(buf, "127.", 4));
	int fd = ig_listen_tcp("localhost", 0, false, 1);
	assert_true(fd >= 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_listen_address),
	    cmocka_unit_test(test_usable),
	    cmocka_unit_test(test_own_address),
	    cmocka_unit_test(test_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
