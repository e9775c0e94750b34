#include <sys/random.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static const char util_hex[] = "0123456789abcdef";

/* How a byte is written: its escape in seq, the length returned. */
static size_t
util_escape_byte(unsigned char c, char seq[4], int field)
{
	if (c == '\\' || c == '"') {
		seq[0] = '\\';
		seq[1] = (char)c;
		return 2;
	}
	if (c >= 0x20 && c <= 0x7e && !(field && c == ' ')) {
		seq[0] = (char)c;
		return 1;
	}
	seq[0] = '\\';
	seq[1] = 'x';
	seq[2] = util_hex[c >> 4];
	seq[3] = util_hex[c & 0xf];
	return 4;
}

static size_t
util_escape_any(const void *in, size_t len, char *out, size_t outlen,
    int field)
{
	const unsigned char *p = in;
	size_t i, o = 0, n, need = 0, room;
	char seq[4];

	if (outlen == 0)
		return 0;
	for (i = 0; i < len; i++)
		need += util_escape_byte(p[i], seq, field);
	/* Too long: keep whole escapes only, and room for "...". */
	room = need + 1 <= outlen ? outlen : (outlen >= 4 ? outlen - 3 : 1);
	for (i = 0; i < len; i++) {
		n = util_escape_byte(p[i], seq, field);
		if (o + n + 1 > room)
			break;
		memcpy(out + o, seq, n);
		o += n;
	}
	if (i < len && o + 4 <= outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return o;
}

size_t
util_escape(const void *in, size_t len, char *out, size_t outlen)
{
	return util_escape_any(in, len, out, outlen, 0);
}

size_t
util_escape_field(const void *in, size_t len, char *out, size_t outlen)
{
	return util_escape_any(in, len, out, outlen, 1);
}

static char *
util_slot(void)
{
	static _Thread_local char slots[UTIL_ESC_SLOTS]
	    [UTIL_ESCAPED_LEN(UTIL_ESC_MAX)];
	static _Thread_local unsigned int next;

	return slots[next++ % UTIL_ESC_SLOTS];
}

const char *
util_escn(const void *s, size_t len)
{
	char *out = util_slot();

	if (s == NULL)
		s = "";
	util_escape(s, len, out, UTIL_ESCAPED_LEN(UTIL_ESC_MAX));
	return out;
}

const char *
util_esc(const char *s)
{
	return util_escn(s, s != NULL ? strlen(s) : 0);
}

const char *
util_escf(const char *s)
{
	char *out = util_slot();

	if (s == NULL)
		s = "";
	util_escape_field(s, strlen(s), out, UTIL_ESCAPED_LEN(UTIL_ESC_MAX));
	return out;
}

void
util_escape_line(char *line, size_t cap)
{
	size_t len = strlen(line), i, tail;
	unsigned char c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)line[i];
		if (c >= 0x20 && c <= 0x7e)
			continue;
		/* Make room for 3 more bytes; what falls off the end goes. */
		if (len + 3 + 1 > cap)
			len = cap > 4 ? cap - 4 : 0;
		if (i >= len) {
			line[i < cap ? i : cap - 1] = '\0';
			return;
		}
		tail = len - i - 1;
		memmove(line + i + 4, line + i + 1, tail);
		line[i] = '\\';
		line[i + 1] = 'x';
		line[i + 2] = util_hex[c >> 4];
		line[i + 3] = util_hex[c & 0xf];
		len += 3;
		line[len] = '\0';
		i += 3;
	}
}

void
util_hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

uint64_t
util_random(void)
{
	static uint64_t	 x;
	struct timespec	 ts;

	if (x == 0) {
		if (getrandom(&x, sizeof(x), GRND_NONBLOCK) != sizeof(x)) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			x = (uint64_t)ts.tv_nsec << 20 ^ (uint64_t)ts.tv_sec ^
			    (uint64_t)getpid() << 40;
		}
		if (x == 0)
			x = 0x9e3779b97f4a7c15ULL;
	}
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	return x * 0x2545f4914f6cdd1dULL;
}

uint32_t
util_jitter(uint32_t ceiling, uint64_t r)
{
	uint32_t half = ceiling / 2;

	return half + (uint32_t)(r % ((uint64_t)(ceiling - half) + 1));
}
