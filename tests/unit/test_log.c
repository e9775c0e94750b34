/*
 * log unit tests: with log_defer, the loop thread's info lines wait for
 * log_flush (one kick per batch); a warning, or a line from another
 * thread, first writes what waits, so stderr keeps the order of the
 * calls; log_defer(NULL) writes what waits and ends the deferral.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static int	 kicks;
static int	 saved_fd = -1;
static FILE	*capture;

static void
kick(void)
{
	kicks++;
}

/* stderr into a temporary file for the test. */
static int
setup(void **state)
{
	(void)state;
	kicks = 0;
	log_init("test", 1, LOG_LVL_DEBUG);
	if ((capture = tmpfile()) == NULL)
		return -1;
	saved_fd = dup(STDERR_FILENO);
	return dup2(fileno(capture), STDERR_FILENO) == -1 ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	log_defer(NULL);
	dup2(saved_fd, STDERR_FILENO);
	close(saved_fd);
	fclose(capture);
	return 0;
}

/* What stderr holds so far. */
static const char *
captured(void)
{
	static char buf[8192];
	size_t n;

	rewind(capture);
	n = fread(buf, 1, sizeof(buf) - 1, capture);
	buf[n] = '\0';
	fseek(capture, 0, SEEK_END);
	return buf;
}

static void
test_info_waits_for_flush(void **state)
{
	(void)state;
	log_defer(kick);
	log_info("one");
	log_debug("two");
	assert_string_equal(captured(), "");
	assert_int_equal(kicks, 1);	/* the first waiting line only */
	log_flush();
	assert_string_equal(captured(), "<6>one\n<7>two\n");
	log_info("three");
	assert_int_equal(kicks, 2);
	log_defer(NULL);
	assert_string_equal(captured(), "<6>one\n<7>two\n<6>three\n");
	log_info("four");	/* not deferred any more */
	assert_string_equal(captured(),
	    "<6>one\n<7>two\n<6>three\n<6>four\n");
}

static void
test_warning_keeps_order(void **state)
{
	(void)state;
	log_defer(kick);
	log_info("first");
	log_warnx("second");
	assert_string_equal(captured(), "<6>first\n<4>second\n");
	log_flush();
	assert_string_equal(captured(), "<6>first\n<4>second\n");
}

static void *
other_thread(void *arg)
{
	(void)arg;
	log_info("from the store thread");
	return NULL;
}

static void
test_other_thread_at_once(void **state)
{
	pthread_t t;

	(void)state;
	log_defer(kick);
	log_info("loop");
	assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_string_equal(captured(),
	    "<6>loop\n<6>from the store thread\n");
	assert_int_equal(kicks, 1);
}

static void
test_full_buffer_is_written(void **state)
{
	char big[1500];
	int i;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_defer(kick);
	/* More than the buffer holds: the oldest lines go out on the way. */
	for (i = 0; i < 64; i++)
		log_info("%s", big);
	assert_true(strlen(captured()) > 0);
	log_flush();
	rewind(capture);
	for (i = 0; i < 64; i++) {
		char line[2048];

		assert_non_null(fgets(line, sizeof(line), capture));
		assert_int_equal(strlen(line), 3 + sizeof(big) - 1 + 1);
	}
	fseek(capture, 0, SEEK_END);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_info_waits_for_flush,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_warning_keeps_order,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_thread_at_once,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_buffer_is_written,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
