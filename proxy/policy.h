/*
 * policy - what to do with one client command, decided from the command,
 * the session's security facts and the listener's policy.  Pure core: no
 * I/O, no OpenSSL (TLS versions are the wire numbers, 0x0301..0x0304).
 *
 * The order of the rules (first match wins):
 *  1. TLS active but insufficient (min_version, min_cipher_bits,
 *     require_client_cert): every command but QUIT -> reject_code 5.7.0
 *     "Command refused due to lack of security" (RFC 3207 §4.1).
 *  2. STARTTLS: with an argument 501 5.5.4; TLS already active 503 5.5.1;
 *     no certificate 454 4.7.0; else POLICY_STARTTLS (the proxy answers 220).
 *  3. TLS active and no EHLO/HELO since the handshake: only EHLO HELO QUIT
 *     NOOP RSET -> else 503 5.5.1 (RFC 3207 §4.2).
 *  4. require_tls and no TLS: only EHLO HELO STARTTLS NOOP RSET QUIT ->
 *     else before_tls_code 5.7.0 "Must issue a STARTTLS command first".
 *  5. No TLS, RCPT to a tls_required_domains domain -> before_tls_code 5.7.0.
 *  6. No TLS, AUTH while hide_auth_before_tls -> before_tls_code 5.7.0.
 *  7. XCLIENT / XFORWARD from a client: 502 5.5.1 (the proxy speaks them to
 *     the backend; a client must not).
 *  8. BDAT when the backend did not advertise CHUNKING: 502 5.5.1.
 *  9. Otherwise POLICY_RELAY.
 */
#ifndef STP_POLICY_H
#define STP_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "smtp_parse.h"

enum bare_newline { BARE_NEWLINE_REJECT = 0, BARE_NEWLINE_PASS };

struct policy_cfg {
	bool	 require_tls;
	int	 before_tls_code;	/* 530 or 554 */
	int	 reject_code;		/* 554 or 530 */
	int	 min_version;		/* 0 = none, else 0x0301..0x0304 */
	int	 min_cipher_bits;	/* 0 = none */
	bool	 require_client_cert;
	char	**tls_required_domains;	/* "d" exact, ".d" any subdomain */
	size_t	 n_tls_required_domains;
	bool	 hide_auth_before_tls;
	enum bare_newline bare_newline;
};

/* What the session knows about its security and state. */
struct sec_facts {
	bool	 tls;			/* handshake completed */
	int	 tls_version;		/* wire number, 0 without TLS */
	int	 cipher_bits;		/* symmetric strength */
	bool	 client_cert;		/* a client certificate was verified */
	bool	 helo_since_tls;	/* EHLO/HELO seen after the handshake */
	bool	 cert_available;	/* STARTTLS can be offered */
	bool	 backend_chunking;	/* backend advertised CHUNKING */
};

enum policy_action {
	POLICY_RELAY = 0,	/* forward the command to the backend */
	POLICY_REPLY,		/* answer with code/enh/text, forward nothing */
	POLICY_STARTTLS		/* answer 220 2.0.0 and start the handshake;
				   code/enh/text hold that 220 */
};

enum policy_reason {
	PR_NONE = 0,
	PR_INSUFFICIENT_VERSION,
	PR_INSUFFICIENT_CIPHER,
	PR_INSUFFICIENT_CLIENT_CERT,
	PR_TLS_REQUIRED,		/* require_tls */
	PR_TLS_REQUIRED_DOMAIN,		/* tls_required_domains */
	PR_AUTH_BEFORE_TLS,
	PR_PROTOCOL,			/* 501/503/454/502: not a security refusal */
	PR_BARE_NEWLINE,		/* message refused: bare CR/LF (session) */
	PR__COUNT
};

struct policy_verdict {
	enum policy_action	 action;
	int			 code;		/* with POLICY_REPLY */
	const char		*enh;		/* "5.7.0" */
	const char		*text;		/* static, no CRLF */
	enum policy_reason	 reason;
};

/* Is the session, once TLS is up, insufficient? Returns the reason or
 * PR_NONE.  Without TLS returns PR_NONE. */
enum policy_reason policy_tls_insufficient(const struct policy_cfg *cfg,
	    const struct sec_facts *f);

/* Decide for one parsed command.  Never fails. */
void	policy_decide(const struct policy_cfg *cfg, const struct sec_facts *f,
	    const struct smtp_cmd *cmd, struct policy_verdict *out);

/* 1 if domain (dom[0..len), any case, trailing dot ignored) is matched by
 * one of the patterns: "d" exactly d, ".d" any subdomain of d at any depth
 * but not d itself. */
int	policy_domain_match(char *const *patterns, size_t n, const char *dom,
	    size_t len);

const char *policy_reason_name(enum policy_reason r);

#endif
