"""A DPoP client for Portcullis (RFC 9449) in Python with joserfc.

It gets a DPoP-bound access token with the client-credentials grant and
calls a resource server with it, a fresh proof per request. A server that
asks for a nonce (`use_dpop_nonce` and a `DPoP-Nonce` header) is answered
by one retry with that nonce.

    pip install joserfc==1.8.0
    export PORTCULLIS_CLIENT_SECRET=...
    python dpop_client.py http://127.0.0.1:8080 CLIENT_ID http://127.0.0.1:3000/orders
"""

import base64
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from joserfc import jwt
from joserfc.jwk import ECKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DpopClient:
    def __init__(self, issuer, client_id, client_secret, clock=time.time):
        self.token_endpoint = issuer.rstrip("/") + "/token"
        self.credentials = (client_id, client_secret)
        self.key = ECKey.generate_key("P-256")  # one key per client process
        self.clock = clock
        self.nonces = {}  # server origin -> last DPoP-Nonce it sent

    def proof(self, method, url, access_token=None):
        """A DPoP proof JWT for one request (RFC 9449 §4.2)."""
        claims = {
            "jti": str(uuid.uuid4()),
            "htm": method,
            "htu": url.split("?")[0].split("#")[0],
            "iat": int(self.clock()),
        }
        if access_token is not None:
            claims["ath"] = b64url(hashlib.sha256(access_token.encode()).digest())
        nonce = self.nonces.get(origin(url))
        if nonce is not None:
            claims["nonce"] = nonce
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.as_dict(private=False)}
        return jwt.encode(header, claims, self.key)

    def send(self, method, url, headers, body=None, access_token=None):
        """Sends with a fresh proof; retries once when the server asks for a nonce."""
        for attempt in range(2):
            proof = self.proof(method, url, access_token)
            request = urllib.request.Request(url, data=body, method=method, headers={**headers, "DPoP": proof})
            try:
                with urllib.request.urlopen(request) as response:
                    self.remember_nonce(url, response.headers)
                    return response.status, json.loads(response.read() or b"null")
            except urllib.error.HTTPError as error:
                answer = error.read().decode()
                asked = "use_dpop_nonce" in answer + error.headers.get("WWW-Authenticate", "")
                if self.remember_nonce(url, error.headers) and asked and attempt == 0:
                    continue  # the token endpoint (400) or the resource (401) wants a nonce
                return error.code, answer

    def remember_nonce(self, url, headers):
        nonce = headers.get("DPoP-Nonce")
        if nonce:
            self.nonces[origin(url)] = nonce
        return bool(nonce)

    def token(self, **form):
        """A DPoP-bound token (client_credentials unless another grant is given)."""
        form.setdefault("grant_type", "client_credentials")
        user, password = (urllib.parse.quote(c, safe="") for c in self.credentials)
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        status, body = self.send(
            "POST",
            self.token_endpoint,
            {"Authorization": "Basic " + basic, "Content-Type": "application/x-www-form-urlencoded"},
            urllib.parse.urlencode(form).encode(),
        )
        if status != 200 or body["token_type"] != "DPoP":
            raise RuntimeError(f"token request failed: {status} {body}")
        return body

    def get(self, url, access_token):
        """GET a protected resource with the DPoP-bound token."""
        return self.send("GET", url, {"Authorization": "DPoP " + access_token}, access_token=access_token)

    def thumbprint(self):
        """The key's RFC 7638 thumbprint: the token's cnf.jkt."""
        return self.key.thumbprint()


def origin(url):
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


if __name__ == "__main__":
    issuer, client_id, resource = sys.argv[1:4]
    # Tests pass the server's clock; real clients use their own.
    now = float(os.environ["DPOP_CLIENT_NOW"]) if "DPOP_CLIENT_NOW" in os.environ else None
    client = DpopClient(issuer, client_id, os.environ["PORTCULLIS_CLIENT_SECRET"],
                        clock=(lambda: now) if now is not None else time.time)
    token = client.token()
    status, body = client.get(resource, token["access_token"])
    print(json.dumps({"token_type": token["token_type"], "jkt": client.thumbprint(),
                      "access_token": token["access_token"], "resource_status": status, "resource": body}))
