"""A viewer that reads 20 kB/s from a stream URL until stopped (for bench/run.py --slow)."""

import socket
import sys
import time

from yarl import URL

url = URL(sys.argv[1])
with socket.create_connection((url.host, url.port)) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.sendall(f"GET {url.path_qs} HTTP/1.1\r\nHost: {url.host}\r\n\r\n".encode())
    while s.recv(2000):
        time.sleep(0.1)  # 2000 bytes per 0.1 s: 20 kB/s
