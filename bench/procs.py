"""Starting, watching and stopping the benchmark's server processes.

Every process is started pinned to a core with `taskset`, in its own session, with its output in
the run directory, and is stopped by its own pid only. Memory comes from /proc/<pid>/status
(VmHWM is the peak resident set), CPU time from /proc/<pid>/task/*/schedstat (nanoseconds)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
GATEWAY_CORE = "0"
LOAD_CORE = "1"  # the upstream stand-in and the load generators


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    def __init__(self, name: str, argv: list[str], core: str, run_dir: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.log_path = run_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        full_env = {**os.environ, **(env or {})}
        self.popen = subprocess.Popen(["taskset", "-c", core, *argv], stdout=self._log, stderr=subprocess.STDOUT,
                                      env=full_env, cwd=cwd or REPO, start_new_session=True)
        self.pid = self.popen.pid  # taskset execs the program: the pid is the program's

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_ready(self, url: str, timeout_s: float) -> None:
        """Poll until `url` answers (any HTTP status) or a bare TCP connect works for tcp:// urls."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
            if _answers(url):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout_s}s at {url}:\n{self.tail()}")

    def pids(self) -> list[int]:
        """This process and its descendants (a server that forks workers is measured whole)."""
        found = [self.pid]
        for pid in found:
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                found.extend(int(c) for c in children)
        return found

    def status_kb(self, field: str) -> int:
        """A /proc/<pid>/status field in kB, summed over the process tree."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(field + ":"):
                        total += int(line.split()[1])
        return total

    def cpu_ns(self) -> int:
        """CPU time of every thread of the process tree, in nanoseconds."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    with contextlib.suppress(OSError):
                        total += int((task / "schedstat").read_text().split()[0])
        return total

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)  # its own session: only what it started
                self.popen.wait(5)
        self._log.close()


def _answers(url: str) -> bool:
    if url.startswith("tcp://"):
        host, _, port = url[6:].rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return True
        except OSError:
            return False
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {run}/nginx.pid;
error_log {run}/nginx-error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush off;
  tcp_nodelay on;
  keepalive_timeout 600s;
  keepalive_requests 100000000;
  client_body_buffer_size 64k;
  client_body_temp_path {run}/nginx-body;
  proxy_temp_path {run}/nginx-proxy;
  fastcgi_temp_path {run}/nginx-fastcgi;
  uwsgi_temp_path {run}/nginx-uwsgi;
  scgi_temp_path {run}/nginx-scgi;
  open_file_cache max=64 inactive=600s;
  open_file_cache_valid 600s;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
{locations}
  }}
}}
"""

# The static module answers POST with 405; error_page turns that into an internal GET of the same
# location, so a POST gets the file with 200 and nothing but nginx's own C code runs per request.
NGINX_LOCATION = """\
    location = {path} {{
      types {{}} default_type {ctype};
      alias {file};
      error_page 405 =200 $uri;
    }}"""


def nginx_conf(run_dir: Path, port: int, files: dict[str, Path]) -> Path:
    """`files` maps an upstream path (…/chat/completions) to the file answered there."""
    locations = "\n".join(
        NGINX_LOCATION.format(path=path, file=file,
                              ctype="application/json" if file.suffix == ".json" else "text/event-stream")
        for path, file in files.items())
    conf = run_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(run=run_dir, port=port, locations=locations))
    return conf
