"""The conformance suite and the page's CONFORMANCE section agree.

man/relayd-protocol.7 lists, for each rule of its Errors, Stream
lifecycle, Flow control and Results sections, the test that checks it
(`.It Li test_name`).  Every listed test must exist in a
test_protocol_*.py file, and every test of those files must be listed,
so a rule without a test, or a test without a rule, shows here.
"""

import ast
import glob
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = os.path.join(HERE, "..", "..", "man", "relayd-protocol.7")
SECTIONS = ("Errors", "Stream lifecycle", "Flow control", "Results")


def listed():
    """{test name: section} from the page's CONFORMANCE section."""
    text = open(PAGE).read()
    conf = text[text.index(".Sh CONFORMANCE"):]
    conf = conf[:conf.index("\n.Sh ", 1)]
    out, section = {}, None
    for line in conf.splitlines():
        m = re.match(r"^\.Sx (.+?) :$", line)
        if m:
            section = m.group(1)
        m = re.match(r"^\.It Li (test_\w+)$", line)
        if m:
            assert section in SECTIONS, line
            assert m.group(1) not in out, "listed twice: " + m.group(1)
            out[m.group(1)] = section
    return out


def defined():
    names = {}
    for path in glob.glob(os.path.join(HERE, "test_protocol_*.py")):
        if path.endswith("test_protocol_index.py"):
            continue
        tree = ast.parse(open(path).read())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and \
                    node.name.startswith("test_"):
                assert node.name not in names, "defined twice: " + node.name
                names[node.name] = os.path.basename(path)
    return names


PREFIX = {"Errors": "test_err_", "Stream lifecycle": "test_life_",
          "Flow control": "test_flow_", "Results": "test_res_"}


def test_every_rule_has_a_test():
    missing = sorted(set(listed()) - set(defined()))
    assert not missing, "listed in relayd-protocol.7, no test: %s" % missing


def test_every_test_has_a_rule():
    extra = sorted(set(defined()) - set(listed()))
    assert not extra, "tests not listed in relayd-protocol.7: %s" % extra


def test_every_section_covered():
    got = listed()
    for section in SECTIONS:
        assert any(s == section for s in got.values()), section
    for name, section in got.items():
        assert name.startswith(PREFIX[section]), (name, section)
