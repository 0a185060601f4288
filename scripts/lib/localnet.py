"""Loopback helpers the local runs share (scripts/demo/demo.py, scripts/lib/check_dashboards.py):
free ports for the services they start, and a GET that reports failure as a value."""

import random
import socket
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_range(count):
    """A base such that base+1..base+count are free, below the ephemeral range (32768+), so the
    kernel does not hand one of them to an outgoing connection meanwhile."""
    for _ in range(200):
        base = 20000 + random.randrange(0, 12000, 10)
        held = []
        try:
            for i in range(1, count + 1):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError(f"no free range of {count} ports between 20000 and 32000")


def http_get(url, timeout=5):
    """(status, body); (None, "") when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return None, ""
