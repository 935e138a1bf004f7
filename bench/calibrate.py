"""Re-fit the search calibration for the configured engine, in one command. JSON out.

After any change to detection, alignment or an embedder, every distance the search calibration was
fitted on moves. This rebuilds what the fit needs and rewrites the file search loads:

1. the identity caches of dev-faces, dev-lfw and dev-fiw for the configured detector, embedder and
   second embedder (bench/identity_cache.py; about 50 minutes on 2 cores when missing, else reused);
2. the study (bench/study.py, its defaults) for the first embedder alone and fused with the
   second: logistic models fitted on albums of one half of the identities, tiers at pooled match
   precision 0.99 and a possible band at least 0.55 precise;
3. photomatch/search/calibrations/<detector>.json (or --out): the detector, the embedders, the features, the
   coefficients, the thresholds, the cohort and search settings, the data and the date;
4. the answer models (bench/fit_answers.py) into the same file: how "this is me" and "not me"
   change those probabilities.

It prints the unseen half's table per family and album kind for each calibration.

    uv run python bench/calibrate.py [--out FILE] [--seed 0] [--albums 3] [--party-albums 12] [--max-images N]

The product refuses to start when the configured detector and embedders have no calibration in the
file (photomatch.search.calibration.require_calibrated); commit the rewritten file with the engine
change. bench/search_accuracy.py then measures it through the real pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.lib import answer_models, identity_cache, study
from bench.lib.datasets import dev_data
from photomatch.config import get_settings
from photomatch.search.calibration import CalibrationSet, default_file
from photomatch.search.cohort import CohortParams


def ensure_caches(second: str, max_images: int = 0) -> dict[str, str]:
    """The identity caches of every dev family present, built for the current engine where missing;
    `max_images` caps every family at about that many images (whole identities), else the defaults."""
    caches = {}
    for d in dev_data().families().values():
        if not (d / "MANIFEST.md").is_file():
            print(f"{d}: no MANIFEST.md; this family is left out of the fit", file=sys.stderr)
            continue
        limit = max_images or identity_cache.DEFAULT_MAX_IMAGES.get(d.name, 0)
        path = identity_cache.build(d, max_images=limit, also=(second,) if second else ())
        caches[d.name] = path.name
    return caches


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="default: photomatch/search/calibrations/<detector>.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--albums", type=int, default=3, help="crowd albums per family and half")
    ap.add_argument("--party-albums", type=int, default=12, help="party albums per family and half")
    ap.add_argument(
        "--max-images",
        type=int,
        default=0,
        help="fit on about this many images per family (whole identities, the first by name): a quicker, "
        "noisier fit; default: every image (dev-fiw: 6000)",
    )
    args = ap.parse_args(argv)
    s = get_settings()
    import torch

    torch.set_num_threads(2)
    caches = ensure_caches(s.second_embedder, args.max_images)
    if not caches:
        print("no dev family found: nothing to fit on (PHOTOMATCH_DEV_*_DIR)", file=sys.stderr)
        return 2
    study_argv = ["--seed", str(args.seed), "--albums", str(args.albums), "--party-albums", str(args.party_albums)]
    study_argv += ["--families", *caches]
    calibrations = []
    runs: list[tuple[tuple[str, ...], CohortParams | None]] = [((s.embedder,), None)]
    if s.second_embedder:
        second_cohort = study.SECOND_COHORT.get(s.second_embedder)
        if second_cohort is None:
            print(f"no cohort prior for {s.second_embedder} in bench/study.py SECOND_COHORT", file=sys.stderr)
            return 2
        runs.append(((s.embedder, s.second_embedder), second_cohort))
    for embedders, second in runs:
        fuse = ["--fuse", embedders[1]] if len(embedders) == 2 else []
        study_args = study.parser().parse_args(study_argv + fuse)
        print(f"fitting {'+'.join(embedders)} ...", file=sys.stderr, flush=True)
        calibrations.append(study.calibration_of(study.study(study_args), embedders, second))
    fitted = {
        "date": datetime.now(UTC).date().isoformat(),
        # The detector is named, so the command re-fits this file whatever the default is then.
        "command": " ".join(
            [
                f"PHOTOMATCH_DETECTOR={s.detector} uv run python bench/calibrate.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "data": {
            "identity_caches": caches,
            "half": 0,
            "crowd_albums": args.albums,
            "party_albums": args.party_albums,
            "targets": study_args.targets,
            "photos": study_args.photos,
            "seed": args.seed,
            "match_precision": study_args.match_precision,
            "possible_precision": study_args.possible_precision,
            "scan_limit": study.scan_limit(),
            "max_images": args.max_images or None,
        },
    }
    cals = CalibrationSet(s.detector, tuple(calibrations), study.SEARCH, fitted)
    out = args.out or default_file(s.detector)
    out.parent.mkdir(parents=True, exist_ok=True)
    cals.write(out)
    # The answer models start from these models' probabilities: fitted last, into the same file.
    print("fitting the answer models ...", file=sys.stderr, flush=True)
    answers = answer_models.refit(
        answer_models.parser().parse_args(["--calibration", str(out), "--seed", str(args.seed)])
    )
    table = {"+".join(c.embedders): {"thresholds": [c.match, c.possible], "unseen": c.unseen} for c in calibrations}
    result = {"written": str(out), "detector": s.detector, "calibrations": table, "answers": answers}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
