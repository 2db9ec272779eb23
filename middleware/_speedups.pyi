# Stub for the optional C accelerator (middleware/_speedups.c).

NAMES: tuple[str, ...]
END_NAMES: tuple[str, ...]
PLAIN_URL_TAGS: tuple[str, ...]

def skip_end(low: bytes | bytearray | memoryview, pos: int, /) -> int: ...
