"""Cold-miss load generator: N clients ask for one URL at the same instant.

Run as its own process by run.py. Each client is a process of its own (so that no
interpreter lock delays a client's clock reading): it opens its connection, sleeps until
one shared start instant (each process wakes on its own timer, so the requests leave
within a few milliseconds of each other even on two cores), then sends its request and
records, in wall-clock seconds
(comparable with nginx's `$msec` in the upstream's access log), when it sent the request,
when the first byte of the response and the first byte of the body arrived, and when the
body ended. Bodies are read into one reused buffer and dropped, so memory stays flat.
Prints the clients' records as one JSON list on stdout.
"""

import argparse
import json
import multiprocessing
import socket
import time

BUFFER = 1024 * 1024


def _client(host, port, path, start_at, timeout, results):
    record = {"status": None, "error": None, "body_bytes": 0}
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        request = (
            "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: bench-coldmiss\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n" % (path, host, port)
        ).encode()
        time.sleep(max(0.0, start_at - time.time()))
        record["t_sent"] = time.time()
        sock.sendall(request)
        _read_response(sock, record)
        sock.close()
    except (OSError, ValueError, RuntimeError) as err:
        record["error"] = "%s: %s" % (type(err).__name__, err)
    record["t_end"] = time.time()
    results.put(record)


def _read_response(sock, record):
    view = memoryview(bytearray(BUFFER))
    head = b""
    while True:
        n = sock.recv_into(view)
        now = time.time()
        if n == 0:
            raise ValueError("connection closed before the response headers ended")
        record.setdefault("t_first_byte", now)
        head += bytes(view[:n])
        end = head.find(b"\r\n\r\n")
        if end >= 0:
            break
    record["status"] = int(head.split(b" ", 2)[1])
    record["body_bytes"] = len(head) - end - 4
    if record["body_bytes"]:
        record["t_first_body"] = now
    while True:
        n = sock.recv_into(view)
        if n == 0:
            return
        if "t_first_body" not in record:
            record["t_first_body"] = time.time()
        record["body_bytes"] += n


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()

    ctx = multiprocessing.get_context("fork")
    start_at = time.time() + 1.0 + 0.02 * args.clients
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_client,
            args=(args.host, args.port, args.path, start_at, args.timeout, results),
        )
        for _ in range(args.clients)
    ]
    for proc in procs:
        proc.start()
    records = []
    deadline = time.monotonic() + args.timeout + 10
    while len(records) < len(procs) and time.monotonic() < deadline:
        try:
            records.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
        except Exception:  # queue.Empty: a client is stuck past its own timeout
            break
    for proc in procs:
        proc.join(1)
        if proc.is_alive():
            proc.kill()
    print(json.dumps(records))


if __name__ == "__main__":
    main()
