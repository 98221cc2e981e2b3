"""A tiny JSON web service: `python3 server.py PORT` serves it on 127.0.0.1."""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

BOOKS = [{"id": 1, "title": "Dune"}, {"id": 2, "title": "Emma"}]


class Handler(BaseHTTPRequestHandler):
    def send_json(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/books":
            self.send_json(200, BOOKS)
        else:
            self.send_json(404, {"error": "not found"})

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
