#!/usr/bin/env python3
"""Local receivers for alert delivery tests, on 127.0.0.1 only.

  webhook  an HTTP server that records every POST (headers and body) and can
           be told to answer 500 to the next N requests:
             POST /_fail {"count": N}     GET /_received  (JSON list)
  smtp     a minimal SMTP server (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
           QUIT) that records each message with its envelope:
             GET /_mail on the webhook server (JSON list)

Usage: alert_sinks.py PORTFILE   writes "<http port> <smtp port>" to PORTFILE
and its pid to PORTFILE.pid; stops after --max-seconds (default 1800).
"""
import json
import os
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
RECEIVED = []
MAIL = []
FAIL = {"count": 0}


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
        self.reply(404, "{}")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if self.path == "/_fail":
            with LOCK:
                FAIL["count"] = json.loads(body)["count"]
            return self.reply(200, "{}")
        with LOCK:
            status = 500 if FAIL["count"] > 0 else 200
            if FAIL["count"] > 0:
                FAIL["count"] -= 1
            RECEIVED.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                             "body": body, "status": status})
        self.reply(status, '{"ok": %s}' % ("false" if status == 500 else "true"))


class Smtp(socketserver.StreamRequestHandler):
    def say(self, line):
        self.wfile.write((line + "\r\n").encode())

    def handle(self):
        self.say("220 localhost sink ESMTP")
        mail_from, rcpt = None, []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").strip()
            up = cmd.upper()
            if up.startswith("EHLO"):
                self.wfile.write(b"250-localhost\r\n250 8BITMIME\r\n")
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
                    MAIL.append({"from": mail_from, "rcpt": rcpt, "data": "".join(lines)})
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
    max_seconds = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--max-seconds" else 1800
    web = ThreadingHTTPServer(("127.0.0.1", 0), Web)
    web.daemon_threads = True
    smtp = ThreadingTCP(("127.0.0.1", 0), Smtp)
    threading.Thread(target=smtp.serve_forever, daemon=True).start()
    with open(portfile + ".pid", "w") as f:
        f.write(str(os.getpid()))
    with open(portfile + ".tmp", "w") as f:
        f.write("%d %d" % (web.server_address[1], smtp.server_address[1]))
    os.replace(portfile + ".tmp", portfile)
    timer = threading.Timer(max_seconds, web.shutdown)
    timer.daemon = True
    timer.start()
    web.serve_forever()


if __name__ == "__main__":
    main()
