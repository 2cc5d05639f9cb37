/*
 * tls_conn - one server-side TLS connection over two memory BIOs; see
 * tls.h.
 *
 * A tls_conn never sees a socket: ciphertext goes in through tls_feed()
 * and out through tls_take_out().  The input BIO reads as "retry" when
 * empty, so OpenSSL never mistakes a slow client for EOF.  Renegotiation
 * is refused (SSL_OP_NO_RENEGOTIATION, CVE-2009-3555 and CPU exhaustion);
 * an attempt ends the session.  A failure keeps a short text for the logs
 * and its class for the metrics, both taken from OpenSSL's error queue at
 * the moment of failure.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tls.h"
#include "tls_int.h"

/* Notes our no_renegotiation alert: the session is then ended. */
static void
tls_on_info(const SSL *ssl, int where, int ret)
{
	struct tls_conn	*c;

	if ((where & SSL_CB_WRITE_ALERT) == 0 ||
	    (ret & 0xff) != SSL_AD_NO_RENEGOTIATION)
		return;
	if ((c = SSL_get_app_data(ssl)) != NULL)
		c->reneg = 1;
}

struct tls_conn *
tls_conn_new(const struct tls_set *set, size_t li)
{
	struct tls_conn	*c;

	if (!tls_listener_has_cert(set, li) || set->lsn[li].certs[0].ctx == NULL)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->lsn = &set->lsn[li];
	ERR_clear_error();
	if ((c->ssl = SSL_new(c->lsn->certs[0].ctx)) == NULL)
		goto fail;
	if ((c->rbio = BIO_new(BIO_s_mem())) == NULL)
		goto fail;
	if ((c->wbio = BIO_new(BIO_s_mem())) == NULL) {
		BIO_free(c->rbio);
		goto fail;
	}
	BIO_set_mem_eof_return(c->rbio, -1);
	BIO_set_mem_eof_return(c->wbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_app_data(c->ssl, c);
	SSL_set_info_callback(c->ssl, tls_on_info);
	SSL_set_accept_state(c->ssl);
	return c;

 fail:
	ERR_clear_error();
	SSL_free(c->ssl);
	free(c);
	return NULL;
}

void
tls_conn_free(struct tls_conn *c)
{
	if (c == NULL)
		return;
	SSL_free(c->ssl);
	ERR_clear_error();
	free(c);
}

/*
 * A memory BIO keeps the largest buffer it ever held.  Once one is drained
 * and holds any buffer at all, swap in a fresh BIO so that an idle
 * session keeps no TLS buffer (a new BIO costs less than the memory of
 * thousands of idle sessions).
 */
static void
tls_bio_trim(struct tls_conn *c, int rd)
{
	BUF_MEM	*bm = NULL;
	BIO	*nb;

	BIO_get_mem_ptr(rd ? c->rbio : c->wbio, &bm);
	if (bm == NULL || bm->max == 0 ||
	    (nb = BIO_new(BIO_s_mem())) == NULL)
		return;
	BIO_set_mem_eof_return(nb, -1);
	if (rd) {
		SSL_set0_rbio(c->ssl, nb);
		c->rbio = nb;
	} else {
		SSL_set0_wbio(c->ssl, nb);
		c->wbio = nb;
	}
}

void
tls_set_bulk(struct tls_conn *c, int on)
{
	if (on)
		SSL_clear_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
	else
		SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
}

int
tls_feed(struct tls_conn *c, const void *buf, size_t len)
{
	const unsigned char	*p = buf;
	int			 n, chunk;

	while (len > 0) {
		chunk = len > INT_MAX ? INT_MAX : (int)len;
		if ((n = BIO_write(c->rbio, p, chunk)) <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

size_t
tls_pending_in(const struct tls_conn *c)
{
	return BIO_ctrl_pending(c->rbio);
}

size_t
tls_pending_out(const struct tls_conn *c)
{
	return BIO_ctrl_pending(c->wbio);
}

size_t
tls_take_out(struct tls_conn *c, void *buf, size_t len)
{
	int	n;

	if (len == 0)
		return 0;
	n = BIO_read(c->wbio, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (BIO_ctrl_pending(c->wbio) == 0)
		tls_bio_trim(c, 0);
	return n > 0 ? (size_t)n : 0;
}

/*
 * The class of a failure (for the handshake metrics) from the reason code
 * of e, the error whose text goes to the log: version and protocol
 * mismatches, cipher/group/signature-algorithm mismatches, certificate
 * problems, the peer gone.  The reasons listed are those a server
 * handshake can meet; each is in the class its text named (session.c used
 * to match words in that text), except the alerts a client sends when it
 * rejects our certificate: unknown CA, access denied, and decrypt error
 * (a signature over our chain or by our key that it could not verify).
 * No reason at all is logged as "protocol error" and counted so.
 */
static enum hs_fail
tls_fail_class(unsigned long e)
{
	if (e == 0 || ERR_reason_error_string(e) == NULL)
		return HSF_PROTOCOL;
	if (ERR_GET_LIB(e) != ERR_LIB_SSL)
		return HSF_OTHER;
	switch (ERR_GET_REASON(e)) {
	case SSL_R_BAD_LEGACY_VERSION:
	case SSL_R_BAD_PROTOCOL_VERSION_NUMBER:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
	case SSL_R_PROTOCOL_IS_SHUTDOWN:
	case SSL_R_SSL_SESSION_VERSION_MISMATCH:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
	case SSL_R_UNKNOWN_PROTOCOL:
	case SSL_R_UNKNOWN_SSL_VERSION:
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_UNSUPPORTED_SSL_VERSION:
	case SSL_R_VERSION_TOO_HIGH:
	case SSL_R_VERSION_TOO_LOW:
	case SSL_R_WRONG_SSL_VERSION:
	case SSL_R_WRONG_VERSION_NUMBER:
		return HSF_PROTOCOL;
	case SSL_R_BAD_CHANGE_CIPHER_SPEC:
	case SSL_R_BAD_CIPHER:
	case SSL_R_BLOCK_CIPHER_PAD_IS_WRONG:
	case SSL_R_CANNOT_CHANGE_CIPHER:
	case SSL_R_CANNOT_GET_GROUP_NAME:
	case SSL_R_CIPHERSUITE_DIGEST_HAS_CHANGED:
	case SSL_R_CIPHER_CODE_WRONG_LENGTH:
	case SSL_R_ERROR_IN_RECEIVED_CIPHER_LIST:
	case SSL_R_LEGACY_SIGALG_DISALLOWED_OR_UNSUPPORTED:
	case SSL_R_MISSING_SIGALGS_EXTENSION:
	case SSL_R_MISSING_SUPPORTED_GROUPS_EXTENSION:
	case SSL_R_NO_CIPHERS_AVAILABLE:
	case SSL_R_NO_GOST_CERTIFICATE_SENT_BY_PEER:
	case SSL_R_NO_SHARED_CIPHER:
	case SSL_R_NO_SHARED_GROUPS:
	case SSL_R_NO_SUITABLE_GROUPS:
	case SSL_R_REQUIRED_CIPHER_MISSING:
		return HSF_CIPHER;
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
	case SSL_R_INVALID_CERTIFICATE_OR_ALG:
	case SSL_R_MISSING_RSA_CERTIFICATE:
	case SSL_R_NO_CERTIFICATES_RETURNED:
	case SSL_R_NO_CERTIFICATE_ASSIGNED:
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
	case SSL_R_SIGNATURE_FOR_NON_SIGNING_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_SSLV3_ALERT_NO_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
	case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_TLSV1_BAD_CERTIFICATE_HASH_VALUE:
	case SSL_R_TLSV1_BAD_CERTIFICATE_STATUS_RESPONSE:
	case SSL_R_TLSV1_CERTIFICATE_UNOBTAINABLE:
	case SSL_R_UNKNOWN_CERTIFICATE_TYPE:
	case SSL_R_WRONG_CERTIFICATE_TYPE:
		return HSF_CERT;
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		return HSF_CLOSED;
	default:
		return HSF_OTHER;
	}
}

static void
tls_fail(struct tls_conn *c, const char *what, int sslerr)
{
	const char	*why;

	if (c->reneg) {
		why = "renegotiation refused";
		c->fail = HSF_OTHER;
	} else if (sslerr == SSL_ERROR_ZERO_RETURN ||
	    (sslerr == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
		why = "peer closed";
		c->fail = HSF_CLOSED;
	} else {
		why = tls_errstr("protocol error");
		c->fail = tls_fail_class(ERR_peek_error());
	}
	if (c->reneg)
		snprintf(c->err, sizeof(c->err), "%s", why);
	else
		snprintf(c->err, sizeof(c->err), "%s: %s", what, why);
	ERR_clear_error();
}

enum tls_status
tls_handshake(struct tls_conn *c)
{
	int	r, e;

	ERR_clear_error();
	if ((r = SSL_do_handshake(c->ssl)) == 1) {
		if (!c->ticket && SSL_version(c->ssl) == TLS1_3_VERSION) {
			c->ticket = 1;
			if (SSL_new_session_ticket(c->ssl) != 1)
				ERR_clear_error();	/* no resumption, no harm */
		}
		return TLS_OK;
	}
	switch ((e = SSL_get_error(c->ssl, r))) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		ERR_clear_error();
		return TLS_AGAIN;
	default:
		tls_fail(c, "handshake", e);
		return TLS_ERROR;
	}
}

size_t
tls_read(struct tls_conn *c, void *buf, size_t len, enum tls_status *st)
{
	size_t	n = 0;
	int	e;

	ERR_clear_error();
	if (len > 0 && SSL_read_ex(c->ssl, buf, len, &n) == 1 && n > 0) {
		*st = TLS_OK;
		return n;
	}
	e = len > 0 ? SSL_get_error(c->ssl, 0) : SSL_ERROR_WANT_READ;
	if (c->reneg) {
		tls_fail(c, "read", e);
		*st = TLS_ERROR;
		return 0;
	}
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		ERR_clear_error();
		*st = TLS_AGAIN;
		if (BIO_ctrl_pending(c->rbio) == 0)
			tls_bio_trim(c, 1);
		break;
	case SSL_ERROR_ZERO_RETURN:
		ERR_clear_error();
		*st = TLS_CLOSED;
		break;
	default:
		tls_fail(c, "read", e);
		*st = TLS_ERROR;
		break;
	}
	return 0;
}

int
tls_write(struct tls_conn *c, const void *buf, size_t len)
{
	size_t	n = 0;
	int	e;

	if (len == 0)
		return 0;
	ERR_clear_error();
	if (SSL_write_ex(c->ssl, buf, len, &n) == 1 && n == len)
		return 0;
	e = SSL_get_error(c->ssl, 0);
	tls_fail(c, "write", e);
	return -1;
}

void
tls_shutdown(struct tls_conn *c)
{
	ERR_clear_error();
	(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
}

const char *
tls_conn_sni(const struct tls_conn *c)
{
	return c->has_sni ? c->sni : NULL;
}

int
tls_conn_cert(const struct tls_conn *c, const char **name,
    const char **keytype)
{
	const struct tls_cert *tc;

	if (!c->picked || c->chosen >= c->lsn->n_certs)
		return -1;
	tc = &c->lsn->certs[c->chosen];
	*name = tc->n_names > 0 ? tc->names[0] : NULL;
	*keytype = tls_keytype_name(tc->keytype);
	return 0;
}

void
tls_get_info(struct tls_conn *c, struct tls_info *out)
{
	const SSL_CIPHER	*ciph;
	X509			*peer;
	BIO			*bio;
	int			 alg_bits = 0, n;

	memset(out, 0, sizeof(*out));
	out->version = SSL_get_version(c->ssl);
	out->version_num = SSL_version(c->ssl);
	if ((ciph = SSL_get_current_cipher(c->ssl)) != NULL) {
		out->cipher = SSL_CIPHER_get_name(ciph);
		(void)SSL_CIPHER_get_bits(ciph, &alg_bits);
		out->cipher_bits = alg_bits;
	}
	out->sni = c->has_sni ? c->sni : NULL;
	(void)tls_conn_cert(c, &out->cert_name, &out->cert_keytype);

	if ((peer = SSL_get1_peer_certificate(c->ssl)) == NULL)
		return;
	out->client_verified = SSL_get_verify_result(c->ssl) == X509_V_OK;
	if ((bio = BIO_new(BIO_s_mem())) != NULL) {
		if (X509_NAME_print_ex(bio, X509_get_subject_name(peer), 0,
		    XN_FLAG_RFC2253) >= 0) {
			n = BIO_read(bio, out->client_subject,
			    sizeof(out->client_subject) - 1);
			if (n > 0)
				out->client_subject[n] = '\0';
		}
		BIO_free(bio);
	}
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(peer),
	    NID_commonName, out->client_cn, sizeof(out->client_cn)) < 0)
		out->client_cn[0] = '\0';
	X509_free(peer);
	ERR_clear_error();
}

const char *
tls_conn_error(const struct tls_conn *c)
{
	return c->err[0] != '\0' ? c->err : "no error";
}

enum hs_fail
tls_conn_fail_reason(const struct tls_conn *c)
{
	return c->err[0] != '\0' ? c->fail : HSF_OTHER;
}
