import Foundation
import Logging
import PortcullisDocker
import Synchronization

/// How the watcher waits: how it backs off when the daemon is gone or a sync fails, and how
/// often it looks for rules changed by someone else.
public struct WatchConfiguration: Sendable {
    /// The first wait before reconnecting (or retrying a failed sync), doubled each time up to
    /// `maximumBackoff`.
    public var initialBackoff: Duration
    public var maximumBackoff: Duration
    /// How often to check, with no event, whether someone else changed the rules (nil: never).
    public var driftInterval: Duration?
    /// How long events must be quiet before a full sync records the element changes the delta
    /// path made (`SyncReport.unsettled`): a full sync takes long on a large host, and an event
    /// that comes during one waits for it. At most `settleLimit` after the first of them, it
    /// runs anyway, so that a host that never stops changing still gets its generations.
    public var settleDelay: Duration
    public var settleLimit: Duration

    public init(
        initialBackoff: Duration = .milliseconds(500), maximumBackoff: Duration = .seconds(30),
        driftInterval: Duration? = .seconds(5), settleDelay: Duration = .seconds(10),
        settleLimit: Duration = .seconds(120)
    ) {
        self.initialBackoff = initialBackoff
        self.maximumBackoff = maximumBackoff
        self.driftInterval = driftInterval
        self.settleDelay = settleDelay
        self.settleLimit = settleLimit
    }
}

/// What the watcher keeps in step with the daemon: the kernel's rules and the policy they come
/// from (the real one is `apply` with a policy read once, see `Application.runWatch`).
public protocol WatchTarget: Sendable {
    /// Brings the kernel's rules in line with the running policy bound to `inventory`;
    /// `repair`: someone else changed them, replace what is there.
    func sync(_ inventory: Inventory, repair: Bool) async throws -> SyncReport
    /// Reads and checks the policy again, bound to `inventory`; from then on the syncs use it.
    /// Throws why it does not check (its diagnostics), keeping the running policy.
    func reload(boundTo inventory: Inventory) async throws
    /// What someone else changed in the rules the syncs own, in a sentence; nil when nothing.
    /// Cheap when nothing changed: it runs every `driftInterval`.
    func drift() async throws -> String?
    /// Whether the running policy sets `unknown-containers drop`: then a sync given no
    /// containers closes every container's address until the next one.
    var dropsUnknownContainers: Bool { get }
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
    /// The kernel holds changes no generation records yet: a full sync is to record them once
    /// events are quiet.
    public var unsettled: Bool

    public init(
        changed: Bool, summary: String, driftRepaired: Bool = false, kernelSeconds: Double = 0, unsettled: Bool = false
    ) {
        self.changed = changed
        self.summary = summary
        self.driftRepaired = driftRepaired
        self.kernelSeconds = kernelSeconds
        self.unsettled = unsettled
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
    /// When the policy was last reloaded (SIGHUP), and why that reload failed, if it did: the
    /// syncs go on with the policy that checked before.
    public var lastReload: Date?
    public var lastReloadError: String?

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
/// then follows the daemon's events, updating the inventory one event at a time. A change found
/// while no sync runs is synced at once; changes found while one runs are carried together by
/// the next. When the stream ends or breaks it keeps the rules in place, retries with
/// exponential backoff, and on reconnect reads everything again and syncs from scratch (the
/// daemon keeps only its last 256 events). Every `driftInterval` it asks whether someone else
/// changed the rules, and syncs to repair them if so. `reload()` (SIGHUP) checks the policy
/// again and syncs with it only if it checks; `stop()` (SIGTERM) ends `run()` and leaves the
/// rules in place.
///
/// Everything happens in `run()`, one signal at a time (events, timers, reload, stop), so no two
/// syncs overlap and the inventory has one writer.
public final class Watcher: Sendable {
    enum Signal: Sendable {
        case connect
        case event(connection: Int, EngineEvent)
        case ended(connection: Int, error: String?)
        /// Sync what is pending: queued behind the signals already waiting (the events that
        /// came during a sync), so that they are carried by one sync.
        case flush
        /// Record the element changes in a generation: those of sync N if no sync came since,
        /// or (nil) all of them, quiet or not.
        case settle(sync: Int?)
        case driftCheck
        case reload
        case stop
    }

    let daemon: any WatchedDaemon
    let configuration: WatchConfiguration
    let logger: Logger
    let target: any WatchTarget
    let changed: @Sendable (WatchSnapshot) -> Void
    let signals: AsyncStream<Signal>
    let continuation: AsyncStream<Signal>.Continuation
    let state = Mutex(WatchSnapshot())

    /// `changed` is called after every sync, reload and change of connection (to write the
    /// status and metrics files).
    public init(
        daemon: any WatchedDaemon, configuration: WatchConfiguration = WatchConfiguration(), logger: Logger,
        target: any WatchTarget, changed: @escaping @Sendable (WatchSnapshot) -> Void = { _ in }
    ) {
        self.daemon = daemon
        self.configuration = configuration
        self.logger = logger
        self.target = target
        self.changed = changed
        (signals, continuation) = AsyncStream<Signal>.makeStream()
    }

    /// What it knows now.
    public var snapshot: WatchSnapshot { state.withLock { $0 } }

    /// Checks the policy again and, if it checks, syncs with it now (SIGHUP).
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
        /// A `.flush` is in the queue.
        var flushQueued = false
        /// The next sync replaces rules someone else changed.
        var repair = false
        /// The kernel holds element changes no generation records yet.
        var unsettled = false
        /// A reload came before the first connection; it is done once the inventory is read.
        var reloadPending = false
        var reconnectDelay: Duration
        var retryDelay: Duration
        var syncs = 0
    }

    /// Runs until `stop()`.
    public func run() async {
        var loop = Loop(reconnectDelay: configuration.initialBackoff, retryDelay: configuration.initialBackoff)
        continuation.yield(.connect)
        if let interval = configuration.driftInterval { schedule(.driftCheck, after: interval) }
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
                loop.flushQueued = false
                // Without the daemon, pending changes wait for the full read at reconnect.
                guard loop.connection != nil, !loop.reasons.isEmpty else { continue }
                await performSync(&loop)
            case .settle(let number):
                guard number == nil || number == loop.syncs, loop.unsettled, loop.connection != nil else { continue }
                // A full sync, with --take-over: apply refuses tables changed since its last
                // generation, and these were, by the element changes.
                loop.repair = true
                pend("recording element changes", &loop)
            case .driftCheck:
                await checkDrift(&loop)
                if let interval = configuration.driftInterval { schedule(.driftCheck, after: interval) }
            case .reload:
                guard let inventory = loop.tracker?.inventory else {
                    loop.reloadPending = true
                    logger.notice("the policy is read again when the daemon is back")
                    continue
                }
                await reload(boundTo: inventory, &loop)
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
            if loop.reloadPending {
                loop.reloadPending = false
                await reload(boundTo: connection.inventory, &loop)
            }
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

    /// The stream is gone: reconnect after the backoff and read everything again. The rules
    /// stay in place, unless the daemon may start its containers anew before it answers
    /// (`forgetsContainers`): then no container is known until it is back.
    func disconnect(_ loop: inout Loop, because reason: String) async {
        loop.reader?.cancel()
        loop.reader = nil
        if let connection = loop.connection { await connection.close() }
        loop.connection = nil
        let delay = loop.reconnectDelay
        loop.reconnectDelay = min(delay * 2, configuration.maximumBackoff)
        let forgetting = forgetsContainers(loop)
        logger.warning(
            "lost \(daemon.origin): \(reason); \(forgetting ? "it does not live-restore: until it is back no container is known, since those it starts again may get addresses others had" : "the rules stay in place"), reconnecting in \(Self.seconds(delay))"
        )
        state.withLock {
            $0.connected = false
            $0.lastError = reason
        }
        if forgetting, let inventory = loop.tracker?.inventory {
            var none = inventory
            none.containers = []
            loop.reasons.insert("lost the daemon", at: 0)
            await performSync(&loop, inventory: none)
        } else {
            changed(snapshot)
        }
        schedule(.connect, after: delay)
    }

    /// Whether losing the daemon must forget its containers. A daemon without live-restore
    /// starts again by starting its containers, before it answers, on addresses handed out
    /// from the bottom of each subnet again: a container could get the address of one that
    /// has not come back, and with it that container's rules, until the reconnection syncs.
    /// With `unknown-containers drop` a sync with no containers closes them all instead (new
    /// connections wait for the reconnection; replies to accepted ones pass). Without the
    /// setting, forgetting containers would open them, and the rules stay.
    func forgetsContainers(_ loop: Loop) -> Bool {
        guard let inventory = loop.tracker?.inventory, snapshot.synced != nil, target.dropsUnknownContainers else {
            return false
        }
        return inventory.daemon?.liveRestore != true && !inventory.containers.isEmpty
    }

    /// Notes a reason to sync. The sync runs once the signals already queued (events that came
    /// while the last sync ran) are taken in: at once when the watcher was idle.
    func pend(_ reason: String, _ loop: inout Loop) {
        loop.reasons.append(reason)
        guard !loop.flushQueued else { return }
        loop.flushQueued = true
        continuation.yield(.flush)
    }

    /// The policy file again, checked against the inventory first: one with errors is logged
    /// once and counted, and the syncs go on with the running policy.
    func reload(boundTo inventory: Inventory, _ loop: inout Loop) async {
        logger.notice("reloading the policy")
        do {
            try await target.reload(boundTo: inventory)
            state.withLock {
                $0.lastReload = Date()
                $0.lastReloadError = nil
            }
            pend("policy reload", &loop)
        } catch {
            logger.error("the policy was not reloaded; the syncs go on with the running policy:\n\(error)")
            state.withLock {
                $0.lastReload = Date()
                $0.lastReloadError = "\(error)"
                $0.metrics.reloadFailures += 1
            }
            changed(snapshot)
        }
    }

    /// Asks whether someone else changed the rules since the last sync; if so, syncs to put
    /// them back. Not before a sync has succeeded (nothing is owned yet), nor when one is
    /// queued; a failed sync waiting for its retry is asked about (it may have failed because
    /// of the change: apply refuses to replace rules others changed unless told to repair).
    func checkDrift(_ loop: inout Loop) async {
        guard loop.connection != nil, !loop.flushQueued, snapshot.synced != nil else { return }
        do {
            guard let drift = try await target.drift() else { return }
            logger.warning("rules changed by someone else: \(drift); repairing")
            loop.repair = true
            pend("rules changed by someone else", &loop)
        } catch {
            logger.error("cannot check the rules for changes by someone else: \(error)")
        }
    }

    /// Syncs the tracker's inventory, or `inventory` when given.
    func performSync(_ loop: inout Loop, inventory given: Inventory? = nil) async {
        guard let inventory = given ?? loop.tracker?.inventory else { return }
        let reasons = loop.reasons
        let repair = loop.repair
        loop.reasons = []
        loop.repair = false
        loop.syncs += 1
        let started = ContinuousClock.now
        var record = SyncRecord(number: loop.syncs, at: Date(), reasons: reasons, report: nil, error: nil, seconds: 0)
        let what = reasons.isEmpty ? "" : reasons.joined(separator: ", ") + ": "
        do {
            let report = try await target.sync(inventory, repair: repair)
            record.seconds = Self.seconds(since: started)
            record.report = report
            loop.retryDelay = configuration.initialBackoff
            if report.unsettled {
                if !loop.unsettled { schedule(.settle(sync: nil), after: configuration.settleLimit) }
                schedule(.settle(sync: loop.syncs), after: configuration.settleDelay)
            }
            loop.unsettled = report.unsettled
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
            // Retried as if the same changes had come again, after the backoff (or at the next
            // change, whichever is first).
            loop.reasons = ["retry"] + reasons.filter { $0 != "retry" }
            loop.repair = repair
            schedule(.flush, after: delay)
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
