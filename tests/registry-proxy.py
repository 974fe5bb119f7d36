#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A TCP proxy for the registry fault tests (TLS passes through untouched):
#   registry-proxy.py LISTEN_PORT TARGET_PORT MODE LIMIT [NCONN]
#   MODE cut-down: each connection carries at most LIMIT bytes to the client,
#                  then both sides are closed (a dropped connection);
#   MODE cut-up:   the same for bytes from the client (a dropped upload);
#   MODE die:      after LIMIT bytes to clients in all, the proxy exits
#                  (the registry "killed" mid-transfer);
#   MODE mute:     accepts connections and never answers (a hung registry).
# NCONN: only the first NCONN connections are cut (default: all).
# Prints "ready" once listening.
import socket
import sys
import threading
import os

listen_port, target_port, mode, limit = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
ncut = int(sys.argv[5]) if len(sys.argv) > 5 else -1
total = [0]
lock = threading.Lock()
held = []


def pump(src, dst, budget):
    sent = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if budget is not None:
                data = data[: max(0, budget - sent)]
            if not data:
                break
            dst.sendall(data)
            sent += len(data)
            if budget is not None and sent >= budget:
                break
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def pump_die(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            with lock:
                left = limit - total[0]
                data = data[: max(0, left)]
                total[0] += len(data)
            if data:
                dst.sendall(data)
            if total[0] >= limit:
                os._exit(0)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.close()
        except OSError:
            pass


def serve(c):
    if mode == "mute":
        held.append(c)
        return
    u = socket.create_connection(("127.0.0.1", target_port))
    if mode == "die":
        threading.Thread(target=pump, args=(c, u, None), daemon=True).start()
        threading.Thread(target=pump_die, args=(u, c), daemon=True).start()
        return
    global ncut
    cut = ncut != 0
    if ncut > 0:
        ncut -= 1
    down = limit if mode == "cut-down" and cut else None
    up = limit if mode == "cut-up" and cut else None
    threading.Thread(target=pump, args=(c, u, up), daemon=True).start()
    threading.Thread(target=pump, args=(u, c, down), daemon=True).start()


ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", listen_port))
ls.listen(64)
print("ready", flush=True)
while True:
    c, _ = ls.accept()
    serve(c)
