//! Nothing here: the fuzz targets are in `tests/`.
