"""A registry token server for the tests (the Docker token authentication flow):
GET /token?service=S&scope=T:NAME:ACTIONS with optional Basic credentials answers a
JWT (RS256, signed with `openssl dgst`, the self-signed certificate in `x5c`) that the
registry checks against its rootcertbundle. The user named on the command line gets every
action asked for; anonymous callers get `pull` on `public/*` only; wrong credentials 401.

usage: token_server.py KEY.pem CERT_DER_BASE64 ISSUER USER PASSWORD  (prints its port)
"""
import base64
import json
import subprocess
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

KEY, CERT, ISSUER, USER, PASSWORD = sys.argv[1:6]


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        query = parse_qs(urlparse(self.path).query)
        user = ""
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if (name, password) != (USER, PASSWORD):
                return self.reply(401, {"details": "invalid username or password"})
            user = name
        access = []
        for scope in " ".join(query.get("scope", [])).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            actions = actions.split(",")
            if not user:
                actions = [a for a in actions if a == "pull" and name.startswith("public/")]
            access.append({"type": kind, "name": name, "actions": actions})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [CERT]}
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": query.get("service", [""])[0],
            "exp": now + 600,
            "nbf": now - 60,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", KEY],
            input=signing.encode(),
            capture_output=True,
            check=True,
        ).stdout
        token = signing + "." + b64(sig)
        self.reply(200, {"token": token, "access_token": token, "expires_in": 600})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
