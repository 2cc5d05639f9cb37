/*
 * smtp_parse - incremental, I/O-free SMTP parsing for the proxy.
 *
 * Command framing (client -> proxy), command verbs, reply framing
 * (backend -> proxy), the DATA end-of-content scanner and BDAT argument
 * parsing.  Nothing here allocates, blocks or touches a socket: every
 * function looks at a caller's buffer and says how many bytes it used.
 * Part of the pure core (no libuv, no OpenSSL).
 */
#ifndef STP_SMTP_PARSE_H
#define STP_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

enum smtp_parse {
	SMTP_AGAIN = 0,		/* need more bytes */
	SMTP_OK,		/* one complete item found */
	SMTP_TOOLONG,		/* command line longer than max_line */
	SMTP_INVALID		/* malformed item, consumed */
};

/*
 * Command line framer.  Lines end in CRLF or a bare LF (accepted, the
 * caller forwards the line with CRLF).  max_line counts the terminator
 * (CRLF) like SPEC's limits.max_line.
 */
struct smtp_framer {
	size_t	max_line;
	int	discarding;	/* inside the tail of an overlong line */
};

void	smtp_framer_init(struct smtp_framer *f, size_t max_line);

/*
 * Look for one command line at the start of buf[0..len).
 *   SMTP_OK:      the line is buf[0..*linelen) without its CRLF/LF;
 *                 *consumed counts the terminator too.
 *   SMTP_INVALID: the line (terminator included, *consumed bytes) holds a
 *                 NUL byte or a CR that is not immediately before the LF;
 *                 reply 500 5.5.2, forward nothing.
 *   SMTP_TOOLONG: no LF within max_line bytes: reply 500 5.5.2 once; the
 *                 framer drops *consumed bytes now (through the LF when
 *                 one is in buf) and the rest of that line silently in
 *                 later calls (those return SMTP_AGAIN with *consumed > 0).
 *   SMTP_AGAIN:   *consumed bytes (possibly 0) must be dropped from the
 *                 front of buf.  With *consumed > 0 call again at once: a
 *                 fresh line may already follow.  With 0, read more.
 * A line of exactly max_line bytes including its CRLF is accepted (with a
 * bare LF: max_line bytes including the LF).
 */
enum smtp_parse smtp_frame_line(struct smtp_framer *f, const char *buf,
	    size_t len, size_t *linelen, size_t *consumed);

enum smtp_verb {
	SMTP_V_UNKNOWN = 0,
	SMTP_V_EHLO, SMTP_V_HELO, SMTP_V_MAIL, SMTP_V_RCPT, SMTP_V_DATA,
	SMTP_V_BDAT, SMTP_V_RSET, SMTP_V_NOOP, SMTP_V_QUIT, SMTP_V_STARTTLS,
	SMTP_V_AUTH, SMTP_V_VRFY, SMTP_V_EXPN, SMTP_V_HELP, SMTP_V_XCLIENT,
	SMTP_V_XFORWARD, SMTP_V_ETRN,
	SMTP_V__COUNT
};

struct smtp_cmd {
	enum smtp_verb	 verb;
	const char	*arg;		/* after the verb and its spaces; may be "" */
	size_t		 arglen;	/* trailing spaces/tabs removed */
};

/* Split a framed line (no terminator) into verb and argument. Never fails:
 * unknown or empty verbs give SMTP_V_UNKNOWN.  The verb is the text up to
 * the first space or tab (as the MTAs behind us split it), matched
 * case-insensitively. */
void		 smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *out);
const char	*smtp_verb_name(enum smtp_verb v);

/*
 * The domain of a MAIL/RCPT path argument, e.g. for RCPT the text after
 * "TO:".  arg is the whole RCPT argument ("TO:<a@b> NOTIFY=..."). The domain
 * is what follows the last '@' that is outside double quotes in the
 * mailbox, with a source route ("<@r1,@r2:u@d>") skipped.  Returns 0 and
 * sets *dom,*domlen on success, -1 when there is no path or no domain
 * (e.g. "<postmaster>", "<>").  Lenient: "TO: <a@b>" and "TO:a@b" work;
 * the path ends at an unquoted '>' or space; an unterminated quote gives -1.
 */
int	smtp_path_domain(const char *arg, size_t arglen, const char **dom,
	    size_t *domlen);

/*
 * Reply framing (backend -> proxy). A reply is one or more lines
 * "ddd-text" ending with a line "ddd text" or "ddd"; lines end in CRLF or
 * LF.  At most max bytes are looked at for one reply.
 *   SMTP_OK:      a whole reply is buf[0..r->len); r->code set;
 *                 r->nlines lines.
 *   SMTP_INVALID: a line that does not start with three digits (a code in
 *                 100..599), whose fourth character is not ' ', '-' or
 *                 the end of line, or whose code differs from the first
 *                 line's; the backend is broken.  Checked per complete
 *                 line, so a prefix of a bad reply may still say AGAIN.
 *   SMTP_TOOLONG: no complete reply within max bytes.
 *   SMTP_AGAIN:   need more bytes.
 */
struct smtp_reply {
	int	code;		/* 100..599 */
	size_t	len;		/* bytes of the whole reply, terminators included */
	size_t	nlines;
};
enum smtp_parse smtp_reply_parse(const char *buf, size_t len, size_t max,
	    struct smtp_reply *r);

/*
 * Iterate the lines of a complete reply: *pos starts at 0; each call sets
 * line/linelen (without terminator) and returns 1, or 0 at the end.
 */
int	smtp_reply_next_line(const char *reply, size_t len, size_t *pos,
	    const char **line, size_t *linelen);

/*
 * DATA content scanner.  Feed the message content as it arrives (the bytes
 * after the DATA command's 354).  Only <CRLF>.<CRLF> ends the content; the
 * start of the content counts as just after a CRLF.  It also notes the
 * first bare CR (a CR not followed by LF) or bare LF (an LF not preceded by
 * CR) - SMTP smuggling shapes.  No byte is looked at twice.  Init once per
 * message; after the end, further feeds return 0 with *ended = 1.
 */
struct smtp_datascan {
	uint8_t	state;
	uint8_t	bare;		/* 1 once a bare CR or LF was seen */
};

void	smtp_datascan_init(struct smtp_datascan *ds);

/*
 * Scan buf[0..len).  Returns the number of bytes that belong to the
 * message: len when the end was not found, else the offset just past the
 * final ".\r\n" (and *ended = 1).  *bare_at (may be NULL) is set to the
 * offset in buf of the byte at which a bare CR/LF was first detected in
 * this call (for a bare CR: the byte after it, which may be at offset 0
 * when the CR ended the previous call), or to (size_t)-1 if none was
 * detected in this call.
 */
size_t	smtp_datascan_feed(struct smtp_datascan *ds, const char *buf,
	    size_t len, int *ended, size_t *bare_at);

/*
 * BDAT argument: "<size> [LAST]" (decimal digits only; case-insensitive
 * LAST, one or more spaces or tabs between; trailing spaces ignored).
 * Returns 0 and sets *size, *last; -1 (outputs untouched) when malformed
 * or the size does not fit in 63 bits.
 */
int	smtp_bdat_parse(const char *arg, size_t arglen, uint64_t *size,
	    int *last);

#endif
