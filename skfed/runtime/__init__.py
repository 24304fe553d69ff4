"""Message-passing runtime: parties are roles that only exchange messages."""

from .local import (
    LocalRuntime,
    PartyContext,
    PartyDropped,
    PartyLeft,
    ProtocolTimeout,
    RoleError,
    run_roles,
)
from .transcript import KINDS, Message, Transcript
from .wire import WireFormatError, decode, encode

__all__ = [
    "KINDS",
    "LocalRuntime",
    "Message",
    "PartyContext",
    "PartyDropped",
    "PartyLeft",
    "ProtocolTimeout",
    "RoleError",
    "Transcript",
    "WireFormatError",
    "decode",
    "encode",
    "run_roles",
]
