#!/usr/bin/env python3
"""Local receivers for alert delivery tests, on 127.0.0.1 only.

  webhook  an HTTP server that records every POST (headers, body, arrival
           time) and can be told to answer 500 to the next N requests, or to
           hold every answer S seconds (a receiver that hangs):
             POST /_fail {"count": N}     POST /_hang {"seconds": S}
             GET /_received  (JSON list)
  smtp     a minimal SMTP server (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
           QUIT, AUTH PLAIN/LOGIN; no STARTTLS) that records each message with
           its envelope and peer, and each login:
             GET /_mail, GET /_auth on the webhook server (JSON lists)

Usage: alert_sinks.py PORTFILE [--max-seconds N] [--public-host ADDR]
writes "<http port> <smtp port> <public smtp port>" to PORTFILE (the third
is an SMTP server on ADDR, e.g. the machine's non-loopback address, 0 when
not asked for) and its pid to PORTFILE.pid; stops after --max-seconds
(default 1800).
"""
import base64
import time
import json
import os
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
RECEIVED = []
MAIL = []
AUTH = []
FAIL = {"count": 0}
HANG = {"seconds": 0.0}


class Web(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with LOCK:
            if self.path == "/_received":
                return self.reply(200, json.dumps(RECEIVED))
            if self.path == "/_mail":
                return self.reply(200, json.dumps(MAIL))
            if self.path == "/_auth":
                return self.reply(200, json.dumps(AUTH))
        self.reply(404, "{}")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if self.path == "/_fail":
            with LOCK:
                FAIL["count"] = json.loads(body)["count"]
            return self.reply(200, "{}")
        if self.path == "/_hang":
            with LOCK:
                HANG["seconds"] = float(json.loads(body)["seconds"])
            return self.reply(200, "{}")
        arrived = time.time()
        with LOCK:
            hang = HANG["seconds"]
        if hang > 0:
            time.sleep(hang)
        with LOCK:
            status = 500 if FAIL["count"] > 0 else 200
            if FAIL["count"] > 0:
                FAIL["count"] -= 1
            RECEIVED.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                             "body": body, "status": status, "at": arrived})
        self.reply(status, '{"ok": %s}' % ("false" if status == 500 else "true"))


class Smtp(socketserver.StreamRequestHandler):
    def say(self, line):
        self.wfile.write((line + "\r\n").encode())

    def handle(self):
        self.say("220 localhost sink ESMTP")
        mail_from, rcpt = None, []
        peer = self.client_address[0]
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").strip()
            up = cmd.upper()
            if up.startswith("EHLO"):
                self.wfile.write(b"250-localhost\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
            elif up.startswith("AUTH PLAIN"):
                arg = cmd[10:].strip()
                if not arg:
                    self.say("334 ")
                    arg = self.rfile.readline().decode(errors="replace").strip()
                user = base64.b64decode(arg + "==").split(b"\0")[1].decode(errors="replace") if arg else ""
                with LOCK:
                    AUTH.append({"peer": peer, "mechanism": "PLAIN", "user": user})
                self.say("235 Authentication successful")
            elif up.startswith("AUTH LOGIN"):
                self.say("334 VXNlcm5hbWU6")
                user = base64.b64decode(self.rfile.readline().strip() + b"==").decode(errors="replace")
                self.say("334 UGFzc3dvcmQ6")
                self.rfile.readline()
                with LOCK:
                    AUTH.append({"peer": peer, "mechanism": "LOGIN", "user": user})
                self.say("235 Authentication successful")
            elif up.startswith("HELO") or up.startswith("NOOP") or up.startswith("RSET"):
                self.say("250 OK")
            elif up.startswith("MAIL FROM:"):
                mail_from, rcpt = cmd[10:].strip().strip("<>"), []
                self.say("250 OK")
            elif up.startswith("RCPT TO:"):
                rcpt.append(cmd[8:].strip().strip("<>"))
                self.say("250 OK")
            elif up == "DATA":
                self.say("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while True:
                    l = self.rfile.readline()
                    if not l or l in (b".\r\n", b".\n"):
                        break
                    lines.append(l.decode(errors="replace"))
                with LOCK:
                    MAIL.append({"from": mail_from, "rcpt": rcpt, "data": "".join(lines), "peer": peer})
                self.say("250 OK queued")
            elif up == "QUIT":
                self.say("221 Bye")
                return
            else:
                self.say("502 Command not implemented")


class ThreadingTCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    portfile = sys.argv[1]
    args = sys.argv[2:]
    opt = {args[i]: args[i + 1] for i in range(0, len(args) - 1, 2)}
    max_seconds = int(opt.get("--max-seconds", 1800))
    web = ThreadingHTTPServer(("127.0.0.1", 0), Web)
    web.daemon_threads = True
    smtp = ThreadingTCP(("127.0.0.1", 0), Smtp)
    threading.Thread(target=smtp.serve_forever, daemon=True).start()
    public_port = 0
    if opt.get("--public-host"):
        public = ThreadingTCP((opt["--public-host"], 0), Smtp)
        threading.Thread(target=public.serve_forever, daemon=True).start()
        public_port = public.server_address[1]
    with open(portfile + ".pid", "w") as f:
        f.write(str(os.getpid()))
    with open(portfile + ".tmp", "w") as f:
        f.write("%d %d %d" % (web.server_address[1], smtp.server_address[1], public_port))
    os.replace(portfile + ".tmp", portfile)
    timer = threading.Timer(max_seconds, web.shutdown)
    timer.daemon = True
    timer.start()
    web.serve_forever()


if __name__ == "__main__":
    main()
