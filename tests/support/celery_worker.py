"""A real `celery worker` subprocess for tests where the queue is the subject (no eager mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

from bench.lib.datasets import dev_data
from photomatch.config import REPO_ROOT, Settings


class CeleryWorker:
    """`celery worker` on both queues, solo pool, configured like `settings`, logging to data_dir/worker.log."""

    def __init__(self, settings: Settings, name: str = "test", *, queues: str = "faces,cpu") -> None:
        self.settings = settings
        self.name = name
        self.queues = queues
        self.log_path = settings.data_dir / f"worker-{name}.log"
        # Its Prometheus samples (multiprocess mode), read back by tests with metrics_in().
        self.metrics_dir = settings.data_dir / f"metrics-{name}"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """The worker's environment: this test's database, Redis and storage, nothing inherited."""
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOMATCH_")}
        env.update(
            PHOTOMATCH_ENVIRONMENT="test",
            PHOTOMATCH_DATABASE_URL=s.database_url,
            PHOTOMATCH_REDIS_URL=s.redis_url,
            PHOTOMATCH_DATA_DIR=str(s.data_dir),
            PHOTOMATCH_STORAGE_BACKEND="local",
            PHOTOMATCH_STORAGE_DIR=str(s.storage_dir),
            PHOTOMATCH_SECRET_KEY=s.secret_key,
            PHOTOMATCH_DEV_FACES_DIR=str(dev_data().faces_dir),
            # The test process computes too; one torch thread each keeps two cores busy, not oversubscribed.
            OMP_NUM_THREADS="1",
            PROMETHEUS_MULTIPROC_DIR=str(self.metrics_dir),
        )
        return env

    def start(self) -> None:
        """Start the worker and wait until it consumes."""
        argv = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "-Q", self.queues]
        argv += ["--pool=solo", "-c", "1", "--loglevel=INFO", "--without-gossip", "--without-mingle"]
        argv += ["--hostname", f"{self.name}-{uuid.uuid4().hex[:6]}@%h"]
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while b"ready." not in self.log_path.read_bytes()[offset:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Warm shutdown (finishes the task in hand), then kill if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, n: int = 60) -> str:
        """The last lines of the worker's log, for failure messages."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
