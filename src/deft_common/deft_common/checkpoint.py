"""Torch checkpoints as plain data: a JSON config and named tensors, checksummed, loaded safely."""

import hashlib
from pathlib import Path
from typing import Dict, Tuple

import torch


def first_line(exc: BaseException) -> str:
    """Return 'ExcType: first line of its message' (for one-line error messages)."""
    text = str(exc).strip().splitlines()
    return f'{type(exc).__name__}: {text[0] if text else ""}'.rstrip(': ')


def checksum(config: str, tensors: Dict[str, torch.Tensor]) -> str:
    """Return the SHA-256 of the config text and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256(config.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f'\0{name}\0{t.dtype}\0{tuple(t.shape)}\0'.encode())
        if t.numel():  # an empty tensor has no bytes (and cannot be viewed as bytes)
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def read_checkpoint(path: Path, fmt: str, version: int,
                    what: str) -> Tuple[str, Dict[str, torch.Tensor]]:
    """
    Load (config JSON text, named tensors) with weights_only=True; ValueError saying what is wrong.

    Refused: a missing file (FileNotFoundError), anything the safe loader rejects (pickles),
    another format or version, a malformed payload, a checksum mismatch (edited or corrupt).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{what} checkpoint {path} not found')
    try:
        payload = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError...: all "not ours"
        article = 'an' if what[:1].lower() in 'aeiou' else 'a'
        raise ValueError(f'{path} is not {article} {what} checkpoint (refused by the safe '
                         f'loader: {first_line(exc)})') from exc
    if not isinstance(payload, dict) or payload.get('format') != fmt:
        raise ValueError(f'{path} is not a {fmt} checkpoint')
    if payload.get('version') != version:
        raise ValueError(f'{path} has checkpoint version {payload.get("version")!r}; '
                         f'this code reads version {version}')
    config, tensors = payload.get('config'), payload.get('tensors')
    if not isinstance(config, str) or not isinstance(tensors, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()):
        raise ValueError(f'{path} is malformed: expected a JSON config and named tensors')
    if payload.get('checksum') != checksum(config, tensors):
        raise ValueError(f'{path}: the config or weights do not match the checksum '
                         '(the file was edited or is corrupt); retrain or restore it')
    return config, tensors
