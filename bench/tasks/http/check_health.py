"""Starts server.py on a free port and asks GET /health; exit 0 when it answers 200 {"status": "ok"}."""
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
server = subprocess.Popen([sys.executable, "server.py", str(port)])
try:
    for _ in range(50):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
                body = json.loads(reply.read())
                print(f"GET /health -> {reply.status} {body}")
                sys.exit(0 if body == {"status": "ok"} else 1)
        except urllib.error.HTTPError as error:
            print(f"GET /health -> {error.code} {error.read().decode()}")
            sys.exit(1)
        except OSError:
            if server.poll() is not None:
                print(f"server.py exited with code {server.returncode}")
                sys.exit(1)
            time.sleep(0.1)
    print("server.py did not answer")
    sys.exit(1)
finally:
    server.kill()
