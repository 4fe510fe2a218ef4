"""Episode bags of DEFT: the format, writer and reader, the bag player node, replay evaluation."""
