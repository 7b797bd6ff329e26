"""Sizes in guard keys: which dimensions of a call may become symbols, and with which names.

A guard key's second item holds one entry per input leaf; a tensor's is
``(shape, dtype, device, requires_grad)``. A symbolic specialisation serves the keys
that equal its own outside the positions ``(leaf, axis)`` of its symbols, where every
symbol's positions share one size >= 2 (0 and 1 keep their own graphs: broadcasting
and empty tensors behave differently there, as in torch.compile).
"""

from __future__ import annotations

# names by (rank, axis) of a symbol's first position; the batch is axis 0 of any rank
_NAMES = {(3, 1): "S", (2, 1): "S", (4, 2): "H", (4, 3): "W", (3, 2): "D", (4, 1): "C"}


def is_tensor_meta(meta) -> bool:
    return isinstance(meta, tuple) and len(meta) == 4 and isinstance(meta[0], tuple)


def symbol_name(key, positions, taken) -> str:
    """A readable name for a symbol at ``positions`` that is not in ``taken``."""
    leaf, axis = positions[0]
    rank = len(key[1][leaf][0])
    base = "B" if axis == 0 else _NAMES.get((rank, axis), "N")
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}{n}"
    return name


def env_at(key, symbols: dict) -> dict | None:
    """Each symbol's size in ``key``: None if its positions disagree or a size is < 2."""
    meta = key[1]
    env = {}
    for sym, positions in symbols.items():
        try:
            sizes = {meta[i][0][axis] for i, axis in positions}
        except (IndexError, TypeError):
            return None
        if len(sizes) != 1 or min(sizes) < 2:
            return None
        env[sym] = sizes.pop()
    return env


def masked(key, positions) -> tuple:
    """The key with the sizes at ``positions`` blanked out."""
    meta = list(key[1])
    for i, axis in positions:
        shape = list(meta[i][0])
        shape[axis] = -1
        meta[i] = (tuple(shape),) + tuple(meta[i][1:])
    return (key[0], tuple(meta)) + tuple(key[2:])


def size_changes(old, new) -> dict | None:
    """{(old size, new size): positions} when two keys differ only in sizes (same ranks,
    dtypes, devices), each going from one value >= 2 to another >= 2; positions that
    change alike share a symbol. None when they differ otherwise or not at all."""
    if old[0] != new[0] or old[2:] != new[2:] or len(old[1]) != len(new[1]):
        return None
    groups: dict = {}
    for i, (a, b) in enumerate(zip(old[1], new[1])):
        if a == b:
            continue
        if not (is_tensor_meta(a) and is_tensor_meta(b)) or a[1:] != b[1:] or \
                len(a[0]) != len(b[0]):
            return None
        for axis, (x, y) in enumerate(zip(a[0], b[0])):
            if x != y:
                groups.setdefault((x, y), []).append((i, axis))
    if not groups or min(min(pair) for pair in groups) < 2:
        return None
    return {pair: tuple(p) for pair, p in groups.items()}


def size_groups(key) -> list[tuple]:
    """Positions of a call's tensor dimensions that may vary together (dynamic=True):
    equal sizes share a group, as torch's duck sizing does, except that two axes of one
    tensor never do (a square image keeps separate H and W); sizes 0 and 1 stay static."""
    groups: list[tuple[int, list]] = []
    for i, meta in enumerate(key[1]):
        if not is_tensor_meta(meta):
            continue
        for axis, n in enumerate(meta[0]):
            if n < 2:
                continue
            group = next((g for size, g in groups
                          if size == n and all(leaf != i for leaf, _ in g)), None)
            if group is None:
                groups.append((n, [(i, axis)]))
            else:
                group.append((i, axis))
    return [tuple(g) for _, g in groups]
