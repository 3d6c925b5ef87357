"""`download` (data/download.py) end to end against a local HTTP server serving a small
PACS-like archive laid out like DomainBed's (kfold/<domain>/<class>/...): an interrupted
transfer resumes with a Range request, data-summary counts what was served, a corrupt
archive leaves nothing that looks complete. No test reaches the internet."""
import shutil
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cadm_utils.data import load_dataset
from cadm_utils.data.download import download_dataset
from cadm_utils.runtime import file_sha256
from cadm_utils.errors import DataError


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) \
            if self.headers.get("Range") else 0
        server.requests.append(start)
        body = server.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_first and len(server.requests) == 1:
            self.wfile.write(body[:len(body) // 2])  # then the connection drops
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(payload: bytes, cut_first: bool = False):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.payload, server.cut_first, server.requests = payload, cut_first, []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}/PACS.zip"
    yield start
    for server in servers:
        server.shutdown()


def pacs_archive(tiny_pacs, path):
    """tiny_pacs's images zipped as DomainBed's PACS archive: kfold/<domain>/<class>/..."""
    with zipfile.ZipFile(path, "w") as bundle:
        for file in sorted((tiny_pacs / "PACS").rglob("*.*")):
            bundle.write(file, "kfold/" + file.relative_to(tiny_pacs / "PACS").as_posix())
    return path.read_bytes()


def test_an_interrupted_download_resumes_and_the_data_set_loads(tiny_pacs, tmp_path, serve,
                                                                capsys):
    from cadm_utils.__main__ import main

    payload = pacs_archive(tiny_pacs, tmp_path / "PACS.zip")
    server, url = serve(payload, cut_first=True)
    root = tmp_path / "data"
    assert main(["download", "pacs", "--data-root", str(root), "--from", url, "--quiet",
                 "--sha256", file_sha256(tmp_path / "PACS.zip")]) == 0
    assert server.requests[0] == 0 and server.requests[1] == len(payload) // 2  # resumed
    assert not (root / ".cadm-download").exists()
    data = load_dataset("pacs", root, 16, progress=False)
    assert len(data) == 4 * 7 * 3 and data.counts().eq(3).all()
    assert main(["data-summary", "--dataset", "pacs", "--data-root", str(root), "--quiet"]) == 0
    assert "84" in capsys.readouterr().out  # 4 domains × 7 classes × 3 images served
    download_dataset("pacs", root, url, progress=False)  # in place: nothing fetched again
    assert len(server.requests) == 2


def test_a_corrupt_archive_leaves_nothing_that_looks_complete(tmp_path, serve, capsys):
    from cadm_utils.__main__ import main

    _, url = serve(b"PK\x03\x04 this is not a zip archive at all" * 100)
    root = tmp_path / "data"
    assert main(["download", "pacs", "--data-root", str(root), "--from", url, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corrupt archive PACS.zip" in err[0]
    assert not (root / "PACS").exists()
    assert not list((root / ".cadm-download").rglob("*.zip"))  # a retry fetches it anew


def test_a_wrong_checksum_an_unknown_name_and_a_missing_archive_are_refused(tiny_pacs,
                                                                             tmp_path):
    archive = tmp_path / "PACS.zip"
    pacs_archive(tiny_pacs, archive)
    with pytest.raises(DataError, match="SHA-256 .* expected 00"):
        download_dataset("pacs", tmp_path / "a", str(archive), sha256="00" * 32, progress=False)
    assert not (tmp_path / "a" / "PACS").exists()
    with pytest.raises(DataError, match="unknown data set 'pacz'"):
        download_dataset("pacz", tmp_path / "b", str(archive))
    with pytest.raises(DataError, match="--sha256 names one archive; domainnet comes in 6"):
        download_dataset("domainnet", tmp_path / "e", sha256="00" * 32)
    with pytest.raises(DataError, match="archive not found"):
        download_dataset("pacs", tmp_path / "c", str(tmp_path / "nothing.zip"))
    shutil.copy(archive, tmp_path / "copy.zip")  # an archive on disk works like a URL
    assert download_dataset("pacs", tmp_path / "d", str(tmp_path / "copy.zip"),
                            progress=False).is_dir()
