"""Unit tests of the PromQL tokenizer and the telemetry parser (stdlib
unittest; run by scripts/check-dashboards before it checks the dashboards)."""
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import promql  # noqa: E402


class MetricNames(unittest.TestCase):
    def test_functions_keywords_labels_and_ranges_are_skipped(self):
        e = 'histogram_quantile(0.95, sum by (le, kind) (rate(mll_worker_job_duration_seconds_bucket{kind=~"label|evaluate"}[5m])))'
        self.assertEqual(promql.metric_names(e), {"mll_worker_job_duration_seconds_bucket"})

    def test_binary_operators_and_grafana_variables(self):
        e = 'sum(mll_run_jobs_done{run=~"$run"}) / sum without (stage) (mll_run_jobs_expected{run=~"${run}"}) > bool 1e-9'
        self.assertEqual(promql.metric_names(e), {"mll_run_jobs_done", "mll_run_jobs_expected"})

    def test_vector_matching_offset_and_subquery(self):
        e = ('rate(a_total[$__rate_interval] offset 5m) * on (instance) group_left (pod) b_info '
             'and max_over_time(c[1h:5m]) unless d')
        self.assertEqual(promql.metric_names(e), {"a_total", "b_info", "c", "d"})

    def test_label_values_in_strings_are_not_metrics(self):
        e = 'sum(mll_queue_messages{queue="dead_letter", x=\'rate(y)\'})'
        self.assertEqual(promql.metric_names(e), {"mll_queue_messages"})

    def test_name_matcher(self):
        self.assertEqual(promql.metric_names('{__name__="up", job="x"}'), {"up"})

    def test_rate_arguments(self):
        self.assertEqual(promql.counter_like_args("sum(rate(x_total[5m])) + increase( y [1h])"),
                         [("rate", "x_total"), ("increase", "y")])

    def test_histogram_parts_map_to_the_histogram_only(self):
        known = {"h_seconds": "histogram", "c_total": "counter", "g": "gauge"}
        self.assertEqual(promql.base_name("h_seconds_bucket", known), "h_seconds")
        self.assertEqual(promql.base_name("h_seconds_count", known), "h_seconds")
        self.assertIsNone(promql.base_name("g_sum", known))
        self.assertIsNone(promql.base_name("nope", known))


class Telemetry(unittest.TestCase):
    def test_declarations_and_types(self):
        src = '''
            a: counter_vec(&r, "mll_a_total", "x", &["k"]),
            b: histogram(&r, "mll_b_seconds", "x", B),
            c: gauge(&r, "mll_c", "x"),
        '''
        with tempfile.NamedTemporaryFile("w", suffix=".rs") as f:
            f.write(src)
            f.flush()
            self.assertEqual(promql.telemetry_metrics(Path(f.name)),
                             {"mll_a_total": "counter", "mll_b_seconds": "histogram", "mll_c": "gauge"})

    def test_an_undeclared_literal_is_an_error(self):
        with tempfile.NamedTemporaryFile("w", suffix=".rs") as f:
            f.write('a: counter(&r, "mll_a_total", "x"), b: IntGauge::new("mll_b", "x")')
            f.flush()
            with self.assertRaises(ValueError):
                promql.telemetry_metrics(Path(f.name))

    def test_the_real_telemetry_declares_every_documented_metric(self):
        repo = Path(__file__).resolve().parents[2]
        m = promql.telemetry_metrics(repo / "common/src/telemetry.rs")
        self.assertEqual(m["mll_worker_job_duration_seconds"], "histogram")
        self.assertEqual(m["mll_worker_jobs_total"], "counter")
        self.assertEqual(m["mll_run_jobs_expected"], "gauge")


if __name__ == "__main__":
    unittest.main()
