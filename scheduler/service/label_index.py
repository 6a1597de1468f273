"""The labels of the VMs that exist, indexed by label, so that a rule's selector (``app=db``)
finds its VMs without a scan of every VM at each placement."""

from __future__ import annotations

from collections.abc import Mapping


class LabelIndex:
    def __init__(self) -> None:
        self._of: dict[str, dict[str, str]] = {}  # VM -> its labels
        self._with: dict[tuple[str, str], set[str]] = {}  # (key, value) -> VMs

    def put(self, vm: str, labels: Mapping[str, str]) -> None:
        if self._of.get(vm) == labels:
            return
        self.drop(vm)
        self._of[vm] = dict(labels)
        for pair in labels.items():
            self._with.setdefault(pair, set()).add(vm)

    def drop(self, vm: str) -> None:
        for pair in self._of.pop(vm, {}).items():
            holders = self._with[pair]
            holders.discard(vm)
            if not holders:
                del self._with[pair]

    def of(self, vm: str) -> Mapping[str, str]:
        return self._of.get(vm, {})

    def matching(self, selector: Mapping[str, str]) -> set[str]:
        """The VMs that carry every label of ``selector`` (all VMs for an empty one)."""
        if not selector:
            return set(self._of)
        sets = sorted((self._with.get(pair, set()) for pair in selector.items()), key=len)
        return set(sets[0]).intersection(*sets[1:])

    def all(self) -> dict[str, dict[str, str]]:
        return dict(self._of)
