/*
 * received - build the Received: header prepended to each relayed message.
 *
 *   Received: from HELO (client [ADDR])
 *   	by HOST (starttls-proxy, listener NAME)
 *   	with ESMTPS id ID
 *   	(version=TLSv1.3 cipher=... bits=256 sni=... client-subject=...)
 *   	; Tue, 5 Mar 2024 10:00:00 +0000
 *
 * Invariants: every value goes through clean(): no byte outside printable
 * ASCII, no '(' ')' '\\' '"' (so no CR/LF/NUL and no way out of a
 * comment); values that stand as words (HELO, host, SNI, id...) also lose
 * spaces and ';' so they cannot forge another clause.  Untrusted values
 * are cut to 255 bytes, ours to 64 (host 255), so the worst case fits
 * RECEIVED_MAX.  The TLS comment folds between items past 78 columns; no
 * line can reach 998 bytes.  Day and month names are ours, not the
 * locale's.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "received.h"
#include "wbuf.h"

#define UNTRUSTED_MAX	255
#define OURS_MAX	64
#define FOLD_AT		78

enum { V_WORD, V_COMMENT };

struct rh {
	struct wbuf	 w;
	size_t		 col;		/* bytes on the current line */
};

static void
rh_put(struct rh *h, const char *s, size_t n)
{
	if (wbuf_put(&h->w, s, n))
		h->col += n;
}

static void
rh_str(struct rh *h, const char *s)
{
	rh_put(h, s, strlen(s));
}

static void
rh_fold(struct rh *h)
{
	rh_put(h, "\r\n\t", 3);
	h->col = 1;
}

/* Append a value, cleaned and cut to max bytes. */
static void
rh_val(struct rh *h, const char *v, size_t max, int kind)
{
	size_t	i;
	char	c;

	if (v == NULL || *v == '\0')
		v = "unknown";
	for (i = 0; v[i] != '\0' && i < max; i++) {
		c = v[i];
		if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e ||
		    c == '(' || c == ')' || c == '\\' || c == '"' ||
		    (kind == V_WORD && (c == ' ' || c == ';')))
			c = '?';
		rh_put(h, &c, 1);
	}
}

/* One "key=value" item of the TLS comment, folded when the line is long. */
static void
rh_item(struct rh *h, const char *key, const char *v, size_t max, int kind,
    int first)
{
	size_t	n = strlen(key) + 1;

	n += v == NULL ? 7 : strnlen(v, max);
	if (!first) {
		if (h->col + 1 + n > FOLD_AT)
			rh_fold(h);
		else
			rh_put(h, " ", 1);
	}
	rh_str(h, key);
	rh_put(h, "=", 1);
	rh_val(h, v, max, kind);
}

static const char *const wday[] = {
	"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
};
static const char *const month[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

size_t
received_header(const struct received_info *ri, char *out, size_t outsize)
{
	struct rh	 h = { .col = 0 };
	struct tm	 tm;
	char		 num[80];
	const char	*proto;
	int		 tls = ri->tls_version != NULL;

	if (gmtime_r(&ri->now, &tm) == NULL || tm.tm_wday < 0 ||
	    tm.tm_wday > 6 || tm.tm_mon < 0 || tm.tm_mon > 11)
		return 0;
	wbuf_init(&h.w, out, outsize);

	rh_str(&h, "Received: from ");
	rh_val(&h, ri->helo, UNTRUSTED_MAX, V_WORD);
	rh_str(&h, " (client [");
	rh_val(&h, ri->client_addr, OURS_MAX, V_WORD);
	rh_str(&h, "])");
	rh_fold(&h);

	rh_str(&h, "by ");
	rh_val(&h, ri->by_host, UNTRUSTED_MAX, V_WORD);
	rh_str(&h, " (starttls-proxy");
	if (ri->listener != NULL) {
		rh_str(&h, ", listener ");
		rh_val(&h, ri->listener, OURS_MAX, V_COMMENT);
	}
	rh_str(&h, ")");
	rh_fold(&h);

	if (ri->esmtp)
		proto = tls ? "ESMTPS" : "ESMTP";
	else
		proto = tls ? "SMTPS" : "SMTP";
	rh_str(&h, "with ");
	rh_str(&h, proto);
	if (ri->session_id != NULL) {
		rh_str(&h, " id ");
		rh_val(&h, ri->session_id, OURS_MAX, V_WORD);
	}

	if (tls) {
		rh_fold(&h);
		rh_str(&h, "(");
		rh_item(&h, "version", ri->tls_version, OURS_MAX, V_WORD, 1);
		if (ri->cipher != NULL)
			rh_item(&h, "cipher", ri->cipher, OURS_MAX, V_WORD, 0);
		snprintf(num, sizeof(num), "%d", ri->cipher_bits);
		rh_item(&h, "bits", num, OURS_MAX, V_WORD, 0);
		if (ri->sni != NULL)
			rh_item(&h, "sni", ri->sni, UNTRUSTED_MAX, V_WORD, 0);
		if (ri->client_subject != NULL)
			rh_item(&h, "client-subject", ri->client_subject,
			    UNTRUSTED_MAX, V_COMMENT, 0);
		rh_str(&h, ")");
	}
	rh_fold(&h);

	snprintf(num, sizeof(num), "; %s, %d %s %lld %02d:%02d:%02d +0000\r\n",
	    wday[tm.tm_wday], tm.tm_mday, month[tm.tm_mon],
	    (long long)tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	rh_str(&h, num);

	if (!wbuf_nul(&h.w))
		return 0;
	return h.w.len;
}
