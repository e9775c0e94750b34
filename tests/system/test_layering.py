"""The module graph and the function lengths stay as DESIGN.md draws
them: scripts/deps-graph passes on src/ and fails on a tree that breaks a
rule (an upward include, a cycle within a layer, a module with no layer);
scripts/func-length fails on a function of 80 lines without a reason."""

import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DEPS = os.path.join(ROOT, "scripts", "deps-graph")
FLEN = os.path.join(ROOT, "scripts", "func-length")


def run(script, *args):
    return subprocess.run([sys.executable, script] + list(args),
                          capture_output=True, text=True, timeout=60)


def tree(tmp_path, files):
    src = tmp_path / "src"
    src.mkdir()
    for name, text in files.items():
        (src / name).write_text(text)
    return str(src)


def test_src_graph_is_one_way():
    r = run(DEPS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "UP:" not in r.stdout and "CYCLE:" not in r.stdout, r.stdout
    assert " 0 problems" in r.stdout, r.stdout
    # Nothing is excused: no edge is on the allow-list.
    assert " 0 allow-listed" in r.stdout and "allowed:" not in r.stdout, \
        r.stdout


def test_upward_include_fails(tmp_path):
    # wire (base) reaching up into session (forwarding).
    src = tree(tmp_path, {"wire.c": '#include "session.h"\n',
                          "session.h": "", "wire.h": ""})
    r = run(DEPS, "-a", "-s", src)
    assert r.returncode == 1, r.stdout
    assert "UP: wire (base) -> session (forwarding)" in r.stdout, r.stdout


def test_cycle_within_a_layer_fails(tmp_path):
    src = tree(tmp_path, {"pipe.c": '#include "session.h"\n',
                          "session.c": '#include "pipe.h"\n',
                          "pipe.h": "", "session.h": ""})
    r = run(DEPS, "-a", "-s", src)
    assert r.returncode == 1, r.stdout
    assert "CYCLE: pipe -> session -> pipe" in r.stdout, r.stdout


def test_module_without_a_layer_fails(tmp_path):
    src = tree(tmp_path, {"mystery.c": '#include "wire.h"\n',
                          "wire.h": ""})
    r = run(DEPS, "-a", "-s", src)
    assert r.returncode == 1, r.stdout
    assert "module mystery has no layer" in r.stdout, r.stdout


def test_func_length(tmp_path):
    body = "\n".join(["\tx++;"] * 80)
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "func-length"
    script.write_text(open(FLEN).read())
    tree(tmp_path, {"a.c": "static int\nshort_one(void)\n{\n\tx++;\n}\n\n"
                    "static int\nbig(void)\n{\n" + body + "\n}\n\n"
                    "/* long: one table, clearer whole. */\nstatic int\n"
                    "big_ok(void)\n{\n" + body + "\n}\n"})
    r = run(str(script))
    assert r.returncode == 1, r.stdout
    assert "src/a.c:8 big: 80 lines" in r.stdout, r.stdout
    assert "big_ok" not in r.stdout and "short_one" not in r.stdout
    assert "3 functions, 1 over" in r.stdout, r.stdout
    r = run(FLEN)
    assert r.returncode == 0, r.stdout
