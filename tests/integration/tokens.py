"""Keys and tokens for the security integration tests.

Keys are made at test time (RSA-2048, EC P-256, random HS256 secrets) and written as PEM files
where the daemon can read them. Well-formed tokens are signed with PyJWT; the forged ones that
PyJWT refuses to make (alg "none", an HS256 token whose HMAC key is an RSA public key PEM) are
put together by hand here, exactly as an attacker would.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_secret():
    """A random HS256 secret of 48 printable bytes (no blanks, so it fits a config line)."""
    return secrets.token_urlsafe(36)


class KeyPair:
    """A private key and its public PEM file (what jwt_public_keys names)."""

    def __init__(self, kind, directory, name):
        if kind == "rsa":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.alg = "RS256"
        elif kind == "ec":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.alg = "ES256"
        else:
            raise ValueError(kind)
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.private_pem = self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        self.path = os.path.join(str(directory), f"{name}.pub.pem")
        with open(self.path, "wb") as f:
            f.write(self.public_pem)


def claims(sub="alice", ttl=300, now=None, **extra):
    """Standard claims: sub, iat, exp = now + ttl; extra claims added (None removes one)."""
    now = int(time.time()) if now is None else now
    c = {"sub": sub, "iat": now, "exp": now + ttl}
    for k, v in extra.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def sign(payload, key, alg, kid=None):
    """A token signed by PyJWT. key: a KeyPair (its private key) or an HS256 secret (str)."""
    headers = {"kid": kid} if kid is not None else None
    material = key.private_pem if isinstance(key, KeyPair) else key
    return jwt.encode(payload, material, algorithm=alg, headers=headers)


def hs256_raw(payload, key_bytes, header=None):
    """An HS256 token HMAC'd with arbitrary bytes (PyJWT refuses a PEM as an HMAC secret)."""
    h = {"alg": "HS256", "typ": "JWT"}
    h.update(header or {})
    signing_input = (b64url(json.dumps(h, separators=(",", ":")).encode()) + "."
                     + b64url(json.dumps(payload, separators=(",", ":")).encode()))
    mac = hmac.new(key_bytes, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def alg_none(payload, header=None):
    """An unsigned token: alg "none", empty signature."""
    h = {"alg": "none", "typ": "JWT"}
    h.update(header or {})
    return (b64url(json.dumps(h, separators=(",", ":")).encode()) + "."
            + b64url(json.dumps(payload, separators=(",", ":")).encode()) + ".")


def tamper_payload(token, **changes):
    """The same header and signature over a changed payload (the signature no longer fits)."""
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload.update(changes)
    return head + "." + b64url(json.dumps(payload, separators=(",", ":")).encode()) + "." + sig
