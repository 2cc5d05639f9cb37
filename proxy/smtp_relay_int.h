/*
 * smtp_relay_int - what smtp_relay.c and smtp_relay_data.c share: one
 * module in two files.  smtp_relay.c reads the commands and the backend's
 * replies and owns the reply slots; smtp_relay_data.c carries message
 * content (DATA, BDAT, Received:) and the deadlines.  The rly_ names are
 * the module's own; everything else uses smtp_relay.h.
 */
#ifndef STP_SMTP_RELAY_INT_H
#define STP_SMTP_RELAY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp_relay.h"

/* struct smtp_relay's flags. */
#define RF_TLS		0x0001	/* the handshake is done */
#define RF_ESMTP	0x0002	/* the client said EHLO */
#define RF_BDAT_TX	0x0004	/* this BDAT transaction has its header */
#define RF_HDR_PENDING	0x0008	/* Received: goes before the next content */
#define RF_XPROBE	0x0010	/* our EHLO to learn XCLIENT pending */
#define RF_BE_XCLIENT	0x0020	/* backend offers XCLIENT */
#define RF_XSENT	0x0040	/* XCLIENT sent on this backend connection */
#define RF_XHOLD	0x0080	/* XCLIENT's reply pending: hold the rest */
#define RF_STALE	0x0100	/* STARTTLS taken: backend bytes are stale
				   until the first command after TLS */
#define RF_BE_GONE	0x0200	/* no backend any more */
#define RF_FAILED	0x0400	/* relay_fail(): nothing more is read */

#define LOG(r)	((r)->cfg.log)

/* smtp_relay.c: failure, the log, slots and output. */
void	rly_fail(struct relay_out *out, const char *why, const char *reply,
	    bool backend);
void	rly_log_refusal(struct smtp_relay *r, const struct smtp_cmd *cmd,
	    int code, const char *enh, enum policy_reason reason);
void	rly_reply_local(struct smtp_relay *r, struct relay_out *out,
	    enum smtp_verb verb, uint16_t flags, int code, const char *enh,
	    const char *text);
int	rly_push_backend(struct smtp_relay *r, const struct relay_in *in,
	    struct relay_out *out, enum smtp_verb verb, uint16_t flags);
int	rly_send(struct smtp_relay *r, struct relay_out *out, const char *p,
	    size_t len);
int	rly_forward_line(struct smtp_relay *r, struct relay_out *out,
	    const char *line, size_t len);

/* smtp_relay_data.c: the content steps, by input mode. */
void	rly_bdat_command(struct smtp_relay *r, const struct relay_in *in,
	    struct relay_out *out, const struct smtp_cmd *cmd,
	    const char *line, size_t len);
void	rly_bdat_refused(struct smtp_relay *r, const struct relay_in *in,
	    const struct smtp_cmd *cmd);
int	rly_client_data(struct smtp_relay *r, const struct relay_in *in,
	    const char *p, size_t len, size_t *used, struct relay_out *out);
void	rly_client_bdat_chunk(struct smtp_relay *r, const struct relay_in *in,
	    const char *p, size_t n, size_t *used, struct relay_out *out);

#endif
