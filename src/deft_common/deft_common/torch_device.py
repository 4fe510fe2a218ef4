"""The torch device of a `device` parameter, checked once for every model of the stack."""


def torch_device(device: str):
    """
    Return torch.device(device); ValueError saying why not for a bad name or missing CUDA.

    torch is imported here, not at module import, so packages without models stay light.
    """
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a torch device (e.g. 'cpu', 'cuda:0')") \
            from exc
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use 'cpu'")
    return dev
