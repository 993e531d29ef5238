"""An S3 API server for tests: ``moto_server`` as a subprocess on a free 127.0.0.1 port, stopped by its pid.

with MotoS3() as s3:
    s3.create_bucket("lake")
    s3.endpoint          # http://127.0.0.1:<port>
    s3.environment()     # the AWS_* variables a deployment would set to reach it
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.error
import urllib.request
from types import TracebackType

from pyarrow import fs

from .services import BIN, free_port, wait_until

ACCESS_KEY = "medallion-test-key"
REGION = "us-east-1"


class MotoS3:
    """A moto S3 server for the duration of a ``with`` block; ``secret`` is the secret key clients use."""

    def __init__(self, *, secret: str = "medallion-test-secret", startup_timeout: float = 30.0) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.secret = secret
        self._timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MotoS3:
        command = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(self._answers, timeout=self._timeout, what=f"moto_server on {self.endpoint}", interval=0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _answers(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {self._process.returncode}")
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """SIGTERM to the server's pid, SIGKILL if it has not exited within 10 s."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def environment(self) -> dict[str, str]:
        """The ``AWS_*`` variables that point every client (Sail, deltalake, pyarrow) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def filesystem(self) -> fs.S3FileSystem:
        return fs.S3FileSystem(
            access_key=ACCESS_KEY,
            secret_key=self.secret,
            region=REGION,
            endpoint_override=f"127.0.0.1:{self.port}",
            scheme="http",
            allow_bucket_creation=True,
        )

    def create_bucket(self, bucket: str) -> None:
        self.filesystem().create_dir(bucket)

    def objects(self, prefix: str) -> list[str]:
        """Every object (not folder) below ``bucket/prefix``."""
        selector = fs.FileSelector(prefix, recursive=True, allow_not_found=True)
        return sorted(i.path for i in self.filesystem().get_file_info(selector) if i.type == fs.FileType.File)

    def is_file(self, path: str) -> bool:
        return self.filesystem().get_file_info(path).type == fs.FileType.File

    def read(self, path: str) -> bytes:
        with self.filesystem().open_input_stream(path) as stream:
            return stream.read()
