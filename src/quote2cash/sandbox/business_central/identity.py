"""The sandbox's Microsoft Entra ID: OAuth 2.0 client credentials, OpenID discovery and TLS.

``msal`` accepts only an ``https`` authority, so the identity endpoints are
served over TLS with a certificate made when the sandbox starts: a private
certificate authority (written to ``ca_file``, which a client passes to
``msal``'s ``verify``) signs a server certificate for ``127.0.0.1`` and
``localhost``. Access tokens are opaque random strings kept in the DocStore
(a restarted sandbox still honours them until they expire), one lifetime for all.
"""

from __future__ import annotations

import datetime as dt
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from quote2cash.sandbox._base import DocStore, SandboxServer

#: The scope a Business Central service-to-service token is asked for.
BC_SCOPE = "https://api.businesscentral.dynamics.com/.default"
_TOKENS = "_tokens"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of the sandbox's certificate authority and server certificate."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def make_tls_files(folder: Path | None = None) -> TlsFiles:
    """A fresh CA and a server certificate for 127.0.0.1/localhost it signs, as PEM files."""
    folder = Path(folder or tempfile.mkdtemp(prefix="bc-sandbox-tls-"))
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "quote2cash sandbox CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


class TlsServer(SandboxServer):
    """The sandbox app served over TLS on 127.0.0.1 (the identity endpoints ``msal`` calls)."""

    def __init__(self, app: Any, tls: TlsFiles, *, port: int = 0) -> None:
        super().__init__(app, port=port)
        self._config = uvicorn.Config(
            app,
            host=self.host,
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            ssl_certfile=str(tls.cert_file),
            ssl_keyfile=str(tls.key_file),
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(self._config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name=f"sandbox-tls:{port}")

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return f"https://{self.host}:{self.port}"


def aad_error(status: int, error: str, code: int, description: str) -> tuple[int, dict[str, Any]]:
    """An Entra ID token-endpoint error body (``error``, ``error_description`` with its AADSTS code)."""
    return status, {
        "error": error,
        "error_description": f"AADSTS{code}: {description}",
        "error_codes": [code],
        "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": secrets.token_hex(16),
        "correlation_id": secrets.token_hex(16),
    }


class Directory:
    """One tenant's app registrations and the access tokens issued to them."""

    def __init__(
        self, store: DocStore, tenant: str, clients: dict[str, str], token_lifetime: float = 3599.0
    ) -> None:
        self.store = store
        self.tenant = tenant
        self.clients = dict(clients)
        self.token_lifetime = token_lifetime
        self.issued = 0

    def openid_configuration(self, base: str) -> dict[str, Any]:
        """The tenant's OpenID Connect discovery document (what ``msal`` reads first)."""
        root = f"{base}/{self.tenant}"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/{self.tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/{self.tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    def token(self, tenant: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Answer a token request: a bearer token, or the Entra ID error body."""
        if tenant != self.tenant:
            return aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return aad_error(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type. Only client_credentials is enabled.",
            )
        client_id = form.get("client_id", "")
        if client_id not in self.clients:
            return aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'.",
            )
        if form.get("client_secret") != self.clients[client_id]:
            return aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
            )
        scopes = form.get("scope", "").split()
        if BC_SCOPE not in scopes:
            return aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {' '.join(scopes)} is not valid. Client credential flows must "
                "have a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        access = secrets.token_urlsafe(48)
        lifetime = int(self.token_lifetime)
        self.store.put(
            _TOKENS,
            access,
            {"client_id": client_id, "tenant": tenant, "expires_at": time.time() + self.token_lifetime},
        )
        self.issued += 1
        return 200, {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access,
        }

    def client_of(self, authorization: str | None, tenant: str) -> str | None:
        """The client id a valid, unexpired bearer token for ``tenant`` was issued to, or None."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        doc = self.store.get(_TOKENS, authorization[7:].strip())
        if doc is None or doc["tenant"] != tenant or doc["expires_at"] <= time.time():
            return None
        return str(doc["client_id"])

    def expire_tokens(self) -> int:
        """Make every issued token expired now (as if its lifetime had passed); returns how many."""
        items = list(self.store.items(_TOKENS))
        self.store.put_many(_TOKENS, [(t, {**d, "expires_at": 0.0}) for t, d in items])
        return len(items)


__all__ = ["BC_SCOPE", "Directory", "TlsFiles", "TlsServer", "aad_error", "make_tls_files"]
