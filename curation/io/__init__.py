"""Reading and writing tables, JSON and params; the only importer of ``dvc.api``.

Readers name the file (and the line, for text formats) in every error; writers go through a temporary file in the
same folder and an atomic rename, so a failed stage never leaves a half-written output behind.
"""

from curation.io.atomic import atomic_path, write_json, write_parquet, write_text
from curation.io.digest import file_digest
from curation.io.tables import read_table

__all__ = ["atomic_path", "file_digest", "read_table", "write_json", "write_parquet", "write_text"]
