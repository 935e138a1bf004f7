"""Fit how the attendee's answers change search's probabilities (the calibration's answer models). JSON out.

On albums sampled from the fitting half of the identity caches, as bench/calibrate.py's study samples
them, every selfie visits its album through the product's ranking as bench/lib/attendee.py's
simulated attendee: after each search it answers, truthfully, the k results the search is least
sure of (k = 1, 3, 5, 10), for up to 3 rounds. After each round every candidate photo not answered
becomes a row: its answer features (photomatch.search.ranking.answer_features_of) and whether it
shows the person. Two logistic models are fitted on them: own evidence (own, gain, rival), which
decides the matches tier, and full (full, gain, rival), which ranks and decides the possible tier.
Each starts from the search's logit before the answers, with weight 1 and no bias, so answers that
say nothing new change nothing. The tiers follow the study's rules on the same rows: the match
threshold stays the calibration's while those matches hold precision 0.99 (else it tightens), and
the possible threshold is the loosest whose tier is 0.55 precise in every round of answers, in
each family's crowds and parties alike (the label of each row's block). A
second pass simulates the visits again with the first pass's models (later rounds then ask what
the refined ranking is unsure of) and fits again. The unseen half's tiers after each round are
printed, and the models are written into the calibration file (the calibration of the configured
embedders, fused where they are).

    uv run python bench/fit_answers.py [--calibration FILE] [--selfies 60] [--seed 0]

bench/calibrate.py runs it last, so one command re-fits everything search loads. About 10 minutes
on 2 CPU cores.
"""

from __future__ import annotations

import json
import sys

from bench.lib.answer_models import parser, refit


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    print(json.dumps(refit(parser().parse_args(argv)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
