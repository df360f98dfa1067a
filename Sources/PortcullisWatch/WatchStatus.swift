import Foundation
import JanssonKit

/// The running watcher's state, as `STATE/watch.json` holds it (rewritten after every sync and
/// every change of connection) and `portcullis status` prints it. Which process wrote it is
/// told by its pid, executable and start time, so a pid reused by another program is not taken
/// for a watcher.
public struct WatchStatus: Sendable {
    public static let schema = "portcullis.watch-status/1"
    public static let fileName = "watch.json"

    public var pid: Int32
    public var executable: String
    /// The process's start time in clock ticks after boot (`/proc/PID/stat`, field 22).
    public var processStart: Int
    public var policy: String
    public var dockerHost: String
    public var started: Date
    public var stopped: Date?
    public var snapshot: WatchSnapshot

    /// The status of this process.
    public init(policy: String, dockerHost: String, started: Date = Date(), snapshot: WatchSnapshot = WatchSnapshot()) {
        pid = getpid()
        executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        processStart = Self.startTime(of: pid) ?? 0
        self.policy = policy
        self.dockerHost = dockerHost
        self.started = started
        self.snapshot = snapshot
    }

    public static func path(in directory: String) -> String { directory + "/" + fileName }

    /// The status file's text.
    public var json: JSON {
        let metrics = snapshot.metrics
        var lastSync = JSON.null
        if let record = snapshot.lastSync {
            var members: [(String, JSON)] = [
                ("number", .integer(record.number)), ("at", .string(Self.timestamp(record.at))),
                ("ok", .bool(record.report != nil)), ("seconds", .real(record.seconds)),
                ("reasons", .array(record.reasons.map { .string($0) })),
            ]
            if let report = record.report {
                members += [("summary", .string(report.summary)), ("changed", .bool(report.changed))]
            }
            if let error = record.error { members.append(("error", .string(error))) }
            lastSync = .object(members)
        }
        return .object([
            ("schema", .string(Self.schema)), ("pid", .integer(Int(pid))), ("executable", .string(executable)),
            ("process-start", .integer(processStart)), ("policy", .string(policy)),
            ("docker-host", .string(dockerHost)), ("started", .string(Self.timestamp(started))),
            ("stopped", stopped.map { .string(Self.timestamp($0)) } ?? .null),
            ("connected", .bool(snapshot.connected)), ("connections", .integer(snapshot.connections)),
            ("networks", .integer(snapshot.inventory?.networks.count ?? 0)),
            ("containers", .integer(snapshot.inventory?.containers.count ?? 0)), ("syncs", .integer(metrics.syncs)),
            ("failures", .integer(metrics.failures)), ("drift-repairs", .integer(metrics.driftRepairs)),
            ("last-sync", lastSync),
            (
                "last-success",
                metrics.lastSuccess.map { .string(Self.timestamp(Date(timeIntervalSince1970: $0))) } ?? .null
            ),
            ("last-error", snapshot.lastError.map { .string($0) } ?? .null),
            ("reload-failures", .integer(metrics.reloadFailures)),
            ("last-reload", snapshot.lastReload.map { .string(Self.timestamp($0)) } ?? .null),
            ("last-reload-error", snapshot.lastReloadError.map { .string($0) } ?? .null),
        ])
    }

    public func write(to directory: String) throws {
        try AtomicFile.write(json.rendered() + "\n", to: Self.path(in: directory))
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    /// Field 22 of `/proc/PID/stat` (after the command name, which may hold spaces).
    static func startTime(of pid: Int32) -> Int? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // Fields 3 onwards follow the name: field 22 is the 20th of them.
        return fields.count > 19 ? Int(fields[19]) : nil
    }
}

/// What `portcullis status` found in a state directory.
public struct WatcherState: Sendable {
    /// The status file's text; nil when there is none.
    public var text: String?
    /// Whether the process that wrote it still runs (same pid, start time and executable) and
    /// has not said it stopped.
    public var running: Bool
    /// Why it is not running, in words.
    public var reason: String?
}

extension WatcherState {
    /// Reads `DIRECTORY/watch.json` and checks its process.
    public static func read(directory: String) throws -> WatcherState {
        let path = WatchStatus.path(in: directory)
        guard FileManager.default.fileExists(atPath: path) else {
            return WatcherState(text: nil, running: false, reason: "no watcher has run with \(directory) (no \(path))")
        }
        let text: String
        let json: JSON
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
            json = try JSON.parse(text)
        } catch {
            throw WatchError("\(path): cannot be read as JSON: \(error)")
        }
        guard json["schema"]?.stringValue == WatchStatus.schema, let pid = json["pid"]?.integerValue,
            let start = json["process-start"]?.integerValue, let executable = json["executable"]?.stringValue
        else { throw WatchError("\(path) is not a \(WatchStatus.schema) status file") }
        if let stopped = json["stopped"]?.stringValue {
            return WatcherState(text: text, running: false, reason: "the watcher stopped at \(stopped)")
        }
        guard pid > 0, pid <= Int(Int32.max), kill(Int32(pid), 0) == 0 || errno == EPERM else {
            return WatcherState(text: text, running: false, reason: "process \(pid) is gone (it did not stop cleanly)")
        }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) ?? executable
        guard WatchStatus.startTime(of: Int32(pid)) == start, exe == executable else {
            return WatcherState(
                text: text, running: false, reason: "process \(pid) is no longer the watcher (the pid was reused)")
        }
        return WatcherState(text: text, running: true, reason: nil)
    }
}
