/*
 * util unit tests: escaping of untrusted text is printable ASCII, names
 * one byte string, never cuts an escape in half, and never overflows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"

struct esccase {
	const char	*in;
	size_t		 len;
	const char	*out;
};

static const struct esccase esccases[] = {
	{ "plain key/1", 11, "plain key/1" },
	{ "a\nb", 3, "a\\x0ab" },
	{ "\x1b[31mred", 8, "\\x1b[31mred" },
	{ "\xff\xfe", 2, "\\xff\\xfe" },
	{ "caf\xc3\xa9", 5, "caf\\xc3\\xa9" },
	{ "q\"b\\", 4, "q\\\"b\\\\" },
	{ "\x7f\x01", 2, "\\x7f\\x01" },
	{ "", 0, "" },
};

static void
test_escape_table(void **state)
{
	char out[64];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(esccases) / sizeof(esccases[0]); i++) {
		n = util_escape(esccases[i].in, esccases[i].len, out,
		    sizeof(out));
		assert_string_equal(out, esccases[i].out);
		assert_int_equal(n, strlen(esccases[i].out));
	}
}

static void
test_escape_cut(void **state)
{
	char out[12];
	size_t n;

	(void)state;
	/* "ab" then escapes: never half of one, "..." marks the cut. */
	n = util_escape("ab\n\n\n\n", 6, out, sizeof(out));
	assert_string_equal(out, "ab\\x0a...");
	assert_int_equal(n, strlen(out));
	n = util_escape("abcdefghijklmnop", 16, out, sizeof(out));
	assert_string_equal(out, "abcdefgh...");
	n = util_escape("abc", 3, out, 1);
	assert_string_equal(out, "");
	assert_int_equal(util_escape("abc", 3, out, 0), 0);
	/* Exactly fits. */
	n = util_escape("abcdefghijk", 11, out, sizeof(out));
	assert_string_equal(out, "abcdefghijk");
}

static void
test_esc_slots(void **state)
{
	const char *a, *b;

	(void)state;
	a = util_esc("one\r");
	b = util_escn("two\0x", 5);
	assert_string_equal(a, "one\\x0d");
	assert_string_equal(b, "two\\x00x");
	assert_string_equal(util_esc(NULL), "");
	/* As a log field, a blank cannot start a forged field. */
	assert_string_equal(util_escf("k size=1\n"), "k\\x20size=1\\x0a");
	assert_string_equal(util_esc("k size=1"), "k size=1");
}

static void
test_escape_line(void **state)
{
	char line[16];

	(void)state;
	snprintf(line, sizeof(line), "k=a\nb\\c");
	util_escape_line(line, sizeof(line));
	assert_string_equal(line, "k=a\\x0ab\\c");
	/* What does not fit is dropped, the line stays terminated. */
	snprintf(line, sizeof(line), "\x1b\x1b\x1b\x1b\x1b");
	util_escape_line(line, sizeof(line));
	assert_true(strlen(line) < sizeof(line));
	assert_string_equal(line, "\\x1b\\x1b\\x1b");
}

static void
test_hex_encode(void **state)
{
	const uint8_t in[] = { 0x00, 0x0f, 0xa5, 0xff };
	char out[2 * sizeof(in) + 1];

	(void)state;
	memset(out, 'x', sizeof(out));
	util_hex_encode(in, sizeof(in), out);
	assert_string_equal(out, "000fa5ff");
	util_hex_encode(in, 0, out);
	assert_string_equal(out, "");
}

/* Jitter stays in [ceiling/2, ceiling] and takes both ends. */
static void
test_jitter_bounds(void **state)
{
	static const uint32_t ceilings[] = { 0, 1, 2, 3, 100, 5000 };
	uint32_t c, d;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ceilings) / sizeof(ceilings[0]); i++) {
		c = ceilings[i];
		assert_int_equal(util_jitter(c, 0), c / 2);
		assert_int_equal(util_jitter(c, c - c / 2), c);
		assert_int_equal(util_jitter(c, UINT64_MAX) >= c / 2, 1);
		assert_int_equal(util_jitter(c, UINT64_MAX) <= c, 1);
	}
	for (i = 0; i < 1000; i++) {
		d = util_jitter(5000, util_random());
		assert_true(d >= 2500 && d <= 5000);
	}
}

/*
 * Two draws in a row differ, and many draws do not all land on one
 * delay: relays that fail together spread their retries.
 */
static void
test_random_spreads(void **state)
{
	unsigned int seen[11] = { 0 }, i, used = 0;
	uint64_t a, b;

	(void)state;
	a = util_random();
	b = util_random();
	assert_true(a != b);
	for (i = 0; i < 1100; i++)
		seen[(util_jitter(200, util_random()) - 100) / 10]++;
	for (i = 0; i < 11; i++)
		used += seen[i] > 0;
	assert_true(used >= 9);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_table),
		cmocka_unit_test(test_escape_cut),
		cmocka_unit_test(test_esc_slots),
		cmocka_unit_test(test_escape_line),
		cmocka_unit_test(test_hex_encode),
		cmocka_unit_test(test_jitter_bounds),
		cmocka_unit_test(test_random_spreads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
