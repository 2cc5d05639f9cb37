/*
 * test_policy - table tests for policy_decide() and its helpers.
 *
 * A row is a listener policy, the session facts, the command line as the
 * client sent it, and the verdict.  Rules are tested one by one and where
 * they meet (the first matching rule must win).
 */
#include <string.h>

#include "policy.h"
#include "unit.h"

static char *domains[] = {
	"secure.example", ".corp.example", "Mixed.Example."
};

enum { C_DEF, C_REQ, C_DOM, C_STRICT, C_SWAP, C_NOHIDE, C_BITS, C_CERT };

static const struct policy_cfg cfgs[] = {
	[C_DEF] = { .before_tls_code = 530, .reject_code = 554,
	    .hide_auth_before_tls = true },
	[C_REQ] = { .require_tls = true, .before_tls_code = 530,
	    .reject_code = 554, .hide_auth_before_tls = true },
	[C_DOM] = { .before_tls_code = 530, .reject_code = 554,
	    .tls_required_domains = domains, .n_tls_required_domains = 3,
	    .hide_auth_before_tls = true },
	[C_STRICT] = { .before_tls_code = 530, .reject_code = 554,
	    .min_version = 0x0303, .min_cipher_bits = 128,
	    .require_client_cert = true, .hide_auth_before_tls = true },
	[C_SWAP] = { .require_tls = true, .before_tls_code = 554,
	    .reject_code = 530, .min_version = 0x0304,
	    .tls_required_domains = domains, .n_tls_required_domains = 3,
	    .hide_auth_before_tls = true },
	[C_NOHIDE] = { .before_tls_code = 530, .reject_code = 554,
	    .tls_required_domains = domains, .n_tls_required_domains = 3 },
	[C_BITS] = { .before_tls_code = 530, .reject_code = 554,
	    .min_cipher_bits = 128, .hide_auth_before_tls = true },
	[C_CERT] = { .before_tls_code = 530, .reject_code = 554,
	    .require_client_cert = true, .hide_auth_before_tls = true },
};

enum { F_PLAIN, F_NOCERT, F_NOCHUNK, F_FRESH, F_TLS13, F_WEAK12, F_TLS11,
    F_CERT, F_FRESH_WEAK };

static const struct sec_facts facts[] = {
	[F_PLAIN] = { .cert_available = true, .backend_chunking = true },
	[F_NOCERT] = { .backend_chunking = true },
	[F_NOCHUNK] = { .cert_available = true },
	[F_FRESH] = { .tls = true, .tls_version = 0x0304, .cipher_bits = 256,
	    .cert_available = true, .backend_chunking = true },
	[F_TLS13] = { .tls = true, .tls_version = 0x0304, .cipher_bits = 256,
	    .helo_since_tls = true, .cert_available = true,
	    .backend_chunking = true },
	[F_WEAK12] = { .tls = true, .tls_version = 0x0303, .cipher_bits = 112,
	    .helo_since_tls = true, .cert_available = true,
	    .backend_chunking = true },
	[F_TLS11] = { .tls = true, .tls_version = 0x0302, .cipher_bits = 256,
	    .client_cert = true, .helo_since_tls = true,
	    .cert_available = true, .backend_chunking = true },
	[F_CERT] = { .tls = true, .tls_version = 0x0304, .cipher_bits = 256,
	    .client_cert = true, .helo_since_tls = true,
	    .cert_available = true },
	[F_FRESH_WEAK] = { .tls = true, .tls_version = 0x0301,
	    .cipher_bits = 256, .cert_available = true,
	    .backend_chunking = true },
};

#define T_STLS	"Must issue a STARTTLS command first"
#define T_LACK	"Command refused due to lack of security"
#define T_DOM	T_STLS " (TLS required for this domain)"
#define T_HELO	"Send EHLO/HELO first after STARTTLS"
#define T_NI	"Command not implemented"

#define RELAY		POLICY_RELAY, 0, NULL, NULL, PR_NONE
#define STARTTLS_OK	POLICY_STARTTLS, 220, "2.0.0", "Ready to start TLS", PR_NONE
#define REPLY		POLICY_REPLY

struct policy_row {
	int			 cfg;
	int			 facts;
	const char		*line;
	enum policy_action	 action;
	int			 code;
	const char		*enh;
	const char		*text;
	enum policy_reason	 reason;
};

static const struct policy_row rows[] = {
	/* Defaults: everything relays, STARTTLS is ours. */
	{ C_DEF, F_PLAIN, "EHLO client.example", RELAY },
	{ C_DEF, F_PLAIN, "MAIL FROM:<a@b>", RELAY },
	{ C_DEF, F_PLAIN, "RCPT TO:<u@secure.example>", RELAY },
	{ C_DEF, F_PLAIN, "DATA", RELAY },
	{ C_DEF, F_PLAIN, "VRFY x", RELAY },
	{ C_DEF, F_PLAIN, "FOO bar", RELAY },
	{ C_DEF, F_PLAIN, "STARTTLS", STARTTLS_OK },
	{ C_DEF, F_PLAIN, "starttls ", STARTTLS_OK },

	/* 2. STARTTLS errors, in their order. */
	{ C_DEF, F_PLAIN, "STARTTLS now", REPLY, 501, "5.5.4",
	    "Syntax error (no parameters allowed)", PR_PROTOCOL },
	{ C_DEF, F_TLS13, "STARTTLS", REPLY, 503, "5.5.1",
	    "TLS already active", PR_PROTOCOL },
	{ C_DEF, F_TLS13, "STARTTLS x", REPLY, 501, "5.5.4",
	    "Syntax error (no parameters allowed)", PR_PROTOCOL },
	{ C_DEF, F_FRESH, "STARTTLS", REPLY, 503, "5.5.1",
	    "TLS already active", PR_PROTOCOL },
	{ C_DEF, F_NOCERT, "STARTTLS", REPLY, 454, "4.7.0",
	    "TLS not available due to temporary reason", PR_PROTOCOL },
	{ C_REQ, F_NOCERT, "STARTTLS", REPLY, 454, "4.7.0",
	    "TLS not available due to temporary reason", PR_PROTOCOL },
	{ C_REQ, F_PLAIN, "STARTTLS", STARTTLS_OK },

	/* 3. After the handshake, EHLO/HELO first. */
	{ C_DEF, F_FRESH, "MAIL FROM:<a@b>", REPLY, 503, "5.5.1", T_HELO,
	    PR_PROTOCOL },
	{ C_DEF, F_FRESH, "RCPT TO:<a@b>", REPLY, 503, "5.5.1", T_HELO,
	    PR_PROTOCOL },
	{ C_DEF, F_FRESH, "AUTH PLAIN x", REPLY, 503, "5.5.1", T_HELO,
	    PR_PROTOCOL },
	{ C_DEF, F_FRESH, "XCLIENT ADDR=1.2.3.4", REPLY, 503, "5.5.1", T_HELO,
	    PR_PROTOCOL },
	{ C_DEF, F_FRESH, "EHLO x", RELAY },
	{ C_DEF, F_FRESH, "HELO x", RELAY },
	{ C_DEF, F_FRESH, "NOOP", RELAY },
	{ C_DEF, F_FRESH, "RSET", RELAY },
	{ C_DEF, F_FRESH, "QUIT", RELAY },
	{ C_DEF, F_TLS13, "MAIL FROM:<a@b>", RELAY },

	/* 4. require_tls. */
	{ C_REQ, F_PLAIN, "MAIL FROM:<a@b>", REPLY, 530, "5.7.0", T_STLS,
	    PR_TLS_REQUIRED },
	{ C_REQ, F_PLAIN, "RCPT TO:<a@b>", REPLY, 530, "5.7.0", T_STLS,
	    PR_TLS_REQUIRED },
	{ C_REQ, F_PLAIN, "DATA", REPLY, 530, "5.7.0", T_STLS,
	    PR_TLS_REQUIRED },
	{ C_REQ, F_PLAIN, "VRFY x", REPLY, 530, "5.7.0", T_STLS,
	    PR_TLS_REQUIRED },
	{ C_REQ, F_PLAIN, "HELP", REPLY, 530, "5.7.0", T_STLS,
	    PR_TLS_REQUIRED },
	{ C_REQ, F_PLAIN, "", REPLY, 530, "5.7.0", T_STLS, PR_TLS_REQUIRED },
	{ C_REQ, F_PLAIN, "AUTH PLAIN x", REPLY, 530, "5.7.0", T_STLS,
	    PR_TLS_REQUIRED },
	{ C_REQ, F_PLAIN, "XCLIENT ADDR=1.2.3.4", REPLY, 530, "5.7.0", T_STLS,
	    PR_TLS_REQUIRED },
	{ C_REQ, F_PLAIN, "EHLO x", RELAY },
	{ C_REQ, F_PLAIN, "helo x", RELAY },
	{ C_REQ, F_PLAIN, "NOOP", RELAY },
	{ C_REQ, F_PLAIN, "RSET", RELAY },
	{ C_REQ, F_PLAIN, "QUIT", RELAY },
	{ C_REQ, F_TLS13, "MAIL FROM:<a@b>", RELAY },
	{ C_SWAP, F_PLAIN, "MAIL FROM:<a@b>", REPLY, 554, "5.7.0", T_STLS,
	    PR_TLS_REQUIRED },

	/* 5. tls_required_domains, only before TLS. */
	{ C_DOM, F_PLAIN, "RCPT TO:<u@secure.example>", REPLY, 530, "5.7.0",
	    T_DOM, PR_TLS_REQUIRED_DOMAIN },
	{ C_DOM, F_PLAIN, "RCPT TO:<u@SECURE.Example.>", REPLY, 530, "5.7.0",
	    T_DOM, PR_TLS_REQUIRED_DOMAIN },
	{ C_DOM, F_PLAIN, "rcpt to: <u@secure.example> NOTIFY=NEVER", REPLY,
	    530, "5.7.0", T_DOM, PR_TLS_REQUIRED_DOMAIN },
	{ C_DOM, F_PLAIN, "RCPT TO:<\"x@other.example\"@secure.example>",
	    REPLY, 530, "5.7.0", T_DOM, PR_TLS_REQUIRED_DOMAIN },
	{ C_DOM, F_PLAIN, "RCPT TO:<@relay.example:u@secure.example>",
	    REPLY, 530, "5.7.0", T_DOM, PR_TLS_REQUIRED_DOMAIN },
	{ C_DOM, F_PLAIN, "RCPT TO:u@secure.example", REPLY, 530, "5.7.0",
	    T_DOM, PR_TLS_REQUIRED_DOMAIN },
	{ C_DOM, F_PLAIN, "RCPT TO:<u@mx.corp.example>", REPLY, 530, "5.7.0",
	    T_DOM, PR_TLS_REQUIRED_DOMAIN },
	{ C_DOM, F_PLAIN, "RCPT TO:<u@a.b.corp.example>", REPLY, 530, "5.7.0",
	    T_DOM, PR_TLS_REQUIRED_DOMAIN },
	{ C_DOM, F_PLAIN, "RCPT TO:<u@mixed.example>", REPLY, 530, "5.7.0",
	    T_DOM, PR_TLS_REQUIRED_DOMAIN },
	{ C_DOM, F_PLAIN, "RCPT TO:<u@corp.example>", RELAY },
	{ C_DOM, F_PLAIN, "RCPT TO:<u@notsecure.example>", RELAY },
	{ C_DOM, F_PLAIN, "RCPT TO:<u@secure.example.org>", RELAY },
	{ C_DOM, F_PLAIN, "RCPT TO:<\"u@secure.example\"@other.example>",
	    RELAY },
	{ C_DOM, F_PLAIN, "RCPT TO:<postmaster>", RELAY },
	{ C_DOM, F_PLAIN, "MAIL FROM:<u@secure.example>", RELAY },
	{ C_DOM, F_TLS13, "RCPT TO:<u@secure.example>", RELAY },
	{ C_SWAP, F_TLS13, "RCPT TO:<u@secure.example>", RELAY },
	{ C_NOHIDE, F_PLAIN, "RCPT TO:<u@x.corp.example>", REPLY, 530,
	    "5.7.0", T_DOM, PR_TLS_REQUIRED_DOMAIN },

	/* 6. AUTH before TLS. */
	{ C_DEF, F_PLAIN, "AUTH PLAIN AHUAcA==", REPLY, 530, "5.7.0", T_STLS,
	    PR_AUTH_BEFORE_TLS },
	{ C_DEF, F_PLAIN, "auth login", REPLY, 530, "5.7.0", T_STLS,
	    PR_AUTH_BEFORE_TLS },
	{ C_NOHIDE, F_PLAIN, "AUTH PLAIN AHUAcA==", RELAY },
	{ C_DEF, F_TLS13, "AUTH PLAIN AHUAcA==", RELAY },

	/* 7. XCLIENT / XFORWARD never from a client. */
	{ C_DEF, F_PLAIN, "XCLIENT ADDR=127.0.0.1", REPLY, 502, "5.5.1",
	    T_NI, PR_PROTOCOL },
	{ C_DEF, F_TLS13, "XFORWARD NAME=x", REPLY, 502, "5.5.1", T_NI,
	    PR_PROTOCOL },
	{ C_DEF, F_TLS13, "xclient ADDR=127.0.0.1", REPLY, 502, "5.5.1",
	    T_NI, PR_PROTOCOL },

	/* 8. BDAT needs CHUNKING at the backend. */
	{ C_DEF, F_NOCHUNK, "BDAT 10 LAST", REPLY, 502, "5.5.1", T_NI,
	    PR_PROTOCOL },
	{ C_DEF, F_CERT, "BDAT 10", REPLY, 502, "5.5.1", T_NI, PR_PROTOCOL },
	{ C_DEF, F_PLAIN, "BDAT 10 LAST", RELAY },

	/* 1. Insufficient TLS beats everything but QUIT. */
	{ C_STRICT, F_WEAK12, "MAIL FROM:<a@b>", REPLY, 554, "5.7.0", T_LACK,
	    PR_INSUFFICIENT_CIPHER },
	{ C_STRICT, F_WEAK12, "EHLO x", REPLY, 554, "5.7.0", T_LACK,
	    PR_INSUFFICIENT_CIPHER },
	{ C_STRICT, F_WEAK12, "STARTTLS", REPLY, 554, "5.7.0", T_LACK,
	    PR_INSUFFICIENT_CIPHER },
	{ C_STRICT, F_WEAK12, "NOOP", REPLY, 554, "5.7.0", T_LACK,
	    PR_INSUFFICIENT_CIPHER },
	{ C_STRICT, F_WEAK12, "RSET", REPLY, 554, "5.7.0", T_LACK,
	    PR_INSUFFICIENT_CIPHER },
	{ C_STRICT, F_WEAK12, "QUIT", RELAY },
	{ C_STRICT, F_TLS11, "EHLO x", REPLY, 554, "5.7.0", T_LACK,
	    PR_INSUFFICIENT_VERSION },
	{ C_STRICT, F_TLS13, "EHLO x", REPLY, 554, "5.7.0", T_LACK,
	    PR_INSUFFICIENT_CLIENT_CERT },
	{ C_STRICT, F_CERT, "EHLO x", RELAY },
	{ C_STRICT, F_CERT, "BDAT 1 LAST", REPLY, 502, "5.5.1", T_NI,
	    PR_PROTOCOL },
	{ C_STRICT, F_PLAIN, "MAIL FROM:<a@b>", RELAY },
	{ C_STRICT, F_PLAIN, "STARTTLS", STARTTLS_OK },
	/* ... before rule 3 (no EHLO since TLS yet). */
	{ C_STRICT, F_FRESH_WEAK, "MAIL FROM:<a@b>", REPLY, 554, "5.7.0",
	    T_LACK, PR_INSUFFICIENT_VERSION },
	{ C_STRICT, F_FRESH_WEAK, "EHLO x", REPLY, 554, "5.7.0", T_LACK,
	    PR_INSUFFICIENT_VERSION },
	{ C_STRICT, F_FRESH_WEAK, "QUIT", RELAY },
	{ C_BITS, F_WEAK12, "DATA", REPLY, 554, "5.7.0", T_LACK,
	    PR_INSUFFICIENT_CIPHER },
	{ C_BITS, F_TLS13, "DATA", RELAY },
	{ C_CERT, F_TLS13, "DATA", REPLY, 554, "5.7.0", T_LACK,
	    PR_INSUFFICIENT_CLIENT_CERT },
	{ C_CERT, F_CERT, "DATA", RELAY },
	/* Swapped codes keep their texts. */
	{ C_SWAP, F_WEAK12, "EHLO x", REPLY, 530, "5.7.0", T_LACK,
	    PR_INSUFFICIENT_VERSION },
	{ C_SWAP, F_TLS13, "EHLO x", RELAY },
	{ C_SWAP, F_PLAIN, "RCPT TO:<u@secure.example>", REPLY, 554, "5.7.0",
	    T_STLS, PR_TLS_REQUIRED },
	{ C_SWAP, F_PLAIN, "QUIT", RELAY },
};

static void
test_rows(void)
{
	const struct policy_row	*row;
	struct policy_verdict	 v;
	struct smtp_cmd		 cmd;
	size_t			 i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		row = &rows[i];
		smtp_cmd_parse(row->line, strlen(row->line), &cmd);
		memset(&v, 0xa5, sizeof(v));
		policy_decide(&cfgs[row->cfg], &facts[row->facts], &cmd, &v);
		ASSERT_EQ(v.action, row->action);
		ASSERT_EQ(v.reason, row->reason);
		if (row->action != POLICY_RELAY) {
			ASSERT_EQ(v.code, row->code);
			ASSERT_STR_EQ(v.enh, row->enh);
			ASSERT_STR_EQ(v.text, row->text);
			ASSERT_TRUE(strpbrk(v.text, "\r\n") == NULL);
		}
		UNIT_ROW("policy row %zu: cfg %d facts %d \"%s\"", i, row->cfg,
		    row->facts, row->line);
	}
}

static void
test_insufficient(void)
{
	struct sec_facts	f = facts[F_TLS13];
	struct policy_cfg	c = cfgs[C_STRICT];

	/* The order: version, then bits, then client certificate. */
	f.tls_version = 0x0301;
	f.cipher_bits = 40;
	f.client_cert = false;
	ASSERT_EQ(policy_tls_insufficient(&c, &f), PR_INSUFFICIENT_VERSION);
	f.tls_version = 0x0303;
	ASSERT_EQ(policy_tls_insufficient(&c, &f), PR_INSUFFICIENT_CIPHER);
	f.cipher_bits = 128;
	ASSERT_EQ(policy_tls_insufficient(&c, &f), PR_INSUFFICIENT_CLIENT_CERT);
	f.client_cert = true;
	ASSERT_EQ(policy_tls_insufficient(&c, &f), PR_NONE);
	f.cipher_bits = 127;
	ASSERT_EQ(policy_tls_insufficient(&c, &f), PR_INSUFFICIENT_CIPHER);
	f.tls = false;
	ASSERT_EQ(policy_tls_insufficient(&c, &f), PR_NONE);
	f = facts[F_WEAK12];
	ASSERT_EQ(policy_tls_insufficient(&cfgs[C_DEF], &f), PR_NONE);
}

struct dom_row {
	const char	*dom;
	int		 want;
};

static const struct dom_row dom_rows[] = {
	{ "secure.example", 1 },
	{ "SECURE.EXAMPLE", 1 },
	{ "secure.example.", 1 },
	{ "x.secure.example", 0 },
	{ "ecure.example", 0 },
	{ "secure.exampl", 0 },
	{ "secure.example..", 0 },
	{ "corp.example", 0 },
	{ "corp.example.", 0 },
	{ "a.corp.example", 1 },
	{ "a.b.c.corp.example", 1 },
	{ "A.CORP.EXAMPLE.", 1 },
	{ "acorp.example", 0 },
	{ ".corp.example", 0 },
	{ "a..corp.example", 0 },
	{ "mixed.example", 1 },
	{ "", 0 },
	{ ".", 0 },
};

static void
test_domain_match(void)
{
	static char	*odd[] = { "", ".", NULL, "..", "x." };
	size_t		 i;

	for (i = 0; i < sizeof(dom_rows) / sizeof(dom_rows[0]); i++) {
		ASSERT_EQ(policy_domain_match(domains, 3, dom_rows[i].dom,
		    strlen(dom_rows[i].dom)), dom_rows[i].want);
		UNIT_ROW("domain row %zu \"%s\"", i, dom_rows[i].dom);
	}
	ASSERT_EQ(policy_domain_match(domains, 0, "secure.example", 14), 0);
	/* len bounds the domain. */
	ASSERT_EQ(policy_domain_match(domains, 3, "secure.examplexyz", 14), 1);
	/* Degenerate patterns match nothing but their own words. */
	ASSERT_EQ(policy_domain_match(odd, 5, "a", 1), 0);
	ASSERT_EQ(policy_domain_match(odd, 5, "a.b", 3), 0);
	ASSERT_EQ(policy_domain_match(odd, 5, "x", 1), 1);
}

static void
test_names(void)
{
	int	r;

	for (r = 0; r < PR__COUNT; r++) {
		ASSERT_TRUE(policy_reason_name((enum policy_reason)r) != NULL);
		ASSERT_TRUE(strcmp(policy_reason_name((enum policy_reason)r),
		    "unknown") != 0);
	}
	ASSERT_STR_EQ(policy_reason_name(PR_NONE), "none");
	ASSERT_STR_EQ(policy_reason_name(PR_TLS_REQUIRED_DOMAIN),
	    "tls_required_domain");
	ASSERT_STR_EQ(policy_reason_name(PR__COUNT), "unknown");
}

int
main(void)
{
	test_rows();
	test_insufficient();
	test_domain_match();
	test_names();
	return unit_done();
}
