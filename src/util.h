/*
 * util: escaping of untrusted text (keys, node ids, reasons that came
 * from the network) before it reaches a log line, a JSON string or a
 * terminal.  The result is printable ASCII only, so it is also valid
 * UTF-8 (jansson refuses anything else) and cannot inject a newline or a
 * terminal escape.
 *
 * Escapes: a byte outside 0x20..0x7e becomes \xNN (two lower-case hex
 * digits), a backslash becomes \\ and a double quote \", so the escaped
 * form names exactly one byte string.  Keys and names written as unquoted
 * key=value log fields also have blanks escaped (util_escf), so that a
 * value cannot forge the fields after it.
 */
#ifndef RELAYD_UTIL_H
#define RELAYD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Room util_escape() needs for len bytes, with the NUL. */
#define UTIL_ESCAPED_LEN(len)	(4 * (len) + 1)

/*
 * Escape len bytes of in into out (outlen bytes, NUL-terminated).  Never
 * cuts an escape sequence in half; if out is too small the result ends
 * with "..." where it was cut.  Returns the length written.
 */
size_t		 util_escape(const void *in, size_t len, char *out,
		    size_t outlen);
/*
 * util_escape() of a NUL-terminated string into one of a few rotating
 * per-thread buffers, for use in a log call's arguments: valid until the
 * same thread has made UTIL_ESC_SLOTS more calls.  Strings longer than
 * UTIL_ESC_MAX bytes are cut (with "...").
 */
#define UTIL_ESC_SLOTS	8
#define UTIL_ESC_MAX	1024
const char	*util_esc(const char *);
/* The same, of len bytes that need not be NUL-terminated. */
const char	*util_escn(const void *, size_t len);
/*
 * For an unquoted key=value field of a log line: as util_esc(), and a
 * blank also becomes \x20, so a value cannot forge the fields after it.
 */
const char	*util_escf(const char *);
size_t		 util_escape_field(const void *in, size_t len, char *out,
		    size_t outlen);
/*
 * In place, within cap bytes: every byte outside 0x20..0x7e of the
 * NUL-terminated line becomes \xNN (backslashes stay as they are).  The
 * log module's last line of defence for a field a caller did not escape.
 */
void		 util_escape_line(char *line, size_t cap);

/*
 * A cheap pseudo-random number (xorshift64*), seeded once from
 * getrandom(2): for spreading retries, never for anything secret.  Loop
 * thread only.
 */
uint64_t	 util_random(void);
/*
 * A jittered delay for a backoff whose current ceiling is ceiling: r
 * (a util_random() value) picks it in [ceiling/2, ceiling], so it grows
 * with the ceiling but relays that failed together do not retry
 * together.
 */
uint32_t	 util_jitter(uint32_t ceiling, uint64_t r);

/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void		 util_hex_encode(const uint8_t *, size_t n, char *out);

#endif
