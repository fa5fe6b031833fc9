"""A secured dev broker: SCRAM-SHA-512 over TLS with a locally generated CA.

``ktf dev kafka up --security sasl_ssl`` keeps everything under the cluster's state
dir, in ``tls/`` and ``credentials.json`` (mode 0600):

- a CA and a broker certificate signed by it (SAN ``IP:127.0.0.1``, ``DNS:localhost``),
  made with ``keytool`` from the JDK the broker already needs, so there is no new
  dependency (the ``cryptography`` package could do the same, but it is not a
  runtime dependency of ktf and the JDK is always there when a dev broker is);
  passwords reach keytool through environment variables (``-storepass:env``), never
  its command line;
- random passwords for the broker's own user (``admin``, inter-broker traffic) and
  for the client user (``ktf``); both SCRAM users are created when the storage is
  formatted (``kafka-storage format --add-scram``), so they exist before the first
  start;
- ``client.env`` (``KTF_*`` variables for ktf) and ``client.properties`` (for Java
  clients) with everything a client needs, password included, mode 0600.

Nothing here prints or logs a password.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from framework.errors import DevKafkaError

SECURITY_MODES = ("plaintext", "sasl_ssl")
MECHANISM = "SCRAM-SHA-512"
BROKER_USER = "admin"
CLIENT_USER = "ktf"
_KEYTOOL_TIMEOUT = 120.0


@dataclass(frozen=True)
class Credentials:
    """The secured cluster's generated secrets and where its TLS files are."""

    root: Path
    broker_password: str
    client_password: str
    store_password: str

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def ca_pem(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.tls_dir / "broker.p12"

    @property
    def truststore(self) -> Path:
        return self.tls_dir / "truststore.p12"

    @property
    def client_env(self) -> Path:
        return self.root / "client.env"

    @property
    def client_properties(self) -> Path:
        return self.root / "client.properties"

    def __repr__(self) -> str:  # never show the passwords
        return f"Credentials(root={str(self.root)!r}, passwords=***)"

    def client_settings(self) -> dict[str, str]:
        """Settings fields (``Settings(**...)``) for the ``ktf`` user."""
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": MECHANISM,
            "sasl_username": CLIENT_USER,
            "sasl_password": self.client_password,
            "ssl_ca_location": str(self.ca_pem),
        }

    def public_env(self) -> dict[str, str]:
        """The ``KTF_*`` variables of :meth:`client_settings` without the password."""
        return {
            f"KTF_{k.upper()}": v for k, v in self.client_settings().items() if k != "sasl_password"
        }


def load(root: Path) -> Credentials | None:
    """The credentials of the cluster at ``root`` if they were generated, else None."""
    path = root / "credentials.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return Credentials(
        root, data["broker_password"], data["client_password"], data["store_password"]
    )


def load_or_create(root: Path, java: str) -> Credentials:
    """The credentials of the cluster at ``root``, generated on first use."""
    path = root / "credentials.json"
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        creds = Credentials(
            root, data["broker_password"], data["client_password"], data["store_password"]
        )
    else:
        creds = Credentials(
            root, secrets.token_urlsafe(18), secrets.token_urlsafe(18), secrets.token_urlsafe(18)
        )
        _write_private(
            path,
            json.dumps(
                {
                    "broker_password": creds.broker_password,
                    "client_password": creds.client_password,
                    "store_password": creds.store_password,
                }
            ),
        )
    if not (creds.keystore.exists() and creds.truststore.exists() and creds.ca_pem.exists()):
        _make_tls(creds, java)
    _write_client_files(creds)
    return creds


def scram_arguments(creds: Credentials) -> list[str]:
    """``kafka-storage format`` arguments that create both SCRAM users."""
    out: list[str] = []
    for user, password in (
        (BROKER_USER, creds.broker_password),
        (CLIENT_USER, creds.client_password),
    ):
        out += ["--add-scram", f"{MECHANISM}=[name={user},password={password}]"]
    return out


def broker_security_properties(
    creds: Credentials, client_port: int, controller_port: int
) -> dict[str, str]:
    """Listener and security properties of a SASL_SSL node (the controller stays local)."""
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{BROKER_USER}" password="{creds.broker_password}";'
    )
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": (
            f"SASL_SSL://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}"
        ),
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(creds.keystore),
        "ssl.keystore.password": creds.store_password,
        "ssl.key.password": creds.store_password,
        "ssl.truststore.type": "PKCS12",
        "ssl.truststore.location": str(creds.truststore),
        "ssl.truststore.password": creds.store_password,
        "ssl.client.auth": "none",
        "ssl.endpoint.identification.algorithm": "https",
    }


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def _write_client_files(creds: Credentials) -> None:
    env = {f"KTF_{k.upper()}": v for k, v in creds.client_settings().items()}
    _write_private(
        creds.client_env,
        "# ktf settings for the dev broker's SCRAM user (secret: mode 0600)\n"
        + "".join(f"export {k}='{v}'\n" for k, v in env.items()),
    )
    _write_private(
        creds.client_properties,
        "# Java client settings for the dev broker (secret: mode 0600)\n"
        "security.protocol=SASL_SSL\n"
        f"sasl.mechanism={MECHANISM}\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{CLIENT_USER}" password="{creds.client_password}";\n'
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={creds.ca_pem}\n",
    )


def _make_tls(creds: Credentials, java: str) -> None:
    """CA, broker key pair signed by it, and a truststore holding the CA (keytool)."""
    keytool = str(Path(java).resolve().parent / "keytool")
    if not Path(keytool).exists():
        keytool = "keytool"
    tls = creds.tls_dir
    tls.mkdir(parents=True, exist_ok=True)
    os.chmod(tls, 0o700)
    for f in tls.iterdir():
        f.unlink()
    ca, broker = tls / "ca.p12", creds.keystore
    env = {**os.environ, "KTF_STOREPASS": creds.store_password}
    pw = ["-storepass:env", "KTF_STOREPASS", "-keypass:env", "KTF_STOREPASS"]
    store = ["-storetype", "PKCS12"]
    steps: list[tuple[str, list[str]]] = [
        ("CA key pair", ["-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048",
                         "-dname", "CN=ktf dev CA", "-ext", "bc:c", "-validity", "3650",
                         "-keystore", str(ca), *store, *pw]),
        ("CA certificate", ["-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca),
                            "-storepass:env", "KTF_STOREPASS", "-file", str(creds.ca_pem)]),
        ("broker key pair", ["-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize",
                             "2048", "-dname", "CN=localhost", "-validity", "3650",
                             "-keystore", str(broker), *store, *pw]),
        ("broker CSR", ["-certreq", "-alias", "broker", "-keystore", str(broker),
                        "-storepass:env", "KTF_STOREPASS", "-file", str(tls / "broker.csr")]),
        ("broker certificate", ["-gencert", "-alias", "ca", "-keystore", str(ca),
                                "-storepass:env", "KTF_STOREPASS", "-infile",
                                str(tls / "broker.csr"), "-outfile", str(tls / "broker.crt"),
                                "-rfc", "-validity", "3650",
                                "-ext", "SAN=ip:127.0.0.1,dns:localhost",
                                "-ext", "KU=digitalSignature,keyEncipherment",
                                "-ext", "EKU=serverAuth,clientAuth"]),
        ("CA into the broker keystore", ["-importcert", "-noprompt", "-alias", "ca", "-file",
                                         str(creds.ca_pem), "-keystore", str(broker),
                                         "-storepass:env", "KTF_STOREPASS"]),
        ("signed broker certificate", ["-importcert", "-noprompt", "-alias", "broker", "-file",
                                       str(tls / "broker.crt"), "-keystore", str(broker),
                                       "-storepass:env", "KTF_STOREPASS"]),
        ("truststore", ["-importcert", "-noprompt", "-alias", "ca", "-file", str(creds.ca_pem),
                        "-keystore", str(creds.truststore), *store,
                        "-storepass:env", "KTF_STOREPASS"]),
    ]  # fmt: skip
    for what, args in steps:
        try:
            proc = subprocess.run(
                [keytool, *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=_KEYTOOL_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DevKafkaError(f"keytool failed making the {what}: {exc}") from exc
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DevKafkaError(f"keytool failed making the {what}: {last[0]}")
    for f in tls.iterdir():
        os.chmod(f, 0o600)
