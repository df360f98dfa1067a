import Foundation
import Logging
import PortcullisDocker
import Synchronization

/// How the watcher waits: how long a burst of events is gathered into one sync, and how it
/// backs off when the daemon is gone or a sync fails.
public struct WatchConfiguration: Sendable {
    /// A sync runs once no relevant event came for this long…
    public var coalesceWindow: Duration
    /// …or this long after the first event it would carry, whichever comes first.
    public var coalesceLimit: Duration
    /// The first wait before reconnecting (or retrying a failed sync), doubled each time up to
    /// `maximumBackoff`.
    public var initialBackoff: Duration
    public var maximumBackoff: Duration

    public init(
        coalesceWindow: Duration = .milliseconds(100), coalesceLimit: Duration = .seconds(1),
        initialBackoff: Duration = .milliseconds(500), maximumBackoff: Duration = .seconds(30)
    ) {
        self.coalesceWindow = coalesceWindow
        self.coalesceLimit = coalesceLimit
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
    }
}

/// What one sync did to the kernel, as the sync function reports it.
public struct SyncReport: Sendable, Equatable {
    /// Whether the kernel's rules changed.
    public var changed: Bool
    /// One line: `applied generation 4 (…): …` or `no changes: …`.
    public var summary: String
    /// The rules were put back after someone else changed them.
    public var driftRepaired: Bool
    /// How long the kernel transaction itself took (0 when nothing was applied).
    public var kernelSeconds: Double

    public init(changed: Bool, summary: String, driftRepaired: Bool = false, kernelSeconds: Double = 0) {
        self.changed = changed
        self.summary = summary
        self.driftRepaired = driftRepaired
        self.kernelSeconds = kernelSeconds
    }
}

/// One sync as the watcher saw it: why it ran, what it did, how long it took.
public struct SyncRecord: Sendable {
    public var number: Int
    public var at: Date
    /// The inventory changes (and other reasons: start, reconnect, reload) it carried.
    public var reasons: [String]
    /// Nil when it failed.
    public var report: SyncReport?
    public var error: String?
    public var seconds: Double
}

/// What the watcher knows now, for status files, metrics and tests.
public struct WatchSnapshot: Sendable {
    public var connected = false
    /// How many times it connected to the daemon (more than one: it reconnected).
    public var connections = 0
    /// The inventory as the events left it (nil before the first full read).
    public var inventory: Inventory?
    /// The inventory the last successful sync was given.
    public var synced: Inventory?
    public var metrics = WatchMetrics()
    public var lastSync: SyncRecord?
    public var lastError: String?

    public init() {}
}

/// A connection to the daemon, opened for the watcher: the event stream (subscribed before
/// the inventory was read, so nothing falls between them), the full inventory, and single
/// reads for the events.
public struct DaemonConnection: Sendable {
    public var events: AsyncThrowingStream<EngineEvent, any Error>
    public var inventory: Inventory
    public var inspector: any EngineInspector
    /// Where it is, in words (`the Docker daemon at unix:///var/run/docker.sock`).
    public var origin: String
    public var close: @Sendable () async -> Void

    public init(
        events: AsyncThrowingStream<EngineEvent, any Error>, inventory: Inventory, inspector: any EngineInspector,
        origin: String, close: @escaping @Sendable () async -> Void
    ) {
        self.events = events
        self.inventory = inventory
        self.inspector = inspector
        self.origin = origin
        self.close = close
    }
}

/// Opens connections to the daemon; the real one is `EngineDaemon`, tests give their own.
public protocol WatchedDaemon: Sendable {
    /// Where it is, in words, for messages while it cannot be reached.
    var origin: String { get }
    func connect() async throws -> DaemonConnection
}

/// Keeps a host's rules in step with its Docker daemon. It reads the full inventory and syncs;
/// then follows the daemon's events, updating the inventory one event at a time, and syncs
/// once a burst of events is over. When the stream ends or breaks it keeps the rules in place,
/// retries with exponential backoff, and on reconnect reads everything again and syncs from
/// scratch (the daemon keeps only its last 256 events). `reload()` (SIGHUP) syncs now, reading
/// the policy again; `stop()` (SIGTERM) ends `run()` and leaves the rules in place.
///
/// Everything happens in `run()`, one signal at a time (events, timers, reload, stop), so no two
/// syncs overlap and the inventory has one writer.
public final class Watcher: Sendable {
    enum Signal: Sendable {
        case connect
        case event(connection: Int, EngineEvent)
        case ended(connection: Int, error: String?)
        case flush
        case reload
        case stop
    }

    let daemon: any WatchedDaemon
    let configuration: WatchConfiguration
    let logger: Logger
    let sync: @Sendable (Inventory) async throws -> SyncReport
    let changed: @Sendable (WatchSnapshot) -> Void
    let signals: AsyncStream<Signal>
    let continuation: AsyncStream<Signal>.Continuation
    let state = Mutex(WatchSnapshot())

    /// `sync` brings the kernel's rules in line with an inventory; `changed` is called after
    /// every sync and every change of connection (to write the status and metrics files).
    public init(
        daemon: any WatchedDaemon, configuration: WatchConfiguration = WatchConfiguration(), logger: Logger,
        sync: @escaping @Sendable (Inventory) async throws -> SyncReport,
        changed: @escaping @Sendable (WatchSnapshot) -> Void = { _ in }
    ) {
        self.daemon = daemon
        self.configuration = configuration
        self.logger = logger
        self.sync = sync
        self.changed = changed
        (signals, continuation) = AsyncStream<Signal>.makeStream()
    }

    /// What it knows now.
    public var snapshot: WatchSnapshot { state.withLock { $0 } }

    /// Reads the policy again and syncs now (SIGHUP).
    public func reload() { continuation.yield(.reload) }

    /// Ends `run()`; the rules stay in place (SIGTERM).
    public func stop() { continuation.yield(.stop) }

    /// The loop's own variables.
    struct Loop {
        var connection: DaemonConnection?
        var connectionNumber = 0
        var reader: Task<Void, Never>?
        var tracker: InventoryTracker?
        var reasons: [String] = []
        var firstPending: ContinuousClock.Instant?
        var lastEvent: ContinuousClock.Instant?
        var reconnectDelay: Duration
        var retryDelay: Duration
        var syncs = 0
    }

    /// Runs until `stop()`.
    public func run() async {
        var loop = Loop(reconnectDelay: configuration.initialBackoff, retryDelay: configuration.initialBackoff)
        continuation.yield(.connect)
        for await signal in signals {
            switch signal {
            case .connect:
                guard loop.connection == nil else { continue }
                await connect(&loop)
            case .event(let number, let event):
                guard number == loop.connectionNumber, let connection = loop.connection, var tracker = loop.tracker
                else { continue }
                do {
                    guard let change = try await tracker.apply(event, inspector: connection.inspector) else { continue }
                    loop.tracker = tracker
                    state.withLock { $0.inventory = tracker.inventory }
                    logger.debug("\(event.type) \(event.action) \(event.actorID.prefix(12)): \(change)")
                    pend(change.description, &loop)
                } catch {
                    await disconnect(&loop, because: "cannot read what \(event.type) \(event.action) changed: \(error)")
                }
            case .ended(let number, let error):
                guard number == loop.connectionNumber, loop.connection != nil else { continue }
                await disconnect(
                    &loop, because: error.map { "the event stream broke: \($0)" } ?? "the event stream ended")
            case .flush:
                // Without the daemon, pending changes wait for the full read at reconnect.
                guard loop.connection != nil, let first = loop.firstPending, let last = loop.lastEvent else {
                    continue
                }
                let now = ContinuousClock.now
                guard now - last >= configuration.coalesceWindow || now - first >= configuration.coalesceLimit else {
                    continue
                }
                await performSync(&loop)
            case .reload:
                logger.notice("reloading the policy")
                loop.reasons.append("policy reload")
                if loop.connection != nil {
                    await performSync(&loop)
                } else {
                    logger.notice("the policy is read again when the daemon is back")
                }
            case .stop:
                loop.reader?.cancel()
                if let connection = loop.connection { await connection.close() }
                loop.connection = nil
                state.withLock { $0.connected = false }
                logger.notice("stopping; the rules stay in place")
                continuation.finish()
                return
            }
        }
    }

    func connect(_ loop: inout Loop) async {
        do {
            let connection = try await daemon.connect()
            loop.connectionNumber += 1
            loop.connection = connection
            let number = loop.connectionNumber
            loop.reader = Task { [continuation] in
                do {
                    for try await event in connection.events { continuation.yield(.event(connection: number, event)) }
                    continuation.yield(.ended(connection: number, error: nil))
                } catch {
                    continuation.yield(.ended(connection: number, error: "\(error)"))
                }
            }
            loop.tracker = InventoryTracker(connection.inventory)
            loop.reconnectDelay = configuration.initialBackoff
            let first = number == 1
            state.withLock {
                $0.connected = true
                $0.connections = number
                $0.inventory = connection.inventory
            }
            logger.notice(
                "\(first ? "following" : "reconnected to") \(connection.origin): \(connection.inventory.networks.count) bridge network(s), \(connection.inventory.containers.count) running container(s)\(first ? "" : ", read again")"
            )
            loop.reasons.insert(first ? "start" : "reconnected", at: 0)
            await performSync(&loop)
        } catch {
            let delay = loop.reconnectDelay
            loop.reconnectDelay = min(delay * 2, configuration.maximumBackoff)
            logger.error(
                "cannot reach \(daemon.origin): \(error); the rules stay in place, retrying in \(Self.seconds(delay))")
            state.withLock { $0.lastError = "\(error)" }
            changed(snapshot)
            schedule(.connect, after: delay)
        }
    }

    /// The stream is gone: keep the rules, reconnect after the backoff, read everything again.
    func disconnect(_ loop: inout Loop, because reason: String) async {
        loop.reader?.cancel()
        loop.reader = nil
        if let connection = loop.connection { await connection.close() }
        loop.connection = nil
        let delay = loop.reconnectDelay
        loop.reconnectDelay = min(delay * 2, configuration.maximumBackoff)
        logger.warning(
            "lost \(daemon.origin): \(reason); the rules stay in place, reconnecting in \(Self.seconds(delay))")
        state.withLock {
            $0.connected = false
            $0.lastError = reason
        }
        changed(snapshot)
        schedule(.connect, after: delay)
    }

    /// Notes a reason to sync, and when to look again.
    func pend(_ reason: String, _ loop: inout Loop) {
        let now = ContinuousClock.now
        loop.reasons.append(reason)
        loop.lastEvent = now
        if loop.firstPending == nil {
            loop.firstPending = now
            schedule(.flush, after: configuration.coalesceLimit)
        }
        schedule(.flush, after: configuration.coalesceWindow)
    }

    func performSync(_ loop: inout Loop) async {
        guard let inventory = loop.tracker?.inventory else { return }
        let reasons = loop.reasons
        loop.reasons = []
        loop.firstPending = nil
        loop.lastEvent = nil
        loop.syncs += 1
        let started = ContinuousClock.now
        var record = SyncRecord(number: loop.syncs, at: Date(), reasons: reasons, report: nil, error: nil, seconds: 0)
        let what = reasons.isEmpty ? "" : reasons.joined(separator: ", ") + ": "
        do {
            let report = try await sync(inventory)
            record.seconds = Self.seconds(since: started)
            record.report = report
            loop.retryDelay = configuration.initialBackoff
            logger.info(
                "sync \(record.number): \(what)\(report.summary)\(report.driftRepaired ? " (repaired rules changed by someone else)" : "") in \(Self.milliseconds(record.seconds)), \(inventory.containers.count) container(s)"
            )
            state.withLock {
                $0.synced = inventory
                $0.lastSync = record
                $0.lastError = nil
                $0.metrics.managedContainers = inventory.containers.count
                $0.metrics.record(
                    seconds: record.seconds, succeeded: true, driftRepaired: report.driftRepaired,
                    at: record.at.timeIntervalSince1970)
            }
        } catch {
            record.seconds = Self.seconds(since: started)
            record.error = "\(error)"
            let delay = loop.retryDelay
            loop.retryDelay = min(delay * 2, configuration.maximumBackoff)
            logger.error(
                "sync \(record.number) failed: \(what)\(error); the rules in place are kept, retrying in \(Self.seconds(delay))"
            )
            state.withLock {
                $0.lastSync = record
                $0.lastError = "\(error)"
                $0.metrics.record(seconds: record.seconds, succeeded: false, at: record.at.timeIntervalSince1970)
            }
            // Retried as if the same changes had just come again.
            loop.reasons = ["retry"] + reasons.filter { $0 != "retry" }
            let now = ContinuousClock.now
            loop.firstPending = now
            loop.lastEvent = now
            // No sooner than a quiet window, or the flush would find the retry too recent.
            schedule(.flush, after: max(delay, configuration.coalesceWindow))
        }
        changed(snapshot)
    }

    func schedule(_ signal: Signal, after delay: Duration) {
        Task { [continuation] in
            try? await Task.sleep(for: delay)
            continuation.yield(signal)
        }
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    static func seconds(_ duration: Duration) -> String {
        let value = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return value < 1 ? String(format: "%.1f s", value) : String(format: "%.0f s", value)
    }

    static func milliseconds(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }
}
