/* spec.addresses of Gateways (addresses.h). */
#include "gateway/addresses.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"

struct ip {
	int family;
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} a;
};

static bool parse_ip(const char *s, struct ip *out)
{
	if (!s)
		return false;
	if (inet_pton(AF_INET, s, &out->a.v4) == 1) {
		out->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, &out->a.v6) == 1) {
		out->family = AF_INET6;
		return true;
	}
	return false;
}

static bool is_any(const struct ip *ip)
{
	return ip->family == AF_INET ? ip->a.v4.s_addr == htonl(INADDR_ANY)
				     : IN6_IS_ADDR_UNSPECIFIED(&ip->a.v6);
}

static bool same_ip(const struct ip *a, const struct ip *b)
{
	if (a->family != b->family)
		return false;
	return a->family == AF_INET ? a->a.v4.s_addr == b->a.v4.s_addr
				    : IN6_ARE_ADDR_EQUAL(&a->a.v6, &b->a.v6);
}

/* Whether the host has the address: a socket can be bound to it only then
 * (a loopback interface's whole prefix counts, as Linux routes it). */
static bool host_has(const struct ip *ip)
{
	int fd = socket(ip->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	int rc;
	if (ip->family == AF_INET) {
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = ip->a.v4};
		rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	} else {
		struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = ip->a.v6};
		rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	}
	close(fd);
	return rc == 0;
}

bool ig_gw_address_usable(const char *bind, const char *ip)
{
	struct ip want, b;
	if (!parse_ip(ip, &want) || !parse_ip(bind, &b))
		return false;
	if (!is_any(&b))
		return same_ip(&want, &b);
	/* "::" takes IPv4 too (a dual-stack socket); "0.0.0.0" only IPv4. */
	if (b.family == AF_INET && want.family != AF_INET)
		return false;
	return host_has(&want);
}

const char *ig_gw_own_address(const char *bind, char *buf, size_t len)
{
	struct ip b;
	bool parsed = parse_ip(bind, &b);
	if (parsed && !is_any(&b)) {
		inet_ntop(b.family, &b.a, buf, (socklen_t)len);
		return buf;
	}
	const char *pod = getenv("POD_IP");
	struct ip p;
	if (pod && parse_ip(pod, &p) && (!parsed || ig_gw_address_usable(bind, pod))) {
		inet_ntop(p.family, &p.a, buf, (socklen_t)len);
		return buf;
	}
	int family = parsed ? b.family : AF_INET;
	struct ifaddrs *ifs = NULL;
	bool found = false;
	if (getifaddrs(&ifs) == 0) {
		for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
			if (!i->ifa_addr || i->ifa_addr->sa_family != family ||
			    (i->ifa_flags & IFF_LOOPBACK) || !(i->ifa_flags & IFF_UP))
				continue;
			const void *a =
			    family == AF_INET
				? (const void *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr
				: (const void *)&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
			if (family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL((const struct in6_addr *)a))
				continue;
			found = inet_ntop(family, a, buf, (socklen_t)len) != NULL;
		}
		freeifaddrs(ifs);
	}
	if (!found)
		snprintf(buf, len, "%s", family == AF_INET ? "127.0.0.1" : "::1");
	return buf;
}

void ig_gateway_addresses_check(struct ig_config *cfg, const char *bind)
{
	for (size_t g = 0; g < cfg->ngateways; g++) {
		struct ig_gateway *gw = &cfg->gateways[g];
		gw->addr_state = IG_GWADDR_OK;
		gw->addr_bad = 0;
		for (size_t i = 0; i < gw->naddresses; i++) {
			const struct ig_gateway_address *a = &gw->addresses[i];
			if (strcmp(a->type, "IPAddress")) {
				gw->addr_state = IG_GWADDR_UNSUPPORTED;
				gw->addr_bad = i;
				ig_warn(
				    "gateway %s/%s: spec.addresses[%zu]: type %s is not supported "
				    "(infergate serves IPAddress; Accepted=False, "
				    "UnsupportedAddress): not served",
				    gw->meta.ns, gw->meta.name, i, a->type);
				break;
			}
		}
		for (size_t i = 0; gw->addr_state == IG_GWADDR_OK && i < gw->naddresses; i++) {
			const struct ig_gateway_address *a = &gw->addresses[i];
			if (!a->value || ig_gw_address_usable(bind, a->value))
				continue;
			gw->addr_state = IG_GWADDR_NOT_USABLE;
			gw->addr_bad = i;
			ig_warn("gateway %s/%s: spec.addresses[%zu]: %s is not an address the "
				"listeners bound to %s receive (Programmed=False, "
				"AddressNotUsable): not served",
				gw->meta.ns, gw->meta.name, i, a->value, bind);
		}
	}
}
