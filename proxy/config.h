/*
 * config - the configuration file (libconfig syntax, SPEC §3) loaded into
 * one immutable, reference-counted struct config.
 *
 * cfg_load() reads, applies defaults, checks types and bounds, resolves
 * relative paths against the config file's directory and parses addresses.
 * Every problem is reported as "file:LINE: message" through the errs list;
 * the loader goes on after a semantic error so that one run shows all of
 * them.  It does not open certificates (tls.c does) nor sockets.
 * A running proxy holds one reference per worker and one per session that
 * started with it; SIGHUP builds a new config and swaps the pointer.
 */
#ifndef STP_CONFIG_H
#define STP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "policy.h"
#include "strlist.h"

/* Log each message of a warnings list at its level: an error (a problem
 * that does not stop the proxy, e.g. an expired certificate still served)
 * at error level, the others as warnings. */
void	cfg_log_warnings(const struct strlist *warns);

/* A socket address as written in the config: "host:port", "[v6]:port",
 * or (backend only) "unix:/path". */
struct cfg_addr {
	char			*text;		/* as written */
	int			 is_unix;
	char			*unix_path;	/* absolute or config-relative, resolved */
	struct sockaddr_storage	 ss;		/* when !is_unix */
	socklen_t		 sslen;
};

struct cfg_cert {
	char	 *cert;			/* resolved path */
	char	 *key;			/* resolved path */
	char	**names;		/* configured "names", or NULL: from the cert */
	size_t	  n_names;
	int	  line;			/* line of this entry in the config file */
};

enum tls_mode { TLS_MODE_STARTTLS = 0, TLS_MODE_IMPLICIT };
enum verify_client { VERIFY_NONE = 0, VERIFY_OPTIONAL, VERIFY_REQUIRED };
enum proxy_out { PROXY_OUT_NONE = 0, PROXY_OUT_V1, PROXY_OUT_V2 };
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

struct cfg_listener {
	char		*name;
	int		 line;
	int		 listen_line;		/* line of "listen" (or line) */
	struct cfg_addr	 listen;
	bool		 proxy_protocol;
	enum tls_mode	 tls_mode;
	char		*banner;		/* "" = relay the backend's greeting */

	struct {
		struct cfg_addr	 address;
		enum proxy_out	 proxy_protocol;
		bool		 xclient;
		int		 connect_timeout;	/* seconds */
	} backend;

	struct {
		struct cfg_cert	*certs;		/* certs[0] is the default */
		size_t		 n_certs;
		int		 min_version;	/* wire number, 0x0303 = TLSv1.2 */
		char		*ciphers;	/* "" = tls.c default (AEAD) */
		char		*ciphersuites;	/* "" = tls.c default */
		char		*client_ca;	/* "" = none, else resolved path */
		enum verify_client verify_client;
		int		 handshake_timeout;
	} tls;

	struct policy_cfg policy;
	bool		 received_header;

	struct {
		int	max_connections;
		int	max_connections_per_ip;
		int	idle_timeout;
		int	data_timeout;	/* seconds for one message's content */
		int	max_line;
	} limits;
};

/* One setting as written: its key path and place, for messages. */
struct cfg_place {
	char	*key;			/* "listeners[0].tls.ciphers" */
	char	*file;			/* NULL: the config file itself */
	int	 line;
};

struct config {
	char			*path;		/* as given */
	char			*dir;		/* its directory */
	int			 workers;	/* 0 = one per CPU */
	char			*user;
	char			*hostname;	/* "" = the system's (gethostname) */
	int			 shutdown_timeout;
	int			 log_level;	/* LOG_* of log.h */
	enum log_format		 log_format;
	bool			 stats_enabled;
	struct cfg_addr		 stats_listen;
	bool			 watch_certificates;	/* reload on file change */
	struct cfg_listener	*listeners;
	size_t			 n_listeners;
	struct cfg_place	*places;	/* where each setting was written */
	size_t			 n_places;
};


/*
 * Load and check path.  Returns a config, or NULL after
 * adding at least one message to errs ("file:LINE: message", or
 * "file: message" when no line applies).  Warnings go to warns (may be
 * NULL).
 */
struct config	*cfg_load(const char *path, struct strlist *errs,
		    struct strlist *warns);
void		 cfg_free(struct config *c);	/* NULL is fine */

/*
 * "file:LINE: KEY" for a message about the setting whose key path fmt
 * gives ("listeners[%zu].tls.ciphers").  A setting left at its default
 * has no line of its own: the nearest enclosing group that was written
 * gives it, else there is no line ("file: KEY").  Returns buf.
 */
const char	*cfg_where(const struct config *c, char *buf, size_t size,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Syntax errors: what probably went wrong in the libconfig text of path
 * (an unquoted string, a missing ',' or ']', an unclosed '{' or string,
 * a trailing ','), as one sentence naming lines, into buf.  Returns buf,
 * or NULL when nothing better than libconfig's own message was found.
 * Pure text analysis, in cfghint.c.
 */
const char	*cfg_syntax_hint(const char *text, char *buf, size_t size);

/* Edit distance (insertions, deletions, substitutions and transpositions
 * of adjacent characters; ASCII case ignored), for "did you mean". */
size_t		 cfg_edit_distance(const char *a, const char *b);

/* "TLSv1.2" -> 0x0303 etc.; -1 when unknown.  "" -> 0. */
int		 cfg_tls_version(const char *s);
const char	*cfg_tls_version_name(int v);

/* Parse "host:port" / "[v6]:port" (allow_unix: also "unix:/path", relative
 * to dir). Returns NULL or a static error message. */
const char	*cfg_parse_addr(const char *text, const char *dir, int allow_unix,
		    struct cfg_addr *out);

/* The port of a host:port address, 0 for a unix one. */
int		 cfg_addr_port(const struct cfg_addr *a);

#endif
