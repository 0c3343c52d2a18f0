"""Certificates and keys for a throwaway control plane, made with the openssl CLI.

One CA signs the apiserver's serving certificate and every client identity (admin
in system:masters, the controller-manager, the scheduler, KWOK); a separate key pair
signs service-account tokens. EC P-256 keys keep generation well under a second.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

_DAYS = "30"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, text=True)


def _key(path: Path) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path))


@dataclass(frozen=True)
class ClientCert:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    sa_key: Path
    sa_pub: Path
    clients: dict[str, ClientCert]


def _sign(directory: Path, name: str, subject: str, ca_cert: Path, ca_key: Path, ext: str) -> ClientCert:
    key = directory / f"{name}.key"
    csr = directory / f"{name}.csr"
    cert = directory / f"{name}.crt"
    extfile = directory / f"{name}.ext"
    _key(key)
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    extfile.write_text(ext)
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", _DAYS, "-extfile", str(extfile), "-out", str(cert),
    )  # fmt: skip
    return ClientCert(cert=cert, key=key)


CLIENT_IDENTITIES = {
    # name: subject (CN = user, O = group)
    "admin": "/CN=kubeflowlite-admin/O=system:masters",
    "controller-manager": "/CN=system:kube-controller-manager",
    "scheduler": "/CN=system:kube-scheduler",
    "kwok": "/CN=kwok-controller/O=system:masters",
    # The apiserver's identity towards kubelets (logs, exec), allowed by their webhook authorizer.
    "kubelet-client": "/CN=kube-apiserver-kubelet-client/O=system:masters",
}

_CLIENT_EXT = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"


def create(directory: Path) -> Pki:
    """Write a CA, the apiserver serving pair, client pairs and the SA signing pair."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = directory / "ca.key"
    ca_cert = directory / "ca.crt"
    _key(ca_key)
    _openssl(
        "req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=kubeflowlite-test-ca", "-days", _DAYS,
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", str(ca_cert),
    )  # fmt: skip
    serving = _sign(
        directory,
        "apiserver",
        "/CN=kube-apiserver",
        ca_cert,
        ca_key,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,"
        "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n",
    )
    clients = {
        name: _sign(
            directory,
            name,
            subject,
            ca_cert,
            ca_key,
            _CLIENT_EXT,
        )
        for name, subject in CLIENT_IDENTITIES.items()
    }
    sa_key = directory / "sa.key"
    sa_pub = directory / "sa.pub"
    _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(sa_key))
    _openssl("pkey", "-in", str(sa_key), "-pubout", "-out", str(sa_pub))
    return Pki(
        ca_cert=ca_cert,
        ca_key=ca_key,
        serving_cert=serving.cert,
        serving_key=serving.key,
        sa_key=sa_key,
        sa_pub=sa_pub,
        clients=clients,
    )


def sign_client(keys: Pki, directory: Path, name: str, subject: str) -> ClientCert:
    """Another client identity signed by the plane's CA (the real node's kubelet)."""
    directory.mkdir(parents=True, exist_ok=True)
    return _sign(directory, name, subject, keys.ca_cert, keys.ca_key, _CLIENT_EXT)


def kubeconfig(path: Path, *, server: str, ca: Path, client: ClientCert, user: str) -> Path:
    """Write a kubeconfig (YAML is a superset of JSON, so plain json keeps this stdlib-only)."""
    import json

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kubeflowlite-test", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate": str(client.cert), "client-key": str(client.key)}}
        ],
        "contexts": [
            {"name": "kubeflowlite-test", "context": {"cluster": "kubeflowlite-test", "user": user}}
        ],
        "current-context": "kubeflowlite-test",
        "preferences": {},
    }
    path.write_text(json.dumps(config, indent=2))
    return path
