"""crops-dwell: an example positive source in Python (docs/plugin-authoring.md).

Dwell-time engagement: an exposed search result is a positive for its query
when, in the train split, at least ``min_users`` distinct users stayed on it
for at least ``min_dwell_ms`` after that search. A long dwell is a strong
implicit signal that a click alone does not give (a click can be a bounce).
Confidence is the share of the pair's exposures that led to a long dwell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

import crops_sdk
from crops_sdk import table


@dataclass
class Params:
    min_dwell_ms: int = 15000  #: a dwell at least this long counts as engagement
    min_users: int = 1  #: distinct engaged users a (query, item) needs
    tier_hint: int = 4  #: the tier hint written for each candidate

    def validate(self) -> None:
        if self.min_dwell_ms <= 0:
            raise ValueError(f"min_dwell_ms = {self.min_dwell_ms}: expected a positive number of milliseconds")
        if self.min_users < 1:
            raise ValueError(f"min_users = {self.min_users}: expected at least 1")
        if not 1 <= self.tier_hint <= 5:
            raise ValueError(f"tier_hint = {self.tier_hint}: expected 1..5")


SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "min_dwell_ms": {"type": "integer", "exclusiveMinimum": 0, "default": 15000},
        "min_users": {"type": "integer", "minimum": 1, "default": 1},
        "tier_hint": {"type": "integer", "minimum": 1, "maximum": 5, "default": 4},
    },
}


class Dwell(crops_sdk.PositiveSource):
    def describe(self) -> crops_sdk.Info:
        return crops_sdk.Info(name="dwell", kind=crops_sdk.Kind.SOURCE, version="0.1.0",
                              description="exposed search results on which users dwelt for at least min_dwell_ms",
                              params_schema=SCHEMA)

    def mine(self, ctx: crops_sdk.Context, req: crops_sdk.MineRequest) -> crops_sdk.MineResult:
        p = crops_sdk.decode_params(req.params, Params)
        search = table.train_search(req.dataset_dir, ["user_id", "query", "item_id", "stage", "watch_ms"])
        exposed = search.filter(pc.equal(search["stage"], table.STAGE_EXPOSED))
        ctx.raise_if_cancelled()
        shown = exposed.group_by(["query", "item_id"]).aggregate([("user_id", "count")])
        engaged = exposed.filter(pc.greater_equal(exposed["watch_ms"], p.min_dwell_ms))
        long = engaged.group_by(["query", "item_id"]).aggregate(
            [("user_id", "count"), ("user_id", "count_distinct"), ("watch_ms", "max")])
        long = long.filter(pc.greater_equal(long["user_id_count_distinct"], p.min_users))
        joined = long.join(shown.rename_columns(["query", "item_id", "exposures"]), ["query", "item_id"])
        joined = joined.sort_by([("query", "ascending"), ("item_id", "ascending")])
        n = joined.num_rows
        confidence = pc.divide(pc.cast(joined["user_id_count"], pa.float64()),
                               pc.cast(joined["exposures"], pa.float64()))
        evidence = [json.dumps({"engaged_users": u, "max_dwell_ms": m})
                    for u, m in zip(joined["user_id_count_distinct"].to_pylist(), joined["watch_ms_max"].to_pylist(),
                                    strict=True)]
        out = pa.table({
            "query": joined["query"],
            "item_id": joined["item_id"],
            "source": pa.array(["dwell"] * n, pa.string()),
            "tier_hint": pa.array([p.tier_hint] * n, pa.int32()),
            "confidence": confidence,
            "evidence": pa.array(evidence, pa.string()),
        })
        table.write_candidates(out, req.output_path)
        return crops_sdk.MineResult(stats={"candidates": float(n), "exposures": float(exposed.num_rows),
                                           "long_dwells": float(engaged.num_rows)})


def main() -> None:
    crops_sdk.serve(Dwell())


if __name__ == "__main__":
    main()
