/*
 * log - levelled logging to stderr, as text or one JSON object per line.
 *
 * log_warn() appends strerror(errno), log_warnx() does not (OpenSMTPD).
 * Thread-safe: each line is formatted in a local buffer and written with
 * one write(2).
 */
#ifndef STP_LOG_H
#define STP_LOG_H

#include <stdarg.h>

enum { LOG_ERROR = 0, LOG_WARNING, LOG_INFO, LOG_DEBUG };

void	log_init(int level, int json);
int	log_enabled(int level);

void	log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * One structured record: "event" plus key/value pairs given as
 * alternating const char * keys and values, ended by NULL.  Values are
 * strings; a key starting with '#' marks its value as a number (the '#' is
 * not printed).  Text format: "event key=value key=\"a b\" ...";
 * JSON format: {"ts":...,"level":...,"event":...,"key":"value",...}.
 */
void	log_kv(int level, const char *event, ...);

#endif
