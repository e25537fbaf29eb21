from command_api.domain import Conflict, DomainError, Forbidden, Invalid, NotFound


def test_statuses_and_detail():
    for cls, status in ((NotFound, 404), (Forbidden, 403), (Conflict, 409), (Invalid, 400)):
        err = cls("why")
        assert isinstance(err, DomainError)
        assert err.status == status
        assert err.detail == "why" == str(err)
        assert err.errors == []


def test_invalid_carries_field_errors():
    err = Invalid("bad", [{"field": "text", "message": "is required"}])
    assert err.errors == [{"field": "text", "message": "is required"}]
    one = Invalid.field("emoji", "is required")
    assert one.errors == [{"field": "emoji", "message": "is required"}]
    assert "emoji" in one.detail
