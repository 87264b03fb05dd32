"""Downloads with resume and checksum (standard library + tqdm).

A download goes to FILE.part; an interrupted one continues from the bytes
already there (HTTP Range), and the file is renamed to FILE only after its
checksum matched, so a FILE that exists is complete.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

CHUNK = 1 << 20


class DownloadError(Exception):
    pass


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def parse_checksum(checksum: str | None):
    """(algo, hex) for 'sha256:...'/'md5:...', None when no sum is published."""
    if not checksum or ":" not in checksum:
        return None
    algo, hexd = checksum.split(":", 1)
    if algo not in ("sha256", "md5"):
        raise DownloadError(f"unsupported checksum '{checksum}'")
    return algo, hexd.lower()


def verify_checksum(path: Path, checksum: str | None) -> None:
    want = parse_checksum(checksum)
    if want is None:
        return
    got = file_digest(path, want[0])
    if got != want[1]:
        raise DownloadError(
            f"{path.name}: {want[0]} is {got}, the source publishes {want[1]}: the file is corrupt or was "
            f"changed upstream; it was removed, run again to download it afresh")


def download(url: str, dest: Path, checksum: str | None, timeout: float = 60.0, progress: bool = True) -> Path:
    """Downloads url to dest (resuming dest.part), verifies, renames. Returns dest."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "mll-prepare-data/1"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the .part is already whole
            resp = None
        else:
            raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"{url}: cannot connect ({getattr(e, 'reason', e)})") from e
    if resp is not None:
        with resp:
            status = getattr(resp, "status", 200)
            if have and status != 206:
                have = 0  # the server ignored Range: start over
            total = resp.headers.get("Content-Length")
            total = int(total) + have if total is not None else None
            mode = "ab" if have else "wb"
            with open(part, mode) as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                             desc=dest.name, disable=not progress, leave=False) as bar:
                try:
                    for block in iter(lambda: resp.read(CHUNK), b""):
                        f.write(block)
                        bar.update(len(block))
                except (OSError, http.client.HTTPException) as e:
                    raise DownloadError(f"{url}: connection lost after {f.tell()} bytes ({e}); run again to resume") from e
            if total is not None and part.stat().st_size < total:
                raise DownloadError(f"{url}: got {part.stat().st_size} of {total} bytes; run again to resume")
    try:
        verify_checksum(part, checksum)
    except DownloadError:
        part.unlink()
        raise
    os.replace(part, dest)
    return dest
