"""`python -m cadm_utils download NAME --data-root DIR`: a real data set into the layout the
loaders read, from the sources DomainBed's `domainbed/scripts/download.py` uses (Google
Drive through gdown for PACS, VLCS and Office-Home; the VisDA server for DomainNet).

Everything happens in <root>/.cadm-download/<name>/ first: the archive arrives as
`<archive>.part` (an interrupted HTTP transfer resumes where it stopped, with a Range
request), is checked (its SHA-256 printed, or compared with --sha256), unpacked into a
staging folder, and only then moved to <root>/<folder>. A failure leaves nothing under
<root>/<folder>, so nothing half-extracted ever looks complete."""
from __future__ import annotations

import http.client
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import DataError
from ..runtime import file_sha256


@dataclass(frozen=True)
class Source:
    url: str
    archive: str  # the downloaded file's name (its suffix says how to unpack it)
    top: str  # the folder the archive unpacks to


DRIVE = "https://drive.google.com/uc?id="
VISDA = "http://csr.bu.edu/ftp/visda/2019/multi-source/"
DOMAINNET = ("groundtruth/clipart", "infograph", "groundtruth/painting", "quickdraw", "real",
             "sketch")
SOURCES = {  # DomainBed domainbed/scripts/download.py
    "pacs": (Source(DRIVE + "1JFr8f805nMUelQWWmfnJR3y4_SYoN5Pd", "PACS.zip", "kfold"),),
    "vlcs": (Source(DRIVE + "1skwblH1_okBwxWxmRsp9_qi15hyPpxg8", "VLCS.tar.gz", "VLCS"),),
    "officehome": (Source(DRIVE + "1uY0pj7oFsjMxRwaD3Sxy0jgel0fsYXLC", "office_home.zip",
                          "OfficeHomeDataset_10072016"),),
    "domainnet": tuple(Source(f"{VISDA}{path}.zip", f"{path.split('/')[-1]}.zip",
                              path.split("/")[-1]) for path in DOMAINNET),
}
FOLDERS = {"pacs": "PACS", "vlcs": "VLCS", "officehome": "office_home",
           "domainnet": "domain_net"}
LOADER_NAMES = {"domainnet": "domainnet_sub"}  # the registry's name where it differs
ATTEMPTS = 3  # an interrupted transfer is resumed this many times before giving up


def download_dataset(name: str, data_root: Path, origin: str | None = None,
                     sha256: str | None = None, progress: bool = True) -> Path:
    """Fetch, check, unpack and move one data set; returns <root>/<folder>. `origin`: a URL
    or an archive on disk instead of the data set's source (one-archive data sets only)."""
    if name not in SOURCES:
        raise DataError(f"unknown data set '{name}' to download: expected one of "
                        f"{', '.join(SOURCES)}")
    sources = SOURCES[name]
    for option, given in (("--from", origin), ("--sha256", sha256)):
        if given is not None and len(sources) > 1:
            raise DataError(f"{option} names one archive; {name} comes in {len(sources)}")
    if origin is not None:
        sources = (Source(origin, sources[0].archive, sources[0].top),)
    root = Path(data_root)
    target = root / FOLDERS[name]
    if target.exists():
        print(f"{target} exists: nothing to download (remove it to fetch it again)")
        return target
    staging = root / ".cadm-download" / name
    unpacked = staging / "unpacked"
    shutil.rmtree(unpacked, ignore_errors=True)  # an earlier, interrupted unpacking
    for source in sources:
        archive = fetch(source, staging, progress)
        digest = file_sha256(archive)
        if sha256 and digest != sha256.lower():
            archive.unlink()
            raise DataError(f"{archive.name}: SHA-256 {digest}, expected {sha256} "
                            "(the file was removed; check the source)")
        print(f"{archive.name}: SHA-256 {digest}")
        unpack(archive, unpacked / source.top if len(sources) > 1 else unpacked)
    move_into_place(name, sources, unpacked, target)
    shutil.rmtree(root / ".cadm-download", ignore_errors=True)
    return target


def fetch(source: Source, staging: Path, progress: bool) -> Path:
    """The archive in `staging`: copied from disk, through gdown (Google Drive), or over
    HTTP with resumption; a finished archive is reused."""
    staging.mkdir(parents=True, exist_ok=True)
    final = staging / source.archive
    if final.exists():
        return final
    local = Path(source.url)
    if "://" not in source.url:
        if not local.is_file():
            raise DataError(f"archive not found: {local}")
        shutil.copyfile(local, final)
        return final
    part = final.with_name(final.name + ".part")
    if source.url.startswith("https://drive.google.com/"):
        _drive(source.url, part, progress)
    else:
        _http(source.url, part, progress)
    part.replace(final)
    return final


def _drive(url: str, part: Path, progress: bool) -> None:
    import gdown

    if gdown.download(url, str(part), quiet=not progress, resume=True) is None:
        raise DataError(f"download failed: {url} (Google Drive refused or the link moved; "
                        "fetch the archive by hand and pass it with --from)")


def _http(url: str, part: Path, progress: bool) -> None:
    for attempt in range(ATTEMPTS):
        try:
            _http_once(url, part, progress)
            return
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError,
                TimeoutError, OSError) as error:
            if isinstance(error, urllib.error.HTTPError):
                if error.code != 416:
                    raise DataError(f"download failed: {url} (HTTP {error.code})") from None
                part.unlink(missing_ok=True)  # a range past the end: start again
            last = error
            time.sleep(0.5 * attempt)
    raise DataError(f"download interrupted: {url} ({type(last).__name__}); "
                    f"{part.stat().st_size if part.exists() else 0} bytes kept in {part}, "
                    "run the command again to resume")


def _http_once(url: str, part: Path, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        resumed = response.status == 206
        mode = "ab" if resumed else "wb"
        start = have if resumed else 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        received = start
        with open(part, mode) as handle, tqdm(total=total, initial=start, unit="B",
                                              unit_scale=True, desc=part.stem,
                                              disable=not progress) as bar:
            while block := response.read(1 << 20):
                handle.write(block)
                received += len(block)
                bar.update(len(block))
        if total is not None and received < total:
            raise ConnectionError(f"{received} of {total} bytes")


def unpack(archive: Path, into: Path) -> None:
    """Unpack a .zip or .tar(.gz) whose members all stay inside `into`; a corrupt archive is
    removed (a retry fetches it again) and nothing it unpacked is kept."""
    into.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as bundle:
                _check_members(archive, bundle.namelist(), into)
                bundle.extractall(into)
        else:
            with tarfile.open(archive) as bundle:
                _check_members(archive, bundle.getnames(), into)
                bundle.extractall(into, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
        shutil.rmtree(into, ignore_errors=True)
        archive.unlink(missing_ok=True)
        raise DataError(f"corrupt archive {archive.name} ({type(error).__name__}): removed; "
                        "run the command again to fetch it anew") from None


def _check_members(archive: Path, names: list[str], into: Path) -> None:
    base = into.resolve()
    for name in names:
        if not (into / name).resolve().is_relative_to(base):
            raise DataError(f"{archive.name}: member '{name}' would land outside {into}")


def move_into_place(name: str, sources, unpacked: Path, target: Path) -> None:
    """The unpacked top folder becomes <root>/<folder> (PACS: DomainBed's kfold/ renamed)."""
    if len(sources) == 1:
        top = unpacked / sources[0].top
        if not top.is_dir():
            raise DataError(f"the archive of {name} holds no folder '{sources[0].top}' "
                            f"(found: {', '.join(sorted(p.name for p in unpacked.iterdir()))})")
        top.replace(target)
        return
    assembled = unpacked / ".assembled"  # DomainNet: <domain>.zip unpacks to <domain>/
    assembled.mkdir()
    for source in sources:
        (unpacked / source.top / source.top).replace(assembled / source.top)
    assembled.replace(target)
