/* A Gateway's spec.addresses against where this gateway listens (Gateway
 * API GatewayStaticAddresses and GatewayAddressEmpty). Every listener is
 * bound to --bind, so a requested IP is usable when --bind is that IP, or
 * when --bind is its family's wildcard and the IP is one of this host's.
 * An address without a value gets the one the gateway reports. Types other
 * than IPAddress are not served. */
#ifndef IG_GATEWAY_ADDRESSES_H
#define IG_GATEWAY_ADDRESSES_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

/* Sets each Gateway's addr_state and addr_bad, logging a Gateway that
 * will not be served and why. */
void ig_gateway_addresses_check(struct ig_config *cfg, const char *bind);

/* Whether a listener bound to `bind` receives what is sent to `ip`. */
bool ig_gw_address_usable(const char *bind, const char *ip);

/* The address the gateway reports for its Gateways: --bind when it names
 * one, else $POD_IP (a Pod's, from the downward API), else the host's
 * first address of --bind's family that is not a loopback one, else the
 * loopback; written to buf (INET6_ADDRSTRLEN bytes at least). */
const char *ig_gw_own_address(const char *bind, char *buf, size_t len);

#endif
