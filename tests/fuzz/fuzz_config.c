/*
 * libFuzzer target for config_load(): the bytes become a config file.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Isrc \
 *       $(pkg-config --cflags --libs libconfig) \
 *       src/config.c src/log.c src/util.c tests/fuzz/fuzz_config.c -o fuzz_config
 *   ./fuzz_config -max_total_time=60 tests/fuzz/corpus/config
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int		 LLVMFuzzerTestOneInput(const uint8_t *, size_t);
const char	*__lsan_default_suppressions(void);

/*
 * libconfig 1.5's parser drops a string token the scanner allocated when
 * a syntax error follows it (a file holding only "x", quotes included),
 * leaking it.  That leak is libconfig's, not ours: suppress exactly that
 * stack (the scanner's string buffer; fast unwinding often stops there).
 */
const char *
__lsan_default_suppressions(void)
{
	return "leak:libconfig_yylex\nleak:strbuf_append\n";
}

static char	fuzz_path[64];

static void
fuzz_cleanup(void)
{
	if (fuzz_path[0] != '\0')
		unlink(fuzz_path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct config	*cf;
	FILE		*fp;
	char		 err[4096];
	int		 fd;

	if (fuzz_path[0] == '\0') {
		snprintf(fuzz_path, sizeof(fuzz_path),
		    "/tmp/fuzz_config.XXXXXX");
		if ((fd = mkstemp(fuzz_path)) == -1)
			abort();
		close(fd);
		atexit(fuzz_cleanup);
	}
	if ((fp = fopen(fuzz_path, "w")) == NULL)
		abort();
	if (len > 0 && fwrite(data, 1, len, fp) != len)
		abort();
	if (fclose(fp) != 0)
		abort();
	cf = config_load(fuzz_path, err, sizeof(err));
	if (cf == NULL && err[0] == '\0')
		abort();	/* every failure must say why */
	config_unref(cf);
	return 0;
}
