"""What makes an HDF5 file unsafe to read as an artifact, whatever its kind: anything that
would make HDF5 read another file (an external link, a dataset kept in external raw files, a
virtual dataset: slic writes none), or a dataset or attribute that declares far more bytes than
the file holds (a crafted shape with no data behind it, or a chunked dataset of fill values),
which a whole read (`dataset[()]`, `attrs[name]`) would allocate before finding out."""

from __future__ import annotations

import math

import h5py

# slic compresses and filters no dataset (its image streams hold JPEG/PNG bytes or raw
# uint8, its tables and features raw numbers), so each dataset it writes declares at most the
# bytes the file holds. 4x leaves room for an artifact repacked with compression by another
# tool (h5repack: encoded images and float features barely shrink; the columns that would,
# labels and counts, are a small part of the file), and 1 MiB for a tiny file.
DECLARED_FACTOR = 4
DECLARED_SLACK = 2**20


def declared_limit(file_size: int) -> int:
    """The most bytes a dataset of a file of `file_size` bytes may declare."""
    return DECLARED_FACTOR * file_size + DECLARED_SLACK


def declared_bytes(dataset: h5py.Dataset) -> int:
    """Bytes a whole read of `dataset` allocates: its elements (none for an empty dataspace)
    times the size of one in memory (8 for a variable-length string's reference)."""
    if dataset.shape is None:
        return 0
    return math.prod(dataset.shape) * dataset.dtype.itemsize


def _dataset_problem(where: str, dataset: h5py.Dataset, limit: int, file_size: int) -> str | None:
    if dataset.external or dataset.is_virtual:
        return (f"{where} keeps its data in other files, and slic never reads another file "
                "through an artifact")
    size = declared_bytes(dataset)
    if size > limit:
        return (f"{where} declares {size} bytes (shape {dataset.shape}, {dataset.dtype}) in a "
                f"file of {file_size} bytes; slic reads at most {limit} bytes a dataset from it")
    return None


# What HDF5 raises for an attribute header it cannot decode (h5py maps its errors onto these).
_UNREADABLE = (KeyError, RuntimeError, OSError, ValueError, TypeError)


def attribute_bytes(attribute: h5py.h5a.AttrID) -> int:
    """Bytes a read of `attribute` allocates, or its storage in the file if more: its
    elements times the size of one (8 or 16 for a variable-length value's reference)."""
    elements = attribute.get_space().get_simple_extent_npoints()
    return max(elements * attribute.get_type().get_size(), attribute.get_storage_size())


def unsafe_attributes(owner: h5py.HLObject, file_size: int) -> str | None:
    """Which attribute of `owner` (a group or dataset) declares more than
    `declared_limit(file_size)` bytes or cannot be decoded, or None: checked from its header
    before h5py allocates the array that header describes."""
    limit, where = declared_limit(file_size), owner.name
    try:
        for index in range(h5py.h5a.get_num_attrs(owner.id)):
            attribute = h5py.h5a.open(owner.id, index=index)
            size = attribute_bytes(attribute)
            if size > limit:
                name = attribute.name.decode("utf-8", "replace")
                return (f"attribute {name!r} of {where} declares {size} bytes in a file of "
                        f"{file_size} bytes; slic reads at most {limit} bytes an attribute "
                        "from it")
    except _UNREADABLE as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        return f"the attributes of {where} cannot be read ({reason})"
    return None


def unsafe_content(group: h5py.Group, file_size: int) -> str | None:
    """What in `group` (recursively, attributes included), of a file of `file_size` bytes,
    would make a reader open another file or allocate more than `declared_limit(file_size)`
    bytes, or None."""
    limit = declared_limit(file_size)
    found = unsafe_attributes(group, file_size)
    if found is not None:
        return found
    for name in group:
        link = group.get(name, getlink=True)
        where = f"{group.name.rstrip('/')}/{name}"
        if isinstance(link, h5py.ExternalLink):
            return (f"{where} is a link to another file, and slic never reads another file "
                    "through an artifact")
        if isinstance(link, h5py.SoftLink):
            continue  # a path inside this file; its target is visited where it lives
        item = group[name]
        if isinstance(item, h5py.Group):
            found = unsafe_content(item, file_size)
        elif isinstance(item, h5py.Dataset):
            found = (_dataset_problem(where, item, limit, file_size)
                     or unsafe_attributes(item, file_size))
        else:
            found = None  # a named datatype: no data
        if found is not None:
            return found
    return None
