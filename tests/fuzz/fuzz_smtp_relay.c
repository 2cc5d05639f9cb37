/*
 * fuzz_smtp_relay - the SMTP dialogue with both sides played by the
 * fuzzer, in memory (tests/unit/relay_harness.h plays the transport and
 * checks the invariants).
 *
 * Input: one byte of options (RH_* but RH_AUTO), then records: a control
 * byte c, then (c >> 2) + 1 bytes for c & 3 = 0 the client, 1 the
 * backend; c & 3 = 2 completes the TLS handshake (when one is due) and
 * takes no bytes; 3 checks a client EOF now (or, with bit 2 set, loses
 * the backend when a handshake is due) and takes no bytes.  The
 * process aborts when the client got a 2xx the backend never gave, when
 * a client byte after STARTTLS reached the backend before the handshake,
 * or when message content at the backend could end other than at the
 * client's CRLF.CRLF.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../unit/relay_harness.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rh h;
	size_t i = 1, n;
	const char *why;
	uint8_t c;

	if (size < 1)
		return 0;
	rh_init(&h, data[0] & (RH_XCLIENT | RH_CERT | RH_BARE_PASS |
	    RH_REQUIRE_TLS | RH_HIDE_AUTH | RH_RECEIVED));
	while (i < size && !h.closed) {
		c = data[i++];
		switch (c & 3) {
		case 0:
		case 1:
			n = (size_t)(c >> 2) + 1;
			if (n > size - i)
				n = size - i;
			if ((c & 3) == 0)
				rh_client(&h, (const char *)data + i, n);
			else
				rh_backend(&h, (const char *)data + i, n);
			i += n;
			break;
		case 2:
			(void)rh_tls(&h);
			break;
		case 3:
			if ((c & 4) && h.state == RH_TLS_WAIT && !h.failed) {
				rh_lost(&h);
				break;
			}
			why = NULL;
			(void)relay_may_end(&h.r, &why);
			(void)relay_deadline(&h.r);
			break;
		}
	}
	if (h.violations > 0) {
		fprintf(stderr, "violation: %s\n", h.what);
		abort();
	}
	rh_free(&h);
	return 0;
}
