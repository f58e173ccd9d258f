"""The study's paired comparisons on hand-made detections: the paired bootstrap over images
(``convert.detection.study.bootstrap_differences``) and the per-seed paired differences of ``summary_table``."""
from __future__ import annotations

import numpy as np

from convert.detection.rescoring import Detections
from convert.detection.study import VariantResult, bootstrap_differences, summary_table

GT = (np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0, 0]))


def _dets(boxes, scores) -> Detections:
    n = len(scores)
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.zeros(n, np.int64),
                      np.asarray(scores, np.float32), np.zeros(n, np.float32))


def test_bootstrap_of_a_variant_against_itself_is_exactly_zero():
    per = {"a": [_dets([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.8])] * 5}
    per["b"] = list(per["a"])
    out = bootstrap_differences(per, [GT] * 5, "a", "b", rounds=50)
    assert out["TP@0.5"] == (0, 0.0, 0.0) and out["FP@0.5"] == (0, 0.0, 0.0)
    assert out["IoU 0.5 FP@R0.5"] == (0, 0.0, 0.0)


def test_bootstrap_counts_the_false_positive_a_variant_ranks_first_in_every_image():
    # "a" ranks a background box above both objects in every image, "b" ranks it last (below 0.5)
    a = _dets([[50, 50, 60, 60], [0, 0, 10, 10], [20, 20, 30, 30]], [0.95, 0.9, 0.8])
    b = _dets([[50, 50, 60, 60], [0, 0, 10, 10], [20, 20, 30, 30]], [0.3, 0.9, 0.8])
    n = 8
    out = bootstrap_differences({"a": [a] * n, "b": [b] * n}, [GT] * n, "a", "b", rounds=200)
    # every resample holds n images: n more FPs above every TP and above the 0.5 threshold, same TPs
    assert out["IoU 0.5 FP@R0.9"] == (n, n, n) and out["IoU 0.5 FP@R0.5"] == (n, n, n)
    assert out["FP@0.5"] == (n, n, n) and out["TP@0.5"] == (0, 0, 0)


def test_bootstrap_interval_is_missing_where_the_recall_is_not_reached():
    # one object of two found: recall 0.9 is never reached, the difference is None
    d = _dets([[0, 0, 10, 10]], [0.9])
    out = bootstrap_differences({"a": [d] * 4, "b": [d] * 4}, [GT] * 4, "a", "b", rounds=20)
    assert out["IoU 0.5 FP@R0.9"] == (None, None, None)


def _result(fp_r05: int, tp: int, fp: int, map_all: float) -> VariantResult:
    fp_at = {t: {r: fp_r05 for r in ("0.5", "0.7", "0.8", "0.9")} for t in ("0.5", "0.7")}
    types = {"duplicate": 0, "mislocalized": 0, "wrong_class": fp, "background": 0}
    return VariantResult("x", 0.5, map_all, fp_at, {"tp": tp, "fp": fp, "fp_types": types}, dict(types),
                         {"0.5": 0.9, "0.7": 0.8}, -0.3)


def test_summary_table_prints_per_seed_paired_differences():
    results = {"gaussian/sigma": [_result(10, 100, 20, 0.40), _result(14, 90, 30, 0.42)],
               "gaussian/plain": [_result(12, 110, 40, 0.39), _result(12, 95, 36, 0.40)]}
    table = summary_table(results)
    line = next(ln for ln in table.splitlines() if ln.startswith("  IoU 0.5  gaussian/sigma - gaussian/plain"))
    # seed differences: FP@R -2 and +2 (mean 0, sd 2.8); TP -10, -5 (mean -7.5, sd 3.5); FP -20, -6 (-13, 9.9)
    assert "FP@R0.5 +0.0±2.8" in line and "TP@0.5 -7.5±3.5" in line and "FP@0.5 -13.0±9.9" in line
    assert "mAP@.5:.95 +1.5±0.7" in line


def test_the_table_is_rebuilt_from_experiment_json(tmp_path):
    import json

    from convert.detection.study import main, results_from_json
    runs = {"gaussian-s0": _result(10, 100, 20, 0.40), "plain-s0": _result(12, 110, 40, 0.39),
            "gaussian-s1": _result(14, 90, 30, 0.42), "plain-s1": _result(12, 95, 36, 0.40)}
    # as cmd_experiment writes it: run directory -> variant -> the VariantResult's fields
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps({"split": "test", "runs": {str(tmp_path / r): {r.split("-")[0]: res.__dict__}
                                                          for r, res in runs.items()}}, default=str))
    back = results_from_json(path)
    assert back == {"gaussian/gaussian": [runs["gaussian-s0"], runs["gaussian-s1"]],
                    "plain/plain": [runs["plain-s0"], runs["plain-s1"]]}
    assert main([str(path)]) == 0
