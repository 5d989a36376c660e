"""Diff tests for function_graph tracer text with kmem events as `/* ... */` comments."""

from __future__ import annotations

import json

from tests.conftest import rows

COLS = 'seq, ts_ns, cpu, pid, comm, event, pfn, "order", gfp_flags'


def test_default_columns_no_time(ingest_text):
    # default options: CPU column, no task, no absolute time → ts_ns null, seq = file order
    ds = ingest_text("""
        # tracer: function_graph
        #
        # CPU  DURATION                  FUNCTION CALLS
        # |     |   |                     |   |   |   |
         1)               |  __alloc_pages_noprof() {
         1)               |    /* mm_page_alloc: page=00000000a2226c3b pfn=0x10a9e6 order=0 migratetype=0 gfp_flags=GFP_KERNEL */
         1)   0.541 us    |  }
         0)               |      /* mm_page_free: page=00000000a3eae89e pfn=0x186be1 order=2 */
         0)               |      /* sched_switch: prev_comm=a */
         0)               |      /* mm_page_free: page=00000000a3eae89e pfn=0x186be2 */
        """)
    assert rows(ds, f"SELECT {COLS} FROM events ORDER BY seq") == [
        (0, None, 1, None, None, "mm_page_alloc", 0x10A9E6, 0, "GFP_KERNEL"),
        (1, None, 0, None, None, "mm_page_free", 0x186BE1, 2, None),
    ]
    meta = json.loads((ds / "meta.json").read_text())
    assert meta["format"] == "function-graph"
    assert meta["skipped"]["by_event"] == {"sched_switch": 1}
    assert meta["malformed"]["total"] == 1  # a free without order=
    assert meta["malformed"]["examples"][0].startswith("line 10:")
    assert meta["time_span"]["first_ts_ns"] is None


def test_abstime_and_proc_columns(ingest_text):
    ds = ingest_text("""
        # tracer: function_graph
        #     TIME        CPU  TASK/PID         DURATION                  FUNCTION CALLS
          441.670898 |   1)    bash-6300    |               |  /* mm_page_alloc: page=00000000a2226c3b pfn=0x10a9e6 order=9 migratetype=1 gfp_flags=GFP_TRANSHUGE */
          441.670899 |   1)    bash-6300    |   0.541 us    |  } /* rcu_dynticks_eqs_enter */
          441.670901 |   0)   <idle>-0      |               |      /* mm_page_free_direct: page=00000000a3eae89e pfn=0x186be1 order=2 */
        """)
    assert rows(ds, f"SELECT {COLS} FROM events ORDER BY seq") == [
        (0, 441670898000, 1, 6300, "bash", "mm_page_alloc", 0x10A9E6, 9, "GFP_TRANSHUGE"),
        (1, 441670901000, 0, 0, "<idle>", "mm_page_free", 0x186BE1, 2, None),
    ]
