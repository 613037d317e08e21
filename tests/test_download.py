"""Tests for iotsynth.download and rule download_captures against a local HTTP server."""

import functools
import http.server
import io
import json
import logging
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from iotsynth.download import (
    DownloadError,
    VerificationError,
    download_captures,
    read_manifest,
)

SHARED = Path("/work/shared/datasets/iot-sentinel")
REPO = Path(__file__).resolve().parents[1]
COMMIT = "0743dc668bb317600663be18a35f89fad134400a"
ARCHIVE_FOLDER = f"IoT_Sentinel-{COMMIT}/captures_IoT_Sentinel/captures_IoT-Sentinel"
# Two devices, two captures each, plus their MAC files.
FILES = [
    "Aria/Setup-A-1-STA.pcap",
    "Aria/Setup-A-2-STA.pcap",
    "Aria/_iotdevice-mac.txt",
    "EdnetCam2/Setup-C-1-STA.pcap",
    "EdnetCam2/Setup-C-2-STA.pcap",
    "EdnetCam2/_iotdevice-mac.txt",
]

pytestmark = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"needs the IoT Sentinel captures in {SHARED}"
)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serve files from a folder, but respond to ``/slow`` only after 2 s."""

    def do_GET(self):
        if self.path == "/slow":
            time.sleep(2)
        super().do_GET()

    def log_message(self, format, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Start an HTTP server on 127.0.0.1 serving ``tmp_path / "www"``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.block_on_close = False
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _shared_hashes():
    hashes = {}
    for line in (SHARED / "iot-sentinel.sha256").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        hashes[name.removeprefix("./")] = digest
    return hashes


def _write_manifest(path, names):
    hashes = _shared_hashes()
    path.write_text("".join(f"{hashes[name]}  ./{name}\n" for name in names))
    return path


def _add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _build_archive(path, files=FILES, replace=None, extra_members=()):
    """Write a .tar.gz laid out like the GitHub source archive.

    ``replace`` maps a relative capture path to the bytes stored instead of the
    real file; ``extra_members`` are TarInfo objects appended as they are.
    """
    replace = replace or {}
    top = f"IoT_Sentinel-{COMMIT}"
    with tarfile.open(path, "w:gz") as tar:
        _add_bytes(tar, f"{top}/README.md", b"Repository readme, outside the folder.\n")
        for name in files:
            member = f"{ARCHIVE_FOLDER}/{name}"
            if name in replace:
                _add_bytes(tar, member, replace[name])
            else:
                tar.add(SHARED / "captures" / name, arcname=member)
        _add_bytes(tar, f"{ARCHIVE_FOLDER}/README.txt", b"Dataset readme.\n")
        for info in extra_members:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def _download(tmp_path, url, manifest, timeout=10):
    return download_captures(
        url=url,
        archive_folder=ARCHIVE_FOLDER,
        manifest=manifest,
        captures_dir=tmp_path / "resources/iot-sentinel/captures",
        marker=tmp_path / "resources/iot-sentinel/verified.txt",
        timeout=timeout,
    )


def test_download_unpack_verify(tmp_path, server, caplog):
    root, base = server
    _build_archive(root / "archive.tar.gz")
    manifest = _write_manifest(tmp_path / "manifest.sha256", FILES)

    with caplog.at_level(logging.INFO, logger="iotsynth.download"):
        marker = _download(tmp_path, f"{base}/archive.tar.gz", manifest)

    captures = tmp_path / "resources/iot-sentinel/captures"
    for name in FILES:
        assert (captures / name).read_bytes() == (SHARED / "captures" / name).read_bytes()
    assert not (captures.parent / "README.md").exists()
    assert not list(captures.parent.glob("*.tar.gz*"))
    assert marker.is_file()
    assert read_manifest(marker) == read_manifest(manifest)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("README.txt" in message for message in warnings)


def test_altered_file_fails_naming_it(tmp_path, server):
    root, base = server
    altered = "EdnetCam2/Setup-C-2-STA.pcap"
    _build_archive(root / "archive.tar.gz", replace={altered: b"not the capture"})
    manifest = _write_manifest(tmp_path / "manifest.sha256", FILES)

    with pytest.raises(VerificationError) as caught:
        _download(tmp_path, f"{base}/archive.tar.gz", manifest)

    message = str(caught.value)
    assert altered in message
    assert _shared_hashes()[altered] in message
    assert "hash mismatch" in message
    assert "1 of 6 files" in message
    captures = tmp_path / "resources/iot-sentinel/captures"
    assert (captures / altered).read_bytes() == b"not the capture"
    assert not (tmp_path / "resources/iot-sentinel/verified.txt").exists()


def test_missing_file_fails_naming_it(tmp_path, server):
    root, base = server
    missing = "Aria/Setup-A-2-STA.pcap"
    _build_archive(root / "archive.tar.gz", files=[n for n in FILES if n != missing])
    manifest = _write_manifest(tmp_path / "manifest.sha256", FILES)

    with pytest.raises(VerificationError, match="missing: .*Aria/Setup-A-2-STA.pcap"):
        _download(tmp_path, f"{base}/archive.tar.gz", manifest)

    assert not (tmp_path / "resources/iot-sentinel/verified.txt").exists()


def test_http_404_names_url(tmp_path, server):
    _, base = server
    url = f"{base}/no-such-archive.tar.gz"
    manifest = _write_manifest(tmp_path / "manifest.sha256", FILES)

    with pytest.raises(DownloadError) as caught:
        _download(tmp_path, url, manifest)

    message = str(caught.value)
    assert url in message
    assert "404" in message
    assert "dataset.captures_dir" in message
    assert not list((tmp_path / "resources/iot-sentinel").iterdir())


def test_timeout_names_url(tmp_path, server):
    _, base = server
    manifest = _write_manifest(tmp_path / "manifest.sha256", FILES)

    with pytest.raises(DownloadError, match=f"{base}/slow.*timed out"):
        _download(tmp_path, f"{base}/slow", manifest, timeout=0.3)


def test_archive_folder_missing(tmp_path, server):
    root, base = server
    _build_archive(root / "archive.tar.gz")
    manifest = _write_manifest(tmp_path / "manifest.sha256", FILES)

    with pytest.raises(DownloadError, match="archive_folder"):
        download_captures(
            url=f"{base}/archive.tar.gz",
            archive_folder="IoT_Sentinel-other/captures",
            manifest=manifest,
            captures_dir=tmp_path / "captures",
            marker=tmp_path / "verified.txt",
        )


def _dotdot_member():
    info = tarfile.TarInfo(f"{ARCHIVE_FOLDER}/../../../escaped.txt")
    info.size = 1
    return info


def _absolute_member():
    info = tarfile.TarInfo("/tmp/escaped.txt")
    info.size = 1
    return info


def _symlink_member():
    info = tarfile.TarInfo(f"{ARCHIVE_FOLDER}/Aria/link.pcap")
    info.type = tarfile.SYMTYPE
    info.linkname = "/etc/passwd"
    return info


@pytest.mark.parametrize(
    "make_member, reason",
    [(_dotdot_member, "unsafe member"), (_absolute_member, "unsafe member"),
     (_symlink_member, "link or special file")],
    ids=["dotdot", "absolute", "symlink"],
)
def test_unsafe_member_rejected(tmp_path, server, make_member, reason):
    root, base = server
    member = make_member()
    _build_archive(root / "archive.tar.gz", extra_members=[member])
    manifest = _write_manifest(tmp_path / "manifest.sha256", FILES)

    with pytest.raises(DownloadError, match=reason) as caught:
        _download(tmp_path, f"{base}/archive.tar.gz", manifest)

    assert member.name in str(caught.value)
    assert not (tmp_path / "resources/iot-sentinel/captures").exists()
    assert not list(tmp_path.rglob("escaped.txt"))


def test_manifest_rejects_malformed_line(tmp_path):
    manifest = tmp_path / "manifest.sha256"
    manifest.write_text("0123  Aria/Setup-A-1-STA.pcap\n")

    with pytest.raises(ValueError, match=r"manifest.sha256:1: invalid manifest line"):
        read_manifest(manifest)


def test_project_manifest_matches_shared():
    project = read_manifest(REPO / "resources/iot-sentinel.sha256")

    assert project == read_manifest(SHARED / "iot-sentinel.sha256")
    assert len(project) == 581


def _snakemake(workdir, url):
    (workdir / "config.yaml").write_text(
        json.dumps(
            {
                "dataset": {
                    "download": {
                        "url": url,
                        "archive_folder": ARCHIVE_FOLDER,
                        "manifest": "manifest.sha256",
                        "timeout": 10,
                    }
                }
            }
        )
    )
    (workdir / "Snakefile").write_text(
        'configfile: "config.yaml"\n'
        f'include: "{REPO / "workflow/rules/download.smk"}"\n'
        "rule all:\n"
        "    input: rules.download_captures.output.marker\n"
    )
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", "--directory", str(workdir),
         "--snakefile", str(workdir / "Snakefile")],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_snakemake_rule_downloads(tmp_path, server):
    root, base = server
    _build_archive(root / "archive.tar.gz")
    workdir = tmp_path / "run"
    workdir.mkdir()
    _write_manifest(workdir / "manifest.sha256", FILES)

    result = _snakemake(workdir, f"{base}/archive.tar.gz")

    assert result.returncode == 0, result.stderr[-3000:]
    assert (workdir / "resources/iot-sentinel/verified.txt").is_file()
    for name in FILES:
        assert (workdir / "resources/iot-sentinel/captures" / name).is_file()
    log = (workdir / "results/logs/download_captures.log").read_text()
    assert "Verified 6 files" in log
    assert (workdir / "results/benchmarks/download_captures.tsv").is_file()


def test_snakemake_rule_keeps_files_on_failure(tmp_path, server):
    root, base = server
    altered = "Aria/Setup-A-1-STA.pcap"
    _build_archive(root / "archive.tar.gz", replace={altered: b"altered"})
    workdir = tmp_path / "run"
    workdir.mkdir()
    _write_manifest(workdir / "manifest.sha256", FILES)

    result = _snakemake(workdir, f"{base}/archive.tar.gz")

    assert result.returncode != 0
    assert not (workdir / "resources/iot-sentinel/verified.txt").exists()
    assert (workdir / "resources/iot-sentinel/captures" / altered).read_bytes() == b"altered"
    log = (workdir / "results/logs/download_captures.log").read_text()
    assert "hash mismatch" in log
    assert altered in log
