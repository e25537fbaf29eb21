import pytest

from command_api.domain import Invalid, is_valid_emoji, validate_emoji, validate_medias
from command_api.domain.rules import (
    medias_errors,
    text_errors,
    url_errors,
    validate_text,
)
from events.catalogue import Media


def fields(errors):
    return [e["field"] for e in errors]


@pytest.mark.parametrize("emoji", [
    "👍", "👍🏽", "❤️", "❤", "👨‍👩‍👧", "🇯🇵", "1️⃣", "#⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "©", "⭐",
    "thumbsup", "+1", "-1", "100", "heart_eyes", "a" * 64, "🎉🎉",
])
def test_valid_emoji(emoji):
    assert is_valid_emoji(emoji)
    assert validate_emoji(emoji) == emoji


@pytest.mark.parametrize("emoji", [
    "", "a" * 65, "👍" * 65, "Thumbsup", "thumbs up", ":thumbsup:", "abc👍", "#",
    "\u200d👍", "👍\u200d", "<script>", "\x00", None, 5, "é",
])
def test_invalid_emoji(emoji):
    assert not is_valid_emoji(emoji)
    with pytest.raises(Invalid) as exc:
        validate_emoji(emoji)
    assert fields(exc.value.errors) == ["emoji"]


def test_text_rules():
    assert text_errors("x") == []
    assert text_errors("x" * 10_000) == []
    assert fields(text_errors("x" * 10_001)) == ["text"]
    assert fields(text_errors("")) == ["text"]
    assert fields(text_errors("  \n ")) == ["text"]
    assert fields(text_errors(None)) == ["text"]
    assert text_errors("", required=False) == []
    assert fields(text_errors("a\x00b")) == ["text"]
    assert fields(text_errors("\ud800")) == ["text"]
    assert fields(text_errors(5)) == ["text"]
    with pytest.raises(Invalid):
        validate_text("")
    assert validate_text("hi") == "hi"


@pytest.mark.parametrize("url", [
    "http://x.io/a.png", "https://cdn.example.com/p?q=1#f", "HTTPS://EXAMPLE.COM/",
    "https://example.com:8443/a", "https://" + "a" * 2030 + ".io",
])
def test_valid_urls(url):
    assert url_errors(url, "u") == []


@pytest.mark.parametrize("url", [
    "", "ftp://x.io/a", "javascript:alert(1)", "https://", "/relative", "x.io/a",
    "https://a b.io", "https://x.io/\n", "https://x.io:99999/", "https://" + "a" * 2048,
    "https://x.io/\x00", None, 7,
])
def test_invalid_urls(url):
    assert fields(url_errors(url, "u")) == ["u"]


def test_medias_valid_and_normalised():
    out = validate_medias([
        {"type": "image/png", "url": "https://x.io/a.png", "name": "a.png"},
        Media(type="application/vnd.ms-excel", url="http://x.io/b"),
        {"type": "video/mp4", "url": "https://x.io/c"},
    ])
    assert out[0] == Media(type="image/png", url="https://x.io/a.png", name="a.png")
    assert out[2].name == ""
    assert validate_medias(None) == ()
    assert validate_medias([]) == ()


def test_medias_problems_name_each_field():
    errors = medias_errors([
        {"type": "image/png", "url": "https://x.io/a"},
        {"type": "png", "url": "ftp://x", "name": "n" * 256},
        {"url": "https://x.io/a"},
        "not an object",
        {"type": "a/b", "url": "https://x.io", "extra": 1},
    ])
    assert fields(errors) == [
        "medias[1].type", "medias[1].url", "medias[1].name", "medias[2].type", "medias[3]",
        "medias[4]",
    ]


def test_medias_count_and_shape():
    one = {"type": "image/png", "url": "https://x.io/a"}
    assert medias_errors([one] * 10) == []
    assert fields(medias_errors([one] * 11)) == ["medias"]
    assert fields(medias_errors("abc")) == ["medias"]
    assert fields(medias_errors({"type": "a/b"})) == ["medias"]
    assert fields(medias_errors([{"type": "imagé/png", "url": "https://x.io/a"}])) == [
        "medias[0].type"]
