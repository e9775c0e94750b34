"""relayctl monitor does not repeat identical progress lines.

Behaviour proved (a fake relayd plays the events, so the times are the
events' own and nothing waits): a stream-progress line that says the same
as the last one shown for that stream is left out; a change in its bytes
is shown at once; another stream's identical line is its own; a stalled
stream still gets one line (with unchanged_s=N, the seconds since it last
changed) once 10 s of event time have passed since the last line shown;
after stream-done the stream is forgotten; every other event is shown as
before; -j still prints every line relayd sent.
"""

import json
import time

from test_relayctl import PUT_ID, fake, run  # noqa: F401 (the fixture)

T0 = 1700000000000000


def progress(stream, sec, bytes_in, size=1000):
    return {"event": "stream-progress", "time_us": T0 + int(sec * 1e6),
            "stream": stream, "key": "k%d" % stream, "bytes_in": bytes_in,
            "size": size}


def stamp(sec):
    us = T0 + int(sec * 1e6)
    return "%s.%03d" % (time.strftime("%H:%M:%S",
                                      time.localtime(us // 1000000)),
                        (us // 1000) % 1000)


def line(stream, sec, bytes_in, extra=""):
    return "%s stream-progress stream=%d key=k%d size=1000 bytes_in=%d%s" % (
        stamp(sec), stream, stream, bytes_in, extra)


def test_identical_progress_lines_are_not_repeated(fake):  # noqa: F811
    events = [{"ok": True, "event": "monitoring"},
              {"event": "stream-opened", "time_us": T0, "stream": 1,
               "put_id": PUT_ID, "key": "k1", "size": 1000, "from": "up"}]
    events += [progress(1, s, 100) for s in (1, 2, 3, 4)]
    events += [progress(2, 4.5, 100), progress(2, 5, 100)]
    events += [progress(1, 5, 200), progress(1, 6, 200)]
    # Stalled from 5 s on: one line at 15 s, then nothing until 25 s.
    events += [progress(1, s, 200) for s in range(7, 26)]
    events += [{"event": "stream-done", "time_us": T0 + 26000000,
                "stream": 1, "key": "k1", "ok": True},
               progress(1, 27, 200),
               {"ok": True, "end": "relayd stopping"}]
    f = fake(events)
    r = run(f.path, "monitor")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out == [
        "%s stream-opened stream=1 key=k1 size=1000 from=up put_id=%s"
        % (stamp(0), PUT_ID),
        line(1, 1, 100),
        line(2, 4.5, 100),
        line(1, 5, 200),
        line(1, 15, 200, " unchanged_s=10"),
        line(1, 25, 200, " unchanged_s=20"),
        "%s stream-done stream=1 key=k1 ok=true" % stamp(26),
        line(1, 27, 200),
        "relayd closed the monitor: relayd stopping",
    ], "\n".join(out)

    r = run(f.path, "-j", "monitor")
    assert r.returncode == 0, r.stderr
    assert [json.loads(ln) for ln in r.stdout.splitlines()] == events
