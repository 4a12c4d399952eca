"""Package changes from dpkg's log (lines this host's dpkg 1.21 wrote for ``dpkg -i``, ``-r``,
``-P`` and a trigger), snapshots of rpm, Python and Node packages, and their events."""

from __future__ import annotations

import pytest

from pipeline.core.host.packages import (
    DEB,
    INSTALLED,
    PYTHON,
    REMOVED,
    RPM,
    DpkgLog,
    Package,
    PackageChange,
    diff,
    package_event,
    parse_metadata,
    parse_package_json,
    parse_rpm_list,
    python_key,
)
from pipeline.errors import HostRecordError
from pipeline.model import Entity, ObjectMeta
from pipeline.model.entity import System

DPKG_INSTALL_REMOVE_PURGE = """\
2026-11-26 19:19:23 startup archives install
2026-11-26 19:19:23 install pipeline-probe-x:all <none> 1.0-1
2026-11-26 19:19:23 status half-installed pipeline-probe-x:all 1.0-1
2026-11-26 19:19:23 status unpacked pipeline-probe-x:all 1.0-1
2026-11-26 19:19:23 configure pipeline-probe-x:all 1.0-1 1.0-1
2026-11-26 19:19:23 status half-configured pipeline-probe-x:all 1.0-1
2026-11-26 19:19:23 status installed pipeline-probe-x:all 1.0-1
2026-11-26 19:19:23 startup packages remove
2026-11-26 19:19:23 status installed pipeline-probe-x:all 1.0-1
2026-11-26 19:19:23 remove pipeline-probe-x:all 1.0-1 <none>
2026-11-26 19:19:23 status half-configured pipeline-probe-x:all 1.0-1
2026-11-26 19:19:23 status half-installed pipeline-probe-x:all 1.0-1
2026-11-26 19:19:23 status config-files pipeline-probe-x:all 1.0-1
2026-11-26 19:19:23 status not-installed pipeline-probe-x:all <none>
2026-11-26 19:04:16 trigproc man-db:amd64 2.11.2-2 <none>
2026-11-26 19:04:16 status half-configured man-db:amd64 2.11.2-2
2026-11-26 19:04:21 status installed man-db:amd64 2.11.2-2
2026-11-26 19:30:00 upgrade libfoo1:amd64 1.0-1 1.1-1
2026-11-26 19:30:00 status installed libfoo1:amd64 1.1-1
2026-11-26 19:31:00 purge libfoo1:amd64 1.1-1 <none>
2026-11-26 19:32:00 remove libbar:amd64 2.0 <none>
2026-11-26 19:32:00 purge libbar:amd64 2.0 <none>
"""


def _changes(text: str) -> list[tuple[str, str, str, str]]:
    parser = DpkgLog()
    found = [parser.feed(line) for line in text.splitlines()]
    return [(c.action, c.package.name, c.package.arch, c.package.version) for c in found if c is not None]


def test_dpkg_install_remove_upgrade_and_purge_each_report_once() -> None:
    assert _changes(DPKG_INSTALL_REMOVE_PURGE) == [
        (INSTALLED, "pipeline-probe-x", "all", "1.0-1"),
        (REMOVED, "pipeline-probe-x", "all", "1.0-1"),
        (INSTALLED, "libfoo1", "amd64", "1.1-1"),
        (REMOVED, "libfoo1", "amd64", "1.1-1"),
        (REMOVED, "libbar", "amd64", "2.0"),
    ]


def test_dpkg_status_installed_of_a_trigger_is_not_an_install() -> None:
    lines = "2026-11-26 19:04:16 trigproc man-db:amd64 2.11.2-2 <none>\n2026-11-26 19:04:21 status installed man-db:amd64 2.11.2-2\n"
    assert _changes(lines) == []


def test_dpkg_package_reinstalled_after_removal_is_reported_again() -> None:
    text = DPKG_INSTALL_REMOVE_PURGE.split("2026-11-26 19:04:16")[0] * 2
    assert [c[0] for c in _changes(text)] == [INSTALLED, REMOVED, INSTALLED, REMOVED]


@pytest.mark.parametrize("line", ["", "garbage", "2026-11-26 status installed x 1", "26-11-2026 19:00:00 remove x 1"])
def test_a_line_that_is_not_dpkgs_is_refused_with_the_line(line: str) -> None:
    with pytest.raises(HostRecordError) as caught:
        DpkgLog().feed(line)
    assert caught.value.record == line


def test_diff_reports_new_changed_and_gone_packages() -> None:
    before = {"a": Package("a", "1"), "b": Package("b", "1"), "c": Package("c", "1")}
    after = {"a": Package("a", "1"), "b": Package("b", "2"), "d": Package("d", "1")}
    assert diff(RPM, before, after) == [
        PackageChange(RPM, REMOVED, Package("c", "1")),
        PackageChange(RPM, INSTALLED, Package("b", "2")),
        PackageChange(RPM, INSTALLED, Package("d", "1")),
    ]
    assert diff(RPM, after, after) == []


def test_rpm_list_is_keyed_by_name_and_arch() -> None:
    text = "bash\t5.1.8-6.el9\tx86_64\nglibc\t2.34-60.el9\ti686\nglibc\t2.34-60.el9\tx86_64\ngpg-pubkey\t8483c65d-5ccc5b19\t(none)\n"
    snapshot = parse_rpm_list(text)
    assert sorted(snapshot) == ["bash.x86_64", "glibc.i686", "glibc.x86_64", "gpg-pubkey.(none)"]
    assert snapshot["bash.x86_64"] == Package("bash", "5.1.8-6.el9", "x86_64")
    with pytest.raises(HostRecordError, match="line 2"):
        parse_rpm_list("bash\t5\tx86_64\nbroken line\n")


def test_python_metadata_gives_name_and_version() -> None:
    metadata = "Metadata-Version: 2.1\nName: Tiny_Probe\nVersion: 0.1.0\nSummary: x\n\nName: body text\n"
    assert parse_metadata(metadata, "x/METADATA") == ("Tiny_Probe", "0.1.0")
    assert python_key("Tiny_Probe") == python_key("tiny.probe") == "tiny-probe"
    with pytest.raises(HostRecordError, match="Name and Version"):
        parse_metadata("Metadata-Version: 2.1\nName: x\n", "x/METADATA")


def test_package_json_gives_name_and_version() -> None:
    assert parse_package_json('{"name": "@scope/left-pad", "version": "1.3.0"}', "p") == ("@scope/left-pad", "1.3.0")
    for text in ("{", "[]", '{"name": "x"}', '{"name": 1, "version": "1"}'):
        with pytest.raises(HostRecordError):
            parse_package_json(text, "p")


def test_the_event_is_a_change_event_naming_the_package_and_host() -> None:
    entity = Entity(metadata=ObjectMeta(name="web1", namespace="default"), system=System(hostname="web1.example"))
    change = PackageChange(PYTHON, INSTALLED, Package("tiny", "0.1.0", location="/venv/site-packages"))
    event = package_event(entity, change, timestamp=1700000000)
    assert event.check is not None
    assert event.check.metadata.name == "package-installed"
    assert event.check.output == "Package tiny, version 0.1.0 has been installed on host web1.example"
    assert event.check.status == 0
    assert event.check.metadata.labels["package_type"] == "python"
    assert event.check.metadata.annotations["package.location"] == "/venv/site-packages"
    removed = package_event(entity, PackageChange(DEB, REMOVED, Package("x", "1", "all")), timestamp=1700000000)
    assert removed.check is not None
    assert removed.check.output == "Package x, version 1 has been removed on host web1.example"
    assert removed.check.metadata.name == "package-removed"
    assert removed.check.metadata.labels["package_type"] == "deb"
    event.validate()
    removed.validate()
