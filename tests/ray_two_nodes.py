"""Two Ray nodes on one machine, inside a private network namespace (run by tests/test_shards.py).

A head (`ray start --head`) and a second node (`ray start --address`) on 127.0.0.1; two Flat shards spread over
them must answer exactly like one index. Prints one JSON object: what the test checks.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np

from searchkit.course.exercises import _exercise_vectors
from searchkit.index.vector import VectorIndex
from searchkit.scale import cluster
from searchkit.scale.shards import ShardedIndex, build_shards


def main() -> int:
    out: dict = {}
    xb, xq = _exercise_vectors(2000, 32, seed=5), _exercise_vectors(20, 32, seed=6)
    ids = [f"d{i}" for i in range(len(xb))]
    c = cluster.start_local(num_cpus=1)
    try:
        c.join(num_cpus=1)
        folder = tempfile.mkdtemp(prefix="two-nodes-")
        build_shards(ids, xb, 2, folder)
        index = ShardedIndex.load(folder)
        want, got = VectorIndex.build(ids, xb).search(xq, 10), index.search(xq, 10)
        out["same_ids"] = got.ids == want.ids
        out["max_score_diff"] = float(np.abs(np.array(got.scores) - np.array(want.scores)).max())
        out["nodes"] = cluster.node_addresses()
        out["shard_nodes"] = [h["node"] for h in index.health()]
        out["states"] = [h["state"] for h in index.health()]
        out["sockets"] = cluster.listening_sockets(c.pids + [os.getpid()])
        started = cluster.process_tree(c.pids)
        index.close()
    finally:
        c.stop()
    out["left"] = cluster.process_tree(started)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
