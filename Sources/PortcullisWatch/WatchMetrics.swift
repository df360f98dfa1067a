import Foundation

/// The watcher's counters, written in Prometheus' text format (version 0.0.4) for
/// node_exporter's textfile collector. Names are documented in docs/watch.md.
public struct WatchMetrics: Sendable, Equatable {
    /// The upper bounds of the duration histogram's buckets, in seconds (`+Inf` is added).
    public static let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    public var syncs = 0
    public var failures = 0
    public var driftRepairs = 0
    /// Reloads (SIGHUP) whose policy did not check; the running policy was kept.
    public var reloadFailures = 0
    public var managedContainers = 0
    /// Seconds since the epoch; nil before the first successful sync.
    public var lastSuccess: Double?
    /// Cumulative counts per bucket, as Prometheus wants them.
    public private(set) var bucketCounts = Array(repeating: 0, count: Self.buckets.count)
    public private(set) var durationSum = 0.0

    public init() {}

    /// One sync, successful or not, and how long it took.
    public mutating func record(seconds: Double, succeeded: Bool, driftRepaired: Bool = false, at time: Double) {
        syncs += 1
        durationSum += seconds
        for (index, bound) in Self.buckets.enumerated() where seconds <= bound { bucketCounts[index] += 1 }
        if succeeded {
            lastSuccess = time
            if driftRepaired { driftRepairs += 1 }
        } else {
            failures += 1
        }
    }

    /// The exposition text.
    public var text: String {
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            lines.append("# HELP portcullis_watch_\(name) \(help)")
            lines.append("# TYPE portcullis_watch_\(name) \(type)")
            for (suffix, value) in samples { lines.append("portcullis_watch_\(name)\(suffix) \(value)") }
        }
        metric("syncs_total", "counter", "Syncs of the kernel's rules with the Docker inventory.", [("", "\(syncs)")])
        metric(
            "sync_failures_total", "counter", "Syncs that failed (the rules in place were kept).",
            [("", "\(failures)")])
        metric(
            "sync_duration_seconds", "histogram", "How long a sync took, from the inventory to the kernel.",
            zip(Self.buckets, bucketCounts).map { ("_bucket{le=\"\(Self.number($0))\"}", "\($1)") }
                + [
                    ("_bucket{le=\"+Inf\"}", "\(syncs)"), ("_sum", Self.number(durationSum)),
                    ("_count", "\(syncs)"),
                ])
        metric(
            "drift_repairs_total", "counter", "Syncs that put back rules someone else had changed.",
            [("", "\(driftRepairs)")])
        metric(
            "reload_failures_total", "counter",
            "Policy reloads that failed to check (the syncs went on with the running policy).",
            [("", "\(reloadFailures)")])
        metric(
            "managed_containers", "gauge", "Running containers in the inventory the rules follow.",
            [("", "\(managedContainers)")])
        metric(
            "last_success_timestamp_seconds", "gauge", "When the last sync succeeded (0: none yet).",
            [("", Self.number(lastSuccess ?? 0))])
        return lines.joined(separator: "\n") + "\n"
    }

    /// `0.005`, `1`, `1712345678.123`: no exponent, no trailing zeros.
    static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        var text = String(format: "%.6f", value)
        while text.hasSuffix("0") { text.removeLast() }
        return text
    }

    /// Writes the text to `path` whole: a temporary file in the same directory, renamed over it,
    /// so the collector never reads half a file.
    public func write(to path: String) throws {
        try AtomicFile.write(text, to: path)
    }
}

/// Whole-file replacement by rename within one directory.
enum AtomicFile {
    static func write(_ text: String, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
        do {
            try Data(text.utf8).write(to: temporary)
            guard rename(temporary.path, url.path) == 0 else {
                let reason = String(cString: strerror(errno))
                try? FileManager.default.removeItem(at: temporary)
                throw WatchError("cannot rename \(temporary.path) to \(path): \(reason)")
            }
        } catch let error as WatchError {
            throw error
        } catch {
            throw WatchError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}

/// A watcher problem in one line.
public struct WatchError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
