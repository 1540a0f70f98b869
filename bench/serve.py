#!/usr/bin/env python3
"""serve.py -- the benchmark's HTTP server: a folder on 127.0.0.1 over HTTP/1.1 with
keep-alive, TCP_NODELAY, one thread per connection and a listen backlog of 128, as real
mirrors behave. (The oracle's `python3 -m http.server` speaks HTTP/1.0, closes every connection
and has a backlog of 5: more than a handful of parallel connects overflow it and wait
for the kernel's 1 s SYN retry, which measures the server rather than the client.)

Usage: serve.py PORT ROOT [LOG]
With LOG, one line per request is appended to it, flushed at once:
    <seconds since the epoch> <connection number> <method> <path> <status>
so a run's round trips and connections can be counted (bench/count-requests.py).
"""
import http.server
import itertools
import os
import sys
import threading
import time

_connections = itertools.count(1)
_log_lock = threading.Lock()
_log = None


class Handler(http.server.SimpleHTTPRequestHandler):
    # HTTP/1.1 keeps the connection open between requests; SimpleHTTPRequestHandler
    # sends Content-Length for files, which keep-alive needs.
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as nginx sets on every kept-alive connection (`tcp_nodelay on`, its
    # default). Without it the body of a small file, written after the headers, waits
    # under Nagle's algorithm for the client to acknowledge them, and a client past the
    # quick-ack start of a reused connection delays that acknowledgement up to 40 ms:
    # each request after the first on a connection stalled 40 ms, which measured this
    # server (alpine-base, tmpfs target: sysroot-mk 103 ms with it, 59 ms without).
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        self.connection_number = next(_connections)

    def log_request(self, code="-", size="-"):
        if _log is None:
            return
        line = "%.6f %d %s %s %s\n" % (
            time.time(), self.connection_number, self.command, self.path, code)
        with _log_lock:
            _log.write(line)
            _log.flush()

    def log_message(self, format, *args):
        # Access lines go through log_request; errors need no terminal noise.
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


def main():
    global _log
    port, root = int(sys.argv[1]), sys.argv[2]
    if len(sys.argv) > 3:
        _log = open(sys.argv[3], "a", buffering=1)
    os.chdir(root)
    with Server(("127.0.0.1", port), Handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
