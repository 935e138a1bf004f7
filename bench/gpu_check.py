"""The face worker's pipeline on a GPU: read, nvJPEG decode, batched MTCNN, grid_sample alignment and
fp16 embedding, over 12 MP JPEGs, with the next batch read from disk while the GPU works.

Run by bench/gpu_check.sh on a lent H100/H200 (it carries the album, the weights and the wheels);
runs on CPU too (`--device cpu`, small `--photos`) to check the script itself. Photos are the
album's files copied `--photos` times over on local disk: every copy is read, decoded, detected,
aligned and embedded again, so nothing is reused between them. Postgres, Redis and storage are not
in this measurement (the device machine has none); bench/ingest.py measures those on CPU.

    python bench/gpu_check.py --album DIR [--photos 2000] [--batches 16,32,64] [--device cuda]

Prints one JSON object: per batch size photos/s, faces/s, time per stage, GPU utilisation and
memory, and the bounding stage; then the best batch again with the other way of cutting MTCNN's
crops (photomatch.faces.mtcnn's roi_align or facenet-pytorch's per-box loop).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch


class GpuSampler:
    """GPU utilisation and memory sampled every 100 ms by NVML (nvidia-smi's library) while running."""

    def __init__(self, index: int = 0) -> None:
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml, self._handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:
            self._nvml = None

    def __enter__(self) -> GpuSampler:
        if self._nvml is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        assert self._nvml is not None
        while not self._stop.wait(0.1):
            util = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
            mem = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
            self.samples.append((int(util.gpu), int(mem.used // 2**20)))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {"gpu_util_mean_pct": None, "gpu_util_max_pct": None, "gpu_memory_max_mib": None}
        util = [u for u, _ in self.samples]
        return {
            "gpu_util_mean_pct": round(sum(util) / len(util), 1),
            "gpu_util_max_pct": max(util),
            "gpu_memory_max_mib": max(m for _, m in self.samples),
        }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(engine: Any, files: list[Path], batch: int, device: torch.device) -> dict[str, Any]:
    """Every file once, `batch` photos per engine call; the next batch is read while this one runs."""
    stages = {"read": 0.0, "decode": 0.0, "detect_align_embed": 0.0}
    faces = 0
    batches = [files[i : i + batch] for i in range(0, len(files), batch)]

    def read(group: list[Path]) -> tuple[list[bytes], float]:
        t0 = time.perf_counter()
        return [f.read_bytes() for f in group], time.perf_counter() - t0

    sync(device)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as io, GpuSampler(device.index or 0) as sampler:
        pending = io.submit(read, batches[0])
        for k in range(len(batches)):
            data, read_s = pending.result()
            stages["read"] += read_s
            if k + 1 < len(batches):
                pending = io.submit(read, batches[k + 1])  # overlaps the GPU work below
            t0 = time.perf_counter()
            images = [engine.decode(d).rgb for d in data]
            sync(device)
            t1 = time.perf_counter()
            result = engine.analyze(images)  # ends on host copies of the vectors
            t2 = time.perf_counter()
            stages["decode"] += t1 - t0
            stages["detect_align_embed"] += t2 - t1
            faces += sum(len(r) for r in result)
    wall = time.perf_counter() - started
    return {
        "batch": batch,
        "photos": len(files),
        "faces": faces,
        "wall_s": round(wall, 2),
        "photos_per_s": round(len(files) / wall, 1),
        "faces_per_s": round(faces / wall, 1),
        "stage_s": {k: round(v, 2) for k, v in stages.items()},
        "bounding_stage": max(("decode", "detect_align_embed"), key=lambda k: stages[k]),
        "read_hidden": stages["read"] < 0.1 * wall,
        **sampler.summary(),
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--album", type=Path, required=True, help="folder of 12 MP JPEGs to copy")
    ap.add_argument("--photos", type=int, default=2000)
    ap.add_argument("--batches", default="16,32,64")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)

    from photomatch.config import Settings
    from photomatch.faces.engine import FaceEngine

    device = torch.device(args.device)
    settings = Settings(environment="test", device=args.device, embed_batch_size=256)
    engine = FaceEngine(settings)
    engine.load()
    sources = sorted(args.album.glob("*.jpg"))
    if not sources:
        print(f"no JPEGs in {args.album}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    files = []
    for i in range(args.photos):  # copies on local disk: each one is read and decoded for real
        files.append(work / f"{i:05d}.jpg")
        shutil.copyfile(sources[i % len(sources)], files[-1])
    engine.analyze([engine.decode(sources[0].read_bytes()).rgb])  # warm-up: kernels, cuDNN plans
    out: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "album": {"sources": len(sources), "photos": args.photos, "megapixels": _megapixels(sources[0])},
        "decode_on_device": device.type == "cuda",
        "embed_dtype": str(engine.embedder.dtype),
        "runs": [],
    }
    for batch in (int(b) for b in args.batches.split(",")):
        r = run(engine, files, batch, device)
        out["runs"].append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    best = max(out["runs"], key=lambda r: r["photos_per_s"])
    out["best"] = {k: best[k] for k in ("batch", "photos_per_s", "faces_per_s", "bounding_stage", "gpu_util_mean_pct")}
    out["detector"] = engine.detector_name
    if hasattr(engine.detector, "batched_crops"):
        # MTCNN: the same best batch with facenet-pytorch's per-box crop loop (the CPU default), to decide the GPU's.
        engine.detector.batched_crops = not engine.detector.batched_crops
        other = run(engine, files, best["batch"], device)
        out["other_crops"] = {"batched_crops": engine.detector.batched_crops, **other}
        engine.detector.batched_crops = not engine.detector.batched_crops
        out["batched_crops"] = engine.detector.batched_crops
    out["nvidia_smi"] = _nvidia_smi()
    shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


def _megapixels(path: Path) -> float:
    from PIL import Image

    with Image.open(path) as im:
        return round(im.size[0] * im.size[1] / 1e6, 1)


def _nvidia_smi() -> str | None:
    try:
        return subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
