"""A certificate authority and a broker certificate for 127.0.0.1, made with openssl for one test."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    ca_crt: Path
    ca_key: Path
    broker_crt: Path
    broker_key: Path

    @property
    def listener(self) -> str:
        """The mosquitto listener lines that make it a TLS-only listener with these files."""
        return f"cafile {self.ca_crt}\ncertfile {self.broker_crt}\nkeyfile {self.broker_key}\n"


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def self_signed_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, crt = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return key, crt


def make_tls_files(directory: Path) -> TlsFiles:
    """A CA, and a broker certificate it signed for IP 127.0.0.1 (subjectAltName)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = self_signed_ca(directory, "test-ca")
    key, csr, crt = directory / "broker.key", directory / "broker.csr", directory / "broker.crt"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
                    "-out", str(csr)], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
                    "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt)],
                   check=True, capture_output=True)
    return TlsFiles(ca_crt, ca_key, crt, key)
