#!/usr/bin/env python3
"""A local Web Push endpoint standing in for a browser's push service and
the browser itself, to check Candor's Web Push independently:

- it makes a P-256 key pair and an auth secret, as a browser does for a
  subscription, and prints the subscription (endpoint, keys) as JSON;
- it serves HTTPS (a self-signed certificate written to CERT_OUT);
- for every POST it checks the VAPID header (RFC 8292: ES256 JWT over the
  endpoint's origin, signed by the key in k=), decrypts the body with the
  `http_ece` package (RFC 8188/8291, aes128gcm) and prints one JSON line.

Nothing here is Candor code: pyca/cryptography and http_ece from PyPI.
"""

import base64
import datetime
import ipaddress
import json
import os
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


cert_out = os.environ["CERT_OUT"]
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "push.test")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(minutes=5))
    .not_valid_after(now + datetime.timedelta(days=1))
    .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    .sign(key, hashes.SHA256())
)
with open(cert_out, "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
key_pem = cert_out + ".key"
with open(key_pem, "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

# The "browser's" subscription keys.
ua_key = ec.generate_private_key(ec.SECP256R1())
ua_public = ua_key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
auth = os.urandom(16)
lock = threading.Lock()


def check_vapid(header, origin):
    # "vapid t=<jwt>, k=<key>"
    if not header.startswith("vapid "):
        return "no vapid scheme"
    parts = dict(p.strip().split("=", 1) for p in header[6:].split(","))
    h, c, s = parts["t"].split(".")
    claims = json.loads(unb64u(c))
    if json.loads(unb64u(h)).get("alg") != "ES256":
        return "alg"
    if claims.get("aud") != origin:
        return f"aud {claims.get('aud')} != {origin}"
    if claims.get("exp", 0) < now.timestamp() or claims.get("exp", 0) > now.timestamp() + 86400 + 600:
        return "exp"
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(parts["k"]))
    sig = unb64u(s)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    pub.verify(der, f"{h}.{c}".encode(), ec.ECDSA(hashes.SHA256()))
    return "ok"


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(n)
        host, port = self.server.server_address[:2]
        try:
            vapid = check_vapid(self.headers.get("authorization", ""), f"https://{host}:{port}")
        except Exception as e:  # a bad signature raises
            vapid = f"invalid: {e!r}"
        try:
            plain = http_ece.decrypt(body, private_key=ua_key, auth_secret=auth, version="aes128gcm").decode()
        except Exception as e:
            plain = None
            vapid += f"; decrypt failed: {e!r}"
        line = {
            "path": self.path,
            "vapid": vapid,
            "encoding": self.headers.get("content-encoding"),
            "ttl": self.headers.get("ttl"),
            "plaintext": plain,
            "body_bytes": len(body),
        }
        with lock:
            print(json.dumps(line), flush=True)
        self.send_response(201)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert_out, key_pem)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
port = server.server_address[1]
print(json.dumps({"subscription": {
    "endpoint": f"https://127.0.0.1:{port}/push/device-1",
    "keys": {"p256dh": b64u(ua_public), "auth": b64u(auth)},
}}), flush=True)
server.serve_forever()
