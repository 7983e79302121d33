"""botocore's data files (endpoints.json, each service's model) read once per process, as plain
dicts, for every botocore session we make.

botocore gives each Session its own Loader, and every client keeps its session's Loader and
what it cached: each STS client held its own copy of endpoints.json (1.2 MB on disk, 6.7 MiB
of botocore's OrderedDicts), read again for every session (one per role, per MFA session, per
chained role's keys). Our sessions share one Loader per data path (AWS_DATA_PATH, or a
profile's data_path) instead, and it parses the files into dicts: ordered as well (Python
3.7+), and nothing botocore does with the loaded data needs an OrderedDict; endpoints.json
then takes 3.9 MiB. A Loader only reads files and caches what it read, so sharing it across
the worker threads that make clients is safe (two threads may, at worst, read a file twice).
"""

from __future__ import annotations

import functools
import gzip
import json
import os
from typing import Any

import botocore.session
from botocore.loaders import JSONFileLoader, Loader, create_loader


class _PlainJSON(JSONFileLoader):
    """botocore's JSON file loader (NAME.json, else NAME.json.gz), parsing into plain dicts."""

    def load_file(self, file_path: str) -> Any:
        path = file_path + ".json"
        if os.path.isfile(path):
            with open(path, "rb") as f:
                return json.loads(f.read().decode("utf-8"))
        if os.path.isfile(path + ".gz"):
            with gzip.open(path + ".gz", "rb") as f:
                return json.loads(f.read().decode("utf-8"))
        return None


@functools.cache
def shared_loader(data_path: str | None) -> Loader:
    """The one Loader for this data path (botocore's search path syntax: os.pathsep between)."""
    loader = create_loader(data_path)
    loader.file_loader = _PlainJSON()
    return loader


def session(
    *, profile: str | None = None, session_vars: dict[str, Any] | None = None
) -> botocore.session.Session:
    """A botocore Session (arguments as botocore's) whose data loader is the shared one."""
    made = botocore.session.Session(profile=profile, session_vars=session_vars)
    # As botocore's own: the data path is looked up when the loader is first needed.
    made.lazy_register_component("data_loader", lambda: shared_loader(made.get_config_variable("data_path")))
    return made
