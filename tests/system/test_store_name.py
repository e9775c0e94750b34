"""The fixtures find stored files under the name src/store.c gives them.

Behaviour proved: conftest.store_key_filename (used by every test that
checks a stored file's SHA-256) follows the rule in src/store.h (bytes in
[A-Za-z0-9._-] kept, every other byte and a leading '.' as %XX upper-case
hex), and gives the same name as the C store_key_filename() for a set of
awkward keys (compiled from src/store.c at test time).
"""

import os
import random
import shutil
import subprocess

import pytest

from conftest import store_key_filename

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", "..", "src"))

HARNESS = r'''
#include <stdio.h>
#include <string.h>
#include "store.h"

int
main(void)
{
	static char	line[8192], out[8192];
	static unsigned char key[4096];
	unsigned int	v;
	size_t		n, i;

	while (fgets(line, sizeof(line), stdin) != NULL) {
		n = strcspn(line, "\n");
		for (i = 0; i < n / 2; i++) {
			if (sscanf(line + 2 * i, "%2x", &v) != 1)
				return 2;
			key[i] = (unsigned char)v;
		}
		if (store_key_filename((const char *)key, n / 2, out,
		    sizeof(out)) < 0)
			printf("-1\n");
		else
			printf("%s\n", out);
	}
	return 0;
}
'''


def test_rule_examples():
    assert store_key_filename("plain-Key_1.bin") == "plain-Key_1.bin"
    assert store_key_filename("a/b c") == "a%2Fb%20c"
    assert store_key_filename(".hidden.x") == "%2Ehidden.x"
    assert store_key_filename("..") == "%2E."
    assert store_key_filename("100%") == "100%25"
    assert store_key_filename("\u00e9") == "%C3%A9"
    assert store_key_filename(b"\x00\xff") == "%00%FF"


def keys():
    rng = random.Random(9)
    ks = [b"k", b".", b"..", b"a/b", b"../etc/passwd", b"x y\tz\n",
          b"%41", b"~user", b"UPPER.lower-09_", bytes(range(1, 256)),
          "caf\u00e9/\u00fc".encode()]
    ks += [rng.randbytes(rng.randrange(1, 40)).replace(b"\n", b"n")
           for _ in range(50)]
    return [k for k in ks if k]


def test_matches_c_store_key_filename(tmp_path):
    cc = shutil.which("cc")
    assert cc, "no C compiler"
    assert os.path.exists(os.path.join(SRC, "store.c")), "src/store.c missing"
    pkgs = ["libevent", "libevent_pthreads", "libcrypto"]
    flags = subprocess.run(["pkg-config", "--cflags", "--libs"] + pkgs,
                           capture_output=True, text=True)
    assert flags.returncode == 0, flags.stderr
    src = tmp_path / "storename.c"
    src.write_text(HARNESS)
    out = str(tmp_path / "storename")
    # Only store.c: store_key_filename() is pure, so symbols the rest of
    # store.c needs from other modules may stay unresolved.
    r = subprocess.run([cc, "-std=c11", "-D_GNU_SOURCE", "-I", SRC, str(src),
                        os.path.join(SRC, "store.c"), "-o", out, "-pthread",
                        "-no-pie", "-Wl,-z,lazy",
                        "-Wl,--unresolved-symbols=ignore-all"] +
                       flags.stdout.split(), capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("compiling store_key_filename harness failed:\n" +
                    r.stderr[-3000:])
    ks = keys()
    res = subprocess.run([out], input="\n".join(k.hex() for k in ks) + "\n",
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    got = res.stdout.splitlines()
    want = [store_key_filename(k) for k in ks]
    bad = [(k, w, g) for k, w, g in zip(ks, want, got) if w != g]
    assert len(got) == len(ks) and not bad, bad[:5]
