/*
 * policy - the verdict for one client command: relay it, answer it
 * ourselves, or start TLS.
 *
 * The rules and their order are in policy.h; policy_decide() applies them
 * top to bottom and the first match wins.  The refusal texts belong to the
 * reason, not to the code: before_tls_code and reject_code may be swapped
 * by the operator and the words still say what happened.  Pure core: the
 * caller supplies every fact; nothing here remembers anything.
 */
#include <stddef.h>

#include "ascii.h"
#include "policy.h"

#define TXT_BEFORE_TLS	"Must issue a STARTTLS command first"
#define TXT_LACK_SEC	"Command refused due to lack of security"

static const char *const reason_names[PR__COUNT] = {
	[PR_NONE] = "none",
	[PR_INSUFFICIENT_VERSION] = "insufficient_version",
	[PR_INSUFFICIENT_CIPHER] = "insufficient_cipher",
	[PR_INSUFFICIENT_CLIENT_CERT] = "insufficient_client_cert",
	[PR_TLS_REQUIRED] = "tls_required",
	[PR_TLS_REQUIRED_DOMAIN] = "tls_required_domain",
	[PR_AUTH_BEFORE_TLS] = "auth_before_tls",
	[PR_PROTOCOL] = "protocol",
	[PR_BARE_NEWLINE] = "bare_newline",
};

const char *
policy_reason_name(enum policy_reason r)
{
	if ((unsigned)r >= PR__COUNT)
		return "unknown";
	return reason_names[r];
}

int
policy_domain_match(char *const *patterns, size_t n, const char *dom,
    size_t len)
{
	const char	*p;
	size_t		 i, plen;

	if (len > 0 && dom[len - 1] == '.')
		len--;
	if (len == 0)
		return 0;
	for (i = 0; i < n; i++) {
		p = patterns[i];
		if (p == NULL)
			continue;
		for (plen = 0; p[plen] != '\0'; plen++)
			;
		if (plen > 0 && p[plen - 1] == '.')
			plen--;
		if (plen == 0)
			continue;
		if (p[0] != '.') {
			if (plen == len && ascii_ieq(p, dom, len))
				return 1;
			continue;
		}
		/* ".d": dom must be "x.d" with x not empty. */
		if (plen < 2 || len <= plen)
			continue;
		if (ascii_ieq(p, dom + len - plen, plen) &&
		    dom[len - plen - 1] != '.')
			return 1;
	}
	return 0;
}

enum policy_reason
policy_tls_insufficient(const struct policy_cfg *cfg,
    const struct sec_facts *f)
{
	if (!f->tls)
		return PR_NONE;
	if (cfg->min_version > 0 && f->tls_version < cfg->min_version)
		return PR_INSUFFICIENT_VERSION;
	if (cfg->min_cipher_bits > 0 && f->cipher_bits < cfg->min_cipher_bits)
		return PR_INSUFFICIENT_CIPHER;
	if (cfg->require_client_cert && !f->client_cert)
		return PR_INSUFFICIENT_CLIENT_CERT;
	return PR_NONE;
}

static void
reply(struct policy_verdict *out, int code, const char *enh,
    const char *text, enum policy_reason why)
{
	out->action = POLICY_REPLY;
	out->code = code;
	out->enh = enh;
	out->text = text;
	out->reason = why;
}

void
policy_decide(const struct policy_cfg *cfg, const struct sec_facts *f,
    const struct smtp_cmd *cmd, struct policy_verdict *out)
{
	enum policy_reason	 why;
	enum smtp_verb		 v = cmd->verb;
	const char		*dom;
	size_t			 domlen;
	int			 basic;

	out->action = POLICY_RELAY;
	out->code = 0;
	out->enh = NULL;
	out->text = NULL;
	out->reason = PR_NONE;

	/* 1. RFC 3207 §4.1: refuse everything but QUIT on weak TLS. */
	why = policy_tls_insufficient(cfg, f);
	if (why != PR_NONE && v != SMTP_V_QUIT) {
		reply(out, cfg->reject_code, "5.7.0", TXT_LACK_SEC, why);
		return;
	}

	/* 2. STARTTLS is ours; it is never relayed. */
	if (v == SMTP_V_STARTTLS) {
		if (cmd->arglen > 0)
			reply(out, 501, "5.5.4",
			    "Syntax error (no parameters allowed)",
			    PR_PROTOCOL);
		else if (f->tls)
			reply(out, 503, "5.5.1", "TLS already active",
			    PR_PROTOCOL);
		else if (!f->cert_available)
			reply(out, 454, "4.7.0",
			    "TLS not available due to temporary reason",
			    PR_PROTOCOL);
		else {
			out->action = POLICY_STARTTLS;
			out->code = 220;
			out->enh = "2.0.0";
			out->text = "Ready to start TLS";
		}
		return;
	}

	basic = v == SMTP_V_EHLO || v == SMTP_V_HELO || v == SMTP_V_QUIT ||
	    v == SMTP_V_NOOP || v == SMTP_V_RSET;

	/* 3. RFC 3207 §4.2: state is reset, a new EHLO/HELO comes first. */
	if (f->tls && !f->helo_since_tls && !basic) {
		reply(out, 503, "5.5.1", "Send EHLO/HELO first after STARTTLS",
		    PR_PROTOCOL);
		return;
	}

	if (!f->tls) {
		/* 4. STARTTLS itself was handled above. */
		if (cfg->require_tls && !basic) {
			reply(out, cfg->before_tls_code, "5.7.0",
			    TXT_BEFORE_TLS, PR_TLS_REQUIRED);
			return;
		}
		/* 5. */
		if (v == SMTP_V_RCPT && cfg->n_tls_required_domains > 0 &&
		    smtp_path_domain(cmd->arg, cmd->arglen, &dom,
		    &domlen) == 0 &&
		    policy_domain_match(cfg->tls_required_domains,
		    cfg->n_tls_required_domains, dom, domlen)) {
			reply(out, cfg->before_tls_code, "5.7.0",
			    TXT_BEFORE_TLS " (TLS required for this domain)",
			    PR_TLS_REQUIRED_DOMAIN);
			return;
		}
		/* 6. */
		if (v == SMTP_V_AUTH && cfg->hide_auth_before_tls) {
			reply(out, cfg->before_tls_code, "5.7.0",
			    TXT_BEFORE_TLS, PR_AUTH_BEFORE_TLS);
			return;
		}
	}

	/* 7, 8. */
	if (v == SMTP_V_XCLIENT || v == SMTP_V_XFORWARD ||
	    (v == SMTP_V_BDAT && !f->backend_chunking)) {
		reply(out, 502, "5.5.1", "Command not implemented",
		    PR_PROTOCOL);
		return;
	}
}
