"""The pure domain of Talk: commands, states, ``decide`` and ``evolve`` per aggregate.

No I/O here. A handler loads the states, calls ``decide_*``, and appends the returned events
(each to :func:`stream_of` it) at the versions it loaded; an empty list means "nothing to do".
"""

from command_api.domain.chat import ChatState, decide_chat, evolve_chat, fold_chat
from command_api.domain.commands import (
    AddParticipant,
    AddReaction,
    ChatCommand,
    Command,
    CreateChat,
    DeleteChat,
    DeleteMessage,
    EditMessage,
    MessageCommand,
    NewParticipant,
    PostMessage,
    RemoveParticipant,
    RemoveReaction,
    UpdateChat,
)
from command_api.domain.errors import (
    Conflict,
    DomainError,
    FieldError,
    Forbidden,
    Invalid,
    NotFound,
)
from command_api.domain.message import MessageState, decide_message, evolve_message, fold_message
from command_api.domain.rules import (
    is_valid_emoji,
    validate_emoji,
    validate_medias,
    validate_text,
)
from command_api.domain.streams import stream_of

__all__ = [
    "AddParticipant",
    "AddReaction",
    "ChatCommand",
    "ChatState",
    "Command",
    "Conflict",
    "CreateChat",
    "DeleteChat",
    "DeleteMessage",
    "DomainError",
    "EditMessage",
    "FieldError",
    "Forbidden",
    "Invalid",
    "MessageCommand",
    "MessageState",
    "NewParticipant",
    "NotFound",
    "PostMessage",
    "RemoveParticipant",
    "RemoveReaction",
    "UpdateChat",
    "decide_chat",
    "decide_message",
    "evolve_chat",
    "evolve_message",
    "fold_chat",
    "fold_message",
    "is_valid_emoji",
    "stream_of",
    "validate_emoji",
    "validate_medias",
    "validate_text",
]
