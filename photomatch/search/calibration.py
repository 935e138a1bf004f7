"""The calibrated models that turn a selfie's distances into probabilities, and the tier thresholds.

They belong to the engines that made the vectors (the detector, its alignment, the embedders), so
they live in versioned files beside this module, one per detector configuration
(`calibrations/<detector>.json`), written by the study:

    uv run python bench/calibrate.py        # for the configured detector (PHOTOMATCH_DETECTOR)

That command fits every model on albums of one half of the identities of every dev family and
prints the other half's table; after any change to detection, alignment or an embedder, run it and
commit the file it rewrites. Search loads the site's detector's file once
(Settings.search_calibration_file picks another); every process refuses to start when the
configured detector and embedders have none (`require_calibrated`), rather than rank an event with
another model's numbers.

Each model is a logistic regression: P(the photo shows the person) = 1 / (1 + exp(-(w . x + b))),
x the features of the photo's best face (photomatch.search.scoring.Features). Two per pair of
embedders: the selfie's own evidence (decides the matches tier, so a wrong expansion can never make
a match) and the model with query expansion (ranks everything, gives the confidence, and decides
the possible tier).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from photomatch.config import Settings
from photomatch.search.cohort import CohortParams
from photomatch.search.scoring import AnswerFeatures, Features

CALIBRATIONS_DIR = Path(__file__).with_name("calibrations")


def default_file(detector: str) -> Path:
    """The calibration file that ships for a detector configuration: calibrations/<detector>.json."""
    return CALIBRATIONS_DIR / f"{detector}.json"


# The default detector's (Settings.detector).
DEFAULT_FILE = default_file(Settings.model_fields["detector"].default)
FORMAT = 1
REFIT = "uv run python bench/calibrate.py"


class NotCalibrated(RuntimeError):
    """The detector and embedders in use have no calibration: search would rank with wrong numbers."""


class Columns(Protocol):
    """Named feature columns of some candidates (Features, AnswerFeatures)."""

    @property
    def d(self) -> np.ndarray: ...

    def column(self, name: str) -> np.ndarray: ...


FEATURE_NAMES = Features.NAMES + AnswerFeatures.NAMES


@dataclass(frozen=True)
class Model:
    """A logistic model over named features."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def __post_init__(self) -> None:
        unknown = [n for n in self.features if n not in FEATURE_NAMES]
        if unknown or len(self.features) != len(self.weights) or not self.features:
            raise ValueError(f"a model needs one weight per known feature (unknown: {unknown})")

    def logits(self, f: Columns) -> np.ndarray:
        """w . x + b for the candidates whose features are `f`: the log-odds of the same person."""
        z = np.full(np.shape(f.d), self.bias, dtype=np.float64)
        for name, w in zip(self.features, self.weights, strict=True):
            z += w * np.asarray(f.column(name), dtype=np.float64)
        return z

    def probabilities(self, f: Columns) -> np.ndarray:
        """P(same person) for the candidates whose features are `f`."""
        z = self.logits(f)
        # exp(-|z|) never overflows; the two forms are the same logistic.
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Model:
        """A model from its file form."""
        return cls(tuple(d["features"]), tuple(float(w) for w in d["weights"]), float(d["bias"]))

    def to_json(self) -> dict[str, Any]:
        """The file form."""
        return {"features": list(self.features), "weights": list(self.weights), "bias": self.bias}


@dataclass(frozen=True)
class AnswerModels:
    """How the attendee's answers change a search's probabilities (photomatch.search.answers): two
    logistic models over AnswerFeatures, own evidence (decides matches) and full (ranks, decides
    possible matches), and their tier thresholds, fitted with simulated answers on the fitting half."""

    own: Model
    full: Model
    match: float
    possible: float
    # The fit's own figures on the unseen half (as bench/fit_answers.py printed them).
    unseen: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AnswerModels:
        """Answer models from their file form."""
        models = cls(
            Model.from_json(d["own"]),
            Model.from_json(d["full"]),
            float(d["thresholds"]["match"]),
            float(d["thresholds"]["possible"]),
            d.get("unseen", {}),
        )
        if not 0 < models.possible <= models.match < 1:
            raise ValueError("answer thresholds must satisfy 0 < possible <= match < 1")
        return models

    def to_json(self) -> dict[str, Any]:
        """The file form."""
        return {
            "own": self.own.to_json(),
            "full": self.full.to_json(),
            "thresholds": {"match": self.match, "possible": self.possible},
            "unseen": dict(self.unseen),
        }


@dataclass(frozen=True)
class Calibration:
    """Everything that turns one event's distances into tiers, for one embedder or a fused pair."""

    embedders: tuple[str, ...]  # (first,) or (first, second)
    own: Model
    full: Model
    match: float  # matches: own >= this
    possible: float  # possible matches: full >= this (and not a match)
    cohort: CohortParams = field(default_factory=CohortParams)
    # The second embedder's impostor cohort, on its own distance scale (None: one model).
    second_cohort: CohortParams | None = None
    # The fit's own figures on the unseen half, per family and album kind (as the study printed them).
    unseen: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # How answers change the probabilities (None: not fitted; answers then only confirm and remove).
    answers: AnswerModels | None = None

    @property
    def fused(self) -> bool:
        """Whether this calibration fuses two embedders."""
        return len(self.embedders) == 2

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Calibration:
        """A calibration from its file form."""
        embedders = tuple(d["embedders"])
        second = d.get("second_cohort")
        if (second is None) == (len(embedders) == 2) or len(embedders) not in (1, 2):
            raise ValueError(f"{'+'.join(embedders)}: a fused pair needs the second model's cohort, one model none")
        cal = cls(
            embedders=embedders,
            own=Model.from_json(d["own"]),
            full=Model.from_json(d["full"]),
            match=float(d["thresholds"]["match"]),
            possible=float(d["thresholds"]["possible"]),
            cohort=CohortParams(**d["cohort"]),
            second_cohort=None if second is None else CohortParams(**second),
            unseen=d.get("unseen", {}),
            answers=AnswerModels.from_json(d["answers"]) if d.get("answers") else None,
        )
        if not 0 < cal.possible <= cal.match < 1:
            raise ValueError(f"{'+'.join(embedders)}: thresholds must satisfy 0 < possible <= match < 1")
        return cal

    def to_json(self) -> dict[str, Any]:
        """The file form."""
        return {
            "embedders": list(self.embedders),
            "own": self.own.to_json(),
            "full": self.full.to_json(),
            "thresholds": {"match": self.match, "possible": self.possible},
            "cohort": asdict(self.cohort),
            "second_cohort": None if self.second_cohort is None else asdict(self.second_cohort),
            "unseen": dict(self.unseen),
            "answers": None if self.answers is None else self.answers.to_json(),
        }


@dataclass(frozen=True)
class SearchParams:
    """How a search gathers candidates and expands its query: fixed at fitting time, so they travel
    with the models."""

    # No photo further than this from the selfie is ever a candidate (P is ~0 well before it).
    candidate_radius: float = 0.6
    # Expansion re-measures from the selfie plus the hits its own evidence finds at least this likely
    # (one per photo, best first, at most expansion_hits). A probability, so it means the same at a
    # party and in a crowd (a fixed z did not: bench/search_study.py --expansion z).
    expansion_probability: float = 0.5
    expansion_hits: int = 10


@dataclass(frozen=True)
class CalibrationSet:
    """One calibration file: the detector it was fitted for, and a calibration per embedder or pair."""

    detector: str
    calibrations: tuple[Calibration, ...]
    search: SearchParams = field(default_factory=SearchParams)
    # When, with what command and on which data it was fitted.
    fitted: Mapping[str, Any] = field(default_factory=dict, compare=False)
    source: str = field(default="", compare=False)

    def find(self, *embedders: str) -> Calibration | None:
        """The calibration of exactly these embedders, if fitted."""
        return next((c for c in self.calibrations if c.embedders == embedders), None)

    def fuses(self, first: str, second: str | None) -> bool:
        """Whether an event of `first` with `second` stored beside it is searched with both fused."""
        return bool(second) and self.find(first, second or "") is not None

    def for_models(self, first: str, second: str | None = None) -> Calibration:
        """The calibration of `first` fused with `second` where that pair is fitted, else of `first`
        alone; NotCalibrated when `first` has none (never another model's numbers)."""
        if second and (pair := self.find(first, second)) is not None:
            return pair
        single = self.find(first)
        if single is None:
            raise NotCalibrated(
                f"no search calibration for the embedder {first!r} in {self.source or 'the calibration file'} "
                f"(calibrated: {', '.join('+'.join(c.embedders) for c in self.calibrations)}); "
                f"fit one with `{REFIT}`"
            )
        return single

    def check(self, detector: str, embedder: str, second_embedder: str = "") -> None:
        """NotCalibrated, saying what to do, unless this engine (detector and embedders) is calibrated."""
        wanted = (embedder, second_embedder) if second_embedder else (embedder,)
        if detector != self.detector or self.find(*wanted) is None or self.find(embedder) is None:
            have = ", ".join("+".join(c.embedders) for c in self.calibrations)
            raise NotCalibrated(
                f"the search calibration {self.source or 'file'} was fitted for the detector {self.detector!r} with "
                f"{have}, but this site runs {detector!r} with {'+'.join(wanted)}. Its thresholds would be "
                f"wrong: re-fit with `{REFIT}` (or set PHOTOMATCH_SEARCH_CALIBRATION_FILE to a file for this engine)."
            )

    @classmethod
    def from_json(cls, d: Mapping[str, Any], source: str = "") -> CalibrationSet:
        """A calibration set from its file form; ValueError when it is malformed."""
        if d.get("format") != FORMAT:
            raise ValueError(f"calibration file format {d.get('format')!r}, expected {FORMAT}")
        return cls(
            detector=str(d["detector"]),
            calibrations=tuple(Calibration.from_json(c) for c in d["calibrations"]),
            search=SearchParams(**d.get("search", {})),
            fitted=d.get("fitted", {}),
            source=source,
        )

    def to_json(self) -> dict[str, Any]:
        """The file form."""
        return {
            "format": FORMAT,
            "detector": self.detector,
            "search": asdict(self.search),
            "fitted": dict(self.fitted),
            "calibrations": [c.to_json() for c in self.calibrations],
        }

    @classmethod
    def load(cls, path: Path) -> CalibrationSet:
        """Read a calibration file; NotCalibrated with the reason when it is missing or malformed."""
        try:
            return cls.from_json(json.loads(path.read_text()), source=str(path))
        except FileNotFoundError:
            raise NotCalibrated(f"no search calibration file at {path}: fit one with `{REFIT}`") from None
        except (ValueError, KeyError, TypeError) as e:
            raise NotCalibrated(f"the search calibration file {path} is not valid ({e}); re-fit with `{REFIT}`") from e

    def write(self, path: Path) -> None:
        """Write the file form (stable key order, one line per list, for readable diffs)."""
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")


@lru_cache(maxsize=8)
def load_calibrations(path: Path | None = None) -> CalibrationSet:
    """The calibration file at `path` (default: the default detector's, shipped beside this module), read once."""
    return CalibrationSet.load(path or DEFAULT_FILE)


def site_calibrations(settings: Settings) -> CalibrationSet:
    """The calibration file this site's settings name (Settings.search_calibration_file), else the one
    that ships for its detector; read once."""
    return load_calibrations(settings.search_calibration_file or default_file(settings.detector))


def require_calibrated(settings: Settings) -> CalibrationSet:
    """The site's calibrations, or NotCalibrated when its detector and embedders have none: every
    process that searches or ingests calls this as it starts."""
    cals = site_calibrations(settings)
    cals.check(settings.detector, settings.embedder, settings.second_embedder)
    return cals
