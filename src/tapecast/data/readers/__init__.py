"""One module per source format; each exposes ``read_<format>(path, **options) -> Tables``."""
