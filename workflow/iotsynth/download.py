"""Download, unpack and verify the public IoT Sentinel captures.

The captures come from a source archive (``.tar.gz``) of a Git repository.
Only the members under one folder of the archive are unpacked, and every file
is then checked against a SHA-256 manifest in the format of ``sha256sum``.
A marker file is written only when all files match, so a workflow can depend
on the marker to know that the captures folder is complete.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

logger = logging.getLogger(__name__)

#: Folder that receives the downloaded captures, relative to the working directory.
CAPTURES_DIR = "resources/iot-sentinel/captures"
#: Checksum report written after a successful verification, the output of rule
#: download_captures.
VERIFIED_MARKER = "resources/iot-sentinel/verified.txt"

_CHUNK_BYTES = 1 << 20
_PROGRESS_BYTES = 16 << 20
_MANIFEST_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
_FALLBACK_HINT = (
    "To work without the download, set dataset.captures_dir to a local copy of "
    "the IoT Sentinel captures."
)


class DownloadError(RuntimeError):
    """The archive could not be downloaded or unpacked safely."""


class VerificationError(RuntimeError):
    """The unpacked captures do not match the manifest."""


def download_captures(
    url: str,
    archive_folder: str,
    manifest: str | os.PathLike,
    captures_dir: str | os.PathLike = CAPTURES_DIR,
    marker: str | os.PathLike = VERIFIED_MARKER,
    timeout: float = 120.0,
) -> Path:
    """Download the capture archive, unpack one folder of it and verify it.

    Parameters
    ----------
    url : str
        Address of the ``.tar.gz`` archive.
    archive_folder : str
        Folder inside the archive that contains the device folders, for example
        ``IoT_Sentinel-<commit>/captures_IoT_Sentinel/captures_IoT-Sentinel``.
    manifest : path-like
        SHA-256 manifest, paths relative to the captures folder.
    captures_dir : path-like, default CAPTURES_DIR
        Folder that receives the device folders.
    marker : path-like, default VERIFIED_MARKER
        Checksum report written after every file in the manifest matched.
    timeout : float, default 120.0
        Seconds to wait for the server on each connect and read.

    Returns
    -------
    pathlib.Path
        The marker file.

    Raises
    ------
    DownloadError
        If the download fails, or the archive is invalid, unsafe or lacks
        ``archive_folder``.
    VerificationError
        If a file in the manifest is missing or has another hash. The unpacked
        files stay in place and no marker is written.
    """
    captures_dir = Path(captures_dir)
    marker = Path(marker)
    expected = read_manifest(manifest)

    # The archive goes next to the captures folder so that the final rename
    # stays on one file system.
    work_dir = captures_dir.parent
    work_dir.mkdir(parents=True, exist_ok=True)
    archive = fetch_archive(url, work_dir / "iot-sentinel.tar.gz", timeout)

    extract_folder(archive, archive_folder, captures_dir)
    # The unpacked folder contains everything the workflow reads from the archive.
    archive.unlink()

    verify_captures(captures_dir, expected)
    write_marker(marker, expected, url)
    return marker


def read_manifest(path: str | os.PathLike) -> dict[str, str]:
    """Read a SHA-256 manifest in the format of ``sha256sum``.

    Each line is a 64-digit hex hash, a space, a space or ``*``, and a path
    relative to the captures folder. A leading ``./`` is dropped, so
    ``./Aria/Setup-A-1-STA.pcap`` and ``Aria/Setup-A-1-STA.pcap`` are the same
    entry. Blank lines and lines starting with ``#`` are skipped.

    Parameters
    ----------
    path : path-like
        The manifest file.

    Returns
    -------
    dict of str to str
        Lower-case hex hash per relative path, in file order.

    Raises
    ------
    ValueError
        If a line is malformed, a path leaves the captures folder, a path is
        listed twice, or the manifest lists no file.
    """
    path = Path(path)
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue

        match = _MANIFEST_LINE.match(line)
        if match is None:
            raise ValueError(
                f"{path}:{number}: invalid manifest line {line!r}. Expected "
                "'<64 hex digits>  <relative path>'."
            )

        digest, name = match.group(1).lower(), match.group(2)
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(
                f"{path}:{number}: path {name!r} must be relative to the captures "
                "folder and must not contain '..'."
            )

        key = relative.as_posix()
        if key in entries:
            raise ValueError(f"{path}:{number}: {key!r} is listed twice.")
        entries[key] = digest

    if not entries:
        raise ValueError(f"Manifest {path} lists no file.")
    return entries


def fetch_archive(url: str, destination: str | os.PathLike, timeout: float) -> Path:
    """Stream ``url`` into a temporary file, then rename it to ``destination``.

    Parameters
    ----------
    url : str
        Address to download.
    destination : path-like
        Final file. Its folder must exist.
    timeout : float
        Seconds to wait for the server on each connect and read.

    Returns
    -------
    pathlib.Path
        ``destination``.

    Raises
    ------
    DownloadError
        On an HTTP error, a network error, a timeout or a truncated body. The
        partial file is removed.
    """
    destination = Path(destination)
    partial = tempfile.NamedTemporaryFile(
        dir=destination.parent, prefix=destination.name + ".", suffix=".part", delete=False
    )
    logger.info("Downloading %s (timeout %s s)", url, timeout)
    try:
        with partial:
            size = _stream(url, partial, timeout)
        os.replace(partial.name, destination)
    except BaseException:
        Path(partial.name).unlink(missing_ok=True)
        raise

    logger.info("Downloaded %.1f MB to %s", size / 1e6, destination)
    return destination


def _stream(url: str, sink, timeout: float) -> int:
    """Copy the body at ``url`` into ``sink`` and return its size in bytes."""
    started = time.monotonic()
    size = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            next_report = _PROGRESS_BYTES
            while chunk := response.read(_CHUNK_BYTES):
                sink.write(chunk)
                size += len(chunk)
                if size >= next_report:
                    logger.info(
                        "%.0f MB received after %.0f s", size / 1e6, time.monotonic() - started
                    )
                    next_report += _PROGRESS_BYTES
    except urllib.error.HTTPError as error:
        raise DownloadError(
            f"Download of {url} failed: HTTP {error.code} {error.reason}. {_FALLBACK_HINT}"
        ) from error
    except urllib.error.URLError as error:
        raise DownloadError(
            f"Download of {url} failed: {error.reason}. {_FALLBACK_HINT}"
        ) from error
    except TimeoutError as error:
        raise DownloadError(
            f"Download of {url} timed out: no data for {timeout} s. {_FALLBACK_HINT}"
        ) from error
    except (OSError, http.client.HTTPException) as error:
        raise DownloadError(f"Download of {url} failed: {error}. {_FALLBACK_HINT}") from error

    if length is not None and length.isdigit() and size != int(length):
        raise DownloadError(
            f"Download of {url} stopped after {size} of {length} bytes. {_FALLBACK_HINT}"
        )
    return size


def extract_folder(
    archive: str | os.PathLike, folder: str, destination: str | os.PathLike
) -> int:
    """Unpack the members under ``folder`` of a ``.tar.gz`` into ``destination``.

    Member names are checked before anything is written: an absolute name or a
    name with a ``..`` part anywhere in the archive is rejected, and so is a
    link, device or FIFO under ``folder``. Files are written by this function,
    never by ``TarFile.extract``, so no owner, mode or link from the archive
    reaches the file system.

    Parameters
    ----------
    archive : path-like
        The ``.tar.gz`` file.
    folder : str
        Folder inside the archive, as a POSIX path without leading ``/``.
    destination : path-like
        Folder that receives the contents of ``folder``; created if missing.
        Existing files with the same names are overwritten.

    Returns
    -------
    int
        Number of files written.

    Raises
    ------
    DownloadError
        If the archive is invalid or unsafe, or has no member under ``folder``.
    """
    archive = Path(archive)
    destination = Path(destination)
    prefix = PurePosixPath(folder).parts

    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            selected = _select_members(tar.getmembers(), prefix, archive)
            if not selected:
                raise DownloadError(
                    f"Archive {archive} has no files under {folder!r}. Check "
                    f"dataset.download.archive_folder. {_FALLBACK_HINT}"
                )
            count = _write_members(tar, selected, destination)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise DownloadError(
            f"Archive {archive} is not a valid .tar.gz file: {error}. {_FALLBACK_HINT}"
        ) from error

    logger.info("Unpacked %d files from %s into %s", count, archive, destination)
    return count


def _select_members(
    members: list[tarfile.TarInfo], prefix: tuple[str, ...], archive: Path
) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    """Return the safe members under ``prefix`` with their paths below it."""
    selected = []
    for member in members:
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts:
            raise DownloadError(
                f"Archive {archive} contains the unsafe member {member.name!r} "
                "(absolute path or '..'); nothing from it is unpacked."
            )
        if name.parts[: len(prefix)] != prefix or len(name.parts) == len(prefix):
            continue
        if not (member.isfile() or member.isdir()):
            raise DownloadError(
                f"Archive {archive} contains {member.name!r}, which is a link or "
                "special file; only regular files and folders are unpacked."
            )
        selected.append((member, PurePosixPath(*name.parts[len(prefix) :])))
    return selected


def _write_members(
    tar: tarfile.TarFile,
    selected: list[tuple[tarfile.TarInfo, PurePosixPath]],
    destination: Path,
) -> int:
    """Write the selected members below ``destination`` and return the file count."""
    count = 0
    for member, relative in selected:
        target = destination.joinpath(*relative.parts)
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue

        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        with source, open(target, "wb") as sink:
            shutil.copyfileobj(source, sink, _CHUNK_BYTES)
        count += 1
    return count


def sha256_file(path: str | os.PathLike) -> str:
    """Return the lower-case hex SHA-256 of a file's contents."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_captures(captures_dir: str | os.PathLike, expected: dict[str, str]) -> list[str]:
    """Check every file in ``expected`` against its SHA-256 hash.

    Parameters
    ----------
    captures_dir : path-like
        Folder that the manifest paths are relative to.
    expected : dict of str to str
        Hash per relative path, as returned by `read_manifest`.

    Returns
    -------
    list of str
        Files in ``captures_dir`` that the manifest does not list, relative
        POSIX paths, sorted. Each is logged as a warning and otherwise ignored.

    Raises
    ------
    VerificationError
        If a listed file is missing or its hash differs. The message names
        every such file, with the expected and actual hash of each mismatch.
    """
    captures_dir = Path(captures_dir)
    problems = []
    for name, digest in expected.items():
        path = captures_dir / name
        if not path.is_file():
            problems.append(f"missing: {path}")
            continue
        actual = sha256_file(path)
        if actual != digest:
            problems.append(f"hash mismatch: {path} (expected {digest}, actual {actual})")

    if problems:
        raise VerificationError(
            f"{len(problems)} of {len(expected)} files in {captures_dir} failed "
            "verification against the manifest:\n  "
            + "\n  ".join(problems)
            + "\nThe files were kept and no marker was written. Rerun to download "
            f"again. {_FALLBACK_HINT}"
        )

    extra = sorted(
        path.relative_to(captures_dir).as_posix()
        for path in captures_dir.rglob("*")
        if path.is_file() and path.relative_to(captures_dir).as_posix() not in expected
    )
    if extra:
        logger.warning(
            "%d files in %s are not in the manifest and are not verified: %s",
            len(extra),
            captures_dir,
            ", ".join(extra),
        )
    logger.info("Verified %d files in %s", len(expected), captures_dir)
    return extra


def write_marker(marker: str | os.PathLike, expected: dict[str, str], url: str) -> Path:
    """Write the checksum report that marks the captures folder as verified.

    The report has ``#`` comment lines naming the source and the file count,
    then one ``sha256sum`` line per verified file. It is written to a
    temporary file and renamed, so a crash never leaves a partial marker.

    Parameters
    ----------
    marker : path-like
        The report file.
    expected : dict of str to str
        Hash per relative path of the verified files.
    url : str
        Address the files were downloaded from.

    Returns
    -------
    pathlib.Path
        ``marker``.
    """
    marker = Path(marker)
    marker.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Verified IoT Sentinel captures downloaded from {url}",
        f"# {len(expected)} files; SHA-256 and path relative to the captures folder",
    ]
    lines += [f"{digest}  {name}" for name, digest in expected.items()]

    partial = marker.with_name(marker.name + ".part")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(partial, marker)
    logger.info("Wrote %s", marker)
    return marker
