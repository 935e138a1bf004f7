"""The attendee's answers on results ("this is me", "not me") and the token that keeps them honest.

Every search response carries a feedback token: signed with the site's secret key, valid for
FEEDBACK_SECONDS, naming the event, the face ids that response (and the ones before it in the
visit) showed, and a keyed hash of the selfie's bytes, never the selfie or its vector. A later
search of the same event with the same selfie may send the token back with `me` and `not_me`
face ids. The server accepts only ids the token names: a forged token, one of another event or
another selfie, an expired one, or an id never shown is refused (InvalidFeedback, 400), so answers
can never reach a face the attendee was not shown. Nothing is stored: the page holds the selfie
and the answers, and sends them again.

The selfie is bound by its bytes rather than its vector: the page sends the very same file again,
and a hash of bytes does not depend on the floating-point noise of whichever API process embeds it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

from photomatch.search.errors import SearchError

# Separates these signatures from every other use of secret_key (download links, attendee links).
_SALT = "photomatch.search.feedback"
# A visit: long enough to look through the results and answer, short enough to be useless later.
FEEDBACK_SECONDS = 3600
# Answers one request may carry (a page shows at most a few hundred results).
MAX_ANSWERS = 200


class InvalidFeedback(SearchError):
    """Answers that this selfie's earlier results do not allow; `reason` says which check failed."""

    status = 400

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)


@dataclass(frozen=True)
class Answers:
    """What the attendee said, checked against what they were shown."""

    me: frozenset[int] = frozenset()
    not_me: frozenset[int] = frozenset()
    shown: frozenset[int] = frozenset()  # every face id the visit's responses named so far

    def __bool__(self) -> bool:
        return bool(self.me or self.not_me)


def _serializer(secret_key: str) -> URLSafeSerializer:
    key = hmac.new(secret_key.encode(), _SALT.encode(), hashlib.sha256).hexdigest()
    return URLSafeSerializer(key, salt=_SALT)


def selfie_binding(secret_key: str, event_id: uuid.UUID, selfie: bytes | bytearray) -> str:
    """A keyed hash of the selfie for this event: equal for the same file, useless without the key."""
    key = hmac.new(secret_key.encode(), f"{_SALT}.selfie".encode(), hashlib.sha256).digest()
    digest = hashlib.sha256(bytes(selfie)).hexdigest()
    return hmac.new(key, f"{event_id}\n{digest}".encode(), hashlib.sha256).hexdigest()[:32]


def issue(
    secret_key: str,
    event_id: uuid.UUID,
    selfie: bytes | bytearray,
    shown: Iterable[int],
    *,
    now: float | None = None,
) -> str:
    """The token for a response that showed `shown` (with the faces shown earlier in the visit)."""
    payload = {
        "e": str(event_id),
        "s": selfie_binding(secret_key, event_id, selfie),
        "f": sorted({int(f) for f in shown}),
        "x": int(now if now is not None else time.time()) + FEEDBACK_SECONDS,
    }
    return str(_serializer(secret_key).dumps(payload))


def parse_ids(values: Iterable[str], field: str) -> frozenset[int]:
    """Face ids from repeated form fields; InvalidFeedback when one is not an id."""
    ids = set()
    for raw in values:
        try:
            ids.add(int(raw))
        except ValueError:
            raise InvalidFeedback("invalid_feedback", f"{field} must be face ids from your results") from None
    return frozenset(ids)


def verify(
    token: str | None,
    secret_key: str,
    event_id: uuid.UUID,
    selfie: bytes | bytearray,
    me: frozenset[int],
    not_me: frozenset[int],
    *,
    now: float | None = None,
) -> Answers:
    """The answers, if `token` allows every one of them for this event and selfie; else InvalidFeedback."""
    if not token:
        if me or not_me:
            raise InvalidFeedback("feedback_token_required", "Answers need the feedback_token of your last results.")
        return Answers()
    try:
        payload = _serializer(secret_key).loads(token)
    except BadSignature:
        raise InvalidFeedback("invalid_feedback_token", "This feedback token is not valid. Search again.") from None
    if not isinstance(payload, dict) or payload.get("e") != str(event_id):
        raise InvalidFeedback("invalid_feedback_token", "This feedback token is not valid. Search again.")
    if not hmac.compare_digest(str(payload.get("s", "")), selfie_binding(secret_key, event_id, selfie)):
        raise InvalidFeedback("feedback_other_selfie", "These answers were given for another selfie. Search again.")
    expires = payload.get("x")
    if not isinstance(expires, int) or (now if now is not None else time.time()) >= expires:
        raise InvalidFeedback("feedback_token_expired", "Your answers have expired. Search again.")
    shown = frozenset(int(f) for f in payload.get("f", []))
    if len(me) + len(not_me) > MAX_ANSWERS:
        raise InvalidFeedback("invalid_feedback", f"At most {MAX_ANSWERS} answers at once.")
    if me & not_me:
        raise InvalidFeedback("invalid_feedback", "A photo cannot be both you and not you.")
    if not (me | not_me) <= shown:
        raise InvalidFeedback("feedback_unknown_face", "Answers can only be about photos you were shown.")
    return Answers(me=me, not_me=not_me, shown=shown)
