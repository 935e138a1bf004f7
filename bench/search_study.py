"""Which score decides a search's tiers: raw distance, expansion, or cohort normalisation? Measured. JSON out.

The study itself is bench/lib/study.py. Albums are sampled from bench/identity_cache.py's faces
(one engine run per labelled image), so many crowded albums of every family cost seconds: targets
are identities with 3+ images (one held back as the selfie, up to 4 in the album), distractors
appear once, and in dev-fiw a photo holds members of one family, as at a wedding. Identities are
split in two halves by a hash of their name: scores are fitted on albums of one half and reported on
albums of the other, so nothing is tuned on the faces it is judged by.

For every (selfie, album photo) the photo's best face is scored, and tiers are thresholds on that
score. Printed per family: recall at precision 0.99 and 0.95, mAP, and what a threshold fitted on
the fitting half (for pooled precision 0.99, and for a 0.5-precision second tier) gives on the other.

    uv run python bench/search_study.py [--albums 3] [--targets 250] [--photos 400]
        [--fuse sface-2021dec-int8bq [--dba K] [--rivals] [--wccn SHRINK]] [--seed N]

--fuse adds the second embedder's features (its cache must hold the same faces). Three studies of
whether relatives can be set apart, each adding features to the fused models:
- --dba K scores each candidate against its face averaged with the K nearest faces of other photos
  (database-side augmentation): do a person's other appearances separate relatives?
- --rivals adds the candidate face's own nearest faces of other photos (1st and 3rd distances) and
  how many of them are closer to it than the expanded query: a relative's own appearances should be.
- --wccn SHRINK adds distances after within-class covariance normalisation of each model, fitted on
  the fitting half's people (selfies and album faces of every family; covariance shrunk towards the
  identity by SHRINK), and decides the tiers with them.
--possible-every P also holds every kind of album's possible band (each family's crowds and parties,
on the fitting half) at precision P or better, beside the pooled --possible-precision.
"""

from __future__ import annotations

import json
import sys

from bench.lib.study import parser, study


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parser().parse_args(argv)
    print(json.dumps(study(args), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
