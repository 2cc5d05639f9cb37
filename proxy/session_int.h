/*
 * session_int.h - what session.c and session_life.c share: one module in
 * two files, like OpenSMTPD's smtp.c and smtp_session.c.  session_life.c
 * begins and ends a session (accept, the PROXY header, limits, ids, the
 * backend's connect, close and the session line); session.c runs it (the
 * pump, the relay's steps, TLS, reads, timers, the linger).  Nothing
 * outside these two files includes this.
 */
#ifndef STP_SESSION_INT_H
#define STP_SESSION_INT_H

#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <uv.h>

#include "backend.h"
#include "client.h"
#include "config.h"
#include "gen.h"
#include "session.h"
#include "smtp_relay.h"
#include "tls.h"

#define PROXY_TIMEOUT	10		/* seconds for a PROXY header (SPEC §3) */

enum sess_state {
	SS_PROXY_HEADER = 0,	/* reading the PROXY header of a load balancer */
	SS_BACKEND_CONNECT,	/* connecting to the backend */
	SS_GREETING,		/* waiting for the backend's greeting */
	SS_COMMANDS,		/* SMTP dialogue (plaintext or inside TLS) */
	SS_STARTTLS_DRAIN,	/* our 220 queued; client input discarded */
	SS_HANDSHAKE,		/* TLS handshake: no plaintext either way */
	SS_CLOSED
};


#define SF_TLS			0x0001	/* the handshake is done */
#define SF_CLOSE_AFTER_FLUSH	0x0002
#define SF_PUMPING		0x0004
#define SF_REPUMP		0x0008
#define SF_COUNTED		0x0010	/* holds a connection limit slot */
#define SF_LINGER		0x0020	/* last reply sent: FIN, drain, close */
#define SF_QUIT			0x0040	/* that last reply answered QUIT */
#define SF_PREHEADER		0x0080	/* counted in ss->n_preheader */
#define SF_FAILING		0x0100	/* failed mid-handshake: the reply waits
					   in the queue for TLS to be up */

struct session {
	struct session		*next, *prev;
	struct sessions		*ss;		/* the loop's */
	struct gen		*gen;		/* ref held for the session's life */
	const struct cfg_listener *lc;
	size_t			 li;
	struct lsn_limits	*limits;
	struct stats		*st;		/* this worker's shard */
	char			 id[32];
	enum sess_state		 state;
	unsigned		 flags;

	struct client		 cl;		/* first: cl.tcp.data is s */
	uv_shutdown_t		 shut_req;
	uv_timer_t		 timer;
	int			 handles;	/* open libuv handles */

	struct tls_info		 tinfo;
	struct smtp_relay	 r;		/* the dialogue */
	struct backend		 be;		/* its in/out are the backend's
						   queues; the relay writes out */

	struct sockaddr_storage	 peer;		/* the client (PROXY-in's source) */
	struct sockaddr_storage	 local;		/* where it connected to */
	char			 peer_addr[INET6_ADDRSTRLEN];
	char			 peer_port[8];
	const char		*end;		/* how it ended, for the log */
	uint64_t		 counted_in;	/* r.bytes_in, r.bytes_out as */
	uint64_t		 counted_out;	/* far as st has them */
	uint64_t		 start_ms;
	uint64_t		 hs_start_ms;
};

/* session.c */
void	sess_enter(struct session *s, enum sess_state st);
void	sess_pump(struct session *s);
void	sess_count_bytes(struct session *s);
/* A relay step's input (the clocks, the queues' marks) and output (the
 * session's buffers). */
void	sess_step_init(struct session *s, struct relay_in *in,
	    struct relay_out *out);
void	sess_fail(struct session *s, const char *why, const char *reply);
void	sess_backend_failed(struct session *s, const char *why,
	    const char *reply);
void	sess_arm_timer(struct session *s);
void	sess_update_reads(struct session *s);
void	sess_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
void	sess_on_backend_input(void *arg, int status);
void	sess_on_backend_written(void *arg, int status);
void	sess_on_client_written(void *arg, int status);

/* session_life.c */
void	sess_close(struct session *s, const char *why);
void	sess_backend_start(struct session *s);
void	sess_proxy_header(struct session *s);

#endif
