"""A small but real OAuth 2.1 authorization server on a loopback port, for the authorization tests.

``Issuer`` serves, from a thread:

- ``/.well-known/oauth-authorization-server`` (RFC 8414): the issuer, its endpoints, what it supports;
- ``/jwks``: the public keys (RSA ``rsa`` and EC ``ec``) that sign its tokens;
- ``/register`` (RFC 7591 dynamic client registration): a confidential client (``client_secret_basic``
  or ``client_secret_post``) or a public one (``none``);
- ``/authorize``: the authorization-code grant with PKCE (S256 only, required), for a registered
  ``redirect_uri``; the user is ``Issuer.user``, who consents to anything, so the answer is at once a
  302 to the redirect URI with ``code``, ``state`` and ``iss`` (RFC 9207);
- ``/token``: ``authorization_code`` (the code once, its client, its redirect URI, the PKCE verifier and
  the resource it was issued for) and ``client_credentials`` (confidential clients), answering a JWT
  signed with the RSA key whose ``aud`` is the RFC 8707 ``resource`` the client asked for.

Every refusal is the RFC 6749 error a real server would give (``invalid_client``, ``invalid_grant``...),
so a client bug shows as a failed flow, not as a token the server should not have issued. ``log`` lists
the requests in order (``GET /authorize``...); ``issued`` the claims of each access token. Tests also
mint tokens directly with ``token()`` (and the two forged kinds) to test the resource server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import secrets
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

CODE_LIFETIME = 60
TOKEN_LIFETIME = 300
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")


class OAuthError(Exception):
    """An RFC 6749 error answer: ``status`` with ``{"error": code, "error_description": ...}``."""

    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.code, self.status = code, status


class Issuer:
    """The authorization server (see the module); ``close()`` stops it."""

    def __init__(self, user: str = "oauth-user") -> None:
        self.user = user
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys = [
            {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key())), "kid": "rsa"},
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key())), "kid": "ec"},
        ]
        self.jwks_fetches = 0
        self.clients: dict[str, dict[str, Any]] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.log: list[str] = []
        self.issued: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": self.url + "/jwks",
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "registration_endpoint": self.url + "/register",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "authorization_response_iss_parameter_supported": True,
        }

    def add_client(self, client_id: str, secret: str) -> None:
        """A pre-registered confidential client for the client-credentials grant."""
        with self._lock:
            self.clients[client_id] = {
                "client_id": client_id,
                "client_secret": secret,
                "redirect_uris": [],
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_basic",
            }

    # --- the endpoints ---

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        method = body.get("token_endpoint_auth_method") or "client_secret_basic"
        if method not in AUTH_METHODS:
            raise OAuthError("invalid_client_metadata", f"token_endpoint_auth_method {method!r}")
        uris = body.get("redirect_uris")
        if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
            raise OAuthError("invalid_redirect_uri", "redirect_uris must be a non-empty list")
        client = {
            **body,
            "client_id": f"client-{uuid.uuid4().hex[:12]}",
            "client_id_issued_at": int(time.time()),
            "token_endpoint_auth_method": method,
            "grant_types": body.get("grant_types") or ["authorization_code"],
            "response_types": ["code"],
        }
        if method != "none":
            client["client_secret"] = secrets.token_urlsafe(24)
            client["client_secret_expires_at"] = 0
        with self._lock:
            self.clients[client["client_id"]] = client
        return client

    def authorize(self, query: dict[str, str]) -> str:
        """The redirect URI with the code (the user consents at once)."""
        client = self.clients.get(query.get("client_id", ""))
        if client is None:
            raise OAuthError("invalid_client", "unknown client_id")
        if query.get("redirect_uri") not in client["redirect_uris"]:
            raise OAuthError("invalid_request", "redirect_uri is not registered for this client")
        if query.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "only code")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            raise OAuthError("invalid_request", "PKCE with S256 is required")
        if not query.get("resource"):
            raise OAuthError("invalid_target", "resource (RFC 8707) is required")
        code = secrets.token_urlsafe(24)
        with self._lock:
            self.codes[code] = {
                "client_id": client["client_id"],
                "redirect_uri": query["redirect_uri"],
                "challenge": query["code_challenge"],
                "scope": query.get("scope", ""),
                "resource": query["resource"],
                "expires": time.time() + CODE_LIFETIME,
            }
        answer = {"code": code, "iss": self.url}
        if "state" in query:
            answer["state"] = query["state"]
        return f"{query['redirect_uri']}?{urlencode(answer)}"

    def token_endpoint(self, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        client = self._authenticate(form, authorization)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            with self._lock:
                issued = self.codes.pop(form.get("code", ""), None)  # a code is used once
            if issued is None or issued["expires"] < time.time():
                raise OAuthError("invalid_grant", "unknown, used or expired code")
            if issued["client_id"] != client["client_id"]:
                raise OAuthError("invalid_grant", "the code was issued to another client")
            if form.get("redirect_uri") != issued["redirect_uri"]:
                raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != issued["challenge"]:
                raise OAuthError("invalid_grant", "PKCE verifier does not match the challenge")
            if form.get("resource", issued["resource"]) != issued["resource"]:
                raise OAuthError("invalid_target", "resource differs from the authorization request")
            subject, scope, resource = self.user, issued["scope"], issued["resource"]
        elif grant == "client_credentials":
            if client["token_endpoint_auth_method"] == "none":
                raise OAuthError("unauthorized_client", "a public client cannot use client_credentials")
            subject, scope, resource = client["client_id"], form.get("scope", ""), form.get("resource")
            if not resource:
                raise OAuthError("invalid_target", "resource (RFC 8707) is required")
        else:
            raise OAuthError("unsupported_grant_type", f"grant_type {grant!r}")
        token = self.token(resource, sub=subject, scope=scope, client_id=client["client_id"])
        return {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_LIFETIME, "scope": scope}

    def _authenticate(self, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        """The client of a token request, by its authentication method (RFC 6749 §2.3)."""
        if authorization and authorization.lower().startswith("basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            client_id, secret, method = unquote(client_id), unquote(secret), "client_secret_basic"
        elif "client_secret" in form:
            client_id, secret, method = form.get("client_id", ""), form["client_secret"], "client_secret_post"
        else:
            client_id, secret, method = form.get("client_id", ""), None, "none"
        client = self.clients.get(client_id)
        if client is None or client["token_endpoint_auth_method"] != method:
            raise OAuthError("invalid_client", f"unknown client or not registered for {method}", 401)
        if method != "none" and not hmac.compare_digest(client["client_secret"], secret or ""):
            raise OAuthError("invalid_client", "wrong client secret", 401)
        return client

    # --- tokens minted directly, for the resource server's tests ---

    def token(
        self, audience: str, *, key: Any = None, kid: str = "rsa", algorithm: str = "RS256", **claims: Any
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": self.url,
            "sub": claims.pop("sub", f"user-{uuid.uuid4().hex[:8]}"),
            "aud": audience,
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
            "scope": "mcp:use",
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        signer = key if key is not None else (self.ec if algorithm.startswith("ES") else self.rsa)
        self.issued.append(payload)
        return jwt.encode(payload, signer, algorithm=algorithm, headers={"kid": kid})

    def hmac_token(self, audience: str) -> str:
        """HS256 with the issuer's public key as the secret: the algorithm-confusion attack."""
        secret = self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = _b64({"alg": "HS256", "typ": "JWT", "kid": "rsa"})
        now = int(time.time())
        body = _b64(
            {"iss": self.url, "sub": "mallory", "aud": audience, "exp": now + 300, "scope": "mcp:use"}
        )
        signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
        return f"{header}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"

    def none_token(self, audience: str) -> str:
        header = _b64({"alg": "none", "typ": "JWT", "kid": "rsa"})
        body = _b64({"iss": self.url, "sub": "mallory", "aud": audience, "exp": int(time.time()) + 300})
        return f"{header}.{body}."


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _handler(issuer: Issuer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            issuer.log.append(f"GET {url.path}")
            if url.path == "/.well-known/oauth-authorization-server":
                self._json(200, issuer.metadata())
            elif url.path == "/jwks":
                issuer.jwks_fetches += 1
                self._json(200, {"keys": issuer.keys})
            elif url.path == "/authorize":
                query = {key: values[0] for key, values in parse_qs(url.query).items()}
                try:
                    location = issuer.authorize(query)
                except OAuthError as exc:
                    self._json(exc.status, {"error": exc.code, "error_description": str(exc)})
                    return
                self.send_response(302)
                self.send_header("location", location)
                self.send_header("content-length", "0")
                self.end_headers()
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            issuer.log.append(f"POST {url.path}")
            raw = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
            try:
                if url.path == "/register":
                    self._json(201, issuer.register(json.loads(raw)))
                elif url.path == "/token":
                    form = {key: values[0] for key, values in parse_qs(raw).items()}
                    self._json(200, issuer.token_endpoint(form, self.headers.get("authorization")))
                else:
                    self.send_error(404)
            except OAuthError as exc:
                self._json(exc.status, {"error": exc.code, "error_description": str(exc)})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("cache-control", "no-store")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
