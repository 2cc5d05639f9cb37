/*
 * tls_report - "starttls-proxy -t": what each configured certificate is
 * and whether it will work (tls_check_report() of tls.h).
 *
 * Read-only and independent of the running TLS set: every certificate and
 * key is read again from its file, checked against the configured names,
 * the system trust store and the clock, and printed for a person.  Lines
 * starting "error: " count as errors (the exit status), "warning: " lines
 * do not.  The certificate reading itself is shared with tls.c
 * (tls_int.h), so both judge a file the same way.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "certname.h"
#include "config.h"
#include "tls.h"
#include "tls_int.h"

#define TLS_EXPIRY_WARN_DAYS	14

static void
tls_print_name(FILE *out, const char *label, const X509_NAME *name)
{
	BIO	*bio;
	char	 buf[512];
	int	 n = 0;

	buf[0] = '\0';
	if ((bio = BIO_new(BIO_s_mem())) != NULL) {
		if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0 &&
		    (n = BIO_read(bio, buf, sizeof(buf) - 1)) > 0)
			buf[n] = '\0';
		BIO_free(bio);
	}
	fprintf(out, "    %s: %s\n", label, buf[0] != '\0' ? buf : "(empty)");
}

/* Verify leaf + chain against the system trust store. */
static void
tls_print_chain(FILE *out, X509 *leaf, STACK_OF(X509) *chain)
{
	X509_STORE	*store;
	X509_STORE_CTX	*xs = NULL;
	int		 e;

	ERR_clear_error();
	if ((store = X509_STORE_new()) == NULL ||
	    !X509_STORE_set_default_paths(store) ||
	    (xs = X509_STORE_CTX_new()) == NULL ||
	    !X509_STORE_CTX_init(xs, store, leaf, chain)) {
		fprintf(out, "    chain: not checked (out of memory)\n");
		goto done;
	}
	X509_STORE_CTX_set_purpose(xs, X509_PURPOSE_SSL_SERVER);
	if (X509_verify_cert(xs) == 1) {
		fprintf(out, "    chain: ok\n");
		goto done;
	}
	e = X509_STORE_CTX_get_error(xs);
	if (e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
	    e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN)
		fprintf(out, "    chain: self-signed\n");
	else
		fprintf(out, "    chain: %s\n", X509_verify_cert_error_string(e));
 done:
	X509_STORE_CTX_free(xs);
	X509_STORE_free(store);
	ERR_clear_error();
}

/*
 * DANE-EE records for the names served (RFC 7671/7672: usage 3, selector 1
 * = SubjectPublicKeyInfo, matching 1 = SHA-256), ready to publish.  They
 * pin the key, so they survive a renewal that keeps the key.  Names are
 * normalised (lower case, no trailing dot: the owner name gets its own
 * dot); an invalid one is reported by the caller.  A wildcard has no
 * single owner name: each MX host name it covers needs its own record.
 */
static void
tls_print_tlsa(FILE *out, X509 *x, char **names, size_t n, int port)
{
	unsigned char	*der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, k;
	char		 hex[2 * EVP_MAX_MD_SIZE + 1], norm[TLS_NAMELEN];
	size_t		 i;
	int		 len;

	if ((len = i2d_PUBKEY(X509_get0_pubkey(x), &der)) <= 0)
		return;
	if (EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) == 1) {
		for (k = 0; k < mdlen; k++)
			snprintf(hex + 2 * k, 3, "%02x", md[k]);
		for (i = 0; i < n; i++) {
			if (certname_normalize(names[i], norm,
			    sizeof(norm)) == -1)
				continue;
			if (norm[0] == '*')
				fprintf(out, "    tlsa: skipping wildcard name "
				    "%s (publish a record under each MX host "
				    "name it covers)\n", norm);
			else
				fprintf(out, "    tlsa: _%d._tcp.%s. IN TLSA "
				    "3 1 1 %s\n", port, norm, hex);
		}
	}
	OPENSSL_free(der);
}

/* One certificate; returns its number of errors. */
static int
tls_check_cert(const struct cfg_cert *cc, int port, FILE *out)
{
	X509		*x = NULL;
	STACK_OF(X509)	*chain = NULL;
	EVP_PKEY	*pk = NULL;
	char		**names = NULL, norm[TLS_NAMELEN], err[256], when[64];
	size_t		 n_names = 0, i, j;
	int		 nerr = 0, days = 0, secs = 0, found;

	fprintf(out, "  certificate %s\n", cc->cert != NULL ? cc->cert : "");
	if (cc->cert == NULL || tls_read_cert(cc->cert, &x, &chain, err,
	    sizeof(err)) == -1) {
		fprintf(out, "error: %s: %s\n", cc->cert != NULL ? cc->cert :
		    "(none)", cc->cert != NULL ? err : "no cert path");
		return 1;
	}
	fprintf(out, "    key file: %s\n", cc->key != NULL ? cc->key : "");

	if (tls_cert_names(x, &names, &n_names) == -1) {
		fprintf(out, "error: %s: out of memory\n", cc->cert);
		nerr++;
		goto done;
	}
	fprintf(out, "    names:");
	if (cc->n_names > 0)
		for (i = 0; i < cc->n_names; i++)
			fprintf(out, " %s", cc->names[i]);
	else
		for (i = 0; i < n_names; i++)
			fprintf(out, " %s", names[i]);
	if (cc->n_names == 0 && n_names == 0)
		fprintf(out, " (none)");
	fprintf(out, "%s\n", cc->n_names > 0 ? " (configured)" : "");

	tls_keydesc(X509_get0_pubkey(x), err, sizeof(err));
	fprintf(out, "    key type: %s\n", err);
	tls_timestr(X509_get0_notBefore(x), when, sizeof(when));
	fprintf(out, "    not before: %s\n", when);
	tls_timestr(X509_get0_notAfter(x), when, sizeof(when));
	fprintf(out, "    not after: %s\n", when);
	tls_print_name(out, "issuer", X509_get_issuer_name(x));
	fprintf(out, "    self-signed: %s\n", X509_self_signed(x, 0) == 1 ?
	    "yes" : "no");
	tls_print_chain(out, x, chain);
	tls_print_tlsa(out, x, cc->n_names > 0 ? cc->names : names,
	    cc->n_names > 0 ? cc->n_names : n_names, port);

	for (i = 0; i < cc->n_names; i++) {
		if (certname_normalize(cc->names[i], norm, sizeof(norm)) == -1) {
			fprintf(out, "error: %s: invalid name \"%s\"\n",
			    cc->cert, cc->names[i]);
			nerr++;
			continue;
		}
		for (found = 0, j = 0; j < n_names && !found; j++)
			found = certname_match_exact(names[j], norm) ||
			    certname_match_wildcard(names[j], norm);
		if (!found)
			fprintf(out, "warning: %s: configured name %s is not "
			    "in the certificate\n", cc->cert, norm);
	}

	if (cc->key == NULL || cc->key[0] == '\0') {
		fprintf(out, "error: %s: no key file\n", cc->cert);
		nerr++;
	} else if (tls_read_key(cc->key, &pk, err, sizeof(err)) == -1) {
		fprintf(out, "error: %s: %s\n", cc->key, err);
		nerr++;
	} else if (X509_check_private_key(x, pk) != 1) {
		fprintf(out, "error: %s: key %s does not match the "
		    "certificate\n", cc->cert, cc->key);
		nerr++;
	}

	if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
		tls_timestr(X509_get0_notBefore(x), when, sizeof(when));
		fprintf(out, "error: %s: certificate not valid before %s\n",
		    cc->cert, when);
		nerr++;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
		tls_timestr(X509_get0_notAfter(x), when, sizeof(when));
		fprintf(out, "error: %s: certificate expired on %s\n",
		    cc->cert, when);
		nerr++;
	} else if (ASN1_TIME_diff(&days, &secs, NULL,
	    X509_get0_notAfter(x)) && days < TLS_EXPIRY_WARN_DAYS)
		fprintf(out, "warning: %s: certificate expires in %d days\n",
		    cc->cert, days);

 done:
	ERR_clear_error();
	strvec_free(names, n_names);
	EVP_PKEY_free(pk);
	sk_X509_pop_free(chain, X509_free);
	X509_free(x);
	return nerr;
}

int
tls_check_report(struct config *cfg, FILE *out)
{
	const struct cfg_listener	*l;
	size_t				 li, ci;
	int				 nerr = 0, port;

	for (li = 0; li < cfg->n_listeners; li++) {
		l = &cfg->listeners[li];
		if (l->tls.n_certs == 0) {
			fprintf(out, "listener %s: no certificates (STARTTLS "
			    "not offered)\n", l->name != NULL ? l->name : "?");
			continue;
		}
		fprintf(out, "listener %s:\n", l->name != NULL ? l->name : "?");
		port = cfg_addr_port(&l->listen);
		for (ci = 0; ci < l->tls.n_certs; ci++)
			nerr += tls_check_cert(&l->tls.certs[ci],
			    port != 0 ? port : 25, out);
	}
	fflush(out);
	return nerr;
}
