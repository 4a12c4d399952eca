"""The Asset resource (Sensu Go's core/v2 shape, validation) and the asset filters evaluator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config.loader import load_path, resource_from_document
from pipeline.core.asset_filters import AssetFilterError, compile_asset_filter, matches
from pipeline.errors import ValidationError
from pipeline.model.asset import Asset, local_path
from pipeline.model.codec import decode, encode

SHA = "ab" * 64
LINUX = {"metadata": {"name": "web1", "labels": {"region": "eu"}}, "system": {"os": "linux", "arch": "amd64",
         "platform": "ubuntu"}}  # fmt: skip


def document(spec: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Asset", "api_version": "core/v2", "metadata": {"name": "check-disk"}, "spec": spec}


def test_an_asset_round_trips_in_sensu_go_shape() -> None:
    sensu = {"url": "https://assets.example/disk.tar.gz", "sha512": SHA, "filters": ["entity.system.os == 'linux'"],
             "metadata": {"name": "check-disk", "namespace": "default"}, "headers": {"Authorization": "Bearer x"},
             "builds": []}  # fmt: skip
    assert encode(decode(Asset, sensu)) == sensu


def test_builds_round_trip() -> None:
    build = {"url": "/srv/assets/disk.tgz", "sha512": SHA, "filters": [], "headers": {}}
    sensu = {"filters": [], "metadata": {"name": "x"}, "headers": {}, "builds": [build]}
    asset = decode(Asset, sensu)
    asset.validate()
    assert encode(asset) == sensu


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"sha512": SHA}, "spec.url: required"),
        ({"url": "ftp://x/a.tgz", "sha512": SHA}, "spec.url: expected an http(s) URL or an absolute file path"),
        ({"url": "relative/a.tgz", "sha512": SHA}, "spec.url: expected an http(s) URL"),
        ({"url": "https://x/a.tgz", "sha512": "abc"}, "spec.sha512: expected 128 hexadecimal digits, got 'abc'"),
        ({"url": "https://x/a.tgz", "sha512": "g" * 128}, "spec.sha512: expected 128 hexadecimal digits"),
        ({"url": "https://x/a.tgz", "sha512": SHA, "headers": {"X-A": "a\r\nHost: evil"}},
         "spec.headers.X-A: a header value may not hold a line break"),
        ({"url": "https://x/a.tgz", "sha512": SHA, "headers": {"bad name": "a"}},
         "spec.headers.bad name: not a valid HTTP header name"),
        ({"url": "https://x/a.tgz", "sha512": SHA, "builds": [{"url": "https://x/b.tgz", "sha512": SHA}]},
         "spec.url: not used when builds are given"),
        ({"builds": [{"url": "https://x/b.tgz", "sha512": "00"}]}, "spec.builds[0].sha512: expected 128"),
        ({"url": "https://x/a.tgz", "sha512": SHA, "filters": ["entity.system.os == 'linux' &&"]},
         "spec.filters[0]: invalid JavaScript"),
        ({"builds": [{"url": "https://x/a.tgz", "sha512": SHA, "filters": ["entity.system.platform_version.split("]}]},
         "spec.builds[0].filters[0]: invalid JavaScript"),
    ],
)  # fmt: skip
def test_invalid_assets_are_refused_naming_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        resource_from_document(document(spec))
    assert str(caught.value).startswith(message)


def test_local_paths() -> None:
    assert local_path("/srv/a.tgz") == "/srv/a.tgz"
    assert local_path("file:///srv/a.tgz") == "/srv/a.tgz"
    assert local_path("https://x/a.tgz") is None
    assert local_path("file://host/a.tgz") is None


def test_an_asset_loads_from_a_file_and_a_name_of_no_asset_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(
        f"type: Asset\napi_version: core/v2\nmetadata: {{name: check-disk}}\nspec: {{url: /srv/a.tgz, sha512: {SHA}}}\n"
    )
    loaded = load_path(tmp_path)
    assert loaded.errors == []
    assert [a.name for a in loaded.resources.assets] == ["check-disk"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("entity.system.os == 'linux'", True),
        ("entity.system.os === 'linux'", True),
        ('entity.system.os == "windows"', False),
        ("entity.system.os != 'windows'", True),
        ("entity.system.os !== 'linux'", False),
        ("entity.system.os == 'linux' && entity.system.arch == 'amd64'", True),
        ("entity.system.os == 'linux' && entity.system.arch == 'arm64'", False),
        ("entity.system.arch == 'arm64' || entity.system.platform == 'ubuntu'", True),
        ("entity.labels.region == 'eu'", True),
        ("entity.labels['region'] == 'eu'", True),
        ("entity.name == 'web1'", True),
        ("entity.labels.missing == 'eu'", False),  # undefined == 'eu' is false in JavaScript
        ("entity.labels.missing != 'eu'", True),
        ("entity.system.libc_type == 'glibc'", False),  # absent: undefined
    ],
)
def test_the_forms_sensu_documents_evaluate_as_javascript_would(text: str, expected: bool) -> None:
    assert matches([text], LINUX) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("entity.system.os", True),  # truthiness, as in JavaScript
        ("entity.system.os.toLowerCase() == 'linux'", True),
        ("(entity.system.os == 'linux')", True),
        ("['linux', 'freebsd'].indexOf(entity.system.os) >= 0", True),
    ],
)
def test_any_javascript_is_evaluated_as_sensu_go_does(text: str, expected: bool) -> None:
    assert matches([text], LINUX) is expected


def test_what_does_not_parse_is_refused_and_a_failure_on_the_host_is_named() -> None:
    with pytest.raises(AssetFilterError, match="invalid JavaScript"):
        compile_asset_filter("entity.system.os == 'linux' &&")
    with pytest.raises(AssetFilterError, match="cannot read property 'b' of undefined"):
        matches(["entity.labels.a.b == 'x'"], LINUX)


def test_a_named_asset_cannot_be_deleted_and_a_missing_one_is_dangling(tmp_path: Path) -> None:
    from pipeline.model.references import dangling_references, referrers

    (tmp_path / "a.yml").write_text(
        f"type: Asset\napi_version: core/v2\nmetadata: {{name: tools}}\nspec: {{url: /srv/a.tgz, sha512: {SHA}}}\n"
        "---\ntype: HookConfig\napi_version: core/v2\nmetadata: {name: h}\n"
        "spec: {command: why, runtime_assets: [tools, typo]}\n"
    )
    resources = load_path(tmp_path).resources
    assert referrers(resources, "Asset", "default", "tools") == ["hook 'h' (runtime_assets)"]
    assert [p.message for p in dangling_references(resources)] == ["no Asset 'typo'"]
