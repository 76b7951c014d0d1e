"""Envelope vs headers (RFC 5321 envelope, RFC 5322 To/Cc): who was hidden, who was only shown."""

from __future__ import annotations

from mailsniff.model import Address, Message, Transaction

__all__ = ["compare_envelope", "header_roles", "normalise_address"]


def normalise_address(address: str) -> str:
    """Case-insensitive comparison key for an address (RFC 5321 2.4 lets the local part be
    case-sensitive, but no real server treats it so, and Zeek/Suricata compare the same way)."""
    return address.strip().strip("<>").strip().lower()


def _header_keys(addresses: list[Address]) -> list[tuple[str, str]]:
    return [(normalise_address(a.address), a.address) for a in addresses if a.address.strip()]


def compare_envelope(tx: Transaction) -> None:
    """Fill `tx.bcc` and `tx.header_only`.

    bcc: accepted envelope recipients (reply 2xx, or not captured) found in neither To nor Cc, in
    envelope order -- recipients the other recipients were not shown. header_only: addresses in
    To/Cc that were never an accepted envelope recipient -- shown, but not delivered by this
    transaction. Without a captured message nothing can be compared and both stay empty.
    """
    tx.bcc = []
    tx.header_only = []
    if tx.message is None:
        return
    shown = _header_keys(tx.message.to) + _header_keys(tx.message.cc)
    shown_keys = {key for key, _ in shown}
    accepted: list[str] = []
    accepted_keys: set[str] = set()
    for address in tx.rcpt_accepted:
        key = normalise_address(address)
        if key in accepted_keys:
            continue
        accepted_keys.add(key)
        accepted.append(address)
    tx.bcc = [a for a in accepted if normalise_address(a) not in shown_keys]
    seen: set[str] = set()
    for key, address in shown:
        if key in accepted_keys or key in seen:
            continue
        seen.add(key)
        tx.header_only.append(address)


def header_roles(address: str, message: Message | None) -> tuple[list[str], str]:
    """Which of To/Cc/Bcc list `address` (compared as `normalise_address` does), in that order,
    and the display name written there."""
    if message is None:
        return [], ""
    key = normalise_address(address)
    where: list[str] = []
    name = ""
    for label, addrs in (("To", message.to), ("Cc", message.cc), ("Bcc", message.bcc)):
        for a in addrs:
            if normalise_address(a.address) == key:
                if label not in where:
                    where.append(label)
                name = name or a.name
    return where, name
