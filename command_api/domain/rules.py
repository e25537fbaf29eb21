"""Pure input rules shared by the domain and the HTTP request layer.

The ``*_errors`` functions return a list of ``{"field", "message"}`` problems (empty when the
input is fine) so callers can collect every problem at once; the ``validate_*`` functions
raise :class:`Invalid` with those problems.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from command_api.domain.errors import FieldError, Invalid
from events.catalogue import Media

CHAT_TYPES = ("normal", "group")
NORMAL_CHAT_MAX_PARTICIPANTS = 2
# Caps that bound what one talk or message costs to store, publish and fold (README, "Limits").
TALK_MAX_MEMBERS = 1_000  # participants of one talk, the creator included
MESSAGE_MAX_EMOJI = 50  # different emoji on one message
AGENT_MAX_EMOJI_PER_MESSAGE = 20  # different emoji one agent adds to one message
NAME_MAX = 255
DETAIL_MAX = 10_000
TEXT_MAX = 10_000
MEDIAS_MAX = 10
MEDIA_TYPE_MAX = 255
MEDIA_URL_MAX = 2048
MEDIA_NAME_MAX = 255
EMOJI_MAX = 64

# Patterns the OpenAPI document publishes as they are (JSON Schema ``pattern``: a search,
# anchored here): a value the document accepts is one these rules accept. ``$(?!\n)``: the
# end of the text, not before a final newline.
MIME_PATTERN = r"^[A-Za-z0-9_.+-]+/[A-Za-z0-9_.+-]+$(?!\n)"
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
URL_PATTERN = (r"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]+(?::" + _PORT + r")?"
               r"(?:[/?#][^\s\x00-\x1f\x7f]*)?$(?!\n)")
NUL_FREE_PATTERN = r"^[^\x00]*$"
NOT_BLANK_PATTERN = r"\S"  # holds a character that is not white space
_MIME_RE = re.compile(MIME_PATTERN)
_URL_RE = re.compile(URL_PATTERN)


def _problem(field: str, message: str) -> list[FieldError]:
    return [{"field": field, "message": message}]


def storable_errors(value: str, field: str) -> list[FieldError]:
    """Strings the store cannot hold: NUL (Postgres rejects it) and lone surrogates."""
    if "\x00" in value:
        return _problem(field, "must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _problem(field, "must be valid Unicode text")
    return []


def string_errors(value: Any, field: str, *, max_len: int, required: bool = False) -> list[FieldError]:
    """A plain string field: a string, at most ``max_len`` characters, storable."""
    if value is None:
        return _problem(field, "is required") if required else []
    if not isinstance(value, str):
        return _problem(field, "must be a string")
    if required and not value.strip():
        return _problem(field, "must not be empty")
    if len(value) > max_len:
        return _problem(field, f"must be at most {max_len} characters")
    return storable_errors(value, field)


def text_errors(text: Any, *, required: bool = True, field: str = "text") -> list[FieldError]:
    """Message text: at most 10,000 characters; when required, not blank (whitespace only)."""
    return string_errors(text, field, max_len=TEXT_MAX, required=required)


def validate_text(text: Any, *, required: bool = True, field: str = "text") -> str:
    if errors := text_errors(text, required=required, field=field):
        raise Invalid("the message text is invalid", errors)
    return text or ""


def url_errors(url: Any, field: str) -> list[FieldError]:
    """An absolute http(s) URL with a host, at most 2048 characters, no spaces or controls."""
    if not isinstance(url, str) or not url:
        return _problem(field, "is required")
    if len(url) > MEDIA_URL_MAX:
        return _problem(field, f"must be at most {MEDIA_URL_MAX} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return _problem(field, "must not contain spaces or control characters")
    if errors := storable_errors(url, field):
        return errors
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        return _problem(field, "must be a valid URL")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return _problem(field, "must be an http or https URL")
    if not _URL_RE.search(url):
        return _problem(field, "must be http(s)://host[:port][/path] with a host of letters,"
                               " digits, dots and dashes")
    return []


def media_errors(media: Any, field: str) -> list[FieldError]:
    """One attachment ``{type, url, name}`` (a :class:`Media` or a mapping)."""
    if isinstance(media, Media):
        mtype, url, name = media.type, media.url, media.name
    elif isinstance(media, Mapping):
        mtype, url, name = media.get("type"), media.get("url"), media.get("name", "")
        if extra := sorted(set(media) - {"type", "url", "name"}):
            return _problem(field, f"unknown field(s): {', '.join(map(str, extra))}")
    else:
        return _problem(field, "must be an object with type, url and name")
    errors: list[FieldError] = []
    if not isinstance(mtype, str) or not mtype:
        errors += _problem(f"{field}.type", "is required")
    elif len(mtype) > MEDIA_TYPE_MAX or not _MIME_RE.search(mtype):
        errors += _problem(f"{field}.type", "must be a MIME type such as image/png")
    errors += url_errors(url, f"{field}.url")
    errors += string_errors("" if name is None else name, f"{field}.name", max_len=MEDIA_NAME_MAX)
    return errors


def medias_errors(medias: Any, field: str = "medias") -> list[FieldError]:
    if medias is None:
        return []
    if isinstance(medias, str | bytes | Mapping) or not isinstance(medias, Sequence):
        return _problem(field, "must be a list")
    if len(medias) > MEDIAS_MAX:
        return _problem(field, f"must hold at most {MEDIAS_MAX} items")
    errors: list[FieldError] = []
    for i, media in enumerate(medias):
        errors += media_errors(media, f"{field}[{i}]")
    return errors


def to_medias(medias: Sequence[Media | Mapping[str, Any]] | None) -> tuple[Media, ...]:
    """Already-valid attachments as catalogue :class:`Media` values."""
    out = []
    for m in medias or ():
        if isinstance(m, Media):
            out.append(m)
        else:
            out.append(Media(type=m["type"], url=m["url"], name=m.get("name") or ""))
    return tuple(out)


def validate_medias(medias: Any, field: str = "medias") -> tuple[Media, ...]:
    if errors := medias_errors(medias, field):
        raise Invalid("the message medias are invalid", errors)
    return to_medias(medias)


# --- emoji ----------------------------------------------------------------------------------

# Pictographic code point ranges (an approximation of Unicode's Extended_Pictographic).
_PICTOGRAPHIC = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049),
    (0x2122, 0x2122), (0x2139, 0x2139), (0x2194, 0x21AA), (0x231A, 0x23FF),
    (0x24C2, 0x24C2), (0x25AA, 0x25FE), (0x2600, 0x27BF), (0x2934, 0x2935),
    (0x2B05, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3297),
    (0x3299, 0x3299), (0x1F000, 0x1FAFF),
)


def _char_class(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(chr(lo) if lo == hi else f"{chr(lo)}-{chr(hi)}" for lo, hi in ranges)


_PICTOGRAPH = f"[{_char_class(_PICTOGRAPHIC)}]"
_KEYCAP = "[0-9#*]\ufe0f?\u20e3"  # 1️⃣
_JOINER = "[\u200d\ufe0e\ufe0f\u20e3\U000e0020-\U000e007f]"  # ZWJ, selectors, keycap, tags
_EMOJI_SEQUENCE = (f"(?!\u200d)(?:{_PICTOGRAPH}|{_KEYCAP}|{_JOINER})*"
                   f"(?:{_PICTOGRAPH}|{_KEYCAP})(?:{_PICTOGRAPH}|{_KEYCAP}|{_JOINER})*(?<!\u200d)")
# A short name like ``thumbsup`` / ``+1``, or a run of emoji: pictographs joined by ZWJ,
# variation selectors, skin tones, tags, regional indicator pairs and keycaps. Letters and
# plain digits are refused. (The characters are written out, not escaped, so that every
# regex dialect reading the OpenAPI document sees the same class.)
EMOJI_PATTERN = f"^(?:[a-z0-9_+-]{{1,{EMOJI_MAX}}}|{_EMOJI_SEQUENCE})$(?!\n)"
_EMOJI_RE = re.compile(EMOJI_PATTERN)


def is_valid_emoji(emoji: Any) -> bool:
    """1..64 characters: a short name like ``thumbsup`` / ``+1`` (``[a-z0-9_+-]``) or a
    Unicode emoji sequence like ``👍``, ``👍🏽``, ``👨‍👩‍👧``, ``🇯🇵``, ``1️⃣``."""
    if not isinstance(emoji, str) or not 1 <= len(emoji) <= EMOJI_MAX:
        return False
    return bool(_EMOJI_RE.search(emoji))


def emoji_errors(emoji: Any, field: str = "emoji") -> list[FieldError]:
    if emoji is None or emoji == "":
        return _problem(field, "is required")
    if not is_valid_emoji(emoji):
        return _problem(field, "must be an emoji or a short name like thumbsup (at most 64 characters)")
    return []


def validate_emoji(emoji: Any, field: str = "emoji") -> str:
    if errors := emoji_errors(emoji, field):
        raise Invalid("the emoji is invalid", errors)
    return emoji


# --- talks ----------------------------------------------------------------------------------


def chat_type_errors(chat_type: Any, field: str = "type") -> list[FieldError]:
    if chat_type not in CHAT_TYPES:
        return _problem(field, "must be normal or group")
    return []


def name_errors(name: Any, field: str = "name") -> list[FieldError]:
    return string_errors(name, field, max_len=NAME_MAX)


def detail_errors(detail: Any, field: str = "detail") -> list[FieldError]:
    return string_errors(detail, field, max_len=DETAIL_MAX)


def owner_type_errors(owner_type: Any, field: str = "owner_type") -> list[FieldError]:
    if owner_type != "agent":
        return _problem(field, "must be agent")
    return []
