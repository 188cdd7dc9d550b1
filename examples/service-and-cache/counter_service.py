"""A project-scoped service: counts requests on 127.0.0.1:7070 (tasks reach it on localhost).

`python3 counter_service.py --check` is its healthcheck: exit 0 once the service answers.
"""
import http.server
import sys
import urllib.request

PORT = 7070

if "--check" in sys.argv:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=2).read()
    except OSError:
        sys.exit(1)
    sys.exit(0)

count = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global count
        if self.path != "/health":
            count += 1
        body = str(count).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
