import Foundation
import PortcullisWatch
import Testing

/// The metrics file node_exporter's textfile collector reads: exact text, cumulative buckets.
struct WatchMetricsTests {
    @Test func prometheusTextFormat() {
        var metrics = WatchMetrics()
        metrics.record(seconds: 0.003, succeeded: true, at: 1_712_345_678.5)
        metrics.record(seconds: 0.04, succeeded: true, driftRepaired: true, at: 1_712_345_679.25)
        metrics.record(seconds: 12, succeeded: false, at: 1_712_345_690)
        metrics.managedContainers = 7
        metrics.reloadFailures = 2
        #expect(
            metrics.text == """
                # HELP portcullis_watch_syncs_total Syncs of the kernel's rules with the Docker inventory.
                # TYPE portcullis_watch_syncs_total counter
                portcullis_watch_syncs_total 3
                # HELP portcullis_watch_sync_failures_total Syncs that failed (the rules in place were kept).
                # TYPE portcullis_watch_sync_failures_total counter
                portcullis_watch_sync_failures_total 1
                # HELP portcullis_watch_sync_duration_seconds How long a sync took, from the inventory to the kernel.
                # TYPE portcullis_watch_sync_duration_seconds histogram
                portcullis_watch_sync_duration_seconds_bucket{le="0.005"} 1
                portcullis_watch_sync_duration_seconds_bucket{le="0.01"} 1
                portcullis_watch_sync_duration_seconds_bucket{le="0.025"} 1
                portcullis_watch_sync_duration_seconds_bucket{le="0.05"} 2
                portcullis_watch_sync_duration_seconds_bucket{le="0.1"} 2
                portcullis_watch_sync_duration_seconds_bucket{le="0.25"} 2
                portcullis_watch_sync_duration_seconds_bucket{le="0.5"} 2
                portcullis_watch_sync_duration_seconds_bucket{le="1"} 2
                portcullis_watch_sync_duration_seconds_bucket{le="2.5"} 2
                portcullis_watch_sync_duration_seconds_bucket{le="5"} 2
                portcullis_watch_sync_duration_seconds_bucket{le="10"} 2
                portcullis_watch_sync_duration_seconds_bucket{le="+Inf"} 3
                portcullis_watch_sync_duration_seconds_sum 12.043
                portcullis_watch_sync_duration_seconds_count 3
                # HELP portcullis_watch_drift_repairs_total Syncs that put back rules someone else had changed.
                # TYPE portcullis_watch_drift_repairs_total counter
                portcullis_watch_drift_repairs_total 1
                # HELP portcullis_watch_reload_failures_total Policy reloads that failed to check (the syncs went on with the running policy).
                # TYPE portcullis_watch_reload_failures_total counter
                portcullis_watch_reload_failures_total 2
                # HELP portcullis_watch_managed_containers Running containers in the inventory the rules follow.
                # TYPE portcullis_watch_managed_containers gauge
                portcullis_watch_managed_containers 7
                # HELP portcullis_watch_last_success_timestamp_seconds When the last sync succeeded (0: none yet).
                # TYPE portcullis_watch_last_success_timestamp_seconds gauge
                portcullis_watch_last_success_timestamp_seconds 1712345679.25

                """)
    }

    @Test func theFileIsReplacedWhole() throws {
        let directory = NSTemporaryDirectory() + "pc-metrics-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/portcullis.prom"
        var metrics = WatchMetrics()
        try metrics.write(to: path)
        #expect(Repo.read(path).contains("portcullis_watch_syncs_total 0\n"))
        #expect(Repo.read(path).contains("portcullis_watch_last_success_timestamp_seconds 0\n"))
        metrics.record(seconds: 0.01, succeeded: true, at: 5)
        try metrics.write(to: path)
        #expect(Repo.read(path) == metrics.text)
        // No temporary file is left next to it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["portcullis.prom"])
        #expect(throws: WatchError.self) { try metrics.write(to: directory + "/missing/portcullis.prom") }
    }
}
