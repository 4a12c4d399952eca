"""Facts about the host for ``entity.system``: hostname, OS, platform, arch, interfaces.

Read from the kernel's own files (``/etc/os-release``, ``/sys/class/net``, ``/proc/net``) so
that no extra dependency is needed.
"""

from __future__ import annotations

import fcntl
import ipaddress
import platform
import socket
import struct
from pathlib import Path

from pipeline.model import Network, NetworkInterface, System

_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B


def read_os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    """``/etc/os-release`` as a dict (empty when absent)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return values
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("\"'")
    return values


def _ipv4_of(name: str) -> str | None:
    request = struct.pack("256s", name.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            addr = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)[20:24]
            mask = fcntl.ioctl(sock.fileno(), _SIOCGIFNETMASK, request)[20:24]
        except OSError:
            return None
    prefix = bin(int.from_bytes(mask, "big")).count("1")
    return f"{socket.inet_ntoa(addr)}/{prefix}"


def _ipv6_by_interface(path: Path = Path("/proc/net/if_inet6")) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) == 6:
            address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
            found.setdefault(fields[5], []).append(f"{address}/{int(fields[2], 16)}")
    return found


def network_interfaces() -> list[NetworkInterface]:
    """Every interface with its MAC and its IPv4 and IPv6 addresses in CIDR form."""
    ipv6 = _ipv6_by_interface()
    interfaces = []
    for _, name in socket.if_nameindex():
        mac_path = Path("/sys/class/net") / name / "address"
        try:
            mac = mac_path.read_text().strip()
        except OSError:
            mac = ""
        addresses = [a for a in [_ipv4_of(name)] if a] + ipv6.get(name, [])
        interfaces.append(
            NetworkInterface(name=name, mac="" if mac == "00:00:00:00:00:00" else mac, addresses=addresses)
        )
    return interfaces


def _libc_type() -> str:
    name, _ = platform.libc_ver()
    return {"glibc": "glibc", "musl": "musl"}.get(name, name)


def collect_system() -> System:
    """The current host's facts."""
    release = read_os_release()
    return System(
        hostname=socket.gethostname(),
        os=platform.system().lower(),
        platform=release.get("ID", ""),
        platform_family=(release.get("ID_LIKE", "") or release.get("ID", "")).split(" ")[0],
        platform_version=release.get("VERSION_ID", ""),
        network=Network(interfaces=network_interfaces()),
        arch={"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
        libc_type=_libc_type(),
    )


__all__ = ["collect_system", "network_interfaces", "read_os_release"]
