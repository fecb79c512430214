"""A small HTTP server standing in for a Prometheus Pushgateway or a push
monitor in the `mailedge roundtrip` tests (tests/integration and
tests/interop): it records every request and answers a scripted status."""

import http.server
import threading


class Receiver:
    """Records (method, path, body, headers) of each request on ip; answers
    the statuses of `script` in turn, then `default`."""

    def __init__(self, ip, script=(), default=200):
        self.requests = []
        self.script = list(script)
        self.default = default
        self.lock = threading.Lock()
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
                with rec.lock:
                    rec.requests.append((self.command, self.path, body, dict(self.headers)))
                    status = rec.script.pop(0) if rec.script else rec.default
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_PUT = do_POST = _answer

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((ip, 0), Handler)
        self.ip, self.port = ip, self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path=""):
        return "http://%s:%d%s" % (self.ip, self.port, path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)
