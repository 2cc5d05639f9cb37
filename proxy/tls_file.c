/*
 * tls_file - certificates and keys read from PEM files, and what is said
 * about them: names served, key type and size, dates.  Shared by tls.c
 * (building the TLS set) and tls_report.c (the -t report) through
 * tls_int.h.  Files are opened with fopen() so that a missing or
 * unreadable one is reported with the system's reason; encrypted keys are
 * refused, never prompted for.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certname.h"
#include "strlist.h"
#include "tls_int.h"

/* Never prompt for a pass phrase: encrypted keys are refused. */
int
tls_nopass(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return -1;
}

/* The reason of the oldest queued OpenSSL error, or dflt. */
const char *
tls_errstr(const char *dflt)
{
	unsigned long	 e;
	const char	*r;

	if ((e = ERR_peek_error()) == 0)
		return dflt;
	if ((r = ERR_reason_error_string(e)) == NULL)
		return dflt;
	return r;
}

void
tls_timestr(const ASN1_TIME *t, char *buf, size_t size)
{
	struct tm	tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || !ASN1_TIME_to_tm(t, &tm) ||
	    strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, size, "(invalid time)");
}

enum tls_keytype
tls_keytype(const EVP_PKEY *pk)
{
	if (pk == NULL)
		return TLS_KEY_OTHER;
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		return TLS_KEY_RSA;
	case EVP_PKEY_EC:
		return TLS_KEY_EC;
	case EVP_PKEY_ED25519:
	case EVP_PKEY_ED448:
		return TLS_KEY_ED;
	default:
		return TLS_KEY_OTHER;
	}
}

/* "EC P-256", "RSA 2048", "ED25519" */
void
tls_keydesc(const EVP_PKEY *pk, char *buf, size_t size)
{
	char		 group[64];
	const char	*nist = NULL;
	int		 nid;

	if (pk == NULL) {
		snprintf(buf, size, "unknown");
		return;
	}
	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_RSA:
		snprintf(buf, size, "RSA %d", EVP_PKEY_get_bits(pk));
		break;
	case EVP_PKEY_RSA_PSS:
		snprintf(buf, size, "RSA-PSS %d", EVP_PKEY_get_bits(pk));
		break;
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL)) {
			snprintf(buf, size, "EC %d", EVP_PKEY_get_bits(pk));
			break;
		}
		if ((nid = OBJ_sn2nid(group)) != NID_undef)
			nist = EC_curve_nid2nist(nid);
		snprintf(buf, size, "EC %s", nist != NULL ? nist : group);
		break;
	case EVP_PKEY_ED25519:
		snprintf(buf, size, "ED25519");
		break;
	case EVP_PKEY_ED448:
		snprintf(buf, size, "ED448");
		break;
	default:
		snprintf(buf, size, "%s %d", OBJ_nid2sn(EVP_PKEY_get_base_id(pk)),
		    EVP_PKEY_get_bits(pk));
		break;
	}
}

/* A PEM file as a BIO, or NULL with err set (the system's reason, such as
 * "No such file or directory"). */
static BIO *
tls_open_pem(const char *path, char *err, size_t errsize)
{
	FILE	*fp;
	BIO	*bio;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errsize, "%s", strerror(errno));
		return NULL;
	}
	if ((bio = BIO_new_fp(fp, BIO_CLOSE)) == NULL) {
		fclose(fp);
		snprintf(err, errsize, "out of memory");
		return NULL;
	}
	ERR_clear_error();
	return bio;
}

/*
 * Read the leaf certificate (and, if chain is not NULL, the certificates
 * after it) from a PEM file.  On failure writes a message without the path
 * to err and returns -1.
 */
int
tls_read_cert(const char *path, X509 **leaf, STACK_OF(X509) **chain,
    char *err, size_t errsize)
{
	BIO	*bio;
	X509	*x;

	*leaf = NULL;
	if (chain != NULL)
		*chain = NULL;
	if ((bio = tls_open_pem(path, err, errsize)) == NULL)
		return -1;
	if ((*leaf = PEM_read_bio_X509(bio, NULL, tls_nopass, NULL)) == NULL) {
		BIO_free(bio);
		ERR_clear_error();
		snprintf(err, errsize, "not a PEM certificate");
		return -1;
	}
	if (chain != NULL) {
		if ((*chain = sk_X509_new_null()) == NULL)
			goto nomem;
		while ((x = PEM_read_bio_X509(bio, NULL, tls_nopass, NULL)) !=
		    NULL) {
			if (!sk_X509_push(*chain, x)) {
				X509_free(x);
				goto nomem;
			}
		}
	}
	ERR_clear_error();
	BIO_free(bio);
	return 0;

 nomem:
	BIO_free(bio);
	X509_free(*leaf);
	*leaf = NULL;
	if (chain != NULL) {
		sk_X509_pop_free(*chain, X509_free);
		*chain = NULL;
	}
	snprintf(err, errsize, "out of memory");
	return -1;
}

int
tls_read_key(const char *path, EVP_PKEY **pk, char *err, size_t errsize)
{
	BIO	*bio;

	*pk = NULL;
	if ((bio = tls_open_pem(path, err, errsize)) == NULL)
		return -1;
	*pk = PEM_read_bio_PrivateKey(bio, NULL, tls_nopass, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (*pk == NULL) {
		snprintf(err, errsize,
		    "no usable PEM private key (encrypted keys are not supported)");
		return -1;
	}
	return 0;
}

/* Append the normalised form of the len bytes at s; skips invalid names
 * and duplicates.  Returns -1 on allocation failure. */
int
tls_names_add(char ***v, size_t *n, const unsigned char *s, size_t len)
{
	char	 raw[TLS_NAMELEN], norm[TLS_NAMELEN];
	size_t	 i;

	if (len == 0 || len >= sizeof(raw) || memchr(s, '\0', len) != NULL)
		return 0;
	memcpy(raw, s, len);
	raw[len] = '\0';
	if (certname_normalize(raw, norm, sizeof(norm)) == -1)
		return 0;
	for (i = 0; i < *n; i++)
		if (strcmp((*v)[i], norm) == 0)
			return 0;
	return strvec_add(v, n, norm);
}

/* The names a certificate carries: its subjectAltName dNSNames, else its
 * subject CN (RFC 6125 §6.4.4).  Returns -1 on allocation failure. */
int
tls_cert_names(X509 *x, char ***v, size_t *n)
{
	GENERAL_NAMES		*gens;
	const GENERAL_NAME	*g;
	const X509_NAME		*subj;
	const X509_NAME_ENTRY	*ne;
	const ASN1_STRING	*as;
	unsigned char		*utf8;
	int			 i, len, rv = 0;

	*v = NULL;
	*n = 0;
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (gens != NULL) {
		for (i = 0; i < sk_GENERAL_NAME_num(gens) && rv == 0; i++) {
			g = sk_GENERAL_NAME_value(gens, i);
			if (g->type != GEN_DNS)
				continue;
			as = g->d.dNSName;
			if (ASN1_STRING_type(as) != V_ASN1_IA5STRING ||
			    (len = ASN1_STRING_length(as)) <= 0)
				continue;
			rv = tls_names_add(v, n, ASN1_STRING_get0_data(as),
			    (size_t)len);
		}
		GENERAL_NAMES_free(gens);
		if (rv == -1 || *n > 0)
			return rv;
	}
	if ((subj = X509_get_subject_name(x)) == NULL)
		return 0;
	i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (i < 0 || (ne = X509_NAME_get_entry(subj, i)) == NULL)
		return 0;
	if ((len = ASN1_STRING_to_UTF8(&utf8,
	    X509_NAME_ENTRY_get_data(ne))) < 0)
		return 0;
	rv = tls_names_add(v, n, utf8, (size_t)len);
	OPENSSL_free(utf8);
	return rv;
}

const char *
tls_keytype_name(enum tls_keytype t)
{
	switch (t) {
	case TLS_KEY_RSA:
		return "RSA";
	case TLS_KEY_EC:
		return "ECDSA";
	case TLS_KEY_ED:
		return "EdDSA";
	default:
		return "other";
	}
}
