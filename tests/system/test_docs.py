"""The documentation says what the code does.

Behaviour proved:
- the metrics address the README suggests uses the port of the shipped
  conf/relayd.conf and of relayd.conf(5), not another one;
- relayctl(8) documents the control protocol itself (a CONTROL PROTOCOL
  section naming every request the daemon's parser knows) instead of
  sending readers to a source file;
- relayctl(8) renders its quoted words balanced: every opening double
  quote of the rendered page is closed before the next one opens (the
  put status words were once rendered as nested quotes);
- the key to file-name mapping of the store is documented in
  relayd.conf(5) under store_dir and in relayd(8) FILES, and the examples
  given there are the names conftest.store_key_filename (checked against
  src/store.c by test_store_name.py) gives;
- every man page is mandoc -Tlint clean at the warning level.
"""

import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO, store_key_filename

MAN = os.path.join(REPO, "man")


def read(*parts):
    with open(os.path.join(REPO, *parts), encoding="utf-8") as f:
        return f.read()


def render(page):
    """The page as man(1) shows it, as plain text (mandoc -Tutf8)."""
    if shutil.which("mandoc") is None:
        pytest.fail("mandoc is missing (package mandoc; make deps)")
    r = subprocess.run(["mandoc", "-Tutf8", "-Owidth=78",
                        os.path.join(MAN, page)], capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode("utf-8")
    return re.sub(r".\x08", "", text)


def test_metrics_port_agrees():
    conf = re.search(r'(?m)^#?metrics = "[^"]*:([0-9]+)";',
                     read("conf", "relayd.conf"))
    assert conf, "no metrics line in conf/relayd.conf"
    port = conf.group(1)
    readme = re.findall(r'metrics = "[^"]*:([0-9]+)"', read("README.md"))
    assert readme, "the README names no metrics address"
    assert set(readme) == {port}, (readme, port)
    man = re.findall(r"metrics = \\\(dq[^\\]*?([0-9]+)\\\(dq",
                     read("man", "relayd.conf.5"))
    assert man and set(man) == {port}, (man, port)


def test_relayctl_documents_protocol():
    src = read("man", "relayctl.8")
    assert "ctl.h" not in src and ".Pa src/" not in src
    text = render("relayctl.8")
    assert re.search(r"(?m)^CONTROL PROTOCOL$", text), "no section"
    section = text.split("CONTROL PROTOCOL", 1)[1].split("\nFILES\n")[0]
    # Every command word the daemon's request parser accepts.
    cmds = set(re.findall(r'"cmd"\s*:\s*"([a-z]+)"', read("src", "ctl.h")))
    parser = read("src", "ctlproto.c")
    cmds |= {c for c in re.findall(r'\{\s*"([a-z]+)",\s*CTL_CMD_', parser)}
    assert {"status", "put", "show", "monitor", "reload"} <= cmds, cmds
    for c in sorted(cmds):
        assert '{"cmd":"%s"' % c in section, c
    # And the final-line rule a client needs to read the answers.
    assert "final" in section and '"ok":false' in section


def test_relayctl_quotes_balanced():
    text = render("relayctl.8")
    depth = 0
    for i, ch in enumerate(text):
        if ch == "\u201c":
            assert depth == 0, "nested quote: %r" % text[i - 60:i + 60]
            depth = 1
        elif ch == "\u201d":
            assert depth == 1, "stray close: %r" % text[i - 60:i + 60]
            depth = 0
    assert depth == 0
    flat = " ".join(text.split())
    assert "(\u201cstored\u201d, \u201cforwarded\u201d or " \
        "\u201cfailed\u201d)" in flat


def test_store_names_documented():
    conf5 = " ".join(render("relayd.conf.5").split())
    start = conf5.index("store_dir = path;")
    entry = conf5[start:conf5.index("max_payload = integer;", start)]
    examples = re.findall(r"key \u2018([^\u2019]+)\u2019 is stored as "
                          r"(\S+?),", entry)
    examples += re.findall(r"\u2018([^\u2019]+)\u2019 as (\S+?)[,. ]",
                           entry)
    assert len(examples) >= 4, entry
    for key, name in examples:
        assert store_key_filename(key) == name, (key, name)
    assert "upper-case hexadecimal" in entry and "255 bytes" in entry
    relayd8 = " ".join(render("relayd.8").split())
    files = relayd8[relayd8.index("FILES"):]
    m = re.search(r"\u2018([^\u2019]+)\u2019 is stored as (\S+?) ", files)
    assert m, files
    assert store_key_filename(m.group(1)) == m.group(2)
    assert "store_dir in relayd.conf(5)" in files


@pytest.mark.parametrize("page", sorted(
    n for n in os.listdir(MAN) if re.fullmatch(r".*\.[1-9]", n)))
def test_mandoc_lint(page):
    if shutil.which("mandoc") is None:
        pytest.fail("mandoc is missing (package mandoc; make deps)")
    r = subprocess.run(["mandoc", "-Tlint", "-Wwarning",
                        os.path.join(MAN, page)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and r.stdout + r.stderr == "", \
        r.stdout + r.stderr
