"""Records: a training's digests, losses and environment kept as one small portable file
(``detprof record``), and two records compared across machines, versions, devices and modes
(``detprof compare``).

    from detprof.records import compare_records, make_record, read_record
    comparison = compare_records(read_record("golden.json"), make_record(WorkloadRequest(arch="small-cnn")))
"""

from detprof.records.compare import compare_records
from detprof.records.format import FORMAT_VERSION, Record, RecordError, read_record, write_record
from detprof.records.make import make_record

__all__ = ["FORMAT_VERSION", "Record", "RecordError", "compare_records", "make_record", "read_record",
           "write_record"]
