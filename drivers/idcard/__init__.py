"""ID-card reader: SAM serial protocol codec, card decoding, pyserial driver, simulator.

The protocol is docs/idcard-protocol.md; its first table says which module holds what.

    from drivers.idcard import IdCardReader, CardRead
    with IdCardReader("/dev/serial/by-id/usb-...") as reader:
        card = reader.wait_for_card(timeout=10)
        print(card)          # masked: resident card 张* 1101**********002X
"""
from .cards import Card, CardFormatError, is_valid_id_number, mask_id, mask_name
from .frames import (
    CardFault, FrameParser, IdCardError, NoCard, PortError, ReadFailed, ReaderDisconnected,
    ReaderIOError, ReaderTimeout, Response, SamFault, SelectFailed, StatusError,
)
from .reader import CardError, CardRead, CardRemoved, IdCardReader, ReaderState, ReaderThread

__all__ = [
    "Card", "CardError", "CardFault", "CardFormatError", "CardRead", "CardRemoved", "FrameParser",
    "IdCardError", "IdCardReader", "NoCard", "PortError", "ReadFailed", "ReaderDisconnected",
    "ReaderIOError", "ReaderState", "ReaderThread", "ReaderTimeout", "Response", "SamFault",
    "SelectFailed", "StatusError", "is_valid_id_number", "mask_id", "mask_name",
]
