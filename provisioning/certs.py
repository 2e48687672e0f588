"""Checking the panel's certificate (made by webui/tls.py) before init replaces it."""

from __future__ import annotations

import datetime as dt
import ipaddress

from cryptography import x509


def certificate_covers(cert_pem: bytes, hosts: list[str], *, now: float) -> bool:
    """True when ``cert_pem`` is currently valid and names every one of ``hosts``."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    moment = dt.datetime.fromtimestamp(now, tz=dt.UTC)
    if not cert.not_valid_before_utc <= moment < cert.not_valid_after_utc:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    present = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    present |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return all(str(ipaddress.ip_address(h)) in present if _is_ip(h) else h in present for h in hosts)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
