/* Self-signed certificates made in memory: for `infergate demo` (an
 * HTTPS listener needs a kubernetes.io/tls Secret, which the demo makes
 * at start) and for servers that must speak TLS before anyone gave them a
 * certificate (the picker's -secureServing default).
 *
 * The key is ECDSA P-256; the certificate is X.509 v3, SHA-256 signed,
 * valid from an hour ago (clock skew) for `days` days, with a random
 * 128-bit serial, the first name as subject CN and every name in
 * subjectAltName (an IPv4/IPv6 literal as an IP entry, anything else as
 * DNS), basicConstraints CA:TRUE so that a client may pin it as its own
 * trust anchor (curl --cacert), keyUsage digitalSignature + keyCertSign
 * and extendedKeyUsage serverAuth. */
#ifndef IG_HTTP_CERTGEN_H
#define IG_HTTP_CERTGEN_H

#include <stddef.h>

#include "core/buf.h"

/* Appends the certificate (PEM "CERTIFICATE") to cert and the key (PEM
 * PKCS#8 "PRIVATE KEY", unencrypted) to key. Returns 0, or -1 with the
 * reason in err and nothing appended. names: 1 to 16 non-empty names. */
int ig_certgen_selfsigned(const char *const *names, size_t nnames, unsigned days,
			  struct ig_buf *cert, struct ig_buf *key, char *err, size_t errlen);

#endif
